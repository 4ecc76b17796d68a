//! `kafkasim analyze`: the round trip over a small sweep (a run's history and snapshot
//! give the run's anomalies again), bad input, and Jepsen's own checker tests
//! (`jepsen/test/jepsen/tests/kafka_test.clj`), each replayed as a test named after
//! the case it mirrors. Jepsen's keywords are numbers here: key `:x` is 0, `:y` 1;
//! values `:a` .. `:g` are 1 .. 7. The README's table says, case by case, where
//! kafkasim's answer differs and why.

use kafkasim::drive::analyze::{self, jepsen, KeyMap};
use kafkasim::drive::runner;
use kafkasim::report::Analyzed;
use kafkasim::scenario::Scenario;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kafkasim-analyze-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kafkasim(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kafkasim"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("kafkasim runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every `history.jsonl` a run writes, analyzed with its `snapshot.json`, gives the
/// run's anomalies, examples and lines again.
#[test]
fn analyze_gives_the_runs_anomalies_over_a_sweep() {
    let dir = tmp("sweep");
    let mut kinds = std::collections::BTreeSet::new();
    for name in [
        "acks-1-leader-crash",
        "retries-in-flight-5",
        "hanging-transaction",
        "at-least-once-crash",
    ] {
        let sc = Scenario::load(&root().join(format!("scenarios/{name}.json"))).unwrap();
        for seed in 0..2 {
            let (report, out) = runner::run_seed(&sc, seed, &[]);
            let (out, _) = out.expect("no panic");
            let json =
                runner::write_report(&dir, &report, Some((&out.history, &out.snapshot))).unwrap();
            let history = json.with_file_name("history.jsonl");
            let snapshot = json.with_file_name(runner::SNAPSHOT_FILE);
            let h = analyze::read_history(&history, analyze::Format::Jsonl, &KeyMap::PerTopic(2))
                .unwrap();
            let s = analyze::read_snapshot(&snapshot).unwrap();
            let analyzed = Analyzed {
                history,
                format: "jsonl".into(),
                snapshot: Some(snapshot),
            };
            let again = analyze::judge(&h, Some(&s), analyzed).unwrap();
            assert_eq!(again.anomalies, report.anomalies, "{name} seed {seed}");
            assert_eq!(again.examples, report.examples, "{name} seed {seed}");
            assert_eq!(
                again.example_lines, report.example_lines,
                "{name} seed {seed}"
            );
            assert_eq!(again.stats.check, report.stats.check, "{name} seed {seed}");
            kinds.extend(report.anomalies.keys().cloned());
        }
    }
    assert!(kinds.len() >= 3, "the sweep shows few kinds: {kinds:?}");
}

#[test]
fn analyze_cli_writes_the_reports_and_exits_by_the_verdict() {
    let dir = tmp("cli");
    let sc = root().join("scenarios/acks-1-leader-crash.json");
    let (code, out, err) = kafkasim(&["run", sc.to_str().unwrap(), "--seed", "0"], &dir);
    assert!(code <= 1, "{out}{err}");
    let run_dir = dir.join("reports/acks-1-leader-crash/0");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    let (code, out, err) = kafkasim(
        &[
            "analyze",
            "reports/acks-1-leader-crash/0/history.jsonl",
            "--snapshot",
            "reports/acks-1-leader-crash/0/snapshot.json",
            "--reports",
            "judged",
        ],
        &dir,
    );
    let judged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("judged/report.json")).unwrap())
            .unwrap();
    assert_eq!(judged["anomalies"], run["anomalies"], "{out}{err}");
    let any = judged["anomalies"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| kafkasim::check::kinds::ANOMALY_KINDS.contains(&k.as_str()));
    assert_eq!(code, if any { 1 } else { 0 }, "{out}{err}");
    assert!(dir.join("judged/index.html").exists());
    assert!(
        out.contains("history    reports/acks-1-leader-crash/0/history.jsonl"),
        "{out}"
    );
}

