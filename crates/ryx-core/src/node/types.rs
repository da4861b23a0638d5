//! The node's inputs and outputs, events and status reports.

use super::*;

#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram arrived (raw bytes: the core decodes and checks them).
    Datagram {
        /// Source address.
        from: SocketAddr,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// An already decoded envelope (the simulator's fast path; the cluster
    /// and version checks still apply).
    Message {
        /// Source address.
        from: SocketAddr,
        /// The envelope.
        env: Box<Envelope>,
    },
    /// Time passed: do periodic work (call when `next_deadline` is reached).
    /// The periodic work runs once the tick's own time has come; called
    /// earlier (at a failure detector's deadline, or early), only the
    /// failure detector looks.
    Tick,
    /// The seed list was (re-)resolved by the driver.
    Seeds(Vec<SocketAddr>),
}

/// Something the node wants done.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this envelope to one address.
    Send {
        /// Destination.
        to: SocketAddr,
        /// What to send (boxed: an envelope is a few hundred bytes, and
        /// outputs are queued and moved many times a second).
        env: Box<Envelope>,
    },
    /// Broadcast this envelope on the local segment (discovery).
    Broadcast {
        /// What to send.
        env: Box<Envelope>,
    },
    /// Tell observers (logs, dashboard) what happened.
    Event(Event),
    /// Job work for the driver: fetch a blob, run a kernel, merge, drop.
    Job(JobOutput),
    /// Query waves: answer one for this node's chunks, or one started here
    /// is over.
    Wave(WaveOutput),
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Declared dead by the failure detector.
    Failed,
    /// Left gracefully.
    Left,
    /// Either side chose another neighbour.
    Disconnected,
    /// The other side no longer counted us as a neighbour.
    Asymmetric,
}

/// Observable happenings.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A link formed.
    NeighborUp {
        /// Neighbour.
        id: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Random long link.
        long: bool,
    },
    /// A link went away.
    NeighborDown {
        /// Neighbour.
        id: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// A neighbour is suspected (not yet declared dead).
    Suspect {
        /// Neighbour.
        id: NodeId,
    },
    /// An incident raised, updated or resolved (`node::incident`):
    /// `notify` at the one node that notifies it (the tree's leader), and
    /// only when it is raised or resolved.
    Incident {
        /// The incident.
        incident: super::incident::Incident,
        /// This is the notification.
        notify: bool,
    },
    /// An item arrived for the first time.
    ItemDelivered {
        /// Which item.
        id: ItemId,
        /// Energy held with.
        energy: f64,
        /// Hops from origin.
        hops: u32,
        /// Neighbour it came from.
        from: NodeId,
    },
}

/// Public view of an active neighbour.
#[derive(Clone, Debug, Serialize)]
pub struct NeighborStatus {
    /// Neighbour id.
    pub node_id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Smoothed round-trip time.
    pub rtt_ms: Option<f64>,
    /// Random long link.
    pub long: bool,
    /// Payloads pushed eagerly on this link.
    pub eager: bool,
    /// Milliseconds since the link formed.
    pub age_ms: u64,
    /// Milliseconds since it was last heard.
    pub silent_ms: u64,
    /// Currently suspected.
    pub suspect: bool,
}

/// Public view of a passive peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Peer id.
    pub node_id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Round-trip time, if probed.
    pub rtt_ms: Option<f64>,
}

/// Snapshot of a node's state.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// This node.
    pub node_id: NodeId,
    /// Its cluster.
    pub cluster_id: String,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Active neighbours.
    pub neighbors: Vec<NeighborStatus>,
    /// Size of the passive list.
    pub passive_count: usize,
    /// Lifeguard local-health multiplier (0 = healthy).
    pub local_health: u32,
    /// Info items held.
    pub info_items: usize,
    /// Neighbour lists known.
    pub topology_nodes: usize,
    /// Shutting down.
    pub leaving: bool,
    /// Job engine load: jobs homed here, heir copies held, tokens queued
    /// and running, free worker slots.
    pub work: WorkStatus,
    /// Its failure domain (`--zone`), if it was given one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its network coordinate (`crate::coords`): a point and a height in
    /// milliseconds and its relative error; absent until a round trip has
    /// placed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coord: Option<crate::coords::Coord>,
}

/// Job engine load of a node.
#[derive(Clone, Debug, Serialize)]
pub struct WorkStatus {
    /// Jobs homed here (including finished ones still remembered).
    pub homes: usize,
    /// Job records held as heir.
    pub heir_of: usize,
    /// Tokens waiting here.
    pub queued: usize,
    /// Units running here.
    pub running: usize,
    /// Worker slots.
    pub slots: usize,
    /// Blobs held and their bytes.
    pub blobs: usize,
    /// Bytes of blobs held.
    pub blob_bytes: u64,
}

/// A node of the learned topology graph.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyNode {
    /// Node id.
    pub node_id: NodeId,
    /// UDP address.
    pub addr: SocketAddr,
    /// HTTP address, if it told.
    pub http: Option<SocketAddr>,
    /// Hops its list travelled to reach us (0: this node).
    pub hops: u32,
    /// Milliseconds since its list was refreshed.
    pub age_ms: u64,
    /// Its network coordinate, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coord: Option<crate::coords::Coord>,
}

/// A link of the learned topology graph.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyLink {
    /// One end.
    pub source: NodeId,
    /// Other end.
    pub target: NodeId,
    /// A random long link.
    pub long: bool,
    /// Round-trip time as measured by `source`.
    pub rtt_ms: Option<f64>,
}

/// The graph of nodes and links this node has learned.
#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    /// Node reporting.
    pub observer: NodeId,
    /// Nodes whose lists are known (plus this node).
    pub nodes: Vec<TopologyNode>,
    /// Links, each reported once per reporting end.
    pub links: Vec<TopologyLink>,
}

/// Why a client's info write was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PutError {
    /// Key empty or too long.
    #[error("key must be 1 to {MAX_KEY_LEN} bytes")]
    BadKey,
    /// Value too large.
    #[error("value must serialize to at most {MAX_VALUE_LEN} bytes")]
    ValueTooLarge,
    /// Energy out of range.
    #[error("energy must be a number greater than 0 and at most {0}")]
    BadEnergy(f64),
    /// Node is shutting down.
    #[error("node is shutting down")]
    Leaving,
}
