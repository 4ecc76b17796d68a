//! Unit tests of `check`.

use super::*;
use crate::history::{GroupSnapshot, ReadRecord, ReplicaSnapshot, SendTimeout, TxnId};

mod snapshot;
use snapshot::*;

fn tp(n: u32) -> TopicPartition {
    TopicPartition::new("orders", n)
}

/// Value number `n` of producer `p`, as the workload builds them.
fn v(p: u32, n: u32) -> Value {
    (u64::from(p) << 32) | u64::from(n)
}

/// A history builder; keys default to `k<partition>`.
#[derive(Default)]
struct B {
    h: History,
}

impl B {
    fn push(&mut self, process: NodeId, t: Millis, outcome: Outcome, op: Op) -> &mut Self {
        self.h.push(Entry {
            index: 0,
            process,
            invoke_ms: t.saturating_sub(3),
            complete_ms: Some(t),
            outcome,
            op,
        });
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        producer: u32,
        t: Millis,
        key: Option<&str>,
        value: Value,
        part: u32,
        outcome: Outcome,
        offset: Option<Offset>,
    ) -> &mut Self {
        let op = Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: key.map(str::to_string),
            value,
            partition: tp(part),
            offset,
            attempts: 1,
        };
        self.push(NodeId::Producer(producer), t, outcome, op)
    }

    fn ok(
        &mut self,
        producer: u32,
        t: Millis,
        value: Value,
        part: u32,
        offset: Offset,
    ) -> &mut Self {
        let key = format!("k{part}");
        self.send(
            producer,
            t,
            Some(&key),
            value,
            part,
            Outcome::Ok,
            Some(offset),
        )
    }

    fn fail(&mut self, producer: u32, t: Millis, value: Value, part: u32) -> &mut Self {
        let key = format!("k{part}");
        let outcome = Outcome::Fail {
            error: "NOT_ENOUGH_REPLICAS".into(),
        };
        self.send(producer, t, Some(&key), value, part, outcome, None)
    }

    fn info(&mut self, producer: u32, t: Millis, value: Value, part: u32) -> &mut Self {
        let key = format!("k{part}");
        let outcome = Outcome::Info {
            reason: "REQUEST_TIMED_OUT".into(),
        };
        self.send(producer, t, Some(&key), value, part, outcome, None)
    }

    fn poll(
        &mut self,
        consumer: u32,
        t: Millis,
        part: u32,
        records: &[(Offset, Value)],
    ) -> &mut Self {
        let high_watermark = records.iter().map(|r| r.0 + 1).max().unwrap_or(0);
        self.poll_hw(consumer, t, part, records, high_watermark)
    }

    /// A poll whose fetch response carried `high_watermark`.
    fn poll_hw(
        &mut self,
        consumer: u32,
        t: Millis,
        part: u32,
        records: &[(Offset, Value)],
        high_watermark: Offset,
    ) -> &mut Self {
        let records: Vec<ReadRecord> = records
            .iter()
            .map(|&(offset, value)| ReadRecord {
                offset,
                key: Some(format!("k{part}")),
                value,
                headers: Vec::new(),
            })
            .collect();
        let op = Op::Poll {
            read_committed: false,
            partition: tp(part),
            records,
            high_watermark,
        };
        self.push(NodeId::Consumer(consumer), t, Outcome::Ok, op)
    }

    fn seek(&mut self, consumer: u32, t: Millis, part: u32, offset: Offset) -> &mut Self {
        let op = Op::Seek {
            partition: tp(part),
            offset,
            reason: "auto.offset.reset=earliest".into(),
        };
        self.push(NodeId::Consumer(consumer), t, Outcome::Ok, op)
    }

    fn hw(&mut self, consumer: u32, t: Millis, part: u32, hw: Offset, broker: u32) -> &mut Self {
        let op = Op::ObserveHighWatermark {
            last_stable_offset: None,
            partition: tp(part),
            high_watermark: hw,
            broker: NodeId::Broker(broker),
        };
        self.push(NodeId::Consumer(consumer), t, Outcome::Ok, op)
    }

    fn run(&self) -> CheckResult {
        check(&self.h, &Snapshot::default())
    }

    #[allow(clippy::too_many_arguments)]
    fn processed(
        &mut self,
        consumer: u32,
        t: Millis,
        member: &str,
        generation: i32,
        part: u32,
        offset: Offset,
        value: Value,
        sink: Sink,
    ) -> &mut Self {
        let op = Op::Processed {
            group: "g".into(),
            member: member.into(),
            generation,
            partition: tp(part),
            offset,
            value,
            sink,
        };
        self.push(NodeId::Consumer(consumer), t, Outcome::Ok, op)
    }

    fn assigned(&mut self, t: Millis, member: &str, generation: i32, parts: &[u32]) -> &mut Self {
        let op = Op::Assigned {
            group: "g".into(),
            member: member.into(),
            generation,
            partitions: parts.iter().map(|p| tp(*p)).collect(),
        };
        // Member `mN` runs in consumer process N.
        let process = member[1..].parse().unwrap();
        self.push(NodeId::Consumer(process), t, Outcome::Ok, op)
    }

    fn committed(&mut self, t: Millis, generation: i32, part: u32, offset: Offset) -> &mut Self {
        let op = Op::Committed {
            group: "g".into(),
            member: "m1".into(),
            generation,
            offsets: vec![(tp(part), offset)],
        };
        self.push(NodeId::Consumer(0), t, Outcome::Ok, op)
    }
}

