//! The command line: bad input exits 2 naming file, field and allowed values, before
//! anything runs or is written; a run prints a trace hash and repro confirms it.

mod common;

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
