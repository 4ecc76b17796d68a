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

use crate::bugs::{Bug, Bugs};
use crate::history::RebalanceCause;
use crate::kafka::config::BrokerConfig;
use crate::kafka::metadata::TopicSpec;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::{Record, RecordBatch};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// Java's `String.hashCode`: `h = 31 * h + c` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `partitionFor(groupId)`: `Utils.abs(groupId.hashCode) % partitions`, where
/// `Utils.abs` is `Math.abs` except that `Integer.MIN_VALUE` gives 0.
pub fn partition_for_group(group_id: &str, num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "__consumer_offsets has no partitions");
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    abs % num_partitions
}

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

/// Where a deferred answer goes: the client and its request's correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplyTo {
    /// The requesting client.
    pub client: NodeId,
    /// The request's correlation id.
    pub correlation_id: u64,
}

/// A batch a coordinator wants appended to a partition of its internal topic
/// (`__consumer_offsets`, or `__transaction_state` for the transaction coordinator).
#[derive(Clone, Debug)]
pub struct CoordinatorAppend {
    /// Given back to the coordinator's `on_append_complete`.
    pub id: u64,
    /// The internal topic's partition.
    pub partition: u32,
    /// An encoded record batch v2 (producer id -1).
    pub batch: Bytes,
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

/// The join phase of `PreparingRebalance`: Kafka's `DelayedJoin`, or `InitialDelayedJoin`
/// (`initial` set) for a group that was empty.
#[derive(Clone, Copy, Debug)]
struct JoinPhase {
    deadline: Millis,
    /// (this round's delay, rebalance time left after it).
    initial: Option<(u64, u64)>,
}

#[derive(Debug)]
struct Group {
    partition: u32,
    state: GroupState,
    generation: i32,
    protocol: Option<Arc<str>>,
    leader: Option<Arc<str>>,
    members: BTreeMap<Arc<str>, Member>,
    /// `group.instance.id` -> member id.
    static_members: BTreeMap<Arc<str>, Arc<str>>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED` -> when they expire.
    pending_members: BTreeMap<Arc<str>, Millis>,
    /// Set exactly in `PreparingRebalance`.
    join: Option<JoinPhase>,
    /// A member joined during the initial delay of generation 0 (extends it).
    new_member_added: bool,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Offsets committed inside transactions, per producer id, until their transaction's
    /// marker reaches this partition (KIP-98): visible only once committed.
    pending_txn: BTreeMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
}

impl Group {
    fn new(partition: u32) -> Self {
        Group {
            partition,
            state: GroupState::Empty,
            generation: 0,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
            pending_txn: BTreeMap::new(),
        }
    }

    /// A transaction marker of producer `producer_id` reached the group's partition: its
    /// pending offsets become the committed ones, or are dropped.
    fn complete_txn(&mut self, producer_id: i64, committed: bool) {
        if let Some(offsets) = self.pending_txn.remove(&producer_id) {
            if committed {
                self.offsets.extend(offsets);
                assert!(self.offsets.len() <= MAX_OFFSETS_PER_GROUP);
            }
        }
    }

    /// KIP-345: the request names a known instance id that belongs to another member.
    fn is_fenced(&self, instance: &Option<Arc<str>>, member_id: &str) -> bool {
        instance
            .as_ref()
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| &**m != member_id)
    }

    /// Protocols every member supports, in the first member's preference order.
    fn candidate_protocols(&self) -> Vec<Arc<str>> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| self.members.values().all(|m| m.subscription(p).is_some()))
            .collect()
    }

    /// Kafka's `supportsProtocols`.
    fn supports(&self, protocols: &[(Arc<str>, Subscription)]) -> bool {
        if protocols.is_empty() {
            return false;
        }
        self.members.is_empty()
            || self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(p, _)| p == c))
    }

    /// Kafka's `selectProtocol`: each member votes for its first candidate; most votes
    /// win, ties go to the earlier candidate.
    fn select_protocol(&self) -> Arc<str> {
        let candidates = self.candidate_protocols();
        assert!(!candidates.is_empty(), "group members share no protocol");
        let votes = |c: &Arc<str>| {
            self.members
                .values()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|(p, _)| candidates.contains(p))
                        .is_some_and(|(p, _)| p == c)
                })
                .count()
        };
        let mut best = candidates[0].clone();
        for c in &candidates[1..] {
            if votes(c) > votes(&best) {
                best = c.clone();
            }
        }
        best
    }

    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The `JoinGroup` answer for `member_id` in the current generation.
    fn join_response(&self, member_id: &Arc<str>, with_members: bool) -> Response {
        let protocol = self.protocol.clone();
        let members = if with_members {
            self.members
                .iter()
                .map(|(id, m)| JoinGroupMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.subscription(p))
                        .cloned()
                        .expect("members support the group's protocol"),
                })
                .collect()
        } else {
            Vec::new()
        };
        Response::JoinGroup(JoinGroupResponse {
            error: ErrorCode::None,
            generation_id: self.generation,
            protocol_name: protocol,
            leader: self.leader.clone().unwrap_or_else(|| Arc::from("")),
            member_id: member_id.clone(),
            members,
        })
    }

    /// The group record for the current state, with `assignments` as the members'.
    fn record(
        &self,
        group_id: &Arc<str>,
        now: Millis,
        assignments: &BTreeMap<Arc<str>, Vec<TopicPartition>>,
    ) -> (Bytes, Bytes) {
        let value = GroupValue {
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now as i64,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberValue {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_subscription: self
                        .protocol
                        .as_deref()
                        .and_then(|p| m.subscription(p))
                        .cloned()
                        .expect("members support the group's protocol"),
                    assignment: assignments.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        };
        (encode_group_key(group_id), encode_group_value(&value))
    }

    fn current_assignments(&self) -> BTreeMap<Arc<str>, Vec<TopicPartition>> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.assignment.clone()))
            .collect()
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
        }
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
        let ids: Vec<Arc<str>> = self
            .groups
            .iter()
            .filter(|(_, g)| g.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let g = self.groups.remove(&id).expect("listed");
            for (member_id, m) in g.members {
                if let Some(r) = m.awaiting_join {
                    out.respond(r, join_error(member_id, ErrorCode::NotCoordinator));
                }
                if let Some(r) = m.awaiting_sync {
                    out.respond(r, sync_response(ErrorCode::NotCoordinator, Vec::new()));
                }
            }
        }
        let appends: Vec<u64> = self
            .appends
            .iter()
            .filter(|(_, (p, _))| *p == partition)
            .map(|(id, _)| *id)
            .collect();
        for id in appends {
            let (_, purpose) = self.appends.remove(&id).expect("listed");
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
            batch: encode_batch(now, records, producer),
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

    fn offset_commit(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        req: OffsetCommitRequest,
        out: &mut CoordinatorOutput,
    ) {
        let error = match self.groups.get_mut(&req.group_id) {
            None if req.generation_id < 0 => {
                // A simple consumer: the group exists only to hold offsets.
                assert!(self.groups.len() < MAX_GROUPS, "too many groups");
                self.groups
                    .insert(req.group_id.clone(), Group::new(partition));
                ErrorCode::None
            }
            None => ErrorCode::IllegalGeneration,
            Some(g)
                if self.bugs.on(Bug::CommitFromOldGeneration)
                    && (0..g.generation).contains(&req.generation_id) =>
            {
                ErrorCode::None
            }
            Some(g)
                if req.generation_id >= 0
                    || !req.member_id.is_empty()
                    || req.group_instance_id.is_some() =>
            {
                if g.is_fenced(&req.group_instance_id, &req.member_id) {
                    ErrorCode::FencedInstanceId
                } else if let Some(m) = g.members.get_mut(&req.member_id) {
                    if req.generation_id != g.generation {
                        ErrorCode::IllegalGeneration
                    } else if g.state == GroupState::CompletingRebalance {
                        ErrorCode::RebalanceInProgress
                    } else {
                        m.refresh(now);
                        ErrorCode::None
                    }
                } else {
                    ErrorCode::UnknownMemberId
                }
            }
            // Outside group management only an empty group takes commits.
            Some(g) if g.state != GroupState::Empty => ErrorCode::UnknownMemberId,
            Some(_) => ErrorCode::None,
        };
        if error != ErrorCode::None || req.offsets.is_empty() {
            out.respond(reply_to, commit_response(&req.offsets, error));
            return;
        }
        let records = req
            .offsets
            .iter()
            .map(|o| {
                (
                    encode_offset_key(&req.group_id, &o.tp),
                    encode_offset_value(o, now),
                )
            })
            .collect();
        let purpose = AppendPurpose::Offsets {
            reply_to,
            group_id: req.group_id,
            offsets: req.offsets,
        };
        self.append(partition, purpose, now, records, out);
    }

    fn offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let group = self.groups.get(&req.group_id);
        // KIP-447: a read_committed consumer waits while transactional offsets of its
        // partitions are pending, or it could start before a commit about to land.
        let unstable = req.require_stable
            && group.is_some_and(|g| {
                g.pending_txn
                    .values()
                    .any(|o| req.partitions.iter().any(|tp| o.contains_key(tp)))
            });
        if unstable {
            return OffsetFetchResponse {
                error: ErrorCode::UnstableOffsetCommit,
                offsets: Vec::new(),
            };
        }
        let offsets = group
            .map(|g| {
                req.partitions
                    .iter()
                    .filter_map(|tp| g.offsets.get(tp).cloned())
                    .collect()
            })
            .unwrap_or_default();
        OffsetFetchResponse {
            error: ErrorCode::None,
            offsets,
        }
    }

    /// `TxnOffsetCommit` (Kafka's `doTxnCommitOffsets`): with the consumer's group
    /// metadata the member and generation are checked (KIP-447); the offsets are
    /// written as a transactional batch of the producer and stay pending until the
    /// transaction's marker reaches the partition.
    fn txn_offset_commit(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        req: TxnOffsetCommitRequest,
        out: &mut CoordinatorOutput,
    ) {
        if !self.groups.contains_key(&req.group_id) {
            assert!(self.groups.len() < MAX_GROUPS, "too many groups");
            self.groups
                .insert(req.group_id.clone(), Group::new(partition));
        }
        let g = self.groups.get_mut(&req.group_id).expect("just ensured");
        let with_metadata = req.generation_id >= 0 || !req.member_id.is_empty();
        let error = if g.is_fenced(&req.group_instance_id, &req.member_id) {
            ErrorCode::FencedInstanceId
        } else if with_metadata && !g.members.contains_key(&req.member_id) {
            ErrorCode::UnknownMemberId
        } else if with_metadata && req.generation_id != g.generation {
            ErrorCode::IllegalGeneration
        } else {
            ErrorCode::None
        };
        if error != ErrorCode::None || req.offsets.is_empty() {
            out.respond(reply_to, txn_commit_response(&req.offsets, error));
            return;
        }
        let records = req
            .offsets
            .iter()
            .map(|o| {
                (
                    encode_offset_key(&req.group_id, &o.tp),
                    encode_offset_value(o, now),
                )
            })
            .collect();
        let purpose = AppendPurpose::TxnOffsets {
            reply_to,
            group_id: req.group_id,
            producer_id: req.producer_id,
            offsets: req.offsets,
        };
        let producer = ProducerIdentity {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
        };
        self.append_as(partition, purpose, now, records, Some(producer), out);
    }

    /// A transaction marker of `producer_id` was committed on `__consumer_offsets-
    /// <partition>` (written and replicated): its groups' pending transactional offsets
    /// are committed or dropped.
    pub fn on_txn_marker(&mut self, partition: u32, producer_id: i64, committed: bool) {
        for g in self
            .groups
            .values_mut()
            .filter(|g| g.partition == partition)
        {
            g.complete_txn(producer_id, committed);
        }
    }

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
                let error = if error == ErrorCode::None {
                    error
                } else {
                    commit_store_error(error)
                };
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
                let error = if error == ErrorCode::None {
                    error
                } else {
                    commit_store_error(error)
                };
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

