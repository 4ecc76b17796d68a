//! A broker's machine storage: the partition logs under its log directory, the
//! checkpoint files, and the OS page cache in front of them. A process crash keeps all
//! of it (the page cache belongs to the OS); a power loss keeps only what is on the
//! platter: each log's flushed or written-back prefix, maybe with a torn last write,
//! and the checkpoint files, which Kafka writes with an fsync and an atomic rename.
//!
//! A full disk (the `disk-full` fault) fails every write that needs new space (an
//! append, a checkpoint file) with `No space left on device`; as Kafka's
//! `LogDirFailureChannel` does with an `IOException`, the first failure takes the log
//! directory offline for the rest of the process, and the broker halts.

use crate::broker::log::{Corruption, Deleted, Log, PowerLoss, Recovery, Retention, Writeback};
use crate::kafka::protocol::{ErrorCode, Millis, Offset, TopicPartition};
use std::collections::BTreeMap;

/// What decides when a partition's log is flushed on a write: its topic's
/// `flush.messages`, `segment.bytes` and `segment.ms` (else the broker's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Unflushed offsets that make Kafka flush.
    pub flush_messages: i64,
    /// The size a segment rolls at.
    pub segment_bytes: u64,
    /// How much newer than a segment's first batch a batch's newest record may be
    /// before it rolls a new segment.
    pub segment_ms: i64,
}

/// Bound on the logs written in one step of the broker.
const MAX_WRITTEN: usize = 1 << 16;

/// The broker's one log directory: Kafka's `log.dir` default
/// (`ServerLogConfigs.LOG_DIR_DEFAULT`), which also holds the metadata log.
pub const LOG_DIR: &str = "/tmp/kafka-logs";

/// The `IOException` message of a write to a full disk (`ENOSPC`).
const NO_SPACE: &str = "No space left on device";

/// What a broker keeps across a process crash, and in part across a power loss.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// One log per hosted partition.
    pub logs: BTreeMap<TopicPartition, Log>,
    /// `replication-offset-checkpoint`: the high watermarks last checkpointed.
    pub hw_checkpoint: BTreeMap<TopicPartition, Offset>,
    /// `recovery-point-offset-checkpoint`: each log's recovery point when last
    /// checkpointed; recovery validates the batches from there on.
    pub recovery_point_checkpoint: BTreeMap<TopicPartition, Offset>,
    /// `log-start-offset-checkpoint`: each log's start offset when last checkpointed;
    /// a restart takes the larger of it and the first segment's base.
    pub log_start_checkpoint: BTreeMap<TopicPartition, Offset>,
    /// The OS writeback of the page cache.
    pub writeback: Writeback,
    /// Logs appended to in the broker's current step, not yet settled.
    written: Vec<TopicPartition>,
    /// No block is free (the `disk-full` fault): writes that need new space fail.
    full: bool,
    /// The error that took the log directory offline in this process (Kafka's
    /// `LogDirFailureChannel.maybeAddOfflineLogDir`); every later write fails too.
    offline: Option<String>,
}

impl Disk {
    /// An empty disk whose page cache is written back as `writeback` says.
    pub fn new(writeback: Writeback) -> Disk {
        Disk {
            writeback,
            ..Disk::default()
        }
    }

    /// The disk fills up (`true`: the `disk-full` fault starts) or has room again.
    /// The files already written stay; only new space is refused.
    pub fn set_full(&mut self, full: bool) {
        self.full = full;
    }

    /// Whether the disk is full.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The error that took the log directory offline in this process, if any.
    pub fn offline(&self) -> Option<&str> {
        self.offline.as_deref()
    }