#[test]
fn bad_histories_exit_2_naming_the_file_line_and_field() {
    let dir = tmp("bad");
    let invoke = "{:type :invoke, :f :send, :process 0, :value [[:send 0 1]]}";
    let cases: &[(&str, String, &[&str])] = &[
        (
            "truncated",
            format!("{invoke}\n{{:type :ok, :f :send, :process 0, :value [[:send 0 [0 1]]"),
            &["line 2", "truncated"],
        ),
        (
            "unknown-f",
            "{:type :invoke, :f :frob, :process 0, :value nil}\n".into(),
            &["line 1", "field :f", ":send", ":frob"],
        ),
        (
            "ok-without-invoke",
            "{:type :ok, :f :send, :process 3, :value [[:send 0 [0 1]]]}\n".into(),
            &["line 1", "field :type", "an :invoke of process 3"],
        ),
        (
            "bad-value",
            format!("{invoke}\n{{:type :ok, :f :send, :process 0, :value [[:send 0 [0 :a]]]}}\n"),
            &["line 2", ":value[0] value", "integer value"],
        ),
    ];
    for (name, text, expect) in cases {
        let file = format!("{name}.edn");
        std::fs::write(dir.join(&file), text).unwrap();
        let (code, out, err) = kafkasim(&["analyze", &file, "--reports", name], &dir);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains(&file), "{name}: {err}");
        for e in *expect {
            assert!(err.contains(e), "{name}: `{e}` not in {err}");
        }
        assert!(!dir.join(name).exists(), "{name}: nothing written");
    }
    std::fs::write(dir.join("h.jsonl"), "{\"index\": 0}\n").unwrap();
    let (code, _, err) = kafkasim(&["analyze", "h.jsonl"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("h.jsonl, line 1"), "{err}");
}

