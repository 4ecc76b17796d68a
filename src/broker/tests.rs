//! Unit tests of `broker`.

use super::*;
use crate::kafka::record::{Record, RecordBatch};
use bytes::Bytes;
use std::sync::Arc;

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn batch(values: &[u64]) -> Bytes {
    idempotent_batch(-1, -1, -1, values)
}

/// A batch from producer `producer_id` whose first record has `base_sequence`.
fn idempotent_batch(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    values: &[u64],
) -> Bytes {
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: 0,
        last_offset_delta: values.len() as i32 - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id,
        producer_epoch,
        base_sequence,
        records: values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: i as i32,
                key: None,
                value: Some(Bytes::from(v.to_string())),
                headers: vec![],
            })
            .collect(),
    }
    .encode()
}

fn reg(
    leader: Option<BrokerId>,
    isr: &[BrokerId],
    leader_epoch: i32,
    partition_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionRegistration {
        tp: tp(),
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
    })
}

fn find(out: &Outbox, pred: impl Fn(&Request) -> bool) -> u64 {
    out.sends
        .iter()
        .find_map(|(_, m)| match m {
            Message::Request {
                correlation_id,
                request,
            } if pred(request) => Some(*correlation_id),
            _ => None,
        })
        .expect("request sent")
}

/// A registered, unfenced broker that has applied `records` after the cluster's
/// registrations (offsets 0..6) and the topic record (offset 6).
fn broker(
    id: BrokerId,
    config: BrokerConfig,
    bugs: Bugs,
    records: Vec<MetadataRecord>,
) -> (Broker, Outbox) {
    bring_up(Broker::new(id, config, bugs, 1, Disk::default()), records)
}

/// Starts `b` (new or restarted) as [`broker`] does.
fn bring_up(mut b: Broker, records: Vec<MetadataRecord>) -> (Broker, Outbox) {
    let id = b.id;
    let mut out = Outbox::default();
    b.on_start(0, &mut out);
    let c = find(&out, |r| matches!(r, Request::BrokerRegistration(_)));
    let resp = Response::BrokerRegistration(BrokerRegistrationResponse {
        error: ErrorCode::None,
        broker_epoch: i64::from(id) - 1,
    });
    let mut out2 = Outbox::default();
    b.on_message(
        1,
        NodeId::Controller,
        Message::Response {
            correlation_id: c,
            response: resp,
        },
        &mut out2,
    );
    let mut log: Vec<MetadataRecord> = (1..=3)
        .map(|i| MetadataRecord::RegisterBroker {
            broker_id: i,
            broker_epoch: i64::from(i) - 1,
        })
        .collect();
    log.extend((1..=3).map(|i| MetadataRecord::UnfenceBroker {
        broker_id: i,
        broker_epoch: i64::from(i) - 1,
    }));
    log.push(MetadataRecord::Topic {
        name: "orders".into(),
        partitions: 1,
    });
    log.extend(records);
    let out = deliver_metadata(&mut b, 2, &out, log, 0);
    (b, out)
}

fn deliver_metadata(
    b: &mut Broker,
    now: Millis,
    out: &Outbox,
    records: Vec<MetadataRecord>,
    first: i64,
) -> Outbox {
    let c = find(out, |r| matches!(r, Request::MetadataFetch(_)));
    let records: Vec<(i64, MetadataRecord)> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (first + i as i64, r))
        .collect();
    let end = first + records.len() as i64;
    let resp = Response::MetadataFetch(MetadataFetchResponse {
        records,
        log_end_offset: end,
    });
    let mut out2 = Outbox::default();
    b.on_message(
        now,
        NodeId::Controller,
        Message::Response {
            correlation_id: c,
            response: resp,
        },
        &mut out2,
    );
    out2
}

fn request(
    b: &mut Broker,
    now: Millis,
    from: NodeId,
    correlation_id: u64,
    request: Request,
) -> Outbox {
    let mut out = Outbox::default();
    b.on_message(
        now,
        from,
        Message::Request {
            correlation_id,
            request,
        },
        &mut out,
    );
    out
}

fn response_to(out: &Outbox, correlation: u64) -> Option<Response> {
    out.sends.iter().find_map(|(_, m)| match m {
        Message::Response {
            correlation_id,
            response,
        } if *correlation_id == correlation => Some(response.clone()),
        _ => None,
    })
}

fn produce(acks: Acks, values: &[u64]) -> Request {
    Request::Produce(ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 30_000,
        partitions: vec![(tp(), batch(values))],
    })
}

fn follower_fetch(replica: BrokerId, offset: Offset, epoch: LeaderEpoch) -> Request {
    Request::Fetch(FetchRequest {
        replica_id: Some(replica),
        broker_epoch: i64::from(replica) - 1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level: IsolationLevel::ReadUncommitted,
        partitions: vec![FetchPartition {
            tp: tp(),
            fetch_offset: offset,
            current_leader_epoch: epoch,
            last_fetched_epoch: None,
        }],
    })
}

fn consumer_fetch(offset: Offset) -> Request {
    Request::Fetch(FetchRequest {
        replica_id: None,
        broker_epoch: -1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level: IsolationLevel::ReadUncommitted,
        partitions: vec![FetchPartition {
            tp: tp(),
            fetch_offset: offset,
            current_leader_epoch: -1,
            last_fetched_epoch: None,
        }],
    })
}

/// An `acks` produce of `batch` to `orders-0`.
fn produce_batch(acks: Acks, batch: Bytes) -> Request {
    Request::Produce(ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 30_000,
        partitions: vec![(tp(), batch)],
    })
}

fn produce_result(r: Option<Response>) -> Option<(ErrorCode, Offset)> {
    match r {
        Some(Response::Produce(p)) => Some((p.partitions[0].error, p.partitions[0].base_offset)),
        _ => None,
    }
}

fn fetch_part(r: Option<Response>) -> FetchPartitionResponse {
    match r {
        Some(Response::Fetch(f)) => f.partitions[0].clone(),
        other => panic!("not a fetch response: {other:?}"),
    }
}

/// A follower fetch carrying KIP-595's `lastFetchedEpoch`.
fn follower_fetch_after(
    replica: BrokerId,
    offset: Offset,
    epoch: LeaderEpoch,
    last_fetched_epoch: LeaderEpoch,
) -> Request {
    let Request::Fetch(mut f) = follower_fetch(replica, offset, epoch) else {
        unreachable!()
    };
    f.partitions[0].last_fetched_epoch = Some(last_fetched_epoch);
    Request::Fetch(f)
}

/// The follower's Fetch in `out` (its correlation id and partition), and the
/// leader's answer that the logs diverge at (`epoch`, `end`).
fn diverging_answer(
    out: &Outbox,
    epoch: LeaderEpoch,
    end: Offset,
) -> (u64, FetchPartition, Response) {
    let (c, fp) = out
        .sends
        .iter()
        .find_map(|(_, m)| match m {
            Message::Request {
                correlation_id,
                request: Request::Fetch(f),
            } => Some((*correlation_id, f.partitions[0].clone())),
            _ => None,
        })
        .expect("a fetch sent");
    let resp = Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            tp: tp(),
            error: ErrorCode::None,
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            batches: Vec::new(),
            aborted_transactions: Vec::new(),
            diverging_epoch: Some((epoch, end)),
        }],
    });
    (c, fp, resp)
}

fn answer_with(b: &mut Broker, now: Millis, from: BrokerId, c: u64, response: Response) -> Outbox {
    let mut out = Outbox::default();
    b.on_message(
        now,
        NodeId::Broker(from),
        Message::Response {
            correlation_id: c,
            response,
        },
        &mut out,
    );
    out
}

#[test]
fn acks_all_waits_for_every_in_sync_replica() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2, 3], 0, 0)],
    );
    let out = request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::All, &[100, 101]),
    );
    assert_eq!(
        produce_result(response_to(&out, 7)),
        None,
        "parked until replicated"
    );
    let out = request(&mut b, 11, NodeId::Broker(2), 1, follower_fetch(2, 0, 0));
    assert_eq!(fetch_part(response_to(&out, 1)).batches.len(), 1);
    let out = request(&mut b, 12, NodeId::Broker(2), 2, follower_fetch(2, 2, 0));
    assert_eq!(
        produce_result(response_to(&out, 7)),
        None,
        "broker 3 has not fetched yet"
    );
    assert_eq!(b.high_watermark(&tp()), 0);
    let out = request(&mut b, 13, NodeId::Broker(3), 3, follower_fetch(3, 2, 0));
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::None, 0))
    );
    assert_eq!(b.high_watermark(&tp()), 2);
    // acks=1 answers at once.
    let out = request(
        &mut b,
        14,
        NodeId::Producer(0),
        8,
        produce(Acks::Leader, &[102]),
    );
    assert_eq!(
        produce_result(response_to(&out, 8)),
        Some((ErrorCode::None, 2))
    );
}

/// Kafka's KRaft broker never fences itself (`BrokerLifecycleManager` retries its
/// heartbeats with a backoff): long past `broker.session.timeout.ms` without the
/// controller, the broker still leads on its stale metadata, acknowledges an
/// `acks=1` write and answers a consumer's fetch; only a metadata record moving the
/// leadership stops it.
#[test]
fn a_broker_cut_off_from_the_controller_keeps_leading() {
    let config = BrokerConfig::default();
    let session = config.broker_session_timeout_ms;
    let (mut b, _) = broker(
        1,
        config,
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    // Nothing from the controller since t=2: heartbeats and metadata fetches time out.
    let mut now = 2;
    while now < 5 * session {
        let mut out = Outbox::default();
        now = b.next_timer().expect("timers").max(now + 1);
        b.on_timer(now, &mut out);
    }
    let out = request(
        &mut b,
        now,
        NodeId::Producer(0),
        7,
        produce(Acks::Leader, &[100]),
    );
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::None, 0)),
        "a zombie leader acknowledges acks=1"
    );
    let out = request(&mut b, now, NodeId::Consumer(0), 8, consumer_fetch(0));
    assert_eq!(fetch_part(response_to(&out, 8)).error, ErrorCode::None);
    // acks=all still waits for the ISR it last knew (broker 2 never fetches).
    let out = request(
        &mut b,
        now,
        NodeId::Producer(0),
        9,
        produce(Acks::All, &[101]),
    );
    assert_eq!(produce_result(response_to(&out, 9)), None, "parked");
}

