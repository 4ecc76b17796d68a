//! read_committed reads, offsetsForTimes lookups, corrupt batches and randomized runs over a scripted log.

use super::*;

/// A transactional batch of producer `producer_id` at `base`.
pub(super) fn txn_batch(base: Offset, producer_id: i64, values: &[u64]) -> Bytes {
    let (b, _) = RecordBatch::decode(&batch(base, values)).unwrap();
    RecordBatch {
        attributes: crate::kafka::record::TRANSACTIONAL_BIT,
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
        ..b
    }
    .encode()
}

/// A marker of producer `producer_id` at `offset`.
pub(super) fn marker_batch(offset: Offset, producer_id: i64, commit: bool) -> Bytes {
    let marker = EndTransactionMarker {
        control_type: if commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        },
        coordinator_epoch: 0,
    };
    RecordBatch {
        base_offset: offset,
        ..marker.to_batch(producer_id, 0, 0)
    }
    .encode()
}

/// Producer 7 aborts (0-1, marker 3) while 8 commits (2, marker 4); then a record
/// outside transactions (5) and producer 7's next transaction, committed (6, 7).
pub(super) fn transactional_fetch() -> Response {
    let Response::Fetch(mut f) = fetch_answer(
        tp(0),
        ErrorCode::None,
        8,
        vec![
            txn_batch(0, 7, &[100, 101]),
            txn_batch(2, 8, &[200]),
            marker_batch(3, 7, false),
            marker_batch(4, 8, true),
            batch(5, &[300]),
            txn_batch(6, 7, &[400]),
            marker_batch(7, 7, true),
        ],
    ) else {
        unreachable!()
    };
    f.partitions[0].aborted_transactions = vec![AbortedTransaction {
        producer_id: 7,
        first_offset: 0,
    }];
    Response::Fetch(f)
}

pub(super) fn polled(out: &Outbox) -> Vec<(Vec<Offset>, bool)> {
    ops(out)
        .into_iter()
        .filter_map(|o| match o {
            Op::Poll {
                records,
                read_committed,
                ..
            } => Some((records.iter().map(|r| r.offset).collect(), read_committed)),
            _ => None,
        })
        .collect()
}

#[test]
fn read_committed_drops_aborted_transactions_and_never_returns_markers() {
    let committed = ConsumerConfig {
        isolation_level: IsolationLevel::ReadCommitted,
        ..config(AutoOffsetReset::Earliest)
    };
    let (mut c, mut out, (b, cid, f)) = fetching(committed, 0);
    assert_eq!(f.isolation_level, IsolationLevel::ReadCommitted);
    respond(&mut c, 3, b, cid, transactional_fetch(), &mut out);
    assert_eq!(polled(&out), vec![(vec![2, 5, 6], true)]);
    assert_eq!(c.positions(), vec![(tp(0), 8)], "past the last marker");
    let reqs = take(&mut out);
    assert_eq!(
        fetch_of(only(&reqs, "Fetch")[0]).2.partitions[0].fetch_offset,
        8
    );

    // read_uncommitted sees every data record; markers leave gaps all the same.
    let (mut c, mut out, (b, cid, f)) = fetching(config(AutoOffsetReset::Earliest), 0);
    assert_eq!(f.isolation_level, IsolationLevel::ReadUncommitted);
    respond(&mut c, 3, b, cid, transactional_fetch(), &mut out);
    assert_eq!(polled(&out), vec![(vec![0, 1, 2, 5, 6], false)]);
    assert_eq!(c.positions(), vec![(tp(0), 8)]);
}

/// Answers the `ListOffsets` of an `offsetsForTimes` lookup in `out` with
/// (error, offset, timestamp); returns what it asked.
pub(super) fn answer_lookup(
    c: &mut Consumer,
    now: Millis,
    out: &mut Outbox,
    answer: (ErrorCode, Offset, i64),
) -> Vec<(TopicPartition, i64, LeaderEpoch)> {
    let reqs = take(out);
    let lo = only(&reqs, "ListOffsets");
    assert_eq!(lo.len(), 1, "{reqs:?}");
    let Request::ListOffsets(l) = &lo[0].2 else {
        unreachable!()
    };
    let (error, offset, timestamp) = answer;
    let response = Response::ListOffsets(ListOffsetsResponse {
        partitions: vec![ListOffsetsPartitionResponse {
            tp: tp(0),
            error,
            offset,
            leader_epoch: 3,
            timestamp,
        }],
    });
    respond(c, now, lo[0].0, lo[0].1, response, out);
    l.partitions.clone()
}

