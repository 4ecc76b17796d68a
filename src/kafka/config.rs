//! Kafka's configuration properties, with Kafka's names and defaults (Kafka 4.x).
//!
//! A scenario file spells these exactly as Kafka does (`"linger.ms": 5`); unknown names
//! are rejected, so a typo never silently falls back to a default.

use crate::kafka::record::CompressionType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Topic-level overrides of broker settings (`kafka-topics --config`, Kafka's
/// `TopicConfig` names): the two a broker or the controller reads per topic. Unset
/// values fall back to the broker's. Unknown names are errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// `min.insync.replicas` (at least 1).
    #[serde(
        rename = "min.insync.replicas",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub min_insync_replicas: Option<u32>,
    /// `unclean.leader.election.enable`.
    #[serde(
        rename = "unclean.leader.election.enable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unclean_leader_election_enable: Option<bool>,
    /// `flush.messages`: Kafka flushes the log when this many offsets are unflushed
    /// (at least 1).
    #[serde(
        rename = "flush.messages",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub flush_messages: Option<i64>,
    /// `flush.ms`: Kafka's flusher flushes the log when it was not flushed for this
    /// long (at least 0).
    #[serde(rename = "flush.ms", default, skip_serializing_if = "Option::is_none")]
    pub flush_ms: Option<i64>,
    /// `segment.bytes`: the size a segment of the log rolls at (at least 14).
    #[serde(
        rename = "segment.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_bytes: Option<u64>,
    /// `segment.ms`: a segment rolls when a batch's newest record is this much newer
    /// than its first batch's (at least 1).
    #[serde(
        rename = "segment.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_ms: Option<i64>,
    /// `retention.ms`: segments whose newest record is older than this are deleted
    /// (-1: no limit; at least -1).
    #[serde(
        rename = "retention.ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: the oldest segments are deleted while the log is larger than
    /// this by at least a segment (-1: no limit).
    #[serde(
        rename = "retention.bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_bytes: Option<i64>,
}

impl TopicConfig {
    /// No override set.
    pub fn is_empty(&self) -> bool {
        *self == TopicConfig::default()
    }
}

