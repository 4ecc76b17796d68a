//! Unit tests of `broker`.

use super::*;
use crate::actor::testing::{deliver_request, deliver_response, fire};
use crate::kafka::record::testing::plain_batch;
use crate::kafka::record::RecordBatch;
use bytes::Bytes;
use std::sync::Arc;

mod group_coordinator;
mod idempotence;
mod retention;
mod storage;
mod transactions;
use group_coordinator::*;
use idempotence::*;
use transactions::*;

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
    let values = values.iter().map(|v| (None, Bytes::from(v.to_string())));
    // Sent at simulated time 0, on the clock the brokers' producer expiration reads.
    RecordBatch {
        producer_id,
        producer_epoch,
        base_sequence,
        base_timestamp: crate::kafka::record::RECORD_TIMESTAMP_BASE,
        max_timestamp: crate::kafka::record::RECORD_TIMESTAMP_BASE,
        ..plain_batch(values.collect())
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
        elr: Vec::new(),
        last_known_elr: Vec::new(),
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
    let registered = deliver_response(&mut b, 1, NodeId::Controller, c, resp);
    // The controller unfences it: only then does it serve clients.
    let c = find(&registered, |r| matches!(r, Request::BrokerHeartbeat(_)));
    let resp = Response::BrokerHeartbeat(BrokerHeartbeatResponse {
        error: ErrorCode::None,
        is_fenced: false,
    });
    deliver_response(&mut b, 1, NodeId::Controller, c, resp);
    let mut log = cluster_metadata();
    log.extend(records);
    let out = deliver_metadata(&mut b, 2, &out, log, 0);
    (b, out)
}

/// The metadata log's first records: brokers 1 to 3 registered (broker epoch = id - 1)
/// and unfenced, and the topic `orders` with one partition.
fn cluster_metadata() -> Vec<MetadataRecord> {
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
    log
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
    deliver_response(b, now, NodeId::Controller, c, resp)
}

