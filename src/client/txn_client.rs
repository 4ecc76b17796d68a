//! The transactional half of Kafka's client-side `TransactionManager`, sans-IO: the
//! state machine behind `initTransactions`, `beginTransaction`,
//! `sendOffsetsToTransaction`, `commitTransaction` and `abortTransaction`.
//!
//! It owns Kafka's client states ([`TxnClientState`]), the transaction coordinator and
//! the group coordinator it talks to, the partitions and offsets of the open
//! transaction and the transactional requests still to send. Like Kafka's `Sender`, the
//! producer asks it for at most one transactional request at a time
//! ([`TxnClient::next_request`]), in Kafka's priority order (`FindCoordinator`, then
//! `InitProducerId`, then `AddPartitionsToTxn` / `AddOffsetsToTxn` / `TxnOffsetCommit`,
//! then `EndTxn`), and hands every answer back ([`TxnClient::on_response`]). What the
//! application must hear comes out as [`TxnEvent`]s.
//!
//! Transaction versions (the cluster's `transaction.version`): below 2 the client adds
//! every partition with `AddPartitionsToTxn` before its first batch there goes out, and a
//! transaction keeps its producer epoch; with 2 (KIP-890 part 2) partition leaders add
//! the partitions themselves, and every `EndTxn` answer carries a bumped epoch that the
//! next transaction uses.

use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, BrokerId, CommittedOffset, CoordinatorType,
    EndTxnRequest, ErrorCode, FindCoordinatorRequest, InitProducerIdRequest, ProducerIdentity,
    Request, Response, TopicPartition, TxnOffsetCommitRequest,
};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// Kafka's `TransactionManager.ADD_PARTITIONS_RETRY_BACKOFF_MS`: the short retry after
/// `CONCURRENT_TRANSACTIONS` while the previous transaction completes.
const CONCURRENT_RETRY_BACKOFF_MS: Millis = 20;

/// Bound on partitions in one transaction.
const MAX_TXN_PARTITIONS: usize = 100_000;

/// Bound on events the application has not drained.
const MAX_EVENTS: usize = 1 << 16;

/// Kafka's `TransactionManager.State`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnClientState {
    /// Before `initTransactions`.
    Uninitialized,
    /// `initTransactions` (or the epoch bump after an abort) is under way.
    Initializing,
    /// Between transactions.
    Ready,
    /// `beginTransaction` was called.
    InTransaction,
    /// `commitTransaction` is under way.
    CommittingTransaction,
    /// `abortTransaction` is under way.
    AbortingTransaction,
    /// The transaction failed; only `abortTransaction` is allowed.
    AbortableError(String),
    /// The producer can do nothing more (`ProducerFencedException`, ...).
    FatalError(String),
}

/// Group metadata for `sendOffsetsToTransaction` (KIP-447): the consumer's generation,
/// member id and `group.instance.id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadata {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The consumer's generation (-1 without one).
    pub generation_id: i32,
    /// The consumer's member id.
    pub member_id: Arc<str>,
    /// The consumer's `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
}

/// What a transactional call ended with, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnEvent {
    /// `initTransactions` returned: the producer has its id and epoch.
    Initialized,
    /// `sendOffsetsToTransaction` returned (`Err`: the exception).
    OffsetsSent(Result<(), String>),
    /// `commitTransaction` (`commit`) or `abortTransaction` returned.
    Ended {
        /// Which one.
        commit: bool,
        /// How it ended.
        result: TxnResult,
    },
}

/// The end of `commitTransaction` / `abortTransaction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// Done as asked.
    Done,
    /// Failed; the transaction did not commit (`fatal`: the producer is unusable).
    Failed {
        /// Kafka's exception and error.
        error: String,
        /// Whether the producer is in a fatal state.
        fatal: bool,
    },
    /// Failed after an attempt whose answer was lost: the transaction may have
    /// committed.
    Unknown {
        /// Kafka's exception and error.
        error: String,
    },
}

/// A transactional request in flight (what its answer is about).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TxnRequestKind {
    /// `FindCoordinator` for the transaction coordinator.
    FindTxnCoordinator,
    /// `FindCoordinator` for the group coordinator of `sendOffsetsToTransaction`.
    FindGroupCoordinator,
    /// `InitProducerId`.
    InitProducerId,
    /// `AddPartitionsToTxn` of these partitions.
    AddPartitions(Vec<TopicPartition>),
    /// `AddOffsetsToTxn`.
    AddOffsets,
    /// `TxnOffsetCommit`.
    TxnOffsetCommit,
    /// `EndTxn`.
    EndTxn,
}

