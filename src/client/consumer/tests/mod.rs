//! Unit tests of `client::consumer`.

use super::*;
use crate::actor::testing::{respond, take};
use crate::kafka::protocol::{
    LeaderEpoch, ListOffsetsPartitionResponse, MetadataResponse, PartitionMetadata,
};
use crate::kafka::record::testing::plain_batch;
use crate::kafka::record::RECORD_TIMESTAMP_BASE;
use bytes::Bytes;

mod subscribe;
mod transactions_and_lookups;

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn config(reset: AutoOffsetReset) -> ConsumerConfig {
    ConsumerConfig {
        auto_offset_reset: reset,
        ..ConsumerConfig::default()
    }
}

/// Metadata for topic `t`: (partition, leader, leader epoch).
fn metadata(partitions: &[(u32, BrokerId, LeaderEpoch)]) -> Response {
    Response::Metadata(MetadataResponse {
        brokers: vec![1, 2],
        partitions: partitions
            .iter()
            .map(|&(p, leader, leader_epoch)| PartitionMetadata {
                tp: tp(p),
                error: ErrorCode::None,
                leader: Some(leader),
                leader_epoch,
                replicas: vec![1, 2],
                isr: vec![1, 2],
            })
            .collect(),
    })
}

fn only<'a>(reqs: &'a [(BrokerId, u64, Request)], api: &str) -> Vec<&'a (BrokerId, u64, Request)> {
    reqs.iter()
        .filter(|(_, _, r)| r.api_name() == api)
        .collect()
}

fn fetch_of(req: &(BrokerId, u64, Request)) -> (BrokerId, u64, FetchRequest) {
    match &req.2 {
        Request::Fetch(f) => (req.0, req.1, f.clone()),
        other => panic!("not a fetch: {other:?}"),
    }
}

/// The first Fetch of `reqs`: its broker, and its first partition's fetch offset
/// and current leader epoch.
fn fetched_at(reqs: &[(BrokerId, u64, Request)]) -> (BrokerId, Offset, LeaderEpoch) {
    let (broker, _, f) = fetch_of(only(reqs, "Fetch")[0]);
    let p = &f.partitions[0];
    (broker, p.fetch_offset, p.current_leader_epoch)
}

/// A consumer's positions as its history moves them: a Seek sets one; a Poll must
/// continue exactly at it, and moves it past its records.
#[derive(Default)]
struct Positions {
    at: BTreeMap<TopicPartition, Offset>,
    /// Records polled so far.
    polled: usize,
}

impl Positions {
    /// Follows `op` of run `seed` if it is a Seek or a Poll (each polled record also
    /// goes through `check`); hands any other op back.
    fn follow(
        &mut self,
        seed: u64,
        op: Op,
        check: impl Fn(&TopicPartition, &ReadRecord),
    ) -> Option<Op> {
        match op {
            Op::Seek {
                partition, offset, ..
            } => {
                self.at.insert(partition, offset);
            }
            Op::Poll {
                partition, records, ..
            } => {
                let pos = self.at.get_mut(&partition).expect("a Seek first");
                for r in records {
                    assert_eq!(
                        r.offset, *pos,
                        "seed {seed}: {partition} continues at its position"
                    );
                    check(&partition, &r);
                    *pos += 1;
                    self.polled += 1;
                }
            }
            other => return Some(other),
        }
        None
    }
}

fn list_offsets_answer(partitions: &[(TopicPartition, ErrorCode, Offset)]) -> Response {
    Response::ListOffsets(ListOffsetsResponse {
        partitions: partitions
            .iter()
            .map(|(tp, error, offset)| ListOffsetsPartitionResponse {
                timestamp: -1,
                tp: tp.clone(),
                error: *error,
                offset: *offset,
                leader_epoch: 0,
            })
            .collect(),
    })
}

/// An `OffsetsForLeaderEpoch` answer: (partition, error, leader epoch, end offset).
fn epoch_answer(partitions: &[(TopicPartition, ErrorCode, LeaderEpoch, Offset)]) -> Response {
    Response::OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse {
        partitions: partitions
            .iter()
            .map(
                |(tp, error, leader_epoch, end_offset)| crate::kafka::protocol::EpochEndOffset {
                    tp: tp.clone(),
                    error: *error,
                    leader_epoch: *leader_epoch,
                    end_offset: *end_offset,
                },
            )
            .collect(),
    })
}

