//! The command line: bad input exits 2 naming file, field and allowed values, before
//! anything runs or is written; a run prints a trace hash and repro confirms it;
//! sharded sweeps merge into the unsharded one; the CI examples run as written.

mod common;

use kafkasim::drive::summary::SummaryFile;
use std::process::Command;

use common::kafkasim;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    common::tmp(&format!("cli-{name}"))
}

fn base_scenario() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks-all-rf3.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bad_input(name: &str, edit: impl Fn(&mut serde_json::Value), expect: &[&str]) {
    let dir = tmp(name);
    let mut v = base_scenario();
    edit(&mut v);
    std::fs::write(
        dir.join("bad.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    let (code, _, err) = kafkasim(&["run", "bad.json", "--seed", "1"], &dir);
    assert_eq!(code, 2, "{name}: {err}");
    assert!(err.contains("bad.json"), "{name}: names the file: {err}");
    for e in expect {
        assert!(err.contains(e), "{name}: `{e}` missing from: {err}");
    }
    assert!(!dir.join("reports").exists(), "{name}: nothing written");
}

#[test]
fn bad_scenarios_exit_2_with_file_field_and_allowed_values() {
    bad_input(
        "acks",
        |v| v["producers"]["config"]["acks"] = "2".into(),
        &["producers.config.acks", "\"all\""],
    );
    bad_input(
        "typo",
        |v| v["producers"]["config"]["linger.mss"] = 5.into(),
        &["linger.mss", "linger.ms"],
    );
    bad_input(
        "rf",
        |v| v["topics"][0]["replication_factor"] = 4.into(),
        &["topics[0].replication_factor", "1 to cluster.brokers (3)"],
    );
    bad_input(
        "claim",
        |v| v["claims"] = serde_json::json!(["C99"]),
        &["claims[0]", "C1 to C31"],
    );
    bad_input(
        "anomaly",
        |v| v["expect"]["anomalies"] = serde_json::json!(["lost"]),
        &["expect.anomalies[0]", "lost-write"],
    );
    bad_input(
        "bug",
        |v| v["bugs"] = serde_json::json!(["nope"]),
        &["bugs[0]", "truncate-to-high-watermark"],
    );
    bad_input(
        "compression",
        |v| v["producers"]["config"]["compression.type"] = "brotli".into(),
        &["compression.type", "gzip", "zstd"],
    );
    bad_input(
        "snappy",
        |v| v["producers"]["config"]["compression.type"] = "snappy".into(),
        &["producers.config.compression.type", "supported: none, gzip"],
    );
    bad_input(
        "twice",
        |v| {
            let t = v["topics"][0].clone();
            v["topics"].as_array_mut().unwrap().push(t);
        },
        &["topics[1].name", "listed twice"],
    );
    bad_input(
        "delivery",
        |v| v["producers"]["config"]["delivery.timeout.ms"] = 1000.into(),
        &[
            "producers.config.delivery.timeout.ms",
            "linger.ms + request.timeout.ms",
        ],
    );
    bad_input(
        "inflight",
        |v| v["producers"]["config"]["max.in.flight.requests.per.connection"] = 0.into(),
        &["max.in.flight.requests.per.connection", "at least 1"],
    );
    bad_input(
        "target",
        |v| v["nemesis"]["schedule"] = serde_json::json!([{"at_ms": 1, "duration_ms": 1, "fault": "crash", "target": "broker-9"}]),
        &["nemesis.schedule[0]", "broker-1 to broker-3"],
    );
}

#[test]
fn bad_flags_exit_2() {
    let dir = tmp("flags");
    let sc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks-all-rf3.json");
    let (code, _, err) = kafkasim(
        &["run", sc.to_str().unwrap(), "--seed", "1", "--bug", "nope"],
        &dir,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--bug") && err.contains("high-watermark-from-leader-only"),
        "{err}"
    );
    let (code, _, err) = kafkasim(&["check", sc.to_str().unwrap(), "--seeds", "5..1"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("--seeds"), "{err}");
    let (code, _, err) = kafkasim(&["check", "no-such-dir"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-dir"), "{err}");
}

/// `bugs` lists every catalogue entry with its reference and the scenario that finds
/// it; a bad `--measure` range exits 2 before anything runs.
#[test]
fn bugs_lists_the_catalogue() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (code, out, _) = kafkasim(&["bugs"], &root);
    assert_eq!(code, 0);
    for entry in kafkasim::bugs::CATALOGUE {
        assert!(out.contains(entry.name), "{} missing:\n{out}", entry.name);
        assert!(out.contains(entry.reference), "{out}");
        assert!(
            out.contains(&format!("scenarios/{} as {}", entry.scenario, entry.finds)),
            "{out}"
        );
        assert!(root.join("scenarios").join(entry.scenario).exists());
    }
    let (code, _, err) = kafkasim(&["bugs", "--measure", "9..3"], &root);
    assert_eq!(code, 2);
    assert!(err.contains("--measure"), "{err}");
}

#[test]
fn run_writes_a_report_that_repro_confirms() {
    let dir = tmp("repro");
    let sc =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/same-key-same-partition.json");
    let (code, out, err) = kafkasim(&["run", sc.to_str().unwrap(), "--seed", "3"], &dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("trace "), "{out}");
    let report = dir.join("reports/same-key-same-partition/3/report.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for field in [
        "scenario",
        "seed",
        "verdict",
        "trace_hash",
        "anomalies",
        "stats",
    ] {
        assert!(json.get(field).is_some(), "report.json has `{field}`");
    }
    assert!(dir
        .join("reports/same-key-same-partition/3/history.jsonl")
        .exists());
    let (code, out, _) = kafkasim(&["repro", report.to_str().unwrap()], &dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reproduced"), "{out}");
}

/// `repro` opens the scenario by the absolute path report.json records, so it works
/// from any folder although the run named the file relatively; when the file changed
/// since, it says so, still runs it, and exits 1.
#[test]
fn repro_works_from_another_folder_and_names_a_changed_scenario() {
    let dir = tmp("repro-elsewhere");
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/same-key-same-partition.json");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::copy(&src, dir.join("a/s.json")).unwrap();
    let (code, out, err) = kafkasim(&["run", "s.json", "--seed", "3"], &dir.join("a"));
    assert_eq!(code, 0, "{out}{err}");
    // Named after the file (the scenario has no `name`).
    let report = dir.join("a/reports/s/3/report.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["scenario_path"], "s.json", "as typed");
    let file = PathBuf::from(json["scenario_file"].as_str().unwrap());
    assert!(file.is_absolute(), "{file:?}");
    assert_eq!(file, dir.join("a/s.json").canonicalize().unwrap());
    let hash = json["scenario_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 16, "{hash}");

    // From another folder, where `s.json` does not exist.
    let (code, out, err) = kafkasim(&["repro", report.to_str().unwrap()], &dir.join("b"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reproduced: same trace hash"), "{out}");
    assert!(!out.contains("changed since"), "{out}");

    // The scenario file changes: said before the run and in the verdict; exit 1.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("a/s.json")).unwrap()).unwrap();
    v["workload"]["keys"] = (v["workload"]["keys"].as_u64().unwrap() + 1).into();
    std::fs::write(dir.join("a/s.json"), v.to_string()).unwrap();
    let (code, out, err) = kafkasim(&["repro", report.to_str().unwrap()], &dir.join("b"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "the scenario file {} changed since the report (scenario hash {hash} then,",
            file.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("NOT reproduced")
            && out.contains("(the scenario file changed since the report)"),
        "{out}"
    );

    // Gone: exit 2 naming the file.
    std::fs::remove_file(dir.join("a/s.json")).unwrap();
    let (code, out, err) = kafkasim(&["repro", report.to_str().unwrap()], &dir.join("b"));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("no longer exists") && err.contains("s.json"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_run_prints_its_repro_command_and_exits_1() {
    let dir = tmp("fail");
    let sc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/acks-all-rf3.json");
    let mut seen_failure = false;
    for seed in 0..10 {
        let (code, out, _) = kafkasim(
            &[
                "run",
                sc.to_str().unwrap(),
                "--seed",
                &seed.to_string(),
                "--bug",
                "high-watermark-from-leader-only",
            ],
            &dir,
        );
        if code == 1 {
            assert!(out.contains(&format!("repro      cargo run --release -- run {} --seed {seed} --bug high-watermark-from-leader-only", sc.display())), "{out}");
            seen_failure = true;
            break;
        }
    }
    assert!(seen_failure, "the bug switch never made a run fail");
}

/// C15: the three shipped invalid configurations are refused with Kafka's own text,
/// naming the properties, exit code 2 and nothing written.
#[test]
fn idempotence_config_rules_exit_2_with_kafkas_messages() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp("c15");
    for (file, expect) in [
        (
            "idempotence-in-flight-6.json",
            "field `producers.config.max.in.flight.requests.per.connection`: To use the idempotent \
             producer, max.in.flight.requests.per.connection must be set to at most 5. \
             Current value is 6.",
        ),
        (
            "idempotence-acks-1.json",
            "field `producers.config.acks`: Must set acks to all in order to use the idempotent \
             producer. Otherwise we cannot guarantee idempotence.",
        ),
        (
            "idempotence-retries-0.json",
            "field `producers.config.retries`: Must set retries to non-zero when using the \
             idempotent producer.",
        ),
    ] {
        let path = root.join("examples/invalid").join(file);
        let (code, out, err) = kafkasim(&["run", path.to_str().unwrap(), "--seed", "1"], &dir);
        assert_eq!(code, 2, "{file}: {out}{err}");
        assert!(err.contains(file), "{file}: names the file: {err}");
        assert!(
            err.contains(expect),
            "{file}: `{expect}` missing from: {err}"
        );
        assert!(!dir.join("reports").exists(), "{file}: nothing written");
    }
    // Without an explicit enable.idempotence, Kafka turns idempotence off quietly
    // for acks=1 (and refuses it only when asked for explicitly).
    let mut v = base_scenario();
    v["producers"]["config"]
        .as_object_mut()
        .unwrap()
        .remove("enable.idempotence");
    v["producers"]["config"]["acks"] = "1".into();
    v["workload"]["duration_ms"] = 2000.into();
    v["workload"]["quiet_ms"] = 2000.into();
    v["nemesis"] = serde_json::json!({ "schedule": [] });
    std::fs::write(dir.join("acks1.json"), v.to_string()).unwrap();
    let (code, out, err) = kafkasim(&["run", "acks1.json", "--seed", "1"], &dir);
    assert_eq!(code, 0, "{out}{err}");
}

fn scenario_file(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .display()
        .to_string()
}

/// The table `check` and `merge` print: from the header to the producer figures.
fn table(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("scenario "))
        .take_while(|l| !l.starts_with("summary "))
        .collect()
}

fn load_summary(path: &std::path::Path) -> SummaryFile {
    SummaryFile::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// N shards merged equal one unsharded sweep, exactly (the deterministic part of
/// summary.json), and `merge` prints the table `check` prints. `lost-write` shows on
/// some seeds of `acks-1-leader-crash` only: a shard without it still passes, the
/// merged sweep judges it.
#[test]
fn shards_merged_equal_one_unsharded_sweep() {
    let dir = tmp("shards");
    let files = [
        scenario_file("clean-election.json"),
        scenario_file("acks-1-leader-crash.json"),
    ];
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check", &files[0], &files[1], "--seeds", "12..18", "--jobs", "2",
        ];
        args.extend_from_slice(extra);
        kafkasim(&args, &dir)
    };
    let (code, whole_out, err) = check(&["--reports", "whole"]);
    assert_eq!(code, 0, "{whole_out}{err}");
    let whole = load_summary(&dir.join("whole"));
    assert!(!whole.summary.scenarios[1].seeds_with["lost-write"].is_empty());
    let mut shard_dirs = Vec::new();
    let mut judged_by_merge = 0;
    for i in 0..3 {
        let (shard, reports) = (format!("{i}/3"), format!("shard-{i}"));
        let (code, out, err) = check(&["--shard", &shard, "--reports", &reports]);
        assert_eq!(code, 0, "shard {i}: {out}{err}");
        let part = load_summary(&dir.join(&reports));
        let seeds: Vec<u64> = part.summary.scenarios[0].seeds.as_slice().to_vec();
        assert_eq!(seeds, [12 + i, 15 + i], "shard {i}");
        if part.summary.scenarios[1].not_demonstrated == ["lost-write"] {
            assert!(out.contains("judged by `merge`"), "{out}");
            judged_by_merge += 1;
        }
        shard_dirs.push(reports);
    }
    assert!(judged_by_merge > 0, "a shard without `lost-write` passes");
    let mut args = vec!["merge", "--reports", "merged"];
    args.extend(shard_dirs.iter().rev().map(String::as_str));
    let (code, merged_out, err) = kafkasim(&args, &dir);
    assert_eq!(code, 0, "{merged_out}{err}");
    let merged = load_summary(&dir.join("merged"));
    assert_eq!(merged.summary, whole.summary);
    assert_eq!(
        serde_json::to_string(&merged.summary).unwrap(),
        serde_json::to_string(&whole.summary).unwrap()
    );
    assert_eq!(merged.wall.len(), 3);
    assert_eq!(table(&merged_out), table(&whole_out));
    assert!(table(&whole_out).len() > 4, "{whole_out}");
}

#[test]
fn merge_refuses_overlapping_shards_and_judges_a_missing_one() {
    let dir = tmp("merge-refuses");
    let sc = scenario_file("clean-election.json");
    for (shard, reports) in [("0/2", "a"), ("1/2", "b")] {
        let (code, out, err) = kafkasim(
            &[
                "check",
                &sc,
                "--seeds",
                "0..2",
                "--shard",
                shard,
                "--reports",
                reports,
            ],
            &dir,
        );
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, _, err) = kafkasim(&["merge", "a", "a/summary.json"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard 0/2 is in both"), "{err}");
    let (code, out, _) = kafkasim(&["merge", "a", "--reports", "m"], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INCOMPLETE: shard(s) 1/2 missing"), "{out}");
    let (code, _, err) = kafkasim(&["merge", "a", "b", "--reports", "a"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("overwrite one of its inputs"), "{err}");
    // A shard of a sweep with a different scenario file under the same name.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sc).unwrap()).unwrap();
    v["workload"]["rate_per_sec"] = 7.into();
    std::fs::write(dir.join("clean-election.json"), v.to_string()).unwrap();
    let (code, out, err) = kafkasim(
        &[
            "check",
            "clean-election.json",
            "--seeds",
            "0..2",
            "--shard",
            "1/2",
            "--reports",
            "c",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = kafkasim(&["merge", "a", "c"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not shards of one sweep: scenarios") && err.contains("c/summary.json"),
        "{err}"
    );
    let (code, _, err) = kafkasim(&["merge", "no-such-dir"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-dir"), "{err}");
}

#[test]
fn bad_shards_exit_2_with_the_allowed_form() {
    let dir = tmp("bad-shard");
    let sc = scenario_file("clean-election.json");
    for bad in ["4/4", "1", "x/2", "0/0"] {
        let (code, _, err) = kafkasim(&["check", &sc, "--shard", bad], &dir);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains(&format!("--shard `{bad}`")) && err.contains("0 <= I < N"),
            "{bad}: {err}"
        );
    }
    assert!(!dir.join("reports").exists(), "nothing written");
}

/// Runs a shell command line as a CI runner would, in `cwd`, with `env`.
fn sh(cmd: &str, cwd: &std::path::Path, env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{cmd}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Replaces `from` by `to` in `s`, which must contain it (so a test notices when the
/// examples change).
fn swap(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "`{from}` not in `{s}`");
    s.replace(from, to)
}

/// A sweep command of an example, made small: one quick scenario, 8 seeds.
fn small(cmd: &str, kafkasim: &str) -> String {
    let cmd = swap(cmd, kafkasim, env!("CARGO_BIN_EXE_kafkasim"));
    let cmd = swap(
        &cmd,
        " check scenarios ",
        &format!(" check {} ", scenario_file("clean-election.json")),
    );
    swap(&cmd, "--seeds 0..1000", "--seeds 0..8")
}

fn yaml(file: &str) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn text(v: &serde_yaml_ng::Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("a string expected: {v:?}"))
}

/// examples/ci/github-actions-matrix.yml parses, and its steps run as written (with a
/// small sweep): each matrix shard's command, its reports moved as the artifact
/// actions move them, then the merge step.
#[test]
fn the_github_actions_matrix_example_runs() {
    let docs = yaml("github-actions-matrix.yml");
    let jobs = &docs[0]["jobs"];
    let matrix: Vec<u64> = jobs["shard"]["strategy"]["matrix"]["shard"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = matrix.len() as u64;
    assert_eq!(matrix, (0..n).collect::<Vec<_>>(), "0-based shards");
    let steps = |job: &str| jobs[job]["steps"].as_sequence().unwrap().clone();
    let step = |job: &str, pred: &dyn Fn(&serde_yaml_ng::Value) -> bool| {
        steps(job)
            .into_iter()
            .find(|s| pred(s))
            .unwrap_or_else(|| panic!("no such step in job {job}"))
    };
    let uses = |action: &'static str| {
        move |s: &serde_yaml_ng::Value| s["uses"].as_str().is_some_and(|u| u.starts_with(action))
    };
    let runs = |what: &'static str| {
        move |s: &serde_yaml_ng::Value| s["run"].as_str().is_some_and(|r| r.contains(what))
    };
    let check = text(&step("shard", &runs("-- check"))["run"]).to_string();
    let upload = step("shard", &uses("actions/upload-artifact"));
    let download = step("merge", &uses("actions/download-artifact"));
    let merge = text(&step("merge", &runs("-- merge"))["run"]).to_string();
    let reports = text(&upload["with"]["path"])
        .trim_end_matches('/')
        .to_string();
    assert!(check.contains(&format!("--reports {reports}")), "{check}");
    let pattern = text(&download["with"]["pattern"])
        .trim_end_matches('*')
        .to_string();
    let downloaded = text(&download["with"]["path"]).to_string();

    let root = tmp("gha");
    let merge_runner = root.join("merge");
    for i in &matrix {
        let cmd = small(&check, "cargo run --release --");
        let cmd = swap(&cmd, "${{ matrix.shard }}", &i.to_string());
        let cmd = swap(&cmd, "${{ strategy.job-total }}", &n.to_string());
        let runner = root.join(format!("runner-{i}"));
        std::fs::create_dir_all(&runner).unwrap();
        let (code, out) = sh(&cmd, &runner, &[]);
        assert_eq!(code, 0, "{out}");
        let artifact = swap(
            text(&upload["with"]["name"]),
            "${{ matrix.shard }}",
            &i.to_string(),
        );
        assert!(artifact.starts_with(&pattern), "{artifact} vs {pattern}");
        let into = merge_runner.join(&downloaded).join(&artifact);
        std::fs::create_dir_all(into.parent().unwrap()).unwrap();
        std::fs::rename(runner.join(&reports), &into).unwrap();
    }
    let (code, out) = sh(
        &with_binary(&merge, "cargo run --release --"),
        &merge_runner,
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let merged =
        load_summary(&merge_runner.join(text(&steps("merge").last().unwrap()["with"]["path"])));
    assert_eq!(merged.summary.shards, None);
    assert_eq!(merged.summary.scenarios[0].seeds.len(), 8);
}

fn with_binary(cmd: &str, kafkasim: &str) -> String {
    swap(cmd, kafkasim, env!("CARGO_BIN_EXE_kafkasim"))
}

/// examples/ci/k8s-indexed-job.yaml parses, and its containers' commands run as
/// written (with a small sweep and the shared volume in a temporary folder): each
/// index of the Indexed Job, the merge Job's wait for the summaries, then the merge.
#[test]
fn the_kubernetes_indexed_job_example_runs() {
    let docs = yaml("k8s-indexed-job.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| text(&d["kind"])).collect();
    assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Job"]);
    let (sweep, merge) = (&docs[1]["spec"], &docs[2]["spec"]);
    assert_eq!(text(&sweep["completionMode"]), "Indexed");
    let n = sweep["completions"].as_u64().unwrap();
    assert_eq!(sweep["parallelism"].as_u64(), Some(n));
    let script = |pod: &serde_yaml_ng::Value, list: &str| {
        let c = &pod["template"]["spec"][list][0];
        let command: Vec<&str> = c["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        assert_eq!(command, ["sh", "-c"]);
        assert_eq!(text(&c["volumeMounts"][0]["mountPath"]), "/sweep");
        text(&c["args"][0]).to_string()
    };
    let volume = tmp("k8s");
    let on_volume = |cmd: &str| swap(cmd, "/sweep", &volume.display().to_string());
    let check = on_volume(&small(&script(sweep, "containers"), "kafkasim"));
    for i in 0..n {
        let (code, out) = sh(&check, &volume, &[("JOB_COMPLETION_INDEX", i.to_string())]);
        assert_eq!(code, 0, "{out}");
        let part = load_summary(&volume.join(format!("shard-{i}")));
        let shards = part.summary.shards.unwrap();
        assert_eq!((shards.count as u64, shards.indices), (n, vec![i as u32]));
    }
    let wait = on_volume(&script(merge, "initContainers"));
    assert!(wait.contains(&format!("-ge {n} ]")), "{wait}");
    let (code, out) = sh(&wait, &volume, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = sh(
        &on_volume(&with_binary(&script(merge, "containers"), "kafkasim")),
        &volume,
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let merged = load_summary(&volume.join("merged"));
    assert_eq!(merged.summary.shards, None);
    assert_eq!(merged.summary.scenarios[0].seeds.len(), 8);
}

/// A topic-level config with a name Kafka does not know is refused: exit 2, naming
/// the file, the field and the allowed names, nothing written.
#[test]
fn unknown_topic_config_exits_2_naming_the_allowed_names() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tmp("topic-config");
    let path = root.join("examples/invalid/topic-config-unknown.json");
    let (code, out, err) = kafkasim(&["run", path.to_str().unwrap(), "--seed", "1"], &dir);
    assert_eq!(code, 2, "{out}{err}");
    for expected in [
        "topic-config-unknown.json",
        "field `topics[0].config",
        "unknown field `min.isr`",
        "`min.insync.replicas`",
        "`unclean.leader.election.enable`",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from: {err}");
    }
    assert!(!dir.join("reports").exists(), "nothing written");
}