/// Where a transactional request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxnDestination {
    /// The least loaded broker (coordinator lookups).
    LeastLoaded,
    /// A coordinator.
    Broker(BrokerId),
}

/// Where `sendOffsetsToTransaction` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OffsetsStage {
    /// `AddOffsetsToTxn` is next.
    Adding,
    /// `TxnOffsetCommit` is next (to the group coordinator, once found).
    Committing,
    /// The group coordinator took the offsets (they commit with the transaction).
    Done,
}

/// The transaction's `sendOffsetsToTransaction`.
#[derive(Clone, Debug)]
struct PendingOffsets {
    metadata: GroupMetadata,
    offsets: Vec<CommittedOffset>,
    stage: OffsetsStage,
    group_coordinator: Option<BrokerId>,
}

/// `commitTransaction` / `abortTransaction` in progress.
#[derive(Clone, Copy, Debug)]
struct Ending {
    commit: bool,
    /// An `EndTxn` attempt's answer was lost: the coordinator may have applied it.
    maybe_applied: bool,
}

/// What the producer must do after an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TxnEffect {
    /// Use this producer id and epoch from now on (its sequences restart).
    SetIdentity(ProducerIdentity),
    /// The transaction can no longer commit: fail the batches still queued.
    AbortQueued(String),
}

/// The transactional client state of one producer (`transactional.id`).
#[derive(Debug)]
pub(crate) struct TxnClient {
    transactional_id: Arc<str>,
    timeout_ms: u64,
    version2: bool,
    retry_backoff_ms: Millis,
    state: TxnClientState,
    coordinator: Option<BrokerId>,
    in_flight: Option<TxnRequestKind>,
    /// No transactional request before this time (backoff after a retriable error).
    retry_at: Millis,
    /// The next `InitProducerId` bumps the current epoch (KIP-360 after an abort).
    bump_required: bool,
    /// `InitProducerId` is wanted (by `initTransactions` or an epoch bump).
    init_wanted: bool,
    /// Partitions the coordinator has in the transaction.
    partitions: BTreeSet<TopicPartition>,
    /// Partitions written to but not yet added (transaction version < 2).
    new_partitions: BTreeSet<TopicPartition>,
    /// Every partition written to in this transaction.
    written: BTreeSet<TopicPartition>,
    offsets: Option<PendingOffsets>,
    /// Whether the coordinator knows of the transaction (something was added, or with
    /// version 2 a batch was sent): if not, it ends locally.
    started: bool,
    ending: Option<Ending>,
    events: VecDeque<TxnEvent>,
}

impl TxnClient {
    /// The client of `transactional_id`, asking for `timeout_ms` transactions, on a
    /// cluster with `transaction.version` >= 2 when `version2`.
    pub(crate) fn new(
        transactional_id: Arc<str>,
        timeout_ms: u64,
        version2: bool,
        retry_backoff_ms: Millis,
    ) -> Self {
        TxnClient {
            transactional_id,
            timeout_ms,
            version2,
            retry_backoff_ms,
            state: TxnClientState::Uninitialized,
            coordinator: None,
            in_flight: None,
            retry_at: 0,
            bump_required: false,
            init_wanted: false,
            partitions: BTreeSet::new(),
            new_partitions: BTreeSet::new(),
            written: BTreeSet::new(),
            offsets: None,
            started: false,
            ending: None,
            events: VecDeque::new(),
        }
    }

    /// Kafka's state.
    pub(crate) fn state(&self) -> &TxnClientState {
        &self.state
    }

    /// The `transactional.id`.
    pub(crate) fn transactional_id(&self) -> &Arc<str> {
        &self.transactional_id
    }

    /// The partitions written to in the open transaction.
    pub(crate) fn written(&self) -> impl Iterator<Item = &TopicPartition> {
        self.written.iter()
    }

    /// The group and offsets of the open transaction's `sendOffsetsToTransaction`.
    pub(crate) fn offsets(&self) -> Option<(&GroupMetadata, &[CommittedOffset])> {
        self.offsets
            .as_ref()
            .map(|o| (&o.metadata, o.offsets.as_slice()))
    }

