//! Unit tests of `client::consumer`.

use super::*;
use crate::kafka::protocol::{
    LeaderEpoch, ListOffsetsPartitionResponse, MetadataResponse, PartitionMetadata,
};
use crate::kafka::record::Record;
use bytes::Bytes;

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

fn take(out: &mut Outbox) -> Vec<(BrokerId, u64, Request)> {
    out.sends
        .drain(..)
        .map(|(to, m)| match (to, m) {
            (
                NodeId::Broker(b),
                Message::Request {
                    correlation_id,
                    request,
                },
            ) => (b, correlation_id, request),
            other => panic!("unexpected send {other:?}"),
        })
        .collect()
}

fn respond(
    c: &mut Consumer,
    now: Millis,
    broker: BrokerId,
    correlation_id: u64,
    response: Response,
    out: &mut Outbox,
) {
    c.on_message(
        now,
        NodeId::Broker(broker),
        Message::Response {
            correlation_id,
            response,
        },
        out,
    );
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
    RecordBatch {
        base_offset: base,
        partition_leader_epoch: 0,
        attributes: 0,
        last_offset_delta: values.len() as i32 - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: i as i32,
                key: Some(Bytes::from(format!("k{v}"))),
                value: Some(Bytes::from(v.to_string())),
                headers: Vec::new(),
            })
            .collect(),
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

/// A consumer of `t` (one partition led by broker 1, epoch 3) whose position was reset
/// to `start`; returns its first Fetch.
fn fetching(
    config: ConsumerConfig,
    start: Offset,
) -> (Consumer, Outbox, (BrokerId, u64, FetchRequest)) {
    let mut c = Consumer::new(2, config, vec![1], vec![Arc::from("t")], 5);
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let reqs = take(&mut out);
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
    let mut c = Consumer::new(
        2,
        config(AutoOffsetReset::Earliest),
        vec![1],
        vec![Arc::from("t")],
        5,
    );
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let reqs = take(&mut out);
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
    let mut c = Consumer::new(
        2,
        config(AutoOffsetReset::Latest),
        vec![1],
        vec![Arc::from("t")],
        5,
    );
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let reqs = take(&mut out);
    respond(&mut c, 1, 1, reqs[0].1, metadata(&[(0, 1, 0)]), &mut out);
    let reqs = take(&mut out);
    let Request::ListOffsets(l) = &only(&reqs, "ListOffsets")[0].2 else {
        unreachable!()
    };
    assert_eq!(l.partitions[0].1, LATEST_TIMESTAMP);
}

#[test]
fn reset_none_leaves_the_partition_unfetched() {
    let mut c = Consumer::new(
        2,
        config(AutoOffsetReset::None),
        vec![1],
        vec![Arc::from("t")],
        5,
    );
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let reqs = take(&mut out);
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
            Op::Poll {
                read_committed: false,
                partition: tp(0),
                records: vec![read(0, 100), read(1, 101), read(2, 102)],
                high_watermark: 3
            },
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
        Op::Poll {
            read_committed: false,
            partition: tp(0),
            records: vec![read(3, 103), read(4, 104), read(5, 105)],
            high_watermark: 6
        }
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
    let (_, cid, _) = epoch_request(&reqs);
    respond(
        &mut c,
        now + 1,
        2,
        cid,
        epoch_answer(&[(tp(0), ErrorCode::None, 0, 1)]),
        &mut out,
    );
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
    let (broker, _, f) = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(
        (
            broker,
            f.partitions[0].fetch_offset,
            f.partitions[0].current_leader_epoch
        ),
        (2, 1, 4)
    );
    assert_eq!(c.positions(), vec![(tp(0), 1)]);
}