/// An encoded batch of `values` starting at `base` (keys `k<value>`).
fn batch(base: Offset, values: &[u64]) -> Bytes {
    let records = values.iter().map(|v| {
        (
            Some(Bytes::from(format!("k{v}"))),
            Bytes::from(v.to_string()),
        )
    });
    RecordBatch {
        base_offset: base,
        partition_leader_epoch: 0,
        ..plain_batch(records.collect())
    }
    .encode()
}

fn fetch_answer(
    tp: TopicPartition,
    error: ErrorCode,
    high_watermark: Offset,
    batches: Vec<Bytes>,
) -> Response {
    Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            aborted_transactions: Vec::new(),
            diverging_epoch: None,
            tp,
            error,
            high_watermark,
            last_stable_offset: high_watermark,
            log_start_offset: 0,
            batches,
        }],
    })
}

/// Hands `c` one of the answers in `queue` at `now`, the one `rng` draws.
fn deliver_any(
    c: &mut Consumer,
    out: &mut Outbox,
    now: Millis,
    rng: &mut impl rand::Rng,
    queue: &mut Vec<(BrokerId, u64, Response)>,
) {
    let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
    respond(c, now, broker, cid, response, out);
}

/// Runs `c`'s timer if it is due within `step` ms of `now` (moving `now` to it);
/// otherwise lets `step` ms pass.
fn timers_or_wait(c: &mut Consumer, out: &mut Outbox, now: &mut Millis, step: Millis) {
    match c.next_timer() {
        Some(t) if t <= *now + step => {
            *now = (*now).max(t);
            c.on_timer(*now, out);
        }
        _ => *now += step,
    }
}

/// Broker 2 answers the OffsetsForLeaderEpoch in `reqs` at `now`: `t-0`'s epoch 0
/// ends at offset 1.
fn epoch_0_ends_at_1(
    c: &mut Consumer,
    out: &mut Outbox,
    now: Millis,
    reqs: &[(BrokerId, u64, Request)],
) {
    let (_, cid, _) = epoch_request(reqs);
    let answer = epoch_answer(&[(tp(0), ErrorCode::None, 0, 1)]);
    respond(c, now, 2, cid, answer, out);
}

/// Consumer 2 of `t` (bootstrap broker 1, seed 5) started at 0 with `config`: it, its
/// outbox and the requests it sent (its first Metadata).
fn started(config: ConsumerConfig) -> (Consumer, Outbox, Vec<(BrokerId, u64, Request)>) {
    let mut c = Consumer::new(2, config, vec![1], vec![Arc::from("t")], 5);
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let reqs = take(&mut out);
    (c, out, reqs)
}

/// A consumer of `t` (one partition led by broker 1, epoch 3) whose position was reset
/// to `start`; returns its first Fetch.
fn fetching(
    config: ConsumerConfig,
    start: Offset,
) -> (Consumer, Outbox, (BrokerId, u64, FetchRequest)) {
    let (mut c, mut out, reqs) = started(config);
    respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 3)]), &mut out);
    let reqs = take(&mut out);
    let lo = only(&reqs, "ListOffsets");
    respond(
        &mut c,
        2,
        1,
        lo[0].1,
        list_offsets_answer(&[(tp(0), ErrorCode::None, start)]),
        &mut out,
    );
    let reqs = take(&mut out);
    let fetch = fetch_of(only(&reqs, "Fetch")[0]);
    out.history.clear();
    (c, out, fetch)
}

fn ops(out: &Outbox) -> Vec<Op> {
    out.history
        .iter()
        .map(|e| {
            assert_eq!(e.process, NodeId::Consumer(2));
            if !matches!(e.op, Op::FetchCommitted { .. }) {
                assert_eq!(
                    Some(e.invoke_ms),
                    e.complete_ms,
                    "consumer entries other than OffsetFetch reads are instants"
                );
            }
            e.op.clone()
        })
        .collect()
}