    /// Events for the application, oldest first.
    pub(crate) fn drain_events(&mut self) -> Vec<TxnEvent> {
        self.events.drain(..).collect()
    }

    fn event(&mut self, event: TxnEvent) {
        assert!(
            self.events.len() < MAX_EVENTS,
            "too many transaction events"
        );
        self.events.push_back(event);
    }

    fn transition(&mut self, to: TxnClientState) {
        use TxnClientState::*;
        let ok = match (&self.state, &to) {
            (FatalError(_), _) => false,
            (_, FatalError(_)) => true,
            (Uninitialized | Ready, Initializing) => true,
            (Initializing, Ready) => true,
            (Ready, InTransaction) => true,
            (InTransaction, CommittingTransaction | AbortingTransaction) => true,
            (InTransaction | CommittingTransaction, AbortableError(_)) => true,
            (AbortableError(_), AbortableError(_) | AbortingTransaction) => true,
            (CommittingTransaction | AbortingTransaction, Ready | Initializing) => true,
            _ => false,
        };
        assert!(
            ok,
            "{}: illegal client transaction state change {:?} -> {to:?}",
            self.transactional_id, self.state
        );
        self.state = to;
    }

    /// `initTransactions`.
    pub(crate) fn init_transactions(&mut self) {
        assert_eq!(
            self.state,
            TxnClientState::Uninitialized,
            "initTransactions is called once"
        );
        self.transition(TxnClientState::Initializing);
        self.init_wanted = true;
    }

    /// `beginTransaction`.
    pub(crate) fn begin(&mut self) {
        assert_eq!(
            self.state,
            TxnClientState::Ready,
            "beginTransaction outside the Ready state"
        );
        self.transition(TxnClientState::InTransaction);
        self.partitions.clear();
        self.new_partitions.clear();
        self.written.clear();
        self.offsets = None;
        self.started = false;
    }

    /// Kafka's `maybeAddPartition`: a record of the open transaction went to `tp`.
    pub(crate) fn add_partition(&mut self, tp: &TopicPartition) {
        assert!(
            self.written.len() < MAX_TXN_PARTITIONS,
            "too many partitions in one transaction"
        );
        if self.written.insert(tp.clone()) && !self.version2 {
            self.new_partitions.insert(tp.clone());
        }
    }

    /// Whether a batch of `tp` may be sent now: inside a transaction that can still
    /// commit, and (version < 2) once the coordinator added the partition.
    pub(crate) fn can_send(&self, tp: &TopicPartition) -> bool {
        self.can_commit() && (self.version2 || self.partitions.contains(tp))
    }

    /// Whether the open transaction may still commit (queued batches may go out); in any
    /// other state they are failed.
    pub(crate) fn can_commit(&self) -> bool {
        matches!(
            self.state,
            TxnClientState::InTransaction | TxnClientState::CommittingTransaction
        )
    }

    /// A produce request of the open transaction went out (with version 2 the leader
    /// adds the partition: the coordinator now knows the transaction).
    pub(crate) fn on_produce_sent(&mut self) {
        if self.version2 {
            self.started = true;
        }
    }

    /// A batch of the transaction failed for good: it cannot commit any more.
    pub(crate) fn on_batch_failed(&mut self, error: &str) -> Option<TxnEffect> {
        match self.state {
            TxnClientState::InTransaction | TxnClientState::CommittingTransaction => {
                let message = format!("KafkaException: a batch of the transaction failed: {error}");
                self.abortable(message)
            }
            _ => None,
        }
    }

    /// The idempotent sequences need a new epoch (KIP-360): a transactional producer
    /// cannot bump it locally, so the transaction must abort and the next
    /// `InitProducerId` bumps it.
    pub(crate) fn on_epoch_bump_needed(&mut self) -> Option<TxnEffect> {
        self.bump_required = true;
        match self.state {
            TxnClientState::InTransaction | TxnClientState::CommittingTransaction => self
                .abortable(
                    "OutOfOrderSequenceException: the producer's sequences need a new epoch"
                        .to_string(),
                ),
            _ => None,
        }
    }

