//! Kafka's classic group coordinator (`GroupCoordinator` + `GroupMetadataManager`), sans-IO.
//!
//! A broker runs one [`GroupCoordinator`] for every group whose `__consumer_offsets`
//! partition it leads. Groups go through Kafka's states ([`GroupState`]): `Empty`,
//! `PreparingRebalance` (members rejoin; the first rebalance of an empty group waits
//! `group.initial.rebalance.delay.ms` for more), `CompletingRebalance` (the leader
//! computes the assignment and sends it in `SyncGroup`) and `Stable`. A group that is
//! removed (its partition unloaded) is simply dropped, which is Kafka's `Dead`.
//!
//! The coordinator does no IO: each call takes the time and a request and returns a
//! [`CoordinatorOutput`]: responses to send now (including deferred `JoinGroup` and
//! `SyncGroup` answers that became ready, addressed by the [`ReplyTo`] the broker gave
//! with the request) and batches to append to `__consumer_offsets`. The broker appends
//! them through its leader path with `acks=all` semantics and calls
//! [`GroupCoordinator::on_append_complete`] once the high watermark passes them (or the
//! append failed or timed out after `offsets.commit.timeout.ms`); only then is an offset
//! commit answered and the offsets cache updated, and only then does a group whose leader
//! sent its assignment become `Stable`.
//!
//! Kafka's rules followed here: KIP-394 (a first `JoinGroup` without a member id gets
//! `MEMBER_ID_REQUIRED` and a new id), KIP-345 static membership (a known
//! `group.instance.id` joining without a member id replaces and fences the old member;
//! in a `Stable` group with an unchanged subscription it gets its previous assignment
//! without a rebalance), session timeouts per member (KIP-62), generation fencing of
//! `SyncGroup`, `Heartbeat` and `OffsetCommit`, and simple-consumer commits (generation
//! -1, empty member id) to `Empty` groups. Differences: member ids come from a counter
//! (`<client or instance id>-<broker>.<incarnation>.<counter>`) instead of a UUID; a
//! joining member with no protocol in common with the group gets `INVALID_REQUEST`
//! (Kafka: `INCONSISTENT_GROUP_PROTOCOL`, not in [`ErrorCode`]); groups and offsets never
//! expire (no `offsets.retention.minutes`, no group deletion, so no tombstones); the
//! pending-sync timeout of recent Kafka versions is not modelled.
//!
//! # Record format of `__consumer_offsets`
//!
//! Kafka's own schemas (big-endian; `string` = i16 length + UTF-8, nullable string
//! length -1 for null; `bytes` = i32 length; arrays = i32 count), one record per key in
//! an ordinary record batch v2 with producer id -1:
//!
//! - offset commit: key v1 `(i16 1, string group, string topic, i32 partition)`,
//!   value v3 `(i16 3, i64 offset, i32 leader_epoch, string metadata "", i64
//!   commit_timestamp)`. One batch per `OffsetCommit` request.
//! - group metadata: key v2 `(i16 2, string group)`, value v3 `(i16 3, string
//!   protocol_type "consumer", i32 generation, nullable string protocol, nullable string
//!   leader, i64 current_state_timestamp, members[string member_id, nullable string
//!   group_instance_id, string client_id, string client_host "/sim", i32
//!   rebalance_timeout, i32 session_timeout, bytes subscription, bytes assignment])`,
//!   where the subscription is the consumer protocol's v1 (`i16 1, topics[string],
//!   nullable bytes user_data, owned_partitions[string topic, partitions[i32]]`) and the
//!   assignment its v0 (`i16 0, [string topic, partitions[i32]], nullable bytes
//!   user_data`). Written when the leader's `SyncGroup` completes a rebalance, when a
//!   static member is replaced without a rebalance, and when a rebalance leaves the
//!   group empty (no members: the "group is empty" record).
//!
//! Loading a partition replays its log up to the log end offset in order: the last
//! offset record per partition wins; the last group record sets generation, protocol,
//! leader and members (`Stable` with members, else `Empty`), and every loaded member's
//! session starts at load time.
//!
//! # What the host must do
//!
//! Create `__consumer_offsets` as an ordinary topic before clients use groups:
//! [`offsets_topic_spec`] gives the spec (partitions = `offsets.topic.num.partitions`,
//! replication factor = min(`offsets.topic.replication.factor`, brokers)).

use crate::actor::WallClock;
use crate::bugs::{Bug, Bugs};
use crate::coordinator::shared::*;
use crate::history::RebalanceCause;
use crate::kafka::config::BrokerConfig;
use crate::kafka::metadata::TopicSpec;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::RecordBatch;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod records;
use records::*;

mod state;
use state::*;

mod offsets;

/// The internal topic that stores groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The only protocol type of the classic groups here.
const PROTOCOL_TYPE: &str = "consumer";
/// Bound on groups per coordinator.
const MAX_GROUPS: usize = 100_000;
/// Bound on members (joined and pending) per group.
const MAX_MEMBERS: usize = 10_000;
/// Bound on committed offsets per group.
const MAX_OFFSETS_PER_GROUP: usize = 1_000_000;
/// Bound on appends waiting for the high watermark.
const MAX_PENDING_APPENDS: usize = 100_000;

