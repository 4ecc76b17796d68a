//! Unit tests of `drive::shrink`.

use super::*;
use std::path::PathBuf;

/// ddmin with a predicate, tried one by one; also checks every candidate is a
/// proper sublist of what it was given.
fn ddmin_with(items: &[u32], fails: impl Fn(&[u32]) -> bool) -> (Vec<u32>, usize) {
    let mut tests = 0;
    let kept = ddmin(items, |candidates| {
        candidates.iter().position(|c| {
            assert!(c.len() < items.len() && c.iter().all(|x| items.contains(x)));
            assert!(!c.is_empty(), "ddmin never tries the empty list");
            tests += 1;
            fails(c)
        })
    });
    (kept, tests)
}

#[test]
fn ddmin_finds_the_two_culprits() {
    let items: Vec<u32> = (0..16).collect();
    let (kept, tests) = ddmin_with(&items, |c| c.contains(&3) && c.contains(&11));
    assert_eq!(kept, vec![3, 11]);
    assert!(tests <= 40, "{tests} tests");
}

#[test]
fn ddmin_result_is_one_minimal() {
    let items: Vec<u32> = (1..=12).collect();
    let fails = |c: &[u32]| c.iter().sum::<u32>() >= 20 && c.len() >= 2;
    let (kept, _) = ddmin_with(&items, fails);
    assert!(fails(&kept));
    for i in 0..kept.len() {
        let mut less = kept.clone();
        less.remove(i);
        assert!(!fails(&less), "{kept:?} without {} still fails", kept[i]);
    }
}

#[test]
fn ddmin_keeps_what_it_cannot_reduce() {
    let items: Vec<u32> = (0..5).collect();
    let (kept, _) = ddmin_with(&items, |c| c.len() == 5);
    assert_eq!(kept, items);
    let (one, _) = ddmin_with(&items, |c| c.contains(&4));
    assert_eq!(one, vec![4]);
}

#[test]
fn candidate_values_stay_below_and_above_the_bound() {
    assert_eq!(fewer(16, 1), vec![1, 8, 15]);
    assert_eq!(fewer(2, 1), vec![1]);
    assert_eq!(fewer(3, 3), Vec::<u64>::new());
    assert_eq!(fewer(5, 3), vec![3, 4]);
    assert_eq!(halvings(1000, 1), vec![250, 500]);
    assert_eq!(halvings(3, 1), vec![1]);
    assert_eq!(halvings(1, 1), Vec::<u64>::new());
    assert_eq!(halvings(1, 0), vec![0]);
}

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&path).unwrap()
}

#[test]
fn candidates_drop_faults_whose_targets_are_gone() {
    let base = Candidate::new(&scenario("unclean-election.json"), |s| {
            s.producers.count = 2;
            s.nemesis.schedule.push(
                serde_json::from_str(
                    r#"{"at_ms": 9000, "duration_ms": 500, "fault": "one-way", "from": "producer-1", "to": "leader:orders-0"}"#,
                )
                .unwrap(),
            );
        })
        .unwrap();
    assert_eq!(base.scenario.nemesis.schedule.len(), 3);
    let one = Candidate::new(&base.scenario, |s| s.producers.count = 1).unwrap();
    assert_eq!(one.scenario.nemesis.schedule.len(), 2);
    assert!(one.key.contains("\"count\":1"));
    // Fewer brokers than the replication factor: refused by the validation.
    assert!(Candidate::new(&base.scenario, |s| s.cluster.brokers = 2).is_none());
    // The round trip is exact: a candidate's text is its own canonical form.
    let again = Candidate::new(&one.scenario, |_| {}).unwrap();
    assert_eq!(again.key, one.key);
}

#[test]
fn every_shipped_scenario_survives_the_json_round_trip() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for path in crate::scenario::collect_paths(&[dir]).unwrap() {
        let sc = Scenario::load(&path).unwrap();
        let c = Candidate::new(&sc, |_| {}).expect("round trip");
        assert_eq!(c.key, serde_json::to_string(&sc).unwrap(), "{path:?}");
    }
}

