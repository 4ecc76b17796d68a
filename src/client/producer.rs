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
mod tests {
    use super::*;
    use crate::kafka::protocol::{PartitionMetadata, ProducePartitionResponse};

    fn config() -> ProducerConfig {
        ProducerConfig {
            linger_ms: 0,
            request_timeout_ms: 1_000,
            delivery_timeout_ms: 5_000,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            enable_idempotence: Some(false),
            ..ProducerConfig::default()
        }
    }

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    /// Metadata for topic `t`: (partition, leader, leader epoch).
    fn metadata(partitions: &[(u32, Option<BrokerId>, LeaderEpoch)]) -> MetadataResponse {
        MetadataResponse {
            brokers: vec![1, 2, 3],
            partitions: partitions
                .iter()
                .map(|&(p, leader, leader_epoch)| PartitionMetadata {
                    tp: tp(p),
                    error: if leader.is_some() {
                        ErrorCode::None
                    } else {
                        ErrorCode::LeaderNotAvailable
                    },
                    leader,
                    leader_epoch,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                })
                .collect(),
        }
    }

    /// Takes the requests sent so far: (broker, correlation id, request).
    fn take(out: &mut Outbox) -> Vec<(BrokerId, u64, Request)> {
        out.sends
            .drain(..)
            .map(|(to, m)| match (to, m) {
                (
                    NodeId::Broker(b),
                    Message::Request {
                        correlation_id,
                        request,
                    },
                ) => (b, correlation_id, request),
                other => panic!("unexpected send {other:?}"),
            })
            .collect()
    }

    fn produces(requests: &[(BrokerId, u64, Request)]) -> Vec<(BrokerId, u64, ProduceRequest)> {
        requests
            .iter()
            .filter_map(|(b, c, r)| match r {
                Request::Produce(p) => Some((*b, *c, p.clone())),
                _ => None,
            })
            .collect()
    }

    fn metadata_requests(requests: &[(BrokerId, u64, Request)]) -> Vec<(BrokerId, u64)> {
        requests
            .iter()
            .filter(|(_, _, r)| matches!(r, Request::Metadata(_)))
            .map(|(b, c, _)| (*b, *c))
            .collect()
    }

    fn respond(
        p: &mut Producer,
        now: Millis,
        broker: BrokerId,
        correlation_id: u64,
        response: Response,
        out: &mut Outbox,
    ) {
        p.on_message(
            now,
            NodeId::Broker(broker),
            Message::Response {
                correlation_id,
                response,
            },
            out,
        );
    }

    fn produce_response(partitions: &[(TopicPartition, ErrorCode, Offset)]) -> Response {
        Response::Produce(ProduceResponse {
            partitions: partitions
                .iter()
                .map(|(tp, error, base_offset)| ProducePartitionResponse {
                    log_start_offset: 0,
                    tp: tp.clone(),
                    error: *error,
                    base_offset: *base_offset,
                })
                .collect(),
        })
    }

    /// A started producer (bootstrap broker 1) whose first Metadata was answered at 0.
    fn started(
        config: ProducerConfig,
        partitions: &[(u32, Option<BrokerId>, LeaderEpoch)],
    ) -> (Producer, Outbox) {
        let mut p = Producer::new(3, config, Bugs::default(), vec![1], 42);
        let mut out = Outbox::default();
        p.metadata.add_topic(&Arc::from("t"));
        p.on_start(0, &mut out);
        let reqs = take(&mut out);
        let md = metadata_requests(&reqs);
        assert_eq!(md.len(), 1, "one Metadata request at start: {reqs:?}");
        respond(
            &mut p,
            0,
            md[0].0,
            md[0].1,
            Response::Metadata(metadata(partitions)),
            &mut out,
        );
        assert!(out.sends.is_empty() && out.history.is_empty());
        (p, out)
    }

    fn record(key: Option<&str>, value: Value) -> ProducerRecord {
        ProducerRecord {
            topic: Arc::from("t"),
            key: key.map(str::to_string),
            value,
            headers: Vec::new(),
        }
    }

