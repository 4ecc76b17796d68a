//! Unit tests of `drive::guarantees`.

use super::*;
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    Scenario::load(&Path::new("scenarios").join(name)).expect("a shipped scenario")
}

fn tolerated(sc: &Scenario) -> Vec<String> {
    expect(sc).tolerate
}

#[test]
fn every_rule_names_known_kinds_and_every_kind_is_tolerated_or_forbidden() {
    for r in RULES {
        for k in r.forbids {
            assert!(
                ANOMALY_KINDS.contains(k) || EVENT_KINDS.contains(k),
                "{}: unknown kind {k}",
                r.name
            );
        }
    }
    let t = table();
    assert!(t.contains("acks-all-durable") && t.contains("every other kind is tolerated;"));
}

#[test]
fn acks_all_min_isr_2_rules_out_lost_writes_but_not_duplicates_without_idempotence() {
    // acks-all-rf3: acks=all, idempotence off, in-flight 1, min ISR 2, drawn faults.
    let sc = scenario("acks-all-rf3.json");
    let f = forbidden(&Facts::of(&sc));
    for k in [
        "lost-write",
        "inconsistent-offsets",
        "reorder",
        "replica-divergence",
    ] {
        assert!(f.contains(&k), "{k} forbidden");
    }
    let t = tolerated(&sc);
    for k in ["duplicate", "reprocessing"] {
        assert!(t.iter().any(|x| x == k), "{k} tolerated");
    }
    // Broker faults: a deposed leader may answer with an older high watermark.
    assert!(!expect(&sc)
        .forbid
        .contains(&"high-watermark-regression".to_string()));
    // The shipped expectation tolerates only `duplicate` of what the table forbids.
    for k in &sc.expect.tolerate {
        assert!(!f.contains(&k.as_str()), "{k}");
    }
}

#[test]
fn min_isr_1_or_acks_1_or_unclean_tolerate_lost_writes() {
    let mut sc = scenario("acks-all-rf3.json");
    sc.cluster.config.min_insync_replicas = 1;
    assert!(!forbidden(&Facts::of(&sc)).contains(&"lost-write"));
    let mut sc = scenario("acks-all-rf3.json");
    sc.producers.config.acks = Acks::Leader;
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"lost-write") && !f.contains(&"reorder") && f.contains(&"poll-skip"));
    let mut sc = scenario("acks-all-rf3.json");
    sc.cluster.config.unclean_leader_election_enable = true;
    let f = forbidden(&Facts::of(&sc));
    for k in ["lost-write", "poll-skip", "nonmonotonic-poll", "reorder"] {
        assert!(!f.contains(&k), "{k} tolerated with unclean election");
    }
    assert!(f.contains(&"replica-divergence") && !f.contains(&"undetected-truncation"));
}

