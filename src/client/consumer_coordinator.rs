//! The consumer's side of group membership: Kafka's `ConsumerCoordinator` on top of
//! `AbstractCoordinator` (classic protocol, eager rebalancing), sans-IO.
//!
//! Owned by a [`crate::client::consumer::Consumer`] in subscribe mode. The consumer hands it the
//! time, the responses to its requests and a [`GroupContext`] (metadata and consumed
//! positions); it sends its own requests and tells the consumer what changed
//! ([`AssignmentChange`]) and what the application should hear ([`GroupEvent`]).
//!
//! Kafka's two threads map onto two entry points:
//! - the application thread is [`ConsumerCoordinator::poll`]: it resets the
//!   `max.poll.interval.ms` timer, starts a (re)join when one is needed (`onJoinPrepare`:
//!   an auto-commit of the consumed positions, then every partition revoked), and
//!   drives auto-commit every `auto.commit.interval.ms`;
//! - the heartbeat thread and the network are [`ConsumerCoordinator::run`]: coordinator
//!   discovery (`FindCoordinator` to the least loaded broker, again after
//!   `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, disconnects and timeouts),
//!   heartbeats every `heartbeat.interval.ms`, the session check (a coordinator silent
//!   for `session.timeout.ms` is marked unknown), the poll-timeout check (a dynamic
//!   member sends `LeaveGroup`, a static one only stops heartbeating; both rejoin on the
//!   next poll), commit retries and `OffsetFetch` for newly assigned partitions.
//!
//! A join started by `poll` runs to its end without further polls, as if the
//! application were blocked in `poll` meanwhile: `JoinGroup` (again with the given id
//! after `MEMBER_ID_REQUIRED`), the leader's assignment with the chosen assignor over the
//! metadata's partition counts, `SyncGroup`, and the new assignment. A leader whose
//! metadata changes after it assigned asks for a rebalance (Kafka's metadata snapshot).
//!
//! Its requests use correlation ids from [`GROUP_CORRELATION_BASE`] on, so they never
//! collide with the consumer's `NetworkClient`. Like Kafka's separate coordinator
//! connection, a timed-out coordinator request does not close the connection the
//! consumer fetches on; it marks the coordinator unknown and fails every request to it.

use crate::actor::{Channel, Outbox};
use crate::client::network::{InFlightRequest, NetworkClient};
use crate::kafka::config::Assignor;
use crate::kafka::config::ConsumerConfig;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    BrokerId, CommittedOffset, CoordinatorType, ErrorCode, FindCoordinatorRequest,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, NodeId,
    OffsetCommitRequest, OffsetFetchRequest, Request, Response, Subscription, SyncGroupRequest,
    TopicPartition,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// The first correlation id of group requests; the consumer's `NetworkClient` counts
/// from 0 and never gets near it.
pub(crate) const GROUP_CORRELATION_BASE: u64 = 1 << 48;

/// Kafka's `JOIN_GROUP_TIMEOUT_LAPSE`: a `JoinGroup` may take the rebalance timeout
/// plus this long.
const JOIN_GROUP_TIMEOUT_LAPSE_MS: u64 = 5_000;

/// Bound on commits waiting for an answer (application, auto and pre-rebalance ones).
const MAX_PENDING_COMMITS: usize = 1_024;

/// Bound on events the application has not drained yet.
const MAX_EVENTS: usize = 1 << 16;

/// Bound on group requests in flight (at most one of each kind, plus commits).
const MAX_IN_FLIGHT: usize = MAX_PENDING_COMMITS + 8;

/// Identifies a commit the application asked for; ids increase.
pub type CommitId = u64;

/// Kafka's `MemberState` (`AbstractCoordinator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Not in the group (no generation).
    Unjoined,
    /// `JoinGroup` sent, waiting for the join phase to complete.
    PreparingRebalance,
    /// `SyncGroup` sent, waiting for the assignment.
    CompletingRebalance,
    /// A member of the current generation with an assignment.
    Stable,
}

/// What the application learns from the group, drained with
/// [`crate::client::consumer::Consumer::drain_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// `onPartitionsRevoked` / `onPartitionsLost` (eager protocol: every partition,
    /// before rejoining). `lost` when the generation was already gone (Kafka's
    /// `onPartitionsLost`): the partitions may already belong to someone else.
    Revoked {
        /// The generation the partitions were assigned in.
        generation: i32,
        /// The partitions given up.
        partitions: Vec<TopicPartition>,
        /// Whether they were lost rather than revoked.
        lost: bool,
    },
    /// `onPartitionsAssigned` after a completed rebalance.
    Assigned {
        /// The new generation.
        generation: i32,
        /// This member's id in it.
        member_id: Arc<str>,
        /// The partitions assigned.
        partitions: Vec<TopicPartition>,
    },
    /// A commit succeeded: one the application asked for, an auto-commit, or the
    /// commit before a rebalance (`onJoinPrepare`).
    CommitCompleted {
        /// Its id.
        id: CommitId,
        /// What was committed.
        offsets: Vec<CommittedOffset>,
        /// When the accepted `OffsetCommit` was sent (the commit's earlier attempts
        /// failed; the coordinator judged this one).
        sent_ms: Millis,
        /// The generation its accepted `OffsetCommit` carried.
        generation: i32,
    },
    /// A commit failed (`CommitFailedException`, `RebalanceInProgressException`,
    /// `RetriableCommitFailedException`, `TimeoutException`, ...).
    CommitFailed {
        /// Its id.
        id: CommitId,
        /// Kafka's exception name and the error.
        error: String,
        /// When the commit was asked for.
        invoked_ms: Millis,
        /// The generation its last `OffsetCommit` carried (-1 if none was sent).
        generation: i32,
    },
    /// `FindCoordinator` named a coordinator other than the last one ("Discovered group
    /// coordinator" in Kafka's log).
    CoordinatorDiscovered {
        /// The coordinator's broker.
        broker: BrokerId,
    },
    /// A fatal error (`FENCED_INSTANCE_ID`, ...): the consumer stopped.
    Fenced {
        /// Why.
        error: String,
    },
    /// The member left the group (`max.poll.interval.ms` expired).
    LeftGroup {
        /// Why.
        reason: String,
        /// Whether a `LeaveGroup` was sent (dynamic members only).
        sent_leave_group: bool,
    },
}