/// The `__consumer_offsets` topic the host creates for a cluster of `brokers` brokers.
pub fn offsets_topic_spec(config: &BrokerConfig, brokers: usize) -> TopicSpec {
    TopicSpec {
        name: Arc::from(OFFSETS_TOPIC),
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config
            .offsets_topic_replication_factor
            .min(u32::try_from(brokers).unwrap_or(u32::MAX)),
        // Kafka's `GroupCoordinator.offsetsTopicConfigs` sets no `min.insync.replicas`:
        // the broker's applies.
        config: Default::default(),
    }
}

/// The group a group API request is about (`None` for other requests).
pub fn group_id(request: &Request) -> Option<&Arc<str>> {
    match request {
        Request::JoinGroup(r) => Some(&r.group_id),
        Request::SyncGroup(r) => Some(&r.group_id),
        Request::Heartbeat(r) => Some(&r.group_id),
        Request::LeaveGroup(r) => Some(&r.group_id),
        Request::OffsetCommit(r) => Some(&r.group_id),
        Request::OffsetFetch(r) => Some(&r.group_id),
        Request::TxnOffsetCommit(r) => Some(&r.group_id),
        _ => None,
    }
}

/// The answer `error` to a group API request (`None` for other requests).
pub fn error_response(request: &Request, error: ErrorCode) -> Option<Response> {
    Some(match request {
        Request::JoinGroup(r) => join_error(r.member_id.clone(), error),
        Request::SyncGroup(_) => sync_response(error, Vec::new()),
        Request::Heartbeat(_) => Response::Heartbeat(HeartbeatResponse { error }),
        Request::LeaveGroup(_) => Response::LeaveGroup(LeaveGroupResponse { error }),
        Request::OffsetCommit(r) => commit_response(&r.offsets, error),
        Request::OffsetFetch(_) => Response::OffsetFetch(OffsetFetchResponse {
            error,
            offsets: Vec::new(),
        }),
        Request::TxnOffsetCommit(r) => txn_commit_response(&r.offsets, error),
        _ => return None,
    })
}

fn join_error(member_id: Arc<str>, error: ErrorCode) -> Response {
    Response::JoinGroup(JoinGroupResponse {
        error,
        generation_id: -1,
        protocol_name: None,
        leader: Arc::from(""),
        member_id,
        members: Vec::new(),
    })
}

fn sync_response(error: ErrorCode, assignment: Vec<TopicPartition>) -> Response {
    Response::SyncGroup(SyncGroupResponse { error, assignment })
}

fn txn_commit_response(offsets: &[CommittedOffset], error: ErrorCode) -> Response {
    Response::TxnOffsetCommit(TxnOffsetCommitResponse {
        partitions: offsets.iter().map(|o| (o.tp.clone(), error)).collect(),
    })
}

fn commit_response(offsets: &[CommittedOffset], error: ErrorCode) -> Response {
    Response::OffsetCommit(OffsetCommitResponse {
        partitions: offsets.iter().map(|o| (o.tp.clone(), error)).collect(),
    })
}

/// What the coordinator asks of its broker after one call.
#[derive(Debug, Default)]
pub struct CoordinatorOutput {
    /// Answers to send now, in order.
    pub responses: Vec<(ReplyTo, Response)>,
    /// Batches to append as leader, in order.
    pub appends: Vec<CoordinatorAppend>,
    /// Rebalances begun, for the history.
    pub rebalances: Vec<PreparedRebalance>,
}

/// A rebalance the coordinator began (Kafka logs "Preparing to rebalance group ...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedRebalance {
    /// The group.
    pub group_id: Arc<str>,
    /// The generation the group leaves.
    pub generation: i32,
    /// What triggered it.
    pub cause: RebalanceCause,
    /// Kafka's reason text.
    pub reason: String,
}

impl CoordinatorOutput {
    fn respond(&mut self, to: ReplyTo, response: Response) {
        self.responses.push((to, response));
    }
}

/// Kafka's classic group states (`Dead` groups are removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; may hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

/// A group as the end-of-run snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// Its state.
    pub state: GroupState,
    /// Its generation.
    pub generation: i32,
    /// The leader's member id.
    pub leader: Option<Arc<str>>,
    /// Each member.
    pub members: Vec<MemberSummary>,
}

/// A member as the end-of-run snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSummary {
    /// Its member id.
    pub member_id: Arc<str>,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
    /// Its assigned partitions.
    pub assignment: Vec<TopicPartition>,
}

#[derive(Clone, Debug)]
struct Member {
    client_id: Arc<str>,
    group_instance_id: Option<Arc<str>>,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(Arc<str>, Subscription)>,
    assignment: Vec<TopicPartition>,
    awaiting_join: Option<ReplyTo>,
    awaiting_sync: Option<ReplyTo>,
    /// The session ends at this time unless a valid request arrives.
    session_deadline: Millis,
}

impl Member {
    fn subscription(&self, protocol: &str) -> Option<&Subscription> {
        self.protocols
            .iter()
            .find(|(p, _)| &**p == protocol)
            .map(|(_, s)| s)
    }

    fn refresh(&mut self, now: Millis) {
        self.session_deadline = now + self.session_timeout_ms;
    }
}