    /// Every loaded group's committed offsets.
    pub fn committed_offsets(&self) -> BTreeMap<(Arc<str>, TopicPartition), Offset> {
        self.groups
            .iter()
            .flat_map(|(id, g)| {
                g.offsets
                    .iter()
                    .map(move |(tp, o)| ((id.clone(), tp.clone()), o.offset))
            })
            .collect()
    }

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

/// Kafka's `resetAndPropagateAssignmentError`: clears assignments and answers every
/// waiting `SyncGroup` with `error`.
fn reset_assignments(g: &mut Group, error: ErrorCode, out: &mut CoordinatorOutput) {
    for m in g.members.values_mut() {
        m.assignment.clear();
        if let Some(r) = m.awaiting_sync.take() {
            out.respond(r, sync_response(error, Vec::new()));
        }
    }
}

/// Removes a member, answering its waiting requests with `UNKNOWN_MEMBER_ID`.
fn remove_member(g: &mut Group, member_id: &Arc<str>, out: &mut CoordinatorOutput) {
    let m = g.members.remove(member_id).expect("member");
    if let Some(r) = m.awaiting_join {
        out.respond(r, join_error(member_id.clone(), ErrorCode::UnknownMemberId));
    }
    if let Some(r) = m.awaiting_sync {
        out.respond(r, sync_response(ErrorCode::UnknownMemberId, Vec::new()));
    }
    if let Some(i) = &m.group_instance_id {
        if g.static_members.get(i) == Some(member_id) {
            g.static_members.remove(i);
        }
    }
    if g.leader.as_ref() == Some(member_id) {
        g.leader = g.members.keys().next().cloned();
    }
}

impl Group {
    /// Applies a group record found while loading.
    fn load_value(&mut self, now: Millis, value: GroupValue) {
        self.generation = value.generation;
        self.protocol = value.protocol;
        self.leader = value.leader;
        self.join = None;
        self.pending_members.clear();
        self.static_members.clear();
        self.members = value
            .members
            .into_iter()
            .map(|mv| {
                if let Some(i) = &mv.group_instance_id {
                    self.static_members.insert(i.clone(), mv.member_id.clone());
                }
                let protocol = self
                    .protocol
                    .clone()
                    .expect("a group with members has a protocol");
                let member = Member {
                    client_id: mv.client_id,
                    group_instance_id: mv.group_instance_id,
                    session_timeout_ms: mv.session_timeout_ms,
                    rebalance_timeout_ms: mv.rebalance_timeout_ms,
                    protocols: vec![(protocol, mv.protocol_subscription)],
                    assignment: mv.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    session_deadline: now + mv.session_timeout_ms,
                };
                (mv.member_id, member)
            })
            .collect();
        assert!(self.members.len() <= MAX_MEMBERS);
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

// ---------------------------------------------------------------- record format

/// A decoded `__consumer_offsets` record.
#[derive(Debug, PartialEq)]
enum OffsetsRecord {
    Offset {
        group_id: Arc<str>,
        offset: CommittedOffset,
    },
    Group {
        group_id: Arc<str>,
        value: GroupValue,
    },
}

#[derive(Debug, PartialEq)]
struct GroupValue {
    generation: i32,
    protocol: Option<Arc<str>>,
    leader: Option<Arc<str>>,
    state_timestamp: i64,
    members: Vec<MemberValue>,
}

#[derive(Debug, PartialEq)]
struct MemberValue {
    member_id: Arc<str>,
    group_instance_id: Option<Arc<str>>,
    client_id: Arc<str>,
    rebalance_timeout_ms: u64,
    session_timeout_ms: u64,
    protocol_subscription: Subscription,
    assignment: Vec<TopicPartition>,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 0;
const CLIENT_HOST: &str = "/sim";

pub(crate) fn put_i16(b: &mut Vec<u8>, v: i16) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_len(b: &mut Vec<u8>, n: usize) {
    put_i32(b, i32::try_from(n).expect("array fits an i32"));
}
pub(crate) fn put_str(b: &mut Vec<u8>, s: &str) {
    put_i16(
        b,
        i16::try_from(s.len()).expect("string fits an i16 length"),
    );
    b.extend_from_slice(s.as_bytes());
}
fn put_nullable_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => put_i16(b, -1),
    }
}
pub(crate) fn put_timeout(b: &mut Vec<u8>, ms: u64) {
    put_i32(b, i32::try_from(ms).expect("timeouts fit an i32"));
}

/// Partitions as `(topic, [partition])`, one entry per run of one topic.
pub(crate) fn topic_runs(tps: &[TopicPartition]) -> Vec<(&str, Vec<i32>)> {
    let mut runs: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in tps {
        let p = i32::try_from(tp.partition).expect("partition fits an i32");
        match runs.last_mut() {
            Some((t, ps)) if *t == &*tp.topic => ps.push(p),
            _ => runs.push((&tp.topic, vec![p])),
        }
    }
    runs
}

/// Partitions as `[string topic, [i32 partition]]`, one entry per run of one topic.
pub(crate) fn put_partitions(b: &mut Vec<u8>, tps: &[TopicPartition]) {
    let runs = topic_runs(tps);
    put_len(b, runs.len());
    for (t, ps) in runs {
        put_str(b, t);
        put_len(b, ps.len());
        for p in ps {
            put_i32(b, p);
        }
    }
}

fn encode_offset_key(group_id: &str, tp: &TopicPartition) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, OFFSET_KEY_VERSION);
    put_str(&mut b, group_id);
    put_str(&mut b, &tp.topic);
    put_i32(
        &mut b,
        i32::try_from(tp.partition).expect("partition fits an i32"),
    );
    Bytes::from(b)
}

fn encode_offset_value(o: &CommittedOffset, now: Millis) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, OFFSET_VALUE_VERSION);
    put_i64(&mut b, o.offset);
    put_i32(&mut b, o.leader_epoch);
    put_str(&mut b, "");
    put_i64(&mut b, now as i64);
    Bytes::from(b)
}

