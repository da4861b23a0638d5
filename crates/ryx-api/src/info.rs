//! Info items: `POST /v1/info`, `GET /v1/info`, `GET /v1/info/{key}`.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/info`: write an item and diffuse it. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutInfo {
    /// 1 to 256 bytes.
    pub key: String,
    /// Any JSON, at most 8 KiB serialized.
    pub value: Value,
    /// In (0, 1000]; the node's `--default-energy` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
}

/// What `POST /v1/info` answers (201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoWritten {
    /// The key written.
    pub key: String,
    /// The node that wrote it (the one asked).
    pub origin: NodeId,
    /// The version it got: later writes win.
    pub version: u64,
}

/// An info item as one node holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InfoItem {
    /// The energy this node holds it with.
    pub energy: f64,
    /// Hops from its origin.
    pub hops: u32,
    /// Its key.
    pub key: String,
    /// The node that wrote this version.
    pub origin: NodeId,
    /// The value.
    pub value: Value,
    /// The version.
    pub version: u64,
}

/// `GET /v1/info`: every item held here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InfoItems {
    /// The items.
    pub items: Vec<InfoItem>,
}
