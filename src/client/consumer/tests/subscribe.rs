//! Subscribe mode against a scripted group coordinator.

use super::*;
use crate::kafka::protocol::{
    CoordinatorType, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupMember,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, Subscription, SyncGroupResponse,
};

fn group_config() -> ConsumerConfig {
    ConsumerConfig {
        group_id: Some("g".into()),
        auto_offset_reset: AutoOffsetReset::Earliest,
        ..ConsumerConfig::default()
    }
}

/// Requests of one API among `reqs`, exactly one expected.
/// Polls `c` at `now`: the requests it sent then, and the JoinGroup among them.
fn poll_to_rejoin(
    c: &mut Consumer,
    out: &mut Outbox,
    now: Millis,
) -> (Vec<(BrokerId, u64, Request)>, JoinGroupRequest) {
    c.poll(now, out);
    let reqs = take(out);
    let Request::JoinGroup(j) = one(&reqs, "JoinGroup").2.clone() else {
        unreachable!()
    };
    (reqs, j)
}

/// The events of losing generation 1's `t-0`.
fn lost_generation_1() -> Vec<GroupEvent> {
    vec![GroupEvent::Revoked {
        generation: 1,
        partitions: vec![tp(0)],
        lost: true,
    }]
}

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

/// Runs the timer of the first heartbeat (at 3004: joined at 4); returns the
/// Heartbeat sent then, the only one.
fn first_heartbeat(c: &mut Consumer, out: &mut Outbox) -> (BrokerId, u64, HeartbeatRequest) {
    c.on_timer(3_004, out);
    let reqs = take(out);
    let hb = one(&reqs, "Heartbeat");
    let Request::Heartbeat(h) = &hb.2 else {
        unreachable!()
    };
    (hb.0, hb.1, h.clone())
}

/// Coordinator 2 answers the Heartbeat `cid` at `now` with `error`.
fn answer_heartbeat(c: &mut Consumer, out: &mut Outbox, now: Millis, cid: u64, error: ErrorCode) {
    respond(c, now, 2, cid, heartbeat_answer(error), out);
}

/// The only OffsetCommit among `reqs`: its correlation id and request.
fn offset_commit(reqs: &[(BrokerId, u64, Request)]) -> (u64, OffsetCommitRequest) {
    let oc = one(reqs, "OffsetCommit");
    let Request::OffsetCommit(o) = &oc.2 else {
        unreachable!()
    };
    (oc.1, o.clone())
}