pub(super) fn lookup(entry: &Entry) -> (Millis, Outcome, Option<Offset>, Option<i64>) {
    match &entry.op {
        Op::OffsetsForTimes {
            offset,
            found_timestamp,
            ..
        } => (
            entry.invoke_ms,
            entry.outcome.clone(),
            *offset,
            *found_timestamp,
        ),
        other => panic!("not a lookup: {other:?}"),
    }
}

#[test]
fn offsets_for_times_records_each_lookup() {
    let ts = RECORD_TIMESTAMP_BASE;
    let committed = ConsumerConfig {
        isolation_level: IsolationLevel::ReadCommitted,
        ..config(AutoOffsetReset::Earliest)
    };
    let (mut c, mut out, _) = fetching(committed, 0);
    c.offsets_for_times(10, vec![(tp(0), ts + 5)], &mut out);
    let asked = answer_lookup(&mut c, 11, &mut out, (ErrorCode::None, 7, ts + 9));
    assert_eq!(asked, vec![(tp(0), ts + 5, 3)]);
    let entry = out.history.pop().unwrap();
    assert_eq!(entry.complete_ms, Some(11));
    assert_eq!(lookup(&entry), (10, Outcome::Ok, Some(7), Some(ts + 9)));
    // A retriable error is retried after the backoff; nothing that late is found.
    c.offsets_for_times(20, vec![(tp(0), ts + 50)], &mut out);
    answer_lookup(
        &mut c,
        21,
        &mut out,
        (ErrorCode::NotLeaderOrFollower, -1, -1),
    );
    assert!(out.history.is_empty());
    c.on_timer(21 + 100, &mut out);
    answer_lookup(&mut c, 130, &mut out, (ErrorCode::None, -1, -1));
    let entry = out.history.pop().unwrap();
    assert_eq!(lookup(&entry), (20, Outcome::Ok, None, None));
    // A lookup nobody answers fails after default.api.timeout.ms.
    c.offsets_for_times(200, vec![(tp(0), ts)], &mut out);
    take(&mut out);
    c.on_timer(200 + 60_000, &mut out);
    let failed = out
        .history
        .iter()
        .find(|e| matches!(e.op, Op::OffsetsForTimes { .. }))
        .expect("recorded");
    assert!(
        matches!(&failed.outcome, Outcome::Fail { error } if error.starts_with("TimeoutException"))
    );
}

#[test]
fn the_probe_looks_up_now_minus_the_lag_on_every_partition() {
    let (mut c, mut out, _) = fetching(config(AutoOffsetReset::Earliest), 0);
    c.set_timestamp_probe(1_000, 300);
    assert_eq!(
        c.next_timer(),
        Some(1_002),
        "a period after it was set (at 2)"
    );
    c.on_timer(1_002, &mut out);
    let asked = answer_lookup(&mut c, 1_003, &mut out, (ErrorCode::None, 0, 0));
    assert_eq!(asked, vec![(tp(0), RECORD_TIMESTAMP_BASE + 702, 3)]);
    c.on_timer(1_500, &mut out);
    assert!(
        only(&take(&mut out), "ListOffsets").is_empty(),
        "not before the period"
    );
    c.on_timer(2_002, &mut out);
    let asked = answer_lookup(&mut c, 2_003, &mut out, (ErrorCode::None, 0, 0));
    assert_eq!(asked[0].1, RECORD_TIMESTAMP_BASE + 1_702);
}

/// The records of a good batch at 0, then a batch at 2 whose last byte (in its last
/// record's headers count) is flipped: a bit flip on the leader's disk.
fn with_corrupt_batch() -> Vec<Bytes> {
    let mut bytes = batch(2, &[3, 4]).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    vec![batch(0, &[1, 2]), Bytes::from(bytes)]
}