// ------------------------------------------------------------ consumer groups

/// Counts of the group kinds only (these histories have no reads, so their
/// acknowledged writes are also `unseen`).
fn group_counts(r: &CheckResult) -> Vec<(&str, u64)> {
    counts(r)
        .into_iter()
        .filter(|(k, _)| *k != "unseen")
        .collect()
}

#[test]
fn a_skipped_record_is_a_processing_loss() {
    let r = B::default()
        .ok(0, 10, v(0, 0), 0, 0)
        .ok(0, 11, v(0, 1), 0, 1)
        .ok(0, 12, v(0, 2), 0, 2)
        .processed(0, 20, "m1", 1, 0, 0, v(0, 0), Sink::ExternalApi)
        .processed(0, 21, "m1", 1, 0, 2, v(0, 2), Sink::ExternalApi)
        .run();
    assert_eq!(group_counts(&r), vec![("processing-loss", 1)]);
    assert!(examples(&r, "processing-loss")[0].contains("never processed by group g"));
}

#[test]
fn records_beyond_what_a_group_reached_are_not_lost() {
    let r = B::default()
        .ok(0, 10, v(0, 0), 0, 0)
        .ok(0, 11, v(0, 1), 0, 1)
        .processed(0, 20, "m1", 1, 0, 0, v(0, 0), Sink::DedupStore)
        .run();
    assert_eq!(group_counts(&r), vec![]);
}

#[test]
fn reprocessing_reaches_the_api_twice_but_the_store_once() {
    let store = B::default()
        .ok(0, 10, v(0, 0), 0, 0)
        .processed(0, 20, "m1", 1, 0, 0, v(0, 0), Sink::DedupStore)
        .processed(1, 30, "m2", 2, 0, 0, v(0, 0), Sink::DedupStore)
        .run();
    assert_eq!(group_counts(&store), vec![("reprocessing", 1)]);
    let api = B::default()
        .ok(0, 10, v(0, 0), 0, 0)
        .processed(0, 20, "m1", 1, 0, 0, v(0, 0), Sink::ExternalApi)
        .processed(1, 30, "m2", 2, 0, 0, v(0, 0), Sink::ExternalApi)
        .run();
    assert_eq!(
        group_counts(&api),
        vec![("duplicate-effect", 1), ("reprocessing", 1)]
    );
    assert!(examples(&api, "reprocessing")[0].contains("member m2 (generation 2)"));
}

#[test]
fn one_partition_two_owners_in_a_generation_is_a_double_assignment() {
    let r = B::default()
        .assigned(10, "m1", 1, &[0, 1])
        .assigned(10, "m2", 1, &[1])
        .assigned(20, "m2", 2, &[0])
        .run();
    assert_eq!(
        group_counts(&r),
        vec![("double-assignment", 1), ("rebalance", 1)]
    );
}

#[test]
fn a_commit_going_back_within_a_generation_is_a_regression() {
    let r = B::default()
        .committed(10, 1, 0, 50)
        .committed(20, 1, 0, 40)
        .committed(30, 2, 0, 30)
        .run();
    assert_eq!(counts(&r), vec![("commit-regression", 1)]);
}

impl B {
    fn fetch_committed(
        &mut self,
        invoke: Millis,
        complete: Millis,
        part: u32,
        offset: Option<Offset>,
    ) -> &mut Self {
        self.h.push(Entry {
            index: 0,
            process: NodeId::Consumer(2),
            invoke_ms: invoke,
            complete_ms: Some(complete),
            outcome: Outcome::Ok,
            op: Op::FetchCommitted {
                group: "g".into(),
                member: "m2".into(),
                generation: 2,
                offsets: vec![(tp(part), offset)],
            },
        });
        self
    }

    fn prepare(&mut self, t: Millis, generation: i32, cause: RebalanceCause) -> &mut Self {
        let op = Op::PrepareRebalance {
            group: "g".into(),
            generation,
            cause,
            reason: "removing member m1 on heartbeat expiration".into(),
        };
        self.push(NodeId::Broker(1), t, Outcome::Ok, op)
    }
}