/// A change of the consumer's fetch state the coordinator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AssignmentChange {
    /// Stop fetching these partitions and drop their buffered records.
    Revoke(Vec<TopicPartition>),
    /// New partitions, without positions until their committed offsets arrive.
    Assign(Vec<TopicPartition>),
    /// Committed offsets of newly assigned partitions (`None`: use `auto.offset.reset`),
    /// as an `OffsetFetch` sent at `sent_ms` found them.
    Committed {
        /// When the `OffsetFetch` was sent.
        sent_ms: Millis,
        /// Each partition's committed offset, if any.
        offsets: Vec<(TopicPartition, Option<CommittedOffset>)>,
    },
    /// The group subscribes to these topics: the leader needs their metadata.
    GroupTopics(Vec<Arc<str>>),
    /// A `FindCoordinator` to the least loaded node failed: try the next one.
    NodeFailed,
}

/// What the coordinator needs from the consumer at each step.
#[derive(Clone, Debug)]
pub(crate) struct GroupContext {
    /// Kafka's `leastLoadedNode`, for `FindCoordinator`.
    pub(crate) least_loaded: BrokerId,
    /// Partition counts the metadata knows.
    pub(crate) partition_counts: BTreeMap<Arc<str>, u32>,
    /// `SubscriptionState.allConsumed`: the position of every assigned partition that
    /// has one, with the leader epoch of the last consumed record.
    pub(crate) consumed: Vec<CommittedOffset>,
}

#[derive(Debug)]
enum GroupRequest {
    FindCoordinator,
    JoinGroup,
    SyncGroup,
    Heartbeat {
        generation: i32,
    },
    LeaveGroup,
    OffsetCommit {
        key: u64,
    },
    OffsetFetch {
        generation: i32,
        sent_ms: Millis,
        /// The partitions asked for (others may wait for a later `OffsetFetch`).
        partitions: BTreeSet<TopicPartition>,
    },
}

/// Where a (re)join stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinPhase {
    /// `onJoinPrepare` is due.
    Prepare,
    /// `onJoinPrepare` waits for its auto-commit (the pending commit `key`).
    PrepareCommit { key: u64 },
    /// `JoinGroup` is due at this time.
    Join { not_before: Millis },
    /// `JoinGroup` in flight.
    JoinInFlight,
    /// `SyncGroup` in flight.
    SyncInFlight,
}

/// Why a commit was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitPurpose {
    /// `commitSync`: retriable errors are retried until `default.api.timeout.ms`.
    Sync(CommitId),
    /// `commitAsync`: one attempt.
    Async(CommitId),
    /// The auto-commit every `auto.commit.interval.ms`.
    Auto,
    /// `onJoinPrepare`'s auto-commit before a rebalance (retried until the rebalance
    /// timeout).
    JoinPrepare,
}

#[derive(Debug)]
struct PendingCommit {
    purpose: CommitPurpose,
    offsets: Vec<CommittedOffset>,
    /// Given up (failed, or the rebalance proceeds) when not done by then.
    deadline: Millis,
    /// No attempt before this time.
    not_before: Millis,
    /// The generation of the attempt in flight, if any.
    in_flight: Option<i32>,
    /// When the commit was asked for.
    created_ms: Millis,
    /// The generation of the last attempt sent (-1 before the first).
    last_generation: i32,
    /// When the last attempt was sent.
    last_sent_ms: Millis,
}

/// The result of one commit attempt: `Err((error, retriable))`.
type CommitResult = Result<(), (String, bool)>;

/// Kafka's `Heartbeat` timers.
#[derive(Debug)]
struct Heartbeat {
    in_flight: bool,
    /// The next heartbeat is due (`heartbeatTimer`).
    next_at: Millis,
    /// No successful heartbeat response by then: the coordinator is marked unknown.
    session_deadline: Millis,
    /// No `poll` by then: the member leaves (`pollTimer`).
    poll_deadline: Millis,
}

/// The group membership state machine of one consumer (see the module docs).
#[derive(Debug)]
pub struct ConsumerCoordinator {
    group_id: Arc<str>,
    group_instance_id: Option<Arc<str>>,
    topics: Vec<Arc<str>>,
    assignors: Vec<Assignor>,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    retry_backoff_ms: u64,
    request_timeout_ms: u64,
    auto_commit: bool,
    auto_commit_interval_ms: u64,
    default_api_timeout_ms: u64,
    coordinator: Option<BrokerId>,
    /// The coordinator last discovered (reported again only when it changes).
    last_discovered: Option<BrokerId>,
    find_not_before: Millis,
    state: MemberState,
    generation: i32,
    member_id: Arc<str>,
    /// Kafka's `ConsumerCoordinator.groupMetadata`: the generation and member id of the
    /// last completed join, set only by `onJoinComplete` (a reset of the generation
    /// after an error leaves it as it was).
    joined: (i32, Arc<str>),
    leader: bool,
    rejoin_needed: bool,
    join: Option<JoinPhase>,
    polled: bool,
    heartbeat: Heartbeat,
    /// Owned partitions and the generation they were assigned in.
    assignment: Vec<TopicPartition>,
    assignment_generation: i32,
    /// The leader's partition counts of the group's topics when it assigned.
    metadata_snapshot: Option<BTreeMap<Arc<str>, u32>>,
    group_topics: BTreeSet<Arc<str>>,
    awaiting_committed: BTreeSet<TopicPartition>,
    offset_fetch_not_before: Millis,
    commits: BTreeMap<u64, PendingCommit>,
    next_commit: u64,
    next_auto_commit: Millis,
    fatal: Option<String>,
    net: NetworkClient<GroupRequest>,
    events: VecDeque<GroupEvent>,
    changes: Vec<AssignmentChange>,
    now: Millis,
}

