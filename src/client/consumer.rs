//! The consumer client: Kafka's `KafkaConsumer` (`Fetcher`, `OffsetFetcher`,
//! `SubscriptionState`) as a sans-IO state machine, in two modes.
//!
//! **Assign mode** ([`Consumer::new`]): every partition of the configured topics is
//! assigned once metadata names it. A partition without a position gets one from
//! `ListOffsets` per `auto.offset.reset`; partitions with a position are fetched from
//! their leader, one `Fetch` in flight per broker. What the application would see from
//! `poll` is recorded as history entries as soon as it is fetched: [`Op::Poll`] for new
//! records, [`Op::Seek`] for position resets and [`Op::ObserveHighWatermark`] whenever
//! a partition's high watermark changes.
//!
//! **Subscribe mode** ([`Consumer::subscribe`]): the partitions come from the group
//! (see [`crate::client::consumer_coordinator`]). The application drives it:
//! - [`Consumer::poll`] returns up to `max.poll.records` fetched records in fetch order
//!   and advances the positions past them (Kafka's consumed positions, which commits
//!   use); it also starts rebalances, auto-commits and resets the
//!   `max.poll.interval.ms` timer. Fetched records wait in a buffer until polled, and
//!   a partition with buffered records is not fetched again (Kafka's fetch buffer).
//!   Each poll records one [`Op::Poll`] entry per partition run it returns.
//! - [`Consumer::commit_sync`] / [`Consumer::commit_async`] return a [`CommitId`]; the
//!   outcome, like every group happening (assignment, revocation, fencing, leaving),
//!   is a [`GroupEvent`] the application takes with [`Consumer::drain_events`].
//! - A new partition's position is its committed offset (`OffsetFetch`, recorded as an
//!   [`Op::Seek`] with reason `committed offset`), else `auto.offset.reset` as in
//!   assign mode.

use crate::actor::{Actor, Channel, Outbox, WallClock};
use crate::bugs::{Bug, Bugs};
use crate::client::consumer_coordinator::{AssignmentChange, ConsumerCoordinator, GroupContext};
pub use crate::client::consumer_coordinator::{CommitId, GroupEvent, MemberState};
use crate::client::network::{self, InFlightRequest, MetadataCache, NetworkClient};
use crate::history::{Entry, Op, Outcome, ReadRecord, Value};
use crate::kafka::config::IsolationLevel;
use crate::kafka::config::{AutoOffsetReset, ConsumerConfig};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    AbortedTransaction, BrokerId, CommittedOffset, ErrorCode, FetchPartition,
    FetchPartitionResponse, FetchRequest, FetchResponse, LeaderEpoch, ListOffsetsRequest,
    ListOffsetsResponse, Message, NodeId, Offset, OffsetsForLeaderEpochRequest,
    OffsetsForLeaderEpochResponse, Request, Response, TopicPartition, EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
};
use crate::kafka::record::{ControlRecordType, EndTransactionMarker, RecordBatch, RecordError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

mod positions;

mod offsets_for_times;

/// The partition's answer in a `ListOffsets` response (which answers every partition
/// asked).
fn answer_for<'a>(
    response: &'a ListOffsetsResponse,
    tp: &TopicPartition,
) -> &'a crate::kafka::protocol::ListOffsetsPartitionResponse {
    response
        .partitions
        .iter()
        .find(|p| p.tp == *tp)
        .unwrap_or_else(|| panic!("ListOffsets response lacks partition {tp}"))
}

/// Bound on `offsetsForTimes` lookups under way (one per partition at most).
const MAX_TIMESTAMP_LOOKUPS: usize = 10_000;

/// One record returned by [`Consumer::poll`] (Kafka's `ConsumerRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its partition.
    pub partition: TopicPartition,
    /// Its offset.
    pub offset: Offset,
    /// Its key, if any.
    pub key: Option<String>,
    /// Its value.
    pub value: Value,
    /// The leader epoch of its batch (KIP-320).
    pub leader_epoch: LeaderEpoch,
}

/// Subscribe mode's fetched records of one partition, not yet polled (Kafka's
/// `CompletedFetch` in the `FetchBuffer`).
#[derive(Debug)]
struct CompletedFetch {
    tp: TopicPartition,
    records: VecDeque<(ReadRecord, LeaderEpoch)>,
    /// The position once every record is consumed (past trailing control batches).
    next_position: Offset,
    /// The high watermark of the response that carried them.
    high_watermark: Offset,
}

/// What the consumer needs to handle a response.
#[derive(Debug)]
enum ConsumerRequest {
    /// A `Metadata` refresh.
    Metadata,
    /// A `Fetch`: each partition with the offset it was fetched at.
    Fetch {
        partitions: Vec<(TopicPartition, Offset)>,
    },
    /// A `ListOffsets` for partitions whose position is being reset.
    ListOffsets { partitions: Vec<TopicPartition> },
    /// A `ListOffsets` by timestamp for `offsetsForTimes` lookups.
    OffsetsForTimes { partitions: Vec<TopicPartition> },
    /// An `OffsetsForLeaderEpoch` validating positions (KIP-320): each partition with
    /// the position it validates.
    OffsetsForLeaderEpoch {
        partitions: Vec<(TopicPartition, Offset)>,
    },
}