/// `check.crcs` (the default): the records before the corrupt batch are returned, and
/// the poll at the corrupt batch fails with `CorruptRecordException`; the position stays
/// before it for good.
#[test]
fn a_corrupt_batch_fails_the_poll_and_the_position_stays() {
    let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    let answer = fetch_answer(tp(0), ErrorCode::None, 4, with_corrupt_batch());
    respond(&mut c, 10, 1, cid, answer, &mut out);
    assert_eq!(
        c.positions(),
        vec![(tp(0), 2)],
        "the good batch is consumed"
    );
    c.on_timer(11, &mut out);
    let reqs = take(&mut out);
    let (_, cid, _) = reqs
        .first()
        .expect("fetch from the corrupt batch on")
        .clone();
    out.history.clear();
    let answer = fetch_answer(
        tp(0),
        ErrorCode::None,
        4,
        with_corrupt_batch()[1..].to_vec(),
    );
    respond(&mut c, 12, 1, cid, answer, &mut out);
    assert_eq!(c.positions(), vec![(tp(0), 2)]);
    assert!(
        matches!(&out.history[..], [e] if matches!(&e.outcome,
            Outcome::Fail { error } if error.contains("at offset 2 is invalid, cause: CorruptRecordException"))),
        "{:?}",
        out.history
    );
    c.on_timer(5_000, &mut out);
    assert!(take(&mut out).is_empty(), "no fetch past it");
}

/// `check.crcs=false`: the corrupt batch is decoded as it is; here the flip leaves a
/// record the deserializer cannot read, so the poll fails at that record.
#[test]
fn without_check_crcs_a_corrupt_batch_reaches_the_deserializer() {
    let unchecked = ConsumerConfig {
        check_crcs: false,
        ..config(AutoOffsetReset::Earliest)
    };
    let (mut c, mut out, (_, cid, _)) = fetching(unchecked, 2);
    let answer = fetch_answer(
        tp(0),
        ErrorCode::None,
        4,
        with_corrupt_batch()[1..].to_vec(),
    );
    respond(&mut c, 10, 1, cid, answer, &mut out);
    let failed = out
        .history
        .iter()
        .find_map(|e| match &e.outcome {
            Outcome::Fail { error } => Some(error.clone()),
            _ => None,
        })
        .expect("a failed poll");
    assert!(!failed.contains("CorruptRecordException"), "{failed}");
}

