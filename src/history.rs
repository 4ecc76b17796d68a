//! The history: every client operation and every fault, as plain data.
//!
//! Jepsen's shape: each operation has an invocation time, a completion time and an
//! outcome (`ok`, `fail`, or `info` when the outcome is unknown). The history is what
//! the checker reads and what `history.jsonl` stores, one entry per line.

use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{ErrorCode, NodeId, Offset, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A value written by the workload: unique over the whole run.
pub type Value = u64;

/// A transaction of the run: unique over the whole run (the transactional client's
/// index in the high 32 bits, its transaction counter in the low ones).
pub type TxnId = u64;

/// The outcome of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Outcome {
    /// Definitely happened (for a send: acknowledged by the broker, or sent with `acks=0`).
    Ok,
    /// Definitely did not happen.
    Fail {
        /// Kafka's error name, or a client-side reason such as `delivery.timeout.ms`.
        error: String,
    },
    /// May or may not have happened: a timeout, a lost connection, an error after which
    /// the write may still commit (KAFKA-13574), or still pending when the run ended.
    Info {
        /// Why the outcome is unknown.
        reason: String,
    },
}

/// Which client-side timeout ended a send (Kafka throws a `TimeoutException` for all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendTimeout {
    /// `send()` blocked for `max.block.ms` waiting for the topic's metadata
    /// (`KafkaProducer.waitOnMetadata`); the record never reached the accumulator.
    BlockedOnMetadata,
    /// `send()` blocked for `max.block.ms` waiting for buffer memory
    /// (`BufferPool.allocate`); the record never reached the accumulator.
    BlockedOnMemory,
    /// The record's batch expired at `delivery.timeout.ms` (`RecordAccumulator.
    /// expiredBatches` for a batch in the accumulator, `Sender.getExpiredInflightBatches`
    /// for one in flight): `send()` had returned long before.
    Expired,
}

impl SendTimeout {
    /// Whether `send()` itself blocked (and then failed).
    pub fn blocked(self) -> bool {
        matches!(self, Self::BlockedOnMetadata | Self::BlockedOnMemory)
    }
}

/// A record's headers (record batch v2, KIP-82): (key, value or null), in order.
pub type Headers = Vec<(String, Option<String>)>;

/// One record as a consumer saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadRecord {
    /// Its offset.
    pub offset: Offset,
    /// Its key, if any.
    pub key: Option<String>,
    /// Its value.
    pub value: Value,
    /// Its headers (KIP-82), as decoded from the fetched batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Headers,
}

