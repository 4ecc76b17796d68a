//! Unit tests of `controller`.

use super::*;
use crate::actor::testing::{deliver_request, deliver_response};
use crate::kafka::metadata::BrokerRegistration;
use crate::kafka::protocol::BrokerState;
use std::sync::Arc;

const CORR: u64 = 7;
const BROKERS: [BrokerId; 3] = [1, 2, 3];

fn config(unclean: bool) -> BrokerConfig {
    BrokerConfig {
        unclean_leader_election_enable: unclean,
        ..BrokerConfig::default()
    }
}

fn topic(name: &str, partitions: u32, replication_factor: u32) -> TopicSpec {
    TopicSpec {
        config: Default::default(),
        name: Arc::from(name),
        partitions,
        replication_factor,
    }
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

fn reg(
    tp: TopicPartition,
    replicas: &[BrokerId],
    isr: &[BrokerId],
    leader: Option<BrokerId>,
    leader_epoch: i32,
    partition_epoch: i32,
) -> PartitionRegistration {
    PartitionRegistration {
        tp,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        leader_epoch,
        partition_epoch,
    }
}

fn change(
    partition: TopicPartition,
    leader: Option<BrokerId>,
    leader_epoch: i32,
    isr: &[BrokerId],
    unclean: bool,
) -> Op {
    Op::PartitionChange {
        partition,
        leader,
        leader_epoch,
        isr: isr.to_vec(),
        elr: Vec::new(),
        unclean,
    }
}

fn send_with(
    c: &mut Controller,
    now: Millis,
    from: NodeId,
    correlation_id: u64,
    request: Request,
) -> Outbox {
    deliver_request(c, now, from, correlation_id, request)
}

fn send(c: &mut Controller, now: Millis, from: NodeId, request: Request) -> Outbox {
    send_with(c, now, from, CORR, request)
}

/// The one response in `out` to `to` with correlation id `correlation_id`.
fn response_with(out: &Outbox, to: NodeId, correlation_id: u64) -> Response {
    let found: Vec<&Response> = out
        .sends
        .iter()
        .filter_map(|(node, message)| match message {
            Message::Response {
                correlation_id: c,
                response,
            } if *node == to && *c == correlation_id => Some(response),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "responses to {to}: {:?}", out.sends);
    found[0].clone()
}

fn response(out: &Outbox, to: NodeId) -> Response {
    assert_eq!(out.sends.len(), 1, "sends: {:?}", out.sends);
    response_with(out, to, CORR)
}

fn history(out: &Outbox) -> Vec<Op> {
    for entry in &out.history {
        assert_eq!(entry.process, NodeId::Controller);
        assert_eq!(entry.invoke_ms, entry.complete_ms.expect("instant entry"));
    }
    out.history.iter().map(|e| e.op.clone()).collect()
}

fn try_register(
    c: &mut Controller,
    now: Millis,
    broker: BrokerId,
    incarnation_id: u64,
) -> BrokerRegistrationResponse {
    let out = send(
        c,
        now,
        NodeId::Broker(broker),
        Request::BrokerRegistration(BrokerRegistrationRequest {
            broker_id: broker,
            incarnation_id,
        }),
    );
    match response(&out, NodeId::Broker(broker)) {
        Response::BrokerRegistration(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn register(c: &mut Controller, now: Millis, broker: BrokerId, incarnation_id: u64) -> i64 {
    let r = try_register(c, now, broker, incarnation_id);
    assert_eq!(r.error, ErrorCode::None);
    r.broker_epoch
}

fn heartbeat_with(
    c: &mut Controller,
    now: Millis,
    broker: BrokerId,
    broker_epoch: i64,
    current_metadata_offset: i64,
    want_fence: bool,
) -> (BrokerHeartbeatResponse, Outbox) {
    let out = send(
        c,
        now,
        NodeId::Broker(broker),
        Request::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: broker,
            broker_epoch,
            current_metadata_offset,
            want_fence,
        }),
    );
    match response(&out, NodeId::Broker(broker)) {
        Response::BrokerHeartbeat(r) => (r, out),
        other => panic!("unexpected {other:?}"),
    }
}

/// A caught-up heartbeat that does not want to be fenced; returns `is_fenced`.
fn heartbeat(c: &mut Controller, now: Millis, broker: BrokerId, epoch: i64) -> (bool, Outbox) {
    let offset = c.log_end() - 1;
    let (r, out) = heartbeat_with(c, now, broker, epoch, offset, false);
    assert_eq!(r.error, ErrorCode::None);
    (r.is_fenced, out)
}

/// Brokers 1, 2, 3 registered and unfenced at time 0 (epochs 0, 1, 2), topics created.
fn cluster(config: BrokerConfig, topics: Vec<TopicSpec>) -> Controller {
    let mut c = Controller::new(config, BROKERS.to_vec(), topics, Bugs::default());
    for b in BROKERS {
        assert_eq!(register(&mut c, 0, b, 100 + u64::from(b)), i64::from(b) - 1);
    }
    for b in BROKERS {
        assert!(!heartbeat(&mut c, 0, b, i64::from(b) - 1).0);
    }
    c
}

fn timer(c: &mut Controller, now: Millis) -> Outbox {
    let mut out = Outbox::default();
    c.on_timer(now, &mut out);
    out
}

fn partition(c: &Controller, p: u32) -> PartitionRegistration {
    c.image().partitions[&tp(p)].clone()
}

fn tail(c: &Controller, n: usize) -> Vec<MetadataRecord> {
    c.log[c.log.len() - n..].to_vec()
}

#[allow(clippy::too_many_arguments)]
fn alter(
    c: &mut Controller,
    now: Millis,
    broker_id: BrokerId,
    broker_epoch: i64,
    tp: TopicPartition,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[BrokerId],
) -> (AlterPartitionResponse, Outbox) {
    let out = send(
        c,
        now,
        NodeId::Broker(broker_id),
        Request::AlterPartition(AlterPartitionRequest {
            broker_id,
            broker_epoch,
            tp,
            leader_epoch,
            partition_epoch,
            new_isr_with_epochs: new_isr
                .iter()
                .map(|b| BrokerState {
                    broker_id: *b,
                    broker_epoch: -1,
                })
                .collect(),
        }),
    );
    match response(&out, NodeId::Broker(broker_id)) {
        Response::AlterPartition(r) => (r, out),
        other => panic!("unexpected {other:?}"),
    }
}

fn elect(
    c: &mut Controller,
    now: Millis,
    election_type: ElectionType,
    partitions: &[u32],
) -> (Vec<ErrorCode>, Outbox) {
    let out = send(
        c,
        now,
        NodeId::Nemesis,
        Request::ElectLeaders(ElectLeadersRequest {
            election_type,
            partitions: partitions.iter().map(|p| tp(*p)).collect(),
        }),
    );
    match response(&out, NodeId::Nemesis) {
        Response::ElectLeaders(r) => {
            let expected: Vec<TopicPartition> = partitions.iter().map(|p| tp(*p)).collect();
            let got: Vec<TopicPartition> = r.partitions.iter().map(|(t, _)| t.clone()).collect();
            assert_eq!(got, expected);
            (r.partitions.into_iter().map(|(_, e)| e).collect(), out)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn reassign(
    c: &mut Controller,
    now: Millis,
    tp: TopicPartition,
    replicas: &[BrokerId],
) -> (ErrorCode, Outbox) {
    let out = send(
        c,
        now,
        NodeId::Nemesis,
        Request::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
            tp: tp.clone(),
            replicas: replicas.to_vec(),
        }),
    );
    match response(&out, NodeId::Nemesis) {
        Response::AlterPartitionReassignments(r) => {
            assert_eq!(r.tp, tp);
            (r.error, out)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn fetch_request(broker_id: BrokerId, fetch_offset: i64, max_wait_ms: u64) -> Request {
    Request::MetadataFetch(MetadataFetchRequest {
        broker_id,
        fetch_offset,
        max_wait_ms,
    })
}

fn fetch_response(out: &Outbox, to: NodeId, correlation_id: u64) -> MetadataFetchResponse {
    match response_with(out, to, correlation_id) {
        Response::MetadataFetch(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

/// A broker replaying `log()` into a fresh image reaches the controller's image.
fn assert_replay_matches(c: &Controller) {
    let mut replay = MetadataImage::default();
    for (offset, record) in c.log.iter().enumerate() {
        replay.apply(offset as i64, record);
    }
    assert_eq!(replay.next_offset, c.image().next_offset);
    assert_eq!(replay.brokers, c.image().brokers);
    assert_eq!(replay.topics, c.image().topics);
    assert_eq!(replay.partitions, c.image().partitions);
    assert_eq!(replay.next_producer_id, c.image().next_producer_id);
}

#[test]
fn registration_is_fenced_until_a_caught_up_heartbeat() {
    let mut c = Controller::new(
        config(false),
        BROKERS.to_vec(),
        vec![topic("t", 1, 3)],
        Bugs::default(),
    );
    assert_eq!(register(&mut c, 0, 1, 100), 0);
    let registered = MetadataRecord::RegisterBroker {
        broker_id: 1,
        broker_epoch: 0,
    };
    assert_eq!(c.log, std::slice::from_ref(&registered));
    assert_eq!(
        c.image().brokers[&1],
        BrokerRegistration {
            broker_epoch: 0,
            fenced: true
        }
    );
    // Fenced brokers have no session to expire.
    assert_eq!(c.next_timer(), None);

    // The same incarnation again: the same epoch, no record.
    assert_eq!(register(&mut c, 5, 1, 100), 0);
    assert_eq!(c.log.len(), 1);

    // Not caught up yet, then asking to stay fenced: still fenced.
    let (r, _) = heartbeat_with(&mut c, 10, 1, 0, -1, false);
    assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
    let (r, _) = heartbeat_with(&mut c, 10, 1, 0, 0, true);
    assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
    assert_eq!(c.log.len(), 1);

    // Caught up: unfenced.
    let (r, out) = heartbeat_with(&mut c, 20, 1, 0, 0, false);
    assert_eq!((r.error, r.is_fenced), (ErrorCode::None, false));
    assert!(out.history.is_empty());
    assert_eq!(
        c.log[1],
        MetadataRecord::UnfenceBroker {
            broker_id: 1,
            broker_epoch: 0
        }
    );
    assert!(c.image().is_live(1));
    assert_eq!(c.next_timer(), Some(20 + 9_000 + 1));

    // Errors: unknown broker, stale epoch, broker outside the cluster.
    let (r, _) = heartbeat_with(&mut c, 30, 2, 0, 5, false);
    assert_eq!(
        (r.error, r.is_fenced),
        (ErrorCode::BrokerIdNotRegistered, true)
    );
    let (r, _) = heartbeat_with(&mut c, 30, 1, 7, 5, false);
    assert_eq!((r.error, r.is_fenced), (ErrorCode::StaleBrokerEpoch, true));
    let r = try_register(&mut c, 30, 9, 1);
    assert_eq!((r.error, r.broker_epoch), (ErrorCode::InvalidRequest, -1));
    assert_eq!(c.log.len(), 2);
    assert!(c.image().topics.is_empty());

    // An unfenced broker asking to be fenced is fenced.
    let (r, _) = heartbeat_with(&mut c, 40, 1, 0, 1, true);
    assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
    assert_eq!(
        c.log[2],
        MetadataRecord::FenceBroker {
            broker_id: 1,
            broker_epoch: 0
        }
    );
    assert_eq!(c.next_timer(), None);
    assert_replay_matches(&c);
}

#[test]
fn topics_are_created_round_robin_once_every_broker_is_unfenced() {
    let mut c = Controller::new(
        config(false),
        BROKERS.to_vec(),
        vec![topic("t", 4, 2), topic("u", 1, 3)],
        Bugs::default(),
    );
    for b in BROKERS {
        register(&mut c, 0, b, 100);
    }
    assert!(!heartbeat(&mut c, 0, 1, 0).0);
    assert!(!heartbeat(&mut c, 0, 2, 1).0);
    assert!(c.image().topics.is_empty());
    assert_eq!(c.log.len(), 5);
    let (fenced, out) = heartbeat(&mut c, 0, 3, 2);
    assert!(!fenced);
    assert!(out.history.is_empty(), "creation is not a change");

    let u0 = TopicPartition::new("u", 0);
    let expected = vec![
        MetadataRecord::UnfenceBroker {
            broker_id: 3,
            broker_epoch: 2,
        },
        MetadataRecord::Topic {
            name: Arc::from("t"),
            partitions: 4,
        },
        MetadataRecord::PartitionChange(reg(tp(0), &[1, 2], &[1, 2], Some(1), 0, 0)),
        MetadataRecord::PartitionChange(reg(tp(1), &[2, 3], &[2, 3], Some(2), 0, 0)),
        MetadataRecord::PartitionChange(reg(tp(2), &[3, 1], &[3, 1], Some(3), 0, 0)),
        MetadataRecord::PartitionChange(reg(tp(3), &[1, 2], &[1, 2], Some(1), 0, 0)),
        MetadataRecord::Topic {
            name: Arc::from("u"),
            partitions: 1,
        },
        MetadataRecord::PartitionChange(reg(u0.clone(), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 0)),
    ];
    assert_eq!(&c.log[5..], expected.as_slice());
    assert_eq!(c.image().topics.len(), 2);
    assert_eq!(c.image().partitions.len(), 5);
    assert_eq!(c.image().partitions[&u0].replicas, vec![1, 2, 3]);

    // A broker fenced and unfenced again does not create anything twice.
    let end = c.log.len();
    heartbeat_with(&mut c, 100, 3, 2, 0, true);
    heartbeat(&mut c, 100, 3, 2);
    assert!(c.log[end..]
        .iter()
        .all(|r| !matches!(r, MetadataRecord::Topic { .. })));
    assert_replay_matches(&c);
}

#[test]
fn missed_heartbeats_fence_the_leader_and_elect_from_the_isr() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 0)
    );
    assert_eq!(c.next_timer(), Some(9_001));
    heartbeat(&mut c, 5_000, 2, 1);
    heartbeat(&mut c, 5_000, 3, 2);
    assert_eq!(c.next_timer(), Some(9_001));

    let end = c.log.len();
    let out = timer(&mut c, 9_000);
    assert!(out.history.is_empty() && out.sends.is_empty());
    assert_eq!(c.log.len(), end);

    let out = timer(&mut c, 9_001);
    let moved = reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 1);
    assert_eq!(
        tail(&c, 2),
        vec![
            MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 0
            },
            MetadataRecord::PartitionChange(moved.clone()),
        ]
    );
    assert_eq!(
        history(&out),
        vec![change(tp(0), Some(2), 1, &[2, 3], false)]
    );
    assert_eq!(partition(&c, 0), moved);
    assert_eq!(c.next_timer(), Some(14_001));

    // Back, but out of the ISR: unfenced without a partition change.
    let (fenced, out) = heartbeat(&mut c, 9_500, 1, 0);
    assert!(!fenced);
    assert!(out.history.is_empty());
    assert_eq!(
        tail(&c, 1),
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 1,
            broker_epoch: 0
        }]
    );
    assert_eq!(partition(&c, 0), moved);
    assert_replay_matches(&c);
}

#[test]
fn losing_the_last_isr_member_leaves_the_partition_offline() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    heartbeat(&mut c, 5_000, 1, 0);
    let out = timer(&mut c, 9_001);
    assert_eq!(
        history(&out),
        vec![
            change(tp(0), Some(1), 0, &[1, 3], false),
            change(tp(0), Some(1), 0, &[1], false),
        ]
    );
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1], Some(1), 0, 2)
    );

    // The last ISR member dies: it keeps its seat, the partition has no leader.
    let out = timer(&mut c, 14_001);
    assert_eq!(history(&out), vec![change(tp(0), None, 1, &[1], false)]);
    let offline = reg(tp(0), &[1, 2, 3], &[1], None, 1, 3);
    assert_eq!(partition(&c, 0), offline);
    assert_eq!(
        c.image().describe(None)[0].error,
        ErrorCode::LeaderNotAvailable
    );
    assert_eq!(c.next_timer(), None);
    let (errors, _) = elect(&mut c, 14_100, ElectionType::Unclean, &[0]);
    assert_eq!(errors, vec![ErrorCode::EligibleLeadersNotAvailable]);

    // Another replica returns: no unclean election when disabled.
    let (fenced, out) = heartbeat(&mut c, 15_000, 2, 1);
    assert!(!fenced);
    assert!(out.history.is_empty());
    assert_eq!(partition(&c, 0), offline);
    let (errors, _) = elect(&mut c, 15_000, ElectionType::Preferred, &[0]);
    assert_eq!(errors, vec![ErrorCode::PreferredLeaderNotAvailable]);

    // The last ISR member returns: a clean election.
    let (fenced, out) = heartbeat(&mut c, 15_000, 1, 0);
    assert!(!fenced);
    assert_eq!(history(&out), vec![change(tp(0), Some(1), 2, &[1], false)]);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1], Some(1), 2, 4)
    );
    assert_replay_matches(&c);
}

