//! Unit tests of `drive::summary`.

use super::*;
use crate::drive::sweep::{Failure, SeedSet};
use crate::report::figures::FigureSums;
use std::collections::BTreeMap;

/// A shard of a hand-made sweep over seeds 0..8 of one scenario expecting
/// `lost-write`, which `lost_on` seeds showed; `failing` seeds broke an invariant.
fn shard(index: u32, count: u32, lost_on: &[u64], failing: &[u64]) -> SummaryFile {
    let seeds = Shard { index, count }.select(&(0..8).collect::<Vec<u64>>());
    let mine =
        |l: &[u64]| -> Vec<u64> { l.iter().copied().filter(|s| seeds.contains(s)).collect() };
    let mut seeds_with = BTreeMap::new();
    if !mine(lost_on).is_empty() {
        seeds_with.insert("lost-write".into(), SeedSet::from_sorted(mine(lost_on)));
    }
    let failures: Vec<Failure> = mine(failing)
        .into_iter()
        .map(|seed| Failure {
            seed,
            verdict: "fail".into(),
            violated: vec!["duplicate".into()],
            panic: None,
            repro: format!("cargo run --release -- run s.json --seed {seed}"),
        })
        .collect();
    let producer = FigureSums {
        runs: seeds.len() as u64,
        records_per_batch_micro: seeds.iter().map(|s| s * 1_500_000).sum(),
        ..FigureSums::default()
    };
    let not_demonstrated = if seeds_with.is_empty() {
        vec!["lost-write".to_string()]
    } else {
        vec![]
    };
    SummaryFile {
        summary: SweepSummary {
            format: FORMAT,
            kafkasim: "0.1.0".into(),
            seeds: "0..8".into(),
            shards: Some(Shards {
                count,
                indices: vec![index],
            }),
            bugs: vec![],
            scenarios: vec![ScenarioSummary {
                name: "s".into(),
                path: "s.json".into(),
                scenario_hash: "00ff".into(),
                expected: vec!["lost-write".into()],
                passed: seeds.len() as u64 - failures.len() as u64,
                seeds: SeedSet::from_sorted(seeds),
                seeds_with,
                failures,
                not_demonstrated,
                sim_ms: 10,
                net_messages: 20,
                producer,
                pipeline: Default::default(),
            }],
        },
        wall: vec![WallTime {
            shard: Some(Shard { index, count }),
            runs: 2,
            wall_ms: 5,
            jobs: 1,
        }],
    }
}

fn parts(files: Vec<SummaryFile>) -> Vec<(PathBuf, SummaryFile)> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| (PathBuf::from(format!("shard-{i}")), f))
        .collect()
}

#[test]
fn an_expected_anomaly_is_judged_only_on_the_whole_sweep() {
    let (a, b) = (shard(0, 2, &[3], &[]), shard(1, 2, &[3], &[]));
    assert!(!a.summary.scenarios[0].ok() && a.summary.ok(), "shard 0");
    assert!(b.summary.ok(), "shard 1 shows it");
    let m = SummaryFile::merge(parts(vec![b, a])).unwrap();
    assert_eq!(m.summary.shards, None, "whole");
    assert!(m.summary.ok());
    let s = &m.summary.scenarios[0];
    assert_eq!(s.seeds.len(), 8);
    assert_eq!(s.producer.runs, 8);
    assert_eq!(s.producer.mean().records_per_batch, 5.25);
    // No shard shows it: the merged sweep fails.
    let m = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), shard(1, 2, &[], &[])]));
    let m = m.unwrap();
    assert!(!m.summary.ok());
    assert_eq!(m.summary.scenarios[0].not_demonstrated, ["lost-write"]);
}

#[test]
fn failures_fail_shards_and_merges_and_keep_their_repro_commands() {
    let a = shard(0, 2, &[1], &[2, 4]);
    assert!(!a.summary.ok());
    let m = SummaryFile::merge(parts(vec![a, shard(1, 2, &[], &[1])])).unwrap();
    assert!(!m.summary.ok());
    let seeds: Vec<u64> = m.summary.scenarios[0]
        .failures
        .iter()
        .map(|f| f.seed)
        .collect();
    assert_eq!(seeds, [1, 2, 4]);
    assert!(m.summary.scenarios[0].failures[0]
        .repro
        .ends_with("--seed 1"));
}

#[test]
fn an_incomplete_merge_names_its_missing_shards() {
    let m = SummaryFile::merge(parts(vec![shard(2, 4, &[], &[]), shard(0, 4, &[], &[])]));
    let m = m.unwrap();
    assert_eq!(
        m.summary.shards,
        Some(Shards {
            count: 4,
            indices: vec![0, 2]
        })
    );
    assert_eq!(m.summary.missing_shards(), [1, 3]);
    assert!(m.summary.ok(), "nothing failed so far");
}

#[test]
fn parts_of_different_sweeps_and_overlaps_are_refused() {
    let e =
        SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), shard(0, 2, &[], &[])])).unwrap_err();
    assert!(
        e.contains("shard 0/2 is in both shard-0 and shard-1"),
        "{e}"
    );
    let e =
        SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), shard(1, 3, &[], &[])])).unwrap_err();
    assert!(e.contains("shard count"), "{e}");
    let mut other = shard(1, 2, &[], &[]);
    other.summary.scenarios[0].scenario_hash = "0aaa".into();
    let e = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), other])).unwrap_err();
    assert!(e.contains("not shards of one sweep: scenarios"), "{e}");
    let mut other = shard(1, 2, &[], &[]);
    other.summary.seeds = "0..9".into();
    let e = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), other])).unwrap_err();
    assert!(e.contains("seed range"), "{e}");
    // The same seeds under another shard index (an edited or mislabelled file).
    let mut other = shard(0, 2, &[], &[]);
    other.summary.shards.as_mut().unwrap().indices = vec![1];
    let e = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), other])).unwrap_err();
    assert!(e.contains("seed 0 of scenario `s`"), "{e}");
    let mut whole = shard(0, 1, &[], &[]);
    whole.summary.shards = None;
    let e = SummaryFile::merge(parts(vec![whole, shard(0, 2, &[], &[])])).unwrap_err();
    assert!(e.contains("whole sweep"), "{e}");
}

#[test]
fn summaries_are_written_and_read_back_and_checked() {
    let dir = std::env::temp_dir().join(format!("kafkasim-summary-{}", std::process::id()));
    let f = shard(1, 2, &[3], &[5]);
    let written = f.write(&dir).unwrap();
    assert_eq!(written, dir.join(FILE_NAME));
    let back = SummaryFile::load(&dir).unwrap();
    assert_eq!(back.summary, f.summary);
    let mut bad = f.clone();
    bad.summary.scenarios[0].passed += 1;
    bad.write(&dir).unwrap();
    let e = SummaryFile::load(&dir).unwrap_err();
    assert!(e.contains("summary.json: inconsistent summary"), "{e}");
    std::fs::write(dir.join(FILE_NAME), "{}").unwrap();
    let e = SummaryFile::load(&dir).unwrap_err();
    assert!(e.contains("not a kafkasim summary.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