/// Broker and topic settings (`server.properties` / topic configs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `min.insync.replicas` (default 1).
    #[serde(rename = "min.insync.replicas")]
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable` (default false).
    #[serde(rename = "unclean.leader.election.enable")]
    pub unclean_leader_election_enable: bool,
    /// `log.flush.interval.messages` (default `Long.MAX_VALUE`: Kafka never flushes
    /// on a count and trusts replication).
    #[serde(rename = "log.flush.interval.messages")]
    pub log_flush_interval_messages: i64,
    /// `log.segment.bytes` (default 1073741824): the size a segment rolls at; a roll
    /// flushes the old segment.
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (default null: `log.roll.hours`): the topics' `segment.ms` unless
    /// they set their own.
    #[serde(rename = "log.roll.ms")]
    pub log_roll_ms: Option<i64>,
    /// `log.roll.hours` (default 168, a week), used when `log.roll.ms` is not set.
    #[serde(rename = "log.roll.hours")]
    pub log_roll_hours: i32,
    /// `log.flush.interval.ms` (default null: `log.flush.scheduler.interval.ms`).
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: Option<i64>,
    /// `log.flush.scheduler.interval.ms` (default `Long.MAX_VALUE`): how often the
    /// flusher looks for logs to flush by time, after its first run at
    /// `log.initial.task.delay.ms`.
    #[serde(rename = "log.flush.scheduler.interval.ms")]
    pub log_flush_scheduler_interval_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms` (default 60000): how often the
    /// recovery points are checkpointed.
    #[serde(rename = "log.flush.offset.checkpoint.interval.ms")]
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `log.initial.task.delay.ms` (default 30000): when the log manager's periodic
    /// tasks first run after startup.
    #[serde(rename = "log.initial.task.delay.ms")]
    pub log_initial_task_delay_ms: u64,
    /// `log.retention.ms` (default null: `log.retention.hours`): the topics'
    /// `retention.ms` unless they set their own (-1: no limit).
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: Option<i64>,
    /// `log.retention.hours` (default 168, a week), used when `log.retention.ms` is
    /// not set.
    #[serde(rename = "log.retention.hours")]
    pub log_retention_hours: i32,
    /// `log.retention.bytes` (default -1: no limit): the topics' `retention.bytes`
    /// unless they set their own.
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms` (default 300000): how often the log manager
    /// deletes the segments retention no longer keeps, after its first run at
    /// `log.initial.task.delay.ms`.
    #[serde(rename = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// `log.flush.start.offset.checkpoint.interval.ms` (default 60000): how often the
    /// log start offsets are checkpointed (what a restart finds of a log start that
    /// moved past the first segment's base).
    #[serde(rename = "log.flush.start.offset.checkpoint.interval.ms")]
    pub log_flush_start_offset_checkpoint_interval_ms: u64,
    /// `producer.id.expiration.ms` (default 86400000, a day; at least 1): a producer
    /// with no transaction open whose last batch in a partition is this old is
    /// forgotten by that partition (its duplicates are then no longer recognised).
    #[serde(rename = "producer.id.expiration.ms")]
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms` (default 600000): how often each
    /// partition removes its expired producers.
    #[serde(rename = "producer.id.expiration.check.interval.ms")]
    pub producer_id_expiration_check_interval_ms: u64,
    /// `replica.lag.time.max.ms` (default 30000).
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms` (default 500).
    #[serde(rename = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.backoff.ms` (default 1000).
    #[serde(rename = "replica.fetch.backoff.ms")]
    pub replica_fetch_backoff_ms: u64,
    /// `replica.fetch.max.bytes` (default 1048576).
    #[serde(rename = "replica.fetch.max.bytes")]
    pub replica_fetch_max_bytes: usize,
    /// `replica.socket.timeout.ms` (default 30000): a follower fetch's timeout.
    #[serde(rename = "replica.socket.timeout.ms")]
    pub replica_socket_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms` (default 2000).
    #[serde(rename = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms` (default 9000): the controller fences a broker
    /// silent this long; a broker that has not reached the controller this long stops
    /// leading.
    #[serde(rename = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: u64,
    /// `request.timeout.ms` (default 30000): how long the broker's own requests to the
    /// controller may take.
    #[serde(rename = "request.timeout.ms")]
    pub request_timeout_ms: u64,
    /// `offsets.topic.num.partitions` (default 50): partitions of `__consumer_offsets`.
    #[serde(rename = "offsets.topic.num.partitions")]
    pub offsets_topic_num_partitions: u32,
    /// `offsets.topic.replication.factor` (default 3; the host caps it at the broker
    /// count).
    #[serde(rename = "offsets.topic.replication.factor")]
    pub offsets_topic_replication_factor: u32,
    /// `group.initial.rebalance.delay.ms` (default 3000): how long the first rebalance
    /// of an empty group waits for more members.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` (default 6000).
    #[serde(rename = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms` (default 1800000).
    #[serde(rename = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: u64,
    /// `offsets.commit.timeout.ms` (default 5000): how long an offset commit waits for
    /// its records to be replicated before `REQUEST_TIMED_OUT`.
    #[serde(rename = "offsets.commit.timeout.ms")]
    pub offsets_commit_timeout_ms: u64,
    /// `transaction.state.log.num.partitions` (default 50): partitions of
    /// `__transaction_state`.
    #[serde(rename = "transaction.state.log.num.partitions")]
    pub transaction_state_log_num_partitions: u32,
    /// `transaction.state.log.replication.factor` (default 3; the host caps it at the
    /// broker count).
    #[serde(rename = "transaction.state.log.replication.factor")]
    pub transaction_state_log_replication_factor: u32,
    /// `transaction.state.log.min.isr` (default 2): the `min.insync.replicas` of
    /// `__transaction_state` (the host applies it to that topic's appends instead of the
    /// cluster-wide `min.insync.replicas`).
    #[serde(rename = "transaction.state.log.min.isr")]
    pub transaction_state_log_min_isr: u32,
    /// `transaction.max.timeout.ms` (default 900000): the largest
    /// `transaction.timeout.ms` a producer may ask for.
    #[serde(rename = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: u64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (default 10000):
    /// how often the transaction coordinator looks for transactions older than their
    /// timeout, to abort them.
    #[serde(rename = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.partition.verification.enable` (default true, KIP-890 part 1): a
    /// partition leader asks the transaction coordinator whether a transactional batch's
    /// partition is in the ongoing transaction before appending it.
    #[serde(rename = "transaction.partition.verification.enable")]
    pub transaction_partition_verification_enable: bool,
    /// The cluster feature `transaction.version` (0 to 2, default 2 as a new Kafka 4.0
    /// cluster formats it; Kafka sets it with `kafka-storage format --feature`, here it
    /// sits among the cluster's configs): 1 writes `__transaction_state` values in the
    /// flexible format, 2 (KIP-890 part 2) also bumps the producer epoch at every
    /// `EndTxn` and has partition leaders, not the client, add partitions to the
    /// transaction.
    #[serde(rename = "transaction.version")]
    pub transaction_version: i16,
    /// The cluster feature `eligible.leader.replicas.version` (0 or 1, KIP-966 part 1;
    /// default 0 as Kafka 4.0 formats a new cluster, 4.1 formats it with 1): at 1 the
    /// controller keeps, per partition whose ISR fell below `min.insync.replicas`, the
    /// eligible leader replicas (ELR), lets the ISR become empty, and elects from the
    /// ELR when it is; a replica that shut down uncleanly leaves the ELR.
    #[serde(rename = "eligible.leader.replicas.version")]
    pub eligible_leader_replicas_version: i16,
    /// `add.partitions.to.txn.retry.backoff.ms` (default 20, KAFKA-18654): with
    /// transaction version 2, a partition leader whose `AddPartitionsToTxn` gets
    /// `CONCURRENT_TRANSACTIONS` (the previous transaction's markers are still being
    /// written) retries it after this long instead of failing the produce.
    #[serde(rename = "add.partitions.to.txn.retry.backoff.ms")]
    pub add_partitions_to_txn_retry_backoff_ms: u64,
    /// `add.partitions.to.txn.retry.backoff.max.ms` (default 100): how long the leader
    /// keeps retrying before it answers the produce with the error.
    #[serde(rename = "add.partitions.to.txn.retry.backoff.max.ms")]
    pub add_partitions_to_txn_retry_backoff_max_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            log_flush_interval_messages: i64::MAX,
            log_segment_bytes: 1_073_741_824,
            log_roll_ms: None,
            log_roll_hours: 168,
            log_flush_interval_ms: None,
            log_flush_scheduler_interval_ms: i64::MAX,
            log_flush_offset_checkpoint_interval_ms: 60_000,
            log_initial_task_delay_ms: 30_000,
            log_retention_ms: None,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_flush_start_offset_checkpoint_interval_ms: 60_000,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            replica_fetch_max_bytes: 1_048_576,
            replica_socket_timeout_ms: 30_000,
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            request_timeout_ms: 30_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_commit_timeout_ms: 5_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_partition_verification_enable: true,
            transaction_version: 2,
            eligible_leader_replicas_version: 0,
            add_partitions_to_txn_retry_backoff_ms: 20,
            add_partitions_to_txn_retry_backoff_max_ms: 100,
        }
    }
}

