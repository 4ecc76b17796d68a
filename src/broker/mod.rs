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

mod delete_records;
mod disk;
mod fetch;
mod hosting;
mod kraft;
pub mod log;
mod produce;
mod producer_ids;
pub mod producer_state;
mod replication;
mod txn_partition;

use delete_records::*;
pub use disk::{Disk, FlushPolicy, LOG_DIR};
use fetch::*;
use kraft::*;
use produce::*;
use producer_ids::*;
use replication::*;
use txn_partition::*;

use crate::actor::{Actor, Channel, Outbox, WallClock};
use crate::broker::log::{Log, Recovery, Retention};
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
/// `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes` (both
/// default 100 MiB): the internal topics' `segment.bytes`.
const INTERNAL_TOPIC_SEGMENT_BYTES: u64 = 104_857_600;
/// Bound on parked produce, fetch and `DeleteRecords` requests.
const MAX_PURGATORY: usize = 10_000;

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

impl Pending {
    /// The client the request goes out on (each has its own connections in Kafka).
    fn channel(&self) -> Channel {
        match self {
            Pending::Registration | Pending::Heartbeat => Channel::BrokerLifecycle,
            Pending::MetadataFetch => Channel::MetadataFetch,
            Pending::AlterPartition(_) => Channel::AlterPartition,
            Pending::AllocateProducerIds => Channel::Controller,
            Pending::FollowerFetch(_) | Pending::OffsetsForLeaderEpoch(_) => {
                Channel::ReplicaFetcher
            }
            Pending::AddPartitionsToTxn(_) => Channel::TxnVerification,
            Pending::WriteTxnMarkers(..) => Channel::TxnMarkers,
        }
    }

    /// The node the request went to.
    fn peer(&self) -> NodeId {
        match self {
            Pending::FollowerFetch(b)
            | Pending::OffsetsForLeaderEpoch(b)
            | Pending::AddPartitionsToTxn(b)
            | Pending::WriteTxnMarkers(_, b) => NodeId::Broker(*b),
            Pending::Registration
            | Pending::Heartbeat
            | Pending::MetadataFetch
            | Pending::AlterPartition(_)
            | Pending::AllocateProducerIds => NodeId::Controller,
        }
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
    /// Whether this process was unfenced once: Kafka's `BrokerServer.startup` enables
    /// its listeners (`socketServer.enableRequestProcessing`) only after
    /// `lifecycleManager.setReadyToUnfence()` completes, i.e. once the controller has
    /// unfenced this incarnation (which needs its metadata caught up to its own
    /// registration). Before that its host refuses connections to it
    /// ([`Actor::listening`]), and it acts as no partition's leader.
    unfenced: bool,
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
    /// Kafka's `kafka-recovery-point-checkpoint` task: the next time it runs.
    next_recovery_checkpoint_ms: Millis,
    /// Kafka's `kafka-log-flusher` task (`log.flush.scheduler.interval.ms`).
    next_flush_check_ms: Millis,
    /// Kafka's `kafka-log-retention` task (`log.retention.check.interval.ms`).
    next_retention_check_ms: Millis,
    /// Kafka's `kafka-log-start-offset-checkpoint` task
    /// (`log.flush.start.offset.checkpoint.interval.ms`).
    next_log_start_checkpoint_ms: Millis,
    /// Kafka's per-log `PeriodicProducerExpirationCheck`
    /// (`producer.id.expiration.check.interval.ms`), one task for all logs here.
    next_producer_expiration_ms: Millis,
    /// What recovery truncated when this process started, recorded on start.
    recovered: Vec<(TopicPartition, Recovery)>,
    /// The log directory went offline and the process halted (`Exit.halt(1)`): it
    /// takes no more steps; its host kills it.
    halted: bool,
    next_correlation_id: u64,
    /// Requests this broker sent and awaits: correlation id -> (what, deadline).
    pending: BTreeMap<u64, (Pending, Millis)>,
    /// Follower fetch sessions: leader -> time before which no new fetch is sent.
    fetch_backoff: BTreeMap<BrokerId, Millis>,
    delayed_produce: Vec<DelayedProduce>,
    delayed_fetch: Vec<DelayedFetch>,
    delayed_delete_records: Vec<DelayedDeleteRecords>,
    producer_ids: ProducerIdManager,
    coordinator: GroupCoordinator,
    txn_coordinator: TxnCoordinator,
    /// KIP-890 verifications under way and the produces parked on them.
    verification: Verification,
    /// The machine's wall clock: time-based retention, producer id expiration, the
    /// markers' and coordinators' CreateTime, transaction timeouts.
    clock: WallClock,
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
        let recovered = disk.recover(bugs.on(crate::bugs::Bug::RecoveryPointAtLogEnd));
        Broker {
            recovered,
            halted: false,
            id,
            bugs,
            incarnation,
            disk,
            lifecycle: Lifecycle::Registering,
            unfenced: false,
            broker_epoch: -1,
            image: MetadataImage::default(),
            partitions: BTreeMap::new(),
            next_heartbeat_ms: 0,
            registration_retry_at: 0,
            registration_failures: 0,
            next_isr_check_ms: 0,
            next_hw_checkpoint_ms: 0,
            next_recovery_checkpoint_ms: 0,
            next_flush_check_ms: 0,
            next_retention_check_ms: 0,
            next_log_start_checkpoint_ms: 0,
            next_producer_expiration_ms: 0,
            next_correlation_id: 1,
            pending: BTreeMap::new(),
            fetch_backoff: BTreeMap::new(),
            delayed_produce: Vec::new(),
            delayed_fetch: Vec::new(),
            delayed_delete_records: Vec::new(),
            producer_ids: ProducerIdManager::default(),
            coordinator: GroupCoordinator::new(&config, bugs, id, incarnation),
            txn_coordinator: TxnCoordinator::new(&config, bugs),
            verification: Verification::default(),
            config,
            clock: WallClock::default(),
        }
    }

