//! Fetch positions: reset by `auto.offset.reset` through `ListOffsets` (Kafka's
//! `OffsetFetcher`), and validated after a leader change through
//! `OffsetsForLeaderEpoch` (KIP-320, `OffsetsForLeaderEpochUtils`), truncating on a
//! diverging epoch.

use super::*;

impl Consumer {
    /// `NoOffsetForPartitionException`: `tp` has no position and may not reset.
    pub(super) fn no_offset(&self, now: Millis, tp: &TopicPartition, out: &mut Outbox) {
        let read_committed = self.read_committed();
        let error = format!(
            "NoOffsetForPartitionException: {tp} has no position and auto.offset.reset=none"
        );
        let process = self.process();
        out.record(failed_poll(
            process,
            now,
            read_committed,
            tp.clone(),
            -1,
            error,
        ));
    }

    /// A `ListOffsets` attempt for `tp` failed: retry after `retry.backoff.ms`.
    pub(super) fn list_offsets_failed(&mut self, now: Millis, tp: &TopicPartition) {
        let Some(state) = self.assignment.get_mut(tp) else {
            return; // revoked meanwhile
        };
        if let Some(reset) = &mut state.reset {
            reset.in_flight = None;
        }
        state.backoff_until = now + self.config.retry_backoff_ms;
    }

