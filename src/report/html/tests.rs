//! Unit tests of `report::html`.

use super::*;
use crate::history::ReadRecord;
use crate::kafka::protocol::TopicPartition;
use crate::report::RunStats;
use std::path::PathBuf;

fn entry(index: u64, process: NodeId, ms: u64, outcome: Outcome, op: Op) -> Entry {
    Entry {
        index,
        process,
        invoke_ms: ms,
        complete_ms: Some(ms),
        outcome,
        op,
    }
}

/// A small run: a crash, an acknowledged write lost, a leader change, many polls.
fn sample() -> (SeedReport, History) {
    let tp = TopicPartition::new("or<ders>&\"x\"", 1);
    let mut h = History::default();
    let push = |h: &mut History, p, ms, outcome, op| {
        let i = h.entries.len() as u64;
        h.push(entry(i, p, ms, outcome, op));
    };
    push(
        &mut h,
        NodeId::Nemesis,
        1_000,
        Outcome::Ok,
        Op::FaultStart {
            fault: "crash leader:orders-1 -> broker-2".into(),
        },
    );
    push(
        &mut h,
        NodeId::Producer(0),
        1_200,
        Outcome::Ok,
        Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: Some("<script>alert(1)</script>".into()),
            value: 4711,
            partition: tp.clone(),
            offset: Some(88),
            attempts: 1,
        },
    );
    for i in 0..40 {
        push(
            &mut h,
            NodeId::Consumer(0),
            1_300 + i * 100,
            Outcome::Ok,
            Op::Poll {
                read_committed: false,
                partition: tp.clone(),
                records: vec![ReadRecord {
                    offset: 89 + i as i64,
                    key: None,
                    value: 5000 + i,
                    headers: Vec::new(),
                }],
                high_watermark: 200,
            },
        );
    }
    push(
        &mut h,
        NodeId::Controller,
        4_000,
        Outcome::Ok,
        Op::PartitionChange {
            partition: tp.clone(),
            leader: Some(3),
            leader_epoch: 1,
            isr: vec![3, 1],
            elr: Vec::new(),
            unclean: false,
        },
    );
    push(
        &mut h,
        NodeId::Nemesis,
        5_000,
        Outcome::Ok,
        Op::FaultEnd {
            fault: "crash leader:orders-1".into(),
        },
    );
    push(
        &mut h,
        NodeId::Producer(0),
        5_500,
        Outcome::Info {
            reason: "REQUEST_TIMED_OUT".into(),
        },
        Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: None,
            value: 4712,
            partition: tp.clone(),
            offset: None,
            attempts: 3,
        },
    );
    let mut report = SeedReport {
        seed: 7,
        verdict: "fail".into(),
        trace_hash: "00ff00ff00ff00ff".into(),
        violated: vec!["lost-write".into()],
        stats: RunStats {
            sim_ms: 10_000,
            operations: h.entries.len() as u64,
            ..RunStats::default()
        },
        ..SeedReport::new("demo<&>".into(), PathBuf::from("scenarios/demo.json"))
    };
    report.anomalies.insert("lost-write".into(), 1);
    report.examples.insert(
        "lost-write".into(),
        vec![
            "value 4711 (key <script>alert(1)</script>) was acknowledged at offset 88 of \
                  or<ders>&\"x\"-1 at 1.200 s and never read"
                .into(),
        ],
    );
    report
        .example_lines
        .insert("lost-write".into(), vec![vec![1]]);
    report.anomalies.insert("duplicate".into(), 5);
    report.examples.insert(
        "duplicate".into(),
        vec!["value 5003 was observed twice".into()],
    );
    report
        .example_lines
        .insert("duplicate".into(), vec![vec![5, 30]]);
    report.anomalies.insert("stuck".into(), 1);
    report.examples.insert(
        "stuck".into(),
        vec!["or<ders>-1 has no leader at the end".into()],
    );
    report.example_lines.insert("stuck".into(), vec![vec![]]);
    (report, h)
}

#[test]
fn escapes_every_text_from_the_run() {
    let (report, h) = sample();
    let html = render(&report, &h);
    for raw in ["<script>alert(1)</script>", "or<ders>", "demo<&>", "\"x\""] {
        assert!(!html.contains(raw), "unescaped `{raw}` in the page");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("demo&lt;&amp;&gt;"));
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    // The page's own script is the only one.
    assert_eq!(html.matches("<script>").count(), 1);
}

