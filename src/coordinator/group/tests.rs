//! Unit tests of `coordinator::group`.

use super::*;
use crate::coordinator::shared::testing::complete_appends;

const GROUP: &str = "g";
const SESSION: u64 = 10_000;
const REBALANCE: u64 = 30_000;

/// A coordinator of partition 0 with Kafka's defaults (3 s initial delay).
fn coordinator(bugs: Bugs) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(&BrokerConfig::default(), bugs, 1, 1);
    c.load(0, 0, &[]);
    c
}

fn reply(client: u32, correlation_id: u64) -> ReplyTo {
    ReplyTo {
        client: NodeId::Consumer(client),
        correlation_id,
    }
}

fn subscription(topics: &[&str]) -> Vec<(Arc<str>, Subscription)> {
    vec![(
        Arc::from("range"),
        Subscription {
            topics: topics.iter().map(|t| Arc::from(*t)).collect(),
            owned_partitions: vec![],
        },
    )]
}

fn join_request(member_id: &str, instance: Option<&str>) -> Request {
    Request::JoinGroup(JoinGroupRequest {
        group_id: Arc::from(GROUP),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        member_id: Arc::from(member_id),
        group_instance_id: instance.map(Arc::from),
        protocols: subscription(&["orders"]),
    })
}

/// The coordinator's pretend log: completes every append at once (the high
/// watermark passed it) and keeps the batches for a later load.
#[derive(Default)]
struct Harness {
    log: Vec<Bytes>,
}

impl Harness {
    fn run(
        &mut self,
        c: &mut GroupCoordinator,
        now: Millis,
        out: CoordinatorOutput,
    ) -> Vec<(ReplyTo, Response)> {
        complete_appends(
            &mut self.log,
            out,
            &mut |o: CoordinatorOutput| (o.responses, o.appends),
            &mut |id| c.on_append_complete(now, id, ErrorCode::None),
        )
    }

    fn call(
        &mut self,
        c: &mut GroupCoordinator,
        now: Millis,
        to: ReplyTo,
        request: Request,
    ) -> Vec<(ReplyTo, Response)> {
        let out = c.handle(now, 0, to, request);
        self.run(c, now, out)
    }

    fn timer(&mut self, c: &mut GroupCoordinator, now: Millis) -> Vec<(ReplyTo, Response)> {
        let out = c.on_timer(now);
        self.run(c, now, out)
    }
}

