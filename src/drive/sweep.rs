//! Seed sweeps: many seeds of many scenarios on a few OS threads, summarised per
//! scenario against its expectation, in a deterministic form that shards of one sweep
//! (`--shard I/N`) can be merged from (see `summary`).

use crate::bugs::{Bug, BugInfo};
use crate::drive::runner::{self, scenario_hash};
use crate::report::figures::{FigureSums, PipelineSums};
use crate::report::SeedReport;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most seeds one sweep may list: seeds are kept in memory as a list.
pub const MAX_SEEDS: u64 = 10_000_000;

/// A sorted set of seeds, written as runs `[first, last, step]` (a shard's seeds are
/// one run with step N).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<[u64; 3]>", try_from = "Vec<[u64; 3]>")]
pub struct SeedSet(Vec<u64>);

impl SeedSet {
    /// The set of strictly increasing `seeds`.
    pub fn from_sorted(seeds: Vec<u64>) -> SeedSet {
        assert!(
            seeds.windows(2).all(|w| w[0] < w[1]),
            "seeds strictly increasing"
        );
        SeedSet(seeds)
    }

    /// The seeds, in increasing order.
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    /// How many seeds.
    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `seed` is in the set.
    pub fn contains(&self, seed: u64) -> bool {
        self.0.binary_search(&seed).is_ok()
    }

    /// Adds a seed larger than every seed in the set.
    fn push(&mut self, seed: u64) {
        assert!(
            self.0.last().is_none_or(|&l| l < seed),
            "seeds added in order"
        );
        self.0.push(seed);
    }

    /// The union of two disjoint sets; `Err(seed)` names a seed in both.
    pub fn union(&self, other: &SeedSet) -> Result<SeedSet, u64> {
        let (a, b) = (&self.0, &other.0);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => return Err(a[i]),
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        Ok(SeedSet(out))
    }
}

impl From<SeedSet> for Vec<[u64; 3]> {
    /// Greedy runs of equal steps, left to right.
    fn from(set: SeedSet) -> Vec<[u64; 3]> {
        let s = set.0;
        let mut runs = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let first = s[i];
            let step = s.get(i + 1).map_or(1, |n| n - first);
            let mut last = first;
            while let Some(&next) = s.get(i + 1) {
                if last.checked_add(step) != Some(next) {
                    break;
                }
                last = next;
                i += 1;
            }
            runs.push([first, last, step]);
            i += 1;
        }
        runs
    }
}

impl TryFrom<Vec<[u64; 3]>> for SeedSet {
    type Error = String;

    fn try_from(runs: Vec<[u64; 3]>) -> Result<SeedSet, String> {
        let mut seeds: Vec<u64> = Vec::new();
        for [first, last, step] in runs {
            let bad = |why: &str| format!("seed run [{first}, {last}, {step}]: {why}");
            if step == 0 || last < first || (last - first) % step != 0 {
                return Err(bad(
                    "allowed: [first, last, step] with step >= 1, first <= last and last - first a multiple of step",
                ));
            }
            if seeds.last().is_some_and(|&l| l >= first) {
                return Err(bad("runs must be increasing and disjoint"));
            }
            if (last - first) / step >= MAX_SEEDS - seeds.len() as u64 {
                return Err(bad(&format!("more than {MAX_SEEDS} seeds")));
            }
            seeds.extend((0..=(last - first) / step).map(|k| first + k * step));
        }
        Ok(SeedSet(seeds))
    }
}

/// One of N disjoint slices of a sweep's seeds: those whose position in the seed list
/// is `index` modulo `count`, so each shard gets a spread of the range. `index` is
/// 0-based, like Kubernetes' `JOB_COMPLETION_INDEX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    /// Which slice, `0 <= index < count`.
    pub index: u32,
    /// How many slices.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` with `0 <= I < N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "invalid --shard `{s}`; allowed: I/N with 0 <= I < N (I is 0-based, like \
                 Kubernetes' JOB_COMPLETION_INDEX), e.g. 0/4 to 3/4"
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// This shard's seeds of `seeds`.
    pub fn select(&self, seeds: &[u64]) -> Vec<u64> {
        seeds
            .iter()
            .skip(self.index as usize)
            .step_by(self.count as usize)
            .copied()
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A seed that violated an invariant or panicked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// `fail` or `panic`.
    pub verdict: String,
    /// Invariants it violated (`panic` for a panic).
    pub violated: Vec<String>,
    /// The panic message, if the simulated system panicked.
    pub panic: Option<String>,
    /// The one-line command that reproduces it.
    pub repro: String,
}

