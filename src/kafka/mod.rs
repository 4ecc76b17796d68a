//! Kafka's own data, with no simulation in it: the wire protocol's requests and
//! responses, record batches (v2, CRC-32C), the client, broker and topic configs with
//! Kafka's names and defaults, and cluster metadata.

pub mod config;
pub mod metadata;
pub mod protocol;
pub mod record;
pub mod topic_partition;
