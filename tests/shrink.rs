//! Shrinking a real failure: `acks-all-rf3` with the high watermark advanced by the
//! leader alone fails with `lost-write` on seed 0 (acknowledged records a leader change
//! took from every replica; their offsets, given again, are `inconsistent-offsets`). The shrunk scenario has
//! fewer faults and records, loads as a scenario file, fails the same way when run, and
//! shrinking again (on another thread count) writes the identical file.

mod common;

use common::{kafkasim, tmp};
use kafkasim::bugs::Bug;
use kafkasim::drive::runner;
use kafkasim::drive::shrink::{self, Explicit, Options, Stop, Target};
use kafkasim::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEED: u64 = 0;
const BUG: &str = "high-watermark-from-leader-only";

fn scenario() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks-all-rf3.json");
    Scenario::load(&path).unwrap()
}

fn shrink_to(file: &Path, jobs: usize) -> shrink::Shrunk {
    let options = Options {
        anomaly: None,
        // Small enough to end by the attempt bound, which keeps the result deterministic.
        max_attempts: 20,
        max_wall: Duration::from_secs(600),
        jobs,
    };
    let bugs = [Bug::from_name(BUG).unwrap()];
    let shrunk = shrink::shrink(&scenario(), SEED, &bugs, &options, &mut |_| {}).unwrap();
    shrink::write_scenario(file, &shrunk.scenario).unwrap();
    shrunk
}

#[test]
fn a_real_failure_shrinks_deterministically_to_a_loadable_scenario() {
    let dir = tmp("shrink-lib");
    let first = dir.join("a/shrunk.json");
    let shrunk = shrink_to(&first, 2);
    assert_eq!(shrunk.goal.target, Target::Anomaly("lost-write".into()));
    assert!(shrunk.goal.violation);
    assert_eq!(shrunk.explicit, Explicit::SameTrace);
    assert_eq!(shrunk.stop, Stop::Attempts);
    assert_eq!(shrunk.attempts, 20);
    assert!(
        shrunk.after.faults < shrunk.before.faults,
        "{:?} -> {:?}",
        shrunk.before,
        shrunk.after
    );
    assert!(shrunk.after.records_sent < shrunk.before.records_sent);
    assert!(shrunk.scenario.nemesis.faults.is_empty());
    assert_eq!(
        shrunk.scenario.nemesis.schedule.len() as u64,
        shrunk.after.faults
    );

    // The file loads and fails the same way, with the very run the shrink kept.
    let loaded = Scenario::load(&first).unwrap();
    assert_eq!(loaded.name, "acks-all-rf3-shrunk-0");
    let bugs = [Bug::from_name(BUG).unwrap()];
    let (report, _) = runner::run_seed(&loaded, SEED, &bugs);
    assert!(shrunk.goal.met_by(&report), "{:?}", report.anomalies);
    assert!(report.violated.contains(&"lost-write".to_string()));
    assert!(report
        .violated
        .contains(&"inconsistent-offsets".to_string()));
    assert_eq!(report.trace_hash, shrunk.trace_hash);

    // Again, one candidate at a time: the same file, byte for byte.
    let second = dir.join("b/shrunk.json");
    shrink_to(&second, 1);
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        std::fs::read_to_string(&second).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_wall_clock_bound_ends_a_shrink_and_says_so() {
    let options = Options {
        anomaly: None,
        max_attempts: 200,
        max_wall: Duration::ZERO,
        jobs: 2,
    };
    let bugs = [Bug::from_name(BUG).unwrap()];
    let shrunk = shrink::shrink(&scenario(), SEED, &bugs, &options, &mut |_| {}).unwrap();
    assert_eq!(shrunk.stop, Stop::WallClock);
    assert_eq!(shrunk.explicit, Explicit::NotTried);
    assert_eq!(shrunk.attempts, 0);
    assert_eq!(shrunk.after, shrunk.before);
    // Nothing was made explicit: the faults are still drawn from the seed.
    assert!(!shrunk.scenario.nemesis.faults.is_empty());
}

#[test]
fn the_command_writes_verifies_and_prints_the_run_command() {
    let dir = tmp("shrink-cli");
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks-all-rf3.json");
    let scenario = scenario.to_str().unwrap();
    let (code, out, err) = kafkasim(
        &[
            "shrink",
            scenario,
            "--seed",
            "0",
            "--bug",
            BUG,
            "--max-attempts",
            "4",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let file = dir.join("reports/acks-all-rf3/0/shrunk.json");
    assert!(file.exists(), "{out}");
    for line in [
        "target     lost-write",
        "attempts   4 of 4",
        "the attempt bound (deterministic)",
        "verified   the file fails the same way",
        "run        cargo run --release -- run reports/acks-all-rf3/0/shrunk.json --seed 0 --bug high-watermark-from-leader-only",
    ] {
        assert!(out.contains(line), "`{line}` missing from:\n{out}");
    }
    let faults = out.lines().find(|l| l.starts_with("faults ")).unwrap();
    assert_eq!(
        faults.split_whitespace().collect::<Vec<_>>(),
        ["faults", "4", "2"]
    );

    // A passing seed: nothing to shrink, exit 1, nothing written.
    let out_file = dir.join("pass.json");
    let (code, out, _) = kafkasim(
        &[
            "shrink",
            scenario,
            "--seed",
            "0",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing to shrink"), "{out}");
    assert!(!out_file.exists());

    // Bad input: exit 2 naming the flag and the allowed values.
    let (code, _, err) = kafkasim(
        &["shrink", scenario, "--seed", "0", "--anomaly", "lost"],
        &dir,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--anomaly") && err.contains("lost-write"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
