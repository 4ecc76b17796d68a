//! Unit tests of `client::transaction_manager`.

use super::*;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn ready() -> TransactionManager {
    let mut tm = TransactionManager::new();
    assert_eq!(tm.init_due_at(), Some(0));
    tm.on_init_sent();
    tm.on_init_response(
        5,
        Some(&InitProducerIdResponse {
            error: ErrorCode::None,
            producer_id: 1000,
            producer_epoch: 0,
        }),
        100,
    );
    tm
}

#[test]
fn nothing_drains_before_a_producer_id() {
    let mut tm = TransactionManager::new();
    assert!(!tm.can_drain(&tp(), None, true));
    tm.on_init_sent();
    assert_eq!(tm.init_due_at(), None);
    tm.on_init_response(10, None, 100);
    assert_eq!(tm.init_due_at(), Some(110));
    assert!(!tm.can_drain(&tp(), None, true));
}

#[test]
fn sequences_advance_by_record_count() {
    let mut tm = ready();
    let id = tm.identity();
    assert_eq!(tm.assign(&tp(), 3), (id, 0));
    assert_eq!(tm.assign(&tp(), 2), (id, 3));
    tm.on_success(&tp(), id, 0, 2);
    tm.on_success(&tp(), id, 3, 4);
    assert_eq!(tm.assign(&tp(), 1), (id, 5));
}

#[test]
fn a_retry_waits_until_it_is_the_first_outstanding_batch() {
    let mut tm = ready();
    let id = tm.identity();
    tm.assign(&tp(), 5);
    tm.assign(&tp(), 5);
    assert!(!tm.can_drain(&tp(), Some((id, 5)), true));
    assert!(
        tm.can_drain(&tp(), Some((id, 5)), false),
        "the bug switch skips it"
    );
    assert!(tm.can_drain(&tp(), Some((id, 0)), true));
    tm.on_success(&tp(), id, 0, 4);
    assert!(tm.can_drain(&tp(), Some((id, 5)), true));
}

#[test]
fn out_of_order_behind_a_failed_batch_is_retried_without_a_bump() {
    let mut tm = ready();
    let id = tm.identity();
    tm.assign(&tp(), 5);
    tm.assign(&tp(), 5);
    assert!(tm.can_retry(&tp(), ErrorCode::OutOfOrderSequenceNumber, id, 5, true));
    assert_eq!(tm.bump_partitions().count(), 0);
    assert!(tm.can_retry(&tp(), ErrorCode::OutOfOrderSequenceNumber, id, 0, true));
    assert_eq!(
        tm.bump_partitions().count(),
        1,
        "a real gap bumps the epoch"
    );
    assert!(!tm.can_drain(&tp(), None, true));
}

#[test]
fn a_bump_restarts_queued_sequences_at_zero_under_the_next_epoch() {
    let mut tm = ready();
    let id = tm.identity();
    tm.assign(&tp(), 5);
    tm.assign(&tp(), 3);
    assert!(tm.can_retry(&tp(), ErrorCode::UnknownProducerId, id, 0, true));
    let rewritten = tm.bump_epoch(|_| vec![5, 3]);
    assert_eq!(rewritten[&tp()], vec![0, 5]);
    assert_eq!(tm.identity().producer_epoch, 1);
    assert_eq!(tm.epoch_bumps(), 1);
    assert_eq!(tm.assign(&tp(), 1).1, 8);
}

#[test]
fn an_unresolved_sequence_blocks_new_batches_until_resolved() {
    let mut tm = ready();
    let id = tm.identity();
    tm.assign(&tp(), 2);
    tm.assign(&tp(), 2);
    tm.on_failed(&tp(), id, 0, 1, true);
    assert!(!tm.can_drain(&tp(), None, true));
    tm.on_success(&tp(), id, 2, 3);
    assert!(tm.can_drain(&tp(), None, true), "a later ack resolves it");

    tm.assign(&tp(), 2);
    tm.on_failed(&tp(), id, 4, 5, true);
    tm.maybe_resolve_sequences();
    assert_eq!(
        tm.bump_partitions().count(),
        1,
        "nothing outstanding: a gap"
    );
}

#[test]
fn other_partitions_reset_lazily_after_a_bump() {
    let mut tm = ready();
    let other = TopicPartition::new("t", 1);
    let id = tm.identity();
    tm.assign(&tp(), 1);
    tm.assign(&other, 4);
    tm.on_failed(&tp(), id, 0, 0, false);
    tm.bump_epoch(|_| vec![]);
    assert!(
        !tm.can_drain(&other, None, true),
        "old epoch still outstanding"
    );
    tm.on_success(&other, id, 0, 3);
    assert!(tm.can_drain(&other, None, true));
    assert_eq!(tm.assign(&other, 1), (tm.identity(), 0));
}

#[test]
fn a_gap_behind_another_partitions_bump_bumps_again() {
    // A whole-cluster power loss took both partitions' producer state: `t-0`'s gap
    // bumped the epoch to 1, then `t-1`'s next batch, still of epoch 0, meets the same
    // gap. Kafka's `canRetry` asks a bump for `t-1` too (its batch was never reset);
    // without it the batch is retried with epoch 0 until its delivery timeout.
    let mut tm = ready();
    let other = TopicPartition::new("t", 1);
    let id = tm.identity();
    tm.assign(&tp(), 1);
    tm.assign(&other, 2);
    assert!(tm.can_retry(&tp(), ErrorCode::OutOfOrderSequenceNumber, id, 0, true));
    let rewritten = tm.bump_epoch(|_| vec![1]);
    assert_eq!(rewritten.keys().collect::<Vec<_>>(), [&tp()]);
    assert!(tm.can_retry(&other, ErrorCode::OutOfOrderSequenceNumber, id, 0, true));
    assert_eq!(tm.bump_partitions().collect::<Vec<_>>(), [&other]);
    let rewritten = tm.bump_epoch(|_| vec![2]);
    assert_eq!(rewritten[&other], vec![0]);
    assert_eq!(tm.identity().producer_epoch, 2);
    // The same holds for a lost producer state answered as `UNKNOWN_PRODUCER_ID`.
    let mut tm = ready();
    tm.assign(&tp(), 1);
    tm.assign(&other, 2);
    assert!(tm.can_retry(&tp(), ErrorCode::UnknownProducerId, id, 0, true));
    tm.bump_epoch(|_| vec![1]);
    assert!(tm.can_retry(&other, ErrorCode::UnknownProducerId, id, 0, true));
    assert_eq!(tm.bump_partitions().collect::<Vec<_>>(), [&other]);
}
