//! Diffusing items: their ids, values, announcements and digests.

use crate::id::NodeId;
use crate::identity::Proof;
use crate::topology::{ListValue, NeighborList};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which table an item belongs to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// User key/value information (`/v1/info`).
    Info,
    /// A node's neighbour list (`/v1/topology`); the key is the node id.
    Topology,
    /// A job's summary (`/v1/jobs`); the key is the job id.
    Job,
    /// How often a node disagreed with a majority; the key is the node id.
    Reputation,
}

pub(super) fn info_space() -> Space {
    Space::Info
}

pub(super) fn is_info_space(s: &Space) -> bool {
    *s == Space::Info
}

/// Identity of one version of one item.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId {
    /// Table.
    pub space: Space,
    /// Key within the table.
    pub key: String,
    /// Version (last writer wins by version, then origin).
    pub version: u64,
    /// Node that wrote this version.
    pub origin: NodeId,
}

/// The value of a diffusing item. Values are shared, not copied, as an item
/// is stored and forwarded to several neighbours; a topology item's value is
/// parsed once, where it is decoded, and the parsed list is what nodes keep.
/// Both forms serialize to the same JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemValue {
    /// Any JSON (info items, job summaries, reputation records; and a
    /// topology value that is not a neighbour list, which is refused where
    /// it is handled).
    Json(Arc<serde_json::Value>),
    /// A neighbour list (the value of a topology item).
    Topology(Arc<ListValue>),
}

impl ItemValue {
    /// The value as JSON (a neighbour list is converted).
    pub fn to_json(&self) -> Arc<serde_json::Value> {
        match self {
            ItemValue::Json(v) => v.clone(),
            ItemValue::Topology(l) => Arc::new(serde_json::to_value(&**l).unwrap_or(serde_json::Value::Null)),
        }
    }

    /// The value, if it is a JSON unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            ItemValue::Json(v) => v.as_u64(),
            ItemValue::Topology(_) => None,
        }
    }

    /// The value as version `version` of a neighbour list, if it is one.
    pub fn neighbor_list(&self, version: u64) -> Option<Arc<ListValue>> {
        match self {
            ItemValue::Topology(l) => Some(ListValue::as_version(l, version)),
            ItemValue::Json(v) => NeighborList::deserialize(&**v).ok().map(|l| ListValue::new(l, version)),
        }
    }

    /// Length of the value serialized.
    pub fn len(&self) -> usize {
        match self {
            ItemValue::Json(v) => super::value_len(v),
            ItemValue::Topology(l) => l.json_len(),
        }
    }

    /// Whether the value serializes to nothing (never: JSON has no empty value).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<serde_json::Value> for ItemValue {
    fn from(v: serde_json::Value) -> Self {
        ItemValue::Json(Arc::new(v))
    }
}

impl Serialize for ItemValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ItemValue::Json(v) => v.serialize(s),
            ItemValue::Topology(l) => l.serialize(s),
        }
    }
}

/// An item as it is decoded, before its value is typed by its space.
#[derive(Deserialize)]
struct RawItem {
    id: ItemId,
    value: serde_json::Value,
    energy: f64,
    hops: u32,
    born: u64,
    #[serde(default)]
    proof: Option<Box<Proof>>,
}

impl From<RawItem> for Item {
    fn from(r: RawItem) -> Item {
        let value = match r.id.space {
            Space::Topology => match NeighborList::deserialize(&r.value) {
                Ok(l) => ItemValue::Topology(ListValue::new(l, r.id.version)),
                Err(_) => ItemValue::Json(Arc::new(r.value)),
            },
            _ => ItemValue::Json(Arc::new(r.value)),
        };
        Item { id: r.id, value, energy: r.energy, hops: r.hops, born: r.born, proof: r.proof }
    }
}

/// A diffusing item: a versioned key/value pair with energy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(from = "RawItem")]
pub struct Item {
    /// Which version of which key.
    pub id: ItemId,
    /// The value.
    pub value: ItemValue,
    /// Energy the sender holds it with; the receiver applies one hop of decay.
    pub energy: f64,
    /// Hops travelled from the origin.
    pub hops: u32,
    /// When the origin wrote it (origin's clock, microseconds since the Unix
    /// epoch in the daemon); used for diffusion-latency metrics only.
    pub born: u64,
    /// The origin's signature over the version and value (required on job
    /// summaries and reputation records; see [`Item::signed_parts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Box<Proof>>,
}

impl Item {
    /// The bytes an origin signs: space, key, version, origin, birth time
    /// and the value (energy and hops change on the way and are not signed).
    pub fn signed_bytes(&self, cluster: &str) -> Vec<u8> {
        let value = serde_json::to_vec(&self.value).unwrap_or_default();
        let space = serde_json::to_vec(&self.id.space).unwrap_or_default();
        let mut out = Vec::with_capacity(value.len() + self.id.key.len() + cluster.len() + 64);
        for part in [cluster.as_bytes(), &space, self.id.key.as_bytes()] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&self.id.version.to_le_bytes());
        out.extend_from_slice(&self.id.origin.0.to_le_bytes());
        out.extend_from_slice(&self.born.to_le_bytes());
        out.extend_from_slice(&value);
        out
    }
}

/// A lazy announcement: "I have this item, with this energy".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Announce {
    /// The item.
    pub id: ItemId,
    /// Energy the announcer holds it with.
    pub energy: f64,
    /// Hops the announcer's copy travelled.
    #[serde(default)]
    pub hops: u32,
}

/// One line of an anti-entropy digest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DigestEntry {
    /// Key.
    pub key: String,
    /// Version held.
    pub version: u64,
    /// Origin of the version held.
    pub origin: NodeId,
}
