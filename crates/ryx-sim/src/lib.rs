//! `ryx-sim`: the deterministic simulator.
//!
//! Runs many copies of the `ryx-core` state machine in one process, in
//! virtual time, over a seeded hostile network ([`net::Network`]: per-link
//! latency with jitter and a long tail, loss, duplication, reordering,
//! partitions), with crashes, restarts, paused and slow nodes. Invariants
//! are checked as it runs ([`sim::Sim`]); a run is a pure function of its
//! [`Params`], so a failing seed replays exactly from the command line it
//! prints.
//!
//! ```text
//! ryx-sim --nodes 1000 --seed 7 --scenario crash --kill 0.5 --json
//! ```
//!
//! Design notes:
//! - One event queue (a binary heap keyed by virtual time, then insertion
//!   order). Each node has at most one live timer event, re-armed from
//!   `next_deadline()` after every input; stale timer events are dropped.
//! - Datagrams travel pre-decoded (`Input::Message`, one shared envelope per
//!   send, cloned per delivery); `--wire` sends them through the real JSON
//!   codec instead and counts bytes.
//! - Cheap invariants (self-links, last-writer-wins order, link accounting)
//!   are checked on every handled input; an O(N) sweep (every node's table
//!   bounds, link symmetry, stored versions, recount) runs every virtual
//!   second.

pub mod alerts;
pub mod balance;
pub mod byzantine;
pub mod learn;
pub mod monitor;
pub mod net;
pub mod params;
pub mod query;
pub mod scenario;
pub mod sim;
pub mod sweep;
pub mod topo;
pub mod work;

pub use params::{DiscoveryMode, Params, Scenario};
pub use scenario::{run, Failure, Report};
pub use sim::{Sim, Violation};