    /// A write that needs new space, described by `what` (Kafka's message for the
    /// `IOException` it wraps): refused with `KAFKA_STORAGE_ERROR` when the directory
    /// is offline, or is full, which takes the directory offline.
    fn write_space(&mut self, what: impl FnOnce() -> String) -> Result<(), ErrorCode> {
        if self.offline.is_none() && self.full {
            self.offline = Some(format!("{}: {NO_SPACE}", what()));
        }
        match self.offline {
            Some(_) => Err(ErrorCode::KafkaStorageError),
            None => Ok(()),
        }
    }

    /// The directory fails at startup when the disk is full (Kafka's `LogManager`
    /// cannot write on a full disk as it loads: the clean-shutdown marker, the
    /// checkpoints), so the broker cannot start.
    pub fn check_startup(&mut self) -> Result<(), ErrorCode> {
        self.write_space(|| format!("Failed to load log dir {LOG_DIR} at startup"))
    }

    /// `tp`'s log, about to be appended to at `now`: the OS flusher first catches up
    /// to `now`, and the write is settled by [`Disk::settle`]. `KAFKA_STORAGE_ERROR`
    /// when the directory is offline or the disk full (Kafka's
    /// `UnifiedLog.append` under `maybeHandleIOException`).
    pub fn log_for_write(
        &mut self,
        tp: &TopicPartition,
        now: Millis,
    ) -> Result<&mut Log, ErrorCode> {
        self.write_space(|| format!("Error while appending records to {tp} in dir {LOG_DIR}"))?;
        Ok(self.log_for_empty_append(tp, now))
    }

    /// [`Disk::log_for_write`] for an append of nothing (a follower's empty fetch
    /// answer), which needs no space: `UnifiedLog.append` returns before any I/O when
    /// there is no batch.
    pub fn log_for_empty_append(&mut self, tp: &TopicPartition, now: Millis) -> &mut Log {
        if !self.written.contains(tp) {
            assert!(self.written.len() < MAX_WRITTEN, "too many logs written");
            self.written.push(tp.clone());
        }
        let log = self.logs.get_mut(tp).expect("a log to write to");
        log.writeback(now, &self.writeback);
        log
    }

    /// Ends a step of the broker at `now`: each log written in it rolls the segments
    /// it filled (`segment.bytes` from `policy`, which flushes the old ones), is dirty,
    /// and is flushed when `flush.messages` offsets or more are unflushed
    /// (`UnifiedLog.append`'s check).
    /// A truncation in the step (which lowers a log's recovery point below its
    /// checkpoint) checkpoints every recovery point, as `LogManager.truncateTo` does.
    pub fn settle(&mut self, now: Millis, policy: impl Fn(&TopicPartition) -> FlushPolicy) {
        let truncated = self.logs.iter().any(|(tp, log)| {
            self.recovery_point_checkpoint
                .get(tp)
                .is_some_and(|c| log.recovery_point() < *c)
        });
        if truncated {
            self.checkpoint_recovery_points();
        }
        for tp in std::mem::take(&mut self.written) {
            let Some(log) = self.logs.get_mut(&tp) else {
                continue;
            };
            let policy = policy(&tp);
            log.roll_full_segments(policy.segment_bytes, policy.segment_ms, now);
            log.written(now);
            if log.unflushed_messages() >= policy.flush_messages {
                log.flush(now);
            }
        }
    }

    /// Kafka's flusher (`LogManager.flushDirtyLogs`): flushes every log not flushed for
    /// `flush_ms(tp)`.
    pub fn flush_dirty_logs(&mut self, now: Millis, flush_ms: impl Fn(&TopicPartition) -> i64) {
        for (tp, log) in &mut self.logs {
            let since = now.saturating_sub(log.last_flush_ms());
            if i64::try_from(since).unwrap_or(i64::MAX) >= flush_ms(tp) {
                log.flush(now);
            }
        }
    }