/// Jepsen's nemesis operations (`:process :nemesis`, each recorded twice as `:info`)
/// are accepted, checked as nothing and shown as faults: a start (`:start-partition`,
/// `:kill`) pairs with its end (`:stop-partition`, `:start`).
#[test]
fn nemesis_operations_are_faults_not_checked() {
    let nemesis = |f: &str, value: &str| {
        let op = format!("{{:type :info, :f :{f}, :value {value}, :process :nemesis, :time 5}}");
        [op.replace(value, "nil"), op]
    };
    let clients = [
        o(0, "invoke", "send", "[[:send 0 1] [:send 0 2]]"),
        o(0, "ok", "send", "[[:send 0 [0 1]] [:send 0 [1 2]]]"),
        o(1, "invoke", "poll", "[[:poll]]"),
        o(1, "ok", "poll", "[[:poll {0 [[1 2]]}]]"),
    ];
    let mut h: Vec<String> = Vec::new();
    h.extend(nemesis(
        "start-partition",
        "[:isolated {\"n1\" #{\"n2\" \"n3\"}}]",
    ));
    h.extend(clients[..2].iter().cloned());
    h.extend(nemesis("kill", "{\"n2\" :killed}"));
    h.extend(nemesis("stop-partition", ":network-healed"));
    h.extend(clients[2..].iter().cloned());
    h.extend(nemesis("start", ":all"));
    let text = h.join("\n");
    let history = jepsen::read(Path::new("n.edn"), text.as_bytes(), &KeyMap::PerTopic(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let faults: Vec<String> = history
        .entries
        .iter()
        .filter_map(|e| match &e.op {
            kafkasim::history::Op::FaultStart { fault } => Some(format!("start {fault}")),
            kafkasim::history::Op::FaultEnd { fault } => Some(format!("end {fault}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        faults,
        [
            "start partition [:isolated {\"n1\" #{\"n2\" \"n3\"}}]",
            "start kill {\"n2\" :killed}",
            "end partition",
            "end kill"
        ]
    );
    assert_eq!(judge(&h), judge(&clients));
    let analyzed = Analyzed {
        history: "n.edn".into(),
        format: "jepsen-edn".into(),
        snapshot: None,
    };
    let report = analyze::judge(&history, None, analyzed).unwrap();
    assert_eq!(report.stats.faults, 2);
}

// ---------------------------------------------------------------- Jepsen's cases

/// One Jepsen op line: `o(process, type, f, value)`.
fn o(process: u32, type_: &str, f: &str, value: &str) -> String {
    format!("{{:process {process}, :type :{type_}, :f :{f}, :value {value}}}")
}

/// The anomalies (and client events) kafkasim finds in a Jepsen history, black-box.
fn judge(ops: &[String]) -> BTreeMap<String, u64> {
    let text = ops.join("\n");
    let h = jepsen::read(Path::new("case.edn"), text.as_bytes(), &KeyMap::PerTopic(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let analyzed = Analyzed {
        history: "case.edn".into(),
        format: "jepsen-edn".into(),
        snapshot: None,
    };
    let report = analyze::judge(&h, None, analyzed).unwrap();
    report.anomalies
}

/// Asserts `kind`'s count (0: absent) and returns the whole result for the message.
#[track_caller]
fn expect(found: &BTreeMap<String, u64>, kind: &str, count: u64) {
    assert_eq!(
        found.get(kind).copied().unwrap_or(0),
        count,
        "{kind}: kafkasim found {found:?}"
    );
}

#[test]
fn inconsistent_offsets_test_info_conflicts() {
    let h = vec![
        o(0, "invoke", "send", "[[:send 0 1] [:send 1 1]]"),
        o(0, "info", "send", "[[:send 0 [0 1]] [:send 1 1]]"),
        o(1, "invoke", "send", "[[:send 0 2]]"),
        o(1, "ok", "send", "[[:send 0 [0 2]]]"),
    ];
    // An :info send conflicting with an :ok one is no conflict: it may not have
    // committed.
    expect(&judge(&h), "inconsistent-offsets", 0);
    // A read of its other record proves it committed: now it is one.
    let mut h = h;
    h.push(o(2, "invoke", "poll", "[[:poll]]"));
    h.push(o(2, "ok", "poll", "[[:poll {1 [[5 1]]}]]"));
    expect(&judge(&h), "inconsistent-offsets", 1);
}

#[test]
fn g1a_test() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 2] [:send 1 3]]"),
        o(0, "fail", "send", "[[:send 0 2] [:send 1 3]]"),
        o(1, "invoke", "poll", "[[:poll]]"),
        o(1, "ok", "poll", "[[:poll {0 [[0 2]]}]]"),
    ];
    let found = judge(&h);
    expect(&found, "aborted-read", 1);
    expect(&found, "phantom-read", 0);
}

#[test]
fn lost_write_test_consistent() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1]]"),
        o(0, "ok", "send", "[[:send 0 [0 1]]]"),
        o(0, "invoke", "send", "[[:send 0 2] [:send 0 4]]"),
        o(0, "ok", "send", "[[:send 0 [1 2]] [:send 0 [3 4]]]"),
        o(1, "invoke", "send", "[[:send 0 3]]"),
        o(1, "info", "send", "[[:send 0 3]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[2 3]]}]]"),
    ];
    let found = judge(&h);
    expect(&found, "lost-write", 2);
    // d, at offset 3, past every read: kafkasim says unseen, Jepsen's `unseen` too.
    expect(&found, "unseen", 1);
}

#[test]
fn lost_write_test_inconsistent() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1]]"),
        o(0, "ok", "send", "[[:send 0 [0 1]]]"),
        o(0, "invoke", "send", "[[:send 0 2] [:send 0 3]]"),
        o(0, "ok", "send", "[[:send 0 [0 2]] [:send 0 [2 3]]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[0 2] [2 3]]}]]"),
    ];
    let found = judge(&h);
    expect(&found, "lost-write", 1);
    expect(&found, "inconsistent-offsets", 1);
}

#[test]
fn lost_write_test_atomic() {
    let send_ab = [
        o(0, "invoke", "send", "[[:send 0 1] [:send 1 2]]"),
        o(0, "info", "send", "[[:send 0 1] [:send 1 [0 2]]]"),
        o(1, "invoke", "send", "[[:send 1 3]]"),
        o(1, "info", "send", "[[:send 1 3]]"),
    ];
    let poll_a = [
        o(2, "invoke", "poll", "[[:poll]]"),
        o(2, "ok", "poll", "[[:poll {0 [[0 1]]}]]"),
    ];
    let poll_c = [
        o(3, "invoke", "poll", "[[:poll]]"),
        o(3, "ok", "poll", "[[:poll {1 [[1 3]]}]]"),
    ];
    // Without the poll of a, nothing proves the crashed send committed.
    let without: Vec<String> = send_ab.iter().chain(&poll_c).cloned().collect();
    expect(&judge(&without), "lost-write", 0);
    let with: Vec<String> = send_ab
        .iter()
        .chain(&poll_a)
        .chain(&poll_c)
        .cloned()
        .collect();
    expect(&judge(&with), "lost-write", 1);
}