/// Broker 1 leads with ISR [1] (shrunk by AlterPartition) and its session expires.
fn lose_sole_isr_leader(unclean: bool) -> (Controller, Outbox) {
    let mut c = cluster(config(unclean), vec![topic("t", 1, 3)]);
    let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
    assert_eq!(r.error, ErrorCode::None);
    heartbeat(&mut c, 5_000, 2, 1);
    heartbeat(&mut c, 5_000, 3, 2);
    let out = timer(&mut c, 9_001);
    (c, out)
}

#[test]
fn unclean_election_happens_only_when_enabled() {
    let (mut c, out) = lose_sole_isr_leader(false);
    assert_eq!(history(&out), vec![change(tp(0), None, 1, &[1], false)]);
    assert_eq!(partition(&c, 0), reg(tp(0), &[1, 2, 3], &[1], None, 1, 2));
    // The admin may still force an unclean election.
    let (errors, out) = elect(&mut c, 9_100, ElectionType::Unclean, &[0]);
    assert_eq!(errors, vec![ErrorCode::None]);
    assert_eq!(history(&out), vec![change(tp(0), Some(2), 2, &[2], true)]);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[2], Some(2), 2, 3)
    );
    let (errors, _) = elect(&mut c, 9_100, ElectionType::Unclean, &[0]);
    assert_eq!(errors, vec![ErrorCode::ElectionNotNeeded]);
    assert_replay_matches(&c);

    let (mut c, out) = lose_sole_isr_leader(true);
    assert_eq!(history(&out), vec![change(tp(0), Some(2), 1, &[2], true)]);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[2], Some(2), 1, 2)
    );

    // Brokers 2 then 3 expire: 3 is elected uncleanly, then nobody is left.
    let out = timer(&mut c, 14_001);
    assert_eq!(
        history(&out),
        vec![
            change(tp(0), Some(3), 2, &[3], true),
            change(tp(0), None, 3, &[3], false),
        ]
    );
    // Broker 1 (fenced, never re-registered) returns: elected uncleanly on unfence.
    let (fenced, out) = heartbeat(&mut c, 14_500, 1, 0);
    assert!(!fenced);
    assert_eq!(history(&out), vec![change(tp(0), Some(1), 4, &[1], true)]);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1], Some(1), 4, 5)
    );
    assert_replay_matches(&c);
}