impl ConsumerCoordinator {
    /// A member of `config.group_id` subscribed to `topics`, not yet joined (it joins
    /// on the first [`ConsumerCoordinator::poll`]). Panics without a `group.id`.
    pub(crate) fn new(config: &ConsumerConfig, topics: &[Arc<str>]) -> Self {
        let group_id = config.group_id.as_deref().expect(
            "To use the group management or offset commit APIs, you must provide a valid \
             group.id in the consumer configuration.",
        );
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        ConsumerCoordinator {
            group_id: Arc::from(group_id),
            group_instance_id: config.group_instance_id.as_deref().map(Arc::from),
            topics,
            assignors: config.partition_assignment_strategy.clone(),
            session_timeout_ms: config.session_timeout_ms,
            rebalance_timeout_ms: config.max_poll_interval_ms,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            retry_backoff_ms: config.retry_backoff_ms,
            request_timeout_ms: config.request_timeout_ms,
            auto_commit: config.auto_commit(),
            auto_commit_interval_ms: config.auto_commit_interval_ms,
            default_api_timeout_ms: config.default_api_timeout_ms,
            coordinator: None,
            last_discovered: None,
            find_not_before: 0,
            state: MemberState::Unjoined,
            generation: -1,
            member_id: Arc::from(""),
            joined: (-1, Arc::from("")),
            leader: false,
            rejoin_needed: true,
            join: None,
            polled: false,
            heartbeat: Heartbeat {
                in_flight: false,
                next_at: 0,
                session_deadline: 0,
                poll_deadline: 0,
            },
            assignment: Vec::new(),
            assignment_generation: -1,
            metadata_snapshot: None,
            group_topics: BTreeSet::new(),
            awaiting_committed: BTreeSet::new(),
            offset_fetch_not_before: 0,
            commits: BTreeMap::new(),
            next_commit: 0,
            next_auto_commit: 0,
            fatal: None,
            net: NetworkClient::with_base(
                Channel::GroupCoordinator,
                config.request_timeout_ms,
                GROUP_CORRELATION_BASE,
            ),
            events: VecDeque::new(),
            changes: Vec::new(),
            now: 0,
        }
    }

    /// The current generation (-1 when not in the group).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The member id ("" before the first join and after a reset).
    pub fn member_id(&self) -> &Arc<str> {
        &self.member_id
    }

    /// The generation and member id of Kafka's `groupMetadata()`: those of the last
    /// join that completed ((-1, "") before the first), kept after the member learns
    /// it is out of the group, so that a zombie's `sendOffsetsToTransaction` carries
    /// them and is refused (KIP-447).
    pub fn joined(&self) -> (i32, &Arc<str>) {
        (self.joined.0, &self.joined.1)
    }

    /// Kafka's member state.
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// The fatal error that stopped the member, if any.
    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Whether a group request with this correlation id is this coordinator's.
    pub(crate) fn owns(correlation_id: u64) -> bool {
        correlation_id >= GROUP_CORRELATION_BASE
    }

    /// Takes the application's events, oldest first.
    pub(crate) fn drain_events(&mut self) -> Vec<GroupEvent> {
        self.events.drain(..).collect()
    }

    /// Takes the fetch-state changes asked for since the last call, in order.
    pub(crate) fn take_changes(&mut self) -> Vec<AssignmentChange> {
        std::mem::take(&mut self.changes)
    }

    /// The application thread's part of `KafkaConsumer.poll` (Kafka's
    /// `ConsumerCoordinator.poll`): resets the poll timer, starts a rejoin when needed
    /// and auto-commits when the interval has passed. Requests go out in the next
    /// [`ConsumerCoordinator::run`].
    pub(crate) fn poll(&mut self, now: Millis, ctx: &GroupContext) {
        self.now = self.now.max(now);
        if self.fatal.is_some() {
            return;
        }
        self.polled = true;
        self.heartbeat.poll_deadline = now + self.rebalance_timeout_ms;
        if self.state == MemberState::Stable && self.leader {
            let counts = self.group_counts(ctx);
            if self.metadata_snapshot.as_ref() != Some(&counts) {
                // "cached metadata has changed"
                self.rejoin_needed = true;
            }
        }
        if self.rejoin_needed && self.join.is_none() {
            self.join = Some(JoinPhase::Prepare);
        }
        if self.auto_commit
            && self.join.is_none()
            && self.state == MemberState::Stable
            && now >= self.next_auto_commit
        {
            self.next_auto_commit = now + self.auto_commit_interval_ms;
            if !ctx.consumed.is_empty() {
                let deadline = now + self.default_api_timeout_ms;
                self.enqueue_commit(CommitPurpose::Auto, ctx.consumed.clone(), now, deadline);
            }
        }
    }

    /// `commitSync` (`sync`, retried until `default.api.timeout.ms`) or `commitAsync`
    /// (one attempt) of `offsets`; the outcome arrives as a [`GroupEvent`].
    pub(crate) fn commit(
        &mut self,
        now: Millis,
        offsets: Vec<CommittedOffset>,
        sync: bool,
    ) -> CommitId {
        self.now = self.now.max(now);
        let id = self.next_commit;
        let purpose = if sync {
            CommitPurpose::Sync(id)
        } else {
            CommitPurpose::Async(id)
        };
        if let Some(error) = &self.fatal {
            let error = error.clone();
            self.next_commit += 1;
            self.event(GroupEvent::CommitFailed {
                id,
                error,
                invoked_ms: now,
                generation: -1,
            });
        } else if offsets.is_empty() {
            self.next_commit += 1;
            self.event(GroupEvent::CommitCompleted {
                id,
                offsets,
                sent_ms: now,
                generation: self.generation,
            });
        } else {
            let key = self.enqueue_commit(purpose, offsets, now, now + self.default_api_timeout_ms);
            assert_eq!(key, id);
        }
        id
    }