fn poll_skip_history(between_4: &[String], between_7: &[String]) -> Vec<String> {
    let mut h = vec![
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[1 1] [2 2]]}]]"),
        o(1, "invoke", "poll", "[[:poll]]"),
        o(1, "ok", "poll", "[[:poll {0 [[3 3]]}]]"),
    ];
    h.extend_from_slice(between_4);
    h.push(o(0, "invoke", "poll", "[[:poll]]"));
    h.push(o(0, "ok", "poll", "[[:poll {0 [[4 4]]}]]"));
    h.extend_from_slice(between_7);
    h.extend([
        o(2, "invoke", "send", "[[:send 0 6]]"),
        o(2, "ok", "send", "[[:send 0 [6 6]]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[7 7]]}]]"),
        o(
            3,
            "invoke",
            "send",
            "[[:send 0 1] [:send 0 2] [:send 0 3] [:send 0 4] [:send 0 7]]",
        ),
        o(
            3,
            "info",
            "send",
            "[[:send 0 1] [:send 0 2] [:send 0 3] [:send 0 4] [:send 0 7]]",
        ),
    ]);
    h
}

#[test]
fn poll_skip_test() {
    expect(&judge(&poll_skip_history(&[], &[])), "poll-skip", 2);
}

#[test]
fn poll_skip_test_with_intermediate_subscribe() {
    let sub = |keys: &str, t: &str| {
        [
            o(0, "invoke", "subscribe", keys),
            o(0, t, "subscribe", keys),
        ]
    };
    let assign = |keys: &str, t: &str| [o(0, "invoke", "assign", keys), o(0, t, "assign", keys)];
    // Subscribing or assigning away from x lets the next read of x start anywhere.
    let h = poll_skip_history(&sub("[1]", "ok"), &assign("[1]", "info"));
    expect(&judge(&h), "poll-skip", 0);
    // Still covering x: positions stand.
    let h = poll_skip_history(&sub("[0 1]", "ok"), &assign("[0 1]", "ok"));
    expect(&judge(&h), "poll-skip", 2);
}

fn sends_0_to(n: u64) -> Vec<String> {
    let inv: Vec<String> = (0..=n).map(|i| format!("[:send 0 {i}]")).collect();
    let ok: Vec<String> = (0..=n).map(|i| format!("[:send 0 [{i} {i}]]")).collect();
    vec![
        o(0, "invoke", "send", &format!("[{}]", inv.join(" "))),
        o(0, "ok", "send", &format!("[{}]", ok.join(" "))),
    ]
}

#[test]
fn poll_skip_test_txn_abort_good() {
    let mut h = sends_0_to(2);
    for (t, read) in [
        ("ok", "[[0 0]]"),
        ("fail", "[[1 1] [2 2]]"),
        ("info", "[[1 1] [2 2]]"),
        ("ok", "[[1 1] [2 2]]"),
    ] {
        h.push(o(1, "invoke", "txn", "[[:poll]]"));
        h.push(o(1, t, "txn", &format!("[[:poll {{0 {read}}}]]")));
    }
    let found = judge(&h);
    let anomalies: Vec<&String> = found
        .keys()
        .filter(|k| kafkasim::check::kinds::ANOMALY_KINDS.contains(&k.as_str()))
        .collect();
    assert!(anomalies.is_empty(), "{found:?}");
}

#[test]
fn poll_skip_test_txn_abort_doesnt_roll_back() {
    let mut h = sends_0_to(5);
    for (t, read) in [
        ("ok", "[[0 0]]"),
        ("fail", "[[1 1] [2 2]]"),
        ("fail", "[[3 3] [4 4]]"),
        ("ok", "[[5 5]]"),
    ] {
        h.push(o(1, "invoke", "txn", "[[:poll]]"));
        h.push(o(1, t, "txn", &format!("[[:poll {{0 {read}}}]]")));
    }
    expect(&judge(&h), "poll-skip", 2);
}

