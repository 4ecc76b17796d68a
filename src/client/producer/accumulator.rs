//! Kafka's `RecordAccumulator`: records gathered into batches per partition
//! (`batch.size`, `linger.ms`, compression estimates), drained by the sender, and
//! bounded by `buffer.memory`.

use super::*;

/// A record waiting for its outcome.
#[derive(Clone, Debug)]
pub(super) struct PendingRecord {
    pub(super) key: Option<String>,
    pub(super) value: Value,
    /// When `send` was called.
    pub(super) invoke_ms: Millis,
    /// Its CreateTime: the producer's wall clock when `send` was called
    /// (`KafkaProducer.doSend` stamps `time.milliseconds()`).
    pub(super) timestamp: i64,
    /// The transaction it was sent in.
    pub(super) txn: Option<TxnId>,
    /// Its headers.
    pub(super) headers: Headers,
}

impl PendingRecord {
    pub(super) fn timestamp(&self) -> i64 {
        self.timestamp
    }

    pub(super) fn value_bytes(&self) -> String {
        self.value.to_string()
    }

    /// Kafka's `AbstractRecords.estimateSizeInBytesUpperBound` for one record alone.
    pub(super) fn size_upper_bound(&self) -> usize {
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
pub(super) fn varint_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut len = 1;
    while u >= 0x80 {
        u >>= 7;
        len += 1;
    }
    len
}

/// Encoded size of a record (`DefaultRecord.sizeInBytes`, headers included).
pub(super) fn record_size(
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
pub(super) struct ProducerBatch {
    pub(super) tp: TopicPartition,
    pub(super) records: Vec<PendingRecord>,
    /// Size before compression: batch header plus every record.
    pub(super) size: usize,
    /// Bytes taken from `buffer.memory` for this batch.
    pub(super) buffer: usize,
    pub(super) created_ms: Millis,
    /// No more appends (drained, or a record did not fit).
    pub(super) closed: bool,
    /// The bytes every attempt sends, encoded when first drained (and again when an
    /// epoch bump gives the batch a new sequence).
    pub(super) encoded: Option<Bytes>,
    /// The producer id, epoch and base sequence of an idempotent batch, once drained.
    pub(super) sequence: Option<(ProducerIdentity, i32)>,
    /// Times sent.
    pub(super) attempts: u32,
    /// After a failed attempt: not to be resent before this time.
    pub(super) retry_at: Option<Millis>,
    /// Some attempt may have been appended (timed out, lost, or an error that does not
    /// say "not appended").
    pub(super) maybe_appended: bool,
}

impl ProducerBatch {
    pub(super) fn new(
        tp: TopicPartition,
        record: PendingRecord,
        buffer: usize,
        now: Millis,
    ) -> Self {
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
    pub(super) fn size_of(&self, record: &PendingRecord) -> usize {
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
    pub(super) fn estimated(size: usize, ratio: Option<f64>) -> usize {
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
    pub(super) fn has_room_for(
        &self,
        record: &PendingRecord,
        batch_size: usize,
        ratio: Option<f64>,
    ) -> bool {
        !self.closed && Self::estimated(self.size + self.size_of(record), ratio) <= batch_size
    }

    /// `MemoryRecordsBuilder.isFull`.
    pub(super) fn is_full(&self, batch_size: usize, ratio: Option<f64>) -> bool {
        self.closed || Self::estimated(self.size, ratio) >= batch_size
    }

    pub(super) fn delivery_deadline(&self, delivery_timeout_ms: u64) -> Millis {
        self.created_ms + delivery_timeout_ms
    }

    /// The sequence of the batch's last record.
    pub(super) fn last_sequence(&self) -> Option<i32> {
        self.sequence
            .map(|(_, base)| base + self.records.len() as i32 - 1)
    }

    /// Gives the batch its (new) producer id, epoch and base sequence.
    pub(super) fn set_sequence(&mut self, identity: ProducerIdentity, base: i32) {
        self.sequence = Some((identity, base));
        self.encoded = None;
    }

    /// The record batch v2 bytes every attempt sends (encoded once per sequence).
    pub(super) fn encode(&mut self, compression: CompressionType) -> Bytes {
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

/// Why a record could not be appended yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AppendBlocked {
    /// A new batch needs this many bytes of `buffer.memory` and fewer are free.
    Memory(usize),
}

/// Kafka's `RecordAccumulator` with its `BufferPool` and `CompressionRatioEstimator`:
/// per partition a deque of batches, the last one open.
#[derive(Debug)]
pub(super) struct RecordAccumulator {
    pub(super) batch_size: usize,
    pub(super) linger_ms: u64,
    pub(super) compression: CompressionType,
    /// `buffer.memory` and the bytes its batches hold.
    pub(super) buffer_memory: usize,
    pub(super) buffer_used: usize,
    /// Per topic, the estimated compression ratio (compressed / uncompressed).
    pub(super) ratios: BTreeMap<Arc<str>, f64>,
    pub(super) batches: BTreeMap<TopicPartition, VecDeque<ProducerBatch>>,
    /// Partitions with a batch in flight under `max.in.flight.requests.per.connection=1`.
    pub(super) muted: BTreeSet<TopicPartition>,
    /// Per broker, where the next drain starts among its partitions (fairness).
    pub(super) drain_index: BTreeMap<BrokerId, usize>,
}

impl RecordAccumulator {
    pub(super) fn new(config: &ProducerConfig) -> Self {
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
    pub(super) fn ratio(&self, topic: &str) -> Option<f64> {
        (self.compression != CompressionType::None)
            .then(|| self.ratios.get(topic).copied().unwrap_or(1.0))
    }

    /// `CompressionRatioEstimator.updateEstimation` after a batch was encoded.
    pub(super) fn observe_ratio(&mut self, topic: &Arc<str>, observed: f64) {
        let current = self.ratios.entry(topic.clone()).or_insert(1.0);
        if observed > *current {
            *current = (*current + COMPRESSION_RATIO_DETERIORATE_STEP).max(observed);
        } else if observed < *current {
            *current = (*current - COMPRESSION_RATIO_IMPROVING_STEP).max(observed);
        }
    }

    /// Whether `record` fits in the partition's open batch (no new batch needed).
    pub(super) fn has_room_for(&self, tp: &TopicPartition, record: &PendingRecord) -> bool {
        let ratio = self.ratio(&tp.topic);
        self.batches
            .get(tp)
            .and_then(|d| d.back())
            .is_some_and(|b| b.has_room_for(record, self.batch_size, ratio))
    }

    /// Appends to the open batch, or closes it and starts a new one with memory from
    /// the pool (`BufferPool.allocate`); without enough free memory nothing changes.
    pub(super) fn append(
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
    pub(super) fn deallocate(&mut self, batch: &ProducerBatch) {
        self.buffer_used = self
            .buffer_used
            .checked_sub(batch.buffer)
            .expect("freed more buffer memory than was allocated");
    }

    /// Free bytes of `buffer.memory`.
    pub(super) fn available_memory(&self) -> usize {
        self.buffer_memory - self.buffer_used
    }

    /// Puts a failed batch back in its deque (`RecordAccumulator.reenqueue`): at the
    /// front, or with `in_sequence_order` among the batches that have sequences, in
    /// sequence order (`insertInSequenceOrder`).
    pub(super) fn reenqueue(
        &mut self,
        mut batch: ProducerBatch,
        retry_at: Millis,
        in_sequence_order: bool,
    ) {
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
    pub(super) fn ready_at(&self, deque: &VecDeque<ProducerBatch>) -> Option<Millis> {
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
    pub(super) fn ready(
        &self,
        now: Millis,
        metadata: &MetadataCache,
    ) -> (BTreeSet<BrokerId>, bool) {
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
    pub(super) fn next_ready_time(&self, now: Millis, metadata: &MetadataCache) -> Option<Millis> {
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
    pub(super) fn drain(
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
    pub(super) fn expire(&mut self, now: Millis, delivery_timeout_ms: u64) -> Vec<ProducerBatch> {
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
    pub(super) fn next_delivery_deadline(&self, delivery_timeout_ms: u64) -> Option<Millis> {
        self.batches
            .values()
            .flatten()
            .map(|b| b.delivery_deadline(delivery_timeout_ms))
            .min()
    }

    /// Number of queued batches.
    pub(super) fn batch_count(&self) -> usize {
        self.batches.values().map(VecDeque::len).sum()
    }

    /// Removes every queued batch (end of run).
    pub(super) fn take_all(&mut self) -> Vec<ProducerBatch> {
        std::mem::take(&mut self.batches)
            .into_values()
            .flatten()
            .collect()
    }
}