fn join_answer(responses: &[(ReplyTo, Response)], to: ReplyTo) -> JoinGroupResponse {
    responses
        .iter()
        .find_map(|(r, resp)| match resp {
            Response::JoinGroup(j) if *r == to => Some(j.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join answer to {to:?} in {responses:?}"))
}

fn sync_answer(responses: &[(ReplyTo, Response)], to: ReplyTo) -> SyncGroupResponse {
    responses
        .iter()
        .find_map(|(r, resp)| match resp {
            Response::SyncGroup(s) if *r == to => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync answer to {to:?} in {responses:?}"))
}

fn heartbeat(
    h: &mut Harness,
    c: &mut GroupCoordinator,
    now: Millis,
    member: &str,
    generation: i32,
) -> ErrorCode {
    let req = Request::Heartbeat(HeartbeatRequest {
        group_id: Arc::from(GROUP),
        generation_id: generation,
        member_id: Arc::from(member),
        group_instance_id: None,
    });
    match &h.call(c, now, reply(99, 0), req)[..] {
        [(_, Response::Heartbeat(r))] => r.error,
        other => panic!("{other:?}"),
    }
}

fn sync_request(member: &str, generation: i32, assignments: &[(&str, u32)]) -> Request {
    Request::SyncGroup(SyncGroupRequest {
        group_id: Arc::from(GROUP),
        generation_id: generation,
        member_id: Arc::from(member),
        group_instance_id: None,
        assignments: assignments
            .iter()
            .map(|(m, p)| (Arc::from(*m), vec![TopicPartition::new("orders", *p)]))
            .collect(),
    })
}

fn commit_request(member: &str, generation: i32, offset: Offset) -> Request {
    Request::OffsetCommit(OffsetCommitRequest {
        group_id: Arc::from(GROUP),
        generation_id: generation,
        member_id: Arc::from(member),
        group_instance_id: None,
        offsets: vec![CommittedOffset {
            tp: TopicPartition::new("orders", 0),
            offset,
            leader_epoch: 0,
        }],
    })
}

fn commit_errors(responses: &[(ReplyTo, Response)]) -> Vec<ErrorCode> {
    responses
        .iter()
        .filter_map(|(_, r)| match r {
            Response::OffsetCommit(c) => Some(c.partitions[0].1),
            _ => None,
        })
        .collect()
}

/// Client `client` joins dynamically: `MEMBER_ID_REQUIRED`, then the join with the
/// new id. Returns the member id and the responses of the second join.
fn join_dynamic(
    h: &mut Harness,
    c: &mut GroupCoordinator,
    now: Millis,
    client: u32,
) -> (Arc<str>, Vec<(ReplyTo, Response)>) {
    let first = h.call(c, now, reply(client, 1), join_request("", None));
    let j = join_answer(&first, reply(client, 1));
    assert_eq!(j.error, ErrorCode::MemberIdRequired);
    let responses = h.call(c, now, reply(client, 2), join_request(&j.member_id, None));
    (j.member_id, responses)
}

/// Consumers 0 and 1 in a `Stable` generation 1: consumer 0 leads, owns
/// `orders-0`; consumer 1 owns `orders-1`.
fn stable_pair(h: &mut Harness, c: &mut GroupCoordinator) -> (Arc<str>, Arc<str>) {
    let (a, _) = join_dynamic(h, c, 0, 0);
    let (b, _) = join_dynamic(h, c, 100, 1);
    assert!(
        h.timer(c, 3_000).is_empty(),
        "a second member extends the initial delay"
    );
    let responses = h.timer(c, 6_000);
    let (ja, jb) = (
        join_answer(&responses, reply(0, 2)),
        join_answer(&responses, reply(1, 2)),
    );
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    assert_eq!(ja.leader, a);
    let sync = h.call(c, 6_010, reply(1, 3), sync_request(&b, 1, &[]));
    assert!(sync.is_empty(), "a follower waits for the leader");
    let assign = [(&*a, 0), (&*b, 1)];
    let sync = h.call(c, 6_020, reply(0, 3), sync_request(&a, 1, &assign));
    assert_eq!(
        sync_answer(&sync, reply(1, 3)).assignment,
        vec![TopicPartition::new("orders", 1)]
    );
    (a, b)
}

fn state(c: &GroupCoordinator) -> (GroupState, i32, usize) {
    let g = &c.groups()[0];
    (g.state, g.generation, g.members.len())
}

#[test]
fn member_id_required_then_join_after_the_initial_delay() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (id, responses) = join_dynamic(&mut h, &mut c, 0, 3);
    assert_eq!(&*id, "consumer-3-1.1.1");
    assert!(responses.is_empty(), "the first rebalance waits");
    assert_eq!(c.next_timer(), Some(3_000));
    assert!(h.timer(&mut c, 2_999).is_empty());
    let j = join_answer(&h.timer(&mut c, 3_000), reply(3, 2));
    assert_eq!(
        (j.error, j.generation_id, j.leader.clone(), j.members.len()),
        (ErrorCode::None, 1, id.clone(), 1)
    );
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&c), (GroupState::CompletingRebalance, 1, 1));
    // Session timeouts outside the broker's range are refused.
    let mut bad = join_request("", None);
    if let Request::JoinGroup(j) = &mut bad {
        j.session_timeout_ms = 5_999;
    }
    let r = h.call(&mut c, 3_001, reply(4, 1), bad);
    assert_eq!(
        join_answer(&r, reply(4, 1)).error,
        ErrorCode::InvalidSessionTimeout
    );
}

#[test]
fn leader_gets_subscriptions_and_sync_hands_out_assignments() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (a, _) = join_dynamic(&mut h, &mut c, 0, 0);
    let (b, _) = join_dynamic(&mut h, &mut c, 100, 1);
    assert!(h.timer(&mut c, 3_000).is_empty());
    let responses = h.timer(&mut c, 6_000);
    let (ja, jb) = (
        join_answer(&responses, reply(0, 2)),
        join_answer(&responses, reply(1, 2)),
    );
    let members: Vec<&str> = ja.members.iter().map(|m| &*m.member_id).collect();
    assert_eq!(members, vec![&*a, &*b]);
    assert_eq!(ja.members[1].subscription.topics, vec![Arc::from("orders")]);
    assert!(jb.members.is_empty(), "only the leader gets the members");
    assert_eq!(jb.leader, a);
    // Before the leader's SyncGroup, a commit is refused.
    let r = h.call(&mut c, 6_001, reply(1, 9), commit_request(&b, 1, 5));
    assert_eq!(commit_errors(&r), vec![ErrorCode::RebalanceInProgress]);
    let sync = h.call(&mut c, 6_010, reply(1, 3), sync_request(&b, 1, &[]));
    assert!(sync.is_empty());
    let sync = h.call(
        &mut c,
        6_020,
        reply(0, 3),
        sync_request(&a, 1, &[(&a, 0), (&b, 1)]),
    );
    assert_eq!(
        sync_answer(&sync, reply(0, 3)).assignment,
        vec![TopicPartition::new("orders", 0)]
    );
    assert_eq!(
        sync_answer(&sync, reply(1, 3)).assignment,
        vec![TopicPartition::new("orders", 1)]
    );
    assert_eq!(state(&c), (GroupState::Stable, 1, 2));
    assert_eq!(h.log.len(), 1, "the group record");
    // Wrong generation and unknown members.
    let r = h.call(&mut c, 6_030, reply(1, 4), sync_request(&b, 0, &[]));
    assert_eq!(
        sync_answer(&r, reply(1, 4)).error,
        ErrorCode::IllegalGeneration
    );
    let r = h.call(&mut c, 6_030, reply(1, 5), sync_request("nobody", 1, &[]));
    assert_eq!(
        sync_answer(&r, reply(1, 5)).error,
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        heartbeat(&mut h, &mut c, 6_040, &b, 0),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        heartbeat(&mut h, &mut c, 6_040, "nobody", 1),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(heartbeat(&mut h, &mut c, 6_040, &b, 1), ErrorCode::None);
}

#[test]
fn a_new_member_rebalances_and_members_not_rejoining_are_removed() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (a, b) = stable_pair(&mut h, &mut c);
    let (x, responses) = join_dynamic(&mut h, &mut c, 7_000, 2);
    assert!(responses.is_empty());
    assert_eq!(state(&c).0, GroupState::PreparingRebalance);
    assert_eq!(
        heartbeat(&mut h, &mut c, 7_100, &a, 1),
        ErrorCode::RebalanceInProgress
    );
    let r = h.call(&mut c, 7_100, reply(0, 5), sync_request(&a, 1, &[]));
    assert_eq!(
        sync_answer(&r, reply(0, 5)).error,
        ErrorCode::RebalanceInProgress
    );
    // Commits of the current generation are still taken while preparing (Kafka lets
    // members commit before they give their partitions up).
    let r = h.call(&mut c, 7_150, reply(0, 6), commit_request(&a, 1, 7));
    assert_eq!(commit_errors(&r), vec![ErrorCode::None]);
    assert!(h
        .call(&mut c, 7_200, reply(0, 7), join_request(&a, None))
        .is_empty());
    // b keeps heartbeating but never rejoins: the rebalance timeout (30 s from
    // 7 s) removes it.
    for t in (10_000..37_000).step_by(3_000) {
        assert_eq!(
            heartbeat(&mut h, &mut c, t, &b, 1),
            ErrorCode::RebalanceInProgress
        );
        assert!(h.timer(&mut c, t).is_empty());
    }
    assert_eq!(c.next_timer(), Some(37_000));
    let responses = h.timer(&mut c, 37_000);
    let ja = join_answer(&responses, reply(0, 7));
    assert_eq!((ja.generation_id, ja.leader.clone()), (2, a.clone()));
    let members: Vec<&str> = ja.members.iter().map(|m| &*m.member_id).collect();
    assert_eq!(members, vec![&*a, &*x]);
    assert_eq!(join_answer(&responses, reply(2, 2)).generation_id, 2);
    assert_eq!(
        heartbeat(&mut h, &mut c, 37_001, &b, 1),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(state(&c), (GroupState::CompletingRebalance, 2, 2));
}

fn expire_b(bugs: Bugs) -> (GroupCoordinator, Arc<str>) {
    let (mut h, mut c) = (Harness::default(), coordinator(bugs));
    let (a, _b) = stable_pair(&mut h, &mut c);
    // Only a heartbeats; b's session (10 s from its SyncGroup at 6.01 s) runs out.
    for t in (7_000..=16_000).step_by(3_000) {
        assert_eq!(heartbeat(&mut h, &mut c, t, &a, 1), ErrorCode::None);
        h.timer(&mut c, t);
    }
    h.timer(&mut c, 16_020);
    (c, a)
}

#[test]
fn a_silent_member_is_evicted_and_the_group_rebalances() {
    let (mut c, a) = expire_b(Bugs::default());
    assert_eq!(state(&c), (GroupState::PreparingRebalance, 1, 1));
    let mut h = Harness::default();
    assert_eq!(
        heartbeat(&mut h, &mut c, 16_020, &a, 1),
        ErrorCode::RebalanceInProgress
    );
    // a rejoins alone: the rebalance completes at once.
    let r = h.call(&mut c, 16_030, reply(0, 8), join_request(&a, None));
    assert_eq!(join_answer(&r, reply(0, 8)).generation_id, 2);
}

#[test]
fn no_session_expiry_bug_keeps_silent_members() {
    let (c, _) = expire_b(Bugs::of(&[Bug::NoSessionExpiry]));
    assert_eq!(state(&c), (GroupState::Stable, 1, 2));
    assert_eq!(c.next_timer(), None, "no session deadline is watched");
}

/// a and c in generation 2 (b left); a commits with generation 1.
fn commit_with_old_generation(bugs: Bugs) -> (Vec<ErrorCode>, GroupCoordinator) {
    let (mut h, mut c) = (Harness::default(), coordinator(bugs));
    let (a, b) = stable_pair(&mut h, &mut c);
    let leave = Request::LeaveGroup(LeaveGroupRequest {
        group_id: Arc::from(GROUP),
        members: vec![(b.clone(), None)],
        reason: None,
    });
    let r = h.call(&mut c, 7_000, reply(1, 9), leave);
    assert!(matches!(
        &r[..],
        [(
            _,
            Response::LeaveGroup(LeaveGroupResponse {
                error: ErrorCode::None
            })
        )]
    ));
    assert_eq!(state(&c).0, GroupState::PreparingRebalance);
    let r = h.call(&mut c, 7_010, reply(0, 10), join_request(&a, None));
    assert_eq!(join_answer(&r, reply(0, 10)).generation_id, 2);
    h.call(&mut c, 7_020, reply(0, 11), sync_request(&a, 2, &[(&a, 0)]));
    assert_eq!(state(&c), (GroupState::Stable, 2, 1));
    let r = h.call(&mut c, 7_030, reply(0, 12), commit_request(&a, 1, 42));
    (commit_errors(&r), c)
}

#[test]
fn a_commit_from_an_older_generation_is_fenced() {
    let (errors, c) = commit_with_old_generation(Bugs::default());
    assert_eq!(errors, vec![ErrorCode::IllegalGeneration]);
    assert!(c.committed_offsets().is_empty());
}

#[test]
fn commit_from_old_generation_bug_accepts_it() {
    let (errors, c) = commit_with_old_generation(Bugs::of(&[Bug::CommitFromOldGeneration]));
    assert_eq!(errors, vec![ErrorCode::None]);
    let key = (Arc::from(GROUP), TopicPartition::new("orders", 0));
    assert_eq!(c.committed_offsets()[&key], 42);
}

#[test]
fn a_commit_is_answered_once_its_records_are_committed() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (a, _) = stable_pair(&mut h, &mut c);
    let out = c.handle(7_000, 0, reply(0, 20), commit_request(&a, 1, 5));
    assert!(
        out.responses.is_empty(),
        "not before the high watermark passes it"
    );
    assert_eq!(out.appends.len(), 1);
    let fetch = OffsetFetchRequest {
        require_stable: false,
        group_id: Arc::from(GROUP),
        partitions: vec![TopicPartition::new("orders", 0)],
    };
    assert!(
        c.offset_fetch(&fetch).offsets.is_empty(),
        "the cache waits too"
    );
    let done = c.on_append_complete(7_010, out.appends[0].id, ErrorCode::None);
    assert_eq!(commit_errors(&done.responses), vec![ErrorCode::None]);
    assert_eq!(c.offset_fetch(&fetch).offsets[0].offset, 5);
    // A commit that times out, or whose leader goes away, is not cached.
    for (error, answer) in [
        (ErrorCode::RequestTimedOut, ErrorCode::RequestTimedOut),
        (ErrorCode::NotLeaderOrFollower, ErrorCode::NotCoordinator),
        (
            ErrorCode::NotEnoughReplicas,
            ErrorCode::CoordinatorNotAvailable,
        ),
    ] {
        let out = c.handle(8_000, 0, reply(0, 21), commit_request(&a, 1, 9));
        let done = c.on_append_complete(13_000, out.appends[0].id, error);
        assert_eq!(commit_errors(&done.responses), vec![answer]);
        assert_eq!(c.offset_fetch(&fetch).offsets[0].offset, 5);
    }
    // A simple consumer may commit to an empty group only.
    let simple = commit_request("", -1, 3);
    let r = h.call(&mut c, 8_000, reply(5, 1), simple.clone());
    assert_eq!(commit_errors(&r), vec![ErrorCode::UnknownMemberId]);
    let mut other = simple;
    if let Request::OffsetCommit(o) = &mut other {
        o.group_id = Arc::from("simple");
    }
    let r = h.call(&mut c, 8_000, reply(5, 2), other);
    assert_eq!(commit_errors(&r), vec![ErrorCode::None]);
}

/// A static member (instance `i-0`, client 0) leads a `Stable` generation 1 with a
/// dynamic member (client 1).
fn static_pair(h: &mut Harness, c: &mut GroupCoordinator) -> (Arc<str>, Arc<str>) {
    let r = h.call(c, 0, reply(0, 1), join_request("", Some("i-0")));
    assert!(r.is_empty(), "a static member needs no MEMBER_ID_REQUIRED");
    let (b, _) = join_dynamic(h, c, 100, 1);
    assert!(
        h.timer(c, 3_000).is_empty(),
        "a second member extends the initial delay"
    );
    let responses = h.timer(c, 6_000);
    let a = join_answer(&responses, reply(0, 1)).member_id;
    assert_eq!(&*a, "i-0-1.1.1");
    h.call(c, 6_010, reply(1, 3), sync_request(&b, 1, &[]));
    h.call(
        c,
        6_020,
        reply(0, 3),
        sync_request(&a, 1, &[(&a, 0), (&b, 1)]),
    );
    assert_eq!(state(c), (GroupState::Stable, 1, 2));
    (a, b)
}

#[test]
fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (old, _) = static_pair(&mut h, &mut c);
    let r = h.call(&mut c, 8_000, reply(0, 30), join_request("", Some("i-0")));
    let j = join_answer(&r, reply(0, 30));
    assert_eq!((j.error, j.generation_id), (ErrorCode::None, 1));
    assert_ne!(j.member_id, old);
    assert_eq!(j.leader, j.member_id, "it was the leader and still is");
    assert!(j.members.is_empty(), "no new assignment is asked for");
    let r = h.call(
        &mut c,
        8_010,
        reply(0, 31),
        sync_request(&j.member_id, 1, &[]),
    );
    assert_eq!(
        sync_answer(&r, reply(0, 31)).assignment,
        vec![TopicPartition::new("orders", 0)]
    );
    assert_eq!(state(&c), (GroupState::Stable, 1, 2));
    // The old member id is fenced.
    let hb = Request::Heartbeat(HeartbeatRequest {
        group_id: Arc::from(GROUP),
        generation_id: 1,
        member_id: old.clone(),
        group_instance_id: Some(Arc::from("i-0")),
    });
    let r = h.call(&mut c, 8_020, reply(0, 32), hb);
    assert!(matches!(
        &r[..],
        [(
            _,
            Response::Heartbeat(HeartbeatResponse {
                error: ErrorCode::FencedInstanceId
            })
        )]
    ));
}

