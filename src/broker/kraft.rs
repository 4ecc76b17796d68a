//! The broker's KRaft lifecycle: registration, heartbeats, fencing, and the replay of
//! the controller's metadata log into the broker's image and partitions.

use super::*;

/// The first backoff of `BrokerLifecycleManager`'s `resendExponentialBackoff` (100 ms,
/// doubling, capped at `broker.session.timeout.ms`; its 2% jitter is not modelled).
pub(super) const REGISTRATION_BACKOFF_MS: Millis = 100;

/// `BrokerLifecycleManager`'s heartbeat cadence in the STARTING state, until the
/// controller reports the broker caught up with the metadata log.
pub(super) const STARTING_HEARTBEAT_INTERVAL_MS: Millis = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Registering,
    Running,
}

impl Broker {
    pub(super) fn apply_metadata(
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

    pub(super) fn on_controller_response(
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
                ErrorCode::None if !r.is_fenced => self.unfenced = true,
                // Not unfenced yet: `BrokerLifecycleManager` in STARTING heartbeats
                // every 10 ms until the controller says it caught up (and it then asks
                // to be unfenced at once, `SetReadyToUnfenceEvent`).
                ErrorCode::None if !self.unfenced => {
                    self.next_heartbeat_ms = self
                        .next_heartbeat_ms
                        .min(now + STARTING_HEARTBEAT_INTERVAL_MS);
                }
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
                                        assert!(
                                            reg.isr.contains(&self.id),
                                            "leader outside its ISR"
                                        );
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
    pub(super) fn registration_failed(&mut self, now: Millis) {
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

    pub(super) fn controller_work(&mut self, now: Millis, out: &mut Outbox) {
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
}
