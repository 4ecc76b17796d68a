//! Same seed, same run, byte for byte; different seeds, different runs. And a
//! switched-off safeguard makes the checker fail, so the checker can catch the bugs
//! the safeguards exist for.

use kafkasim::bugs::Bug;
use kafkasim::runner::run_seed;
use kafkasim::scenario::Scenario;
use kafkasim::sweep::sweep;
use std::path::PathBuf;

fn scenario(file: &str) -> Scenario {
    Scenario::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(file),
    )
    .unwrap()
}

#[test]
fn same_seed_same_trace_hash_different_seeds_differ() {
    let sc = scenario("acks-all-rf3.json");
    let (a, out_a) = run_seed(&sc, 42, &[]);
    let (b, out_b) = run_seed(&sc, 42, &[]);
    let (c, _) = run_seed(&sc, 43, &[]);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        out_a.unwrap().0.history.to_jsonl(),
        out_b.unwrap().0.history.to_jsonl(),
        "histories identical byte for byte"
    );
    assert_ne!(a.trace_hash, c.trace_hash);
    assert!(
        a.stats.check.acked > 100,
        "the run did real work: {:?}",
        a.stats
    );
}

/// The idempotent producer (producer ids, sequences, epoch bumps) and gzip batches are
/// as deterministic as the rest.
#[test]
fn idempotent_and_compressed_runs_repeat_byte_for_byte() {
    for file in [
        "idempotence-on.json",
        "linger-50.json",
        "exactly-once-pipeline.json",
        "txn-coordinator-failover.json",
    ] {
        let sc = scenario(file);
        let (a, out_a) = run_seed(&sc, 5, &[]);
        let (b, out_b) = run_seed(&sc, 5, &[]);
        assert_eq!(a.trace_hash, b.trace_hash, "{file}");
        assert_eq!(
            out_a.unwrap().0.history.to_jsonl(),
            out_b.unwrap().0.history.to_jsonl(),
            "{file}: histories identical byte for byte"
        );
        assert!(a.stats.check.acked > 1_000, "{file}: {:?}", a.stats.check);
    }
}

#[test]
fn same_seed_same_hash_after_other_runs_on_other_threads() {
    // Runs in between must not leak state (hash-map order, global counters) into a run.
    let sc = scenario("retries-in-flight-5.json");
    let (first, _) = run_seed(&sc, 7, &[]);
    let other = scenario("acks-1-leader-crash.json");
    let _ = sweep(&other, &[1, 2, 3], 2, &[], None);
    let (again, _) = run_seed(&sc, 7, &[]);
    assert_eq!(first.trace_hash, again.trace_hash);
}

/// Without the high-watermark rule, acks=all acknowledges writes only the leader has;
/// leader crashes then lose them, which the same sweep never shows with the rule on.
#[test]
fn switching_off_the_high_watermark_rule_loses_acknowledged_writes() {
    let sc = scenario("acks-all-rf3.json");
    let seeds: Vec<u64> = (0..30).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::HighWatermarkFromLeaderOnly], None);
    assert!(
        with_bug.seeds_with.contains_key("lost-write"),
        "{:?}",
        with_bug.seeds_with
    );
    assert!(!with_bug.ok());
}

/// Pre-KIP-101 truncation to the follower's own high watermark loses acknowledged
/// writes in `follower-truncation`, which never loses one with epoch truncation.
#[test]
fn switching_off_epoch_truncation_loses_acknowledged_writes() {
    let sc = scenario("follower-truncation.json");
    let seeds: Vec<u64> = (0..10).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::TruncateToHighWatermark], None);
    assert!(
        with_bug.seeds_with.contains_key("lost-write"),
        "{:?}",
        with_bug.seeds_with
    );
    let without = sweep(&sc, &seeds, 2, &[], None);
    assert!(without.ok(), "{:?}", without.seeds_with);
}

/// With the leader's sequence check off, the idempotent producer's retries of batches
/// whose responses were lost are appended twice; with it on, never (C14).
#[test]
fn switching_off_the_sequence_check_duplicates_idempotent_writes() {
    let sc = scenario("idempotence-on.json");
    let seeds: Vec<u64> = (0..10).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::NoSequenceCheck], None);
    assert!(
        with_bug.seeds_with.contains_key("duplicate"),
        "{:?}",
        with_bug.seeds_with
    );
    assert!(!with_bug.ok());
    let without = sweep(&sc, &seeds, 2, &[], None);
    assert!(without.ok(), "{:?}", without.seeds_with);
}