/// An `offsetsForTimes` lookup of one partition not answered yet.
#[derive(Debug)]
struct TimestampLookup {
    /// The timestamp looked up (CreateTime, ms).
    timestamp: i64,
    /// When it was asked for.
    invoke_ms: Millis,
    /// `default.api.timeout.ms` after it was asked for: `TimeoutException`.
    deadline: Millis,
    /// The correlation id of its `ListOffsets` in flight, if any.
    in_flight: Option<u64>,
    /// No retry before this time.
    backoff_until: Millis,
}

/// The scenario's timestamp probe: every `every_ms`, an `offsetsForTimes` lookup of
/// `now - lag_ms` on each partition.
#[derive(Debug)]
struct TimestampProbe {
    every_ms: Millis,
    lag_ms: Millis,
    next_ms: Millis,
}

/// A position reset waiting for (or awaiting) its `ListOffsets` answer.
#[derive(Debug)]
struct PendingReset {
    /// The `Seek` entry's reason.
    reason: String,
    /// The correlation id of the `ListOffsets` in flight, if any.
    in_flight: Option<u64>,
}

/// A position awaiting validation (KIP-320's `AWAIT_VALIDATION`).
#[derive(Debug)]
struct PendingValidation {
    /// The correlation id of the `OffsetsForLeaderEpoch` in flight, if any.
    in_flight: Option<u64>,
}

/// `SubscriptionState.TopicPartitionState`: one assigned partition.
#[derive(Debug)]
struct PartitionState {
    /// The next offset to fetch.
    position: Option<Offset>,
    /// The position must be (re)set with `ListOffsets`.
    reset: Option<PendingReset>,
    /// No fetch or `ListOffsets` for it before this time.
    backoff_until: Millis,
    /// The last high watermark seen in a fetch response.
    last_high_watermark: Option<Offset>,
    /// The last stable offset last seen (`read_committed` only).
    last_stable_offset: Option<Offset>,
    /// `auto.offset.reset=none` left it without a valid position: not fetched any more.
    failed: bool,
    /// Subscribe mode: waiting for its committed offset (Kafka's `INITIALIZING`).
    initializing: bool,
    /// The leader epoch of the last consumed record (or of the committed offset), -1.
    position_epoch: LeaderEpoch,
    /// The leader (and its epoch) the position was last validated against or taken
    /// with (Kafka's `FetchPosition.currentLeader`); a different one in the metadata
    /// means the position must be validated.
    current_leader: Option<(BrokerId, LeaderEpoch)>,
    /// `AWAIT_VALIDATION` (KIP-320): not fetched until `OffsetsForLeaderEpoch` says
    /// where the position's epoch ends on the current leader.
    validation: Option<PendingValidation>,
    /// Subscribe mode: fetched records wait in the fetch buffer; not fetched meanwhile.
    buffered: bool,
}

impl PartitionState {
    fn new() -> Self {
        PartitionState {
            position: None,
            reset: None,
            backoff_until: 0,
            last_high_watermark: None,
            last_stable_offset: None,
            failed: false,
            initializing: false,
            position_epoch: -1,
            current_leader: None,
            validation: None,
            buffered: false,
        }
    }
}

/// A Kafka consumer, sans-IO: assign mode or subscribe mode (see the module docs).
#[derive(Debug)]
pub struct Consumer {
    index: u32,
    process: NodeId,
    config: ConsumerConfig,
    topics: Vec<Arc<str>>,
    metadata: MetadataCache,
    net: NetworkClient<ConsumerRequest>,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    /// Subscribe mode's group membership; `None` in assign mode.
    group: Option<Box<ConsumerCoordinator>>,
    /// Subscribe mode's fetch buffer, in fetch order (at most one per partition).
    completed_fetches: VecDeque<CompletedFetch>,
    /// Assign mode's `offsetsForTimes` lookups not answered yet (one per partition).
    timestamp_lookups: BTreeMap<TopicPartition, TimestampLookup>,
    /// Assign mode's periodic timestamp lookups, if the scenario asks for them.
    timestamp_probe: Option<TimestampProbe>,
    /// The latest time seen (timers are computed relative to it).
    now: Millis,
    /// Switched-off safeguards.
    bugs: Bugs,
    /// The process's wall clock: the timestamp probe's targets.
    clock: WallClock,
}

/// The history entry of a poll of `tp` that threw `error` to the application.
fn failed_poll(
    process: NodeId,
    now: Millis,
    read_committed: bool,
    tp: TopicPartition,
    high_watermark: Offset,
    error: String,
) -> Entry {
    Entry {
        outcome: Outcome::Fail { error },
        ..Entry::instant(
            process,
            now,
            Op::Poll {
                read_committed,
                partition: tp,
                records: Vec::new(),
                high_watermark,
            },
        )
    }
}

impl Consumer {
    /// An `assign`-mode consumer of all partitions of `topics` (group membership comes
    /// later), with its history index, configuration, bootstrap brokers and random seed
    /// (the first bootstrap broker).
    pub fn new(
        index: u32,
        config: ConsumerConfig,
        bootstrap: Vec<BrokerId>,
        topics: Vec<Arc<str>>,
        seed: u64,
    ) -> Self {
        assert!(!bootstrap.is_empty(), "a consumer needs bootstrap brokers");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let first_node = rng.gen_range(0..bootstrap.len());
        let mut metadata = MetadataCache::new(
            bootstrap,
            first_node,
            config.metadata_max_age_ms,
            config.retry_backoff_ms,
        );
        for topic in &topics {
            metadata.add_topic(topic);
        }
        Consumer {
            index,
            process: NodeId::Consumer(index),
            net: NetworkClient::new(Channel::Consumer, config.request_timeout_ms),
            config,
            topics,
            metadata,
            assignment: BTreeMap::new(),
            group: None,
            completed_fetches: VecDeque::new(),
            timestamp_lookups: BTreeMap::new(),
            timestamp_probe: None,
            now: 0,
            bugs: Bugs::default(),
            clock: WallClock::default(),
        }
    }

