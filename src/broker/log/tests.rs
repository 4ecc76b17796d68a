//! Unit tests of `broker::log`.

use super::*;
use crate::broker::producer_state::AppendCheck;
use crate::kafka::record::testing::plain_batch;
use crate::kafka::record::{ControlRecordType, TRANSACTIONAL_BIT};

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
    let values = (0..n).map(|i| (None, Bytes::from(format!("{}", 100 + i))));
    RecordBatch {
        attributes,
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        ..plain_batch(values.collect())
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
    leader.recover(0, 0, false);
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
    restarted.recover(0, 0, false);
    assert_eq!(restarted.txn_index(), leader.txn_index());
    assert_eq!(restarted.producer_state(), leader.producer_state());
}

#[test]
#[should_panic(expected = "differs from the incremental one")]
fn recovery_asserts_the_incremental_state() {
    let mut log = transactions();
    log.txn_index.pop();
    log.recover(0, 0, false);
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

/// Appends `n` one-record batches at `now`, as the broker does: the OS flusher catches
/// up first, and the write dirties the file.
fn write_at(log: &mut Log, os: &Writeback, now: Millis, n: usize) {
    for _ in 0..n {
        log.writeback(now, os);
        log.append_as_leader(&batch(1), 0).unwrap();
        log.written(now);
    }
}

#[test]
fn the_os_writes_a_dirty_log_back_at_the_first_tick_after_it_expires() {
    let os = Writeback {
        dirty_expire_ms: 30_000,
        dirty_writeback_ms: 5_000,
        phase_ms: 1_000,
    };
    let mut log = Log::default();
    write_at(&mut log, &os, 2_000, 3);
    assert_eq!(log.durable_end_offset(), 0, "only in the page cache");
    // Dirtied at 2 s, expired at 32 s: the flusher's next tick is 36 s (phase 1 s).
    write_at(&mut log, &os, 35_999, 1);
    assert_eq!(log.durable_end_offset(), 0, "no tick since the expiry yet");
    write_at(&mut log, &os, 36_000, 1);
    assert_eq!(
        log.durable_end_offset(),
        4,
        "everything written before the tick is on the platter, the write at it is not"
    );
    assert_eq!(log.recovery_point(), 0, "writeback is not a Kafka flush");
    // The write at 36 s dirtied the file again: due at the tick at or after 66 s.
    let loss = log.power_loss(65_999, &os, None);
    assert_eq!(
        loss,
        PowerLoss {
            log_end_offset: 5,
            durable_end_offset: 4,
            torn: false
        }
    );
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn a_kafka_flush_moves_the_log_and_its_recovery_point_to_the_platter() {
    let os = Writeback::default();
    let mut log = Log::default();
    write_at(&mut log, &os, 1_000, 2);
    assert_eq!(log.unflushed_messages(), 2);
    log.flush(1_500);
    assert_eq!((log.durable_end_offset(), log.recovery_point()), (2, 2));
    assert_eq!((log.unflushed_messages(), log.last_flush_ms()), (0, 1_500));
    write_at(&mut log, &os, 2_000, 1);
    assert_eq!(log.power_loss(3_000, &os, None).durable_end_offset, 2);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn recovery_cuts_a_torn_write_and_rebuilds_the_producer_state() {
    let os = Writeback::default();
    let mut log = Log::default();
    log.append_as_leader(&idempotent(7, 0, 0, 2), 0).unwrap();
    log.written(0);
    log.flush(10);
    log.append_as_leader(&idempotent(7, 0, 2, 2), 0).unwrap();
    log.written(20);
    let loss = log.power_loss(30, &os, Some(500));
    assert!(loss.torn && loss.durable_end_offset == 2, "{loss:?}");
    let recovery = log.recover(0, 0, false);
    assert_eq!((recovery.from, recovery.log_end_offset), (0, 2));
    let why = recovery.truncated.expect("the torn write is cut off");
    assert!(why.contains("torn write at offset 2"), "{why}");
    // The producer's next batch continues from the platter's last sequence.
    let next = BatchHeader::parse(&idempotent(7, 0, 2, 1)).unwrap();
    assert_eq!(
        log.producer_state().check_append(&next, true),
        Ok(crate::broker::producer_state::AppendCheck::Append)
    );
    let lost = BatchHeader::parse(&idempotent(7, 0, 4, 1)).unwrap();
    assert_eq!(
        log.producer_state().check_append(&lost, true),
        Err(ErrorCode::OutOfOrderSequenceNumber),
        "the sequences of the lost batch are unknown again"
    );
    assert_eq!(
        log.recover(0, 0, false).truncated,
        None,
        "a second recovery finds nothing"
    );
}

#[test]
fn recovery_validates_from_the_recovery_point_and_truncates_at_a_corrupt_batch() {
    let mut log = Log::default();
    for _ in 0..4 {
        log.append_as_leader(&batch(2), 0).unwrap();
    }
    // A bit flips inside the third batch's records (under the CRC).
    let mut bytes = log.batches[2].bytes.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    log.batches[2].bytes = Bytes::from(bytes);
    let recovery = log.recover(6, 0, false);
    assert_eq!(
        recovery.truncated, None,
        "below the recovery point nothing is read"
    );
    let recovery = log.recover(3, 0, false);
    assert_eq!((recovery.from, recovery.log_end_offset), (3, 4));
    let why = recovery.truncated.expect("the corrupt batch is cut off");
    assert!(why.contains("invalid batch at offset 4"), "{why}");
    assert_eq!(log.records().len(), 4);
    assert_eq!(
        log.recovery_point(),
        3,
        "left at the checkpoint (KAFKA-10101)"
    );
}

/// A log of `n` one-record idempotent batches of producer 7 (sequences 0..n), batch
/// `i` at timestamp `1000 * i`, in segments of two batches each.
fn segmented(n: usize) -> Log {
    let mut log = Log::default();
    for i in 0..n {
        let b = data(7, 0, i as i32, 1, 0, 1000 * i as i64);
        log.append_as_leader(&b, 0).unwrap();
        log.roll_full_segments(2 * b.len() as u64, i64::MAX, 0);
    }
    assert_eq!(log.segment_bounds().len(), n.div_ceil(2));
    log
}

/// `segment.ms`: a batch whose newest record is more than `segment.ms` newer than the
/// active segment's first batch's rolls a new segment, and the old one is flushed.
#[test]
fn a_segment_rolls_when_its_records_span_segment_ms() {
    let mut log = Log::default();
    for (i, ts) in [0, 1_000, 2_000, 2_500, 5_000].into_iter().enumerate() {
        let b = data(7, 0, i as i32, 1, 0, ts);
        log.append_as_leader(&b, 0).unwrap();
        log.roll_full_segments(1 << 30, 2_000, 10);
    }
    // 2000 is not more than 2000 after 0; 2500 is (a new segment from it); 5000 is
    // more than 2000 after 2500 (another). One-record batches: index = offset.
    let starts: Vec<usize> = log.segment_bounds().iter().map(|b| b.0).collect();
    assert_eq!(starts, vec![0, 3, 4]);
    assert_eq!(log.durable_end_offset(), 4, "rolled segments are flushed");
    assert_eq!(log.recovery_point(), 4);
}

/// `segment.ms` does not roll while every batch's max timestamp stays within it of
/// the segment's first batch's: not at exactly `segment.ms`, not for a batch older
/// than the first (a late CreateTime), and not on an empty segment.
#[test]
fn a_segment_does_not_roll_within_segment_ms() {
    let mut log = Log::default();
    for (i, ts) in [5_000, 1_000, 6_000, 7_000].into_iter().enumerate() {
        let b = data(7, 0, i as i32, 1, 0, ts);
        log.append_as_leader(&b, 0).unwrap();
        assert_eq!(log.roll_full_segments(1 << 30, 2_000, 10), 0);
    }
    assert_eq!(log.segment_bounds(), vec![(0, 4)]);
    assert_eq!(log.durable_end_offset(), 0, "nothing flushed");
}

/// The roll check reads each batch once: batches checked in one call or in many roll
/// alike, and after a truncation into the active segment the check starts again from
/// the segment's first batch (whose timestamp still rules).
#[test]
fn the_roll_check_is_incremental_and_survives_truncation() {
    let timestamps = [0, 500, 1_500, 2_100, 2_200, 4_200];
    let mut at_once = Log::default();
    let mut one_by_one = Log::default();
    for (i, ts) in timestamps.into_iter().enumerate() {
        let b = data(7, 0, i as i32, 1, 0, ts);
        at_once.append_as_leader(&b, 0).unwrap();
        one_by_one.append_as_leader(&b, 0).unwrap();
        one_by_one.roll_full_segments(1 << 30, 2_000, 10);
    }
    assert_eq!(at_once.roll_full_segments(1 << 30, 2_000, 10), 2);
    // 2100 is more than 2000 after 0; 4200 more than 2000 after 2100.
    assert_eq!(at_once.segment_bounds(), vec![(0, 3), (3, 5), (5, 6)]);
    assert_eq!(one_by_one.segment_bounds(), at_once.segment_bounds());
    // Truncate into the segment that starts at 2100; it becomes the active one again
    // and 4000 is not more than 2000 after 2100, 4101 is.
    one_by_one.truncate_to(4);
    for (i, ts) in [(4, 4_000), (5, 4_101)] {
        let b = data(7, 0, i, 1, 0, ts);
        one_by_one.append_as_leader(&b, 0).unwrap();
        one_by_one.roll_full_segments(1 << 30, 2_000, 10);
    }
    assert_eq!(one_by_one.segment_bounds(), vec![(0, 3), (3, 5), (5, 6)]);
}

fn retention(retention_ms: i64, retention_bytes: i64, high_watermark: Offset) -> Retention {
    Retention {
        retention_ms,
        retention_bytes,
        high_watermark,
        evict_producers: false,
    }
}

#[test]
fn retention_by_time_deletes_old_whole_segments_below_the_high_watermark() {
    let mut log = segmented(6);
    // Segments [0,1] [2,3] [4,5]; at 4500 with retention 2000 the first two are old
    // (newest records at 1000 and 3000 ... only 1000 is older than 2500).
    let deleted = log.delete_retained_segments(4_500, retention(2_000, -1, 6));
    assert_eq!(
        deleted,
        Some(Deleted {
            segments: 1,
            log_start_offset: 2,
            producers_evicted: 0
        })
    );
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.records().first(), Some(&(2, 100)));
    assert!(
        log.read(0, 6, 1 << 20).len() == 4,
        "reads start at the first kept batch"
    );
    // Everything old, but the high watermark at 3 keeps the segment [2,3] (it ends at 4).
    assert_eq!(
        log.delete_retained_segments(100_000, retention(2_000, -1, 3)),
        None
    );
    // With the high watermark at the log end even the active segment goes: the log is
    // empty and starts at its end.
    let all = log.delete_retained_segments(100_000, retention(2_000, -1, 6));
    assert_eq!(all.map(|d| (d.segments, d.log_start_offset)), Some((2, 6)));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    // The producer is remembered all the same (KAFKA-7190): a retry of its last batch
    // is a duplicate, its next batch in sequence.
    let state = log.producer_state();
    assert_eq!(state.last_entry(7).map(|e| e.last_sequence()), Some(5));
    let retry = BatchHeader::parse(&data(7, 0, 5, 1, 0, 5000)).unwrap();
    assert_eq!(
        state.check_append(&retry, true),
        Ok(AppendCheck::Duplicate {
            first_offset: 5,
            last_offset: 5
        })
    );
    // Appends go on at the log end; recovery rebuilds the same state.
    assert_eq!(
        log.append_as_leader(&data(7, 0, 6, 1, 0, 0), 0).unwrap(),
        (6, 6)
    );
    log.recover(0, 0, false);
    assert_eq!(log.log_start_offset(), 6);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let mut log = segmented(6);
    let one = log.batches[0].bytes.len() as i64;
    // 6 batches; a limit of 3 batches deletes one segment (deleting a second would go
    // below the limit).
    let deleted = log.delete_retained_segments(0, retention(-1, 3 * one, 6));
    assert_eq!(deleted.map(|d| d.log_start_offset), Some(2));
    assert_eq!(
        log.delete_retained_segments(0, retention(-1, 3 * one, 6)),
        None
    );
    assert_eq!(log.delete_retained_segments(0, retention(-1, -1, 6)), None);
}

#[test]
fn the_evict_switch_forgets_producers_below_the_log_start() {
    let mut log = segmented(4);
    let policy = Retention {
        evict_producers: true,
        ..retention(-1, 0, 4)
    };
    let deleted = log.delete_retained_segments(0, policy).unwrap();
    assert_eq!(
        (deleted.log_start_offset, deleted.producers_evicted),
        (4, 1)
    );
    assert!(log.producer_state().last_entry(7).is_none());
    let retry = BatchHeader::parse(&data(7, 0, 3, 1, 0, 0)).unwrap();
    assert_eq!(
        log.producer_state().check_append(&retry, true),
        Ok(AppendCheck::Append),
        "an unknown producer's retry is a new batch"
    );
    log.recover(0, 0, false);
    assert!(log.producer_state().is_empty(), "a rebuild forgets it too");
}

#[test]
fn followers_copy_the_leaders_log_start_up_to_their_high_watermark() {
    let mut log = segmented(4);
    log.assign_epoch(1, 2);
    assert!(
        !log.maybe_increment_log_start_offset(3, 2, false),
        "past the HW"
    );
    assert!(log.maybe_increment_log_start_offset(3, 4, false));
    assert!(
        !log.maybe_increment_log_start_offset(1, 4, false),
        "never back"
    );
    assert_eq!(log.log_start_offset(), 3);
    // The epoch cache now starts at the log start.
    assert_eq!(
        log.epochs(),
        &[EpochEntry {
            epoch: 1,
            start_offset: 3
        }]
    );
    // The segment [0,1] lies wholly below it and goes at the next check; [2,3] stays.
    let deleted = log
        .delete_retained_segments(0, retention(-1, -1, 4))
        .unwrap();
    assert_eq!((deleted.segments, deleted.log_start_offset), (1, 3));
    assert_eq!(log.records().first(), Some(&(2, 100)));
    // A restart finds the first segment's base unless the checkpoint says more.
    log.recover(0, 0, false);
    assert_eq!(log.log_start_offset(), 2);
    log.recover(0, 3, false);
    assert_eq!(log.log_start_offset(), 3);
    // A checkpoint past the log end: the log starts again, empty, there.
    log.recover(0, 9, false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (9, 9));
}

#[test]
fn truncate_fully_and_start_at_empties_the_log() {
    let mut log = segmented(4);
    log.truncate_fully_and_start_at(10);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert!(log.epochs().is_empty() && log.producer_state().is_empty());
    let mut b = data(8, 0, 0, 1, 0, 0).to_vec();
    record::set_base_offset(&mut b, 10);
    record::set_partition_leader_epoch(&mut b, 0);
    assert_eq!(log.append_as_follower(&Bytes::from(b)), Ok(true));
    assert_eq!(log.log_end_offset(), 11);
    log.truncate_to(10);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
}

#[test]
fn producers_expire_after_their_last_batch_unless_a_transaction_is_open() {
    let mut log = Log::default();
    log.append_as_leader(&data(1, 0, 0, 1, 0, 1_000), 0)
        .unwrap();
    log.append_as_leader(&data(2, 0, 0, 1, TRANSACTIONAL_BIT, 1_000), 0)
        .unwrap();
    log.append_as_leader(&data(3, 0, 0, 1, 0, 5_000), 0)
        .unwrap();
    assert_eq!(log.remove_expired_producers(5_999, 5_000), 0);
    assert_eq!(log.remove_expired_producers(6_000, 5_000), 1);
    let state = log.producer_state();
    assert!(state.last_entry(1).is_none(), "expired");
    assert!(state.last_entry(2).is_some(), "its transaction is open");
    assert_eq!(state.last_entry(3).map(|e| e.last_timestamp()), Some(5_000));
    // A marker counts as the producer's last batch too (KAFKA-9144).
    log.append_control_as_leader(2, 0, end(true, 0), 9_000, 0)
        .unwrap();
    assert_eq!(log.remove_expired_producers(13_000, 5_000), 1, "producer 3");
    assert!(log.producer_state().last_entry(2).is_some());
    // A rebuild (truncation, recovery) forgets what expiration forgot.
    log.recover(0, 0, false);
    assert_eq!(log.producer_state().len(), 1);
    assert_eq!(log.remove_expired_producers(14_000, 5_000), 1);
    assert!(log.producer_state().is_empty());
}

/// A log of three 2-record batches, written back, with a bit flipped in the batch the
/// draws pick (`which` among the data batches).
fn corrupted(which: usize) -> (Log, Corruption) {
    let mut log = Log::default();
    for _ in 0..3 {
        log.append_as_leader(&batch(2), 0).unwrap();
    }
    log.written(0);
    assert_eq!(log.corrupt(|_| 0), None, "nothing on the platter yet");
    log.write_back_all();
    let mut draws = [which, 3, 5].into_iter();
    let c = log.corrupt(|n| draws.next().unwrap() % n).unwrap();
    (log, c)
}

#[test]
fn a_bit_flip_lands_in_the_records_of_a_batch_on_the_platter() {
    let (log, c) = corrupted(1);
    assert_eq!((c.base_offset, c.last_offset), (2, 3));
    assert_eq!((c.byte, c.bit), (record::BATCH_HEADER_SIZE + 3, 5));
    assert_eq!(log.corrupt_batches(), vec![(2, 3)]);
    let offsets: Vec<Offset> = log.records().iter().map(|r| r.0).collect();
    assert_eq!(
        offsets,
        vec![0, 1, 4, 5],
        "the corrupt batch's records are unreadable"
    );
    assert_eq!(
        log.read(2, 6, 1 << 20).len(),
        2,
        "the leader serves it as stored"
    );
}

#[test]
fn recovery_cuts_a_corrupt_batch_at_or_after_the_recovery_point() {
    let (mut log, _) = corrupted(1);
    let recovery = log.recover(2, 0, false);
    assert_eq!((recovery.from, recovery.log_end_offset), (2, 2));
    let why = recovery.truncated.expect("cut at the corrupt batch");
    assert!(
        why.contains("invalid batch at offset 2") && why.contains("CRC"),
        "{why}"
    );
    assert!(log.corrupt_batches().is_empty());
}

#[test]
fn recovery_keeps_a_corrupt_batch_below_the_recovery_point() {
    let (mut log, _) = corrupted(0);
    let recovery = log.recover(2, 0, false);
    assert_eq!((recovery.log_end_offset, recovery.truncated), (6, None));
    assert_eq!(
        log.corrupt_batches(),
        vec![(0, 1)],
        "not validated: kept as is"
    );
    assert_eq!(log.markers(), vec![]);
    assert!(log.offset_for_timestamp(0).is_some_and(|t| t.offset == 2));
}

/// KAFKA-10101: a checkpoint past the platter's end (only the bug writes one) makes the
/// next recovery skip a torn write below it; a torn batch whose header reached the
/// platter stays, its unwritten pages zeros, and fails its CRC from then on.
#[test]
fn a_torn_write_below_the_checkpoint_is_kept_corrupt() {
    let os = Writeback::default();
    let torn_log = || {
        let mut log = Log::default();
        log.append_as_leader(&batch(8), 0).unwrap();
        log.append_as_leader(&batch(2), 0).unwrap();
        log.written(0);
        assert!(log.recover(0, 0, true).truncated.is_none());
        assert_eq!(
            log.recovery_point(),
            10,
            "the bug: moved to the log end, unflushed"
        );
        log.power_loss(10, &os, Some(900));
        log
    };
    let mut log = torn_log();
    let recovery = log.recover(10, 0, false);
    assert_eq!((recovery.log_end_offset, recovery.truncated), (8, None));
    assert_eq!(log.corrupt_batches(), vec![(0, 7)]);
    assert!(log.records().is_empty());
    let mut log = torn_log();
    let why = log.recover(0, 0, false).truncated.expect("validated: cut");
    assert!(why.contains("torn write at offset 0"), "{why}");
    assert_eq!(log.log_end_offset(), 0);
}