#[test]
fn a_second_instance_with_the_same_id_fences_the_first() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (first, b) = static_pair(&mut h, &mut c);
    // A rebalance is under way and the first instance waits in JoinGroup.
    join_dynamic(&mut h, &mut c, 7_000, 2);
    assert!(h
        .call(
            &mut c,
            7_010,
            reply(0, 40),
            join_request(&first, Some("i-0"))
        )
        .is_empty());
    // A second process with the same group.instance.id takes over.
    let r = h.call(&mut c, 7_020, reply(7, 1), join_request("", Some("i-0")));
    assert_eq!(
        join_answer(&r, reply(0, 40)).error,
        ErrorCode::FencedInstanceId
    );
    let mut commit = commit_request(&first, 1, 11);
    if let Request::OffsetCommit(o) = &mut commit {
        o.group_instance_id = Some(Arc::from("i-0"));
    }
    let r = h.call(&mut c, 7_030, reply(0, 41), commit);
    assert_eq!(commit_errors(&r), vec![ErrorCode::FencedInstanceId]);
    // The rebalance goes on with the second instance.
    // Every member has rejoined when b does: no need to wait.
    let r = h.call(&mut c, 7_040, reply(1, 42), join_request(&b, None));
    let second = join_answer(&r, reply(7, 1));
    assert_eq!((second.generation_id, second.members.len()), (2, 3));
    assert!(second.member_id.starts_with("i-0-"));
}