#[test]
fn idempotence_rules_out_duplicates_and_reorders() {
    let sc = scenario("idempotence-on.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(f.contains(&"duplicate") && f.contains(&"reorder"));
    // idempotence-off (in-flight 5): duplicates and reorders are Kafka's behaviour.
    let sc = scenario("retries-in-flight-5.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"duplicate") && !f.contains(&"reorder"));
    // In-flight 1 without idempotence: reorders ruled out, duplicates not.
    let sc = scenario("retries-in-flight-1.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"duplicate") && f.contains(&"reorder"));
}

#[test]
fn processing_modes_and_pipelines() {
    let sc = scenario("at-most-once-crash.json");
    let t = tolerated(&sc);
    assert!(t.iter().any(|k| k == "processing-loss"));
    let f = forbidden(&Facts::of(&sc));
    assert!(f.contains(&"reprocessing") && f.contains(&"unassigned-partition"));
    let sc = scenario("at-least-once-crash.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(f.contains(&"processing-loss") && !f.contains(&"reprocessing"));
    assert!(!f.contains(&"duplicate-effect"), "external_api sink");
    let sc = scenario("exactly-once-pipeline.json");
    let f = forbidden(&Facts::of(&sc));
    for k in [
        "output-duplicate",
        "output-missing",
        "aborted-read",
        "partial-commit",
    ] {
        assert!(f.contains(&k), "{k}");
    }
    assert!(!f.contains(&"g0") && !f.contains(&"int-send-skip"));
    let sc = scenario("read-uncommitted.json");
    assert!(!forbidden(&Facts::of(&sc)).contains(&"aborted-read"));
    let sc = scenario("at-least-once-pipeline.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"output-duplicate") && f.contains(&"output-missing"));
}

#[test]
fn duplicated_input_records_are_processed_and_output_again() {
    // Without idempotence a retried batch is appended twice: at-most-once processing
    // and exactly-once pipelines handle each copy (explore seeds 640, 421).
    let mut sc = scenario("at-most-once-crash.json");
    sc.producers.config.enable_idempotence = Some(false);
    assert!(!forbidden(&Facts::of(&sc)).contains(&"reprocessing"));
    let mut sc = scenario("exactly-once-pipeline.json");
    sc.producers.config.enable_idempotence = Some(false);
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"output-duplicate") && f.contains(&"output-missing"));
    // acks=1 with in-flight 1: an acknowledged offset can be truncated and reused
    // (explore seed 595), so reorders of acknowledged offsets are tolerated.
    let mut sc = scenario("retries-in-flight-1.json");
    sc.producers.config.acks = Acks::Leader;
    assert!(!forbidden(&Facts::of(&sc)).contains(&"reorder"));
}

#[test]
fn liveness_needs_a_quiet_period_past_the_timeouts() {
    let mut sc = scenario("group-chaos.json");
    sc.workload.quiet_ms = liveness_bound_ms(&sc);
    assert!(forbidden(&Facts::of(&sc)).contains(&"stuck"));
    sc.workload.quiet_ms -= 1;
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"stuck") && !f.contains(&"unseen"));
}

#[test]
fn a_topic_override_is_the_min_isr_that_counts() {
    let mut sc = scenario("acks-all-rf3.json");
    sc.topics[0].config.min_insync_replicas = Some(1);
    assert!(!forbidden(&Facts::of(&sc)).contains(&"lost-write"));
    // Capped at the replica count (`Partition.effectiveMinIsr`).
    let mut sc = scenario("acks-all-rf3.json");
    sc.cluster.config.min_insync_replicas = 2;
    sc.topics[0].replication_factor = 1;
    assert_eq!(Facts::of(&sc).min_insync_replicas, 1);
    let mut sc = scenario("acks-all-rf3.json");
    sc.topics[0].config.unclean_leader_election_enable = Some(true);
    assert!(!forbidden(&Facts::of(&sc)).contains(&"lost-write"));
}

#[test]
fn without_broker_faults_the_high_watermark_never_goes_back() {
    let mut sc = scenario("acks-all-rf3.json");
    sc.nemesis = Default::default();
    assert_eq!(
        expect(&sc).forbid,
        vec!["high-watermark-regression".to_string()]
    );
}

#[test]
fn two_live_instances_of_one_transactional_id_promise_no_progress() {
    let mut sc = scenario("exactly-once-pipeline.json");
    sc.workload.quiet_ms = liveness_bound_ms(&sc);
    assert!(forbidden(&Facts::of(&sc)).contains(&"unassigned-partition"));
    let p = sc.pipelines.as_mut().expect("pipelines");
    p.count = 1;
    p.instances = (0..2)
        .map(|_| crate::scenario::PipelineInstance {
            transactional_id: Some("etl-txn-1".into()),
            start_ms: 0,
        })
        .collect();
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"unassigned-partition") && !f.contains(&"hanging-transaction"));
    assert!(f.contains(&"output-missing"), "safety still holds");
}

/// KIP-320 validates positions that carry a leader epoch; a pipeline's rewind after an
/// abort seeks by offset alone, so once a log can lose acknowledged records it may land
/// in the rewritten ones unwarned. Plain consumers stay held to it.
/// A pipeline rewinding with an offset-only `seek` onto a log that lost records, and
/// any consumer under unclean elections (explore seed 75570: the elected zombie's
/// epoch-0 records reach past the position, so `OffsetsForLeaderEpoch` answers an end
/// offset above it), may miss the truncation; a power loss alone does not hide it from
/// a plain consumer.
#[test]
fn pipelines_seeking_and_unclean_elections_may_miss_the_truncation() {
    let mut sc = scenario("read-committed.json");
    assert!(forbidden(&Facts::of(&sc)).contains(&"undetected-truncation"));
    sc.cluster.config.unclean_leader_election_enable = true;
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"undetected-truncation") && f.contains(&"replica-divergence"));
    let mut sc = scenario("acks-all-rf3.json");
    assert!(forbidden(&Facts::of(&sc)).contains(&"undetected-truncation"));
    // Unclean on one topic is enough.
    sc.topics[0].config.unclean_leader_election_enable = Some(true);
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"undetected-truncation") && f.contains(&"replica-divergence"));
}

