//! A replica's partition log: record batches, the log end offset, the leader epoch
//! cache (Kafka's `leader-epoch-checkpoint`), the producers' state
//! ([`ProducerStateManager`]: sequences, epochs and ongoing transactions) and the
//! completed transactions (Kafka's transaction index, with the committed ones as well),
//! all kept in step with every append and truncation. From them come the last stable
//! offset ([`Log::last_stable_offset`]), the aborted transactions a `read_committed`
//! fetch returns ([`Log::aborted_transactions`]) and timestamp lookups
//! ([`Log::offset_for_timestamp`]).
//!
//! The log is the part of a broker that survives a process crash; it lives on the
//! broker's [`crate::broker::Disk`]. It knows nothing about replication: the broker
//! decides what to append and where to truncate, and when Kafka flushes.
//!
//! What survives a power loss is less: the log's file has a prefix on the platter and a
//! tail only in the OS page cache ([`Durability`]). A Kafka flush (`flush.messages`,
//! `flush.ms`) moves the whole log to the platter and advances Kafka's recovery point;
//! the OS writes a dirty file back on its own once its oldest dirty page is
//! `dirty_expire_ms` old, at the flusher's next `dirty_writeback_ms` tick (Linux's
//! `dirty_expire_centisecs` and `dirty_writeback_centisecs`, per inode).
//! [`Log::power_loss`] keeps the platter (with, maybe, a torn last write), and
//! [`Log::recover`] is Kafka's `LogLoader` on the next start.

use crate::broker::producer_state::{CompletedTxn, ProducerStateManager};
use crate::history::TxnBatchSnapshot;
use crate::kafka::protocol::{AbortedTransaction, ErrorCode, LeaderEpoch, Millis, Offset};
use crate::kafka::record::{self, BatchHeader, EndTransactionMarker, RecordBatch, RecordError};
use bytes::Bytes;

/// Bound on batches per log, far above any scenario's volume.
const MAX_BATCHES: usize = 4_000_000;

/// One batch as stored: its bytes plus the header fields the log indexes.
#[derive(Clone, Debug)]
pub struct StoredBatch {
    /// First offset.
    pub base_offset: Offset,
    /// Last offset.
    pub last_offset: Offset,
    /// Leader epoch in which the batch was appended.
    pub leader_epoch: LeaderEpoch,
    /// The batch's own largest record timestamp (its header's `maxTimestamp`).
    pub max_timestamp: i64,
    /// The largest record timestamp of this batch and every earlier one (Kafka's time
    /// index keeps the same running maximum).
    pub max_timestamp_so_far: i64,
    /// The encoded batch.
    pub bytes: Bytes,
}

impl StoredBatch {
    /// The batch's header. Stored batches were checked when appended, and a
    /// [`Log::corrupt`] bit flip lands in the records, never in the header.
    fn header(&self) -> BatchHeader {
        BatchHeader::parse(&self.bytes).expect("stored batch headers are intact")
    }

    /// The batch decoded, or why it no longer decodes (a bit flipped on the platter:
    /// its CRC-32C fails).
    fn decode(&self) -> Result<RecordBatch, RecordError> {
        RecordBatch::decode(&self.bytes).map(|(batch, _)| batch)
    }

    /// The header, and the marker of a control batch. Control batches are never
    /// corrupted ([`Log::corrupt`] hits data batches only), so their marker decodes.
    fn header_and_marker(&self) -> (BatchHeader, Option<EndTransactionMarker>) {
        let header = self.header();
        let marker = header.is_control().then(|| {
            self.marker()
                .expect("stored markers are valid")
                .expect("markers are never cleaned away here")
        });
        (header, marker)
    }

    /// The marker of a control batch (`None` for a data batch).
    fn marker(&self) -> Result<Option<EndTransactionMarker>, RecordError> {
        EndTransactionMarker::of_batch(&self.decode()?)
    }
}

/// An entry of the leader epoch cache: `epoch` started at `start_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// The first offset written in it.
    pub start_offset: Offset,
}

/// A transaction a marker in this log ended, with the last stable offset at that
/// moment: Kafka's `AbortedTxn` (its transaction index entry) for an aborted one; the
/// log keeps committed ones too, because a transaction whose marker is not below the
/// high watermark yet still holds the last stable offset (Kafka's
/// `unreplicatedTxns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnIndexEntry {
    /// The transaction.
    pub txn: CompletedTxn,
    /// Kafka's `ProducerStateManager.lastStableOffset(completedTxn)`: the first offset
    /// of the earliest transaction still open when the marker was written, else the
    /// offset after the marker.
    pub last_stable_offset: Offset,
}

/// A transaction marker in the log (for the end-of-run snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Its offset.
    pub offset: Offset,
    /// The producer whose transaction it ends.
    pub producer_id: i64,
    /// The producer epoch it was written with.
    pub producer_epoch: i16,
    /// The marker itself.
    pub marker: EndTransactionMarker,
    /// Its timestamp (CreateTime: when the partition leader wrote it).
    pub timestamp: i64,
}

/// Kafka's `FileRecords.TimestampAndOffset`: what a timestamp lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampAndOffset {
    /// The record's timestamp.
    pub timestamp: i64,
    /// Its offset.
    pub offset: Offset,
    /// The leader epoch of its batch.
    pub leader_epoch: LeaderEpoch,
}

