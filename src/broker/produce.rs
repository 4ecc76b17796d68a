//! Produce: the leader's append (idempotence and sequence checks through the log's
//! producer state), `acks` and the produce purgatory that answers once the high
//! watermark passes a batch.

use super::*;

/// One partition of a produce request, parked until its outcome is decided.
pub(super) struct ProducePart {
    pub(super) tp: TopicPartition,
    /// The leader epoch in which the batch was appended (or found to be a duplicate).
    pub(super) leader_epoch: LeaderEpoch,
    /// Offset of the batch's first record (the original batch's, for a duplicate).
    pub(super) base_offset: Offset,
    /// The high watermark that commits the batch.
    pub(super) required_offset: Offset,
    /// The log start offset to report; -1 when the request did not reach the log.
    pub(super) log_start_offset: Offset,
    /// The outcome, once decided.
    pub(super) result: Option<ErrorCode>,
}

impl ProducePart {
    /// A partition refused before its log was reached.
    pub(super) fn refused(tp: TopicPartition, error: ErrorCode) -> Self {
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
pub(super) enum Waiter {
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

pub(super) struct DelayedProduce {
    pub(super) waiter: Waiter,
    pub(super) deadline: Millis,
    pub(super) parts: Vec<ProducePart>,
}

impl Broker {
    /// `Produce`. Transactional batches that would start the producer's transaction in
    /// a partition are verified with the transaction coordinator first (KIP-890); the
    /// rest is appended at once.
    pub(super) fn handle_produce(
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
    pub(super) fn produce(
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

    /// Appends a produce request's batches as leader (Kafka's
    /// `ReplicaManager.appendEntries`): `verified` holds the coordinator's verdict on
    /// the partitions that were verified (a guard, or the error to answer).
    pub(super) fn append_produce(
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
        let unknown_producer_id_on_append = self.bugs.on(Bug::UnknownProducerIdOnAppend);
        let guard_check = self.config.transaction_partition_verification_enable
            && !self.bugs.on(Bug::LateProduce);
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
            // A full disk: `KAFKA_STORAGE_ERROR`, and the directory goes offline.
            let log = match self.disk.log_for_write(&tp, now) {
                Ok(log) => log,
                Err(error) => {
                    parts.push(ProducePart::refused(tp, error));
                    continue;
                }
            };
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
                .verification
                .entry(&tp, header.producer_id)
                .map(|(_, _, lowest)| lowest);
            let check = if check_sequence {
                log.producer_state().check_append_verified(
                    &header,
                    epoch_fencing,
                    verification_lowest,
                )
            } else {
                Ok(AppendCheck::Append)
            };
            // Before KIP-360 (Kafka 2.5) a producer the partition has no state for had
            // to start at sequence 0 (`UnknownProducerIdException`).
            let check = if unknown_producer_id_on_append
                && check == Ok(AppendCheck::Append)
                && header.has_producer_id()
                && header.base_sequence != 0
                && log
                    .producer_state()
                    .last_entry(header.producer_id)
                    .is_none()
            {
                Err(ErrorCode::UnknownProducerId)
            } else {
                check
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
                && verified
                    .get(&tp)
                    .is_none_or(|g| self.verification.entry(&tp, pid).map(|(_, g, _)| g) != g.ok());
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
                        self.verification.remove(&tp, pid);
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

    /// Completes parked produces whose partitions are all decided; `now` past a
    /// deadline turns undecided partitions into `REQUEST_TIMED_OUT`.
    pub(super) fn complete_delayed_produce(&mut self, now: Millis, out: &mut Outbox) {
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
            self.apply_group(now, output, out);
        }
        for (id, error) in txn_appends {
            let output = self.txn_coordinator.on_append_complete(now, id, error);
            self.apply_txn(now, output, out);
        }
        // Transactional offset commits become visible (or are dropped) once their
        // marker is replicated.
        for (partition, producer_id, committed) in offsets_markers {
            self.coordinator
                .on_txn_marker(partition, producer_id, committed);
        }
    }

    /// Appends a batch of the broker's own as leader of `tp` in `epoch` and parks it in
    /// the produce purgatory for `waiter` until replicated or `deadline`.
    pub(super) fn append_and_park(
        &mut self,
        now: Millis,
        (tp, epoch): (TopicPartition, LeaderEpoch),
        batch: &Bytes,
        (waiter, deadline): (Waiter, Millis),
        out: &mut Outbox,
    ) {
        // A full disk: the coordinator's append fails with `KAFKA_STORAGE_ERROR`.
        let part = match self.disk.log_for_write(&tp, now) {
            Err(error) => ProducePart::refused(tp.clone(), error),
            Ok(log) => {
                let log_start_offset = log.log_start_offset();
                let (base, last) = log
                    .append_as_leader(batch, epoch)
                    .expect("coordinator batches are valid");
                ProducePart {
                    tp: tp.clone(),
                    leader_epoch: epoch,
                    base_offset: base,
                    required_offset: last + 1,
                    log_start_offset,
                    result: None,
                }
            }
        };
        self.park_produce(now, waiter, deadline, vec![part], vec![tp], out);
    }

    /// The leader epoch to append an `acks=all` batch of the broker's own (a coordinator's
    /// records, a transaction marker) in: `NOT_LEADER_OR_FOLLOWER` unless this broker
    /// leads `tp` unfenced, `NOT_ENOUGH_REPLICAS` below `min.insync.replicas`.
    pub(super) fn acks_all_leader_epoch(
        &self,
        tp: &TopicPartition,
        fenced: bool,
    ) -> Result<LeaderEpoch, ErrorCode> {
        self.acks_all_leader_epoch_with(tp, fenced, self.configured_min_isr(tp))
    }

    /// [`Self::acks_all_leader_epoch`] with the topic's own `min.insync.replicas`.
    pub(super) fn acks_all_leader_epoch_with(
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
}