    /// Whether the consumer reads with `isolation.level=read_committed`.
    fn read_committed(&self) -> bool {
        self.config.isolation_level == IsolationLevel::ReadCommitted
    }

    /// A subscribe-mode consumer: a member of `config.group_id` subscribed to `topics`
    /// (Kafka's `subscribe`), which joins the group on its first [`Consumer::poll`].
    /// Panics when the configuration fails [`ConsumerConfig::validate`] or has no
    /// `group.id`.
    pub fn subscribe(
        index: u32,
        config: ConsumerConfig,
        bootstrap: Vec<BrokerId>,
        topics: Vec<Arc<str>>,
        seed: u64,
    ) -> Self {
        if let Err((property, message)) = config.validate() {
            panic!("invalid consumer config {property}: {message}");
        }
        let group = ConsumerCoordinator::new(&config, &topics);
        let mut consumer = Consumer::new(index, config, bootstrap, topics, seed);
        consumer.group = Some(Box::new(group));
        consumer
    }

    /// `KafkaConsumer.poll` (subscribe mode): takes part in the group (rebalances,
    /// auto-commit, the `max.poll.interval.ms` timer), then returns up to
    /// `max.poll.records` buffered records in fetch order and moves the positions past
    /// them, recording an [`Op::Poll`] per partition run. Returns nothing once the
    /// member is fenced.
    pub fn poll(&mut self, now: Millis, out: &mut Outbox) -> Vec<ConsumedRecord> {
        self.now = self.now.max(now);
        let ctx = self.group_context();
        let group = self.group.as_mut().expect("poll is for subscribe mode");
        group.poll(now, &ctx);
        self.run(now, out);
        let records = self.drain_fetch_buffer(now, out);
        self.run(now, out);
        records
    }

    /// `commitSync(offsets)` (subscribe mode): commits `offsets`, or every consumed
    /// position when `None`, with the member's generation; retriable errors are
    /// retried until `default.api.timeout.ms`. The outcome is a
    /// [`GroupEvent::CommitCompleted`] or [`GroupEvent::CommitFailed`] with this id.
    pub fn commit_sync(
        &mut self,
        now: Millis,
        offsets: Option<Vec<CommittedOffset>>,
        out: &mut Outbox,
    ) -> CommitId {
        self.commit(now, offsets, true, out)
    }

    /// `commitAsync(offsets)` (subscribe mode): like [`Consumer::commit_sync`], but one
    /// attempt only (a retriable error fails it with `RetriableCommitFailedException`).
    pub fn commit_async(
        &mut self,
        now: Millis,
        offsets: Option<Vec<CommittedOffset>>,
        out: &mut Outbox,
    ) -> CommitId {
        self.commit(now, offsets, false, out)
    }

    fn commit(
        &mut self,
        now: Millis,
        offsets: Option<Vec<CommittedOffset>>,
        sync: bool,
        out: &mut Outbox,
    ) -> CommitId {
        let offsets = offsets.unwrap_or_else(|| self.consumed());
        let group = self.group.as_mut().expect("commits are for subscribe mode");
        let id = group.commit(now, offsets, sync);
        self.run(now, out);
        id
    }

    /// The partitions assigned now (every known partition of the topics in assign
    /// mode).
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The group generation (subscribe mode; -1 when not in the group).
    pub fn generation(&self) -> Option<i32> {
        self.group.as_ref().map(|g| g.generation())
    }

    /// The member id (subscribe mode; empty before joining).
    pub fn member_id(&self) -> Option<Arc<str>> {
        self.group.as_ref().map(|g| g.member_id().clone())
    }

    /// The generation and member id of `KafkaConsumer.groupMetadata()` (subscribe mode):
    /// those of the last completed join, even after the member learned it was evicted
    /// (Kafka's `ConsumerCoordinator.groupMetadata`, set only in `onJoinComplete`).
    pub fn group_metadata(&self) -> Option<(i32, Arc<str>)> {
        self.group.as_ref().map(|g| {
            let (generation, member_id) = g.joined();
            (generation, member_id.clone())
        })
    }

    /// Kafka's member state (subscribe mode).
    pub fn member_state(&self) -> Option<MemberState> {
        self.group.as_ref().map(|g| g.state())
    }

    /// The fatal error that stopped the member (`FencedInstanceIdException: ...`).
    pub fn fatal_error(&self) -> Option<&str> {
        self.group.as_ref().and_then(|g| g.fatal_error())
    }

    /// Takes the group events not yet taken, oldest first (none in assign mode).
    pub fn drain_events(&mut self) -> Vec<GroupEvent> {
        self.group
            .as_mut()
            .map(|g| g.drain_events())
            .unwrap_or_default()
    }

