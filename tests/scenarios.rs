//! Whole-system sweeps: every shipped scenario over a seed range, judged against its
//! own expectation (invariants on every seed, demonstrated anomalies on at least one).
//!
//! `KAFKASIM_SEEDS` sets the number of seeds (default 50; a nightly job sets more).

use kafkasim::scenario::{collect_paths, Scenario};
use kafkasim::sweep::sweep;
use std::path::PathBuf;

fn seeds() -> Vec<u64> {
    let n: u64 = std::env::var("KAFKASIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    (0..n).collect()
}

fn check_scenario(file: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let scenario = Scenario::load(&path).expect("shipped scenarios are valid");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = sweep(&scenario, &seeds(), jobs, &[], None);
    let mut problems = Vec::new();
    for f in &s.failures {
        problems.push(format!(
            "seed {} violated {:?} {}\n    repro: {}",
            f.seed,
            f.violated,
            f.panic.clone().unwrap_or_default(),
            f.repro_command()
        ));
    }
    for a in &s.not_demonstrated {
        problems.push(format!(
            "expected anomaly `{a}` appeared on none of {} seeds",
            s.seeds
        ));
    }
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        scenario.name,
        problems.join("\n")
    );
}

#[test]
fn acks_all_rf3() {
    check_scenario("acks-all-rf3.json");
}

#[test]
fn acks_1_leader_crash() {
    check_scenario("acks-1-leader-crash.json");
}

#[test]
fn unclean_election() {
    check_scenario("unclean-election.json");
}

#[test]
fn clean_election() {
    check_scenario("clean-election.json");
}

#[test]
fn same_key_same_partition() {
    check_scenario("same-key-same-partition.json");
}

#[test]
fn retries_in_flight_5() {
    check_scenario("retries-in-flight-5.json");
}

#[test]
fn retries_in_flight_1() {
    check_scenario("retries-in-flight-1.json");
}

#[test]
fn follower_truncation() {
    check_scenario("follower-truncation.json");
}

#[test]
fn every_shipped_scenario_has_a_test_and_every_spine_claim_a_scenario() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let tested = include_str!("scenarios.rs");
    let mut claims = Vec::new();
    for p in collect_paths(&[dir]).unwrap() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            tested.contains(&format!("\"{name}\"")),
            "scenario {name} has no test in tests/scenarios.rs"
        );
        claims.extend(Scenario::load(&p).unwrap().claims);
    }
    for c in ["C2", "C3", "C4", "C5", "C12"] {
        assert!(claims.iter().any(|x| x == c), "claim {c} has no scenario");
    }
}
