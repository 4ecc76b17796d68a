//! One group's state (Kafka's `GroupMetadata`): its members, static members, generation,
//! the join and sync phases, and the helpers that change them.

use super::*;

/// The join phase of `PreparingRebalance`: Kafka's `DelayedJoin`, or `InitialDelayedJoin`
/// (`initial` set) for a group that was empty.
#[derive(Clone, Copy, Debug)]
pub(super) struct JoinPhase {
    pub(super) deadline: Millis,
    /// (this round's delay, rebalance time left after it).
    pub(super) initial: Option<(u64, u64)>,
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) partition: u32,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol: Option<Arc<str>>,
    pub(super) leader: Option<Arc<str>>,
    pub(super) members: BTreeMap<Arc<str>, Member>,
    /// `group.instance.id` -> member id.
    pub(super) static_members: BTreeMap<Arc<str>, Arc<str>>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED` -> when they expire.
    pub(super) pending_members: BTreeMap<Arc<str>, Millis>,
    /// Set exactly in `PreparingRebalance`.
    pub(super) join: Option<JoinPhase>,
    /// A member joined during the initial delay of generation 0 (extends it).
    pub(super) new_member_added: bool,
    pub(super) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Offsets committed inside transactions, per producer id, until their transaction's
    /// marker reaches this partition (KIP-98): visible only once committed.
    pub(super) pending_txn: BTreeMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
}

impl Group {
    pub(super) fn new(partition: u32) -> Self {
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
    pub(super) fn complete_txn(&mut self, producer_id: i64, committed: bool) {
        if let Some(offsets) = self.pending_txn.remove(&producer_id) {
            if committed {
                self.offsets.extend(offsets);
                assert!(self.offsets.len() <= MAX_OFFSETS_PER_GROUP);
            }
        }
    }

    /// KIP-345: the request names a known instance id that belongs to another member.
    pub(super) fn is_fenced(&self, instance: &Option<Arc<str>>, member_id: &str) -> bool {
        instance
            .as_ref()
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| &**m != member_id)
    }

    /// Protocols every member supports, in the first member's preference order.
    pub(super) fn candidate_protocols(&self) -> Vec<Arc<str>> {
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
    pub(super) fn supports(&self, protocols: &[(Arc<str>, Subscription)]) -> bool {
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
    pub(super) fn select_protocol(&self) -> Arc<str> {
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

    pub(super) fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The `JoinGroup` answer for `member_id` in the current generation.
    pub(super) fn join_response(&self, member_id: &Arc<str>, with_members: bool) -> Response {
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
    pub(super) fn record(
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

    pub(super) fn current_assignments(&self) -> BTreeMap<Arc<str>, Vec<TopicPartition>> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.assignment.clone()))
            .collect()
    }
}

impl Group {
    /// Applies a group record found while loading.
    pub(super) fn load_value(&mut self, now: Millis, value: GroupValue) {
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

/// Kafka's `resetAndPropagateAssignmentError`: clears assignments and answers every
/// waiting `SyncGroup` with `error`.
pub(super) fn reset_assignments(g: &mut Group, error: ErrorCode, out: &mut CoordinatorOutput) {
    for m in g.members.values_mut() {
        m.assignment.clear();
        if let Some(r) = m.awaiting_sync.take() {
            out.respond(r, sync_response(error, Vec::new()));
        }
    }
}

/// Removes a member, answering its waiting requests with `UNKNOWN_MEMBER_ID`.
pub(super) fn remove_member(g: &mut Group, member_id: &Arc<str>, out: &mut CoordinatorOutput) {
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
