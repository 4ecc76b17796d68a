//! The idempotent half of Kafka's client-side `TransactionManager`, sans-IO: the
//! producer id and epoch, and per partition the sequence numbers the next batch gets,
//! the batches not yet completed, the last acknowledged sequence, unresolved sequences
//! and the local epoch bump of KIP-360.
//!
//! The producer asks it three things: may this partition's head batch be drained now
//! (`can_drain`), which sequence does a new batch get (`assign`), and what does an
//! attempt's result mean (`can_retry`, `on_success`, `on_failed`). A transactional
//! producer's id and epoch come from its transaction coordinator instead
//! ([`crate::client::txn_client`], `set_identity`).

use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{ErrorCode, InitProducerIdResponse, ProducerIdentity, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// `NO_LAST_ACKED_SEQUENCE_NUMBER`.
const NO_LAST_ACKED_SEQUENCE: i32 = -1;

/// Bound on partitions tracked (far above any scenario).
const MAX_PARTITIONS: usize = 100_000;

/// Kafka's `TxnPartitionEntry`: one partition's sequence bookkeeping.
#[derive(Debug)]
struct PartitionSequences {
    /// The producer id and epoch the sequences below belong to.
    identity: ProducerIdentity,
    /// The base sequence the next new batch gets.
    next_sequence: i32,
    /// The last sequence the broker acknowledged under `identity`.
    last_acked_sequence: i32,
    /// Base sequences of batches that have a sequence and are not completed (sent and
    /// awaiting an answer, or queued for a retry), in sequence order.
    outstanding: BTreeSet<i32>,
    /// The highest last sequence of a batch that failed while it may have been
    /// appended (Kafka's "unresolved sequence"): no new batch goes out until later
    /// acknowledgements show it was, or the epoch is bumped.
    unresolved: Option<i32>,
}

/// The producer id, epoch and sequence numbers of an idempotent producer.
#[derive(Debug)]
pub(crate) struct TransactionManager {
    identity: ProducerIdentity,
    /// An `InitProducerId` is in flight.
    init_in_flight: bool,
    /// No `InitProducerId` before this time (backoff after a failure).
    next_init_ms: Millis,
    partitions: BTreeMap<TopicPartition, PartitionSequences>,
    /// Partitions whose sequences restart at 0 under the next epoch (Kafka's
    /// `partitionsToRewriteSequences`); non-empty means an epoch bump is required.
    bump: BTreeSet<TopicPartition>,
    /// Local epoch bumps so far.
    epoch_bumps: u64,
    /// The producer id comes from the transaction coordinator ([`TxnClient`]), not from
    /// this manager's own `InitProducerId`.
    ///
    /// [`TxnClient`]: crate::client::txn_client::TxnClient
    transactional: bool,
}

impl TransactionManager {
    /// A manager without a producer id yet.
    pub(crate) fn new() -> Self {
        TransactionManager {
            identity: ProducerIdentity::NONE,
            init_in_flight: false,
            next_init_ms: 0,
            partitions: BTreeMap::new(),
            bump: BTreeSet::new(),
            epoch_bumps: 0,
            transactional: false,
        }
    }

    /// A manager whose identity the transactional client sets ([`Self::set_identity`]).
    pub(crate) fn transactional() -> Self {
        TransactionManager {
            transactional: true,
            ..Self::new()
        }
    }

    /// The transaction coordinator gave a producer id and epoch (`InitProducerId`, or an
    /// `EndTxn` of transaction version 2): sequences restart under it, lazily per
    /// partition, and no local bump is pending any more.
    pub(crate) fn set_identity(&mut self, identity: ProducerIdentity) {
        assert!(
            self.transactional,
            "only a transactional producer is given ids"
        );
        assert!(
            identity.producer_id >= 0 && identity.producer_epoch >= 0,
            "invalid identity {identity:?}"
        );
        // A new epoch comes only between transactions, once every batch is done: every
        // partition's sequences restart at 0 under it.
        assert!(
            self.partitions.values().all(|p| p.outstanding.is_empty()),
            "a new producer epoch while batches are outstanding"
        );
        self.identity = identity;
        self.partitions.clear();
        self.bump.clear();
    }

    /// The current producer id and epoch (`NONE` before `InitProducerId`).
    pub(crate) fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// Local epoch bumps so far (KIP-360).
    pub(crate) fn epoch_bumps(&self) -> u64 {
        self.epoch_bumps
    }

    /// When an `InitProducerId` should be sent, if one is needed.
    pub(crate) fn init_due_at(&self) -> Option<Millis> {
        (!self.transactional && self.identity == ProducerIdentity::NONE && !self.init_in_flight)
            .then_some(self.next_init_ms)
    }

    /// An `InitProducerId` went out.
    pub(crate) fn on_init_sent(&mut self) {
        assert!(!self.init_in_flight, "one InitProducerId at a time");
        self.init_in_flight = true;
    }

    /// The `InitProducerId` answer (or `None` when the request failed); a failure is
    /// retried after `backoff_ms`.
    pub(crate) fn on_init_response(
        &mut self,
        now: Millis,
        response: Option<&InitProducerIdResponse>,
        backoff_ms: u64,
    ) {
        assert!(
            self.init_in_flight,
            "InitProducerId answer without a request"
        );
        self.init_in_flight = false;
        match response {
            Some(r) if r.error == ErrorCode::None => {
                assert!(
                    r.producer_id >= 0 && r.producer_epoch >= 0,
                    "InitProducerId gave an invalid identity {r:?}"
                );
                self.identity = ProducerIdentity {
                    producer_id: r.producer_id,
                    producer_epoch: r.producer_epoch,
                };
            }
            _ => self.next_init_ms = now + backoff_ms,
        }
    }

    fn entry(&mut self, tp: &TopicPartition) -> &mut PartitionSequences {
        if !self.partitions.contains_key(tp) {
            assert!(
                self.partitions.len() < MAX_PARTITIONS,
                "too many partitions"
            );
            self.partitions.insert(
                tp.clone(),
                PartitionSequences {
                    identity: self.identity,
                    next_sequence: 0,
                    last_acked_sequence: NO_LAST_ACKED_SEQUENCE,
                    outstanding: BTreeSet::new(),
                    unresolved: None,
                },
            );
        }
        self.partitions.get_mut(tp).expect("inserted")
    }

    /// Kafka's `RecordAccumulator.shouldStopDrainBatchesForPartition`, inverted: may
    /// the head batch of `tp` go out now? `sequence` is its base sequence if it has
    /// one (a retry). With `in_order` false (a bug switch) a retry does not wait to be
    /// the first outstanding batch.
    pub(crate) fn can_drain(
        &self,
        tp: &TopicPartition,
        sequence: Option<(ProducerIdentity, i32)>,
        in_order: bool,
    ) -> bool {
        if self.identity == ProducerIdentity::NONE || self.bump.contains(tp) {
            return false;
        }
        let Some(p) = self.partitions.get(tp) else {
            return sequence.is_none();
        };
        match sequence {
            None => {
                let stale = p.identity != self.identity;
                p.unresolved.is_none() && (!stale || p.outstanding.is_empty())
            }
            Some((_, base)) => !in_order || p.outstanding.first().is_none_or(|f| *f == base),
        }
    }

    /// Gives a new batch of `records` records its identity and base sequence (Kafka's
    /// `maybeUpdateProducerIdAndEpoch` + `sequenceNumber` + `incrementSequenceNumber`).
    pub(crate) fn assign(
        &mut self,
        tp: &TopicPartition,
        records: usize,
    ) -> (ProducerIdentity, i32) {
        let identity = self.identity;
        assert!(identity != ProducerIdentity::NONE, "no producer id yet");
        let p = self.entry(tp);
        if p.identity != identity {
            assert!(
                p.outstanding.is_empty(),
                "{tp}: new epoch while batches of the old one are outstanding"
            );
            p.identity = identity;
            p.next_sequence = 0;
            p.last_acked_sequence = NO_LAST_ACKED_SEQUENCE;
            p.unresolved = None;
        }
        let base = p.next_sequence;
        let count = i32::try_from(records).expect("batch record count fits in i32");
        p.next_sequence = base
            .checked_add(count)
            .expect("sequence wrap-around is not modelled (2^31 records per partition)");
        assert!(
            p.outstanding.insert(base),
            "{tp}: sequence {base} given twice"
        );
        (identity, base)
    }

    /// The batch `(identity, base..=last)` was acknowledged (`NONE` or
    /// `DUPLICATE_SEQUENCE_NUMBER`).
    pub(crate) fn on_success(
        &mut self,
        tp: &TopicPartition,
        identity: ProducerIdentity,
        base: i32,
        last: i32,
    ) {
        let p = self.entry(tp);
        if p.identity != identity {
            return;
        }
        p.outstanding.remove(&base);
        p.last_acked_sequence = p.last_acked_sequence.max(last);
        if p.unresolved.is_some_and(|u| p.last_acked_sequence >= u) {
            p.unresolved = None;
        }
    }

    /// The batch failed for good (an error, its retries or its delivery timeout ran
    /// out). If it may have been appended its sequence is unresolved; otherwise the
    /// partition has a gap and needs a new epoch.
    pub(crate) fn on_failed(
        &mut self,
        tp: &TopicPartition,
        identity: ProducerIdentity,
        base: i32,
        last: i32,
        maybe_appended: bool,
    ) {
        let p = self.entry(tp);
        if p.identity != identity {
            return;
        }
        p.outstanding.remove(&base);
        if maybe_appended {
            p.unresolved = Some(p.unresolved.map_or(last, |u| u.max(last)));
        } else if p.last_acked_sequence < last {
            self.bump.insert(tp.clone());
        }
    }

    /// Kafka's `TransactionManager.canRetry` for an idempotent producer, including the
    /// KIP-360 cases: `UNKNOWN_PRODUCER_ID` and a real gap (`OUT_OF_ORDER_SEQUENCE_NUMBER`
    /// for the next expected batch) request an epoch bump and are retried. With
    /// `in_order` false (a bug switch) every out-of-order error counts as a gap.
    pub(crate) fn can_retry(
        &mut self,
        tp: &TopicPartition,
        error: ErrorCode,
        identity: ProducerIdentity,
        base: i32,
        in_order: bool,
    ) -> bool {
        let p = self.entry(tp);
        // A batch whose partition's sequences were rewritten since (Kafka's
        // `sequenceHasBeenReset`): its error says nothing of the new sequences. A batch
        // of another partition's older epoch is not stale: its partition was never
        // rewritten, and a gap there needs a bump of its own.
        let stale = p.identity != identity;
        match error {
            ErrorCode::UnknownProducerId => {
                if !stale {
                    self.bump.insert(tp.clone());
                }
                true
            }
            ErrorCode::OutOfOrderSequenceNumber => {
                let next = p.last_acked_sequence + 1 == base;
                if in_order && p.unresolved.is_none() && !next {
                    // Behind a batch that failed: it goes again once that one is in.
                    return true;
                }
                let after_unresolved = p.unresolved.is_some_and(|u| u + 1 == base);
                if !stale && (p.unresolved.is_none() || after_unresolved || !in_order) {
                    self.bump.insert(tp.clone());
                }
                true
            }
            ErrorCode::InvalidProducerEpoch => false,
            other => other.is_retriable(),
        }
    }

    /// Kafka's `maybeResolveSequences`: a partition whose outstanding batches are all
    /// done either caught up (the unresolved batch was appended after all) or has a gap
    /// and needs a new epoch.
    pub(crate) fn maybe_resolve_sequences(&mut self) {
        let mut gaps = Vec::new();
        for (tp, p) in &mut self.partitions {
            let Some(unresolved) = p.unresolved else {
                continue;
            };
            if p.last_acked_sequence >= unresolved {
                p.unresolved = None;
            } else if p.outstanding.is_empty() {
                gaps.push(tp.clone());
            }
        }
        self.bump.extend(gaps);
    }

    /// Partitions waiting for an epoch bump.
    pub(crate) fn bump_partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.bump.iter()
    }

    /// Kafka's `bumpIdempotentProducerEpoch`: the epoch goes up by one locally, and each
    /// partition that
    /// asked for it restarts its sequences at 0. `queued(tp)` gives, in order, the
    /// record counts of that partition's batches that already had sequences; they are
    /// re-sequenced and the new base sequences are returned per partition.
    pub(crate) fn bump_epoch(
        &mut self,
        mut queued: impl FnMut(&TopicPartition) -> Vec<usize>,
    ) -> BTreeMap<TopicPartition, Vec<i32>> {
        assert!(!self.bump.is_empty(), "no epoch bump requested");
        self.epoch_bumps += 1;
        assert!(
            self.identity.producer_epoch < i16::MAX,
            "producer epoch exhausted: resetting the producer id is not modelled"
        );
        self.identity.producer_epoch += 1;
        let identity = self.identity;
        let mut rewritten = BTreeMap::new();
        for tp in std::mem::take(&mut self.bump) {
            let counts = queued(&tp);
            let p = self.entry(&tp);
            p.identity = identity;
            p.last_acked_sequence = NO_LAST_ACKED_SEQUENCE;
            p.unresolved = None;
            p.outstanding.clear();
            let mut next = 0i32;
            let mut bases = Vec::with_capacity(counts.len());
            for count in counts {
                bases.push(next);
                p.outstanding.insert(next);
                next += i32::try_from(count).expect("batch record count fits in i32");
            }
            p.next_sequence = next;
            rewritten.insert(tp, bases);
        }
        rewritten
    }
}

#[cfg(test)]
mod tests;
