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

use crate::actor::{Actor, Outbox};
use crate::bugs::{Bug, Bugs};
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
    BrokerId, CommittedOffset, ErrorCode, InitProducerIdRequest, LeaderEpoch, Message,
    MetadataRequest, MetadataResponse, NodeId, Offset, ProduceRequest, ProduceResponse,
    ProducerIdentity, Request, Response, TopicPartition,
};
use crate::kafka::record::RECORD_TIMESTAMP_BASE;
use crate::kafka::record::{CompressionType, Record, RecordBatch, BATCH_HEADER_SIZE};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The correlation ids of a producer that shares its process with a consumer (a
/// pipeline) start here.
pub const PIPELINE_PRODUCER_CORRELATION_BASE: u64 = 1 << 52;

/// Kafka's default `max.request.size` (not configurable here): a drain stops adding
/// batches to a request once they would exceed it (one batch always fits).
const MAX_REQUEST_SIZE: usize = 1_048_576;

/// Sanity bound on records waiting for an outcome (`buffer.memory` bounds batches,
/// not blocked sends).
const MAX_PENDING_RECORDS: usize = 1 << 20;

/// Sanity bound on requests in flight from one client.
const MAX_IN_FLIGHT_REQUESTS: usize = 1 << 16;

/// Kafka's `CommonClientConfigs.RETRY_BACKOFF_JITTER`: +/- 20%.
const RETRY_BACKOFF_JITTER: f64 = 0.2;

/// Kafka's `COMPRESSION_RATE_ESTIMATION_FACTOR`: head-room on the estimated ratio.
const COMPRESSION_RATE_ESTIMATION_FACTOR: f64 = 1.05;
/// `CompressionRatioEstimator`: steps when a batch compresses better or worse.
const COMPRESSION_RATIO_IMPROVING_STEP: f64 = 0.005;
const COMPRESSION_RATIO_DETERIORATE_STEP: f64 = 0.05;

// ---------------------------------------------------------------- NetworkClient

/// A request awaiting its response.
#[derive(Debug)]
pub(crate) struct InFlightRequest<K> {
    /// The broker it went to.
    pub(crate) broker: BrokerId,
    /// When it counts as failed (`sent + request.timeout.ms`).
    pub(crate) deadline: Millis,
    /// What the client needs to handle the response.
    pub(crate) kind: K,
}

/// The request side of Kafka's `NetworkClient`: correlation ids, in-flight requests and
/// their deadlines. `K` is the client's per-request context.
#[derive(Debug)]
pub(crate) struct NetworkClient<K> {
    next_correlation_id: u64,
    request_timeout_ms: u64,
    in_flight: BTreeMap<u64, InFlightRequest<K>>,
}

impl<K> NetworkClient<K> {
    /// A client whose requests time out after `request_timeout_ms`.
    pub(crate) fn new(request_timeout_ms: u64) -> Self {
        Self::with_base(request_timeout_ms, 0)
    }

    /// A client whose correlation ids start at `base` (so that two clients sharing one
    /// process, a pipeline's consumer and producer, never collide).
    pub(crate) fn with_base(request_timeout_ms: u64, base: u64) -> Self {
        NetworkClient {
            next_correlation_id: base,
            request_timeout_ms,
            in_flight: BTreeMap::new(),
        }
    }

    /// Sends `request` to `broker` and returns its correlation id. With `kind == None`
    /// no response is expected (`acks=0`) and nothing stays in flight.
    pub(crate) fn send(
        &mut self,
        now: Millis,
        broker: BrokerId,
        request: Request,
        kind: Option<K>,
        out: &mut Outbox,
    ) -> u64 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        out.send(
            NodeId::Broker(broker),
            Message::Request {
                correlation_id,
                request,
            },
        );
        if let Some(kind) = kind {
            self.in_flight.insert(
                correlation_id,
                InFlightRequest {
                    broker,
                    deadline: now + self.request_timeout_ms,
                    kind,
                },
            );
            assert!(
                self.in_flight.len() <= MAX_IN_FLIGHT_REQUESTS,
                "more than {MAX_IN_FLIGHT_REQUESTS} requests in flight"
            );
        }
        correlation_id
    }

    /// Takes the request a response answers; `None` for a response to a request that
    /// already failed (timed out or disconnected), which the caller ignores.
    pub(crate) fn complete(
        &mut self,
        from: NodeId,
        correlation_id: u64,
    ) -> Option<InFlightRequest<K>> {
        let request = self.in_flight.remove(&correlation_id)?;
        assert_eq!(
            from,
            NodeId::Broker(request.broker),
            "response to correlation id {correlation_id} came from the wrong node"
        );
        Some(request)
    }

    /// Kafka's `NetworkClient.handleTimedOutRequests`: every broker with a request past
    /// its deadline is disconnected, which fails every request in flight to it. Returns
    /// the failed requests, oldest first.
    pub(crate) fn disconnect_timed_out(&mut self, now: Millis) -> Vec<InFlightRequest<K>> {
        let brokers: BTreeSet<BrokerId> = self
            .in_flight
            .values()
            .filter(|r| r.deadline <= now)
            .map(|r| r.broker)
            .collect();
        self.disconnect(&brokers)
    }

    /// The connections to `brokers` broke: every request in flight to them fails.
    /// Returns the failed requests, oldest first.
    pub(crate) fn disconnect(&mut self, brokers: &BTreeSet<BrokerId>) -> Vec<InFlightRequest<K>> {
        let failed: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| brokers.contains(&r.broker))
            .map(|(id, _)| *id)
            .collect();
        failed
            .into_iter()
            .filter_map(|id| self.in_flight.remove(&id))
            .collect()
    }

    /// Requests in flight to `broker` whose context matches `pred`.
    pub(crate) fn count(&self, broker: BrokerId, pred: impl Fn(&K) -> bool) -> usize {
        self.in_flight
            .values()
            .filter(|r| r.broker == broker && pred(&r.kind))
            .count()
    }

    /// The earliest request deadline.
    pub(crate) fn next_deadline(&self) -> Option<Millis> {
        self.in_flight.values().map(|r| r.deadline).min()
    }

    /// Contexts of the requests in flight, oldest first.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = &K> {
        self.in_flight.values().map(|r| &r.kind)
    }

    /// Mutable contexts of the requests in flight, oldest first.
    pub(crate) fn kinds_mut(&mut self) -> impl Iterator<Item = &mut K> {
        self.in_flight.values_mut().map(|r| &mut r.kind)
    }

    /// Forgets every request in flight (end of run); late responses are ignored.
    pub(crate) fn abandon_all(&mut self) -> Vec<InFlightRequest<K>> {
        std::mem::take(&mut self.in_flight).into_values().collect()
    }
}

