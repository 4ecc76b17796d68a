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
pub mod app;
pub mod broker;
pub mod bugs;
pub mod check;
pub mod client;
pub mod controller;
pub mod coordinator;
pub mod drive;
pub mod history;
pub mod kafka;
pub mod nemesis;
pub mod report;
pub mod scenario;
pub mod schema;
pub mod sim;