/// What happened, one variant per operation or event kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "f")]
pub enum Op {
    /// A producer `send` of one record.
    Send {
        /// The record's key.
        key: Option<String>,
        /// The record's value.
        value: Value,
        /// The partition the partitioner chose.
        partition: TopicPartition,
        /// The offset the broker assigned, when acknowledged with one.
        offset: Option<Offset>,
        /// How many times the batch was sent (1 = no retry).
        attempts: u32,
        /// The transaction the record was sent in (see [`Op::EndTxn`]), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        txn: Option<TxnId>,
        /// For a send that failed (or became indefinite) on a client-side timeout,
        /// which timeout it was: `send()` blocking for `max.block.ms`, or the batch
        /// expiring at `delivery.timeout.ms`. Kafka raises a `TimeoutException` for
        /// each; only this field tells them apart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<SendTimeout>,
        /// The record's headers (KIP-82), as handed to `send`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Headers,
        /// The record's CreateTime when the producer's wall clock was not true time at
        /// the send (see [`Entry::create_time`]); absent, it is the send's invoke time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<i64>,
    },
    /// A consumer `poll` that returned records of one partition.
    Poll {
        /// The partition.
        partition: TopicPartition,
        /// Records in the order returned.
        records: Vec<ReadRecord>,
        /// The high watermark in the fetch response that carried them.
        high_watermark: Offset,
        /// Whether the consumer reads with `isolation.level=read_committed` (up to the
        /// last stable offset, without aborted records).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        read_committed: bool,
    },
    /// The consumer moved its position other than by consuming (reset or seek).
    Seek {
        /// The partition.
        partition: TopicPartition,
        /// The new position.
        offset: Offset,
        /// Why: `auto.offset.reset=earliest`, `OFFSET_OUT_OF_RANGE`, ...
        reason: String,
    },
    /// A consumer observed a fetch response's high watermark (only recorded when it
    /// differs from the last one seen for the partition).
    ObserveHighWatermark {
        /// The partition.
        partition: TopicPartition,
        /// The high watermark.
        high_watermark: Offset,
        /// The last stable offset in the same response (recorded by `read_committed`
        /// consumers, which stop there).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_stable_offset: Option<Offset>,
        /// The broker that answered.
        broker: NodeId,
    },
    /// A power loss took a partition log's unflushed tail (recorded as the broker's,
    /// by the host): the log end offset the process had, the one on the platter, and
    /// whether the first lost batch was torn.
    LogPowerLoss {
        /// The partition.
        partition: TopicPartition,
        /// The log end offset before.
        log_end_offset: Offset,
        /// The log end offset on the platter.
        durable_end_offset: Offset,
        /// Whether part of the next batch reached the platter (a torn write).
        torn: bool,
    },
    /// A bit flipped in a batch on a broker's disk (the `corrupt` fault; recorded as
    /// the broker's, by the host).
    LogCorrupted {
        /// The partition.
        partition: TopicPartition,
        /// The batch's first offset.
        base_offset: Offset,
        /// Its last offset.
        last_offset: Offset,
        /// The byte flipped, from the batch's start.
        byte: u64,
        /// The bit flipped in it.
        bit: u8,
    },
    /// A broker's log directory went offline (Kafka's `LogDirFailureChannel`): a write
    /// failed with an I/O error (`No space left on device` on a full disk), or the disk
    /// failed under it (the `log-dir-failure` fault). It is the broker's only log
    /// directory, which holds the metadata log too, so the broker halts
    /// (`Exit.halt(1)`: a process death). Recorded as the broker's.
    LogDirFailure {
        /// What failed, as Kafka's log line would say it.
        error: String,
    },
    /// Recovery at startup (Kafka's `LogLoader`) truncated a partition log: it
    /// validated from the checkpointed recovery point `from` and cut the log at
    /// `log_end_offset`.
    LogRecovered {
        /// The partition.
        partition: TopicPartition,
        /// The recovery point it validated from.
        from: Offset,
        /// The log end offset after recovery.
        log_end_offset: Offset,
        /// What it found invalid.
        reason: String,
    },
    /// A replica's log start offset moved up (recorded by its broker): retention deleted
    /// its oldest segments (`segment-deletion`), a leader served `DeleteRecords`
    /// (`client-record-deletion`), a follower copied its leader's
    /// (`leader-offset-incremented`), or a follower whose log ended below its leader's
    /// start began again there (`truncate-fully`). Acknowledged records below it are
    /// gone by design, not lost.
    LogStartOffsetIncremented {
        /// The partition.
        partition: TopicPartition,
        /// The new log start offset.
        log_start_offset: Offset,
        /// Why it moved.
        reason: String,
    },
    /// A fault began (the nemesis).
    FaultStart {
        /// What the fault is, in words (`isolate broker-2`).
        fault: String,
    },
    /// A fault ended.
    FaultEnd {
        /// What the fault was.
        fault: String,
    },
    /// `beginTransaction`: a transactional producer opened transaction `txn` (recorded at
    /// once; the transaction's sends carry `txn`).
    BeginTxn {
        /// `transactional.id`.
        transactional_id: String,
        /// The transaction.
        txn: TxnId,
        /// The producer id it runs under.
        producer_id: i64,
        /// The producer epoch it runs under.
        producer_epoch: i16,
    },
    /// The end of a transaction as its producer saw it: `commitTransaction` (`commit`)
    /// or `abortTransaction`. Outcome `ok`: done as asked; `fail`: certainly not
    /// committed (aborted, or fenced before any attempt could commit it); `info`: unknown.
    EndTxn {
        /// `transactional.id`.
        transactional_id: String,
        /// The transaction, as its sends name it.
        txn: TxnId,
        /// The producer id.
        producer_id: i64,
        /// The producer epoch the transaction ran in.
        producer_epoch: i16,
        /// Commit (true) or abort.
        commit: bool,
        /// The partitions it wrote to.
        partitions: Vec<TopicPartition>,
        /// The consumer group whose offsets it committed (`sendOffsetsToTransaction`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// Those offsets (the next offset to consume).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// The transaction coordinator moved a `transactional.id` to a new state (recorded by
    /// the broker hosting it once the state is in `__transaction_state`, or at once for
    /// the in-memory `PrepareEpochFence`).
    TxnState {
        /// `transactional.id`.
        transactional_id: String,
        /// The producer id.
        producer_id: i64,
        /// The producer epoch.
        producer_epoch: i16,
        /// Kafka's state name it left (`Empty`, `Ongoing`, `PrepareCommit`, ...).
        from: String,
        /// The state it entered.
        to: String,
    },
    /// A transaction coordinator loaded a transaction prepared (`PrepareCommit` or
    /// `PrepareAbort`) by a record above its `__transaction_state` partition's high
    /// watermark, while its broker was not yet unfenced: a process restarted before its
    /// old broker session expired, whose closed listeners let no follower copy that
    /// record. It writes the markers of a decision no other replica has (Kafka's
    /// `TransactionStateManager.loadTransactionMetadata` reads to `LOG_END`), and the
    /// replica that leads the partition after the controller fences this broker may
    /// end the transaction the other way. Recorded by that broker.
    TxnLoadedUnreplicated {
        /// `transactional.id`.
        transactional_id: String,
        /// The producer id.
        producer_id: i64,
        /// The producer epoch.
        producer_epoch: i16,
        /// `PrepareCommit` or `PrepareAbort`.
        state: String,
        /// The `__transaction_state` partition.
        partition: TopicPartition,
        /// Its high watermark on this broker when loaded.
        high_watermark: Offset,
        /// Its log end offset on this broker when loaded.
        log_end_offset: Offset,
    },
    /// A consumer's `offsetsForTimes` lookup of one partition (`ListOffsets` by
    /// timestamp): the earliest offset whose record timestamp is at or after `timestamp`.
    OffsetsForTimes {
        /// The partition.
        partition: TopicPartition,
        /// The timestamp looked up (ms, CreateTime).
        timestamp: i64,
        /// The offset found (`None`: no record that late).
        offset: Option<Offset>,
        /// The timestamp of what is at that offset.
        found_timestamp: Option<i64>,
    },
    /// A producer's totals at the end of the run (Kafka's producer metrics).
    ProducerMetrics(ProducerMetrics),
    /// A group member's application processed one record: its side effect went to
    /// `sink` (Jepsen-style: the effect is the observation).
    Processed {
        /// `group.id`.
        group: String,
        /// The member id at the time.
        member: String,
        /// The member's generation at the time.
        generation: i32,
        /// The record's partition.
        partition: TopicPartition,
        /// The record's offset.
        offset: Offset,
        /// The record's value.
        value: Value,
        /// Where the effect went.
        sink: Sink,
    },
    /// A group member's new assignment after a rebalance (eager: everything it owned
    /// before was revoked).
    Assigned {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// The generation the assignment belongs to.
        generation: i32,
        /// The partitions assigned.
        partitions: Vec<TopicPartition>,
    },
    /// A commit of a group member (`commitSync`, an auto-commit, or the commit before a
    /// rebalance). Outcome `ok` when the coordinator accepted it: the entry is then the
    /// accepted `OffsetCommit` (invoked when that attempt was sent); `fail` with Kafka's
    /// exception otherwise (invoked when the commit was asked for).
    Committed {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// The generation the commit carried.
        generation: i32,
        /// The committed positions (the next offset to consume).
        offsets: Vec<(TopicPartition, Offset)>,
    },
    /// An `OffsetFetch` of a group member for its newly assigned partitions: invoked
    /// when sent, completed when answered (a read of the committed offsets).
    FetchCommitted {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// The generation the member was in.
        generation: i32,
        /// Each partition's committed offset (`None`: the group had none).
        offsets: Vec<(TopicPartition, Option<Offset>)>,
    },
    /// A group member left or lost its membership (`max.poll.interval.ms` expired,
    /// fenced by another instance, closed).
    MemberEvent {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// What happened, in words.
        event: String,
    },
    /// The group coordinator began a rebalance (Kafka's `prepareRebalance`), recorded by
    /// the broker hosting it.
    PrepareRebalance {
        /// `group.id`.
        group: String,
        /// The generation the group leaves (the next one is `generation + 1`).
        generation: i32,
        /// What triggered it.
        cause: RebalanceCause,
        /// Kafka's log line for it (`removing member X on heartbeat expiration`).
        reason: String,
    },
    /// A leader or ISR change applied by the controller.
    PartitionChange {
        /// The partition.
        partition: TopicPartition,
        /// The new leader, if any.
        leader: Option<u32>,
        /// The new leader epoch.
        leader_epoch: i32,
        /// The new ISR.
        isr: Vec<u32>,
        /// The new eligible leader replicas (KIP-966; empty when the feature is off).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        elr: Vec<u32>,
        /// Whether the election was unclean.
        unclean: bool,
    },
}

/// Why a group coordinator began a rebalance, one variant per trigger in Kafka's
/// `GroupCoordinator`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RebalanceCause {
    /// A new member joined (`Adding new member ...`).
    MemberJoined,
    /// A known member joined again, e.g. after a failed rebalance or a metadata change
    /// (`Updating metadata for member ...`).
    MemberRejoined,
    /// A static member restarted with a changed subscription or into an unstable group.
    StaticMemberReplaced,
    /// A member sent `LeaveGroup` (`Removing member ... on LeaveGroup`).
    MemberLeft,
    /// A member's session expired (`removing member ... on heartbeat expiration`).
    SessionExpired,
    /// The group's assignment could not be stored in `__consumer_offsets`.
    AssignmentNotStored,
}

