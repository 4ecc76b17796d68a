//! kafkasim: a deterministic simulation testbed for Apache Kafka's design.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

pub mod actor;
pub mod broker;
pub mod bugs;
pub mod checker;
pub mod config;
pub mod consumer;
pub mod controller;
pub mod history;
pub mod log;
pub mod metadata;
pub mod nemesis;
pub mod partitioner;
pub mod producer;
pub mod protocol;
pub mod record;
pub mod runner;
pub mod scenario;
pub mod sim;
pub mod sweep;
pub mod workload;
