//! Kafka's `TransactionMetadata`: one transactional id's state machine
//! ([`TransactionState`] and its legal transitions), its producer id and epoch, its
//! partitions, and the values a `__transaction_state` record holds (`TxnValue`).

use super::*;

/// Kafka's transaction states (`TransactionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction (after `InitProducerId`).
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// Commit decided and written; markers are being written.
    PrepareCommit,
    /// Abort decided and written; markers are being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The transactional id expired (never entered here: ids do not expire).
    Dead,
    /// The epoch was bumped to fence the producer; an abort follows.
    PrepareEpochFence,
}

impl TransactionState {
    /// Every state, in Kafka's id order.
    pub const ALL: [TransactionState; 8] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
        TransactionState::Dead,
        TransactionState::PrepareEpochFence,
    ];

    /// Kafka's status byte in `__transaction_state`.
    pub fn id(self) -> u8 {
        match self {
            TransactionState::Empty => 0,
            TransactionState::Ongoing => 1,
            TransactionState::PrepareCommit => 2,
            TransactionState::PrepareAbort => 3,
            TransactionState::CompleteCommit => 4,
            TransactionState::CompleteAbort => 5,
            TransactionState::Dead => 6,
            TransactionState::PrepareEpochFence => 7,
        }
    }

    /// The state with status byte `id`.
    pub fn from_id(id: u8) -> Option<TransactionState> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name (`DescribeTransactions`, the history).
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Dead => "Dead",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Kafka's `validPreviousStates`: the states this one may be entered from.
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        use TransactionState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            // Empty and Complete*: an abort without partitions (transaction version 2).
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether `from -> self` is in Kafka's table.
    pub fn can_enter_from(self, from: TransactionState) -> bool {
        self.valid_previous_states().contains(&from)
    }

    pub(super) fn is_prepared(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }

    pub(super) fn is_complete(self) -> bool {
        matches!(
            self,
            TransactionState::CompleteCommit | TransactionState::CompleteAbort
        )
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A transactional id's metadata values: what a `__transaction_state` record holds (and
/// the last epoch, which it does not); prepared for a transition, Kafka's
/// `TxnTransitMetadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TxnValue {
    pub(super) producer_id: i64,
    /// The producer id before the last transition (KIP-360 retries after a rotation).
    pub(super) previous_producer_id: i64,
    /// The producer id an exhausted epoch moves to at `Complete*` (version 2).
    pub(super) next_producer_id: i64,
    pub(super) producer_epoch: i16,
    /// The epoch before the last KIP-360 bump (-1 after a load or a fence).
    pub(super) last_producer_epoch: i16,
    pub(super) txn_timeout_ms: u64,
    pub(super) state: TransactionState,
    pub(super) topic_partitions: BTreeSet<TopicPartition>,
    pub(super) txn_start_timestamp: i64,
    pub(super) txn_last_update_timestamp: i64,
    pub(super) client_transaction_version: i16,
}

/// Kafka's `TransactionMetadata` of one transactional id.
#[derive(Clone, Debug)]
pub(super) struct TransactionMetadata {
    pub(super) transactional_id: Arc<str>,
    /// Its `__transaction_state` partition.
    pub(super) partition: u32,
    /// The values of the last completed transition.
    pub(super) current: TxnValue,
    /// The transition written but not yet replicated, or waiting for markers.
    pub(super) pending_state: Option<TransactionState>,
    /// A fence's abort could not be written: the next fence does not bump again.
    pub(super) has_failed_epoch_fence: bool,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: its producer id, no epoch yet.
    pub(super) fn new(
        transactional_id: Arc<str>,
        partition: u32,
        producer_id: i64,
        txn_timeout_ms: u64,
        now: i64,
    ) -> Self {
        let current = TxnValue {
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TransactionState::Empty,
            topic_partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            client_transaction_version: 0,
        };
        Self::loaded(transactional_id, partition, current)
    }

    /// The metadata a loaded record describes.
    pub(super) fn loaded(transactional_id: Arc<str>, partition: u32, current: TxnValue) -> Self {
        TransactionMetadata {
            transactional_id,
            partition,
            current,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The current values, to be changed into a transition to `state`.
    pub(super) fn transit(&self, state: TransactionState) -> TxnValue {
        TxnValue {
            state,
            ..self.current.clone()
        }
    }

    pub(super) fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.current.producer_epoch)
    }

    /// Kafka's `prepareTransitionTo`: checks the table and sets the pending state.
    pub(super) fn prepare_transition(&mut self, mut t: TxnValue) -> TxnValue {
        assert!(
            self.pending_state.is_none(),
            "transaction {}: preparing {} while {:?} is pending",
            self.transactional_id,
            t.state,
            self.pending_state
        );
        assert!(
            t.producer_id >= 0,
            "transaction {}: illegal producer id {}",
            self.transactional_id,
            t.producer_id
        );
        assert!(
            t.state == TransactionState::Dead || t.producer_epoch >= 0,
            "transaction {}: illegal producer epoch {}",
            self.transactional_id,
            t.producer_epoch
        );
        self.check_transition(t.state);
        t.previous_producer_id = self.current.producer_id;
        self.pending_state = Some(t.state);
        t
    }