/// A read-uncommitted poll of `t-0` returning `records` under `high_watermark`.
fn poll_op(records: Vec<ReadRecord>, high_watermark: Offset) -> Op {
    Op::Poll {
        read_committed: false,
        partition: tp(0),
        records,
        high_watermark,
    }
}

fn read(offset: Offset, value: u64) -> ReadRecord {
    ReadRecord {
        offset,
        key: Some(format!("k{value}")),
        value,
        headers: Vec::new(),
    }
}

#[test]
fn earliest_reset_then_fetch_from_each_leader() {
    let (mut c, mut out, reqs) = started(config(AutoOffsetReset::Earliest));
    assert_eq!(reqs.len(), 1);
    match &reqs[0].2 {
        Request::Metadata(m) => assert_eq!(m.topics, Some(vec![Arc::from("t")])),
        other => panic!("expected Metadata, got {other:?}"),
    }
    respond(
        &mut c,
        1,
        1,
        reqs[0].1,
        metadata(&[(0, 1, 3), (1, 2, 4)]),
        &mut out,
    );
    let reqs = take(&mut out);
    let lo = only(&reqs, "ListOffsets");
    assert_eq!(lo.len(), 2, "one ListOffsets per leader");
    for (broker, cid, req) in lo {
        let Request::ListOffsets(l) = req else {
            unreachable!()
        };
        let p = *broker - 1;
        assert_eq!(
            l.partitions,
            vec![(tp(p), EARLIEST_TIMESTAMP, 3 + p as i32)]
        );
        respond(
            &mut c,
            2,
            *broker,
            *cid,
            list_offsets_answer(&[(tp(p), ErrorCode::None, 10 * p as i64)]),
            &mut out,
        );
    }
    assert_eq!(
        ops(&out),
        vec![
            Op::Seek {
                partition: tp(0),
                offset: 0,
                reason: "auto.offset.reset=earliest".into()
            },
            Op::Seek {
                partition: tp(1),
                offset: 10,
                reason: "auto.offset.reset=earliest".into()
            },
        ]
    );
    let reqs = take(&mut out);
    let fetches: Vec<_> = only(&reqs, "Fetch").into_iter().map(fetch_of).collect();
    assert_eq!(fetches.len(), 2);
    let (broker, _, f) = &fetches[1];
    assert_eq!(*broker, 2);
    assert_eq!(
        (
            f.replica_id,
            f.broker_epoch,
            f.max_wait_ms,
            f.min_bytes,
            f.max_bytes
        ),
        (None, -1, 500, 1, 1_048_576)
    );
    assert_eq!(f.partitions.len(), 1);
    assert_eq!(
        (
            f.partitions[0].tp.clone(),
            f.partitions[0].fetch_offset,
            f.partitions[0].current_leader_epoch
        ),
        (tp(1), 10, 4)
    );
    assert_eq!(c.positions(), vec![(tp(0), 0), (tp(1), 10)]);
}

#[test]
fn latest_reset_asks_for_the_latest_offset() {
    let (mut c, mut out, reqs) = started(config(AutoOffsetReset::Latest));
    respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
    let reqs = take(&mut out);
    let Request::ListOffsets(l) = &only(&reqs, "ListOffsets")[0].2 else {
        unreachable!()
    };
    assert_eq!(l.partitions[0].1, LATEST_TIMESTAMP);
}

