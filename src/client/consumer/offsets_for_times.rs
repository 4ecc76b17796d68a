//! `offsetsForTimes`: lookups by timestamp through `ListOffsets`, one per partition at a
//! time, with retries, and the probe that asks on a schedule (recorded as
//! `offsets_for_times` operations).

use super::*;

impl Consumer {
    /// Assign mode: every `every_ms`, looks up on each partition the first offset whose
    /// record was created at or after `now - lag_ms` ([`Consumer::offsets_for_times`]),
    /// the scenario's probe of how transaction markers disturb timestamp lookups (C28).
    pub fn set_timestamp_probe(&mut self, every_ms: Millis, lag_ms: Millis) {
        assert!(self.group.is_none(), "timestamp probes are for assign mode");
        assert!(every_ms > 0, "a probe needs a period");
        self.timestamp_probe = Some(TimestampProbe {
            every_ms,
            lag_ms,
            next_ms: self.now + every_ms,
        });
    }

    /// `KafkaConsumer.offsetsForTimes` (assign mode): for each partition, the first
    /// offset whose record timestamp is at or after the given one (`ListOffsets` to the
    /// leader, with the consumer's `isolation.level`), retried on retriable errors until
    /// `default.api.timeout.ms`. Each answer is recorded as an [`Op::OffsetsForTimes`]
    /// invoked now; a partition whose lookup is still under way is not asked again.
    pub fn offsets_for_times(
        &mut self,
        now: Millis,
        timestamps: Vec<(TopicPartition, i64)>,
        out: &mut Outbox,
    ) {
        assert!(
            self.group.is_none(),
            "offsetsForTimes is driven in assign mode"
        );
        for (tp, timestamp) in timestamps {
            assert!(
                timestamp >= 0,
                "offsetsForTimes needs a timestamp, got {timestamp}"
            );
            if self.timestamp_lookups.contains_key(&tp) {
                continue;
            }
            assert!(
                self.timestamp_lookups.len() < MAX_TIMESTAMP_LOOKUPS,
                "too many timestamp lookups under way"
            );
            self.timestamp_lookups.insert(
                tp,
                TimestampLookup {
                    timestamp,
                    invoke_ms: now,
                    deadline: now + self.config.default_api_timeout_ms,
                    in_flight: None,
                    backoff_until: now,
                },
            );
        }
        self.run(now, out);
    }

    /// A lookup's `ListOffsets` failed: retry after `retry.backoff.ms`.
    pub(super) fn timestamp_lookup_failed(&mut self, now: Millis, tp: &TopicPartition) {
        if let Some(lookup) = self.timestamp_lookups.get_mut(tp) {
            lookup.in_flight = None;
            lookup.backoff_until = now + self.config.retry_backoff_ms;
        }
    }

    /// The probe's lookups when due: `now - lag_ms` as CreateTime on each partition.
    pub(super) fn run_timestamp_probe(&mut self, now: Millis) {
        let Some(probe) = &mut self.timestamp_probe else {
            return;
        };
        if now < probe.next_ms {
            return;
        }
        probe.next_ms = now + probe.every_ms;
        // `System.currentTimeMillis() - lag`: the consumer's wall clock.
        let timestamp = self.clock.timestamp(now) - probe.lag_ms as i64;
        let deadline = now + self.config.default_api_timeout_ms;
        for tp in self.assignment.keys() {
            if self.timestamp_lookups.contains_key(tp) {
                continue;
            }
            assert!(
                self.timestamp_lookups.len() < MAX_TIMESTAMP_LOOKUPS,
                "too many timestamp lookups under way"
            );
            self.timestamp_lookups.insert(
                tp.clone(),
                TimestampLookup {
                    timestamp,
                    invoke_ms: now,
                    deadline,
                    in_flight: None,
                    backoff_until: now,
                },
            );
        }
    }

    /// `OffsetFetcher.fetchOffsetsByTimes`: one `ListOffsets` per leader for the lookups
    /// not in flight; lookups past `default.api.timeout.ms` fail.
    pub(super) fn send_timestamp_lookups(&mut self, now: Millis, out: &mut Outbox) {
        let expired: Vec<TopicPartition> = self
            .timestamp_lookups
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in expired {
            let lookup = self.timestamp_lookups.remove(&tp).expect("listed");
            let error = format!(
                "TimeoutException: offsetsForTimes did not complete within {} ms",
                self.config.default_api_timeout_ms
            );
            self.record_lookup(now, tp, &lookup, Outcome::Fail { error }, None, out);
        }
        let wanted = self
            .timestamp_lookups
            .iter()
            .filter(|(_, l)| l.in_flight.is_none() && l.backoff_until <= now)
            .map(|(tp, l)| (tp.clone(), l.timestamp))
            .collect();
        let sent = self.send_list_offsets(now, wanted, out, |partitions| {
            ConsumerRequest::OffsetsForTimes { partitions }
        });
        for (correlation_id, tps) in sent {
            for tp in tps {
                let lookup = self.timestamp_lookups.get_mut(&tp).expect("listed");
                lookup.in_flight = Some(correlation_id);
            }
        }
    }

    /// Applies a `ListOffsets` answer to the lookups it was sent for: found (or not),
    /// retried after a retriable error, failed after another.
    pub(super) fn handle_offsets_for_times(
        &mut self,
        now: Millis,
        correlation_id: u64,
        partitions: Vec<TopicPartition>,
        response: ListOffsetsResponse,
        out: &mut Outbox,
    ) {
        for tp in partitions {
            if self
                .timestamp_lookups
                .get(&tp)
                .is_none_or(|l| l.in_flight != Some(correlation_id))
            {
                continue;
            }
            let part = answer_for(&response, &tp);
            if part.error.is_retriable() {
                self.metadata.request_update();
                self.timestamp_lookup_failed(now, &tp);
                continue;
            }
            let lookup = self.timestamp_lookups.remove(&tp).expect("checked");
            let (outcome, found) = match part.error {
                ErrorCode::None if part.offset >= 0 => {
                    (Outcome::Ok, Some((part.offset, part.timestamp)))
                }
                ErrorCode::None => (Outcome::Ok, None),
                error => (
                    Outcome::Fail {
                        error: error.name().to_string(),
                    },
                    None,
                ),
            };
            self.record_lookup(now, tp, &lookup, outcome, found, out);
        }
    }

    /// Records a finished lookup as an [`Op::OffsetsForTimes`].
    pub(super) fn record_lookup(
        &self,
        now: Millis,
        partition: TopicPartition,
        lookup: &TimestampLookup,
        outcome: Outcome,
        found: Option<(Offset, i64)>,
        out: &mut Outbox,
    ) {
        out.record(Entry {
            index: 0,
            process: self.process(),
            invoke_ms: lookup.invoke_ms,
            complete_ms: Some(now),
            outcome,
            op: Op::OffsetsForTimes {
                partition,
                timestamp: lookup.timestamp,
                offset: found.map(|(o, _)| o),
                found_timestamp: found.map(|(_, t)| t),
            },
        });
    }
}