    fn abortable(&mut self, error: String) -> Option<TxnEffect> {
        if matches!(
            self.state,
            TxnClientState::AbortingTransaction | TxnClientState::FatalError(_)
        ) {
            // The transaction is being aborted anyway.
            return None;
        }
        if let TxnClientState::AbortableError(_) = self.state {
            return None;
        }
        let was_committing = self.state == TxnClientState::CommittingTransaction;
        self.new_partitions.clear();
        self.transition(TxnClientState::AbortableError(error.clone()));
        if was_committing {
            // commitTransaction fails with the error; the application must abort.
            self.ending = None;
            self.event(TxnEvent::Ended {
                commit: true,
                result: TxnResult::Failed {
                    error: error.clone(),
                    fatal: false,
                },
            });
        }
        if self
            .offsets
            .as_ref()
            .is_some_and(|o| o.stage != OffsetsStage::Done)
        {
            self.offsets = None;
            self.event(TxnEvent::OffsetsSent(Err(error.clone())));
        }
        Some(TxnEffect::AbortQueued(error))
    }

    /// Kafka's `hasOngoingTransaction() && !isCompleting()`: a transaction that
    /// `KafkaProducer.close` aborts (begun, neither committing nor aborting yet).
    pub(crate) fn abortable_on_close(&self) -> bool {
        matches!(
            self.state,
            TxnClientState::InTransaction | TxnClientState::AbortableError(_)
        )
    }

    /// Whether nothing transactional is under way (Kafka's
    /// `!hasPendingTransactionalRequests()` between transactions): a closing producer
    /// stops here.
    pub(crate) fn settled(&self) -> bool {
        self.in_flight.is_none()
            && matches!(
                self.state,
                TxnClientState::Uninitialized
                    | TxnClientState::Ready
                    | TxnClientState::FatalError(_)
            )
    }

    /// Tests: a fatal error as a `ProducerFenced` answer would cause.
    #[cfg(test)]
    pub(crate) fn fail_fatally_for_test(&mut self, error: &str) {
        self.fatal(error.to_string());
    }

    fn fatal(&mut self, error: String) -> Option<TxnEffect> {
        if let Some(ending) = self.ending.take() {
            let result = if ending.maybe_applied {
                TxnResult::Unknown {
                    error: error.clone(),
                }
            } else {
                TxnResult::Failed {
                    error: error.clone(),
                    fatal: true,
                }
            };
            self.event(TxnEvent::Ended {
                commit: ending.commit,
                result,
            });
        }
        if self
            .offsets
            .take()
            .is_some_and(|o| o.stage != OffsetsStage::Done)
        {
            self.event(TxnEvent::OffsetsSent(Err(error.clone())));
        }
        if self.state == TxnClientState::Initializing {
            self.init_wanted = false;
        }
        self.transition(TxnClientState::FatalError(error.clone()));
        Some(TxnEffect::AbortQueued(error))
    }

    /// `sendOffsetsToTransaction`.
    pub(crate) fn send_offsets(&mut self, metadata: GroupMetadata, offsets: Vec<CommittedOffset>) {
        assert_eq!(
            self.state,
            TxnClientState::InTransaction,
            "sendOffsetsToTransaction outside a transaction"
        );
        assert!(
            self.offsets.is_none(),
            "one sendOffsetsToTransaction at a time"
        );
        self.offsets = Some(PendingOffsets {
            metadata,
            offsets,
            stage: OffsetsStage::Adding,
            group_coordinator: None,
        });
    }

    /// `commitTransaction` (`commit`) or `abortTransaction`. An abortable error fails a
    /// commit at once; an abort of it goes ahead.
    pub(crate) fn end(&mut self, commit: bool) -> Option<TxnEffect> {
        match (&self.state, commit) {
            (TxnClientState::AbortableError(error), true) => {
                let error = error.clone();
                self.event(TxnEvent::Ended {
                    commit,
                    result: TxnResult::Failed {
                        error,
                        fatal: false,
                    },
                });
                return None;
            }
            (TxnClientState::FatalError(error), _) => {
                let error = error.clone();
                self.event(TxnEvent::Ended {
                    commit,
                    result: TxnResult::Failed { error, fatal: true },
                });
                return None;
            }
            _ => {}
        }
        self.transition(if commit {
            TxnClientState::CommittingTransaction
        } else {
            TxnClientState::AbortingTransaction
        });
        self.ending = Some(Ending {
            commit,
            maybe_applied: false,
        });
        if !commit {
            // Kafka's `abortUndrainedBatches`; pending offsets are dropped too.
            if self
                .offsets
                .take()
                .is_some_and(|o| o.stage != OffsetsStage::Done)
            {
                self.event(TxnEvent::OffsetsSent(Err(
                    "TransactionAbortedException: the transaction was aborted".into(),
                )));
            }
            self.new_partitions.clear();
            return Some(TxnEffect::AbortQueued(
                "TransactionAbortedException: Failing batch since transaction was aborted".into(),
            ));
        }
        None
    }