#[test]
fn a_fetch_after_an_acknowledged_commit_must_find_it() {
    // Committed 50, acknowledged at 10 (invoked at 7); a fetch sent at 20 finds 40.
    let lost = B::default()
        .committed(10, 1, 0, 50)
        .fetch_committed(20, 22, 0, Some(40))
        .fetch_committed(30, 32, 1, None)
        .run();
    assert_eq!(counts(&lost), vec![("committed-offset-lost", 1)]);
    assert!(examples(&lost, "committed-offset-lost")[0].contains("found 40"));
    // Nothing committed for a partition: no committed offset is fine.
    let none = B::default()
        .committed(10, 1, 0, 50)
        .fetch_committed(20, 22, 0, None)
        .run();
    assert_eq!(counts(&none), vec![("committed-offset-lost", 1)]);
    // A fetch sent before the acknowledgement may miss the commit; a higher offset is
    // fine; concurrent commits may land in either order.
    let fine = B::default()
        .fetch_committed(8, 12, 0, Some(40))
        .committed(10, 1, 0, 50)
        .fetch_committed(20, 22, 0, Some(60))
        .committed(30, 1, 1, 70)
        .committed(31, 1, 1, 80)
        .fetch_committed(40, 42, 1, Some(70))
        .run();
    assert_eq!(counts(&fine), vec![]);
}

#[test]
fn final_committed_offsets_and_assignments_are_checked_against_the_end_state() {
    let mut b = B::default();
    b.assigned(10, "m1", 1, &[0, 1]).committed(20, 1, 0, 50);
    let end = |committed: Offset, state: &str, owned: Vec<TopicPartition>| Snapshot {
        partitions: vec![
            partition(0, Some(1), &[1], vec![]),
            partition(1, Some(1), &[1], vec![]),
        ],
        committed_offsets: vec![("g".into(), tp(0), committed)],
        groups: vec![GroupSnapshot {
            group: "g".into(),
            state: state.into(),
            generation: 1,
            members: vec![("m1".into(), owned)],
        }],
        ..Snapshot::default()
    };
    let ok = check(&b.h, &end(50, "Stable", vec![tp(0), tp(1)]));
    assert_eq!(group_counts(&ok), vec![]);
    let bad = check(&b.h, &end(30, "Stable", vec![tp(0)]));
    assert_eq!(
        group_counts(&bad),
        vec![("committed-offset-lost", 1), ("unassigned-partition", 1)]
    );
    assert!(
        examples(&bad, "unassigned-partition")[0].starts_with("orders-1 is assigned to no member")
    );
    let rebalancing = check(&b.h, &end(50, "PreparingRebalance", vec![tp(0), tp(1)]));
    assert_eq!(
        group_counts(&rebalancing),
        vec![("unassigned-partition", 2)]
    );
}

#[test]
fn rebalances_are_counted_by_their_cause() {
    let r = B::default()
        .assigned(10, "m1", 1, &[0, 1])
        .prepare(20, 1, RebalanceCause::SessionExpired)
        .prepare(21, 1, RebalanceCause::MemberJoined)
        .assigned(25, "m2", 2, &[0, 1])
        .assigned(35, "m2", 3, &[0, 1])
        .run();
    assert_eq!(group_counts(&r), vec![("rebalance", 2)]);
    let causes: Vec<(&str, u64)> = r
        .stats
        .rebalances_by_cause
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(causes, vec![("session-expired", 1), ("unknown", 1)]);
    assert!(examples(&r, "rebalance")[0]
        .contains("session-expired: removing member m1 on heartbeat expiration, at 0.020 s"));
}

fn counts(r: &CheckResult) -> Vec<(&str, u64)> {
    r.anomalies
        .iter()
        .map(|(k, a)| (k.as_str(), a.count))
        .collect()
}

/// Asserts the exact set of anomaly kinds and counts (`expected` sorted by kind).
fn assert_counts(r: &CheckResult, expected: &[(&str, u64)]) {
    assert_eq!(counts(r), expected, "anomalies: {:#?}", r.anomalies);
}

fn examples<'a>(r: &'a CheckResult, kind: &str) -> &'a [String] {
    &r.anomalies[kind].examples
}

// ------------------------------------------------------------ clean runs and stats

