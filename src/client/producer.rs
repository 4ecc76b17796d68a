//! The producer client: Kafka's `KafkaProducer`, `RecordAccumulator` and `Sender` as a
//! sans-IO state machine.
//!
//! [`Producer::send`] partitions a record and appends it to the `RecordAccumulator`
//! (one deque of batches per partition, the last one open). After every input the
//! sender step runs, as Kafka's `Sender.runOnce` does: it fails timed-out requests
//! (disconnecting the broker, as `NetworkClient` does), expires batches past
//! `delivery.timeout.ms`, drains ready batches into one `Produce` request per leader
//! while that leader has fewer than `max.in.flight.requests.per.connection` requests in
//! flight, and sends a `Metadata` request when a refresh is due.
//!
//! Every record ends in exactly one history entry ([`Op::Send`]) whose outcome follows
//! the rule the checker relies on: `ok` only on `NONE`, `fail` only when no attempt of
//! the batch can have been appended, `info` otherwise.
//!
//! The module also holds the two pieces both clients share, `NetworkClient` (in-flight
//! requests with deadlines) and `MetadataCache` (leaders and partition counts).

use crate::actor::{Actor, Channel, Outbox, WallClock};
use crate::bugs::{Bug, Bugs};
use crate::client::network::{self, InFlightRequest, MetadataCache, NetworkClient};
use crate::client::partitioner::{partition_for_key, StickyPartitioner};
use crate::client::transaction_manager::TransactionManager;
use crate::client::txn_client::{
    GroupMetadata, TxnClient, TxnClientState, TxnDestination, TxnEffect, TxnEvent, TxnRequestKind,
    TxnResult,
};
use crate::history::UNKNOWN_PARTITION;
use crate::history::{
    produce_error_outcome, Entry, Headers, Op, Outcome, ProducerMetrics, SendTimeout, TxnId, Value,
};
use crate::kafka::config::Acks;
use crate::kafka::config::ProducerConfig;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    BrokerId, CommittedOffset, ErrorCode, InitProducerIdRequest, Message, NodeId, Offset,
    ProduceRequest, ProduceResponse, ProducerIdentity, Request, Response, TopicPartition,
};
use crate::kafka::record::RECORD_TIMESTAMP_BASE;
use crate::kafka::record::{CompressionType, Record, RecordBatch, BATCH_HEADER_SIZE};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

mod accumulator;
use accumulator::*;

/// The correlation ids of a producer that shares its process with a consumer (a
/// pipeline) start here.
pub const PIPELINE_PRODUCER_CORRELATION_BASE: u64 = 1 << 52;

/// Kafka's default `max.request.size` (not configurable here): a drain stops adding
/// batches to a request once they would exceed it (one batch always fits).
const MAX_REQUEST_SIZE: usize = 1_048_576;

/// Sanity bound on records waiting for an outcome (`buffer.memory` bounds batches,
/// not blocked sends).
const MAX_PENDING_RECORDS: usize = 1 << 20;

/// Kafka's `CommonClientConfigs.RETRY_BACKOFF_JITTER`: +/- 20%.
const RETRY_BACKOFF_JITTER: f64 = 0.2;

/// Kafka's `COMPRESSION_RATE_ESTIMATION_FACTOR`: head-room on the estimated ratio.
const COMPRESSION_RATE_ESTIMATION_FACTOR: f64 = 1.05;
/// `CompressionRatioEstimator`: steps when a batch compresses better or worse.
const COMPRESSION_RATIO_IMPROVING_STEP: f64 = 0.005;
const COMPRESSION_RATIO_DETERIORATE_STEP: f64 = 0.05;

// ---------------------------------------------------------------- records and batches

/// A record handed to [`Producer::send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The key: keyed records go to `partition_for_key(key)`, keyless ones to the
    /// sticky partition.
    pub key: Option<String>,
    /// The value, written as its decimal ASCII.
    pub value: Value,
    /// Headers (KIP-82), written as UTF-8 keys and values.
    pub headers: Headers,
}

// ---------------------------------------------------------------- Producer

/// What the producer needs to handle a response.
#[derive(Debug)]
enum ProducerRequest {
    /// A `Metadata` refresh.
    Metadata,
    /// An `InitProducerId` for the idempotent producer.
    InitProducerId,
    /// A request of the transactional protocol.
    Txn(TxnRequestKind),
    /// A `Produce`: one batch per partition; `None` once the batch expired in flight.
    Produce {
        batches: Vec<(TopicPartition, Option<ProducerBatch>)>,
    },
}

/// A `send` call that has not returned: the application thread waits in
/// `waitOnMetadata` or `BufferPool.allocate`, for at most `max.block.ms`.
#[derive(Debug)]
struct BlockedSend {
    topic: Arc<str>,
    record: PendingRecord,
    /// Once partitioned: the partition and the bytes of memory it waits for.
    memory: Option<(TopicPartition, usize)>,
}

impl BlockedSend {
    /// Its partition; `UNKNOWN_PARTITION` (-1 in Kafka's callbacks) while it waits for
    /// metadata.
    fn partition(&self) -> TopicPartition {
        self.memory.as_ref().map_or_else(
            || TopicPartition {
                topic: self.topic.clone(),
                partition: UNKNOWN_PARTITION,
            },
            |(tp, _)| tp.clone(),
        )
    }
}

/// Where a producer runs and what cluster it talks to.
#[derive(Clone, Copy, Debug)]
pub struct ProducerSetup {
    /// The process its history entries name.
    pub process: NodeId,
    /// The cluster's finalized `transaction.version` (Kafka's clients learn it from
    /// `ApiVersions`).
    pub transaction_version: u8,
    /// Where its correlation ids start.
    pub correlation_base: u64,
}

/// The open transaction of a transactional producer, for the history.
#[derive(Clone, Debug)]
struct OpenTxn {
    txn: TxnId,
    identity: ProducerIdentity,
    /// When `commitTransaction` / `abortTransaction` was called.
    ending_since: Option<Millis>,
}

