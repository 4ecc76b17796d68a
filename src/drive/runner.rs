//! Runs seeds and turns what they produced into verdicts, trace hashes and reports.
//!
//! Each seed runs on a fresh OS thread (madsim's determinism needs it, see
//! `MADSIM_NOTES.md`), so a panic inside the simulated system is caught there and
//! reported as a finding with its seed instead of stopping a sweep.

use crate::bugs::Bug;
use crate::check::{self, CheckResult};
use crate::drive::guarantees;
use crate::history::{History, Snapshot};
use crate::report::figures;
use crate::report::{html, RunStats, SeedReport};
use crate::scenario::Scenario;
use crate::sim::{self, RunOutput};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// FNV-1a, 64 bit: stable across platforms and runs (unlike `DefaultHasher`).
pub fn fnv1a(data: &[u8], mut h: u64) -> u64 {
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The trace hash of a run: its history and final snapshot.
pub fn trace_hash(out: &RunOutput) -> String {
    // The entries as JSON lines without `history.jsonl`'s version field, so that a new
    // format version alone moves no trace hash.
    let mut h = 0xcbf2_9ce4_8422_2325;
    for e in &out.history.entries {
        h = fnv1a(
            serde_json::to_string(e)
                .expect("history entries serialize")
                .as_bytes(),
            h,
        );
        h = fnv1a(b"\n", h);
    }
    h = fnv1a(
        serde_json::to_string(&out.snapshot)
            .expect("snapshot serializes")
            .as_bytes(),
        h,
    );
    h = fnv1a(&out.net_messages.to_le_bytes(), h);
    format!("{h:016x}")
}

/// A hash of the parsed scenario (its canonical JSON, path excluded): two shards ran
/// the same scenario if and only if their hashes agree.
pub fn scenario_hash(scenario: &Scenario) -> String {
    let json = serde_json::to_string(scenario).expect("scenarios serialize");
    format!("{:016x}", fnv1a(json.as_bytes(), 0xcbf2_9ce4_8422_2325))
}

/// Runs one seed on a fresh thread; returns the report and, unless it panicked, the
/// run's output.
pub fn run_seed(
    scenario: &Scenario,
    seed: u64,
    bugs: &[Bug],
) -> (SeedReport, Option<(RunOutput, CheckResult)>) {
    let started = Instant::now();
    let (sc, bg) = (scenario.clone(), bugs.to_vec());
    let joined = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || sim::run(&sc, seed, &bg))
        .expect("spawn a seed thread")
        .join();
    let wall_ms = started.elapsed().as_millis() as u64;
    let mut report = SeedReport {
        scenario_file: std::fs::canonicalize(&scenario.path).ok(),
        scenario_hash: scenario_hash(scenario),
        seed,
        bugs: bugs.iter().map(|b| b.name().to_string()).collect(),
        verdict: "panic".into(),
        stats: RunStats {
            wall_ms,
            ..RunStats::default()
        },
        ..SeedReport::new(scenario.name.clone(), scenario.path.clone())
    };
    match joined {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            report.panic = Some(msg);
            report.violated.push("panic".into());
            (report, None)
        }
        Ok(out) => {
            let check = check::check(&out.history, &out.snapshot);
            report.trace_hash = trace_hash(&out);
            let excused = guarantees::excused(&out.history);
            for (kind, found) in &check.anomalies {
                report.anomalies.insert(kind.clone(), found.count);
                report.examples.insert(kind.clone(), found.examples.clone());
                report
                    .example_lines
                    .insert(kind.clone(), found.lines.clone());
                if !scenario.is_invariant(kind) {
                    continue;
                }
                match excused.get(kind.as_str()) {
                    Some(why) => {
                        report.excused.insert(kind.clone(), why.clone());
                    }
                    None => report.violated.push(kind.clone()),
                }
            }
            report.verdict = if report.violated.is_empty() {
                "pass"
            } else {
                "fail"
            }
            .into();
            report.stats = RunStats {
                sim_ms: out.sim_ms,
                wall_ms,
                operations: out.history.entries.len() as u64,
                records_sent: out.records_sent,
                net_messages: out.net_messages,
                faults: out.faults.len() as u64,
                check: check.stats.clone(),
                producer: figures::producer_figures(&out.history),
                pipeline: figures::pipeline_figures(&out.history, &out.broker_requests),
            };
            (report, Some((out, check)))
        }
    }
}

/// The file name of the report for a person, beside `report.json`.
pub const HTML_REPORT: &str = "index.html";

/// `<root>/<scenario>/<seed>`: where a seed's report files go.
pub fn report_dir(root: &Path, report: &SeedReport) -> PathBuf {
    root.join(&report.scenario).join(report.seed.to_string())
}

/// The file name of the end-of-run snapshot, beside `history.jsonl`: with it,
/// `kafkasim analyze` runs the white-box checks on the history again.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// Writes `reports/<scenario>/<seed>/report.json`, `history.jsonl`, `snapshot.json`
/// and `index.html` (the report for a person, see [`html`]) under `root`, each through
/// a temporary file and a rename so nothing is left half-written. Returns the path of
/// `report.json`; `index.html` is beside it.
pub fn write_report(
    root: &Path,
    report: &SeedReport,
    run: Option<(&History, &Snapshot)>,
) -> std::io::Result<PathBuf> {
    let dir = report_dir(root, report);
    std::fs::create_dir_all(&dir)?;
    if let Some((h, snapshot)) = run {
        write_file(&dir, "history.jsonl", h.to_jsonl().as_bytes())?;
        let json = serde_json::to_string(snapshot).expect("snapshots serialize");
        write_file(&dir, SNAPSHOT_FILE, json.as_bytes())?;
    }
    write_judgement(&dir, report, run.map(|(h, _)| h))
}

/// Writes `report.json` and `index.html` into `dir` (which exists), each through a
/// temporary file and a rename; returns the path of `report.json`.
pub fn write_judgement(
    dir: &Path,
    report: &SeedReport,
    history: Option<&History>,
) -> std::io::Result<PathBuf> {
    let html = html::render(report, history.unwrap_or(&History::default()));
    write_file(dir, HTML_REPORT, html.as_bytes())?;
    let json = serde_json::to_string_pretty(report).expect("reports serialize");
    write_file(dir, "report.json", json.as_bytes())?;
    Ok(dir.join("report.json"))
}

/// Writes `dir/name` through `dir/.name.tmp` and a rename.
fn write_file(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, dir.join(name))
}