/// The OS page cache's writeback of dirty files (Linux's `vm.dirty_*` settings): the
/// flusher wakes every `dirty_writeback_ms` (at `phase_ms` past a multiple of it: each
/// machine has its own) and writes back every file whose oldest dirty page is at least
/// `dirty_expire_ms` old.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writeback {
    /// `vm.dirty_expire_centisecs` in ms (Linux default 30000).
    pub dirty_expire_ms: Millis,
    /// `vm.dirty_writeback_centisecs` in ms (Linux default 5000).
    pub dirty_writeback_ms: Millis,
    /// When the flusher first wakes (below `dirty_writeback_ms`).
    pub phase_ms: Millis,
}

impl Default for Writeback {
    fn default() -> Self {
        Writeback {
            dirty_expire_ms: 30_000,
            dirty_writeback_ms: 5_000,
            phase_ms: 0,
        }
    }
}

impl Writeback {
    /// The first flusher tick at which a file first dirtied at `dirtied` is written back.
    fn due(&self, dirtied: Millis) -> Millis {
        let expired = dirtied + self.dirty_expire_ms;
        let period = self.dirty_writeback_ms.max(1);
        match expired.checked_sub(self.phase_ms) {
            None | Some(0) => self.phase_ms,
            Some(after) => self.phase_ms + after.div_ceil(period) * period,
        }
    }
}

/// What of a log's file is on the platter rather than only in the page cache, and
/// Kafka's own flush bookkeeping.
#[derive(Clone, Debug, Default)]
struct Durability {
    /// Batches `[0, durable_batches)` are on the platter.
    durable_batches: usize,
    /// When the file was first written since it was last clean (the inode's
    /// `dirtied_when`); `None` when every page is on the platter.
    dirty_since: Option<Millis>,
    /// Kafka's `recoveryPoint`: the first offset Kafka has not flushed itself.
    recovery_point: Offset,
    /// When Kafka last flushed the log (`lastFlushTime`).
    last_flush_ms: Millis,
    /// Bytes of a write torn by a power loss, after the last whole batch on the
    /// platter; recovery finds them invalid and cuts them off.
    torn_tail: Option<Bytes>,
    /// The first batch of the active segment (the one appends go to).
    active_segment: usize,
    /// The first batch of every segment but the first, oldest first (the last is the
    /// active segment's, unless the first segment is the active one).
    segment_starts: Vec<usize>,
    /// The roll check's cursor: batches `[active_segment, rolled_upto)` were checked
    /// against the roll conditions and make up `active_bytes`.
    rolled_upto: usize,
    /// The size of the checked batches of the active segment.
    active_bytes: u64,
    /// Kafka's `LogSegment.rollingBasedTimestamp`: the active segment's first batch's
    /// max timestamp (`None` while the segment is empty).
    rolling_based_timestamp: Option<i64>,
}

impl Durability {
    /// Forgets the roll check's view of the active segment, whose batches changed (a
    /// truncation, a deletion): the next check reads it again from its first batch.
    fn restart_roll_check(&mut self) {
        self.rolled_upto = self.active_segment;
        self.active_bytes = 0;
        self.rolling_based_timestamp = None;
    }
}

/// What a power loss left of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerLoss {
    /// The log end offset the process had.
    pub log_end_offset: Offset,
    /// The log end offset on the platter (the first offset lost).
    pub durable_end_offset: Offset,
    /// Whether the first lost batch was written in part (a torn write).
    pub torn: bool,
}

/// A bit flipped in a batch on the platter (a latent sector error, [`Log::corrupt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The batch's first offset.
    pub base_offset: Offset,
    /// Its last offset.
    pub last_offset: Offset,
    /// The byte flipped, from the batch's start (in its records, after the header).
    pub byte: usize,
    /// The bit flipped in that byte (0 = least significant).
    pub bit: u8,
}

/// What recovery on startup found (Kafka's `LogLoader`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Where it began to validate batches: the checkpointed recovery point.
    pub from: Offset,
    /// The log end offset after recovery.
    pub log_end_offset: Offset,
    /// Why it truncated, if it did: the first invalid batch or torn write.
    pub truncated: Option<String>,
}

/// What retention deleted from a log ([`Log::delete_retained_segments`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// Whole segments deleted.
    pub segments: usize,
    /// The log start offset after the deletion.
    pub log_start_offset: Offset,
    /// Producers forgotten because the log start passed their last batch (only with
    /// the `evict-producers-on-log-start` switch).
    pub producers_evicted: usize,
}

/// How retention treats a log: its topic's `retention.ms` and `retention.bytes`
/// (negative: no limit) and the high watermark no deletion may pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `retention.bytes`.
    pub retention_bytes: i64,
    /// The replica's high watermark.
    pub high_watermark: Offset,
    /// The pre-KAFKA-7190 behaviour: forget the producers whose batches are all below
    /// the new log start.
    pub evict_producers: bool,
}

/// A partition log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    batches: Vec<StoredBatch>,
    log_end_offset: Offset,
    /// Kafka's `logStartOffset`: the first offset readers may see. At least the first
    /// segment's base; above it after a follower copied its leader's, until the
    /// segments below it are deleted.
    log_start_offset: Offset,
    /// The base offset of the first segment: the first offset on disk.
    first_segment_base: Offset,
    /// The producers' state at the first segment's base (Kafka's producer snapshot
    /// there): what the deleted segments' batches left, which rebuilding the state
    /// replays the remaining batches on.
    start_snapshot: ProducerStateManager,
    /// The last producer expiration check, `(now, producer.id.expiration.ms)`: a
    /// rebuilt producer state forgets what it forgot.
    last_expiration: Option<(i64, i64)>,
    /// Whether an expiration removed a producer since the state was last rebuilt (so
    /// that the incremental state may remember less than a replay would).
    producers_expired: bool,
    epochs: Vec<EpochEntry>,
    producer_state: ProducerStateManager,
    /// Completed transactions in marker order (so by `last_offset`).
    txn_index: Vec<TxnIndexEntry>,
    durability: Durability,
}