/// Delivers `request` from `from` to broker `b`; returns what it sent.
fn request(
    b: &mut Broker,
    now: Millis,
    from: NodeId,
    correlation_id: u64,
    request: Request,
) -> Outbox {
    deliver_request(b, now, from, correlation_id, request)
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

/// A read-uncommitted fetch of `orders-0` from `offset` at `current_leader_epoch`, by
/// `replica_id` (None: a consumer) at `broker_epoch`.
fn fetch_request(
    replica_id: Option<BrokerId>,
    broker_epoch: i64,
    offset: Offset,
    current_leader_epoch: LeaderEpoch,
) -> Request {
    Request::Fetch(FetchRequest {
        replica_id,
        broker_epoch,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level: IsolationLevel::ReadUncommitted,
        partitions: vec![FetchPartition {
            tp: tp(),
            fetch_offset: offset,
            current_leader_epoch,
            last_fetched_epoch: None,
            log_start_offset: -1,
        }],
    })
}

fn follower_fetch(replica: BrokerId, offset: Offset, epoch: LeaderEpoch) -> Request {
    fetch_request(Some(replica), i64::from(replica) - 1, offset, epoch)
}

fn consumer_fetch(offset: Offset) -> Request {
    fetch_request(None, -1, offset, -1)
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

/// Sends `produce(acks, values)` from producer 0 and returns its answer, if any.
fn send(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    acks: Acks,
    values: &[u64],
) -> Option<(ErrorCode, Offset)> {
    send_batch(b, now, correlation_id, acks, batch(values)).0
}

/// Broker `id` (default config), having applied that `leader` leads `orders-0`
/// over `isr` at leader and partition epoch 0.
fn replica_of(id: BrokerId, leader: BrokerId, isr: &[BrokerId], bugs: Bugs) -> (Broker, Outbox) {
    broker(
        id,
        BrokerConfig::default(),
        bugs,
        vec![reg(Some(leader), isr, 0, 0)],
    )
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

/// Sends `request` from `from` as `correlation_id` and returns the answer's first
/// partition (which must be a fetch answer).
fn fetched(
    b: &mut Broker,
    now: Millis,
    from: NodeId,
    correlation_id: u64,
    request: Request,
) -> FetchPartitionResponse {
    fetch_part(response_to(
        &self::request(b, now, from, correlation_id, request),
        correlation_id,
    ))
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

/// Broker 2's fetch from `offset` at leader epoch 3 after `last_fetched_epoch`,
/// sent to `l` as `correlation_id`.
fn epoch_3_fetch(
    l: &mut Broker,
    now: Millis,
    correlation_id: u64,
    offset: Offset,
    last_fetched_epoch: LeaderEpoch,
) -> Outbox {
    let fetch = follower_fetch_after(2, offset, 3, last_fetched_epoch);
    request(l, now, NodeId::Broker(2), correlation_id, fetch)
}

/// Broker `id` (default config) started as [`bring_up`] does, its disk holding `log`
/// as `orders-0`.
fn with_log(id: BrokerId, log: Log, records: Vec<MetadataRecord>) -> (Broker, Outbox) {
    let mut disk = Disk::default();
    disk.logs.insert(tp(), log);
    bring_up(
        Broker::new(id, BrokerConfig::default(), Bugs::default(), 1, disk),
        records,
    )
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
    deliver_response(b, now, NodeId::Broker(from), c, response)
}

#[test]
fn acks_all_waits_for_every_in_sync_replica() {
    let (mut b, _) = replica_of(1, 1, &[1, 2, 3], Bugs::default());
    assert_eq!(
        send(&mut b, 10, 7, Acks::All, &[100, 101]),
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
    assert_eq!(
        send(&mut b, 14, 8, Acks::Leader, &[102]),
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
    assert_eq!(
        send(&mut b, now, 7, Acks::Leader, &[100]),
        Some((ErrorCode::None, 0)),
        "a zombie leader acknowledges acks=1"
    );
    let out = request(&mut b, now, NodeId::Consumer(0), 8, consumer_fetch(0));
    assert_eq!(fetch_part(response_to(&out, 8)).error, ErrorCode::None);
    // acks=all still waits for the ISR it last knew (broker 2 never fetches).
    assert_eq!(send(&mut b, now, 9, Acks::All, &[101]), None, "parked");
}

/// A restarted broker serves no client until the controller unfences this process
/// (Kafka's `BrokerServer.startup` enables its listeners only after
/// `lifecycleManager.setReadyToUnfence()`): with its registration accepted and a
/// metadata image that still names it leader at epoch 0 (not yet caught up to its
/// registration), its listeners stay closed (the host refuses connections to it); it
/// heartbeats every 10 ms while fenced, and listens and leads once unfenced.
#[test]
fn a_restarted_broker_listens_only_once_unfenced() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    assert_eq!(
        send(&mut b, 3, 7, Acks::Leader, &[100]),
        Some((ErrorCode::None, 0))
    );
    b.restart(2);
    let mut start = Outbox::default();
    b.on_start(10, &mut start);
    let c = find(&start, |r| matches!(r, Request::BrokerRegistration(_)));
    let resp = Response::BrokerRegistration(BrokerRegistrationResponse {
        error: ErrorCode::None,
        broker_epoch: 9,
    });
    let registered = deliver_response(&mut b, 11, NodeId::Controller, c, resp);
    // The image of before the restart: it leads at epoch 0.
    let mut stale = cluster_metadata();
    stale.push(reg(Some(1), &[1], 0, 0));
    deliver_metadata(&mut b, 12, &start, stale, 0);
    assert!(
        !b.listening(),
        "registered but not unfenced: its listeners stay closed"
    );
    let c = find(&registered, |r| matches!(r, Request::BrokerHeartbeat(_)));
    let resp = Response::BrokerHeartbeat(BrokerHeartbeatResponse {
        error: ErrorCode::None,
        is_fenced: true,
    });
    deliver_response(&mut b, 14, NodeId::Controller, c, resp);
    assert!(
        b.next_timer()
            .is_some_and(|t| t <= 14 + STARTING_HEARTBEAT_INTERVAL_MS),
        "STARTING heartbeats every 10 ms"
    );
    let mut out = Outbox::default();
    b.on_timer(24, &mut out);
    let c = find(&out, |r| matches!(r, Request::BrokerHeartbeat(_)));
    let resp = Response::BrokerHeartbeat(BrokerHeartbeatResponse {
        error: ErrorCode::None,
        is_fenced: false,
    });
    deliver_response(&mut b, 25, NodeId::Controller, c, resp);
    assert!(b.listening());
    assert_eq!(
        send(&mut b, 26, 10, Acks::Leader, &[102]),
        Some((ErrorCode::None, 1))
    );
}

/// The host refuses connections to closed listeners, so a request reaching one is a
/// bug of the host: the broker says so rather than act on its stale image.
#[test]
#[should_panic(expected = "a request reached closed listeners")]
fn a_request_to_closed_listeners_is_a_host_bug() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    b.restart(2);
    b.on_start(10, &mut Outbox::default());
    send(&mut b, 13, 8, Acks::Leader, &[101]);
}

/// A request that times out closes its connection, as Kafka's `NetworkClient` does
/// (`handleTimedOutRequests`): the next one goes out on a new connection instead of
/// waiting behind the old one's retransmissions after a cut heals. Only that client's
/// connection closes (the heartbeat's is another).
#[test]
fn a_timed_out_request_closes_its_connection() {
    let (mut b, out) = replica_of(1, 1, &[1], Bugs::default());
    let first = find(&out, |r| matches!(r, Request::MetadataFetch(_)));
    let mut out = Outbox::default();
    b.on_timer(1_000, &mut out);
    assert!(out.disconnects.is_empty(), "nothing timed out yet");
    let mut out = Outbox::default();
    b.on_timer(10_000, &mut out);
    assert_eq!(
        out.disconnects,
        vec![(Channel::MetadataFetch, NodeId::Controller)]
    );
    let again = find(&out, |r| matches!(r, Request::MetadataFetch(_)));
    assert_ne!(again, first, "fetched again, on a new connection");
    let heartbeat = out
        .sends
        .iter()
        .zip(&out.channels)
        .find(|((_, m), _)| {
            matches!(
                m,
                Message::Request {
                    request: Request::BrokerHeartbeat(_),
                    ..
                }
            )
        })
        .map(|(_, c)| *c);
    assert_eq!(heartbeat, Some(Channel::BrokerLifecycle));
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
            ..Default::default()
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
        // Accepted: parked until the followers have it.
        assert_eq!(
            send(&mut b, 10, 7, Acks::All, &[100]),
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
    assert_eq!(
        send(&mut b, 10, 7, Acks::All, &[100]),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    assert_eq!(b.disk().logs[&tp()].log_end_offset(), 0, "not appended");
}

#[test]
fn consumers_read_below_the_high_watermark_only() {
    let (mut b, _) = replica_of(1, 1, &[1, 2], Bugs::default());
    send(&mut b, 10, 7, Acks::Leader, &[100]);
    let p = fetched(&mut b, 11, NodeId::Consumer(0), 1, consumer_fetch(0));
    assert_eq!(
        (p.error, p.high_watermark, p.batches.len()),
        (ErrorCode::None, 0, 0)
    );
    request(&mut b, 12, NodeId::Broker(2), 2, follower_fetch(2, 1, 0));
    let p = fetched(&mut b, 13, NodeId::Consumer(0), 3, consumer_fetch(0));
    assert_eq!((p.high_watermark, p.batches.len()), (1, 1));
}

/// KAFKA-15583: while the ISR is below `min.insync.replicas` the high watermark stays,
/// so consumers never read what only the leader has (`acks=1` still appends it); the
/// `high-watermark-under-min-isr` switch moves it to the leader's log end.
#[test]
fn the_high_watermark_stays_while_the_isr_is_below_min_isr() {
    for (bugs, hw) in [
        (Bugs::default(), 0),
        (Bugs::of(&[Bug::HighWatermarkUnderMinIsr]), 1),
    ] {
        let config = BrokerConfig {
            min_insync_replicas: 2,
            ..BrokerConfig::default()
        };
        let (mut b, _) = broker(1, config, bugs, vec![reg(Some(1), &[1], 0, 0)]);
        assert_eq!(
            send(&mut b, 10, 7, Acks::Leader, &[100]),
            Some((ErrorCode::None, 0))
        );
        let p = fetched(&mut b, 11, NodeId::Consumer(0), 1, consumer_fetch(0));
        assert_eq!(
            (p.high_watermark, p.batches.len()),
            (hw, hw as usize),
            "{bugs:?}"
        );
    }
}

#[test]
fn high_watermark_bug_switch_acknowledges_unreplicated_writes() {
    let bugs = Bugs::of(&[Bug::HighWatermarkFromLeaderOnly]);
    let (mut b, _) = replica_of(1, 1, &[1, 2, 3], bugs);
    assert_eq!(
        send(&mut b, 10, 7, Acks::All, &[100]),
        Some((ErrorCode::None, 0))
    );
}

#[test]
fn lagging_follower_is_removed_from_the_isr() {
    let mut b = leader_of_three_with_lag_1s();
    send(&mut b, 10, 7, Acks::Leader, &[100]);
    request(&mut b, 20, NodeId::Broker(2), 1, follower_fetch(2, 1, 0));
    request(&mut b, 1_500, NodeId::Broker(2), 2, follower_fetch(2, 1, 0));
    let out = fire(&mut b, 1_600);
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
            } => Some(a.new_isr()),
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
    send(&mut b, 10, 7, Acks::Leader, &[100]);
    request(&mut b, 20, NodeId::Broker(2), 1, follower_fetch(2, 1, 0));
    request(&mut b, 20, NodeId::Broker(3), 2, follower_fetch(3, 1, 0));
    let out = fire(&mut b, 5_000);
    assert_eq!(isr_proposals(&out), Vec::<Vec<BrokerId>>::new());
    send(&mut b, 5_100, 8, Acks::Leader, &[101]);
    let out = fire(&mut b, 5_600);
    assert_eq!(isr_proposals(&out), vec![vec![1]]);
}

/// `Partition.isFollowerInSync`: a follower joins the ISR once its log end offset is
/// at or past both the high watermark and the leader's epoch start offset.
#[test]
fn follower_joins_the_isr_only_within_the_leaders_epoch() {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[100, 101]), 0).unwrap();
    let (mut b, _) = with_log(1, log, vec![reg(Some(1), &[1, 2], 1, 1)]);
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

/// KIP-903 at the leader: a follower joins the ISR only when the broker epoch of its
/// fetches is the one its registration has (`Partition.isReplicaIsrEligible`); the
/// proposal carries each member's epoch (`addBrokerEpochToIsr`); a fetch with an older
/// epoch than one already seen is NOT_LEADER_OR_FOLLOWER (`updateFetchStateOrThrow`).
#[test]
fn a_follower_joins_the_isr_only_with_its_registered_broker_epoch() {
    let mut log = Log::default();
    log.append_as_leader(&batch(&[100, 101]), 1).unwrap();
    let (mut b, _) = with_log(1, log, vec![reg(Some(1), &[1, 2], 1, 1)]);
    let proposals = |out: &Outbox| -> Vec<Vec<BrokerState>> {
        out.sends
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Request {
                    request: Request::AlterPartition(a),
                    ..
                } => Some(a.new_isr_with_epochs.clone()),
                _ => None,
            })
            .collect()
    };
    // Broker 3 is registered with epoch 2; a new incarnation (epoch 9, not yet in the
    // leader's image) fetches at the log end: taken, but not eligible.
    let out = request(
        &mut b,
        10,
        NodeId::Broker(3),
        1,
        fetch_request(Some(3), 9, 2, 1),
    );
    assert_eq!(fetch_part(response_to(&out, 1)).error, ErrorCode::None);
    assert!(
        proposals(&out).is_empty(),
        "epoch 9 is not the registered 2"
    );
    // A fetch of the old incarnation arriving late: older than epoch 9, refused.
    let out = request(
        &mut b,
        11,
        NodeId::Broker(3),
        2,
        fetch_request(Some(3), 2, 2, 1),
    );
    assert_eq!(
        fetch_part(response_to(&out, 2)).error,
        ErrorCode::NotLeaderOrFollower
    );
    assert!(proposals(&out).is_empty());
    // A proposal carries the leader's own epoch, -1 for broker 2 (no fetch from it yet
    // in this leadership) and broker 3's epoch as its fetch carried it.
    let (mut b, _) = with_log(1, Log::default(), vec![reg(Some(1), &[1, 2], 1, 1)]);
    let out = request(
        &mut b,
        10,
        NodeId::Broker(3),
        1,
        fetch_request(Some(3), 2, 0, 1),
    );
    let epoch = |broker_id, broker_epoch| BrokerState {
        broker_id,
        broker_epoch,
    };
    assert_eq!(
        proposals(&out),
        vec![vec![epoch(1, 0), epoch(2, -1), epoch(3, 2)]]
    );
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
                } => Some((*correlation_id, a.new_isr())),
                _ => None,
            })
            .collect()
    };
    let answer = |b: &mut Broker, now: Millis, c: u64, error: ErrorCode, isr: &[BrokerId]| {
        let MetadataRecord::PartitionChange(registration) = reg(Some(1), isr, 0, 1) else {
            unreachable!()
        };
        let response = Response::AlterPartition(AlterPartitionResponse {
            tp: tp(),
            error,
            registration: Some(registration),
        });
        deliver_response(b, now, NodeId::Controller, c, response)
    };
    let pending = |b: &Broker| match &b.partitions[&tp()].role {
        Role::Leader(ls) => ls.pending.as_ref().map(|(c, isr, _)| (*c, ids(isr))),
        _ => panic!("leads"),
    };
    let out = fire(&mut b, 1_600);
    let first = alters(&out);
    assert_eq!(first.len(), 1);
    let (c1, ref isr) = first[0];
    assert_eq!(isr, &vec![1, 2]);
    // No answer within the request timeout: sent again, still pending.
    let out = fire(&mut b, 1_600 + timeout);
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
    let out = fire(&mut b, t + 50);
    assert!(alters(&out).is_empty(), "not before the backoff");
    let out = fire(&mut b, t + 51);
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
    let (mut b, meta) = replica_of(2, 2, &[1, 2], bugs);
    send(&mut b, 10, 1, Acks::Leader, &[100]);
    request(&mut b, 11, NodeId::Broker(1), 2, follower_fetch(1, 1, 0));
    send(&mut b, 12, 3, Acks::Leader, &[101, 102]);
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
    with_log(1, log, vec![reg(Some(1), &[1, 3], 3, 3)]).0
}