/// The topic's `min.insync.replicas` (a `ConfigRecord`) overrides the broker's, and
/// Kafka's `Partition.effectiveMinIsr` caps it at the replica count (KAFKA-15583):
/// ISR [1, 2] of 3 replicas refuses `acks=all` under a topic minimum of 3, takes it
/// under a topic minimum of 1 with the broker's at 3, and takes it with every
/// replica in sync under a minimum of 5.
#[test]
fn acks_all_uses_the_topics_effective_min_isr() {
    let topic_min = |n: u32| MetadataRecord::TopicConfig {
        name: "orders".into(),
        config: crate::kafka::config::TopicConfig {
            min_insync_replicas: Some(n),
            unclean_leader_election_enable: None,
        },
    };
    // (broker's minimum, topic's minimum, ISR, produce answer; None = parked)
    type Case = (
        u32,
        Option<u32>,
        &'static [BrokerId],
        Option<(ErrorCode, Offset)>,
    );
    let cases: [Case; 4] = [
        (
            1,
            Some(3),
            &[1, 2],
            Some((ErrorCode::NotEnoughReplicas, -1)),
        ),
        (3, None, &[1, 2], Some((ErrorCode::NotEnoughReplicas, -1))),
        (3, Some(1), &[1, 2], None),
        (5, None, &[1, 2, 3], None),
    ];
    for (broker_min, topic, isr, expected) in cases {
        let config = BrokerConfig {
            min_insync_replicas: broker_min,
            ..BrokerConfig::default()
        };
        let mut records: Vec<MetadataRecord> = topic.map(topic_min).into_iter().collect();
        records.push(reg(Some(1), isr, 0, 0));
        let (mut b, _) = broker(1, config, Bugs::default(), records);
        let out = request(
            &mut b,
            10,
            NodeId::Producer(0),
            7,
            produce(Acks::All, &[100]),
        );
        // Accepted: parked until the followers have it.
        assert_eq!(
            produce_result(response_to(&out, 7)),
            expected,
            "broker {broker_min}, topic {topic:?}, ISR {isr:?}"
        );
    }
}

#[test]
fn too_small_isr_refuses_acks_all() {
    let config = BrokerConfig {
        min_insync_replicas: 2,
        ..BrokerConfig::default()
    };
    let (mut b, _) = broker(1, config, Bugs::default(), vec![reg(Some(1), &[1], 0, 0)]);
    let out = request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::All, &[100]),
    );
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    assert_eq!(b.disk().logs[&tp()].log_end_offset(), 0, "not appended");
}

#[test]
fn consumers_read_below_the_high_watermark_only() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::Leader, &[100]),
    );
    let p = fetch_part(response_to(
        &request(&mut b, 11, NodeId::Consumer(0), 1, consumer_fetch(0)),
        1,
    ));
    assert_eq!(
        (p.error, p.high_watermark, p.batches.len()),
        (ErrorCode::None, 0, 0)
    );
    request(&mut b, 12, NodeId::Broker(2), 2, follower_fetch(2, 1, 0));
    let p = fetch_part(response_to(
        &request(&mut b, 13, NodeId::Consumer(0), 3, consumer_fetch(0)),
        3,
    ));
    assert_eq!((p.high_watermark, p.batches.len()), (1, 1));
}

#[test]
fn high_watermark_bug_switch_acknowledges_unreplicated_writes() {
    let bugs = Bugs::of(&[Bug::HighWatermarkFromLeaderOnly]);
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        bugs,
        vec![reg(Some(1), &[1, 2, 3], 0, 0)],
    );
    let out = request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::All, &[100]),
    );
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::None, 0))
    );
}

#[test]
fn lagging_follower_is_removed_from_the_isr() {
    let mut b = leader_of_three_with_lag_1s();
    request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::Leader, &[100]),
    );
    request(&mut b, 20, NodeId::Broker(2), 1, follower_fetch(2, 1, 0));
    request(&mut b, 1_500, NodeId::Broker(2), 2, follower_fetch(2, 1, 0));
    let mut out = Outbox::default();
    b.on_timer(1_600, &mut out);
    assert_eq!(
        isr_proposals(&out),
        vec![vec![1, 2]],
        "broker 3 never fetched; broker 2 caught up"
    );
}

/// Broker 1 leading `tp()` over replicas [1, 2, 3], `replica.lag.time.max.ms` 1 s.
fn leader_of_three_with_lag_1s() -> Broker {
    let config = BrokerConfig {
        replica_lag_time_max_ms: 1_000,
        ..BrokerConfig::default()
    };
    broker(
        1,
        config,
        Bugs::default(),
        vec![reg(Some(1), &[1, 2, 3], 0, 0)],
    )
    .0
}

fn isr_proposals(out: &Outbox) -> Vec<Vec<BrokerId>> {
    out.sends
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Request {
                request: Request::AlterPartition(a),
                ..
            } => Some(a.new_isr.clone()),
            _ => None,
        })
        .collect()
}

/// Kafka's `ReplicaState.isCaughtUp`: followers at the leader's log end offset stay
/// in the ISR however long they do not fetch; once the leader appends, the time
/// since they last caught up counts.
#[test]
fn idle_followers_at_the_log_end_stay_in_sync() {
    let mut b = leader_of_three_with_lag_1s();
    request(
        &mut b,
        10,
        NodeId::Producer(0),
        7,
        produce(Acks::Leader, &[100]),
    );
    request(&mut b, 20, NodeId::Broker(2), 1, follower_fetch(2, 1, 0));
    request(&mut b, 20, NodeId::Broker(3), 2, follower_fetch(3, 1, 0));
    let mut out = Outbox::default();
    b.on_timer(5_000, &mut out);
    assert_eq!(isr_proposals(&out), Vec::<Vec<BrokerId>>::new());
    request(
        &mut b,
        5_100,
        NodeId::Producer(0),
        8,
        produce(Acks::Leader, &[101]),
    );
    let mut out = Outbox::default();
    b.on_timer(5_600, &mut out);
    assert_eq!(isr_proposals(&out), vec![vec![1]]);
}

/// `Partition.isFollowerInSync`: a follower joins the ISR once its log end offset is
/// at or past both the high watermark and the leader's epoch start offset.
#[test]
fn follower_joins_the_isr_only_within_the_leaders_epoch() {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[100, 101]), 0).unwrap();
    let mut disk = Disk::default();
    disk.logs.insert(tp(), log);
    let (mut b, _) = bring_up(
        Broker::new(1, BrokerConfig::default(), Bugs::default(), 1, disk),
        vec![reg(Some(1), &[1, 2], 1, 1)],
    );
    assert_eq!(b.high_watermark(&tp()), 0);
    let out = request(&mut b, 10, NodeId::Broker(3), 1, follower_fetch(3, 1, 1));
    assert_eq!(
        isr_proposals(&out),
        Vec::<Vec<BrokerId>>::new(),
        "below the epoch start"
    );
    let out = request(&mut b, 11, NodeId::Broker(3), 2, follower_fetch(3, 2, 1));
    assert_eq!(isr_proposals(&out), vec![vec![1, 2, 3]]);
}

/// Kafka's `AlterPartitionManager` and `Partition.handleAlterPartitionError`: a
/// proposed ISR stays pending (the leader proposes nothing else meanwhile) until
/// the controller answers; no answer sends it again, a top-level or unexpected
/// error retries after 50 ms, `INELIGIBLE_REPLICA` (not applied) goes back to the
/// committed ISR, `FENCED_LEADER_EPOCH` waits for metadata, and a newer partition
/// registration replaces it. An answer to an earlier attempt is ignored.
#[test]
fn a_pending_isr_change_stays_until_the_controller_answers() {
    let timeout = BrokerConfig::default().request_timeout_ms;
    let mut b = leader_of_three_with_lag_1s();
    request(&mut b, 20, NodeId::Broker(2), 1, follower_fetch(2, 0, 0));
    request(&mut b, 1_500, NodeId::Broker(2), 2, follower_fetch(2, 0, 0));
    let alters = |out: &Outbox| -> Vec<(u64, Vec<BrokerId>)> {
        out.sends
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Request {
                    correlation_id,
                    request: Request::AlterPartition(a),
                } => Some((*correlation_id, a.new_isr.clone())),
                _ => None,
            })
            .collect()
    };
    let answer = |b: &mut Broker, now: Millis, c: u64, error: ErrorCode, isr: &[BrokerId]| {
        let MetadataRecord::PartitionChange(registration) = reg(Some(1), isr, 0, 1) else {
            unreachable!()
        };
        let mut out = Outbox::default();
        b.on_message(
            now,
            NodeId::Controller,
            Message::Response {
                correlation_id: c,
                response: Response::AlterPartition(AlterPartitionResponse {
                    tp: tp(),
                    error,
                    registration: Some(registration),
                }),
            },
            &mut out,
        );
        out
    };
    let pending = |b: &Broker| match &b.partitions[&tp()].role {
        Role::Leader(ls) => ls.pending.as_ref().map(|(c, isr, _)| (*c, isr.clone())),
        _ => panic!("leads"),
    };
    let mut out = Outbox::default();
    b.on_timer(1_600, &mut out);
    let first = alters(&out);
    assert_eq!(first.len(), 1);
    let (c1, ref isr) = first[0];
    assert_eq!(isr, &vec![1, 2]);
    // No answer within the request timeout: sent again, still pending.
    let mut out = Outbox::default();
    b.on_timer(1_600 + timeout, &mut out);
    let second = alters(&out);
    assert_eq!(second.len(), 1, "sent again, not dropped");
    let c2 = second[0].0;
    assert_eq!(pending(&b), Some((c2, vec![1, 2])));
    // The first attempt's late answer is ignored.
    let t = 1_600 + timeout + 5;
    answer(&mut b, t, c1, ErrorCode::None, &[1, 2]);
    assert_eq!(pending(&b), Some((c2, vec![1, 2])));
    // NOT_CONTROLLER: sent again after 50 ms.
    answer(&mut b, t + 1, c2, ErrorCode::NotController, &[1, 2, 3]);
    assert!(b.next_timer().unwrap() <= t + 51);
    let mut out = Outbox::default();
    b.on_timer(t + 50, &mut out);
    assert!(alters(&out).is_empty(), "not before the backoff");
    let mut out = Outbox::default();
    b.on_timer(t + 51, &mut out);
    let third = alters(&out);
    assert_eq!(third.len(), 1);
    // INELIGIBLE_REPLICA: not applied, back to the committed ISR; the next ISR
    // check proposes again.
    answer(
        &mut b,
        t + 60,
        third[0].0,
        ErrorCode::IneligibleReplica,
        &[1, 2, 3],
    );
    assert_eq!(pending(&b), None);
    let mut out = Outbox::default();
    let check = b.next_isr_check_ms;
    request(
        &mut b,
        check - 1,
        NodeId::Broker(2),
        3,
        follower_fetch(2, 0, 0),
    );
    b.on_timer(check, &mut out);
    let fourth = alters(&out);
    assert_eq!(fourth.len(), 1, "proposed again");
    // FENCED_LEADER_EPOCH: kept (maximal ISR) without retries until metadata says.
    answer(
        &mut b,
        check + 1,
        fourth[0].0,
        ErrorCode::FencedLeaderEpoch,
        &[1, 2, 3],
    );
    let mut later = check + 1;
    for _ in 0..20 {
        let mut out = Outbox::default();
        later = b.next_timer().unwrap().max(later + 1);
        b.on_timer(later, &mut out);
        assert!(alters(&out).is_empty(), "no retry at {later}");
    }
    assert_eq!(pending(&b), Some((0, vec![1, 2])));
    // A newer registration (partition epoch 1) is the committed state.
    let offset = b.image.next_offset;
    let mut out = Outbox::default();
    b.apply_metadata(later, vec![(offset, reg(Some(1), &[1, 3], 0, 1))], &mut out);
    assert_eq!(pending(&b), None);
    let Role::Leader(ls) = &b.partitions[&tp()].role else {
        unreachable!()
    };
    assert_eq!(ls.isr, vec![1, 3]);
}

