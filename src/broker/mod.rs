//! A Kafka broker as a sans-IO state machine: partition leadership and followership,
//! follower fetching, the ISR, the high watermark, leader epochs and truncation, the
//! produce and fetch purgatories, and the broker's KRaft lifecycle (registration,
//! heartbeats, metadata log replay; no self-fencing: cut off from the controller it
//! keeps leading on its stale metadata), and the broker side of the idempotent
//! producer (KIP-98): the leader's sequence check before appending, and producer ids
//! handed out from blocks the controller allocates. It hosts the group coordinator
//! ([`GroupCoordinator`]) of the `__consumer_offsets` partitions it leads: it routes
//! `FindCoordinator` and the group APIs, appends the coordinator's records through the
//! same leader path and produce purgatory as `acks=all` produce requests, and loads or
//! unloads groups when it gains or loses leadership of an offsets partition.
//!
//! The partition side of transactions (KIP-98, KIP-890): transactional batches checked
//! against the producer state and, before they open a transaction in a partition,
//! verified with the transaction coordinator (`AddPartitionsToTxn`, the produce parked
//! meanwhile); `WriteTxnMarkers` appending commit and abort markers as leader;
//! `read_committed` fetches up to the last stable offset with the aborted transactions;
//! `ListOffsets` by timestamp.
//!
//! What survives a crash is the [`Disk`]; everything else in [`Broker`] is process
//! memory and is rebuilt by [`Broker::restart`].

pub mod log;
pub mod producer_state;

use crate::actor::{Actor, Outbox};
use crate::broker::log::Log;
use crate::broker::producer_state::AppendCheck;
use crate::bugs::{Bug, Bugs};
use crate::coordinator::group::{
    self, CoordinatorOutput, GroupCoordinator, GroupSummary, OFFSETS_TOPIC,
};
use crate::coordinator::shared::{self, CoordinatorAppend, ReplyTo};
use crate::coordinator::txn::{
    self, MarkerRequest, TxnCoordinator, TxnCoordinatorOutput, TRANSACTION_STATE_TOPIC,
};
use crate::history::{Entry, Op};
use crate::kafka::config::BrokerConfig;
use crate::kafka::config::{Acks, IsolationLevel};
use crate::kafka::metadata::MetadataImage;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::{self, BatchHeader, ControlRecordType, EndTransactionMarker};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// `replica.high.watermark.checkpoint.interval.ms` (default 5000).
const HW_CHECKPOINT_INTERVAL_MS: Millis = 5_000;
/// Bound on parked produce and fetch requests.
const MAX_PURGATORY: usize = 10_000;
/// The transaction coordinators' internal topic (`txn_coordinator` will own it).
/// `RPCProducerIdManager.RETRY_BACKOFF_MS`: wait after a failed `AllocateProducerIds`.
const PRODUCER_ID_RETRY_BACKOFF_MS: Millis = 50;

/// Kafka's `AlterPartitionManager` sends a failed request again 50 ms after a
/// top-level or unexpected error.
const ALTER_PARTITION_RETRY_BACKOFF_MS: Millis = 50;

/// The first backoff of `BrokerLifecycleManager`'s `resendExponentialBackoff` (100 ms,
/// doubling, capped at `broker.session.timeout.ms`; its 2% jitter is not modelled).
const REGISTRATION_BACKOFF_MS: Millis = 100;

/// What a broker keeps across a process crash: its logs and checkpoints.
/// (A process crash keeps the OS page cache, so everything appended survives; power
/// loss comes later and will split this into flushed and unflushed parts.)
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// One log per hosted partition.
    pub logs: BTreeMap<TopicPartition, Log>,
    /// `replication-offset-checkpoint`: the high watermarks last checkpointed.
    pub hw_checkpoint: BTreeMap<TopicPartition, Offset>,
}

#[derive(Debug)]
struct Remote {
    log_end_offset: Offset,
    last_caught_up_ms: Millis,
    last_fetch_leader_leo: Offset,
    last_fetch_ms: Millis,
}

impl Remote {
    /// Kafka's `ReplicaState.isCaughtUp`: at the leader's log end offset, or caught up
    /// (`lastCaughtUpTimeMs`) within `replica.lag.time.max.ms`. A follower at the end
    /// of an idle partition stays in sync however long since its last fetch.
    fn is_caught_up(&self, leader_leo: Offset, now: Millis, lag_ms: Millis) -> bool {
        leader_leo == self.log_end_offset || now.saturating_sub(self.last_caught_up_ms) <= lag_ms
    }
}

#[derive(Debug)]
struct LeaderState {
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    /// A proposed ISR not yet committed (Kafka's `PendingPartitionChange`): (the
    /// correlation id of its AlterPartition in flight, 0 when none is; the proposed
    /// ISR; when to send it again, `Millis::MAX` when it waits for metadata instead).
    /// It stays until the controller answers or a newer partition registration
    /// replaces it: `AlterPartitionManager` never times a request out.
    pending: Option<(u64, Vec<BrokerId>, Millis)>,
    remotes: BTreeMap<BrokerId, Remote>,
    epoch_start_offset: Offset,
}

impl LeaderState {
    /// KIP-497's "maximal ISR": committed ISR plus replicas being added.
    fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut m = self.isr.clone();
        if let Some((_, proposed, _)) = &self.pending {
            for b in proposed {
                if !m.contains(b) {
                    m.push(*b);
                }
            }
        }
        m
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FollowerPhase {
    /// Waiting to ask (or asking) the leader where our last epoch ends.
    Truncating { asked: bool },
    /// Fetching from the leader.
    Fetching,
}

#[derive(Debug)]
enum Role {
    Leader(Box<LeaderState>),
    Follower {
        leader: BrokerId,
        phase: FollowerPhase,
    },
    /// A replica with no leader to follow (offline partition).
    Idle,
}

#[derive(Debug)]
struct Partition {
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    high_watermark: Offset,
    role: Role,
}

/// One partition of a produce request, parked until its outcome is decided.
struct ProducePart {
    tp: TopicPartition,
    /// The leader epoch in which the batch was appended (or found to be a duplicate).
    leader_epoch: LeaderEpoch,
    /// Offset of the batch's first record (the original batch's, for a duplicate).
    base_offset: Offset,
    /// The high watermark that commits the batch.
    required_offset: Offset,
    /// The log start offset to report; -1 when the request did not reach the log.
    log_start_offset: Offset,
    /// The outcome, once decided.
    result: Option<ErrorCode>,
}

impl ProducePart {
    /// A partition refused before its log was reached.
    fn refused(tp: TopicPartition, error: ErrorCode) -> Self {
        ProducePart {
            tp,
            leader_epoch: -1,
            base_offset: -1,
            required_offset: -1,
            log_start_offset: -1,
            result: Some(error),
        }
    }
}

/// Who waits for a parked produce.
#[derive(Clone)]
enum Waiter {
    /// A producer's request.
    Client { from: NodeId, correlation_id: u64 },
    /// The group coordinator's append with this id.
    Coordinator(u64),
    /// The transaction coordinator's append with this id.
    TxnCoordinator(u64),
    /// A transaction coordinator's `WriteTxnMarkers`: each marker's (producer id,
    /// commit), and for each part the index of its marker.
    TxnMarkers {
        from: NodeId,
        correlation_id: u64,
        markers: Vec<(i64, bool)>,
        part_markers: Vec<usize>,
    },
}

/// A produce waiting for the transaction coordinator's verification of its partitions
/// (KIP-890), with the verification guard each partition got.
struct ParkedProduce {
    from: NodeId,
    correlation_id: u64,
    request: ProduceRequest,
    guards: Vec<(TopicPartition, u64)>,
    /// The producer id and epoch of its batches.
    producer: (i64, i16),
    /// When the first `AddPartitionsToTxn` for it was sent (retries keep this).
    first_sent_ms: Millis,
}

struct DelayedProduce {
    waiter: Waiter,
    deadline: Millis,
    parts: Vec<ProducePart>,
}

struct DelayedFetch {
    from: NodeId,
    correlation_id: u64,
    deadline: Millis,
    request: FetchRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Registering,
    Running,
}

#[derive(Debug, Clone)]
enum Pending {
    Registration,
    Heartbeat,
    MetadataFetch,
    AlterPartition(TopicPartition),
    FollowerFetch(BrokerId),
    OffsetsForLeaderEpoch(BrokerId),
    AllocateProducerIds,
    /// A verification of a parked produce's partitions, sent to this transaction
    /// coordinator.
    AddPartitionsToTxn(BrokerId),
    /// This broker's transaction coordinator's `WriteTxnMarkers` request `id` to a leader.
    WriteTxnMarkers(u64, BrokerId),
}

/// A block of producer ids from the controller: `[first, end)`; `next` is the first id
/// not handed out yet.
#[derive(Clone, Copy, Debug)]
struct ProducerIdsBlock {
    first: i64,
    end: i64,
    next: i64,
}

/// Kafka's `RPCProducerIdManager`: hands out producer ids from blocks the controller
/// allocates (`AllocateProducerIds`, KIP-730). A block is asked for when the first id is
/// wanted, when the current block is 90% used (a prefetch) or used up; at most one
/// request is in flight and at most one block waits behind the current one. Process
/// memory: a restarted broker asks for a new block, and ids never repeat because the
/// controller's log records every block it gave.
#[derive(Debug, Default)]
struct ProducerIdManager {
    current: Option<ProducerIdsBlock>,
    /// The block received while the current one still had ids.
    next_block: Option<ProducerIdsBlock>,
    /// A block is needed and has not arrived yet.
    wanted: bool,
    /// No `AllocateProducerIds` before this time (after a failure).
    retry_at: Millis,
    /// The end of the newest block received: blocks only move forward.
    blocks_end: i64,
    /// The last id handed out.
    last_producer_id: Option<i64>,
}

impl ProducerIdManager {
    /// Kafka's `generateProducerId`: the next id, or `None` while no block has one (a
    /// block is then wanted).
    fn generate(&mut self) -> Option<i64> {
        if self.current.is_none_or(|b| b.next == b.end) {
            match self.next_block.take() {
                Some(block) => self.current = Some(block),
                None => {
                    self.wanted = true;
                    return None;
                }
            }
        }
        let block = self.current.as_mut().expect("a block with ids");
        let id = block.next;
        block.next += 1;
        assert!(block.next <= block.end);
        // Kafka's PID_PREFETCH_THRESHOLD: ask for the next block at 90%.
        if id == block.first + (block.end - block.first) * 9 / 10 && self.next_block.is_none() {
            self.wanted = true;
        }
        assert!(
            self.last_producer_id.is_none_or(|last| id > last),
            "producer id {id} handed out after {:?}",
            self.last_producer_id
        );
        self.last_producer_id = Some(id);
        Some(id)
    }

    /// Whether to send `AllocateProducerIds` now (if none is in flight).
    fn should_request(&self, now: Millis) -> bool {
        self.wanted && now >= self.retry_at
    }

    /// The controller's block `[start, start + len)`; `image_next` is the metadata
    /// image's first unallocated id, which the block cannot straddle.
    fn on_block(&mut self, start: i64, len: i32, image_next: i64) {
        assert!(
            start >= 0 && len > 0 && start.checked_add(i64::from(len)).is_some(),
            "invalid producer id block {start}+{len}"
        );
        let end = start + i64::from(len);
        assert!(
            start >= self.blocks_end,
            "producer id block {start}..{end} overlaps an earlier block ending at {}",
            self.blocks_end
        );
        assert!(
            image_next <= start || image_next >= end,
            "producer id block {start}..{end} disagrees with the metadata log ({image_next})"
        );
        assert!(self.next_block.is_none(), "a block was not asked for");
        self.blocks_end = end;
        self.wanted = false;
        self.next_block = Some(ProducerIdsBlock {
            first: start,
            end,
            next: start,
        });
    }