/// Without in-order retries (KAFKA-5494) the idempotent producer with 5 requests in
/// flight re-sequences failed batches in the wrong order: the checker sees reordering.
#[test]
fn switching_off_in_order_retries_reorders_idempotent_writes() {
    let sc = scenario("idempotence-on.json");
    let seeds: Vec<u64> = (0..10).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::NoInOrderRetry], None);
    assert!(
        with_bug.seeds_with.contains_key("reorder"),
        "{:?}",
        with_bug.seeds_with
    );
    assert!(!with_bug.ok());
}

/// A coordinator that never evicts silent members: the paused member keeps its
/// partitions, the group never rebalances (`session-timeout` cannot show C18), and at
/// the end of the run the group is stuck in a rebalance that waits for the dead member
/// (`unassigned-partition` in `coordinator-failover`).
#[test]
fn switching_off_session_expiry_prevents_the_rebalance() {
    let sc = scenario("session-timeout.json");
    let seeds: Vec<u64> = (0..5).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::NoSessionExpiry], None);
    assert_eq!(with_bug.not_demonstrated, vec!["rebalance".to_string()]);
    let without = sweep(&sc, &seeds, 2, &[], None);
    assert!(without.ok(), "{:?}", without.seeds_with);
    let failover = scenario("coordinator-failover.json");
    let with_bug = sweep(&failover, &seeds, 2, &[Bug::NoSessionExpiry], None);
    assert_eq!(
        with_bug
            .seeds_with
            .get("unassigned-partition")
            .map(|s| s.len()),
        Some(5),
        "{:?}",
        with_bug.seeds_with
    );
}

/// A coordinator that accepts commits from an old generation lets the member cut off
/// from it commit with its old generation once the link heals: the checker reports a
/// zombie-commit on every seed, and never without the bug.
#[test]
fn accepting_commits_from_old_generations_is_a_zombie_commit() {
    let sc = scenario("zombie-member.json");
    let seeds: Vec<u64> = (0..5).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::CommitFromOldGeneration], None);
    assert_eq!(
        with_bug.seeds_with.get("zombie-commit").map(|s| s.len()),
        Some(5),
        "{:?}",
        with_bug.seeds_with
    );
    let without = sweep(&sc, &seeds, 2, &[], None);
    assert!(without.ok(), "{:?}", without.seeds_with);
}

/// A coordinator that writes a transaction's marker to one of its partitions only
/// leaves the others' records open for good: every seed shows a hanging transaction.
#[test]
fn markers_to_one_partition_only_leave_hanging_transactions() {
    let sc = scenario("exactly-once-pipeline.json");
    let seeds: Vec<u64> = (0..3).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::PartialMarkers], None);
    assert_eq!(
        with_bug
            .seeds_with
            .get("hanging-transaction")
            .map(|s| s.len()),
        Some(3),
        "{:?}",
        with_bug.seeds_with
    );
}

/// A new transaction coordinator that forgets the prepared transactions it loads never
/// writes their markers: the partition whose leader was cut off keeps them open.
#[test]
fn forgetting_prepared_transactions_at_failover_leaves_them_hanging() {
    let sc = scenario("hanging-transaction.json");
    let seeds: Vec<u64> = (0..10).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::ForgetPreparedTxn], None);
    assert!(
        with_bug
            .seeds_with
            .get("hanging-transaction")
            .is_some_and(|s| s.len() >= 2),
        "{:?}",
        with_bug.seeds_with
    );
}

/// Without epoch fencing, the instance that lost its transactional.id to a restarted
/// one keeps writing into the output: zombie writes.
#[test]
fn without_producer_epoch_fencing_zombies_write() {
    let sc = scenario("zombie-fencing.json");
    let seeds: Vec<u64> = (0..5).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::NoProducerEpochFencing], None);
    assert!(
        with_bug
            .seeds_with
            .get("zombie-write")
            .is_some_and(|s| s.len() >= 3),
        "{:?}",
        with_bug.seeds_with
    );
}