/// A scenario's sweep, summarised: a function of the scenario, the seeds and the bug
/// switches only (no wall time), so that shards merged equal one sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    /// The scenario's name.
    pub name: String,
    /// The scenario file.
    pub path: PathBuf,
    /// Hash of the parsed scenario ([`scenario_hash`]): shards of a sweep must agree.
    pub scenario_hash: String,
    /// Anomalies the scenario expects on at least one seed (`expect.anomalies`).
    pub expected: Vec<String>,
    /// Seeds run.
    pub seeds: SeedSet,
    /// Seeds on which every invariant held.
    pub passed: u64,
    /// Anomaly kind -> seeds on which it appeared.
    pub seeds_with: BTreeMap<String, SeedSet>,
    /// Seeds that violated an invariant or panicked, by seed.
    pub failures: Vec<Failure>,
    /// Expected anomalies that no seed showed.
    pub not_demonstrated: Vec<String>,
    /// Sum of simulated ms over seeds.
    pub sim_ms: u64,
    /// Sum of simulated network messages.
    pub net_messages: u64,
    /// Producer figures summed over the seeds that completed (`mean()` for the row).
    pub producer: FigureSums,
    /// Pipeline figures summed over the seeds that completed.
    #[serde(default)]
    pub pipeline: PipelineSums,
}

impl ScenarioSummary {
    /// The summary of no seeds of `scenario`.
    pub fn new(scenario: &Scenario) -> ScenarioSummary {
        ScenarioSummary {
            name: scenario.name.clone(),
            path: scenario.path.clone(),
            scenario_hash: scenario_hash(scenario),
            expected: scenario.expect.anomalies.clone(),
            seeds: SeedSet::default(),
            passed: 0,
            seeds_with: BTreeMap::new(),
            failures: Vec::new(),
            not_demonstrated: scenario.expect.anomalies.clone(),
            sim_ms: 0,
            net_messages: 0,
            producer: FigureSums::default(),
            pipeline: PipelineSums::default(),
        }
    }

    /// Whether the sweep met the scenario's expectation.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.not_demonstrated.is_empty()
    }

    /// Adds a seed larger than every seed added so far.
    fn add(&mut self, r: &SeedReport) {
        self.seeds.push(r.seed);
        self.sim_ms += r.stats.sim_ms;
        self.net_messages += r.stats.net_messages;
        if r.panic.is_none() {
            self.producer.add(&r.stats.producer);
            self.pipeline.add(&r.stats.pipeline);
        }
        for k in r.anomalies.keys() {
            self.seeds_with.entry(k.clone()).or_default().push(r.seed);
        }
        if r.verdict == "pass" {
            self.passed += 1;
        } else {
            self.failures.push(Failure {
                seed: r.seed,
                verdict: r.verdict.clone(),
                violated: r.violated.clone(),
                panic: r.panic.clone(),
                repro: r.repro_command(),
            });
        }
        self.judge();
    }

    /// Adds another shard of the same scenario's sweep; `Err(seed)` names a seed both
    /// ran (nothing is changed then).
    pub fn merge(&mut self, other: &ScenarioSummary) -> Result<(), u64> {
        assert_eq!(self.scenario_hash, other.scenario_hash, "same scenario");
        self.seeds = self.seeds.union(&other.seeds)?;
        self.passed += other.passed;
        for (kind, seeds) in &other.seeds_with {
            let mine = self.seeds_with.entry(kind.clone()).or_default();
            *mine = mine.union(seeds).expect("the seed sets are disjoint");
        }
        self.failures.extend(other.failures.iter().cloned());
        self.failures.sort_by_key(|f| f.seed);
        self.sim_ms += other.sim_ms;
        self.net_messages += other.net_messages;
        self.producer.merge(&other.producer);
        self.pipeline.merge(&other.pipeline);
        self.judge();
        Ok(())
    }

    fn judge(&mut self) {
        self.not_demonstrated = self
            .expected
            .iter()
            .filter(|a| !self.seeds_with.contains_key(*a))
            .cloned()
            .collect();
    }
}