    /// `AllocateProducerIds` failed or timed out: retry after the backoff.
    fn on_failure(&mut self, now: Millis) {
        self.retry_at = now + PRODUCER_ID_RETRY_BACKOFF_MS;
    }
}

/// A broker.
pub struct Broker {
    id: BrokerId,
    config: BrokerConfig,
    bugs: Bugs,
    incarnation: u64,
    disk: Disk,
    lifecycle: Lifecycle,
    broker_epoch: i64,
    image: MetadataImage,
    partitions: BTreeMap<TopicPartition, Partition>,
    next_heartbeat_ms: Millis,
    /// When a refused or unanswered registration may be sent again.
    registration_retry_at: Millis,
    /// Registrations refused or unanswered in a row (the backoff's exponent).
    registration_failures: u32,
    next_isr_check_ms: Millis,
    next_hw_checkpoint_ms: Millis,
    next_correlation_id: u64,
    /// Requests this broker sent and awaits: correlation id -> (what, deadline).
    pending: BTreeMap<u64, (Pending, Millis)>,
    /// Follower fetch sessions: leader -> time before which no new fetch is sent.
    fetch_backoff: BTreeMap<BrokerId, Millis>,
    delayed_produce: Vec<DelayedProduce>,
    delayed_fetch: Vec<DelayedFetch>,
    producer_ids: ProducerIdManager,
    coordinator: GroupCoordinator,
    txn_coordinator: TxnCoordinator,
    /// Produces parked for verification, by the correlation id of their
    /// `AddPartitionsToTxn`.
    verifying: BTreeMap<u64, ParkedProduce>,
    /// Parked produces waiting to retry their `AddPartitionsToTxn` after
    /// `CONCURRENT_TRANSACTIONS` (transaction version 2), with the time to retry.
    verification_retries: Vec<(Millis, ParkedProduce)>,
    /// Kafka's `VerificationStateEntry`: per partition and producer id, the epoch,
    /// guard and lowest sequence of the verification under way; a marker (or the
    /// transaction's first batch) removes it.
    verification_guards: BTreeMap<(TopicPartition, i64), (i16, u64, i32)>,
    /// The last guard handed out.
    next_verification_guard: u64,
}

impl Broker {
    /// A broker starting for the first time, or restarting with `disk` (whose logs it
    /// recovers: each log's producer state is rebuilt from its batches).
    pub fn new(
        id: BrokerId,
        config: BrokerConfig,
        bugs: Bugs,
        incarnation: u64,
        mut disk: Disk,
    ) -> Self {
        for log in disk.logs.values_mut() {
            log.rebuild_producer_state();
        }
        Broker {
            id,
            bugs,
            incarnation,
            disk,
            lifecycle: Lifecycle::Registering,
            broker_epoch: -1,
            image: MetadataImage::default(),
            partitions: BTreeMap::new(),
            next_heartbeat_ms: 0,
            registration_retry_at: 0,
            registration_failures: 0,
            next_isr_check_ms: 0,
            next_hw_checkpoint_ms: 0,
            next_correlation_id: 1,
            pending: BTreeMap::new(),
            fetch_backoff: BTreeMap::new(),
            delayed_produce: Vec::new(),
            delayed_fetch: Vec::new(),
            producer_ids: ProducerIdManager::default(),
            coordinator: GroupCoordinator::new(&config, bugs, id, incarnation),
            txn_coordinator: TxnCoordinator::new(&config, bugs),
            verifying: BTreeMap::new(),
            verification_retries: Vec::new(),
            verification_guards: BTreeMap::new(),
            next_verification_guard: 0,
            config,
        }
    }

    /// The process (re)starts: only the disk survives; the new process has a new
    /// incarnation and rebuilds everything else from the disk and the controller.
    pub fn restart(&mut self, incarnation: u64) {
        let disk = std::mem::take(&mut self.disk);
        *self = Broker::new(self.id, self.config.clone(), self.bugs, incarnation, disk);
    }

    /// The broker's disk (for the end-of-run snapshot).
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// The high watermark this broker holds for a partition (in memory if running,
    /// else the checkpoint).
    pub fn high_watermark(&self, tp: &TopicPartition) -> Offset {
        match self.partitions.get(tp) {
            Some(p) => p.high_watermark,
            None => self.disk.hw_checkpoint.get(tp).copied().unwrap_or(0),
        }
    }

    /// Every loaded group's committed offsets (for the end-of-run snapshot).
    pub fn committed_offsets(&self) -> BTreeMap<(std::sync::Arc<str>, TopicPartition), Offset> {
        self.coordinator.committed_offsets()
    }

    /// Every loaded group's state, generation and members (for the end-of-run snapshot).
    pub fn groups(&self) -> Vec<GroupSummary> {
        self.coordinator.groups()
    }

    fn correlation(&mut self) -> u64 {
        let c = self.next_correlation_id;
        self.next_correlation_id += 1;
        c
    }

    fn request(
        &mut self,
        now: Millis,
        to: NodeId,
        what: Pending,
        timeout: Millis,
        request: Request,
        out: &mut Outbox,
    ) -> u64 {
        let correlation_id = self.correlation();
        assert!(
            self.pending.len() < 100_000,
            "broker has too many requests in flight"
        );
        self.pending.insert(correlation_id, (what, now + timeout));
        out.send(
            to,
            Message::Request {
                correlation_id,
                request,
            },
        );
        correlation_id
    }

    fn respond(to: NodeId, correlation_id: u64, response: Response, out: &mut Outbox) {
        out.send(
            to,
            Message::Response {
                correlation_id,
                response,
            },
        );
    }

    /// Whether the broker refuses to act as a leader: only before its registration is
    /// accepted. A KRaft broker never fences itself: cut off from the controller it
    /// keeps serving as leader and coordinator on its stale metadata until a metadata
    /// record says otherwise (Kafka's `BrokerLifecycleManager` only backs off and
    /// retries its heartbeats; the controller fences the broker after
    /// `broker.session.timeout.ms` and elects others). So zombie leaders exist: with
    /// `acks=1` one acknowledges writes the new leader never has.
    fn self_fenced(&self, _now: Millis) -> bool {
        self.lifecycle != Lifecycle::Running
    }

    fn log_end_offset(&self, tp: &TopicPartition) -> Offset {
        self.disk.logs.get(tp).map_or(0, Log::log_end_offset)
    }

    // ------------------------------------------------------------ metadata

    fn apply_metadata(
        &mut self,
        now: Millis,
        records: Vec<(i64, MetadataRecord)>,
        out: &mut Outbox,
    ) {
        let mut changed = BTreeSet::new();
        for (offset, record) in records {
            if offset < self.image.next_offset {
                continue;
            }
            if offset > self.image.next_offset {
                break;
            }
            self.image.apply(offset, &record);
            if let MetadataRecord::PartitionChange(reg) = &record {
                changed.insert(reg.tp.clone());
            }
        }
        for tp in changed {
            self.on_partition_change(now, &tp, out);
        }
    }

    fn on_partition_change(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        let reg = self.image.partitions[tp].clone();
        if !reg.replicas.contains(&self.id) {
            return;
        }
        let leo = {
            let log = self.disk.logs.entry(tp.clone()).or_default();
            log.log_end_offset()
        };
        let checkpoint = self.disk.hw_checkpoint.get(tp).copied().unwrap_or(0);
        let part = self
            .partitions
            .entry(tp.clone())
            .or_insert_with(|| Partition {
                leader_epoch: -1,
                partition_epoch: -1,
                high_watermark: checkpoint.min(leo),
                role: Role::Idle,
            });
        let new_epoch = reg.leader_epoch > part.leader_epoch;
        let newer_registration = reg.partition_epoch > part.partition_epoch;
        part.partition_epoch = part.partition_epoch.max(reg.partition_epoch);
        match reg.leader {
            Some(l) if l == self.id => {
                if new_epoch || !matches!(part.role, Role::Leader(_)) {
                    part.leader_epoch = reg.leader_epoch;
                    let log = self.disk.logs.get_mut(tp).expect("log created above");
                    log.assign_epoch(reg.leader_epoch, leo);
                    let remotes = reg
                        .replicas
                        .iter()
                        .filter(|r| **r != self.id)
                        .map(|r| {
                            (
                                *r,
                                Remote {
                                    log_end_offset: -1,
                                    last_caught_up_ms: if reg.isr.contains(r) { now } else { 0 },
                                    last_fetch_leader_leo: -1,
                                    last_fetch_ms: 0,
                                },
                            )
                        })
                        .collect();
                    part.role = Role::Leader(Box::new(LeaderState {
                        replicas: reg.replicas.clone(),
                        isr: reg.isr.clone(),
                        pending: None,
                        remotes,
                        epoch_start_offset: leo,
                    }));
                    self.maybe_increment_hw(now, tp, out);
                    if &*tp.topic == OFFSETS_TOPIC {
                        self.coordinator_elected(now, tp, out);
                    }
                    if &*tp.topic == TRANSACTION_STATE_TOPIC {
                        let epoch = reg.leader_epoch;
                        self.txn_coordinator_elected(now, tp, epoch, out);
                    }
                } else if let Role::Leader(ls) = &mut part.role {
                    ls.isr = reg.isr.clone();
                    ls.replicas = reg.replicas.clone();
                    // Kafka's `Partition.makeLeader` -> `updateAssignmentAndIsr`: a newer
                    // registration is the committed state; a pending change is dropped
                    // (its answer, if any, is ignored).
                    if newer_registration
                        || ls.pending.as_ref().is_some_and(|(_, p, _)| *p == reg.isr)
                    {
                        ls.pending = None;
                    }
                    self.maybe_increment_hw(now, tp, out);
                }
            }
            Some(l) => {
                let was_following =
                    matches!(part.role, Role::Follower { leader, .. } if leader == l);
                if new_epoch || !was_following {
                    part.leader_epoch = reg.leader_epoch;
                    let truncate_to_hw = self.bugs.on(Bug::TruncateToHighWatermark);
                    // Kafka 4.x (`ReplicaManager.initialFetchOffset`,
                    // `AbstractFetcherThread.partitionFetchState`): a follower with an
                    // epoch cache fetches from its log end offset at once, carrying its
                    // latest epoch as `lastFetchedEpoch`; the leader answers a diverging
                    // epoch where the logs part. The pre-KIP-279 follower (the
                    // `no-epoch-in-end-offset` switch) asks OffsetsForLeaderEpoch first.
                    part.role = Role::Follower {
                        leader: l,
                        phase: if self.bugs.on(Bug::NoEpochInEndOffset) {
                            FollowerPhase::Truncating { asked: false }
                        } else {
                            FollowerPhase::Fetching
                        },
                    };
                    if truncate_to_hw {
                        // Pre-KIP-101: truncate to the local high watermark.
                        let hw = part.high_watermark;
                        self.disk.logs.get_mut(tp).expect("log").truncate_to(hw);
                    }
                    self.fail_delayed_for(now, tp, out);
                    self.coordinator_resigned(now, tp, out);
                }
            }
            None => {
                if new_epoch || !matches!(part.role, Role::Idle) {
                    part.leader_epoch = reg.leader_epoch;
                    part.role = Role::Idle;
                    self.fail_delayed_for(now, tp, out);
                    self.coordinator_resigned(now, tp, out);
                }
            }
        }
    }

    /// Answers parked produce requests for a partition this broker no longer leads, and
    /// forgets its verification guards (a new leadership verifies again).
    fn fail_delayed_for(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        self.verification_guards.retain(|(t, _), _| t != tp);
        for d in &mut self.delayed_produce {
            for part in d.parts.iter_mut() {
                if &part.tp == tp && part.result.is_none() {
                    part.result = Some(ErrorCode::NotLeaderOrFollower);
                }
            }
        }
        self.complete_delayed_produce(now, out);
    }

    // ------------------------------------------------------------ leader side

    /// The topic's `min.insync.replicas`: its override (a `ConfigRecord`), else for
    /// `__transaction_state` `transaction.state.log.min.isr` (the topic config Kafka's
    /// `TransactionStateManager` creates it with), else the broker's.
    fn configured_min_isr(&self, tp: &TopicPartition) -> usize {
        let configured = self.image.min_insync_replicas(&tp.topic).unwrap_or(
            if &*tp.topic == TRANSACTION_STATE_TOPIC {
                self.config.transaction_state_log_min_isr
            } else {
                self.config.min_insync_replicas
            },
        );
        configured as usize
    }

    fn maybe_increment_hw(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        let leo = self.log_end_offset(tp);
        let min_isr = self.configured_min_isr(tp);
        let Some(part) = self.partitions.get_mut(tp) else {
            return;
        };
        let Role::Leader(ls) = &part.role else { return };
        let new_hw = if self.bugs.on(Bug::HighWatermarkFromLeaderOnly) {
            leo
        } else {
            // KAFKA-15583: the HW moves only while the ISR has at least
            // min(min.insync.replicas, replica count) members.
            let needed = min_isr.min(ls.replicas.len());
            if ls.isr.len() < needed {
                return;
            }
            ls.maximal_isr()
                .iter()
                .map(|r| {
                    if *r == self.id {
                        leo
                    } else {
                        ls.remotes.get(r).map_or(-1, |rm| rm.log_end_offset)
                    }
                })
                .min()
                .unwrap_or(leo)
        };
        if new_hw > part.high_watermark {
            assert!(new_hw <= leo, "high watermark beyond the log end");
            part.high_watermark = new_hw;
            self.complete_delayed_produce(now, out);
            self.complete_delayed_fetch(now, false, out);
        }
    }