#[test]
fn reset_none_leaves_the_partition_unfetched() {
    let (mut c, mut out, reqs) = started(config(AutoOffsetReset::None));
    respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
    assert!(take(&mut out).is_empty(), "no ListOffsets, no Fetch");
    assert_eq!(out.history.len(), 1);
    assert!(
        matches!(&out.history[0].outcome, Outcome::Fail { error } if error.starts_with("NoOffsetForPartitionException"))
    );
    // A later metadata refresh does not report it again.
    let now = c.next_timer().unwrap();
    c.on_timer(now, &mut out);
    let reqs = take(&mut out);
    respond(&mut c, now, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
    assert_eq!(out.history.len(), 1);
}

#[test]
fn fetched_records_become_polls_and_advance_the_position() {
    let (mut c, mut out, (broker, cid, f)) = fetching(config(AutoOffsetReset::Earliest), 0);
    assert_eq!(
        (
            broker,
            f.partitions[0].fetch_offset,
            f.partitions[0].current_leader_epoch
        ),
        (1, 0, 3)
    );
    respond(
        &mut c,
        10,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::None, 3, vec![batch(0, &[100, 101, 102])]),
        &mut out,
    );
    assert_eq!(
        ops(&out),
        vec![
            Op::ObserveHighWatermark {
                last_stable_offset: None,
                partition: tp(0),
                high_watermark: 3,
                broker: NodeId::Broker(1)
            },
            poll_op(vec![read(0, 100), read(1, 101), read(2, 102)], 3),
        ]
    );
    assert_eq!(c.positions(), vec![(tp(0), 3)]);
    let reqs = take(&mut out);
    let (_, cid, f) = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(
        f.partitions[0].fetch_offset, 3,
        "the next fetch starts at the position"
    );
    out.history.clear();
    // A batch starting below the position: only the new records count.
    respond(
        &mut c,
        20,
        1,
        cid,
        fetch_answer(
            tp(0),
            ErrorCode::None,
            6,
            vec![batch(2, &[102, 103]), batch(4, &[104, 105])],
        ),
        &mut out,
    );
    assert_eq!(
        ops(&out)[1],
        poll_op(vec![read(3, 103), read(4, 104), read(5, 105)], 6)
    );
    assert_eq!(c.positions(), vec![(tp(0), 6)]);
}

