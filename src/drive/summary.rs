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
mod tests;