/// A replica holding records of an epoch the new leader never saw: KIP-101/279
/// truncation removes exactly those, while truncating to the local high watermark
/// (the pre-KIP-101 bug) keeps what the leader is about to overwrite.
/// The follower's OffsetsForLeaderEpoch request in `out`, and the leader's answer
/// that epoch 0 ends at offset 1.
fn epoch_0_ends_at_1(out: &Outbox) -> (u64, Response) {
    let c = find(out, |r| matches!(r, Request::OffsetsForLeaderEpoch(_)));
    let resp = Response::OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse {
        partitions: vec![EpochEndOffset {
            tp: tp(),
            error: ErrorCode::None,
            leader_epoch: 0,
            end_offset: 1,
        }],
    });
    (c, resp)
}

fn diverged_follower(bugs: Bugs) -> (Broker, Outbox) {
    // Broker 2 led epoch 0 and appended 2 batches; only the first one committed.
    let (mut b, meta) = broker(
        2,
        BrokerConfig::default(),
        bugs,
        vec![reg(Some(2), &[1, 2], 0, 0)],
    );
    request(
        &mut b,
        10,
        NodeId::Producer(0),
        1,
        produce(Acks::Leader, &[100]),
    );
    request(&mut b, 11, NodeId::Broker(1), 2, follower_fetch(1, 1, 0));
    request(
        &mut b,
        12,
        NodeId::Producer(0),
        3,
        produce(Acks::Leader, &[101, 102]),
    );
    assert_eq!(
        (
            b.high_watermark(&tp()),
            b.disk().logs[&tp()].log_end_offset()
        ),
        (1, 3)
    );
    (b, meta)
}

#[test]
fn new_follower_truncates_on_the_leaders_diverging_epoch() {
    let (mut b, meta) = diverged_follower(Bugs::default());
    // Broker 1 becomes leader in epoch 1; broker 2 fetches at once from its log end
    // with its latest epoch (Kafka 4.x), no OffsetsForLeaderEpoch.
    let out = deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1], 1, 1)], 8);
    assert!(!out.sends.iter().any(|(_, m)| matches!(
        m,
        Message::Request {
            request: Request::OffsetsForLeaderEpoch(_),
            ..
        }
    )));
    let (c, fp, resp) = diverging_answer(&out, 0, 1);
    assert_eq!((fp.fetch_offset, fp.last_fetched_epoch), (3, Some(0)));
    let out = answer_with(&mut b, 22, 1, c, resp);
    assert_eq!(
        b.disk().logs[&tp()].log_end_offset(),
        1,
        "truncated to where epoch 0 ends on the leader"
    );
    let (_, fp, _) = diverging_answer(&out, 0, 1);
    assert_eq!((fp.fetch_offset, fp.last_fetched_epoch), (1, Some(0)));
}

#[test]
fn no_epoch_in_end_offset_bug_asks_offsets_for_leader_epoch() {
    let (mut b, meta) = diverged_follower(Bugs::of(&[Bug::NoEpochInEndOffset]));
    let out = deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1], 1, 1)], 8);
    let (c, resp) = epoch_0_ends_at_1(&out);
    let out = answer_with(&mut b, 22, 1, c, resp);
    assert_eq!(b.disk().logs[&tp()].log_end_offset(), 1);
    let (_, fp, _) = diverging_answer(&out, 0, 1);
    assert_eq!(fp.last_fetched_epoch, None, "the pre-KIP-595 follower");
}

/// A follower log of three epochs, as a replica that missed leadership moves has
/// it: epoch 0 at offsets 0-5, epoch 2 at 6-8 (epoch 1 it never saw).
fn three_epoch_log() -> Log {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[0, 1, 2, 3]), 0).unwrap();
    log.append_as_leader(&batch(&[4, 5]), 0).unwrap();
    log.append_as_leader(&batch(&[6, 7, 8]), 2).unwrap();
    log
}

/// `AbstractFetcherThread.getOffsetTruncationState` on each kind of answer.
#[test]
fn truncation_state_follows_the_leaders_answer() {
    let log = three_epoch_log();
    // An epoch the follower never had: the end of its largest epoch below, again.
    assert_eq!(offset_truncation_state(&log, 1, 7, 3), (6, false));
    // An epoch it has: the smaller end offset, done.
    assert_eq!(offset_truncation_state(&log, 0, 4, 3), (4, true));
    assert_eq!(offset_truncation_state(&log, 2, 8, 3), (8, true));
    assert_eq!(
        offset_truncation_state(&log, 2, 20, 3),
        (9, true),
        "at most the LEO"
    );
    // Undefined end offset: the high watermark; undefined epoch: the leader's end.
    assert_eq!(offset_truncation_state(&log, -1, -1, 3), (3, true));
    assert_eq!(offset_truncation_state(&log, -1, 5, 3), (5, true));
    // No epoch cache at all: the leader's end offset.
    assert_eq!(offset_truncation_state(&Log::default(), 1, 5, 0), (0, true));
}

/// A leader of epoch 3 whose log is epoch 0 at 0-3, epoch 1 at 4-6, epoch 3 from 7.
fn three_epoch_leader() -> Broker {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[0, 1, 2, 3]), 0).unwrap();
    log.append_as_leader(&batch(&[14, 15, 16]), 1).unwrap();
    let mut disk = Disk::default();
    disk.logs.insert(tp(), log);
    let (b, _) = bring_up(
        Broker::new(1, BrokerConfig::default(), Bugs::default(), 1, disk),
        vec![reg(Some(1), &[1, 3], 3, 3)],
    );
    b
}

/// The leader's answers to a follower holding [`three_epoch_log`] (KIP-595,
/// `Partition.readRecords`): first epoch 1 ending at 7 (where epoch 3 starts), then,
/// asked for epoch 0 from offset 6, epoch 0 ending at 4; from 4 it sends records.
#[test]
fn leader_answers_diverging_epochs_until_the_logs_match() {
    let mut l = three_epoch_leader();
    let p = fetch_part(response_to(
        &request(
            &mut l,
            10,
            NodeId::Broker(2),
            1,
            follower_fetch_after(2, 9, 3, 2),
        ),
        1,
    ));
    assert_eq!(
        (p.error, p.diverging_epoch, p.batches.len()),
        (ErrorCode::None, Some((1, 7)), 0)
    );
    let p = fetch_part(response_to(
        &request(
            &mut l,
            11,
            NodeId::Broker(2),
            2,
            follower_fetch_after(2, 6, 3, 0),
        ),
        2,
    ));
    assert_eq!(p.diverging_epoch, Some((0, 4)));
    let p = fetch_part(response_to(
        &request(
            &mut l,
            12,
            NodeId::Broker(2),
            3,
            follower_fetch_after(2, 4, 3, 0),
        ),
        3,
    ));
    assert_eq!((p.error, p.diverging_epoch), (ErrorCode::None, None));
    assert!(!p.batches.is_empty());
}

/// A diverging answer leaves the follower's fetch state alone
/// (`Partition.fetchRecords` skips `updateFollowerFetchState`): its stale log end
/// offset neither joins it to the ISR nor moves the high watermark.
#[test]
fn diverging_fetch_does_not_count_as_the_followers_position() {
    let mut l = three_epoch_leader();
    let out = request(
        &mut l,
        10,
        NodeId::Broker(2),
        1,
        follower_fetch_after(2, 9, 3, 2),
    );
    assert!(!out.sends.iter().any(|(_, m)| matches!(
        m,
        Message::Request {
            request: Request::AlterPartition(_),
            ..
        }
    )));
    let Some(Partition {
        role: Role::Leader(ls),
        ..
    }) = l.partitions.get(&tp())
    else {
        panic!("leader")
    };
    assert_eq!(ls.remotes[&2].log_end_offset, -1);
}

/// Follower and leader of [`three_epoch_log`] / [`three_epoch_leader`], message by
/// message: two diverging answers (the first an epoch the follower never had), then
/// the follower copies the leader's log. One round of truncation (to 6) would keep
/// epoch-0 records at 4-5 where the leader has epoch 1's.
#[test]
fn follower_converges_over_three_epochs() {
    let mut l = three_epoch_leader();
    let mut disk = Disk::default();
    disk.logs.insert(tp(), three_epoch_log());
    let (mut f, mut out) = bring_up(
        Broker::new(2, BrokerConfig::default(), Bugs::default(), 1, disk),
        vec![reg(Some(1), &[1, 3], 3, 3)],
    );
    let mut ends = Vec::new();
    for round in 0..6u64 {
        let (c, fp, _) = diverging_answer(&out, 0, 0);
        assert_eq!(fp.last_fetched_epoch, f.disk().logs[&tp()].latest_epoch());
        let resp = response_to(
            &request(
                &mut l,
                20 + round,
                NodeId::Broker(2),
                100 + round,
                Request::Fetch(FetchRequest {
                    replica_id: Some(2),
                    broker_epoch: 1,
                    max_wait_ms: 0,
                    min_bytes: 1,
                    max_bytes: 1 << 20,
                    isolation_level: IsolationLevel::ReadUncommitted,
                    partitions: vec![fp],
                }),
            ),
            100 + round,
        )
        .expect("answered at once");
        out = answer_with(&mut f, 20 + round, 1, c, resp);
        ends.push(leo(&f));
        if leo(&f) == leo(&l) {
            break;
        }
    }
    assert_eq!(ends, vec![6, 4, 7]);
    assert_eq!(
        f.disk().logs[&tp()].records(),
        l.disk().logs[&tp()].records()
    );
    assert_eq!(
        f.disk().logs[&tp()].epochs(),
        &l.disk().logs[&tp()].epochs()[..2],
        "epoch 3 has no record yet"
    );
}