    fn values(batch: &Bytes) -> Vec<u64> {
        let (decoded, used) = RecordBatch::decode(batch).expect("producer batches decode");
        assert_eq!(used, batch.len());
        decoded
            .records
            .iter()
            .map(|r| {
                std::str::from_utf8(r.value.as_ref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// Advances to each timer, answering Metadata with `md`, until a Produce is sent.
    fn until_produce(
        p: &mut Producer,
        out: &mut Outbox,
        md: &MetadataResponse,
    ) -> (Millis, Vec<(BrokerId, u64, ProduceRequest)>) {
        for _ in 0..100 {
            let now = p.next_timer().expect("a timer is armed");
            p.on_timer(now, out);
            let reqs = take(out);
            for (b, c) in metadata_requests(&reqs) {
                respond(p, now, b, c, Response::Metadata(md.clone()), out);
                let more = take(out);
                if !produces(&more).is_empty() {
                    return (now, produces(&more));
                }
            }
            if !produces(&reqs).is_empty() {
                return (now, produces(&reqs));
            }
        }
        panic!("no Produce within 100 timers");
    }

    /// (value, offset, attempts, outcome, complete_ms, invoke_ms, partition) of a send.
    type SendOp = (
        Value,
        Option<Offset>,
        u32,
        Outcome,
        Option<Millis>,
        Millis,
        u32,
    );

    /// The client-side timeout each send recorded.
    fn send_timeouts(out: &Outbox) -> Vec<Option<SendTimeout>> {
        out.history
            .iter()
            .filter_map(|e| match &e.op {
                Op::Send { timeout, .. } => Some(*timeout),
                _ => None,
            })
            .collect()
    }

    fn send_ops(out: &Outbox) -> Vec<SendOp> {
        out.history
            .iter()
            .filter_map(|e| match &e.op {
                Op::ProducerMetrics(_) => None,
                Op::Send {
                    value,
                    offset,
                    attempts,
                    partition,
                    ..
                } => {
                    assert_eq!(e.process, NodeId::Producer(3));
                    Some((
                        *value,
                        *offset,
                        *attempts,
                        e.outcome.clone(),
                        e.complete_ms,
                        e.invoke_ms,
                        partition.partition,
                    ))
                }
                other => panic!("unexpected op {other:?}"),
            })
            .collect()
    }

    /// A started idempotent producer whose `InitProducerId` was answered with id 7000,
    /// epoch 0 (partition 0 led by broker 1).
    fn idempotent(config: ProducerConfig, bugs: Bugs) -> (Producer, Outbox) {
        let mut p = Producer::new(3, config, bugs, vec![1], 42);
        let mut out = Outbox::default();
        p.metadata.add_topic(&Arc::from("t"));
        p.on_start(0, &mut out);
        let reqs = take(&mut out);
        let init: Vec<_> = reqs
            .iter()
            .filter(|(_, _, r)| matches!(r, Request::InitProducerId(_)))
            .collect();
        assert_eq!(init.len(), 1, "InitProducerId first: {reqs:?}");
        for (b, c) in metadata_requests(&reqs) {
            respond(
                &mut p,
                0,
                b,
                c,
                Response::Metadata(metadata(&[(0, Some(1), 0)])),
                &mut out,
            );
        }
        let (b, c) = (init[0].0, init[0].1);
        respond(
            &mut p,
            0,
            b,
            c,
            Response::InitProducerId(crate::kafka::protocol::InitProducerIdResponse {
                error: ErrorCode::None,
                producer_id: 7000,
                producer_epoch: 0,
            }),
            &mut out,
        );
        (p, out)
    }

    /// Answers every request sent so far as a healthy cluster would (broker 1 leads
    /// `t-0` and coordinates the transaction); returns the API names answered.
    fn answer_all(p: &mut Producer, now: Millis, out: &mut Outbox) -> Vec<&'static str> {
        let mut answered = Vec::new();
        for _ in 0..20 {
            let reqs = take(out);
            if reqs.is_empty() {
                break;
            }
            for (b, c, r) in reqs {
                answered.push(r.api_name());
                let response = match &r {
                    Request::Metadata(_) => Response::Metadata(metadata(&[(0, Some(1), 0)])),
                    Request::FindCoordinator(_) => {
                        Response::FindCoordinator(crate::kafka::protocol::FindCoordinatorResponse {
                            error: ErrorCode::None,
                            node_id: Some(1),
                        })
                    }
                    Request::InitProducerId(_) => {
                        Response::InitProducerId(crate::kafka::protocol::InitProducerIdResponse {
                            error: ErrorCode::None,
                            producer_id: 7000,
                            producer_epoch: 0,
                        })
                    }
                    Request::Produce(pr) => produce_response(
                        &pr.partitions
                            .iter()
                            .map(|(tp, _)| (tp.clone(), ErrorCode::None, 0))
                            .collect::<Vec<_>>(),
                    ),
                    Request::EndTxn(e) => {
                        Response::EndTxn(crate::kafka::protocol::EndTxnResponse {
                            error: ErrorCode::None,
                            producer_id: e.producer_id,
                            producer_epoch: e.producer_epoch + 1,
                        })
                    }
                    other => panic!("unexpected request {other:?}"),
                };
                respond(p, now, b, c, response, out);
            }
        }
        answered
    }

    /// `KafkaProducer.close()` with a transaction open (Kafka 4.x `Sender.run`): the
    /// records under way complete, then the transaction is aborted ("Aborting incomplete
    /// transaction due to shutdown"), then the producer is closed: no timers, nothing
    /// sent, late answers ignored.
    #[test]
    fn close_completes_the_records_then_aborts_the_open_transaction() {
        let config = ProducerConfig {
            transactional_id: Some("etl-0".into()),
            ..idempotent_config()
        };
        let setup = ProducerSetup {
            process: NodeId::Pipeline(0),
            transaction_version: 2,
            correlation_base: 0,
        };
        let mut p = Producer::with_setup(setup, config, Bugs::default(), vec![1], 42);
        let mut out = Outbox::default();
        p.metadata.add_topic(&Arc::from("t"));
        p.on_start(0, &mut out);
        p.init_transactions(0, &mut out);
        answer_all(&mut p, 1, &mut out);
        assert_eq!(p.drain_txn_events(), vec![TxnEvent::Initialized]);
        p.begin_transaction(2, 1, &mut out);
        p.send(2, record(Some("k"), 5), &mut out);
        p.close(3, &mut out);
        assert!(!p.is_closed(), "the record is under way");
        let answered = answer_all(&mut p, 4, &mut out);
        assert_eq!(answered, vec!["Produce", "EndTxn"]);
        assert!(p.is_closed());
        assert_eq!(p.next_timer(), None);
        assert_eq!(
            p.drain_txn_events(),
            vec![TxnEvent::Ended {
                commit: false,
                result: TxnResult::Done
            }]
        );
        // A closed producer ignores late answers and sends nothing more.
        respond(&mut p, 5, 1, 12345, produce_response(&[]), &mut out);
        assert!(out.sends.is_empty());
    }

    fn idempotent_config() -> ProducerConfig {
        ProducerConfig {
            enable_idempotence: None,
            delivery_timeout_ms: 60_000,
            ..config()
        }
    }

    /// (producer id, epoch, base sequence, values) of a produced batch.
    fn sequenced(batch: &Bytes) -> (i64, i16, i32, Vec<u64>) {
        let h = crate::kafka::record::BatchHeader::parse(batch).unwrap();
        (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            values(batch),
        )
    }

    /// Sends one record per millisecond and returns the five Produce requests, each
    /// holding one batch of one record.
    fn five_in_flight(p: &mut Producer, out: &mut Outbox) -> Vec<(BrokerId, u64, ProduceRequest)> {
        let mut sent = Vec::new();
        for i in 0..5 {
            p.send(i, record(None, i), out);
            sent.extend(produces(&take(out)));
        }
        assert_eq!(sent.len(), 5, "five requests in flight");
        sent
    }

    #[test]
    fn idempotent_batches_carry_producer_id_epoch_and_sequences() {
        let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
        let sent = five_in_flight(&mut p, &mut out);
        for (i, (_, _, req)) in sent.iter().enumerate() {
            let (pid, epoch, seq, vals) = sequenced(&req.partitions[0].1);
            assert_eq!((pid, epoch, seq, vals), (7000, 0, i as i32, vec![i as u64]));
        }
    }

    #[test]
    fn nothing_is_sent_before_the_producer_id_arrives() {
        let mut p = Producer::new(3, idempotent_config(), Bugs::default(), vec![1], 42);
        let mut out = Outbox::default();
        p.metadata.add_topic(&Arc::from("t"));
        p.on_start(0, &mut out);
        for (b, c) in metadata_requests(&take(&mut out)) {
            respond(
                &mut p,
                0,
                b,
                c,
                Response::Metadata(metadata(&[(0, Some(1), 0)])),
                &mut out,
            );
        }
        p.send(1, record(None, 1), &mut out);
        p.on_timer(10, &mut out);
        assert!(produces(&take(&mut out)).is_empty());
    }

    #[test]
    fn a_failed_batch_is_retried_in_sequence_order_before_later_ones() {
        let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
        let sent = five_in_flight(&mut p, &mut out);
        // The first batch is refused; the broker then sees a gap for the other four.
        respond(
            &mut p,
            10,
            1,
            sent[0].1,
            produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
            &mut out,
        );
        for (b, c, _) in &sent[1..] {
            respond(
                &mut p,
                10,
                *b,
                *c,
                produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
                &mut out,
            );
        }
        // Retries go one at a time, lowest sequence first, without an epoch bump.
        let mut offsets = Vec::new();
        let md = metadata(&[(0, Some(1), 0)]);
        let (mut now, mut reqs) = until_produce(&mut p, &mut out, &md);
        for expected_seq in 0..5 {
            assert_eq!(reqs.len(), 1, "one retry at a time");
            let (_, epoch, seq, _) = sequenced(&reqs[0].2.partitions[0].1);
            assert_eq!((epoch, seq), (0, expected_seq));
            let offset = 100 + i64::from(expected_seq);
            let response = produce_response(&[(tp(0), ErrorCode::None, offset)]);
            respond(&mut p, now, 1, reqs[0].1, response, &mut out);
            offsets.push(offset);
            reqs = produces(&take(&mut out));
            if reqs.is_empty() && expected_seq < 4 {
                (now, reqs) = until_produce(&mut p, &mut out, &md);
            }
        }
        let ops = send_ops(&out);
        assert_eq!(
            ops.iter().map(|o| o.1.unwrap()).collect::<Vec<_>>(),
            offsets
        );
        assert!(ops.iter().all(|o| o.3 == Outcome::Ok));
    }

    #[test]
    fn a_duplicate_is_acknowledged_with_the_original_offset() {
        let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
        p.send(0, record(None, 9), &mut out);
        let reqs = produces(&take(&mut out));
        // The response is lost: the request times out and the batch is resent.
        p.on_disconnect(5, NodeId::Broker(1), &mut out);
        let (now, retry) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
        assert_eq!(
            retry[0].2.partitions[0].1, reqs[0].2.partitions[0].1,
            "same bytes, same sequence"
        );
        respond(
            &mut p,
            now,
            1,
            retry[0].1,
            produce_response(&[(tp(0), ErrorCode::DuplicateSequenceNumber, 41)]),
            &mut out,
        );
        let ops = send_ops(&out);
        assert_eq!(
            (ops[0].1, ops[0].2, ops[0].3.clone()),
            (Some(41), 2, Outcome::Ok)
        );
    }

    #[test]
    fn a_real_gap_bumps_the_epoch_and_restarts_sequences() {
        let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
        let sent = five_in_flight(&mut p, &mut out);
        // Sequence 0 is refused as out of order although it is the next one: the
        // broker lost our state. The producer bumps its epoch locally (KIP-360).
        respond(
            &mut p,
            10,
            1,
            sent[0].1,
            produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
            &mut out,
        );
        for (b, c, _) in &sent[1..] {
            respond(
                &mut p,
                10,
                *b,
                *c,
                produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
                &mut out,
            );
        }
        let (now, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
        let (pid, epoch, seq, vals) = sequenced(&reqs[0].2.partitions[0].1);
        assert_eq!((pid, epoch, seq, vals), (7000, 1, 0, vec![0]));
        respond(
            &mut p,
            now,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        let (_, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
        let (_, epoch, seq, vals) = sequenced(&reqs[0].2.partitions[0].1);
        assert_eq!((epoch, seq, vals), (1, 1, vec![1]));
    }

    #[test]
    fn without_in_order_retry_failed_batches_go_out_of_sequence_order() {
        let bugs = Bugs::of(&[Bug::NoInOrderRetry]);
        let (mut p, mut out) = idempotent(idempotent_config(), bugs);
        let sent = five_in_flight(&mut p, &mut out);
        for (b, c, _) in &sent {
            let response = produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]);
            respond(&mut p, 10, *b, *c, response, &mut out);
        }
        // Re-queued at the front one by one, the batches go again in reverse order,
        // without waiting for the lowest sequence.
        let md = metadata(&[(0, Some(1), 0)]);
        let (now, reqs) = until_produce(&mut p, &mut out, &md);
        let order: Vec<u64> = reqs
            .iter()
            .flat_map(|r| sequenced(&r.2.partitions[0].1).3)
            .collect();
        assert_eq!(order[0], 4, "{order:?}");
        assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
        // An out-of-order answer counts as lost state: the epoch is bumped and the
        // queue is sequenced afresh in its current order.
        for (b, c, _) in &reqs {
            let response = produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]);
            respond(&mut p, now, *b, *c, response, &mut out);
        }
        let (_, reqs) = until_produce(&mut p, &mut out, &md);
        let (_, epoch, seq, _) = sequenced(&reqs[0].2.partitions[0].1);
        assert_eq!((epoch, seq), (1, 0));
    }

    /// KIP-82: a record's headers go into its record batch v2 entry, in order, a null
    /// value as null (`DefaultRecord.writeTo`), and count in the batch's size estimate.
    #[test]
    fn headers_are_encoded_into_the_batch() {
        let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
        let headers = crate::history::headers_for(42, 3);
        let bare = PendingRecord {
            key: Some("a".into()),
            value: 42,
            invoke_ms: 0,
            txn: None,
            headers: Vec::new(),
        };
        let with = PendingRecord {
            headers: headers.clone(),
            ..bare.clone()
        };
        // Header count 3; each key and value with its length: "h0" "42.0" "h1" "42.1" "h2" null.
        let extra = (1 + 2 + 1 + 4) * 2 + (1 + 2 + 1);
        assert_eq!(with.size_upper_bound(), bare.size_upper_bound() + extra);
        let record = ProducerRecord {
            headers,
            ..record(Some("a"), 42)
        };
        p.send(0, record, &mut out);
        let reqs = produces(&take(&mut out));
        let batch = &reqs[0].2.partitions[0].1;
        let (decoded, _) = RecordBatch::decode(batch).unwrap();
        let got: Vec<(String, Option<Bytes>)> = decoded.records[0]
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("h0".to_string(), Some(Bytes::from("42.0"))),
                ("h1".to_string(), Some(Bytes::from("42.1"))),
                ("h2".to_string(), None),
            ]
        );
    }