    /// Kafka's `checkpointLogRecoveryOffsets`: writes every log's recovery point (a
    /// new file, so not on a full disk).
    pub fn checkpoint_recovery_points(&mut self) {
        let what = || {
            format!("Disk error while writing recovery offsets checkpoint in directory {LOG_DIR}")
        };
        if self.write_space(what).is_err() {
            return;
        }
        for (tp, log) in &self.logs {
            self.recovery_point_checkpoint
                .insert(tp.clone(), log.recovery_point());
        }
    }

    /// Kafka's `checkpointLogStartOffsets`: writes every log's start offset (a new
    /// file, so not on a full disk).
    pub fn checkpoint_log_starts(&mut self) {
        let what = || {
            format!("Disk error while writing log start offsets checkpoint in directory {LOG_DIR}")
        };
        if self.write_space(what).is_err() {
            return;
        }
        for (tp, log) in &self.logs {
            self.log_start_checkpoint
                .insert(tp.clone(), log.log_start_offset());
        }
    }

    /// `ReplicaManager.checkpointHighWatermarks`: writes the high watermarks (a new
    /// file every time, so not on a full disk).
    pub fn checkpoint_high_watermarks(
        &mut self,
        hws: impl IntoIterator<Item = (TopicPartition, Offset)>,
    ) {
        let what = || format!("Error while writing to highwatermark file in directory {LOG_DIR}");
        if self.write_space(what).is_err() {
            return;
        }
        self.hw_checkpoint.extend(hws);
    }

    /// Kafka's `cleanupLogs` (the `kafka-log-retention` task): each log that `policy`
    /// gives a retention to deletes the segments it no longer keeps, at `now` (the
    /// broker's wall clock, an epoch timestamp). Returns the logs whose start moved.
    pub fn delete_retained_segments(
        &mut self,
        now: i64,
        policy: impl Fn(&TopicPartition) -> Option<Retention>,
    ) -> Vec<(TopicPartition, Deleted)> {
        let mut moved = Vec::new();
        for (tp, log) in &mut self.logs {
            let Some(retention) = policy(tp) else {
                continue;
            };
            if let Some(deleted) = log.delete_retained_segments(now, retention) {
                moved.push((tp.clone(), deleted));
            }
        }
        moved
    }

    /// Every log forgets the producers expired at `now` (the broker's wall clock, an
    /// epoch timestamp; `producer.id.expiration.ms`).
    pub fn remove_expired_producers(&mut self, now: i64, expiration_ms: i64) {
        for log in self.logs.values_mut() {
            log.remove_expired_producers(now, expiration_ms);
        }
    }

    /// The power fails at `now`: each log keeps its platter; `torn` says, per log that
    /// loses something, whether its first lost batch was torn and how far it got (in
    /// thousandths). Returns the logs that lost something.
    pub fn power_loss(
        &mut self,
        now: Millis,
        mut torn: impl FnMut() -> Option<u64>,
    ) -> Vec<(TopicPartition, PowerLoss)> {
        self.written.clear();
        let mut lost = Vec::new();
        for (tp, log) in &mut self.logs {
            log.writeback(now, &self.writeback);
            if log.durable_end_offset() == log.log_end_offset() {
                continue;
            }
            let loss = log.power_loss(now, &self.writeback, torn());
            lost.push((tp.clone(), loss));
        }
        lost
    }

    /// A latent sector error found at the next cold read: the process is dead, the OS
    /// has written back every dirty page and dropped its page cache (nothing is lost),
    /// and one bit flipped in the records of a data batch of a drawn partition
    /// ([`Log::corrupt`]). `draw(n)` picks in `0..n`. Internal topics
    /// (`__consumer_offsets`, `__transaction_state`) are not hit: how their loaders
    /// meet a corrupt batch is not modelled. `None` when no such batch exists.
    pub fn corrupt(
        &mut self,
        mut draw: impl FnMut(usize) -> usize,
    ) -> Option<(TopicPartition, Corruption)> {
        self.written.clear();
        self.logs.values_mut().for_each(Log::write_back_all);
        let mut hit: Vec<(&TopicPartition, &mut Log)> = self
            .logs
            .iter_mut()
            .filter(|(tp, log)| !tp.topic.starts_with("__") && log.log_end_offset() > 0)
            .collect();
        if hit.is_empty() {
            return None;
        }
        let i = draw(hit.len());
        let (tp, log) = hit.swap_remove(i);
        let corruption = log.corrupt(draw)?;
        Some((tp.clone(), corruption))
    }