    /// The heartbeat thread and the network side: fails timed-out requests, finds the
    /// coordinator, checks the session and poll timers, heartbeats, and sends what the
    /// join, the commits and the committed-offset lookup need.
    pub(crate) fn run(&mut self, now: Millis, ctx: &GroupContext, out: &mut Outbox) {
        self.now = self.now.max(now);
        self.expire_requests(now);
        if self.fatal.is_some() {
            return;
        }
        self.expire_commits(now);
        if !self.polled {
            return;
        }
        let Some(coordinator) = self.coordinator else {
            let finding = self
                .net
                .kinds()
                .any(|k| matches!(k, GroupRequest::FindCoordinator));
            if !finding && now >= self.find_not_before {
                let request = Request::FindCoordinator(FindCoordinatorRequest {
                    key: self.group_id.clone(),
                    key_type: CoordinatorType::Group,
                });
                let timeout = self.request_timeout_ms;
                self.send(
                    now,
                    ctx.least_loaded,
                    request,
                    GroupRequest::FindCoordinator,
                    timeout,
                    out,
                );
            }
            return;
        };
        if self.heartbeat_enabled() {
            if now >= self.heartbeat.session_deadline {
                self.mark_coordinator_unknown(now);
                return self.run(now, ctx, out);
            } else if now >= self.heartbeat.poll_deadline {
                self.maybe_leave_group(now, "consumer poll timeout has expired.", out);
            } else if !self.heartbeat.in_flight && now >= self.heartbeat.next_at {
                self.send_heartbeat(now, coordinator, out);
            }
        }
        if self.join == Some(JoinPhase::Prepare) {
            self.on_join_prepare(now, ctx);
        }
        if let Some(JoinPhase::Join { not_before }) = self.join {
            if now >= not_before {
                self.send_join_group(now, coordinator, out);
            }
        }
        self.send_commits(now, coordinator, out);
        self.send_offset_fetch(now, coordinator, out);
        if self.coordinator.is_none() {
            // A commit failed over to a new coordinator meanwhile.
            self.run(now, ctx, out);
        }
    }

    /// Handles the answer to one of this coordinator's requests; the consumer calls
    /// [`ConsumerCoordinator::run`] next.
    pub(crate) fn on_response(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        response: Response,
        ctx: &GroupContext,
        out: &mut Outbox,
    ) {
        self.now = self.now.max(now);
        let Some(request) = self.net.complete(from, correlation_id) else {
            return; // late: already failed
        };
        if self.fatal.is_some() {
            return;
        }
        match (request.kind, response) {
            (GroupRequest::FindCoordinator, Response::FindCoordinator(r)) => {
                match (r.error, r.node_id) {
                    (ErrorCode::None, Some(node)) => {
                        self.coordinator = Some(node);
                        if self.last_discovered != Some(node) {
                            self.last_discovered = Some(node);
                            self.event(GroupEvent::CoordinatorDiscovered { broker: node });
                        }
                        // Kafka's `heartbeat.resetSessionTimeout()` on discovery.
                        self.heartbeat.session_deadline = now + self.session_timeout_ms;
                    }
                    _ => self.find_not_before = now + self.retry_backoff_ms,
                }
            }
            (GroupRequest::JoinGroup, Response::JoinGroup(r)) => {
                self.handle_join_group(now, request.broker, r, ctx, out)
            }
            (GroupRequest::SyncGroup, Response::SyncGroup(r)) => {
                self.handle_sync_group(now, r.error, r.assignment)
            }
            (GroupRequest::Heartbeat { generation }, Response::Heartbeat(r)) => {
                self.handle_heartbeat(now, generation, r.error)
            }
            (GroupRequest::LeaveGroup, Response::LeaveGroup(_)) => {}
            (GroupRequest::OffsetCommit { key }, Response::OffsetCommit(r)) => {
                let error = ErrorCode::first_error(&r.partitions);
                self.handle_commit_error(now, key, error);
            }
            (
                GroupRequest::OffsetFetch {
                    generation,
                    sent_ms,
                    partitions,
                },
                Response::OffsetFetch(r),
            ) => self.handle_offset_fetch(now, generation, sent_ms, partitions, r.error, r.offsets),
            (kind, response) => {
                panic!("group response {response:?} does not match its request {kind:?}")
            }
        }
    }

    /// The connection to `broker` broke: every group request to it fails.
    pub(crate) fn on_disconnect(&mut self, now: Millis, broker: BrokerId) {
        self.now = self.now.max(now);
        self.connection_failed(now, broker);
    }

    /// The earliest time [`ConsumerCoordinator::run`] has something to do.
    pub(crate) fn next_timer(&self) -> Option<Millis> {
        if self.fatal.is_some() {
            return None;
        }
        let mut times: Vec<Millis> = self.net.deadlines().collect();
        times.extend(
            self.commits
                .values()
                .filter(|c| c.in_flight.is_none())
                .map(|c| c.deadline),
        );
        if self.polled {
            match self.coordinator {
                None => {
                    if !self
                        .net
                        .kinds()
                        .any(|k| matches!(k, GroupRequest::FindCoordinator))
                    {
                        times.push(self.find_not_before);
                    }
                }
                Some(_) => {
                    if self.heartbeat_enabled() {
                        times.push(self.heartbeat.session_deadline);
                        times.push(self.heartbeat.poll_deadline);
                        if !self.heartbeat.in_flight {
                            times.push(self.heartbeat.next_at);
                        }
                    }
                    if let Some(JoinPhase::Join { not_before }) = self.join {
                        times.push(not_before);
                    }
                    times.extend(
                        self.commits
                            .values()
                            .filter(|c| c.in_flight.is_none())
                            .map(|c| c.not_before),
                    );
                    if self.offset_fetch_due() {
                        times.push(self.offset_fetch_not_before);
                    }
                }
            }
        }
        times.into_iter().filter(|t| *t > self.now).min()
    }

    // ------------------------------------------------------------ internals

    fn heartbeat_enabled(&self) -> bool {
        matches!(
            self.state,
            MemberState::CompletingRebalance | MemberState::Stable
        )
    }

    fn event(&mut self, event: GroupEvent) {
        self.events.push_back(event);
        assert!(
            self.events.len() <= MAX_EVENTS,
            "more than {MAX_EVENTS} group events not drained by the application"
        );
    }