    /// `OffsetFetcher.resetPositionsIfNeeded`: one `ListOffsets` per leader.
    pub(super) fn reset_positions(&mut self, now: Millis, out: &mut Outbox) {
        let timestamp = match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => EARLIEST_TIMESTAMP,
            AutoOffsetReset::Latest => LATEST_TIMESTAMP,
            AutoOffsetReset::None => return,
        };
        let wanted = self
            .assignment
            .iter()
            .filter(|(_, state)| {
                let waiting = state.reset.as_ref().is_some_and(|r| r.in_flight.is_none());
                !state.failed && waiting && state.backoff_until <= now
            })
            .map(|(tp, _)| (tp.clone(), timestamp))
            .collect();
        let sent = self.send_list_offsets(now, wanted, out, |partitions| {
            ConsumerRequest::ListOffsets { partitions }
        });
        for (correlation_id, tps) in sent {
            for tp in tps {
                let state = self.assignment.get_mut(&tp).expect("assigned partition");
                state.reset.as_mut().expect("reset pending").in_flight = Some(correlation_id);
            }
        }
    }

    /// One `ListOffsets` per leader for the `wanted` (partition, timestamp) lookups,
    /// with the consumer's `isolation.level`; a partition without a known leader asks
    /// for a metadata update instead. Returns each request's correlation id and
    /// partitions.
    pub(super) fn send_list_offsets(
        &mut self,
        now: Millis,
        wanted: Vec<(TopicPartition, i64)>,
        out: &mut Outbox,
        kind: impl Fn(Vec<TopicPartition>) -> ConsumerRequest,
    ) -> Vec<(u64, Vec<TopicPartition>)> {
        let mut by_leader: BTreeMap<BrokerId, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        let mut unknown_leader = false;
        for (tp, timestamp) in wanted {
            match self.metadata.leader(&tp) {
                Some((leader, epoch)) => by_leader
                    .entry(leader)
                    .or_default()
                    .push((tp, timestamp, epoch)),
                None => unknown_leader = true,
            }
        }
        if unknown_leader {
            self.metadata.request_update();
        }
        let mut sent = Vec::with_capacity(by_leader.len());
        for (leader, partitions) in by_leader {
            let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _, _)| tp.clone()).collect();
            let request = Request::ListOffsets(ListOffsetsRequest {
                isolation_level: self.config.isolation_level,
                partitions,
            });
            let correlation_id = self
                .net
                .send(now, leader, request, Some(kind(tps.clone())), out);
            sent.push((correlation_id, tps));
        }
        sent
    }

    /// Applies a `ListOffsets` answer: new positions, or a retry after the backoff.
    pub(super) fn handle_list_offsets(
        &mut self,
        now: Millis,
        correlation_id: u64,
        partitions: Vec<TopicPartition>,
        response: ListOffsetsResponse,
        out: &mut Outbox,
    ) {
        for tp in partitions {
            let Some(state) = self.assignment.get_mut(&tp) else {
                continue; // revoked meanwhile
            };
            if state
                .reset
                .as_ref()
                .is_none_or(|r| r.in_flight != Some(correlation_id))
            {
                continue;
            }
            let part = answer_for(&response, &tp);
            if part.error == ErrorCode::None && part.offset >= 0 {
                let reason = state.reset.take().expect("reset pending").reason;
                state.position = Some(part.offset);
                // No epoch: the new position is not validated (Kafka's reset).
                state.position_epoch = -1;
                out.record(Entry::instant(
                    self.process(),
                    now,
                    Op::Seek {
                        partition: tp.clone(),
                        offset: part.offset,
                        reason,
                    },
                ));
            } else {
                self.metadata.request_update();
                self.list_offsets_failed(now, &tp);
            }
        }
    }

    /// `OffsetFetcher.validatePositionsIfNeeded` (KIP-320): a partition whose leader or
    /// leader epoch in the metadata differs from the one its position was taken with
    /// waits for validation if the position has an epoch (Kafka's
    /// `maybeValidatePositionForCurrentLeader`; without one there is nothing to ask);
    /// then one `OffsetsForLeaderEpoch` per leader asks where each position's epoch
    /// ends. The `no-position-validation` bug never validates (the client before
    /// KIP-320).
    pub(super) fn validate_positions(&mut self, now: Millis, out: &mut Outbox) {
        let validate = !self.bugs.on(Bug::NoPositionValidation);
        let mut by_leader: BTreeMap<BrokerId, Vec<(TopicPartition, LeaderEpoch, LeaderEpoch)>> =
            BTreeMap::new();
        for (tp, state) in &mut self.assignment {
            if state.position.is_none()
                || state.failed
                || state.initializing
                || state.reset.is_some()
                || state.buffered
            {
                continue;
            }
            let Some(leader) = self.metadata.leader(tp) else {
                continue;
            };
            if state.current_leader != Some(leader) {
                state.current_leader = Some(leader);
                state.validation = (validate && state.position_epoch >= 0)
                    .then_some(PendingValidation { in_flight: None });
            }
            if state
                .validation
                .as_ref()
                .is_some_and(|v| v.in_flight.is_none())
                && state.backoff_until <= now
            {
                by_leader.entry(leader.0).or_default().push((
                    tp.clone(),
                    leader.1,
                    state.position_epoch,
                ));
            }
        }
        for (leader, partitions) in by_leader {
            let kind = ConsumerRequest::OffsetsForLeaderEpoch {
                partitions: partitions
                    .iter()
                    .map(|(tp, _, _)| {
                        let position = self.assignment[tp].position.expect("has a position");
                        (tp.clone(), position)
                    })
                    .collect(),
            };
            let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _, _)| tp.clone()).collect();
            let request = Request::OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest {
                replica_id: None,
                partitions,
            });
            let correlation_id = self.net.send(now, leader, request, Some(kind), out);
            for tp in tps {
                let state = self.assignment.get_mut(&tp).expect("assigned partition");
                state
                    .validation
                    .as_mut()
                    .expect("awaiting validation")
                    .in_flight = Some(correlation_id);
            }
        }
    }

    /// A validation attempt for `tp` failed: refresh metadata, retry after
    /// `retry.backoff.ms` (one request in flight per partition bounds the retries).
    pub(super) fn validation_failed(&mut self, now: Millis, tp: &TopicPartition) {
        let Some(state) = self.assignment.get_mut(tp) else {
            return; // revoked meanwhile
        };
        if let Some(validation) = &mut state.validation {
            validation.in_flight = None;
        }
        state.backoff_until = now + self.config.retry_backoff_ms;
        self.metadata.request_update();
    }

    /// `SubscriptionState.maybeCompleteValidation` for an `OffsetsForLeaderEpoch`
    /// answer: an end offset below the position means the log was truncated under the
    /// consumer, which seeks to that first offset known to diverge (recorded as an
    /// [`Op::Seek`]) or, with `auto.offset.reset=none`, fails with
    /// `LogTruncationException`; no end offset at all resets the position per
    /// `auto.offset.reset`; otherwise the position is valid and fetching resumes.
    /// Errors (`NOT_LEADER_OR_FOLLOWER`, `FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`,
    /// ...) refresh metadata and retry.
    pub(super) fn handle_offsets_for_leader_epoch(
        &mut self,
        now: Millis,
        correlation_id: u64,
        partitions: Vec<(TopicPartition, Offset)>,
        response: OffsetsForLeaderEpochResponse,
        out: &mut Outbox,
    ) {
        let policy = self.reset_policy_name();
        let none_policy = self.config.auto_offset_reset == AutoOffsetReset::None;
        let read_committed = self.read_committed();
        for (tp, requested) in partitions {
            let Some(state) = self.assignment.get(&tp) else {
                continue; // revoked meanwhile
            };
            let awaited = state
                .validation
                .as_ref()
                .is_some_and(|v| v.in_flight == Some(correlation_id));
            if !awaited || state.position != Some(requested) {
                continue; // the position moved since the request was sent
            }
            let part = response
                .partitions
                .iter()
                .find(|p| p.tp == tp)
                .unwrap_or_else(|| panic!("OffsetsForLeaderEpoch response lacks {tp}"));
            if part.error != ErrorCode::None {
                self.validation_failed(now, &tp);
                continue;
            }
            let undefined = part.end_offset < 0 || part.leader_epoch < 0;
            if !undefined && part.end_offset >= requested {
                let state = self.assignment.get_mut(&tp).expect("assigned partition");
                state.validation = None;
                continue;
            }
            let truncation = if undefined {
                format!("Truncation detected for partition {tp} at offset {requested}")
            } else {
                format!(
                    "Truncation detected for partition {tp} at offset {requested}: leader \
                     epoch {} ends at offset {}",
                    part.leader_epoch, part.end_offset
                )
            };
            let process = self.process();
            let state = self.assignment.get_mut(&tp).expect("assigned partition");
            state.validation = None;
            if none_policy {
                state.failed = true;
                let error =
                    format!("LogTruncationException: {truncation}, but no reset policy is set");
                let hw = state.last_high_watermark.unwrap_or(-1);
                out.record(failed_poll(
                    process,
                    now,
                    read_committed,
                    tp.clone(),
                    hw,
                    error,
                ));
            } else if undefined {
                state.reset = Some(PendingReset {
                    reason: format!("{truncation}; auto.offset.reset={policy}"),
                    in_flight: None,
                });
            } else {
                state.position = Some(part.end_offset);
                state.position_epoch = part.leader_epoch;
                out.record(Entry::instant(
                    process,
                    now,
                    Op::Seek {
                        partition: tp,
                        offset: part.end_offset,
                        reason: format!(
                            "{truncation}; resetting offset to the first offset known to diverge"
                        ),
                    },
                ));
            }
        }
    }
}