/// Item of `LeaderEpochFileCache.endOffsetFor`: a follower whose last epoch is older
/// than every epoch the leader has truncates to where the leader's cache starts, not
/// to its own high watermark (the leader here was elected with an empty log).
#[test]
fn follower_older_than_the_leaders_cache_truncates_to_its_start() {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[20, 21]), 2).unwrap();
    let mut disk = Disk::default();
    disk.logs.insert(tp(), log);
    let (mut l, _) = bring_up(
        Broker::new(1, BrokerConfig::default(), Bugs::default(), 1, disk),
        vec![reg(Some(1), &[1], 3, 3)],
    );
    let p = fetch_part(response_to(
        &request(
            &mut l,
            10,
            NodeId::Broker(2),
            1,
            follower_fetch_after(2, 3, 3, 1),
        ),
        1,
    ));
    assert_eq!(p.diverging_epoch, Some((1, 0)));
    // The follower: epoch 1 at 0-2, its high watermark 2.
    let mut flog = Log::default();
    flog.append_as_leader(&batch(&[10, 11, 12]), 1).unwrap();
    assert_eq!(offset_truncation_state(&flog, 1, 0, 2), (0, true));
}

#[test]
fn truncate_to_high_watermark_bug_skips_the_epoch_lookup() {
    let (mut b, meta) = diverged_follower(Bugs::of(&[Bug::TruncateToHighWatermark]));
    let out = deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1], 1, 1)], 8);
    assert!(!out.sends.iter().any(|(_, m)| matches!(
        m,
        Message::Request {
            request: Request::OffsetsForLeaderEpoch(_),
            ..
        }
    )));
    assert_eq!(
        b.disk().logs[&tp()].log_end_offset(),
        1,
        "truncated to its own high watermark"
    );
}

/// Kafka's `Partition.readRecords`: a new leader whose high watermark lags answers
/// a consumer's Fetch with the one it has (no OFFSET_NOT_AVAILABLE, which is for
/// ListOffsets only), then with the next one once its follower fetched.
#[test]
fn new_leader_answers_fetch_with_its_lagging_high_watermark() {
    // Broker 1 follows, has 2 records but its HW says 0; then it becomes leader.
    let (mut b, meta) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(2), &[1, 2], 0, 0)],
    );
    b.disk
        .logs
        .get_mut(&tp())
        .unwrap()
        .append_as_leader(&batch(&[100, 101]), 0)
        .unwrap();
    deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1, 2], 1, 1)], 8);
    let p = fetch_part(response_to(
        &request(&mut b, 22, NodeId::Consumer(0), 1, consumer_fetch(0)),
        1,
    ));
    assert_eq!(
        (p.error, p.high_watermark, p.batches.len()),
        (ErrorCode::None, 0, 0)
    );
    let (e, _, _) = list_offsets(
        &mut b,
        22,
        IsolationLevel::ReadUncommitted,
        LATEST_TIMESTAMP,
    );
    assert_eq!(e, ErrorCode::OffsetNotAvailable);
    request(&mut b, 23, NodeId::Broker(2), 2, follower_fetch(2, 2, 1));
    let p = fetch_part(response_to(
        &request(&mut b, 24, NodeId::Consumer(0), 3, consumer_fetch(0)),
        3,
    ));
    assert_eq!((p.error, p.high_watermark), (ErrorCode::None, 2));
}

#[test]
fn stale_leader_epoch_is_fenced() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0), reg(Some(1), &[1, 2], 1, 1)],
    );
    let p = fetch_part(response_to(
        &request(&mut b, 10, NodeId::Broker(2), 1, follower_fetch(2, 0, 0)),
        1,
    ));
    assert_eq!(p.error, ErrorCode::FencedLeaderEpoch);
    let p = fetch_part(response_to(
        &request(&mut b, 10, NodeId::Broker(2), 2, follower_fetch(2, 0, 2)),
        2,
    ));
    assert_eq!(p.error, ErrorCode::UnknownLeaderEpoch);
}

// ------------------------------------------------------------ idempotence

const PID: i64 = 4_000;

fn leo(b: &Broker) -> Offset {
    b.disk().logs[&tp()].log_end_offset()
}

/// Sends a produce of `batch` from producer 0 and returns its answer, if any.
fn send_batch(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    acks: Acks,
    batch: Bytes,
) -> (Option<(ErrorCode, Offset)>, Outbox) {
    let out = request(
        b,
        now,
        NodeId::Producer(0),
        correlation_id,
        produce_batch(acks, batch),
    );
    (produce_result(response_to(&out, correlation_id)), out)
}

#[test]
fn duplicate_is_answered_with_the_original_offset_once_committed() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2, 3], 0, 0)],
    );
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    let (r, _) = send_batch(&mut b, 10, 7, Acks::All, first.clone());
    assert_eq!(r, None, "parked until replicated");
    // The producer's request timed out (or its response was lost): it retries.
    let (r, _) = send_batch(&mut b, 11, 8, Acks::All, first.clone());
    assert_eq!(r, None, "a duplicate is not acknowledged before it commits");
    assert_eq!(leo(&b), 2, "not appended twice");
    request(&mut b, 12, NodeId::Broker(2), 1, follower_fetch(2, 2, 0));
    let out = request(&mut b, 13, NodeId::Broker(3), 2, follower_fetch(3, 1, 0));
    assert!(
        response_to(&out, 7).is_none() && response_to(&out, 8).is_none(),
        "offset 1 not committed yet"
    );
    let out = request(&mut b, 14, NodeId::Broker(3), 3, follower_fetch(3, 2, 0));
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::None, 0))
    );
    let Some(Response::Produce(dup)) = response_to(&out, 8) else {
        panic!("the duplicate is answered once the original commits");
    };
    assert_eq!(
        (
            dup.partitions[0].error,
            dup.partitions[0].base_offset,
            dup.partitions[0].log_start_offset
        ),
        (ErrorCode::None, 0, 0)
    );
    // Committed already: answered at once, with acks=all and acks=1.
    let (r, _) = send_batch(&mut b, 15, 9, Acks::All, first.clone());
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(&mut b, 16, 10, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 0)));
    // acks=1 answers an uncommitted duplicate at once too; acks=0 not at all.
    let next = idempotent_batch(PID, 0, 2, &[102]);
    let (r, _) = send_batch(&mut b, 17, 11, Acks::Leader, next.clone());
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (r, _) = send_batch(&mut b, 18, 12, Acks::Leader, next.clone());
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (_, out) = send_batch(&mut b, 19, 13, Acks::None, next);
    assert!(out.sends.iter().all(|(to, _)| *to != NodeId::Producer(0)));
    assert_eq!(leo(&b), 3);
}

#[test]
fn leader_refuses_gaps_and_stale_epochs_and_takes_unknown_producers() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1], 0, 0)],
    );
    let mut corr = 0;
    let mut produce = |b: &mut Broker, pid, epoch, seq, values: &[u64]| {
        corr += 1;
        let out = request(
            b,
            10 + corr,
            NodeId::Producer(0),
            corr,
            produce_batch(Acks::Leader, idempotent_batch(pid, epoch, seq, values)),
        );
        match response_to(&out, corr) {
            Some(Response::Produce(p)) => {
                let p = &p.partitions[0];
                assert_eq!(p.log_start_offset, 0);
                (p.error, p.base_offset)
            }
            other => panic!("no produce response: {other:?}"),
        }
    };
    assert_eq!(
        produce(&mut b, PID, 0, 0, &[100, 101]),
        (ErrorCode::None, 0)
    );
    assert_eq!(
        produce(&mut b, PID, 0, 3, &[103]),
        (ErrorCode::OutOfOrderSequenceNumber, -1),
        "sequence 2 is missing"
    );
    assert_eq!(
        produce(&mut b, PID + 1, 0, 5, &[105]),
        (ErrorCode::None, 2),
        "Kafka 4.x: a producer without state is appended at any sequence"
    );
    assert_eq!(
        produce(&mut b, PID + 2, 0, 0, &[200]),
        (ErrorCode::None, 3),
        "a new producer at sequence 0"
    );
    assert_eq!(
        produce(&mut b, PID, 1, 0, &[102]),
        (ErrorCode::None, 4),
        "a bumped epoch starts again at sequence 0"
    );
    assert_eq!(
        produce(&mut b, PID, 0, 2, &[102]),
        (ErrorCode::InvalidProducerEpoch, -1)
    );
    assert_eq!(
        produce(&mut b, PID, 2, 1, &[104]),
        (ErrorCode::OutOfOrderSequenceNumber, -1),
        "a new epoch must start at sequence 0"
    );
    assert_eq!(leo(&b), 5, "refused batches are not appended");
}

#[test]
fn no_sequence_check_bug_appends_the_duplicate() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::of(&[Bug::NoSequenceCheck]),
        vec![reg(Some(1), &[1], 0, 0)],
    );
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    let (r, _) = send_batch(&mut b, 10, 1, Acks::Leader, first.clone());
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(&mut b, 11, 2, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 2)), "appended twice");
    let (r, _) = send_batch(
        &mut b,
        12,
        3,
        Acks::Leader,
        idempotent_batch(PID, 0, 9, &[1]),
    );
    assert_eq!(r, Some((ErrorCode::None, 4)), "gaps pass too");
    assert_eq!(leo(&b), 5);
}

#[test]
fn follower_that_fetched_the_batches_rejects_duplicates_as_leader() {
    let (mut b, meta) = broker(
        2,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    let mut leader = Log::default();
    leader
        .append_as_leader(&idempotent_batch(PID, 0, 0, &[100, 101]), 0)
        .unwrap();
    leader
        .append_as_leader(&idempotent_batch(PID, 0, 2, &[102]), 0)
        .unwrap();
    let fetch = find(&meta, |r| matches!(r, Request::Fetch(_)));
    let resp = Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            aborted_transactions: Vec::new(),
            diverging_epoch: None,
            tp: tp(),
            error: ErrorCode::None,
            high_watermark: 3,
            last_stable_offset: 3,
            log_start_offset: 0,
            batches: leader.read(0, 3, 1 << 20),
        }],
    });
    let mut out = Outbox::default();
    b.on_message(
        10,
        NodeId::Broker(1),
        Message::Response {
            correlation_id: fetch,
            response: resp,
        },
        &mut out,
    );
    assert_eq!(leo(&b), 3);
    assert_eq!(
        b.disk().logs[&tp()].producer_state(),
        leader.producer_state()
    );
    deliver_metadata(&mut b, 20, &meta, vec![reg(Some(2), &[2], 1, 1)], 8);
    let (r, _) = send_batch(
        &mut b,
        21,
        7,
        Acks::All,
        idempotent_batch(PID, 0, 2, &[102]),
    );
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (r, _) = send_batch(
        &mut b,
        22,
        8,
        Acks::All,
        idempotent_batch(PID, 0, 0, &[100, 101]),
    );
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(
        &mut b,
        23,
        9,
        Acks::All,
        idempotent_batch(PID, 0, 3, &[103]),
    );
    assert_eq!(r, Some((ErrorCode::None, 3)));
}

