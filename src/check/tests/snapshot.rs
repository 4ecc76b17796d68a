//! Checks against the end-of-run snapshot: lost writes, stuck consumers, divergent replicas, undetected truncation, and the rest of the API.

use super::*;

pub(super) fn replica(broker: u32, hw: Offset, records: &[(Offset, Value)]) -> ReplicaSnapshot {
    ReplicaSnapshot {
        txn_batches: Vec::new(),
        markers: Vec::new(),
        last_stable_offset: 0,
        broker,
        log_end_offset: records.last().map_or(0, |r| r.0 + 1),
        high_watermark: hw,
        records: records.to_vec(),
        corrupt: Vec::new(),
    }
}

pub(super) fn partition(
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
pub(super) fn diverged_final_log() -> Snapshot {
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
pub(super) fn read_old_leader(b: &mut B, consumer: u32) {
    b.poll(consumer, 100, 0, &[(0, v(0, 0)), (1, v(0, 1))])
        .poll(consumer, 200, 0, &[(2, v(0, 2)), (3, v(0, 3))]);
}

pub(super) fn truncations(r: &CheckResult) -> u64 {
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
fn a_new_assignment_starts_from_the_group_not_from_the_truncated_reads() {
    // The partition is assigned anew and the consumer starts from the committed offset
    // another member committed on the new log: not a truncation it went on from.
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.push(
        NodeId::Consumer(0),
        250,
        Outcome::Ok,
        Op::Assigned {
            group: "g".into(),
            member: "m".into(),
            generation: 2,
            partitions: vec![tp(0)],
        },
    );
    b.seek(0, 260, 0, 4).poll(0, 300, 0, &[(4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
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

/// The controller's record of a new leader for `orders-0`.
fn leader_change(b: &mut B, t: Millis, leader: u32, leader_epoch: i32) {
    b.push(
        NodeId::Controller,
        t,
        Outcome::Ok,
        Op::PartitionChange {
            partition: tp(0),
            leader: Some(leader),
            leader_epoch,
            isr: vec![leader],
            elr: Vec::new(),
            unclean: true,
        },
    );
}

#[test]
fn a_read_of_the_old_log_that_matches_the_final_log_by_chance_is_not_past_the_truncation() {
    // Seed 85739 of `explore`: a retried send landed at offset 4 of the old log and
    // again at offset 4 of the new one. The consumer's read of it came before the
    // leader change, so it was of the old log: not a crossing into the new one.
    let mut b = B::default();
    read_old_leader(&mut b, 0);
    b.poll(0, 300, 0, &[(4, v(0, 6))]);
    leader_change(&mut b, 400, 2, 1);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
    // A read after the leader change is of the new log.
    b.poll(0, 500, 0, &[(5, v(0, 7))]);
    let mut log = diverged_final_log();
    log.partitions[0].replicas[0].records.push((5, v(0, 7)));
    let r = check(&b.h, &log);
    assert_eq!(truncations(&r), 1);
    assert_eq!(r.anomalies["undetected-truncation"].lines, vec![vec![1, 4]]);
    // So is a read after a power loss took the log's tail, or after recovery cut it.
    for event in [
        Op::LogPowerLoss {
            partition: tp(0),
            log_end_offset: 5,
            durable_end_offset: 2,
            torn: false,
        },
        Op::LogRecovered {
            partition: tp(0),
            from: 0,
            log_end_offset: 2,
            reason: "torn write at offset 2".into(),
        },
    ] {
        let mut b = B::default();
        read_old_leader(&mut b, 0);
        b.push(NodeId::Broker(1), 250, Outcome::Ok, event.clone());
        b.poll(0, 300, 0, &[(4, v(0, 6))]);
        assert_eq!(
            truncations(&check(&b.h, &diverged_final_log())),
            1,
            "{event:?}"
        );
    }
}

#[test]
fn a_read_from_another_broker_is_past_the_truncation() {
    // The consumer read a zombie leader's log after the controller had moved the
    // partition (the change is before both reads), then its fetches went to the new
    // leader: a different log, whatever the events say.
    let observe = |b: &mut B, t: Millis, hw: Offset, broker: u32| {
        b.push(
            NodeId::Consumer(0),
            t,
            Outcome::Ok,
            Op::ObserveHighWatermark {
                partition: tp(0),
                high_watermark: hw,
                last_stable_offset: None,
                broker: NodeId::Broker(broker),
            },
        );
    };
    let mut b = B::default();
    leader_change(&mut b, 50, 2, 1);
    observe(&mut b, 100, 4, 1);
    read_old_leader(&mut b, 0);
    b.poll(0, 250, 0, &[(4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 0);
    observe(&mut b, 300, 5, 2);
    b.poll(0, 300, 0, &[(4, v(0, 6))]);
    assert_eq!(truncations(&check(&b.h, &diverged_final_log())), 1);
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
pub(super) fn timed_out(b: &mut B, t: Millis, value: Value, attempts: u32, timeout: SendTimeout) {
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
        timestamp: None,
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
pub(super) fn txn_send(b: &mut B, t: Millis, txn: TxnId, value: Value, offset: Offset) {
    let op = Op::Send {
        timestamp: None,
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

pub(super) fn end_txn(b: &mut B, t: Millis, txn: TxnId, commit: bool) {
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

pub(super) fn begin_txn(b: &mut B, t: Millis, txn: TxnId) {
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
            timestamp: None,
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
        timestamp: None,
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
