//! Committed offsets (Kafka's `OffsetMetadataManager`): `OffsetCommit`, `OffsetFetch`,
//! `TxnOffsetCommit` and the pending transactional offsets that a marker commits or
//! drops.

use super::*;

impl GroupCoordinator {
    pub(super) fn offset_commit(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        req: OffsetCommitRequest,
        out: &mut CoordinatorOutput,
    ) {
        let error = match self.groups.get_mut(&req.group_id) {
            None if req.generation_id < 0 => {
                // A simple consumer: the group exists only to hold offsets.
                assert!(self.groups.len() < MAX_GROUPS, "too many groups");
                self.groups
                    .insert(req.group_id.clone(), Group::new(partition));
                ErrorCode::None
            }
            None => ErrorCode::IllegalGeneration,
            Some(g)
                if self.bugs.on(Bug::CommitFromOldGeneration)
                    && (0..g.generation).contains(&req.generation_id) =>
            {
                ErrorCode::None
            }
            Some(g)
                if req.generation_id >= 0
                    || !req.member_id.is_empty()
                    || req.group_instance_id.is_some() =>
            {
                if g.is_fenced(&req.group_instance_id, &req.member_id) {
                    ErrorCode::FencedInstanceId
                } else if let Some(m) = g.members.get_mut(&req.member_id) {
                    if req.generation_id != g.generation {
                        ErrorCode::IllegalGeneration
                    } else if g.state == GroupState::CompletingRebalance {
                        ErrorCode::RebalanceInProgress
                    } else {
                        m.refresh(now);
                        ErrorCode::None
                    }
                } else {
                    ErrorCode::UnknownMemberId
                }
            }
            // Outside group management only an empty group takes commits.
            Some(g) if g.state != GroupState::Empty => ErrorCode::UnknownMemberId,
            Some(_) => ErrorCode::None,
        };
        if error != ErrorCode::None || req.offsets.is_empty() {
            out.respond(reply_to, commit_response(&req.offsets, error));
            return;
        }
        let records = encode_offset_records(&req.group_id, &req.offsets, now);
        let purpose = AppendPurpose::Offsets {
            reply_to,
            group_id: req.group_id,
            offsets: req.offsets,
        };
        self.append(partition, purpose, now, records, out);
    }

    pub(super) fn offset_fetch(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let group = self.groups.get(&req.group_id);
        // KIP-447: a consumer asking for stable offsets waits while transactional offsets of its
        // partitions are pending, or it could start before a commit about to land.
        let unstable = req.require_stable
            && group.is_some_and(|g| {
                g.pending_txn
                    .values()
                    .any(|o| req.partitions.iter().any(|tp| o.contains_key(tp)))
            });
        if unstable {
            return OffsetFetchResponse {
                error: ErrorCode::UnstableOffsetCommit,
                offsets: Vec::new(),
            };
        }
        let offsets = group
            .map(|g| {
                req.partitions
                    .iter()
                    .filter_map(|tp| g.offsets.get(tp).cloned())
                    .collect()
            })
            .unwrap_or_default();
        OffsetFetchResponse {
            error: ErrorCode::None,
            offsets,
        }
    }

    /// `TxnOffsetCommit` (Kafka's `doTxnCommitOffsets`): with the consumer's group
    /// metadata the member and generation are checked (KIP-447); the offsets are
    /// written as a transactional batch of the producer and stay pending until the
    /// transaction's marker reaches the partition.
    pub(super) fn txn_offset_commit(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        req: TxnOffsetCommitRequest,
        out: &mut CoordinatorOutput,
    ) {
        if !self.groups.contains_key(&req.group_id) {
            assert!(self.groups.len() < MAX_GROUPS, "too many groups");
            self.groups
                .insert(req.group_id.clone(), Group::new(partition));
        }
        let g = self.groups.get_mut(&req.group_id).expect("just ensured");
        let with_metadata = req.generation_id >= 0 || !req.member_id.is_empty();
        let error = if g.is_fenced(&req.group_instance_id, &req.member_id) {
            ErrorCode::FencedInstanceId
        } else if with_metadata && !g.members.contains_key(&req.member_id) {
            ErrorCode::UnknownMemberId
        } else if with_metadata && req.generation_id != g.generation {
            ErrorCode::IllegalGeneration
        } else {
            ErrorCode::None
        };
        if error != ErrorCode::None || req.offsets.is_empty() {
            out.respond(reply_to, txn_commit_response(&req.offsets, error));
            return;
        }
        let records = encode_offset_records(&req.group_id, &req.offsets, now);
        let purpose = AppendPurpose::TxnOffsets {
            reply_to,
            group_id: req.group_id,
            producer_id: req.producer_id,
            offsets: req.offsets,
        };
        let producer = ProducerIdentity {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
        };
        self.append_as(partition, purpose, now, records, Some(producer), out);
    }

    /// A transaction marker of `producer_id` was committed on `__consumer_offsets-
    /// <partition>` (written and replicated): its groups' pending transactional offsets
    /// are committed or dropped.
    pub fn on_txn_marker(&mut self, partition: u32, producer_id: i64, committed: bool) {
        for g in self
            .groups
            .values_mut()
            .filter(|g| g.partition == partition)
        {
            g.complete_txn(producer_id, committed);
        }
    }

    /// Every loaded group's committed offsets.
    pub fn committed_offsets(&self) -> BTreeMap<(Arc<str>, TopicPartition), Offset> {
        self.groups
            .iter()
            .flat_map(|(id, g)| {
                g.offsets
                    .iter()
                    .map(move |(tp, o)| ((id.clone(), tp.clone()), o.offset))
            })
            .collect()
    }
}