impl Log {
    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// Kafka's `logStartOffset`: the first offset readers may see.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// Kafka's `maybeIncrementLogStartOffset` for a follower copying its leader's log
    /// start (`LeaderOffsetIncremented`): moves the log start up to `offset`, never past
    /// `high_watermark` (nor back); the epoch cache forgets what lies before it.
    /// Segments wholly below it go at the next retention check. Returns whether it moved.
    pub fn maybe_increment_log_start_offset(
        &mut self,
        offset: Offset,
        high_watermark: Offset,
        evict_producers: bool,
    ) -> bool {
        if offset <= self.log_start_offset || offset > high_watermark {
            return false;
        }
        self.set_log_start_offset(offset, evict_producers);
        true
    }

    /// Moves the log start to `offset` (already checked): the epoch cache is truncated
    /// from the start (Kafka's `truncateFromStart`: the entry covering `offset` now
    /// starts there) and, with the pre-KAFKA-7190 switch, producers whose last data
    /// batch is below it are forgotten. Returns the producers forgotten.
    fn set_log_start_offset(&mut self, offset: Offset, evict_producers: bool) -> usize {
        self.log_start_offset = offset;
        let covering = self.epochs.partition_point(|e| e.start_offset <= offset);
        if covering > 0 {
            self.epochs.drain(..covering - 1);
            self.epochs[0].start_offset = self.epochs[0].start_offset.max(offset);
        }
        if !evict_producers {
            return 0;
        }
        self.start_snapshot.evict_unretained(offset);
        self.producer_state.evict_unretained(offset)
    }

    /// Kafka's `UnifiedLog.deleteOldSegments` with `cleanup.policy=delete`: deletes the
    /// oldest segments while they are wholly below the log start, then while the log
    /// is larger than `retention.bytes` by at least the segment, then while the
    /// segment's newest record is more than `retention.ms` before `now`; every deleted
    /// segment lies wholly below the high watermark (`deletableSegments`). The active
    /// segment counts too when it is not empty (Kafka rolls a new, empty one first).
    /// The log start moves to the first offset kept.
    pub fn delete_retained_segments(&mut self, now: i64, policy: Retention) -> Option<Deleted> {
        let hw = policy.high_watermark;
        let start = self.log_start_offset;
        // Kafka's deleteLogStartOffsetBreachedSegments: the next segment starts at or
        // below the log start.
        let mut n = self.deletable(hw, |log, _, end| {
            end < log.batches.len() && log.end_of(end) <= start
        });
        let mut segments = self.delete_first_batches(n);
        // deleteRetentionSizeBreachedSegments: whole segments while the log stays at
        // least `retention.bytes` large without them.
        let size: u64 = self.batches.iter().map(|b| b.bytes.len() as u64).sum();
        if let Some(mut diff) = u64::try_from(policy.retention_bytes)
            .ok()
            .and_then(|limit| size.checked_sub(limit))
        {
            let k = self.deletable(hw, |log, first, end| {
                let bytes: u64 = log.batches[first..end]
                    .iter()
                    .map(|b| b.bytes.len() as u64)
                    .sum();
                let delete = diff >= bytes;
                if delete {
                    diff -= bytes;
                }
                delete
            });
            segments += self.delete_first_batches(k);
            n += k;
        }
        // deleteRetentionMsBreachedSegments: the segment's newest record is older than
        // `retention.ms` (the running maximum at its last batch: every earlier segment
        // is deleted before it, so none of theirs is newer).
        if policy.retention_ms >= 0 {
            let k = self.deletable(hw, |log, _, end| {
                now.saturating_sub(log.batches[end - 1].max_timestamp_so_far) > policy.retention_ms
            });
            segments += self.delete_first_batches(k);
            n += k;
        }
        if n == 0 {
            return None;
        }
        let producers_evicted = if self.first_segment_base > self.log_start_offset {
            self.set_log_start_offset(self.first_segment_base, policy.evict_producers)
        } else {
            0
        };
        Some(Deleted {
            segments,
            log_start_offset: self.log_start_offset,
            producers_evicted,
        })
    }

    /// Kafka's `deletableSegments`: the batches of the oldest segments, in order, while
    /// `predicate(log, first, end)` holds for the segment `[first, end)` and the segment
    /// ends at or below the high watermark.
    fn deletable(
        &self,
        high_watermark: Offset,
        mut predicate: impl FnMut(&Log, usize, usize) -> bool,
    ) -> usize {
        let mut n = 0;
        for (first, end) in self.segment_bounds() {
            if high_watermark < self.end_of(end) || !predicate(self, first, end) {
                break;
            }
            n = end;
        }
        n
    }

