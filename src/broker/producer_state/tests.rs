//! Unit tests of `broker::producer_state`.

use super::*;
use crate::kafka::record::testing::plain_batch;
use crate::kafka::record::{RecordBatch, TRANSACTIONAL_BIT};
use bytes::Bytes;

const PID: i64 = 1_000;

/// The header of a batch of `n` records at `offset` with these attributes.
fn batch_header(
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    n: i32,
    offset: Offset,
    attributes: i16,
) -> BatchHeader {
    let values = (0..n).map(|i| (None, Bytes::from(i.to_string())));
    let bytes = RecordBatch {
        base_offset: offset,
        partition_leader_epoch: 0,
        attributes,
        producer_id,
        producer_epoch: epoch,
        base_sequence: first_seq,
        ..plain_batch(values.collect())
    }
    .encode();
    BatchHeader::parse(&bytes).unwrap()
}

/// A batch of `n` records outside a transaction.
fn header(producer_id: i64, epoch: i16, first_seq: i32, n: i32, offset: Offset) -> BatchHeader {
    batch_header(producer_id, epoch, first_seq, n, offset, 0)
}

/// A transactional batch of `n` records.
fn txn(producer_id: i64, epoch: i16, first_seq: i32, n: i32, offset: Offset) -> BatchHeader {
    batch_header(producer_id, epoch, first_seq, n, offset, TRANSACTIONAL_BIT)
}

/// A marker at `offset` and its header.
fn marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    offset: Offset,
) -> (BatchHeader, EndTransactionMarker) {
    let m = EndTransactionMarker {
        control_type: if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        },
        coordinator_epoch,
    };
    let mut bytes = m.to_batch(producer_id, epoch, 0).encode().to_vec();
    crate::kafka::record::set_base_offset(&mut bytes, offset);
    (BatchHeader::parse(&bytes).unwrap(), m)
}

/// `check_append` (with epoch fencing) of a batch from `first_seq` to `last_seq`.
fn check(
    s: &ProducerStateManager,
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    last_seq: i32,
) -> Result<AppendCheck, ErrorCode> {
    let n = if first_seq < 0 {
        1
    } else if last_seq >= first_seq {
        last_seq - first_seq + 1
    } else {
        (i32::MAX - first_seq) + last_seq + 2
    };
    s.check_append(&header(producer_id, epoch, first_seq, n, 0), true)
}

/// A state that saw `PID` epoch 0 write sequences 0..=4 in one batch at offset 10
/// and 5..=6 at offset 20.
fn state() -> ProducerStateManager {
    let mut s = ProducerStateManager::default();
    s.update(&header(PID, 0, 0, 5, 10), None);
    s.update(&header(PID, 0, 5, 2, 20), None);
    s
}

#[test]
fn next_sequence_is_appended_and_a_gap_is_out_of_order() {
    let s = state();
    assert_eq!(check(&s, PID, 0, 7, 9), Ok(AppendCheck::Append));
    assert_eq!(
        check(&s, PID, 0, 8, 9),
        Err(ErrorCode::OutOfOrderSequenceNumber)
    );
    assert_eq!(
        check(&s, PID, 0, 3, 4),
        Err(ErrorCode::OutOfOrderSequenceNumber),
        "overlaps a cached batch without matching it"
    );
}

#[test]
fn retried_batch_is_a_duplicate_of_the_original() {
    let s = state();
    assert_eq!(
        check(&s, PID, 0, 0, 4),
        Ok(AppendCheck::Duplicate {
            first_offset: 10,
            last_offset: 14
        })
    );
    assert_eq!(
        check(&s, PID, 0, 5, 6),
        Ok(AppendCheck::Duplicate {
            first_offset: 20,
            last_offset: 21
        })
    );
}