/// A Kafka producer (`KafkaProducer` + `RecordAccumulator` + `Sender` + the
/// `TransactionManager`, idempotent and transactional), sans-IO.
pub struct Producer {
    process: NodeId,
    config: ProducerConfig,
    bugs: Bugs,
    rng: ChaCha8Rng,
    metadata: MetadataCache,
    net: NetworkClient<ProducerRequest>,
    accumulator: RecordAccumulator,
    sticky: StickyPartitioner,
    /// The idempotent producer's ids and sequences (`None` without idempotence).
    transactions: Option<TransactionManager>,
    /// The transactional client (`None` without `transactional.id`).
    txn: Option<TxnClient>,
    /// The transaction `beginTransaction` opened, until it ends.
    open_txn: Option<OpenTxn>,
    /// Transaction events for the application.
    txn_events: VecDeque<TxnEvent>,
    /// `send` calls still blocked, in call order.
    blocked: VecDeque<BlockedSend>,
    /// Records sent and not yet completed.
    pending: usize,
    /// Records completed with an outcome other than `Ok` since `take_unacknowledged`.
    unacknowledged: usize,
    metrics: ProducerMetrics,
    /// The latest time seen (timers are computed relative to it).
    now: Millis,
    /// Closed (`KafkaProducer.close`, a crash or the end of the run): the `Sender` has
    /// stopped, so the producer has no timers, sends nothing and ignores late answers.
    closed: bool,
    /// `KafkaProducer.close()` was called: finish what is under way, abort an open
    /// transaction, then close.
    closing: bool,
    /// The process's wall clock: record timestamps (CreateTime).
    clock: WallClock,
}

impl Producer {
    /// A producer with the given history index, configuration, bug switches, bootstrap
    /// brokers and random seed (backoff jitter, sticky partitions, first bootstrap
    /// broker), on a cluster of the latest `transaction.version`. The configuration must
    /// pass [`ProducerConfig::validate`].
    pub fn new(
        index: u32,
        config: ProducerConfig,
        bugs: Bugs,
        bootstrap: Vec<BrokerId>,
        seed: u64,
    ) -> Self {
        let setup = ProducerSetup {
            process: NodeId::Producer(index),
            transaction_version: 2,
            correlation_base: 0,
        };
        Self::with_setup(setup, config, bugs, bootstrap, seed)
    }