// ---------------------------------------------------------------- MetadataCache

/// What a client knows of a partition's leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PartitionLeader {
    /// The leader, `None` when the partition has none (or reported an error).
    pub(crate) leader: Option<BrokerId>,
    /// The leader epoch of this information.
    pub(crate) leader_epoch: LeaderEpoch,
}

/// A client's view of the cluster (Kafka's `Metadata` + `DefaultMetadataUpdater`):
/// partition counts and leaders of the topics of interest, refreshed with `Metadata`
/// requests to the bootstrap brokers.
///
/// The target is Kafka's `leastLoadedNode` among the bootstrap brokers: the one with the
/// fewest requests of this client in flight, ties broken by a rotation that starts at a
/// seeded index and advances after every failed attempt (so a broker holding a hung
/// request is avoided, and a failed one is not retried first).
///
/// Refresh rules: at most one request in flight; a refresh is due when one was
/// requested (an error, an unknown leader or topic) or `metadata.max.age.ms` after the
/// last success, but never sooner than `retry.backoff.ms` after the last attempt ended.
/// A requested update is satisfied only by a response to a request sent after it was
/// requested (Kafka's `requestVersion`). Leader information with an older leader epoch
/// than the cached one is ignored (KIP-320).
#[derive(Debug)]
pub(crate) struct MetadataCache {
    bootstrap: Vec<BrokerId>,
    next_node: usize,
    topics: BTreeSet<Arc<str>>,
    partition_counts: BTreeMap<Arc<str>, u32>,
    partitions: BTreeMap<TopicPartition, PartitionLeader>,
    requested_version: u64,
    satisfied_version: u64,
    /// The requested version the request in flight was sent at.
    in_flight: Option<u64>,
    last_attempt_end: Option<Millis>,
    last_success: Option<Millis>,
    max_age_ms: u64,
    backoff_ms: u64,
}