    /// `SubscriptionState.allConsumed`: every position with the epoch of its last
    /// consumed record.
    fn consumed(&self) -> Vec<CommittedOffset> {
        self.assignment
            .iter()
            // A position awaiting validation is still what the application consumed
            // (a pipeline commits it with the transaction that processed its records).
            .filter(|(_, s)| !s.initializing && !s.failed && s.reset.is_none())
            .filter_map(|(tp, s)| {
                s.position.map(|offset| CommittedOffset {
                    tp: tp.clone(),
                    offset,
                    leader_epoch: s.position_epoch,
                })
            })
            .collect()
    }

    fn group_context(&self) -> GroupContext {
        GroupContext {
            least_loaded: self.metadata.least_loaded_node(&self.net),
            partition_counts: self
                .metadata
                .partition_counts()
                .map(|(t, n)| (t.clone(), n))
                .collect(),
            consumed: self.consumed(),
        }
    }

    /// Runs the group's network side and applies what it changed.
    fn run_group(&mut self, now: Millis, out: &mut Outbox) {
        if self.group.is_none() {
            return;
        }
        let ctx = self.group_context();
        let group = self.group.as_mut().expect("subscribe mode");
        group.run(now, &ctx, out);
        let changes = group.take_changes();
        for change in changes {
            self.apply_change(now, change, out);
        }
    }

    fn apply_change(&mut self, now: Millis, change: AssignmentChange, out: &mut Outbox) {
        match change {
            AssignmentChange::Revoke(partitions) => {
                let revoked: BTreeSet<TopicPartition> = partitions.into_iter().collect();
                for tp in &revoked {
                    self.assignment.remove(tp);
                }
                self.completed_fetches.retain(|f| !revoked.contains(&f.tp));
            }
            AssignmentChange::Assign(partitions) => {
                for tp in partitions {
                    let state = PartitionState {
                        initializing: true,
                        ..PartitionState::new()
                    };
                    assert!(
                        self.assignment.insert(tp, state).is_none(),
                        "eager rebalancing revokes everything before assigning"
                    );
                }
            }
            AssignmentChange::Committed { sent_ms, offsets } => {
                let fetched = offsets
                    .iter()
                    .filter(|(tp, _)| self.assignment.get(tp).is_some_and(|s| s.initializing))
                    .map(|(tp, c)| (tp.clone(), c.as_ref().map(|c| c.offset)))
                    .collect::<Vec<_>>();
                if !fetched.is_empty() {
                    out.record(Entry {
                        index: 0,
                        process: self.process(),
                        invoke_ms: sent_ms,
                        complete_ms: Some(now),
                        outcome: Outcome::Ok,
                        op: Op::FetchCommitted {
                            group: self.config.group_id.clone().unwrap_or_default(),
                            member: self.member_id().map(|m| m.to_string()).unwrap_or_default(),
                            generation: self.generation().unwrap_or(-1),
                            offsets: fetched,
                        },
                    });
                }
                for (tp, offset) in offsets {
                    let policy = self.reset_policy_name();
                    let none_policy = self.config.auto_offset_reset == AutoOffsetReset::None;
                    let Some(state) = self.assignment.get_mut(&tp).filter(|s| s.initializing)
                    else {
                        continue;
                    };
                    state.initializing = false;
                    match offset {
                        Some(c) => {
                            state.position = Some(c.offset);
                            state.position_epoch = c.leader_epoch;
                            out.record(Entry::instant(
                                self.process(),
                                now,
                                Op::Seek {
                                    partition: tp,
                                    offset: c.offset,
                                    reason: "committed offset".into(),
                                },
                            ));
                        }
                        None if none_policy => {
                            state.failed = true;
                            self.no_offset(now, &tp, out);
                        }
                        None => {
                            state.reset = Some(PendingReset {
                                reason: format!("no committed offset; auto.offset.reset={policy}"),
                                in_flight: None,
                            });
                        }
                    }
                }
            }
            AssignmentChange::GroupTopics(topics) => {
                for topic in &topics {
                    self.metadata.add_topic(topic);
                }
            }
            AssignmentChange::NodeFailed => self.metadata.rotate(),
        }
    }

    /// Takes up to `max.poll.records` records from the fetch buffer.
    fn drain_fetch_buffer(&mut self, now: Millis, out: &mut Outbox) -> Vec<ConsumedRecord> {
        let read_committed = self.read_committed();
        let mut records = Vec::new();
        while records.len() < self.config.max_poll_records {
            let Some(fetch) = self.completed_fetches.front_mut() else {
                break;
            };
            let state = self
                .assignment
                .get_mut(&fetch.tp)
                .expect("revoked partitions leave the fetch buffer");
            let take = (self.config.max_poll_records - records.len()).min(fetch.records.len());
            let mut polled = Vec::with_capacity(take);
            for (record, epoch) in fetch.records.drain(..take) {
                state.position = Some(record.offset + 1);
                state.position_epoch = epoch;
                records.push(ConsumedRecord {
                    partition: fetch.tp.clone(),
                    offset: record.offset,
                    key: record.key.clone(),
                    value: record.value,
                    leader_epoch: epoch,
                });
                polled.push(record);
            }
            out.record(Entry::instant(
                self.process,
                now,
                Op::Poll {
                    read_committed,
                    partition: fetch.tp.clone(),
                    records: polled,
                    high_watermark: fetch.high_watermark,
                },
            ));
            if fetch.records.is_empty() {
                state.position = Some(fetch.next_position);
                state.buffered = false;
                self.completed_fetches.pop_front();
            }
        }
        records
    }

