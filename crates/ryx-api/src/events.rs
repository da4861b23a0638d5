//! Events: `GET /v1/events/recent` and the payloads of the `GET /v1/events`
//! stream (`node` events, `sample` every second).

use crate::ids::{BlobHash, JobId, NodeId};
use crate::jobs::{JobState, JobStats};
use crate::status::Status;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;

/// `GET /v1/events/recent`: the last 200 events, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentEvents {
    /// The events.
    pub events: Vec<RecentEvent>,
}

/// An event and when the node saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentEvent {
    /// The node's wall clock, Unix ms.
    pub at_unix_ms: u64,
    /// What happened.
    pub event: NodeEvent,
}

/// Something that happened at a node (`event: node` of the stream).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A link formed.
    NeighborUp {
        /// Its UDP address.
        addr: SocketAddr,
        /// The neighbour.
        id: NodeId,
        /// The random long link.
        long: bool,
    },
    /// A link went away.
    NeighborDown {
        /// The neighbour.
        id: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// A neighbour is suspected (not yet declared dead).
    Suspect {
        /// The neighbour.
        id: NodeId,
    },
    /// An info item arrived for the first time.
    ItemDelivered {
        /// The energy it is held with.
        energy: f64,
        /// The neighbour it came from.
        from: NodeId,
        /// Hops from its origin.
        hops: u32,
        /// Which item.
        id: ItemId,
    },
    /// An event this version of the API does not know.
    #[serde(other)]
    Unknown,
}

/// Why a link went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Declared dead by the failure detector.
    Failed,
    /// Left gracefully.
    Left,
    /// Either side chose another neighbour.
    Disconnected,
    /// The other side no longer counted this node as a neighbour.
    Asymmetric,
}

/// One version of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemId {
    /// Its key.
    pub key: String,
    /// The node that wrote this version.
    pub origin: NodeId,
    /// Its table.
    pub space: Space,
    /// The version.
    pub version: u64,
}

/// The table an item belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// Info items (`/v1/info`).
    Info,
    /// Neighbour lists (`/v1/topology`).
    Topology,
    /// Job summaries (`/v1/jobs`).
    Job,
    /// Reputation records.
    Reputation,
}

/// `event: sample` of the stream, every second: the node's status, its
/// counters and the newest job summaries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Counters since start.
    pub counters: Counters,
    /// Up to 50 job summaries, newest first.
    pub jobs: Vec<JobSummary>,
    /// As `GET /v1/status`.
    pub status: Status,
    /// The node's clock, ms.
    pub t: u64,
}

/// A node's metrics in brief (`sample.counters`): totals since start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// UDP bytes received.
    pub bytes_in: u64,
    /// UDP bytes sent.
    pub bytes_out: u64,
    /// CPU time of the process, seconds (where the OS tells).
    pub cpu_seconds: Option<f64>,
    /// Neighbours declared dead.
    pub failures_detected: u64,
    /// Info items delivered.
    pub items_delivered: u64,
    /// Links lost.
    pub links_down: u64,
    /// Links formed.
    pub links_up: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Datagrams rejected.
    pub rejected: u64,
    /// Resident memory, bytes (where the OS tells).
    pub rss_bytes: Option<u64>,
}

/// A job summary as every node learns it (`sample.jobs[]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The creator's signed appointment of heirs, in a summary written by
    /// another home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Value>,
    /// Input bytes of the units decided.
    #[serde(default)]
    pub bytes_done: u64,
    /// Input bytes of the job.
    #[serde(default)]
    pub bytes_total: u64,
    /// The other nodes that may write this summary.
    #[serde(default)]
    pub co_homes: Vec<NodeId>,
    /// Appointed heirs' confirmations of the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmations: Vec<Value>,
    /// Creation time, Unix µs.
    pub created: u64,
    /// For a job over a dataset, the snapshot it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<crate::DatasetSnapshot>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its current home.
    pub home: NodeId,
    /// The home's API address.
    pub home_http: SocketAddr,
    /// Its id.
    pub job_id: JobId,
    /// Its kind.
    pub kind: String,
    /// Replicas per unit.
    pub redundancy: u8,
    /// Digest of the canonical result bytes, once done.
    pub result_digest: Option<String>,
    /// The result blob's name, once done.
    pub result_hash: Option<BlobHash>,
    /// API addresses holding the result.
    pub result_holders: Vec<SocketAddr>,
    /// The result's bytes.
    pub result_size: Option<u64>,
    /// Where it is in its life.
    pub state: JobState,
    /// Its counters.
    pub stats: JobStats,
    /// Units decided.
    pub units_done: u32,
    /// Units in the job.
    pub units_total: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_events_parse_and_unknown_ones_are_kept_apart() {
        let text = r#"{"events":[{"at_unix_ms":1796453479129,"event":{"energy":80.0,"event":"item_delivered","from":"9b1246f0807121f0","hops":1,"id":{"key":"sse-demo","origin":"9b1246f0807121f0","space":"info","version":1796453479128882}}},{"at_unix_ms":1796453476177,"event":{"addr":"127.0.0.1:35451","event":"neighbor_up","id":"9b1246f0807121f0","long":true}}]}"#;
        let r: RecentEvents = serde_json::from_str(text).expect("events");
        assert!(matches!(&r.events[0].event, NodeEvent::ItemDelivered { hops: 1, .. }));
        let v: Value = serde_json::from_str(text).expect("value");
        assert_eq!(serde_json::to_value(&r).expect("value"), v);
        let down: NodeEvent =
            serde_json::from_str(r#"{"event":"neighbor_down","id":"d71a3a6a62235965","reason":"left"}"#).expect("down");
        assert!(matches!(down, NodeEvent::NeighborDown { reason: DownReason::Left, .. }));
        let new: NodeEvent = serde_json::from_str(r#"{"event":"warp_drive","id":"x"}"#).expect("unknown");
        assert_eq!(new, NodeEvent::Unknown);
    }
}