    /// A producer running as `setup.process` (a pipeline's producer shares its process
    /// with a consumer).
    pub fn with_setup(
        setup: ProducerSetup,
        config: ProducerConfig,
        bugs: Bugs,
        bootstrap: Vec<BrokerId>,
        seed: u64,
    ) -> Self {
        if let Err((property, message)) = config.validate() {
            panic!("invalid producer config {property}: {message}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        assert!(!bootstrap.is_empty(), "a producer needs bootstrap brokers");
        let first_node = rng.gen_range(0..bootstrap.len());
        let txn = config.transactional_id.as_deref().map(|id| {
            TxnClient::new(
                Arc::from(id),
                config.transaction_timeout_ms,
                setup.transaction_version >= 2,
                config.retry_backoff_ms,
            )
        });
        Producer {
            process: setup.process,
            metadata: MetadataCache::new(
                bootstrap,
                first_node,
                config.metadata_max_age_ms,
                config.retry_backoff_ms,
            ),
            net: NetworkClient::with_base(
                Channel::Producer,
                config.request_timeout_ms,
                setup.correlation_base,
            ),
            accumulator: RecordAccumulator::new(&config),
            sticky: StickyPartitioner::new(),
            transactions: config.idempotence().then(|| {
                if txn.is_some() {
                    TransactionManager::transactional()
                } else {
                    TransactionManager::new()
                }
            }),
            txn,
            open_txn: None,
            txn_events: VecDeque::new(),
            blocked: VecDeque::new(),
            pending: 0,
            unacknowledged: 0,
            metrics: ProducerMetrics::default(),
            now: 0,
            closed: false,
            closing: false,
            rng,
            bugs,
            config,
            clock: WallClock::default(),
        }
    }

    /// `KafkaProducer.send`: waits for the topic's metadata and for buffer memory (at
    /// most `max.block.ms`; see [`Producer::is_blocked`]), partitions the record and
    /// appends it to the accumulator. The invocation time is `now`.
    pub fn send(&mut self, now: Millis, record: ProducerRecord, out: &mut Outbox) {
        self.pending += 1;
        assert!(
            self.pending <= MAX_PENDING_RECORDS,
            "{} has more than {MAX_PENDING_RECORDS} records pending",
            self.process
        );
        if let Some(t) = &self.txn {
            assert!(
                t.can_commit() && self.open_txn.is_some(),
                "{}: send outside a transaction that can commit ({:?})",
                self.process,
                t.state()
            );
        }
        let pending = PendingRecord {
            key: record.key,
            value: record.value,
            invoke_ms: now,
            timestamp: self.clock.timestamp(now),
            txn: self.open_txn.as_ref().map(|t| t.txn),
            headers: record.headers,
        };
        self.metadata.add_topic(&record.topic);
        self.blocked.push_back(BlockedSend {
            topic: record.topic,
            record: pending,
            memory: None,
        });
        self.run(now, out);
    }

    /// Whether a `send` call has not returned yet (waiting for metadata or memory): a
    /// single-threaded application calls `send` again only after it returns.
    pub fn is_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Records still waiting for an outcome.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// How many records got an outcome other than `Ok` (failed, or unknown) since the
    /// last call; the count starts again at zero.
    pub fn take_unacknowledged(&mut self) -> usize {
        std::mem::take(&mut self.unacknowledged)
    }

    /// End of run: every unfinished record gets an `Outcome::Info{reason: "pending at end
    /// of run"}` entry with `complete_ms: None`; late responses are ignored afterwards.
    /// The producer's metrics are recorded last.
    pub fn finish(&mut self, now: Millis, out: &mut Outbox) {
        self.abandon(now, "pending at end of run", out);
    }

    /// The process crashed: every unfinished record (and a transaction's pending end)
    /// gets an `Outcome::Info{reason: "the process crashed"}` entry, as at the end of a
    /// run; the producer's metrics are recorded.
    pub fn crashed(&mut self, now: Millis, out: &mut Outbox) {
        self.abandon(now, "the process crashed", out);
    }

    fn abandon(&mut self, now: Millis, reason: &str, out: &mut Outbox) {
        if self.closed {
            return; // already closed: its outcomes and metrics are recorded
        }
        self.closed = true;
        self.now = now;
        let pending = Outcome::Info {
            reason: reason.to_string(),
        };
        for blocked in std::mem::take(&mut self.blocked) {
            let tp = blocked.partition();
            let completion = Completion {
                complete_ms: None,
                offset: None,
                attempts: 0,
                timeout: None,
            };
            self.record_outcome(&tp, blocked.record, completion, pending.clone(), out);
        }
        for batch in self.accumulator.take_all() {
            self.complete_batch(None, batch, None, pending.clone(), None, out);
        }
        for request in self.net.abandon_all() {
            if let ProducerRequest::Produce { batches } = request.kind {
                for batch in batches.into_iter().filter_map(|(_, b)| b) {
                    self.complete_batch(None, batch, None, pending.clone(), None, out);
                }
            }
        }
        self.accumulator.muted.clear();
        self.metadata.abandon();
        assert_eq!(self.pending, 0, "every record has an outcome after finish");
        assert_eq!(self.accumulator.buffer_used, 0, "buffer memory leaked");
        self.metrics.epoch_bumps = self.transactions.as_ref().map_or(0, |t| t.epoch_bumps());
        if let Some(open) = self.open_txn.take() {
            if let Some(since) = open.ending_since {
                // commitTransaction / abortTransaction had not returned.
                let commit = self
                    .txn
                    .as_ref()
                    .is_some_and(|t| *t.state() == TxnClientState::CommittingTransaction);
                let outcome = Outcome::Info {
                    reason: reason.to_string(),
                };
                self.record_end_txn(since, None, open, commit, outcome, out);
            }
        }
        out.record(Entry::instant(
            self.process,
            now,
            Op::ProducerMetrics(self.metrics.clone()),
        ));
    }

    // ------------------------------------------------------------ transactions

    /// `initTransactions`: the answer arrives as [`TxnEvent::Initialized`] (or a fatal
    /// [`TxnEvent::Ended`] never: a fatal error shows in [`Producer::txn_state`]).
    pub fn init_transactions(&mut self, now: Millis, out: &mut Outbox) {
        self.txn
            .as_mut()
            .expect("initTransactions needs a transactional.id")
            .init_transactions();
        self.run(now, out);
    }

    /// `beginTransaction`, naming the transaction `txn` in the history.
    pub fn begin_transaction(&mut self, now: Millis, txn: TxnId, out: &mut Outbox) {
        let t = self
            .txn
            .as_mut()
            .expect("beginTransaction needs a transactional.id");
        t.begin();
        let identity = self
            .transactions
            .as_ref()
            .expect("a transactional producer is idempotent")
            .identity();
        assert!(self.open_txn.is_none(), "one transaction at a time");
        out.record(Entry::instant(
            self.process,
            now,
            Op::BeginTxn {
                transactional_id: t.transactional_id().to_string(),
                txn,
                producer_id: identity.producer_id,
                producer_epoch: identity.producer_epoch,
            },
        ));
        self.open_txn = Some(OpenTxn {
            txn,
            identity,
            ending_since: None,
        });
    }

    /// `sendOffsetsToTransaction`: the answer arrives as [`TxnEvent::OffsetsSent`].
    pub fn send_offsets_to_transaction(
        &mut self,
        now: Millis,
        offsets: Vec<CommittedOffset>,
        metadata: GroupMetadata,
        out: &mut Outbox,
    ) {
        self.txn
            .as_mut()
            .expect("sendOffsetsToTransaction needs a transactional.id")
            .send_offsets(metadata, offsets);
        self.run(now, out);
    }

    /// `commitTransaction`: the answer arrives as [`TxnEvent::Ended`].
    pub fn commit_transaction(&mut self, now: Millis, out: &mut Outbox) {
        self.end_transaction(now, true, out);
    }

    /// `abortTransaction`: the answer arrives as [`TxnEvent::Ended`].
    pub fn abort_transaction(&mut self, now: Millis, out: &mut Outbox) {
        self.end_transaction(now, false, out);
    }

    fn end_transaction(&mut self, now: Millis, commit: bool, out: &mut Outbox) {
        let t = self
            .txn
            .as_mut()
            .expect("ending a transaction needs a transactional.id");
        if let Some(open) = self.open_txn.as_mut() {
            open.ending_since = Some(now);
        }
        let effect = t.end(commit);
        self.apply_txn_effects(now, effect.into_iter().collect(), out);
        self.process_txn_events(now, out);
        self.run(now, out);
    }

    /// Transaction events for the application, oldest first.
    pub fn drain_txn_events(&mut self) -> Vec<TxnEvent> {
        self.txn_events.drain(..).collect()
    }

    /// The transactional client's state (`None` without `transactional.id`).
    pub fn txn_state(&self) -> Option<&TxnClientState> {
        self.txn.as_ref().map(TxnClient::state)
    }

    /// Whether every batch of the transaction is done (nothing queued, blocked or in
    /// flight): `EndTxn` waits for it, as `commitTransaction` flushes first.
    fn flushed(&self) -> bool {
        self.blocked.is_empty()
            && self.accumulator.batch_count() == 0
            && !self
                .net
                .kinds()
                .any(|k| matches!(k, ProducerRequest::Produce { .. }))
    }

    /// Sends the transactional request that is due, if any.
    fn send_txn_request(&mut self, now: Millis, out: &mut Outbox) {
        let flushed = self.flushed();
        let Some(t) = self.txn.as_mut() else { return };
        let identity = self
            .transactions
            .as_ref()
            .map_or(ProducerIdentity::NONE, TransactionManager::identity);
        let next = t.next_request(now, identity, flushed);
        self.process_txn_events(now, out);
        let Some((to, request, kind)) = next else {
            return;
        };
        let node = match to {
            TxnDestination::LeastLoaded => self.metadata.least_loaded_node(&self.net),
            TxnDestination::Broker(b) => b,
        };
        self.net
            .send(now, node, request, Some(ProducerRequest::Txn(kind)), out);
    }

    /// The answer to a transactional request (`None`: lost).
    fn on_txn_response(
        &mut self,
        now: Millis,
        kind: TxnRequestKind,
        response: Option<Response>,
        out: &mut Outbox,
    ) {
        if response.is_none() {
            self.metadata.rotate();
        }
        let t = self
            .txn
            .as_mut()
            .expect("transactional requests need a client");
        let effects = t.on_response(now, kind, response);
        self.apply_txn_effects(now, effects, out);
        self.process_txn_events(now, out);
    }

    fn apply_txn_effects(&mut self, now: Millis, effects: Vec<TxnEffect>, out: &mut Outbox) {
        for effect in effects {
            match effect {
                TxnEffect::SetIdentity(identity) => self
                    .transactions
                    .as_mut()
                    .expect("a transactional producer is idempotent")
                    .set_identity(identity),
                TxnEffect::AbortQueued(error) => self.abort_queued(now, &error, out),
            }
        }
    }

    /// Kafka's `abortUndrainedBatches`: the transaction cannot commit, so what waits in
    /// the accumulator (and blocked sends) fails without being sent.
    fn abort_queued(&mut self, now: Millis, error: &str, out: &mut Outbox) {
        for blocked in std::mem::take(&mut self.blocked) {
            self.fail_blocked(now, blocked, error.to_string(), None, out);
        }
        for batch in self.accumulator.take_all() {
            self.fail_sequence(&batch, batch.maybe_appended);
            let outcome = if batch.maybe_appended {
                Outcome::Info {
                    reason: format!("{error} (an earlier attempt may have been appended)"),
                }
            } else {
                Outcome::Fail {
                    error: error.to_string(),
                }
            };
            self.complete_batch(Some(now), batch, None, outcome, None, out);
        }
        self.accumulator.muted.clear();
    }

    /// Records each transaction's end in the history and hands the events on.
    fn process_txn_events(&mut self, now: Millis, out: &mut Outbox) {
        let Some(t) = self.txn.as_mut() else { return };
        let events = t.drain_events();
        for event in events {
            if let TxnEvent::Ended { commit, result } = &event {
                if let Some(mut open) = self.open_txn.take() {
                    let since = open.ending_since.take().unwrap_or(now);
                    let (outcome, over) = match result {
                        TxnResult::Done => (Outcome::Ok, true),
                        TxnResult::Failed { error, fatal } => (
                            Outcome::Fail {
                                error: error.clone(),
                            },
                            *fatal || !*commit,
                        ),
                        TxnResult::Unknown { error } => (
                            Outcome::Info {
                                reason: error.clone(),
                            },
                            true,
                        ),
                    };
                    self.record_end_txn(since, Some(now), open.clone(), *commit, outcome, out);
                    if !over {
                        // A failed commit: the application aborts the same transaction.
                        self.open_txn = Some(open);
                    }
                }
            }
            assert!(
                self.txn_events.len() < 1 << 16,
                "too many transaction events"
            );
            self.txn_events.push_back(event);
        }
    }

    /// The history entry of a transaction's end.
    fn record_end_txn(
        &self,
        since: Millis,
        complete_ms: Option<Millis>,
        open: OpenTxn,
        commit: bool,
        outcome: Outcome,
        out: &mut Outbox,
    ) {
        let t = self.txn.as_ref().expect("transactional");
        let (group, offsets) = match t.offsets() {
            Some((metadata, offsets)) => (
                Some(metadata.group_id.to_string()),
                offsets.iter().map(|o| (o.tp.clone(), o.offset)).collect(),
            ),
            None => (None, Vec::new()),
        };
        out.record(Entry {
            index: 0,
            process: self.process,
            invoke_ms: since,
            complete_ms,
            outcome,
            op: Op::EndTxn {
                transactional_id: t.transactional_id().to_string(),
                txn: open.txn,
                producer_id: open.identity.producer_id,
                producer_epoch: open.identity.producer_epoch,
                commit,
                partitions: t.written().cloned().collect(),
                group,
                offsets,
            },
        });
    }

    /// Picks the partition (`partition_for_key`, or the sticky partition, moved on when
    /// the record would start a new batch) and appends; gives the record back when the
    /// append must wait for memory.
    fn partition_and_append(
        &mut self,
        now: Millis,
        topic: &Arc<str>,
        partitions: u32,
        record: PendingRecord,
    ) -> Result<TopicPartition, (AppendBlocked, TopicPartition, PendingRecord)> {
        let partition = match &record.key {
            Some(key) => partition_for_key(key.as_bytes(), partitions),
            None => {
                let sticky = self.sticky.partition(topic, partitions, &mut self.rng);
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: sticky,
                };
                if self.accumulator.has_room_for(&tp, &record) {
                    sticky
                } else {
                    self.sticky
                        .on_new_batch(topic, partitions, sticky, &mut self.rng);
                    self.sticky.partition(topic, partitions, &mut self.rng)
                }
            }
        };
        assert!(
            partition < partitions,
            "partitioner chose {partition} of {partitions}"
        );
        let tp = TopicPartition {
            topic: topic.clone(),
            partition,
        };
        self.accumulator
            .append(tp.clone(), record, now)
            .map(|()| tp.clone())
            .map_err(|(blocked, record)| (blocked, tp, record))
    }

    /// Lets blocked `send` calls return, in call order: each one whose topic is known
    /// and whose batch has memory is appended; one past `max.block.ms` fails with
    /// Kafka's `TimeoutException` text.
    fn unblock_sends(&mut self, now: Millis, out: &mut Outbox) {
        let max_block = self.config.max_block_ms;
        while let Some(head) = self.blocked.front() {
            let deadline = head.record.invoke_ms + max_block;
            let Some(partitions) = self.metadata.partition_count(&head.topic) else {
                if now >= deadline {
                    let blocked = self.blocked.pop_front().expect("head");
                    let error = format!(
                        "TimeoutException: Topic {} not present in metadata after {max_block} ms.",
                        blocked.topic
                    );
                    let cause = Some(SendTimeout::BlockedOnMetadata);
                    self.fail_blocked(now, blocked, error, cause, out);
                    continue;
                }
                return;
            };
            let blocked = self.blocked.pop_front().expect("head");
            // The partition is chosen once (`KafkaProducer.doSend`); a send blocked on
            // memory appends to that partition when memory frees.
            let was_blocked = blocked.memory.is_some();
            let appended = match blocked.memory {
                Some((tp, _)) => self
                    .accumulator
                    .append(tp.clone(), blocked.record, now)
                    .map(|()| tp.clone())
                    .map_err(|(b, record)| (b, tp, record)),
                None => self.partition_and_append(now, &blocked.topic, partitions, blocked.record),
            };
            match appended {
                Ok(tp) => {
                    if let Some(t) = self.txn.as_mut() {
                        t.add_partition(&tp);
                    }
                }
                Err((AppendBlocked::Memory(need), tp, record)) => {
                    if !was_blocked {
                        self.metrics.blocked_on_memory += 1;
                    }
                    let blocked = BlockedSend {
                        topic: blocked.topic,
                        record,
                        memory: Some((tp, need)),
                    };
                    if now >= deadline {
                        let error = format!(
                            "TimeoutException: Failed to allocate {need} bytes within the \
                             configured max blocking time {max_block} ms. Total memory: {} \
                             bytes. Available memory: {} bytes. Poolable size: {} bytes",
                            self.config.buffer_memory,
                            self.accumulator.available_memory(),
                            self.config.batch_size
                        );
                        let cause = Some(SendTimeout::BlockedOnMemory);
                        self.fail_blocked(now, blocked, error, cause, out);
                        continue;
                    }
                    self.blocked.push_front(blocked);
                    return;
                }
            }
        }
    }

    /// A `send` that gave up blocking: the record was never handed to the accumulator.
    fn fail_blocked(
        &mut self,
        now: Millis,
        blocked: BlockedSend,
        error: String,
        timeout: Option<SendTimeout>,
        out: &mut Outbox,
    ) {
        let tp = blocked.partition();
        let completion = Completion {
            complete_ms: Some(now),
            offset: None,
            attempts: 0,
            timeout,
        };
        self.record_outcome(
            &tp,
            blocked.record,
            completion,
            Outcome::Fail { error },
            out,
        );
    }

    /// Whether the in-order retry logic is on (the `no-in-order-retry` switch turns it
    /// off).
    fn in_order(&self) -> bool {
        !self.bugs.on(Bug::NoInOrderRetry)
    }

    /// `KafkaProducer.close()` (Kafka 4.x, `Sender.run` after `initiateClose`): no new
    /// sends; the records and transactional requests under way complete; then a
    /// transaction still open and not completing is aborted ("Aborting incomplete
    /// transaction due to shutdown", `transactionManager.beginAbort()`), and once it
    /// has ended the producer is closed (no timers, late answers ignored, its metrics
    /// recorded). A fatal error closes it at once (`beginAbort` throws: force close).
    /// Whatever is still unfinished when the run ends is forced, as `close(timeout)`
    /// does when its timeout expires ([`Producer::finish`]).
    pub fn close(&mut self, now: Millis, out: &mut Outbox) {
        self.closing = true;
        self.run(now, out);
    }

    /// The closing producer's next step (see [`Producer::close`]).
    fn advance_close(&mut self, now: Millis, out: &mut Outbox) {
        if !self.closing || self.closed {
            return;
        }
        if matches!(self.txn_state(), Some(TxnClientState::FatalError(_))) {
            self.abandon(now, "the producer was closed after a fatal error", out);
            return;
        }
        let produce_in_flight = self
            .net
            .kinds()
            .any(|k| matches!(k, ProducerRequest::Produce { .. }));
        if !self.flushed() || produce_in_flight {
            return;
        }
        if self.txn.as_ref().is_some_and(TxnClient::abortable_on_close) {
            self.end_transaction(now, false, out);
            return;
        }
        if self.txn.as_ref().is_none_or(TxnClient::settled) && self.pending == 0 {
            self.abandon(now, "closed", out);
        }
    }

    /// Tests: the transactional client fails fatally (as on `ProducerFenced`).
    #[cfg(test)]
    pub(crate) fn fail_fatally_for_test(&mut self, error: &str) {
        self.txn
            .as_mut()
            .expect("a transactional producer")
            .fail_fatally_for_test(error);
    }

    /// Whether the producer is closed (see [`Producer::crashed`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// One `Sender.runOnce` step.
    fn run(&mut self, now: Millis, out: &mut Outbox) {
        if self.closed {
            return;
        }
        self.now = self.now.max(now);
        self.handle_timeouts(now, out);
        self.expire(now, out);
        self.maybe_bump_epoch(now, out);
        self.maybe_init_producer_id(now, out);
        self.unblock_sends(now, out);
        self.send_txn_request(now, out);
        self.send_produce_data(now, out);
        self.metadata
            .poll(now, &mut self.net, ProducerRequest::Metadata, out);
        self.advance_close(now, out);
    }

    /// Sends `InitProducerId` to the least loaded broker when the idempotent producer
    /// has no producer id and none is in flight.
    fn maybe_init_producer_id(&mut self, now: Millis, out: &mut Outbox) {
        let Some(tm) = self.transactions.as_mut() else {
            return;
        };
        if tm.init_due_at().is_none_or(|t| t > now) {
            return;
        }
        let node = self.metadata.least_loaded_node(&self.net);
        let request = Request::InitProducerId(InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        });
        tm.on_init_sent();
        self.net.send(
            now,
            node,
            request,
            Some(ProducerRequest::InitProducerId),
            out,
        );
    }

