//! Retention, the log start offset on the read paths, and followers starting again at
//! their leader's log start.

use super::*;

/// Every batch in its own segment, everything older than a second deleted, checked
/// every second from the start.
fn retaining() -> BrokerConfig {
    BrokerConfig {
        log_segment_bytes: 14,
        log_retention_ms: Some(1_000),
        log_retention_check_interval_ms: 1_000,
        log_initial_task_delay_ms: 1_000,
        ..BrokerConfig::default()
    }
}

fn log_starts(out: &Outbox) -> Vec<(Offset, String)> {
    out.history
        .iter()
        .filter_map(|e| match &e.op {
            Op::LogStartOffsetIncremented {
                log_start_offset,
                reason,
                ..
            } => Some((*log_start_offset, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn retention_moves_the_log_start_below_the_high_watermark_only() {
    let (mut b, _) = broker(
        1,
        retaining(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    for (i, v) in [100, 101, 102].into_iter().enumerate() {
        send(&mut b, 10 + i as u64, i as u64 + 1, Acks::Leader, &[v]);
    }
    // The follower has the first two: the high watermark is 2.
    request(&mut b, 20, NodeId::Broker(2), 9, follower_fetch(2, 2, 0));
    assert_eq!(b.high_watermark(&tp()), 2);
    let mut out = Outbox::default();
    b.on_timer(100_000, &mut out);
    assert_eq!(log_starts(&out), vec![(2, "segment-deletion".to_string())]);
    assert_eq!(b.disk().logs[&tp()].log_start_offset(), 2);
    // Below the log start: OFFSET_OUT_OF_RANGE, with the log start in the answer.
    let p = fetched(&mut b, 100_001, NodeId::Consumer(0), 10, consumer_fetch(1));
    assert_eq!(
        (p.error, p.log_start_offset),
        (ErrorCode::OffsetOutOfRange, 2)
    );
    let p = fetched(&mut b, 100_002, NodeId::Consumer(0), 11, consumer_fetch(2));
    assert_eq!((p.error, p.log_start_offset), (ErrorCode::None, 2));
    // ListOffsets EARLIEST is the log start.
    let list = Request::ListOffsets(ListOffsetsRequest {
        isolation_level: IsolationLevel::ReadUncommitted,
        partitions: vec![(tp(), EARLIEST_TIMESTAMP, 0)],
    });
    let out = request(&mut b, 100_003, NodeId::Consumer(0), 12, list);
    let Some(Response::ListOffsets(r)) = response_to(&out, 12) else {
        panic!("no ListOffsets answer");
    };
    assert_eq!(r.partitions[0].offset, 2);
}

#[test]
fn a_follower_below_its_leaders_log_start_starts_again_there() {
    let (mut f, out) = replica_of(2, 1, &[1, 2], Bugs::default());
    let c = find(&out, |r| matches!(r, Request::Fetch(_)));
    let resp = Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            tp: tp(),
            error: ErrorCode::OffsetOutOfRange,
            high_watermark: 9,
            last_stable_offset: 9,
            log_start_offset: 5,
            batches: Vec::new(),
            aborted_transactions: Vec::new(),
            diverging_epoch: None,
        }],
    });
    let out = answer_with(&mut f, 10, 1, c, resp);
    assert_eq!(log_starts(&out), vec![(5, "truncate-fully".to_string())]);
    let log = &f.disk().logs[&tp()];
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    // Its next fetch (sent at once) asks from there.
    let fetch = out.sends.iter().find_map(|(_, m)| match m {
        Message::Request {
            request: Request::Fetch(r),
            ..
        } => Some(r.partitions[0].fetch_offset),
        _ => None,
    });
    assert_eq!(fetch, Some(5));
}

/// A follower fetch of `orders-0` from `offset` in epoch 0 carrying the follower's log
/// start offset.
fn follower_fetch_with_log_start(replica: BrokerId, offset: Offset, log_start: Offset) -> Request {
    let Request::Fetch(mut r) = follower_fetch(replica, offset, 0) else {
        unreachable!("a fetch");
    };
    r.partitions[0].log_start_offset = log_start;
    Request::Fetch(r)
}

fn delete_records(offset: Offset, timeout_ms: u64) -> Request {
    Request::DeleteRecords(DeleteRecordsRequest {
        partitions: vec![(tp(), offset)],
        timeout_ms,
    })
}

fn deleted(out: &Outbox, correlation: u64) -> Option<(ErrorCode, Offset)> {
    match response_to(out, correlation)? {
        Response::DeleteRecords(r) => Some((r.partitions[0].error, r.partitions[0].low_watermark)),
        other => panic!("not a DeleteRecords answer: {other:?}"),
    }
}

/// KIP-107: above the high watermark is OFFSET_OUT_OF_RANGE at once; the high
/// watermark (-1) moves the leader's log start and the answer waits until the
/// fetches of the replicas on live brokers, in the ISR or not
/// (`lowWatermarkIfLeader`), report they reached it.
#[test]
fn delete_records_moves_the_log_start_and_waits_for_the_followers() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    for (i, v) in [100, 101, 102].into_iter().enumerate() {
        send(&mut b, 10 + i as u64, i as u64 + 1, Acks::Leader, &[v]);
    }
    request(&mut b, 20, NodeId::Broker(2), 9, follower_fetch(2, 3, 0));
    assert_eq!(b.high_watermark(&tp()), 3);
    let out = request(&mut b, 30, NodeId::Nemesis, 40, delete_records(4, 60_000));
    assert_eq!(deleted(&out, 40), Some((ErrorCode::OffsetOutOfRange, -1)));
    let out = request(
        &mut b,
        31,
        NodeId::Nemesis,
        41,
        delete_records(DELETE_RECORDS_HIGH_WATERMARK, 60_000),
    );
    assert_eq!(
        log_starts(&out),
        vec![(3, "client-record-deletion".to_string())]
    );
    assert_eq!(
        deleted(&out, 41),
        None,
        "the follower's log start is still 0"
    );
    let out = request(
        &mut b,
        32,
        NodeId::Broker(2),
        10,
        follower_fetch_with_log_start(2, 3, 0),
    );
    assert_eq!(deleted(&out, 41), None);
    let out = request(
        &mut b,
        33,
        NodeId::Broker(2),
        11,
        follower_fetch_with_log_start(2, 3, 3),
    );
    assert_eq!(
        deleted(&out, 41),
        None,
        "replica 3, live but out of the ISR, has not fetched: the low watermark is -1"
    );
    let out = request(
        &mut b,
        34,
        NodeId::Broker(3),
        12,
        follower_fetch_with_log_start(3, 3, 3),
    );
    assert_eq!(deleted(&out, 41), Some((ErrorCode::None, 3)));
    let p = fetched(&mut b, 35, NodeId::Consumer(0), 13, consumer_fetch(0));
    assert_eq!(
        (p.error, p.log_start_offset),
        (ErrorCode::OffsetOutOfRange, 3)
    );
}

/// A `DeleteRecords` whose low watermark never comes is REQUEST_TIMED_OUT at its
/// timeout, with the low watermark it had (-1: replica 3 never fetched); a non-leader
/// refuses at once.
#[test]
fn delete_records_times_out_and_needs_the_leader() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    send(&mut b, 10, 1, Acks::Leader, &[100]);
    request(
        &mut b,
        20,
        NodeId::Broker(2),
        9,
        follower_fetch_with_log_start(2, 1, 0),
    );
    let out = request(&mut b, 30, NodeId::Nemesis, 40, delete_records(1, 1_000));
    assert_eq!(deleted(&out, 40), None);
    let mut out = Outbox::default();
    b.on_timer(1_030, &mut out);
    assert_eq!(deleted(&out, 40), Some((ErrorCode::RequestTimedOut, -1)));
    let (mut f, _) = replica_of(2, 1, &[1, 2], Bugs::default());
    let out = request(&mut f, 10, NodeId::Nemesis, 1, delete_records(0, 1_000));
    assert_eq!(deleted(&out, 1), Some((ErrorCode::NotLeaderOrFollower, -1)));
}

/// Retention judges segments by the broker's wall clock (`time.milliseconds()` in
/// `deleteRetentionMsBreachedSegments`): the same log, checked at the same true time,
/// keeps its segments on a true clock and loses them on a clock 500 ms ahead.
#[test]
fn retention_reads_the_brokers_wall_clock() {
    for (offset_ms, log_start) in [(0, 0), (500, 2)] {
        let (mut b, _) = broker(
            1,
            retaining(),
            Bugs::default(),
            vec![reg(Some(1), &[1, 2], 0, 0)],
        );
        b.set_wall_clock(crate::actor::WallClock {
            offset_ms,
            drift_ppm: 0,
        });
        for (i, v) in [100, 101].into_iter().enumerate() {
            send(&mut b, 10 + i as u64, i as u64 + 1, Acks::Leader, &[v]);
        }
        request(&mut b, 20, NodeId::Broker(2), 9, follower_fetch(2, 2, 0));
        // The records' CreateTime is the clock's start; retention.ms is 1,000.
        let mut out = Outbox::default();
        b.on_timer(1_000, &mut out);
        assert_eq!(
            b.disk().logs[&tp()].log_start_offset(),
            log_start,
            "clock {offset_ms} ms ahead"
        );
    }
}