    fn send(
        &mut self,
        now: Millis,
        broker: BrokerId,
        request: Request,
        kind: GroupRequest,
        timeout_ms: u64,
        out: &mut Outbox,
    ) {
        self.net
            .send_with_timeout(now, broker, request, Some(kind), timeout_ms, out);
        assert!(
            self.net.kinds().count() <= MAX_IN_FLIGHT,
            "more than {MAX_IN_FLIGHT} group requests in flight"
        );
    }

    /// The partition counts of the group's topics that the metadata knows.
    fn group_counts(&self, ctx: &GroupContext) -> BTreeMap<Arc<str>, u32> {
        ctx.partition_counts
            .iter()
            .filter(|(t, _)| self.group_topics.contains(*t))
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    /// Requests past their deadline fail like a broken connection.
    fn expire_requests(&mut self, now: Millis) {
        for broker in self.net.timed_out_brokers(now) {
            self.connection_failed(now, broker);
        }
    }

    /// Every request to `broker` failed; if it is the coordinator, it is unknown now.
    fn connection_failed(&mut self, now: Millis, broker: BrokerId) {
        if self.coordinator == Some(broker) {
            self.mark_coordinator_unknown(now);
        }
        for request in self.net.fail_where(|r| r.broker == broker) {
            self.request_failed(now, request.kind);
        }
    }

    /// `markCoordinatorUnknown`: forget the coordinator and fail every request to it
    /// (Kafka closes the coordinator connection); look it up again at once.
    fn mark_coordinator_unknown(&mut self, now: Millis) {
        let Some(old) = self.coordinator.take() else {
            return;
        };
        self.find_not_before = now;
        let to_old = |r: &InFlightRequest<GroupRequest>| {
            r.broker == old && !matches!(r.kind, GroupRequest::FindCoordinator)
        };
        for request in self.net.fail_where(to_old) {
            self.request_failed(now, request.kind);
        }
    }

    /// A request failed without an answer (disconnect or timeout).
    fn request_failed(&mut self, now: Millis, kind: GroupRequest) {
        match kind {
            GroupRequest::FindCoordinator => {
                self.find_not_before = now + self.retry_backoff_ms;
                self.changes.push(AssignmentChange::NodeFailed);
            }
            GroupRequest::JoinGroup | GroupRequest::SyncGroup => {
                if self.fatal.is_none() && self.state != MemberState::Unjoined {
                    self.state = MemberState::PreparingRebalance;
                }
                if matches!(
                    self.join,
                    Some(JoinPhase::JoinInFlight | JoinPhase::SyncInFlight)
                ) {
                    self.join = Some(JoinPhase::Join {
                        not_before: now + self.retry_backoff_ms,
                    });
                }
            }
            GroupRequest::Heartbeat { .. } => {
                // `failHeartbeat`: try again after the backoff.
                self.heartbeat.in_flight = false;
                self.heartbeat.next_at = now + self.retry_backoff_ms;
            }
            GroupRequest::LeaveGroup => {}
            GroupRequest::OffsetCommit { key } => {
                let error = "RetriableCommitFailedException: DisconnectException".to_string();
                self.commit_done(now, key, Err((error, true)));
            }
            GroupRequest::OffsetFetch { .. } => {
                self.offset_fetch_not_before = now + self.retry_backoff_ms;
            }
        }
    }

    /// `resetStateAndGeneration`: out of the group; rejoin on the next poll.
    fn reset_generation(&mut self, reset_member_id: bool) {
        self.generation = -1;
        self.state = MemberState::Unjoined;
        if reset_member_id {
            self.member_id = Arc::from("");
        }
        self.rejoin_needed = true;
    }

    /// `onPartitionsRevoked` (or, when `lost`, `onPartitionsLost`) for every partition.
    fn revoke_all(&mut self, lost: bool) {
        let revoked = std::mem::take(&mut self.assignment);
        if !revoked.is_empty() {
            self.changes.push(AssignmentChange::Revoke(revoked.clone()));
            self.event(GroupEvent::Revoked {
                generation: self.assignment_generation,
                partitions: revoked,
                lost,
            });
        }
    }

    /// A fatal error: the member stops for good.
    fn fail_fatally(&mut self, error: ErrorCode) {
        let error = format!("{}: {error}", exception_name(error));
        self.fatal = Some(error.clone());
        self.net.abandon_all();
        self.state = MemberState::Unjoined;
        self.join = None;
        self.revoke_all(true);
        self.awaiting_committed.clear();
        for (key, commit) in std::mem::take(&mut self.commits) {
            self.event(GroupEvent::CommitFailed {
                id: key,
                error: error.clone(),
                invoked_ms: commit.created_ms,
                generation: commit.last_generation,
            });
        }
        self.event(GroupEvent::Fenced { error });
    }

    /// `maybeLeaveGroup`: a dynamic member sends `LeaveGroup` (best effort, never
    /// retried); every member resets its generation and rejoins on the next poll.
    fn maybe_leave_group(&mut self, now: Millis, reason: &str, out: &mut Outbox) {
        let send = self.group_instance_id.is_none()
            && self.state != MemberState::Unjoined
            && !self.member_id.is_empty();
        if let (true, Some(coordinator)) = (send, self.coordinator) {
            let request = Request::LeaveGroup(LeaveGroupRequest {
                group_id: self.group_id.clone(),
                members: vec![(self.member_id.clone(), None)],
                reason: Some(Arc::from(reason)),
            });
            let timeout = self.request_timeout_ms;
            self.send(
                now,
                coordinator,
                request,
                GroupRequest::LeaveGroup,
                timeout,
                out,
            );
        }
        self.event(GroupEvent::LeftGroup {
            reason: reason.to_string(),
            sent_leave_group: send && self.coordinator.is_some(),
        });
        self.join = None;
        self.reset_generation(true);
    }

    fn send_heartbeat(&mut self, now: Millis, coordinator: BrokerId, out: &mut Outbox) {
        self.heartbeat.in_flight = true;
        self.heartbeat.next_at = now + self.heartbeat_interval_ms;
        let request = Request::Heartbeat(HeartbeatRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
        });
        let kind = GroupRequest::Heartbeat {
            generation: self.generation,
        };
        let timeout = self.request_timeout_ms;
        self.send(now, coordinator, request, kind, timeout, out);
    }