/// `unclean.leader.election.enable` is read per topic: the topic's override (a
/// `TopicConfig` record after its `TopicRecord`) wins over the cluster's.
#[test]
fn unclean_election_follows_the_topics_override() {
    for (cluster_unclean, topic_unclean) in [(false, true), (true, false)] {
        let mut spec = topic("t", 1, 3);
        spec.config.unclean_leader_election_enable = Some(topic_unclean);
        let mut c = cluster(config(cluster_unclean), vec![spec.clone()]);
        assert!(c.log.contains(&MetadataRecord::TopicConfig {
            name: spec.name.clone(),
            config: spec.config.clone(),
        }));
        let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
        assert_eq!(r.error, ErrorCode::None);
        heartbeat(&mut c, 5_000, 2, 1);
        heartbeat(&mut c, 5_000, 3, 2);
        let out = timer(&mut c, 9_001);
        let expected = if topic_unclean {
            change(tp(0), Some(2), 1, &[2], true)
        } else {
            change(tp(0), None, 1, &[1], false)
        };
        assert_eq!(history(&out), vec![expected], "cluster {cluster_unclean}");
        assert_replay_matches(&c);
    }
}

/// `TransactionStateManager.transactionTopicConfigs` pins
/// `unclean.leader.election.enable=false` on `__transaction_state`: with unclean
/// elections on for the cluster, its last in-sync replica dying leaves it offline
/// instead of electing a replica that may lack prepared transactions.
#[test]
fn transaction_state_is_never_elected_uncleanly() {
    let config = BrokerConfig {
        transaction_state_log_num_partitions: 1,
        ..config(true)
    };
    let spec = crate::coordinator::txn::transaction_state_topic_spec(&config, BROKERS.len());
    let txn = TopicPartition::new(&spec.name, 0);
    let mut c = cluster(config, vec![spec]);
    let (r, _) = alter(&mut c, 0, 1, 0, txn.clone(), 0, 0, &[1]);
    assert_eq!(r.error, ErrorCode::None);
    heartbeat(&mut c, 5_000, 2, 1);
    heartbeat(&mut c, 5_000, 3, 2);
    let out = timer(&mut c, 9_001);
    assert_eq!(
        history(&out),
        vec![change(txn.clone(), None, 1, &[1], false)]
    );
    assert_eq!(c.image().partitions[&txn].leader, None);
    assert_replay_matches(&c);
}