#[test]
fn clean_history_has_no_anomalies_and_counts_stats() {
    let mut b = B::default();
    b.push(
        NodeId::Nemesis,
        10,
        Outcome::Ok,
        Op::FaultStart {
            fault: "isolate broker-2".into(),
        },
    )
    .ok(0, 100, v(0, 0), 0, 0)
    .ok(0, 110, v(0, 1), 0, 1)
    .fail(0, 120, v(0, 2), 0)
    .info(0, 130, v(0, 3), 0)
    .poll(0, 200, 0, &[(0, v(0, 0)), (1, v(0, 1))])
    .poll(1, 210, 0, &[(0, v(0, 0))])
    .poll(1, 220, 0, &[(1, v(0, 1))])
    .push(
        NodeId::Nemesis,
        300,
        Outcome::Ok,
        Op::FaultEnd {
            fault: "isolate broker-2".into(),
        },
    )
    .push(
        NodeId::Controller,
        310,
        Outcome::Ok,
        Op::PartitionChange {
            partition: tp(0),
            leader: Some(1),
            leader_epoch: 2,
            isr: vec![1, 2],
            elr: Vec::new(),
            unclean: false,
        },
    );
    let r = b.run();
    assert_counts(&r, &[]);
    let stats = CheckStats {
        sends: 4,
        acked: 2,
        failed: 1,
        indefinite: 1,
        polls: 3,
        records_read: 4,
        faults: 1,
        rebalances_by_cause: BTreeMap::new(),
    };
    assert_eq!(r.stats, stats);
}

#[test]
fn pending_send_at_end_counts_as_indefinite() {
    let mut b = B::default();
    b.h.push(Entry {
        index: 0,
        process: NodeId::Producer(0),
        invoke_ms: 5_000,
        complete_ms: None,
        outcome: Outcome::Info {
            reason: "pending at end of run".into(),
        },
        op: Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: None,
            value: v(0, 0),
            partition: tp(0),
            offset: None,
            attempts: 1,
        },
    });
    let r = b.run();
    assert_counts(&r, &[]);
    assert_eq!(r.stats.indefinite, 1);
    assert_eq!(r.stats.sends, 1);
}

// ------------------------------------------------------------ lost-write, unseen

#[test]
fn acknowledged_write_skipped_by_readers_is_lost() {
    let mut b = B::default();
    b.ok(0, 12_400, v(0, 0), 2, 87)
        .ok(0, 12_400, v(0, 1), 2, 88)
        .ok(0, 12_400, v(0, 2), 2, 89)
        .poll(0, 13_000, 2, &[(87, v(0, 0))])
        .seek(0, 13_100, 2, 89)
        .poll(0, 13_200, 2, &[(89, v(0, 2))]);
    let r = b.run();
    assert_counts(&r, &[("lost-write", 1)]);
    assert_eq!(
        examples(&r, "lost-write"),
        [format!(
            "value {} (key k2) was acknowledged at offset 88 of orders-2 at 12.400 s and \
                 never read, although consumers read up to offset 89",
            v(0, 1)
        )]
    );
}

#[test]
fn indefinite_write_never_read_is_not_lost() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 2, 87)
        .info(0, 100, v(0, 1), 2)
        .ok(0, 100, v(0, 2), 2, 89)
        .poll(0, 200, 2, &[(87, v(0, 0))])
        .seek(0, 210, 2, 89)
        .poll(0, 220, 2, &[(89, v(0, 2))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn write_read_by_another_consumer_is_not_lost() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 2, 87)
        .ok(0, 100, v(0, 1), 2, 88)
        .ok(0, 100, v(0, 2), 2, 89)
        .poll(0, 200, 2, &[(87, v(0, 0))])
        .seek(0, 210, 2, 89)
        .poll(0, 220, 2, &[(89, v(0, 2))])
        .poll(1, 230, 2, &[(88, v(0, 1))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn acknowledged_write_beyond_every_read_is_unseen_not_lost() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 110, v(0, 1), 0, 1)
        .ok(0, 120, v(0, 2), 1, 0)
        .poll(0, 200, 0, &[(0, v(0, 0))]);
    let r = b.run();
    assert_counts(&r, &[("unseen", 2)]);
    assert_eq!(
        examples(&r, "unseen"),
        [
            format!(
                "value {} (key k0) was acknowledged at offset 1 of orders-0 at 0.110 s and \
                     never read; consumers read only up to offset 0",
                v(0, 1)
            ),
            format!(
                "value {} (key k1) was acknowledged at offset 0 of orders-1 at 0.120 s and \
                     never read; no consumer read anything from orders-1",
                v(0, 2)
            ),
        ]
    );
}

#[test]
fn indefinite_and_acks0_writes_are_never_unseen() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .info(0, 110, v(0, 1), 0)
        .send(0, 120, Some("k0"), v(0, 2), 0, Outcome::Ok, None)
        .poll(0, 200, 0, &[(0, v(0, 0))]);
    let r = b.run();
    assert_counts(&r, &[]);
    assert_eq!(r.stats.acked, 2);
}