/// Kafka's `atLeast(1)` validator, with its message.
fn at_least_1(name: &'static str, value: u64) -> Result<(), (&'static str, String)> {
    if value < 1 {
        Err((
            name,
            format!("Invalid value {value} for configuration {name}: Value must be at least 1"),
        ))
    } else {
        Ok(())
    }
}

impl BrokerConfig {
    /// The broker's default `retention.ms`: `log.retention.ms`, else
    /// `log.retention.hours` (Kafka's `KafkaConfig.logRetentionTimeMillis`; any
    /// negative value means no limit).
    pub fn retention_ms(&self) -> i64 {
        self.log_retention_ms
            .unwrap_or(i64::from(self.log_retention_hours) * 3_600_000)
    }

    /// The broker's default `segment.ms`: `log.roll.ms`, else `log.roll.hours`
    /// (Kafka's `KafkaConfig.logRollTimeMillis`).
    pub fn segment_ms(&self) -> i64 {
        self.log_roll_ms
            .unwrap_or(i64::from(self.log_roll_hours) * 3_600_000)
    }
}

/// The highest `transaction.version` feature level (Kafka 4.0).
pub const TRANSACTION_VERSION_MAX: i16 = 2;

/// The highest `eligible.leader.replicas.version` feature level (Kafka 4.0).
pub const ELIGIBLE_LEADER_REPLICAS_VERSION_MAX: i16 = 1;