    /// KIP-360's local epoch bump, once no batch of a partition that needs new
    /// sequences is on the wire: its queued batches get sequences from 0 under the new
    /// epoch, in queue order.
    fn maybe_bump_epoch(&mut self, now: Millis, out: &mut Outbox) {
        let Some(tm) = self.transactions.as_mut() else {
            return;
        };
        tm.maybe_resolve_sequences();
        let waiting: Vec<TopicPartition> = tm.bump_partitions().cloned().collect();
        if waiting.is_empty() {
            return;
        }
        if let Some(t) = self.txn.as_mut() {
            // A transactional producer cannot bump its epoch locally: the transaction
            // aborts and the next InitProducerId bumps it.
            let effect = t.on_epoch_bump_needed();
            self.apply_txn_effects(now, effect.into_iter().collect(), out);
            return;
        }
        let on_wire = self.net.kinds().any(|k| match k {
            ProducerRequest::Produce { batches } => batches
                .iter()
                .any(|(tp, b)| b.is_some() && waiting.contains(tp)),
            _ => false,
        });
        if on_wire {
            return;
        }
        let batches = &mut self.accumulator.batches;
        if self.bugs.on(Bug::NoInOrderRetry) {
            // Without in-order retries the queue is sequenced afresh in its order.
            for tp in &waiting {
                for batch in batches.get_mut(tp).into_iter().flatten() {
                    batch.sequence = None;
                    batch.encoded = None;
                }
            }
        }
        let rewritten = tm.bump_epoch(|tp| {
            batches.get(tp).map_or(Vec::new(), |d| {
                d.iter()
                    .filter(|b| b.sequence.is_some())
                    .map(|b| b.records.len())
                    .collect()
            })
        });
        let identity = tm.identity();
        for (tp, bases) in rewritten {
            let Some(deque) = batches.get_mut(&tp) else {
                continue;
            };
            let sequenced = deque.iter_mut().filter(|b| b.sequence.is_some());
            for (batch, base) in sequenced.zip(bases) {
                batch.set_sequence(identity, base);
            }
        }
    }