impl RebalanceCause {
    /// The cause's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            RebalanceCause::MemberJoined => "member-joined",
            RebalanceCause::MemberRejoined => "member-rejoined",
            RebalanceCause::StaticMemberReplaced => "static-member-replaced",
            RebalanceCause::MemberLeft => "member-left",
            RebalanceCause::SessionExpired => "session-expired",
            RebalanceCause::AssignmentNotStored => "assignment-not-stored",
        }
    }
}

/// Where a consumer application puts the effect of processing a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sink {
    /// A store that saves each record's id atomically with its result: a record
    /// processed again has no second effect (C13).
    DedupStore,
    /// A non-idempotent external API: every call is an effect.
    ExternalApi,
    /// No effect outside Kafka: the record's output goes to a pipeline's output topic
    /// (committed with it in exactly-once mode).
    KafkaOutput,
}

/// A producer's counters, named after Kafka's producer metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProducerMetrics {
    /// Batches sent at least once (`batch-size-avg` = `batch_bytes / batches`).
    pub batches: u64,
    /// Records in those batches (`records-per-request-avg` counts per request).
    pub records: u64,
    /// Encoded (compressed) bytes of those batches.
    pub batch_bytes: u64,
    /// The same batches' bytes before compression (`compression-rate-avg` =
    /// `batch_bytes / uncompressed_bytes`).
    pub uncompressed_bytes: u64,
    /// `Produce` requests sent (`request-total`).
    pub requests: u64,
    /// Batch bytes sent over all attempts (`outgoing-byte-total`, without headers).
    pub outgoing_bytes: u64,
    /// Batches re-queued for a retry (`record-retry-total` counts records).
    pub retried_batches: u64,
    /// Sends that had to wait for buffer memory (`buffer-exhausted-total` counts the
    /// ones that gave up).
    pub blocked_on_memory: u64,
    /// Local epoch bumps of the idempotent producer (KIP-360).
    pub epoch_bumps: u64,
}