    /// The next transactional request, if one is due and none is in flight. `identity`
    /// is the producer's current id and epoch; `flushed` says every batch of the
    /// transaction is done (`EndTxn` waits for that).
    pub(crate) fn next_request(
        &mut self,
        now: Millis,
        identity: ProducerIdentity,
        flushed: bool,
    ) -> Option<(TxnDestination, Request, TxnRequestKind)> {
        if self.in_flight.is_some() || now < self.retry_at {
            return None;
        }
        if matches!(self.state, TxnClientState::FatalError(_)) {
            return None;
        }
        let needs_coordinator = self.init_wanted
            || !self.new_partitions.is_empty()
            || self
                .offsets
                .as_ref()
                .is_some_and(|o| o.stage == OffsetsStage::Adding)
            || (self.ending.is_some() && flushed && self.started);
        let Some(coordinator) = self.coordinator else {
            if !needs_coordinator {
                return None;
            }
            let request = Request::FindCoordinator(FindCoordinatorRequest {
                key: self.transactional_id.clone(),
                key_type: CoordinatorType::Transaction,
            });
            return self.issue(
                TxnDestination::LeastLoaded,
                request,
                TxnRequestKind::FindTxnCoordinator,
            );
        };
        let to = TxnDestination::Broker(coordinator);
        if self.init_wanted {
            let bump = self.bump_required && identity != ProducerIdentity::NONE;
            let request = Request::InitProducerId(InitProducerIdRequest {
                transactional_id: Some(self.transactional_id.clone()),
                transaction_timeout_ms: self.timeout_ms,
                producer_id: if bump { identity.producer_id } else { -1 },
                producer_epoch: if bump { identity.producer_epoch } else { -1 },
            });
            return self.issue(to, request, TxnRequestKind::InitProducerId);
        }
        if !self.new_partitions.is_empty() {
            let partitions: Vec<TopicPartition> = self.new_partitions.iter().cloned().collect();
            let request = Request::AddPartitionsToTxn(AddPartitionsToTxnRequest {
                transactional_id: self.transactional_id.clone(),
                producer_id: identity.producer_id,
                producer_epoch: identity.producer_epoch,
                partitions: partitions.clone(),
                verify_only: false,
            });
            self.started = true;
            return self.issue(to, request, TxnRequestKind::AddPartitions(partitions));
        }
        if let Some(o) = self
            .offsets
            .as_ref()
            .filter(|o| o.stage != OffsetsStage::Done)
        {
            if o.stage == OffsetsStage::Adding {
                let request = Request::AddOffsetsToTxn(AddOffsetsToTxnRequest {
                    transactional_id: self.transactional_id.clone(),
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                    group_id: o.metadata.group_id.clone(),
                });
                self.started = true;
                return self.issue(to, request, TxnRequestKind::AddOffsets);
            }
            let Some(group_coordinator) = o.group_coordinator else {
                let request = Request::FindCoordinator(FindCoordinatorRequest {
                    key: o.metadata.group_id.clone(),
                    key_type: CoordinatorType::Group,
                });
                return self.issue(
                    TxnDestination::LeastLoaded,
                    request,
                    TxnRequestKind::FindGroupCoordinator,
                );
            };
            let request = Request::TxnOffsetCommit(TxnOffsetCommitRequest {
                transactional_id: self.transactional_id.clone(),
                group_id: o.metadata.group_id.clone(),
                producer_id: identity.producer_id,
                producer_epoch: identity.producer_epoch,
                generation_id: o.metadata.generation_id,
                member_id: o.metadata.member_id.clone(),
                group_instance_id: o.metadata.group_instance_id.clone(),
                offsets: o.offsets.clone(),
            });
            return self.issue(
                TxnDestination::Broker(group_coordinator),
                request,
                TxnRequestKind::TxnOffsetCommit,
            );
        }
        let ending = self.ending?;
        if !flushed {
            return None;
        }
        if !self.started {
            // Nothing reached the coordinator: the transaction ends locally.
            self.finish_ending(ProducerIdentity::NONE);
            return None;
        }
        let request = Request::EndTxn(EndTxnRequest {
            transactional_id: self.transactional_id.clone(),
            producer_id: identity.producer_id,
            producer_epoch: identity.producer_epoch,
            committed: ending.commit,
        });
        self.issue(to, request, TxnRequestKind::EndTxn)
    }

