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
//! decides what to append and where to truncate.

use crate::broker::producer_state::{CompletedTxn, ProducerStateManager};
use crate::history::TxnBatchSnapshot;
use crate::kafka::protocol::{AbortedTransaction, ErrorCode, LeaderEpoch, Offset};
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
    /// The largest record timestamp of this batch and every earlier one (Kafka's time
    /// index keeps the same running maximum).
    pub max_timestamp_so_far: i64,
    /// The encoded batch.
    pub bytes: Bytes,
}

impl StoredBatch {
    /// The batch's header (stored batches were checked when appended).
    fn header(&self) -> BatchHeader {
        BatchHeader::parse(&self.bytes).expect("stored batches are valid")
    }

    /// The batch decoded (stored batches were checked when appended).
    fn decode(&self) -> RecordBatch {
        RecordBatch::decode(&self.bytes)
            .expect("stored batches are valid")
            .0
    }

    /// The header, and the marker of a control batch.
    fn header_and_marker(&self) -> (BatchHeader, Option<EndTransactionMarker>) {
        let header = self.header();
        let marker = header.is_control().then(|| {
            EndTransactionMarker::of_batch(&self.decode())
                .expect("stored markers are valid")
                .expect("markers are never cleaned away here")
        });
        (header, marker)
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

/// A partition log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    batches: Vec<StoredBatch>,
    log_end_offset: Offset,
    epochs: Vec<EpochEntry>,
    producer_state: ProducerStateManager,
    /// Completed transactions in marker order (so by `last_offset`).
    txn_index: Vec<TxnIndexEntry>,
}

impl Log {
    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// The first offset in the log (no retention yet, so always 0).
    pub fn log_start_offset(&self) -> Offset {
        0
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

    /// Kafka's log recovery on startup: rebuilds the producer state and the transaction
    /// index from the batches and asserts that they equal the state kept up to date by
    /// appends and truncations.
    pub fn rebuild_producer_state(&mut self) {
        let (producer_state, txn_index) = self.state_from_batches();
        assert_eq!(
            producer_state, self.producer_state,
            "producer state rebuilt from the log differs from the incremental one"
        );
        assert_eq!(
            txn_index, self.txn_index,
            "transaction index rebuilt from the log differs from the incremental one"
        );
        self.producer_state = producer_state;
        self.txn_index = txn_index;
    }

    /// The producer state and transaction index of the batches, replayed in order.
    fn state_from_batches(&self) -> (ProducerStateManager, Vec<TxnIndexEntry>) {
        let mut producer_state = ProducerStateManager::default();
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
            .partition_point(|b| b.max_timestamp_so_far < target);
        for b in &self.batches[start..] {
            if b.header().max_timestamp < target {
                continue;
            }
            let batch = b.decode();
            let found = batch.records.iter().find_map(|r| {
                let timestamp = batch.base_timestamp + r.timestamp_delta;
                (timestamp >= target).then(|| TimestampAndOffset {
                    timestamp,
                    offset: batch.base_offset + i64::from(r.offset_delta),
                    leader_epoch: b.leader_epoch,
                })
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
        let keep = self.batches.partition_point(|b| b.last_offset < offset);
        // Batches without a producer id carry no producer or transaction state:
        // removing only those leaves it as it is.
        let producers_removed = self.batches[keep..]
            .iter()
            .any(|b| b.header().has_producer_id());
        self.batches.truncate(keep);
        if producers_removed {
            (self.producer_state, self.txn_index) = self.state_from_batches();
        }
        self.log_end_offset = self.batches.last().map_or(0, |b| b.last_offset + 1);
        let leo = self.log_end_offset;
        self.epochs.retain(|e| e.start_offset < leo);
    }

    /// Every data record as (offset, value), values parsed from decimal ASCII (the
    /// workload's encoding); records whose value is not a number, and control records,
    /// are skipped.
    pub fn records(&self) -> Vec<(Offset, u64)> {
        let mut out = Vec::new();
        for b in &self.batches {
            let batch = b.decode();
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
                let (header, marker) = b.header_and_marker();
                marker.map(|marker| Marker {
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
mod tests {
    use super::*;
    use crate::kafka::record::{ControlRecordType, Record, TRANSACTIONAL_BIT};

    fn batch(n: usize) -> Bytes {
        idempotent(-1, -1, -1, n)
    }

    /// A batch of `n` records from producer `producer_id` starting at `base_sequence`.
    fn idempotent(producer_id: i64, producer_epoch: i16, base_sequence: i32, n: usize) -> Bytes {
        data(producer_id, producer_epoch, base_sequence, n, 0, 0)
    }

    /// A transactional batch of `n` records.
    fn txn(producer_id: i64, base_sequence: i32, n: usize) -> Bytes {
        data(producer_id, 0, base_sequence, n, TRANSACTIONAL_BIT, 0)
    }

    /// A batch of `n` records with these attributes, all at `timestamp`.
    fn data(
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        n: usize,
        attributes: i16,
        timestamp: i64,
    ) -> Bytes {
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes,
            last_offset_delta: n as i32 - 1,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            records: (0..n)
                .map(|i| Record {
                    attributes: 0,
                    timestamp_delta: 0,
                    offset_delta: i as i32,
                    key: None,
                    value: Some(Bytes::from(format!("{}", 100 + i))),
                    headers: vec![],
                })
                .collect(),
        }
        .encode()
    }

    #[test]
    fn leader_appends_assign_offsets_and_epochs() {
        let mut log = Log::default();
        assert_eq!(log.append_as_leader(&batch(3), 0).unwrap(), (0, 2));
        assert_eq!(log.append_as_leader(&batch(2), 0).unwrap(), (3, 4));
        assert_eq!(log.append_as_leader(&batch(1), 2).unwrap(), (5, 5));
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.end_offset_for_epoch(0), (0, 5));
        assert_eq!(log.end_offset_for_epoch(1), (0, 5));
        assert_eq!(log.end_offset_for_epoch(2), (2, 6));
        assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
        assert_eq!(
            log.end_offset_for_epoch(3),
            (-1, -1),
            "above the latest epoch"
        );
        let recs = log.records();
        assert_eq!(recs[3], (3, 100));
    }

    /// `LeaderEpochFileCache.endOffsetFor` for an epoch older than every cached epoch
    /// (the cache starts at epoch 3): the requested epoch itself and the
    /// start offset of the first cached epoch, not `UNDEFINED_EPOCH`.
    #[test]
    fn end_offset_for_an_epoch_older_than_the_cache() {
        let mut log = Log::default();
        log.assign_epoch(3, 0);
        log.append_as_leader(&batch(4), 3).unwrap();
        log.assign_epoch(5, 4);
        log.append_as_leader(&batch(2), 5).unwrap();
        assert_eq!(log.end_offset_for_epoch(1), (1, 0));
        assert_eq!(log.end_offset_for_epoch(4), (3, 4));
        assert_eq!(log.end_offset_for_epoch(5), (5, 6));
        assert_eq!(
            Log::default().end_offset_for_epoch(0),
            (-1, -1),
            "empty cache"
        );
    }

    /// `LeaderEpochFileCache.assign` (`isUpdateNeeded`, `maybeTruncateNonMonotonicEntries`):
    /// a repeated epoch at a later offset changes nothing; a newer epoch at the same start
    /// offset replaces an epoch that had no records; an older epoch than the latest
    /// removes every entry whose epoch is >= it or that starts at or after its offset.
    #[test]
    fn epoch_cache_assign_truncates_non_monotonic_entries() {
        let mut log = Log::default();
        log.assign_epoch(0, 0);
        log.assign_epoch(0, 3);
        log.assign_epoch(2, 15);
        log.assign_epoch(4, 15);
        log.assign_epoch(5, 51);
        log.assign_epoch(6, 109);
        let entries = |log: &Log| {
            log.epochs()
                .iter()
                .map(|e| (e.epoch, e.start_offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(entries(&log), [(0, 0), (4, 15), (5, 51), (6, 109)]);
        // A batch of epoch 5 at 109 (the replica led epoch 6 without appending).
        log.assign_epoch(5, 109);
        assert_eq!(entries(&log), [(0, 0), (4, 15), (5, 109)]);
        // The same epoch at an earlier offset moves its start back.
        log.assign_epoch(5, 60);
        assert_eq!(entries(&log), [(0, 0), (4, 15), (5, 60)]);
        // An older epoch at an earlier offset cuts back to the entries below both.
        log.assign_epoch(3, 10);
        assert_eq!(entries(&log), [(0, 0), (3, 10)]);
    }

    /// The follower side of the rule: an epoch-6 leadership that appended nothing, then
    /// an epoch-5 batch fetched at the log end (a stale answer with a matching fetch
    /// offset) is appended, and the log's epochs stay non-decreasing.
    #[test]
    fn follower_appends_an_older_epoch_after_an_empty_leadership() {
        let mut leader = Log::default();
        leader.append_as_leader(&batch(2), 5).unwrap();
        leader.append_as_leader(&batch(1), 5).unwrap();
        let mut f = Log::default();
        let batches = leader.read(0, leader.log_end_offset(), 1 << 20);
        assert!(f.append_as_follower(&batches[0]).unwrap());
        f.assign_epoch(6, f.log_end_offset());
        assert!(f.append_as_follower(&batches[1]).unwrap());
        assert_eq!(f.log_end_offset(), 3);
        assert_eq!(f.latest_epoch(), Some(5));
        assert_eq!(f.end_offset_for_epoch(5), (5, 3));
    }

    #[test]
    fn follower_copies_and_truncates() {
        let mut leader = Log::default();
        leader.append_as_leader(&batch(2), 0).unwrap();
        leader.append_as_leader(&batch(2), 1).unwrap();
        let mut f = Log::default();
        for b in leader.read(0, leader.log_end_offset(), 1 << 20) {
            assert!(f.append_as_follower(&b).unwrap());
        }
        assert_eq!(f.log_end_offset(), 4);
        assert_eq!(f.epochs(), leader.epochs());
        f.truncate_to(3);
        assert_eq!(f.log_end_offset(), 2, "straddling batch removed whole");
        assert_eq!(f.latest_epoch(), Some(0));
        assert_eq!(
            f.read(0, 2, 1).len(),
            1,
            "at least one batch even over max_bytes"
        );
    }

    #[test]
    fn producer_state_follows_appends_and_truncation() {
        let mut leader = Log::default();
        leader.append_as_leader(&idempotent(7, 0, 0, 2), 0).unwrap();
        leader.append_as_leader(&batch(1), 0).unwrap();
        leader.append_as_leader(&idempotent(7, 0, 2, 3), 1).unwrap();
        leader.append_as_leader(&idempotent(8, 0, 0, 1), 1).unwrap();
        let entry = leader.producer_state().last_entry(7).unwrap();
        assert_eq!(entry.last_sequence(), 4);
        let last = *entry.batches().back().unwrap();
        assert_eq!((last.first_offset, last.last_offset), (3, 5));

        // A follower that copies the log has the same state.
        let mut f = Log::default();
        for b in leader.read(0, leader.log_end_offset(), 1 << 20) {
            f.append_as_follower(&b).unwrap();
        }
        assert_eq!(f.producer_state(), leader.producer_state());

        // Truncation forgets the removed batches, and producers only they knew.
        f.truncate_to(3);
        assert_eq!(f.producer_state().last_entry(7).unwrap().last_sequence(), 1);
        assert!(f.producer_state().last_entry(8).is_none());
        let mut expected = Log::default();
        expected
            .append_as_leader(&idempotent(7, 0, 0, 2), 0)
            .unwrap();
        assert_eq!(f.producer_state(), expected.producer_state());
        // Removing a batch without a producer id leaves the state alone.
        f.truncate_to(2);
        assert_eq!(f.producer_state(), expected.producer_state());

        // Recovery on restart rebuilds the same state from the batches.
        let before = leader.producer_state().clone();
        leader.rebuild_producer_state();
        assert_eq!(leader.producer_state(), &before);
        assert_eq!(before.len(), 2);
    }

    fn end(commit: bool, coordinator_epoch: i32) -> EndTransactionMarker {
        EndTransactionMarker {
            control_type: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            coordinator_epoch,
        }
    }

    /// Producer 7 aborts a transaction (offsets 0-1, marker 4) while producer 8's
    /// (offsets 2-3) stays open until its commit at 5; producer 7 then opens another
    /// at 6.
    fn transactions() -> Log {
        let mut log = Log::default();
        log.append_as_leader(&txn(7, 0, 2), 0).unwrap();
        log.append_as_leader(&txn(8, 0, 1), 0).unwrap();
        log.append_as_leader(&batch(1), 0).unwrap();
        assert_eq!(
            log.append_control_as_leader(7, 0, end(false, 1), 50, 0),
            Ok(4)
        );
        assert_eq!(
            log.append_control_as_leader(8, 0, end(true, 1), 60, 1),
            Ok(5)
        );
        log.append_as_leader(&txn(7, 2, 1), 1).unwrap();
        log
    }

    #[test]
    fn last_stable_offset_waits_for_open_and_unreplicated_transactions() {
        let log = transactions();
        let index: Vec<(i64, Offset, Offset, bool, Offset)> = log
            .txn_index()
            .iter()
            .map(|t| {
                let c = t.txn;
                (
                    c.producer_id,
                    c.first_offset,
                    c.last_offset,
                    c.aborted,
                    t.last_stable_offset,
                )
            })
            .collect();
        assert_eq!(
            index,
            vec![(7, 0, 4, true, 2), (8, 2, 5, false, 6)],
            "producer 8's transaction was open when 7's ended"
        );
        // Below a marker the high watermark has not passed, its transaction still
        // counts as unstable.
        assert_eq!(log.last_stable_offset(0), 0);
        assert_eq!(
            log.last_stable_offset(4),
            0,
            "7's marker at 4 not replicated"
        );
        assert_eq!(
            log.last_stable_offset(5),
            2,
            "8's marker at 5 not replicated"
        );
        assert_eq!(log.last_stable_offset(6), 6);
        assert_eq!(log.last_stable_offset(7), 6, "7's next transaction is open");
        assert_eq!(log.producer_state().first_undecided_offset(), Some(6));
    }

    /// Kafka's `UnifiedLog.lastStableOffset` at its boundaries, one transaction
    /// (offsets 1-2, marker at 3): the first unstable offset counts only below the
    /// high watermark, and a marker counts as replicated once the high watermark is
    /// past it (`lastOffset < highWatermark`, `removeUnreplicatedTransactions`).
    #[test]
    fn last_stable_offset_boundaries() {
        let mut log = Log::default();
        log.append_as_leader(&batch(1), 0).unwrap();
        log.append_as_leader(&txn(7, 0, 2), 0).unwrap();
        for (hw, lso) in [(0, 0), (1, 1), (2, 1), (3, 1)] {
            assert_eq!(log.last_stable_offset(hw), lso, "open, high watermark {hw}");
        }
        assert_eq!(
            log.append_control_as_leader(7, 0, end(true, 0), 10, 0),
            Ok(3)
        );
        for (hw, lso) in [(1, 1), (2, 1), (3, 1), (4, 4)] {
            assert_eq!(
                log.last_stable_offset(hw),
                lso,
                "ended, high watermark {hw}"
            );
        }
        // read_committed: an aborted transaction overlaps [from, upper) when its
        // first offset is below upper and its marker at or after from.
        log.append_as_leader(&txn(8, 0, 1), 0).unwrap();
        log.append_control_as_leader(8, 0, end(false, 0), 20, 0)
            .unwrap();
        let t8 = vec![AbortedTransaction {
            producer_id: 8,
            first_offset: 4,
        }];
        assert_eq!(log.aborted_transactions(0, 4), vec![], "starts at upper");
        assert_eq!(log.aborted_transactions(0, 5), t8);
        assert_eq!(log.aborted_transactions(5, 6), t8, "marker at from");
        assert_eq!(log.aborted_transactions(6, 7), vec![], "marker before from");
    }

    #[test]
    fn fetches_get_the_aborted_transactions_they_overlap() {
        let log = transactions();
        let aborted = |from, upper| log.aborted_transactions(from, upper);
        let t7 = AbortedTransaction {
            producer_id: 7,
            first_offset: 0,
        };
        assert_eq!(aborted(0, 1), vec![t7]);
        assert_eq!(aborted(3, 6), vec![t7], "the marker at 4 is in range");
        assert_eq!(aborted(5, 7), vec![], "ended before the range");
        // Producer 7 aborts its second transaction (opened at 6) with a marker at 7.
        let mut log = log;
        log.append_control_as_leader(7, 0, end(false, 1), 70, 1)
            .unwrap();
        assert_eq!(
            log.aborted_transactions(0, 8),
            vec![
                t7,
                AbortedTransaction {
                    producer_id: 7,
                    first_offset: 6
                }
            ]
        );
        assert_eq!(log.aborted_transactions(0, 3), vec![t7], "stops early");
    }

    #[test]
    fn markers_are_checked_against_the_producer_state() {
        let mut log = transactions();
        assert_eq!(
            log.append_control_as_leader(8, 0, end(true, 0), 80, 1),
            Err(ErrorCode::TransactionCoordinatorFenced)
        );
        log.append_control_as_leader(8, 2, end(true, 1), 80, 1)
            .unwrap();
        assert_eq!(
            log.append_control_as_leader(8, 1, end(true, 1), 80, 1),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert!(
            log.append_as_leader(&end(true, 1).to_batch(8, 2, 0).encode(), 1)
                .is_err(),
            "markers come through append_control_as_leader"
        );
        let markers: Vec<(Offset, i64, i16, bool, i64)> = log
            .markers()
            .iter()
            .map(|m| {
                let commit = m.marker.control_type == ControlRecordType::Commit;
                (
                    m.offset,
                    m.producer_id,
                    m.producer_epoch,
                    commit,
                    m.timestamp,
                )
            })
            .collect();
        assert_eq!(
            markers,
            vec![
                (4, 7, 0, false, 50),
                (5, 8, 0, true, 60),
                (7, 8, 2, true, 80)
            ]
        );
        assert_eq!(log.records().len(), 5, "markers are not data records");
    }

    #[test]
    fn followers_truncation_and_recovery_keep_the_transaction_state() {
        let leader = transactions();
        let mut f = Log::default();
        for b in leader.read(0, leader.log_end_offset(), 1 << 20) {
            f.append_as_follower(&b).unwrap();
        }
        assert_eq!(f.producer_state(), leader.producer_state());
        assert_eq!(f.txn_index(), leader.txn_index());
        assert_eq!(f.last_stable_offset(7), leader.last_stable_offset(7));
        // Truncating below 8's marker reopens its transaction.
        f.truncate_to(5);
        assert_eq!(f.txn_index().len(), 1);
        assert_eq!(f.last_stable_offset(5), 2);
        assert!(f.producer_state().has_ongoing_transaction(8, 0));
        let mut expected = Log::default();
        for b in leader.read(0, 5, 1 << 20) {
            expected.append_as_follower(&b).unwrap();
        }
        assert_eq!(f.producer_state(), expected.producer_state());
        // Recovery after a restart rebuilds the same state.
        let mut restarted = leader.clone();
        restarted.rebuild_producer_state();
        assert_eq!(restarted.txn_index(), leader.txn_index());
        assert_eq!(restarted.producer_state(), leader.producer_state());
    }

    #[test]
    #[should_panic(expected = "differs from the incremental one")]
    fn recovery_asserts_the_incremental_state() {
        let mut log = transactions();
        log.txn_index.pop();
        log.rebuild_producer_state();
    }

    #[test]
    fn timestamp_lookups_find_the_first_record_at_or_after_the_target() {
        let mut log = Log::default();
        log.append_as_leader(&data(7, 0, 0, 2, TRANSACTIONAL_BIT, 100), 0)
            .unwrap();
        log.append_as_leader(&data(-1, -1, -1, 1, 0, 90), 0)
            .unwrap();
        // The marker is written later than the records it follows...
        log.append_control_as_leader(7, 0, end(true, 0), 300, 1)
            .unwrap();
        // ... and a record created before it arrives after it.
        log.append_as_leader(&data(-1, -1, -1, 1, 0, 200), 1)
            .unwrap();
        let find = |t| log.offset_for_timestamp(t).map(|f| (f.offset, f.timestamp));
        assert_eq!(find(0), Some((0, 100)));
        assert_eq!(find(95), Some((0, 100)));
        assert_eq!(
            find(101),
            Some((3, 300)),
            "C28: the lookup lands on the marker"
        );
        assert_eq!(find(300), Some((3, 300)));
        assert_eq!(find(301), None);
        assert_eq!(log.offset_for_timestamp(150).unwrap().leader_epoch, 1);
    }
}