#[test]
fn truncation_forgets_the_truncated_batches() {
    // Broker 2 leads epoch 0: sequence 0 commits, sequences 1-2 do not.
    let (mut b, meta) = broker(
        2,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(2), &[1, 2], 0, 0)],
    );
    let (r, _) = send_batch(
        &mut b,
        10,
        1,
        Acks::Leader,
        idempotent_batch(PID, 0, 0, &[100]),
    );
    assert_eq!(r, Some((ErrorCode::None, 0)));
    request(&mut b, 11, NodeId::Broker(1), 2, follower_fetch(1, 1, 0));
    let retried = idempotent_batch(PID, 0, 1, &[101, 102]);
    let (r, _) = send_batch(&mut b, 12, 3, Acks::Leader, retried.clone());
    assert_eq!(r, Some((ErrorCode::None, 1)));
    // Broker 1 takes over; broker 2 truncates to where epoch 0 ends on it.
    let out = deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1], 1, 1)], 8);
    let (c, _, resp) = diverging_answer(&out, 0, 1);
    answer_with(&mut b, 22, 1, c, resp);
    assert_eq!(leo(&b), 1);
    let entry = b.disk().logs[&tp()]
        .producer_state()
        .last_entry(PID)
        .unwrap();
    assert_eq!((entry.last_sequence(), entry.batches().len()), (0, 1));
    // Leader again: the producer's retry of sequences 1-2 is new, not a duplicate.
    deliver_metadata(&mut b, 30, &out, vec![reg(Some(2), &[2], 2, 2)], 9);
    let (r, _) = send_batch(&mut b, 31, 4, Acks::Leader, retried);
    assert_eq!(r, Some((ErrorCode::None, 1)));
}

#[test]
fn producer_state_is_rebuilt_after_a_restart() {
    let (mut b, _) = broker(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        vec![reg(Some(1), &[1], 0, 0)],
    );
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    send_batch(&mut b, 10, 1, Acks::Leader, first.clone());
    send_batch(&mut b, 11, 2, Acks::Leader, batch(&[7]));
    let before = b.disk().logs[&tp()].producer_state().clone();
    b.restart(2);
    assert_eq!(b.disk().logs[&tp()].producer_state(), &before);
    let (mut b, _) = bring_up(b, vec![reg(Some(1), &[1], 0, 0)]);
    let (r, _) = send_batch(&mut b, 20, 3, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(
        &mut b,
        21,
        4,
        Acks::Leader,
        idempotent_batch(PID, 0, 2, &[1]),
    );
    assert_eq!(r, Some((ErrorCode::None, 3)));
}

fn init_producer_id(
    b: &mut Broker,
    now: Millis,
    producer_id: i64,
) -> (InitProducerIdResponse, Outbox) {
    let out = request(
        b,
        now,
        NodeId::Producer(0),
        77,
        Request::InitProducerId(InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
        }),
    );
    match response_to(&out, 77) {
        Some(Response::InitProducerId(r)) => (r, out),
        other => panic!("no InitProducerId response: {other:?}"),
    }
}

/// The `AllocateProducerIds` requests in `out`: (correlation id, broker id, epoch).
fn allocations(out: &Outbox) -> Vec<(u64, BrokerId, i64)> {
    out.sends
        .iter()
        .filter_map(|(to, m)| match m {
            Message::Request {
                correlation_id,
                request: Request::AllocateProducerIds(r),
            } => {
                assert_eq!(*to, NodeId::Controller);
                Some((*correlation_id, r.broker_id, r.broker_epoch))
            }
            _ => None,
        })
        .collect()
}

fn allocated(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    error: ErrorCode,
    start: i64,
) -> Outbox {
    let mut out = Outbox::default();
    b.on_message(
        now,
        NodeId::Controller,
        Message::Response {
            correlation_id,
            response: Response::AllocateProducerIds(AllocateProducerIdsResponse {
                error,
                producer_id_start: start,
                producer_id_len: if error == ErrorCode::None { 1_000 } else { 0 },
            }),
        },
        &mut out,
    );
    out
}

#[test]
fn init_producer_id_hands_out_ids_from_controller_blocks() {
    let (mut b, _) = broker(1, BrokerConfig::default(), Bugs::default(), vec![]);
    let (r, out) = init_producer_id(&mut b, 10, -1);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::CoordinatorLoadInProgress, -1, -1)
    );
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].1, asked[0].2), (1, 0), "broker id and epoch");
    let (r, out) = init_producer_id(&mut b, 11, -1);
    assert_eq!(r.error, ErrorCode::CoordinatorLoadInProgress);
    assert!(allocations(&out).is_empty(), "one request in flight");

    allocated(&mut b, 12, asked[0].0, ErrorCode::None, 0);
    let (r, _) = init_producer_id(&mut b, 13, -1);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 0, 0)
    );
    // An idempotent producer that sends its id gets a new one all the same.
    let (r, _) = init_producer_id(&mut b, 14, 0);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1, 0)
    );

    // A transactional.id goes to its transaction coordinator; this broker leads no
    // `__transaction_state` partition.
    let out = request(
        &mut b,
        15,
        NodeId::Producer(0),
        78,
        Request::InitProducerId(InitProducerIdRequest {
            transactional_id: Some("tx".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        }),
    );
    let Some(Response::InitProducerId(r)) = response_to(&out, 78) else {
        panic!("no response");
    };
    assert_eq!((r.error, r.producer_id), (ErrorCode::NotCoordinator, -1));

    // At 90% of the block the next one is prefetched; a failure is retried after
    // the backoff.
    let mut ids = vec![0, 1];
    let mut prefetch = Vec::new();
    for i in 0..898 {
        let (r, out) = init_producer_id(&mut b, 20, -1);
        ids.push(r.producer_id);
        if !allocations(&out).is_empty() {
            prefetch.push((i, allocations(&out)));
        }
    }
    assert_eq!(ids.last(), Some(&899));
    assert!(prefetch.is_empty());
    let (r, out) = init_producer_id(&mut b, 20, -1);
    assert_eq!(r.producer_id, 900);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1, "prefetch at 90%");
    let out = allocated(&mut b, 21, asked[0].0, ErrorCode::StaleBrokerEpoch, -1);
    assert!(allocations(&out).is_empty(), "not before the backoff");
    assert_eq!(b.next_timer(), Some(21 + PRODUCER_ID_RETRY_BACKOFF_MS));
    let mut out = Outbox::default();
    b.on_timer(21 + PRODUCER_ID_RETRY_BACKOFF_MS, &mut out);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1, "retried");
    // The retry times out (the controller is unreachable), and is retried again.
    let timeout = BrokerConfig::default().request_timeout_ms;
    let t = 21 + PRODUCER_ID_RETRY_BACKOFF_MS + timeout;
    let mut out = Outbox::default();
    b.on_timer(t, &mut out);
    assert!(allocations(&out).is_empty());
    let mut out = Outbox::default();
    b.on_timer(t + PRODUCER_ID_RETRY_BACKOFF_MS, &mut out);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    // Another broker got 1000..2000 meanwhile.
    allocated(&mut b, t + 60, asked[0].0, ErrorCode::None, 2_000);
    for _ in 901..1_000 {
        let (r, _) = init_producer_id(&mut b, t + 61, -1);
        ids.push(r.producer_id);
    }
    assert_eq!(ids.last(), Some(&999));
    let (r, out) = init_producer_id(&mut b, t + 62, -1);
    assert_eq!(r.producer_id, 2_000, "the prefetched block");
    assert!(allocations(&out).is_empty());
    ids.push(900);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_000, "every id handed out once");
}

#[test]
fn producer_ids_are_asked_for_only_once_registered() {
    let mut b = Broker::new(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        1,
        Disk::default(),
    );
    let mut start = Outbox::default();
    b.on_start(0, &mut start);
    let (r, out) = init_producer_id(&mut b, 1, -1);
    assert_eq!(r.error, ErrorCode::CoordinatorLoadInProgress);
    assert!(allocations(&out).is_empty(), "no broker epoch yet");
    let c = find(&start, |r| matches!(r, Request::BrokerRegistration(_)));
    let mut out = Outbox::default();
    b.on_message(
        2,
        NodeId::Controller,
        Message::Response {
            correlation_id: c,
            response: Response::BrokerRegistration(BrokerRegistrationResponse {
                error: ErrorCode::None,
                broker_epoch: 5,
            }),
        },
        &mut out,
    );
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].1, asked[0].2), (1, 5));
    // A restarted process forgets its block and asks again.
    allocated(&mut b, 3, asked[0].0, ErrorCode::None, 0);
    assert_eq!(init_producer_id(&mut b, 4, -1).0.producer_id, 0);
    b.restart(2);
    let (r, _) = init_producer_id(&mut b, 5, -1);
    assert_eq!(r.error, ErrorCode::CoordinatorLoadInProgress);
}

// ------------------------------------------------------------ group coordinator

/// "my-group" hashes to `__consumer_offsets-12` of 50.
const GROUP: &str = "my-group";

fn offsets_records(leader: BrokerId, isr: &[BrokerId], epoch: i32) -> Vec<MetadataRecord> {
    let reg = MetadataRecord::PartitionChange(PartitionRegistration {
        tp: TopicPartition::new(OFFSETS_TOPIC, 12),
        replicas: vec![1, 2],
        isr: isr.to_vec(),
        leader: Some(leader),
        leader_epoch: epoch,
        partition_epoch: epoch,
    });
    if epoch > 0 {
        return vec![reg];
    }
    let spec = group::offsets_topic_spec(&BrokerConfig::default(), 2);
    vec![
        MetadataRecord::Topic {
            name: spec.name,
            partitions: spec.partitions,
        },
        reg,
    ]
}

fn group_config() -> BrokerConfig {
    BrokerConfig {
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::default()
    }
}

/// Carries messages between brokers 1 and 2 until none is left; returns what they
/// sent to clients.
fn exchange(
    b1: &mut Broker,
    b2: &mut Broker,
    now: Millis,
    mut queue: Vec<(NodeId, NodeId, Message)>,
) -> Vec<(NodeId, Message)> {
    let mut to_clients = Vec::new();
    for _ in 0..1_000 {
        if queue.is_empty() {
            return to_clients;
        }
        let (from, to, message) = queue.remove(0);
        let b = match to {
            NodeId::Broker(1) => &mut *b1,
            NodeId::Broker(2) => &mut *b2,
            NodeId::Controller => continue,
            client => {
                to_clients.push((client, message));
                continue;
            }
        };
        let mut out = Outbox::default();
        b.on_message(now, from, message, &mut out);
        queue.extend(out.sends.into_iter().map(|(t, m)| (to, t, m)));
    }
    panic!("brokers never went quiet");
}

