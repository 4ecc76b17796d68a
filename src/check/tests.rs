//! Unit tests of `check`.

use super::*;
use crate::history::{GroupSnapshot, ReadRecord, ReplicaSnapshot, SendTimeout, TxnId};

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

// ------------------------------------------------------------ snapshot: stuck, divergence

fn replica(broker: u32, hw: Offset, records: &[(Offset, Value)]) -> ReplicaSnapshot {
    ReplicaSnapshot {
        txn_batches: Vec::new(),
        markers: Vec::new(),
        last_stable_offset: 0,
        broker,
        log_end_offset: records.last().map_or(0, |r| r.0 + 1),
        high_watermark: hw,
        records: records.to_vec(),
    }
}

fn partition(
    part: u32,
    leader: Option<u32>,
    isr: &[u32],
    replicas: Vec<ReplicaSnapshot>,
) -> PartitionSnapshot {
    PartitionSnapshot {
        partition: tp(part),
        leader,
        isr: isr.to_vec(),
        replicas,
    }
}

#[test]
fn unread_write_missing_from_the_final_leader_log_is_lost() {
    // acks=1 at the tail: acknowledged at offset 1, truncated away, nothing after it.
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 110, v(0, 1), 0, 1)
        .poll(0, 200, 0, &[(0, v(0, 0))]);
    let truncated = Snapshot {
        partitions: vec![partition(
            0,
            Some(2),
            &[2],
            vec![replica(2, 1, &[(0, v(0, 0))])],
        )],
        consumer_positions: vec![(0, tp(0), 1)],
        ..Snapshot::default()
    };
    let r = check(&b.h, &truncated);
    assert_counts(&r, &[("lost-write", 1)]);
    assert_eq!(
        examples(&r, "lost-write"),
        [format!(
            "value {} (key k0) was acknowledged at offset 1 of orders-0 at 0.110 s, never \
                 read, and is not in the final log of its leader broker-2",
            v(0, 1)
        )]
    );
    // Still in the leader's log (above its high watermark): only unseen (and stuck
    // is not reported, the consumer is at the high watermark).
    let kept = Snapshot {
        partitions: vec![partition(
            0,
            Some(2),
            &[2],
            vec![replica(2, 1, &[(0, v(0, 0)), (1, v(0, 1))])],
        )],
        consumer_positions: vec![(0, tp(0), 1)],
        ..Snapshot::default()
    };
    assert_counts(&check(&b.h, &kept), &[("unseen", 1)]);
}

#[test]
fn consumer_behind_the_high_watermark_or_no_leader_is_stuck() {
    let log = [(0, 10), (1, 11), (2, 12)];
    let snapshot = Snapshot {
        partitions: vec![
            partition(
                0,
                Some(1),
                &[1, 2],
                vec![replica(1, 3, &log), replica(2, 3, &log)],
            ),
            partition(1, None, &[], vec![replica(1, 0, &[])]),
        ],
        consumer_positions: vec![(0, tp(0), 2), (1, tp(0), 3), (0, tp(1), 0)],
        ..Snapshot::default()
    };
    let r = check(&History::default(), &snapshot);
    assert_counts(&r, &[("stuck", 2)]);
    assert_eq!(
        examples(&r, "stuck"),
        [
            "orders-1 has no leader at the end",
            "consumer-0 ended at position 2 of orders-0, below the high watermark 3 of its \
                 leader broker-1",
        ]
    );
}

#[test]
fn consumers_at_the_high_watermark_are_not_stuck() {
    let log = [(0, 10), (1, 11), (2, 12)];
    let snapshot = Snapshot {
        partitions: vec![partition(
            0,
            Some(1),
            &[1, 2],
            vec![replica(1, 3, &log), replica(2, 3, &log)],
        )],
        consumer_positions: vec![(0, tp(0), 3), (1, tp(0), 3)],
        ..Snapshot::default()
    };
    assert_counts(&check(&History::default(), &snapshot), &[]);
}