/// A progress line on stderr for long sweeps (seeds done of the total, seeds/s, seeds
/// with anomalies and unexpected outcomes so far, ETA), redrawn in place at most four
/// times a second. Wall clock only: it never reaches a summary or a report.
pub struct Progress {
    total: u64,
    started: Instant,
    done: AtomicU64,
    with_anomalies: AtomicU64,
    unexpected: AtomicU64,
    drawn: Mutex<Option<Instant>>,
}

const REDRAW_EVERY: Duration = Duration::from_millis(250);

impl Progress {
    /// A progress line over `total` seeds when stderr is a terminal; `None` otherwise.
    pub fn on_terminal(total: u64) -> Option<Progress> {
        std::io::stderr().is_terminal().then(|| Progress {
            total,
            started: Instant::now(),
            done: AtomicU64::new(0),
            with_anomalies: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            drawn: Mutex::new(None),
        })
    }

    fn seed_done(&self, r: &SeedReport) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !r.anomalies.is_empty() || r.panic.is_some() {
            self.with_anomalies.fetch_add(1, Ordering::Relaxed);
        }
        if r.verdict != "pass" {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
        }
        // Another thread drawing now is as good as this one drawing.
        let Ok(mut drawn) = self.drawn.try_lock() else {
            return;
        };
        if drawn.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        *drawn = Some(Instant::now());
        let line = progress_line(
            done,
            self.total,
            self.with_anomalies.load(Ordering::Relaxed),
            self.unexpected.load(Ordering::Relaxed),
            self.started.elapsed(),
        );
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }

    /// Erases the line (before other output, and at the end).
    pub fn clear(&self) {
        let mut drawn = self.drawn.lock().expect("no poisoned locks");
        *drawn = None;
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

fn progress_line(
    done: u64,
    total: u64,
    with_anomalies: u64,
    unexpected: u64,
    elapsed: Duration,
) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    let eta_s = (total.saturating_sub(done) as f64 / rate.max(1e-9)).round() as u64;
    format!(
        "{done}/{total} seeds  {rate:.1} seeds/s  {with_anomalies} with anomalies  \
         {unexpected} unexpected  ETA {}:{:02}:{:02}",
        eta_s / 3600,
        eta_s / 60 % 60,
        eta_s % 60
    )
}

/// Runs `seeds` of `scenario` on `jobs` threads (each seed on a fresh thread).
pub fn sweep(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    bugs: &[Bug],
    reports: Option<&Path>,
) -> ScenarioSummary {
    sweep_with_progress(scenario, seeds, jobs, bugs, reports, None)
}

/// [`sweep`], counting each seed on a progress line.
pub fn sweep_with_progress(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    bugs: &[Bug],
    reports: Option<&Path>,
    progress: Option<&Progress>,
) -> ScenarioSummary {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<SeedReport>> = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let (report, out) = runner::run_seed(scenario, seed, bugs);
                if report.verdict != "pass" {
                    if let Some(root) = reports {
                        // A report for every unexpected seed, so it can be read and repro'd.
                        let _ = runner::write_report(
                            root,
                            &report,
                            out.as_ref().map(|(o, _)| (&o.history, &o.snapshot)),
                        );
                    }
                }
                if let Some(p) = progress {
                    p.seed_done(&report);
                }
                results.lock().expect("no poisoned locks").push(report);
            });
        }
    });
    let mut results = results.into_inner().expect("no poisoned locks");
    results.sort_by_key(|r| r.seed);
    let mut summary = ScenarioSummary::new(scenario);
    for r in &results {
        summary.add(r);
    }
    summary
}

/// Sweeps `seeds` of `scenario` with a catalogued bug switched on; returns the seeds
/// (ascending) that show the anomaly the catalogue says it finds.
pub fn detect(scenario: &Scenario, bug: &BugInfo, seeds: &[u64], jobs: usize) -> Vec<u64> {
    let summary = sweep(scenario, seeds, jobs, &[bug.bug], None);
    summary
        .seeds_with
        .get(bug.finds)
        .map_or_else(Vec::new, |s| s.as_slice().to_vec())
}