/// A commit whose request timed out under a cut link may still reach the coordinator
/// after its retry and later commits, and the last arrival wins: the committed offset
/// can move back (and an at-most-once group then processes records again).
#[test]
fn a_cut_link_lets_a_late_offset_commit_overwrite_newer_ones() {
    let mut sc = scenario("at-most-once-crash.json");
    let f = forbidden(&Facts::of(&sc));
    assert!(f.contains(&"committed-offset-lost") && f.contains(&"reprocessing"));
    for fault in [
        crate::nemesis::FaultKindName::Isolate,
        crate::nemesis::FaultKindName::Slow,
    ] {
        sc.nemesis.faults = vec![fault];
        let facts = Facts::of(&sc);
        assert!(facts.late_commits, "{fault:?}");
        let f = forbidden(&facts);
        assert!(!f.contains(&"committed-offset-lost") && !f.contains(&"reprocessing"));
    }
    // A delayed link delivers in order, the retry behind the first request.
    sc.nemesis.faults = vec![crate::nemesis::FaultKindName::Delay];
    assert!(forbidden(&Facts::of(&sc)).contains(&"committed-offset-lost"));
}

/// A transaction whose state `__transaction_state` lost from every replica (or whose
/// marker its partition lost) is never ended: it hangs until an operator aborts it
/// (KIP-664), and read_committed readers wait below it.
#[test]
fn transactions_over_logs_that_lose_records_may_hang() {
    let mut sc = scenario("read-committed.json");
    assert!(forbidden(&Facts::of(&sc)).contains(&"hanging-transaction"));
    sc.nemesis
        .faults
        .push(crate::nemesis::FaultKindName::PowerLoss);
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"hanging-transaction") && !f.contains(&"stuck"));
    assert!(
        f.contains(&"unassigned-partition"),
        "assignments are not held"
    );
    // Without transactions the loss does not hold anyone.
    let mut sc = scenario("at-least-once-crash.json");
    sc.nemesis
        .faults
        .push(crate::nemesis::FaultKindName::PowerLoss);
    assert!(forbidden(&Facts::of(&sc)).contains(&"stuck"));
}

/// A coordinator that moves before it stored a rebalance loads the older static members
/// (KIP-345); one rejoining under its newer member id is fenced (`FENCED_INSTANCE_ID`,
/// fatal), so under broker faults a static group may end with nobody (explore seed
/// 60667).
#[test]
fn static_members_may_be_fenced_for_good_when_the_coordinator_moves() {
    let mut sc = scenario("group-chaos.json");
    sc.workload.quiet_ms = liveness_bound_ms(&sc);
    let f = forbidden(&Facts::of(&sc));
    assert!(f.contains(&"unassigned-partition") && f.contains(&"unseen"));
    sc.consumers.config.group_instance_id = Some("m".into());
    let f = forbidden(&Facts::of(&sc));
    assert!(!f.contains(&"unassigned-partition") && !f.contains(&"unseen"));
    // Without broker faults the coordinator stays, and so does the promise.
    sc.nemesis.faults = vec![crate::nemesis::FaultKindName::ConsumerCrash];
    sc.nemesis.schedule.clear();
    sc.workload.quiet_ms = liveness_bound_ms(&sc);
    assert!(forbidden(&Facts::of(&sc)).contains(&"unassigned-partition"));
}

#[test]
fn a_coordinator_completing_its_unreplicated_prepare_excuses_a_torn_transaction() {
    use crate::history::Entry;
    use crate::kafka::protocol::{NodeId, TopicPartition};
    let mut history = History::default();
    assert!(excused(&history).is_empty());
    history.push(Entry::instant(
        NodeId::Broker(1),
        12_000,
        Op::TxnLoadedUnreplicated {
            transactional_id: "etl-txn-0".into(),
            producer_id: 2001,
            producer_epoch: 4,
            state: "PrepareCommit".into(),
            partition: TopicPartition::new("__transaction_state", 3),
            high_watermark: 40,
            log_end_offset: 41,
        },
    ));
    let e = excused(&history);
    assert_eq!(
        e.keys().copied().collect::<Vec<_>>(),
        ["output-duplicate", "output-missing", "partial-commit"]
    );
    assert!(e["partial-commit"].contains("etl-txn-0 in PrepareCommit"));
    assert!(e["partial-commit"].contains("history line 0"));
}
