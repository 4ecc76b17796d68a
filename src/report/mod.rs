//! What a run leaves for people: the HTML report and the figures of a run or a sweep.

pub mod figures;
pub mod html;

use crate::check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Statistics of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RunStats {
    /// Simulated time (ms).
    pub sim_ms: u64,
    /// Wall-clock time (ms), measured outside the simulation.
    pub wall_ms: u64,
    /// History entries.
    pub operations: u64,
    /// Records the producers sent.
    pub records_sent: u64,
    /// Simulated network messages.
    pub net_messages: u64,
    /// Faults injected.
    pub faults: u64,
    /// The checker's counts.
    pub check: check::CheckStats,
    /// Batching, compression and latency of the producers.
    pub producer: figures::ProducerFigures,
    /// What the read-process-write pipelines did and what it cost the brokers.
    #[serde(default)]
    pub pipeline: figures::PipelineFigures,
}

/// The outcome of one seed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SeedReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file, as it was named on the command line (for the printed commands).
    pub scenario_path: PathBuf,
    /// The scenario file's absolute, canonical path (what `repro` opens, from any
    /// folder); `None` in reports written before it was recorded, or when the path
    /// could not be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_file: Option<PathBuf>,
    /// The hash of the parsed scenario ([`crate::drive::runner::scenario_hash`]): `repro` tells
    /// a changed scenario file from a run that no longer reproduces. Empty in reports
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scenario_hash: String,
    /// The seed.
    pub seed: u64,
    /// Bug switches turned on from the command line (on top of the scenario's).
    pub bugs: Vec<String>,
    /// `pass` when every invariant held, `fail` otherwise, `panic` when the simulated
    /// system panicked.
    pub verdict: String,
    /// Hash of the history and the final snapshot: equal for equal runs.
    pub trace_hash: String,
    /// Anomaly kind -> count.
    pub anomalies: BTreeMap<String, u64>,
    /// Anomaly kind -> examples.
    pub examples: BTreeMap<String, Vec<String>>,
    /// Anomaly kind -> the history lines each example involves (same order as
    /// `examples`).
    #[serde(default)]
    pub example_lines: BTreeMap<String, Vec<Vec<u64>>>,
    /// Invariants this seed violated.
    pub violated: Vec<String>,
    /// Invariant kinds the run showed that its own history proves to be Kafka's
    /// behaviour in this run ([`crate::drive::guarantees::excused`]): kind -> why. Not
    /// violations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub excused: BTreeMap<String, String>,
    /// The panic message, if the simulated system panicked.
    pub panic: Option<String>,
    /// For a report of `kafkasim analyze`: the input it judged (no scenario ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzed: Option<Analyzed>,
    /// Run statistics.
    pub stats: RunStats,
}

/// The input of `kafkasim analyze`: a history recorded elsewhere (or by `run`), and
/// the end-of-run snapshot when there is one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Analyzed {
    /// The history file.
    pub history: PathBuf,
    /// Its format: `jsonl` (kafkasim's `history.jsonl`) or `jepsen-edn`.
    pub format: String,
    /// The snapshot file; `None`: black-box checks only.
    pub snapshot: Option<PathBuf>,
}

impl SeedReport {
    /// A report of `scenario` (read from `scenario_path`) with nothing in it yet.
    pub fn new(scenario: String, scenario_path: PathBuf) -> SeedReport {
        SeedReport {
            scenario,
            scenario_path,
            scenario_file: None,
            scenario_hash: String::new(),
            seed: 0,
            bugs: Vec::new(),
            verdict: String::new(),
            trace_hash: String::new(),
            anomalies: BTreeMap::new(),
            examples: BTreeMap::new(),
            example_lines: BTreeMap::new(),
            violated: Vec::new(),
            excused: BTreeMap::new(),
            panic: None,
            analyzed: None,
            stats: RunStats::default(),
        }
    }

    /// The one-line command that reproduces this run (for `analyze`, its judgement).
    pub fn repro_command(&self) -> String {
        let Some(a) = &self.analyzed else {
            return repro_command(&self.scenario_path, self.seed, &self.bugs);
        };
        let mut s = format!(
            "cargo run --release -- analyze {} --format {}",
            a.history.display(),
            a.format
        );
        if let Some(snapshot) = &a.snapshot {
            s.push_str(&format!(" --snapshot {}", snapshot.display()));
        }
        s
    }
}

/// `kafkasim run <file> --seed N [--bug B]...`.
pub fn repro_command(path: &Path, seed: u64, bugs: &[String]) -> String {
    let mut s = format!(
        "cargo run --release -- run {} --seed {seed}",
        path.display()
    );
    for b in bugs {
        s.push_str(&format!(" --bug {b}"));
    }
    s
}