    /// Fails every request to a broker with a timed-out request (`NETWORK_EXCEPTION`).
    fn handle_timeouts(&mut self, now: Millis, out: &mut Outbox) {
        let failed = self.net.disconnect_timed_out(now);
        for r in &failed {
            out.disconnect(Channel::Producer, NodeId::Broker(r.broker));
        }
        self.handle_failed(now, failed, out);
    }

    /// Requests lost with their connection: retried as `NETWORK_EXCEPTION` (indefinite).
    fn handle_failed(
        &mut self,
        now: Millis,
        failed: Vec<InFlightRequest<ProducerRequest>>,
        out: &mut Outbox,
    ) {
        if failed.is_empty() {
            return;
        }
        self.metadata.request_update();
        for request in failed {
            match request.kind {
                ProducerRequest::Metadata => self.metadata.on_failure(now),
                ProducerRequest::InitProducerId => {
                    self.metadata.rotate();
                    let backoff = self.config.retry_backoff_ms;
                    if let Some(tm) = self.transactions.as_mut() {
                        tm.on_init_response(now, None, backoff);
                    }
                }
                ProducerRequest::Produce { batches } => {
                    for (tp, batch) in batches {
                        self.unmute(&tp);
                        if let Some(batch) = batch {
                            self.complete_attempt(now, batch, ErrorCode::NetworkException, -1, out);
                        }
                    }
                }
                ProducerRequest::Txn(kind) => self.on_txn_response(now, kind, None, out),
            }
        }
    }

