//! Seed sweeps: many seeds of many scenarios on a few OS threads, summarised per
//! scenario against its expectation.

use crate::bugs::Bug;
use crate::figures;
use crate::runner::{self, SeedReport};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A scenario's sweep, summarised.
#[derive(Clone, Debug)]
pub struct ScenarioSummary {
    /// The scenario's name.
    pub name: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds on which every invariant held.
    pub passed: u64,
    /// Anomaly kind -> seeds on which it appeared.
    pub seeds_with: BTreeMap<String, u64>,
    /// Seeds that violated an invariant or panicked, with their reports.
    pub failures: Vec<SeedReport>,
    /// Expected anomalies that no seed showed.
    pub not_demonstrated: Vec<String>,
    /// Sum of simulated ms over seeds.
    pub sim_ms: u64,
    /// Sum of wall ms over seeds.
    pub wall_ms: u64,
    /// Sum of simulated network messages.
    pub net_messages: u64,
    /// Producer figures, mean over the seeds that completed.
    pub producer: figures::ProducerFigures,
}

impl ScenarioSummary {
    /// Whether the sweep met the scenario's expectation.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.not_demonstrated.is_empty()
    }
}

/// Runs `seeds` of `scenario` on `jobs` threads (each seed on a fresh thread).
pub fn sweep(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    bugs: &[Bug],
    reports: Option<&Path>,
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
                            out.as_ref().map(|(o, _)| &o.history),
                        );
                    }
                }
                results.lock().expect("no poisoned locks").push(report);
            });
        }
    });
    let mut results = results.into_inner().expect("no poisoned locks");
    results.sort_by_key(|r| r.seed);
    let mut summary = ScenarioSummary {
        name: scenario.name.clone(),
        seeds: results.len() as u64,
        passed: 0,
        seeds_with: BTreeMap::new(),
        failures: Vec::new(),
        not_demonstrated: Vec::new(),
        sim_ms: 0,
        wall_ms: 0,
        net_messages: 0,
        producer: figures::ProducerFigures::default(),
    };
    let completed: Vec<figures::ProducerFigures> = results
        .iter()
        .filter(|r| r.panic.is_none())
        .map(|r| r.stats.producer.clone())
        .collect();
    summary.producer = figures::mean(&completed);
    for r in results {
        summary.sim_ms += r.stats.sim_ms;
        summary.wall_ms += r.stats.wall_ms;
        summary.net_messages += r.stats.net_messages;
        for k in r.anomalies.keys() {
            *summary.seeds_with.entry(k.clone()).or_default() += 1;
        }
        if r.verdict == "pass" {
            summary.passed += 1;
        } else {
            summary.failures.push(r);
        }
    }
    summary.not_demonstrated = scenario
        .expect
        .anomalies
        .iter()
        .filter(|a| !summary.seeds_with.contains_key(*a))
        .cloned()
        .collect();
    summary
}

/// Parses `A..B` (B exclusive) or `A..=B` or a single seed.
pub fn parse_seed_range(s: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("invalid --seeds `{s}`; allowed: A..B (B exclusive), A..=B, or N");
    if let Some((a, b)) = s.split_once("..=") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        return Ok((a..=b).collect());
    }
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a >= b {
            return Err(bad());
        }
        return Ok((a..b).collect());
    }
    s.parse().map(|n| vec![n]).map_err(|_| bad())
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
        assert!(parse_seed_range("x").is_err());
    }
}