impl MetadataCache {
    /// A cache needing its first refresh, which goes to `bootstrap[first_node]`.
    pub(crate) fn new(
        bootstrap: Vec<BrokerId>,
        first_node: usize,
        max_age_ms: u64,
        backoff_ms: u64,
    ) -> Self {
        assert!(!bootstrap.is_empty(), "a client needs bootstrap brokers");
        MetadataCache {
            bootstrap,
            next_node: first_node,
            topics: BTreeSet::new(),
            partition_counts: BTreeMap::new(),
            partitions: BTreeMap::new(),
            requested_version: 1,
            satisfied_version: 0,
            in_flight: None,
            last_attempt_end: None,
            last_success: None,
            max_age_ms,
            backoff_ms,
        }
    }

    /// Adds a topic of interest; a new one requests an update. Returns whether it was new.
    pub(crate) fn add_topic(&mut self, topic: &Arc<str>) -> bool {
        let new = self.topics.insert(topic.clone());
        if new {
            self.request_update();
        }
        new
    }

    /// Kafka's `Metadata.requestUpdate`.
    pub(crate) fn request_update(&mut self) {
        self.requested_version += 1;
    }

    /// The partition count of a topic, once known.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.partition_counts.get(topic).copied()
    }

    /// Partition counts of every known topic.
    pub(crate) fn partition_counts(&self) -> impl Iterator<Item = (&Arc<str>, u32)> {
        self.partition_counts.iter().map(|(t, n)| (t, *n))
    }

    /// The partition's leader and leader epoch, if it has a leader.
    pub(crate) fn leader(&self, tp: &TopicPartition) -> Option<(BrokerId, LeaderEpoch)> {
        let p = self.partitions.get(tp)?;
        p.leader.map(|l| (l, p.leader_epoch))
    }

    /// When the next `Metadata` request is due; `None` while one is in flight.
    pub(crate) fn due_at(&self) -> Option<Millis> {
        if self.in_flight.is_some() {
            return None;
        }
        let allowed = self.last_attempt_end.map_or(0, |t| t + self.backoff_ms);
        let wanted = if self.requested_version > self.satisfied_version {
            0
        } else {
            self.last_success.map_or(0, |t| t + self.max_age_ms)
        };
        Some(allowed.max(wanted))
    }

    /// Kafka's `leastLoadedNode`: the bootstrap broker with the fewest requests in
    /// flight, starting the search at the rotating `next_node`.
    pub(crate) fn least_loaded_node<K>(&self, net: &NetworkClient<K>) -> BrokerId {
        let n = self.bootstrap.len();
        (0..n)
            .map(|i| self.bootstrap[(self.next_node + i) % n])
            .min_by_key(|b| net.count(*b, |_| true))
            .expect("bootstrap brokers")
    }

    /// Moves the rotation on (after a failed request to the least loaded node).
    pub(crate) fn rotate(&mut self) {
        self.next_node += 1;
    }

    /// Sends a `Metadata` request when one is due.
    pub(crate) fn poll<K>(
        &mut self,
        now: Millis,
        net: &mut NetworkClient<K>,
        kind: K,
        out: &mut Outbox,
    ) {
        if self.due_at().is_some_and(|t| t <= now) {
            let node = self.least_loaded_node(net);
            let request = Request::Metadata(MetadataRequest {
                topics: Some(self.topics.iter().cloned().collect()),
            });
            net.send(now, node, request, Some(kind), out);
            self.in_flight = Some(self.requested_version);
        }
    }

    /// Applies a `Metadata` response to the request in flight.
    pub(crate) fn on_response(&mut self, now: Millis, response: &MetadataResponse) {
        let version = self
            .in_flight
            .take()
            .expect("a Metadata response without a Metadata request in flight");
        self.last_attempt_end = Some(now);
        self.last_success = Some(now);
        self.satisfied_version = self.satisfied_version.max(version);
        let mut counts: BTreeMap<Arc<str>, u32> = BTreeMap::new();
        let mut invalid = false;
        for pm in &response.partitions {
            if !self.topics.contains(&pm.tp.topic) {
                continue;
            }
            let count = counts.entry(pm.tp.topic.clone()).or_insert(0);
            *count = (*count).max(pm.tp.partition + 1);
            let fresh = PartitionLeader {
                leader: if pm.error == ErrorCode::None {
                    pm.leader
                } else {
                    None
                },
                leader_epoch: pm.leader_epoch,
            };
            let stale = self
                .partitions
                .get(&pm.tp)
                .is_some_and(|old| old.leader_epoch > fresh.leader_epoch);
            if !stale {
                self.partitions.insert(pm.tp.clone(), fresh);
            }
            // Kafka's `Metadata.handleMetadataResponse`: a partition-level
            // `InvalidMetadataException` (LEADER_NOT_AVAILABLE while the partition has no
            // leader, ...) requests another update, sent after `retry.backoff.ms`. Without
            // it a client whose only use of the partition is waiting for its leader (a
            // consumer position awaiting KIP-320 validation) waits `metadata.max.age.ms`.
            if pm.error.is_invalid_metadata() {
                invalid = true;
            }
        }
        if invalid {
            self.request_update();
        }
        for (topic, count) in counts {
            let known = self.partition_counts.entry(topic).or_insert(0);
            *known = (*known).max(count);
        }
        if self
            .topics
            .iter()
            .any(|t| !self.partition_counts.contains_key(t))
        {
            self.request_update();
        }
    }

    /// The request in flight failed (timeout or disconnect): try the next bootstrap
    /// broker after the backoff.
    pub(crate) fn on_failure(&mut self, now: Millis) {
        assert!(
            self.in_flight.take().is_some(),
            "no Metadata request in flight"
        );
        self.last_attempt_end = Some(now);
        self.next_node += 1;
    }

    /// Forgets the request in flight (end of run).
    pub(crate) fn abandon(&mut self) {
        self.in_flight = None;
    }
}

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