    /// Completes every blocked send, record and batch whose time is up.
    fn expire(&mut self, now: Millis, out: &mut Outbox) {
        let timeout = self.config.delivery_timeout_ms;
        let mut expired_any = false;
        for batch in self.accumulator.expire(now, timeout) {
            expired_any = true;
            let outcome = Self::expiry_outcome(now, &batch, false);
            self.fail_sequence(&batch, batch.maybe_appended);
            let expired = Some(SendTimeout::Expired);
            self.complete_batch(Some(now), batch, None, outcome, expired, out);
        }
        let mut expired_in_flight = Vec::new();
        for kind in self.net.kinds_mut() {
            if let ProducerRequest::Produce { batches } = kind {
                for (_, slot) in batches.iter_mut() {
                    if slot
                        .as_ref()
                        .is_some_and(|b| b.delivery_deadline(timeout) <= now)
                    {
                        expired_in_flight.extend(slot.take());
                    }
                }
            }
        }
        for batch in expired_in_flight {
            expired_any = true;
            let outcome = Self::expiry_outcome(now, &batch, true);
            self.fail_sequence(&batch, true);
            let expired = Some(SendTimeout::Expired);
            self.complete_batch(Some(now), batch, None, outcome, expired, out);
        }
        if expired_any {
            let effect = self
                .txn
                .as_mut()
                .and_then(|t| t.on_batch_failed("TimeoutException: delivery.timeout.ms"));
            self.apply_txn_effects(now, effect.into_iter().collect(), out);
        }
    }

    /// Tells the transaction manager that a sequenced batch failed for good.
    fn fail_sequence(&mut self, batch: &ProducerBatch, maybe_appended: bool) {
        if let (Some(tm), Some((identity, base)), Some(last)) = (
            self.transactions.as_mut(),
            batch.sequence,
            batch.last_sequence(),
        ) {
            tm.on_failed(&batch.tp, identity, base, last, maybe_appended);
        }
    }

    /// The outcome of a batch whose delivery timeout passed.
    fn expiry_outcome(now: Millis, batch: &ProducerBatch, in_flight: bool) -> Outcome {
        if in_flight || batch.maybe_appended {
            Outcome::Info {
                reason: format!(
                    "delivery.timeout.ms expired after {} attempts",
                    batch.attempts
                ),
            }
        } else {
            Outcome::Fail {
                error: format!(
                    "TimeoutException: Expiring {} record(s) for {}:{} ms has passed since \
                     batch creation",
                    batch.records.len(),
                    batch.tp,
                    now - batch.created_ms
                ),
            }
        }
    }