/// The version of the `history.jsonl` format: each line's `v`
/// (`schemas/history.schema.json`). A change that an older reader would misread (a
/// field renamed, removed or given another meaning) takes the next version; new fields
/// with defaults do not.
pub const HISTORY_VERSION: u32 = 1;

fn history_version() -> u32 {
    HISTORY_VERSION
}

/// One line of `history.jsonl`: the format's version and an entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub struct HistoryLine {
    /// The format's version: `HISTORY_VERSION`, 1 (a line without it is read as 1).
    #[serde(default = "history_version")]
    #[schemars(range(min = 1, max = 1))]
    pub v: u32,
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    /// Position in the history, from 0.
    pub index: u64,
    /// The process that performed it.
    pub process: NodeId,
    /// Simulated time of the invocation (ms).
    pub invoke_ms: Millis,
    /// Simulated time of the completion (ms); `None` if it never completed.
    pub complete_ms: Option<Millis>,
    /// The outcome.
    pub outcome: Outcome,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

impl Entry {
    /// A send's record timestamp (CreateTime): the one recorded when the producer's
    /// wall clock was not true time, else its invoke time on the true clock
    /// (`RECORD_TIMESTAMP_BASE` + `invoke_ms`). `None` for other operations.
    pub fn create_time(&self) -> Option<i64> {
        match &self.op {
            Op::Send { timestamp, .. } => Some(
                timestamp
                    .unwrap_or(crate::kafka::record::RECORD_TIMESTAMP_BASE + self.invoke_ms as i64),
            ),
            _ => None,
        }
    }

