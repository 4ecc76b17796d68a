//! `DeleteRecords` (KIP-107): the leader moves a partition's log start offset up
//! (`Partition.deleteRecordsOnLeader`) and answers once the low watermark, the smallest
//! log start of the leader and its live replicas, reached it (`DelayedDeleteRecords`,
//! parked in a purgatory until then or until the request's timeout). Followers learn
//! the leader's log start from fetch responses and report theirs in fetch requests.

use super::*;

/// A `DeleteRecords` request waiting for the replicas' log starts.
pub(super) struct DelayedDeleteRecords {
    from: NodeId,
    correlation_id: u64,
    pub(super) deadline: Millis,
    /// Per partition: the offset the low watermark must reach, and the answer (the low
    /// watermark when the request came, `REQUEST_TIMED_OUT` until it is reached).
    parts: Vec<(Offset, DeleteRecordsPartitionResult, bool)>,
}

impl Broker {
    /// Kafka's `ReplicaManager.deleteRecords`: each partition's log start moves on the
    /// leader; the answer waits in the purgatory while a partition's low watermark is
    /// below its offset.
    pub(super) fn handle_delete_records(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: DeleteRecordsRequest,
        out: &mut Outbox,
    ) {
        let mut parts = Vec::with_capacity(req.partitions.len());
        for (tp, offset) in req.partitions {
            let (required, result) = match self.delete_records_on_leader(now, &tp, offset, out) {
                Ok((required, low_watermark)) => (
                    required,
                    DeleteRecordsPartitionResult {
                        tp,
                        low_watermark,
                        error: ErrorCode::None,
                    },
                ),
                Err(error) => (
                    -1,
                    DeleteRecordsPartitionResult {
                        tp,
                        low_watermark: -1,
                        error,
                    },
                ),
            };
            let pending = result.error == ErrorCode::None && result.low_watermark < required;
            parts.push((required, result, pending));
        }
        if parts.iter().any(|(_, _, pending)| *pending) {
            assert!(
                self.delayed_delete_records.len() < MAX_PURGATORY,
                "delete records purgatory overflow"
            );
            for (_, result, pending) in &mut parts {
                if *pending {
                    result.error = ErrorCode::RequestTimedOut;
                }
            }
            self.delayed_delete_records.push(DelayedDeleteRecords {
                from,
                correlation_id,
                deadline: now + req.timeout_ms,
                parts,
            });
        } else {
            let partitions = parts.into_iter().map(|(_, r, _)| r).collect();
            let resp = Response::DeleteRecords(DeleteRecordsResponse { partitions });
            Self::respond(from, correlation_id, resp, out);
        }
    }

    /// Kafka's `Partition.deleteRecordsOnLeader`: the offset (the high watermark for
    /// [`DELETE_RECORDS_HIGH_WATERMARK`]) becomes the log start unless it is above the
    /// high watermark (`OFFSET_OUT_OF_RANGE`); returns it and the low watermark.
    /// Internal topics are refused (`INVALID_TOPIC_EXCEPTION`), as is a partition this
    /// broker does not lead.
    fn delete_records_on_leader(
        &mut self,
        now: Millis,
        tp: &TopicPartition,
        offset: Offset,
        out: &mut Outbox,
    ) -> Result<(Offset, Offset), ErrorCode> {
        if tp.topic.starts_with("__") {
            return Err(ErrorCode::InvalidTopicException);
        }
        let Some(part) = self.partitions.get(tp) else {
            return Err(if self.image.partitions.contains_key(tp) {
                ErrorCode::NotLeaderOrFollower
            } else {
                ErrorCode::UnknownTopicOrPartition
            });
        };
        if !matches!(part.role, Role::Leader(_)) || self.self_fenced(now) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let hw = part.high_watermark;
        let required = if offset == DELETE_RECORDS_HIGH_WATERMARK {
            hw
        } else {
            offset
        };
        if required < 0 || required > hw {
            return Err(ErrorCode::OffsetOutOfRange);
        }
        let evict = self.bugs.on(Bug::EvictProducersOnLogStart);
        let log = self.disk.logs.get_mut(tp).expect("a leader has a log");
        if log.maybe_increment_log_start_offset(required, hw, evict) {
            self.record_log_start(now, tp, required, "client-record-deletion", out);
        }
        Ok((required, self.low_watermark(tp).expect("leads")))
    }

    /// Kafka's `Partition.lowWatermarkIfLeader`: the smallest log start offset of the
    /// leader and of its replicas on live brokers (-1 for one that has not fetched in
    /// this leadership); `None` unless this broker leads `tp`.
    fn low_watermark(&self, tp: &TopicPartition) -> Option<Offset> {
        let Role::Leader(ls) = &self.partitions.get(tp)?.role else {
            return None;
        };
        let own = self.disk.logs.get(tp)?.log_start_offset();
        Some(
            ls.remotes
                .iter()
                .filter(|(b, _)| self.image.is_live(**b))
                .map(|(_, r)| r.log_start_offset)
                .fold(own, Offset::min),
        )
    }

    /// Kafka's `DelayedDeleteRecords.tryComplete` for every parked request: a partition
    /// is done when its low watermark reached the offset (`NONE` with it) or this
    /// broker no longer leads it (`NOT_LEADER_OR_FOLLOWER`); a request is answered when
    /// all its partitions are done, or at its deadline (`REQUEST_TIMED_OUT` for the
    /// rest).
    pub(super) fn complete_delayed_delete_records(&mut self, now: Millis, out: &mut Outbox) {
        let mut delayed = std::mem::take(&mut self.delayed_delete_records);
        for d in &mut delayed {
            for (required, result, pending) in d.parts.iter_mut().filter(|p| p.2) {
                match self.low_watermark(&result.tp) {
                    Some(low) if low >= *required => {
                        *pending = false;
                        result.error = ErrorCode::None;
                        result.low_watermark = low;
                    }
                    Some(_) => {}
                    None => {
                        *pending = false;
                        result.error = ErrorCode::NotLeaderOrFollower;
                        result.low_watermark = -1;
                    }
                }
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = delayed
            .into_iter()
            .partition(|d| now >= d.deadline || d.parts.iter().all(|p| !p.2));
        self.delayed_delete_records = waiting;
        for d in done {
            let partitions = d.parts.into_iter().map(|(_, r, _)| r).collect();
            let resp = Response::DeleteRecords(DeleteRecordsResponse { partitions });
            Self::respond(d.from, d.correlation_id, resp, out);
        }
    }
}