    /// `Sender.sendProducerData`: drains ready leaders into `Produce` requests until no
    /// leader can take another one.
    fn send_produce_data(&mut self, now: Millis, out: &mut Outbox) {
        let max_rounds = self.accumulator.batch_count() + 1;
        let in_order = self.in_order();
        for round in 0.. {
            assert!(round <= max_rounds, "sender loop did not converge");
            let (nodes, unknown_leader) = self.accumulator.ready(now, &self.metadata);
            if unknown_leader {
                self.metadata.request_update();
            }
            let mut sent = false;
            for node in nodes {
                let in_flight = self
                    .net
                    .count(node, |k| matches!(k, ProducerRequest::Produce { .. }));
                let limit = self.config.max_in_flight_requests_per_connection as usize;
                assert!(
                    in_flight <= limit,
                    "more than {limit} produce requests in flight to broker-{node}"
                );
                if self.config.acks != Acks::None && in_flight == limit {
                    continue;
                }
                let idempotence = self.transactions.as_mut().map(|tm| (tm, in_order));
                let batches = self.accumulator.drain(
                    node,
                    now,
                    &self.metadata,
                    idempotence,
                    self.txn.as_ref(),
                );
                if !batches.is_empty() {
                    self.send_produce_request(now, node, batches, out);
                    sent = true;
                }
            }
            if !sent {
                break;
            }
        }
    }

    /// Sends one `Produce` request; with `acks=0` its records complete at once.
    fn send_produce_request(
        &mut self,
        now: Millis,
        node: BrokerId,
        mut batches: Vec<ProducerBatch>,
        out: &mut Outbox,
    ) {
        let guarantee_order = self.config.max_in_flight_requests_per_connection == 1;
        let compression = self.config.compression_type;
        let mut partitions = Vec::with_capacity(batches.len());
        for batch in &mut batches {
            batch.attempts += 1;
            batch.retry_at = None;
            let bytes = batch.encode(compression);
            if batch.attempts == 1 {
                self.metrics.batches += 1;
                self.metrics.records += batch.records.len() as u64;
                self.metrics.batch_bytes += bytes.len() as u64;
                self.metrics.uncompressed_bytes += batch.size as u64;
                if compression != CompressionType::None {
                    let observed = (bytes.len() - BATCH_HEADER_SIZE) as f64
                        / (batch.size - BATCH_HEADER_SIZE) as f64;
                    self.accumulator.observe_ratio(&batch.tp.topic, observed);
                }
            }
            self.metrics.outgoing_bytes += bytes.len() as u64;
            partitions.push((batch.tp.clone(), bytes));
        }
        self.metrics.requests += 1;
        if let Some(t) = self.txn.as_mut() {
            t.on_produce_sent();
        }
        let request = Request::Produce(ProduceRequest {
            transactional_id: self.txn.as_ref().map(|t| t.transactional_id().clone()),
            acks: self.config.acks,
            timeout_ms: self.config.request_timeout_ms,
            partitions,
        });
        if self.config.acks == Acks::None {
            self.net.send(now, node, request, None, out);
            for batch in batches {
                self.complete_batch(Some(now), batch, None, Outcome::Ok, None, out);
            }
            return;
        }
        if guarantee_order {
            for batch in &batches {
                self.accumulator.muted.insert(batch.tp.clone());
            }
        }
        let batches = batches
            .into_iter()
            .map(|b| (b.tp.clone(), Some(b)))
            .collect();
        self.net.send(
            now,
            node,
            request,
            Some(ProducerRequest::Produce { batches }),
            out,
        );
    }

    fn unmute(&mut self, tp: &TopicPartition) {
        self.accumulator.muted.remove(tp);
    }

    /// `Sender.handleProduceResponse`.
    fn handle_produce_response(
        &mut self,
        now: Millis,
        batches: Vec<(TopicPartition, Option<ProducerBatch>)>,
        response: ProduceResponse,
        out: &mut Outbox,
    ) {
        for (tp, batch) in batches {
            self.unmute(&tp);
            let Some(batch) = batch else { continue };
            let part = response
                .partitions
                .iter()
                .find(|p| p.tp == tp)
                .unwrap_or_else(|| panic!("Produce response lacks partition {tp}"));
            self.complete_attempt(now, batch, part.error, part.base_offset, out);
        }
    }

    /// `Sender.completeBatch`: success, retry, or failure of one attempt.
    fn complete_attempt(
        &mut self,
        now: Millis,
        mut batch: ProducerBatch,
        error: ErrorCode,
        base_offset: Offset,
        out: &mut Outbox,
    ) {
        // An idempotent batch's duplicate is acknowledged with the original's offset.
        let duplicate = error == ErrorCode::DuplicateSequenceNumber && batch.sequence.is_some();
        if error == ErrorCode::None || duplicate {
            if let (Some(tm), Some((identity, base)), Some(last)) = (
                self.transactions.as_mut(),
                batch.sequence,
                batch.last_sequence(),
            ) {
                tm.on_success(&batch.tp, identity, base, last);
            }
            let base = (base_offset >= 0).then_some(base_offset);
            self.complete_batch(Some(now), batch, base, Outcome::Ok, None, out);
            return;
        }
        if matches!(produce_error_outcome(error), Outcome::Info { .. }) {
            batch.maybe_appended = true;
        }
        if error.invalidates_metadata() {
            self.metadata.request_update();
        }
        let in_order = self.in_order();
        let retriable = match (self.transactions.as_mut(), batch.sequence) {
            (Some(tm), Some((identity, base))) => {
                tm.can_retry(&batch.tp, error, identity, base, in_order)
            }
            _ => error.is_retriable(),
        };
        // A transaction that can no longer commit sends nothing more.
        let txn_live = self.txn.as_ref().is_none_or(TxnClient::can_commit);
        let can_retry = retriable
            && txn_live
            && u64::from(batch.attempts) < u64::from(self.config.retries) + 1
            && now < batch.delivery_deadline(self.config.delivery_timeout_ms);
        if can_retry {
            let backoff = self.retry_backoff(batch.attempts);
            self.metrics.retried_batches += 1;
            let in_sequence_order = self.transactions.is_some() && in_order;
            self.accumulator
                .reenqueue(batch, now + backoff, in_sequence_order);
            return;
        }
        self.fail_sequence(&batch, batch.maybe_appended);
        if let Some(effect) = self
            .txn
            .as_mut()
            .and_then(|t| t.on_batch_failed(error.name()))
        {
            self.apply_txn_effects(now, vec![effect], out);
        }
        let outcome = match produce_error_outcome(error) {
            Outcome::Fail { error } if !batch.maybe_appended => Outcome::Fail { error },
            Outcome::Fail { .. } => Outcome::Info {
                reason: format!(
                    "{error} after {} attempts; an earlier attempt may have been appended",
                    batch.attempts
                ),
            },
            _ => Outcome::Info {
                reason: format!("{error} after {} attempts", batch.attempts),
            },
        };
        self.complete_batch(Some(now), batch, None, outcome, None, out);
    }