    /// Panics on a transition outside Kafka's table: a bug.
    pub(super) fn check_transition(&self, to: TransactionState) {
        assert!(
            to.can_enter_from(self.current.state),
            "transaction {}: illegal transition {} -> {}",
            self.transactional_id,
            self.current.state,
            to
        );
    }

    /// Kafka's `completeTransitionTo`: the transition is replicated; checks the
    /// invariants of each kind of transition and applies it.
    pub(super) fn complete_transition(&mut self, t: &TxnValue) -> TxnTransition {
        assert_eq!(
            self.pending_state,
            Some(t.state),
            "transaction {}: completing {} without preparing it",
            self.transactional_id,
            t.state
        );
        let id = &self.transactional_id;
        let v2 = t.client_transaction_version >= 2;
        let same_producer = t.producer_epoch == self.current.producer_epoch
            && t.producer_id == self.current.producer_id;
        match t.state {
            TransactionState::Empty => {
                let bump = i32::from(t.producer_epoch)
                    == i32::from(self.current.producer_epoch) + 1
                    || (t.producer_epoch == 0 && t.producer_id != self.current.producer_id);
                assert!(
                    (t.producer_epoch == self.current.producer_epoch || bump)
                        && t.topic_partitions.is_empty()
                        && t.txn_start_timestamp == -1,
                    "transaction {id}: bad InitProducerId transition {t:?}"
                );
            }
            TransactionState::Ongoing => assert!(
                same_producer
                    && t.topic_partitions
                        .is_superset(&self.current.topic_partitions)
                    && t.txn_timeout_ms == self.current.txn_timeout_ms,
                "transaction {id}: bad AddPartitions transition {t:?}"
            ),
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                let valid_epoch = if v2 {
                    t.last_producer_epoch == self.current.producer_epoch
                        && t.producer_id == self.current.producer_id
                } else {
                    same_producer
                };
                let empty_abort = t.state == TransactionState::PrepareAbort
                    && v2
                    && (self.current.state == TransactionState::Empty
                        || self.current.state.is_complete());
                assert!(
                    valid_epoch
                        && t.topic_partitions == self.current.topic_partitions
                        && t.txn_timeout_ms == self.current.txn_timeout_ms
                        && (t.txn_start_timestamp == self.current.txn_start_timestamp
                            || empty_abort),
                    "transaction {id}: bad EndTxn transition {t:?}"
                );
            }
            TransactionState::CompleteCommit | TransactionState::CompleteAbort => {
                let valid_epoch =
                    if v2 && t.producer_epoch == 0 && t.producer_id != self.current.producer_id {
                        t.previous_producer_id == self.current.producer_id
                    } else {
                        same_producer
                    };
                assert!(
                    valid_epoch
                        && t.txn_timeout_ms == self.current.txn_timeout_ms
                        && t.txn_start_timestamp != -1,
                    "transaction {id}: bad marker completion {t:?}"
                );
            }
            TransactionState::PrepareEpochFence | TransactionState::Dead => {
                panic!("transaction {id}: {} is never written", t.state)
            }
        }
        let transition = TxnTransition {
            transactional_id: self.transactional_id.clone(),
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            from: self.current.state,
            to: t.state,
        };
        self.current = t.clone();
        self.pending_state = None;
        if t.state.is_prepared() || t.state.is_complete() {
            self.has_failed_epoch_fence = false;
        }
        transition
    }

    /// A prepared transition could not be written: nothing changes.
    pub(super) fn abandon_transition(&mut self) {
        assert!(self.pending_state.take().is_some(), "nothing pending");
    }

    /// Kafka's `prepareFenceProducerEpoch`, completed at once (it is never written):
    /// the epoch is bumped (not again after a failed fence, and not past
    /// `Short.MAX_VALUE`), which fences the current producer.
    pub(super) fn fence_producer_epoch(&mut self) -> TxnTransition {
        assert!(
            self.pending_state.is_none(),
            "transaction {}: fencing while {:?} is pending",
            self.transactional_id,
            self.pending_state
        );
        self.check_transition(TransactionState::PrepareEpochFence);
        if !self.has_failed_epoch_fence && self.current.producer_epoch < i16::MAX {
            self.current.producer_epoch += 1;
        }
        self.current.last_producer_epoch = NO_PRODUCER_EPOCH;
        let from = self.current.state;
        self.current.state = TransactionState::PrepareEpochFence;
        TxnTransition {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.current.producer_id,
            producer_epoch: self.current.producer_epoch,
            from,
            to: self.current.state,
        }
    }

    /// The fence's abort could not be written: back to `Ongoing`, keeping the bumped
    /// epoch (Kafka's `hasFailedEpochFence`).
    pub(super) fn undo_epoch_fence(&mut self) -> TxnTransition {
        assert_eq!(self.current.state, TransactionState::PrepareEpochFence);
        self.abandon_transition();
        self.current.state = TransactionState::Ongoing;
        self.has_failed_epoch_fence = true;
        TxnTransition {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.current.producer_id,
            producer_epoch: self.current.producer_epoch,
            from: TransactionState::PrepareEpochFence,
            to: self.current.state,
        }
    }

    /// Kafka's `prepareIncrementProducerEpoch` (KIP-360 for `expected_epoch`).
    pub(super) fn prepare_increment_producer_epoch(
        &mut self,
        txn_timeout_ms: u64,
        expected_epoch: Option<i16>,
        now: i64,
    ) -> Result<TxnValue, ErrorCode> {
        let mut t = self.transit(TransactionState::Empty);
        let bump = |epoch: i16| {
            assert!(!is_epoch_exhausted(epoch), "no epoch left to bump to");
            epoch + 1
        };
        match expected_epoch {
            None => {
                t.producer_epoch = bump(self.current.producer_epoch);
                t.last_producer_epoch = NO_PRODUCER_EPOCH;
            }
            Some(e)
                if self.current.producer_epoch == NO_PRODUCER_EPOCH
                    || e == self.current.producer_epoch =>
            {
                t.producer_epoch = bump(self.current.producer_epoch);
                t.last_producer_epoch = self.current.producer_epoch;
            }
            // A retry of a bump whose answer was lost: the same epoch again.
            Some(e) if e == self.current.last_producer_epoch => {}
            Some(_) => return Err(ErrorCode::ProducerFenced),
        }
        t.txn_timeout_ms = txn_timeout_ms;
        t.topic_partitions.clear();
        t.txn_start_timestamp = -1;
        t.txn_last_update_timestamp = now;
        Ok(self.prepare_transition(t))
    }

    /// Kafka's `prepareProducerIdRotation`: an exhausted epoch moves to a new id.
    pub(super) fn prepare_producer_id_rotation(
        &mut self,
        producer_id: i64,
        txn_timeout_ms: u64,
        now: i64,
        record_last_epoch: bool,
    ) -> TxnValue {
        assert!(
            !matches!(
                self.current.state,
                TransactionState::Ongoing
                    | TransactionState::PrepareCommit
                    | TransactionState::PrepareAbort
            ),
            "rotating the producer id of a pending transaction"
        );
        let mut t = self.transit(TransactionState::Empty);
        t.producer_id = producer_id;
        t.producer_epoch = 0;
        t.last_producer_epoch = if record_last_epoch {
            self.current.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        t.txn_timeout_ms = txn_timeout_ms;
        t.topic_partitions.clear();
        t.txn_start_timestamp = -1;
        t.txn_last_update_timestamp = now;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareAddPartitions`.
    pub(super) fn prepare_add_partitions(
        &mut self,
        partitions: &[TopicPartition],
        now: i64,
        client_transaction_version: i16,
    ) -> TxnValue {
        let mut t = self.transit(TransactionState::Ongoing);
        if self.current.state == TransactionState::Empty || self.current.state.is_complete() {
            t.txn_start_timestamp = now;
        }
        t.topic_partitions.extend(partitions.iter().cloned());
        assert!(
            t.topic_partitions.len() <= MAX_PARTITIONS_PER_TXN,
            "too many partitions in transaction {}",
            self.transactional_id
        );
        t.txn_last_update_timestamp = now;
        t.client_transaction_version = client_transaction_version;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareAbortOrCommit`; with version 2 the epoch is bumped (not past
    /// `Short.MAX_VALUE`).
    pub(super) fn prepare_abort_or_commit(
        &mut self,
        state: TransactionState,
        client_transaction_version: i16,
        next_producer_id: i64,
        now: i64,
        no_partition_added: bool,
    ) -> TxnValue {
        let mut t = self.transit(state);
        if client_transaction_version >= 2 {
            if self.current.producer_epoch < i16::MAX {
                t.producer_epoch = self.current.producer_epoch + 1;
            }
            t.last_producer_epoch = self.current.producer_epoch;
        }
        if no_partition_added {
            t.txn_start_timestamp = now;
        }
        t.next_producer_id = next_producer_id;
        t.txn_last_update_timestamp = now;
        t.client_transaction_version = client_transaction_version;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareComplete`: markers are all written; an exhausted epoch moves to
    /// the next producer id (version 2).
    pub(super) fn prepare_complete(&mut self, now: i64) -> TxnValue {
        let state = match self.current.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            TransactionState::PrepareAbort => TransactionState::CompleteAbort,
            other => panic!(
                "transaction {}: completing from {other}",
                self.transactional_id
            ),
        };
        let mut t = self.transit(state);
        if self.current.client_transaction_version >= 2
            && self.current.next_producer_id != NO_PRODUCER_ID
        {
            t.producer_id = self.current.next_producer_id;
            t.producer_epoch = 0;
        }
        t.next_producer_id = NO_PRODUCER_ID;
        t.topic_partitions.clear();
        t.txn_last_update_timestamp = now;
        self.prepare_transition(t)
    }

    /// Kafka's `removePartition`: its marker is written.
    pub(super) fn remove_partition(&mut self, tp: &TopicPartition) {
        assert!(
            self.current.state.is_prepared(),
            "transaction {}: marker written in state {}",
            self.transactional_id,
            self.current.state
        );
        self.current.topic_partitions.remove(tp);
    }
}