/// Coordinator 2 answers the OffsetCommit `o` (correlation id `cid`) at `now`:
/// `error` for each of its partitions.
fn answer_commit(
    c: &mut Consumer,
    out: &mut Outbox,
    now: Millis,
    (cid, o): (u64, &OffsetCommitRequest),
    error: ErrorCode,
) {
    respond(c, now, 2, cid, commit_answer(&o.offsets, error), out);
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

/// KIP-447: `ConsumerCoordinator.sendOffsetFetchRequest` asks for stable offsets
/// whatever the isolation level, so a `read_uncommitted` member (an exactly-once
/// pipeline over a non-transactional input) also waits out pending transactional
/// commits rather than starting from the offsets committed before them.
#[test]
fn members_ask_for_stable_offsets_whatever_their_isolation_and_retry_unstable_ones() {
    for isolation_level in [
        IsolationLevel::ReadUncommitted,
        IsolationLevel::ReadCommitted,
    ] {
        let config = ConsumerConfig {
            isolation_level,
            ..group_config()
        };
        let (mut c, mut out, (b, cid, f)) = stable(config, &[0]);
        assert!(f.require_stable, "KIP-447, {isolation_level:?}");
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
            poll_op(vec![read(3, 13), read(4, 14)], 6),
            poll_op(vec![read(5, 15)], 6),
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
    let (broker, cid, h) = first_heartbeat(&mut c, &mut out);
    assert_eq!((broker, h.generation_id, &*h.member_id), (2, 1, "m-1"));
    answer_heartbeat(&mut c, &mut out, 3_005, cid, ErrorCode::RebalanceInProgress);
    assert!(take(&mut out).is_empty(), "the rejoin waits for poll");
    // The next poll commits the consumed position first (onJoinPrepare) ...
    c.poll(3_100, &mut out);
    let reqs = take(&mut out);
    assert!(only(&reqs, "JoinGroup").is_empty(), "not before the commit");
    let (cid, o) = offset_commit(&reqs);
    assert_eq!((o.generation_id, &*o.member_id), (1, "m-1"));
    assert_eq!(o.offsets, vec![committed(0, 2, 0)]);
    answer_commit(&mut c, &mut out, 3_101, (cid, &o), ErrorCode::None);
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
    let (_, cid, _) = first_heartbeat(&mut c, &mut out);
    answer_heartbeat(&mut c, &mut out, 3_005, cid, ErrorCode::NotCoordinator);
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
    let (reqs, j) = poll_to_rejoin(&mut c, &mut out, 20_001);
    assert_eq!(&*j.member_id, "", "a new member");
    assert!(
        only(&reqs, "OffsetCommit").is_empty(),
        "no generation to commit with"
    );
    assert_eq!(c.drain_events(), lost_generation_1());
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
    let (_, j) = poll_to_rejoin(&mut c, &mut out, 30_001);
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
    let (cid, o) = offset_commit(&reqs);
    assert_eq!(
        (o.generation_id, o.offsets.clone()),
        (1, vec![committed(0, 4, -1)])
    );
    answer_commit(
        &mut c,
        &mut out,
        21,
        (cid, &o),
        ErrorCode::IllegalGeneration,
    );
    let events = c.drain_events();
    assert!(
        matches!(&events[..], [GroupEvent::CommitFailed { id: i, error, invoked_ms: 20, generation: 1 }] if *i == id && error.starts_with("CommitFailedException")),
        "{events:?}"
    );
    assert_eq!(c.generation(), Some(-1));
    let (_, j) = poll_to_rejoin(&mut c, &mut out, 22);
    assert_eq!(
        &*j.member_id, "m-1",
        "ILLEGAL_GENERATION keeps the member id"
    );
    assert_eq!(c.drain_events(), lost_generation_1());
}

/// Kafka Streams re-initializes a task it closed dirty from the committed
/// offsets (`StreamTask`: `mainConsumer.committed()` then `seek`): the local
/// positions are dropped, an `OffsetFetch` (`require_stable`, KIP-447) asks
/// for every assigned partition and its answer sets them;
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
    let (cid, o) = offset_commit(&reqs);
    answer_commit(&mut c, &mut out, 21, (cid, &o), ErrorCode::UnknownMemberId);
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
    let (cid, o) = offset_commit(&reqs);
    answer_commit(
        &mut c,
        &mut out,
        21,
        (cid, &o),
        ErrorCode::CoordinatorLoadInProgress,
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
    let (_, cid, _) = first_heartbeat(&mut c, &mut out);
    answer_heartbeat(&mut c, &mut out, 3_005, cid, ErrorCode::FencedInstanceId);
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
        let mut positions = Positions::default();
        let mut assigned: Vec<TopicPartition> = Vec::new();
        let mut assignments = 0;
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
                    deliver_any(&mut c, &mut out, now, &mut rng, &mut queue)
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
                _ => timers_or_wait(&mut c, &mut out, &mut now, 500),
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
                let check = |p: &TopicPartition, r: &ReadRecord| {
                    assert_eq!(r.value, value(p.partition, r.offset));
                };
                match positions.follow(seed, entry.op, check) {
                    None | Some(Op::ObserveHighWatermark { .. } | Op::FetchCommitted { .. }) => {}
                    Some(other) => panic!("unexpected {other:?}"),
                }
            }
            now += rng.gen_range(0..3);
        }
        assert!(
            assignments > 1 && positions.polled > 0,
            "seed {seed}: rebalanced and read"
        );
    }
}