#[test]
fn in_sync_replicas_disagreeing_below_the_high_watermark_diverge() {
    let snapshot = Snapshot {
        partitions: vec![partition(
            2,
            Some(1),
            &[1, 2],
            vec![
                replica(1, 3, &[(0, 10), (1, 11), (2, 12)]),
                replica(2, 3, &[(0, 10), (1, 99)]),
            ],
        )],
        consumer_positions: vec![],
        ..Snapshot::default()
    };
    let r = check(&History::default(), &snapshot);
    assert_counts(&r, &[("replica-divergence", 2)]);
    assert_eq!(
        examples(&r, "replica-divergence"),
        [
            "in-sync replicas of orders-2 disagree at offset 1, below the leader's high \
                 watermark 3: broker-1 holds value 11, broker-2 holds value 99",
            "in-sync replicas of orders-2 disagree at offset 2, below the leader's high \
                 watermark 3: broker-1 holds value 12, broker-2 holds nothing",
        ]
    );
}

#[test]
fn divergence_outside_the_isr_or_above_the_high_watermark_is_fine() {
    let snapshot = Snapshot {
        partitions: vec![partition(
            2,
            Some(1),
            &[1, 2],
            vec![
                replica(1, 2, &[(0, 10), (1, 11), (2, 12)]),
                replica(2, 2, &[(0, 10), (1, 11), (2, 77), (3, 78)]),
                replica(3, 1, &[(0, 10), (1, 55)]),
            ],
        )],
        consumer_positions: vec![],
        ..Snapshot::default()
    };
    assert_counts(&check(&History::default(), &snapshot), &[]);
}

// ------------------------------------------------------------ API, determinism, scale

// ------------------------------------------------------------ undetected-truncation

/// The final log of `orders-0` after an unclean election: offsets 0 and 1 as the
/// old leader had them, then the new leader's records (values 4, 5, 6 at 2, 3, 4).
fn diverged_final_log() -> Snapshot {
    let log = [
        (0, v(0, 0)),
        (1, v(0, 1)),
        (2, v(0, 4)),
        (3, v(0, 5)),
        (4, v(0, 6)),
    ];
    Snapshot {
        partitions: vec![partition(0, Some(2), &[2], vec![replica(2, 5, &log)])],
        ..Snapshot::default()
    }
}