    /// Every non-empty segment as its batch range `[first, end)`, oldest first.
    fn segment_bounds(&self) -> Vec<(usize, usize)> {
        let mut starts = vec![0];
        starts.extend(self.durability.segment_starts.iter().copied());
        let mut bounds = Vec::with_capacity(starts.len());
        for (i, &first) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(self.batches.len());
            if end > first {
                bounds.push((first, end));
            }
        }
        bounds
    }

    /// Removes the first `n` batches (whole segments): the producer snapshot at the
    /// new first segment base takes in their batches, the transaction index forgets
    /// the transactions their markers ended. Returns the segments removed.
    fn delete_first_batches(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let removed: Vec<StoredBatch> = self.batches.drain(..n).collect();
        let mut scratch = Vec::new();
        for b in &removed {
            let (header, marker) = b.header_and_marker();
            Self::apply(
                &mut self.start_snapshot,
                &mut scratch,
                &header,
                marker.as_ref(),
            );
        }
        if let Some((now, ms)) = self.last_expiration {
            self.start_snapshot.remove_expired(now, ms);
        }
        self.first_segment_base = self
            .batches
            .first()
            .map_or(self.log_end_offset, |b| b.base_offset);
        let base = self.first_segment_base;
        self.txn_index.retain(|t| t.txn.last_offset >= base);
        let d = &mut self.durability;
        d.durable_batches = d.durable_batches.saturating_sub(n);
        if n > d.active_segment {
            d.active_segment = 0;
            d.restart_roll_check();
        } else {
            d.active_segment -= n;
            d.rolled_upto = d.rolled_upto.saturating_sub(n);
        }
        let segments = 1 + d.segment_starts.iter().filter(|s| **s < n).count();
        d.segment_starts = d
            .segment_starts
            .iter()
            .filter(|s| **s > n)
            .map(|s| s - n)
            .collect();
        segments
    }

    /// Kafka's `truncateFullyAndStartAt`: drops every batch and the producer and epoch
    /// state; the log is empty and starts (and ends) at `offset`.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) {
        self.batches.clear();
        self.epochs.clear();
        self.txn_index.clear();
        self.producer_state = ProducerStateManager::default();
        self.start_snapshot = ProducerStateManager::default();
        self.producers_expired = false;
        self.log_end_offset = offset;
        self.log_start_offset = offset;
        self.first_segment_base = offset;
        self.durability = Durability {
            recovery_point: offset,
            last_flush_ms: self.durability.last_flush_ms,
            ..Durability::default()
        };
    }

    /// Kafka's `removeExpiredProducers` on the `producer.id.expiration.check.interval.ms`
    /// task: forgets the producers expired at `now`. Returns how many.
    pub fn remove_expired_producers(&mut self, now: i64, expiration_ms: i64) -> usize {
        self.last_expiration = Some((now, expiration_ms));
        let removed = self.producer_state.remove_expired(now, expiration_ms);
        self.start_snapshot.remove_expired(now, expiration_ms);
        self.producers_expired |= removed > 0;
        removed
    }

    /// The leader epoch cache, oldest first.
    pub fn epochs(&self) -> &[EpochEntry] {
        &self.epochs
    }

    /// The latest leader epoch in the cache.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// The producers' state after the last batch (Kafka's `ProducerStateManager`).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// The completed transactions, in marker order.
    pub fn txn_index(&self) -> &[TxnIndexEntry] {
        &self.txn_index
    }

    /// Every transactional data batch: (base offset, last offset, producer id, epoch).
    pub fn transactional_batches(&self) -> Vec<TxnBatchSnapshot> {
        self.batches
            .iter()
            .map(StoredBatch::header)
            .filter(|h| h.is_transactional() && !h.is_control())
            .map(|h| TxnBatchSnapshot {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
            })
            .collect()
    }

    /// Kafka's recovery point: the first offset Kafka has not flushed itself.
    pub fn recovery_point(&self) -> Offset {
        self.durability.recovery_point
    }

    /// The log end offset on the platter: what a power loss now would leave.
    pub fn durable_end_offset(&self) -> Offset {
        self.end_of(self.durability.durable_batches)
    }

    /// Kafka's `unflushedMessages`: offsets appended since Kafka's last flush.
    pub fn unflushed_messages(&self) -> i64 {
        self.log_end_offset - self.durability.recovery_point
    }

    /// When Kafka last flushed the log.
    pub fn last_flush_ms(&self) -> Millis {
        self.durability.last_flush_ms
    }

    /// The log end offset after the first `batches` batches.
    fn end_of(&self, batches: usize) -> Offset {
        batches
            .checked_sub(1)
            .map_or(self.first_segment_base, |i| self.batches[i].last_offset + 1)
    }

    /// Kafka's `UnifiedLog.flush`: fsyncs the whole log; the recovery point becomes the
    /// log end offset.
    pub fn flush(&mut self, now: Millis) {
        let d = &mut self.durability;
        d.durable_batches = self.batches.len();
        d.dirty_since = None;
        d.recovery_point = self.log_end_offset;
        d.last_flush_ms = now;
    }

    /// Kafka's `UnifiedLog.maybeRoll` for the batches appended since the last call, each
    /// checked once, as it comes (`LogSegment.shouldRoll`): a batch that would take the
    /// active segment past `segment_bytes`, or whose max timestamp is more than
    /// `segment_ms` after the segment's `rollingBasedTimestamp` (its first batch's max
    /// timestamp; no `segment.jitter.ms`; every batch here has a CreateTime, so Kafka's
    /// fallback to the segment's creation time never applies), starts a new segment
    /// when the active one is not empty, and the old one is flushed (`roll` schedules
    /// `flushUptoOffsetExclusive` of the new segment's base at once; modelled as done
    /// at once). Returns the segments rolled.
    pub fn roll_full_segments(
        &mut self,
        segment_bytes: u64,
        segment_ms: i64,
        now: Millis,
    ) -> usize {
        let mut rolled = 0;
        let d = &mut self.durability;
        while d.rolled_upto < self.batches.len() {
            let i = d.rolled_upto;
            let batch = &self.batches[i];
            let len = batch.bytes.len() as u64;
            let aged = d
                .rolling_based_timestamp
                .is_some_and(|first| batch.max_timestamp.saturating_sub(first) > segment_ms);
            if d.active_bytes > 0 && (d.active_bytes + len > segment_bytes || aged) {
                d.active_segment = i;
                d.segment_starts.push(i);
                d.durable_batches = d.durable_batches.max(i);
                d.recovery_point = d.recovery_point.max(batch.base_offset);
                d.last_flush_ms = now;
                d.active_bytes = 0;
                d.rolling_based_timestamp = None;
                rolled += 1;
            }
            d.active_bytes += len;
            d.rolling_based_timestamp.get_or_insert(batch.max_timestamp);
            d.rolled_upto = i + 1;
        }
        rolled
    }

    /// Runs the OS flusher's ticks up to `now`: a file whose oldest dirty page has
    /// expired by a tick is written back whole at that tick. Called before every write
    /// and before a power loss, so that every batch in the log was written before any
    /// tick still to run.
    pub fn writeback(&mut self, now: Millis, os: &Writeback) {
        if let Some(dirtied) = self.durability.dirty_since {
            if os.due(dirtied) <= now {
                self.durability.durable_batches = self.batches.len();
                self.durability.dirty_since = None;
            }
        }
    }

    /// The OS writes back every dirty page of the file (it drops its page cache after
    /// a process death, [`Log::corrupt`]'s model); Kafka's recovery point stays.
    pub fn write_back_all(&mut self) {
        self.durability.durable_batches = self.batches.len();
        self.durability.dirty_since = None;
    }

    /// A latent sector error: flips one bit in the records of a data batch on the
    /// platter (CRC-covered bytes after the 61-byte header, so the batch's offsets,
    /// producer and control flag stay as written and only its CRC-32C fails). `draw(n)`
    /// picks in `0..n`: the batch, the byte, the bit. `None` when no data batch with
    /// records is on the platter.
    pub fn corrupt(&mut self, mut draw: impl FnMut(usize) -> usize) -> Option<Corruption> {
        let candidates: Vec<usize> = (0..self.durability.durable_batches)
            .filter(|&i| {
                let b = &self.batches[i];
                b.bytes.len() > record::BATCH_HEADER_SIZE && !b.header().is_control()
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let b = &mut self.batches[candidates[draw(candidates.len())]];
        let byte = record::BATCH_HEADER_SIZE + draw(b.bytes.len() - record::BATCH_HEADER_SIZE);
        let bit = draw(8) as u8;
        let mut bytes = b.bytes.to_vec();
        bytes[byte] ^= 1 << bit;
        b.bytes = Bytes::from(bytes);
        Some(Corruption {
            base_offset: b.base_offset,
            last_offset: b.last_offset,
            byte,
            bit,
        })
    }

    /// The offset ranges (first, last) of the batches whose CRC-32C fails: bytes
    /// corrupted on the platter and not cut by recovery (for the end-of-run snapshot).
    pub fn corrupt_batches(&self) -> Vec<(Offset, Offset)> {
        self.batches
            .iter()
            .filter(|b| record::verify_crc(&b.bytes).is_err())
            .map(|b| (b.base_offset, b.last_offset))
            .collect()
    }

    /// Notes a write at `now` (after an append): the file is dirty from now on if it
    /// was clean.
    pub fn written(&mut self, now: Millis) {
        let d = &mut self.durability;
        if self.batches.len() > d.durable_batches && d.dirty_since.is_none() {
            d.dirty_since = Some(now);
        }
    }

    /// The power fails at `now`: what was only in the page cache is gone. With
    /// `torn_at`, the first lost batch was being written and the first `torn_at`
    /// thousandths of its bytes reached the platter (a strict prefix; recovery rejects
    /// it). Derived state (producers, transactions, epochs) follows the platter.
    pub fn power_loss(&mut self, now: Millis, os: &Writeback, torn_at: Option<u64>) -> PowerLoss {
        self.writeback(now, os);
        let log_end_offset = self.log_end_offset;
        let durable = self.durability.durable_batches;
        let torn = torn_at.and_then(|permille| {
            let lost = self.batches.get(durable)?;
            let len = lost.bytes.len() as u64 * permille.min(999) / 1000;
            Some(lost.bytes.slice(..len as usize))
        });
        let durable_end_offset = self.end_of(durable);
        self.truncate_to(durable_end_offset);
        self.durability.dirty_since = None;
        self.durability.torn_tail = torn.clone();
        PowerLoss {
            log_end_offset,
            durable_end_offset,
            torn: torn.is_some(),
        }
    }

    /// Kafka's `LogLoader` after an unclean shutdown: validates every batch from the
    /// checkpointed recovery point on (its size, its CRC-32C, its offsets following on
    /// from the batch before), cuts the log at the first invalid one or at a torn
    /// write, rebuilds the producer state, the transaction index and the epoch cache
    /// from what remains, and leaves the recovery point at the checkpoint (KAFKA-10101:
    /// what was validated is not known to be on the platter), or with `at_log_end` (the
    /// bug) moves it to the log end without a flush.
    ///
    /// A torn write below the checkpoint is never looked at: the file's size covers
    /// the whole batch (the pages not written read as zeros), so when its header made
    /// it to the platter the batch stays in the log, corrupt. Without the bug the
    /// checkpoint never passes what is on the platter, so this does not happen.
    ///
    /// The log start offset is process memory: it comes back as the larger of the
    /// `log-start-offset-checkpoint` and the first segment's base (`LogLoader`); a log
    /// that ends before the checkpoint starts empty there. A restart forgets producers
    /// that expired (`producer.id.expiration.ms`, checked by the broker on start).
    pub fn recover(
        &mut self,
        recovery_point_checkpoint: Offset,
        log_start_checkpoint: Offset,
        at_log_end: bool,
    ) -> Recovery {
        let from = recovery_point_checkpoint.min(self.log_end_offset);
        let start = self.batches.partition_point(|b| b.last_offset < from);
        let mut truncated = None;
        let mut expected = self.end_of(start);
        for (i, b) in self.batches.iter().enumerate().skip(start) {
            let valid = record::verify_crc(&b.bytes).and_then(|()| {
                let header = BatchHeader::parse(&b.bytes)?;
                if header.base_offset != expected || b.bytes.len() != header.size() {
                    return Err(RecordError::Malformed("batch out of place"));
                }
                Ok(header)
            });
            match valid {
                Ok(header) => expected = header.last_offset() + 1,
                Err(e) => {
                    truncated = Some((i, format!("invalid batch at offset {expected}: {e}")));
                    break;
                }
            }
        }
        let mut torn = self.durability.torn_tail.take();
        let rebuilt_only = truncated.is_none() && torn.is_none();
        if let Some((keep, _)) = &truncated {
            let end = self.end_of(*keep);
            self.truncate_to(end);
        }
        if recovery_point_checkpoint > self.log_end_offset {
            if let Some(header) = torn.as_ref().and_then(|t| BatchHeader::parse(t).ok()) {
                let mut bytes = torn.take().expect("parsed").to_vec();
                bytes.resize(header.size(), 0);
                self.assign_epoch(header.partition_leader_epoch, header.base_offset);
                self.push(
                    StoredBatch {
                        base_offset: header.base_offset,
                        last_offset: header.last_offset(),
                        leader_epoch: header.partition_leader_epoch,
                        max_timestamp: header.max_timestamp,
                        max_timestamp_so_far: header.max_timestamp,
                        bytes: Bytes::from(bytes),
                    },
                    &header,
                    None,
                );
                self.write_back_all();
            }
        }
        let (producer_state, txn_index) = self.state_from_batches();
        if rebuilt_only && !self.producers_expired {
            assert_eq!(
                producer_state, self.producer_state,
                "producer state rebuilt from the log differs from the incremental one"
            );
            assert_eq!(
                txn_index, self.txn_index,
                "transaction index rebuilt from the log differs from the incremental one"
            );
        }
        self.producer_state = producer_state;
        self.txn_index = txn_index;
        self.producers_expired = false;
        self.durability.recovery_point = if at_log_end {
            self.log_end_offset
        } else {
            from.min(self.log_end_offset)
        };
        if log_start_checkpoint > self.log_end_offset {
            self.truncate_fully_and_start_at(log_start_checkpoint);
        }
        self.log_start_offset = log_start_checkpoint.max(self.first_segment_base);
        let truncated = truncated.map(|(_, why)| why).or_else(|| {
            torn.map(|t| {
                format!(
                    "torn write at offset {}: {} bytes of a batch",
                    self.log_end_offset,
                    t.len()
                )
            })
        });
        Recovery {
            from,
            log_end_offset: self.log_end_offset,
            truncated,
        }
    }

    /// The producer state and transaction index of the batches, replayed in order.
    fn state_from_batches(&self) -> (ProducerStateManager, Vec<TxnIndexEntry>) {
        let mut producer_state = self.start_snapshot.clone();
        let mut txn_index = Vec::new();
        for b in &self.batches {
            let (header, marker) = b.header_and_marker();
            Self::apply(
                &mut producer_state,
                &mut txn_index,
                &header,
                marker.as_ref(),
            );
        }
        if let Some((now, ms)) = self.last_expiration {
            producer_state.remove_expired(now, ms);
        }
        (producer_state, txn_index)
    }

    /// Applies an appended batch to the producer state and, when a marker completes a
    /// transaction, to the transaction index (Kafka's `UnifiedLog.append`:
    /// `updateTxnIndex` with `lastStableOffset(completedTxn)`, then `completeTxn`).
    fn apply(
        producer_state: &mut ProducerStateManager,
        txn_index: &mut Vec<TxnIndexEntry>,
        header: &BatchHeader,
        marker: Option<&EndTransactionMarker>,
    ) {
        if let Some(txn) = producer_state.update(header, marker) {
            // The transaction is no longer open: the earliest open one is another
            // producer's, which began before this marker.
            let last_stable_offset = producer_state
                .first_undecided_offset()
                .unwrap_or(txn.last_offset + 1);
            assert!(txn_index
                .last()
                .is_none_or(|t| t.txn.last_offset < txn.last_offset));
            assert!(txn_index.len() < MAX_BATCHES, "transaction index overflow");
            txn_index.push(TxnIndexEntry {
                txn,
                last_stable_offset,
            });
        }
    }

    /// Records that `epoch` starts at `start_offset` (Kafka assigns it when a replica
    /// becomes leader, and when a follower appends the epoch's first batch), as Kafka's
    /// `LeaderEpochFileCache.assign`: nothing to do when `epoch` is the latest epoch and
    /// starts no earlier (`isUpdateNeeded`); otherwise the entries from the end whose
    /// epoch is >= `epoch` or whose start offset is >= `start_offset` are removed first
    /// (`maybeTruncateNonMonotonicEntries`), then `epoch` is added. An epoch older than
    /// the latest is therefore not an error: a follower that led an epoch without
    /// appending (its entry starts at the log end) and then appends a batch of an older
    /// epoch at that offset (a fetch answered before it led, whose fetch offset still
    /// matches, `AbstractFetcherThread.processFetchRequest`) drops the newer entry; Kafka
    /// warns only when the removal was non-trivial.
    pub fn assign_epoch(&mut self, epoch: LeaderEpoch, start_offset: Offset) {
        assert!(epoch >= 0 && start_offset >= 0, "invalid epoch entry");
        let update_needed = self
            .epochs
            .last()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !update_needed {
            return;
        }
        while self
            .epochs
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
        {
            self.epochs.pop();
        }
        self.epochs.push(EpochEntry {
            epoch,
            start_offset,
        });
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor` (4.x): for the latest epoch, that epoch
    /// and the log end offset; otherwise the largest cached epoch <= `epoch` and the start
    /// offset of the first cached epoch above `epoch`. An `epoch` older than every cached
    /// epoch is answered with itself and the first cached epoch's start offset (the data
    /// before it is gone, the follower replicates from there). `(-1, -1)`
    /// (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`) for epoch -1, an empty cache, or an
    /// epoch above the latest.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        const UNDEFINED: (LeaderEpoch, Offset) = (-1, -1);
        if epoch < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, self.log_end_offset);
        }
        let Some(higher) = self.epochs.iter().find(|e| e.epoch > epoch) else {
            return UNDEFINED;
        };
        match self.epochs.iter().rev().find(|e| e.epoch <= epoch) {
            None => (epoch, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// Appends a producer's (or a group coordinator's) data batch as leader: assigns
    /// offsets from the log end offset and stamps the leader epoch (outside the CRC).
    /// Returns (base offset, last offset). Markers go through
    /// [`Log::append_control_as_leader`].
    pub fn append_as_leader(
        &mut self,
        batch: &Bytes,
        epoch: LeaderEpoch,
    ) -> Result<(Offset, Offset), RecordError> {
        record::verify_crc(batch)?;
        let header = BatchHeader::parse(batch)?;
        if header.is_control() {
            return Err(RecordError::Malformed(
                "control batches come from the transaction coordinator only",
            ));
        }
        Ok(self.stamp_and_push(batch[..header.size()].to_vec(), header, epoch, None))
    }

    /// Appends a transaction marker as leader (Kafka's `appendAsLeader` with
    /// `AppendOrigin.COORDINATOR`): the control batch ending `producer_id`'s transaction
    /// (commit or abort) at `producer_epoch`, written by a coordinator of
    /// `coordinator_epoch` at `timestamp`. Refused as the producer state says
    /// (`INVALID_PRODUCER_EPOCH`, `TRANSACTION_COORDINATOR_FENCED`); returns its offset.
    pub fn append_control_as_leader(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTransactionMarker,
        timestamp: i64,
        epoch: LeaderEpoch,
    ) -> Result<Offset, ErrorCode> {
        self.producer_state
            .check_marker(producer_id, producer_epoch, marker.coordinator_epoch)?;
        let bytes = marker
            .to_batch(producer_id, producer_epoch, timestamp)
            .encode();
        let header = BatchHeader::parse(&bytes).expect("a marker batch we just encoded");
        let (base, last) = self.stamp_and_push(bytes.to_vec(), header, epoch, Some(&marker));
        assert_eq!(base, last, "a marker is one record");
        Ok(base)
    }

    /// Assigns the batch its offsets and leader epoch, stores it and applies it.
    fn stamp_and_push(
        &mut self,
        mut bytes: Vec<u8>,
        header: BatchHeader,
        epoch: LeaderEpoch,
        marker: Option<&EndTransactionMarker>,
    ) -> (Offset, Offset) {
        let base = self.log_end_offset;
        record::set_base_offset(&mut bytes, base);
        record::set_partition_leader_epoch(&mut bytes, epoch);
        self.assign_epoch(epoch, base);
        let last = base + i64::from(header.last_offset_delta);
        self.push(
            StoredBatch {
                base_offset: base,
                last_offset: last,
                leader_epoch: epoch,
                max_timestamp: header.max_timestamp,
                max_timestamp_so_far: header.max_timestamp,
                bytes: Bytes::from(bytes),
            },
            &BatchHeader {
                base_offset: base,
                partition_leader_epoch: epoch,
                ..header
            },
            marker,
        );
        (base, last)
    }

    /// Appends a batch fetched from the leader, keeping its offsets and epoch. Batches
    /// already present (base below the log end) are skipped; a gap is an error.
    pub fn append_as_follower(&mut self, batch: &Bytes) -> Result<bool, RecordError> {
        record::verify_crc(batch)?;
        let header = BatchHeader::parse(batch)?;
        if header.base_offset < self.log_end_offset {
            return Ok(false);
        }
        if header.base_offset > self.log_end_offset {
            return Err(RecordError::Malformed(
                "fetched batch leaves a gap in the log",
            ));
        }
        let stored = StoredBatch {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            leader_epoch: header.partition_leader_epoch,
            max_timestamp: header.max_timestamp,
            max_timestamp_so_far: header.max_timestamp,
            bytes: batch.slice(..header.size()),
        };
        let (_, marker) = stored.header_and_marker();
        self.assign_epoch(header.partition_leader_epoch, header.base_offset);
        self.push(stored, &header, marker.as_ref());
        Ok(true)
    }

    fn push(
        &mut self,
        mut batch: StoredBatch,
        header: &BatchHeader,
        marker: Option<&EndTransactionMarker>,
    ) {
        assert!(
            self.batches.len() < MAX_BATCHES,
            "log exceeds {MAX_BATCHES} batches"
        );
        assert_eq!(
            batch.base_offset, self.log_end_offset,
            "append must be contiguous"
        );
        assert!(batch.last_offset >= batch.base_offset);
        if let Some(prev) = self.batches.last() {
            batch.max_timestamp_so_far = batch.max_timestamp_so_far.max(prev.max_timestamp_so_far);
        }
        self.log_end_offset = batch.last_offset + 1;
        self.batches.push(batch);
        Self::apply(
            &mut self.producer_state,
            &mut self.txn_index,
            header,
            marker,
        );
    }

    /// Whole batches from the one containing `from` up to those ending before `until`,
    /// at most `max_bytes` (but always at least one batch when any qualifies).
    pub fn read(&self, from: Offset, until: Offset, max_bytes: usize) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < from);
        let mut out = Vec::new();
        let mut size = 0;
        for b in &self.batches[start..] {
            if b.last_offset >= until {
                break;
            }
            if !out.is_empty() && size + b.bytes.len() > max_bytes {
                break;
            }
            size += b.bytes.len();
            out.push(b.bytes.clone());
        }
        out
    }

    /// Kafka's `UnifiedLog.lastStableOffset` for a replica whose high watermark is
    /// `high_watermark`: the first offset of the earliest transaction not ended by a
    /// marker below the high watermark (one still open, or one whose marker is not
    /// replicated yet), else the high watermark.
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        let mut lso = high_watermark;
        if let Some(first) = self.producer_state.first_undecided_offset() {
            lso = lso.min(first);
        }
        let unreplicated = self
            .txn_index
            .partition_point(|t| t.txn.last_offset < high_watermark);
        for t in &self.txn_index[unreplicated..] {
            lso = lso.min(t.txn.first_offset);
        }
        lso
    }

    /// Kafka's `collectAbortedTransactions(from, upper)`: the aborted transactions that
    /// overlap the fetched range `[from, upper)` (their marker at or after `from`,
    /// their first offset before `upper`), in marker order. The search stops at the
    /// first transaction whose stable offset at completion reached `upper`: every
    /// transaction completed after it began at or after that offset.
    pub fn aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTransaction> {
        let start = self.txn_index.partition_point(|t| t.txn.last_offset < from);
        let mut out = Vec::new();
        for t in &self.txn_index[start..] {
            if t.txn.aborted && t.txn.first_offset < upper {
                out.push(AbortedTransaction {
                    producer_id: t.txn.producer_id,
                    first_offset: t.txn.first_offset,
                });
            }
            if t.last_stable_offset >= upper {
                break;
            }
        }
        out
    }

    /// Kafka's `UnifiedLog.fetchOffsetByTimestamp` for CreateTime: the first record in
    /// offset order whose timestamp is at or after `target`. Control records count
    /// like any other (a marker's timestamp is when it was written), so a lookup can
    /// land on a marker's offset.
    pub fn offset_for_timestamp(&self, target: i64) -> Option<TimestampAndOffset> {
        let start = self
            .batches
            .partition_point(|b| b.max_timestamp_so_far < target)
            .max(
                self.batches
                    .partition_point(|b| b.last_offset < self.log_start_offset),
            );
        for b in &self.batches[start..] {
            if b.header().max_timestamp < target {
                continue;
            }
            // A corrupt batch's records are unreadable: the lookup passes over it.
            let Ok(batch) = b.decode() else {
                continue;
            };
            let found = batch.records.iter().find_map(|r| {
                let timestamp = batch.base_timestamp + r.timestamp_delta;
                let offset = batch.base_offset + i64::from(r.offset_delta);
                (timestamp >= target && offset >= self.log_start_offset).then_some(
                    TimestampAndOffset {
                        timestamp,
                        offset,
                        leader_epoch: b.leader_epoch,
                    },
                )
            });
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Removes every record at or after `offset` (a batch that straddles it goes whole),
    /// the epoch cache entries that start at or after the new end, and the removed
    /// batches from the producer state and transaction index (rebuilt from the
    /// remaining batches, the truth).
    pub fn truncate_to(&mut self, offset: Offset) {
        if offset < self.first_segment_base {
            self.truncate_fully_and_start_at(offset);
            return;
        }
        let keep = self.batches.partition_point(|b| b.last_offset < offset);
        // Batches without a producer id carry no producer or transaction state:
        // removing only those leaves it as it is.
        let producers_removed = self.batches[keep..]
            .iter()
            .any(|b| b.header().has_producer_id());
        self.batches.truncate(keep);
        if producers_removed {
            (self.producer_state, self.txn_index) = self.state_from_batches();
            self.producers_expired = false;
        }
        self.log_end_offset = self
            .batches
            .last()
            .map_or(self.first_segment_base, |b| b.last_offset + 1);
        let leo = self.log_end_offset;
        self.log_start_offset = self.log_start_offset.min(leo);
        self.epochs.retain(|e| e.start_offset < leo);
        let d = &mut self.durability;
        d.durable_batches = d.durable_batches.min(keep);
        d.recovery_point = d.recovery_point.min(leo);
        // Kafka's `LocalLog.truncateTo`: the segments based above the offset go, the
        // one holding it (maybe empty now) is the active segment.
        d.segment_starts.retain(|s| *s <= keep);
        d.active_segment = d.segment_starts.last().copied().unwrap_or(0);
        if d.rolled_upto > keep {
            d.restart_roll_check();
        }
    }

    /// Every data record as (offset, value), values parsed from decimal ASCII (the
    /// workload's encoding); records whose value is not a number, control records and
    /// corrupt batches ([`Log::corrupt_batches`]) are skipped.
    pub fn records(&self) -> Vec<(Offset, u64)> {
        let mut out = Vec::new();
        for b in &self.batches {
            let Ok(batch) = b.decode() else {
                continue;
            };
            if batch.is_control() {
                continue;
            }
            for r in &batch.records {
                let value = r
                    .value
                    .as_ref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|s| s.parse().ok());
                if let Some(v) = value {
                    out.push((batch.base_offset + i64::from(r.offset_delta), v));
                }
            }
        }
        out
    }

    /// Every transaction marker in the log, in offset order.
    pub fn markers(&self) -> Vec<Marker> {
        self.batches
            .iter()
            .filter_map(|b| {
                let header = b.header();
                if !header.is_control() {
                    return None;
                }
                let marker = b.marker().ok().flatten()?;
                Some(Marker {
                    offset: b.base_offset,
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                    marker,
                    timestamp: header.max_timestamp,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
