//! Same seed, same run, byte for byte; different seeds, different runs. And a
//! switched-off safeguard makes the checker fail, so the checker can catch the bugs
//! the safeguards exist for.

use kafkasim::bugs::{Bug, CATALOGUE};
use kafkasim::drive::runner::run_seed;
use kafkasim::drive::sweep::{detect, sweep};
use kafkasim::scenario::Scenario;
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

/// Every catalogued historic bug, switched back on, is found by its scenario within
/// its seed budget, as the anomaly the catalogue names; the scenario tests (in
/// `scenarios.rs`) show the same sweeps pass with the safeguard on.
#[test]
fn every_catalogued_bug_is_found_within_its_budget() {
    for entry in CATALOGUE {
        let sc = scenario(entry.scenario);
        let seeds: Vec<u64> = (0..entry.budget).collect();
        let found = detect(&sc, entry, &seeds, 2);
        assert!(
            !found.is_empty(),
            "--bug {} not found as {} by {} in seeds 0..{}",
            entry.name,
            entry.finds,
            entry.scenario,
            entry.budget
        );
    }
}

/// A coordinator that never evicts silent members: the paused member keeps its
/// partitions and the group never rebalances, so `session-timeout` cannot show C18.
#[test]
fn switching_off_session_expiry_prevents_the_rebalance() {
    let sc = scenario("session-timeout.json");
    let seeds: Vec<u64> = (0..3).collect();
    let with_bug = sweep(&sc, &seeds, 2, &[Bug::NoSessionExpiry], None);
    assert_eq!(with_bug.not_demonstrated, vec!["rebalance".to_string()]);
}