/// KIP-903 at the controller (`ineligibleReplicasForIsr`): a member whose broker epoch
/// in the request is not its registered one is INELIGIBLE_REPLICA; -1 skips the check.
#[test]
fn alter_partition_refuses_a_member_with_another_broker_epoch() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1, 2]);
    assert_eq!(r.error, ErrorCode::None);
    let send = |c: &mut Controller, epoch_of_3: i64| {
        let out = send(
            c,
            10,
            NodeId::Broker(1),
            Request::AlterPartition(AlterPartitionRequest {
                broker_id: 1,
                broker_epoch: 0,
                tp: tp(0),
                leader_epoch: 0,
                partition_epoch: 1,
                new_isr_with_epochs: [(1, 0), (2, -1), (3, epoch_of_3)]
                    .into_iter()
                    .map(|(broker_id, broker_epoch)| BrokerState {
                        broker_id,
                        broker_epoch,
                    })
                    .collect(),
            }),
        );
        match response(&out, NodeId::Broker(1)) {
            Response::AlterPartition(r) => r.error,
            other => panic!("unexpected {other:?}"),
        }
    };
    // Broker 3 registered with epoch 2: an epoch from another incarnation is refused.
    assert_eq!(send(&mut c, 7), ErrorCode::IneligibleReplica);
    assert_eq!(partition(&c, 0).isr, vec![1, 2]);
    assert_eq!(send(&mut c, 2), ErrorCode::None);
    assert_eq!(partition(&c, 0).isr, vec![1, 2, 3]);
}