    /// When [`TxnClient::next_request`] has something to send (`None` while a request
    /// is in flight, or nothing is pending); `flushed` as for `next_request`.
    pub(crate) fn due_at(&self, flushed: bool) -> Option<Millis> {
        if self.in_flight.is_some() || matches!(self.state, TxnClientState::FatalError(_)) {
            return None;
        }
        let pending = self.init_wanted
            || !self.new_partitions.is_empty()
            || self
                .offsets
                .as_ref()
                .is_some_and(|o| o.stage != OffsetsStage::Done)
            || (self.ending.is_some() && flushed);
        pending.then_some(self.retry_at)
    }

    fn issue(
        &mut self,
        to: TxnDestination,
        request: Request,
        kind: TxnRequestKind,
    ) -> Option<(TxnDestination, Request, TxnRequestKind)> {
        self.in_flight = Some(kind.clone());
        Some((to, request, kind))
    }

    /// The transaction ended (an `EndTxn` answer, or locally when nothing was sent).
    /// `next` is the identity an `EndTxn` of version 2 handed back.
    fn finish_ending(&mut self, next: ProducerIdentity) -> Option<TxnEffect> {
        let ending = self.ending.take().expect("a transaction is ending");
        self.event(TxnEvent::Ended {
            commit: ending.commit,
            result: TxnResult::Done,
        });
        // `written` and `offsets` stay for the history until the next transaction.
        self.partitions.clear();
        if self.bump_required {
            self.transition(TxnClientState::Initializing);
            self.init_wanted = true;
        } else {
            self.transition(TxnClientState::Ready);
        }
        (next != ProducerIdentity::NONE).then_some(TxnEffect::SetIdentity(next))
    }

    fn retry(&mut self, now: Millis, backoff: Millis) {
        self.retry_at = now + backoff;
    }