/// What to do when an append completes.
#[derive(Debug)]
enum AppendPurpose {
    /// An `OffsetCommit`: answer it and update the cache.
    Offsets {
        reply_to: ReplyTo,
        group_id: Arc<str>,
        offsets: Vec<CommittedOffset>,
    },
    /// The leader's assignment for `generation`: the group becomes `Stable`.
    Assignment {
        group_id: Arc<str>,
        generation: i32,
        assignments: BTreeMap<Arc<str>, Vec<TopicPartition>>,
    },
    /// A static member replaced without a rebalance (KIP-345): answer its `JoinGroup`.
    StaticRejoin {
        reply_to: ReplyTo,
        group_id: Arc<str>,
        instance_id: Arc<str>,
        old_member_id: Arc<str>,
        new_member_id: Arc<str>,
    },
    /// The group became empty: nothing waits for it.
    EmptyGroup,
    /// A `TxnOffsetCommit`: answer it; the offsets wait for the transaction's marker.
    TxnOffsets {
        reply_to: ReplyTo,
        group_id: Arc<str>,
        producer_id: i64,
        offsets: Vec<CommittedOffset>,
    },
}

/// Kafka's error mapping for a failed group record append.
fn group_store_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        _ => ErrorCode::CoordinatorNotAvailable,
    }
}

/// Kafka's error mapping for a failed offset commit append (`REQUEST_TIMED_OUT` stays).
fn commit_store_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        other => other,
    }
}

/// The group coordinator of one broker: every group of the `__consumer_offsets`
/// partitions it leads and has loaded.
#[derive(Debug)]
pub struct GroupCoordinator {
    bugs: Bugs,
    initial_rebalance_delay_ms: u64,
    min_session_timeout_ms: u64,
    max_session_timeout_ms: u64,
    /// `<broker>.<incarnation>`: makes member ids unique across coordinators.
    member_id_infix: String,
    next_member: u64,
    next_append: u64,
    loaded: BTreeSet<u32>,
    groups: BTreeMap<Arc<str>, Group>,
    appends: BTreeMap<u64, (u32, AppendPurpose)>,
    /// The broker's wall clock: its batches' CreateTime. Session and rebalance timeouts
    /// run on the timer's monotonic clock (Kafka's `SystemTimer`, `hiResClockMs`).
    clock: WallClock,
}

impl GroupCoordinator {
    /// The coordinator of broker `broker` in its process incarnation `incarnation`.
    pub fn new(config: &BrokerConfig, bugs: Bugs, broker: BrokerId, incarnation: u64) -> Self {
        assert!(
            config.group_min_session_timeout_ms <= config.group_max_session_timeout_ms,
            "group.min.session.timeout.ms above group.max.session.timeout.ms"
        );
        GroupCoordinator {
            bugs,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            member_id_infix: format!("{broker}.{incarnation}"),
            next_member: 1,
            next_append: 1,
            loaded: BTreeSet::new(),
            groups: BTreeMap::new(),
            appends: BTreeMap::new(),
            clock: WallClock::default(),
        }
    }

    /// Sets the broker's wall clock (see [`WallClock`]).
    pub fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    /// Whether the groups of `__consumer_offsets-<partition>` are loaded here.
    pub fn is_loaded(&self, partition: u32) -> bool {
        self.loaded.contains(&partition)
    }