fn sent_by(broker: BrokerId, out: Outbox) -> Vec<(NodeId, NodeId, Message)> {
    let from = NodeId::Broker(broker);
    out.sends.into_iter().map(|(t, m)| (from, t, m)).collect()
}

fn answer(msgs: &[(NodeId, Message)], correlation: u64) -> Option<Response> {
    msgs.iter().find_map(|(_, m)| match m {
        Message::Response {
            correlation_id,
            response,
        } if *correlation_id == correlation => Some(response.clone()),
        _ => None,
    })
}

fn join(member_id: &str) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        group_id: Arc::from(GROUP),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        member_id: Arc::from(member_id),
        group_instance_id: None,
        protocols: vec![(
            Arc::from("range"),
            Subscription {
                topics: vec![Arc::from("orders")],
                owned_partitions: vec![],
            },
        )],
    })
}

#[test]
fn find_coordinator_answers_the_offsets_partition_leader() {
    let (mut b, _) = broker(
        2,
        group_config(),
        Bugs::default(),
        offsets_records(1, &[1, 2], 0),
    );
    let find = |key: &str| {
        Request::FindCoordinator(FindCoordinatorRequest {
            key: Arc::from(key),
            key_type: CoordinatorType::Group,
        })
    };
    let out = request(&mut b, 10, NodeId::Consumer(0), 1, find(GROUP));
    match response_to(&out, 1) {
        Some(Response::FindCoordinator(r)) => {
            assert_eq!((r.error, r.node_id), (ErrorCode::None, Some(1)))
        }
        other => panic!("{other:?}"),
    }
    // "group" hashes to partition 47, which has no registration here.
    let out = request(&mut b, 10, NodeId::Consumer(0), 2, find("group"));
    match response_to(&out, 2) {
        Some(Response::FindCoordinator(r)) => {
            assert_eq!(r.error, ErrorCode::CoordinatorNotAvailable)
        }
        other => panic!("{other:?}"),
    }
    // Broker 2 only follows the partition: not the coordinator.
    let out = request(&mut b, 10, NodeId::Consumer(0), 3, join(""));
    match response_to(&out, 3) {
        Some(Response::JoinGroup(r)) => assert_eq!(r.error, ErrorCode::NotCoordinator),
        other => panic!("{other:?}"),
    }
}

#[test]
fn commits_wait_for_replication_and_survive_a_coordinator_move() {
    let bugs = Bugs::default();
    let (mut b1, m1) = broker(1, group_config(), bugs, offsets_records(1, &[1, 2], 0));
    let (mut b2, m2) = broker(2, group_config(), bugs, offsets_records(1, &[1, 2], 0));
    // Broker 2 starts following: its fetches park on broker 1.
    let copy = |out: &Outbox| Outbox {
        sends: out.sends.clone(),
        ..Outbox::default()
    };
    let mut queue = sent_by(1, copy(&m1));
    queue.extend(sent_by(2, copy(&m2)));
    exchange(&mut b1, &mut b2, 5, queue);
    let c = NodeId::Consumer(0);
    let member_id = match response_to(&request(&mut b1, 10, c, 1, join("")), 1) {
        Some(Response::JoinGroup(r)) if r.error == ErrorCode::MemberIdRequired => r.member_id,
        other => panic!("{other:?}"),
    };
    assert!(response_to(&request(&mut b1, 11, c, 2, join(&member_id)), 2).is_none());
    let mut out = Outbox::default();
    b1.on_timer(11, &mut out);
    match response_to(&out, 2) {
        Some(Response::JoinGroup(r)) => {
            assert_eq!((r.generation_id, r.leader), (1, member_id.clone()))
        }
        other => panic!("{other:?}"),
    }
    // The leader's assignment is stored first: SyncGroup waits for the follower.
    let sync = Request::SyncGroup(SyncGroupRequest {
        group_id: Arc::from(GROUP),
        generation_id: 1,
        member_id: member_id.clone(),
        group_instance_id: None,
        assignments: vec![(member_id.clone(), vec![tp()])],
    });
    let out = request(&mut b1, 12, c, 3, sync);
    assert!(
        response_to(&out, 3).is_none(),
        "not before the high watermark"
    );
    let msgs = exchange(&mut b1, &mut b2, 13, sent_by(1, out));
    match answer(&msgs, 3) {
        Some(Response::SyncGroup(r)) => {
            assert_eq!((r.error, r.assignment), (ErrorCode::None, vec![tp()]))
        }
        other => panic!("{other:?}"),
    }
    let commit = Request::OffsetCommit(OffsetCommitRequest {
        group_id: Arc::from(GROUP),
        generation_id: 1,
        member_id: member_id.clone(),
        group_instance_id: None,
        offsets: vec![CommittedOffset {
            tp: tp(),
            offset: 42,
            leader_epoch: 0,
        }],
    });
    let out = request(&mut b1, 20, c, 4, commit);
    assert!(
        response_to(&out, 4).is_none(),
        "not before the high watermark"
    );
    let msgs = exchange(&mut b1, &mut b2, 21, sent_by(1, out));
    match answer(&msgs, 4) {
        Some(Response::OffsetCommit(r)) => {
            assert_eq!(r.partitions, vec![(tp(), ErrorCode::None)])
        }
        other => panic!("{other:?}"),
    }
    let key = (Arc::from(GROUP), tp());
    assert_eq!(b1.committed_offsets()[&key], 42);
    assert!(
        b2.committed_offsets().is_empty(),
        "a follower coordinates nothing"
    );

    // Broker 2 becomes the leader of __consumer_offsets-12 and loads the group.
    deliver_metadata(&mut b2, 30, &m2, offsets_records(2, &[2], 1), 9);
    assert_eq!(b2.committed_offsets()[&key], 42);
    let groups = b2.groups();
    assert_eq!((groups[0].generation, groups[0].members.len()), (1, 1));
    let fetch = Request::OffsetFetch(OffsetFetchRequest {
        require_stable: false,
        group_id: Arc::from(GROUP),
        partitions: vec![tp()],
    });
    match response_to(&request(&mut b2, 31, c, 5, fetch), 5) {
        Some(Response::OffsetFetch(r)) => assert_eq!(r.offsets[0].offset, 42),
        other => panic!("{other:?}"),
    }
    let heartbeat = Request::Heartbeat(HeartbeatRequest {
        group_id: Arc::from(GROUP),
        generation_id: 1,
        member_id,
        group_instance_id: None,
    });
    match response_to(&request(&mut b2, 32, c, 6, heartbeat.clone()), 6) {
        Some(Response::Heartbeat(r)) => assert_eq!(r.error, ErrorCode::None),
        other => panic!("{other:?}"),
    }
    // Broker 1 learns it lost the partition and stops coordinating.
    deliver_metadata(&mut b1, 33, &m1, offsets_records(2, &[2], 1), 9);
    match response_to(&request(&mut b1, 34, c, 7, heartbeat), 7) {
        Some(Response::Heartbeat(r)) => assert_eq!(r.error, ErrorCode::NotCoordinator),
        other => panic!("{other:?}"),
    }
    assert!(b1.committed_offsets().is_empty());
}

// ------------------------------------------------------------ transactions

/// Broker 1, the only replica in the ISR of `orders-0`.
fn sole_leader(config: BrokerConfig, bugs: Bugs) -> (Broker, Outbox) {
    broker(1, config, bugs, vec![reg(Some(1), &[1], 0, 0)])
}

/// An `acks=1` produce of `batch` from producer 0: its answer.
fn produced(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    batch: Bytes,
) -> Option<(ErrorCode, Offset)> {
    send_batch(b, now, correlation_id, Acks::Leader, batch).0
}

const TS: i64 = crate::kafka::record::RECORD_TIMESTAMP_BASE;

/// A batch of `values` from `producer_id`, created at `TS + created_ms`, in a
/// transaction when `transactional`.
fn batch_at(
    producer_id: i64,
    base_sequence: i32,
    transactional: bool,
    created_ms: i64,
    values: &[u64],
) -> Bytes {
    let (batch, _) =
        RecordBatch::decode(&idempotent_batch(producer_id, 0, base_sequence, values)).unwrap();
    RecordBatch {
        attributes: if transactional {
            record::TRANSACTIONAL_BIT
        } else {
            0
        },
        base_timestamp: TS + created_ms,
        max_timestamp: TS + created_ms,
        ..batch
    }
    .encode()
}

/// A transactional batch of producer `producer_id` at `epoch`.
fn txn_batch(producer_id: i64, epoch: i16, base_sequence: i32, values: &[u64]) -> Bytes {
    let (batch, _) =
        RecordBatch::decode(&batch_at(producer_id, base_sequence, true, 0, values)).unwrap();
    RecordBatch {
        producer_epoch: epoch,
        ..batch
    }
    .encode()
}

/// Sends `txn_produce(batch)` from producer 0.
fn txn_request(b: &mut Broker, now: Millis, correlation_id: u64, batch: Bytes) -> Outbox {
    request(
        b,
        now,
        NodeId::Producer(0),
        correlation_id,
        txn_produce(batch),
    )
}

/// An `acks=1` produce of `batch` from the transactional producer `tx`.
fn txn_produce(batch: Bytes) -> Request {
    Request::Produce(ProduceRequest {
        transactional_id: Some("tx".into()),
        acks: Acks::Leader,
        timeout_ms: 30_000,
        partitions: vec![(tp(), batch)],
    })
}

/// One marker for each (producer id, epoch, commit, coordinator epoch, partitions).
fn write_markers(markers: &[(i64, i16, bool, i32, Vec<TopicPartition>)]) -> Request {
    Request::WriteTxnMarkers(WriteTxnMarkersRequest {
        markers: markers
            .iter()
            .map(
                |(pid, epoch, committed, coordinator_epoch, partitions)| TxnMarker {
                    producer_id: *pid,
                    producer_epoch: *epoch,
                    committed: *committed,
                    partitions: partitions.clone(),
                    coordinator_epoch: *coordinator_epoch,
                },
            )
            .collect(),
    })
}

/// Per producer id, each partition's error.
type MarkerErrors = Vec<(i64, Vec<(TopicPartition, ErrorCode)>)>;

fn markers_result(r: Option<Response>) -> Option<MarkerErrors> {
    match r {
        Some(Response::WriteTxnMarkers(w)) => Some(w.markers),
        None => None,
        other => panic!("not a WriteTxnMarkers answer: {other:?}"),
    }
}

/// A consumer fetch of `orders-0` with this isolation level.
fn isolated_fetch(offset: Offset, isolation_level: IsolationLevel) -> Request {
    let Request::Fetch(f) = consumer_fetch(offset) else {
        unreachable!()
    };
    Request::Fetch(FetchRequest {
        isolation_level,
        ..f
    })
}