    fn maybe_expand_isr(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        follower: BrokerId,
        out: &mut Outbox,
    ) {
        let live = self.image.is_live(follower);
        let Some(part) = self.partitions.get_mut(tp) else {
            return;
        };
        let hw = part.high_watermark;
        let (epoch, pepoch) = (part.leader_epoch, part.partition_epoch);
        let Role::Leader(ls) = &mut part.role else {
            return;
        };
        if ls.isr.contains(&follower) || ls.pending.is_some() || !live {
            return;
        }
        let Some(r) = ls.remotes.get(&follower) else {
            return;
        };
        if r.log_end_offset >= hw && r.log_end_offset >= ls.epoch_start_offset {
            let mut new_isr = ls.isr.clone();
            new_isr.push(follower);
            new_isr.sort_unstable();
            self.alter_partition(now, tp.clone(), epoch, pepoch, new_isr, out);
        }
    }

    fn alter_partition(
        &mut self,
        now: Millis,
        tp: TopicPartition,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
        out: &mut Outbox,
    ) {
        let request = Request::AlterPartition(AlterPartitionRequest {
            broker_id: self.id,
            broker_epoch: self.broker_epoch,
            tp: tp.clone(),
            leader_epoch,
            partition_epoch,
            new_isr: new_isr.clone(),
        });
        let timeout = self.config.request_timeout_ms;
        let correlation_id = self.request(
            now,
            NodeId::Controller,
            Pending::AlterPartition(tp.clone()),
            timeout,
            request,
            out,
        );
        if let Some(Partition {
            role: Role::Leader(ls),
            ..
        }) = self.partitions.get_mut(&tp)
        {
            ls.pending = Some((correlation_id, new_isr, Millis::MAX));
        }
    }