    /// An entry for an event that happened at one instant (index assigned on record).
    pub fn instant(process: NodeId, now: Millis, op: Op) -> Entry {
        Entry {
            index: 0,
            process,
            invoke_ms: now,
            complete_ms: Some(now),
            outcome: Outcome::Ok,
            op,
        }
    }
}

/// Kafka error to outcome for a produce: which errors leave a write indefinite.
///
/// `NOT_ENOUGH_REPLICAS` and the idempotence checks (`OUT_OF_ORDER_SEQUENCE_NUMBER`,
/// `UNKNOWN_PRODUCER_ID`, `INVALID_PRODUCER_EPOCH`) say "not appended";
/// everything else after the request left the client may have been appended
/// (timeouts, lost connections, `NOT_LEADER_OR_FOLLOWER`, `..._AFTER_APPEND`).
pub fn produce_error_outcome(error: ErrorCode) -> Outcome {
    match error {
        ErrorCode::None => Outcome::Ok,
        ErrorCode::NotEnoughReplicas
        | ErrorCode::OutOfOrderSequenceNumber
        | ErrorCode::UnknownProducerId
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::InvalidRequest
        | ErrorCode::CorruptMessage
        | ErrorCode::UnknownTopicOrPartition => Outcome::Fail {
            error: error.name().to_string(),
        },
        other => Outcome::Info {
            reason: other.name().to_string(),
        },
    }
}

/// The whole history of a run, in the order entries were recorded.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// The entries, `entries[i].index == i`.
    pub entries: Vec<Entry>,
}

impl History {
    /// Appends an entry, assigning its index.
    pub fn push(&mut self, mut entry: Entry) {
        entry.index = self.entries.len() as u64;
        self.entries.push(entry);
    }

    /// Writes the history as JSON Lines: a [`HistoryLine`] per entry (`{"v":1,...}`).
    pub fn to_jsonl(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            let json = serde_json::to_string(e).expect("history entries serialize");
            // `json` is an object: `{"index":...}`; the version goes first.
            s.push_str(&format!("{{\"v\":{HISTORY_VERSION},"));
            s.push_str(&json[1..]);
            s.push('\n');
        }
        s
    }

    /// Reads a history from JSON Lines.
    pub fn from_jsonl(text: &str) -> Result<History, serde_json::Error> {
        let mut h = History::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let line: HistoryLine = serde_json::from_str(line)?;
            h.entries.push(line.entry);
        }
        Ok(h)
    }
}

/// White-box state of one replica at the end of a run (for the checker).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicaSnapshot {
    /// The broker holding the replica.
    pub broker: u32,
    /// Its log end offset.
    pub log_end_offset: Offset,
    /// Its high watermark.
    pub high_watermark: Offset,
    /// Every record in its log: (offset, value).
    pub records: Vec<(Offset, Value)>,
    /// Its last stable offset (the high watermark when no transaction is open).
    #[serde(default)]
    pub last_stable_offset: Offset,
    /// Every transaction marker (control record) in its log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markers: Vec<MarkerSnapshot>,
    /// Every transactional data batch in its log (offset range and producer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txn_batches: Vec<TxnBatchSnapshot>,
    /// The offset ranges (first, last) of batches in its log whose CRC-32C fails (bits
    /// flipped on its disk): their records are there but unreadable, and not in
    /// `records`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt: Vec<(Offset, Offset)>,
}

impl ReplicaSnapshot {
    /// Whether `offset` is in one of its corrupt batches.
    pub fn corrupt_at(&self, offset: Offset) -> bool {
        self.corrupt
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&offset))
    }
}