fn report(anomalies: &[(&str, u64)], violated: &[&str], panic: Option<&str>) -> SeedReport {
    SeedReport {
        seed: 3,
        anomalies: anomalies.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        violated: violated.iter().map(|v| v.to_string()).collect(),
        panic: panic.map(String::from),
        ..SeedReport::new("s".into(), PathBuf::from("s.json"))
    }
}

#[test]
fn the_goal_is_picked_in_a_fixed_order_and_kept_strictly() {
    let sc = scenario("acks-1-leader-crash.json");
    // Violated invariants first, in ANOMALY_KINDS order (not the report's order).
    let r = report(
        &[("reorder", 1), ("unseen", 2), ("lost-write", 1)],
        &["reorder", "unseen"],
        None,
    );
    let g = Goal::of(&r, &sc, None).unwrap();
    assert_eq!(g.target, Target::Anomaly("unseen".into()));
    assert!(g.violation);
    // No violation: the first anomaly the scenario expects.
    let r = report(&[("duplicate", 1), ("lost-write", 2)], &[], None);
    let g = Goal::of(&r, &sc, None).unwrap();
    assert_eq!(g.target, Target::Anomaly("lost-write".into()));
    assert!(!g.violation);
    assert!(g.met_by(&report(&[("lost-write", 1)], &[], None)));
    assert!(!g.met_by(&report(&[("duplicate", 1)], &[], None)));
    // A new violated invariant is not failing the same way.
    assert!(!g.met_by(&report(
        &[("lost-write", 1), ("unseen", 4)],
        &["unseen"],
        None
    )));
    // Chosen by hand: it must be shown.
    let g = Goal::of(&r, &sc, Some("duplicate")).unwrap();
    assert_eq!(g.target, Target::Anomaly("duplicate".into()));
    assert!(Goal::of(&r, &sc, Some("reorder")).is_err());
    // Only tolerated anomalies, or nothing: nothing to shrink.
    assert!(Goal::of(&report(&[("duplicate", 1)], &[], None), &sc, None).is_err());
    assert!(Goal::of(&report(&[], &[], None), &sc, None).is_err());
    // A panic, by its first line.
    let r = report(&[], &["panic"], Some("leader epoch went back\nat offset 7"));
    let g = Goal::of(&r, &sc, None).unwrap();
    assert_eq!(g.target, Target::Panic("leader epoch went back".into()));
    assert!(g.met_by(&report(
        &[],
        &["panic"],
        Some("leader epoch went back\nat 9")
    )));
    assert!(!g.met_by(&report(&[], &["panic"], Some("other"))));
}

/// A liveness failure (`stuck`, `unseen`, `unassigned-partition`,
/// `hanging-transaction`) shrunk with a shorter quiet period only shows a run that
/// ends mid-recovery: the quiet period is never lowered for one; for any other
/// goal it is.
#[test]
fn a_liveness_goal_keeps_its_quiet_period() {
    let sc = scenario("acks-1-leader-crash.json");
    let names = |g: &Goal| knobs(g).map(|k| k.name).collect::<Vec<_>>();
    for kind in [
        "stuck",
        "unseen",
        "unassigned-partition",
        "hanging-transaction",
    ] {
        let r = report(&[(kind, 1)], &[kind], None);
        let g = Goal::of(&r, &sc, Some(kind)).unwrap();
        assert!(g.liveness(), "{kind}");
        assert!(!names(&g).contains(&QUIET_KNOB), "{kind}: {:?}", names(&g));
        assert_eq!(names(&g).len(), KNOBS.len() - 1);
    }
    for (kind, panic) in [("lost-write", None), ("panic", Some("boom"))] {
        let r = report(&[(kind, 1)], &[kind], panic);
        let g = Goal::of(&r, &sc, panic.map_or(Some(kind), |_| None)).unwrap();
        assert!(!g.liveness(), "{kind}");
        assert!(names(&g).contains(&QUIET_KNOB), "{kind}");
    }
    // Every liveness kind is a kind the checker reports.
    for kind in LIVENESS_KINDS {
        assert!(kinds_in_order().any(|k| k == *kind), "{kind}");
    }
}