#[test]
fn at_most_three_examples_in_history_order() {
    let mut b = B::default();
    for n in 0..5 {
        b.ok(0, 100 + u64::from(n), v(0, n), 0, Offset::from(n));
    }
    let r = b.run();
    assert_counts(&r, &[("unseen", 5)]);
    let ex = examples(&r, "unseen");
    assert_eq!(ex.len(), 3);
    for (n, e) in ex.iter().enumerate() {
        assert!(e.starts_with(&format!("value {} ", v(0, n as u32))), "{e}");
    }
}

// ------------------------------------------------------------ duplicate

#[test]
fn value_at_two_offsets_is_a_duplicate() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .poll(0, 200, 0, &[(0, v(0, 0)), (1, v(0, 0))])
        .poll(1, 210, 0, &[(0, v(0, 0)), (1, v(0, 0)), (2, v(0, 0))]);
    let r = b.run();
    assert_counts(&r, &[("duplicate", 1)]);
    assert_eq!(
        examples(&r, "duplicate"),
        [format!(
            "value {} was observed at offset 0 of orders-0 (acknowledged to producer-0 at \
                 0.100 s) and at offset 1 (read by consumer-0 at 0.200 s)",
            v(0, 0)
        )]
    );
}

#[test]
fn value_read_twice_at_one_offset_is_not_a_duplicate() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .poll(0, 200, 0, &[(0, v(0, 0))])
        .poll(1, 210, 0, &[(0, v(0, 0))])
        .seek(0, 220, 0, 0)
        .poll(0, 230, 0, &[(0, v(0, 0))]);
    assert_counts(&b.run(), &[]);
}

// ------------------------------------------------------------ inconsistent-offsets

#[test]
fn two_values_at_one_offset_are_inconsistent() {
    // The acknowledged write was truncated away and another took its offset.
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .info(1, 150, v(1, 0), 0)
        .poll(0, 200, 0, &[(0, v(1, 0))])
        .poll(1, 210, 0, &[(0, v(1, 0))]);
    let r = b.run();
    assert_counts(&r, &[("inconsistent-offsets", 1), ("lost-write", 1)]);
    assert_eq!(
        examples(&r, "inconsistent-offsets"),
        [format!(
            "offset 0 of orders-0 held value {} (acknowledged to producer-0 at 0.100 s) \
                 and value {} (read by consumer-0 at 0.200 s)",
            v(0, 0),
            v(1, 0)
        )]
    );
}

#[test]
fn one_value_at_one_offset_seen_by_all_is_consistent() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .info(1, 150, v(1, 0), 0)
        .poll(0, 200, 0, &[(0, v(0, 0)), (1, v(1, 0))])
        .poll(1, 210, 0, &[(0, v(0, 0)), (1, v(1, 0))]);
    assert_counts(&b.run(), &[]);
}

// ------------------------------------------------------------ reorder

#[test]
fn later_send_landing_first_is_a_reorder() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 1), 0, 0)
        .ok(0, 110, v(0, 0), 0, 1)
        .ok(0, 120, v(0, 2), 0, 2)
        .poll(0, 200, 0, &[(0, v(0, 1)), (1, v(0, 0)), (2, v(0, 2))]);
    let r = b.run();
    assert_counts(&r, &[("reorder", 1)]);
    assert_eq!(
        examples(&r, "reorder"),
        [format!(
            "producer-0 sent value {} before value {}, but on orders-0 value {} landed at \
                 offset 0, before value {} at offset 1",
            v(0, 0),
            v(0, 1),
            v(0, 1),
            v(0, 0)
        )]
    );
}

#[test]
fn reorder_counts_each_later_value_once() {
    // 2 and 3 both land before 1; 3 lands after 2, which is fine between them.
    let mut b = B::default();
    b.ok(0, 100, v(0, 2), 0, 0)
        .ok(0, 100, v(0, 3), 0, 1)
        .ok(0, 100, v(0, 1), 0, 2)
        .poll(0, 200, 0, &[(0, v(0, 2)), (1, v(0, 3)), (2, v(0, 1))]);
    assert_counts(&b.run(), &[("reorder", 2)]);
}