    /// The process (re)starts: only the disk survives; the new process has a new
    /// incarnation and rebuilds everything else from the disk and the controller.
    pub fn restart(&mut self, incarnation: u64) {
        let disk = std::mem::take(&mut self.disk);
        *self = Broker::new(self.id, self.config.clone(), self.bugs, incarnation, disk);
    }

    /// The power fails (the process is already dead): the disk keeps only its
    /// platter; `torn` draws, per log that loses something, whether its first lost
    /// batch was torn. Returns what each log lost.
    pub fn power_loss(
        &mut self,
        now: Millis,
        torn: impl FnMut() -> Option<u64>,
    ) -> Vec<(TopicPartition, crate::broker::log::PowerLoss)> {
        self.disk.power_loss(now, torn)
    }

    /// A latent sector error (the process is already dead): the OS writes back the
    /// page cache, then a bit flips in a drawn batch (`draw(n)` picks in `0..n`).
    /// Returns the partition and what flipped, if any batch could be hit.
    pub fn corrupt(
        &mut self,
        draw: impl FnMut(usize) -> usize,
    ) -> Option<(TopicPartition, crate::broker::log::Corruption)> {
        self.disk.corrupt(draw)
    }

    /// The disk fills up (the `disk-full` fault starts) or has room again (it ends).
    pub fn set_disk_full(&mut self, full: bool) {
        self.disk.set_full(full);
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
        let channel = what.channel();
        self.pending.insert(correlation_id, (what, now + timeout));
        out.send_on(
            channel,
            to,
            Message::Request {
                correlation_id,
                request,
            },
        );
        correlation_id
    }

    /// Whether this broker leads `tp` (as far as it knows).
    fn leads(&self, tp: &TopicPartition) -> bool {
        self.partitions
            .get(tp)
            .is_some_and(|p| matches!(p.role, Role::Leader(_)))
    }