    /// Current position per assigned partition that has one (for the end-of-run
    /// snapshot).
    pub fn positions(&self) -> Vec<(TopicPartition, Offset)> {
        self.assignment
            .iter()
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect()
    }

    /// The process its history entries name.
    pub fn process(&self) -> NodeId {
        self.process
    }

    /// Runs with the given safeguards switched off (`no-position-validation`).
    pub fn with_bugs(mut self, bugs: Bugs) -> Self {
        self.bugs = bugs;
        self
    }

    /// Runs as `process` (a pipeline's consumer shares its process with a producer).
    pub fn with_process(mut self, process: NodeId) -> Self {
        self.process = process;
        self
    }

    /// The positions a commit of everything consumed would commit (Kafka's
    /// `SubscriptionState.allConsumed`), for `sendOffsetsToTransaction`.
    pub fn consumed_offsets(&self) -> Vec<CommittedOffset> {
        self.consumed()
    }

    /// Subscribe mode: every assigned partition takes its position again from the
    /// group's committed offsets, as Kafka Streams re-initializes a task it closed dirty
    /// (`TaskManager.closeDirtyAndRevive` -> `StreamTask`'s `mainConsumer.committed()`
    /// and `seek`): positions are dropped with what was fetched, and an `OffsetFetch`
    /// (`require_stable`, KIP-447: it waits out pending
    /// transactional commits) sets them, recorded as seeks to the committed offset.
    pub fn seek_to_committed(&mut self) {
        let Some(group) = self.group.as_mut() else {
            return;
        };
        let partitions: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        for state in self.assignment.values_mut() {
            *state = PartitionState {
                initializing: true,
                ..PartitionState::new()
            };
        }
        self.completed_fetches.clear();
        group.refetch_committed(&partitions);
    }

    /// `KafkaConsumer.seek`: the next poll of `tp` starts at `offset` (an assigned
    /// partition with a position only; records already fetched past it are dropped).
    /// Recorded as an [`Op::Seek`] with `reason`.
    pub fn seek(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        offset: Offset,
        reason: &str,
        out: &mut Outbox,
    ) {
        let Some(state) = self
            .assignment
            .get_mut(tp)
            .filter(|s| s.position.is_some() && !s.initializing)
        else {
            return;
        };
        state.position = Some(offset);
        // Kafka's `seek(partition, offset)`: no epoch, so no validation.
        state.position_epoch = -1;
        state.validation = None;
        state.reset = None;
        state.buffered = false;
        self.completed_fetches.retain(|f| &f.tp != tp);
        out.record(Entry::instant(
            self.process,
            now,
            Op::Seek {
                partition: tp.clone(),
                offset,
                reason: reason.to_string(),
            },
        ));
    }