#[test]
fn interleaving_of_two_producers_is_not_a_reorder() {
    let mut b = B::default();
    b.ok(1, 100, v(1, 0), 0, 0)
        .ok(0, 110, v(0, 0), 0, 1)
        .ok(0, 120, v(0, 1), 1, 0)
        .ok(0, 130, v(0, 2), 0, 2)
        .poll(0, 200, 0, &[(0, v(1, 0)), (1, v(0, 0)), (2, v(0, 2))])
        .poll(0, 210, 1, &[(0, v(0, 1))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn reorder_uses_the_lowest_observed_offset() {
    // v(0,1) is duplicated at offset 3, but first landed at 1, after v(0,0) at 0.
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 2).ok(0, 110, v(0, 1), 0, 3).poll(
        0,
        200,
        0,
        &[(1, v(0, 1)), (2, v(0, 0)), (3, v(0, 1))],
    );
    // v(0,1) at 1 < v(0,0) at 2: a reorder, and a duplicate.
    assert_counts(&b.run(), &[("duplicate", 1), ("reorder", 1)]);

    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0).ok(0, 110, v(0, 1), 0, 3).poll(
        0,
        200,
        0,
        &[(0, v(0, 0)), (1, v(0, 1)), (2, v(0, 0)), (3, v(0, 1))],
    );
    assert_counts(&b.run(), &[("duplicate", 2)]);
}

#[test]
fn examples_name_the_history_lines_they_involve() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 2).ok(0, 110, v(0, 1), 0, 3).poll(
        0,
        200,
        0,
        &[(1, v(0, 1)), (2, v(0, 0)), (3, v(0, 1))],
    );
    let snapshot = Snapshot {
        partitions: vec![partition(1, None, &[], vec![])],
        ..Snapshot::default()
    };
    let r = check(&b.h, &snapshot);
    let lines = |kind: &str| r.anomalies[kind].lines.clone();
    // The acknowledgement (line 1) and the read (line 2) of the duplicated value.
    assert_eq!(lines("duplicate"), [vec![1, 2]]);
    // Both sends of the reordered pair.
    assert_eq!(lines("reorder"), [vec![0, 1]]);
    // A finding from the snapshot has no history line.
    assert_eq!(lines("stuck"), [Vec::<u64>::new()]);
}

// ------------------------------------------------------------ nonmonotonic-poll

#[test]
fn going_back_without_seek_is_nonmonotonic() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 100, v(0, 1), 0, 1)
        .poll(0, 1_000, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .poll(0, 2_500, 0, &[(1, v(0, 1))]);
    let r = b.run();
    assert_counts(&r, &[("nonmonotonic-poll", 1)]);
    assert_eq!(
        examples(&r, "nonmonotonic-poll"),
        [
            "consumer-0 read offset 1 of orders-0 at 2.500 s right after offset 1 (read at \
              1.000 s), with no seek in between"
        ]
    );
}

#[test]
fn seek_resets_monotonicity() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 100, v(0, 1), 0, 1)
        .poll(0, 1_000, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .seek(0, 2_000, 0, 1)
        .poll(0, 2_500, 0, &[(1, v(0, 1))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn seek_on_another_partition_or_consumer_does_not_reset() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 100, v(0, 1), 0, 1)
        .poll(0, 1_000, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .seek(0, 2_000, 1, 0)
        .seek(1, 2_000, 0, 0)
        .poll(0, 2_500, 0, &[(0, v(0, 0))]);
    assert_counts(&b.run(), &[("nonmonotonic-poll", 1)]);
}

#[test]
fn out_of_order_records_within_one_poll_are_nonmonotonic() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0).ok(0, 100, v(0, 1), 0, 1).poll(
        0,
        1_000,
        0,
        &[(1, v(0, 1)), (0, v(0, 0))],
    );
    assert_counts(&b.run(), &[("nonmonotonic-poll", 1)]);
}

// ------------------------------------------------------------ poll-skip

#[test]
fn jumping_over_a_known_value_is_a_skip() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 1, 5)
        .ok(0, 110, v(0, 1), 1, 7)
        .ok(0, 120, v(0, 2), 1, 9)
        .poll(1, 200, 1, &[(5, v(0, 0)), (7, v(0, 1)), (9, v(0, 2))])
        .poll(0, 3_000, 1, &[(5, v(0, 0)), (9, v(0, 2))]);
    let r = b.run();
    assert_counts(&r, &[("poll-skip", 1)]);
    assert_eq!(
        examples(&r, "poll-skip"),
        [format!(
            "consumer-0 read offset 5 then read offset 9 of orders-1 (at 3.000 s), \
                 skipping offset 7 where value {} is known (acknowledged to producer-0 at \
                 0.110 s)",
            v(0, 1)
        )]
    );
}

#[test]
fn skip_is_found_from_a_value_read_later_in_the_history() {
    let mut b = B::default();
    b.info(0, 100, v(0, 0), 1)
        .info(0, 110, v(0, 1), 1)
        .info(0, 120, v(0, 2), 1)
        .poll(0, 200, 1, &[(5, v(0, 0))])
        .poll(0, 300, 1, &[(9, v(0, 2))])
        .poll(1, 400, 1, &[(7, v(0, 1))]);
    assert_counts(&b.run(), &[("poll-skip", 1)]);
}

