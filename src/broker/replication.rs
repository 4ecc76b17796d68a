//! Replication: the leader's view of its followers ([`LeaderState`], KIP-497's maximal
//! ISR), the high watermark, ISR expansion and shrinking through `AlterPartition`, and
//! the follower's fetch loop with its truncation (KIP-595's diverging epoch,
//! `OffsetsForLeaderEpoch`).

use super::*;

/// Kafka's `AlterPartitionManager` sends a failed request again 50 ms after a
/// top-level or unexpected error.
pub(super) const ALTER_PARTITION_RETRY_BACKOFF_MS: Millis = 50;

#[derive(Debug)]
pub(super) struct Remote {
    pub(super) log_end_offset: Offset,
    pub(super) last_caught_up_ms: Millis,
    pub(super) last_fetch_leader_leo: Offset,
    pub(super) last_fetch_ms: Millis,
    /// The broker epoch of the follower's last fetch (KIP-903; `None` before the first
    /// one of this leadership, -1 from a follower that sends none).
    pub(super) broker_epoch: Option<i64>,
    /// The follower's log start offset from its last fetch (-1 before one), which
    /// `DeleteRecords` waits on.
    pub(super) log_start_offset: Offset,
}

impl Remote {
    /// Kafka's `ReplicaState.isCaughtUp`: at the leader's log end offset, or caught up
    /// (`lastCaughtUpTimeMs`) within `replica.lag.time.max.ms`. A follower at the end
    /// of an idle partition stays in sync however long since its last fetch.
    pub(super) fn is_caught_up(&self, leader_leo: Offset, now: Millis, lag_ms: Millis) -> bool {
        leader_leo == self.log_end_offset || now.saturating_sub(self.last_caught_up_ms) <= lag_ms
    }
}

#[derive(Debug)]
pub(super) struct LeaderState {
    pub(super) replicas: Vec<BrokerId>,
    pub(super) isr: Vec<BrokerId>,
    /// A proposed ISR not yet committed (Kafka's `PendingPartitionChange`): (the
    /// correlation id of its AlterPartition in flight, 0 when none is; the proposed
    /// ISR with the broker epochs it was proposed with (sent again as they were); when
    /// to send it again, `Millis::MAX` when it waits for metadata instead). It stays
    /// until the controller answers or a newer partition registration replaces it:
    /// `AlterPartitionManager` never times a request out.
    pub(super) pending: Option<(u64, Vec<BrokerState>, Millis)>,
    pub(super) remotes: BTreeMap<BrokerId, Remote>,
    pub(super) epoch_start_offset: Offset,
}