    fn reset_policy_name(&self) -> &'static str {
        match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::None => "none",
        }
    }

    /// One step: fail timed-out requests, refresh metadata, reset positions, fetch.
    fn run(&mut self, now: Millis, out: &mut Outbox) {
        self.now = self.now.max(now);
        self.handle_timeouts(now, out);
        self.run_group(now, out);
        self.reset_positions(now, out);
        self.validate_positions(now, out);
        self.run_timestamp_probe(now);
        self.send_timestamp_lookups(now, out);
        self.send_fetches(now, out);
        self.metadata
            .poll(now, &mut self.net, ConsumerRequest::Metadata, out);
    }

    /// Assigns partitions metadata names for the first time; they need a position.
    fn assign_new_partitions(&mut self, now: Millis, out: &mut Outbox) {
        let known: Vec<(Arc<str>, u32)> = self
            .metadata
            .partition_counts()
            .filter(|(t, _)| self.topics.contains(t))
            .map(|(t, n)| (t.clone(), n))
            .collect();
        for (topic, count) in known {
            for partition in 0..count {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                if self.assignment.contains_key(&tp) {
                    continue;
                }
                let mut state = PartitionState::new();
                if self.config.auto_offset_reset == AutoOffsetReset::None {
                    state.failed = true;
                    self.no_offset(now, &tp, out);
                } else {
                    state.reset = Some(PendingReset {
                        reason: format!("auto.offset.reset={}", self.reset_policy_name()),
                        in_flight: None,
                    });
                }
                self.assignment.insert(tp, state);
            }
        }
    }

    /// Disconnects brokers with timed-out requests; their requests are retried (and
    /// the group's requests on those connections fail).
    fn handle_timeouts(&mut self, now: Millis, out: &mut Outbox) {
        let failed = self.net.disconnect_timed_out(now);
        for r in &failed {
            out.disconnect(Channel::Consumer, NodeId::Broker(r.broker));
            if let Some(group) = &mut self.group {
                // The group's requests to that broker fail too: close its connection.
                out.disconnect(Channel::GroupCoordinator, NodeId::Broker(r.broker));
                group.on_disconnect(now, r.broker);
            }
        }
        self.handle_failed(now, failed);
    }

    /// Requests lost with their connection: refresh metadata and retry.
    fn handle_failed(&mut self, now: Millis, failed: Vec<InFlightRequest<ConsumerRequest>>) {
        if failed.is_empty() {
            return;
        }
        self.metadata.request_update();
        for request in failed {
            match request.kind {
                ConsumerRequest::Metadata => self.metadata.on_failure(now),
                ConsumerRequest::Fetch { partitions } => {
                    // Kafka backs off before reconnecting; without it a refused
                    // connection would be retried at the same instant forever.
                    for (tp, _) in partitions {
                        if let Some(state) = self.assignment.get_mut(&tp) {
                            state.backoff_until =
                                state.backoff_until.max(now + self.config.retry_backoff_ms);
                        }
                    }
                }
                ConsumerRequest::ListOffsets { partitions } => {
                    for tp in partitions {
                        self.list_offsets_failed(now, &tp);
                    }
                }
                ConsumerRequest::OffsetsForTimes { partitions } => {
                    for tp in partitions {
                        self.timestamp_lookup_failed(now, &tp);
                    }
                }
                ConsumerRequest::OffsetsForLeaderEpoch { partitions } => {
                    for (tp, _) in partitions {
                        self.validation_failed(now, &tp);
                    }
                }
            }
        }
    }

    /// `AbstractFetch.prepareFetchRequests`: one `Fetch` per leader with no fetch in
    /// flight, covering its fetchable partitions.
    fn send_fetches(&mut self, now: Millis, out: &mut Outbox) {
        let mut by_leader: BTreeMap<BrokerId, Vec<FetchPartition>> = BTreeMap::new();
        let mut unknown_leader = false;
        for (tp, state) in &self.assignment {
            let Some(position) = state.position else {
                continue;
            };
            if state.failed
                || state.reset.is_some()
                || state.validation.is_some()
                || state.buffered
                || state.backoff_until > now
            {
                continue;
            }
            let Some((leader, epoch)) = self.metadata.leader(tp) else {
                unknown_leader = true;
                continue;
            };
            if self
                .net
                .count(leader, |k| matches!(k, ConsumerRequest::Fetch { .. }))
                > 0
            {
                continue;
            }
            by_leader.entry(leader).or_default().push(FetchPartition {
                tp: tp.clone(),
                fetch_offset: position,
                current_leader_epoch: epoch,
                last_fetched_epoch: None,
                log_start_offset: -1,
            });
        }
        if unknown_leader {
            self.metadata.request_update();
        }
        for (leader, partitions) in by_leader {
            let kind = ConsumerRequest::Fetch {
                partitions: partitions
                    .iter()
                    .map(|p| (p.tp.clone(), p.fetch_offset))
                    .collect(),
            };
            let request = Request::Fetch(FetchRequest {
                replica_id: None,
                broker_epoch: -1,
                max_wait_ms: self.config.fetch_max_wait_ms,
                min_bytes: self.config.fetch_min_bytes,
                max_bytes: self.config.max_partition_fetch_bytes,
                isolation_level: self.config.isolation_level,
                partitions,
            });
            self.net.send(now, leader, request, Some(kind), out);
        }
    }

    /// `AbstractFetch.handleFetchSuccess` / `initializeCompletedFetch` per partition.
    fn handle_fetch(
        &mut self,
        now: Millis,
        broker: BrokerId,
        partitions: Vec<(TopicPartition, Offset)>,
        response: FetchResponse,
        out: &mut Outbox,
    ) {
        for (tp, fetch_offset) in partitions {
            let Some(state) = self.assignment.get(&tp) else {
                continue; // revoked meanwhile
            };
            let Some(part) = response.partitions.iter().find(|p| p.tp == tp) else {
                if response.error != ErrorCode::None {
                    self.fetch_error(now, &tp, fetch_offset, response.error, -1, out);
                }
                continue;
            };
            if state.failed
                || state.reset.is_some()
                || state.validation.is_some()
                || state.buffered
                || state.position != Some(fetch_offset)
            {
                // A stale answer: the position moved since this fetch was sent.
                continue;
            }
            let error = if response.error != ErrorCode::None {
                response.error
            } else {
                part.error
            };
            if error == ErrorCode::None {
                self.fetched_data(now, broker, fetch_offset, part, out);
            } else {
                self.fetch_error(now, &tp, fetch_offset, error, part.high_watermark, out);
            }
        }
    }

    /// Records the new records of one partition and advances its position.
    fn fetched_data(
        &mut self,
        now: Millis,
        broker: BrokerId,
        fetch_offset: Offset,
        part: &FetchPartitionResponse,
        out: &mut Outbox,
    ) {
        let tp = &part.tp;
        let read_committed = self.read_committed();
        let mut position = fetch_offset;
        let mut records = Vec::new();
        // Kafka's CompletedFetch: the response's aborted transactions by first offset,
        // and the producers whose aborted transaction the batches are in.
        let mut aborted: Vec<AbortedTransaction> = part.aborted_transactions.clone();
        aborted.sort_unstable_by_key(|a| std::cmp::Reverse(a.first_offset));
        let mut aborted_producers = BTreeSet::new();
        // What the application gets instead of records once the fetch reaches a batch
        // that fails its CRC or a record it cannot deserialize.
        let mut exception = None;
        'batches: for (i, bytes) in part.batches.iter().enumerate() {
            let last_element = i + 1 == part.batches.len();
            let mut buf: &[u8] = bytes;
            while !buf.is_empty() {
                let decoded = if self.config.check_crcs {
                    RecordBatch::decode(buf)
                } else {
                    RecordBatch::decode_unchecked(buf)
                };
                let batch = match decoded {
                    Ok((batch, used)) => {
                        buf = &buf[used..];
                        batch
                    }
                    // A size-limited fetch may end with a partial batch: ignore it.
                    Err(RecordError::Truncated { .. }) if last_element => break,
                    // `CompletedFetch.maybeEnsureValid` (`check.crcs`): the batch's
                    // bytes were corrupted where the leader stored them.
                    Err(e @ RecordError::Crc { .. }) => {
                        exception = Some(format!(
                            "KafkaException: Record batch for partition {tp} at offset {position} \
                             is invalid, cause: CorruptRecordException: {e}"
                        ));
                        break 'batches;
                    }
                    Err(e) if !self.config.check_crcs => {
                        exception = Some(format!(
                            "KafkaException: Received exception when fetching the next record \
                             from {tp} at offset {position}: {e}"
                        ));
                        break 'batches;
                    }
                    Err(e) => panic!(
                        "consumer-{}: fetch of {tp} at offset {fetch_offset} from broker-{broker} returned a bad batch: {e}",
                        self.index
                    ),
                };
                let last_offset = batch.base_offset + Offset::from(batch.last_offset_delta);
                if last_offset < position {
                    continue;
                }
                if read_committed && batch.producer_id >= 0 {
                    while aborted
                        .last()
                        .is_some_and(|a| a.first_offset <= last_offset)
                    {
                        let a = aborted.pop().expect("just looked");
                        aborted_producers.insert(a.producer_id);
                    }
                    if batch.is_control() {
                        let marker = EndTransactionMarker::of_batch(&batch).unwrap_or_else(|e| {
                            panic!(
                                "consumer-{}: bad transaction marker in {tp} at {}: {e}",
                                self.index, batch.base_offset
                            )
                        });
                        if marker.is_some_and(|m| m.control_type == ControlRecordType::Abort) {
                            aborted_producers.remove(&batch.producer_id);
                        }
                    } else if batch.is_transactional()
                        && aborted_producers.contains(&batch.producer_id)
                    {
                        // A batch of an aborted transaction: skipped, never returned.
                        position = last_offset + 1;
                        continue;
                    }
                }
                // Control records are never returned; they only move the position
                // (consumers see gaps in the offsets).
                if !batch.is_control() {
                    for record in &batch.records {
                        let offset = batch.base_offset + Offset::from(record.offset_delta);
                        if offset < position {
                            continue;
                        }
                        match self.read_record(tp, offset, record) {
                            Ok(read) => records.push((read, batch.partition_leader_epoch)),
                            // Only with `check.crcs=false` can a flipped bit get this far.
                            Err(e) if self.config.check_crcs => {
                                panic!("consumer-{}: {e} (a CRC-checked batch)", self.index)
                            }
                            Err(e) => {
                                exception = Some(e);
                                position = offset;
                                break 'batches;
                            }
                        }
                    }
                }
                position = last_offset + 1;
            }
        }
        let subscribed = self.group.is_some();
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        if let Some(error) = exception.filter(|_| records.is_empty()) {
            // Nothing to return before it: `poll` throws, and keeps throwing the cached
            // exception until the application seeks past it (the workload never does).
            // The position stays.
            state.failed = true;
            let read_committed = self.read_committed();
            let (process, hw) = (self.process(), part.high_watermark);
            out.record(failed_poll(
                process,
                now,
                read_committed,
                tp.clone(),
                hw,
                error,
            ));
            return;
        }
        // Records before a corrupt batch are returned; the next fetch starts at it.
        if subscribed && !records.is_empty() {
            // Subscribe mode: the records wait for `poll`, which moves the position.
            state.buffered = true;
            self.completed_fetches.push_back(CompletedFetch {
                tp: tp.clone(),
                records: std::mem::take(&mut records).into(),
                next_position: position,
                high_watermark: part.high_watermark,
            });
            assert!(
                self.completed_fetches.len() <= self.assignment.len(),
                "at most one completed fetch per assigned partition"
            );
        } else {
            state.position = Some(position);
            if let Some((_, epoch)) = records.last() {
                state.position_epoch = *epoch;
            }
        }
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        // A read_committed consumer also records the last stable offset it stops at.
        let lso = read_committed.then_some(part.last_stable_offset);
        if state.last_high_watermark != Some(part.high_watermark) || state.last_stable_offset != lso
        {
            state.last_high_watermark = Some(part.high_watermark);
            state.last_stable_offset = lso;
            out.record(Entry::instant(
                self.process(),
                now,
                Op::ObserveHighWatermark {
                    last_stable_offset: lso,
                    partition: tp.clone(),
                    high_watermark: part.high_watermark,
                    broker: NodeId::Broker(broker),
                },
            ));
        }
        if !records.is_empty() {
            out.record(Entry::instant(
                self.process(),
                now,
                Op::Poll {
                    read_committed,
                    partition: tp.clone(),
                    records: records.into_iter().map(|(r, _)| r).collect(),
                    high_watermark: part.high_watermark,
                },
            ));
        }
    }

    /// One fetched record as the application sees it, or the
    /// `RecordDeserializationException` its deserializers throw: keys, header keys and
    /// values are UTF-8, values decimal numbers (the workload writes nothing else, so
    /// only a corrupt batch read with `check.crcs=false` fails).
    fn read_record(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        record: &crate::kafka::record::Record,
    ) -> Result<ReadRecord, String> {
        let fail = |what: &str| {
            format!("RecordDeserializationException: {what} of {tp} at offset {offset} cannot be deserialized")
        };
        let text = |b: &[u8], what: &str| String::from_utf8(b.to_vec()).map_err(|_| fail(what));
        let key = record
            .key
            .as_ref()
            .map(|k| text(k, "the key"))
            .transpose()?;
        let value = record
            .value
            .as_ref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail("the value"))?;
        // Header keys are strings (`RecordHeader.key`); the workload's values are too.
        let headers = record
            .headers
            .iter()
            .map(|h| {
                let value = h
                    .value
                    .as_deref()
                    .map(|v| text(v, "a header"))
                    .transpose()?;
                Ok((h.key.clone(), value))
            })
            .collect::<Result<_, String>>()?;
        Ok(ReadRecord {
            offset,
            key,
            value,
            headers,
        })
    }

    /// `AbstractFetch.handleInitializeErrors` for one partition.
    fn fetch_error(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        fetch_offset: Offset,
        error: ErrorCode,
        high_watermark: Offset,
        out: &mut Outbox,
    ) {
        let policy = self.reset_policy_name();
        let none_policy = self.config.auto_offset_reset == AutoOffsetReset::None;
        let backoff_until = now + self.config.retry_backoff_ms;
        let read_committed = self.read_committed();
        let process = self.process();
        let state = self.assignment.get_mut(tp).expect("assigned partition");
        match error {
            ErrorCode::OffsetOutOfRange if none_policy => {
                state.failed = true;
                let error = format!(
                    "OffsetOutOfRangeException: OFFSET_OUT_OF_RANGE at {fetch_offset}; auto.offset.reset=none"
                );
                let (tp, hw) = (tp.clone(), high_watermark);
                out.record(failed_poll(process, now, read_committed, tp, hw, error));
            }
            ErrorCode::OffsetOutOfRange => {
                state.reset = Some(PendingReset {
                    reason: format!(
                        "OFFSET_OUT_OF_RANGE at {fetch_offset}; auto.offset.reset={policy}"
                    ),
                    in_flight: None,
                });
            }
            ErrorCode::OffsetNotAvailable => state.backoff_until = backoff_until,
            _ => {
                // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
                // LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR,
                // and anything unexpected: refresh metadata and back off.
                state.backoff_until = backoff_until;
                self.metadata.request_update();
            }
        }
    }
}