#[test]
fn gap_with_no_known_value_is_not_a_skip() {
    // Offsets 6-8 hold nothing anyone saw (say, an indefinite write never read).
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 1, 5)
        .info(0, 110, v(0, 1), 1)
        .ok(0, 120, v(0, 2), 1, 9)
        .poll(0, 3_000, 1, &[(5, v(0, 0)), (9, v(0, 2))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn seek_over_a_known_value_is_not_a_skip() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 1, 5)
        .ok(0, 110, v(0, 1), 1, 7)
        .ok(0, 120, v(0, 2), 1, 9)
        .poll(1, 200, 1, &[(5, v(0, 0)), (7, v(0, 1)), (9, v(0, 2))])
        .poll(0, 3_000, 1, &[(5, v(0, 0))])
        .seek(0, 3_100, 1, 9)
        .poll(0, 3_200, 1, &[(9, v(0, 2))]);
    assert_counts(&b.run(), &[]);
}

// ------------------------------------------------------------ read-above-high-watermark

#[test]
fn a_record_at_or_above_the_responses_high_watermark_is_read_above_it() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 1, 0)
        .ok(0, 110, v(0, 1), 1, 1)
        .ok(0, 120, v(0, 2), 1, 2)
        .poll_hw(0, 200, 1, &[(0, v(0, 0)), (1, v(0, 1))], 1)
        .poll_hw(1, 210, 1, &[(0, v(0, 0)), (1, v(0, 1)), (2, v(0, 2))], 3);
    let r = b.run();
    assert_counts(&r, &[("read-above-high-watermark", 1)]);
    assert_eq!(
        examples(&r, "read-above-high-watermark"),
        [format!(
            "consumer-0 read offset 1 of orders-1 (value {}) from a fetch response whose \
                 high watermark is 1",
            v(0, 1)
        )]
    );
}

// ------------------------------------------------------------ phantom-read

#[test]
fn reading_unsent_or_failed_values_is_phantom() {
    let mut b = B::default();
    b.fail(0, 100, v(0, 0), 0)
        .poll(0, 200, 0, &[(0, v(0, 0)), (1, 4711)])
        .poll(1, 210, 0, &[(1, 4711)]);
    let r = b.run();
    assert_counts(&r, &[("phantom-read", 2)]);
    assert_eq!(
        examples(&r, "phantom-read"),
        [
            format!(
                "consumer-0 read value {} at offset 0 of orders-0 at 0.200 s, but its send \
                     failed with NOT_ENOUGH_REPLICAS at 0.100 s",
                v(0, 0)
            ),
            "consumer-0 read value 4711 at offset 1 of orders-0 at 0.200 s, but no producer \
                 ever sent it"
                .to_string(),
        ]
    );
}

#[test]
fn reading_indefinite_values_is_not_phantom() {
    // Read before its send even completed, and the send ended indefinite.
    let mut b = B::default();
    b.poll(0, 200, 0, &[(0, v(0, 0))]).info(0, 300, v(0, 0), 0);
    assert_counts(&b.run(), &[]);
}

// ------------------------------------------------------------ wrong-partition

#[test]
fn one_key_in_two_partitions_is_wrong() {
    let mut b = B::default();
    b.send(0, 100, Some("k3"), v(0, 0), 0, Outcome::Ok, Some(0))
        .send(0, 200, Some("k3"), v(0, 1), 1, Outcome::Ok, Some(0))
        .send(0, 300, Some("k3"), v(0, 2), 2, Outcome::Ok, Some(0))
        .poll(0, 400, 0, &[(0, v(0, 0))])
        .poll(0, 400, 1, &[(0, v(0, 1))])
        .poll(0, 400, 2, &[(0, v(0, 2))]);
    let r = b.run();
    assert_counts(&r, &[("wrong-partition", 1)]);
    assert_eq!(
        examples(&r, "wrong-partition"),
        [format!(
            "key k3 was sent to orders-0 (value {} at 0.100 s) and to orders-1 (value {} \
                 at 0.200 s)",
            v(0, 0),
            v(0, 1)
        )]
    );
}