/// A record waiting for its outcome.
#[derive(Clone, Debug)]
struct PendingRecord {
    key: Option<String>,
    value: Value,
    /// When `send` was called.
    invoke_ms: Millis,
    /// The transaction it was sent in.
    txn: Option<TxnId>,
    /// Its headers.
    headers: Headers,
}

impl PendingRecord {
    fn timestamp(&self) -> i64 {
        RECORD_TIMESTAMP_BASE + self.invoke_ms as i64
    }

    fn value_bytes(&self) -> String {
        self.value.to_string()
    }

    /// Kafka's `AbstractRecords.estimateSizeInBytesUpperBound` for one record alone.
    fn size_upper_bound(&self) -> usize {
        BATCH_HEADER_SIZE
            + record_size(
                0,
                0,
                self.key.as_deref().map(str::as_bytes),
                self.value_bytes().len(),
                &self.headers,
            )
            + 10
    }
}

/// Length of `v` as a zig-zag varint (`ByteUtils.sizeOfVarlong`).
fn varint_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut len = 1;
    while u >= 0x80 {
        u >>= 7;
        len += 1;
    }
    len
}

/// Encoded size of a record (`DefaultRecord.sizeInBytes`, headers included).
fn record_size(
    offset_delta: usize,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value_len: usize,
    headers: &Headers,
) -> usize {
    let headers_len: usize = headers
        .iter()
        .map(|(k, v)| {
            varint_len(k.len() as i64)
                + k.len()
                + v.as_ref()
                    .map_or(varint_len(-1), |v| varint_len(v.len() as i64) + v.len())
        })
        .sum();
    let body = 1
        + varint_len(timestamp_delta)
        + varint_len(offset_delta as i64)
        + key.map_or(varint_len(-1), |k| varint_len(k.len() as i64) + k.len())
        + varint_len(value_len as i64)
        + value_len
        + varint_len(headers.len() as i64)
        + headers_len;
    varint_len(body as i64) + body
}