impl BrokerConfig {
    /// The checks Kafka's `KafkaConfig` validators (and, for `transaction.version`, the
    /// storage formatter) make, with Kafka's own messages: `Err((property, message))`
    /// for a configuration Kafka would refuse.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        // Kafka's INT configs: `transaction.max.timeout.ms` is an i32 in the records too.
        let at_most_int = |name: &'static str, value: u64| {
            if value > i32::MAX as u64 {
                Err((
                    name,
                    format!(
                        "Invalid value {value} for configuration {name}: Not a number of type INT"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        if self.log_segment_bytes < 14 {
            return Err((
                "log.segment.bytes",
                format!(
                    "Invalid value {} for configuration log.segment.bytes: Value must be at \
                     least 14",
                    self.log_segment_bytes
                ),
            ));
        }
        at_least_1(
            "producer.id.expiration.ms",
            u64::try_from(self.producer_id_expiration_ms).unwrap_or(0),
        )?;
        at_most_int(
            "producer.id.expiration.ms",
            u64::try_from(self.producer_id_expiration_ms).unwrap_or(0),
        )?;
        for (name, value) in [
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms,
            ),
            (
                "log.flush.start.offset.checkpoint.interval.ms",
                self.log_flush_start_offset_checkpoint_interval_ms,
            ),
            (
                "producer.id.expiration.check.interval.ms",
                self.producer_id_expiration_check_interval_ms,
            ),
        ] {
            at_least_1(name, value)?;
        }
        if let Some(ms) = self.log_roll_ms.filter(|ms| *ms < 1) {
            return Err((
                "log.roll.ms",
                format!(
                    "Invalid value {ms} for configuration log.roll.ms: Value must be at least 1"
                ),
            ));
        }
        if self.log_roll_hours < 1 {
            return Err((
                "log.roll.hours",
                format!(
                    "Invalid value {} for configuration log.roll.hours: Value must be at least 1",
                    self.log_roll_hours
                ),
            ));
        }
        if let Some(ms) = self.log_retention_ms.filter(|ms| *ms < -1) {
            return Err((
                "log.retention.ms",
                format!(
                    "Invalid value {ms} for configuration log.retention.ms: Value must be at \
                     least -1"
                ),
            ));
        }
        at_least_1(
            "log.flush.interval.messages",
            u64::try_from(self.log_flush_interval_messages).unwrap_or(0),
        )?;
        for (name, value) in [
            (
                "log.flush.interval.ms",
                self.log_flush_interval_ms.unwrap_or(0),
            ),
            (
                "log.flush.scheduler.interval.ms",
                self.log_flush_scheduler_interval_ms,
            ),
        ] {
            if value < 0 {
                return Err((
                    name,
                    format!(
                        "Invalid value {value} for configuration {name}: Value must be at least 0"
                    ),
                ));
            }
        }
        at_least_1(
            "transaction.state.log.num.partitions",
            u64::from(self.transaction_state_log_num_partitions),
        )?;
        at_least_1(
            "transaction.state.log.replication.factor",
            u64::from(self.transaction_state_log_replication_factor),
        )?;
        at_least_1(
            "transaction.state.log.min.isr",
            u64::from(self.transaction_state_log_min_isr),
        )?;
        at_least_1(
            "transaction.max.timeout.ms",
            self.transaction_max_timeout_ms,
        )?;
        at_most_int(
            "transaction.max.timeout.ms",
            self.transaction_max_timeout_ms,
        )?;
        at_least_1(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            self.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        )?;
        at_most_int(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            self.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        )?;
        at_least_1(
            "add.partitions.to.txn.retry.backoff.ms",
            self.add_partitions_to_txn_retry_backoff_ms,
        )?;
        at_most_int(
            "add.partitions.to.txn.retry.backoff.ms",
            self.add_partitions_to_txn_retry_backoff_ms,
        )?;
        at_most_int(
            "add.partitions.to.txn.retry.backoff.max.ms",
            self.add_partitions_to_txn_retry_backoff_max_ms,
        )?;
        if !(0..=TRANSACTION_VERSION_MAX).contains(&self.transaction_version) {
            return Err((
                "transaction.version",
                format!(
                    "No feature:transaction.version with feature level {} (supported levels: \
                     0 to {TRANSACTION_VERSION_MAX})",
                    self.transaction_version
                ),
            ));
        }
        if !(0..=ELIGIBLE_LEADER_REPLICAS_VERSION_MAX)
            .contains(&self.eligible_leader_replicas_version)
        {
            return Err((
                "eligible.leader.replicas.version",
                format!(
                    "No feature:eligible.leader.replicas.version with feature level {} \
                     (supported levels: 0 to {ELIGIBLE_LEADER_REPLICAS_VERSION_MAX})",
                    self.eligible_leader_replicas_version
                ),
            ));
        }
        Ok(())
    }
}

/// Producer settings (`ProducerConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    /// `acks` (default all).
    #[serde(
        rename = "acks",
        serialize_with = "ser_acks",
        deserialize_with = "de_acks"
    )]
    #[schemars(schema_with = "acks_schema")]
    pub acks: Acks,
    /// `enable.idempotence` (default true in Kafka 4.x). `None` when the scenario does
    /// not set it: Kafka then turns idempotence off quietly where `acks` or `retries`
    /// conflict with it, but refuses the same conflict when it was asked for
    /// explicitly (see [`ProducerConfig::idempotence`]).
    #[serde(rename = "enable.idempotence", skip_serializing_if = "Option::is_none")]
    pub enable_idempotence: Option<bool>,
    /// `compression.type` (default none).
    #[serde(rename = "compression.type")]
    pub compression_type: CompressionType,
    /// `batch.size` in bytes (default 16384).
    #[serde(rename = "batch.size")]
    pub batch_size: usize,
    /// `linger.ms` (default 5).
    #[serde(rename = "linger.ms")]
    pub linger_ms: u64,
    /// `buffer.memory` in bytes (default 33554432).
    #[serde(rename = "buffer.memory")]
    pub buffer_memory: usize,
    /// `max.block.ms` (default 60000).
    #[serde(rename = "max.block.ms")]
    pub max_block_ms: u64,
    /// `retries` (default 2147483647).
    #[serde(rename = "retries")]
    pub retries: u32,
    /// `retry.backoff.ms` (default 100).
    #[serde(rename = "retry.backoff.ms")]
    pub retry_backoff_ms: u64,
    /// `retry.backoff.max.ms` (default 1000).
    #[serde(rename = "retry.backoff.max.ms")]
    pub retry_backoff_max_ms: u64,
    /// `request.timeout.ms` (default 30000).
    #[serde(rename = "request.timeout.ms")]
    pub request_timeout_ms: u64,
    /// `delivery.timeout.ms` (default 120000).
    #[serde(rename = "delivery.timeout.ms")]
    pub delivery_timeout_ms: u64,
    /// `max.in.flight.requests.per.connection` (default 5).
    #[serde(rename = "max.in.flight.requests.per.connection")]
    pub max_in_flight_requests_per_connection: u32,
    /// `metadata.max.age.ms` (default 300000).
    #[serde(rename = "metadata.max.age.ms")]
    pub metadata_max_age_ms: u64,
    /// `transactional.id` (default none): makes the producer transactional (it needs
    /// idempotence).
    #[serde(rename = "transactional.id", skip_serializing_if = "Option::is_none")]
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000): how long the coordinator lets a
    /// transaction stay open before aborting it.
    #[serde(rename = "transaction.timeout.ms")]
    pub transaction_timeout_ms: u64,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            enable_idempotence: None,
            compression_type: CompressionType::None,
            batch_size: 16_384,
            linger_ms: 5,
            buffer_memory: 33_554_432,
            max_block_ms: 60_000,
            retries: 2_147_483_647,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            max_in_flight_requests_per_connection: 5,
            metadata_max_age_ms: 300_000,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
        }
    }
}

