//! A replica's partition log: record batches, the log end offset, the leader epoch
//! cache (Kafka's `leader-epoch-checkpoint`) and the idempotent producers' state
//! ([`ProducerStateManager`], kept in step with every append and truncation).
//!
//! The log is the part of a broker that survives a process crash; it lives on the
//! broker's [`crate::broker::Disk`]. It knows nothing about replication: the broker
//! decides what to append and where to truncate.

use crate::producer_state::ProducerStateManager;
use crate::protocol::{LeaderEpoch, Offset};
use crate::record::{self, BatchHeader, RecordBatch, RecordError};
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
    /// The encoded batch.
    pub bytes: Bytes,
}

impl StoredBatch {
    /// The batch's header (stored batches were checked when appended).
    fn header(&self) -> BatchHeader {
        BatchHeader::parse(&self.bytes).expect("stored batches are valid")
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

/// A partition log.
#[derive(Clone, Debug, Default)]
pub struct Log {
    batches: Vec<StoredBatch>,
    log_end_offset: Offset,
    epochs: Vec<EpochEntry>,
    producer_state: ProducerStateManager,
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

    /// Kafka's log recovery on startup: rebuilds the producer state from the batches
    /// and asserts that it equals the state kept up to date by appends and truncations.
    pub fn rebuild_producer_state(&mut self) {
        let rebuilt = self.producer_state_from_batches();
        assert_eq!(
            rebuilt, self.producer_state,
            "producer state rebuilt from the log differs from the incremental one"
        );
        self.producer_state = rebuilt;
    }

    fn producer_state_from_batches(&self) -> ProducerStateManager {
        ProducerStateManager::rebuild(self.batches.iter().map(StoredBatch::header))
    }

    /// Records that `epoch` starts at `start_offset` (Kafka assigns it when a replica
    /// becomes leader, and when a follower appends the epoch's first batch).
    pub fn assign_epoch(&mut self, epoch: LeaderEpoch, start_offset: Offset) {
        match self.epochs.last() {
            Some(last) if last.epoch == epoch => {}
            Some(last) if last.epoch > epoch => {
                panic!(
                    "leader epoch cache went back: {} after {}",
                    epoch, last.epoch
                )
            }
            _ => {
                assert!(
                    self.epochs
                        .last()
                        .is_none_or(|l| l.start_offset <= start_offset),
                    "epoch start offsets must not decrease"
                );
                self.epochs.push(EpochEntry {
                    epoch,
                    start_offset,
                });
            }
        }
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch <= `epoch` and the
    /// offset where it ends (the next epoch's start, or the log end offset for the
    /// latest epoch). `(-1, -1)` when there is no such epoch.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        match self.epochs.iter().rposition(|e| e.epoch <= epoch) {
            None => (-1, -1),
            Some(i) if i + 1 == self.epochs.len() => (self.epochs[i].epoch, self.log_end_offset),
            Some(i) => (self.epochs[i].epoch, self.epochs[i + 1].start_offset),
        }
    }

    /// Appends a producer's batch as leader: assigns offsets from the log end offset and
    /// stamps the leader epoch (outside the CRC). Returns (base offset, last offset).
    pub fn append_as_leader(
        &mut self,
        batch: &Bytes,
        epoch: LeaderEpoch,
    ) -> Result<(Offset, Offset), RecordError> {
        record::verify_crc(batch)?;
        let header = BatchHeader::parse(batch)?;
        let mut bytes = batch[..header.size()].to_vec();
        let base = self.log_end_offset;
        record::set_base_offset(&mut bytes, base);
        record::set_partition_leader_epoch(&mut bytes, epoch);
        self.assign_epoch(epoch, base);
        let last = base + i64::from(header.last_offset_delta);
        self.push(StoredBatch {
            base_offset: base,
            last_offset: last,
            leader_epoch: epoch,
            bytes: Bytes::from(bytes),
        });
        self.producer_state.update(&BatchHeader {
            base_offset: base,
            partition_leader_epoch: epoch,
            ..header
        });
        Ok((base, last))
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
        self.assign_epoch(header.partition_leader_epoch, header.base_offset);
        self.push(StoredBatch {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            leader_epoch: header.partition_leader_epoch,
            bytes: batch.slice(..header.size()),
        });
        self.producer_state.update(&header);
        Ok(true)
    }

    fn push(&mut self, batch: StoredBatch) {
        assert!(
            self.batches.len() < MAX_BATCHES,
            "log exceeds {MAX_BATCHES} batches"
        );
        assert_eq!(
            batch.base_offset, self.log_end_offset,
            "append must be contiguous"
        );
        assert!(batch.last_offset >= batch.base_offset);
        self.log_end_offset = batch.last_offset + 1;
        self.batches.push(batch);
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

    /// Removes every record at or after `offset` (a batch that straddles it goes whole),
    /// the epoch cache entries that start at or after the new end, and the removed
    /// batches from the producer state (rebuilt from the remaining batches, the truth).
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = self.batches.partition_point(|b| b.last_offset < offset);
        // Batches without a producer id carry no producer state: removing only those
        // leaves it as it is.
        let producers_removed = self.batches[keep..]
            .iter()
            .any(|b| b.header().has_producer_id());
        self.batches.truncate(keep);
        if producers_removed {
            self.producer_state = self.producer_state_from_batches();
        }
        self.log_end_offset = self.batches.last().map_or(0, |b| b.last_offset + 1);
        let leo = self.log_end_offset;
        self.epochs.retain(|e| e.start_offset < leo);
    }

    /// Every record as (offset, value), values parsed from decimal ASCII (the
    /// workload's encoding); records whose value is not a number are skipped.
    pub fn records(&self) -> Vec<(Offset, u64)> {
        let mut out = Vec::new();
        for b in &self.batches {
            let (batch, _) = RecordBatch::decode(&b.bytes).expect("stored batches are valid");
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn batch(n: usize) -> Bytes {
        idempotent(-1, -1, -1, n)
    }

    /// A batch of `n` records from producer `producer_id` starting at `base_sequence`.
    fn idempotent(producer_id: i64, producer_epoch: i16, base_sequence: i32, n: usize) -> Bytes {
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: n as i32 - 1,
            base_timestamp: 0,
            max_timestamp: 0,
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
        let recs = log.records();
        assert_eq!(recs[3], (3, 100));
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
}