#[test]
fn poll_skip_test_info_can_be_a_poll_skip() {
    let mut h = sends_0_to(5);
    for (t, read) in [
        ("ok", "[[0 0]]"),
        ("fail", "[[1 1] [2 2]]"),
        ("info", "[[3 3] [4 4]]"),
    ] {
        h.push(o(1, "invoke", "txn", "[[:poll]]"));
        h.push(o(1, t, "txn", &format!("[[:poll {{0 {read}}}]]")));
    }
}

fn nonmonotonic_poll_history(between: &[String]) -> Vec<String> {
    let mut h = vec![
        o(
            0,
            "invoke",
            "send",
            "[[:send 0 1] [:send 0 2] [:send 0 3] [:send 0 4]]",
        ),
        o(
            0,
            "ok",
            "send",
            "[[:send 0 1] [:send 0 2] [:send 0 3] [:send 0 4]]",
        ),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[1 1] [2 2] [3 3]]}]]"),
    ];
    h.extend_from_slice(between);
    h.push(o(0, "invoke", "poll", "[[:poll]]"));
    h.push(o(0, "ok", "poll", "[[:poll {0 [[2 2] [3 3] [4 4]]}]]"));
    h
}

#[test]
fn nonmonotonic_poll_test() {
    expect(
        &judge(&nonmonotonic_poll_history(&[])),
        "nonmonotonic-poll",
        1,
    );
    for f in ["subscribe", "assign"] {
        let away = [o(0, "invoke", f, "[1]"), o(0, "ok", f, "[1]")];
        expect(
            &judge(&nonmonotonic_poll_history(&away)),
            "nonmonotonic-poll",
            0,
        );
        let still = [o(0, "invoke", f, "[0 1]"), o(0, "ok", f, "[0 1]")];
        expect(
            &judge(&nonmonotonic_poll_history(&still)),
            "nonmonotonic-poll",
            1,
        );
    }
}

fn nonmonotonic_send_history(between: &[String]) -> Vec<String> {
    let mut h = vec![
        o(0, "invoke", "send", "[[:send 0 3] [:send 0 4]]"),
        o(0, "ok", "send", "[[:send 0 [3 3]] [:send 0 [4 4]]]"),
    ];
    h.extend_from_slice(between);
    h.push(o(0, "invoke", "send", "[[:send 0 1] [:send 0 2]]"));
    h.push(o(0, "ok", "send", "[[:send 0 [1 1]] [:send 0 [2 2]]]"));
    h
}

/// Jepsen's nonmonotonic-send is kafkasim's `reorder`, counted per value that landed
/// before an earlier-sent one (here a and b), not per pair of operations.
#[test]
fn nonmonotonic_send_test() {
    expect(&judge(&nonmonotonic_send_history(&[])), "reorder", 2);
    // Differs: a consumer's subscription does not move where its producer's sends
    // land, so kafkasim still finds the reorder (Jepsen forgets it).
    let away = [
        o(0, "invoke", "subscribe", "[1]"),
        o(0, "ok", "subscribe", "[1]"),
    ];
    expect(&judge(&nonmonotonic_send_history(&away)), "reorder", 2);
}

#[test]
fn int_poll_skip_test() {
    let h = [
        o(1, "invoke", "send", "[[:send 0 1] [:send 0 2] [:send 0 4]]"),
        o(1, "info", "send", "[[:send 0 1] [:send 0 2] [:send 0 4]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[1 1] [4 4]]}]]"),
        o(0, "invoke", "poll", "[[:poll] [:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[1 1]]}] [:poll {0 [[4 4]]}]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[2 2]]}]]"),
    ];
    expect(&judge(&h), "int-poll-skip", 2);
}

#[test]
fn int_send_skip_test() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1] [:send 0 3]]"),
        o(0, "ok", "send", "[[:send 0 [1 1]] [:send 0 3]]"),
        o(1, "invoke", "send", "[[:send 0 2]]"),
        o(1, "info", "send", "[[:send 0 2]]"),
        o(2, "invoke", "poll", "[[:poll]]"),
        o(2, "ok", "poll", "[[:poll {0 [[2 2] [3 3]]}]]"),
    ];
    expect(&judge(&h), "int-send-skip", 1);
}

