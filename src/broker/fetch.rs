//! Reads: `Fetch` for consumers (up to the high watermark or the last stable offset)
//! and followers (up to the log end, with KIP-595's diverging epoch), the fetch
//! purgatory, `ListOffsets` and `OffsetsForLeaderEpoch`.

use super::*;

pub(super) struct DelayedFetch {
    pub(super) from: NodeId,
    pub(super) correlation_id: u64,
    pub(super) deadline: Millis,
    pub(super) request: FetchRequest,
}

impl Broker {
    /// Reads a fetch; returns the response and whether any partition had data or an error.
    pub(super) fn read_fetch(
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
            let log_start = log.log_start_offset();
            resp.log_start_offset = log_start;
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
            } else if fp.fetch_offset > leo || fp.fetch_offset < log_start {
                // `LocalLog.read`: below the log start or past the log end.
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
                            // KIP-903 (`Replica.updateFetchStateOrThrow`): a fetch
                            // carrying an older broker epoch than one already seen from
                            // this follower comes from an incarnation that has since
                            // restarted: NOT_LEADER_OR_FOLLOWER, nothing updated. A newer
                            // one is taken (this broker's image may not have its
                            // registration yet).
                            let stale = req.broker_epoch != -1
                                && rm.broker_epoch.is_some_and(|e| e > req.broker_epoch);
                            if stale {
                                resp.error = ErrorCode::NotLeaderOrFollower;
                                partitions.push(resp);
                                any = true;
                                continue;
                            }
                            rm.broker_epoch = Some(req.broker_epoch);
                            // Kafka's lastCaughtUpTime rule (Replica.updateFetchState).
                            if fp.fetch_offset >= leo {
                                rm.last_caught_up_ms = now;
                            } else if fp.fetch_offset >= rm.last_fetch_leader_leo {
                                rm.last_caught_up_ms = rm.last_caught_up_ms.max(rm.last_fetch_ms);
                            }
                            rm.log_end_offset = fp.fetch_offset;
                            rm.log_start_offset = fp.log_start_offset;
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
        let followers_fetched = !hw_updates.is_empty();
        for (tp, follower) in hw_updates {
            self.maybe_expand_isr(now, &tp, follower, out);
            self.maybe_increment_hw(now, &tp, out);
        }
        if followers_fetched {
            // A follower's log start may have reached a `DeleteRecords` offset.
            self.complete_delayed_delete_records(now, out);
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

    pub(super) fn handle_fetch(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        req: FetchRequest,
        out: &mut Outbox,
    ) {
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
    pub(super) fn complete_delayed_fetch(
        &mut self,
        now: Millis,
        followers_only: bool,
        out: &mut Outbox,
    ) {
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
    pub(super) fn leader_partition(
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
    pub(super) fn handle_list_offsets(
        &mut self,
        now: Millis,
        req: ListOffsetsRequest,
    ) -> ListOffsetsResponse {
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
                            Ok((p.leader_epoch, log.log_start_offset(), -1))
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

    pub(super) fn handle_offsets_for_leader_epoch(
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
}
