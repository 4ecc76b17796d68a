//! The transactional side of a partition leader: KIP-890 verification (the produce is
//! parked until the transaction coordinator confirms the partition is in the
//! transaction) and the transaction markers a coordinator writes (`WriteTxnMarkers`).

use super::*;

/// The verifications a partition leader has under way (KIP-890): the produces parked
/// on them and Kafka's `VerificationStateEntry` per partition and producer. It owns
/// its state and never calls back into the broker.
#[derive(Default)]
pub(super) struct Verification {
    /// Produces parked for verification, by the correlation id of their
    /// `AddPartitionsToTxn`.
    pub(super) parked: BTreeMap<u64, ParkedProduce>,
    /// Parked produces waiting to retry their `AddPartitionsToTxn` after
    /// `CONCURRENT_TRANSACTIONS` (transaction version 2), with the time to retry.
    pub(super) retries: Vec<(Millis, ParkedProduce)>,
    /// Kafka's `VerificationStateEntry`: per partition and producer id, the epoch,
    /// guard and lowest sequence of the verification under way; a marker (or the
    /// transaction's first batch) removes it.
    entries: BTreeMap<(TopicPartition, i64), (i16, u64, i32)>,
    /// The last guard handed out.
    last_guard: u64,
}

impl Verification {
    /// Kafka's `maybeCreateVerificationStateEntry`: the guard for a batch of
    /// `producer_epoch` starting at `sequence`. A guard of the same or a newer epoch is
    /// shared (by the producer's requests in flight), an older one replaced;
    /// `maybeUpdateLowestSequenceAndEpoch` keeps the lowest sequence of the epoch.
    pub(super) fn guard_for(
        &mut self,
        tp: &TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        sequence: i32,
    ) -> u64 {
        let key = (tp.clone(), producer_id);
        match self.entries.get_mut(&key) {
            Some((epoch, guard, lowest)) if *epoch >= producer_epoch => {
                if *epoch == producer_epoch && sequence < *lowest {
                    *lowest = sequence;
                }
                *guard
            }
            _ => {
                assert!(
                    self.entries.len() < MAX_PURGATORY,
                    "too many verification guards"
                );
                self.last_guard += 1;
                self.entries
                    .insert(key, (producer_epoch, self.last_guard, sequence));
                self.last_guard
            }
        }
    }

    /// The (epoch, guard, lowest sequence) of the producer's verification on `tp`.
    pub(super) fn entry(&self, tp: &TopicPartition, producer_id: i64) -> Option<(i16, u64, i32)> {
        self.entries.get(&(tp.clone(), producer_id)).copied()
    }

    /// The producer's verification on `tp` is over (a marker, or its first batch).
    pub(super) fn remove(&mut self, tp: &TopicPartition, producer_id: i64) {
        self.entries.remove(&(tp.clone(), producer_id));
    }

    /// This broker no longer leads `tp`: its verifications there are void.
    pub(super) fn forget_partition(&mut self, tp: &TopicPartition) {
        self.entries.retain(|(t, _), _| t != tp);
    }
}

/// A produce waiting for the transaction coordinator's verification of its partitions
/// (KIP-890), with the verification guard each partition got.
pub(super) struct ParkedProduce {
    pub(super) from: NodeId,
    pub(super) correlation_id: u64,
    pub(super) request: ProduceRequest,
    pub(super) guards: Vec<(TopicPartition, u64)>,
    /// The producer id and epoch of its batches.
    pub(super) producer: (i64, i16),
    /// When the first `AddPartitionsToTxn` for it was sent (retries keep this).
    pub(super) first_sent_ms: Millis,
}

