//! `ryx-core`: the sans-IO heart of a Ryx node.
//!
//! Everything a node decides — who its neighbours are, when a neighbour is
//! dead, how far information spreads and with how much energy — lives here as
//! a deterministic state machine. It performs no IO and reads no clock: time
//! is passed in, randomness comes from a seeded generator the caller owns, and
//! everything the node wants done comes out as [`Output`] values.
//!
//! ```text
//! node.handle(now, Input::Datagram { from, bytes })
//! node.handle(now, Input::Tick)
//! while let Some(out) = node.poll_output() { /* Send, Broadcast, Event */ }
//! node.next_deadline()
//! ```
//!
//! Two drivers run this code: the `ryx-node` daemon (real sockets) and the
//! `ryx-sim` simulator (virtual time, thousands of nodes in one process).

pub mod agg;
pub mod anomaly;
pub mod attest;
pub mod auth;
pub mod balance;
pub mod blobs;
pub mod config;
pub mod coords;
pub mod custody;
pub mod diffusion;
pub mod energy;
pub mod id;
pub mod identity;
pub mod jobs;
pub mod learn;
pub mod metrics;
pub mod node;
pub mod rng;
pub mod time;
pub mod topology;
pub mod views;
pub mod wire;

pub use config::NodeConfig;
pub use id::NodeId;
pub use node::{Event, Input, Node, Output};
pub use time::Time;