#[test]
fn int_nonmonotonic_poll_test() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1] [:send 0 2] [:send 0 3]]"),
        o(0, "info", "send", "[[:send 0 1] [:send 0 2] [:send 0 3]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {0 [[3 3] [1 1]]}]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(
            0,
            "ok",
            "poll",
            "[[:poll {0 [[2 2] [3 3]]}] [:poll {0 [[3 3]]}]]",
        ),
    ];
    expect(&judge(&h), "int-nonmonotonic-poll", 2);
}

#[test]
fn int_nonmonotonic_send_test() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 3] [:send 0 1]]"),
        o(0, "ok", "send", "[[:send 0 [3 3]] [:send 0 [1 1]]]"),
        o(0, "invoke", "send", "[[:send 1 4] [:send 1 2]]"),
        o(0, "info", "send", "[[:send 1 4] [:send 1 2]]"),
        o(1, "invoke", "send", "[[:send 1 3]]"),
        o(1, "info", "send", "[[:send 1 3]]"),
        o(0, "invoke", "poll", "[[:poll]]"),
        o(0, "ok", "poll", "[[:poll {1 [[2 2] [3 3] [4 4]]}]]"),
    ];
    expect(&judge(&h), "int-nonmonotonic-send", 2);
}

#[test]
fn duplicate_test_basic() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1]]"),
        o(0, "ok", "send", "[[:send 0 [1 1]]]"),
        o(1, "invoke", "send", "[[:send 0 2]]"),
        o(1, "info", "send", "[[:send 0 2]]"),
        o(2, "invoke", "poll", "[[:poll]]"),
        o(2, "ok", "poll", "[[:poll {0 [[2 2] [3 1]]}]]"),
    ];
    expect(&judge(&h), "duplicate", 1);
}

#[test]
fn duplicate_test_aborted_txns() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 0]]"),
        o(0, "ok", "send", "[[:send 0 [1 0]]]"),
        o(0, "invoke", "send", "[[:send 0 1]]"),
        o(0, "fail", "send", "[[:send 0 [2 1]]]"),
        o(1, "invoke", "poll", "[[:poll]]"),
        o(1, "fail", "poll", "[[:poll {0 [[11 0] [12 1]]}]]"),
    ];
    expect(&judge(&h), "duplicate", 1);
}

/// Jepsen calls a history with nothing but an assignment invalid; kafkasim says it
/// had nothing to check (exit 1), not that it passed.
#[test]
fn empty_history_test() {
    let h = [o(0, "invoke", "assign", "[0]"), o(0, "ok", "assign", "[0]")];
    let text = h.join("\n");
    let hist = jepsen::read(Path::new("e.edn"), text.as_bytes(), &KeyMap::PerTopic(2)).unwrap();
    let analyzed = Analyzed {
        history: "e.edn".into(),
        format: "jepsen-edn".into(),
        snapshot: None,
    };
    let report = analyze::judge(&hist, None, analyzed).unwrap();
    assert_eq!(report.verdict, analyze::NOTHING_TO_CHECK);
}

#[test]
fn g0_test() {
    let h = [
        o(0, "invoke", "send", "[[:send 0 1] [:send 1 1]]"),
        o(1, "invoke", "send", "[[:send 0 2] [:send 1 2]]"),
        o(0, "ok", "send", "[[:send 0 [0 1]] [:send 1 [1 1]]]"),
        o(1, "ok", "send", "[[:send 0 [1 2]] [:send 1 [0 2]]]"),
    ];
    expect(&judge(&h), "g0", 1);
}

#[test]
fn g1c_pure_wr_test() {
    let h = [
        o(0, "invoke", "txn", "[[:send 0 1] [:poll]]"),
        o(1, "invoke", "txn", "[[:send 1 2] [:poll]]"),
        o(0, "ok", "txn", "[[:send 0 [0 1]] [:poll {1 [[0 2]]}]]"),
        o(1, "ok", "txn", "[[:send 1 [0 2]] [:poll {0 [[0 1]]}]]"),
    ];
    expect(&judge(&h), "g1c", 1);
}