#[test]
fn a_new_coordinator_loads_groups_and_offsets_from_the_log() {
    let (mut h, mut c) = (Harness::default(), coordinator(Bugs::default()));
    let (a, b) = static_pair(&mut h, &mut c);
    h.call(&mut c, 7_000, reply(0, 50), commit_request(&a, 1, 17));
    // A waiting join is answered NOT_COORDINATOR when the partition moves away.
    let (_, _) = join_dynamic(&mut h, &mut c, 7_100, 2);
    let out = c.unload(0);
    assert_eq!(
        join_answer(&out.responses, reply(2, 2)).error,
        ErrorCode::NotCoordinator
    );
    assert!(c.groups().is_empty() && !c.is_loaded(0));

    let mut moved = GroupCoordinator::new(&BrokerConfig::default(), Bugs::default(), 2, 1);
    moved.load(50_000, 0, &h.log);
    assert_eq!(state(&moved), (GroupState::Stable, 1, 2));
    let key = (Arc::from(GROUP), TopicPartition::new("orders", 0));
    assert_eq!(moved.committed_offsets()[&key], 17);
    let summary = &moved.groups()[0];
    assert_eq!(summary.leader.as_ref(), Some(&a));
    let of = |id: &Arc<str>| {
        let m = summary.members.iter().find(|m| m.member_id == *id);
        m.map(|m| (m.group_instance_id.clone(), m.assignment.clone()))
    };
    assert_eq!(
        of(&a),
        Some((
            Some(Arc::from("i-0")),
            vec![TopicPartition::new("orders", 0)]
        ))
    );
    assert_eq!(of(&b), Some((None, vec![TopicPartition::new("orders", 1)])));
    // Sessions restart at load time; the static member is still known.
    let mut h2 = Harness::default();
    assert_eq!(
        heartbeat(&mut h2, &mut moved, 55_000, &b, 1),
        ErrorCode::None
    );
    let r = h2.call(
        &mut moved,
        55_000,
        reply(0, 51),
        join_request("", Some("i-0")),
    );
    assert_eq!(join_answer(&r, reply(0, 51)).generation_id, 1);
    assert!(join_answer(&r, reply(0, 51))
        .member_id
        .starts_with("i-0-2.1."));
}