#[test]
fn one_key_in_two_topics_is_fine() {
    let mut b = B::default();
    let other = TopicPartition::new("payments", 1);
    b.send(0, 100, Some("k3"), v(0, 0), 0, Outcome::Ok, Some(0));
    b.h.push(Entry {
        index: 0,
        process: NodeId::Producer(0),
        invoke_ms: 150,
        complete_ms: Some(160),
        outcome: Outcome::Ok,
        op: Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: Some("k3".into()),
            value: v(0, 1),
            partition: other.clone(),
            offset: Some(0),
            attempts: 1,
        },
    });
    b.poll(0, 400, 0, &[(0, v(0, 0))]);
    b.h.push(Entry::instant(
        NodeId::Consumer(0),
        400,
        Op::Poll {
            read_committed: false,
            partition: other,
            records: vec![ReadRecord {
                offset: 0,
                key: Some("k3".into()),
                value: v(0, 1),
                headers: Vec::new(),
            }],
            high_watermark: 1,
        },
    ));
    assert_counts(&b.run(), &[]);
}

#[test]
fn a_send_that_never_chose_a_partition_is_not_wrong_anywhere() {
    let mut b = B::default();
    let info = Outcome::Info {
        reason: "the process crashed".into(),
    };
    let unknown = crate::history::UNKNOWN_PARTITION;
    b.send(0, 100, Some("k0"), v(0, 0), unknown, info, None)
        .poll(1, 300, 1, &[(0, v(0, 0))]);
    assert_counts(&b.run(), &[]);
}

#[test]
fn value_read_from_another_partition_is_wrong() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .poll(0, 200, 0, &[(0, v(0, 0))])
        .poll(1, 300, 1, &[(0, v(0, 0))]);
    let r = b.run();
    assert_counts(&r, &[("wrong-partition", 1)]);
    assert_eq!(
        examples(&r, "wrong-partition"),
        [format!(
            "consumer-1 read value {} (key k0) at offset 0 of orders-1 at 0.300 s, but \
                 producer-0 sent it to orders-0",
            v(0, 0)
        )]
    );
}

#[test]
fn same_key_same_partition_and_unkeyed_sends_are_fine() {
    let mut b = B::default();
    b.send(0, 100, Some("k3"), v(0, 0), 0, Outcome::Ok, Some(0))
        .send(0, 200, Some("k3"), v(0, 1), 0, Outcome::Ok, Some(1))
        .send(0, 300, None, v(0, 2), 1, Outcome::Ok, Some(0))
        .send(0, 400, None, v(0, 3), 2, Outcome::Ok, Some(0))
        .poll(0, 500, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .poll(0, 500, 1, &[(0, v(0, 2))])
        .poll(0, 500, 2, &[(0, v(0, 3))]);
    assert_counts(&b.run(), &[]);
}

// ------------------------------------------------------------ high-watermark-regression

#[test]
fn high_watermark_going_down_is_a_regression() {
    let mut b = B::default();
    b.hw(0, 3_000, 0, 50, 1)
        .hw(0, 4_000, 0, 45, 2)
        .hw(0, 5_000, 0, 60, 2);
    let r = b.run();
    assert_counts(&r, &[("high-watermark-regression", 1)]);
    assert_eq!(
        examples(&r, "high-watermark-regression"),
        [
            "consumer-0 saw the high watermark of orders-0 drop from 50 (broker-1 at 3.000 s) \
              to 45 (broker-2 at 4.000 s)"
        ]
    );
}

#[test]
fn equal_or_lower_high_watermark_elsewhere_is_not_a_regression() {
    let mut b = B::default();
    b.hw(0, 3_000, 0, 50, 1)
        .hw(0, 3_500, 0, 50, 2)
        .hw(1, 4_000, 0, 45, 2)
        .hw(0, 4_500, 1, 10, 2)
        .hw(0, 5_000, 0, 60, 2);
    assert_counts(&b.run(), &[]);
}

/// A restarted producer application sends again what its dead process had not seen
/// acknowledged: one copy per producer session is `restart-duplicate`, a read of either
/// copy is no phantom and no wrong partition, and a third copy is a `duplicate`.
#[test]
fn a_value_resent_after_a_crash_is_a_restart_duplicate() {
    let info = || Outcome::Info {
        reason: "the process crashed".into(),
    };
    let mut b = B::default();
    b.send(0, 100, None, v(0, 0), 0, info(), None)
        .send(0, 300, None, v(0, 0), 1, Outcome::Ok, Some(0))
        .poll(1, 400, 0, &[(0, v(0, 0))])
        .poll(1, 400, 1, &[(0, v(0, 0))]);
    assert_counts(&b.run(), &[]);
    let mut b = B::default();
    b.send(0, 100, None, v(0, 0), 0, info(), None)
        .send(0, 300, None, v(0, 0), 0, Outcome::Ok, Some(1))
        .poll(1, 400, 0, &[(0, v(0, 0)), (1, v(0, 0))]);
    assert_counts(&b.run(), &[("restart-duplicate", 1)]);
    b.poll(1, 500, 0, &[(2, v(0, 0))]);
    assert_counts(&b.run(), &[("duplicate", 1), ("restart-duplicate", 1)]);
}