/// Kafka's `ProducerBatch`: records of one partition sent (and retried) together.
#[derive(Debug)]
struct ProducerBatch {
    tp: TopicPartition,
    records: Vec<PendingRecord>,
    /// Size before compression: batch header plus every record.
    size: usize,
    /// Bytes taken from `buffer.memory` for this batch.
    buffer: usize,
    created_ms: Millis,
    /// No more appends (drained, or a record did not fit).
    closed: bool,
    /// The bytes every attempt sends, encoded when first drained (and again when an
    /// epoch bump gives the batch a new sequence).
    encoded: Option<Bytes>,
    /// The producer id, epoch and base sequence of an idempotent batch, once drained.
    sequence: Option<(ProducerIdentity, i32)>,
    /// Times sent.
    attempts: u32,
    /// After a failed attempt: not to be resent before this time.
    retry_at: Option<Millis>,
    /// Some attempt may have been appended (timed out, lost, or an error that does not
    /// say "not appended").
    maybe_appended: bool,
}

impl ProducerBatch {
    fn new(tp: TopicPartition, record: PendingRecord, buffer: usize, now: Millis) -> Self {
        let mut batch = ProducerBatch {
            tp,
            records: Vec::new(),
            size: BATCH_HEADER_SIZE,
            buffer,
            created_ms: now,
            closed: false,
            encoded: None,
            sequence: None,
            attempts: 0,
            retry_at: None,
            maybe_appended: false,
        };
        batch.size += batch.size_of(&record);
        batch.records.push(record);
        batch
    }

    /// Encoded size of `record` if appended next.
    fn size_of(&self, record: &PendingRecord) -> usize {
        let timestamp_delta = self
            .records
            .first()
            .map_or(0, |first| record.timestamp() - first.timestamp());
        record_size(
            self.records.len(),
            timestamp_delta,
            record.key.as_deref().map(str::as_bytes),
            record.value_bytes().len(),
            &record.headers,
        )
    }

    /// `MemoryRecordsBuilder.estimatedBytesWritten` for an uncompressed size: the
    /// records scaled by the estimated compression ratio and its head-room.
    fn estimated(size: usize, ratio: Option<f64>) -> usize {
        match ratio {
            None => size,
            Some(r) => {
                BATCH_HEADER_SIZE
                    + ((size - BATCH_HEADER_SIZE) as f64 * r * COMPRESSION_RATE_ESTIMATION_FACTOR)
                        as usize
            }
        }
    }

    /// `ProducerBatch.tryAppend` / `MemoryRecordsBuilder.hasRoomFor`; `ratio` is the
    /// estimated compression ratio when the batch is compressed.
    fn has_room_for(&self, record: &PendingRecord, batch_size: usize, ratio: Option<f64>) -> bool {
        !self.closed && Self::estimated(self.size + self.size_of(record), ratio) <= batch_size
    }

    /// `MemoryRecordsBuilder.isFull`.
    fn is_full(&self, batch_size: usize, ratio: Option<f64>) -> bool {
        self.closed || Self::estimated(self.size, ratio) >= batch_size
    }

    fn delivery_deadline(&self, delivery_timeout_ms: u64) -> Millis {
        self.created_ms + delivery_timeout_ms
    }

    /// The sequence of the batch's last record.
    fn last_sequence(&self) -> Option<i32> {
        self.sequence
            .map(|(_, base)| base + self.records.len() as i32 - 1)
    }

    /// Gives the batch its (new) producer id, epoch and base sequence.
    fn set_sequence(&mut self, identity: ProducerIdentity, base: i32) {
        self.sequence = Some((identity, base));
        self.encoded = None;
    }