    /// The answer to the request in flight, or `None` when it was lost (timeout,
    /// disconnect).
    pub(crate) fn on_response(
        &mut self,
        now: Millis,
        kind: TxnRequestKind,
        response: Option<Response>,
    ) -> Vec<TxnEffect> {
        assert_eq!(
            self.in_flight.take().as_ref(),
            Some(&kind),
            "an answer for a transactional request not in flight"
        );
        let backoff = self.retry_backoff_ms;
        let mut effects = Vec::new();
        let Some(response) = response else {
            // Lost: the coordinator is looked up again and the request retried.
            match kind {
                TxnRequestKind::FindGroupCoordinator | TxnRequestKind::TxnOffsetCommit => {
                    if let Some(o) = self.offsets.as_mut() {
                        o.group_coordinator = None;
                    }
                }
                TxnRequestKind::EndTxn => {
                    if let Some(e) = self.ending.as_mut() {
                        e.maybe_applied = true;
                    }
                    self.coordinator = None;
                }
                _ => self.coordinator = None,
            }
            self.retry(now, backoff);
            return effects;
        };
        match (kind, response) {
            (TxnRequestKind::FindTxnCoordinator, Response::FindCoordinator(r)) => {
                match (r.error, r.node_id) {
                    (ErrorCode::None, Some(node)) => self.coordinator = Some(node),
                    _ => self.retry(now, backoff),
                }
            }
            (TxnRequestKind::FindGroupCoordinator, Response::FindCoordinator(r)) => {
                match (r.error, r.node_id, self.offsets.as_mut()) {
                    (ErrorCode::None, Some(node), Some(o)) => o.group_coordinator = Some(node),
                    _ => self.retry(now, backoff),
                }
            }
            (TxnRequestKind::InitProducerId, Response::InitProducerId(r)) => match r.error {
                ErrorCode::None => {
                    assert!(r.producer_id >= 0 && r.producer_epoch >= 0);
                    self.init_wanted = false;
                    self.bump_required = false;
                    self.transition(TxnClientState::Ready);
                    effects.push(TxnEffect::SetIdentity(ProducerIdentity {
                        producer_id: r.producer_id,
                        producer_epoch: r.producer_epoch,
                    }));
                    self.event(TxnEvent::Initialized);
                }
                e => effects.extend(self.coordinator_error(now, e, "InitProducerId")),
            },
            (TxnRequestKind::AddPartitions(partitions), Response::AddPartitionsToTxn(r)) => {
                let error = ErrorCode::first_error(&r.results);
                match error {
                    ErrorCode::None => {
                        for tp in partitions {
                            self.new_partitions.remove(&tp);
                            self.partitions.insert(tp);
                        }
                    }
                    ErrorCode::ConcurrentTransactions => {
                        self.retry(now, CONCURRENT_RETRY_BACKOFF_MS)
                    }
                    e => effects.extend(self.coordinator_error(now, e, "AddPartitionsToTxn")),
                }
            }
            (TxnRequestKind::AddOffsets, Response::AddOffsetsToTxn(r)) => match r.error {
                ErrorCode::None => {
                    if let Some(o) = self.offsets.as_mut() {
                        o.stage = OffsetsStage::Committing;
                    }
                }
                e => effects.extend(self.coordinator_error(now, e, "AddOffsetsToTxn")),
            },
            (TxnRequestKind::TxnOffsetCommit, Response::TxnOffsetCommit(r)) => {
                let error = ErrorCode::first_error(&r.partitions);
                effects.extend(self.on_txn_offset_commit(now, error));
            }
            (TxnRequestKind::EndTxn, Response::EndTxn(r)) => match r.error {
                ErrorCode::None => {
                    let next = ProducerIdentity {
                        producer_id: r.producer_id,
                        producer_epoch: r.producer_epoch,
                    };
                    let next = if self.version2 && r.producer_id >= 0 {
                        next
                    } else {
                        ProducerIdentity::NONE
                    };
                    effects.extend(self.finish_ending(next));
                }
                e => effects.extend(self.coordinator_error(now, e, "EndTxn")),
            },
            (kind, response) => panic!(
                "{}: answer {response:?} does not match {kind:?}",
                self.transactional_id
            ),
        }
        effects
    }

    /// The common error handling of requests to the transaction coordinator.
    fn coordinator_error(&mut self, now: Millis, error: ErrorCode, api: &str) -> Option<TxnEffect> {
        match error {
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.coordinator = None;
                self.retry(now, self.retry_backoff_ms);
                None
            }
            ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::ConcurrentTransactions
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::RequestTimedOut => {
                self.retry(now, self.retry_backoff_ms);
                None
            }
            ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch => self.fatal(format!(
                "ProducerFencedException: {api}: {error}: there is a newer producer with the \
                 same transactional.id, or the transaction was expired by the coordinator"
            )),
            ErrorCode::InvalidTxnState if api == "EndTxn" || api == "InitProducerId" => {
                self.fatal(format!("KafkaException: {api}: {error}"))
            }
            e if api == "InitProducerId" || api == "EndTxn" => {
                self.fatal(format!("KafkaException: {api}: {e}"))
            }
            e => self.abortable(format!("KafkaException: {api}: {e}")),
        }
    }

    /// `TxnOffsetCommitHandler`.
    fn on_txn_offset_commit(&mut self, now: Millis, error: ErrorCode) -> Option<TxnEffect> {
        match error {
            ErrorCode::None => {
                if let Some(o) = self.offsets.as_mut() {
                    o.stage = OffsetsStage::Done;
                }
                self.event(TxnEvent::OffsetsSent(Ok(())));
                None
            }
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::RequestTimedOut => {
                if let Some(o) = self.offsets.as_mut() {
                    o.group_coordinator = None;
                }
                self.retry(now, self.retry_backoff_ms);
                None
            }
            ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::ConcurrentTransactions => {
                self.retry(now, self.retry_backoff_ms);
                None
            }
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::FencedInstanceId => self.abortable(format!(
                "CommitFailedException: TxnOffsetCommit: {error}: the group has already \
                 rebalanced and assigned the partitions to another member"
            )),
            ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch => {
                self.fatal(format!("ProducerFencedException: TxnOffsetCommit: {error}"))
            }
            e => self.abortable(format!("KafkaException: TxnOffsetCommit: {e}")),
        }
    }
}

#[cfg(test)]
mod tests;