impl LeaderState {
    /// KIP-497's "maximal ISR": committed ISR plus replicas being added.
    pub(super) fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut m = self.isr.clone();
        if let Some((_, proposed, _)) = &self.pending {
            for b in proposed {
                if !m.contains(&b.broker_id) {
                    m.push(b.broker_id);
                }
            }
        }
        m
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum FollowerPhase {
    /// Waiting to ask (or asking) the leader where our last epoch ends.
    Truncating { asked: bool },
    /// Fetching from the leader.
    Fetching,
}

#[derive(Debug)]
pub(super) enum Role {
    Leader(Box<LeaderState>),
    Follower {
        leader: BrokerId,
        phase: FollowerPhase,
    },
    /// A replica with no leader to follow (offline partition).
    Idle,
}

#[derive(Debug)]
pub(super) struct Partition {
    pub(super) leader_epoch: LeaderEpoch,
    pub(super) partition_epoch: i32,
    pub(super) high_watermark: Offset,
    pub(super) role: Role,
}

/// KIP-320: a request's current leader epoch older than ours is fenced, newer is
/// unknown to us; -1 skips the check.
/// Kafka's `Partition.addBrokerEpochToIsr`: each member of a proposed ISR with its
/// broker epoch: the leader's own (`leader` is its id and epoch), a follower's from its
/// last fetch, else -1.
pub(super) fn with_broker_epochs(
    leader: (BrokerId, i64),
    ls: &LeaderState,
    isr: &[BrokerId],
) -> Vec<BrokerState> {
    isr.iter()
        .map(|b| BrokerState {
            broker_id: *b,
            broker_epoch: if *b == leader.0 {
                leader.1
            } else {
                ls.remotes.get(b).and_then(|r| r.broker_epoch).unwrap_or(-1)
            },
        })
        .collect()
}

/// The broker ids of a proposed ISR.
pub(super) fn ids(isr: &[BrokerState]) -> Vec<BrokerId> {
    isr.iter().map(|b| b.broker_id).collect()
}

pub(super) fn epoch_error(requested: LeaderEpoch, ours: LeaderEpoch) -> Option<ErrorCode> {
    if requested >= 0 && requested < ours {
        Some(ErrorCode::FencedLeaderEpoch)
    } else if requested > ours {
        Some(ErrorCode::UnknownLeaderEpoch)
    } else {
        None
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
pub(super) fn offset_truncation_state(
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

impl Broker {
    pub(super) fn on_partition_change(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        out: &mut Outbox,
    ) {
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
        reg.assert_epoch_not_behind(NodeId::Broker(self.id), part.leader_epoch);
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
                                    broker_epoch: None,
                                    log_start_offset: -1,
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
                    assert!(reg.isr.contains(&self.id), "leader outside its ISR");
                    ls.isr = reg.isr.clone();
                    ls.replicas = reg.replicas.clone();
                    // Kafka's `Partition.makeLeader` -> `updateAssignmentAndIsr`: a newer
                    // registration is the committed state; a pending change is dropped
                    // (its answer, if any, is ignored).
                    if newer_registration
                        || ls
                            .pending
                            .as_ref()
                            .is_some_and(|(_, p, _)| ids(p) == reg.isr)
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
    pub(super) fn fail_delayed_for(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        self.verification.forget_partition(tp);
        for d in &mut self.delayed_produce {
            for part in d.parts.iter_mut() {
                if &part.tp == tp && part.result.is_none() {
                    part.result = Some(ErrorCode::NotLeaderOrFollower);
                }
            }
        }
        self.complete_delayed_produce(now, out);
        self.complete_delayed_delete_records(now, out);
    }

    /// The topic's `min.insync.replicas`: its override (a `ConfigRecord`), else for
    /// `__transaction_state` `transaction.state.log.min.isr` (the topic config Kafka's
    /// `TransactionStateManager` creates it with), else the broker's.
    pub(super) fn configured_min_isr(&self, tp: &TopicPartition) -> usize {
        let configured = self.image.min_insync_replicas(&tp.topic).unwrap_or(
            if &*tp.topic == TRANSACTION_STATE_TOPIC {
                self.config.transaction_state_log_min_isr
            } else {
                self.config.min_insync_replicas
            },
        );
        configured as usize
    }

    pub(super) fn maybe_increment_hw(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        out: &mut Outbox,
    ) {
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
            if ls.isr.len() < needed && !self.bugs.on(Bug::HighWatermarkUnderMinIsr) {
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

    pub(super) fn maybe_expand_isr(
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
        // KIP-903 (`Partition.isReplicaIsrEligible`): the broker epoch of the follower's
        // fetches must be the one its current registration has, so that a fetch from an
        // incarnation that has since restarted (with a shorter log) cannot vouch for it.
        let registered = self.image.brokers.get(&follower).map(|b| b.broker_epoch);
        let epoch_eligible = match r.broker_epoch {
            Some(-1) => true,
            Some(fetched) => Some(fetched) == registered,
            None => false,
        };
        if epoch_eligible && r.log_end_offset >= hw && r.log_end_offset >= ls.epoch_start_offset {
            let mut new_isr = ls.isr.clone();
            new_isr.push(follower);
            new_isr.sort_unstable();
            let new_isr = with_broker_epochs((self.id, self.broker_epoch), ls, &new_isr);
            self.alter_partition(now, tp.clone(), epoch, pepoch, new_isr, out);
        }
    }

    pub(super) fn alter_partition(
        &mut self,
        now: Millis,
        tp: TopicPartition,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        new_isr: Vec<BrokerState>,
        out: &mut Outbox,
    ) {
        let request = Request::AlterPartition(AlterPartitionRequest {
            broker_id: self.id,
            broker_epoch: self.broker_epoch,
            tp: tp.clone(),
            leader_epoch,
            partition_epoch,
            new_isr_with_epochs: new_isr.clone(),
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
    pub(super) fn retry_alter_partitions(&mut self, now: Millis, out: &mut Outbox) {
        let due: Vec<(TopicPartition, LeaderEpoch, i32, Vec<BrokerState>)> = self
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
    pub(super) fn next_alter_partition_retry(&self) -> Option<Millis> {
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

    pub(super) fn maybe_shrink_isr(&mut self, now: Millis, out: &mut Outbox) {
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
                let new_isr = with_broker_epochs((self.id, self.broker_epoch), ls, &new_isr);
                proposals.push((tp.clone(), part.leader_epoch, part.partition_epoch, new_isr));
            }
        }
        for (tp, e, pe, isr) in proposals {
            self.alter_partition(now, tp, e, pe, isr, out);
        }
    }

    pub(super) fn follower_work(&mut self, now: Millis, out: &mut Outbox) {
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
                log_start_offset: log.log_start_offset(),
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
            // KIP-903: the fetch carries this incarnation's broker epoch (Fetch v15's
            // `ReplicaEpoch`); before it, none (-1).
            let broker_epoch = if self.bugs.on(Bug::NoBrokerEpochInFetch) {
                -1
            } else {
                self.broker_epoch
            };
            let req = Request::Fetch(FetchRequest {
                replica_id: Some(self.id),
                broker_epoch,
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

    pub(super) fn on_follower_fetch_response(
        &mut self,
        now: Millis,
        leader: BrokerId,
        resp: FetchResponse,
        out: &mut Outbox,
    ) {
        if resp.error != ErrorCode::None {
            self.fetch_backoff
                .insert(leader, now + self.config.replica_fetch_backoff_ms);
            return;
        }
        let mut backoff = false;
        let mut moved = Vec::new();
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
                ErrorCode::None
                    if p.batches.iter().any(|b| {
                        matches!(
                            crate::kafka::record::verify_crc(b),
                            Err(crate::kafka::record::RecordError::Crc { .. })
                        )
                    }) =>
                {
                    // `UnifiedLog.analyzeAndValidateRecords` rejects the whole response
                    // (`CorruptRecordException`) before appending any of it;
                    // `AbstractFetcherThread` marks the partition errored and fetches the
                    // same offset again after `replica.fetch.backoff.ms`. The leader
                    // serves the same bytes, so the follower stays there and drops out
                    // of the ISR.
                    backoff = true;
                }
                ErrorCode::None => {
                    // A full disk: the fetched records cannot be written; the
                    // directory goes offline and the broker halts at the step's end.
                    // An empty answer writes nothing.
                    let log = if p.batches.is_empty() {
                        self.disk.log_for_empty_append(&p.tp, now)
                    } else {
                        let Ok(log) = self.disk.log_for_write(&p.tp, now) else {
                            continue;
                        };
                        log
                    };
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
                    // `ReplicaFetcherThread.processPartitionData`: the follower's log
                    // start follows the leader's, never past its own high watermark.
                    let evict = self.bugs.on(Bug::EvictProducersOnLogStart);
                    if log.maybe_increment_log_start_offset(
                        p.log_start_offset,
                        part.high_watermark,
                        evict,
                    ) {
                        moved.push((
                            p.tp.clone(),
                            p.log_start_offset,
                            "leader-offset-incremented",
                        ));
                    }
                }
                ErrorCode::OffsetOutOfRange if self.bugs.on(Bug::TruncateToHighWatermark) => {
                    // Pre-KIP-101: a follower ahead of the leader cut its log back to the
                    // leader's end and kept whatever diverged below it.
                    let log = self.disk.logs.get_mut(&p.tp).expect("follower has a log");
                    log.truncate_to(p.high_watermark.min(log.log_end_offset()));
                    part.high_watermark = part.high_watermark.min(log.log_end_offset());
                }
                // `AbstractFetcherThread.fetchOffsetAndTruncate`: a log that ends before
                // the leader's start begins again, empty, at the leader's start (the
                // leader's earliest offset comes with the response here, where Kafka
                // asks ListOffsets); otherwise the leader's log ends below ours (or our
                // epoch is unknown to it) and the epoch path truncates.
                ErrorCode::OffsetOutOfRange
                    if p.log_start_offset > self.disk.logs[&p.tp].log_end_offset() =>
                {
                    let log = self.disk.logs.get_mut(&p.tp).expect("follower has a log");
                    log.truncate_fully_and_start_at(p.log_start_offset);
                    part.high_watermark = p.log_start_offset;
                    moved.push((p.tp.clone(), p.log_start_offset, "truncate-fully"));
                }
                ErrorCode::OffsetOutOfRange => *phase = FollowerPhase::Truncating { asked: false },
                _ => backoff = true,
            }
        }
        for (tp, log_start_offset, reason) in moved {
            self.record_log_start(now, &tp, log_start_offset, reason, out);
        }
        if backoff {
            self.fetch_backoff
                .insert(leader, now + self.config.replica_fetch_backoff_ms);
        }
    }

    pub(super) fn on_epoch_end_offsets(
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
}
