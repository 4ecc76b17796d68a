//! The `kafkasim` command line: `run`, `check`, `merge`, `shrink`, `repro`, `analyze`,
//! `list`, `bugs`, `matrix`, `explore`, `bench`, `schema`, `snapshot-from-dump-log`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kafkasim::bugs::{Bug, CATALOGUE};
use kafkasim::check;
use kafkasim::drive::analyze::{self, Format, KeyMap};
use kafkasim::drive::claims;
use kafkasim::drive::explore;
use kafkasim::drive::guarantees;
use kafkasim::drive::matrix;
use kafkasim::drive::runner;
use kafkasim::drive::shrink;
use kafkasim::drive::summary::{self, Shards, SummaryFile, SweepSummary, WallTime};
use kafkasim::drive::sweep::{self, Progress, ScenarioSummary, Shard};
use kafkasim::report::SeedReport;
use kafkasim::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "kafkasim",
    version,
    about = "Deterministic simulation testbed for Apache Kafka's design"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed; print the verdict and write a report.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Switch off a safeguard (see `kafkasim bugs`); repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Where reports go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Sweep seeds over scenario files or folders, write <reports>/summary.json; exit 1
    /// if any expectation is not met.
    Check {
        /// Scenario files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Seeds: A..B (B exclusive), A..=B, or N.
        #[arg(long, default_value = "0..50")]
        seeds: String,
        /// Run only shard I of N of the seeds (those at positions I modulo N of the
        /// range), 0 <= I < N: I is 0-based, like Kubernetes' JOB_COMPLETION_INDEX.
        /// Expected anomalies are then judged by `merge`, over all shards.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Worker threads (each seed still runs on a fresh thread).
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Switch off a safeguard in every scenario; repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Where summary.json and the reports of unexpected seeds go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Merge the summaries of a sweep's shards (report folders or summary.json files),
    /// print the sweep's table, write the merged summary.json; exit 1 if any
    /// expectation is not met over all shards, or a shard is missing.
    Merge {
        /// Report folders holding summary.json, or summary files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where the merged summary.json goes.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Re-run the seed of a report and confirm the same trace hash.
    Repro {
        /// A `report.json` written by `run` or `check`.
        report: PathBuf,
    },
    /// Check a history recorded elsewhere (Jepsen's history.edn, or a history.jsonl
    /// any harness wrote): print the verdict and anomalies as `run` does, write
    /// report.json and index.html; exit 0 without anomalies, 1 with, 2 on bad input.
    Analyze {
        /// The history file.
        history: PathBuf,
        /// The end-of-run snapshot (`snapshot.json`, as `run` writes it): the white-box
        /// checks run too. Without it the checks are black-box, as Jepsen's are.
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// `jsonl` (kafkasim's history.jsonl) or `jepsen-edn` [default: by the file's
        /// extension, `.edn` is Jepsen's].
        #[arg(long)]
        format: Option<String>,
        /// Jepsen keys: partitions per topic of Jepsen's rule (key k is partition
        /// k mod N of topic t<k / N>).
        #[arg(long, default_value_t = 2, conflicts_with = "topic")]
        partitions_per_topic: u32,
        /// Jepsen keys: every key is the partition of that number of this one topic.
        #[arg(long)]
        topic: Option<String>,
        /// Where report.json and index.html go.
        #[arg(long, default_value = "reports/analyze")]
        reports: PathBuf,
    },
    /// Build a snapshot.json from a real cluster's files, for `analyze --snapshot`:
    /// `kafka-topics.sh --describe` output, each broker's `kafka-dump-log.sh
    /// --deep-iteration --print-data-log --files <its segments>` output and, optionally,
    /// its `replication-offset-checkpoint` (else the high watermark is the leader's log
    /// end: a cluster at rest). Exit 2 on bad input, with nothing written.
    SnapshotFromDumpLog {
        /// `kafka-topics.sh --describe` output: leaders, replicas, ISRs.
        #[arg(long)]
        describe: PathBuf,
        /// BROKER=FILE: that broker's `kafka-dump-log.sh` output (repeat per broker).
        #[arg(long = "dump", value_parser = broker_file, required = true)]
        dumps: Vec<(u32, PathBuf)>,
        /// BROKER=FILE: that broker's `replication-offset-checkpoint`.
        #[arg(long = "checkpoint", value_parser = broker_file)]
        checkpoints: Vec<(u32, PathBuf)>,
        /// Where the snapshot goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the JSON Schema of a file kafkasim reads or writes (as checked in under
    /// schemas/): scenario, matrix, history (one history.jsonl line), snapshot, report.
    Schema {
        /// scenario, matrix, history, snapshot or report.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(kafkasim::schema::NAMES))]
        name: String,
    },
    /// Shrink a failing seed: fewer and shorter faults, fewer clients, keys, records,
    /// less time; write the smallest run that fails the same way as a scenario file.
    Shrink(ShrinkArgs),
    /// List scenarios with the claims they demonstrate and what they check, and the
    /// claims no scenario covers.
    List {
        /// Scenario files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Configurations that must be refused, whose claims count as covered
        /// [default: examples/invalid, when it exists].
        #[arg(long)]
        refused: Option<PathBuf>,
    },
    /// List the catalogue of historic bugs (safeguards that can be switched off), with
    /// the scenario that finds each; `--measure` sweeps each one to count detections.
    Bugs {
        /// Sweep each entry's scenario with its switch on over these seeds and print
        /// the seeds-to-detection figures (e.g. `0..20`).
        #[arg(long, value_name = "SEEDS")]
        measure: Option<String>,
        /// Worker threads for `--measure`.
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Where the scenarios are.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
    },
    /// Sweep a grid of settings against fault kinds; write matrix.json, index.html and
    /// one scenario file per cell under <reports>/matrix/<name>/, print the table.
    Matrix {
        /// The matrix file.
        #[arg(default_value = "matrix/guarantees.json")]
        matrix: PathBuf,
        /// Seeds per cell [default: the matrix file's `seeds`, from 0].
        #[arg(long)]
        seeds: Option<String>,
        /// Worker threads.
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Where the matrix's folder goes.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
    },
    /// Draw a whole scenario per seed (cluster, topics, clients, groups, pipelines,
    /// faults), derive its expectation from the guarantee table and run it; write each
    /// violating scenario to <reports>/explore/seed-N.json with its run command. Exit 1
    /// if any seed violates the table.
    Explore {
        /// Seeds: A..B (B exclusive), A..=B, or N (required unless --rules).
        #[arg(long, required_unless_present = "rules")]
        seeds: Option<String>,
        /// Worker threads (each seed still runs on a fresh thread).
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
        /// Where violating scenarios and their reports go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Switch off a safeguard in every run; repeatable.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Print the guarantee table and exit.
        #[arg(long)]
        rules: bool,
        /// Write every drawn scenario, not only the violating ones.
        #[arg(long)]
        write_all: bool,
    },
    /// Benchmark: seeds/s, simulated s per wall s and messages per wall s, on one thread.
    Bench {
        /// The scenario to time.
        #[arg(default_value = "benches/standard.json")]
        scenario: PathBuf,
        /// Seeds to run (sequentially, one thread).
        #[arg(long, default_value_t = 20)]
        seeds: u64,
    },
}

/// `kafkasim bugs`: the catalogue, and with `--measure` how soon each entry is found.
fn cmd_bugs(measure: Option<&str>, jobs: usize, dir: &Path) -> Result<ExitCode, BadInput> {
    let Some(range) = measure else {
        for b in CATALOGUE {
            println!("{:<32} {}", b.name, b.reference);
            println!("    {}", b.summary);
            println!(
                "    found by scenarios/{} as {} within {} seeds",
                b.scenario, b.finds, b.budget
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let seeds = sweep::parse_seed_range(range).map_err(|e| BadInput(format!("--measure: {e}")))?;
    println!(
        "{:<32} {:<22} {:<22} {:>10} {:>13} {:>9}",
        "bug", "scenario", "finds", "first seed", "seeds to find", "found on"
    );
    let mut missed = false;
    for b in CATALOGUE {
        let sc = load(&dir.join(b.scenario))?;
        let found = sweep::detect(&sc, b, &seeds, jobs);
        missed |= found.is_empty();
        let first = found.first();
        // Seeds run up to and including the first that finds it.
        let to_find = first.map(|f| seeds.iter().position(|s| s == f).expect("a swept seed") + 1);
        let never = || "never".to_string();
        println!(
            "{:<32} {:<22} {:<22} {:>10} {:>13} {:>9}",
            b.name,
            sc.name,
            b.finds,
            first.map_or_else(never, |s| s.to_string()),
            to_find.map_or_else(never, |n| n.to_string()),
            format!("{}/{}", found.len(), seeds.len())
        );
    }
    Ok(if missed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `kafkasim matrix`: build and validate every cell first (bad input writes nothing),
/// then sweep them.
fn cmd_matrix(
    path: &Path,
    seeds: Option<&str>,
    jobs: usize,
    reports: &Path,
) -> Result<ExitCode, BadInput> {
    let spec = matrix::load(path).map_err(|e| BadInput(e.to_string()))?;
    let seeds = match seeds {
        Some(s) => sweep::parse_seed_range(s).map_err(|e| BadInput(format!("--seeds: {e}")))?,
        None => (0..spec.seeds).collect(),
    };
    let name = path
        .file_stem()
        .map_or_else(|| "matrix".into(), |s| s.to_string_lossy().into_owned());
    let out = reports.join("matrix").join(&name);
    let cells = matrix::cells(&spec, path, &out).map_err(|e| BadInput(e.to_string()))?;
    let io = |e: std::io::Error| BadInput(format!("cannot write under {}: {e}", out.display()));
    matrix::write_cells(&cells).map_err(io)?;
    let progress = Progress::on_terminal(cells.len() as u64 * seeds.len() as u64);
    let started = Instant::now();
    let result = matrix::run(&spec, path, &cells, &seeds, jobs, progress.as_ref());
    if let Some(p) = &progress {
        p.clear();
    }
    print!("{}", matrix::text(&result));
    matrix::write_results(&result, &out).map_err(io)?;
    let runs = cells.len() as u64 * seeds.len() as u64;
    let wall = started.elapsed().as_secs_f64();
    println!(
        "\nmatrix     {}\njson       {}\n{runs} runs in {wall:.1} s ({:.1} seeds/s on {jobs} threads)",
        out.join("index.html").display(),
        out.join("matrix.json").display(),
        runs as f64 / wall.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// `kafkasim explore`: the table, or draw and run every seed.
fn cmd_explore(
    seeds: Option<&str>,
    jobs: usize,
    reports: &Path,
    bugs: &[String],
    rules: bool,
    write_all: bool,
) -> Result<ExitCode, BadInput> {
    if rules {
        print!("{}", guarantees::table());
        return Ok(ExitCode::SUCCESS);
    }
    let seeds = sweep::parse_seed_range(seeds.unwrap_or_default()).map_err(BadInput)?;
    if jobs == 0 {
        return Err(BadInput("--jobs: allowed: at least 1".into()));
    }
    let bugs = parse_bugs(bugs)?;
    std::fs::create_dir_all(reports.join("explore"))
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    let opts = explore::Options {
        seeds,
        jobs,
        reports: reports.to_path_buf(),
        bugs: bugs.clone(),
        write_all,
    };
    let started = Instant::now();
    let print_lock = std::sync::Mutex::new(());
    let done = |o: &explore::SeedOutcome| {
        if o.violations.is_empty() {
            return;
        }
        let _guard = print_lock.lock().expect("no poisoned locks");
        println!("seed {}: {}", o.seed, o.violations.join(", "));
        println!("    {}", o.scenario.description);
        println!("    scenario {}", o.scenario.path.display());
        println!("    {}", explore::repro_command(o, &bugs));
    };
    let outcomes = explore::explore(&opts, &done);
    let wall = started.elapsed().as_secs_f64();
    let mut by_kind: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut sim_ms = 0u64;
    for o in &outcomes {
        sim_ms += o.report.as_ref().map_or(0, |r| r.stats.sim_ms);
        for v in &o.violations {
            let kind = v.split(':').next().unwrap_or(v).to_string();
            by_kind.entry(kind).or_default().push(o.seed);
        }
    }
    let violating = outcomes.iter().filter(|o| !o.violations.is_empty()).count();
    // What the runs showed within the table (tolerated anomalies, client events): how
    // hard the drawn scenarios pushed.
    let mut seen: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in outcomes.iter().filter_map(|o| o.report.as_ref()) {
        for k in r
            .anomalies
            .keys()
            .filter(|k| !r.violated.contains(k) && !r.excused.contains_key(*k))
        {
            *seen.entry(k.as_str()).or_default() += 1;
        }
    }
    let seen: Vec<String> = seen.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    // Forbidden kinds the seed's own history shows to be Kafka's there.
    for o in &outcomes {
        if let Some(r) = o.report.as_ref().filter(|r| !r.excused.is_empty()) {
            let kinds: Vec<&str> = r.excused.keys().map(String::as_str).collect();
            println!(
                "excused    seed {}: {} (Kafka's own in this run; see its report)",
                o.seed,
                kinds.join(", ")
            );
        }
    }
    println!(
        "tolerated  {}",
        if seen.is_empty() {
            "-".to_string()
        } else {
            seen.join(" ")
        }
    );
    for (kind, seeds) in &by_kind {
        let shown: Vec<String> = seeds.iter().take(10).map(u64::to_string).collect();
        println!(
            "{kind:<30} {:>5} seed(s): {}{}",
            seeds.len(),
            shown.join(", "),
            if seeds.len() > 10 { ", ..." } else { "" }
        );
    }
    println!(
        "{} seeds in {wall:.1} s ({:.2} seeds/s on {jobs} threads, {:.0} simulated s per wall s): {violating} violating",
        outcomes.len(),
        outcomes.len() as f64 / wall.max(1e-9),
        sim_ms as f64 / 1000.0 / wall.max(1e-9)
    );
    Ok(if violating > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A user error: printed, exit code 2.
struct BadInput(String);

fn parse_bugs(names: &[String]) -> Result<Vec<Bug>, BadInput> {
    names
        .iter()
        .map(|n| {
            Bug::from_name(n).ok_or_else(|| {
                BadInput(format!(
                    "--bug: unknown bug switch `{n}`; allowed: {}",
                    Bug::names().join(", ")
                ))
            })
        })
        .collect()
}

fn load(path: &Path) -> Result<Scenario, BadInput> {
    Scenario::load(path).map_err(|e| BadInput(e.to_string()))
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, BadInput> {
    let files = scenario::collect_paths(paths).map_err(|e| BadInput(e.to_string()))?;
    files.iter().map(|f| load(f)).collect()
}

fn print_report(r: &SeedReport) {
    match &r.analyzed {
        Some(a) => println!(
            "history    {} ({}; {})",
            a.history.display(),
            a.format,
            a.snapshot
                .as_ref()
                .map_or("black-box: no snapshot".into(), |s| {
                    format!("snapshot {}", s.display())
                })
        ),
        None => println!("scenario   {} (seed {})", r.scenario, r.seed),
    }
    println!("verdict    {}", r.verdict.to_uppercase());
    if let Some(p) = &r.panic {
        println!("panic      {p}");
    }
    if r.anomalies.is_empty() {
        println!("anomalies  none");
    } else {
        println!("anomalies");
        for (k, n) in &r.anomalies {
            let tag = if r.violated.contains(k) {
                "VIOLATES INVARIANT"
            } else if r.excused.contains_key(k) {
                "excused: Kafka's own in this run"
            } else {
                "expected/tolerated"
            };
            println!("  {k:<26} {n:>6}  ({tag})");
            if let Some(why) = r.excused.get(k) {
                println!("      why  {why}");
            }
            if let Some(ex) = r.examples.get(k).and_then(|e| e.first()) {
                println!("      e.g. {ex}");
            }
        }
    }
    let s = &r.stats;
    println!(
        "stats      {} operations, {} records sent ({} acked, {} failed, {} indefinite), {} records read, {} faults, {} messages",
        s.operations, s.records_sent, s.check.acked, s.check.failed, s.check.indefinite, s.check.records_read, s.faults, s.net_messages
    );
    if !s.check.rebalances_by_cause.is_empty() {
        let causes: Vec<String> = s
            .check
            .rebalances_by_cause
            .iter()
            .map(|(cause, n)| format!("{cause}: {n}"))
            .collect();
        println!("rebalances {}", causes.join(", "));
    }
    let p = &s.pipeline;
    if p.outputs > 0 {
        println!(
            "pipelines  {} outputs ({:.1}/s), {} transactions committed ({:.1} outputs each), {} aborted, commit p50 {} ms p99 {} ms, {:.0} broker requests per 1000 outputs ({:.0} for transactions)",
            p.outputs,
            p.outputs_per_sec,
            p.transactions,
            p.outputs_per_txn(),
            p.aborted,
            p.commit_p50_ms,
            p.commit_p99_ms,
            p.requests_per_1000_outputs(),
            p.txn_requests_per_1000_outputs()
        );
    }
    println!(
        "time       {:.3} s simulated, {:.3} s wall",
        s.sim_ms as f64 / 1000.0,
        s.wall_ms as f64 / 1000.0
    );
    if r.analyzed.is_none() {
        println!("trace      {}", r.trace_hash);
    }
}

/// `kafkasim analyze`: read, judge, print, write (nothing is written on bad input).
fn cmd_analyze(
    path: &Path,
    snapshot: Option<&Path>,
    format: Option<&str>,
    keys: KeyMap,
    reports: &Path,
) -> Result<ExitCode, BadInput> {
    let format = match format {
        None => Format::of(path),
        Some(name) => Format::parse(name).ok_or_else(|| {
            BadInput(format!(
                "--format: unknown format `{name}`; allowed: jsonl, jepsen-edn"
            ))
        })?,
    };
    if keys == KeyMap::PerTopic(0) {
        return Err(BadInput(
            "--partitions-per-topic: allowed: at least 1".into(),
        ));
    }
    let bad = |e: analyze::InputError| BadInput(e.to_string());
    let history = analyze::read_history(path, format, &keys).map_err(bad)?;
    let snap = snapshot
        .map(analyze::read_snapshot)
        .transpose()
        .map_err(bad)?;
    let analyzed = kafkasim::report::Analyzed {
        history: path.to_path_buf(),
        format: format.name().into(),
        snapshot: snapshot.map(Path::to_path_buf),
    };
    let report = analyze::judge(&history, snap.as_ref(), analyzed).map_err(bad)?;
    print_report(&report);
    std::fs::create_dir_all(reports)
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    let file = runner::write_judgement(reports, &report, Some(&history))
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    println!(
        "report     {}",
        file.with_file_name(runner::HTML_REPORT).display()
    );
    println!("json       {}", file.display());
    // The process ends next: freeing a long history entry by entry would take seconds.
    std::mem::forget(history);
    Ok(if report.verdict == "pass" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A `BROKER=FILE` argument.
fn broker_file(arg: &str) -> Result<(u32, PathBuf), String> {
    let (broker, file) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}`: expected BROKER=FILE"))?;
    let broker = broker
        .parse()
        .map_err(|_| format!("`{arg}`: the broker must be a broker id (a number)"))?;
    Ok((broker, PathBuf::from(file)))
}

/// `kafkasim snapshot-from-dump-log`: read every file, then write the snapshot
/// through a temporary file and a rename.
fn cmd_snapshot_from_dump_log(
    files: analyze::dump_log::DumpFiles,
    out: &Path,
) -> Result<ExitCode, BadInput> {
    let snapshot = analyze::dump_log::snapshot(&files).map_err(|e| BadInput(e.to_string()))?;
    let json = serde_json::to_string(&snapshot).expect("snapshots serialize");
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name()
            .map_or("snapshot".into(), |n| n.to_string_lossy())
    ));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| BadInput(format!("--out {}: {e}", out.display())))?;
    let records: usize = snapshot
        .partitions
        .iter()
        .flat_map(|p| &p.replicas)
        .map(|r| r.records.len())
        .sum();
    println!(
        "snapshot   {} ({} partitions, {records} records over their replicas)",
        out.display(),
        snapshot.partitions.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(
    path: &Path,
    seed: u64,
    bugs: &[String],
    reports: &Path,
) -> anyhow::Result<Result<ExitCode, BadInput>> {
    let scenario = match load(path) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let bugs = match parse_bugs(bugs) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    let (report, out) = runner::run_seed(&scenario, seed, &bugs);
    print_report(&report);
    let file = runner::write_report(
        reports,
        &report,
        out.as_ref().map(|(o, _)| (&o.history, &o.snapshot)),
    )
    .context("writing the report")?;
    println!(
        "report     {}",
        file.with_file_name(runner::HTML_REPORT).display()
    );
    println!("json       {}", file.display());
    if report.verdict != "pass" {
        println!("repro      {}", report.repro_command());
        return Ok(Ok(ExitCode::from(1)));
    }
    Ok(Ok(ExitCode::SUCCESS))
}

fn cmd_check(
    paths: &[PathBuf],
    seeds: &str,
    shard: Option<&str>,
    jobs: usize,
    bugs: &[String],
    reports: &Path,
) -> Result<ExitCode, BadInput> {
    let scenarios = load_all(paths)?;
    let range = sweep::parse_seed_range(seeds).map_err(BadInput)?;
    let shard = shard.map(Shard::parse).transpose().map_err(BadInput)?;
    let bug_switches = parse_bugs(bugs)?;
    let bugs: Vec<String> = bug_switches.iter().map(|b| b.name().to_string()).collect();
    std::fs::create_dir_all(reports)
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    let seeds = shard.map_or_else(|| range.clone(), |s| s.select(&range));
    let started = Instant::now();
    let runs = seeds.len() as u64 * scenarios.len() as u64;
    let progress = Progress::on_terminal(runs);
    let range_label = sweep::seed_range_label(&range);
    if let Some(s) = shard {
        println!(
            "shard {s}: {} of the {} seeds {range_label} (positions {} modulo {})",
            seeds.len(),
            range.len(),
            s.index,
            s.count
        );
    }
    print_table_header();
    let mut summaries = Vec::new();
    for sc in &scenarios {
        let s = sweep::sweep_with_progress(
            sc,
            &seeds,
            jobs,
            &bug_switches,
            Some(reports),
            progress.as_ref(),
        );
        if let Some(p) = &progress {
            p.clear();
        }
        let range = shard.is_none().then_some(range_label.as_str());
        print_row(&s, range, &bugs, Some(reports));
        summaries.push(s);
    }
    let file = SummaryFile {
        summary: SweepSummary {
            format: summary::FORMAT,
            kafkasim: env!("CARGO_PKG_VERSION").into(),
            seeds: range_label,
            shards: shard.map(|s| Shards {
                count: s.count,
                indices: vec![s.index],
            }),
            bugs,
            scenarios: summaries,
        },
        wall: vec![WallTime {
            shard,
            runs,
            wall_ms: started.elapsed().as_millis() as u64,
            jobs,
        }],
    };
    print_producer_figures(&file.summary.scenarios);
    print_pipeline_figures(&file.summary.scenarios);
    let written = file
        .write(reports)
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    println!("summary    {}", written.display());
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {:.1} s ({:.1} seeds/s on {} threads)",
        runs,
        wall,
        runs as f64 / wall.max(1e-9),
        jobs
    );
    Ok(verdict(&file.summary))
}

fn cmd_merge(inputs: &[PathBuf], reports: &Path) -> Result<ExitCode, BadInput> {
    let out = reports.join(summary::FILE_NAME);
    let mut parts = Vec::new();
    for input in inputs {
        let file = summary::summary_path(input);
        if out.exists() && file.canonicalize().ok() == out.canonicalize().ok() {
            return Err(BadInput(format!(
                "{}: merge would overwrite one of its inputs; pass another --reports",
                out.display()
            )));
        }
        let part = SummaryFile::load(input).map_err(BadInput)?;
        parts.push((file, part));
    }
    let merged = SummaryFile::merge(parts).map_err(BadInput)?;
    let s = &merged.summary;
    println!(
        "merged {} summaries of the sweep over seeds {}",
        inputs.len(),
        s.seeds
    );
    print_table_header();
    for sc in &s.scenarios {
        print_row(
            sc,
            s.shards.is_none().then_some(s.seeds.as_str()),
            &s.bugs,
            None,
        );
    }
    print_producer_figures(&s.scenarios);
    print_pipeline_figures(&s.scenarios);
    let written = merged
        .write(reports)
        .map_err(|e| BadInput(format!("--reports {}: {e}", reports.display())))?;
    println!("summary    {}", written.display());
    if let Some(sh) = &s.shards {
        let missing: Vec<String> = s
            .missing_shards()
            .iter()
            .map(|i| format!("{i}/{}", sh.count))
            .collect();
        println!(
            "INCOMPLETE: shard(s) {} missing; expected anomalies are not judged",
            missing.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(verdict(s))
}

fn verdict(s: &SweepSummary) -> ExitCode {
    if s.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_table_header() {
    println!(
        "{:<34} {:>6} {:>6}  {:<8} anomalies (seeds showing them)",
        "scenario", "seeds", "pass", "verdict"
    );
}

/// One scenario's row, each unexpected seed with its repro command and, for a whole
/// sweep over `range` (not a shard), each expected anomaly that no seed showed with the
/// command that sweeps it again.
fn print_row(s: &ScenarioSummary, range: Option<&str>, bugs: &[String], reports: Option<&Path>) {
    let shown: Vec<String> = s
        .seeds_with
        .iter()
        .map(|(k, seeds)| format!("{k}:{}", seeds.len()))
        .collect();
    let ok = s.failures.is_empty() && (range.is_none() || s.not_demonstrated.is_empty());
    println!(
        "{:<34} {:>6} {:>6}  {:<8} {}",
        s.name,
        s.seeds.len(),
        s.passed,
        if ok { "ok" } else { "FAILED" },
        if shown.is_empty() {
            "-".to_string()
        } else {
            shown.join(" ")
        }
    );
    for f in &s.failures {
        let what = f
            .panic
            .as_ref()
            .map(|p| format!("panic: {p}"))
            .unwrap_or_else(|| format!("violated {}", f.violated.join(", ")));
        println!("    seed {}: {what}", f.seed);
        println!("      {}", f.repro);
        if let Some(root) = reports {
            let page = root
                .join(&s.name)
                .join(f.seed.to_string())
                .join(runner::HTML_REPORT);
            println!("      report: {}", page.display());
        }
    }
    for a in &s.not_demonstrated {
        let Some(range) = range else {
            println!(
                "    expected anomaly `{a}` not in this shard's {} seeds (judged by `merge`)",
                s.seeds.len()
            );
            continue;
        };
        println!(
            "    expected anomaly `{a}` appeared on none of {} seeds",
            s.seeds.len()
        );
        let mut cmd = format!(
            "cargo run --release -- check {} --seeds {range}",
            s.path.display()
        );
        for b in bugs {
            cmd.push_str(&format!(" --bug {b}"));
        }
        println!("      {cmd}");
    }
}

/// Prints a table under a blank line: the first column left-aligned, the others
/// right-aligned, each as wide as its `columns` entry says.
fn print_table(columns: &[(&str, usize)], rows: impl IntoIterator<Item = Vec<String>>) {
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(columns)
            .enumerate()
            .map(|(i, (c, (_, w)))| match i {
                0 => format!("{c:<w$}"),
                _ => format!("{c:>w$}"),
            })
            .collect();
        println!("{}", cells.join(" "));
    };
    println!();
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// The producer figures table (C8, C9): means over each scenario's seeds.
fn print_producer_figures(rows: &[ScenarioSummary]) {
    let columns = [
        ("producer figures (mean per seed)", 34),
        ("rec/batch", 9),
        ("batch B", 9),
        ("ratio", 8),
        ("bytes sent", 12),
        ("p50 ms", 8),
        ("p99 ms", 8),
        ("max ms", 8),
    ];
    print_table(
        &columns,
        rows.iter().map(|s| {
            let f = s.producer.mean();
            vec![
                s.name.clone(),
                format!("{:.1}", f.records_per_batch),
                format!("{:.0}", f.batch_size_avg),
                format!("{:.3}", f.compression_rate),
                (f.metrics.outgoing_bytes / s.producer.runs.max(1)).to_string(),
                f.latency_p50_ms.to_string(),
                f.latency_p99_ms.to_string(),
                f.latency_max_ms.to_string(),
            ]
        }),
    );
}

/// The read-process-write figures table (C29), for scenarios with pipelines: what
/// transactions cost in throughput, commit latency and broker requests.
fn print_pipeline_figures(rows: &[ScenarioSummary]) {
    let rows: Vec<&ScenarioSummary> = rows.iter().filter(|s| s.pipeline.outputs > 0).collect();
    if rows.is_empty() {
        return;
    }
    let columns = [
        ("pipeline figures (mean per seed)", 34),
        ("outputs", 8),
        ("out/s", 8),
        ("txns", 6),
        ("out/txn", 7),
        ("commit50", 8),
        ("commit99", 8),
        ("req/1k", 9),
        ("txnreq/1k", 9),
    ];
    print_table(
        &columns,
        rows.iter().map(|s| {
            let f = s.pipeline.mean();
            vec![
                s.name.clone(),
                f.outputs.to_string(),
                format!("{:.1}", f.outputs_per_sec),
                f.transactions.to_string(),
                format!("{:.1}", f.outputs_per_txn()),
                f.commit_p50_ms.to_string(),
                f.commit_p99_ms.to_string(),
                format!("{:.0}", f.requests_per_1000_outputs()),
                format!("{:.0}", f.txn_requests_per_1000_outputs()),
            ]
        }),
    );
}

/// `repro <report.json>`: runs the report's scenario with its seed and bugs again and
/// compares trace hashes. The scenario is opened by the absolute path the report
/// recorded (so `repro` works from any folder), else by the path as typed then. When
/// the file's scenario no longer hashes as recorded, `repro` says the file changed
/// since the report, and still runs it (exit 1 unless it reproduces anyway).
fn cmd_repro(path: &Path) -> Result<ExitCode, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read: {e}", path.display())))?;
    let old: SeedReport = serde_json::from_str(&text).map_err(|e| {
        BadInput(format!(
            "{}: not a kafkasim report.json: {e}",
            path.display()
        ))
    })?;
    let file = old
        .scenario_file
        .iter()
        .chain(std::iter::once(&old.scenario_path))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let recorded = old.scenario_file.as_ref().unwrap_or(&old.scenario_path);
            BadInput(format!(
                "{}: its scenario file {} no longer exists (the report names it as {})",
                path.display(),
                recorded.display(),
                old.scenario_path.display()
            ))
        })?;
    let scenario = load(file)?;
    let now_hash = runner::scenario_hash(&scenario);
    let changed = !old.scenario_hash.is_empty() && old.scenario_hash != now_hash;
    if changed {
        println!(
            "note       the scenario file {} changed since the report (scenario hash {} \
             then, {now_hash} now); running it as it is now",
            file.display(),
            old.scenario_hash
        );
    }
    let bugs = parse_bugs(&old.bugs)?;
    let (new, _) = runner::run_seed(&scenario, old.seed, &bugs);
    print_report(&new);
    if new.trace_hash == old.trace_hash && new.verdict == old.verdict {
        println!("reproduced: same trace hash {}", new.trace_hash);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "NOT reproduced: trace hash {} (report) vs {} (now); verdict {} vs {}{}",
            old.trace_hash,
            new.trace_hash,
            old.verdict,
            new.verdict,
            if changed {
                " (the scenario file changed since the report)"
            } else {
                ""
            }
        );
        Ok(ExitCode::from(1))
    }
}

/// `shrink`'s arguments.
#[derive(clap::Args)]
struct ShrinkArgs {
    /// The scenario file.
    scenario: PathBuf,
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    /// Switch off a safeguard (see `kafkasim bugs`); repeatable.
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// The anomaly kind to keep (default: a panic, else the first violated
    /// invariant, else the first expected anomaly the seed shows).
    #[arg(long)]
    anomaly: Option<String>,
    /// At most this many candidate runs (the deterministic bound).
    #[arg(long, default_value_t = 200)]
    max_attempts: u32,
    /// At most this many wall-clock seconds (a bound that depends on the machine).
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Candidates run at once (the result does not depend on it).
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Where the shrunk scenario goes (default: reports/<scenario>/<seed>/shrunk.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn cmd_shrink(a: &ShrinkArgs) -> anyhow::Result<Result<ExitCode, BadInput>> {
    let scenario = match load(&a.scenario) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let bugs = match parse_bugs(&a.bugs) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(kind) = &a.anomaly {
        if !check::kinds::ANOMALY_KINDS
            .iter()
            .chain(check::kinds::EVENT_KINDS)
            .any(|k| k == kind)
        {
            return Ok(Err(BadInput(format!(
                "--anomaly: unknown anomaly `{kind}`; allowed: {}, {}",
                check::kinds::ANOMALY_KINDS.join(", "),
                check::kinds::EVENT_KINDS.join(", ")
            ))));
        }
    }
    if a.max_attempts == 0 || a.jobs == 0 {
        return Ok(Err(BadInput(
            "--max-attempts and --jobs: allowed: at least 1".into(),
        )));
    }
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports")
            .join(&scenario.name)
            .join(a.seed.to_string())
            .join("shrunk.json")
    });
    let options = shrink::Options {
        anomaly: a.anomaly.clone(),
        max_attempts: a.max_attempts,
        max_wall: std::time::Duration::from_secs(a.max_seconds),
        jobs: a.jobs,
    };
    let started = Instant::now();
    println!(
        "shrinking  {} seed {} (at most {} attempts, {} s)",
        scenario.name, a.seed, a.max_attempts, a.max_seconds
    );
    let mut progress = |line: &str| println!("  {line}");
    let shrunk = match shrink::shrink(&scenario, a.seed, &bugs, &options, &mut progress) {
        Ok(s) => s,
        Err(shrink::NothingToShrink(why)) => {
            println!("{why}");
            return Ok(Ok(ExitCode::from(1)));
        }
    };
    let wall = started.elapsed().as_secs_f64();
    shrink::write_scenario(&out, &shrunk.scenario).context("writing the shrunk scenario")?;
    // The file as written must load and fail the same way: run it once more.
    let written = Scenario::load(&out).context("loading the shrunk scenario back")?;
    let (check, _) = runner::run_seed(&written, a.seed, &bugs);
    let goal = &shrunk.goal;
    println!(
        "target     {} ({}; a candidate must show it and violate no other invariant)",
        goal.target,
        if goal.violation {
            "a violated invariant"
        } else {
            "an anomaly the scenario expects or tolerates"
        }
    );
    println!("explicit   {}", shrunk.explicit);
    println!("{:<18} {:>10} {:>10}", "size", "before", "after");
    for ((label, b), (_, a)) in shrunk.before.rows().iter().zip(shrunk.after.rows()) {
        println!("{label:<18} {b:>10} {a:>10}");
    }
    println!(
        "attempts   {} of {}, {:.1} s wall; ended by {}",
        shrunk.attempts, a.max_attempts, wall, shrunk.stop
    );
    println!("written    {}", out.display());
    let command = kafkasim::report::repro_command(&out, a.seed, &a.bugs);
    if goal.met_by(&check) && check.trace_hash == shrunk.trace_hash {
        println!(
            "verified   the file fails the same way (trace {})",
            check.trace_hash
        );
        println!("run        {command}");
        Ok(Ok(ExitCode::SUCCESS))
    } else {
        println!(
            "NOT verified: the file's run shows {:?} (trace {}, expected {})",
            check.anomalies, check.trace_hash, shrunk.trace_hash
        );
        println!("run        {command}");
        Ok(Ok(ExitCode::from(1)))
    }
}

fn cmd_list(paths: &[PathBuf], refused: Option<&Path>) -> Result<ExitCode, BadInput> {
    let scenarios = load_all(paths)?;
    for sc in &scenarios {
        println!("{}  [{}]", sc.name, sc.claims.join(" "));
        println!("    {}", sc.description);
        let invariants: Vec<&str> = check::kinds::ANOMALY_KINDS
            .iter()
            .copied()
            .filter(|k| sc.is_invariant(k))
            .collect();
        println!(
            "    must appear: {}",
            if sc.expect.anomalies.is_empty() {
                "-".into()
            } else {
                sc.expect.anomalies.join(", ")
            }
        );
        println!(
            "    tolerated: {}",
            if sc.expect.tolerate.is_empty() {
                "-".into()
            } else {
                sc.expect.tolerate.join(", ")
            }
        );
        println!("    must never appear: {}", invariants.join(", "));
    }
    let mut covered: Vec<String> = scenarios.iter().flat_map(|s| s.claims.clone()).collect();
    let default_refused = Path::new("examples/invalid");
    let refused = refused.or_else(|| default_refused.is_dir().then_some(default_refused));
    if let Some(dir) = refused {
        let configs = claims::refused_configurations(dir).map_err(|e| BadInput(e.to_string()))?;
        for (path, cs) in configs {
            println!("refused: {}  [{}]", path.display(), cs.join(" "));
            covered.extend(cs);
        }
    }
    let not_covered = claims::not_covered(&covered);
    println!(
        "claims covered: {}",
        claims::all()
            .into_iter()
            .filter(|c| !not_covered.contains(c))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "claims not covered: {}",
        if not_covered.is_empty() {
            "-".to_string()
        } else {
            not_covered.join(" ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(path: &Path, seeds: u64) -> Result<ExitCode, BadInput> {
    let scenario = load(path)?;
    let started = Instant::now();
    let (mut sim_ms, mut msgs) = (0u64, 0u64);
    for seed in 0..seeds {
        let (r, _) = runner::run_seed(&scenario, seed, &[]);
        sim_ms += r.stats.sim_ms;
        msgs += r.stats.net_messages;
    }
    let wall = started.elapsed().as_secs_f64();
    println!("scenario {} ({} seeds, one thread)", scenario.name, seeds);
    println!("seeds/s                       {:.2}", seeds as f64 / wall);
    println!(
        "simulated s per wall s        {:.0}",
        sim_ms as f64 / 1000.0 / wall
    );
    println!("network messages per wall s   {:.0}", msgs as f64 / wall);
    println!("wall time                     {:.2} s", wall);
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // A panic inside a simulated run is a finding that the sweep reports with its seed;
    // print it as one line instead of a backtrace per seed.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!(
            "panic in {} at {location}: {message}",
            thread.name().unwrap_or("main")
        );
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            bugs,
            reports,
        } => match cmd_run(&scenario, seed, &bugs, &reports) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(1);
            }
        },
        Command::Check {
            paths,
            seeds,
            shard,
            jobs,
            bugs,
            reports,
        } => cmd_check(&paths, &seeds, shard.as_deref(), jobs, &bugs, &reports),
        Command::Merge { inputs, reports } => cmd_merge(&inputs, &reports),
        Command::Shrink(args) => match cmd_shrink(&args) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(1);
            }
        },
        Command::Repro { report } => cmd_repro(&report),
        Command::Analyze {
            history,
            snapshot,
            format,
            partitions_per_topic,
            topic,
            reports,
        } => {
            let keys = match topic {
                Some(t) => KeyMap::OneTopic(t),
                None => KeyMap::PerTopic(partitions_per_topic),
            };
            cmd_analyze(
                &history,
                snapshot.as_deref(),
                format.as_deref(),
                keys,
                &reports,
            )
        }
        Command::SnapshotFromDumpLog {
            describe,
            dumps,
            checkpoints,
            out,
        } => cmd_snapshot_from_dump_log(
            analyze::dump_log::DumpFiles {
                describe,
                dumps,
                checkpoints,
            },
            &out,
        ),
        Command::Schema { name } => {
            let schema = kafkasim::schema::generate(&name).expect("clap checked the name");
            print!("{schema}");
            Ok(ExitCode::SUCCESS)
        }
        Command::List { paths, refused } => cmd_list(&paths, refused.as_deref()),
        Command::Bugs {
            measure,
            jobs,
            scenarios,
        } => cmd_bugs(measure.as_deref(), jobs, &scenarios),
        Command::Explore {
            seeds,
            jobs,
            reports,
            bugs,
            rules,
            write_all,
        } => cmd_explore(seeds.as_deref(), jobs, &reports, &bugs, rules, write_all),
        Command::Bench { scenario, seeds } => cmd_bench(&scenario, seeds),
        Command::Matrix {
            matrix,
            seeds,
            jobs,
            reports,
        } => cmd_matrix(&matrix, seeds.as_deref(), jobs, &reports),
    };
    match result {
        Ok(code) => code,
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
