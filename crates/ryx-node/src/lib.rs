//! The Ryx node daemon as a library: sockets and the event loop around the
//! `ryx-core` state machine, the HTTP API, workers, metrics and
//! configuration. The `ryx-node` binary is a thin start-up over it; the
//! fuzz targets drive its parsers and its HTTP router in-process.

pub mod access;
pub mod alerts;
pub mod api_jobs;
pub mod api_search;
pub mod cli;
pub mod client;
pub mod config_file;
pub mod datasets;
pub mod events;
pub mod exec;
pub mod faults;
pub mod health;
pub mod http;
pub mod learning;
pub mod members;
pub mod metrics;
pub mod refusals;
pub mod resolve;
pub mod run;
pub mod runtime;
pub mod server;
pub mod sources;
pub mod spool;
pub mod store;
pub mod streams;
pub mod waves;
pub mod work;

#[cfg(test)]
mod contract_tests;