#[test]
fn alter_partition_is_validated() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    let current = partition(&c, 0);
    let end = c.log.len();
    // (sender, broker epoch, leader epoch, partition epoch, new ISR, expected error)
    type Case = (BrokerId, i64, i32, i32, &'static [BrokerId], ErrorCode);
    // Kafka's ReplicationControlManager.validateAlterPartitionData: epochs ahead of
    // the controller's are NOT_CONTROLLER, a non-leader is INVALID_REQUEST.
    let cases: [Case; 9] = [
        (1, 5, 0, 0, &[1, 2], ErrorCode::StaleBrokerEpoch),
        (2, 1, 0, 0, &[1, 2], ErrorCode::InvalidRequest),
        (1, 0, 1, 0, &[1, 2], ErrorCode::NotController),
        (1, 0, 0, 3, &[1, 2], ErrorCode::NotController),
        (2, 1, 0, 0, &[2, 3], ErrorCode::InvalidRequest),
        (1, 0, 0, 0, &[1, 4], ErrorCode::InvalidRequest),
        (1, 0, 0, 0, &[2, 3], ErrorCode::InvalidRequest),
        (1, 0, 0, 0, &[1, 1], ErrorCode::InvalidRequest),
        (1, 0, 0, 0, &[], ErrorCode::InvalidRequest),
    ];
    for (broker, epoch, leader_epoch, partition_epoch, isr, error) in cases {
        let (r, out) = alter(
            &mut c,
            10,
            broker,
            epoch,
            tp(0),
            leader_epoch,
            partition_epoch,
            isr,
        );
        assert_eq!(
            r.error, error,
            "{broker} {epoch} {leader_epoch} {partition_epoch} {isr:?}"
        );
        assert_eq!(r.tp, tp(0));
        assert_eq!(r.registration.as_ref(), Some(&current));
        assert!(out.history.is_empty());
    }
    let (r, _) = alter(&mut c, 10, 1, 0, tp(7), 0, 0, &[1]);
    assert_eq!(
        (r.error, r.registration),
        (ErrorCode::UnknownTopicOrPartition, None)
    );
    assert_eq!(c.log.len(), end);

    // A valid shrink: same leader epoch, next partition epoch.
    let (r, out) = alter(&mut c, 20, 1, 0, tp(0), 0, 0, &[1, 2]);
    let shrunk = reg(tp(0), &[1, 2, 3], &[1, 2], Some(1), 0, 1);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.registration.as_ref(), Some(&shrunk));
    assert_eq!(
        tail(&c, 1),
        vec![MetadataRecord::PartitionChange(shrunk.clone())]
    );
    assert_eq!(
        history(&out),
        vec![change(tp(0), Some(1), 0, &[1, 2], false)]
    );

    // The old partition epoch is now stale.
    let (r, _) = alter(&mut c, 30, 1, 0, tp(0), 0, 0, &[1, 2, 3]);
    assert_eq!(r.error, ErrorCode::InvalidUpdateVersion);

    // Adding a fenced broker is refused, saying the request was not applied.
    heartbeat_with(&mut c, 40, 3, 2, 10, true);
    let (r, _) = alter(&mut c, 50, 1, 0, tp(0), 0, 1, &[1, 2, 3]);
    assert_eq!(r.error, ErrorCode::IneligibleReplica);
    assert_eq!(r.registration.as_ref(), Some(&shrunk));

    // The same ISR again: accepted without a record.
    let end = c.log.len();
    let (r, out) = alter(&mut c, 60, 1, 0, tp(0), 0, 1, &[1, 2]);
    assert_eq!(
        (r.error, r.registration.as_ref()),
        (ErrorCode::None, Some(&shrunk))
    );
    assert!(out.history.is_empty());
    assert_eq!(c.log.len(), end);

    // Broker 3 is back; the leader expands the ISR.
    heartbeat(&mut c, 70, 3, 2);
    let (r, _) = alter(&mut c, 80, 1, 0, tp(0), 0, 1, &[1, 2, 3]);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 2)
    );
    // Broker 1 is fenced and 2 leads in epoch 1: the old leader's update, in its old
    // leader epoch, is FENCED_LEADER_EPOCH (a zombie leader's shrink changes nothing).
    heartbeat_with(&mut c, 90, 1, 0, 10, true);
    assert_eq!(partition(&c, 0).leader, Some(2));
    let end = c.log.len();
    let (r, out) = alter(&mut c, 100, 1, 0, tp(0), 0, 2, &[1]);
    assert_eq!(r.error, ErrorCode::FencedLeaderEpoch);
    assert!(out.history.is_empty());
    assert_eq!(c.log.len(), end);
    assert_replay_matches(&c);
}