    /// Becomes the coordinator of `partition`: replays `batches` (the partition's log,
    /// in offset order) into groups and offsets; member sessions start at `now`.
    pub fn load(&mut self, now: Millis, partition: u32, batches: &[Bytes]) {
        assert!(
            self.loaded.insert(partition),
            "__consumer_offsets-{partition} loaded twice"
        );
        for bytes in batches {
            let (batch, _) = RecordBatch::decode(bytes).expect("stored batches are valid");
            if batch.is_control() {
                // A transaction marker: the producer's pending offsets commit or go.
                let committed = batch.records.iter().any(|r| {
                    r.key
                        .as_ref()
                        .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 1)
                });
                self.on_txn_marker(partition, batch.producer_id, committed);
                continue;
            }
            let transactional = batch.is_transactional();
            for r in &batch.records {
                let key = r.key.as_ref().expect("coordinator records have keys");
                let value = r.value.as_ref().expect("coordinator records have values");
                match decode_record(key, value) {
                    Ok(OffsetsRecord::Offset { group_id, offset }) if transactional => {
                        let g = self.group_for_load(&group_id, partition);
                        let pending = g.pending_txn.entry(batch.producer_id).or_default();
                        pending.insert(offset.tp.clone(), offset);
                    }
                    Ok(OffsetsRecord::Offset { group_id, offset }) => {
                        let g = self.group_for_load(&group_id, partition);
                        g.offsets.insert(offset.tp.clone(), offset);
                        assert!(g.offsets.len() <= MAX_OFFSETS_PER_GROUP);
                    }
                    Ok(OffsetsRecord::Group { group_id, value }) => {
                        let g = self.group_for_load(&group_id, partition);
                        g.load_value(now, value);
                    }
                    Err(e) => panic!("undecodable record in __consumer_offsets-{partition}: {e}"),
                }
            }
        }
    }

    fn group_for_load(&mut self, group_id: &Arc<str>, partition: u32) -> &mut Group {
        assert!(self.groups.len() < MAX_GROUPS || self.groups.contains_key(group_id));
        let g = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(partition));
        assert_eq!(g.partition, partition, "group {group_id} in two partitions");
        g
    }

    /// Stops coordinating `partition` (leadership lost): its groups are dropped and every
    /// deferred answer for them is `NOT_COORDINATOR`.
    pub fn unload(&mut self, partition: u32) -> CoordinatorOutput {
        let mut out = CoordinatorOutput::default();
        if !self.loaded.remove(&partition) {
            return out;
        }
        for (_, g) in self.groups.extract_if(.., |_, g| g.partition == partition) {
            for (member_id, m) in g.members {
                if let Some(r) = m.awaiting_join {
                    out.respond(r, join_error(member_id, ErrorCode::NotCoordinator));
                }
                if let Some(r) = m.awaiting_sync {
                    out.respond(r, sync_response(ErrorCode::NotCoordinator, Vec::new()));
                }
            }
        }
        for (_, (_, purpose)) in self.appends.extract_if(.., |_, (p, _)| *p == partition) {
            match purpose {
                AppendPurpose::Offsets {
                    reply_to, offsets, ..
                } => out.respond(
                    reply_to,
                    commit_response(&offsets, ErrorCode::NotCoordinator),
                ),
                AppendPurpose::StaticRejoin {
                    reply_to,
                    new_member_id,
                    ..
                } => out.respond(
                    reply_to,
                    join_error(new_member_id, ErrorCode::NotCoordinator),
                ),
                AppendPurpose::TxnOffsets {
                    reply_to, offsets, ..
                } => out.respond(
                    reply_to,
                    txn_commit_response(&offsets, ErrorCode::NotCoordinator),
                ),
                AppendPurpose::Assignment { .. } | AppendPurpose::EmptyGroup => {}
            }
        }
        out
    }

    /// Handles a group API request (see [`group_id`]) for a group of `partition`, which
    /// must be loaded.
    pub fn handle(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        request: Request,
    ) -> CoordinatorOutput {
        assert!(
            self.is_loaded(partition),
            "__consumer_offsets-{partition} is not loaded"
        );
        let mut out = CoordinatorOutput::default();
        match request {
            Request::JoinGroup(r) => self.join_group(now, partition, reply_to, r, &mut out),
            Request::SyncGroup(r) => self.sync_group(now, reply_to, r, &mut out),
            Request::Heartbeat(r) => {
                let error = self.heartbeat(now, &r);
                out.respond(reply_to, Response::Heartbeat(HeartbeatResponse { error }));
            }
            Request::LeaveGroup(r) => self.leave_group(now, reply_to, r, &mut out),
            Request::OffsetCommit(r) => self.offset_commit(now, partition, reply_to, r, &mut out),
            Request::OffsetFetch(r) => {
                let response = self.offset_fetch(&r);
                out.respond(reply_to, Response::OffsetFetch(response));
            }
            Request::TxnOffsetCommit(r) => {
                self.txn_offset_commit(now, partition, reply_to, r, &mut out)
            }
            other => panic!("{} is not a group request", other.api_name()),
        }
        out
    }

    fn new_member_id(&mut self, base: &str) -> Arc<str> {
        let n = self.next_member;
        self.next_member += 1;
        Arc::from(format!("{base}-{}.{n}", self.member_id_infix))
    }

    fn append(
        &mut self,
        partition: u32,
        purpose: AppendPurpose,
        now: Millis,
        records: Vec<(Bytes, Bytes)>,
        out: &mut CoordinatorOutput,
    ) {
        self.append_as(partition, purpose, now, records, None, out);
    }

    /// [`Self::append`], as a transactional batch of `producer` when given.
    fn append_as(
        &mut self,
        partition: u32,
        purpose: AppendPurpose,
        now: Millis,
        records: Vec<(Bytes, Bytes)>,
        producer: Option<ProducerIdentity>,
        out: &mut CoordinatorOutput,
    ) {
        assert!(
            self.appends.len() < MAX_PENDING_APPENDS,
            "too many coordinator appends in flight"
        );
        let id = self.next_append;
        self.next_append += 1;
        self.appends.insert(id, (partition, purpose));
        out.appends.push(CoordinatorAppend {
            id,
            partition,
            batch: encode_batch(self.clock.timestamp(now), records, producer),
        });
    }

    // ------------------------------------------------------------ JoinGroup

    fn join_group(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        if req.session_timeout_ms < self.min_session_timeout_ms
            || req.session_timeout_ms > self.max_session_timeout_ms
        {
            out.respond(
                reply_to,
                join_error(req.member_id, ErrorCode::InvalidSessionTimeout),
            );
            return;
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                out.respond(
                    reply_to,
                    join_error(req.member_id, ErrorCode::UnknownMemberId),
                );
                return;
            }
            assert!(self.groups.len() < MAX_GROUPS, "too many groups");
            self.groups
                .insert(req.group_id.clone(), Group::new(partition));
        }
        let g = &self.groups[&req.group_id];
        if !g.supports(&req.protocols) {
            out.respond(
                reply_to,
                join_error(req.member_id, ErrorCode::InvalidRequest),
            );
            return;
        }
        let group_id = req.group_id.clone();
        if req.member_id.is_empty() {
            self.join_unknown_member(now, reply_to, req, out);
        } else {
            self.join_current_member(now, reply_to, req, out);
        }
        self.try_complete_join(now, &group_id, out);
    }

    /// Kafka's `doUnknownJoinGroup`.
    fn join_unknown_member(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        let base = match &req.group_instance_id {
            Some(instance) => instance.to_string(),
            None => reply_to.client.to_string(),
        };
        let member_id = self.new_member_id(&base);
        let g = self.groups.get_mut(&req.group_id).expect("created");
        assert!(
            g.members.len() + g.pending_members.len() < MAX_MEMBERS,
            "too many members in group {}",
            req.group_id
        );
        match req.group_instance_id.clone() {
            Some(instance) => match g.static_members.get(&instance).cloned() {
                Some(old) => {
                    self.replace_static_member(now, reply_to, req, instance, old, member_id, out)
                }
                None => self.add_member(now, reply_to, req, member_id, out),
            },
            None => {
                // KIP-394: the member must come back with this id.
                g.pending_members
                    .insert(member_id.clone(), now + req.session_timeout_ms);
                out.respond(reply_to, join_error(member_id, ErrorCode::MemberIdRequired));
            }
        }
    }

    /// Kafka's `doCurrentMemberJoinGroup`.
    fn join_current_member(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        if g.pending_members.remove(&req.member_id).is_some() {
            let member_id = req.member_id.clone();
            self.add_member(now, reply_to, req, member_id, out);
            return;
        }
        if g.is_fenced(&req.group_instance_id, &req.member_id) {
            out.respond(
                reply_to,
                join_error(req.member_id, ErrorCode::FencedInstanceId),
            );
            return;
        }
        let Some(m) = g.members.get(&req.member_id) else {
            out.respond(
                reply_to,
                join_error(req.member_id, ErrorCode::UnknownMemberId),
            );
            return;
        };
        let unchanged = m.protocols == req.protocols;
        let is_leader = g.leader.as_ref() == Some(&req.member_id);
        match g.state {
            GroupState::CompletingRebalance if unchanged => {
                // A retry of a join whose answer was lost: the same answer again.
                let resp = g.join_response(&req.member_id, is_leader);
                g.members
                    .get_mut(&req.member_id)
                    .expect("member")
                    .refresh(now);
                out.respond(reply_to, resp);
            }
            GroupState::Stable if unchanged && !is_leader => {
                let resp = g.join_response(&req.member_id, false);
                g.members
                    .get_mut(&req.member_id)
                    .expect("member")
                    .refresh(now);
                out.respond(reply_to, resp);
            }
            GroupState::Empty => {
                out.respond(
                    reply_to,
                    join_error(req.member_id, ErrorCode::UnknownMemberId),
                );
            }
            _ => self.update_member(now, reply_to, req, out),
        }
    }

    /// Kafka's `addMemberAndRebalance`.
    fn add_member(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        member_id: Arc<str>,
        out: &mut CoordinatorOutput,
    ) {
        let reason = format!(
            "Adding new member {member_id} with group instance id {}",
            req.group_instance_id.as_deref().unwrap_or("null")
        );
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        assert!(g.members.len() < MAX_MEMBERS);
        if g.state == GroupState::PreparingRebalance && g.generation == 0 {
            g.new_member_added = true;
        }
        if g.leader.is_none() {
            g.leader = Some(member_id.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), member_id.clone());
        }
        g.members.insert(
            member_id,
            Member {
                client_id: Arc::from(reply_to.client.to_string()),
                group_instance_id: req.group_instance_id,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Vec::new(),
                awaiting_join: Some(reply_to),
                awaiting_sync: None,
                session_deadline: now + req.session_timeout_ms,
            },
        );
        self.maybe_prepare_rebalance(
            now,
            &req.group_id,
            RebalanceCause::MemberJoined,
            reason,
            out,
        );
    }

    /// Kafka's `updateMemberAndRebalance`.
    fn update_member(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        let m = g.members.get_mut(&req.member_id).expect("member");
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        // A second join of the same member replaces the first (whose answer is dropped).
        m.awaiting_join = Some(reply_to);
        m.refresh(now);
        let reason = format!(
            "Updating metadata for member {} during {:?}",
            req.member_id, g.state
        );
        self.maybe_prepare_rebalance(
            now,
            &req.group_id,
            RebalanceCause::MemberRejoined,
            reason,
            out,
        );
    }

    /// Kafka's `updateStaticMemberAndRebalance`: `new` replaces `old` for `instance`.
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: JoinGroupRequest,
        instance: Arc<str>,
        old: Arc<str>,
        new: Arc<str>,
        out: &mut CoordinatorOutput,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        let mut m = g.members.remove(&old).expect("static members are members");
        // The old instance is fenced at once.
        if let Some(r) = m.awaiting_join.take() {
            out.respond(r, join_error(old.clone(), ErrorCode::FencedInstanceId));
        }
        if let Some(r) = m.awaiting_sync.take() {
            out.respond(r, sync_response(ErrorCode::FencedInstanceId, Vec::new()));
        }
        let unchanged = g.protocol.as_deref().is_some_and(|p| {
            m.subscription(p)
                == req
                    .protocols
                    .iter()
                    .find(|(q, _)| &**q == p)
                    .map(|(_, s)| s)
        });
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = Arc::from(reply_to.client.to_string());
        m.refresh(now);
        g.members.insert(new.clone(), m);
        g.static_members.insert(instance.clone(), new.clone());
        if g.leader.as_ref() == Some(&old) {
            g.leader = Some(new.clone());
        }
        match g.state {
            GroupState::Stable
                if unchanged && g.select_protocol() == *g.protocol.as_ref().expect("stable") =>
            {
                // No rebalance: persist the new member id, then answer.
                let record = g.record(&req.group_id, now, &g.current_assignments());
                let partition = g.partition;
                let purpose = AppendPurpose::StaticRejoin {
                    reply_to,
                    group_id: req.group_id.clone(),
                    instance_id: instance,
                    old_member_id: old,
                    new_member_id: new,
                };
                self.append(partition, purpose, now, vec![record], out);
            }
            _ => {
                g.members.get_mut(&new).expect("inserted").awaiting_join = Some(reply_to);
                let reason = format!(
                    "Updating metadata for static member {new} with instance id {instance} \
                     during {:?}",
                    g.state
                );
                self.maybe_prepare_rebalance(
                    now,
                    &req.group_id,
                    RebalanceCause::StaticMemberReplaced,
                    reason,
                    out,
                );
            }
        }
    }

    /// Kafka's `maybePrepareRebalance` + `prepareRebalance`.
    fn maybe_prepare_rebalance(
        &mut self,
        now: Millis,
        group_id: &Arc<str>,
        cause: RebalanceCause,
        reason: String,
        out: &mut CoordinatorOutput,
    ) {
        let g = self.groups.get_mut(group_id).expect("exists");
        match g.state {
            GroupState::PreparingRebalance => return,
            GroupState::CompletingRebalance => {
                reset_assignments(g, ErrorCode::RebalanceInProgress, out);
            }
            GroupState::Empty | GroupState::Stable => {}
        }
        out.rebalances.push(PreparedRebalance {
            group_id: group_id.clone(),
            generation: g.generation,
            cause,
            reason,
        });
        let timeout = g.rebalance_timeout_ms();
        g.join = Some(if g.state == GroupState::Empty {
            let delay = self.initial_rebalance_delay_ms;
            JoinPhase {
                deadline: now + delay,
                initial: Some((delay, timeout.saturating_sub(delay))),
            }
        } else {
            JoinPhase {
                deadline: now + timeout,
                initial: None,
            }
        });
        g.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase if every member has rejoined (not during an initial
    /// delay, which always runs its course).
    fn try_complete_join(&mut self, now: Millis, group_id: &Arc<str>, out: &mut CoordinatorOutput) {
        let g = &self.groups[group_id];
        if g.join.is_some_and(|j| j.initial.is_none()) && g.all_members_joined() {
            self.complete_join(now, group_id, out);
        }
    }

    /// The join phase's deadline passed (Kafka's `DelayedJoin` expiry).
    fn on_join_deadline(&mut self, now: Millis, group_id: &Arc<str>, out: &mut CoordinatorOutput) {
        let config_delay = self.initial_rebalance_delay_ms;
        let g = self.groups.get_mut(group_id).expect("exists");
        let join = g.join.expect("preparing");
        if let Some((delay, remaining)) = join.initial {
            if g.new_member_added && remaining > 0 {
                g.new_member_added = false;
                let next = config_delay.min(remaining);
                g.join = Some(JoinPhase {
                    deadline: now + next,
                    initial: Some((next, remaining.saturating_sub(delay))),
                });
                return;
            }
        }
        self.complete_join(now, group_id, out);
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, bump the
    /// generation, answer every waiting `JoinGroup` (the leader gets the members).
    fn complete_join(&mut self, now: Millis, group_id: &Arc<str>, out: &mut CoordinatorOutput) {
        let g = self.groups.get_mut(group_id).expect("exists");
        let gone: Vec<Arc<str>> = g
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id, out);
        }
        let joined =
            |g: &Group, id: &Arc<str>| g.members.get(id).is_some_and(|m| m.awaiting_join.is_some());
        if !g.members.is_empty() && !g.members.keys().any(|id| joined(g, id)) {
            // Only static members that have not rejoined: wait another rebalance timeout
            // for them to rejoin or for their sessions to expire.
            g.join = Some(JoinPhase {
                deadline: now + g.rebalance_timeout_ms(),
                initial: None,
            });
            return;
        }
        if !g.leader.as_ref().is_some_and(|l| joined(g, l)) {
            g.leader = g.members.keys().find(|id| joined(g, id)).cloned();
        }
        g.join = None;
        g.new_member_added = false;
        g.generation += 1;
        if g.members.is_empty() {
            g.state = GroupState::Empty;
            g.protocol = None;
            g.leader = None;
            let record = g.record(group_id, now, &BTreeMap::new());
            let partition = g.partition;
            self.append(partition, AppendPurpose::EmptyGroup, now, vec![record], out);
            return;
        }
        g.protocol = Some(g.select_protocol());
        g.state = GroupState::CompletingRebalance;
        let waiting: Vec<(Arc<str>, ReplyTo)> = g
            .members
            .iter()
            .filter_map(|(id, m)| m.awaiting_join.map(|r| (id.clone(), r)))
            .collect();
        for (id, r) in waiting {
            let is_leader = g.leader.as_ref() == Some(&id);
            out.respond(r, g.join_response(&id, is_leader));
            let m = g.members.get_mut(&id).expect("member");
            m.awaiting_join = None;
            m.refresh(now);
        }
    }

    // ------------------------------------------------------------ SyncGroup

    fn sync_group(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: SyncGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            out.respond(
                reply_to,
                sync_response(ErrorCode::UnknownMemberId, Vec::new()),
            );
            return;
        };
        let error = if g.is_fenced(&req.group_instance_id, &req.member_id) {
            ErrorCode::FencedInstanceId
        } else if !g.members.contains_key(&req.member_id) {
            ErrorCode::UnknownMemberId
        } else if req.generation_id != g.generation {
            ErrorCode::IllegalGeneration
        } else {
            match g.state {
                GroupState::Empty => ErrorCode::UnknownMemberId,
                GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
                GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            }
        };
        if error != ErrorCode::None {
            out.respond(reply_to, sync_response(error, Vec::new()));
            return;
        }
        let m = g.members.get_mut(&req.member_id).expect("checked");
        m.refresh(now);
        if g.state == GroupState::Stable {
            let assignment = m.assignment.clone();
            out.respond(reply_to, sync_response(ErrorCode::None, assignment));
            return;
        }
        // CompletingRebalance: wait for the leader's assignment to be stored.
        m.awaiting_sync = Some(reply_to);
        if g.leader.as_ref() != Some(&req.member_id) {
            return;
        }
        let assignments: BTreeMap<Arc<str>, Vec<TopicPartition>> = g
            .members
            .keys()
            .map(|id| {
                let a = req
                    .assignments
                    .iter()
                    .find(|(m, _)| m == id)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                (id.clone(), a)
            })
            .collect();
        let record = g.record(&req.group_id, now, &assignments);
        let partition = g.partition;
        let purpose = AppendPurpose::Assignment {
            group_id: req.group_id.clone(),
            generation: g.generation,
            assignments,
        };
        self.append(partition, purpose, now, vec![record], out);
    }

    // ------------------------------------------------------------ Heartbeat, LeaveGroup

    fn heartbeat(&mut self, now: Millis, req: &HeartbeatRequest) -> ErrorCode {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if g.is_fenced(&req.group_instance_id, &req.member_id) {
            return ErrorCode::FencedInstanceId;
        }
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if req.generation_id != g.generation {
            return ErrorCode::IllegalGeneration;
        }
        m.refresh(now);
        match g.state {
            GroupState::Empty => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
        }
    }

    fn leave_group(
        &mut self,
        now: Millis,
        reply_to: ReplyTo,
        req: LeaveGroupRequest,
        out: &mut CoordinatorOutput,
    ) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            let error = ErrorCode::UnknownMemberId;
            out.respond(reply_to, Response::LeaveGroup(LeaveGroupResponse { error }));
            return;
        };
        let mut first_error = ErrorCode::None;
        let mut removed: Vec<Arc<str>> = Vec::new();
        let mut pending_removed = false;
        for (member_id, instance) in &req.members {
            let target = match instance {
                Some(i) => match g.static_members.get(i) {
                    None => Err(ErrorCode::UnknownMemberId),
                    Some(m) if !member_id.is_empty() && m != member_id => {
                        Err(ErrorCode::FencedInstanceId)
                    }
                    Some(m) => Ok(m.clone()),
                },
                None if g.pending_members.remove(member_id).is_some() => {
                    pending_removed = true;
                    continue;
                }
                None if g.members.contains_key(member_id) => Ok(member_id.clone()),
                None => Err(ErrorCode::UnknownMemberId),
            };
            match target {
                Ok(id) => {
                    remove_member(g, &id, out);
                    removed.push(id);
                }
                Err(e) if first_error == ErrorCode::None => first_error = e,
                Err(_) => {}
            }
        }
        out.respond(
            reply_to,
            Response::LeaveGroup(LeaveGroupResponse { error: first_error }),
        );
        if !removed.is_empty() {
            let reason = format!(
                "Removing member {} on LeaveGroup; client reason: {}",
                removed.join(", "),
                req.reason.as_deref().unwrap_or("not provided")
            );
            self.after_member_removed(now, &req.group_id, RebalanceCause::MemberLeft, reason, out);
        } else if pending_removed {
            self.try_complete_join(now, &req.group_id, out);
        }
    }

    /// A member left: rebalance (Kafka's `removeMemberAndUpdateGroup`).
    fn after_member_removed(
        &mut self,
        now: Millis,
        group_id: &Arc<str>,
        cause: RebalanceCause,
        reason: String,
        out: &mut CoordinatorOutput,
    ) {
        let state = self.groups[group_id].state;
        match state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, group_id, cause, reason, out)
            }
            GroupState::PreparingRebalance | GroupState::Empty => {}
        }
        self.try_complete_join(now, group_id, out);
    }

    // ------------------------------------------------------------ offsets

    // ------------------------------------------------------------ appends, timers

    /// The append `id` is decided: `NONE` once the high watermark passed it, else the
    /// produce error (`NOT_LEADER_OR_FOLLOWER`, `REQUEST_TIMED_OUT`, ...).
    pub fn on_append_complete(
        &mut self,
        now: Millis,
        id: u64,
        error: ErrorCode,
    ) -> CoordinatorOutput {
        let mut out = CoordinatorOutput::default();
        // Appends of an unloaded partition were answered by the unload.
        let Some((_, purpose)) = self.appends.remove(&id) else {
            return out;
        };
        match purpose {
            AppendPurpose::Offsets {
                reply_to,
                group_id,
                offsets,
            } => {
                if error == ErrorCode::None {
                    if let Some(g) = self.groups.get_mut(&group_id) {
                        for o in &offsets {
                            g.offsets.insert(o.tp.clone(), o.clone());
                        }
                        assert!(g.offsets.len() <= MAX_OFFSETS_PER_GROUP);
                    }
                }
                let error = commit_store_error(error);
                out.respond(reply_to, commit_response(&offsets, error));
            }
            AppendPurpose::TxnOffsets {
                reply_to,
                group_id,
                producer_id,
                offsets,
            } => {
                if error == ErrorCode::None {
                    if let Some(g) = self.groups.get_mut(&group_id) {
                        assert!(
                            g.pending_txn.len() < MAX_GROUPS,
                            "too many open transactions"
                        );
                        let pending = g.pending_txn.entry(producer_id).or_default();
                        pending.extend(offsets.iter().map(|o| (o.tp.clone(), o.clone())));
                    }
                }
                let error = commit_store_error(error);
                out.respond(reply_to, txn_commit_response(&offsets, error));
            }
            AppendPurpose::Assignment {
                group_id,
                generation,
                assignments,
            } => {
                let Some(g) = self.groups.get_mut(&group_id) else {
                    return out;
                };
                if g.state != GroupState::CompletingRebalance || g.generation != generation {
                    return out;
                }
                if error == ErrorCode::None {
                    g.state = GroupState::Stable;
                    for (id, m) in g.members.iter_mut() {
                        m.assignment = assignments.get(id).cloned().unwrap_or_default();
                        m.refresh(now);
                        if let Some(r) = m.awaiting_sync.take() {
                            out.respond(r, sync_response(ErrorCode::None, m.assignment.clone()));
                        }
                    }
                } else {
                    reset_assignments(g, group_store_error(error), &mut out);
                    let reason =
                        format!("Error {error} when storing group assignment during SyncGroup");
                    let cause = RebalanceCause::AssignmentNotStored;
                    self.maybe_prepare_rebalance(now, &group_id, cause, reason, &mut out);
                    self.try_complete_join(now, &group_id, &mut out);
                }
            }
            AppendPurpose::StaticRejoin {
                reply_to,
                group_id,
                instance_id,
                old_member_id,
                new_member_id,
            } => {
                let Some(g) = self.groups.get_mut(&group_id) else {
                    return out;
                };
                let current = g.static_members.get(&instance_id) == Some(&new_member_id);
                if error == ErrorCode::None && current {
                    out.respond(reply_to, g.join_response(&new_member_id, false));
                } else if error == ErrorCode::None {
                    out.respond(
                        reply_to,
                        join_error(new_member_id, ErrorCode::FencedInstanceId),
                    );
                } else {
                    if current {
                        // Not persisted: the old member id stands again.
                        let m = g.members.remove(&new_member_id).expect("static member");
                        g.members.insert(old_member_id.clone(), m);
                        g.static_members.insert(instance_id, old_member_id.clone());
                        if g.leader.as_ref() == Some(&new_member_id) {
                            g.leader = Some(old_member_id);
                        }
                    }
                    out.respond(
                        reply_to,
                        join_error(new_member_id, group_store_error(error)),
                    );
                }
            }
            AppendPurpose::EmptyGroup => {}
        }
        out
    }

    /// When a member's session ends, or `None` while it is kept alive (waiting for its
    /// join or sync answer) or sessions never expire (the bug switch).
    fn session_deadline(&self, m: &Member) -> Option<Millis> {
        let kept_alive = m.awaiting_join.is_some() || m.awaiting_sync.is_some();
        (!kept_alive && !self.bugs.on(Bug::NoSessionExpiry)).then_some(m.session_deadline)
    }

    /// Expires sessions and pending member ids, and ends join phases whose time is up.
    pub fn on_timer(&mut self, now: Millis) -> CoordinatorOutput {
        let mut out = CoordinatorOutput::default();
        let ids: Vec<Arc<str>> = self.groups.keys().cloned().collect();
        for id in ids {
            let g = &self.groups[&id];
            let expired: Vec<Arc<str>> = g
                .members
                .iter()
                .filter(|(_, m)| self.session_deadline(m).is_some_and(|d| d <= now))
                .map(|(m, _)| m.clone())
                .collect();
            let g = self.groups.get_mut(&id).expect("listed");
            let pending_before = g.pending_members.len();
            g.pending_members.retain(|_, d| *d > now);
            let pending_expired = g.pending_members.len() < pending_before;
            for m in &expired {
                remove_member(g, m, &mut out);
            }
            if !expired.is_empty() {
                let reason = format!(
                    "removing member {} on heartbeat expiration",
                    expired.join(", ")
                );
                let cause = RebalanceCause::SessionExpired;
                self.after_member_removed(now, &id, cause, reason, &mut out);
            } else if pending_expired {
                self.try_complete_join(now, &id, &mut out);
            }
            let g = &self.groups[&id];
            if g.join.is_some_and(|j| j.deadline <= now) {
                self.on_join_deadline(now, &id, &mut out);
            }
        }
        out
    }

    /// The earliest time [`GroupCoordinator::on_timer`] has work.
    pub fn next_timer(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut at = |d: Millis| t = Some(t.map_or(d, |t| t.min(d)));
        for g in self.groups.values() {
            if let Some(j) = g.join {
                at(j.deadline);
            }
            for d in g.pending_members.values() {
                at(*d);
            }
            for m in g.members.values() {
                if let Some(d) = self.session_deadline(m) {
                    at(d);
                }
            }
        }
        t
    }

    // ------------------------------------------------------------ snapshot

    /// Every loaded group: state, generation, leader and members.
    pub fn groups(&self) -> Vec<GroupSummary> {
        self.groups
            .iter()
            .map(|(id, g)| GroupSummary {
                group_id: id.clone(),
                state: g.state,
                generation: g.generation,
                leader: g.leader.clone(),
                members: g
                    .members
                    .iter()
                    .map(|(id, m)| MemberSummary {
                        member_id: id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