    /// The record batch v2 bytes every attempt sends (encoded once per sequence).
    fn encode(&mut self, compression: CompressionType) -> Bytes {
        if let Some(bytes) = &self.encoded {
            return bytes.clone();
        }
        let base_timestamp = self.records[0].timestamp();
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                attributes: 0,
                timestamp_delta: r.timestamp() - base_timestamp,
                offset_delta: i32::try_from(i).expect("batch record count fits in i32"),
                key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: Some(Bytes::from(r.value_bytes())),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| crate::kafka::record::Header {
                        key: k.clone(),
                        value: v.as_ref().map(|v| Bytes::copy_from_slice(v.as_bytes())),
                    })
                    .collect(),
            })
            .collect();
        let (identity, base_sequence) = self.sequence.unwrap_or((ProducerIdentity::NONE, -1));
        // A transaction's batches carry the transactional bit (every record of a batch
        // belongs to the same transaction).
        let transactional = if self.records[0].txn.is_some() {
            crate::kafka::record::TRANSACTIONAL_BIT
        } else {
            0
        };
        let batch = RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: compression.id() | transactional,
            last_offset_delta: records.len() as i32 - 1,
            base_timestamp,
            max_timestamp: self
                .records
                .iter()
                .map(PendingRecord::timestamp)
                .max()
                .unwrap_or(base_timestamp),
            producer_id: identity.producer_id,
            producer_epoch: identity.producer_epoch,
            base_sequence,
            records,
        };
        let bytes = batch.encode();
        if compression == CompressionType::None {
            assert_eq!(
                bytes.len(),
                self.size,
                "the size estimate of a batch of {} diverged from its encoding",
                self.tp
            );
        }
        self.encoded = Some(bytes.clone());
        bytes
    }
}

// ---------------------------------------------------------------- RecordAccumulator

/// Why a record could not be appended yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AppendBlocked {
    /// A new batch needs this many bytes of `buffer.memory` and fewer are free.
    Memory(usize),
}

/// Kafka's `RecordAccumulator` with its `BufferPool` and `CompressionRatioEstimator`:
/// per partition a deque of batches, the last one open.
#[derive(Debug)]
struct RecordAccumulator {
    batch_size: usize,
    linger_ms: u64,
    compression: CompressionType,
    /// `buffer.memory` and the bytes its batches hold.
    buffer_memory: usize,
    buffer_used: usize,
    /// Per topic, the estimated compression ratio (compressed / uncompressed).
    ratios: BTreeMap<Arc<str>, f64>,
    batches: BTreeMap<TopicPartition, VecDeque<ProducerBatch>>,
    /// Partitions with a batch in flight under `max.in.flight.requests.per.connection=1`.
    muted: BTreeSet<TopicPartition>,
    /// Per broker, where the next drain starts among its partitions (fairness).
    drain_index: BTreeMap<BrokerId, usize>,
}

impl RecordAccumulator {
    fn new(config: &ProducerConfig) -> Self {
        RecordAccumulator {
            batch_size: config.batch_size,
            linger_ms: config.linger_ms,
            compression: config.compression_type,
            buffer_memory: config.buffer_memory,
            buffer_used: 0,
            ratios: BTreeMap::new(),
            batches: BTreeMap::new(),
            muted: BTreeSet::new(),
            drain_index: BTreeMap::new(),
        }
    }

    /// The estimated compression ratio for `topic`, `None` when not compressing.
    fn ratio(&self, topic: &str) -> Option<f64> {
        (self.compression != CompressionType::None)
            .then(|| self.ratios.get(topic).copied().unwrap_or(1.0))
    }

    /// `CompressionRatioEstimator.updateEstimation` after a batch was encoded.
    fn observe_ratio(&mut self, topic: &Arc<str>, observed: f64) {
        let current = self.ratios.entry(topic.clone()).or_insert(1.0);
        if observed > *current {
            *current = (*current + COMPRESSION_RATIO_DETERIORATE_STEP).max(observed);
        } else if observed < *current {
            *current = (*current - COMPRESSION_RATIO_IMPROVING_STEP).max(observed);
        }
    }

    /// Whether `record` fits in the partition's open batch (no new batch needed).
    fn has_room_for(&self, tp: &TopicPartition, record: &PendingRecord) -> bool {
        let ratio = self.ratio(&tp.topic);
        self.batches
            .get(tp)
            .and_then(|d| d.back())
            .is_some_and(|b| b.has_room_for(record, self.batch_size, ratio))
    }