impl ProducerConfig {
    /// Whether the producer is idempotent, after Kafka's
    /// `postProcessAndValidateIdempotenceConfigs`: on by default, but quietly off when
    /// `enable.idempotence` is not set and `retries` is 0 or `acks` is not `all`.
    pub fn idempotence(&self) -> bool {
        match self.enable_idempotence {
            Some(explicit) => explicit,
            None => {
                self.transactional_id.is_some() || (self.retries != 0 && self.acks == Acks::All)
            }
        }
    }

    /// The checks `KafkaProducer`'s constructor makes, with Kafka's own messages:
    /// `Err((property, message))` for a configuration Kafka would refuse.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_in_flight_requests_per_connection < 1 {
            return Err((
                "max.in.flight.requests.per.connection",
                format!(
                    "Invalid value {} for configuration max.in.flight.requests.per.connection: \
                     Value must be at least 1",
                    self.max_in_flight_requests_per_connection
                ),
            ));
        }
        if self.transactional_id.is_some() && self.enable_idempotence == Some(false) {
            return Err((
                "enable.idempotence",
                "Cannot set a transactional.id without also enabling idempotence.".into(),
            ));
        }
        if self.enable_idempotence.unwrap_or(true) {
            // A transactional.id asks for idempotence as explicitly as the setting does.
            let explicit = self.enable_idempotence == Some(true) || self.transactional_id.is_some();
            if explicit && self.retries == 0 {
                return Err((
                    "retries",
                    "Must set retries to non-zero when using the idempotent producer.".into(),
                ));
            }
            if explicit && self.acks != Acks::All {
                return Err((
                    "acks",
                    "Must set acks to all in order to use the idempotent producer. \
                     Otherwise we cannot guarantee idempotence."
                        .into(),
                ));
            }
            if self.max_in_flight_requests_per_connection
                > MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE
            {
                return Err((
                    "max.in.flight.requests.per.connection",
                    format!(
                        "To use the idempotent producer, max.in.flight.requests.per.connection \
                         must be set to at most 5. Current value is {}.",
                        self.max_in_flight_requests_per_connection
                    ),
                ));
            }
        }
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms {
            return Err((
                "delivery.timeout.ms",
                format!(
                    "delivery.timeout.ms should be equal to or larger than linger.ms + \
                     request.timeout.ms ({} < {} + {})",
                    self.delivery_timeout_ms, self.linger_ms, self.request_timeout_ms
                ),
            ));
        }
        if !self.compression_type.is_supported() {
            let supported: Vec<&str> = CompressionType::ALL
                .iter()
                .filter(|c| c.is_supported())
                .map(|c| c.name())
                .collect();
            return Err((
                "compression.type",
                format!(
                    "compression.type {} is Kafka's but not implemented in kafkasim yet \
                     (supported: {})",
                    self.compression_type.name(),
                    supported.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Kafka's `MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE`.
pub const MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE: u32 = 5;

/// `auto.offset.reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoOffsetReset {
    /// Start from the log start offset.
    Earliest,
    /// Start from the end (the HW, or the LSO for `read_committed`).
    Latest,
    /// Fail with `NoOffsetForPartitionException` / `OffsetOutOfRangeException`.
    None,
}

/// Consumer settings (`ConsumerConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// `auto.offset.reset` (default latest).
    #[serde(rename = "auto.offset.reset")]
    pub auto_offset_reset: AutoOffsetReset,
    /// `isolation.level` (default read_uncommitted).
    #[serde(rename = "isolation.level")]
    pub isolation_level: IsolationLevel,
    /// `fetch.max.wait.ms` (default 500).
    #[serde(rename = "fetch.max.wait.ms")]
    pub fetch_max_wait_ms: u64,
    /// `fetch.min.bytes` (default 1).
    #[serde(rename = "fetch.min.bytes")]
    pub fetch_min_bytes: usize,
    /// `max.partition.fetch.bytes` (default 1048576).
    #[serde(rename = "max.partition.fetch.bytes")]
    pub max_partition_fetch_bytes: usize,
    /// `request.timeout.ms` (default 30000).
    #[serde(rename = "request.timeout.ms")]
    pub request_timeout_ms: u64,
    /// `retry.backoff.ms` (default 100).
    #[serde(rename = "retry.backoff.ms")]
    pub retry_backoff_ms: u64,
    /// `metadata.max.age.ms` (default 300000).
    #[serde(rename = "metadata.max.age.ms")]
    pub metadata_max_age_ms: u64,
    /// `group.id` (default none): needed for `subscribe` and commits.
    #[serde(rename = "group.id", skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `group.instance.id` (default none): makes the member static (KIP-345).
    #[serde(rename = "group.instance.id", skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (default 45000).
    #[serde(rename = "session.timeout.ms")]
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` (default 3000).
    #[serde(rename = "heartbeat.interval.ms")]
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms` (default 300000): also the group's rebalance timeout.
    #[serde(rename = "max.poll.interval.ms")]
    pub max_poll_interval_ms: u64,
    /// `max.poll.records` (default 500).
    #[serde(rename = "max.poll.records")]
    pub max_poll_records: usize,
    /// `enable.auto.commit` (default true). `None` when not set: Kafka then commits
    /// automatically only with a `group.id` (see [`ConsumerConfig::auto_commit`]).
    #[serde(rename = "enable.auto.commit", skip_serializing_if = "Option::is_none")]
    pub enable_auto_commit: Option<bool>,
    /// `auto.commit.interval.ms` (default 5000).
    #[serde(rename = "auto.commit.interval.ms")]
    pub auto_commit_interval_ms: u64,
    /// `default.api.timeout.ms` (default 60000): how long a commit may take.
    #[serde(rename = "default.api.timeout.ms")]
    pub default_api_timeout_ms: u64,
    /// `partition.assignment.strategy`: assignors in preference order, by name
    /// (`range`, `roundrobin`) or Kafka class name. Kafka 4.x's default is
    /// `[range, cooperative-sticky]`; kafkasim's consumer has only the eager protocol
    /// and no `CooperativeStickyAssignor`, so its default is `[range]`.
    #[serde(rename = "partition.assignment.strategy")]
    pub partition_assignment_strategy: Vec<Assignor>,
    /// `check.crcs` (default true): check the CRC-32C of every fetched batch; a
    /// corrupt one fails the poll (`CompletedFetch.maybeEnsureValid`).
    #[serde(rename = "check.crcs", skip_serializing_if = "is_true")]
    pub check_crcs: bool,
}

/// For `skip_serializing_if` on settings that default to true.
fn is_true(b: &bool) -> bool {
    *b
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            fetch_max_wait_ms: 500,
            fetch_min_bytes: 1,
            max_partition_fetch_bytes: 1_048_576,
            request_timeout_ms: 30_000,
            retry_backoff_ms: 100,
            metadata_max_age_ms: 300_000,
            group_id: None,
            group_instance_id: None,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            max_poll_records: 500,
            enable_auto_commit: None,
            auto_commit_interval_ms: 5_000,
            default_api_timeout_ms: 60_000,
            check_crcs: true,
            partition_assignment_strategy: vec![Assignor::Range],
        }
    }
}