/// The leader's answers to a follower holding [`three_epoch_log`] (KIP-595,
/// `Partition.readRecords`): first epoch 1 ending at 7 (where epoch 3 starts), then,
/// asked for epoch 0 from offset 6, epoch 0 ending at 4; from 4 it sends records.
#[test]
fn leader_answers_diverging_epochs_until_the_logs_match() {
    let mut l = three_epoch_leader();
    let p = fetch_part(response_to(&epoch_3_fetch(&mut l, 10, 1, 9, 2), 1));
    assert_eq!(
        (p.error, p.diverging_epoch, p.batches.len()),
        (ErrorCode::None, Some((1, 7)), 0)
    );
    let p = fetch_part(response_to(&epoch_3_fetch(&mut l, 11, 2, 6, 0), 2));
    assert_eq!(p.diverging_epoch, Some((0, 4)));
    let p = fetch_part(response_to(&epoch_3_fetch(&mut l, 12, 3, 4, 0), 3));
    assert_eq!((p.error, p.diverging_epoch), (ErrorCode::None, None));
    assert!(!p.batches.is_empty());
}

/// A diverging answer leaves the follower's fetch state alone
/// (`Partition.fetchRecords` skips `updateFollowerFetchState`): its stale log end
/// offset neither joins it to the ISR nor moves the high watermark.
#[test]
fn diverging_fetch_does_not_count_as_the_followers_position() {
    let mut l = three_epoch_leader();
    let out = epoch_3_fetch(&mut l, 10, 1, 9, 2);
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
    let (mut f, mut out) = with_log(2, three_epoch_log(), vec![reg(Some(1), &[1, 3], 3, 3)]);
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
    let (mut l, _) = with_log(1, log, vec![reg(Some(1), &[1], 3, 3)]);
    let p = fetch_part(response_to(&epoch_3_fetch(&mut l, 10, 1, 3, 1), 1));
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
    let (mut b, meta) = replica_of(1, 2, &[1, 2], Bugs::default());
    b.disk
        .logs
        .get_mut(&tp())
        .unwrap()
        .append_as_leader(&batch(&[100, 101]), 0)
        .unwrap();
    deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1, 2], 1, 1)], 8);
    let p = fetched(&mut b, 22, NodeId::Consumer(0), 1, consumer_fetch(0));
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
    let p = fetched(&mut b, 24, NodeId::Consumer(0), 3, consumer_fetch(0));
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
    let p = fetched(&mut b, 10, NodeId::Broker(2), 1, follower_fetch(2, 0, 0));
    assert_eq!(p.error, ErrorCode::FencedLeaderEpoch);
    let p = fetched(&mut b, 10, NodeId::Broker(2), 2, follower_fetch(2, 0, 2));
    assert_eq!(p.error, ErrorCode::UnknownLeaderEpoch);
}