    /// Appends to the open batch, or closes it and starts a new one with memory from
    /// the pool (`BufferPool.allocate`); without enough free memory nothing changes.
    fn append(
        &mut self,
        tp: TopicPartition,
        record: PendingRecord,
        now: Millis,
    ) -> Result<(), (AppendBlocked, PendingRecord)> {
        let batch_size = self.batch_size;
        let ratio = self.ratio(&tp.topic);
        if let Some(last) = self.batches.get_mut(&tp).and_then(|d| d.back_mut()) {
            if last.has_room_for(&record, batch_size, ratio) {
                last.size += last.size_of(&record);
                last.records.push(record);
                return Ok(());
            }
        }
        let need = batch_size.max(record.size_upper_bound());
        if self.buffer_memory - self.buffer_used < need {
            return Err((AppendBlocked::Memory(need), record));
        }
        self.buffer_used += need;
        let deque = self.batches.entry(tp.clone()).or_default();
        if let Some(last) = deque.back_mut() {
            last.closed = true;
        }
        deque.push_back(ProducerBatch::new(tp, record, need, now));
        Ok(())
    }

    /// Returns a completed batch's memory to the pool (`BufferPool.deallocate`).
    fn deallocate(&mut self, batch: &ProducerBatch) {
        self.buffer_used = self
            .buffer_used
            .checked_sub(batch.buffer)
            .expect("freed more buffer memory than was allocated");
    }

    /// Free bytes of `buffer.memory`.
    fn available_memory(&self) -> usize {
        self.buffer_memory - self.buffer_used
    }

    /// Puts a failed batch back in its deque (`RecordAccumulator.reenqueue`): at the
    /// front, or with `in_sequence_order` among the batches that have sequences, in
    /// sequence order (`insertInSequenceOrder`).
    fn reenqueue(&mut self, mut batch: ProducerBatch, retry_at: Millis, in_sequence_order: bool) {
        batch.retry_at = Some(retry_at);
        let deque = self.batches.entry(batch.tp.clone()).or_default();
        match batch.sequence {
            Some((_, base)) if in_sequence_order => {
                let at = deque
                    .iter()
                    .position(|b| b.sequence.is_none_or(|(_, other)| other > base))
                    .unwrap_or(deque.len());
                deque.insert(at, batch);
            }
            _ => deque.push_front(batch),
        }
    }

    /// When the head batch of a deque is sendable (linger, fullness, backoff).
    fn ready_at(&self, deque: &VecDeque<ProducerBatch>) -> Option<Millis> {
        let head = deque.front()?;
        let ratio = self.ratio(&head.tp.topic);
        let lingered = if deque.len() > 1 || head.is_full(self.batch_size, ratio) {
            head.created_ms
        } else {
            head.created_ms + self.linger_ms
        };
        Some(lingered.max(head.retry_at.unwrap_or(0)))
    }

    /// `RecordAccumulator.ready`: leaders with a sendable partition, and whether some
    /// partition with batches has no known leader.
    fn ready(&self, now: Millis, metadata: &MetadataCache) -> (BTreeSet<BrokerId>, bool) {
        let mut nodes = BTreeSet::new();
        let mut unknown_leader = false;
        for (tp, deque) in &self.batches {
            if deque.is_empty() || self.muted.contains(tp) {
                continue;
            }
            match metadata.leader(tp) {
                None => unknown_leader = true,
                Some((leader, _)) => {
                    if self.ready_at(deque).is_some_and(|t| t <= now) {
                        nodes.insert(leader);
                    }
                }
            }
        }
        (nodes, unknown_leader)
    }

    /// The earliest future time a head batch with a known leader becomes sendable.
    fn next_ready_time(&self, now: Millis, metadata: &MetadataCache) -> Option<Millis> {
        self.batches
            .iter()
            .filter(|(tp, _)| !self.muted.contains(*tp) && metadata.leader(tp).is_some())
            .filter_map(|(_, deque)| self.ready_at(deque))
            .filter(|t| *t > now)
            .min()
    }