impl ConsumerConfig {
    /// Whether offsets are committed automatically, after Kafka's
    /// `maybeOverrideEnableAutoCommit`: on by default, but off without a `group.id`.
    pub fn auto_commit(&self) -> bool {
        self.group_id.is_some() && self.enable_auto_commit.unwrap_or(true)
    }

    /// The checks `KafkaConsumer`'s constructor makes, with Kafka's own messages:
    /// `Err((property, message))` for a configuration Kafka would refuse.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        at_least_1("max.poll.records", self.max_poll_records as u64)?;
        at_least_1("max.poll.interval.ms", self.max_poll_interval_ms)?;
        if self.group_id.is_none() && self.enable_auto_commit == Some(true) {
            return Err((
                "enable.auto.commit",
                "enable.auto.commit cannot be set to true when default group id (null) is used."
                    .into(),
            ));
        }
        if self.group_instance_id.as_deref() == Some("") {
            return Err((
                "group.instance.id",
                "Group instance id must be non-empty string".into(),
            ));
        }
        if self.group_id.is_some() && self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err((
                "heartbeat.interval.ms",
                "Heartbeat must be set lower than the session timeout".into(),
            ));
        }
        if self.partition_assignment_strategy.is_empty() {
            return Err((
                "partition.assignment.strategy",
                "Invalid value [] for configuration partition.assignment.strategy: \
                 at least one assignor is needed"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn ser_acks<S: Serializer>(acks: &Acks, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    })
}

fn acks_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "`acks`: \"all\" (or -1), 1 or 0, as a number or a string.",
        "enum": ["all", "-1", "1", "0", -1, 1, 0]
    })
}