/// The fetches in `out`: (correlation id, fetch offset).
fn fetches_in(out: &Outbox) -> Vec<(u64, Offset)> {
    out.sends
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Request {
                correlation_id,
                request: Request::Fetch(f),
            } => Some((*correlation_id, f.partitions[0].fetch_offset)),
            _ => None,
        })
        .collect()
}

/// Kafka 4.x's `AbstractFetcherThread`: a fetch answer with a batch whose CRC fails
/// (`CorruptRecordException` from `analyzeAndValidateRecords`) is not appended at all,
/// and the follower fetches the same offset again after `replica.fetch.backoff.ms`.
#[test]
fn a_follower_rejects_a_corrupt_answer_and_fetches_the_same_offset_again() {
    let (mut b, out) = replica_of(2, 1, &[1, 2], Bugs::default());
    let (c, fp, _) = diverging_answer(&out, 0, 0);
    assert_eq!(fp.fetch_offset, 0);
    let mut bad = batch(&[101]).to_vec();
    crate::kafka::record::set_base_offset(&mut bad, 1);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let resp = Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            tp: tp(),
            error: ErrorCode::None,
            high_watermark: 2,
            last_stable_offset: 2,
            log_start_offset: 0,
            batches: vec![batch(&[100]), Bytes::from(bad)],
            aborted_transactions: Vec::new(),
            diverging_epoch: None,
        }],
    });
    let out = answer_with(&mut b, 20, 1, c, resp);
    assert_eq!(b.disk().logs[&tp()].log_end_offset(), 0, "nothing appended");
    assert!(fetches_in(&out).is_empty(), "backing off");
    let backoff = BrokerConfig::default().replica_fetch_backoff_ms;
    let mut out = Outbox::default();
    b.on_timer(20 + backoff, &mut out);
    assert_eq!(
        fetches_in(&out).iter().map(|f| f.1).collect::<Vec<_>>(),
        vec![0],
        "the same offset again, still fetching"
    );
}
