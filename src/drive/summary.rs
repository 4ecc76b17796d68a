//! A sweep's summary file, `<reports>/summary.json`: what `check` found, per scenario,
//! in a deterministic form that `merge` combines across the shards of one sweep
//! (`check --shard I/N` on N machines). Wall-clock figures sit apart, in `wall`, and
//! never take part in a comparison.

use crate::drive::sweep::{ScenarioSummary, Shard};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The summary file format's version.
pub const FORMAT: u32 = 1;

/// The summary's file name in a reports folder.
pub const FILE_NAME: &str = "summary.json";

/// The shards of a sweep that a summary holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shards {
    /// N, the number of shards of the sweep.
    pub count: u32,
    /// The shards held, increasing.
    pub indices: Vec<u32>,
}

/// The deterministic part of a summary: a function of kafkasim's version, the
/// scenarios, the seeds and the bug switches. The shards of a sweep, merged, equal the
/// unsharded sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// [`FORMAT`].
    pub format: u32,
    /// kafkasim's version.
    pub kafkasim: String,
    /// The sweep's seed range (`--seeds`, as `A..B`), before sharding.
    pub seeds: String,
    /// The shards held; `None` for the whole sweep.
    pub shards: Option<Shards>,
    /// Bug switches from the command line.
    pub bugs: Vec<String>,
    /// Per scenario, in the order swept.
    pub scenarios: Vec<ScenarioSummary>,
}

impl SweepSummary {
    /// Shards of the sweep that are missing (none when it is whole).
    pub fn missing_shards(&self) -> Vec<u32> {
        self.shards.as_ref().map_or(Vec::new(), |s| {
            (0..s.count).filter(|i| !s.indices.contains(i)).collect()
        })
    }

    /// Whether the seeds held met every expectation that they can judge: no seed broke
    /// an invariant and, for the whole sweep, every expected anomaly appeared. A part of
    /// a sweep cannot judge expected anomalies: another shard may show them.
    pub fn ok(&self) -> bool {
        self.scenarios
            .iter()
            .all(|s| s.failures.is_empty() && (self.shards.is_some() || s.ok()))
    }
}

/// Wall-clock figures of one `check` run; never compared.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WallTime {
    /// The shard it ran, if any.
    pub shard: Option<Shard>,
    /// Seeds run, over all scenarios.
    pub runs: u64,
    /// Wall time, ms.
    pub wall_ms: u64,
    /// Worker threads.
    pub jobs: usize,
}

/// The file: the deterministic summary, then each part's wall time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryFile {
    /// Compared by tests and by `merge`.
    pub summary: SweepSummary,
    /// One entry per `check` merged in, by shard.
    pub wall: Vec<WallTime>,
}

/// `path` itself, or `path/summary.json` for a folder.
pub fn summary_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    }
}