impl Consumer {
    /// Handles the response to one of the consumer's own requests.
    fn handle_response(
        &mut self,
        now: Millis,
        correlation_id: u64,
        request: InFlightRequest<ConsumerRequest>,
        response: Response,
        out: &mut Outbox,
    ) {
        match (request.kind, response) {
            (ConsumerRequest::Metadata, Response::Metadata(m)) => {
                self.metadata.on_response(now, &m);
                if self.group.is_none() {
                    self.assign_new_partitions(now, out);
                }
            }
            (ConsumerRequest::Fetch { partitions }, Response::Fetch(f)) => {
                self.handle_fetch(now, request.broker, partitions, f, out);
            }
            (ConsumerRequest::ListOffsets { partitions }, Response::ListOffsets(l)) => {
                self.handle_list_offsets(now, correlation_id, partitions, l, out);
            }
            (ConsumerRequest::OffsetsForTimes { partitions }, Response::ListOffsets(l)) => {
                self.handle_offsets_for_times(now, correlation_id, partitions, l, out);
            }
            (
                ConsumerRequest::OffsetsForLeaderEpoch { partitions },
                Response::OffsetsForLeaderEpoch(r),
            ) => {
                self.handle_offsets_for_leader_epoch(now, correlation_id, partitions, r, out);
            }
            (_, response) => network::mismatched_response(self.process, &response),
        }
    }
}