    /// Kafka's log loading after an unclean shutdown (every start here: no clean
    /// shutdown is modelled): each log recovers from its checkpointed recovery point
    /// (and, with `recovery_point_at_log_end`, KAFKA-10101's bug, moves its recovery
    /// point to its log end). Returns the logs that recovery truncated.
    pub fn recover(&mut self, recovery_point_at_log_end: bool) -> Vec<(TopicPartition, Recovery)> {
        // A new process: the directory is looked at afresh.
        self.offline = None;
        let mut truncated = Vec::new();
        for (tp, log) in &mut self.logs {
            let checkpoint = self.recovery_point_checkpoint.get(tp).copied().unwrap_or(0);
            let log_start = self.log_start_checkpoint.get(tp).copied().unwrap_or(0);
            let recovery = log.recover(checkpoint, log_start, recovery_point_at_log_end);
            if recovery.truncated.is_some() {
                truncated.push((tp.clone(), recovery));
            }
        }
        truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::record::testing::plain_batch;
    use bytes::Bytes;

    fn one_record() -> Bytes {
        plain_batch(vec![(None, Bytes::from_static(b"1"))]).encode()
    }

    /// A disk with logs `a-0` and `b-0`, each with `n` records appended at `now`.
    fn disk_with(n: usize, now: Millis, flush_messages: i64) -> Disk {
        let mut disk = Disk::new(Writeback::default());
        for t in ["a", "b"] {
            let tp = TopicPartition::new(t, 0);
            disk.logs.insert(tp.clone(), Log::default());
            for _ in 0..n {
                let log = disk.log_for_write(&tp, now).unwrap();
                log.append_as_leader(&one_record(), 0).unwrap();
            }
        }
        disk.settle(now, |_| FlushPolicy {
            flush_messages,
            segment_bytes: 1 << 30,
            segment_ms: i64::MAX,
        });
        disk
    }

    #[test]
    fn a_step_flushes_the_logs_it_wrote_as_flush_messages_says() {
        let disk = disk_with(3, 1_000, 3);
        for log in disk.logs.values() {
            assert_eq!((log.durable_end_offset(), log.recovery_point()), (3, 3));
        }
        let disk = disk_with(3, 1_000, 4);
        for log in disk.logs.values() {
            assert_eq!((log.durable_end_offset(), log.unflushed_messages()), (0, 3));
        }
    }

    #[test]
    fn a_full_segment_rolls_and_the_old_one_is_flushed() {
        let mut disk = Disk::new(Writeback::default());
        let tp = TopicPartition::new("a", 0);
        disk.logs.insert(tp.clone(), Log::default());
        let size = one_record().len() as u64;
        let policy = |_: &TopicPartition| FlushPolicy {
            flush_messages: i64::MAX,
            segment_bytes: 3 * size,
            segment_ms: i64::MAX,
        };
        for _ in 0..7 {
            let log = disk.log_for_write(&tp, 1_000).unwrap();
            log.append_as_leader(&one_record(), 0).unwrap();
        }
        disk.settle(1_000, policy);
        let log = &disk.logs[&tp];
        // Segments [0, 3), [3, 6), [6, 7): the first two rolled and were flushed.
        assert_eq!((log.durable_end_offset(), log.recovery_point()), (6, 6));
        let log = disk.log_for_write(&tp, 1_100).unwrap();
        log.append_as_leader(&one_record(), 0).unwrap();
        disk.settle(1_100, policy);
        assert_eq!(
            disk.logs[&tp].durable_end_offset(),
            6,
            "the active segment has room"
        );
    }

    #[test]
    fn the_flusher_and_the_checkpoint_follow_their_settings() {
        let mut disk = disk_with(2, 1_000, i64::MAX);
        disk.flush_dirty_logs(1_500, |tp| if &*tp.topic == "a" { 1_000 } else { 2_000 });
        let a = TopicPartition::new("a", 0);
        let b = TopicPartition::new("b", 0);
        assert_eq!(
            disk.logs[&a].recovery_point(),
            2,
            "not flushed for 1.5 s >= 1 s"
        );
        assert_eq!(disk.logs[&b].recovery_point(), 0);
        disk.checkpoint_recovery_points();
        assert_eq!(disk.recovery_point_checkpoint[&a], 2);
        assert_eq!(disk.recovery_point_checkpoint[&b], 0);
    }

    #[test]
    fn a_corrupt_fault_writes_the_page_cache_back_and_spares_internal_topics() {
        let mut disk = disk_with(2, 1_000, i64::MAX);
        let internal = TopicPartition::new("__consumer_offsets", 0);
        disk.logs.insert(internal.clone(), Log::default());
        let log = disk.log_for_write(&internal, 1_000).unwrap();
        log.append_as_leader(&one_record(), 0).unwrap();
        let mut draws = [1, 0, 0, 0].into_iter();
        let (tp, c) = disk.corrupt(|n| draws.next().unwrap() % n).unwrap();
        assert_eq!((tp, c.base_offset), (TopicPartition::new("b", 0), 0));
        for log in disk.logs.values() {
            assert_eq!(
                log.durable_end_offset(),
                log.log_end_offset(),
                "written back"
            );
            assert_eq!(log.recovery_point(), 0, "not a Kafka flush");
        }
        assert_eq!(disk.logs[&internal].corrupt_batches(), vec![]);
        assert_eq!(disk.recover(false).len(), 1, "found by recovery from 0");
    }

    #[test]
    fn a_full_disk_takes_the_directory_offline_for_the_rest_of_the_process() {
        let mut disk = disk_with(1, 1_000, i64::MAX);
        let a = TopicPartition::new("a", 0);
        disk.set_full(true);
        assert_eq!(
            disk.log_for_write(&a, 2_000).err(),
            Some(ErrorCode::KafkaStorageError)
        );
        let error = disk.offline().expect("offline").to_string();
        assert!(error.ends_with("No space left on device"), "{error}");
        disk.set_full(false);
        assert!(disk.log_for_write(&a, 2_100).is_err(), "still offline");
        disk.checkpoint_log_starts();
        assert!(
            disk.log_start_checkpoint.is_empty(),
            "no checkpoint written"
        );
        assert_eq!(disk.offline(), Some(error.as_str()), "the first error kept");
        disk.recover(false);
        assert_eq!(disk.offline(), None, "a new process looks again");
        assert!(disk.log_for_write(&a, 3_000).is_ok());
        assert_eq!(disk.logs[&a].log_end_offset(), 1);
    }

    #[test]
    fn a_power_loss_reports_the_logs_that_lost_something_and_recovery_what_it_cut() {
        let mut disk = disk_with(2, 1_000, i64::MAX);
        let a = TopicPartition::new("a", 0);
        disk.logs.get_mut(&a).unwrap().flush(1_200);
        let mut torn = [Some(300)].into_iter();
        let lost = disk.power_loss(2_000, || torn.next().flatten());
        assert_eq!(lost.len(), 1, "only b lost its page cache: {lost:?}");
        assert_eq!(lost[0].0, TopicPartition::new("b", 0));
        assert!(lost[0].1.torn);
        let recovered = disk.recover(false);
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].1.log_end_offset, 0);
        assert_eq!(disk.logs[&a].log_end_offset(), 2, "flushed: kept");
    }
}
