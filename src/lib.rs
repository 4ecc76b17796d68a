//! kafkasim: a deterministic simulation testbed for Apache Kafka's design.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

pub mod actor;
pub mod config;
pub mod history;
pub mod metadata;
pub mod protocol;
pub mod record;