#[test]
fn preferred_election_and_reassignment_move_the_leader() {
    let mut c = cluster(config(false), vec![topic("t", 2, 3)]);
    let (errors, _) = elect(&mut c, 10, ElectionType::Preferred, &[0, 1, 9]);
    assert_eq!(
        errors,
        vec![
            ErrorCode::ElectionNotNeeded,
            ErrorCode::ElectionNotNeeded,
            ErrorCode::UnknownTopicOrPartition
        ]
    );

    // Reorder, then the preferred election moves the leader.
    let (error, out) = reassign(&mut c, 20, tp(0), &[2, 1, 3]);
    assert_eq!(error, ErrorCode::None);
    assert_eq!(
        tail(&c, 2),
        vec![
            MetadataRecord::PartitionChange(reg(tp(0), &[2, 1, 3], &[1, 2, 3], Some(1), 0, 1)),
            MetadataRecord::PartitionChange(reg(tp(0), &[2, 1, 3], &[1, 2, 3], Some(2), 1, 2)),
        ]
    );
    assert_eq!(
        history(&out),
        vec![
            change(tp(0), Some(1), 0, &[1, 2, 3], false),
            change(tp(0), Some(2), 1, &[1, 2, 3], false),
        ]
    );

    // Only a reordering of the same replicas is allowed.
    let end = c.log.len();
    assert_eq!(
        reassign(&mut c, 30, tp(0), &[2, 1]).0,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        reassign(&mut c, 30, tp(0), &[2, 1, 4]).0,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        reassign(&mut c, 30, tp(0), &[2, 2, 1, 3]).0,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        reassign(&mut c, 30, tp(5), &[1, 2, 3]).0,
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(c.log.len(), end);

    // The new preferred replica is out of the ISR: reordered, leader unchanged.
    let (r, _) = alter(&mut c, 40, 2, 1, tp(0), 1, 2, &[2, 3]);
    assert_eq!(r.error, ErrorCode::None);
    let (error, out) = reassign(&mut c, 50, tp(0), &[1, 2, 3]);
    assert_eq!(error, ErrorCode::None);
    assert_eq!(
        history(&out),
        vec![change(tp(0), Some(2), 1, &[2, 3], false)]
    );
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 4)
    );
    let (errors, _) = elect(&mut c, 60, ElectionType::Preferred, &[0]);
    assert_eq!(errors, vec![ErrorCode::PreferredLeaderNotAvailable]);

    // Back in the ISR: the preferred election succeeds.
    let (r, _) = alter(&mut c, 70, 2, 1, tp(0), 1, 4, &[2, 3, 1]);
    assert_eq!(r.error, ErrorCode::None);
    let (errors, out) = elect(&mut c, 80, ElectionType::Preferred, &[0]);
    assert_eq!(errors, vec![ErrorCode::None]);
    assert_eq!(
        history(&out),
        vec![change(tp(0), Some(1), 2, &[2, 3, 1], false)]
    );
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[2, 3, 1], Some(1), 2, 6)
    );
    // Unclean election is not needed for a partition with a leader.
    let (errors, _) = elect(&mut c, 90, ElectionType::Unclean, &[0]);
    assert_eq!(errors, vec![ErrorCode::ElectionNotNeeded]);
    // The untouched partition never changed.
    assert_eq!(
        partition(&c, 1),
        reg(tp(1), &[2, 3, 1], &[2, 3, 1], Some(2), 0, 0)
    );
    assert_replay_matches(&c);
}

#[test]
fn a_new_incarnation_fences_the_old_one_first() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    // ClusterControlManager.registerBroker: while the old incarnation's session is
    // valid, a new one is refused (DUPLICATE_BROKER_REGISTRATION) and nothing is
    // written; the broker retries.
    let end = c.log_end();
    let session = c.config.broker_session_timeout_ms;
    for now in [100, session] {
        let r = try_register(&mut c, now, 1, 999);
        assert_eq!(
            (r.error, r.broker_epoch),
            (ErrorCode::DuplicateBrokerRegistration, -1)
        );
    }
    assert_eq!(c.log_end(), end);
    // Past the session (before the timer fenced it): the old incarnation is fenced
    // and the new one registered.
    let epoch = register(&mut c, session + 1, 1, 999);
    let end = c.log_end();
    assert_eq!(epoch, end - 1);
    assert_eq!(
        tail(&c, 3),
        vec![
            MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 0
            },
            MetadataRecord::PartitionChange(reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 1)),
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: epoch
            },
        ]
    );
    // The old epoch is stale; the same new incarnation is idempotent.
    let (r, _) = heartbeat_with(&mut c, 110, 1, 0, end, false);
    assert_eq!(r.error, ErrorCode::StaleBrokerEpoch);
    assert_eq!(register(&mut c, 120, 1, 999), epoch);
    // Another restart while fenced: just a new registration.
    let epoch2 = register(&mut c, 130, 1, 1_000);
    assert_eq!(epoch2, end);
    assert_eq!(
        tail(&c, 1),
        vec![MetadataRecord::RegisterBroker {
            broker_id: 1,
            broker_epoch: epoch2
        }]
    );
    // Caught up to its registration: unfenced.
    let (r, _) = heartbeat_with(&mut c, 140, 1, epoch2, epoch2 - 1, false);
    assert!(r.is_fenced);
    let (r, _) = heartbeat_with(&mut c, 150, 1, epoch2, epoch2, false);
    assert!(!r.is_fenced);
    assert_replay_matches(&c);
}

#[test]
fn metadata_fetch_long_polls() {
    let mut c = Controller::new(config(false), BROKERS.to_vec(), vec![], Bugs::default());
    register(&mut c, 0, 1, 100);
    let b2 = NodeId::Broker(2);

    // Behind the log end: answered at once.
    let out = send_with(&mut c, 10, b2, 1, fetch_request(2, 0, 500));
    let r = fetch_response(&out, b2, 1);
    assert_eq!(
        r.records,
        vec![(
            0,
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: 0
            }
        )]
    );
    assert_eq!(r.log_end_offset, 1);

    // At the log end: parked until the next append.
    let out = send_with(&mut c, 10, b2, 2, fetch_request(2, 1, 500));
    assert!(out.sends.is_empty());
    assert_eq!(c.next_timer(), Some(510));
    let out = send(
        &mut c,
        20,
        NodeId::Broker(3),
        Request::BrokerRegistration(BrokerRegistrationRequest {
            broker_id: 3,
            incarnation_id: 1,
        }),
    );
    assert_eq!(out.sends.len(), 2);
    let r = fetch_response(&out, b2, 2);
    assert_eq!(
        r.records,
        vec![(
            1,
            MetadataRecord::RegisterBroker {
                broker_id: 3,
                broker_epoch: 1
            }
        )]
    );
    assert_eq!(r.log_end_offset, 2);
    assert_eq!(c.next_timer(), None);

    // Parked, then answered empty when the wait is over.
    let out = send_with(&mut c, 30, b2, 3, fetch_request(2, 2, 500));
    assert!(out.sends.is_empty());
    assert!(timer(&mut c, 529).sends.is_empty());
    let out = timer(&mut c, 530);
    let r = fetch_response(&out, b2, 3);
    assert!(r.records.is_empty());
    assert_eq!(r.log_end_offset, 2);
    assert_eq!(c.next_timer(), None);

    // A new fetch replaces the parked one.
    send_with(&mut c, 600, b2, 4, fetch_request(2, 2, 500));
    send_with(&mut c, 610, b2, 5, fetch_request(2, 2, 500));
    assert_eq!(c.next_timer(), Some(1_110));
    let out = send(
        &mut c,
        620,
        NodeId::Broker(2),
        Request::BrokerRegistration(BrokerRegistrationRequest {
            broker_id: 2,
            incarnation_id: 1,
        }),
    );
    assert_eq!(out.sends.len(), 2);
    assert_eq!(fetch_response(&out, b2, 5).records.len(), 1);
    assert_eq!(c.next_timer(), None);

    // No waiting allowed, or a broker outside the cluster: answered at once.
    let out = send_with(&mut c, 700, b2, 6, fetch_request(2, 3, 0));
    assert!(fetch_response(&out, b2, 6).records.is_empty());
    let b9 = NodeId::Broker(9);
    let out = send_with(&mut c, 700, b9, 7, fetch_request(9, 3, 500));
    assert!(fetch_response(&out, b9, 7).records.is_empty());
    assert_eq!(c.next_timer(), None);
}