/// Parses `A..B` (B exclusive) or `A..=B` or a single seed.
pub fn parse_seed_range(s: &str) -> Result<Vec<u64>, String> {
    let bad = || {
        format!(
            "invalid --seeds `{s}`; allowed: A..B (B exclusive), A..=B, or N, at most \
             {MAX_SEEDS} seeds"
        )
    };
    let (a, b) = if let Some((a, b)) = s.split_once("..=") {
        (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
    } else if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        (a, b.checked_sub(1).ok_or_else(bad)?)
    } else {
        let n = s.parse().map_err(|_| bad())?;
        (n, n)
    };
    if a > b || b - a >= MAX_SEEDS {
        return Err(bad());
    }
    Ok((a..=b).collect())
}

/// The canonical label of a contiguous seed list: `A..B` (B exclusive), as `--seeds`
/// takes it.
pub fn seed_range_label(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(&b)) if b < u64::MAX => format!("{a}..{}", b + 1),
        (Some(a), Some(b)) => format!("{a}..={b}"),
        _ => "0..0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seed_range("3..6").unwrap(), vec![3, 4, 5]);
        assert_eq!(parse_seed_range("3..=4").unwrap(), vec![3, 4]);
        assert_eq!(parse_seed_range("7").unwrap(), vec![7]);
        assert!(parse_seed_range("6..3").is_err());
        assert!(parse_seed_range("3..3").is_err());
        assert!(parse_seed_range("x").is_err());
        assert!(parse_seed_range("0..20000000").is_err());
        assert_eq!(
            seed_range_label(&parse_seed_range("3..=4").unwrap()),
            "3..5"
        );
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_seeds() {
        let seeds = parse_seed_range("10..21").unwrap();
        let mut all: Vec<u64> = (0..4)
            .flat_map(|i| Shard { index: i, count: 4 }.select(&seeds))
            .collect();
        assert_eq!(Shard::parse("1/4").unwrap().select(&seeds), [11, 15, 19]);
        all.sort_unstable();
        assert_eq!(all, seeds);
        for bad in ["4/4", "-1/4", "1", "0/0", "a/b", "1/4/2"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains("0 <= I < N"), "{bad}: {e}");
        }
        assert_eq!(Shard::parse("3/4").unwrap().to_string(), "3/4");
    }

    #[test]
    fn seed_sets_are_written_as_runs_and_read_back() {
        let cases: [&[u64]; 5] = [
            &[],
            &[7],
            &[0, 4, 8, 12],
            &[1, 5, 6, 7, 20],
            &[0, 1, 2, 3, 10, 20, 30],
        ];
        for seeds in cases {
            let set = SeedSet::from_sorted(seeds.to_vec());
            let json = serde_json::to_string(&set).unwrap();
            let back: SeedSet = serde_json::from_str(&json).unwrap();
            assert_eq!(back, set, "{json}");
        }
        let runs: Vec<[u64; 3]> = SeedSet::from_sorted(vec![0, 4, 8, 12]).into();
        assert_eq!(runs, [[0, 12, 4]]);
        for bad in [
            "[[5,1,1]]",
            "[[0,5,0]]",
            "[[0,5,2]]",
            "[[0,4,1],[4,6,1]]",
            "[[0,99999999,1]]",
        ] {
            assert!(serde_json::from_str::<SeedSet>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_set_union_refuses_a_seed_in_both() {
        let a = SeedSet::from_sorted(vec![0, 2, 4]);
        let b = SeedSet::from_sorted(vec![1, 3]);
        assert_eq!(a.union(&b).unwrap().as_slice(), [0, 1, 2, 3, 4]);
        assert_eq!(a.union(&SeedSet::from_sorted(vec![3, 4])), Err(4));
    }

    #[test]
    fn the_progress_line_shows_rate_anomalies_and_eta() {
        let line = progress_line(50, 200, 7, 1, Duration::from_secs(10));
        assert_eq!(
            line,
            "50/200 seeds  5.0 seeds/s  7 with anomalies  1 unexpected  ETA 0:00:30"
        );
    }
}