#[test]
fn records_round_trip() {
    let offset = CommittedOffset {
        tp: TopicPartition::new("orders", 3),
        offset: 99,
        leader_epoch: 4,
    };
    let decoded = decode_record(
        &encode_offset_key("g", &offset.tp),
        &encode_offset_value(&offset, 7),
    );
    assert_eq!(
        decoded,
        Ok(OffsetsRecord::Offset {
            group_id: Arc::from("g"),
            offset
        })
    );
    let value = GroupValue {
        generation: 3,
        protocol: Some(Arc::from("range")),
        leader: None,
        state_timestamp: 12,
        members: vec![MemberValue {
            member_id: Arc::from("m"),
            group_instance_id: Some(Arc::from("i")),
            client_id: Arc::from("consumer-0"),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            protocol_subscription: Subscription {
                topics: vec![Arc::from("a"), Arc::from("b")],
                owned_partitions: vec![
                    TopicPartition::new("a", 1),
                    TopicPartition::new("b", 0),
                    TopicPartition::new("a", 0),
                ],
            },
            assignment: vec![TopicPartition::new("a", 1), TopicPartition::new("a", 2)],
        }],
    };
    let key = encode_group_key("g");
    let bytes = encode_group_value(&value);
    assert_eq!(&bytes[..2], &[0, 3], "value version 3");
    assert_eq!(
        decode_record(&key, &bytes),
        Ok(OffsetsRecord::Group {
            group_id: Arc::from("g"),
            value
        })
    );
    assert!(decode_record(&key, &bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn groups_map_to_partitions_with_javas_hash_code() {
    // Values of Java's "...".hashCode().
    assert_eq!(java_string_hash("my-group"), -1_906_497_762);
    assert_eq!(java_string_hash("group"), 98_629_247);
    assert_eq!(java_string_hash(""), 0);
    // Utils.abs(-1906497762) % 50 = 12 (masking the sign bit would give 36).
    assert_eq!(partition_for_group("my-group", 50), 12);
    assert_eq!(partition_for_group("group", 50), 47);
    assert_eq!(partition_for_group("test-group", 50), 12);
    assert_eq!(partition_for_group("g", 50), 3);
    let spec = offsets_topic_spec(&BrokerConfig::default(), 2);
    assert_eq!(
        (&*spec.name, spec.partitions, spec.replication_factor),
        (OFFSETS_TOPIC, 50, 2)
    );
}
