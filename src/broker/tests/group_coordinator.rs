//! The group coordinator hosted by the broker: FindCoordinator and offset commits through replication.

use super::*;
use crate::actor::testing::deliver;

/// "my-group" hashes to `__consumer_offsets-12` of 50.
pub(super) const GROUP: &str = "my-group";

pub(super) fn offsets_records(
    leader: BrokerId,
    isr: &[BrokerId],
    epoch: i32,
) -> Vec<MetadataRecord> {
    let reg = MetadataRecord::PartitionChange(PartitionRegistration {
        tp: TopicPartition::new(OFFSETS_TOPIC, 12),
        replicas: vec![1, 2],
        isr: isr.to_vec(),
        leader: Some(leader),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
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

pub(super) fn group_config() -> BrokerConfig {
    BrokerConfig {
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::default()
    }
}

/// Carries messages between brokers 1 and 2 until none is left; returns what they
/// sent to clients.
pub(super) fn exchange(
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
        let out = deliver(b, now, from, message);
        queue.extend(out.sends.into_iter().map(|(t, m)| (to, t, m)));
    }
    panic!("brokers never went quiet");
}

pub(super) fn sent_by(broker: BrokerId, out: Outbox) -> Vec<(NodeId, NodeId, Message)> {
    let from = NodeId::Broker(broker);
    out.sends.into_iter().map(|(t, m)| (from, t, m)).collect()
}

pub(super) fn answer(msgs: &[(NodeId, Message)], correlation: u64) -> Option<Response> {
    msgs.iter().find_map(|(_, m)| match m {
        Message::Response {
            correlation_id,
            response,
        } if *correlation_id == correlation => Some(response.clone()),
        _ => None,
    })
}

pub(super) fn join(member_id: &str) -> Request {
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