#[test]
fn every_involved_line_is_marked_linked_and_shown() {
    let (report, h) = sample();
    let html = render(&report, &h);
    for line in [1u64, 5, 30] {
        let mark = format!("<a class=\"amark\" href=\"#line-{line}\"");
        assert_eq!(
            html.matches(&mark).count(),
            1,
            "one timeline mark for line {line}"
        );
        assert!(html.contains(&format!("<tr id=\"line-{line}\" class=\"inv\"")));
    }
    // Context rows either side, and not the whole history.
    for line in [2u64, 4, 8, 27, 33] {
        assert!(html.contains(&format!("<tr id=\"line-{line}\" class=\"ctx\"")));
    }
    for line in [9u64, 26, 34] {
        assert!(
            !html.contains(&format!("id=\"line-{line}\"")),
            "line {line} shown"
        );
    }
    // Every link to a line has its target.
    let mut rest = html.as_str();
    let mut links = 0;
    while let Some(at) = rest.find("href=\"#line-") {
        rest = &rest[at + 12..];
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        assert!(
            html.contains(&format!("id=\"line-{n}\"")),
            "no target for line {n}"
        );
        links += 1;
    }
    assert!(links >= 6, "{links} links");
    // The snapshot finding has no line, its example is still listed.
    assert!(html.contains("or&lt;ders&gt;-1 has no leader at the end"));
    assert!(html.contains("The first 1 of 5 in history order."));
}

#[test]
fn timeline_has_lanes_faults_and_leader_changes() {
    let (report, h) = sample();
    let html = render(&report, &h);
    for lane in [
        "controller",
        "broker-1",
        "broker-2",
        "broker-3",
        "producer-0",
        "consumer-0",
        "nemesis",
    ] {
        assert!(
            html.contains(&format!(">{lane}</text>")),
            "lane {lane} missing"
        );
    }
    // The crash paired with its end, shading broker-2's lane.
    assert!(html.contains("<rect class=\"shade crash\""));
    assert!(html.contains("crash leader:orders-1 -&gt; broker-2 from 1.000 s to 5.000 s"));
    assert!(html.contains("<path class=\"lc\""), "leader change mark");
    assert!(
        html.contains("<path class=\"notok\""),
        "indefinite send drawn"
    );
    assert!(html.contains("Content-Security-Policy"));
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn same_input_same_page() {
    let (report, h) = sample();
    assert_eq!(render(&report, &h), render(&report, &h));
    let (mut other, _) = sample();
    other.seed = 8;
    assert_ne!(render(&report, &h), render(&other, &h));
}

#[test]
fn unknown_operations_render_from_their_fields() {
    let (_, h) = sample();
    let e = &h.entries[1];
    assert_eq!(op_name(e), "send");
    let d = details(e);
    assert!(d.contains("value=4711") && d.contains("offset=88"), "{d}");
    let poll = details(&h.entries[2]);
    assert!(poll.contains("records=[89:5000]"), "{poll}");
    let obj: Json = serde_json::json!({"broker": 2});
    assert_eq!(compact(&obj), "broker-2");
    let nested: Json = serde_json::json!({"a": [1, "x", null], "b": {"c": true, "d": 1}});
    assert_eq!(compact(&nested), "{a=[1, x, -] b={c=true d=1}}");
}

#[test]
fn faults_pair_by_name_and_instant_ones_stand_alone() {
    let mut h = History::default();
    let fault = |start: bool, text: &str| {
        let op = if start {
            Op::FaultStart { fault: text.into() }
        } else {
            Op::FaultEnd { fault: text.into() }
        };
        entry(0, NodeId::Nemesis, 0, Outcome::Ok, op)
    };
    h.push(fault(true, "crash broker-1 -> broker-1"));
    h.push(fault(true, "crash broker-10 -> broker-10"));
    h.push(fault(true, "move leader of t-0 from broker-1 to broker-2"));
    h.push(fault(
        true,
        "drop broker-1 -> broker-2 -> broker-1 | broker-2",
    ));
    h.push(fault(false, "crash broker-10"));
    h.push(fault(false, "drop broker-1 -> broker-2"));
    let spans = fault_spans(&h);
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[0].end, None, "crash broker-1 still open");
    assert_eq!(spans[1].end.map(|(_, l)| l), Some(4));
    assert!(spans[2].instant());
    assert_eq!(spans[3].end.map(|(_, l)| l), Some(5));
    assert_eq!(spans[3].nodes, vec![NodeId::Broker(1), NodeId::Broker(2)]);
    assert!(spans[1].node_fault() && !spans[3].node_fault());
}