fn encode_group_key(group_id: &str) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, GROUP_KEY_VERSION);
    put_str(&mut b, group_id);
    Bytes::from(b)
}

fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, GROUP_VALUE_VERSION);
    put_str(&mut b, PROTOCOL_TYPE);
    put_i32(&mut b, v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    put_i64(&mut b, v.state_timestamp);
    put_len(&mut b, v.members.len());
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, CLIENT_HOST);
        put_timeout(&mut b, m.rebalance_timeout_ms);
        put_timeout(&mut b, m.session_timeout_ms);
        let mut s = Vec::new();
        put_i16(&mut s, SUBSCRIPTION_VERSION);
        put_len(&mut s, m.protocol_subscription.topics.len());
        for t in &m.protocol_subscription.topics {
            put_str(&mut s, t);
        }
        put_i32(&mut s, -1);
        put_partitions(&mut s, &m.protocol_subscription.owned_partitions);
        put_len(&mut b, s.len());
        b.extend_from_slice(&s);
        let mut a = Vec::new();
        put_i16(&mut a, ASSIGNMENT_VERSION);
        put_partitions(&mut a, &m.assignment);
        put_i32(&mut a, -1);
        put_len(&mut b, a.len());
        b.extend_from_slice(&a);
    }
    Bytes::from(b)
}