#[test]
fn truncation_with_auto_offset_reset_none_is_a_log_truncation_exception() {
    let (c, mut out, now, reqs) = leader_moved(Bugs::default());
    let mut c = Consumer {
        config: config(AutoOffsetReset::None),
        ..c
    };
    let (_, cid, _) = epoch_request(&reqs);
    respond(
        &mut c,
        now + 1,
        2,
        cid,
        epoch_answer(&[(tp(0), ErrorCode::None, 0, 1)]),
        &mut out,
    );
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
    let (broker, _, f) = fetch_of(only(&reqs, "Fetch")[0]);
    assert_eq!(
        (
            broker,
            f.partitions[0].fetch_offset,
            f.partitions[0].current_leader_epoch
        ),
        (2, 3, 4)
    );
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

/// A transactional batch of producer `producer_id` at `base`.
fn txn_batch(base: Offset, producer_id: i64, values: &[u64]) -> Bytes {
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
fn marker_batch(offset: Offset, producer_id: i64, commit: bool) -> Bytes {
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
fn transactional_fetch() -> Response {
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

fn polled(out: &Outbox) -> Vec<(Vec<Offset>, bool)> {
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
fn answer_lookup(
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

fn lookup(entry: &Entry) -> (Millis, Outcome, Option<Offset>, Option<i64>) {
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

#[test]
#[should_panic(expected = "bad batch")]
fn a_corrupt_batch_is_a_finding() {
    let (mut c, mut out, (_, cid, _)) = fetching(config(AutoOffsetReset::Earliest), 0);
    let mut bytes = batch(0, &[1, 2]).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    respond(
        &mut c,
        10,
        1,
        cid,
        fetch_answer(tp(0), ErrorCode::None, 2, vec![Bytes::from(bytes)]),
        &mut out,
    );
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
                    let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
                    respond(&mut c, now, broker, cid, response, &mut out);
                }
                _ => match c.next_timer() {
                    Some(t) if t <= now + 200 => {
                        now = now.max(t);
                        c.on_timer(now, &mut out);
                    }
                    _ => now += 200,
                },
            }
            assert!(
                c.next_timer().is_none_or(|t| t > now),
                "seed {seed}: timer in the past"
            );
            now += rng.gen_range(0..3);
        }
        let mut positions: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
        let mut last_hw: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
        let mut polled = 0;
        for op in ops(&out) {
            match op {
                Op::Seek {
                    partition, offset, ..
                } => {
                    positions.insert(partition, offset);
                }
                Op::Poll {
                    partition, records, ..
                } => {
                    let i = partition.partition as usize;
                    let mut pos = positions[&partition];
                    for r in records {
                        assert_eq!(
                            r.offset, pos,
                            "seed {seed}: {partition} continues at its position"
                        );
                        assert_eq!(r.value, value(i, r.offset));
                        assert_eq!(r.key, Some(format!("k{}", r.value)));
                        pos += 1;
                        polled += 1;
                    }
                    positions.insert(partition, pos);
                }
                Op::ObserveHighWatermark {
                    partition,
                    high_watermark,
                    ..
                } => {
                    assert_ne!(
                        last_hw.insert(partition, high_watermark),
                        Some(high_watermark)
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(polled > 0, "seed {seed}: read something");
        assert_eq!(c.positions(), positions.into_iter().collect::<Vec<_>>());
    }
}

/// Subscribe mode against a scripted group coordinator.
mod subscribe {
    use super::*;
    use crate::kafka::protocol::{
        CoordinatorType, FindCoordinatorResponse, HeartbeatResponse, JoinGroupMember,
        JoinGroupRequest, JoinGroupResponse, OffsetCommitResponse, OffsetFetchRequest,
        OffsetFetchResponse, Subscription, SyncGroupResponse,
    };

    fn group_config() -> ConsumerConfig {
        ConsumerConfig {
            group_id: Some("g".into()),
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::default()
        }
    }

    /// Requests of one API among `reqs`, exactly one expected.
    fn one<'a>(reqs: &'a [(BrokerId, u64, Request)], api: &str) -> &'a (BrokerId, u64, Request) {
        let found = only(reqs, api);
        assert_eq!(found.len(), 1, "one {api} in {reqs:?}");
        found[0]
    }

    fn member(id: &str) -> JoinGroupMember {
        JoinGroupMember {
            member_id: Arc::from(id),
            group_instance_id: None,
            subscription: Subscription {
                topics: vec![Arc::from("t")],
                owned_partitions: Vec::new(),
            },
        }
    }

    fn join_answer(
        error: ErrorCode,
        generation_id: i32,
        member_id: &str,
        leader: &str,
        members: Vec<JoinGroupMember>,
    ) -> Response {
        Response::JoinGroup(JoinGroupResponse {
            error,
            generation_id,
            protocol_name: Some(Arc::from("range")),
            leader: Arc::from(leader),
            member_id: Arc::from(member_id),
            members,
        })
    }

    fn sync_answer(error: ErrorCode, partitions: &[u32]) -> Response {
        Response::SyncGroup(SyncGroupResponse {
            error,
            assignment: partitions.iter().map(|p| tp(*p)).collect(),
        })
    }

    fn heartbeat_answer(error: ErrorCode) -> Response {
        Response::Heartbeat(HeartbeatResponse { error })
    }

    fn commit_answer(offsets: &[CommittedOffset], error: ErrorCode) -> Response {
        Response::OffsetCommit(OffsetCommitResponse {
            partitions: offsets.iter().map(|o| (o.tp.clone(), error)).collect(),
        })
    }

    fn committed(p: u32, offset: Offset, leader_epoch: LeaderEpoch) -> CommittedOffset {
        CommittedOffset {
            tp: tp(p),
            offset,
            leader_epoch,
        }
    }

    /// A subscribed consumer of `t` (3 partitions led by broker 1, epoch 0) whose
    /// first poll found coordinator `coordinator`; returns its first JoinGroup.
    fn joining(
        config: ConsumerConfig,
        coordinator: BrokerId,
    ) -> (Consumer, Outbox, (BrokerId, u64, JoinGroupRequest)) {
        let mut c = Consumer::subscribe(2, config, vec![1], vec![Arc::from("t")], 5);
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let reqs = take(&mut out);
        let md = one(&reqs, "Metadata");
        respond(
            &mut c,
            1,
            md.0,
            md.1,
            metadata(&[(0, 1, 0), (1, 1, 0), (2, 1, 0)]),
            &mut out,
        );
        assert!(take(&mut out).is_empty(), "nothing before the first poll");
        assert!(c.poll(2, &mut out).is_empty());
        let reqs = take(&mut out);
        let find = one(&reqs, "FindCoordinator");
        let Request::FindCoordinator(f) = &find.2 else {
            unreachable!()
        };
        assert_eq!((&*f.key, f.key_type), ("g", CoordinatorType::Group));
        respond(
            &mut c,
            3,
            find.0,
            find.1,
            Response::FindCoordinator(FindCoordinatorResponse {
                error: ErrorCode::None,
                node_id: Some(coordinator),
            }),
            &mut out,
        );
        let reqs = take(&mut out);
        let join = one(&reqs, "JoinGroup");
        let Request::JoinGroup(j) = &join.2 else {
            unreachable!()
        };
        assert_eq!(join.0, coordinator);
        (c, out, (join.0, join.1, j.clone()))
    }

    /// `joining`, then the join completes as a follower of generation 1 with
    /// `partitions`; returns the OffsetFetch.
    fn stable(
        config: ConsumerConfig,
        partitions: &[u32],
    ) -> (Consumer, Outbox, (BrokerId, u64, OffsetFetchRequest)) {
        let (mut c, mut out, join) = joining(config, 2);
        respond(
            &mut c,
            4,
            2,
            join.1,
            join_answer(ErrorCode::None, 1, "m-1", "m-0", vec![]),
            &mut out,
        );
        let reqs = take(&mut out);
        let sync = one(&reqs, "SyncGroup");
        respond(
            &mut c,
            5,
            2,
            sync.1,
            sync_answer(ErrorCode::None, partitions),
            &mut out,
        );
        let reqs = take(&mut out);
        let fetch = one(&reqs, "OffsetFetch");
        let Request::OffsetFetch(f) = &fetch.2 else {
            unreachable!()
        };
        (c, out, (fetch.0, fetch.1, f.clone()))
    }

    /// `stable` with partition 0 at committed offset `start`; returns the Fetch.
    fn consuming(
        config: ConsumerConfig,
        start: Offset,
    ) -> (Consumer, Outbox, (BrokerId, u64, FetchRequest)) {
        let (mut c, mut out, (b, cid, _)) = stable(config, &[0]);
        respond(
            &mut c,
            6,
            b,
            cid,
            Response::OffsetFetch(OffsetFetchResponse {
                error: ErrorCode::None,
                // No leader epoch: fetched without validation.
                offsets: vec![committed(0, start, -1)],
            }),
            &mut out,
        );
        let reqs = take(&mut out);
        let fetch = fetch_of(one(&reqs, "Fetch"));
        c.drain_events();
        out.history.clear();
        (c, out, fetch)
    }

    /// Runs timers up to `until`, answering every heartbeat with NONE; returns the
    /// other requests sent.
    fn idle_until(
        c: &mut Consumer,
        out: &mut Outbox,
        until: Millis,
    ) -> Vec<(Millis, (BrokerId, u64, Request))> {
        let mut other = Vec::new();
        while let Some(t) = c.next_timer().filter(|t| *t <= until) {
            c.on_timer(t, out);
            for req in take(out) {
                if req.2.api_name() == "Heartbeat" {
                    respond(c, t, req.0, req.1, heartbeat_answer(ErrorCode::None), out);
                } else {
                    other.push((t, req));
                }
            }
        }
        other
    }

    #[test]
    fn member_id_required_rejoins_with_the_given_id() {
        let (mut c, mut out, (b, cid, j)) = joining(group_config(), 2);
        assert_eq!(&*j.member_id, "");
        assert_eq!(j.group_instance_id, None);
        assert_eq!(
            (j.session_timeout_ms, j.rebalance_timeout_ms),
            (45_000, 300_000)
        );
        assert_eq!(
            j.protocols,
            vec![(
                Arc::from("range"),
                Subscription {
                    topics: vec![Arc::from("t")],
                    owned_partitions: vec![]
                }
            )]
        );
        respond(
            &mut c,
            4,
            b,
            cid,
            join_answer(ErrorCode::MemberIdRequired, -1, "m-7", "", vec![]),
            &mut out,
        );
        let reqs = take(&mut out);
        let Request::JoinGroup(again) = &one(&reqs, "JoinGroup").2 else {
            unreachable!()
        };
        assert_eq!(
            &*again.member_id, "m-7",
            "rejoins at once with the given id"
        );
    }

    #[test]
    fn the_leader_assigns_with_range() {
        let (mut c, mut out, (b, cid, _)) = joining(group_config(), 2);
        respond(
            &mut c,
            4,
            b,
            cid,
            join_answer(
                ErrorCode::None,
                3,
                "m-2",
                "m-2",
                vec![member("m-2"), member("m-1")],
            ),
            &mut out,
        );
        let reqs = take(&mut out);
        let Request::SyncGroup(s) = &one(&reqs, "SyncGroup").2 else {
            unreachable!()
        };
        assert_eq!((s.generation_id, &*s.member_id), (3, "m-2"));
        assert_eq!(
            s.assignments,
            vec![
                (Arc::from("m-2"), vec![tp(2)]),
                (Arc::from("m-1"), vec![tp(0), tp(1)])
            ],
            "m-1 sorts first and gets the extra partition"
        );
        let sync = one(&reqs, "SyncGroup");
        respond(
            &mut c,
            5,
            b,
            sync.1,
            sync_answer(ErrorCode::None, &[2]),
            &mut out,
        );
        assert_eq!(c.assignment(), vec![tp(2)]);
        assert_eq!(
            (c.generation(), c.member_state()),
            (Some(3), Some(MemberState::Stable))
        );
        assert_eq!(
            c.drain_events(),
            vec![
                GroupEvent::CoordinatorDiscovered { broker: 2 },
                GroupEvent::Assigned {
                    generation: 3,
                    member_id: Arc::from("m-2"),
                    partitions: vec![tp(2)]
                }
            ]
        );
    }

    #[test]
    fn a_follower_gets_its_assignment_from_sync_group() {
        let (c, _, (b, _, f)) = stable(group_config(), &[1]);
        assert_eq!(b, 2, "OffsetFetch goes to the coordinator");
        assert_eq!((&*f.group_id, f.partitions.clone()), ("g", vec![tp(1)]));
        assert_eq!(c.assignment(), vec![tp(1)]);
        assert_eq!(c.member_id(), Some(Arc::from("m-1")));
        assert!(
            c.positions().is_empty(),
            "no position before the committed offset"
        );
    }

    #[test]
    fn positions_come_from_offset_fetch_else_auto_offset_reset() {
        let (mut c, mut out, (b, cid, _)) = stable(group_config(), &[0, 1]);
        respond(
            &mut c,
            6,
            b,
            cid,
            Response::OffsetFetch(OffsetFetchResponse {
                error: ErrorCode::None,
                // No leader epoch: nothing to validate.
                offsets: vec![committed(0, 5, -1)],
            }),
            &mut out,
        );
        let reqs = take(&mut out);
        let Request::ListOffsets(l) = &one(&reqs, "ListOffsets").2 else {
            unreachable!()
        };
        assert_eq!(l.partitions, vec![(tp(1), EARLIEST_TIMESTAMP, 0)]);
        let fetch = fetch_of(one(&reqs, "Fetch"));
        assert_eq!(fetch.2.partitions[0].fetch_offset, 5);
        respond(
            &mut c,
            7,
            1,
            one(&reqs, "ListOffsets").1,
            list_offsets_answer(&[(tp(1), ErrorCode::None, 0)]),
            &mut out,
        );
        let fetched = &out.history[0];
        assert!(
            matches!(&fetched.op, Op::FetchCommitted { group, generation: 1, offsets, .. }
                    if group == "g" && *offsets == vec![(tp(0), Some(5)), (tp(1), None)]),
            "{fetched:?}"
        );
        assert!(fetched.invoke_ms < fetched.complete_ms.unwrap());
        assert_eq!(
            ops(&out)[1..],
            vec![
                Op::Seek {
                    partition: tp(0),
                    offset: 5,
                    reason: "committed offset".into()
                },
                Op::Seek {
                    partition: tp(1),
                    offset: 0,
                    reason: "no committed offset; auto.offset.reset=earliest".into()
                },
            ]
        );
        assert_eq!(c.positions(), vec![(tp(0), 5), (tp(1), 0)]);
    }

    #[test]
    fn read_committed_members_ask_for_stable_offsets_and_retry_unstable_ones() {
        let (_, _, (_, _, f)) = stable(group_config(), &[0]);
        assert!(!f.require_stable);
        let config = ConsumerConfig {
            isolation_level: IsolationLevel::ReadCommitted,
            ..group_config()
        };
        let (mut c, mut out, (b, cid, f)) = stable(config, &[0]);
        assert!(f.require_stable, "KIP-447");
        let unstable = Response::OffsetFetch(OffsetFetchResponse {
            error: ErrorCode::UnstableOffsetCommit,
            offsets: vec![],
        });
        respond(&mut c, 6, b, cid, unstable, &mut out);
        assert!(out.history.is_empty(), "no position yet");
        let again = idle_until(&mut c, &mut out, 6 + 100)
            .into_iter()
            .find(|(_, (_, _, r))| r.api_name() == "OffsetFetch")
            .expect("retried after retry.backoff.ms");
        assert_eq!(again.0, 6 + 100);
    }

    #[test]
    fn poll_returns_at_most_max_poll_records_and_moves_the_position() {
        let config = ConsumerConfig {
            max_poll_records: 2,
            ..group_config()
        };
        let (mut c, mut out, (b, cid, f)) = consuming(config, 3);
        assert_eq!(f.partitions[0].fetch_offset, 3);
        respond(
            &mut c,
            10,
            b,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 6, vec![batch(3, &[13, 14, 15])]),
            &mut out,
        );
        assert!(
            only(&take(&mut out), "Fetch").is_empty(),
            "buffered: not fetched again"
        );
        assert_eq!(c.positions(), vec![(tp(0), 3)], "fetching does not consume");
        let polled = c.poll(11, &mut out);
        assert_eq!(
            polled
                .iter()
                .map(|r| (r.offset, r.value))
                .collect::<Vec<_>>(),
            vec![(3, 13), (4, 14)]
        );
        assert_eq!(c.positions(), vec![(tp(0), 5)]);
        assert!(only(&take(&mut out), "Fetch").is_empty());
        let polled = c.poll(12, &mut out);
        assert_eq!(polled.len(), 1);
        assert_eq!(c.positions(), vec![(tp(0), 6)]);
        let reqs = take(&mut out);
        assert_eq!(
            fetch_of(one(&reqs, "Fetch")).2.partitions[0].fetch_offset,
            6
        );
        let polls: Vec<Op> = ops(&out)
            .into_iter()
            .filter(|o| matches!(o, Op::Poll { .. }))
            .collect();
        assert_eq!(
            polls,
            vec![
                Op::Poll {
                    read_committed: false,
                    partition: tp(0),
                    records: vec![read(3, 13), read(4, 14)],
                    high_watermark: 6
                },
                Op::Poll {
                    read_committed: false,
                    partition: tp(0),
                    records: vec![read(5, 15)],
                    high_watermark: 6
                },
            ]
        );
    }

    #[test]
    fn heartbeats_every_interval_and_rebalance_in_progress_rejoins() {
        let (mut c, mut out, (_, cid, _)) = consuming(group_config(), 0);
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 2, vec![batch(0, &[1, 2])]),
            &mut out,
        );
        assert_eq!(c.poll(11, &mut out).len(), 2);
        take(&mut out);
        // Joined at 4: heartbeats at 3004, 6004, ...
        assert_eq!(c.next_timer(), Some(3_004));
        c.on_timer(3_004, &mut out);
        let reqs = take(&mut out);
        let hb = one(&reqs, "Heartbeat");
        let Request::Heartbeat(h) = &hb.2 else {
            unreachable!()
        };
        assert_eq!((hb.0, h.generation_id, &*h.member_id), (2, 1, "m-1"));
        respond(
            &mut c,
            3_005,
            2,
            hb.1,
            heartbeat_answer(ErrorCode::RebalanceInProgress),
            &mut out,
        );
        assert!(take(&mut out).is_empty(), "the rejoin waits for poll");
        // The next poll commits the consumed position first (onJoinPrepare) ...
        c.poll(3_100, &mut out);
        let reqs = take(&mut out);
        assert!(only(&reqs, "JoinGroup").is_empty(), "not before the commit");
        let oc = one(&reqs, "OffsetCommit");
        let Request::OffsetCommit(o) = &oc.2 else {
            unreachable!()
        };
        assert_eq!((o.generation_id, &*o.member_id), (1, "m-1"));
        assert_eq!(o.offsets, vec![committed(0, 2, 0)]);
        respond(
            &mut c,
            3_101,
            2,
            oc.1,
            commit_answer(&o.offsets, ErrorCode::None),
            &mut out,
        );
        // ... then revokes everything and rejoins with its member id.
        let reqs = take(&mut out);
        let join = one(&reqs, "JoinGroup");
        let Request::JoinGroup(j) = &join.2 else {
            unreachable!()
        };
        assert_eq!(&*j.member_id, "m-1");
        assert!(c.assignment().is_empty());
        respond(
            &mut c,
            3_200,
            2,
            join.1,
            join_answer(ErrorCode::None, 2, "m-1", "m-0", vec![]),
            &mut out,
        );
        let reqs = take(&mut out);
        respond(
            &mut c,
            3_201,
            2,
            one(&reqs, "SyncGroup").1,
            sync_answer(ErrorCode::None, &[1]),
            &mut out,
        );
        assert_eq!(c.generation(), Some(2));
        assert_eq!(
            c.drain_events(),
            vec![
                // onJoinPrepare's commit of the consumed position, then the rebalance.
                GroupEvent::CommitCompleted {
                    id: 0,
                    offsets: vec![committed(0, 2, 0)],
                    sent_ms: 3_100,
                    generation: 1,
                },
                GroupEvent::Revoked {
                    generation: 1,
                    partitions: vec![tp(0)],
                    lost: false
                },
                GroupEvent::Assigned {
                    generation: 2,
                    member_id: Arc::from("m-1"),
                    partitions: vec![tp(1)]
                },
            ]
        );
    }

    #[test]
    fn not_coordinator_rediscovers_the_coordinator() {
        let (mut c, mut out, _) = consuming(group_config(), 0);
        c.poll(3_000, &mut out);
        take(&mut out);
        c.on_timer(3_004, &mut out);
        let reqs = take(&mut out);
        respond(
            &mut c,
            3_005,
            2,
            one(&reqs, "Heartbeat").1,
            heartbeat_answer(ErrorCode::NotCoordinator),
            &mut out,
        );
        let reqs = take(&mut out);
        let find = one(&reqs, "FindCoordinator");
        assert_eq!(find.0, 1, "to the least loaded node");
        respond(
            &mut c,
            3_006,
            1,
            find.1,
            Response::FindCoordinator(FindCoordinatorResponse {
                error: ErrorCode::None,
                node_id: Some(3),
            }),
            &mut out,
        );
        let t = c.next_timer().unwrap();
        assert_eq!(
            t, 3_105,
            "the failed heartbeat is retried after retry.backoff.ms"
        );
        c.on_timer(t, &mut out);
        let reqs = take(&mut out);
        assert_eq!(
            one(&reqs, "Heartbeat").0,
            3,
            "heartbeats go to the new coordinator"
        );
        assert_eq!(c.generation(), Some(1), "still a member");
    }

    #[test]
    fn an_unanswered_heartbeat_past_the_session_timeout_rediscovers() {
        // A request.timeout.ms above the session timeout, so the session check
        // (not the heartbeat's own timeout) notices the silent coordinator.
        let config = ConsumerConfig {
            request_timeout_ms: 60_000,
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 0);
        let mut finds = Vec::new();
        while let Some(t) = c.next_timer().filter(|t| *t <= 50_000) {
            c.poll(t, &mut out); // the application keeps polling
            for req in take(&mut out) {
                if req.2.api_name() == "FindCoordinator" {
                    finds.push(t);
                }
            }
        }
        // Joined at 4; heartbeats at 3004 (unanswered, so no more): the session
        // ends at 45_004.
        assert_eq!(finds, vec![45_004]);
    }

    #[test]
    fn poll_timeout_sends_leave_group_and_rejoins_on_the_next_poll() {
        let config = ConsumerConfig {
            max_poll_interval_ms: 10_000,
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 0);
        let reqs = idle_until(&mut c, &mut out, 20_000);
        // Joined at 4 (the poll timer restarts at join): expires at 10_004.
        let leave: Vec<_> = reqs
            .iter()
            .filter(|(_, r)| r.2.api_name() == "LeaveGroup")
            .collect();
        assert_eq!(leave.len(), 1, "{reqs:?}");
        let (at, (b, _, Request::LeaveGroup(l))) = leave[0] else {
            unreachable!()
        };
        assert_eq!((*at, *b), (10_004, 2));
        assert_eq!(l.members, vec![(Arc::from("m-1"), None)]);
        assert_eq!(c.generation(), Some(-1));
        let events = c.drain_events();
        assert_eq!(
            events,
            vec![GroupEvent::LeftGroup {
                reason: "consumer poll timeout has expired.".into(),
                sent_leave_group: true
            }]
        );
        c.poll(20_001, &mut out);
        let reqs = take(&mut out);
        let Request::JoinGroup(j) = &one(&reqs, "JoinGroup").2 else {
            unreachable!()
        };
        assert_eq!(&*j.member_id, "", "a new member");
        assert!(
            only(&reqs, "OffsetCommit").is_empty(),
            "no generation to commit with"
        );
        assert_eq!(
            c.drain_events(),
            vec![GroupEvent::Revoked {
                generation: 1,
                partitions: vec![tp(0)],
                lost: true
            }]
        );
    }

    #[test]
    fn a_static_member_sends_its_instance_id_and_never_leave_group() {
        let config = ConsumerConfig {
            max_poll_interval_ms: 10_000,
            group_instance_id: Some("i-1".into()),
            ..group_config()
        };
        let (_, _, (_, _, j)) = joining(config.clone(), 2);
        assert_eq!(j.group_instance_id, Some(Arc::from("i-1")));
        let (mut c, mut out, _) = consuming(config, 0);
        let reqs = idle_until(&mut c, &mut out, 30_000);
        assert!(
            reqs.iter().all(|(_, r)| r.2.api_name() != "LeaveGroup"),
            "{reqs:?}"
        );
        assert_eq!(
            c.drain_events(),
            vec![GroupEvent::LeftGroup {
                reason: "consumer poll timeout has expired.".into(),
                sent_leave_group: false
            }]
        );
        assert!(
            c.next_timer().is_none_or(|t| t > 30_000),
            "no heartbeats after the poll timeout"
        );
        c.poll(30_001, &mut out);
        let reqs = take(&mut out);
        let Request::JoinGroup(j) = &one(&reqs, "JoinGroup").2 else {
            unreachable!()
        };
        assert_eq!(j.group_instance_id, Some(Arc::from("i-1")));
    }

    #[test]
    fn auto_commit_every_interval_with_generation_and_member_id() {
        let (mut c, mut out, (_, cid, _)) = consuming(group_config(), 0);
        respond(
            &mut c,
            10,
            1,
            cid,
            fetch_answer(tp(0), ErrorCode::None, 3, vec![batch(0, &[1, 2, 3])]),
            &mut out,
        );
        assert_eq!(c.poll(100, &mut out).len(), 3);
        let mut commits = Vec::new();
        for now in (1_000..=16_000).step_by(1_000) {
            idle_until(&mut c, &mut out, now);
            c.poll(now, &mut out);
            for req in take(&mut out) {
                if let Request::OffsetCommit(o) = &req.2 {
                    commits.push((now, o.generation_id, o.member_id.clone(), o.offsets.clone()));
                    respond(
                        &mut c,
                        now,
                        req.0,
                        req.1,
                        commit_answer(&o.offsets, ErrorCode::None),
                        &mut out,
                    );
                }
            }
        }
        // Assigned at 5: auto-commits are due from 5005 on, then every 5000.
        let times: Vec<Millis> = commits.iter().map(|c| c.0).collect();
        assert_eq!(times, vec![6_000, 11_000, 16_000]);
        assert!(commits
            .iter()
            .all(|(_, g, m, o)| *g == 1 && &**m == "m-1" && *o == vec![committed(0, 3, 0)]));
        let outcomes: Vec<(Millis, i32)> = c
            .drain_events()
            .into_iter()
            .map(|e| match e {
                GroupEvent::CommitCompleted {
                    sent_ms,
                    generation,
                    ..
                } => (sent_ms, generation),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![(6_000, 1), (11_000, 1), (16_000, 1)],
            "each auto-commit's outcome is an event for the history"
        );
    }

    #[test]
    fn a_commit_after_illegal_generation_fails_and_rejoins() {
        let config = ConsumerConfig {
            enable_auto_commit: Some(false),
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 4);
        let id = c.commit_sync(20, None, &mut out);
        let reqs = take(&mut out);
        let oc = one(&reqs, "OffsetCommit");
        let Request::OffsetCommit(o) = &oc.2 else {
            unreachable!()
        };
        assert_eq!(
            (o.generation_id, o.offsets.clone()),
            (1, vec![committed(0, 4, -1)])
        );
        respond(
            &mut c,
            21,
            2,
            oc.1,
            commit_answer(&o.offsets, ErrorCode::IllegalGeneration),
            &mut out,
        );
        let events = c.drain_events();
        assert!(
            matches!(&events[..], [GroupEvent::CommitFailed { id: i, error, invoked_ms: 20, generation: 1 }] if *i == id && error.starts_with("CommitFailedException")),
            "{events:?}"
        );
        assert_eq!(c.generation(), Some(-1));
        c.poll(22, &mut out);
        let reqs = take(&mut out);
        let Request::JoinGroup(j) = &one(&reqs, "JoinGroup").2 else {
            unreachable!()
        };
        assert_eq!(
            &*j.member_id, "m-1",
            "ILLEGAL_GENERATION keeps the member id"
        );
        assert_eq!(
            c.drain_events(),
            vec![GroupEvent::Revoked {
                generation: 1,
                partitions: vec![tp(0)],
                lost: true
            }]
        );
    }

    /// Kafka Streams re-initializes a task it closed dirty from the committed
    /// offsets (`StreamTask`: `mainConsumer.committed()` then `seek`): the local
    /// positions are dropped, an `OffsetFetch` (`require_stable` for
    /// `read_committed`) asks for every assigned partition and its answer sets them;
    /// until then nothing is fetched or polled.
    #[test]
    fn seek_to_committed_takes_positions_from_the_committed_offsets() {
        let config = ConsumerConfig {
            enable_auto_commit: Some(false),
            isolation_level: IsolationLevel::ReadCommitted,
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 4);
        assert_eq!(c.positions(), vec![(tp(0), 4)]);
        c.seek_to_committed();
        assert_eq!(c.positions(), vec![]);
        assert!(
            c.consumed_offsets().is_empty(),
            "nothing to commit meanwhile"
        );
        assert!(c.poll(30, &mut out).is_empty());
        let reqs = take(&mut out);
        let of = one(&reqs, "OffsetFetch");
        let Request::OffsetFetch(r) = &of.2 else {
            unreachable!()
        };
        assert_eq!(
            (r.partitions.clone(), r.require_stable),
            (vec![tp(0)], true)
        );
        out.history.clear();
        respond(
            &mut c,
            31,
            of.0,
            of.1,
            Response::OffsetFetch(OffsetFetchResponse {
                error: ErrorCode::None,
                offsets: vec![committed(0, 7, -1)],
            }),
            &mut out,
        );
        assert_eq!(c.positions(), vec![(tp(0), 7)]);
        assert!(out.history.iter().any(|e| matches!(
            &e.op,
            Op::Seek { offset: 7, reason, .. } if reason == "committed offset"
        )));
    }

    /// Kafka's `ConsumerCoordinator.groupMetadata()` is set only by
    /// `onJoinComplete`: after `UNKNOWN_MEMBER_ID` resets the generation and the
    /// member id (`resetStateAndRejoin`), `groupMetadata()` still names the last
    /// join, which a zombie's `sendOffsetsToTransaction` then carries (KIP-447).
    #[test]
    fn group_metadata_keeps_the_last_join_after_a_reset() {
        let config = ConsumerConfig {
            enable_auto_commit: Some(false),
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 4);
        assert_eq!(c.group_metadata(), Some((1, Arc::from("m-1"))));
        c.commit_sync(20, None, &mut out);
        let reqs = take(&mut out);
        let oc = one(&reqs, "OffsetCommit");
        let Request::OffsetCommit(o) = &oc.2 else {
            unreachable!()
        };
        respond(
            &mut c,
            21,
            2,
            oc.1,
            commit_answer(&o.offsets, ErrorCode::UnknownMemberId),
            &mut out,
        );
        assert_eq!(
            (c.generation(), c.member_id()),
            (Some(-1), Some(Arc::from("")))
        );
        assert_eq!(c.group_metadata(), Some((1, Arc::from("m-1"))));
    }

    #[test]
    fn commit_sync_retries_retriable_errors() {
        let (mut c, mut out, _) = consuming(group_config(), 4);
        let id = c.commit_sync(20, Some(vec![committed(0, 9, 0)]), &mut out);
        let reqs = take(&mut out);
        let oc = one(&reqs, "OffsetCommit");
        let Request::OffsetCommit(o) = &oc.2 else {
            unreachable!()
        };
        respond(
            &mut c,
            21,
            2,
            oc.1,
            commit_answer(&o.offsets, ErrorCode::CoordinatorLoadInProgress),
            &mut out,
        );
        assert!(c.drain_events().is_empty());
        assert_eq!(c.next_timer(), Some(121));
        c.on_timer(121, &mut out);
        let reqs = take(&mut out);
        let oc = one(&reqs, "OffsetCommit");
        respond(
            &mut c,
            122,
            2,
            oc.1,
            commit_answer(&[committed(0, 9, 0)], ErrorCode::None),
            &mut out,
        );
        assert_eq!(
            c.drain_events(),
            vec![GroupEvent::CommitCompleted {
                id,
                offsets: vec![committed(0, 9, 0)],
                sent_ms: 121,
                generation: 1,
            }]
        );
    }

    #[test]
    fn fenced_instance_id_stops_the_consumer() {
        let config = ConsumerConfig {
            group_instance_id: Some("i-1".into()),
            ..group_config()
        };
        let (mut c, mut out, _) = consuming(config, 0);
        c.on_timer(3_004, &mut out);
        let reqs = take(&mut out);
        respond(
            &mut c,
            3_005,
            2,
            one(&reqs, "Heartbeat").1,
            heartbeat_answer(ErrorCode::FencedInstanceId),
            &mut out,
        );
        let events = c.drain_events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(&events[1], GroupEvent::Fenced { error } if error.starts_with("FencedInstanceIdException"))
        );
        assert!(c.assignment().is_empty());
        assert!(c.fatal_error().is_some());
        assert!(c.poll(3_006, &mut out).is_empty());
        assert!(only(&take(&mut out), "JoinGroup").is_empty());
    }

    #[test]
    fn invalid_configs_are_refused_with_kafkas_messages() {
        let bad = ConsumerConfig {
            heartbeat_interval_ms: 45_000,
            ..group_config()
        };
        assert_eq!(
            bad.validate(),
            Err((
                "heartbeat.interval.ms",
                "Heartbeat must be set lower than the session timeout".into()
            ))
        );
        let bad = ConsumerConfig {
            enable_auto_commit: Some(true),
            ..ConsumerConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "enable.auto.commit");
        assert!(
            !ConsumerConfig::default().auto_commit(),
            "no group.id, no auto-commit"
        );
        assert!(group_config().auto_commit());
        let bad = ConsumerConfig {
            max_poll_records: 0,
            ..group_config()
        };
        assert_eq!(
            bad.validate().unwrap_err().1,
            "Invalid value 0 for configuration max.poll.records: Value must be at least 1"
        );
        let parsed: ConsumerConfig = serde_json::from_str(
                r#"{"group.id": "g", "partition.assignment.strategy": ["roundrobin", "org.apache.kafka.clients.consumer.RangeAssignor"]}"#,
            )
            .unwrap();
        assert_eq!(
            parsed.partition_assignment_strategy,
            vec![
                crate::kafka::config::Assignor::RoundRobin,
                crate::kafka::config::Assignor::Range
            ]
        );
    }

    /// A chaotic cluster and group coordinator (random errors, lost requests,
    /// rebalances) and an application polling and committing at random: no
    /// panic, no timer in the past, polls continue exactly at each partition's
    /// position (or after a Seek), and the assignment events match `assignment()`.
    #[test]
    fn randomized_group_runs_stay_consistent() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let config = ConsumerConfig {
                max_poll_records: rng.gen_range(1..5),
                max_poll_interval_ms: 20_000,
                session_timeout_ms: 10_000,
                group_instance_id: rng.gen_bool(0.3).then(|| "i".to_string()),
                enable_auto_commit: Some(rng.gen_bool(0.7)),
                ..group_config()
            };
            let mut c = Consumer::subscribe(2, config, vec![1, 2], vec![Arc::from("t")], seed);
            let mut out = Outbox::default();
            let log_end: [Offset; 3] = [40, 25, 0];
            let mut generation = 0;
            let mut queue: Vec<(BrokerId, u64, Response)> = Vec::new();
            let value = |p: u32, offset: Offset| 1_000 * u64::from(p) + offset as u64;
            let pick = |rng: &mut ChaCha8Rng, errors: &[ErrorCode]| {
                if rng.gen_bool(0.7) {
                    ErrorCode::None
                } else {
                    errors[rng.gen_range(0..errors.len())]
                }
            };
            let mut now = 0;
            let mut positions: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
            let mut assigned: Vec<TopicPartition> = Vec::new();
            let (mut polled, mut assignments) = (0, 0);
            let mut issued = BTreeSet::new();
            let mut others = BTreeSet::new();
            c.on_start(now, &mut out);
            for step in 0..4_000 {
                for (broker, cid, request) in take(&mut out) {
                    if rng.gen_bool(0.03) {
                        continue; // lost
                    }
                    let response = match request {
                        Request::Metadata(_) => metadata(&[(0, 1, 0), (1, 2, 0), (2, 1, 0)]),
                        Request::ListOffsets(l) => list_offsets_answer(
                            &l.partitions
                                .iter()
                                .map(|(tp, ts, _)| {
                                    let end = log_end[tp.partition as usize];
                                    (
                                        tp.clone(),
                                        ErrorCode::None,
                                        if *ts == EARLIEST_TIMESTAMP { 0 } else { end },
                                    )
                                })
                                .collect::<Vec<_>>(),
                        ),
                        Request::Fetch(f) => {
                            let fp = &f.partitions[0];
                            let p = fp.tp.partition;
                            let end = log_end[p as usize];
                            let values: Vec<u64> = (fp.fetch_offset..end.min(fp.fetch_offset + 3))
                                .map(|o| value(p, o))
                                .collect();
                            let batches = if values.is_empty() {
                                vec![]
                            } else {
                                vec![batch(fp.fetch_offset, &values)]
                            };
                            fetch_answer(fp.tp.clone(), ErrorCode::None, end, batches)
                        }
                        Request::FindCoordinator(_) => {
                            Response::FindCoordinator(FindCoordinatorResponse {
                                error: pick(&mut rng, &[ErrorCode::CoordinatorNotAvailable]),
                                node_id: Some(rng.gen_range(1..=2)),
                            })
                        }
                        Request::JoinGroup(j) => {
                            let error = pick(
                                &mut rng,
                                &[
                                    ErrorCode::MemberIdRequired,
                                    ErrorCode::UnknownMemberId,
                                    ErrorCode::RebalanceInProgress,
                                    ErrorCode::NotCoordinator,
                                    ErrorCode::CoordinatorLoadInProgress,
                                ],
                            );
                            generation += 1;
                            let me = if j.member_id.is_empty() {
                                format!("m{generation}")
                            } else {
                                j.member_id.to_string()
                            };
                            let leader = if rng.gen_bool(0.5) {
                                me.clone()
                            } else {
                                "other".into()
                            };
                            let members = if leader == me {
                                vec![member(&me), member("other")]
                            } else {
                                vec![]
                            };
                            join_answer(error, generation, &me, &leader, members)
                        }
                        Request::SyncGroup(_) => {
                            let error = pick(
                                &mut rng,
                                &[
                                    ErrorCode::RebalanceInProgress,
                                    ErrorCode::IllegalGeneration,
                                    ErrorCode::UnknownMemberId,
                                    ErrorCode::NotCoordinator,
                                ],
                            );
                            let parts: Vec<u32> = (0..3).filter(|_| rng.gen_bool(0.5)).collect();
                            sync_answer(error, &parts)
                        }
                        Request::Heartbeat(_) => heartbeat_answer(pick(
                            &mut rng,
                            &[
                                ErrorCode::RebalanceInProgress,
                                ErrorCode::IllegalGeneration,
                                ErrorCode::UnknownMemberId,
                                ErrorCode::NotCoordinator,
                            ],
                        )),
                        Request::OffsetCommit(o) => {
                            let error = pick(
                                &mut rng,
                                &[
                                    ErrorCode::CoordinatorLoadInProgress,
                                    ErrorCode::NotCoordinator,
                                    ErrorCode::RebalanceInProgress,
                                    ErrorCode::IllegalGeneration,
                                ],
                            );
                            commit_answer(&o.offsets, error)
                        }
                        Request::OffsetFetch(f) => Response::OffsetFetch(OffsetFetchResponse {
                            error: pick(
                                &mut rng,
                                &[
                                    ErrorCode::CoordinatorLoadInProgress,
                                    ErrorCode::NotCoordinator,
                                ],
                            ),
                            offsets: f
                                .partitions
                                .iter()
                                .filter_map(|tp| {
                                    let end = log_end[tp.partition as usize];
                                    rng.gen_bool(0.5)
                                        .then(|| committed(tp.partition, rng.gen_range(0..=end), 0))
                                })
                                .collect(),
                        }),
                        Request::OffsetsForLeaderEpoch(r) => epoch_answer(
                            &r.partitions
                                .iter()
                                .map(|(tp, _, _)| {
                                    let end = log_end[tp.partition as usize];
                                    (tp.clone(), ErrorCode::None, 0, end)
                                })
                                .collect::<Vec<_>>(),
                        ),
                        Request::LeaveGroup(_) => {
                            Response::LeaveGroup(crate::kafka::protocol::LeaveGroupResponse {
                                error: ErrorCode::None,
                            })
                        }
                        other => panic!("unexpected request {other:?}"),
                    };
                    queue.push((broker, cid, response));
                }
                match rng.gen_range(0..10) {
                    0..=4 if !queue.is_empty() => {
                        let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
                        respond(&mut c, now, broker, cid, response, &mut out);
                    }
                    5 => {
                        let records = c.poll(now, &mut out);
                        assert!(records.len() <= c.config.max_poll_records);
                    }
                    6 if rng.gen_bool(0.2) => {
                        let id = if rng.gen_bool(0.5) {
                            c.commit_sync(now, None, &mut out)
                        } else {
                            c.commit_async(now, None, &mut out)
                        };
                        assert!(issued.insert(id), "seed {seed}: commit ids are unique");
                    }
                    _ => match c.next_timer() {
                        Some(t) if t <= now + 500 => {
                            now = now.max(t);
                            c.on_timer(now, &mut out);
                        }
                        _ => now += 500,
                    },
                }
                assert!(
                    c.next_timer().is_none_or(|t| t > now),
                    "seed {seed} step {step}: timer in the past"
                );
                for event in c.drain_events() {
                    match event {
                        GroupEvent::Revoked { partitions, .. } => {
                            assert_eq!(partitions, assigned, "seed {seed}: revokes what it had");
                            assigned.clear();
                        }
                        GroupEvent::Assigned { partitions, .. } => {
                            assert!(
                                assigned.is_empty(),
                                "seed {seed}: eager: revoked before assigned"
                            );
                            assigned = partitions;
                            assignments += 1;
                        }
                        GroupEvent::CommitCompleted { id, .. }
                        | GroupEvent::CommitFailed { id, .. } => {
                            // The application's commits, and the auto-commits and
                            // pre-rebalance commits it did not ask for: one outcome each.
                            assert!(
                                issued.remove(&id) || others.insert(id),
                                "seed {seed}: one outcome per commit"
                            );
                        }
                        GroupEvent::Fenced { .. } => panic!("seed {seed}: never fenced here"),
                        _ => {}
                    }
                }
                assert_eq!(c.assignment(), assigned, "seed {seed} step {step}");
                for entry in out.history.drain(..) {
                    match entry.op {
                        Op::Seek {
                            partition, offset, ..
                        } => {
                            positions.insert(partition, offset);
                        }
                        Op::Poll {
                            partition, records, ..
                        } => {
                            let pos = positions.get_mut(&partition).expect("a Seek first");
                            for r in records {
                                assert_eq!(
                                    r.offset, *pos,
                                    "seed {seed}: {partition} continues at its position"
                                );
                                assert_eq!(r.value, value(partition.partition, r.offset));
                                *pos += 1;
                                polled += 1;
                            }
                        }
                        Op::ObserveHighWatermark { .. } | Op::FetchCommitted { .. } => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                now += rng.gen_range(0..3);
            }
            assert!(
                assignments > 1 && polled > 0,
                "seed {seed}: rebalanced and read"
            );
        }
    }
}