/// A fake cluster with growing logs answering at random (data, errors, lost
/// requests, leader moves): polled records match the log and continue exactly where
/// the position was, and the timer never points at the past.
#[test]
fn randomized_runs_read_the_log_in_order() {
    use rand::{Rng, SeedableRng};
    for seed in 0..30 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let reset = [AutoOffsetReset::Earliest, AutoOffsetReset::Latest][rng.gen_range(0..2)];
        let mut c = Consumer::new(2, config(reset), vec![1, 2], vec![Arc::from("t")], seed);
        let mut out = Outbox::default();
        let mut leaders: [(BrokerId, LeaderEpoch); 2] = [(1, 0), (2, 0)];
        let mut log_end = [5i64, 0];
        let mut queue: Vec<(BrokerId, u64, Response)> = Vec::new();
        let value = |p: usize, offset: Offset| 1_000 * p as u64 + offset as u64;
        let mut now = 0;
        c.on_start(now, &mut out);
        for _ in 0..3_000 {
            for (broker, cid, request) in take(&mut out) {
                if rng.gen_bool(0.05) {
                    continue; // lost
                }
                let response = match request {
                    Request::Metadata(_) => {
                        let parts: Vec<_> = (0..2)
                            .map(|i| (i as u32, leaders[i].0, leaders[i].1))
                            .collect();
                        metadata(&parts)
                    }
                    Request::ListOffsets(l) => Response::ListOffsets(ListOffsetsResponse {
                        partitions: l
                            .partitions
                            .iter()
                            .map(|(tp, ts, _)| {
                                let i = tp.partition as usize;
                                let (error, offset) = if leaders[i].0 != broker {
                                    (ErrorCode::NotLeaderOrFollower, -1)
                                } else if *ts == EARLIEST_TIMESTAMP {
                                    (ErrorCode::None, 0)
                                } else {
                                    (ErrorCode::None, log_end[i])
                                };
                                ListOffsetsPartitionResponse {
                                    timestamp: -1,
                                    tp: tp.clone(),
                                    error,
                                    offset,
                                    leader_epoch: 0,
                                }
                            })
                            .collect(),
                    }),
                    Request::Fetch(f) => Response::Fetch(FetchResponse {
                        error: ErrorCode::None,
                        partitions: f
                            .partitions
                            .iter()
                            .map(|fp| {
                                let i = fp.tp.partition as usize;
                                let hw = log_end[i];
                                let error = if leaders[i].0 != broker {
                                    ErrorCode::NotLeaderOrFollower
                                } else if fp.fetch_offset > hw {
                                    ErrorCode::OffsetOutOfRange
                                } else {
                                    [
                                        ErrorCode::None,
                                        ErrorCode::None,
                                        ErrorCode::None,
                                        ErrorCode::OffsetNotAvailable,
                                        ErrorCode::FencedLeaderEpoch,
                                    ][rng.gen_range(0..5)]
                                };
                                let mut batches = Vec::new();
                                if error == ErrorCode::None {
                                    // Batches are aligned at multiples of 3.
                                    let mut base = fp.fetch_offset - fp.fetch_offset % 3;
                                    while base < hw && batches.len() < 2 {
                                        let end = (base + 3).min(hw);
                                        let vals: Vec<u64> =
                                            (base..end).map(|o| value(i, o)).collect();
                                        batches.push(batch(base, &vals));
                                        base = end;
                                    }
                                }
                                FetchPartitionResponse {
                                    aborted_transactions: Vec::new(),
                                    diverging_epoch: None,
                                    tp: fp.tp.clone(),
                                    error,
                                    high_watermark: if error == ErrorCode::None { hw } else { -1 },
                                    last_stable_offset: hw,
                                    log_start_offset: 0,
                                    batches,
                                }
                            })
                            .collect(),
                    }),
                    // Values depend on the offset only: a shorter log is the only
                    // divergence, and the latest epoch ends at the log end.
                    Request::OffsetsForLeaderEpoch(r) => epoch_answer(
                        &r.partitions
                            .iter()
                            .map(|(tp, current, _)| {
                                let i = tp.partition as usize;
                                if leaders[i] != (broker, *current) {
                                    (tp.clone(), ErrorCode::FencedLeaderEpoch, -1, -1)
                                } else {
                                    (tp.clone(), ErrorCode::None, *current, log_end[i])
                                }
                            })
                            .collect::<Vec<_>>(),
                    ),
                    other => panic!("unexpected request {other:?}"),
                };
                queue.push((broker, cid, response));
            }
            if rng.gen_bool(0.01) {
                let i = rng.gen_range(0..2);
                leaders[i] = (rng.gen_range(1..=2), leaders[i].1 + 1);
                // An unclean election may lose the log's tail.
                log_end[i] = (log_end[i] - rng.gen_range(0..4)).max(0);
            }
            if rng.gen_bool(0.2) {
                log_end[rng.gen_range(0..2)] += rng.gen_range(1..4);
            }
            match rng.gen_range(0..10) {
                0..=5 if !queue.is_empty() => {
                    deliver_any(&mut c, &mut out, now, &mut rng, &mut queue)
                }
                _ => timers_or_wait(&mut c, &mut out, &mut now, 200),
            }
            assert!(
                c.next_timer().is_none_or(|t| t > now),
                "seed {seed}: timer in the past"
            );
            now += rng.gen_range(0..3);
        }
        let mut positions = Positions::default();
        let mut last_hw: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
        let check = |p: &TopicPartition, r: &ReadRecord| {
            assert_eq!(r.value, value(p.partition as usize, r.offset));
            assert_eq!(r.key, Some(format!("k{}", r.value)));
        };
        for op in ops(&out) {
            match positions.follow(seed, op, check) {
                None => {}
                Some(Op::ObserveHighWatermark {
                    partition,
                    high_watermark,
                    ..
                }) => {
                    assert_ne!(
                        last_hw.insert(partition, high_watermark),
                        Some(high_watermark)
                    );
                }
                Some(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(positions.polled > 0, "seed {seed}: read something");
        assert_eq!(c.positions(), positions.at.into_iter().collect::<Vec<_>>());
    }
}