impl Actor for Consumer {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.metadata.request_update();
        self.run(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        let (correlation_id, response) = network::into_response(self.process, from, message);
        let for_group = self.group.is_some() && ConsumerCoordinator::owns(correlation_id);
        let ctx = for_group.then(|| self.group_context());
        if let (Some(ctx), Some(group)) = (ctx, self.group.as_mut()) {
            group.on_response(now, from, correlation_id, response, &ctx, out);
        } else if let Some(request) = self.net.complete(from, correlation_id) {
            self.handle_response(now, correlation_id, request, response, out);
        }
        self.run(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        if let NodeId::Broker(b) = peer {
            let failed = self.net.disconnect(&[b].into_iter().collect());
            self.handle_failed(now, failed);
            if let Some(group) = &mut self.group {
                group.on_disconnect(now, b);
            }
        }
        self.run(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        self.run(now, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    fn next_timer(&self) -> Option<Millis> {
        let backoff = self
            .assignment
            .values()
            .filter(|s| {
                !s.failed
                    && s.reset.as_ref().is_none_or(|r| r.in_flight.is_none())
                    && s.validation.as_ref().is_none_or(|v| v.in_flight.is_none())
            })
            .map(|s| s.backoff_until)
            .filter(|t| *t > self.now)
            .min();
        let group = self.group.as_ref().and_then(|g| g.next_timer());
        let lookups = self
            .timestamp_lookups
            .values()
            .map(|l| {
                if l.in_flight.is_none() && l.backoff_until > self.now {
                    l.backoff_until.min(l.deadline)
                } else {
                    l.deadline
                }
            })
            .min();
        let probe = self.timestamp_probe.as_ref().map(|p| p.next_ms);
        [
            self.net.next_deadline(),
            self.metadata.due_at(),
            backoff,
            group,
            lookups,
            probe,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests;