/// The produce error for a partition the transaction coordinator did not verify, as
/// Kafka 4.x maps it (`AddPartitionsToTxnManager`, `ReplicaManager.appendRecords`):
/// `PRODUCER_FENCED` becomes `INVALID_PRODUCER_EPOCH`; errors older clients might not
/// retry become `NOT_ENOUGH_REPLICAS` (retriable, no metadata refresh), except
/// `CONCURRENT_TRANSACTIONS` under transaction version 2, which stays as it is.
pub(super) fn verification_error(error: ErrorCode, tv2: bool) -> ErrorCode {
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

impl Broker {
    /// Kafka's `ReplicaManager.maybeSendPartitionsToTransactionCoordinator`: the
    /// partitions (with producer id and epoch) of transactional batches that this
    /// broker leads and where the producer has no transaction open in that epoch. Empty
    /// when the coordinator is not asked: verification is off and the partitions are
    /// not added by the broker (transaction version below 2).
    pub(super) fn verification_needed(
        &self,
        now: Millis,
        req: &ProduceRequest,
    ) -> Vec<(TopicPartition, i64, i16)> {
        let config = &self.config;
        let verify = config.transaction_partition_verification_enable
            && !self.bugs.on(crate::bugs::Bug::LateProduce);
        if !verify && config.transaction_version < 2 {
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
            if !header.is_transactional() || !header.has_producer_id() || !self.leads(tp) {
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
    pub(super) fn verify_then_append(
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
            let sequence = req
                .partitions
                .iter()
                .find(|(t, _)| t == tp)
                .and_then(|(_, b)| BatchHeader::parse(b).ok())
                .map_or(record::NO_SEQUENCE, |h| h.base_sequence);
            let guard = self
                .verification
                .guard_for(tp, *producer_id, *producer_epoch, sequence);
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
    pub(super) fn send_verification(
        &mut self,
        now: Millis,
        coordinator: BrokerId,
        parked: ParkedProduce,
        out: &mut Outbox,
    ) {
        assert!(
            self.verification.parked.len() < MAX_PURGATORY,
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
        self.verification.parked.insert(c, parked);
    }

    /// Retries the parked produces whose backoff after `CONCURRENT_TRANSACTIONS` is over,
    /// from the start (Kafka retries the whole append: new verification guards, the
    /// coordinator looked up again).
    pub(super) fn retry_verifications(&mut self, now: Millis, out: &mut Outbox) {
        while let Some(i) = self
            .verification
            .retries
            .iter()
            .position(|(at, _)| *at <= now)
        {
            let (_, p) = self.verification.retries.remove(i);
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
    pub(super) fn transaction_coordinator(&self, transactional_id: &str) -> Option<BrokerId> {
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
    pub(super) fn on_verification(
        &mut self,
        now: Millis,
        request_correlation: u64,
        answer: Result<Vec<(TopicPartition, ErrorCode)>, ErrorCode>,
        out: &mut Outbox,
    ) {
        let parked = self
            .verification
            .parked
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
                self.verification.retries.len() < MAX_PURGATORY,
                "verification retry queue overflow"
            );
            self.verification.retries.push((now + backoff, parked));
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

    /// Parks appended (or refused) partitions in the produce purgatory until each is
    /// decided, and lets the append move the high watermark and wake parked fetches.
    pub(super) fn park_produce(
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
    pub(super) fn handle_write_txn_markers(
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
    pub(super) fn write_marker(
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
        // CreateTime on the partition leader's clock, as Kafka stamps markers; here its
        // true clock whatever its wall clock (the checker dates a marker's write by its
        // timestamp to judge read_committed reads).
        let timestamp = crate::kafka::record::RECORD_TIMESTAMP_BASE + now as i64;
        // A full disk: `KAFKA_STORAGE_ERROR` for this marker.
        let log = match self.disk.log_for_write(tp, now) {
            Ok(log) => log,
            Err(error) => return ProducePart::refused(tp.clone(), error),
        };
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
                let next_txn = self.config.transaction_version >= 2
                    && self
                        .verification
                        .entry(tp, m.producer_id)
                        .is_some_and(|(e, _, _)| e == m.producer_epoch);
                if !next_txn {
                    self.verification.remove(tp, m.producer_id);
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
}