    /// Sends each of a coordinator's answers to the client that asked, then records its
    /// events as this broker's in the history.
    fn answer_and_record<E: Into<Op>>(
        &self,
        now: Millis,
        responses: Vec<(ReplyTo, Response)>,
        events: Vec<E>,
        out: &mut Outbox,
    ) {
        for (to, response) in responses {
            Self::respond(to.client, to.correlation_id, response, out);
        }
        for e in events {
            out.record(Entry::instant(NodeId::Broker(self.id), now, e.into()));
        }
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

    /// Whether the broker refuses to act as a leader: before this process was first
    /// unfenced (its listeners are closed until then, and Kafka's `MetadataLoader`
    /// publishes no image before catching up, so a restarted broker never acts on the
    /// metadata it had before the restart), and while it
    /// re-registers. A KRaft broker never fences itself: cut off from the controller it
    /// keeps serving as leader and coordinator on its stale metadata until a metadata
    /// record says otherwise (Kafka's `BrokerLifecycleManager` only backs off and
    /// retries its heartbeats; the controller fences the broker after
    /// `broker.session.timeout.ms` and elects others). So zombie leaders exist: with
    /// `acks=1` one acknowledges writes the new leader never has.
    fn self_fenced(&self, _now: Millis) -> bool {
        self.lifecycle != Lifecycle::Running || !self.unfenced
    }

    fn log_end_offset(&self, tp: &TopicPartition) -> Offset {
        self.disk.logs.get(tp).map_or(0, Log::log_end_offset)
    }

    /// `flush.messages` and `segment.bytes` of `tp`: the topic's, else the broker's
    /// (`log.flush.interval.messages`; `log.segment.bytes`, or for the internal topics
    /// `offsets.topic.segment.bytes` and `transaction.state.log.segment.bytes`;
    /// `log.roll.ms`).
    fn flush_policy(
        image: &MetadataImage,
        config: &BrokerConfig,
        tp: &TopicPartition,
    ) -> FlushPolicy {
        let topic = image.topic_config(&tp.topic);
        let broker_segment_bytes = match &*tp.topic {
            OFFSETS_TOPIC | TRANSACTION_STATE_TOPIC => INTERNAL_TOPIC_SEGMENT_BYTES,
            _ => config.log_segment_bytes,
        };
        FlushPolicy {
            flush_messages: topic
                .and_then(|c| c.flush_messages)
                .unwrap_or(config.log_flush_interval_messages),
            segment_bytes: topic
                .and_then(|c| c.segment_bytes)
                .unwrap_or(broker_segment_bytes),
            segment_ms: topic
                .and_then(|c| c.segment_ms)
                .unwrap_or(config.segment_ms()),
        }
    }

    /// What retention keeps of `tp`'s log: its topic's `retention.ms` and
    /// `retention.bytes`, else the broker's, bounded by the high watermark; `None` for
    /// the internal topics (`cleanup.policy=compact`: Kafka's `config.delete` is false,
    /// nothing goes by time or size) and for logs of partitions this broker does not
    /// host now.
    fn retention_policy(&self, tp: &TopicPartition) -> Option<Retention> {
        if matches!(&*tp.topic, OFFSETS_TOPIC | TRANSACTION_STATE_TOPIC) {
            return None;
        }
        let part = self.partitions.get(tp)?;
        let topic = self.image.topic_config(&tp.topic);
        Some(Retention {
            retention_ms: topic
                .and_then(|c| c.retention_ms)
                .unwrap_or(self.config.retention_ms()),
            retention_bytes: topic
                .and_then(|c| c.retention_bytes)
                .unwrap_or(self.config.log_retention_bytes),
            high_watermark: part.high_watermark,
            evict_producers: self.bugs.on(Bug::EvictProducersOnLogStart),
        })
    }

    /// Records that `tp`'s log start moved to `log_start_offset`.
    fn record_log_start(
        &self,
        now: Millis,
        tp: &TopicPartition,
        log_start_offset: Offset,
        reason: &str,
        out: &mut Outbox,
    ) {
        let op = Op::LogStartOffsetIncremented {
            partition: tp.clone(),
            log_start_offset,
            reason: reason.into(),
        };
        out.record(Entry::instant(NodeId::Broker(self.id), now, op));
    }

    /// Ends a step: the logs written in it roll full segments, are dirty, and are
    /// flushed if `flush.messages` says so. A write in the step that took the log
    /// directory offline halts the broker (`ReplicaManager`'s `LogDirFailureHandler`:
    /// the failed directory is the only one and holds the metadata log), after the
    /// step's answers (`KAFKA_STORAGE_ERROR` to the request that hit it) went out.
    fn settle_disk(&mut self, now: Millis, out: &mut Outbox) {
        let (image, config) = (&self.image, &self.config);
        self.disk
            .settle(now, |tp| Self::flush_policy(image, config, tp));
        if let Some(error) = self.disk.offline() {
            let op = Op::LogDirFailure {
                error: format!(
                    "{error}; halting broker because dir {} is offline",
                    disk::LOG_DIR
                ),
            };
            out.record(Entry::instant(NodeId::Broker(self.id), now, op));
            self.halted = true;
        }
    }

    /// The `LogManager`'s periodic tasks that are due: the recovery-point checkpoint
    /// (`log.flush.offset.checkpoint.interval.ms`) and the flusher (`flush.ms` per
    /// topic, else `log.flush.interval.ms`, else `log.flush.scheduler.interval.ms`),
    /// both first run at `log.initial.task.delay.ms`; retention
    /// (`log.retention.check.interval.ms`) and the log-start checkpoint likewise; and the
    /// producer expiration check, one interval after that.
    fn log_manager_tasks(&mut self, now: Millis, out: &mut Outbox) {
        if now >= self.next_retention_check_ms {
            self.next_retention_check_ms = now + self.config.log_retention_check_interval_ms;
            let policies: BTreeMap<TopicPartition, Retention> = self
                .disk
                .logs
                .keys()
                .filter_map(|tp| Some((tp.clone(), self.retention_policy(tp)?)))
                .collect();
            let moved = self
                .disk
                .delete_retained_segments(self.clock.timestamp(now), |tp| {
                    policies.get(tp).copied()
                });
            for (tp, deleted) in moved {
                self.record_log_start(now, &tp, deleted.log_start_offset, "segment-deletion", out);
            }
        }
        if now >= self.next_log_start_checkpoint_ms {
            self.next_log_start_checkpoint_ms =
                now + self.config.log_flush_start_offset_checkpoint_interval_ms;
            self.disk.checkpoint_log_starts();
        }
        if now >= self.next_producer_expiration_ms {
            self.next_producer_expiration_ms =
                now + self.config.producer_id_expiration_check_interval_ms;
            self.disk.remove_expired_producers(
                self.clock.timestamp(now),
                self.config.producer_id_expiration_ms,
            );
        }
        let config = &self.config;
        if now >= self.next_recovery_checkpoint_ms {
            self.next_recovery_checkpoint_ms =
                now + config.log_flush_offset_checkpoint_interval_ms.max(1);
            self.disk.checkpoint_recovery_points();
        }
        if now >= self.next_flush_check_ms {
            let period = u64::try_from(config.log_flush_scheduler_interval_ms).unwrap_or(0);
            self.next_flush_check_ms = now.saturating_add(period.max(1));
            let image = &self.image;
            let default_ms = config
                .log_flush_interval_ms
                .unwrap_or(config.log_flush_scheduler_interval_ms);
            self.disk.flush_dirty_logs(now, |tp| {
                image
                    .topic_config(&tp.topic)
                    .and_then(|c| c.flush_ms)
                    .unwrap_or(default_ms)
            });
        }
    }

    /// Fails the requests past their deadline. As Kafka's `NetworkClient` does on a
    /// request timeout (`handleTimedOutRequests`), the connection it went out on is
    /// closed, and every other request in flight on it fails with it; the next
    /// request opens a new connection (and so does not wait behind the old one's
    /// retransmissions after a cut heals).
    fn expire_requests(&mut self, now: Millis, out: &mut Outbox) {
        let timed_out: BTreeSet<(Channel, NodeId)> = self
            .pending
            .values()
            .filter(|(_, d)| *d <= now)
            .map(|(what, _)| (what.channel(), what.peer()))
            .collect();
        for &(channel, peer) in &timed_out {
            out.disconnect(channel, peer);
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (what, _))| timed_out.contains(&(what.channel(), what.peer())))
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

impl Actor for Broker {
    fn on_start(&mut self, now: Millis, out: &mut Outbox) {
        if self.disk.check_startup().is_err() {
            // A full disk: the log manager cannot load the directory.
            self.settle_disk(now, out);
            return;
        }
        self.next_isr_check_ms = now + self.config.replica_lag_time_max_ms / 2;
        self.next_hw_checkpoint_ms = now + HW_CHECKPOINT_INTERVAL_MS;
        self.next_recovery_checkpoint_ms = now + self.config.log_initial_task_delay_ms;
        self.next_flush_check_ms = now + self.config.log_initial_task_delay_ms;
        self.next_retention_check_ms = now + self.config.log_initial_task_delay_ms;
        self.next_log_start_checkpoint_ms = now + self.config.log_initial_task_delay_ms;
        self.next_producer_expiration_ms =
            self.next_retention_check_ms + self.config.producer_id_expiration_check_interval_ms;
        // Loading a log forgets the producers already expired (Kafka filters them when
        // it reads a producer snapshot).
        self.disk.remove_expired_producers(
            self.clock.timestamp(now),
            self.config.producer_id_expiration_ms,
        );
        let events = std::mem::take(&mut self.recovered)
            .into_iter()
            .map(|(partition, r)| Op::LogRecovered {
                partition,
                from: r.from,
                log_end_offset: r.log_end_offset,
                reason: r.truncated.unwrap_or_default(),
            })
            .collect();
        self.answer_and_record(now, Vec::new(), events, out);
        self.controller_work(now, out);
    }

    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        if self.halted {
            return;
        }
        match message {
            Message::Request {
                correlation_id,
                request,
            } => match request {
                _ if !self.listening() => {
                    panic!("broker-{}: a request reached closed listeners", self.id)
                }
                r if txn::transactional_id(&r).is_some() => {
                    self.serve_txn(now, ReplyTo::new(from, correlation_id), r, out)
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
                Request::DeleteRecords(r) => {
                    self.handle_delete_records(now, from, correlation_id, r, out)
                }
                r if group::group_id(&r).is_some() => {
                    self.serve_group(now, ReplyTo::new(from, correlation_id), r, out)
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
                        self.on_follower_fetch_response(now, l, r, out)
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
        self.settle_disk(now, out);
    }

    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        if self.halted {
            return;
        }
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
            let hws = self
                .partitions
                .iter()
                .map(|(tp, p)| (tp.clone(), p.high_watermark));
            self.disk.checkpoint_high_watermarks(hws);
        }
        self.log_manager_tasks(now, out);
        self.complete_delayed_produce(now, out);
        self.complete_delayed_fetch(now, false, out);
        self.complete_delayed_delete_records(now, out);
        let output = self.coordinator.on_timer(now);
        self.apply_group(now, output, out);
        let output = self.txn_coordinator.on_timer(now);
        self.apply_txn(now, output, out);
        self.controller_work(now, out);
        self.follower_work(now, out);
        self.settle_disk(now, out);
    }

    fn on_disconnect(&mut self, now: Millis, peer: NodeId, out: &mut Outbox) {
        if self.halted {
            return;
        }
        // Requests to a dead peer are lost; fetch from it again after the backoff.
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (what, _))| what.peer() == peer)
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
        self.settle_disk(now, out);
    }

    fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = clock;
        self.coordinator.set_wall_clock(clock);
        self.txn_coordinator.set_wall_clock(clock);
    }

    fn halted(&self) -> bool {
        self.halted
    }

    /// Kafka's `BrokerServer.startup` enables the listeners once the controller has
    /// unfenced the broker (`lifecycleManager.setReadyToUnfence()`, then
    /// `socketServer.enableRequestProcessing`); they stay open for the process's life.
    fn listening(&self) -> bool {
        self.unfenced
    }

    fn next_timer(&self) -> Option<Millis> {
        if self.halted {
            return None;
        }
        let mut t = self
            .next_isr_check_ms
            .min(self.next_hw_checkpoint_ms)
            .min(self.next_retention_check_ms)
            .min(self.next_log_start_checkpoint_ms)
            .min(self.next_producer_expiration_ms);
        if self.config.log_flush_scheduler_interval_ms != i64::MAX {
            // The flusher runs on its own schedule only when one is set; by default it
            // runs once, on the checkpoint tick at `log.initial.task.delay.ms`.
            t = t.min(self.next_flush_check_ms);
        }
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
        for d in &self.delayed_delete_records {
            t = t.min(d.deadline);
        }
        for (at, _) in &self.verification.retries {
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

#[cfg(test)]
mod tests;