#[test]
fn metadata_fetch_is_bounded_and_replays_to_the_same_image() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    for i in 0..600 {
        let (r, _) = alter(&mut c, 10, 1, 0, tp(0), 0, 2 * i, &[1, 2]);
        assert_eq!(r.error, ErrorCode::None);
        let (r, _) = alter(&mut c, 10, 1, 0, tp(0), 0, 2 * i + 1, &[1, 2, 3]);
        assert_eq!(r.error, ErrorCode::None);
    }
    let end = c.log_end();
    assert_eq!(end, 8 + 1_200);

    // A broker catching up through MetadataFetch, 1000 records at a time.
    let b1 = NodeId::Broker(1);
    let mut replay = MetadataImage::default();
    let mut batches = Vec::new();
    while replay.next_offset < end {
        let out = send(&mut c, 20, b1, fetch_request(1, replay.next_offset, 500));
        let r = fetch_response(&out, b1, CORR);
        assert_eq!(r.log_end_offset, end);
        batches.push(r.records.len());
        for (offset, record) in &r.records {
            replay.apply(*offset, record);
        }
    }
    assert_eq!(batches, vec![1_000, 208]);
    assert_eq!(replay.partitions, c.image().partitions);
    assert_eq!(replay.brokers, c.image().brokers);
    assert_eq!(replay.topics, c.image().topics);
    assert_eq!(
        partition(&c, 0),
        reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 1_200)
    );
    assert_replay_matches(&c);
}

#[test]
fn other_requests_and_responses_get_no_answer() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    let end = c.log.len();
    let mut out = Outbox::default();
    c.on_start(0, &mut out);
    let out = send(
        &mut c,
        10,
        NodeId::Producer(0),
        Request::Metadata(crate::kafka::protocol::MetadataRequest { topics: None }),
    );
    assert!(out.sends.is_empty());
    let out = deliver_response(
        &mut c,
        10,
        NodeId::Broker(1),
        1,
        Response::AlterPartitionReassignments(AlterPartitionReassignmentsResponse {
            tp: tp(0),
            error: ErrorCode::None,
        }),
    );
    assert!(out.sends.is_empty() && out.history.is_empty());
    assert_eq!(c.log.len(), end);
}