    /// Sends again the pending ISR changes whose retry is due (Kafka's
    /// `AlterPartitionManager` retries until the controller answers).
    fn retry_alter_partitions(&mut self, now: Millis, out: &mut Outbox) {
        let due: Vec<(TopicPartition, LeaderEpoch, i32, Vec<BrokerId>)> = self
            .partitions
            .iter()
            .filter_map(|(tp, part)| match &part.role {
                Role::Leader(ls) => match &ls.pending {
                    Some((0, isr, at)) if *at <= now => Some((
                        tp.clone(),
                        part.leader_epoch,
                        part.partition_epoch,
                        isr.clone(),
                    )),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for (tp, e, pe, isr) in due {
            self.alter_partition(now, tp, e, pe, isr, out);
        }
    }

    /// The first retry of a pending ISR change waiting to be sent again.
    fn next_alter_partition_retry(&self) -> Option<Millis> {
        self.partitions
            .values()
            .filter_map(|part| match &part.role {
                Role::Leader(ls) => match &ls.pending {
                    Some((0, _, at)) if *at != Millis::MAX => Some(*at),
                    _ => None,
                },
                _ => None,
            })
            .min()
    }

    fn maybe_shrink_isr(&mut self, now: Millis, out: &mut Outbox) {
        let lag = self.config.replica_lag_time_max_ms;
        let mut proposals = Vec::new();
        for (tp, part) in &self.partitions {
            let Role::Leader(ls) = &part.role else {
                continue;
            };
            if ls.pending.is_some() {
                continue;
            }
            let leo = self.disk.logs.get(tp).map_or(0, Log::log_end_offset);
            // Kafka's `Partition.getOutOfSyncReplicas` / `isFollowerOutOfSync`.
            let out_of_sync: Vec<BrokerId> = ls
                .isr
                .iter()
                .filter(|r| **r != self.id)
                .filter(|r| {
                    ls.remotes
                        .get(r)
                        .is_none_or(|rm| !rm.is_caught_up(leo, now, lag))
                })
                .copied()
                .collect();
            if !out_of_sync.is_empty() {
                let new_isr: Vec<BrokerId> = ls
                    .isr
                    .iter()
                    .filter(|r| !out_of_sync.contains(r))
                    .copied()
                    .collect();
                proposals.push((tp.clone(), part.leader_epoch, part.partition_epoch, new_isr));
            }
        }
        for (tp, e, pe, isr) in proposals {
            self.alter_partition(now, tp, e, pe, isr, out);
        }
    }

    /// `Produce`. Transactional batches that would start the producer's transaction in
    /// a partition are verified with the transaction coordinator first (KIP-890); the
    /// rest is appended at once.
    fn handle_produce(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: ProduceRequest,
        out: &mut Outbox,
    ) {
        self.produce(now, (from, correlation_id), req, now, out);
    }

    /// A produce request (first handled at `first_ms`: a retry keeps it) from `from`
    /// with its correlation id.
    fn produce(
        &mut self,
        now: Millis,
        (from, correlation_id): (NodeId, u64),
        req: ProduceRequest,
        first_ms: Millis,
        out: &mut Outbox,
    ) {
        let needed = self.verification_needed(now, &req);
        if needed.is_empty() {
            self.append_produce(now, from, correlation_id, req, &BTreeMap::new(), out);
        } else {
            self.verify_then_append(now, (from, correlation_id), req, needed, first_ms, out);
        }
    }

    /// Kafka's `ReplicaManager.maybeSendPartitionsToTransactionCoordinator`: the
    /// partitions (with producer id and epoch) of transactional batches that this
    /// broker leads and where the producer has no transaction open in that epoch. Empty
    /// when the coordinator is not asked: verification is off and the partitions are
    /// not added by the broker (transaction version below 2).
    fn verification_needed(
        &self,
        now: Millis,
        req: &ProduceRequest,
    ) -> Vec<(TopicPartition, i64, i16)> {
        let config = &self.config;
        if !config.transaction_partition_verification_enable && config.transaction_version < 2 {
            return Vec::new();
        }
        if req.transactional_id.is_none() || self.self_fenced(now) {
            return Vec::new();
        }
        let mut needed = Vec::new();
        for (tp, batch) in &req.partitions {
            let Ok(header) = BatchHeader::parse(batch) else {
                continue;
            };
            let leads = self
                .partitions
                .get(tp)
                .is_some_and(|p| matches!(p.role, Role::Leader(_)));
            if !header.is_transactional() || !header.has_producer_id() || !leads {
                continue;
            }
            let ongoing = self.disk.logs[tp]
                .producer_state()
                .has_ongoing_transaction(header.producer_id, header.producer_epoch);
            if !ongoing {
                needed.push((tp.clone(), header.producer_id, header.producer_epoch));
            }
        }
        needed
    }

    /// Parks a produce while the transaction coordinator verifies (or, with
    /// transaction version 2, adds) its partitions: `AddPartitionsToTxn` to the leader of
    /// the `transactional.id`'s `__transaction_state` partition. Each partition gets a
    /// verification guard that a marker written meanwhile removes.
    fn verify_then_append(
        &mut self,
        now: Millis,
        (from, correlation_id): (NodeId, u64),
        req: ProduceRequest,
        needed: Vec<(TopicPartition, i64, i16)>,
        first_ms: Millis,
        out: &mut Outbox,
    ) {
        let transactional_id = req.transactional_id.clone().expect("checked");
        let (producer_id, producer_epoch) = (needed[0].1, needed[0].2);
        assert!(
            needed
                .iter()
                .all(|(_, p, e)| (*p, *e) == (producer_id, producer_epoch)),
            "one produce request carries one producer's batches"
        );
        let Some(coordinator) = self.transaction_coordinator(&transactional_id) else {
            // Kafka's AddPartitionsToTxnManager: COORDINATOR_NOT_AVAILABLE, which the
            // producer sees as NOT_ENOUGH_REPLICAS.
            let tv2 = self.config.transaction_version >= 2;
            let errors = needed
                .into_iter()
                .map(|(tp, _, _)| {
                    let error = verification_error(ErrorCode::CoordinatorNotAvailable, tv2);
                    (tp, Err(error))
                })
                .collect();
            self.append_produce(now, from, correlation_id, req, &errors, out);
            return;
        };
        let mut guards = Vec::with_capacity(needed.len());
        for (tp, producer_id, producer_epoch) in &needed {
            // Kafka's maybeCreateVerificationStateEntry: a guard of the same epoch is
            // shared (by the producer's requests in flight), a newer epoch gets a new one.
            // `maybeUpdateLowestSequenceAndEpoch`: the lowest sequence seen in the epoch.
            let key = (tp.clone(), *producer_id);
            let sequence = req
                .partitions
                .iter()
                .find(|(t, _)| t == tp)
                .and_then(|(_, b)| BatchHeader::parse(b).ok())
                .map_or(record::NO_SEQUENCE, |h| h.base_sequence);
            let guard = match self.verification_guards.get_mut(&key) {
                Some((epoch, guard, lowest)) if *epoch >= *producer_epoch => {
                    if *epoch == *producer_epoch && sequence < *lowest {
                        *lowest = sequence;
                    }
                    *guard
                }
                _ => {
                    assert!(
                        self.verification_guards.len() < MAX_PURGATORY,
                        "too many verification guards"
                    );
                    self.next_verification_guard += 1;
                    let guard = self.next_verification_guard;
                    self.verification_guards
                        .insert(key, (*producer_epoch, guard, sequence));
                    guard
                }
            };
            guards.push((tp.clone(), guard));
        }
        let parked = ParkedProduce {
            from,
            correlation_id,
            request: req,
            guards,
            producer: (producer_id, producer_epoch),
            first_sent_ms: first_ms,
        };
        self.send_verification(now, coordinator, parked, out);
    }

    /// Sends the `AddPartitionsToTxn` of a parked produce (its guards' partitions) and
    /// parks it until the answer.
    fn send_verification(
        &mut self,
        now: Millis,
        coordinator: BrokerId,
        parked: ParkedProduce,
        out: &mut Outbox,
    ) {
        assert!(
            self.verifying.len() < MAX_PURGATORY,
            "verification purgatory overflow"
        );
        let request = Request::AddPartitionsToTxn(AddPartitionsToTxnRequest {
            transactional_id: parked.request.transactional_id.clone().expect("checked"),
            producer_id: parked.producer.0,
            producer_epoch: parked.producer.1,
            partitions: parked.guards.iter().map(|(tp, _)| tp.clone()).collect(),
            verify_only: self.config.transaction_version < 2,
        });
        let timeout = self.config.request_timeout_ms;
        let what = Pending::AddPartitionsToTxn(coordinator);
        let c = self.request(
            now,
            NodeId::Broker(coordinator),
            what,
            timeout,
            request,
            out,
        );
        self.verifying.insert(c, parked);
    }

    /// Retries the parked produces whose backoff after `CONCURRENT_TRANSACTIONS` is over,
    /// from the start (Kafka retries the whole append: new verification guards, the
    /// coordinator looked up again).
    fn retry_verifications(&mut self, now: Millis, out: &mut Outbox) {
        while let Some(i) = self
            .verification_retries
            .iter()
            .position(|(at, _)| *at <= now)
        {
            let (_, p) = self.verification_retries.remove(i);
            self.produce(
                now,
                (p.from, p.correlation_id),
                p.request,
                p.first_sent_ms,
                out,
            );
        }
    }

    /// The broker leading the `__transaction_state` partition of `transactional_id`, if
    /// it is known and live.
    fn transaction_coordinator(&self, transactional_id: &str) -> Option<BrokerId> {
        let partitions = *self.image.topics.get(TRANSACTION_STATE_TOPIC)?;
        let partition = shared::partition_for_group(transactional_id, partitions);
        self.image
            .partitions
            .get(&TopicPartition::new(TRANSACTION_STATE_TOPIC, partition))
            .and_then(|reg| reg.leader)
            .filter(|l| self.image.is_live(*l))
    }

    /// The coordinator answered a verification (`Ok`: an error per partition), or the
    /// request failed (`Err`: timed out or its connection broke): the parked produce is
    /// appended, each verified partition with its guard, the others refused with the
    /// error Kafka gives the producer.
    fn on_verification(
        &mut self,
        now: Millis,
        request_correlation: u64,
        answer: Result<Vec<(TopicPartition, ErrorCode)>, ErrorCode>,
        out: &mut Outbox,
    ) {
        let parked = self
            .verifying
            .remove(&request_correlation)
            .expect("every AddPartitionsToTxn in flight has a parked produce");
        let tv2 = self.config.transaction_version >= 2;
        // KAFKA-18654: with transaction version 2 the leader itself retries while the
        // coordinator still completes the producer's previous transaction.
        let concurrent = match &answer {
            Ok(results) => results
                .iter()
                .any(|(_, e)| *e == ErrorCode::ConcurrentTransactions),
            Err(e) => *e == ErrorCode::ConcurrentTransactions,
        };
        let backoff = self.config.add_partitions_to_txn_retry_backoff_ms;
        if tv2
            && concurrent
            && now + backoff - parked.first_sent_ms
                <= self.config.add_partitions_to_txn_retry_backoff_max_ms
        {
            assert!(
                self.verification_retries.len() < MAX_PURGATORY,
                "verification retry queue overflow"
            );
            self.verification_retries.push((now + backoff, parked));
            return;
        }
        let verified = parked
            .guards
            .into_iter()
            .map(|(tp, guard)| {
                let error = match &answer {
                    Ok(results) => results
                        .iter()
                        .find(|(t, _)| *t == tp)
                        .map_or(ErrorCode::None, |(_, e)| *e),
                    Err(e) => *e,
                };
                let result = if error == ErrorCode::None {
                    Ok(guard)
                } else {
                    Err(verification_error(error, tv2))
                };
                (tp, result)
            })
            .collect();
        self.append_produce(
            now,
            parked.from,
            parked.correlation_id,
            parked.request,
            &verified,
            out,
        );
    }

    /// Appends a produce request's batches as leader (Kafka's
    /// `ReplicaManager.appendEntries`): `verified` holds the coordinator's verdict on
    /// the partitions that were verified (a guard, or the error to answer).
    fn append_produce(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: ProduceRequest,
        verified: &BTreeMap<TopicPartition, Result<u64, ErrorCode>>,
        out: &mut Outbox,
    ) {
        let fenced = self.self_fenced(now);
        let check_sequence = !self.bugs.on(Bug::NoSequenceCheck);
        let epoch_fencing = !self.bugs.on(Bug::NoProducerEpochFencing);
        let guard_check = self.config.transaction_partition_verification_enable;
        let acks = req.acks;
        let mut parts = Vec::with_capacity(req.partitions.len());
        let mut touched = Vec::new();
        for (tp, batch) in req.partitions {
            let min_isr = self.configured_min_isr(&tp);
            let Some(part) = self.partitions.get(&tp) else {
                let err = if self.image.partitions.contains_key(&tp) {
                    ErrorCode::NotLeaderOrFollower
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                parts.push(ProducePart::refused(tp, err));
                continue;
            };
            let Role::Leader(ls) = &part.role else {
                parts.push(ProducePart::refused(tp, ErrorCode::NotLeaderOrFollower));
                continue;
            };
            if fenced {
                parts.push(ProducePart::refused(tp, ErrorCode::NotLeaderOrFollower));
                continue;
            }
            if let Some(Err(error)) = verified.get(&tp) {
                parts.push(ProducePart::refused(tp, *error));
                continue;
            }
            // `Partition.appendRecordsToLeader`: the committed ISR against
            // `effectiveMinIsr` = min(min.insync.replicas, replica count), KAFKA-15583.
            if acks == Acks::All && ls.isr.len() < min_isr.min(ls.replicas.len()) {
                parts.push(ProducePart::refused(tp, ErrorCode::NotEnoughReplicas));
                continue;
            }
            let epoch = part.leader_epoch;
            let log = self.disk.logs.get_mut(&tp).expect("leader has a log");
            let header = match record::verify_crc(&batch).and_then(|()| BatchHeader::parse(&batch))
            {
                // Kafka's LogValidator: clients may not write control records
                // (INVALID_RECORD, which this simulation names INVALID_REQUEST).
                Ok(header) if header.is_control() => {
                    parts.push(ProducePart::refused(tp, ErrorCode::InvalidRequest));
                    continue;
                }
                Ok(header) => header,
                Err(_) => {
                    parts.push(ProducePart::refused(tp, ErrorCode::CorruptMessage));
                    continue;
                }
            };
            let log_start_offset = log.log_start_offset();
            // KIP-98: the producer's epoch and sequence against the partition's producer
            // state (the bug switch appends every batch blindly).
            // With a verification of the producer under way here, a batch above its
            // lowest sequence waits (Kafka's `ProducerAppendInfo.checkSequence`).
            let verification_lowest = self
                .verification_guards
                .get(&(tp.clone(), header.producer_id))
                .map(|(_, _, lowest)| *lowest);
            let check = if check_sequence {
                log.producer_state().check_append_verified(
                    &header,
                    epoch_fencing,
                    verification_lowest,
                )
            } else {
                Ok(AppendCheck::Append)
            };
            // KIP-890 (`batchMissingRequiredVerification`): a transactional batch that
            // starts a transaction here needs this request's verification guard, still
            // in place (a marker written since the verification removed it).
            let (pid, producer_epoch) = (header.producer_id, header.producer_epoch);
            let unverified = check == Ok(AppendCheck::Append)
                && guard_check
                && header.is_transactional()
                && !log
                    .producer_state()
                    .has_ongoing_transaction(pid, producer_epoch)
                && verified.get(&tp).is_none_or(|g| {
                    self.verification_guards
                        .get(&(tp.clone(), pid))
                        .map(|(_, g, _)| *g)
                        != g.ok()
                });
            let check = if unverified {
                Err(ErrorCode::InvalidTxnState)
            } else {
                check
            };
            let (base, last) = match check {
                Err(error) => {
                    parts.push(ProducePart {
                        log_start_offset,
                        ..ProducePart::refused(tp, error)
                    });
                    continue;
                }
                // A retry of a batch already in the log is not appended again, and, like
                // an append, not acknowledged before the original commits; it is then
                // answered NONE with the original batch's offsets (Kafka's
                // `UnifiedLog.append` takes the cached `BatchMetadata` of
                // `analyzeAndValidateProducerState` as the append's result).
                Ok(AppendCheck::Duplicate {
                    first_offset,
                    last_offset,
                }) => (first_offset, last_offset),
                Ok(AppendCheck::Append) => {
                    let (base, last) = log
                        .append_as_leader(&batch, epoch)
                        .expect("CRC and header checked above");
                    if header.is_transactional() {
                        // The transaction has its first offset now (or, for a zombie's
                        // batch, no guard is of use any more).
                        self.verification_guards.remove(&(tp.clone(), pid));
                    }
                    touched.push(tp.clone());
                    (base, last)
                }
            };
            let result = match acks {
                Acks::All => None,
                _ => Some(ErrorCode::None),
            };
            parts.push(ProducePart {
                tp,
                leader_epoch: epoch,
                base_offset: base,
                required_offset: last + 1,
                log_start_offset,
                result,
            });
        }
        if acks == Acks::None {
            for tp in touched {
                self.maybe_increment_hw(now, &tp, out);
            }
            self.complete_delayed_fetch(now, true, out);
            return;
        }
        self.park_produce(
            now,
            Waiter::Client {
                from,
                correlation_id,
            },
            now + req.timeout_ms,
            parts,
            touched,
            out,
        );
    }

    /// Parks appended (or refused) partitions in the produce purgatory until each is
    /// decided, and lets the append move the high watermark and wake parked fetches.
    fn park_produce(
        &mut self,
        now: Millis,
        waiter: Waiter,
        deadline: Millis,
        parts: Vec<ProducePart>,
        touched: Vec<TopicPartition>,
        out: &mut Outbox,
    ) {
        assert!(
            self.delayed_produce.len() < MAX_PURGATORY,
            "produce purgatory overflow"
        );
        self.delayed_produce.push(DelayedProduce {
            waiter,
            deadline,
            parts,
        });
        for tp in touched {
            self.maybe_increment_hw(now, &tp, out);
        }
        // Followers parked on an empty fetch have new data to read.
        self.complete_delayed_fetch(now, true, out);
        self.complete_delayed_produce(now, out);
    }

    /// `WriteTxnMarkers` (Kafka's `KafkaApis.handleWriteTxnMarkersRequest`): for each
    /// marker and partition this broker leads, the control batch is appended as leader
    /// and parked like an `acks=all` produce until replicated (or
    /// `request.timeout.ms`); the answer is an error per producer and partition. A
    /// committed marker in `__consumer_offsets` goes to the group coordinator.
    fn handle_write_txn_markers(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: WriteTxnMarkersRequest,
        out: &mut Outbox,
    ) {
        let fenced = self.self_fenced(now);
        let mut parts = Vec::new();
        let mut touched = Vec::new();
        let mut markers = Vec::with_capacity(req.markers.len());
        let mut part_markers = Vec::new();
        for (i, m) in req.markers.iter().enumerate() {
            markers.push((m.producer_id, m.committed));
            for tp in &m.partitions {
                part_markers.push(i);
                let part = self.write_marker(now, fenced, m, tp);
                if part.result.is_none() {
                    touched.push(tp.clone());
                }
                parts.push(part);
            }
        }
        let waiter = Waiter::TxnMarkers {
            from,
            correlation_id,
            markers,
            part_markers,
        };
        let deadline = now + self.config.request_timeout_ms;
        self.park_produce(now, waiter, deadline, parts, touched, out);
    }

    /// Appends one marker to one partition as leader, or says why not.
    fn write_marker(
        &mut self,
        now: Millis,
        fenced: bool,
        m: &TxnMarker,
        tp: &TopicPartition,
    ) -> ProducePart {
        let leader = if self.image.partitions.contains_key(tp) {
            self.acks_all_leader_epoch(tp, fenced)
        } else {
            Err(ErrorCode::UnknownTopicOrPartition)
        };
        let epoch = match leader {
            Ok(epoch) => epoch,
            Err(error) => return ProducePart::refused(tp.clone(), error),
        };
        let marker = EndTransactionMarker {
            control_type: if m.committed {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            coordinator_epoch: m.coordinator_epoch,
        };
        // CreateTime on the partition leader's clock, as Kafka stamps markers.
        let timestamp = crate::kafka::record::RECORD_TIMESTAMP_BASE + now as i64;
        let log = self.disk.logs.get_mut(tp).expect("leader has a log");
        let log_start_offset = log.log_start_offset();
        match log.append_control_as_leader(
            m.producer_id,
            m.producer_epoch,
            marker,
            timestamp,
            epoch,
        ) {
            Ok(offset) => {
                // The transaction is over: a verification still running for it must not
                // let a late batch start a hanging one. With transaction version 2 a
                // guard of the marker's epoch belongs to the next transaction.
                let key = (tp.clone(), m.producer_id);
                let next_txn = self.config.transaction_version >= 2
                    && self
                        .verification_guards
                        .get(&key)
                        .is_some_and(|(e, _, _)| *e == m.producer_epoch);
                if !next_txn {
                    self.verification_guards.remove(&key);
                }
                ProducePart {
                    tp: tp.clone(),
                    leader_epoch: epoch,
                    base_offset: offset,
                    required_offset: offset + 1,
                    log_start_offset,
                    result: None,
                }
            }
            Err(error) => ProducePart {
                log_start_offset,
                ..ProducePart::refused(tp.clone(), error)
            },
        }
    }

    /// Completes parked produces whose partitions are all decided; `now` past a
    /// deadline turns undecided partitions into `REQUEST_TIMED_OUT`.
    fn complete_delayed_produce(&mut self, now: Millis, out: &mut Outbox) {
        let mut coordinator_appends = Vec::new();
        let mut txn_appends = Vec::new();
        let mut offsets_markers = Vec::new();
        let mut i = 0;
        while i < self.delayed_produce.len() {
            let d = &mut self.delayed_produce[i];
            for p in d.parts.iter_mut() {
                if p.result.is_some() {
                    continue;
                }
                let Some(part) = self.partitions.get(&p.tp) else {
                    p.result = Some(ErrorCode::NotLeaderOrFollower);
                    continue;
                };
                match &part.role {
                    Role::Leader(ls) if part.leader_epoch == p.leader_epoch => {
                        if part.high_watermark >= p.required_offset {
                            // `Partition.checkEnoughReplicasReachOffset`: the maximal
                            // ISR against `effectiveMinIsr`.
                            let min_isr = self.image.min_insync_replicas(&p.tp.topic).unwrap_or(
                                if &*p.tp.topic == TRANSACTION_STATE_TOPIC {
                                    self.config.transaction_state_log_min_isr
                                } else {
                                    self.config.min_insync_replicas
                                },
                            ) as usize;
                            let needed = min_isr.min(ls.replicas.len());
                            p.result = Some(if ls.maximal_isr().len() < needed {
                                ErrorCode::NotEnoughReplicasAfterAppend
                            } else {
                                ErrorCode::None
                            });
                        } else if now >= d.deadline {
                            p.result = Some(ErrorCode::RequestTimedOut);
                        }
                    }
                    _ => p.result = Some(ErrorCode::NotLeaderOrFollower),
                }
            }
            if d.parts.iter().all(|p| p.result.is_some()) {
                // In order: requests decided together are answered in the order they
                // arrived, as Kafka answers the requests of one connection.
                let d = self.delayed_produce.remove(i);
                let (from, correlation_id) = match d.waiter {
                    Waiter::Client {
                        from,
                        correlation_id,
                    } => (from, correlation_id),
                    Waiter::Coordinator(id) => {
                        coordinator_appends.push((id, d.parts[0].result.expect("decided")));
                        continue;
                    }
                    Waiter::TxnCoordinator(id) => {
                        txn_appends.push((id, d.parts[0].result.expect("decided")));
                        continue;
                    }
                    Waiter::TxnMarkers {
                        from,
                        correlation_id,
                        markers,
                        part_markers,
                    } => {
                        let mut answer: Vec<(i64, Vec<(TopicPartition, ErrorCode)>)> =
                            markers.iter().map(|(pid, _)| (*pid, Vec::new())).collect();
                        for (p, m) in d.parts.into_iter().zip(part_markers) {
                            let error = p.result.expect("decided");
                            let (producer_id, committed) = markers[m];
                            if error == ErrorCode::None && &*p.tp.topic == OFFSETS_TOPIC {
                                offsets_markers.push((p.tp.partition, producer_id, committed));
                            }
                            answer[m].1.push((p.tp, error));
                        }
                        let response = WriteTxnMarkersResponse { markers: answer };
                        Self::respond(
                            from,
                            correlation_id,
                            Response::WriteTxnMarkers(response),
                            out,
                        );
                        continue;
                    }
                };
                let partitions = d
                    .parts
                    .into_iter()
                    .map(|p| {
                        let error = p.result.expect("decided");
                        let written = error == ErrorCode::None;
                        ProducePartitionResponse {
                            tp: p.tp,
                            error,
                            base_offset: if written { p.base_offset } else { -1 },
                            log_start_offset: p.log_start_offset,
                        }
                    })
                    .collect();
                Self::respond(
                    from,
                    correlation_id,
                    Response::Produce(ProduceResponse { partitions }),
                    out,
                );
            } else {
                i += 1;
            }
        }
        for (id, error) in coordinator_appends {
            let output = self.coordinator.on_append_complete(now, id, error);
            self.apply_coordinator_output(now, output, out);
        }
        for (id, error) in txn_appends {
            let output = self.txn_coordinator.on_append_complete(now, id, error);
            self.apply_txn_output(now, output, out);
        }
        // Transactional offset commits become visible (or are dropped) once their
        // marker is replicated.
        for (partition, producer_id, committed) in offsets_markers {
            self.coordinator
                .on_txn_marker(partition, producer_id, committed);
        }
    }

    // ------------------------------------------------------------ group coordinator

    /// The `__consumer_offsets` partition of a group, once the topic exists.
    fn coordinator_partition(&self, group_id: &str) -> Option<u32> {
        self.image
            .topics
            .get(OFFSETS_TOPIC)
            .map(|n| shared::partition_for_group(group_id, *n))
    }

    /// `FindCoordinator`: the leader of the group's offsets partition. Transaction
    /// coordinators do not exist yet: `COORDINATOR_NOT_AVAILABLE`.
    fn handle_find_coordinator(&self, req: &FindCoordinatorRequest) -> FindCoordinatorResponse {
        let leader = match req.key_type {
            CoordinatorType::Group => self
                .coordinator_partition(&req.key)
                .and_then(|p| {
                    self.image
                        .partitions
                        .get(&TopicPartition::new(OFFSETS_TOPIC, p))
                })
                .and_then(|reg| reg.leader)
                .filter(|l| self.image.is_live(*l)),
            CoordinatorType::Transaction => self.transaction_coordinator(&req.key),
        };
        FindCoordinatorResponse {
            error: if leader.is_some() {
                ErrorCode::None
            } else {
                ErrorCode::CoordinatorNotAvailable
            },
            node_id: leader,
        }
    }

    /// A group API request: served if this broker leads (unfenced) the group's offsets
    /// partition and has loaded it, else `NOT_COORDINATOR`.
    fn handle_group_request(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        request: Request,
        out: &mut Outbox,
    ) {
        let group_id = group::group_id(&request).expect("a group request");
        let fenced = self.self_fenced(now);
        let partition = self.coordinator_partition(group_id).filter(|p| {
            let tp = TopicPartition::new(OFFSETS_TOPIC, *p);
            let leads = self
                .partitions
                .get(&tp)
                .is_some_and(|part| matches!(part.role, Role::Leader(_)));
            leads && !fenced && self.coordinator.is_loaded(*p)
        });
        let Some(partition) = partition else {
            let response = group::error_response(&request, ErrorCode::NotCoordinator)
                .expect("a group request");
            Self::respond(from, correlation_id, response, out);
            return;
        };
        let reply_to = ReplyTo {
            client: from,
            correlation_id,
        };
        let output = self.coordinator.handle(now, partition, reply_to, request);
        self.apply_coordinator_output(now, output, out);
    }

    /// Sends the coordinator's answers and appends its records.
    fn apply_coordinator_output(
        &mut self,
        now: Millis,
        output: CoordinatorOutput,
        out: &mut Outbox,
    ) {
        for (to, response) in output.responses {
            Self::respond(to.client, to.correlation_id, response, out);
        }
        for r in output.rebalances {
            out.record(Entry::instant(
                NodeId::Broker(self.id),
                now,
                Op::PrepareRebalance {
                    group: r.group_id.to_string(),
                    generation: r.generation,
                    cause: r.cause,
                    reason: r.reason,
                },
            ));
        }
        for append in output.appends {
            self.append_for_coordinator(now, append, out);
        }
    }

    /// Appends a coordinator batch as leader with `acks=all` semantics: parked in the
    /// produce purgatory until the high watermark passes it or
    /// `offsets.commit.timeout.ms` runs out.
    fn append_for_coordinator(&mut self, now: Millis, append: CoordinatorAppend, out: &mut Outbox) {
        let tp = TopicPartition::new(OFFSETS_TOPIC, append.partition);
        let fenced = self.self_fenced(now);
        let epoch = match self.acks_all_leader_epoch(&tp, fenced) {
            Ok(epoch) => epoch,
            Err(error) => {
                let output = self.coordinator.on_append_complete(now, append.id, error);
                self.apply_coordinator_output(now, output, out);
                return;
            }
        };
        // Kafka's `ProducerAppendInfo.checkProducerEpoch` (origin COORDINATOR): a
        // fenced producer's `TxnOffsetCommit` is refused once a marker of a newer epoch
        // is in the partition, so its offsets never wait under the producer id that its
        // successor shares.
        let header = BatchHeader::parse(&append.batch).expect("coordinator batches are valid");
        let epoch_fencing = !self.bugs.on(Bug::NoProducerEpochFencing);
        let checked = self.disk.logs[&tp]
            .producer_state()
            .check_coordinator_append(&header, epoch_fencing);
        if let Err(error) = checked {
            let output = self.coordinator.on_append_complete(now, append.id, error);
            self.apply_coordinator_output(now, output, out);
            return;
        }
        let deadline = now + self.config.offsets_commit_timeout_ms;
        let waiter = Waiter::Coordinator(append.id);
        self.append_and_park(now, (tp, epoch), &append.batch, (waiter, deadline), out);
    }

    /// Appends a batch of the broker's own as leader of `tp` in `epoch` and parks it in
    /// the produce purgatory for `waiter` until replicated or `deadline`.
    fn append_and_park(
        &mut self,
        now: Millis,
        (tp, epoch): (TopicPartition, LeaderEpoch),
        batch: &Bytes,
        (waiter, deadline): (Waiter, Millis),
        out: &mut Outbox,
    ) {
        let log = self.disk.logs.get_mut(&tp).expect("leader has a log");
        let log_start_offset = log.log_start_offset();
        let (base, last) = log
            .append_as_leader(batch, epoch)
            .expect("coordinator batches are valid");
        let part = ProducePart {
            tp: tp.clone(),
            leader_epoch: epoch,
            base_offset: base,
            required_offset: last + 1,
            log_start_offset,
            result: None,
        };
        self.park_produce(now, waiter, deadline, vec![part], vec![tp], out);
    }

    /// The leader epoch to append an `acks=all` batch of the broker's own (a coordinator's
    /// records, a transaction marker) in: `NOT_LEADER_OR_FOLLOWER` unless this broker
    /// leads `tp` unfenced, `NOT_ENOUGH_REPLICAS` below `min.insync.replicas`.
    fn acks_all_leader_epoch(
        &self,
        tp: &TopicPartition,
        fenced: bool,
    ) -> Result<LeaderEpoch, ErrorCode> {
        self.acks_all_leader_epoch_with(tp, fenced, self.configured_min_isr(tp))
    }

    /// [`Self::acks_all_leader_epoch`] with the topic's own `min.insync.replicas`.
    fn acks_all_leader_epoch_with(
        &self,
        tp: &TopicPartition,
        fenced: bool,
        min_insync_replicas: usize,
    ) -> Result<LeaderEpoch, ErrorCode> {
        match self.partitions.get(tp) {
            Some(Partition {
                role: Role::Leader(ls),
                leader_epoch,
                ..
            }) if !fenced => {
                if ls.isr.len() < min_insync_replicas.min(ls.replicas.len()) {
                    Err(ErrorCode::NotEnoughReplicas)
                } else {
                    Ok(*leader_epoch)
                }
            }
            _ => Err(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// This broker became leader of an offsets partition (or leads it in a new epoch):
    /// whatever was loaded is dropped and the partition's log is replayed.
    fn coordinator_elected(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        self.coordinator_resigned(now, tp, out);
        let log = &self.disk.logs[tp];
        let batches = log.read(0, log.log_end_offset(), usize::MAX);
        self.coordinator.load(now, tp.partition, &batches);
    }

    /// This broker no longer leads an offsets partition: its groups are dropped.
    fn coordinator_resigned(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        if &*tp.topic == OFFSETS_TOPIC {
            let output = self.coordinator.unload(tp.partition);
            self.apply_coordinator_output(now, output, out);
        }
        if &*tp.topic == TRANSACTION_STATE_TOPIC && self.txn_coordinator.is_loaded(tp.partition) {
            let output = self.txn_coordinator.unload(tp.partition);
            self.apply_txn_output(now, output, out);
        }
    }

    // ------------------------------------------------------------ transaction coordinator

    /// This broker leads a `__transaction_state` partition (or leads it in a new epoch):
    /// its transactions are reloaded from the log, the leader epoch becoming the
    /// coordinator epoch its markers carry; prepared transactions resume their markers.
    fn txn_coordinator_elected(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        leader_epoch: LeaderEpoch,
        out: &mut Outbox,
    ) {
        self.coordinator_resigned(now, tp, out);
        let log = &self.disk.logs[tp];
        let batches = log.read(0, log.log_end_offset(), usize::MAX);
        let output = self
            .txn_coordinator
            .load(now, tp.partition, leader_epoch, &batches);
        self.apply_txn_output(now, output, out);
    }

    /// A transaction API request (`InitProducerId` with a `transactional.id`,
    /// `AddPartitionsToTxn`, `AddOffsetsToTxn`, `EndTxn`): served if this broker leads,
    /// unfenced, the id's `__transaction_state` partition, else `NOT_COORDINATOR`.
    fn handle_txn_request(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        request: Request,
        out: &mut Outbox,
    ) {
        let id = txn::transactional_id(&request).expect("a transaction request");
        let fenced = self.self_fenced(now);
        let partition = self
            .image
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .map(|n| txn::partition_for_transactional_id(id, *n))
            .filter(|p| {
                let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, *p);
                let leads = self
                    .partitions
                    .get(&tp)
                    .is_some_and(|part| matches!(part.role, Role::Leader(_)));
                leads && !fenced
            });
        let Some(partition) = partition else {
            let response = txn::error_response(&request, ErrorCode::NotCoordinator)
                .expect("a transaction request");
            Self::respond(from, correlation_id, response, out);
            return;
        };
        let reply_to = ReplyTo {
            client: from,
            correlation_id,
        };
        let ids = &mut self.producer_ids;
        let output = self
            .txn_coordinator
            .handle(now, partition, reply_to, request, &mut || ids.generate());
        self.apply_txn_output(now, output, out);
    }

    /// Sends the transaction coordinator's answers, appends its records, records its
    /// state changes in the history, and sends the markers that are due.
    fn apply_txn_output(&mut self, now: Millis, output: TxnCoordinatorOutput, out: &mut Outbox) {
        for (to, response) in output.responses {
            Self::respond(to.client, to.correlation_id, response, out);
        }
        for t in output.transitions {
            out.record(Entry::instant(
                NodeId::Broker(self.id),
                now,
                Op::TxnState {
                    transactional_id: t.transactional_id.to_string(),
                    producer_id: t.producer_id,
                    producer_epoch: t.producer_epoch,
                    from: t.from.name().to_string(),
                    to: t.to.name().to_string(),
                },
            ));
        }
        for append in output.appends {
            self.append_for_txn_coordinator(now, append, out);
        }
        self.send_txn_markers(now, out);
    }

    /// Appends a `__transaction_state` batch with `acks=all` semantics under
    /// `transaction.state.log.min.isr`.
    fn append_for_txn_coordinator(
        &mut self,
        now: Millis,
        append: CoordinatorAppend,
        out: &mut Outbox,
    ) {
        let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, append.partition);
        let fenced = self.self_fenced(now);
        let min_isr = self.configured_min_isr(&tp);
        let epoch = match self.acks_all_leader_epoch_with(&tp, fenced, min_isr) {
            Ok(epoch) => epoch,
            Err(error) => {
                let output = self
                    .txn_coordinator
                    .on_append_complete(now, append.id, error);
                self.apply_txn_output(now, output, out);
                return;
            }
        };
        let deadline = now + self.config.request_timeout_ms;
        let waiter = Waiter::TxnCoordinator(append.id);
        self.append_and_park(now, (tp, epoch), &append.batch, (waiter, deadline), out);
    }

    /// The transaction coordinator's marker channel: `WriteTxnMarkers` to each live
    /// partition leader that has markers due.
    fn send_txn_markers(&mut self, now: Millis, out: &mut Outbox) {
        let image = &self.image;
        let mut leader_of = |tp: &TopicPartition| {
            image
                .partitions
                .get(tp)
                .and_then(|r| r.leader)
                .filter(|l| image.is_live(*l))
        };
        let requests: Vec<MarkerRequest> =
            self.txn_coordinator.markers_to_send(now, &mut leader_of);
        for MarkerRequest {
            id,
            destination,
            request,
        } in requests
        {
            let timeout = self.config.request_timeout_ms;
            self.request(
                now,
                NodeId::Broker(destination),
                Pending::WriteTxnMarkers(id, destination),
                timeout,
                Request::WriteTxnMarkers(request),
                out,
            );
        }
    }

    /// A `WriteTxnMarkers` of the transaction coordinator was answered or failed.
    fn on_markers_answer(
        &mut self,
        now: Millis,
        id: u64,
        answer: Result<&WriteTxnMarkersResponse, ErrorCode>,
        out: &mut Outbox,
    ) {
        let output = self.txn_coordinator.on_markers_response(now, id, answer);
        self.apply_txn_output(now, output, out);
    }

    /// `InitProducerId`. Without a `transactional.id` this is Kafka's
    /// `TransactionCoordinator.handleInitProducerId` for an idempotent producer: a fresh
    /// producer id at epoch 0 every time, even for a producer that sends its current id
    /// and epoch; `COORDINATOR_LOAD_IN_PROGRESS` (retriable) while no block has an id.
    fn handle_init_producer_id(&mut self, req: InitProducerIdRequest) -> InitProducerIdResponse {
        assert!(
            req.transactional_id.is_none(),
            "a transactional InitProducerId goes to the transaction coordinator"
        );
        let answer = self
            .producer_ids
            .generate()
            .ok_or(ErrorCode::CoordinatorLoadInProgress);
        match answer {
            Ok(producer_id) => InitProducerIdResponse {
                error: ErrorCode::None,
                producer_id,
                producer_epoch: 0,
            },
            Err(error) => InitProducerIdResponse {
                error,
                producer_id: -1,
                producer_epoch: -1,
            },
        }
    }

    /// Reads a fetch; returns the response and whether any partition had data or an error.
    fn read_fetch(
        &mut self,
        now: Millis,
        req: &FetchRequest,
        first_time: bool,
        out: &mut Outbox,
    ) -> (FetchResponse, bool) {
        let fenced = self.self_fenced(now);
        let read_committed =
            req.replica_id.is_none() && req.isolation_level == IsolationLevel::ReadCommitted;
        let mut partitions = Vec::with_capacity(req.partitions.len());
        let mut any = false;
        let mut hw_updates = Vec::new();
        for fp in &req.partitions {
            let leo = self.log_end_offset(&fp.tp);
            let mut resp = FetchPartitionResponse {
                tp: fp.tp.clone(),
                error: ErrorCode::None,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: 0,
                batches: Vec::new(),
                aborted_transactions: Vec::new(),
                diverging_epoch: None,
            };
            let Some(part) = self.partitions.get_mut(&fp.tp) else {
                resp.error = ErrorCode::NotLeaderOrFollower;
                partitions.push(resp);
                any = true;
                continue;
            };
            let Role::Leader(ls) = &mut part.role else {
                resp.error = ErrorCode::NotLeaderOrFollower;
                partitions.push(resp);
                any = true;
                continue;
            };
            let log = &self.disk.logs[&fp.tp];
            // Kafka's `Partition.readRecords`: a follower's `lastFetchedEpoch` is looked
            // up in the leader's epoch cache before any read; an undefined answer is
            // OFFSET_OUT_OF_RANGE, an older epoch or an end offset below the fetch
            // offset is the diverging epoch (no records, no follower state update).
            let mut diverging = None;
            let mut epoch_unknown = false;
            if let Some(fetched) = fp.last_fetched_epoch {
                let (epoch, end) = log.end_offset_for_epoch(fetched);
                if epoch < 0 || end < 0 {
                    epoch_unknown = true;
                } else if epoch < fetched || end < fp.fetch_offset {
                    diverging = Some((epoch, end));
                }
            }
            // No OFFSET_NOT_AVAILABLE on Fetch: a new leader whose high watermark lags
            // answers consumers with the one it has (`Partition.readRecords`; only
            // `fetchOffsetForTimestamp`, i.e. ListOffsets, refuses while the high
            // watermark is below the epoch start offset).
            let error = if fenced {
                ErrorCode::NotLeaderOrFollower
            } else if let Some(e) = epoch_error(fp.current_leader_epoch, part.leader_epoch) {
                e
            } else if epoch_unknown {
                ErrorCode::OffsetOutOfRange
            } else if diverging.is_some() {
                ErrorCode::None
            } else if fp.fetch_offset > leo || fp.fetch_offset < 0 {
                ErrorCode::OffsetOutOfRange
            } else {
                ErrorCode::None
            };
            let last_stable_offset = log.last_stable_offset(part.high_watermark);
            resp.error = error;
            resp.high_watermark = part.high_watermark;
            resp.last_stable_offset = last_stable_offset;
            if error != ErrorCode::None || diverging.is_some() {
                // A diverging epoch answers at once (`ReplicaManager.fetchMessages`).
                resp.diverging_epoch = diverging;
                partitions.push(resp);
                any = true;
                continue;
            }
            let until = match req.replica_id {
                Some(follower) => {
                    if first_time {
                        if let Some(rm) = ls.remotes.get_mut(&follower) {
                            // Kafka's lastCaughtUpTime rule (Replica.updateFetchState).
                            if fp.fetch_offset >= leo {
                                rm.last_caught_up_ms = now;
                            } else if fp.fetch_offset >= rm.last_fetch_leader_leo {
                                rm.last_caught_up_ms = rm.last_caught_up_ms.max(rm.last_fetch_ms);
                            }
                            rm.log_end_offset = fp.fetch_offset;
                            rm.last_fetch_leader_leo = rm.last_fetch_leader_leo.max(leo);
                            rm.last_fetch_ms = now;
                            hw_updates.push((fp.tp.clone(), follower));
                        }
                    }
                    leo
                }
                // Kafka's FetchIsolation: consumers read up to the high watermark, or
                // with read_committed up to the last stable offset.
                None if read_committed => last_stable_offset,
                None => part.high_watermark,
            };
            let log = self.disk.logs.get(&fp.tp).expect("leader has a log");
            resp.batches = log.read(fp.fetch_offset, until, req.max_bytes);
            if read_committed {
                if let Some(last) = resp.batches.last() {
                    let upper = BatchHeader::parse(last)
                        .expect("stored batches are valid")
                        .last_offset()
                        + 1;
                    resp.aborted_transactions = log.aborted_transactions(fp.fetch_offset, upper);
                }
            }
            any |= !resp.batches.is_empty();
            partitions.push(resp);
        }
        for (tp, follower) in hw_updates {
            self.maybe_expand_isr(now, &tp, follower, out);
            self.maybe_increment_hw(now, &tp, out);
        }
        // The HW may have moved while handling this very fetch.
        for p in partitions.iter_mut() {
            if p.error == ErrorCode::None {
                if let Some(part) = self.partitions.get(&p.tp) {
                    p.high_watermark = part.high_watermark;
                    p.last_stable_offset =
                        self.disk.logs[&p.tp].last_stable_offset(part.high_watermark);
                }
            }
        }
        (
            FetchResponse {
                error: ErrorCode::None,
                partitions,
            },
            any,
        )
    }

    fn handle_fetch(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: FetchRequest,
        out: &mut Outbox,
    ) {
        if let Some(r) = req.replica_id {
            if self
                .image
                .brokers
                .get(&r)
                .is_none_or(|b| b.broker_epoch != req.broker_epoch)
            {
                // A follower from an old incarnation; it will learn its new epoch soon.
                let resp = FetchResponse {
                    error: ErrorCode::StaleBrokerEpoch,
                    partitions: vec![],
                };
                Self::respond(from, correlation_id, Response::Fetch(resp), out);
                return;
            }
        }
        let (resp, any) = self.read_fetch(now, &req, true, out);
        if any || req.max_wait_ms == 0 {
            Self::respond(from, correlation_id, Response::Fetch(resp), out);
        } else {
            assert!(
                self.delayed_fetch.len() < MAX_PURGATORY,
                "fetch purgatory overflow"
            );
            self.delayed_fetch.push(DelayedFetch {
                from,
                correlation_id,
                deadline: now + req.max_wait_ms,
                request: req,
            });
        }
    }

    /// Re-reads parked fetches; answers those with data or past their deadline.
    /// `followers_only`: only follower fetches can have new data (an append, no HW move).
    fn complete_delayed_fetch(&mut self, now: Millis, followers_only: bool, out: &mut Outbox) {
        if self.delayed_fetch.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.delayed_fetch);
        for d in parked {
            if followers_only && d.request.replica_id.is_none() && now < d.deadline {
                self.delayed_fetch.push(d);
                continue;
            }
            let (resp, any) = self.read_fetch(now, &d.request, false, out);
            if any || now >= d.deadline {
                Self::respond(d.from, d.correlation_id, Response::Fetch(resp), out);
            } else {
                self.delayed_fetch.push(d);
            }
        }
    }

    /// Kafka's `getPartitionOrError` + `checkCurrentLeaderEpoch`: the partition if this
    /// broker leads it (and has not fenced itself) in the epoch the client believes.
    fn leader_partition(
        &self,
        tp: &TopicPartition,
        current_leader_epoch: LeaderEpoch,
        fenced: bool,
    ) -> Result<(&Partition, &LeaderState), ErrorCode> {
        match self.partitions.get(tp) {
            Some(
                p @ Partition {
                    role: Role::Leader(ls),
                    ..
                },
            ) if !fenced => {
                epoch_error(current_leader_epoch, p.leader_epoch).map_or(Ok((p, ls)), Err)
            }
            _ => Err(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// `ListOffsets` (Kafka's `Partition.fetchOffsetForTimestamp`): the earliest offset,
    /// the latest (the high watermark, or the last stable offset with
    /// `read_committed`), or the first offset whose record timestamp is at or after the
    /// given one, with that timestamp; offset and timestamp -1 when no such record is
    /// below the latest offset.
    fn handle_list_offsets(&mut self, now: Millis, req: ListOffsetsRequest) -> ListOffsetsResponse {
        let fenced = self.self_fenced(now);
        let read_committed = req.isolation_level == IsolationLevel::ReadCommitted;
        let partitions = req
            .partitions
            .into_iter()
            .map(|(tp, ts, epoch)| {
                let answer = self
                    .leader_partition(&tp, epoch, fenced)
                    .and_then(|(p, ls)| {
                        let log = &self.disk.logs[&tp];
                        let hw_unknown = p.high_watermark < ls.epoch_start_offset;
                        let last_fetchable = if read_committed {
                            log.last_stable_offset(p.high_watermark)
                        } else {
                            p.high_watermark
                        };
                        if ts >= 0 {
                            match log.offset_for_timestamp(ts) {
                                Some(found) if found.offset < last_fetchable => {
                                    Ok((found.leader_epoch, found.offset, found.timestamp))
                                }
                                // Kafka: a record past the latest offset is not found,
                                // unless the new leader's high watermark is not known.
                                _ if hw_unknown => Err(ErrorCode::OffsetNotAvailable),
                                _ => Ok((-1, -1, -1)),
                            }
                        } else if hw_unknown {
                            Err(ErrorCode::OffsetNotAvailable)
                        } else if ts == EARLIEST_TIMESTAMP {
                            Ok((p.leader_epoch, 0, -1))
                        } else if ts == LATEST_TIMESTAMP {
                            Ok((p.leader_epoch, last_fetchable, -1))
                        } else {
                            Err(ErrorCode::InvalidRequest)
                        }
                    });
                let (error, (leader_epoch, offset, timestamp)) = match answer {
                    Ok(found) => (ErrorCode::None, found),
                    Err(e) => (e, (-1, -1, -1)),
                };
                ListOffsetsPartitionResponse {
                    tp,
                    error,
                    offset,
                    leader_epoch,
                    timestamp,
                }
            })
            .collect();
        ListOffsetsResponse { partitions }
    }

    fn handle_offsets_for_leader_epoch(
        &mut self,
        now: Millis,
        req: OffsetsForLeaderEpochRequest,
    ) -> OffsetsForLeaderEpochResponse {
        let fenced = self.self_fenced(now);
        let partitions = req
            .partitions
            .into_iter()
            .map(|(tp, current, wanted)| {
                let answer = self
                    .leader_partition(&tp, current, fenced)
                    .map(|_| self.disk.logs[&tp].end_offset_for_epoch(wanted));
                let (error, (leader_epoch, end_offset)) = match answer {
                    Ok(found) => (ErrorCode::None, found),
                    Err(e) => (e, (-1, -1)),
                };
                EpochEndOffset {
                    tp,
                    error,
                    leader_epoch,
                    end_offset,
                }
            })
            .collect();
        OffsetsForLeaderEpochResponse { partitions }
    }

    // ------------------------------------------------------------ follower side

    fn follower_work(&mut self, now: Millis, out: &mut Outbox) {
        if self.lifecycle != Lifecycle::Running {
            return;
        }
        let busy: BTreeSet<BrokerId> = self
            .pending
            .values()
            .filter_map(|(p, _)| match p {
                Pending::FollowerFetch(l) | Pending::OffsetsForLeaderEpoch(l) => Some(*l),
                _ => None,
            })
            .collect();
        let mut ask: BTreeMap<BrokerId, Vec<(TopicPartition, LeaderEpoch, LeaderEpoch)>> =
            BTreeMap::new();
        let mut fetch: BTreeMap<BrokerId, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, part) in self.partitions.iter_mut() {
            let Role::Follower { leader, phase } = &mut part.role else {
                continue;
            };
            if busy.contains(leader) || self.fetch_backoff.get(leader).is_some_and(|t| *t > now) {
                continue;
            }
            let log = &self.disk.logs[tp];
            match phase {
                FollowerPhase::Truncating { asked: false } => {
                    let wanted = log.latest_epoch().unwrap_or(-1);
                    if wanted < 0 {
                        *phase = FollowerPhase::Fetching;
                    } else {
                        *phase = FollowerPhase::Truncating { asked: true };
                        ask.entry(*leader).or_default().push((
                            tp.clone(),
                            part.leader_epoch,
                            wanted,
                        ));
                        continue;
                    }
                }
                FollowerPhase::Truncating { asked: true } => continue,
                FollowerPhase::Fetching => {}
            }
            fetch.entry(*leader).or_default().push(FetchPartition {
                tp: tp.clone(),
                fetch_offset: log.log_end_offset(),
                current_leader_epoch: part.leader_epoch,
                // KIP-595 `lastFetchedEpoch` (`RemoteLeaderEndPoint.buildFetch`): the
                // log's latest epoch, which after appends is the last fetched batch's.
                // The historic followers of the two truncation switches predate it.
                last_fetched_epoch: if self.bugs.on(Bug::TruncateToHighWatermark)
                    || self.bugs.on(Bug::NoEpochInEndOffset)
                {
                    None
                } else {
                    log.latest_epoch()
                },
            });
        }
        let timeout = self.config.replica_socket_timeout_ms;
        for (leader, partitions) in ask {
            let req = Request::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
                replica_id: Some(self.id),
                partitions,
            });
            self.request(
                now,
                NodeId::Broker(leader),
                Pending::OffsetsForLeaderEpoch(leader),
                timeout,
                req,
                out,
            );
        }
        for (leader, partitions) in fetch {
            let req = Request::Fetch(FetchRequest {
                replica_id: Some(self.id),
                broker_epoch: self.broker_epoch,
                max_wait_ms: self.config.replica_fetch_wait_max_ms,
                min_bytes: 1,
                max_bytes: self.config.replica_fetch_max_bytes,
                isolation_level: IsolationLevel::ReadUncommitted,
                partitions,
            });
            let t = timeout + self.config.replica_fetch_wait_max_ms;
            self.request(
                now,
                NodeId::Broker(leader),
                Pending::FollowerFetch(leader),
                t,
                req,
                out,
            );
        }
    }

    fn on_follower_fetch_response(&mut self, now: Millis, leader: BrokerId, resp: FetchResponse) {
        if resp.error != ErrorCode::None {
            self.fetch_backoff
                .insert(leader, now + self.config.replica_fetch_backoff_ms);
            return;
        }
        let mut backoff = false;
        for p in resp.partitions {
            let Some(part) = self.partitions.get_mut(&p.tp) else {
                continue;
            };
            let Role::Follower { leader: l, phase } = &mut part.role else {
                continue;
            };
            if *l != leader || *phase != FollowerPhase::Fetching {
                continue;
            }
            match p.error {
                ErrorCode::None if p.diverging_epoch.is_some() => {
                    // `AbstractFetcherThread.processFetchRequest`: truncate on the
                    // diverging epoch and keep fetching (the records and high watermark
                    // come with the next fetch, whose `lastFetchedEpoch` is the log's
                    // latest epoch after truncation).
                    let (epoch, end) = p.diverging_epoch.expect("checked");
                    let log = self.disk.logs.get_mut(&p.tp).expect("follower has a log");
                    let (target, _) = offset_truncation_state(log, epoch, end, part.high_watermark);
                    log.truncate_to(target.min(log.log_end_offset()));
                    part.high_watermark = part.high_watermark.min(log.log_end_offset());
                }
                ErrorCode::None => {
                    let log = self.disk.logs.get_mut(&p.tp).expect("follower has a log");
                    for b in &p.batches {
                        if log.append_as_follower(b).is_err() {
                            *phase = FollowerPhase::Truncating { asked: false };
                            break;
                        }
                    }
                    let leo = log.log_end_offset();
                    let hw = p.high_watermark.min(leo);
                    if hw > part.high_watermark {
                        part.high_watermark = hw;
                    }
                }
                ErrorCode::OffsetOutOfRange if self.bugs.on(Bug::TruncateToHighWatermark) => {
                    // Pre-KIP-101: a follower ahead of the leader cut its log back to the
                    // leader's end and kept whatever diverged below it.
                    let log = self.disk.logs.get_mut(&p.tp).expect("follower has a log");
                    log.truncate_to(p.high_watermark.min(log.log_end_offset()));
                    part.high_watermark = part.high_watermark.min(log.log_end_offset());
                }
                ErrorCode::OffsetOutOfRange => *phase = FollowerPhase::Truncating { asked: false },
                _ => backoff = true,
            }
        }
        if backoff {
            self.fetch_backoff
                .insert(leader, now + self.config.replica_fetch_backoff_ms);
        }
    }

    fn on_epoch_end_offsets(
        &mut self,
        now: Millis,
        leader: BrokerId,
        resp: OffsetsForLeaderEpochResponse,
    ) {
        for r in resp.partitions {
            let Some(part) = self.partitions.get_mut(&r.tp) else {
                continue;
            };
            let Role::Follower { leader: l, phase } = &mut part.role else {
                continue;
            };
            if *l != leader || *phase != (FollowerPhase::Truncating { asked: true }) {
                continue;
            }
            if r.error != ErrorCode::None {
                *phase = FollowerPhase::Truncating { asked: false };
                self.fetch_backoff
                    .insert(leader, now + self.config.replica_fetch_backoff_ms);
                continue;
            }
            let log = self.disk.logs.get_mut(&r.tp).expect("follower has a log");
            let target = if self.bugs.on(Bug::NoEpochInEndOffset) {
                // Pre-KIP-279 (OffsetsForLeaderEpoch v0, no epoch in the answer): the
                // leader's end offset alone, whatever epoch our own records below it
                // carry; undefined: the high watermark.
                if r.end_offset < 0 {
                    part.high_watermark
                } else {
                    r.end_offset
                }
            } else {
                offset_truncation_state(log, r.leader_epoch, r.end_offset, part.high_watermark).0
            };
            // Also drops epoch cache entries starting at the end (an epoch this replica
            // led without appending), as Kafka's truncateFromEnd does.
            log.truncate_to(target.min(log.log_end_offset()));
            part.high_watermark = part.high_watermark.min(log.log_end_offset());
            // Kafka 4.x (`updateFetchOffsetAndMaybeMarkTruncationComplete` with
            // truncation on fetch): fetching resumes even when the truncation is not
            // complete; the fetch's `lastFetchedEpoch` carries on where the answer was
            // an epoch this replica never had.
            *phase = FollowerPhase::Fetching;
        }
    }

    // ------------------------------------------------------------ controller side

    fn on_controller_response(
        &mut self,
        now: Millis,
        correlation_id: u64,
        what: Pending,
        response: Response,
        out: &mut Outbox,
    ) {
        match (what, response) {
            (Pending::Registration, Response::BrokerRegistration(r))
                if r.error == ErrorCode::None =>
            {
                self.broker_epoch = r.broker_epoch;
                self.lifecycle = Lifecycle::Running;
                self.next_heartbeat_ms = now;
                self.registration_failures = 0;
            }
            // DUPLICATE_BROKER_REGISTRATION while the old incarnation's session lives,
            // or any other refusal: `BrokerLifecycleManager` tries again after its
            // exponential backoff.
            (Pending::Registration, Response::BrokerRegistration(_)) => {
                self.registration_failed(now);
            }
            (Pending::Heartbeat, Response::BrokerHeartbeat(r)) => match r.error {
                ErrorCode::None => {}
                ErrorCode::StaleBrokerEpoch | ErrorCode::BrokerIdNotRegistered => {
                    self.lifecycle = Lifecycle::Registering;
                }
                _ => {}
            },
            (Pending::MetadataFetch, Response::MetadataFetch(r)) => {
                self.apply_metadata(now, r.records, out);
            }
            (Pending::AlterPartition(tp), Response::AlterPartition(r)) => {
                if let Some(Partition {
                    role: Role::Leader(ls),
                    leader_epoch,
                    partition_epoch,
                    ..
                }) = self.partitions.get_mut(&tp)
                {
                    // An answer to a request whose proposal was since replaced (by a
                    // newer registration) is ignored, as Kafka's `submitAlterPartition`.
                    if let Some((in_flight, _, retry_at)) = &mut ls.pending {
                        if *in_flight == correlation_id {
                            *in_flight = 0;
                            match (r.error, r.registration) {
                                (ErrorCode::None, Some(reg)) => {
                                    // `handleAlterPartitionUpdate`.
                                    if reg.leader_epoch == *leader_epoch
                                        && reg.partition_epoch >= *partition_epoch
                                    {
                                        ls.isr = reg.isr;
                                        *partition_epoch = reg.partition_epoch;
                                        ls.pending = None;
                                    }
                                }
                                // `handleAlterPartitionError`: the controller says the
                                // request was not applied: back to the committed ISR.
                                (ErrorCode::OperationNotAttempted, _)
                                | (ErrorCode::IneligibleReplica, _) => ls.pending = None,
                                // The leader's state is out of date: keep the pending
                                // (maximal, KIP-497) ISR until metadata replaces it.
                                (
                                    ErrorCode::UnknownTopicOrPartition
                                    | ErrorCode::FencedLeaderEpoch
                                    | ErrorCode::InvalidUpdateVersion
                                    | ErrorCode::InvalidRequest,
                                    _,
                                ) => *retry_at = Millis::MAX,
                                // STALE_BROKER_EPOCH, NOT_CONTROLLER, ...: retried.
                                _ => *retry_at = now + ALTER_PARTITION_RETRY_BACKOFF_MS,
                            }
                        }
                    }
                }
                self.maybe_increment_hw(now, &tp, out);
            }
            (Pending::AllocateProducerIds, Response::AllocateProducerIds(r)) => {
                if r.error == ErrorCode::None {
                    self.producer_ids.on_block(
                        r.producer_id_start,
                        r.producer_id_len,
                        self.image.next_producer_id,
                    );
                } else {
                    // STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED, NOT_CONTROLLER, ...
                    self.producer_ids.on_failure(now);
                }
            }
            _ => {}
        }
    }

    /// A registration was refused or went unanswered: `BrokerLifecycleManager`'s
    /// `scheduleNextCommunicationAfterFailure`, 100 ms doubling up to
    /// `broker.session.timeout.ms`.
    fn registration_failed(&mut self, now: Millis) {
        let backoff = REGISTRATION_BACKOFF_MS
            .saturating_mul(1 << self.registration_failures.min(20))
            .min(
                self.config
                    .broker_session_timeout_ms
                    .max(REGISTRATION_BACKOFF_MS),
            );
        self.registration_failures = self.registration_failures.saturating_add(1);
        self.registration_retry_at = now + backoff;
    }

    fn controller_work(&mut self, now: Millis, out: &mut Outbox) {
        let in_flight = |p: &BTreeMap<u64, (Pending, Millis)>, f: fn(&Pending) -> bool| {
            p.values().any(|(w, _)| f(w))
        };
        let timeout = self.config.request_timeout_ms;
        match self.lifecycle {
            Lifecycle::Registering => {
                if !in_flight(&self.pending, |p| matches!(p, Pending::Registration))
                    && now >= self.registration_retry_at
                {
                    let req = Request::BrokerRegistration(BrokerRegistrationRequest {
                        broker_id: self.id,
                        incarnation_id: self.incarnation,
                    });
                    self.request(
                        now,
                        NodeId::Controller,
                        Pending::Registration,
                        timeout.min(2_000),
                        req,
                        out,
                    );
                }
            }
            Lifecycle::Running => {
                if now >= self.next_heartbeat_ms
                    && !in_flight(&self.pending, |p| matches!(p, Pending::Heartbeat))
                {
                    self.next_heartbeat_ms = now + self.config.broker_heartbeat_interval_ms;
                    let req = Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                        broker_id: self.id,
                        broker_epoch: self.broker_epoch,
                        current_metadata_offset: self.image.next_offset - 1,
                        want_fence: self.image.next_offset <= self.broker_epoch,
                    });
                    let t = self.config.broker_heartbeat_interval_ms;
                    self.request(now, NodeId::Controller, Pending::Heartbeat, t, req, out);
                }
                if self.producer_ids.should_request(now)
                    && !in_flight(&self.pending, |p| matches!(p, Pending::AllocateProducerIds))
                {
                    let req = Request::AllocateProducerIds(AllocateProducerIdsRequest {
                        broker_id: self.id,
                        broker_epoch: self.broker_epoch,
                    });
                    let p = Pending::AllocateProducerIds;
                    self.request(now, NodeId::Controller, p, timeout, req, out);
                }
            }
        }
        if !in_flight(&self.pending, |p| matches!(p, Pending::MetadataFetch)) {
            let wait = self.config.replica_fetch_wait_max_ms;
            let req = Request::MetadataFetch(MetadataFetchRequest {
                broker_id: self.id,
                fetch_offset: self.image.next_offset,
                max_wait_ms: wait,
            });
            self.request(
                now,
                NodeId::Controller,
                Pending::MetadataFetch,
                wait + timeout.min(2_000),
                req,
                out,
            );
        }
    }

    fn expire_requests(&mut self, now: Millis, out: &mut Outbox) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in expired {
            let (what, _) = self.pending.remove(&c).expect("listed");
            match what {
                // No answer (a timeout, the controller gone): Kafka's
                // `AlterPartitionManager` never times out; the proposal stays pending
                // and is sent again.
                Pending::AlterPartition(tp) => {
                    if let Some(Partition {
                        role: Role::Leader(ls),
                        ..
                    }) = self.partitions.get_mut(&tp)
                    {
                        if let Some((in_flight, _, retry_at)) = &mut ls.pending {
                            if *in_flight == c {
                                *in_flight = 0;
                                *retry_at = now;
                            }
                        }
                    }
                }
                Pending::Registration => self.registration_failed(now),
                Pending::AllocateProducerIds => self.producer_ids.on_failure(now),
                // Kafka's AddPartitionsToTxnManager: a timeout or a broken connection
                // fails the verification with NETWORK_EXCEPTION; the producer retries.
                Pending::AddPartitionsToTxn(_) => {
                    self.on_verification(now, c, Err(ErrorCode::NetworkException), out)
                }
                Pending::WriteTxnMarkers(id, _) => {
                    self.on_markers_answer(now, id, Err(ErrorCode::RequestTimedOut), out)
                }
                Pending::OffsetsForLeaderEpoch(leader) => {
                    for part in self.partitions.values_mut() {
                        if let Role::Follower { leader: l, phase } = &mut part.role {
                            if *l == leader && *phase == (FollowerPhase::Truncating { asked: true })
                            {
                                *phase = FollowerPhase::Truncating { asked: false };
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The produce error for a partition the transaction coordinator did not verify, as
/// Kafka 4.x maps it (`AddPartitionsToTxnManager`, `ReplicaManager.appendRecords`):
/// `PRODUCER_FENCED` becomes `INVALID_PRODUCER_EPOCH`; errors older clients might not
/// retry become `NOT_ENOUGH_REPLICAS` (retriable, no metadata refresh), except
/// `CONCURRENT_TRANSACTIONS` under transaction version 2, which stays as it is.
fn verification_error(error: ErrorCode, tv2: bool) -> ErrorCode {
    match error {
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        ErrorCode::NetworkException
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator => ErrorCode::NotEnoughReplicas,
        ErrorCode::ConcurrentTransactions if !tv2 => ErrorCode::NotEnoughReplicas,
        other => other,
    }
}

/// KIP-320: a request's current leader epoch older than ours is fenced, newer is
/// unknown to us; -1 skips the check.
fn epoch_error(requested: LeaderEpoch, ours: LeaderEpoch) -> Option<ErrorCode> {
    if requested >= 0 && requested < ours {
        Some(ErrorCode::FencedLeaderEpoch)
    } else if requested > ours {
        Some(ErrorCode::UnknownLeaderEpoch)
    } else {
        None
    }
}

impl Actor for Broker {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        self.next_isr_check_ms = now + self.config.replica_lag_time_max_ms / 2;
        self.next_hw_checkpoint_ms = now + HW_CHECKPOINT_INTERVAL_MS;
        self.controller_work(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        match message {
            Message::Request {
                correlation_id,
                request,
            } => match request {
                r if txn::transactional_id(&r).is_some() => {
                    self.handle_txn_request(now, from, correlation_id, r, out)
                }
                Request::Produce(r) => self.handle_produce(now, from, correlation_id, r, out),
                Request::Fetch(r) => self.handle_fetch(now, from, correlation_id, r, out),
                Request::ListOffsets(r) => {
                    let resp = self.handle_list_offsets(now, r);
                    Self::respond(from, correlation_id, Response::ListOffsets(resp), out);
                }
                Request::OffsetsForLeaderEpoch(r) => {
                    let resp = self.handle_offsets_for_leader_epoch(now, r);
                    Self::respond(
                        from,
                        correlation_id,
                        Response::OffsetsForLeaderEpoch(resp),
                        out,
                    );
                }
                Request::InitProducerId(r) => {
                    let resp = self.handle_init_producer_id(r);
                    Self::respond(from, correlation_id, Response::InitProducerId(resp), out);
                }
                Request::Metadata(r) => {
                    let partitions = self.image.describe(r.topics.as_deref());
                    let resp = MetadataResponse {
                        brokers: self.image.live_brokers(),
                        partitions,
                    };
                    Self::respond(from, correlation_id, Response::Metadata(resp), out);
                }
                Request::FindCoordinator(r) => {
                    let resp = self.handle_find_coordinator(&r);
                    Self::respond(from, correlation_id, Response::FindCoordinator(resp), out);
                }
                Request::WriteTxnMarkers(r) => {
                    self.handle_write_txn_markers(now, from, correlation_id, r, out)
                }
                r if group::group_id(&r).is_some() => {
                    self.handle_group_request(now, from, correlation_id, r, out)
                }
                // Controller and admin APIs are not served by brokers.
                _ => {}
            },
            Message::Response {
                correlation_id,
                response,
            } => {
                let Some((what, _)) = self.pending.remove(&correlation_id) else {
                    return;
                };
                match (what, response) {
                    (Pending::FollowerFetch(l), Response::Fetch(r)) => {
                        self.on_follower_fetch_response(now, l, r)
                    }
                    (Pending::OffsetsForLeaderEpoch(l), Response::OffsetsForLeaderEpoch(r)) => {
                        self.on_epoch_end_offsets(now, l, r)
                    }
                    (Pending::AddPartitionsToTxn(_), Response::AddPartitionsToTxn(r)) => {
                        self.on_verification(now, correlation_id, Ok(r.results), out)
                    }
                    (Pending::WriteTxnMarkers(id, _), Response::WriteTxnMarkers(r)) => {
                        self.on_markers_answer(now, id, Ok(&r), out)
                    }
                    (what, response) => {
                        self.on_controller_response(now, correlation_id, what, response, out)
                    }
                }
            }
        }
        self.controller_work(now, out);
        self.follower_work(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        self.expire_requests(now, out);
        self.retry_alter_partitions(now, out);
        self.retry_verifications(now, out);
        self.fetch_backoff.retain(|_, t| *t > now);
        if now >= self.next_isr_check_ms {
            self.next_isr_check_ms = now + (self.config.replica_lag_time_max_ms / 2).max(1);
            if !self.self_fenced(now) {
                self.maybe_shrink_isr(now, out);
            }
        }
        if now >= self.next_hw_checkpoint_ms {
            self.next_hw_checkpoint_ms = now + HW_CHECKPOINT_INTERVAL_MS;
            for (tp, p) in &self.partitions {
                self.disk.hw_checkpoint.insert(tp.clone(), p.high_watermark);
            }
        }
        self.complete_delayed_produce(now, out);
        self.complete_delayed_fetch(now, false, out);
        let output = self.coordinator.on_timer(now);
        self.apply_coordinator_output(now, output, out);
        let output = self.txn_coordinator.on_timer(now);
        self.apply_txn_output(now, output, out);
        self.controller_work(now, out);
        self.follower_work(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        // Requests to a dead peer are lost; fetch from it again after the backoff.
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (what, _))| match what {
                Pending::FollowerFetch(l)
                | Pending::OffsetsForLeaderEpoch(l)
                | Pending::AddPartitionsToTxn(l)
                | Pending::WriteTxnMarkers(_, l) => NodeId::Broker(*l) == peer,
                _ => peer == NodeId::Controller,
            })
            .map(|(c, _)| *c)
            .collect();
        for c in &lost {
            if let Some(d) = self.pending.get_mut(c) {
                d.1 = now;
            }
        }
        if let NodeId::Broker(b) = peer {
            self.fetch_backoff
                .insert(b, now + self.config.replica_fetch_backoff_ms);
        }
        self.expire_requests(now, out);
    }

    fn next_timer(&self) -> Option<Millis> {
        let mut t = self.next_isr_check_ms.min(self.next_hw_checkpoint_ms);
        if let Some(at) = self.next_alter_partition_retry() {
            t = t.min(at);
        }
        let registering = self
            .pending
            .values()
            .any(|(p, _)| matches!(p, Pending::Registration));
        if self.lifecycle == Lifecycle::Registering && !registering {
            t = t.min(self.registration_retry_at);
        }
        if self.lifecycle == Lifecycle::Running {
            t = t.min(self.next_heartbeat_ms);
            let allocating = self
                .pending
                .values()
                .any(|(p, _)| matches!(p, Pending::AllocateProducerIds));
            if self.producer_ids.wanted && !allocating {
                t = t.min(self.producer_ids.retry_at);
            }
        }
        for (_, d) in self.pending.values() {
            t = t.min(*d);
        }
        for d in &self.delayed_produce {
            t = t.min(d.deadline);
        }
        for d in &self.delayed_fetch {
            t = t.min(d.deadline);
        }
        for (at, _) in &self.verification_retries {
            t = t.min(*at);
        }
        for b in self.fetch_backoff.values() {
            t = t.min(*b);
        }
        if let Some(c) = self.coordinator.next_timer() {
            t = t.min(c);
        }
        if let Some(c) = self.txn_coordinator.next_timer() {
            t = t.min(c);
        }
        Some(t)
    }
}

/// Kafka's `AbstractFetcherThread.getOffsetTruncationState`: where a follower truncates
/// on the leader's answer `(leader_epoch, leader_end)` (a diverging epoch, or an
/// OffsetsForLeaderEpoch answer), and whether that truncation is complete.
/// - an undefined end offset: the follower's fetch offset before truncation (here its
///   high watermark, Kafka's initial offset for a follower);
/// - an undefined epoch (a pre-KIP-279 leader): the leader's end offset;
/// - an epoch the follower never had: the end of its own largest epoch below it, not
///   complete (the next fetch's `lastFetchedEpoch`, or another OffsetsForLeaderEpoch,
///   asks again from there);
/// - an epoch the follower has: the smaller of both end offsets for it, complete;
/// - an epoch below every cached one: the leader's end offset.
///
/// Every target is at most the follower's log end offset.
fn offset_truncation_state(
    log: &Log,
    leader_epoch: LeaderEpoch,
    leader_end: Offset,
    high_watermark: Offset,
) -> (Offset, bool) {
    let leo = log.log_end_offset();
    if leader_end < 0 {
        return (high_watermark.min(leo), true);
    }
    if leader_epoch < 0 {
        return (leader_end.min(leo), true);
    }
    match log.end_offset_for_epoch(leader_epoch) {
        (_, end) if end < 0 => (leader_end.min(leo), true),
        (epoch, end) if epoch != leader_epoch => (end.min(leo), false),
        (_, end) => (end.min(leader_end).min(leo), true),
    }
}

#[cfg(test)]
mod tests;
