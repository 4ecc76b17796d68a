//! kafkasim: a deterministic simulation testbed for Apache Kafka's design.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

// The simulator replaces time, randomness and the network only under `--cfg madsim`,
// which `.cargo/config.toml` sets; a `RUSTFLAGS` variable replaces that list.
#[cfg(not(madsim))]
compile_error!(
    "kafkasim must be built with `--cfg madsim` (set in .cargo/config.toml); \
     unset RUSTFLAGS, which replaces it"
);

pub mod actor;
pub mod assignor;
pub mod broker;
pub mod bugs;
pub mod checker;
pub mod claims;
pub mod config;
pub mod consumer;
pub mod consumer_coordinator;
pub mod controller;
pub mod explore;
pub mod figures;
pub mod group_coordinator;
pub mod guarantees;
pub mod history;
pub mod log;
pub mod matrix;
pub mod metadata;
pub mod nemesis;
pub mod partitioner;
pub mod pipeline;
pub mod producer;
pub mod producer_state;
pub mod protocol;
pub mod record;
pub mod report_html;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod sim;
pub mod summary;
pub mod sweep;
pub mod transaction_manager;
pub mod txn_checker;
pub mod txn_client;
pub mod txn_coordinator;
pub mod workload;
