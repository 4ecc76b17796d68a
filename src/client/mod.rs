//! Kafka's clients as sans-IO cores: the producer (accumulator, sender, idempotence,
//! transactions), the consumer (fetcher, group membership, assignors) and the
//! partitioner.

pub mod assignor;
pub mod consumer;
pub mod consumer_coordinator;
pub mod network;
pub mod partitioner;
pub mod producer;
pub mod transaction_manager;
pub mod txn_client;