/// A `ListOffsets` of `orders-0` for `timestamp`: (error, offset, timestamp).
fn list_offsets(
    b: &mut Broker,
    now: Millis,
    isolation_level: IsolationLevel,
    timestamp: i64,
) -> (ErrorCode, Offset, i64) {
    let req = Request::ListOffsets(ListOffsetsRequest {
        isolation_level,
        partitions: vec![(tp(), timestamp, -1)],
    });
    match response_to(&request(b, now, NodeId::Consumer(0), 99, req), 99) {
        Some(Response::ListOffsets(l)) => {
            let p = &l.partitions[0];
            (p.error, p.offset, p.timestamp)
        }
        other => panic!("{other:?}"),
    }
}

/// Transactions without KIP-890 verification (the historic behaviour).
fn unverified() -> BrokerConfig {
    BrokerConfig {
        transaction_partition_verification_enable: false,
        transaction_version: 1,
        ..BrokerConfig::default()
    }
}

const RC: IsolationLevel = IsolationLevel::ReadCommitted;
const RU: IsolationLevel = IsolationLevel::ReadUncommitted;

#[test]
fn markers_wait_for_replication_and_move_the_last_stable_offset() {
    let (mut b, _) = broker(
        1,
        unverified(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    let r = produced(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let r = produced(&mut b, 11, 2, batch(&[102]));
    assert_eq!(r, Some((ErrorCode::None, 2)));
    request(&mut b, 12, NodeId::Broker(2), 1, follower_fetch(2, 3, 0));
    let p = fetch_part(response_to(
        &request(&mut b, 13, NodeId::Consumer(0), 2, isolated_fetch(0, RC)),
        2,
    ));
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.batches.len()),
        (3, 0, 0),
        "read_committed stops at the open transaction"
    );
    let p = fetch_part(response_to(
        &request(&mut b, 13, NodeId::Consumer(0), 3, isolated_fetch(0, RU)),
        3,
    ));
    assert_eq!((p.last_stable_offset, p.batches.len()), (0, 2));

    let commit = write_markers(&[(PID, 0, true, 0, vec![tp()])]);
    let out = request(&mut b, 20, NodeId::Broker(3), 4, commit);
    assert_eq!(
        markers_result(response_to(&out, 4)),
        None,
        "parked until replicated"
    );
    assert_eq!(leo(&b), 4, "the marker takes an offset");
    let p = fetch_part(response_to(
        &request(&mut b, 21, NodeId::Consumer(0), 5, isolated_fetch(0, RC)),
        5,
    ));
    assert_eq!(
        p.last_stable_offset, 0,
        "a marker above the high watermark still holds it"
    );
    let out = request(&mut b, 22, NodeId::Broker(2), 6, follower_fetch(2, 4, 0));
    assert_eq!(
        markers_result(response_to(&out, 4)),
        Some(vec![(PID, vec![(tp(), ErrorCode::None)])])
    );
    let p = fetch_part(response_to(
        &request(&mut b, 23, NodeId::Consumer(0), 7, isolated_fetch(0, RC)),
        7,
    ));
    assert_eq!((p.last_stable_offset, p.batches.len()), (4, 3));
    assert!(p.aborted_transactions.is_empty());
    let markers = b.disk().logs[&tp()].markers();
    assert_eq!(
        markers[0].timestamp,
        TS + 20,
        "written at the leader's clock"
    );

    // Refusals, answered at once, per producer and partition.
    produced(&mut b, 30, 8, txn_batch(PID + 1, 2, 0, &[103]));
    let out = request(
        &mut b,
        31,
        NodeId::Broker(3),
        9,
        write_markers(&[
            (PID + 1, 1, true, 0, vec![tp()]),
            (
                PID,
                0,
                false,
                -1,
                vec![tp(), TopicPartition::new("orders", 7)],
            ),
        ]),
    );
    assert_eq!(
        markers_result(response_to(&out, 9)),
        Some(vec![
            (PID + 1, vec![(tp(), ErrorCode::InvalidProducerEpoch)]),
            (
                PID,
                vec![
                    (tp(), ErrorCode::TransactionCoordinatorFenced),
                    (
                        TopicPartition::new("orders", 7),
                        ErrorCode::UnknownTopicOrPartition
                    )
                ]
            ),
        ])
    );
    assert_eq!(leo(&b), 5, "nothing appended");
    // Clients may not write control batches.
    let forged = EndTransactionMarker {
        control_type: ControlRecordType::Commit,
        coordinator_epoch: 0,
    }
    .to_batch(PID, 0, 0)
    .encode();
    assert_eq!(
        produced(&mut b, 32, 10, forged),
        Some((ErrorCode::InvalidRequest, -1))
    );
    // A follower is not the place for markers.
    let (mut f, _) = broker(
        2,
        unverified(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    let out = request(
        &mut f,
        40,
        NodeId::Broker(3),
        1,
        write_markers(&[(PID, 0, true, 0, vec![tp()])]),
    );
    assert_eq!(
        markers_result(response_to(&out, 1)),
        Some(vec![(PID, vec![(tp(), ErrorCode::NotLeaderOrFollower)])])
    );
}

#[test]
fn read_committed_fetches_carry_the_aborted_transactions() {
    let (mut b, _) = sole_leader(unverified(), Bugs::default());
    produced(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    produced(&mut b, 11, 2, txn_batch(PID + 1, 0, 0, &[200]));
    let markers = write_markers(&[
        (PID, 0, false, 0, vec![tp()]),
        (PID + 1, 0, true, 0, vec![tp()]),
    ]);
    let out = request(&mut b, 12, NodeId::Broker(3), 3, markers);
    assert!(markers_result(response_to(&out, 3)).is_some(), "ISR of one");
    let p = fetch_part(response_to(
        &request(&mut b, 13, NodeId::Consumer(0), 4, isolated_fetch(0, RC)),
        4,
    ));
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.batches.len()),
        (5, 5, 4)
    );
    assert_eq!(
        p.aborted_transactions,
        vec![AbortedTransaction {
            producer_id: PID,
            first_offset: 0
        }]
    );
    let p = fetch_part(response_to(
        &request(&mut b, 14, NodeId::Consumer(0), 5, isolated_fetch(4, RC)),
        5,
    ));
    assert!(
        p.aborted_transactions.is_empty(),
        "ended before the fetched range"
    );
    let p = fetch_part(response_to(
        &request(&mut b, 15, NodeId::Consumer(0), 6, isolated_fetch(0, RU)),
        6,
    ));
    assert!(
        p.aborted_transactions.is_empty(),
        "read_uncommitted gets none"
    );
    // A restart recovers the transaction state from the log (and checks it).
    let before = b.disk().logs[&tp()].txn_index().to_vec();
    b.restart(2);
    assert_eq!(b.disk().logs[&tp()].txn_index(), &before[..]);
    assert_eq!(before.len(), 2);
}

#[test]
fn list_offsets_by_timestamp_can_land_on_a_marker() {
    let (mut b, _) = sole_leader(unverified(), Bugs::default());
    produced(&mut b, 10, 1, batch_at(PID, 0, true, 5, &[100]));
    produced(&mut b, 11, 2, batch_at(-1, -1, false, 8, &[101]));
    request(
        &mut b,
        100,
        NodeId::Broker(3),
        3,
        write_markers(&[(PID, 0, true, 0, vec![tp()])]),
    );
    // Created before the marker was written, appended after it.
    produced(&mut b, 101, 4, batch_at(-1, -1, false, 50, &[102]));
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 6),
        (ErrorCode::None, 1, TS + 8)
    );
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 9),
        (ErrorCode::None, 2, TS + 100),
        "C28: the first record at or after the time is the marker"
    );
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 101),
        (ErrorCode::None, -1, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 102, RC, LATEST_TIMESTAMP),
        (ErrorCode::None, 4, -1)
    );
    // An open transaction: the latest stable offset stays below it, and so do
    // read_committed timestamp lookups.
    produced(&mut b, 200, 5, batch_at(PID, 1, true, 200, &[103]));
    assert_eq!(
        list_offsets(&mut b, 201, RU, LATEST_TIMESTAMP),
        (ErrorCode::None, 5, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RC, LATEST_TIMESTAMP),
        (ErrorCode::None, 4, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RU, TS + 150),
        (ErrorCode::None, 4, TS + 200)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RC, TS + 150),
        (ErrorCode::None, -1, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RU, -7).0,
        ErrorCode::InvalidRequest
    );
}

/// `__transaction_state` (one partition) led by `leader`.
fn txn_state(leader: BrokerId) -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::Topic {
            name: TRANSACTION_STATE_TOPIC.into(),
            partitions: 1,
        },
        MetadataRecord::PartitionChange(PartitionRegistration {
            tp: TopicPartition::new(TRANSACTION_STATE_TOPIC, 0),
            replicas: vec![leader],
            isr: vec![leader],
            leader: Some(leader),
            leader_epoch: 0,
            partition_epoch: 0,
        }),
    ]
}

/// The `AddPartitionsToTxn` in `out`: its correlation id and request.
fn verification(out: &Outbox) -> Option<(u64, AddPartitionsToTxnRequest)> {
    out.sends.iter().find_map(|(to, m)| match m {
        Message::Request {
            correlation_id,
            request: Request::AddPartitionsToTxn(r),
        } => {
            assert_eq!(*to, NodeId::Broker(2), "the coordinator");
            Some((*correlation_id, r.clone()))
        }
        _ => None,
    })
}

/// The coordinator's answer to the verification `c`.
fn verified(b: &mut Broker, now: Millis, c: u64, error: ErrorCode) -> Outbox {
    let mut out = Outbox::default();
    b.on_message(
        now,
        NodeId::Broker(2),
        Message::Response {
            correlation_id: c,
            response: Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
                results: vec![(tp(), error)],
            }),
        },
        &mut out,
    );
    out
}

fn verifying_broker(transaction_version: i16) -> Broker {
    // A request timeout within the broker's session with the controller.
    let config = BrokerConfig {
        transaction_version,
        request_timeout_ms: 2_000,
        ..BrokerConfig::default()
    };
    let mut records = vec![reg(Some(1), &[1], 0, 0)];
    records.extend(txn_state(2));
    broker(1, config, Bugs::default(), records).0
}