#[test]
fn high_watermark_observed_only_when_it_changes() {
    let (mut c, mut out, (_, mut cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    for (i, hw) in [3, 3, 5, 4].into_iter().enumerate() {
        respond(
            &mut c,
            10 + i as u64,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, hw, vec![]),
            &mut out,
        );
        let reqs = take(&mut out);
        cid = fetch_of(only(&reqs, "Fetch")[0]).1;
    }
    let seen: Vec<Offset> = ops(&out)
        .into_iter()
        .map(|op| match op {
            Op::ObserveHighWatermark { high_watermark, .. } => high_watermark,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        vec![3, 5, 4],
        "no entry for the repeated 3, one for the drop to 4"
    );
}

#[test]
fn not_leader_refreshes_metadata_and_fetches_from_the_new_leader() {
    let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    respond(
        &mut c,
        10,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::NotLeaderOrFollower, -1, vec![]),
        &mut out,
    );
    assert!(
        take(&mut out).is_empty(),
        "backs off; metadata is rate limited"
    );
    let mut now = 10;
    for _ in 0..10 {
        now = c.next_timer().unwrap();
        c.on_timer(now, &mut out);
        let reqs = take(&mut out);
        if let Some(md) = only(&reqs, "Metadata").first() {
            respond(&mut c, now, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
        }
        let fetches: Vec<_> = only(&reqs, "Fetch").into_iter().map(fetch_of).collect();
        assert!(
            fetches.iter().all(|(b, _, _)| *b == 2),
            "never back to the old leader"
        );
        let more = take(&mut out);
        let fetches: Vec<_> = fetches
            .into_iter()
            .chain(only(&more, "Fetch").into_iter().map(fetch_of))
            .collect();
        if let Some((broker, _, f)) = fetches.first() {
            assert_eq!(*broker, 2);
            assert_eq!(
                (
                    f.partitions[0].fetch_offset,
                    f.partitions[0].current_leader_epoch
                ),
                (0, 4)
            );
            assert!(
                now >= 110,
                "retry.backoff.ms after the error, fetched at {now}"
            );
            return;
        }
    }
    panic!("no fetch from the new leader by {now}");
}

/// A consumer of `t` that read offsets 0-2 (leader epoch 0) from broker 1, whose
/// next fetch fails with NOT_LEADER_OR_FOLLOWER; metadata then names broker 2 with
/// leader epoch 4. Returns the first requests for the partition after the metadata
/// arrived, and when they were sent.
fn leader_moved(bugs: Bugs) -> (Consumer, Outbox, Millis, Vec<(BrokerId, u64, Request)>) {
    let (c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    let mut c = c.with_bugs(bugs);
    let records = vec![batch(0, &[1, 2, 3])];
    respond(
        &mut c,
        10,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::None, 3, records),
        &mut out,
    );
    let reqs = take(&mut out);
    let (_, cid, f) = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(f.partitions[0].fetch_offset, 3);
    let not_leader = fetch_answer(tp(0), ErrorCode::NotLeaderOrFollower, -1, vec![]);
    respond(&mut c, 20, 1, cid, not_leader, &mut out);
    let mut now = 20;
    for _ in 0..10 {
        now = c.next_timer().expect("a retry is due");
        c.on_timer(now, &mut out);
        let reqs = take(&mut out);
        if let Some(md) = only(&reqs, "Metadata").first() {
            respond(&mut c, now, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
            break;
        }
    }
    // The fetch error's retry.backoff.ms holds the partition's next request.
    for _ in 0..10 {
        let sent = take(&mut out);
        if sent
            .iter()
            .any(|(_, _, r)| !matches!(r, Request::Metadata(_)))
        {
            out.history.clear();
            return (c, out, now, sent);
        }
        now = c.next_timer().expect("a request is due");
        c.on_timer(now, &mut out);
    }
    panic!("nothing sent to the new leader by {now}");
}

/// The one OffsetsForLeaderEpoch among `reqs`: (broker, correlation id, partitions).
fn epoch_request(
    reqs: &[(BrokerId, u64, Request)],
) -> (
    BrokerId,
    u64,
    Vec<(TopicPartition, LeaderEpoch, LeaderEpoch)>,
) {
    let found = only(reqs, "OffsetsForLeaderEpoch");
    assert_eq!(found.len(), 1, "one OffsetsForLeaderEpoch in {reqs:?}");
    let Request::OffsetsForLeaderEpoch(r) = &found[0].2 else {
        unreachable!()
    };
    assert_eq!(r.replica_id, None, "a consumer's request");
    (found[0].0, found[0].1, r.partitions.clone())
}

#[test]
fn a_leader_change_validates_the_position_before_fetching() {
    let (mut c, mut out, now, reqs) = leader_moved(Bugs::default());
    assert!(
        only(&reqs, "Fetch").is_empty(),
        "no fetch awaiting validation"
    );
    let (broker, cid, partitions) = epoch_request(&reqs);
    assert_eq!(broker, 2, "asks the new leader");
    assert_eq!(
        partitions,
        vec![(tp(0), 4, 0)],
        "current leader epoch from the metadata, the epoch of the last record read"
    );
    // A retriable error refreshes metadata and asks again after retry.backoff.ms.
    let fenced = epoch_answer(&[(tp(0), ErrorCode::UnknownLeaderEpoch, -1, -1)]);
    respond(&mut c, now + 1, 2, cid, fenced, &mut out);
    assert!(only(&take(&mut out), "Fetch").is_empty());
    let mut asked_again = None;
    let mut t = now + 1;
    for _ in 0..10 {
        t = c.next_timer().expect("a retry is due");
        c.on_timer(t, &mut out);
        let reqs = take(&mut out);
        assert!(only(&reqs, "Fetch").is_empty(), "still awaiting validation");
        if let Some(md) = only(&reqs, "Metadata").first() {
            respond(&mut c, t, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
        }
        let reqs: Vec<_> = reqs.into_iter().chain(take(&mut out)).collect();
        if !only(&reqs, "OffsetsForLeaderEpoch").is_empty() {
            asked_again = Some(epoch_request(&reqs));
            break;
        }
    }
    let (broker, _, partitions) = asked_again.expect("validation retried");
    assert_eq!((broker, partitions), (2, vec![(tp(0), 4, 0)]));
    assert!(
        t >= now + 1 + 100,
        "after retry.backoff.ms, asked again at {t}"
    );
    assert!(ops(&out).is_empty(), "no seek, no poll");
}

/// The partition has no leader while the position awaits validation: the consumer
/// neither fetches nor validates it, and its metadata asks again after
/// `retry.backoff.ms` (Kafka's `Metadata.handleMetadataResponse` on
/// LEADER_NOT_AVAILABLE), so validation resumes as soon as a leader is elected
/// instead of `metadata.max.age.ms` later.
#[test]
fn a_leaderless_partition_awaiting_validation_keeps_asking_for_metadata() {
    let (mut c, mut out, now, reqs) = leader_moved(Bugs::default());
    let (_, cid, _) = epoch_request(&reqs);
    let not_leader = epoch_answer(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1, -1)]);
    respond(&mut c, now + 1, 2, cid, not_leader, &mut out);
    let leaderless = Response::Metadata(MetadataResponse {
        brokers: vec![1, 2],
        partitions: vec![PartitionMetadata {
            tp: tp(0),
            error: ErrorCode::LeaderNotAvailable,
            leader: None,
            leader_epoch: 5,
            replicas: vec![1, 2],
            isr: vec![1],
        }],
    });
    let mut t;
    let mut leaderless_answers = 0;
    let mut validated_at = None;
    for _ in 0..20 {
        t = c.next_timer().expect("a retry is due");
        assert!(t < now + 2_000, "waiting {t} for metadata.max.age.ms");
        c.on_timer(t, &mut out);
        let reqs = take(&mut out);
        assert!(only(&reqs, "Fetch").is_empty(), "still awaiting validation");
        if let Some(md) = only(&reqs, "Metadata").first() {
            let answer = if leaderless_answers < 3 {
                leaderless_answers += 1;
                leaderless.clone()
            } else {
                metadata(&[(0, 1, 6)])
            };
            respond(&mut c, t, md.0, md.1, answer, &mut out);
        }
        let reqs: Vec<_> = reqs.into_iter().chain(take(&mut out)).collect();
        if !only(&reqs, "OffsetsForLeaderEpoch").is_empty() {
            assert_eq!(leaderless_answers, 3, "no validation without a leader");
            validated_at = Some(epoch_request(&reqs));
            break;
        }
    }
    let (broker, _, partitions) = validated_at.expect("validation resumed");
    assert_eq!((broker, partitions), (1, vec![(tp(0), 6, 0)]));
}

#[test]
fn an_epoch_ending_below_the_position_seeks_to_the_divergence_point() {
    let (mut c, mut out, now, reqs) = leader_moved(Bugs::default());
    epoch_0_ends_at_1(&mut c, &mut out, now + 1, &reqs);
    assert_eq!(
        ops(&out),
        vec![Op::Seek {
            partition: tp(0),
            offset: 1,
            reason: "Truncation detected for partition t-0 at offset 3: leader epoch 0 \
                         ends at offset 1; resetting offset to the first offset known to diverge"
                .into()
        }]
    );
    let reqs = take(&mut out);
    assert_eq!(fetched_at(&reqs), (2, 1, 4));
    assert_eq!(c.positions(), vec![(tp(0), 1)]);
}

#[test]
fn truncation_with_auto_offset_reset_none_is_a_log_truncation_exception() {
    let (c, mut out, now, reqs) = leader_moved(Bugs::default());
    let mut c = Consumer {
        config: config(AutoOffsetReset::None),
        ..c
    };
    epoch_0_ends_at_1(&mut c, &mut out, now + 1, &reqs);
    let failed = &out.history[0];
    assert!(
        matches!(&failed.outcome, Outcome::Fail { error }
                if error.starts_with("LogTruncationException: Truncation detected for partition t-0 at offset 3")),
        "{failed:?}"
    );
    assert!(
        only(&take(&mut out), "Fetch").is_empty(),
        "never fetched again"
    );
    assert_eq!(c.positions(), vec![(tp(0), 3)]);
}

#[test]
fn an_epoch_ending_at_or_past_the_position_resumes_fetching_there() {
    for end in [3, 7] {
        let (mut c, mut out, now, reqs) = leader_moved(Bugs::default());
        let (_, cid, _) = epoch_request(&reqs);
        let answer = epoch_answer(&[(tp(0), ErrorCode::None, 0, end)]);
        respond(&mut c, now + 1, 2, cid, answer, &mut out);
        assert!(ops(&out).is_empty(), "no seek");
        let reqs = take(&mut out);
        let (broker, _, f) = fetch_of(only(&reqs, "Fetch")[0]);
        assert_eq!((broker, f.partitions[0].fetch_offset), (2, 3));
    }
}

#[test]
fn without_position_validation_the_new_leader_is_fetched_at_once() {
    let (_, _, _, reqs) = leader_moved(Bugs::of(&[Bug::NoPositionValidation]));
    assert!(only(&reqs, "OffsetsForLeaderEpoch").is_empty());
    assert_eq!(fetched_at(&reqs), (2, 3, 4));
}

#[test]
fn offset_out_of_range_resets_and_records_a_seek() {
    let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 3);
    respond(
        &mut c,
        10,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::OffsetOutOfRange, 2, vec![]),
        &mut out,
    );
    let reqs = take(&mut out);
    assert!(only(&reqs, "Fetch").is_empty());
    let lo = only(&reqs, "ListOffsets");
    let Request::ListOffsets(l) = &lo[0].2 else {
        unreachable!()
    };
    assert_eq!(l.partitions, vec![(tp(0), EARLIEST_TIMESTAMP, 3)]);
    respond(
        &mut c,
        11,
        1,
        lo[0].1,
        list_offsets_answer(&[(tp(0), ErrorCode::None, 7)]),
        &mut out,
    );
    assert_eq!(
        ops(&out),
        vec![Op::Seek {
            partition: tp(0),
            offset: 7,
            reason: "OFFSET_OUT_OF_RANGE at 3; auto.offset.reset=earliest".into()
        }]
    );
    let reqs = take(&mut out);
    assert_eq!(
        fetch_of(only(&reqs, "Fetch")[0]).2.partitions[0].fetch_offset,
        7
    );
}

