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
mod tests;