#[test]
fn g1c_ww_wr_test() {
    let h = [
        o(0, "invoke", "txn", "[[:send 0 1] [:send 1 3]]"),
        o(1, "invoke", "txn", "[[:poll] [:send 1 2]]"),
        o(0, "ok", "txn", "[[:send 0 [0 1]] [:send 1 [2 3]]]"),
        o(1, "ok", "txn", "[[:poll {0 [[0 1]]}] [:send 1 [1 2]]]"),
    ];
    expect(&judge(&h), "g1c", 1);
}

#[test]
fn precommitted_read_test() {
    let h = [
        o(0, "invoke", "txn", "[[:send 0 1] [:poll]]"),
        o(0, "ok", "txn", "[[:send 0 [0 1]] [:poll {0 [[0 1]]}]]"),
    ];
    expect(&judge(&h), "precommitted-read", 1);
}

/// `kafka-dump-log.sh --deep-iteration --print-data-log` output for one replica's log,
/// as Kafka's `DumpLogSegments` prints it: one segment; transactional batches and
/// markers as they are, every other record as its own batch (the snapshot does not
/// keep their batches), corrupt batches invalid and without records.
fn dump_log(tp: &str, r: &kafkasim::history::ReplicaSnapshot) -> String {
    use std::fmt::Write;
    let mut items: Vec<(i64, String)> = Vec::new();
    let batch = |base: i64,
                 last: i64,
                 pid: i64,
                 epoch: i16,
                 txn: bool,
                 control: bool,
                 valid: bool,
                 ts: i64| {
        format!(
            "baseOffset: {base} lastOffset: {last} count: {} baseSequence: -1 lastSequence: -1 \
             producerId: {pid} producerEpoch: {epoch} partitionLeaderEpoch: 0 isTransactional: {txn} \
             isControl: {control} deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: {ts} \
             size: 80 magic: 2 compresscodec: none crc: 1 isvalid: {valid}\n",
            last - base + 1
        )
    };
    let record = |offset: i64, value: u64| {
        format!(
            "| offset: {offset} CreateTime: 0 keySize: 2 valueSize: {} sequence: -1 headerKeys: [] key: k0 payload: {value}\n",
            value.to_string().len()
        )
    };
    for b in &r.txn_batches {
        let mut text = batch(
            b.base_offset,
            b.last_offset,
            b.producer_id,
            b.producer_epoch,
            true,
            false,
            true,
            0,
        );
        for (o, v) in r
            .records
            .iter()
            .filter(|(o, _)| (b.base_offset..=b.last_offset).contains(o))
        {
            text += &record(*o, *v);
        }
        items.push((b.base_offset, text));
    }
    for m in &r.markers {
        let kind = if m.committed { "COMMIT" } else { "ABORT" };
        let mut text = batch(
            m.offset,
            m.offset,
            m.producer_id,
            m.producer_epoch,
            true,
            true,
            true,
            m.timestamp,
        );
        let _ = writeln!(
            text,
            "| offset: {} CreateTime: {} keySize: 4 valueSize: 6 sequence: -1 headerKeys: [] endTxnMarker: {kind} coordinatorEpoch: 0",
            m.offset, m.timestamp
        );
        items.push((m.offset, text));
    }
    for (a, b) in &r.corrupt {
        items.push((*a, batch(*a, *b, 1, 0, false, false, false, 0)));
    }
    for (o, v) in &r.records {
        if !r
            .txn_batches
            .iter()
            .any(|b| (b.base_offset..=b.last_offset).contains(o))
        {
            items.push((
                *o,
                batch(*o, *o, -1, -1, false, false, true, 0) + &record(*o, *v),
            ));
        }
    }
    items.sort_by_key(|(o, _)| *o);
    let base = items.first().map_or(r.log_end_offset, |(o, _)| *o);
    let mut out =
        format!("Dumping /var/lib/kafka/data/{tp}/{base:020}.log\nLog starting offset: {base}\n");
    for (_, text) in items {
        out += &text;
    }
    out
}