fn de_acks<'de, D: Deserializer<'de>>(d: D) -> Result<Acks, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Str(String),
    }
    let bad = |shown: String| {
        serde::de::Error::custom(format!(
            "invalid value {shown} for `acks`; allowed: \"all\", \"-1\", \"1\", \"0\""
        ))
    };
    match Raw::deserialize(d)? {
        Raw::Int(-1) => Ok(Acks::All),
        Raw::Int(1) => Ok(Acks::Leader),
        Raw::Int(0) => Ok(Acks::None),
        Raw::Int(n) => Err(bad(n.to_string())),
        Raw::Str(s) => match s.as_str() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            _ => Err(bad(format!("\"{s}\""))),
        },
    }
}

/// A partition assignor, named as in `partition.assignment.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assignor {
    /// `org.apache.kafka.clients.consumer.RangeAssignor` ("range").
    Range,
    /// `org.apache.kafka.clients.consumer.RoundRobinAssignor` ("roundrobin").
    RoundRobin,
}

impl Assignor {
    /// Every implemented assignor.
    pub const ALL: [Assignor; 2] = [Assignor::Range, Assignor::RoundRobin];

    /// The protocol name sent in `JoinGroup` (`ConsumerPartitionAssignor.name()`).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// Kafka's class name for the assignor.
    pub fn class_name(self) -> &'static str {
        match self {
            Assignor::Range => "org.apache.kafka.clients.consumer.RangeAssignor",
            Assignor::RoundRobin => "org.apache.kafka.clients.consumer.RoundRobinAssignor",
        }
    }

    /// The assignor called `name` (its protocol name or its Kafka class name).
    pub fn from_name(name: &str) -> Option<Assignor> {
        Assignor::ALL
            .into_iter()
            .find(|a| a.name() == name || a.class_name() == name)
    }
}