    #[test]
    fn a_full_buffer_blocks_send_until_max_block_ms() {
        let config = ProducerConfig {
            buffer_memory: 2 * 16_384,
            max_block_ms: 1_000,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0), (1, Some(1), 0)]);
        // Two keyed records on different partitions take the whole pool.
        let other = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| partition_for_key(k.as_bytes(), 2) != partition_for_key(b"a", 2))
            .unwrap();
        p.send(0, record(Some("a"), 1), &mut out);
        p.send(0, record(Some(&other), 2), &mut out);
        let parts: BTreeSet<u32> = produces(&take(&mut out))
            .iter()
            .map(|(_, _, r)| r.partitions[0].0.partition)
            .collect();
        assert_eq!(parts.len(), 2, "keys a and b land on both partitions");
        assert!(!p.is_blocked());
        p.send(5, record(Some("a"), 3), &mut out);
        assert!(p.is_blocked(), "no memory for a third batch");
        assert_eq!(p.next_timer(), Some(1_005), "max.block.ms deadline armed");
        p.on_timer(1_005, &mut out);
        assert!(!p.is_blocked());
        let ops = send_ops(&out);
        assert_eq!(ops.len(), 1);
        let Outcome::Fail { error } = &ops[0].3 else {
            panic!("{ops:?}")
        };
        assert!(error.starts_with("TimeoutException: Failed to allocate 16384 bytes within the configured max blocking time 1000 ms."), "{error}");
        assert_eq!((ops[0].4, ops[0].5), (Some(1_005), 5));
        // `BufferPool.allocate`: send() itself blocked.
        assert_eq!(
            send_timeouts(&out),
            vec![Some(SendTimeout::BlockedOnMemory)]
        );
    }

    #[test]
    fn a_blocked_send_proceeds_when_a_batch_frees_memory() {
        let config = ProducerConfig {
            buffer_memory: 16_384,
            max_block_ms: 1_000,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(Some("a"), 1), &mut out);
        let reqs = produces(&take(&mut out));
        p.send(1, record(Some("a"), 2), &mut out);
        assert!(p.is_blocked());
        respond(
            &mut p,
            20,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        assert!(
            !p.is_blocked(),
            "the acknowledged batch returned its memory"
        );
        let reqs = produces(&take(&mut out));
        assert_eq!(values(&reqs[0].2.partitions[0].1), vec![2]);
    }

    #[test]
    fn gzip_batches_compress_and_are_counted() {
        let config = ProducerConfig {
            compression_type: CompressionType::Gzip,
            linger_ms: 50,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        for i in 0..200 {
            p.send(i / 10, record(Some("k"), 1_000_000 + i), &mut out);
        }
        let (_, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
        let batch = &reqs[0].2.partitions[0].1;
        let h = crate::kafka::record::BatchHeader::parse(batch).unwrap();
        assert_eq!(
            h.attributes & crate::kafka::record::COMPRESSION_MASK,
            1,
            "gzip"
        );
        assert_eq!(values(batch), (1_000_000..1_000_200).collect::<Vec<_>>());
        p.finish(100, &mut out);
        let Some(Op::ProducerMetrics(m)) = out.history.last().map(|e| &e.op) else {
            panic!("metrics last")
        };
        assert_eq!((m.batches, m.records), (1, 200));
        assert!(m.batch_bytes * 3 < m.uncompressed_bytes, "{m:?}");
    }

    #[test]
    fn records_within_linger_share_one_produce() {
        let config = ProducerConfig {
            linger_ms: 10,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        for (t, v) in [(0, 1), (3, 2), (6, 3)] {
            p.send(t, record(None, v), &mut out);
            assert!(take(&mut out).is_empty(), "nothing sent before linger.ms");
        }
        assert_eq!(p.pending(), 3);
        assert_eq!(p.next_timer(), Some(10), "wakes exactly at linger expiry");
        p.on_timer(10, &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 1);
        let (broker, cid, req) = &reqs[0];
        assert_eq!((*broker, req.acks, req.timeout_ms), (1, Acks::All, 1_000));
        assert_eq!(req.partitions.len(), 1);
        assert_eq!(req.partitions[0].0, tp(0));
        assert_eq!(values(&req.partitions[0].1), vec![1, 2, 3]);
        let (decoded, _) = RecordBatch::decode(&req.partitions[0].1).unwrap();
        assert_eq!(decoded.base_timestamp, RECORD_TIMESTAMP_BASE);
        assert_eq!(decoded.max_timestamp, RECORD_TIMESTAMP_BASE + 6);
        assert_eq!((decoded.producer_id, decoded.base_sequence), (-1, -1));
        respond(
            &mut p,
            12,
            1,
            *cid,
            produce_response(&[(tp(0), ErrorCode::None, 100)]),
            &mut out,
        );
        assert_eq!(
            send_ops(&out),
            vec![
                (1, Some(100), 1, Outcome::Ok, Some(12), 0, 0),
                (2, Some(101), 1, Outcome::Ok, Some(12), 3, 0),
                (3, Some(102), 1, Outcome::Ok, Some(12), 6, 0),
            ]
        );
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn batch_size_closes_a_batch() {
        // Header 61 + 8 bytes per keyless one-digit record sent at the same time: two
        // records make 77 bytes, a third would make 85 > 80.
        let config = ProducerConfig {
            batch_size: 80,
            linger_ms: 1_000,
            request_timeout_ms: 2_000,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        p.send(0, record(None, 2), &mut out);
        assert!(
            take(&mut out).is_empty(),
            "77 <= 80: the batch is still open"
        );
        p.send(0, record(None, 3), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 1, "the closed batch is sent at once");
        assert_eq!(values(&reqs[0].2.partitions[0].1), vec![1, 2]);
        assert_eq!(reqs[0].2.partitions[0].1.len(), 77);
        assert_eq!(p.next_timer(), Some(1_000), "the new batch lingers");
        p.on_timer(1_000, &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(values(&reqs[0].2.partitions[0].1), vec![3]);
    }

    #[test]
    fn retriable_errors_back_off_exponentially_then_succeed() {
        let md = metadata(&[(0, Some(1), 0)]);
        let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
        p.send(0, record(Some("k"), 7), &mut out);
        let first = produces(&take(&mut out));
        assert_eq!(first.len(), 1, "linger.ms=0 sends at once");
        let bytes = first[0].2.partitions[0].1.clone();
        respond(
            &mut p,
            5,
            1,
            first[0].1,
            produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
            &mut out,
        );
        assert!(
            produces(&take(&mut out)).is_empty(),
            "no resend before the backoff"
        );
        let (t2, second) = until_produce(&mut p, &mut out, &md);
        assert!(
            (5 + 80..=5 + 120).contains(&t2),
            "first backoff 100 ms +/- 20%, resent at {t2}"
        );
        assert_eq!(
            second[0].2.partitions[0].1, bytes,
            "a retry resends the same bytes"
        );
        respond(
            &mut p,
            t2 + 1,
            1,
            second[0].1,
            produce_response(&[(tp(0), ErrorCode::RequestTimedOut, -1)]),
            &mut out,
        );
        let (t3, third) = until_produce(&mut p, &mut out, &md);
        assert!(
            (t2 + 1 + 160..=t2 + 1 + 240).contains(&t3),
            "second backoff 200 ms +/- 20%, resent at {t3}"
        );
        respond(
            &mut p,
            t3 + 1,
            1,
            third[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 40)]),
            &mut out,
        );
        assert_eq!(
            send_ops(&out),
            vec![(7, Some(40), 3, Outcome::Ok, Some(t3 + 1), 0, 0)]
        );
    }

    #[test]
    fn a_timed_out_attempt_makes_the_final_failure_indefinite() {
        let md = metadata(&[(0, Some(1), 0)]);
        let config = ProducerConfig {
            retries: 1,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 9), &mut out);
        let first = produces(&take(&mut out));
        assert_eq!(p.next_timer(), Some(1_000), "wakes at the request deadline");
        p.on_timer(1_000, &mut out);
        let reqs = take(&mut out);
        assert!(produces(&reqs).is_empty());
        assert_eq!(
            metadata_requests(&reqs).len(),
            1,
            "a timeout refreshes metadata"
        );
        respond(
            &mut p,
            1_000,
            1,
            metadata_requests(&reqs)[0].1,
            Response::Metadata(md.clone()),
            &mut out,
        );
        let (_, second) = until_produce(&mut p, &mut out, &md);
        respond(
            &mut p,
            1_200,
            1,
            second[0].1,
            produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
            &mut out,
        );
        let ops = send_ops(&out);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].2, 2, "two attempts");
        match &ops[0].3 {
            Outcome::Info { reason } => assert!(
                reason.starts_with("NOT_ENOUGH_REPLICAS after 2 attempts"),
                "{reason}"
            ),
            other => panic!("expected info, got {other:?}"),
        }
        // The late answer to the timed-out request is ignored.
        respond(
            &mut p,
            1_300,
            1,
            first[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        assert_eq!(out.history.len(), 1);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn only_not_enough_replicas_fails_definitely() {
        let md = metadata(&[(0, Some(1), 0)]);
        let config = ProducerConfig {
            retries: 2,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        let mut reqs = produces(&take(&mut out));
        let mut now = 0;
        for attempt in 1..=3 {
            respond(
                &mut p,
                now + 1,
                1,
                reqs[0].1,
                produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
                &mut out,
            );
            if attempt < 3 {
                (now, reqs) = until_produce(&mut p, &mut out, &md);
            }
        }
        assert_eq!(
            send_ops(&out),
            vec![(
                1,
                None,
                3,
                Outcome::Fail {
                    error: "NOT_ENOUGH_REPLICAS".into()
                },
                Some(now + 1),
                0,
                0
            )]
        );
    }

    #[test]
    fn not_leader_is_indefinite_when_retries_run_out() {
        let config = ProducerConfig {
            retries: 0,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        let reqs = produces(&take(&mut out));
        respond(
            &mut p,
            1,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
            &mut out,
        );
        assert_eq!(
            send_ops(&out)[0].3,
            Outcome::Info {
                reason: "NOT_LEADER_OR_FOLLOWER after 1 attempts".into()
            }
        );
    }

    #[test]
    fn delivery_timeout_fails_a_batch_that_was_never_sent() {
        let md = metadata(&[(0, None, 0)]);
        let (mut p, mut out) = started(config(), &[(0, None, 0)]);
        p.send(0, record(None, 1), &mut out);
        for _ in 0..200 {
            if !out.history.is_empty() {
                break;
            }
            let now = p.next_timer().unwrap();
            assert!(now <= 5_000);
            p.on_timer(now, &mut out);
            let reqs = take(&mut out);
            assert!(produces(&reqs).is_empty(), "no leader, nothing sent");
            for (b, c) in metadata_requests(&reqs) {
                respond(&mut p, now, b, c, Response::Metadata(md.clone()), &mut out);
            }
        }
        assert_eq!(
            send_ops(&out),
            vec![(
                1,
                None,
                0,
                Outcome::Fail {
                    error: "TimeoutException: Expiring 1 record(s) for t-0:5000 ms has passed \
                            since batch creation"
                        .into()
                },
                Some(5_000),
                0,
                0
            )]
        );
        // `RecordAccumulator.expiredBatches`: an expiry, not a blocked send().
        assert_eq!(send_timeouts(&out), vec![Some(SendTimeout::Expired)]);
    }

    #[test]
    fn max_block_fails_a_send_whose_topic_never_appears() {
        let mut p = Producer::new(3, config(), Bugs::default(), vec![1, 2], 1);
        let mut out = Outbox::default();
        p.on_start(0, &mut out);
        p.send(10, record(None, 5), &mut out);
        for _ in 0..1_000 {
            if !out.history.is_empty() {
                break;
            }
            let now = p.next_timer().unwrap();
            p.on_timer(now, &mut out);
            out.sends.clear(); // every Metadata request is lost
        }
        assert_eq!(
            send_ops(&out),
            vec![(
                5,
                None,
                0,
                Outcome::Fail {
                    error: "TimeoutException: Topic t not present in metadata after 60000 ms."
                        .into()
                },
                Some(60_010),
                10,
                UNKNOWN_PARTITION
            )]
        );
        // `KafkaProducer.waitOnMetadata`: send() itself blocked.
        assert_eq!(
            send_timeouts(&out),
            vec![Some(SendTimeout::BlockedOnMetadata)]
        );
    }

    #[test]
    fn delivery_timeout_expires_a_batch_in_flight() {
        let md = metadata(&[(0, Some(1), 0)]);
        let config = ProducerConfig {
            request_timeout_ms: 4_000,
            delivery_timeout_ms: 4_000,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        let reqs = produces(&take(&mut out));
        respond(
            &mut p,
            1,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
            &mut out,
        );
        let (_, second) = until_produce(&mut p, &mut out, &md);
        assert_eq!(
            p.next_timer(),
            Some(4_000),
            "wakes at the delivery deadline"
        );
        p.on_timer(4_000, &mut out);
        assert_eq!(
            send_ops(&out),
            vec![(
                1,
                None,
                2,
                Outcome::Info {
                    reason: "delivery.timeout.ms expired after 2 attempts".into()
                },
                Some(4_000),
                0,
                0
            )]
        );
        respond(
            &mut p,
            4_001,
            1,
            second[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        assert_eq!(out.history.len(), 1, "the late success is ignored");
    }

    #[test]
    fn one_in_flight_request_mutes_the_partition() {
        let config = ProducerConfig {
            batch_size: 0,
            max_in_flight_requests_per_connection: 1,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        p.send(0, record(None, 2), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 1, "the second batch waits for the first");
        assert_eq!(values(&reqs[0].2.partitions[0].1), vec![1]);
        // The leader moves to broker 2 while the first batch is in flight to broker 1:
        // broker 2's connection is free, but the partition stays muted.
        p.metadata.request_update();
        p.on_timer(100, &mut out);
        let md = metadata_requests(&take(&mut out));
        respond(
            &mut p,
            100,
            md[0].0,
            md[0].1,
            Response::Metadata(metadata(&[(0, Some(2), 1)])),
            &mut out,
        );
        assert!(
            produces(&take(&mut out)).is_empty(),
            "muted while a batch is in flight"
        );
        respond(
            &mut p,
            101,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 1, "unmuted by the response");
        assert_eq!(reqs[0].0, 2);
        assert_eq!(values(&reqs[0].2.partitions[0].1), vec![2]);
    }

    #[test]
    fn five_in_flight_requests_can_reorder_a_partition() {
        let md = metadata(&[(0, Some(1), 0)]);
        let config = ProducerConfig {
            batch_size: 0,
            max_in_flight_requests_per_connection: 5,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        p.send(0, record(None, 2), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 2, "two batches of one partition in flight");
        assert!(reqs
            .iter()
            .all(|(b, _, r)| *b == 1 && r.partitions[0].0 == tp(0)));
        respond(
            &mut p,
            1,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
            &mut out,
        );
        respond(
            &mut p,
            2,
            1,
            reqs[1].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        let (_, retry) = until_produce(&mut p, &mut out, &md);
        assert_eq!(values(&retry[0].2.partitions[0].1), vec![1]);
        respond(
            &mut p,
            300,
            1,
            retry[0].1,
            produce_response(&[(tp(0), ErrorCode::None, 1)]),
            &mut out,
        );
        let offsets: Vec<(Value, Option<Offset>)> =
            send_ops(&out).iter().map(|o| (o.0, o.1)).collect();
        assert_eq!(
            offsets,
            vec![(2, Some(0)), (1, Some(1))],
            "claim C12: reordered"
        );
    }

    #[test]
    fn a_request_timeout_fails_every_request_to_that_broker() {
        let config = ProducerConfig {
            batch_size: 0,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        p.send(10, record(None, 2), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs.len(), 2);
        p.on_timer(1_000, &mut out);
        // Both batches were re-enqueued at the front, the newer one last: reversed.
        assert_eq!(p.accumulator.batch_count(), 2);
        let order: Vec<u64> = p.accumulator.batches[&tp(0)]
            .iter()
            .map(|b| b.records[0].value)
            .collect();
        assert_eq!(order, vec![2, 1]);
        respond(
            &mut p,
            1_001,
            1,
            reqs[1].1,
            produce_response(&[(tp(0), ErrorCode::None, 0)]),
            &mut out,
        );
        assert!(
            out.history.is_empty(),
            "responses on the closed connection are ignored"
        );
    }

    #[test]
    fn acks_zero_completes_at_send() {
        let config = ProducerConfig {
            acks: Acks::None,
            ..config()
        };
        let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
        p.send(4, record(Some("a"), 1), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs[0].2.acks, Acks::None);
        assert_eq!(
            send_ops(&out),
            vec![(1, None, 1, Outcome::Ok, Some(4), 4, 0)]
        );
        assert_eq!(p.pending(), 0);
        assert_eq!(
            p.next_timer(),
            Some(300_000),
            "nothing in flight: only metadata.max.age.ms"
        );
    }

    #[test]
    fn records_wait_for_metadata_and_keys_pick_partitions() {
        let mut p = Producer::new(3, config(), Bugs::default(), vec![1], 42);
        let mut out = Outbox::default();
        p.on_start(0, &mut out);
        let md = metadata_requests(&take(&mut out));
        let keys = ["a", "b", "c", "d", "e", "f"];
        for (i, k) in keys.iter().enumerate() {
            p.send(1, record(Some(k), i as u64), &mut out);
        }
        assert!(produces(&take(&mut out)).is_empty(), "no metadata yet");
        // The first Metadata did not name `t`: the new topic asks for another one.
        respond(
            &mut p,
            2,
            1,
            md[0].1,
            Response::Metadata(metadata(&[])),
            &mut out,
        );
        assert_eq!(
            p.next_timer(),
            Some(102),
            "metadata retried retry.backoff.ms after the last answer"
        );
        p.on_timer(102, &mut out);
        let md = metadata_requests(&take(&mut out));
        let partitions = [(0, Some(1), 0), (1, Some(2), 0), (2, Some(3), 0)];
        respond(
            &mut p,
            102,
            1,
            md[0].1,
            Response::Metadata(metadata(&partitions)),
            &mut out,
        );
        let reqs = produces(&take(&mut out));
        let mut sent: Vec<(TopicPartition, Vec<u64>)> = Vec::new();
        for (broker, _, req) in &reqs {
            for (tp, bytes) in &req.partitions {
                assert_eq!(*broker, tp.partition + 1, "sent to the leader");
                sent.push((tp.clone(), values(bytes)));
            }
        }
        sent.sort();
        let mut expected: Vec<(TopicPartition, Vec<u64>)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let tp = tp(partition_for_key(k.as_bytes(), 3));
            match expected.iter_mut().find(|(t, _)| *t == tp) {
                Some((_, v)) => v.push(i as u64),
                None => expected.push((tp, vec![i as u64])),
            }
        }
        expected.sort();
        assert_eq!(sent, expected);
    }

    #[test]
    fn metadata_rotates_bootstrap_brokers_and_ignores_stale_epochs() {
        let mut p = Producer::new(3, config(), Bugs::default(), vec![1, 2, 3], 9);
        let mut out = Outbox::default();
        p.metadata.add_topic(&Arc::from("t"));
        p.on_start(0, &mut out);
        let first = metadata_requests(&take(&mut out));
        assert_eq!(p.next_timer(), Some(1_000));
        p.on_timer(1_000, &mut out);
        assert!(
            take(&mut out).is_empty(),
            "retry.backoff.ms after the failure"
        );
        assert_eq!(p.next_timer(), Some(1_100));
        p.on_timer(1_100, &mut out);
        let second = metadata_requests(&take(&mut out));
        assert_eq!(second[0].0, first[0].0 % 3 + 1, "the next bootstrap broker");
        respond(
            &mut p,
            1_100,
            second[0].0,
            second[0].1,
            Response::Metadata(metadata(&[(0, Some(1), 5)])),
            &mut out,
        );
        // A refresh with an older leader epoch does not move the leader.
        p.metadata.request_update();
        p.on_timer(1_200, &mut out);
        let third = metadata_requests(&take(&mut out));
        respond(
            &mut p,
            1_200,
            third[0].0,
            third[0].1,
            Response::Metadata(metadata(&[(0, Some(2), 4)])),
            &mut out,
        );
        p.send(1_200, record(None, 1), &mut out);
        let reqs = produces(&take(&mut out));
        assert_eq!(reqs[0].0, 1);
        assert_eq!(
            p.metadata.due_at(),
            Some(1_200 + 300_000),
            "metadata.max.age.ms"
        );
    }

    /// Kafka's `Metadata.handleMetadataResponse`: a partition without a leader
    /// (LEADER_NOT_AVAILABLE, an `InvalidMetadataException`) asks again after
    /// `retry.backoff.ms`, not after `metadata.max.age.ms`, until the partition has one.
    #[test]
    fn a_leaderless_partition_asks_for_metadata_again_after_the_backoff() {
        let mut cache = MetadataCache::new(vec![1, 2, 3], 0, 300_000, 100);
        let mut net: NetworkClient<()> = NetworkClient::new(1_000);
        let mut out = Outbox::default();
        cache.add_topic(&Arc::from("t"));
        cache.poll(0, &mut net, (), &mut out);
        cache.on_response(10, &metadata(&[(0, Some(1), 3), (1, None, 4)]));
        assert_eq!(cache.leader(&tp(1)), None);
        assert_eq!(
            cache.due_at(),
            Some(110),
            "retry.backoff.ms, not the max age"
        );
        cache.poll(110, &mut net, (), &mut out);
        assert_eq!(cache.due_at(), None, "in flight");
        cache.on_response(120, &metadata(&[(0, Some(1), 3), (1, Some(2), 5)]));
        assert_eq!(cache.leader(&tp(1)), Some((2, 5)));
        assert_eq!(
            cache.due_at(),
            Some(120 + 300_000),
            "every partition led: metadata.max.age.ms"
        );
        // Other partition-level errors that are not InvalidMetadataException do not.
        let mut answer = metadata(&[(0, Some(1), 3), (1, Some(2), 5)]);
        answer.partitions[1].error = ErrorCode::UnknownLeaderEpoch;
        cache.request_update();
        cache.poll(300_120, &mut net, (), &mut out);
        cache.on_response(300_130, &answer);
        assert_eq!(cache.due_at(), Some(300_130 + 300_000));
    }

    #[test]
    fn metadata_avoids_a_broker_with_a_hung_request() {
        let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
        p.metadata.bootstrap = vec![1, 2];
        p.send(0, record(None, 1), &mut out);
        assert_eq!(produces(&take(&mut out))[0].0, 1, "in flight to broker 1");
        for next_node in 0..2 {
            p.metadata.next_node = next_node;
            p.metadata.request_update();
            let now = p.next_timer().unwrap();
            assert!(now < 1_000, "before the produce times out");
            p.on_timer(now, &mut out);
            let md = metadata_requests(&take(&mut out));
            assert_eq!(md[0].0, 2, "the least loaded bootstrap broker");
            respond(
                &mut p,
                now,
                2,
                md[0].1,
                Response::Metadata(metadata(&[(0, Some(1), 0)])),
                &mut out,
            );
        }
    }

    #[test]
    fn finish_reports_pending_records() {
        let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
        p.send(0, record(None, 1), &mut out);
        p.finish(50, &mut out);
        assert_eq!(
            send_ops(&out),
            vec![(
                1,
                None,
                1,
                Outcome::Info {
                    reason: "pending at end of run".into()
                },
                None,
                0,
                0
            )]
        );
        assert_eq!(p.pending(), 0);
    }

    /// A fake cluster answering at random (success, errors, lost requests, leader moves):
    /// every record gets exactly one outcome, acknowledged offsets are unique, and the
    /// timer never points at the past.
    #[test]
    fn randomized_runs_complete_every_record_exactly_once() {
        for seed in 0..30 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let config = ProducerConfig {
                acks: [Acks::None, Acks::Leader, Acks::All][rng.gen_range(0..3)],
                linger_ms: rng.gen_range(0..20),
                batch_size: rng.gen_range(0..300),
                max_in_flight_requests_per_connection: rng.gen_range(1..=5),
                retries: rng.gen_range(0..6),
                ..config()
            };
            let mut p = Producer::new(0, config.clone(), Bugs::default(), vec![1, 2, 3], seed);
            let mut out = Outbox::default();
            let mut leaders: [(BrokerId, LeaderEpoch); 3] = [(1, 0), (2, 0), (3, 0)];
            let mut next_offset = [0i64; 3];
            let mut queue: Vec<(BrokerId, u64, Response)> = Vec::new();
            // value -> (partition, offset) of its last append
            let mut log: BTreeMap<Value, (u32, Offset)> = BTreeMap::new();
            let mut now = 0;
            let mut sent = 0u64;
            p.on_start(now, &mut out);
            for _ in 0..4_000 {
                for (broker, cid, request) in take(&mut out) {
                    match request {
                        Request::Metadata(_) => {
                            let parts: Vec<_> = (0..3)
                                .map(|i| (i as u32, Some(leaders[i].0), leaders[i].1))
                                .collect();
                            queue.push((broker, cid, Response::Metadata(metadata(&parts))));
                        }
                        Request::Produce(req) => {
                            // A lost request or response (appended or not).
                            let lost = config.acks == Acks::None || rng.gen_bool(0.1);
                            let mut answers = Vec::new();
                            for (tp, bytes) in &req.partitions {
                                let i = tp.partition as usize;
                                let batch_values = values(bytes);
                                let n = batch_values.len() as i64;
                                let error = if lost {
                                    [ErrorCode::None, ErrorCode::NotEnoughReplicas]
                                        [rng.gen_range(0..2)]
                                } else if leaders[i].0 != broker {
                                    ErrorCode::NotLeaderOrFollower
                                } else {
                                    [
                                        ErrorCode::None,
                                        ErrorCode::None,
                                        ErrorCode::None,
                                        ErrorCode::NotEnoughReplicas,
                                        ErrorCode::NotEnoughReplicasAfterAppend,
                                        ErrorCode::RequestTimedOut,
                                    ][rng.gen_range(0..6)]
                                };
                                let base = next_offset[i];
                                if matches!(
                                    error,
                                    ErrorCode::None | ErrorCode::NotEnoughReplicasAfterAppend
                                ) {
                                    for (j, v) in batch_values.iter().enumerate() {
                                        log.insert(*v, (tp.partition, base + j as i64));
                                    }
                                    next_offset[i] += n;
                                }
                                answers.push((
                                    tp.clone(),
                                    error,
                                    if error == ErrorCode::None { base } else { -1 },
                                ));
                            }
                            if !lost {
                                queue.push((broker, cid, produce_response(&answers)));
                            }
                        }
                        other => panic!("unexpected request {other:?}"),
                    }
                }
                if rng.gen_bool(0.01) {
                    let i = rng.gen_range(0..3);
                    leaders[i] = (rng.gen_range(1..=3), leaders[i].1 + 1);
                }
                match rng.gen_range(0..10) {
                    0..=2 if sent < 300 => {
                        let key = rng
                            .gen_bool(0.5)
                            .then(|| format!("k{}", rng.gen_range(0..10)));
                        p.send(
                            now,
                            ProducerRecord {
                                topic: Arc::from("t"),
                                key,
                                value: sent,
                                headers: Vec::new(),
                            },
                            &mut out,
                        );
                        sent += 1;
                    }
                    3..=6 if !queue.is_empty() => {
                        let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
                        respond(&mut p, now, broker, cid, response, &mut out);
                    }
                    _ => {
                        // Time passes in steps of at most 200 ms; the host fires
                        // the timer once it is due.
                        match p.next_timer() {
                            Some(t) if t <= now + 200 => {
                                now = now.max(t);
                                p.on_timer(now, &mut out);
                            }
                            _ => now += 200,
                        }
                    }
                }
                assert!(
                    p.next_timer().is_none_or(|t| t > now),
                    "seed {seed}: timer in the past"
                );
                now += rng.gen_range(0..3);
            }
            p.finish(now, &mut out);
            let mut seen = vec![0; sent as usize];
            let mut offsets = BTreeSet::new();
            for e in &out.history {
                let Op::Send {
                    value,
                    offset,
                    partition,
                    ..
                } = &e.op
                else {
                    assert!(matches!(e.op, Op::ProducerMetrics(_)), "{e:?}");
                    continue;
                };
                seen[*value as usize] += 1;
                if let Some(o) = offset {
                    assert!(
                        offsets.insert((partition.partition, *o)),
                        "seed {seed}: offset {o} twice"
                    );
                }
                match &e.outcome {
                    Outcome::Ok if config.acks != Acks::None => {
                        assert_eq!(
                            log.get(value),
                            Some(&(partition.partition, offset.unwrap()))
                        );
                    }
                    Outcome::Fail { error } => {
                        assert!(
                            !log.contains_key(value),
                            "seed {seed}: {value} failed ({error}) but was appended"
                        );
                    }
                    _ => {}
                }
            }
            assert!(
                seen.iter().all(|n| *n == 1),
                "seed {seed}: every record exactly once"
            );
            assert_eq!(p.pending(), 0);
        }
    }
}