/// A consumer that read the old leader's offsets 0-3 (values 0-3).
fn read_old_leader(b: &mut B, consumer: u32) {
    b.poll(consumer, 100, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .poll(consumer, 200, 0, &[(2, v(0, 2)), (3, v(0, 3))]);
}

fn truncations(r: &CheckResult) -> u64 {
    r.anomalies
        .get("undetected-truncation")
        .map_or(0, |a| a.count)
}

#[test]
fn going_on_past_a_truncation_without_seeking_back_is_undetected() {
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.poll(0, 300, 0, &[(4, v(0, 6))]);
    let r = check(&b.h, &diverged_final_log());
    assert_eq!(truncations(&r), 1);
    assert_eq!(
        examples(&r, "undetected-truncation"),
        [format!(
            "consumer-0 read value {} at offset 2 of orders-0 at 0.200 s (the final log \
                 holds value {} there), then read offset 4 at 0.300 s without seeking back to \
                 offset 2 or below",
            v(0, 2),
            v(0, 4)
        )]
    );
    assert_eq!(r.anomalies["undetected-truncation"].lines, vec![vec![1, 2]]);
}

#[test]
fn seeking_back_to_the_divergence_point_detects_the_truncation() {
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.seek(0, 250, 0, 2)
        .poll(0, 300, 0, &[(2, v(0, 4)), (3, v(0, 5)), (4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
    // Seeking further back (a reset to earliest) is as good.
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.seek(0, 250, 0, 0)
        .poll(0, 300, 0, &[(0, v(0, 0)), (4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
}

#[test]
fn seeking_above_the_first_diverged_read_is_not_enough() {
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.seek(0, 250, 0, 3).poll(0, 300, 0, &[(3, v(0, 5))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 1);
}

#[test]
fn truncation_is_counted_once_per_consumer_and_partition() {
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    read_old_leader(&mut b, 1);
    b.poll(0, 300, 0, &[(4, v(0, 6))])
        .poll(0, 400, 0, &[(5, v(0, 7))])
        .poll(1, 300, 0, &[(4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 2);
}

#[test]
fn reads_of_the_diverged_log_alone_or_of_another_consumer_are_fine() {
    // Never reached the new log: nothing went on past the truncation (yet).
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
    // Another consumer reading the new log is not the one that read the old.
    b.poll(1, 300, 0, &[(3, v(0, 5)), (4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
    // A partition without a leader at the end has no final log to compare with.
    b.poll(0, 400, 0, &[(4, v(0, 6))]);
    let leaderless = Snapshot {
        partitions: vec![partition(0, None, &[], Vec::new())],
        ..Snapshot::default()
    };
    assert_eq!(truncations(&check(&b.h, &leaderless)), 0);
}

#[test]
fn every_kind_is_described() {
    let unknown = describe("no-such-kind");
    let descriptions: BTreeSet<&str> = ANOMALY_KINDS
        .iter()
        .chain(EVENT_KINDS)
        .map(|k| describe(k))
        .collect();
    assert_eq!(descriptions.len(), ANOMALY_KINDS.len() + EVENT_KINDS.len());
    assert!(!descriptions.contains(unknown));
}

#[test]
fn result_survives_jsonl_and_json_round_trips() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 0)
        .ok(0, 100, v(0, 1), 0, 1)
        .poll(0, 200, 0, &[(1, v(0, 1)), (0, v(0, 0))])
        .poll(0, 200, 1, &[(0, 4711)])
        .poll(0, 200, 2, &[(0, v(0, 1))]);
    let r = b.run();
    let reread = History::from_jsonl(&b.h.to_jsonl()).expect("history parses");
    assert_eq!(check(&reread, &Snapshot::default()), r);
    let json = serde_json::to_string(&r).expect("result serializes");
    let back: CheckResult = serde_json::from_str(&json).expect("result parses");
    assert_eq!(back, r);
    assert_counts(
        &r,
        &[
            ("nonmonotonic-poll", 1),
            ("phantom-read", 1),
            ("wrong-partition", 1),
        ],
    );
}

#[test]
fn large_clean_history_checks_fast_and_deterministically() {
    // 2 producers x 25,000 sends over 4 partitions, 2 consumers reading everything in
    // polls of 50: 50,000 sends and 2,000 polls of 100,000 records in all.
    let mut b = B::default();
    let mut next_offset = [0i64; 4];
    let mut logs: Vec<Vec<(Offset, Value)>> = vec![Vec::new(); 4];
    for n in 0..25_000u32 {
        for p in 0..2u32 {
            let part = (n + p) % 4;
            let offset = next_offset[part as usize];
            next_offset[part as usize] += 1;
            b.ok(p, u64::from(n), v(p, n), part, offset);
            logs[part as usize].push((offset, v(p, n)));
        }
    }
    for c in 0..2 {
        for (part, log) in logs.iter().enumerate() {
            for chunk in log.chunks(50) {
                b.poll(c, 30_000, part as u32, chunk);
            }
        }
    }
    let start = std::time::Instant::now();
    let r = b.run();
    let elapsed = start.elapsed();
    assert_counts(&r, &[]);
    assert_eq!(r.stats.sends, 50_000);
    assert_eq!(r.stats.records_read, 100_000);
    assert_eq!(r.stats.polls, 2_000);
    assert_eq!(b.run(), r);
    assert!(elapsed.as_secs() < 20, "checking took {elapsed:?}");
}

// ------------------------------------------------------------ client timeouts

/// A failed send ended by the client-side timeout `timeout` after `attempts`.
fn timed_out(b: &mut B, t: Millis, value: Value, attempts: u32, timeout: SendTimeout) {
    let error = match timeout {
        SendTimeout::BlockedOnMemory => "TimeoutException: Failed to allocate 16384 bytes \
                 within the configured max blocking time 5000 ms."
            .to_string(),
        SendTimeout::BlockedOnMetadata => {
            "TimeoutException: Topic orders not present in metadata after 5000 ms.".into()
        }
        SendTimeout::Expired => "TimeoutException: Expiring 1 record(s) for orders-0:20000 \
                 ms has passed since batch creation"
            .into(),
    };
    let op = Op::Send {
        txn: None,
        timeout: Some(timeout),
        headers: Vec::new(),
        key: Some("k0".into()),
        value,
        partition: tp(0),
        offset: None,
        attempts,
    };
    b.push(NodeId::Producer(0), t, Outcome::Fail { error }, op);
}

/// Kafka throws `TimeoutException` both when `send()` blocks for max.block.ms
/// (`KafkaProducer.waitOnMetadata`, `BufferPool.allocate`) and when a batch that was
/// never sent expires in the accumulator (`RecordAccumulator.expiredBatches`): only
/// the first is a `send-timeout`, whatever the message or the attempt count says.
#[test]
fn a_batch_expired_in_the_accumulator_is_not_a_blocked_send() {
    let mut b = B::default();
    timed_out(&mut b, 10, v(0, 1), 0, SendTimeout::Expired);
    timed_out(&mut b, 20, v(0, 2), 0, SendTimeout::Expired);
    timed_out(&mut b, 30, v(0, 3), 0, SendTimeout::BlockedOnMemory);
    timed_out(&mut b, 40, v(0, 4), 0, SendTimeout::BlockedOnMetadata);
    timed_out(&mut b, 50, v(0, 5), 3, SendTimeout::Expired);
    // Sent once and expired: neither blocked nor retried.
    timed_out(&mut b, 60, v(0, 6), 1, SendTimeout::Expired);
    // A TimeoutException message without a recorded timeout (a transaction abort
    // passing the error on) counts as none of them.
    let error = "TimeoutException: delivery.timeout.ms".to_string();
    b.send(0, 70, Some("k0"), v(0, 7), 0, Outcome::Fail { error }, None);
    let r = b.run();
    assert_counts(
        &r,
        &[
            ("expired-after-retries", 1),
            ("expired-unsent", 2),
            ("send-timeout", 2),
        ],
    );
    assert!(examples(&r, "expired-unsent")[0].contains("without being sent"));
    assert!(examples(&r, "send-timeout")[0].contains("Failed to allocate"));
    assert!(examples(&r, "send-timeout")[1].contains("not present in metadata"));
}

#[test]
fn the_timeout_cause_survives_the_history_file() {
    let mut b = B::default();
    timed_out(&mut b, 10, v(0, 1), 0, SendTimeout::Expired);
    timed_out(&mut b, 20, v(0, 2), 0, SendTimeout::BlockedOnMemory);
    let line = b.h.to_jsonl();
    assert!(line.contains(r#""timeout":"expired""#), "{line}");
    assert!(line.contains(r#""timeout":"blocked_on_memory""#), "{line}");
    let back = History::from_jsonl(&line).expect("parses");
    assert_eq!(check(&back, &Snapshot::default()), b.run());
}

// ------------------------------------------------------------ Jepsen's kafka_test.clj

/// Jepsen `poll-skip-test`, "txn abort" / "good": a consumer reads 0, reads 1 and 2
/// in a transaction that aborts, rewinds (a seek back to 1), and reads 1 and 2 again.
#[test]
fn jepsen_poll_skip_txn_abort_good() {
    let mut b = B::default();
    for n in 0..3 {
        b.ok(0, 100, v(0, n), 0, Offset::from(n));
    }
    b.poll(1, 200, 0, &[(0, v(0, 0))])
        .poll(1, 300, 0, &[(1, v(0, 1)), (2, v(0, 2))])
        .seek(1, 400, 0, 1)
        .poll(1, 500, 0, &[(1, v(0, 1)), (2, v(0, 2))]);
    assert_counts(&b.run(), &[]);
}

/// Jepsen `poll-skip-test`, "txn abort" / "abort doesn't roll back": each aborted
/// transaction rewinds the consumer (a seek back to 1), yet it then reads 3, and
/// later 5: both skip 1 and 2 (a seek sets the position, it does not forget it).
#[test]
fn jepsen_poll_skip_txn_abort_doesnt_roll_back() {
    let mut b = B::default();
    for n in 0..6 {
        b.ok(0, 100, v(0, n), 0, Offset::from(n));
    }
    b.poll(1, 200, 0, &[(0, v(0, 0))])
        .poll(1, 300, 0, &[(1, v(0, 1)), (2, v(0, 2))])
        .seek(1, 400, 0, 1)
        .poll(1, 500, 0, &[(3, v(0, 3)), (4, v(0, 4))])
        .seek(1, 600, 0, 1)
        .poll(1, 700, 0, &[(5, v(0, 5))]);
    let r = b.run();
    assert_counts(&r, &[("poll-skip", 2)]);
    assert_eq!(
        examples(&r, "poll-skip"),
        [
            format!(
                "consumer-1 sought to offset 1 (at 0.400 s) then read offset 3 of orders-0 \
                     (at 0.500 s), skipping offset 1 where value {} is known (acknowledged to \
                     producer-0 at 0.100 s)",
                v(0, 1)
            ),
            format!(
                "consumer-1 sought to offset 1 (at 0.600 s) then read offset 5 of orders-0 \
                     (at 0.700 s), skipping offset 1 where value {} is known (acknowledged to \
                     producer-0 at 0.100 s)",
                v(0, 1)
            ),
        ]
    );
    // A seek forward past known values is no skip; reading below the position
    // just set is a step back.
    let mut b = B::default();
    for n in 0..6 {
        b.ok(0, 100, v(0, n), 0, Offset::from(n));
    }
    let all: Vec<(Offset, Value)> = (0..6).map(|n| (Offset::from(n), v(0, n))).collect();
    b.poll(2, 150, 0, &all)
        .poll(1, 200, 0, &[(0, v(0, 0))])
        .seek(1, 300, 0, 4)
        .poll(1, 400, 0, &[(4, v(0, 4))])
        .seek(1, 500, 0, 5)
        .poll(1, 600, 0, &[(3, v(0, 3))]);
    let r = b.run();
    assert_counts(&r, &[("nonmonotonic-poll", 1)]);
    assert_eq!(
        examples(&r, "nonmonotonic-poll"),
        [
            "consumer-1 read offset 3 of orders-0 at 0.600 s right after seeking to offset 5 \
              (at 0.500 s)"
        ]
    );
}

/// A transactional send of `value` to orders-0, acknowledged at `offset`.
fn txn_send(b: &mut B, t: Millis, txn: TxnId, value: Value, offset: Offset) {
    let op = Op::Send {
        txn: Some(txn),
        timeout: None,
        headers: Vec::new(),
        key: Some("k0".into()),
        value,
        partition: tp(0),
        offset: Some(offset),
        attempts: 1,
    };
    b.push(NodeId::Producer(0), t, Outcome::Ok, op);
}

fn end_txn(b: &mut B, t: Millis, txn: TxnId, commit: bool) {
    let op = Op::EndTxn {
        transactional_id: "tx".into(),
        txn,
        producer_id: 7,
        producer_epoch: 0,
        commit,
        partitions: vec![tp(0)],
        group: None,
        offsets: Vec::new(),
    };
    b.push(NodeId::Producer(0), t, Outcome::Ok, op);
}

fn begin_txn(b: &mut B, t: Millis, txn: TxnId) {
    let op = Op::BeginTxn {
        transactional_id: "tx".into(),
        txn,
        producer_id: 7,
        producer_epoch: 0,
    };
    b.push(NodeId::Producer(0), t, Outcome::Ok, op);
}

/// Jepsen `duplicate-test`, "aborted txns": 0 is written at offset 1; 1 is sent in a
/// transaction that aborts, though the broker gave it offset 2; a read sees 0 at 11
/// and 1 at 12. 0 is a duplicate; 1 is not (its write never happened), and neither
/// is it a lost write when the final log lacks it: an aborted transaction's
/// acknowledgement promises nothing, and it was no `acks=0` send (it had an offset).
#[test]
fn jepsen_duplicate_aborted_txns() {
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 1);
    begin_txn(&mut b, 110, 1);
    txn_send(&mut b, 120, 1, v(0, 1), 2);
    end_txn(&mut b, 130, 1, false);
    b.poll(1, 200, 0, &[(11, v(0, 0)), (12, v(0, 1))]);
    let snapshot = Snapshot {
        partitions: vec![partition(
            0,
            Some(1),
            &[1],
            vec![replica(1, 12, &[(1, v(0, 0)), (11, v(0, 0))])],
        )],
        ..Snapshot::default()
    };
    let r = check(&b.h, &snapshot);
    assert_eq!(r.anomalies.get("lost-write"), None, "{r:?}");
    assert_eq!(r.anomalies["duplicate"].count, 1, "{r:?}");
    assert!(examples(&r, "duplicate")[0].contains(&format!("value {}", v(0, 0))));
    // Committed instead, the same acknowledged send missing from the final log is
    // lost at its offset.
    let mut b = B::default();
    b.ok(0, 100, v(0, 0), 0, 1);
    begin_txn(&mut b, 110, 1);
    txn_send(&mut b, 120, 1, v(0, 1), 2);
    end_txn(&mut b, 130, 1, true);
    let r = check(&b.h, &snapshot);
    assert_eq!(
        examples(&r, "lost-write"),
        [format!(
            "value {} (key k0) was acknowledged at offset 2 of orders-0 at 0.120 s, never \
                 read, and is not in the final log of its leader broker-1",
            v(0, 1)
        )]
    );
}

// ------------------------------------------------------------ headers (C1)

/// Record batch v2 carries each record's headers verbatim (KIP-82,
/// `DefaultRecord.writeTo` / `readFrom`): a read must see the headers sent.
#[test]
fn a_record_read_with_other_headers_than_sent_is_a_header_mismatch() {
    let hdr = |value: Value| crate::history::headers_for(value, 2);
    let mut b = B::default();
    for n in 0..3 {
        let op = Op::Send {
            txn: None,
            timeout: None,
            headers: hdr(v(0, n)),
            key: Some("k0".into()),
            value: v(0, n),
            partition: tp(0),
            offset: Some(Offset::from(n)),
            attempts: 1,
        };
        b.push(NodeId::Producer(0), 100, Outcome::Ok, op);
    }
    let read = |n: u32, headers: Headers| ReadRecord {
        offset: Offset::from(n),
        key: Some("k0".into()),
        value: v(0, n),
        headers,
    };
    let poll = |records: Vec<ReadRecord>| Op::Poll {
        read_committed: false,
        partition: tp(0),
        high_watermark: 3,
        records,
    };
    // Right headers; value 1's headers in another order; value 2's of value 0.
    let mut swapped = hdr(v(0, 1));
    swapped.reverse();
    b.push(
        NodeId::Consumer(0),
        200,
        Outcome::Ok,
        poll(vec![
            read(0, hdr(v(0, 0))),
            read(1, swapped),
            read(2, hdr(v(0, 0))),
        ]),
    );
    // Read again by another consumer, without headers: counted once per value.
    b.push(
        NodeId::Consumer(1),
        300,
        Outcome::Ok,
        poll(vec![read(1, Vec::new())]),
    );
    let r = b.run();
    assert_counts(&r, &[("header-mismatch", 2)]);
    assert_eq!(
        examples(&r, "header-mismatch")[0],
        format!(
            "consumer-0 read value {v1} at offset 1 of orders-0 at 0.200 s with headers \
                 [(\"h1\", None), (\"h0\", Some(\"{v1}.0\"))], but producer-0 sent it with \
                 headers [(\"h0\", Some(\"{v1}.0\")), (\"h1\", None)]",
            v1 = v(0, 1)
        )
    );
    // The same headers everywhere: nothing.
    let mut b = B::default();
    let op = Op::Send {
        txn: None,
        timeout: None,
        headers: hdr(7),
        key: None,
        value: 7,
        partition: tp(0),
        offset: Some(0),
        attempts: 1,
    };
    b.push(NodeId::Producer(0), 100, Outcome::Ok, op);
    let op = Op::Poll {
        read_committed: false,
        partition: tp(0),
        high_watermark: 1,
        records: vec![ReadRecord {
            offset: 0,
            key: None,
            value: 7,
            headers: hdr(7),
        }],
    };
    b.push(NodeId::Consumer(0), 200, Outcome::Ok, op);
    assert_counts(&b.run(), &[]);
}