impl SummaryFile {
    /// Reads a summary file, or the `summary.json` of a reports folder, and checks that
    /// it is consistent; the error names the file.
    pub fn load(path: &Path) -> Result<SummaryFile, String> {
        let file = summary_path(path);
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let f: SummaryFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a kafkasim summary.json (written by `check` or `merge`): {e}",
                file.display()
            )
        })?;
        f.validate()
            .map_err(|e| format!("{}: inconsistent summary: {e}", file.display()))?;
        Ok(f)
    }

    fn validate(&self) -> Result<(), String> {
        let s = &self.summary;
        if s.format != FORMAT {
            return Err(format!(
                "field `summary.format` is {}; allowed: {FORMAT}",
                s.format
            ));
        }
        if let Some(sh) = &s.shards {
            if sh.indices.is_empty()
                || !sh.indices.windows(2).all(|w| w[0] < w[1])
                || sh.indices.iter().any(|&i| i >= sh.count)
            {
                return Err(
                    "field `summary.shards`: allowed: increasing indices below count".into(),
                );
            }
        }
        for sc in &s.scenarios {
            let in_seeds = |seed: u64| sc.seeds.contains(seed);
            if sc.passed + sc.failures.len() as u64 != sc.seeds.len()
                || !sc.failures.iter().all(|f| in_seeds(f.seed))
                || !sc
                    .seeds_with
                    .values()
                    .all(|set| set.as_slice().iter().all(|&x| in_seeds(x)))
            {
                return Err(format!(
                    "scenario `{}`: passed + failures must equal the seeds run, and every \
                     seed named must be one of them",
                    sc.name
                ));
            }
        }
        Ok(())
    }

    /// Writes `dir/summary.json` through a temporary file and a rename.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join(FILE_NAME);
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let json = serde_json::to_string_pretty(self).expect("summaries serialize");
        std::fs::write(&tmp, json + "\n")?;
        std::fs::rename(&tmp, &file)?;
        Ok(file)
    }

    /// Merges the summaries of shards of one sweep (each with the file it came from,
    /// for messages). Refuses, naming the files, parts of different sweeps (kafkasim
    /// version, seed range, bug switches, scenarios or their contents differ), a shard
    /// given twice and a seed run twice.
    pub fn merge(mut parts: Vec<(PathBuf, SummaryFile)>) -> Result<SummaryFile, String> {
        let first_index = |f: &SummaryFile| f.summary.shards.as_ref().map(|s| s.indices[0]);
        parts.sort_by_key(|(_, f)| first_index(f));
        let Some(((first_path, first), rest)) = parts.split_first() else {
            return Err("nothing to merge".into());
        };
        let mut merged = first.clone();
        let differ = |what: &str, a: &dyn std::fmt::Debug, p: &Path, b: &dyn std::fmt::Debug| {
            format!(
                "{} and {} are not shards of one sweep: {what} {a:?} vs {b:?}",
                first_path.display(),
                p.display()
            )
        };
        for (i, (path, part)) in rest.iter().enumerate() {
            let (m, p) = (&merged.summary, &part.summary);
            if p.kafkasim != m.kafkasim {
                return Err(differ("kafkasim version", &m.kafkasim, path, &p.kafkasim));
            }
            if p.seeds != m.seeds {
                return Err(differ("seed range", &m.seeds, path, &p.seeds));
            }
            if p.bugs != m.bugs {
                return Err(differ("bug switches", &m.bugs, path, &p.bugs));
            }
            let scenarios = |s: &SweepSummary| -> Vec<(String, String)> {
                s.scenarios
                    .iter()
                    .map(|x| (x.name.clone(), x.scenario_hash.clone()))
                    .collect()
            };
            if scenarios(p) != scenarios(m) {
                return Err(differ(
                    "scenarios (name, hash of the scenario file's contents)",
                    &scenarios(m),
                    path,
                    &scenarios(p),
                ));
            }
            let (Some(ms), Some(ps)) = (&m.shards, &p.shards) else {
                let whole = if m.shards.is_none() { first_path } else { path };
                return Err(format!(
                    "{} holds a whole sweep (run without --shard): it cannot be merged with \
                     other parts",
                    whole.display()
                ));
            };
            if ms.count != ps.count {
                return Err(differ("shard count", &ms.count, path, &ps.count));
            }
            if let Some(dup) = ps.indices.iter().find(|i| ms.indices.contains(i)) {
                let earlier = parts[..=i]
                    .iter()
                    .find(|(_, f)| f.summary.shards.as_ref().unwrap().indices.contains(dup))
                    .map(|(p, _)| p)
                    .expect("an earlier part holds it");
                return Err(format!(
                    "shard {dup}/{} is in both {} and {}",
                    ms.count,
                    earlier.display(),
                    path.display()
                ));
            }
            let mut indices: Vec<u32> = ms.indices.iter().chain(&ps.indices).copied().collect();
            indices.sort_unstable();
            let count = ms.count;
            let mut scenarios = merged.summary.scenarios.clone();
            for (mine, theirs) in scenarios.iter_mut().zip(&p.scenarios) {
                mine.merge(theirs).map_err(|seed| {
                    format!(
                        "seed {seed} of scenario `{}` is in {} and in an earlier part: \
                         overlapping shards",
                        theirs.name,
                        path.display()
                    )
                })?;
            }
            merged.summary.scenarios = scenarios;
            merged.summary.shards = Some(Shards { count, indices });
            merged.wall.extend(part.wall.iter().cloned());
        }
        if merged
            .summary
            .shards
            .as_ref()
            .is_some_and(|s| s.indices.len() as u32 == s.count)
        {
            // Every shard is here: this is the whole sweep.
            merged.summary.shards = None;
        }
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
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
        let e = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), shard(0, 2, &[], &[])]))
            .unwrap_err();
        assert!(
            e.contains("shard 0/2 is in both shard-0 and shard-1"),
            "{e}"
        );
        let e = SummaryFile::merge(parts(vec![shard(0, 2, &[], &[]), shard(1, 3, &[], &[])]))
            .unwrap_err();
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
}