/// A transactional data batch in a replica's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TxnBatchSnapshot {
    /// Its first offset.
    pub base_offset: Offset,
    /// Its last offset.
    pub last_offset: Offset,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch it was written with.
    pub producer_epoch: i16,
}

/// A transaction marker in a replica's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MarkerSnapshot {
    /// Its offset.
    pub offset: Offset,
    /// The producer whose transaction it ends.
    pub producer_id: i64,
    /// The producer epoch it was written with.
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT.
    pub committed: bool,
    /// Its timestamp (the coordinator's clock when it wrote it).
    pub timestamp: i64,
}

/// White-box state of one partition at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PartitionSnapshot {
    /// The partition.
    pub partition: TopicPartition,
    /// The controller's leader, if any.
    pub leader: Option<u32>,
    /// The controller's ISR.
    pub isr: Vec<u32>,
    /// Every replica's state, by broker id.
    pub replicas: Vec<ReplicaSnapshot>,
}

/// White-box state at the end of a run, taken after the quiet period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Snapshot {
    /// Every partition of every workload topic.
    pub partitions: Vec<PartitionSnapshot>,
    /// Each consumer's final position per partition: (consumer index, partition, position).
    pub consumer_positions: Vec<(u32, TopicPartition, Offset)>,
    /// Each group's committed offsets as its coordinator holds them: (group, partition,
    /// offset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed_offsets: Vec<(String, TopicPartition, Offset)>,
    /// Each group as its coordinator holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSnapshot>,
    /// When the snapshot was taken (ms; 0: unknown).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub end_ms: u64,
    /// How long Kafka lets a transaction stay open before its coordinator aborts it:
    /// the longest `transaction.timeout.ms` of the run's transactional producers plus
    /// the coordinators' `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    /// (0: unknown, every open transaction counts as hanging).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub transaction_abort_after_ms: u64,
    /// The `retention.ms` of each workload topic kept by time only (no
    /// `retention.bytes`), recorded when some node's wall clock is not true time: the
    /// checker then judges time-based deletions in true time (empty otherwise).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_retention_ms: BTreeMap<String, i64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// White-box state of one consumer group at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupSnapshot {
    /// `group.id`.
    pub group: String,
    /// Kafka's group state (`Stable`, `PreparingRebalance`, ...).
    pub state: String,
    /// The generation.
    pub generation: i32,
    /// Each member's id and assigned partitions.
    pub members: Vec<(String, Vec<TopicPartition>)>,
}

// ---------------------------------------------------------------- value encoding

/// A value's producer and position in its send order.
pub fn make_value(producer: u32, counter: u64) -> Value {
    assert!(counter < 1 << 32, "value counter overflow");
    assert!(producer < 1 << 16, "producer index overflow");
    (u64::from(producer) << 32) | counter
}

/// The bit that marks a read-process-write pipeline's output value.
const OUTPUT_BIT: Value = 1 << 60;

/// The value a pipeline writes for input value `input` (the transformation is the
/// identity plus a mark, so the checker maps every output back to its input).
pub fn output_value(input: Value) -> Value {
    assert!(
        input & OUTPUT_BIT == 0,
        "value {input} is already an output"
    );
    input | OUTPUT_BIT
}

/// The input value an output value was made from (`None` for a producer's own value).
pub fn input_of(value: Value) -> Option<Value> {
    (value & OUTPUT_BIT != 0).then_some(value & !OUTPUT_BIT)
}

/// The `n` headers (KIP-82) the workload gives the record holding `value`: `h0`,
/// `h1`, ... with values `<value>.0`, `<value>.1`, ..., the last one null when there
/// are two or more (a null header value is legal, `RecordHeader`). Derived from the
/// value so that a header delivered with the wrong record differs.
pub fn headers_for(value: Value, n: u32) -> Headers {
    (0..n)
        .map(|i| {
            let v = (n < 2 || i + 1 < n).then(|| format!("{value}.{i}"));
            (format!("h{i}"), v)
        })
        .collect()
}

/// The partition reported for a record that was never partitioned (its topic's
/// partition count never became known): Kafka's `RecordMetadata.UNKNOWN_PARTITION`
/// (-1), as a `u32`.
pub const UNKNOWN_PARTITION: u32 = u32::MAX;