#[test]
fn a_transaction_starts_only_once_the_coordinator_verified_it() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    assert_eq!(produce_result(response_to(&out, 1)), None, "parked");
    assert_eq!(leo(&b), 0);
    let (c, v) = verification(&out).expect("the coordinator is asked");
    assert_eq!(
        (
            &*v.transactional_id,
            v.producer_id,
            v.producer_epoch,
            v.partitions.clone(),
            v.verify_only
        ),
        ("tx", PID, 0, vec![tp()], true)
    );
    let out = verified(&mut b, 11, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::None, 0))
    );
    // The transaction is open here now: no further verification.
    let out = txn_request(&mut b, 12, 2, txn_batch(PID, 0, 1, &[101]));
    assert!(verification(&out).is_none());
    assert_eq!(
        produce_result(response_to(&out, 2)),
        Some((ErrorCode::None, 1))
    );

    // The coordinator's refusals, as Kafka hands them to the producer.
    for (i, (error, expected)) in [
        (ErrorCode::NotCoordinator, ErrorCode::NotEnoughReplicas),
        (
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::NotEnoughReplicas,
        ),
        (
            ErrorCode::ConcurrentTransactions,
            ErrorCode::NotEnoughReplicas,
        ),
        (ErrorCode::ProducerFenced, ErrorCode::InvalidProducerEpoch),
        (ErrorCode::InvalidTxnState, ErrorCode::InvalidTxnState),
    ]
    .into_iter()
    .enumerate()
    {
        let corr = 10 + i as u64;
        let pid = PID + 1 + i as i64;
        let out = txn_request(&mut b, 20, corr, txn_batch(pid, 0, 0, &[1]));
        let (c, _) = verification(&out).unwrap();
        let out = verified(&mut b, 21, c, error);
        assert_eq!(
            produce_result(response_to(&out, corr)),
            Some((expected, -1)),
            "{error}"
        );
    }
    assert_eq!(leo(&b), 2, "none appended");

    // No answer within request.timeout.ms, or a broken connection: NETWORK_EXCEPTION,
    // which the producer sees as NOT_ENOUGH_REPLICAS.
    let out = txn_request(&mut b, 30, 30, txn_batch(PID + 9, 0, 0, &[1]));
    assert!(verification(&out).is_some());
    let mut out = Outbox::default();
    b.on_timer(30 + b.config.request_timeout_ms, &mut out);
    assert_eq!(
        produce_result(response_to(&out, 30)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    let t = 40 + b.config.request_timeout_ms;
    txn_request(&mut b, t, 31, txn_batch(PID + 9, 0, 0, &[1]));
    let mut out = Outbox::default();
    b.on_disconnect(t + 1, NodeId::Broker(2), &mut out);
    assert_eq!(
        produce_result(response_to(&out, 31)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
}

/// Kafka's `VerificationStateEntry.lowestSequence` and `ProducerAppendInfo
/// .checkSequence`: the first batch of a transaction was refused after its
/// verification started; the batch behind it is `OUT_OF_ORDER_SEQUENCE_NUMBER`
/// (retried by the client, no epoch bump; never UNKNOWN_PRODUCER_ID) until the
/// first is in.
#[test]
fn batches_behind_a_refused_first_batch_wait_for_it() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    let (c, _) = verification(&out).expect("verified");
    let out = verified(&mut b, 11, c, ErrorCode::NotCoordinator);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    let out = txn_request(&mut b, 12, 2, txn_batch(PID, 0, 2, &[102]));
    let (c, _) = verification(&out).expect("verified again");
    let out = verified(&mut b, 13, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 2)),
        Some((ErrorCode::OutOfOrderSequenceNumber, -1))
    );
    assert_eq!(leo(&b), 0);
    // The first batch again, then the second.
    let out = txn_request(&mut b, 14, 3, txn_batch(PID, 0, 0, &[100, 101]));
    let (c, _) = verification(&out).expect("verified");
    let out = verified(&mut b, 15, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 3)),
        Some((ErrorCode::None, 0))
    );
    let out = txn_request(&mut b, 16, 4, txn_batch(PID, 0, 2, &[102]));
    assert!(verification(&out).is_none(), "the transaction is open here");
    assert_eq!(
        produce_result(response_to(&out, 4)),
        Some((ErrorCode::None, 2))
    );
}

#[test]
fn a_marker_during_verification_keeps_a_late_batch_out() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    let (c, _) = verification(&out).unwrap();
    // The transaction is aborted (a timeout) while the verification is under way.
    request(
        &mut b,
        11,
        NodeId::Broker(2),
        2,
        write_markers(&[(PID, 0, false, 0, vec![tp()])]),
    );
    assert_eq!(leo(&b), 1);
    let out = verified(&mut b, 12, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::InvalidTxnState, -1)),
        "no hanging transaction"
    );
    assert_eq!(leo(&b), 1);
    assert_eq!(b.disk().logs[&tp()].last_stable_offset(1), 1);
}

#[test]
fn transaction_version_2_adds_the_partition_for_the_producer() {
    let mut b = verifying_broker(2);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    let (c, v) = verification(&out).unwrap();
    assert!(!v.verify_only);
    // KAFKA-18654: CONCURRENT_TRANSACTIONS is retried by the leader every 20 ms...
    let out = verified(&mut b, 11, c, ErrorCode::ConcurrentTransactions);
    assert!(response_to(&out, 1).is_none(), "retried, not answered");
    let mut out = Outbox::default();
    b.on_timer(30, &mut out);
    assert!(verification(&out).is_none(), "not before the backoff");
    let mut out = Outbox::default();
    b.on_timer(31, &mut out);
    let (c, _) = verification(&out).expect("asked again");
    let out = verified(&mut b, 32, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::None, 0))
    );
    // ... for up to 100 ms after the first attempt, then the producer hears it.
    let out = txn_request(&mut b, 200, 2, txn_batch(PID + 1, 0, 0, &[100]));
    let (mut c, _) = verification(&out).unwrap();
    let mut now = 201;
    loop {
        let out = verified(&mut b, now, c, ErrorCode::ConcurrentTransactions);
        if let Some(answer) = response_to(&out, 2) {
            assert_eq!(
                produce_result(Some(answer)),
                Some((ErrorCode::ConcurrentTransactions, -1))
            );
            break;
        }
        now += 20;
        let mut out = Outbox::default();
        b.on_timer(now, &mut out);
        c = verification(&out).expect("asked again").0;
        now += 1;
        assert!(now < 400, "the retries end");
    }
    assert!(now > 280, "retried for about 100 ms: {now}");
    // Without the topic there is no coordinator to ask.
    let (mut b, _) = sole_leader(BrokerConfig::default(), Bugs::default());
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
}

#[test]
fn epoch_fencing_keeps_zombies_out_unless_switched_off() {
    let zombie = || txn_batch(PID, 0, 1, &[666]);
    for (bugs, expected) in [
        (Bugs::default(), Some((ErrorCode::InvalidProducerEpoch, -1))),
        (
            Bugs::of(&[Bug::NoProducerEpochFencing]),
            Some((ErrorCode::None, 1)),
        ),
    ] {
        let (mut b, _) = sole_leader(unverified(), bugs);
        produced(&mut b, 10, 1, txn_batch(PID, 1, 0, &[100]));
        let r = produced(&mut b, 11, 2, zombie());
        assert_eq!(r, expected);
    }
    // With verification, the coordinator fences the zombie all the same.
    let mut b = verifying_broker(1);
    b.bugs = Bugs::of(&[Bug::NoProducerEpochFencing]);
    let out = txn_request(&mut b, 10, 1, zombie());
    let (c, _) = verification(&out).unwrap();
    let out = verified(&mut b, 11, c, ErrorCode::ProducerFenced);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::InvalidProducerEpoch, -1))
    );
}

#[test]
fn offsets_partitions_take_markers_and_reload_past_them() {
    let (mut b, meta) = broker(
        1,
        group_config(),
        Bugs::default(),
        offsets_records(1, &[1], 0),
    );
    let offsets = TopicPartition::new(OFFSETS_TOPIC, 12);
    let out = request(
        &mut b,
        10,
        NodeId::Broker(2),
        1,
        write_markers(&[(PID, 0, true, 0, vec![offsets.clone()])]),
    );
    assert_eq!(
        markers_result(response_to(&out, 1)),
        Some(vec![(PID, vec![(offsets.clone(), ErrorCode::None)])])
    );
    // A new leader epoch reloads the groups from the log, marker included.
    deliver_metadata(&mut b, 20, &meta, offsets_records(1, &[1], 1), 9);
    assert_eq!(b.disk().logs[&offsets].markers().len(), 1);
    assert!(b.coordinator.is_loaded(12));
}
/// Kafka's `ProducerAppendInfo.checkProducerEpoch` for the group coordinator's
/// append (origin COORDINATOR): once a marker of a newer epoch is in the offsets
/// partition, a fenced producer's `TxnOffsetCommit` is `INVALID_PRODUCER_EPOCH`
/// and nothing waits for the successor's marker; the current epoch is written.
#[test]
fn a_fenced_producers_txn_offset_commit_is_refused() {
    for bugs in [Bugs::default(), Bugs::of(&[Bug::NoProducerEpochFencing])] {
        let (mut b, _) = broker(1, group_config(), bugs, offsets_records(1, &[1], 0));
        let offsets = TopicPartition::new(OFFSETS_TOPIC, 12);
        let out = request(
            &mut b,
            10,
            NodeId::Broker(2),
            1,
            write_markers(&[(PID, 5, false, 0, vec![offsets.clone()])]),
        );
        assert_eq!(
            markers_result(response_to(&out, 1)),
            Some(vec![(PID, vec![(offsets.clone(), ErrorCode::None)])])
        );
        let commit = |epoch: i16| {
            Request::TxnOffsetCommit(TxnOffsetCommitRequest {
                transactional_id: Arc::from("etl-0"),
                group_id: Arc::from(GROUP),
                producer_id: PID,
                producer_epoch: epoch,
                generation_id: -1,
                member_id: Arc::from(""),
                group_instance_id: None,
                offsets: vec![CommittedOffset {
                    tp: TopicPartition::new("orders", 0),
                    offset: 7,
                    leader_epoch: -1,
                }],
            })
        };
        let log_end = b.disk().logs[&offsets].log_end_offset();
        let c = NodeId::Producer(0);
        let error = |out: &Outbox, correlation| match response_to(out, correlation) {
            Some(Response::TxnOffsetCommit(r)) => r.partitions[0].1,
            other => panic!("{other:?}"),
        };
        let stale = request(&mut b, 20, c, 2, commit(4));
        if bugs == Bugs::default() {
            assert_eq!(error(&stale, 2), ErrorCode::InvalidProducerEpoch);
            assert_eq!(
                b.disk().logs[&offsets].log_end_offset(),
                log_end,
                "nothing written"
            );
        } else {
            assert_eq!(error(&stale, 2), ErrorCode::None, "the bug lets it in");
            assert_eq!(b.disk().logs[&offsets].log_end_offset(), log_end + 1);
        }
        let log_end = b.disk().logs[&offsets].log_end_offset();
        let current = request(&mut b, 30, c, 3, commit(5));
        assert_eq!(error(&current, 3), ErrorCode::None);
        assert_eq!(b.disk().logs[&offsets].log_end_offset(), log_end + 1);
    }
}