/// A run's end state written as a real cluster's files (`kafka-topics.sh --describe`,
/// each broker's `kafka-dump-log.sh` output and `replication-offset-checkpoint`) and
/// read back by `snapshot-from-dump-log` gives the run's partitions again, and the
/// checker the same verdict as on the run's own snapshot (without the consumer
/// positions and groups, which no log holds).
#[test]
fn snapshots_from_dump_logs_judge_as_the_runs_own() {
    use kafkasim::drive::analyze::dump_log::{self, DumpFiles};
    let dir = tmp("dump-log");
    for (name, seed) in [
        ("unclean-election", 0),
        ("hanging-transaction", 0),
        ("corrupt-on-recovery", 0),
        ("retention-slow-consumer", 0),
    ] {
        let sc = Scenario::load(&root().join(format!("scenarios/{name}.json"))).unwrap();
        let (_, out) = runner::run_seed(&sc, seed, &[]);
        let (out, _) = out.expect("no panic");
        let mut describe = String::new();
        let mut dumps: BTreeMap<u32, String> = BTreeMap::new();
        let mut checkpoints: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for p in &out.snapshot.partitions {
            let ids = |v: &mut dyn Iterator<Item = u32>| {
                v.map(|b| b.to_string()).collect::<Vec<_>>().join(",")
            };
            describe += &format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: \tLastKnownElr: \n",
                p.partition.topic,
                p.partition.partition,
                p.leader.map_or("none".into(), |l| l.to_string()),
                ids(&mut p.replicas.iter().map(|r| r.broker)),
                ids(&mut p.isr.iter().copied()),
            );
            for r in &p.replicas {
                *dumps.entry(r.broker).or_default() += &dump_log(&p.partition.to_string(), r);
                checkpoints.entry(r.broker).or_default().push(format!(
                    "{} {} {}",
                    p.partition.topic, p.partition.partition, r.high_watermark
                ));
            }
        }
        let write = |file: String, text: &str| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let files = DumpFiles {
            describe: write("describe.txt".into(), &describe),
            dumps: dumps
                .iter()
                .map(|(b, t)| (*b, write(format!("dump-{b}.txt"), t)))
                .collect(),
            checkpoints: checkpoints
                .iter()
                .map(|(b, lines)| {
                    let text = format!("0\n{}\n{}\n", lines.len(), lines.join("\n"));
                    (*b, write(format!("checkpoint-{b}"), &text))
                })
                .collect(),
        };
        let converted = dump_log::snapshot(&files).unwrap();
        let logs_only = kafkasim::history::Snapshot {
            partitions: out.snapshot.partitions.clone(),
            ..Default::default()
        };
        assert_eq!(
            converted.partitions, logs_only.partitions,
            "{name} seed {seed}"
        );
        let judged = |s| kafkasim::check::check(&out.history, s).anomalies;
        let (mine, theirs) = (judged(&converted), judged(&logs_only));
        assert_eq!(
            mine.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name} seed {seed}"
        );
    }
}

/// `snapshot-from-dump-log` writes a snapshot `analyze --snapshot` takes; bad input
/// exits 2 and writes nothing.
#[test]
fn snapshot_from_dump_log_cli() {
    let dir = tmp("dump-log-cli");
    let fixtures = root().join("tests/fixtures/dump-log");
    let out = dir.join("snapshot.json");
    let args = |dump: &str| {
        vec![
            "snapshot-from-dump-log".to_string(),
            "--describe".into(),
            "describe.txt".into(),
            "--dump".into(),
            dump.into(),
            "--dump".into(),
            "2=broker-2.txt".into(),
            "--checkpoint".into(),
            "1=broker-1-replication-offset-checkpoint".into(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
        ]
    };
    let run =
        |a: Vec<String>| kafkasim(&a.iter().map(String::as_str).collect::<Vec<_>>(), &fixtures);
    let (code, _, err) = run(args("1=describe.txt"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("describe.txt") && err.contains("Dumping"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written on bad input");
    let (code, stdout, err) = run(args("1=broker-1.txt"));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("1 partitions"), "{stdout}");
    let s = analyze::read_snapshot(&out).unwrap();
    assert_eq!(s.partitions[0].replicas.len(), 2);
}