    /// Kafka's `ExponentialBackoff(retry.backoff.ms, 2, retry.backoff.max.ms, 0.2)` for a
    /// batch that has been sent `attempts` times.
    fn retry_backoff(&mut self, attempts: u32) -> u64 {
        let max = self.config.retry_backoff_max_ms;
        let initial = self.config.retry_backoff_ms.min(max);
        if max <= initial {
            return initial;
        }
        let exp = attempts.saturating_sub(1).min(63) as i32;
        let term = (initial as f64 * 2f64.powi(exp)).min(max as f64);
        let factor = self
            .rng
            .gen_range(1.0 - RETRY_BACKOFF_JITTER..1.0 + RETRY_BACKOFF_JITTER);
        ((term * factor) as u64).min(max)
    }

    /// Records one entry per record of the batch (offsets follow `base_offset`) and
    /// returns its memory to the pool.
    fn complete_batch(
        &mut self,
        complete_ms: Option<Millis>,
        batch: ProducerBatch,
        base_offset: Option<Offset>,
        outcome: Outcome,
        timeout: Option<SendTimeout>,
        out: &mut Outbox,
    ) {
        self.accumulator.deallocate(&batch);
        let ProducerBatch {
            tp,
            records,
            attempts,
            ..
        } = batch;
        for (i, record) in records.into_iter().enumerate() {
            let completion = Completion {
                complete_ms,
                offset: base_offset.map(|b| b + i as Offset),
                attempts,
                timeout,
            };
            self.record_outcome(&tp, record, completion, outcome.clone(), out);
        }
    }

    /// Records the outcome of one record.
    fn record_outcome(
        &mut self,
        tp: &TopicPartition,
        record: PendingRecord,
        completion: Completion,
        outcome: Outcome,
        out: &mut Outbox,
    ) {
        self.pending = self
            .pending
            .checked_sub(1)
            .expect("completed more records than were sent");
        if outcome != Outcome::Ok {
            self.unacknowledged += 1;
        }
        out.record(Entry {
            index: 0,
            process: self.process,
            invoke_ms: record.invoke_ms,
            complete_ms: completion.complete_ms,
            outcome,
            op: Op::Send {
                txn: record.txn,
                key: record.key,
                value: record.value,
                partition: tp.clone(),
                offset: completion.offset,
                attempts: completion.attempts,
                timeout: completion.timeout,
                headers: record.headers,
                timestamp: (record.timestamp != RECORD_TIMESTAMP_BASE + record.invoke_ms as i64)
                    .then_some(record.timestamp),
            },
        });
    }
}

/// When and how a record completed.
#[derive(Clone, Copy, Debug)]
struct Completion {
    /// `None` when still pending at the end of the run.
    complete_ms: Option<Millis>,
    /// The offset the broker assigned, if acknowledged with one.
    offset: Option<Offset>,
    /// Times its batch was sent.
    attempts: u32,
    /// The client-side timeout that ended it, if one did.
    timeout: Option<SendTimeout>,
}

impl Producer {
    /// Handles the response to one of the producer's requests.
    fn handle_response(
        &mut self,
        now: Millis,
        kind: ProducerRequest,
        response: Response,
        out: &mut Outbox,
    ) {
        match (kind, response) {
            (ProducerRequest::Metadata, Response::Metadata(m)) => {
                self.metadata.on_response(now, &m);
            }
            (ProducerRequest::InitProducerId, Response::InitProducerId(r)) => {
                let backoff = self.config.retry_backoff_ms;
                if r.error != ErrorCode::None {
                    self.metadata.rotate();
                }
                self.transactions
                    .as_mut()
                    .expect("InitProducerId only when idempotent")
                    .on_init_response(now, Some(&r), backoff);
            }
            (ProducerRequest::Produce { batches }, Response::Produce(p)) => {
                self.handle_produce_response(now, batches, p, out);
            }
            (ProducerRequest::Txn(kind), response) => {
                self.on_txn_response(now, kind, Some(response), out);
            }
            (_, response) => network::mismatched_response(self.process, &response),
        }
    }
}

impl Actor for Producer {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.metadata.request_update();
        self.run(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        if self.closed {
            return; // a late answer to a closed producer reaches nobody
        }
        let (correlation_id, response) = network::into_response(self.process, from, message);
        if let Some(request) = self.net.complete(from, correlation_id) {
            self.handle_response(now, request.kind, response, out);
        }
        self.run(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        if let NodeId::Broker(b) = peer {
            let failed = self.net.disconnect(&[b].into_iter().collect());
            self.handle_failed(now, failed, out);
        }
        self.run(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        self.run(now, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    fn next_timer(&self) -> Option<Millis> {
        if self.closed {
            return None; // `KafkaProducer.close` stopped the Sender
        }
        let timeout = self.config.delivery_timeout_ms;
        let in_flight_deadline = self
            .net
            .kinds()
            .filter_map(|k| match k {
                ProducerRequest::Produce { batches } => batches
                    .iter()
                    .filter_map(|(_, b)| b.as_ref())
                    .map(|b| b.delivery_deadline(timeout))
                    .min(),
                _ => None,
            })
            .min();
        let blocked_deadline = self
            .blocked
            .front()
            .map(|b| b.record.invoke_ms + self.config.max_block_ms);
        let init_due = self.transactions.as_ref().and_then(|t| t.init_due_at());
        let txn_due = self.txn.as_ref().and_then(|t| t.due_at(self.flushed()));
        [
            txn_due,
            self.net.next_deadline(),
            self.metadata.due_at(),
            self.accumulator.next_ready_time(self.now, &self.metadata),
            self.accumulator.next_delivery_deadline(timeout),
            in_flight_deadline,
            blocked_deadline,
            init_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests;