fn allocate(c: &mut Controller, broker_id: BrokerId, broker_epoch: i64) -> (i64, i64) {
    let out = send(
        c,
        10,
        NodeId::Broker(broker_id),
        Request::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id,
            broker_epoch,
        }),
    );
    match response(&out, NodeId::Broker(broker_id)) {
        Response::AllocateProducerIds(r) if r.error == ErrorCode::None => (
            r.producer_id_start,
            r.producer_id_start + i64::from(r.producer_id_len),
        ),
        Response::AllocateProducerIds(r) => (-1, i64::from(r.error.code())),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn producer_id_blocks_are_disjoint_and_recorded() {
    let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
    let end = c.log.len();
    let a = allocate(&mut c, 1, 0);
    let b = allocate(&mut c, 2, 1);
    let a2 = allocate(&mut c, 1, 0);
    let size = i64::from(PRODUCER_ID_BLOCK_SIZE);
    assert_eq!(a, (0, size));
    assert_eq!(b, (size, 2 * size));
    assert_eq!(a2, (2 * size, 3 * size));
    assert_eq!(
        allocate(&mut c, 3, 0),
        (-1, i64::from(ErrorCode::StaleBrokerEpoch.code())),
        "broker 3's epoch is 2"
    );
    assert_eq!(c.log.len(), end + 3, "one record per block given");
    assert_eq!(
        c.log[end + 1],
        MetadataRecord::ProducerIds {
            broker_id: 2,
            broker_epoch: 1,
            next_producer_id: 2 * size,
        }
    );
    assert_eq!(c.image().next_producer_id, 3 * size);
    assert_replay_matches(&c);
}

fn elr_config(min_isr: u32) -> BrokerConfig {
    BrokerConfig {
        min_insync_replicas: min_isr,
        eligible_leader_replicas_version: 1,
        ..BrokerConfig::default()
    }
}

fn elr_reg(
    isr: &[BrokerId],
    leader: Option<BrokerId>,
    elr: &[BrokerId],
    last_known_elr: &[BrokerId],
    leader_epoch: i32,
    partition_epoch: i32,
) -> PartitionRegistration {
    PartitionRegistration {
        elr: elr.to_vec(),
        last_known_elr: last_known_elr.to_vec(),
        ..reg(
            tp(0),
            &[1, 2, 3],
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        )
    }
}

/// KIP-966's last replica standing, at the controller: leader 1 alone in the ISR
/// (min ISR 2), the followers fenced, then 1's session expires and a new incarnation
/// of 1 registers. Returns the controller after that registration, and its epoch.
fn last_replica_standing(bugs: Bugs) -> (Controller, i64) {
    let mut c = cluster(elr_config(2), vec![topic("t", 1, 3)]);
    c.bugs = bugs;
    // The ISR falls below min ISR: the replicas that leave it become eligible.
    let (r, out) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
    assert_eq!(r.error, ErrorCode::None);
    let elr = |isr: &[BrokerId], leader, epoch, elr: &[BrokerId]| Op::PartitionChange {
        partition: tp(0),
        leader,
        leader_epoch: epoch,
        isr: isr.to_vec(),
        elr: elr.to_vec(),
        unclean: false,
    };
    assert_eq!(history(&out), vec![elr(&[1], Some(1), 0, &[2, 3])]);
    // Fencing the followers changes nothing: they are out of the ISR already.
    heartbeat(&mut c, 5_000, 1, 0);
    assert!(timer(&mut c, 9_001).history.is_empty());
    // The leader is fenced: the ISR becomes empty (allowed with ELR on), the leader
    // joins the ELR, and is remembered as the last known leader.
    let out = timer(&mut c, 14_001);
    assert_eq!(history(&out), vec![elr(&[], None, 1, &[1, 2, 3])]);
    assert_eq!(partition(&c, 0), elr_reg(&[], None, &[1, 2, 3], &[1], 1, 2));
    // A new incarnation registers: an unclean shutdown, unless the bug switch is on.
    let epoch = register(&mut c, 15_000, 1, 999);
    (c, epoch)
}

#[test]
fn an_unclean_shutdown_takes_the_last_replica_standing_out_of_the_elr() {
    let (mut c, epoch) = last_replica_standing(Bugs::default());
    let unclean = elr_reg(&[], None, &[2, 3], &[1], 1, 3);
    assert_eq!(
        tail(&c, 2),
        vec![
            MetadataRecord::PartitionChange(unclean.clone()),
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: epoch
            },
        ]
    );
    // Broker 1 is back but may not lead: no leader until an ELR member returns.
    let (fenced, out) = heartbeat(&mut c, 15_100, 1, epoch);
    assert!(!fenced);
    assert!(out.history.is_empty());
    assert_eq!(partition(&c, 0), unclean);
    let (fenced, _) = heartbeat(&mut c, 16_000, 2, 1);
    assert!(!fenced);
    assert_eq!(partition(&c, 0), elr_reg(&[2], Some(2), &[3], &[], 2, 4));
    // The ISR regrows to min ISR: the ELR is cleared.
    let (r, _) = alter(&mut c, 16_100, 2, 1, tp(0), 2, 4, &[2, 1]);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(partition(&c, 0), elr_reg(&[2, 1], Some(2), &[], &[], 2, 5));
    assert_replay_matches(&c);
}

#[test]
fn without_unclean_shutdown_detection_the_restarted_replica_leads_from_the_elr() {
    let (mut c, epoch) = last_replica_standing(Bugs::of(&[Bug::NoUncleanShutdownDetection]));
    assert_eq!(partition(&c, 0), elr_reg(&[], None, &[1, 2, 3], &[1], 1, 2));
    let (fenced, _) = heartbeat(&mut c, 15_100, 1, epoch);
    assert!(!fenced);
    assert_eq!(partition(&c, 0), elr_reg(&[1], Some(1), &[2, 3], &[], 2, 3));
    assert_replay_matches(&c);
}

#[test]
fn with_elr_off_an_unclean_shutdown_changes_nothing() {
    let (mut c, out) = lose_sole_isr_leader(false);
    assert_eq!(history(&out), vec![change(tp(0), None, 1, &[1], false)]);
    let before = partition(&c, 0);
    let epoch = register(&mut c, 10_000, 1, 999);
    assert_eq!(
        tail(&c, 1),
        vec![MetadataRecord::RegisterBroker {
            broker_id: 1,
            broker_epoch: epoch
        }]
    );
    assert_eq!(partition(&c, 0), before);
    // Kafka 4.0 then elects it from the ISR it never left, whatever its log lost.
    heartbeat(&mut c, 10_100, 1, epoch);
    assert_eq!(partition(&c, 0).leader, Some(1));
}

#[test]
fn with_isr_and_elr_empty_the_last_known_leader_is_elected_uncleanly() {
    // Min ISR 1: losing a follower keeps the ELR empty; losing the last member makes
    // it the only ELR member and the last known leader.
    let mut c = cluster(elr_config(1), vec![topic("t", 1, 3)]);
    let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(partition(&c, 0), elr_reg(&[1], Some(1), &[], &[], 0, 1));
    heartbeat(&mut c, 5_000, 1, 0);
    timer(&mut c, 9_001);
    timer(&mut c, 14_001);
    assert_eq!(partition(&c, 0), elr_reg(&[], None, &[1], &[1], 1, 2));
    // Its unclean restart empties the ELR; Kafka 4.x's PartitionChangeBuilder then
    // elects the last known leader at once, uncleanly, though it is still fenced.
    let out = send(
        &mut c,
        15_000,
        NodeId::Broker(1),
        Request::BrokerRegistration(BrokerRegistrationRequest {
            broker_id: 1,
            incarnation_id: 999,
        }),
    );
    assert_eq!(
        history(&out),
        vec![Op::PartitionChange {
            partition: tp(0),
            leader: Some(1),
            leader_epoch: 2,
            isr: vec![1],
            elr: Vec::new(),
            unclean: true,
        }]
    );
    assert_eq!(partition(&c, 0), elr_reg(&[1], Some(1), &[], &[], 2, 3));
    assert_replay_matches(&c);
}