    /// `RecordAccumulator.drainBatchesForOneNode`: at most one batch per partition led by
    /// `node`, skipping muted and backing-off partitions and, for an idempotent
    /// producer, partitions whose head batch must wait for its sequence's turn; a new
    /// batch gets its sequence here. Drained batches are closed.
    fn drain(
        &mut self,
        node: BrokerId,
        now: Millis,
        metadata: &MetadataCache,
        mut idempotence: Option<(&mut TransactionManager, bool)>,
        txn: Option<&TxnClient>,
    ) -> Vec<ProducerBatch> {
        let tps: Vec<TopicPartition> = self
            .batches
            .keys()
            .filter(|tp| metadata.leader(tp).is_some_and(|(l, _)| l == node))
            .cloned()
            .collect();
        if tps.is_empty() {
            return Vec::new();
        }
        let start = self.drain_index.get(&node).copied().unwrap_or(0) % tps.len();
        let mut drained: Vec<ProducerBatch> = Vec::new();
        let mut size = 0;
        let mut visited = 0;
        for i in 0..tps.len() {
            let tp = &tps[(start + i) % tps.len()];
            visited = i + 1;
            if self.muted.contains(tp) {
                continue;
            }
            let deque = self.batches.get_mut(tp).expect("listed partition");
            let Some(head) = deque.front() else { continue };
            if head.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            if txn.is_some_and(|t| !t.can_send(tp)) {
                continue;
            }
            if let Some((tm, in_order)) = idempotence.as_mut() {
                if !tm.can_drain(tp, head.sequence, *in_order) {
                    continue;
                }
            }
            if size + head.size > MAX_REQUEST_SIZE && !drained.is_empty() {
                visited = i;
                break;
            }
            let mut batch = deque.pop_front().expect("non-empty deque");
            batch.closed = true;
            if let Some((tm, _)) = idempotence.as_mut() {
                if batch.sequence.is_none() {
                    let (identity, base) = tm.assign(tp, batch.records.len());
                    batch.set_sequence(identity, base);
                }
            }
            size += batch.size;
            drained.push(batch);
        }
        self.drain_index.insert(node, (start + visited) % tps.len());
        self.batches.retain(|_, d| !d.is_empty());
        drained
    }

    /// Removes every batch whose delivery deadline has passed.
    fn expire(&mut self, now: Millis, delivery_timeout_ms: u64) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for deque in self.batches.values_mut() {
            let mut kept = VecDeque::with_capacity(deque.len());
            for batch in deque.drain(..) {
                if batch.delivery_deadline(delivery_timeout_ms) <= now {
                    expired.push(batch);
                } else {
                    kept.push_back(batch);
                }
            }
            *deque = kept;
        }
        self.batches.retain(|_, d| !d.is_empty());
        expired
    }

    /// The earliest delivery deadline of a queued batch.
    fn next_delivery_deadline(&self, delivery_timeout_ms: u64) -> Option<Millis> {
        self.batches
            .values()
            .flatten()
            .map(|b| b.delivery_deadline(delivery_timeout_ms))
            .min()
    }

    /// Number of queued batches.
    fn batch_count(&self) -> usize {
        self.batches.values().map(VecDeque::len).sum()
    }

    /// Removes every queued batch (end of run).
    fn take_all(&mut self) -> Vec<ProducerBatch> {
        std::mem::take(&mut self.batches)
            .into_values()
            .flatten()
            .collect()
    }
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
            net: NetworkClient::with_base(config.request_timeout_ms, setup.correlation_base),
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
            let tp = blocked.memory.map_or(
                TopicPartition {
                    topic: blocked.topic,
                    partition: UNKNOWN_PARTITION,
                },
                |(tp, _)| tp,
            );
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
        let tp = blocked.memory.map_or(
            TopicPartition {
                topic: blocked.topic,
                partition: UNKNOWN_PARTITION,
            },
            |(tp, _)| tp,
        );
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
            out.disconnect(NodeId::Broker(r.broker));
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

impl Actor for Producer {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.metadata.request_update();
        self.run(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        if self.closed {
            return; // a late answer to a closed producer reaches nobody
        }
        match message {
            Message::Response {
                correlation_id,
                response,
            } => {
                if let Some(request) = self.net.complete(from, correlation_id) {
                    match (request.kind, response) {
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
                        (_, response) => panic!(
                            "{}: response {response:?} does not match its request",
                            self.process
                        ),
                    }
                }
            }
            Message::Request { request, .. } => panic!(
                "{} serves no requests, got {} from {from}",
                self.process,
                request.api_name()
            ),
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