/// One batch of (key, value) records, producer id -1.
/// A coordinator batch; with `producer`, a transactional one of that producer (no
/// sequence: Kafka writes transactional offset commits without one).
pub(crate) fn encode_batch(
    now: Millis,
    records: Vec<(Bytes, Bytes)>,
    producer: Option<ProducerIdentity>,
) -> Bytes {
    assert!(!records.is_empty(), "an empty coordinator batch");
    let identity = producer.unwrap_or(ProducerIdentity::NONE);
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: if producer.is_some() {
            crate::kafka::record::TRANSACTIONAL_BIT
        } else {
            0
        },
        last_offset_delta: i32::try_from(records.len() - 1).expect("batch size fits an i32"),
        base_timestamp: now as i64,
        max_timestamp: now as i64,
        producer_id: identity.producer_id,
        producer_epoch: identity.producer_epoch,
        base_sequence: -1,
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: i as i32,
                key: Some(key),
                value: Some(value),
                headers: vec![],
            })
            .collect(),
    }
    .encode()
}

/// A reader over Kafka's big-endian schema types.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("{n} bytes wanted, {} left", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub(crate) fn len(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }
    fn nullable_str(&mut self) -> Result<Option<Arc<str>>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let bytes = self.take(n as usize)?;
        let s = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Ok(Some(Arc::from(s)))
    }
    pub(crate) fn str(&mut self) -> Result<Arc<str>, String> {
        self.nullable_str()?
            .ok_or_else(|| "null string".to_string())
    }
    fn timeout(&mut self) -> Result<u64, String> {
        let v = self.i32()?;
        u64::try_from(v).map_err(|_| format!("negative timeout {v}"))
    }
    fn version(&mut self, expected: i16) -> Result<(), String> {
        let v = self.i16()?;
        if v == expected {
            Ok(())
        } else {
            Err(format!("version {v}, expected {expected}"))
        }
    }
    fn skip_nullable_bytes(&mut self) -> Result<(), String> {
        let n = self.i32()?;
        if n >= 0 {
            self.take(n as usize)?;
        }
        Ok(())
    }
    pub(crate) fn partitions(&mut self) -> Result<Vec<TopicPartition>, String> {
        let mut out = Vec::new();
        for _ in 0..self.len()? {
            let topic = self.str()?;
            for _ in 0..self.len()? {
                let p = self.i32()?;
                let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
                out.push(TopicPartition {
                    topic: topic.clone(),
                    partition,
                });
            }
        }
        Ok(out)
    }
    pub(crate) fn done(&self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.buf.len()))
        }
    }
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<OffsetsRecord, String> {
    let mut k = Reader { buf: key };
    let mut v = Reader { buf: value };
    let record = match k.i16()? {
        OFFSET_KEY_VERSION => {
            let group_id = k.str()?;
            let topic = k.str()?;
            let p = k.i32()?;
            let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
            v.version(OFFSET_VALUE_VERSION)?;
            let offset = v.i64()?;
            let leader_epoch = v.i32()?;
            v.str()?; // metadata
            v.i64()?; // commit timestamp
            OffsetsRecord::Offset {
                group_id,
                offset: CommittedOffset {
                    tp: TopicPartition { topic, partition },
                    offset,
                    leader_epoch,
                },
            }
        }
        GROUP_KEY_VERSION => {
            let group_id = k.str()?;
            v.version(GROUP_VALUE_VERSION)?;
            let protocol_type = v.str()?;
            if &*protocol_type != PROTOCOL_TYPE {
                return Err(format!("protocol type {protocol_type}"));
            }
            let generation = v.i32()?;
            let protocol = v.nullable_str()?;
            let leader = v.nullable_str()?;
            let state_timestamp = v.i64()?;
            let mut members = Vec::new();
            for _ in 0..v.len()? {
                let member_id = v.str()?;
                let group_instance_id = v.nullable_str()?;
                let client_id = v.str()?;
                v.str()?; // client host
                let rebalance_timeout_ms = v.timeout()?;
                let session_timeout_ms = v.timeout()?;
                let n = v.len()?;
                let mut s = Reader { buf: v.take(n)? };
                s.version(SUBSCRIPTION_VERSION)?;
                let mut topics = Vec::new();
                for _ in 0..s.len()? {
                    topics.push(s.str()?);
                }
                s.skip_nullable_bytes()?;
                let owned_partitions = s.partitions()?;
                s.done()?;
                let n = v.len()?;
                let mut a = Reader { buf: v.take(n)? };
                a.version(ASSIGNMENT_VERSION)?;
                let assignment = a.partitions()?;
                a.skip_nullable_bytes()?;
                a.done()?;
                members.push(MemberValue {
                    member_id,
                    group_instance_id,
                    client_id,
                    rebalance_timeout_ms,
                    session_timeout_ms,
                    protocol_subscription: Subscription {
                        topics,
                        owned_partitions,
                    },
                    assignment,
                });
            }
            OffsetsRecord::Group {
                group_id,
                value: GroupValue {
                    generation,
                    protocol,
                    leader,
                    state_timestamp,
                    members,
                },
            }
        }
        other => return Err(format!("unknown key version {other}")),
    };
    k.done()?;
    v.done()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let mut responses = out.responses;
            for a in out.appends {
                self.log.push(a.batch);
                let done = c.on_append_complete(now, a.id, ErrorCode::None);
                responses.extend(self.run(c, now, done));
            }
            responses
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
}