#[test]
fn stale_epoch_is_refused_even_for_a_duplicate() {
    let mut s = state();
    s.update(&header(PID, 2, 0, 1, 30), None);
    assert_eq!(s.last_entry(PID).unwrap().producer_epoch(), 2);
    assert_eq!(
        check(&s, PID, 1, 1, 1),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(
        check(&s, PID, 0, 0, 4),
        Err(ErrorCode::InvalidProducerEpoch)
    );
}

#[test]
fn new_epoch_starts_at_sequence_zero_and_resets_the_batches() {
    let mut s = state();
    assert_eq!(check(&s, PID, 1, 0, 0), Ok(AppendCheck::Append));
    assert_eq!(
        check(&s, PID, 1, 7, 7),
        Err(ErrorCode::OutOfOrderSequenceNumber)
    );
    s.update(&header(PID, 1, 0, 1, 30), None);
    let entry = s.last_entry(PID).unwrap();
    assert_eq!((entry.producer_epoch(), entry.batches().len()), (1, 1));
    assert_eq!(
        check(&s, PID, 1, 0, 0),
        Ok(AppendCheck::Duplicate {
            first_offset: 30,
            last_offset: 30
        })
    );
    assert_eq!(check(&s, PID, 1, 1, 1), Ok(AppendCheck::Append));
}

#[test]
fn unknown_producer_is_appended_at_any_sequence() {
    // Kafka 4.x `ProducerAppendInfo.checkSequence`: no state, no epoch, any
    // sequence; UNKNOWN_PRODUCER_ID is never answered.
    let s = state();
    assert_eq!(check(&s, 7, 0, 0, 3), Ok(AppendCheck::Append));
    assert_eq!(check(&s, 7, 0, 1, 3), Ok(AppendCheck::Append));
    assert_eq!(check(&s, 7, 3, 5, 5), Ok(AppendCheck::Append));
}

/// Kafka's `checkSequence` first clause: with a verification under way (lowest
/// sequence seen), a higher first sequence is out of order, for an unknown producer
/// and a known one alike; the lowest itself and a duplicate are not.
#[test]
fn a_verification_keeps_later_batches_out_until_the_lowest_is_in() {
    let s = state();
    let verified = |pid, epoch, first_seq, n, lowest| {
        let h = txn(pid, epoch, first_seq, n, 0);
        s.check_append_verified(&h, true, Some(lowest))
    };
    // Unknown producer 7: its first batch (0..4) was refused after verification.
    assert_eq!(
        verified(7, 0, 5, 5, 0),
        Err(ErrorCode::OutOfOrderSequenceNumber)
    );
    assert_eq!(verified(7, 0, 0, 5, 0), Ok(AppendCheck::Append));
    assert_eq!(
        verified(7, 0, 1, 5, 0),
        Err(ErrorCode::OutOfOrderSequenceNumber),
        "one above the lowest"
    );
    // Known producer PID (last sequence 6).
    assert_eq!(verified(PID, 0, 7, 1, 7), Ok(AppendCheck::Append));
    assert_eq!(
        verified(PID, 0, 8, 1, 7),
        Err(ErrorCode::OutOfOrderSequenceNumber)
    );
    assert_eq!(
        verified(PID, 0, 5, 2, 0),
        Ok(AppendCheck::Duplicate {
            first_offset: 20,
            last_offset: 21
        }),
        "a duplicate is found first"
    );
    assert_eq!(
        verified(PID, 1, 0, 1, 0),
        Ok(AppendCheck::Append),
        "new epoch at 0"
    );
}

#[test]
fn batches_without_a_producer_id_carry_no_state() {
    let mut s = ProducerStateManager::default();
    s.update(&header(-1, -1, -1, 3, 0), None);
    assert!(s.is_empty());
    assert_eq!(check(&s, -1, -1, -1, -1), Ok(AppendCheck::Append));
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut s = ProducerStateManager::default();
    for i in 0..7 {
        s.update(&header(PID, 0, i, 1, i64::from(i)), None);
    }
    let entry = s.last_entry(PID).unwrap();
    assert_eq!(entry.batches().len(), NUM_BATCHES_TO_RETAIN);
    assert_eq!(entry.batches().front().unwrap().first_seq, 2);
    assert_eq!(entry.last_sequence(), 6);
    assert_eq!(
        check(&s, PID, 0, 2, 2),
        Ok(AppendCheck::Duplicate {
            first_offset: 2,
            last_offset: 2
        })
    );
    assert_eq!(
        check(&s, PID, 0, 1, 1),
        Err(ErrorCode::OutOfOrderSequenceNumber),
        "evicted: no longer recognised as a duplicate"
    );
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    assert!(in_sequence(i32::MAX, 0));
    assert!(in_sequence(4, 5));
    assert!(!in_sequence(i32::MAX, 1));
    assert!(!in_sequence(-1, 1));
    let mut s = ProducerStateManager::default();
    s.update(&header(PID, 0, 0, 1, 0), None);
    s.update(&header(PID, 0, i32::MAX - 2, 2, 1), None);
    assert_eq!(s.last_entry(PID).unwrap().last_sequence(), i32::MAX - 1);
    // A batch of 3 records from i32::MAX: sequences MAX, 0, 1.
    assert_eq!(check(&s, PID, 0, i32::MAX, 1), Ok(AppendCheck::Append));
    s.update(&header(PID, 0, i32::MAX, 3, 3), None);
    assert_eq!(s.last_entry(PID).unwrap().last_sequence(), 1);
    assert_eq!(check(&s, PID, 0, 2, 2), Ok(AppendCheck::Append));
    assert_eq!(
        check(&s, PID, 0, i32::MAX, 1),
        Ok(AppendCheck::Duplicate {
            first_offset: 3,
            last_offset: 5
        })
    );
}

#[test]
fn a_transaction_starts_with_its_first_batch_and_ends_with_a_marker() {
    let mut s = ProducerStateManager::default();
    s.update(&txn(PID, 0, 0, 2, 10), None);
    s.update(&header(7, 0, 0, 1, 12), None);
    s.update(&txn(8, 0, 0, 1, 13), None);
    s.update(&txn(PID, 0, 2, 1, 14), None);
    let e = s.last_entry(PID).unwrap();
    assert_eq!(e.current_txn_first_offset(), Some(10));
    assert!(s.has_ongoing_transaction(PID, 0));
    assert!(!s.has_ongoing_transaction(PID, 1), "another epoch");
    assert!(!s.has_ongoing_transaction(7, 0));
    assert_eq!(s.first_undecided_offset(), Some(10));
    // Inside its transaction the producer must keep writing transactionally.
    assert_eq!(check(&s, PID, 0, 3, 3), Err(ErrorCode::InvalidTxnState));
    let next = txn(PID, 0, 3, 1, 0);
    assert_eq!(s.check_append(&next, true), Ok(AppendCheck::Append));

    let (h, m) = marker(PID, 0, false, 4, 15);
    assert_eq!(
        s.update(&h, Some(&m)),
        Some(CompletedTxn {
            producer_id: PID,
            first_offset: 10,
            last_offset: 15,
            aborted: true
        })
    );
    let e = s.last_entry(PID).unwrap();
    assert_eq!(
        (
            e.current_txn_first_offset(),
            e.coordinator_epoch(),
            e.batches().len()
        ),
        (None, 4, 2),
        "the same epoch keeps the cached batches"
    );
    assert_eq!(s.first_undecided_offset(), Some(13), "producer 8's");
    assert_eq!(check(&s, PID, 0, 3, 3), Ok(AppendCheck::Append));
    // A marker without an open transaction completes nothing.
    let (h, m) = marker(PID, 0, true, 4, 16);
    assert_eq!(s.update(&h, Some(&m)), None);
    let (h, m) = marker(8, 0, true, 4, 17);
    assert!(s.update(&h, Some(&m)).is_some_and(|c| !c.aborted));
    assert_eq!(s.first_undecided_offset(), None);
}

#[test]
fn a_marker_with_a_new_epoch_restarts_the_sequence() {
    // Transaction version 2: the coordinator bumps the epoch in the marker.
    let mut s = ProducerStateManager::default();
    s.update(&txn(PID, 3, 0, 5, 0), None);
    let (h, m) = marker(PID, 4, true, 0, 5);
    s.update(&h, Some(&m));
    let e = s.last_entry(PID).unwrap();
    assert_eq!((e.producer_epoch(), e.last_sequence()), (4, NO_SEQUENCE));
    assert_eq!(check(&s, PID, 4, 0, 0), Ok(AppendCheck::Append));
    assert_eq!(
        check(&s, PID, 4, 5, 5),
        Err(ErrorCode::OutOfOrderSequenceNumber)
    );
    assert_eq!(
        check(&s, PID, 3, 5, 5),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    // A producer first seen through a marker.
    let (h, m) = marker(9, 2, false, 1, 6);
    assert_eq!(s.update(&h, Some(&m)), None);
    assert_eq!(s.last_entry(9).unwrap().producer_epoch(), 2);
    assert_eq!(check(&s, 9, 2, 0, 0), Ok(AppendCheck::Append));
}

#[test]
fn stale_markers_and_zombie_coordinators_are_refused() {
    let mut s = ProducerStateManager::default();
    assert_eq!(s.check_marker(PID, 0, -1), Ok(()), "unknown producer");
    s.update(&txn(PID, 2, 0, 1, 0), None);
    assert_eq!(
        s.check_marker(PID, 1, 0),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(s.check_marker(PID, 2, 0), Ok(()));
    assert_eq!(s.check_marker(PID, 3, 0), Ok(()));
    let (h, m) = marker(PID, 2, true, 5, 1);
    s.update(&h, Some(&m));
    assert_eq!(
        s.check_marker(PID, 2, 4),
        Err(ErrorCode::TransactionCoordinatorFenced)
    );
    assert_eq!(s.check_marker(PID, 2, 5), Ok(()));
}

#[test]
fn without_epoch_fencing_a_zombie_joins_the_open_transaction() {
    let mut s = ProducerStateManager::default();
    s.update(&txn(PID, 1, 0, 2, 0), None);
    let zombie = txn(PID, 0, 40, 1, 0);
    assert_eq!(
        s.check_append(&zombie, true),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(s.check_append(&zombie, false), Ok(AppendCheck::Append));
    let plain = header(PID, 0, 40, 1, 0);
    assert_eq!(
        s.check_append(&plain, false),
        Err(ErrorCode::InvalidProducerEpoch),
        "the bug is about transactional batches"
    );
    let before = s.last_entry(PID).unwrap().clone();
    s.update(&txn(PID, 0, 40, 1, 2), None);
    assert_eq!(
        s.last_entry(PID).unwrap(),
        &before,
        "epoch and sequence untouched"
    );
    let (h, m) = marker(PID, 1, true, 0, 3);
    let c = s.update(&h, Some(&m)).unwrap();
    assert_eq!((c.first_offset, c.last_offset), (0, 3));
    // With no transaction open, the zombie's batch opens one.
    s.update(&txn(PID, 0, 41, 1, 4), None);
    assert_eq!(s.first_undecided_offset(), Some(4));
}

#[test]
#[should_panic(expected = "move forward")]
fn offsets_must_increase() {
    let mut s = state();
    s.update(&header(PID, 0, 7, 1, 21), None);
}
/// Kafka's `checkProducerEpoch` for the group coordinator's append of a
/// `TxnOffsetCommit` (origin COORDINATOR): only the epoch is checked.
#[test]
fn coordinator_appends_check_the_epoch_only() {
    let mut s = ProducerStateManager::default();
    // No state yet: anything goes, sequence or not.
    let offsets = |epoch| txn(PID, epoch, NO_SEQUENCE, 1, 0);
    assert_eq!(s.check_coordinator_append(&offsets(3), true), Ok(()));
    let (h, m) = marker(PID, 5, false, 0, 10);
    s.update(&h, Some(&m));
    assert_eq!(
        s.check_coordinator_append(&offsets(4), true),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(s.check_coordinator_append(&offsets(4), false), Ok(()));
    assert_eq!(s.check_coordinator_append(&offsets(5), true), Ok(()));
    assert_eq!(s.check_coordinator_append(&offsets(6), true), Ok(()));
    assert_eq!(
        s.check_coordinator_append(&txn(PID + 1, 0, NO_SEQUENCE, 1, 0), true),
        Ok(())
    );
}