    /// `HeartbeatResponseHandler` and the heartbeat thread's listener.
    fn handle_heartbeat(&mut self, now: Millis, generation: i32, error: ErrorCode) {
        self.heartbeat.in_flight = false;
        let current = generation == self.generation && self.heartbeat_enabled();
        match error {
            ErrorCode::None => {
                self.heartbeat.session_deadline = now + self.session_timeout_ms;
            }
            ErrorCode::RebalanceInProgress => {
                // Heartbeats go on while the group rebalances (the session must not
                // expire before the member rejoins).
                self.heartbeat.session_deadline = now + self.session_timeout_ms;
                if self.state == MemberState::Stable {
                    self.rejoin_needed = true;
                }
            }
            ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId if current => {
                self.reset_generation(error == ErrorCode::UnknownMemberId);
            }
            ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId => {}
            ErrorCode::FencedInstanceId => self.fail_fatally(error),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.mark_coordinator_unknown(now);
                self.heartbeat.next_at = now + self.retry_backoff_ms;
            }
            _ => self.heartbeat.next_at = now + self.retry_backoff_ms,
        }
    }

    /// `onJoinPrepare` (eager): with auto-commit, commit the consumed positions first
    /// (waiting at most the rebalance timeout); then revoke every partition.
    fn on_join_prepare(&mut self, now: Millis, ctx: &GroupContext) {
        if self.auto_commit && self.state == MemberState::Stable && !ctx.consumed.is_empty() {
            let deadline = now + self.rebalance_timeout_ms;
            let key = self.enqueue_commit(
                CommitPurpose::JoinPrepare,
                ctx.consumed.clone(),
                now,
                deadline,
            );
            self.join = Some(JoinPhase::PrepareCommit { key });
        } else {
            self.finish_join_prepare(now);
        }
    }

    /// Revokes (or, without a generation, loses) every partition, then joins.
    fn finish_join_prepare(&mut self, now: Millis) {
        let lost = self.generation < 0 || self.member_id.is_empty();
        self.revoke_all(lost);
        self.awaiting_committed.clear();
        self.leader = false;
        self.metadata_snapshot = None;
        self.join = Some(JoinPhase::Join { not_before: now });
    }

    fn send_join_group(&mut self, now: Millis, coordinator: BrokerId, out: &mut Outbox) {
        self.state = MemberState::PreparingRebalance;
        self.join = Some(JoinPhase::JoinInFlight);
        let subscription = Subscription {
            topics: self.topics.clone(),
            owned_partitions: Vec::new(),
        };
        let request = Request::JoinGroup(JoinGroupRequest {
            group_id: self.group_id.clone(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
            protocols: self
                .assignors
                .iter()
                .map(|a| (Arc::from(a.name()), subscription.clone()))
                .collect(),
        });
        let timeout = self
            .request_timeout_ms
            .max(self.rebalance_timeout_ms + JOIN_GROUP_TIMEOUT_LAPSE_MS);
        self.send(
            now,
            coordinator,
            request,
            GroupRequest::JoinGroup,
            timeout,
            out,
        );
    }

    /// `JoinGroupResponseHandler`; the leader assigns and every member sends
    /// `SyncGroup`.
    fn handle_join_group(
        &mut self,
        now: Millis,
        coordinator: BrokerId,
        r: JoinGroupResponse,
        ctx: &GroupContext,
        out: &mut Outbox,
    ) {
        if self.join != Some(JoinPhase::JoinInFlight) {
            return;
        }
        let retry_now = Some(JoinPhase::Join { not_before: now });
        let retry_later = Some(JoinPhase::Join {
            not_before: now + self.retry_backoff_ms,
        });
        match r.error {
            ErrorCode::None => {}
            ErrorCode::MemberIdRequired => {
                self.member_id = r.member_id;
                self.join = retry_now;
                return;
            }
            ErrorCode::UnknownMemberId => {
                self.reset_generation(true);
                self.join = retry_now;
                return;
            }
            ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration => {
                self.join = retry_now;
                return;
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.mark_coordinator_unknown(now);
                self.join = retry_later;
                return;
            }
            e if e.is_retriable() => {
                self.join = retry_later;
                return;
            }
            e => return self.fail_fatally(e),
        }
        self.generation = r.generation_id;
        self.member_id = r.member_id.clone();
        self.leader = r.leader == r.member_id;
        self.state = MemberState::CompletingRebalance;
        // The heartbeat thread is enabled: `heartbeat.resetTimeouts()`.
        self.heartbeat.next_at = now + self.heartbeat_interval_ms;
        self.heartbeat.session_deadline = now + self.session_timeout_ms;
        self.heartbeat.poll_deadline = now + self.rebalance_timeout_ms;
        let assignments = if self.leader {
            let Some(assignor) = r
                .protocol_name
                .as_deref()
                .and_then(Assignor::from_name)
                .filter(|a| self.assignors.contains(a))
            else {
                panic!(
                    "the coordinator chose protocol {:?}, not one of {:?}",
                    r.protocol_name, self.assignors
                );
            };
            self.group_topics = r
                .members
                .iter()
                .flat_map(|m| m.subscription.topics.iter().cloned())
                .collect();
            self.changes.push(AssignmentChange::GroupTopics(
                self.group_topics.iter().cloned().collect(),
            ));
            let counts = self.group_counts(ctx);
            let assignments = assignor.assign(&r.members, &counts);
            self.metadata_snapshot = Some(counts);
            assignments
        } else {
            Vec::new()
        };
        self.join = Some(JoinPhase::SyncInFlight);
        let request = Request::SyncGroup(SyncGroupRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
            assignments,
        });
        let timeout = self.request_timeout_ms;
        self.send(
            now,
            coordinator,
            request,
            GroupRequest::SyncGroup,
            timeout,
            out,
        );
    }

    /// `SyncGroupResponseHandler` and `onJoinComplete`: the new assignment.
    fn handle_sync_group(
        &mut self,
        now: Millis,
        error: ErrorCode,
        assignment: Vec<TopicPartition>,
    ) {
        if self.join != Some(JoinPhase::SyncInFlight)
            || self.state != MemberState::CompletingRebalance
        {
            return;
        }
        let retry_now = Some(JoinPhase::Join { not_before: now });
        match error {
            ErrorCode::None => {}
            ErrorCode::RebalanceInProgress => {
                self.state = MemberState::PreparingRebalance;
                self.join = retry_now;
                return;
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                self.reset_generation(error == ErrorCode::UnknownMemberId);
                self.join = retry_now;
                return;
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.mark_coordinator_unknown(now);
                self.state = MemberState::PreparingRebalance;
                self.join = Some(JoinPhase::Join {
                    not_before: now + self.retry_backoff_ms,
                });
                return;
            }
            e if e.is_retriable() => {
                self.state = MemberState::PreparingRebalance;
                self.join = Some(JoinPhase::Join {
                    not_before: now + self.retry_backoff_ms,
                });
                return;
            }
            e => return self.fail_fatally(e),
        }
        let mut assignment = assignment;
        assignment.sort();
        assignment.dedup();
        self.state = MemberState::Stable;
        self.rejoin_needed = false;
        self.join = None;
        self.assignment = assignment.clone();
        self.assignment_generation = self.generation;
        // `onJoinComplete`: the group metadata of `groupMetadata()`.
        self.joined = (self.generation, self.member_id.clone());
        self.awaiting_committed = assignment.iter().cloned().collect();
        self.offset_fetch_not_before = now;
        self.next_auto_commit = now + self.auto_commit_interval_ms;
        self.changes
            .push(AssignmentChange::Assign(assignment.clone()));
        self.event(GroupEvent::Assigned {
            generation: self.generation,
            member_id: self.member_id.clone(),
            partitions: assignment,
        });
    }

    // ------------------------------------------------------------ commits

    fn enqueue_commit(
        &mut self,
        purpose: CommitPurpose,
        offsets: Vec<CommittedOffset>,
        now: Millis,
        deadline: Millis,
    ) -> u64 {
        let key = self.next_commit;
        self.next_commit += 1;
        self.commits.insert(
            key,
            PendingCommit {
                purpose,
                offsets,
                deadline,
                not_before: now,
                in_flight: None,
                created_ms: now,
                last_generation: -1,
                last_sent_ms: now,
            },
        );
        assert!(
            self.commits.len() <= MAX_PENDING_COMMITS,
            "more than {MAX_PENDING_COMMITS} commits pending"
        );
        key
    }

    /// The commits not in flight that `pred` picks, oldest first.
    fn unsent_commits(&self, pred: impl Fn(&PendingCommit) -> bool) -> Vec<u64> {
        self.commits
            .iter()
            .filter(|(_, c)| c.in_flight.is_none() && pred(c))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Sends every commit that is due. Outside a stable generation a commit fails at
    /// once (`generationIfStable() == null`).
    fn send_commits(&mut self, now: Millis, coordinator: BrokerId, out: &mut Outbox) {
        for key in self.unsent_commits(|c| c.not_before <= now) {
            if self.coordinator != Some(coordinator) {
                return;
            }
            if self.state != MemberState::Stable {
                let error = if self.join.is_some() || self.state != MemberState::Unjoined {
                    "RebalanceInProgressException: Offset commit cannot be completed since the \
                     consumer is undergoing a rebalance for auto partition assignment"
                } else {
                    "CommitFailedException: Offset commit cannot be completed since the \
                     consumer is not part of an active group for auto partition assignment; \
                     it is likely that the consumer was kicked out of the group."
                };
                self.commit_done(now, key, Err((error.into(), false)));
                continue;
            }
            let commit = self.commits.get_mut(&key).expect("pending");
            commit.in_flight = Some(self.generation);
            commit.last_generation = self.generation;
            commit.last_sent_ms = now;
            let request = Request::OffsetCommit(OffsetCommitRequest {
                group_id: self.group_id.clone(),
                generation_id: self.generation,
                member_id: self.member_id.clone(),
                group_instance_id: self.group_instance_id.clone(),
                offsets: commit.offsets.clone(),
            });
            let timeout = self.request_timeout_ms;
            self.send(
                now,
                coordinator,
                request,
                GroupRequest::OffsetCommit { key },
                timeout,
                out,
            );
        }
    }

    /// `OffsetCommitResponseHandler`: the first partition error decides.
    fn handle_commit_error(&mut self, now: Millis, key: u64, error: ErrorCode) {
        let sent_generation = self
            .commits
            .get(&key)
            .and_then(|c| c.in_flight)
            .expect("a commit in flight");
        let result = match error {
            ErrorCode::None => Ok(()),
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::UnknownTopicOrPartition => {
                Err((format!("RetriableCommitFailedException: {error}"), true))
            }
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::RequestTimedOut => {
                self.mark_coordinator_unknown(now);
                Err((format!("RetriableCommitFailedException: {error}"), true))
            }
            ErrorCode::RebalanceInProgress => {
                self.rejoin_needed = true;
                Err((format!("RebalanceInProgressException: {error}"), false))
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                if sent_generation == self.generation {
                    self.reset_generation(error == ErrorCode::UnknownMemberId);
                }
                Err((
                    format!(
                        "CommitFailedException: {error}: the group has already rebalanced \
                         and assigned the partitions to another member"
                    ),
                    false,
                ))
            }
            ErrorCode::FencedInstanceId => return self.fail_fatally(error),
            e => Err((format!("KafkaException: {e}"), false)),
        };
        self.commit_done(now, key, result);
    }

    /// One attempt of commit `key` ended.
    fn commit_done(&mut self, now: Millis, key: u64, result: CommitResult) {
        let Some(mut commit) = self.commits.remove(&key) else {
            return;
        };
        commit.in_flight = None;
        let retry_at = now + self.retry_backoff_ms;
        let retriable = matches!(&result, Err((_, true)));
        let retry = retriable && retry_at < commit.deadline;
        let result = match result {
            Err(_) if retriable && !retry && matches!(commit.purpose, CommitPurpose::Sync(_)) => {
                Err((
                    format!(
                        "TimeoutException: Timeout of {}ms expired before successfully \
                         committing offsets",
                        self.default_api_timeout_ms
                    ),
                    false,
                ))
            }
            other => other,
        };
        let (invoked_ms, sent_ms, generation) = (
            commit.created_ms,
            commit.last_sent_ms,
            commit.last_generation,
        );
        match (commit.purpose, &result) {
            (CommitPurpose::Sync(_) | CommitPurpose::JoinPrepare, Err(_)) if retry => {
                commit.not_before = retry_at;
                self.commits.insert(key, commit);
                return;
            }
            (CommitPurpose::Auto, Err((_, true))) => {
                // Kafka retries a failed auto-commit after the backoff.
                self.next_auto_commit = self.next_auto_commit.min(retry_at);
            }
            _ => {}
        }
        let finishes_join = commit.purpose == CommitPurpose::JoinPrepare
            && self.join == Some(JoinPhase::PrepareCommit { key });
        // Every commit's outcome is an event: the application waits for its own, and
        // the history records all of them.
        self.event(match result {
            Ok(()) => GroupEvent::CommitCompleted {
                id: key,
                offsets: commit.offsets,
                sent_ms,
                generation,
            },
            Err((error, _)) => GroupEvent::CommitFailed {
                id: key,
                error,
                invoked_ms,
                generation,
            },
        });
        if finishes_join {
            self.finish_join_prepare(now);
        }
    }

    /// Commits not sent by their deadline fail with a timeout.
    fn expire_commits(&mut self, now: Millis) {
        for key in self.unsent_commits(|c| c.deadline <= now) {
            let error = "TimeoutException: the commit did not complete in time".to_string();
            self.commit_done(now, key, Err((error, false)));
        }
    }

    // ------------------------------------------------------------ committed offsets

    fn offset_fetch_due(&self) -> bool {
        self.state == MemberState::Stable
            && !self.awaiting_committed.is_empty()
            && !self
                .net
                .kinds()
                .any(|k| matches!(k, GroupRequest::OffsetFetch { .. }))
    }

    /// The application re-initializes `partitions` (assigned ones only) from the
    /// committed offsets (Kafka Streams' task revival, `StreamTask`'s
    /// `mainConsumer.committed(...)` then `seek`): they wait for an `OffsetFetch` again.
    pub(crate) fn refetch_committed(&mut self, partitions: &[TopicPartition]) {
        self.awaiting_committed.extend(
            partitions
                .iter()
                .filter(|tp| self.assignment.contains(tp))
                .cloned(),
        );
    }

    /// `refreshCommittedOffsetsIfNeeded`: one `OffsetFetch` for the partitions still
    /// waiting for their committed offsets.
    fn send_offset_fetch(&mut self, now: Millis, coordinator: BrokerId, out: &mut Outbox) {
        if self.coordinator != Some(coordinator)
            || !self.offset_fetch_due()
            || now < self.offset_fetch_not_before
        {
            return;
        }
        let request = Request::OffsetFetch(OffsetFetchRequest {
            group_id: self.group_id.clone(),
            partitions: self.awaiting_committed.iter().cloned().collect(),
            // KIP-447: every member asks for stable offsets only, whatever its
            // isolation level (`ConsumerCoordinator.sendOffsetFetchRequest` passes
            // `requireStable=true`); the coordinator answers `UNSTABLE_OFFSET_COMMIT`,
            // retried, while transactional commits of the partitions are pending.
            require_stable: true,
        });
        let kind = GroupRequest::OffsetFetch {
            generation: self.generation,
            sent_ms: now,
            partitions: self.awaiting_committed.clone(),
        };
        let timeout = self.request_timeout_ms;
        self.send(now, coordinator, request, kind, timeout, out);
    }

    /// `OffsetFetchResponseHandler`: positions for the partitions still waiting.
    fn handle_offset_fetch(
        &mut self,
        now: Millis,
        generation: i32,
        sent_ms: Millis,
        asked: BTreeSet<TopicPartition>,
        error: ErrorCode,
        offsets: Vec<CommittedOffset>,
    ) {
        match error {
            ErrorCode::None => {}
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.mark_coordinator_unknown(now);
                self.offset_fetch_not_before = now + self.retry_backoff_ms;
                return;
            }
            _ => {
                // COORDINATOR_LOAD_IN_PROGRESS, UNSTABLE_OFFSET_COMMIT (KIP-447: a
                // transaction's offsets are pending), ...: retried after the backoff.
                self.offset_fetch_not_before = now + self.retry_backoff_ms;
                return;
            }
        }
        if generation != self.generation || self.state != MemberState::Stable {
            return; // asked for an assignment that is gone
        }
        let (waiting, later): (BTreeSet<_>, BTreeSet<_>) =
            std::mem::take(&mut self.awaiting_committed)
                .into_iter()
                .partition(|tp| asked.contains(tp));
        // Partitions that began waiting after this request went out ask again.
        self.awaiting_committed = later;
        let committed = waiting
            .into_iter()
            .map(|tp| {
                let c = offsets
                    .iter()
                    .find(|c| c.tp == tp && c.offset >= 0)
                    .cloned();
                (tp, c)
            })
            .collect();
        self.changes.push(AssignmentChange::Committed {
            sent_ms,
            offsets: committed,
        });
    }
}

/// Kafka's client exception for a fatal group error.
fn exception_name(error: ErrorCode) -> &'static str {
    match error {
        ErrorCode::FencedInstanceId => "FencedInstanceIdException",
        ErrorCode::InvalidSessionTimeout => "InvalidSessionTimeoutException",
        _ => "KafkaException",
    }
}