impl Serialize for Assignor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl schemars::JsonSchema for Assignor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Assignor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Assignor::ALL
            .iter()
            .flat_map(|a| [a.name(), a.class_name()])
            .collect();
        schemars::json_schema!({
            "description": "A partition assignor: its protocol name or Kafka's class name.",
            "enum": names
        })
    }
}

impl<'de> Deserialize<'de> for Assignor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Assignor::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = Assignor::ALL.iter().map(|a| a.name()).collect();
            let hint = if name == "cooperative-sticky"
                || name == "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
            {
                " (Kafka's, but kafkasim's consumer has only the eager protocol)"
            } else {
                ""
            };
            serde::de::Error::custom(format!(
                "Invalid value {name} for configuration partition.assignment.strategy: \
                 Class {name} could not be found{hint}; allowed: {}",
                known.join(", ")
            ))
        })
    }
}

/// The producer's `acks` setting.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: no response at all.
    None,
    /// `acks=1`: the leader's local append.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica, and at least `min.insync.replicas`.
    All,
}

/// The consumer's `isolation.level`.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Read up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Read up to the last stable offset.
    ReadCommitted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_configs_are_validated_with_kafkas_messages() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
        let refused = |c: BrokerConfig| c.validate().expect_err("refused");
        assert_eq!(
            refused(BrokerConfig {
                transaction_version: 3,
                ..BrokerConfig::default()
            }),
            (
                "transaction.version",
                "No feature:transaction.version with feature level 3 (supported levels: 0 to 2)"
                    .to_string()
            )
        );
        assert_eq!(
            refused(BrokerConfig {
                log_roll_ms: Some(0),
                ..BrokerConfig::default()
            }),
            (
                "log.roll.ms",
                "Invalid value 0 for configuration log.roll.ms: Value must be at least 1"
                    .to_string()
            )
        );
        assert_eq!(
            BrokerConfig {
                log_roll_hours: 2,
                ..BrokerConfig::default()
            }
            .segment_ms(),
            7_200_000,
            "log.roll.hours when log.roll.ms is not set"
        );
        assert_eq!(
            refused(BrokerConfig {
                transaction_state_log_min_isr: 0,
                ..BrokerConfig::default()
            }),
            (
                "transaction.state.log.min.isr",
                "Invalid value 0 for configuration transaction.state.log.min.isr: Value must be \
                 at least 1"
                    .to_string()
            )
        );
        assert_eq!(
            refused(BrokerConfig {
                transaction_max_timeout_ms: 1 << 31,
                ..BrokerConfig::default()
            }),
            (
                "transaction.max.timeout.ms",
                "Invalid value 2147483648 for configuration transaction.max.timeout.ms: Not a \
                 number of type INT"
                    .to_string()
            )
        );
        for (name, c) in [
            (
                "transaction.state.log.num.partitions",
                BrokerConfig {
                    transaction_state_log_num_partitions: 0,
                    ..BrokerConfig::default()
                },
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                BrokerConfig {
                    transaction_abort_timed_out_transaction_cleanup_interval_ms: 0,
                    ..BrokerConfig::default()
                },
            ),
        ] {
            assert_eq!(refused(c).0, name);
        }
    }
}