#[test]
fn a_fetch_timeout_refetches_and_ignores_the_late_answer() {
    let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    assert_eq!(
        c.next_timer(),
        Some(2 + 30_000),
        "the fetch's request.timeout.ms"
    );
    c.on_timer(30_002, &mut out);
    let reqs = take(&mut out);
    assert_eq!(
        only(&reqs, "Metadata").len(),
        1,
        "a timeout refreshes metadata"
    );
    assert!(
        only(&reqs, "Fetch").is_empty(),
        "backs off before refetching"
    );
    assert_eq!(c.next_timer(), Some(30_002 + 100), "retry.backoff.ms");
    c.on_timer(30_102, &mut out);
    let reqs = take(&mut out);
    let refetch = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(refetch.2.partitions[0].fetch_offset, 0);
    respond(
        &mut c,
        30_003,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::None, 1, vec![batch(0, &[1])]),
        &mut out,
    );
    assert!(out.history.is_empty(), "late answer ignored");
    assert_eq!(c.positions(), vec![(tp(0), 0)]);
}

#[test]
fn a_stale_fetch_answer_is_discarded() {
    let config = ConsumerConfig {
        metadata_max_age_ms: 1_000,
        ..config(AutoOffsetReset::Earliest)
    };
    let (mut c, mut out, (_, old_cid, _)) = fetching(config, 0);
    assert_eq!(c.next_timer(), Some(1_001), "metadata.max.age.ms");
    c.on_timer(1_001, &mut out);
    let reqs = take(&mut out);
    let md = only(&reqs, "Metadata")[0];
    respond(&mut c, 1_001, md.0, md.1, metadata(&[(0, 2, 4)]), &mut out);
    let reqs = take(&mut out);
    let (broker, new_cid, _) = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(
        broker, 2,
        "the new leader is fetched while the old fetch is in flight"
    );
    respond(
        &mut c,
        1_002,
        2,
        new_cid,
        fetch_answer(tp(0), ErrorCode::None, 3, vec![batch(0, &[1, 2, 3])]),
        &mut out,
    );
    let polls = out.history.len();
    respond(
        &mut c,
        1_003,
        1,
        old_cid,
        fetch_answer(tp(0), ErrorCode::None, 2, vec![batch(0, &[1, 2])]),
        &mut out,
    );
    assert_eq!(
        out.history.len(),
        polls,
        "fetched at 0, but the position is 3 now"
    );
    assert_eq!(c.positions(), vec![(tp(0), 3)]);
}
