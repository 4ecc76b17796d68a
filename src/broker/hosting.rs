//! The broker as host of the group and transaction coordinators: `FindCoordinator`,
//! routing their requests, appending their records to the internal topics, and
//! electing or resigning them with the partitions' leadership.

use super::*;
use crate::coordinator::group::PreparedRebalance;
use crate::coordinator::txn::TxnTransition;

impl Broker {
    /// The `__consumer_offsets` partition of a group, once the topic exists.
    pub(super) fn coordinator_partition(&self, group_id: &str) -> Option<u32> {
        self.image
            .topics
            .get(OFFSETS_TOPIC)
            .map(|n| shared::partition_for_group(group_id, *n))
    }

    /// `FindCoordinator`: the leader of the group's offsets partition. Transaction
    /// coordinators do not exist yet: `COORDINATOR_NOT_AVAILABLE`.
    pub(super) fn handle_find_coordinator(
        &self,
        req: &FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
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
    pub(super) fn serve_group(&mut self, now: Millis, to: ReplyTo, r: Request, out: &mut Outbox) {
        let group_id = group::group_id(&r).expect("a group request");
        let fenced = self.self_fenced(now);
        let partition = self.coordinator_partition(group_id).filter(|p| {
            let tp = TopicPartition::new(OFFSETS_TOPIC, *p);
            self.leads(&tp) && !fenced && self.coordinator.is_loaded(*p)
        });
        let Some(partition) = partition else {
            let response = group::error_response(&r, ErrorCode::NotCoordinator);
            Self::respond(
                to.client,
                to.correlation_id,
                response.expect("a group request"),
                out,
            );
            return;
        };
        let output = self.coordinator.handle(now, partition, to, r);
        self.apply_group(now, output, out);
    }

    /// Sends the coordinator's answers, records its rebalances and appends its records.
    pub(super) fn apply_group(&mut self, now: Millis, o: CoordinatorOutput, out: &mut Outbox) {
        self.answer_and_record(now, o.responses, o.rebalances, out);
        for append in o.appends {
            self.append_for_coordinator(now, append, out);
        }
    }

    /// Appends a coordinator batch as leader with `acks=all` semantics: parked in the
    /// produce purgatory until the high watermark passes it or
    /// `offsets.commit.timeout.ms` runs out.
    pub(super) fn append_for_coordinator(
        &mut self,
        now: Millis,
        append: CoordinatorAppend,
        out: &mut Outbox,
    ) {
        let tp = TopicPartition::new(OFFSETS_TOPIC, append.partition);
        let fenced = self.self_fenced(now);
        let epoch = match self.acks_all_leader_epoch(&tp, fenced) {
            Ok(epoch) => epoch,
            Err(error) => {
                let output = self.coordinator.on_append_complete(now, append.id, error);
                self.apply_group(now, output, out);
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
            self.apply_group(now, output, out);
            return;
        }
        let deadline = now + self.config.offsets_commit_timeout_ms;
        let waiter = Waiter::Coordinator(append.id);
        self.append_and_park(now, (tp, epoch), &append.batch, (waiter, deadline), out);
    }

    /// This broker became leader of an offsets partition (or leads it in a new epoch):
    /// whatever was loaded is dropped and the partition's log is replayed.
    pub(super) fn coordinator_elected(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        out: &mut Outbox,
    ) {
        self.coordinator_resigned(now, tp, out);
        let log = &self.disk.logs[tp];
        let batches = log.read(0, log.log_end_offset(), usize::MAX);
        self.coordinator.load(now, tp.partition, &batches);
    }

    /// This broker no longer leads an offsets partition: its groups are dropped.
    pub(super) fn coordinator_resigned(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        out: &mut Outbox,
    ) {
        if &*tp.topic == OFFSETS_TOPIC {
            let output = self.coordinator.unload(tp.partition);
            self.apply_group(now, output, out);
        }
        if &*tp.topic == TRANSACTION_STATE_TOPIC && self.txn_coordinator.is_loaded(tp.partition) {
            let output = self.txn_coordinator.unload(tp.partition);
            self.apply_txn(now, output, out);
        }
    }

    /// This broker leads a `__transaction_state` partition (or leads it in a new epoch):
    /// its transactions are reloaded from the log, the leader epoch becoming the
    /// coordinator epoch its markers carry; prepared transactions resume their markers.
    pub(super) fn txn_coordinator_elected(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        leader_epoch: LeaderEpoch,
        out: &mut Outbox,
    ) {
        self.coordinator_resigned(now, tp, out);
        let log = &self.disk.logs[tp];
        let log_end_offset = log.log_end_offset();
        let batches = log.read(0, log_end_offset, usize::MAX);
        // A process that is not yet unfenced restarted before its old broker session
        // expired: the controller still names it leader, but its listeners are closed,
        // so what it appended above the high watermark before it died stays on it
        // alone, and the next leader may not have it (Kafka's `BrokerMetadataPublisher`
        // elects the coordinator from the first image, before registration).
        if !self.unfenced {
            let high_watermark = self.partitions[tp].high_watermark;
            let unreplicated: Vec<Op> =
                txn::unreplicated_prepares(tp.partition, &batches, high_watermark)
                    .into_iter()
                    .map(|p| Op::TxnLoadedUnreplicated {
                        transactional_id: p.transactional_id.to_string(),
                        producer_id: p.producer_id,
                        producer_epoch: p.producer_epoch,
                        state: p.state.name().to_string(),
                        partition: tp.clone(),
                        high_watermark,
                        log_end_offset,
                    })
                    .collect();
            self.answer_and_record(now, Vec::new(), unreplicated, out);
        }
        let output = self
            .txn_coordinator
            .load(now, tp.partition, leader_epoch, &batches);
        self.apply_txn(now, output, out);
    }

    /// A transaction API request (`InitProducerId` with a `transactional.id`,
    /// `AddPartitionsToTxn`, `AddOffsetsToTxn`, `EndTxn`): served if this broker leads,
    /// unfenced, the id's `__transaction_state` partition, else `NOT_COORDINATOR`.
    pub(super) fn serve_txn(&mut self, now: Millis, to: ReplyTo, r: Request, out: &mut Outbox) {
        let id = txn::transactional_id(&r).expect("a transaction request");
        let fenced = self.self_fenced(now);
        let partition = self
            .image
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .map(|n| txn::partition_for_transactional_id(id, *n))
            .filter(|p| {
                let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, *p);
                self.leads(&tp) && !fenced
            });
        let Some(partition) = partition else {
            let response = txn::error_response(&r, ErrorCode::NotCoordinator);
            let response = response.expect("a transaction request");
            Self::respond(to.client, to.correlation_id, response, out);
            return;
        };
        let ids = &mut self.producer_ids;
        let output = self
            .txn_coordinator
            .handle(now, partition, to, r, &mut || ids.generate());
        self.apply_txn(now, output, out);
    }

    /// Sends the transaction coordinator's answers, records its state changes in the
    /// history, appends its records, and sends the markers that are due.
    pub(super) fn apply_txn(&mut self, now: Millis, o: TxnCoordinatorOutput, out: &mut Outbox) {
        self.answer_and_record(now, o.responses, o.transitions, out);
        for append in o.appends {
            self.append_for_txn_coordinator(now, append, out);
        }
        self.send_txn_markers(now, out);
    }

    /// Appends a `__transaction_state` batch with `acks=all` semantics under
    /// `transaction.state.log.min.isr`.
    pub(super) fn append_for_txn_coordinator(
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
                self.apply_txn(now, output, out);
                return;
            }
        };
        let deadline = now + self.config.request_timeout_ms;
        let waiter = Waiter::TxnCoordinator(append.id);
        self.append_and_park(now, (tp, epoch), &append.batch, (waiter, deadline), out);
    }

    /// The transaction coordinator's marker channel: `WriteTxnMarkers` to each live
    /// partition leader that has markers due.
    pub(super) fn send_txn_markers(&mut self, now: Millis, out: &mut Outbox) {
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
    pub(super) fn on_markers_answer(
        &mut self,
        now: Millis,
        id: u64,
        answer: Result<&WriteTxnMarkersResponse, ErrorCode>,
        out: &mut Outbox,
    ) {
        let output = self.txn_coordinator.on_markers_response(now, id, answer);
        self.apply_txn(now, output, out);
    }
}

/// A rebalance the group coordinator began, as the history records it.
impl From<PreparedRebalance> for Op {
    fn from(r: PreparedRebalance) -> Op {
        Op::PrepareRebalance {
            group: r.group_id.to_string(),
            generation: r.generation,
            cause: r.cause,
            reason: r.reason,
        }
    }
}

/// A transition the transaction coordinator completed, as the history records it.
impl From<TxnTransition> for Op {
    fn from(t: TxnTransition) -> Op {
        Op::TxnState {
            transactional_id: t.transactional_id.to_string(),
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            from: t.from.name().to_string(),
            to: t.to.name().to_string(),
        }
    }
}
