//! Kafka's transaction coordinator (`TransactionCoordinator` + `TransactionStateManager`
//! + `TransactionMarkerChannelManager`), sans-IO.
//!
//! A broker runs one [`TxnCoordinator`] for every `transactional.id` whose
//! `__transaction_state` partition it leads ([`partition_for_transactional_id`]: Kafka's
//! `Utils.abs(transactionalId.hashCode) % partitions`). Each transactional id has a
//! [`TransactionState`] and the metadata Kafka keeps for it (producer id, previous and
//! next producer id, producer epoch and last epoch, timeout, partitions, start and
//! last-update times); a transition is first *prepared* (it becomes the pending state:
//! every other request gets `CONCURRENT_TRANSACTIONS`), written to `__transaction_state`,
//! and *completed* once the write is replicated. Transitions outside Kafka's table of
//! valid previous states ([`TransactionState::valid_previous_states`]) are bugs: they
//! panic with both states.
//!
//! The coordinator does no IO: each call takes the time and a request and returns a
//! [`TxnCoordinatorOutput`]: responses to send now (addressed by the [`ReplyTo`] the host
//! gave with the request), batches to append to `__transaction_state` (`acks=all`; the
//! host calls [`TxnCoordinator::on_append_complete`] when the high watermark passes them
//! or the append fails), and the completed state transitions for the history. Producer
//! ids come from the host ([`ProducerIdSource`]: the broker's `RPCProducerIdManager`).
//! Markers are pulled by the host: [`TxnCoordinator::markers_to_send`] builds one
//! `WriteTxnMarkers` request per partition leader (at most one in flight per leader, as
//! Kafka's marker channel, whose network client allows one request per connection; a
//! partition that failed waits [`MARKER_RETRY_BACKOFF_MS`]), and
//! [`TxnCoordinator::on_markers_response`] takes each partition's result.
//!
//! The APIs follow Kafka 4.x:
//! - `InitProducerId` (transactional): a new transactional id gets a new producer id at
//!   epoch 0; a known one a bumped epoch (a new producer id when the epoch is exhausted,
//!   `>= Short.MAX_VALUE - 1`). An `Ongoing` transaction is fenced first: the epoch is
//!   bumped in memory (`PrepareEpochFence`), the transaction aborted with that epoch, and
//!   the caller answered `CONCURRENT_TRANSACTIONS` so that it retries. KIP-360: a producer
//!   that sends its current id and epoch gets that epoch bumped; the previous epoch (a
//!   retried bump) gets the current one back; anything older is `PRODUCER_FENCED`.
//! - `AddPartitionsToTxn` / `AddOffsetsToTxn` (the group's `__consumer_offsets`
//!   partition): `Empty`/`Complete*` or `Ongoing` -> `Ongoing`, answered once replicated
//!   (at once when every partition is already in). `verify_only` (a partition leader's
//!   KIP-890 check) answers per partition and writes nothing.
//! - `EndTxn`: `Ongoing` -> `PrepareCommit`/`PrepareAbort`, answered once that is
//!   replicated; then markers go to every partition, and when all are written
//!   `CompleteCommit`/`CompleteAbort` is. With `transaction.version` 2 (KIP-890 part 2)
//!   `EndTxn` bumps the epoch and answers the new producer id and epoch, and a retried
//!   `EndTxn` carrying the previous epoch is answered `NONE` (Kafka's table in
//!   `TransactionCoordinator.endTransaction`).
//! - Transactions open longer than their `transaction.timeout.ms` are aborted, epoch
//!   fenced, every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
//!
//! Differences from Kafka: the fence is a state of its own here until its `PrepareAbort`
//! is written (Kafka keeps the state `Ongoing` and the fence as a pending state only), so
//! that the history shows it; when that write fails the transaction goes back to
//! `Ongoing` with the bumped epoch, as Kafka's `hasFailedEpochFence`. `verify_only`
//! answers `INVALID_TXN_STATE` for a partition not in the transaction (Kafka 3.6; Kafka
//! 3.8+ answers `TRANSACTION_ABORTABLE`, not in [`ErrorCode`]). Transactional ids never
//! expire (no `transactional.id.expiration.ms`), so `Dead` is never entered and no
//! tombstone is written. A retried KIP-360 epoch bump is answered even when the epoch is
//! exhausted (Kafka throws there). A `Complete*` record whose append failed is written
//! again after [`MARKER_RETRY_BACKOFF_MS`] whatever the error (Kafka retries only
//! `COORDINATOR_NOT_AVAILABLE` and leaves the rest to the next load, but here a broker
//! can refuse appends while it is fenced and keep its leadership, with no load to
//! follow).
//!
//! # Record format of `__transaction_state`
//!
//! Kafka's own schemas (big-endian; `string` = i16 length + UTF-8), one record per
//! transition in an ordinary record batch v2 with producer id -1:
//!
//! - key `TransactionLogKey` v0: `(i16 0, string transactional_id)`.
//! - value `TransactionLogValue` v0 (written with `transaction.version` 0): `(i16 0, i64
//!   producer_id, i16 producer_epoch, i32 transaction_timeout_ms, i8 transaction_status,
//!   transaction_partitions, i64 last_update_timestamp, i64 start_timestamp)` where the
//!   partitions are `i32 count` (-1: null, for `Empty`) of `(string topic, i32 count, i32
//!   partition...)`, one entry per topic, topics in order.
//! - value v1 (flexible, written with `transaction.version` 1 and 2): the same fields in
//!   the same order, but the partitions are a compact nullable array (unsigned varint
//!   count + 1, 0 for null) of `(compact string topic (unsigned varint length + 1), compact
//!   array of i32, empty tagged fields (0))`, and the value ends with its tagged fields:
//!   an unsigned varint count, then per field `(unsigned varint tag, unsigned varint size,
//!   data)`: tag 0 previous producer id (i64), tag 1 next producer id (i64), tag 2 client
//!   transaction version (i16), each written only when it is not its default (-1, -1, 0).
//!   An `Ongoing` record of producer 0, epoch 0, timeout 60000, `[txtest-0]` is 48 bytes:
//!   `0001 0000000000000000 0000 0000ea60 01 02 07 747874657374 02 00000000 00
//!   0000019e7b4b367a 0000019e7b4b367a 00` (a test holds it to this dump of Kafka 4.0).
//!
//! Status bytes: `Empty` 0, `Ongoing` 1, `PrepareCommit` 2, `PrepareAbort` 3,
//! `CompleteCommit` 4, `CompleteAbort` 5 (`Dead` 6 and `PrepareEpochFence` 7 are never
//! written). Loading a partition replays its log in offset order, the last value per
//! transactional id wins (the last producer epoch is not in the record: it loads as -1,
//! as in Kafka); `Ongoing` transactions keep running (their timeout still counts from
//! their start), and prepared ones are completed: markers are sent again, then the
//! `Complete*` record is written.
//!
//! # What the host must do
//!
//! Create `__transaction_state` ([`transaction_state_topic_spec`]) with
//! `min.insync.replicas` = `transaction.state.log.min.isr` for its appends; call
//! [`TxnCoordinator::load`] when it becomes the leader of one of its partitions (with the
//! new leader epoch: the coordinator epoch of the markers) and [`TxnCoordinator::unload`]
//! when it stops; route the requests [`transactional_id`] names to
//! [`TxnCoordinator::handle`]; after every call into the coordinator and at
//! [`TxnCoordinator::next_timer`], call [`TxnCoordinator::on_timer`] (when due) and
//! [`TxnCoordinator::markers_to_send`], send each request to its broker and give every
//! answer, timeout or disconnection to [`TxnCoordinator::on_markers_response`].

use crate::bugs::{Bug, Bugs};
use crate::coordinator::group::{
    encode_batch, partition_for_group, put_i16, put_i32, put_i64, put_partitions, put_str,
    put_timeout, topic_runs, CoordinatorAppend, Reader, ReplyTo, OFFSETS_TOPIC,
};
use crate::kafka::config::BrokerConfig;
use crate::kafka::metadata::TopicSpec;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::{RecordBatch, NO_PRODUCER_ID};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The internal topic that stores transaction states.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// How long a marker that failed waits before it is sent again (Kafka's
/// `retry.backoff.ms` default; Kafka's marker channel re-queues at once and is paced by
/// its network client).
pub const MARKER_RETRY_BACKOFF_MS: u64 = 100;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
const NO_PRODUCER_EPOCH: i16 = -1;
/// Bound on transactional ids per coordinator.
const MAX_TRANSACTIONS: usize = 100_000;
/// Bound on partitions per transaction.
const MAX_PARTITIONS_PER_TXN: usize = 10_000;
/// Bound on appends waiting for the high watermark.
const MAX_PENDING_APPENDS: usize = 100_000;
/// Bound on `WriteTxnMarkers` requests in flight (one per broker).
const MAX_MARKER_REQUESTS: usize = 10_000;

/// Kafka's `partitionFor(transactionalId)`: the same formula as for groups.
pub fn partition_for_transactional_id(transactional_id: &str, num_partitions: u32) -> u32 {
    partition_for_group(transactional_id, num_partitions)
}

/// The `__transaction_state` topic the host creates for a cluster of `brokers` brokers.
pub fn transaction_state_topic_spec(config: &BrokerConfig, brokers: usize) -> TopicSpec {
    TopicSpec {
        name: Arc::from(TRANSACTION_STATE_TOPIC),
        partitions: config.transaction_state_log_num_partitions,
        replication_factor: config
            .transaction_state_log_replication_factor
            .min(u32::try_from(brokers).unwrap_or(u32::MAX)),
        // `TransactionStateManager.transactionTopicConfigs`: the topic's
        // `min.insync.replicas` is `transaction.state.log.min.isr`.
        config: crate::kafka::config::TopicConfig {
            min_insync_replicas: Some(config.transaction_state_log_min_isr),
            unclean_leader_election_enable: None,
        },
    }
}

/// The transactional id a transaction coordinator request is about (`None` for other
/// requests, the idempotent `InitProducerId` without a `transactional.id` included).
pub fn transactional_id(request: &Request) -> Option<&Arc<str>> {
    match request {
        Request::InitProducerId(r) => r.transactional_id.as_ref(),
        Request::AddPartitionsToTxn(r) => Some(&r.transactional_id),
        Request::AddOffsetsToTxn(r) => Some(&r.transactional_id),
        Request::EndTxn(r) => Some(&r.transactional_id),
        _ => None,
    }
}

/// The answer `error` to a transaction coordinator request (`None` for other requests).
pub fn error_response(request: &Request, error: ErrorCode) -> Option<Response> {
    transactional_id(request)?;
    Some(match request {
        Request::InitProducerId(_) => init_error(error),
        Request::AddPartitionsToTxn(r) => add_partitions_response(&r.partitions, error),
        Request::AddOffsetsToTxn(_) => Response::AddOffsetsToTxn(AddOffsetsToTxnResponse { error }),
        Request::EndTxn(_) => end_txn_response(error, NO_PRODUCER_ID, NO_PRODUCER_EPOCH),
        _ => unreachable!("transactional_id names only coordinator requests"),
    })
}

fn init_error(error: ErrorCode) -> Response {
    Response::InitProducerId(InitProducerIdResponse {
        error,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
    })
}

fn add_partitions_response(partitions: &[TopicPartition], error: ErrorCode) -> Response {
    Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
        results: partitions.iter().map(|tp| (tp.clone(), error)).collect(),
    })
}

fn end_txn_response(error: ErrorCode, producer_id: i64, producer_epoch: i16) -> Response {
    Response::EndTxn(EndTxnResponse {
        error,
        producer_id,
        producer_epoch,
    })
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: no client may use `Short.MAX_VALUE`,
/// so that the coordinator can always fence.
fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Kafka's mapping of a failed `__transaction_state` append
/// (`TransactionStateManager.appendTransactionToLog`).
fn txn_log_append_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        other => other,
    }
}

/// Where the producer ids of new transactional ids (and of exhausted epochs) come from:
/// the host's `RPCProducerIdManager`.
pub trait ProducerIdSource {
    /// The next producer id, or `None` while none is at hand (the request is then
    /// answered `COORDINATOR_LOAD_IN_PROGRESS`, which clients retry).
    fn next_producer_id(&mut self) -> Option<i64>;
}

impl<F: FnMut() -> Option<i64>> ProducerIdSource for F {
    fn next_producer_id(&mut self) -> Option<i64> {
        self()
    }
}

// ---------------------------------------------------------------- states

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

    fn is_prepared(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }

    fn is_complete(self) -> bool {
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

/// A transition the coordinator completed (for the history's `TxnState`): written and
/// replicated, or the in-memory `PrepareEpochFence` (and its undoing when the abort that
/// follows could not be written). Transitions that change neither the state nor the
/// producer id and epoch (partitions added to an `Ongoing` transaction) are not listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnTransition {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// The producer id after the transition.
    pub producer_id: i64,
    /// The producer epoch after the transition.
    pub producer_epoch: i16,
    /// The state left.
    pub from: TransactionState,
    /// The state entered.
    pub to: TransactionState,
}

/// A transactional id as the end-of-run snapshot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnSummary {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// Its `__transaction_state` partition.
    pub partition: u32,
    /// Its state.
    pub state: TransactionState,
    /// The transition written but not yet replicated (or waiting for markers).
    pub pending_state: Option<TransactionState>,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer epoch.
    pub producer_epoch: i16,
    /// The partitions in the transaction (when prepared: those still without a marker).
    pub partitions: Vec<TopicPartition>,
    /// When the transaction started (-1: none).
    pub txn_start_timestamp: i64,
}

/// What the coordinator asks of its broker after one call.
#[derive(Debug, Default)]
pub struct TxnCoordinatorOutput {
    /// Answers to send now, in order.
    pub responses: Vec<(ReplyTo, Response)>,
    /// Batches to append to `__transaction_state` as leader (`acks=all`), in order.
    pub appends: Vec<CoordinatorAppend>,
    /// Transitions completed, in order, for the history.
    pub transitions: Vec<TxnTransition>,
}

impl TxnCoordinatorOutput {
    fn respond(&mut self, to: ReplyTo, response: Response) {
        self.responses.push((to, response));
    }
}

/// A `WriteTxnMarkers` request for the host to send.
#[derive(Clone, Debug)]
pub struct MarkerRequest {
    /// Given back in [`TxnCoordinator::on_markers_response`].
    pub id: u64,
    /// The broker that leads every partition in it.
    pub destination: BrokerId,
    /// The markers.
    pub request: WriteTxnMarkersRequest,
}

// ---------------------------------------------------------------- metadata

/// A transactional id's metadata values: what a `__transaction_state` record holds (and
/// the last epoch, which it does not); prepared for a transition, Kafka's
/// `TxnTransitMetadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TxnValue {
    producer_id: i64,
    /// The producer id before the last transition (KIP-360 retries after a rotation).
    previous_producer_id: i64,
    /// The producer id an exhausted epoch moves to at `Complete*` (version 2).
    next_producer_id: i64,
    producer_epoch: i16,
    /// The epoch before the last KIP-360 bump (-1 after a load or a fence).
    last_producer_epoch: i16,
    txn_timeout_ms: u64,
    state: TransactionState,
    topic_partitions: BTreeSet<TopicPartition>,
    txn_start_timestamp: i64,
    txn_last_update_timestamp: i64,
    client_transaction_version: i16,
}

/// Kafka's `TransactionMetadata` of one transactional id.
#[derive(Clone, Debug)]
struct TransactionMetadata {
    transactional_id: Arc<str>,
    /// Its `__transaction_state` partition.
    partition: u32,
    /// The values of the last completed transition.
    current: TxnValue,
    /// The transition written but not yet replicated, or waiting for markers.
    pending_state: Option<TransactionState>,
    /// A fence's abort could not be written: the next fence does not bump again.
    has_failed_epoch_fence: bool,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: its producer id, no epoch yet.
    fn new(
        transactional_id: Arc<str>,
        partition: u32,
        producer_id: i64,
        txn_timeout_ms: u64,
        now: Millis,
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
            txn_last_update_timestamp: now as i64,
            client_transaction_version: 0,
        };
        Self::loaded(transactional_id, partition, current)
    }

    /// The metadata a loaded record describes.
    fn loaded(transactional_id: Arc<str>, partition: u32, current: TxnValue) -> Self {
        TransactionMetadata {
            transactional_id,
            partition,
            current,
            pending_state: None,
            has_failed_epoch_fence: false,
        }
    }

    /// The current values, to be changed into a transition to `state`.
    fn transit(&self, state: TransactionState) -> TxnValue {
        TxnValue {
            state,
            ..self.current.clone()
        }
    }

    fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.current.producer_epoch)
    }

    /// Kafka's `prepareTransitionTo`: checks the table and sets the pending state.
    fn prepare_transition(&mut self, mut t: TxnValue) -> TxnValue {
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
    fn check_transition(&self, to: TransactionState) {
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
    fn complete_transition(&mut self, t: &TxnValue) -> TxnTransition {
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
    fn abandon_transition(&mut self) {
        assert!(self.pending_state.take().is_some(), "nothing pending");
    }

    /// Kafka's `prepareFenceProducerEpoch`, completed at once (it is never written):
    /// the epoch is bumped (not again after a failed fence, and not past
    /// `Short.MAX_VALUE`), which fences the current producer.
    fn fence_producer_epoch(&mut self) -> TxnTransition {
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
    fn undo_epoch_fence(&mut self) -> TxnTransition {
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
    fn prepare_increment_producer_epoch(
        &mut self,
        txn_timeout_ms: u64,
        expected_epoch: Option<i16>,
        now: Millis,
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
        t.txn_last_update_timestamp = now as i64;
        Ok(self.prepare_transition(t))
    }

    /// Kafka's `prepareProducerIdRotation`: an exhausted epoch moves to a new id.
    fn prepare_producer_id_rotation(
        &mut self,
        producer_id: i64,
        txn_timeout_ms: u64,
        now: Millis,
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
        t.txn_last_update_timestamp = now as i64;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareAddPartitions`.
    fn prepare_add_partitions(
        &mut self,
        partitions: &[TopicPartition],
        now: Millis,
        client_transaction_version: i16,
    ) -> TxnValue {
        let mut t = self.transit(TransactionState::Ongoing);
        if self.current.state == TransactionState::Empty || self.current.state.is_complete() {
            t.txn_start_timestamp = now as i64;
        }
        t.topic_partitions.extend(partitions.iter().cloned());
        assert!(
            t.topic_partitions.len() <= MAX_PARTITIONS_PER_TXN,
            "too many partitions in transaction {}",
            self.transactional_id
        );
        t.txn_last_update_timestamp = now as i64;
        t.client_transaction_version = client_transaction_version;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareAbortOrCommit`; with version 2 the epoch is bumped (not past
    /// `Short.MAX_VALUE`).
    fn prepare_abort_or_commit(
        &mut self,
        state: TransactionState,
        client_transaction_version: i16,
        next_producer_id: i64,
        now: Millis,
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
            t.txn_start_timestamp = now as i64;
        }
        t.next_producer_id = next_producer_id;
        t.txn_last_update_timestamp = now as i64;
        t.client_transaction_version = client_transaction_version;
        self.prepare_transition(t)
    }

    /// Kafka's `prepareComplete`: markers are all written; an exhausted epoch moves to
    /// the next producer id (version 2).
    fn prepare_complete(&mut self, now: Millis) -> TxnValue {
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
        t.txn_last_update_timestamp = now as i64;
        self.prepare_transition(t)
    }

    /// Kafka's `removePartition`: its marker is written.
    fn remove_partition(&mut self, tp: &TopicPartition) {
        assert!(
            self.current.state.is_prepared(),
            "transaction {}: marker written in state {}",
            self.transactional_id,
            self.current.state
        );
        self.current.topic_partitions.remove(tp);
    }
}

// ---------------------------------------------------------------- coordinator

/// Who waits for an `EndTxn`-like abort or commit.
#[derive(Clone, Copy, Debug)]
enum EndTxnReply {
    /// The client's `EndTxn`.
    Client(ReplyTo),
    /// An `InitProducerId` that fenced an ongoing transaction: answered
    /// `CONCURRENT_TRANSACTIONS` once the abort is written.
    InitProducerId(ReplyTo),
    /// The coordinator's own abort of a timed-out transaction.
    Timeout,
}

/// What to do when an append completes.
#[derive(Clone, Debug)]
enum AppendPurpose {
    InitProducerId(ReplyTo),
    AddPartitions(ReplyTo, Vec<TopicPartition>),
    AddOffsets(ReplyTo),
    EndTxn {
        reply: EndTxnReply,
        fence: bool,
    },
    /// `Complete*` after the markers.
    Complete,
}

#[derive(Debug)]
struct PendingAppend {
    partition: u32,
    transactional_id: Arc<str>,
    transit: TxnValue,
    purpose: AppendPurpose,
}

/// One partition's marker.
#[derive(Clone, Copy, Debug)]
struct MarkerPartition {
    /// Not sent before this time (a backoff after a failure).
    retry_at: Millis,
    /// The request carrying it.
    in_flight: Option<u64>,
}

/// The markers of one prepared transaction (Kafka's `PendingCompleteTxn`).
#[derive(Debug)]
struct MarkerJob {
    /// Tells apart jobs of the same transactional id (after an unload and a load).
    id: u64,
    producer_id: i64,
    producer_epoch: i16,
    committed: bool,
    coordinator_epoch: i32,
    /// The `Complete*` transition, prepared.
    complete: TxnValue,
    /// Partitions still without a marker.
    partitions: BTreeMap<TopicPartition, MarkerPartition>,
}

#[derive(Debug)]
struct MarkerRequestInFlight {
    destination: BrokerId,
    /// (transactional id, job id, partition).
    entries: Vec<(Arc<str>, u64, TopicPartition)>,
}

/// The transaction coordinator of one broker: every transactional id of the
/// `__transaction_state` partitions it leads and has loaded.
#[derive(Debug)]
pub struct TxnCoordinator {
    bugs: Bugs,
    transaction_max_timeout_ms: u64,
    abort_interval_ms: u64,
    /// The cluster's `transaction.version`.
    transaction_version: i16,
    /// Partitions of `__consumer_offsets` (`AddOffsetsToTxn`).
    offsets_topic_partitions: u32,
    /// Loaded partitions and their coordinator epochs.
    loaded: BTreeMap<u32, i32>,
    txns: BTreeMap<Arc<str>, TransactionMetadata>,
    next_append: u64,
    appends: BTreeMap<u64, PendingAppend>,
    next_job: u64,
    markers: BTreeMap<Arc<str>, MarkerJob>,
    next_marker_request: u64,
    marker_requests: BTreeMap<u64, MarkerRequestInFlight>,
    /// The time of the last [`TxnCoordinator::markers_to_send`].
    markers_polled_at: Millis,
    /// `Complete*` appends to try again (after a failed append).
    complete_retries: BTreeMap<Arc<str>, (Millis, TxnValue)>,
    /// The next look for timed-out transactions (set at the first load).
    next_abort_check: Option<Millis>,
}

impl TxnCoordinator {
    /// A coordinator with nothing loaded.
    pub fn new(config: &BrokerConfig, bugs: Bugs) -> Self {
        assert!(
            config.transaction_abort_timed_out_transaction_cleanup_interval_ms > 0,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms is 0"
        );
        TxnCoordinator {
            bugs,
            transaction_max_timeout_ms: config.transaction_max_timeout_ms,
            abort_interval_ms: config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            transaction_version: config.transaction_version,
            offsets_topic_partitions: config.offsets_topic_num_partitions,
            loaded: BTreeMap::new(),
            txns: BTreeMap::new(),
            next_append: 1,
            appends: BTreeMap::new(),
            next_job: 1,
            markers: BTreeMap::new(),
            next_marker_request: 1,
            marker_requests: BTreeMap::new(),
            markers_polled_at: 0,
            complete_retries: BTreeMap::new(),
            next_abort_check: None,
        }
    }

    /// Whether the transactions of `__transaction_state-<partition>` are loaded here.
    pub fn is_loaded(&self, partition: u32) -> bool {
        self.loaded.contains_key(&partition)
    }

    /// Becomes the coordinator of `partition` at `coordinator_epoch` (the partition's
    /// leader epoch): replays `batches` (its log, in offset order) and completes the
    /// prepared transactions found there. A partition loaded before is unloaded first
    /// (a new leader epoch of the same leader: Kafka's `onElection`).
    pub fn load(
        &mut self,
        now: Millis,
        partition: u32,
        coordinator_epoch: i32,
        batches: &[Bytes],
    ) -> TxnCoordinatorOutput {
        assert!(
            self.loaded.insert(partition, coordinator_epoch).is_none(),
            "__transaction_state-{partition} loaded twice"
        );
        let mut loaded: BTreeMap<Arc<str>, TxnValue> = BTreeMap::new();
        for bytes in batches {
            let (batch, _) = RecordBatch::decode(bytes).expect("stored batches are valid");
            for r in &batch.records {
                let key = r.key.as_ref().expect("transaction records have keys");
                match decode_record(key, r.value.as_deref()) {
                    Ok((id, Some(t))) => {
                        loaded.insert(id, t);
                    }
                    Ok((id, None)) => {
                        loaded.remove(&id);
                    }
                    Err(e) => panic!("undecodable record in __transaction_state-{partition}: {e}"),
                }
            }
        }
        let mut out = TxnCoordinatorOutput::default();
        for (id, t) in loaded {
            assert!(
                !self.txns.contains_key(&id),
                "transaction {id} in two partitions"
            );
            assert!(self.txns.len() < MAX_TRANSACTIONS, "too many transactions");
            self.txns.insert(
                id.clone(),
                TransactionMetadata::loaded(id.clone(), partition, t),
            );

            if self.txns[&id].current.state.is_prepared() {
                if self.bugs.on(Bug::ForgetPreparedTxn) {
                    // The bug: taken as completed, in memory only, without markers.
                    let m = self.txns.get_mut(&id).expect("inserted");
                    let t = m.prepare_complete(now);
                    m.complete_transition(&t);
                } else {
                    self.start_markers(now, &id, &mut out);
                }
            }
        }
        self.next_abort_check
            .get_or_insert(now + self.abort_interval_ms);
        out
    }

    /// Stops coordinating `partition` (leadership lost): its transactions are dropped,
    /// their markers no longer sent, and every answer still owed is `NOT_COORDINATOR`.
    pub fn unload(&mut self, partition: u32) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        if self.loaded.remove(&partition).is_none() {
            return out;
        }
        let ids: Vec<Arc<str>> = self
            .txns
            .iter()
            .filter(|(_, m)| m.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.txns.remove(id);
            self.markers.remove(id);
            self.complete_retries.remove(id);
        }
        let appends: Vec<u64> = self
            .appends
            .iter()
            .filter(|(_, a)| a.partition == partition)
            .map(|(id, _)| *id)
            .collect();
        for id in appends {
            let a = self.appends.remove(&id).expect("listed");
            answer(a.purpose, ErrorCode::NotCoordinator, &mut out);
        }
        out
    }

    /// Handles a transaction coordinator request (see [`transactional_id`]) for a
    /// transactional id of `partition`; `NOT_COORDINATOR` when it is not loaded here.
    pub fn handle(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        request: Request,
        producer_ids: &mut dyn ProducerIdSource,
    ) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        let id = transactional_id(&request)
            .unwrap_or_else(|| panic!("{} is not a transaction request", request.api_name()))
            .clone();
        let refusal = if !self.is_loaded(partition) {
            Some(ErrorCode::NotCoordinator)
        } else if id.is_empty() {
            Some(ErrorCode::InvalidRequest)
        } else {
            None
        };
        if let Some(error) = refusal {
            out.respond(
                reply_to,
                error_response(&request, error).expect("a transaction request"),
            );
            return out;
        }
        if let Some(m) = self.txns.get(&id) {
            assert_eq!(
                m.partition, partition,
                "transaction {id} asked of two partitions"
            );
        }
        match request {
            Request::InitProducerId(r) => {
                self.init_producer_id(now, partition, reply_to, id, r, producer_ids, &mut out)
            }
            Request::AddPartitionsToTxn(r) if r.verify_only => {
                let response = self.verify_partitions(&r);
                out.respond(reply_to, response);
            }
            Request::AddPartitionsToTxn(r) => {
                let purpose = AppendPurpose::AddPartitions(reply_to, r.partitions.clone());
                let (p, e) = (r.producer_id, r.producer_epoch);
                self.add_partitions(now, &id, &r.partitions, p, e, purpose, &mut out);
            }
            Request::AddOffsetsToTxn(r) => {
                let tp = TopicPartition::new(
                    OFFSETS_TOPIC,
                    partition_for_group(&r.group_id, self.offsets_topic_partitions),
                );
                let purpose = AppendPurpose::AddOffsets(reply_to);
                let (p, e) = (r.producer_id, r.producer_epoch);
                self.add_partitions(now, &id, &[tp], p, e, purpose, &mut out);
            }
            Request::EndTxn(r) => {
                let reply = EndTxnReply::Client(reply_to);
                let tv = self.transaction_version;
                self.end_txn(
                    now,
                    &id,
                    (r.producer_id, r.producer_epoch),
                    r.committed,
                    true,
                    tv,
                    reply,
                    producer_ids,
                    &mut out,
                );
            }
            _ => unreachable!("transactional_id names only coordinator requests"),
        }
        out
    }

    fn append(
        &mut self,
        now: Millis,
        transactional_id: &Arc<str>,
        transit: TxnValue,
        purpose: AppendPurpose,
        out: &mut TxnCoordinatorOutput,
    ) {
        assert!(
            self.appends.len() < MAX_PENDING_APPENDS,
            "too many transaction log appends in flight"
        );
        let partition = self.txns[transactional_id].partition;
        let id = self.next_append;
        self.next_append += 1;
        let record = (
            encode_key(transactional_id),
            encode_value(&transit, self.transaction_version),
        );
        out.appends.push(CoordinatorAppend {
            id,
            partition,
            batch: encode_batch(now, vec![record], None),
        });
        self.appends.insert(
            id,
            PendingAppend {
                partition,
                transactional_id: transactional_id.clone(),
                transit,
                purpose,
            },
        );
    }

    /// The client transaction version recorded with a transition: Kafka derives it from
    /// the request's version, 2 for the requests of a version 2 client and 0 before
    /// (there is no version 1 client).
    fn client_transaction_version(transaction_version: i16) -> i16 {
        if transaction_version >= 2 {
            2
        } else {
            0
        }
    }

    /// With the bug switch, a stale epoch of the right producer counts as the current.
    fn accept_stale_epoch(&self, m: &TransactionMetadata, producer_id: i64, epoch: i16) -> i16 {
        if self.bugs.on(Bug::NoProducerEpochFencing)
            && producer_id == m.current.producer_id
            && epoch < m.current.producer_epoch
        {
            m.current.producer_epoch
        } else {
            epoch
        }
    }

    // ------------------------------------------------------------ InitProducerId

    #[allow(clippy::too_many_arguments)]
    fn init_producer_id(
        &mut self,
        now: Millis,
        partition: u32,
        reply_to: ReplyTo,
        id: Arc<str>,
        r: InitProducerIdRequest,
        producer_ids: &mut dyn ProducerIdSource,
        out: &mut TxnCoordinatorOutput,
    ) {
        let timeout = r.transaction_timeout_ms;
        if timeout == 0 || timeout > self.transaction_max_timeout_ms {
            out.respond(reply_to, init_error(ErrorCode::InvalidTransactionTimeout));
            return;
        }
        let expected = match (r.producer_id, r.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (p, e) if p >= 0 && e >= 0 => Some((p, e)),
            _ => {
                out.respond(reply_to, init_error(ErrorCode::InvalidRequest));
                return;
            }
        };
        if !self.txns.contains_key(&id) {
            let Some(producer_id) = producer_ids.next_producer_id() else {
                out.respond(reply_to, init_error(ErrorCode::CoordinatorLoadInProgress));
                return;
            };
            assert!(self.txns.len() < MAX_TRANSACTIONS, "too many transactions");
            let m = TransactionMetadata::new(id.clone(), partition, producer_id, timeout, now);
            self.txns.insert(id.clone(), m);
        }
        let m = self.txns.get_mut(&id).expect("present");
        let valid_producer_id = |(p, e): (i64, i16)| {
            m.current.producer_epoch == NO_PRODUCER_EPOCH
                || p == m.current.producer_id
                || (p == m.current.previous_producer_id && is_epoch_exhausted(e))
        };
        let error = if m.pending_state.is_some() {
            Some(ErrorCode::ConcurrentTransactions)
        } else if !expected.is_none_or(valid_producer_id) {
            Some(ErrorCode::ProducerFenced)
        } else {
            None
        };
        if let Some(error) = error {
            out.respond(reply_to, init_error(error));
            return;
        }
        match m.current.state {
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                out.respond(reply_to, init_error(ErrorCode::ConcurrentTransactions));
            }
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                let transit = if m.is_producer_epoch_exhausted()
                    && expected.is_none_or(|(_, e)| e == m.current.producer_epoch)
                {
                    let Some(producer_id) = producer_ids.next_producer_id() else {
                        out.respond(reply_to, init_error(ErrorCode::CoordinatorLoadInProgress));
                        return;
                    };
                    m.prepare_producer_id_rotation(producer_id, timeout, now, expected.is_some())
                } else {
                    match m.prepare_increment_producer_epoch(timeout, expected.map(|(_, e)| e), now)
                    {
                        Ok(t) => t,
                        Err(error) => {
                            out.respond(reply_to, init_error(error));
                            return;
                        }
                    }
                };
                self.append(
                    now,
                    &id,
                    transit,
                    AppendPurpose::InitProducerId(reply_to),
                    out,
                );
            }
            TransactionState::Ongoing => {
                // Fence the producer, abort its transaction, and have the caller retry.
                self.fence_and_abort(now, &id, EndTxnReply::InitProducerId(reply_to), out);
            }
            TransactionState::Dead | TransactionState::PrepareEpochFence => {
                unreachable!(
                    "{id} in state {} without a pending transition",
                    m.current.state
                )
            }
        }
    }

    // ------------------------------------------------------------ AddPartitionsToTxn

    /// A partition leader's KIP-890 check: is each partition in the ongoing transaction?
    fn verify_partitions(&self, r: &AddPartitionsToTxnRequest) -> Response {
        let error = match self.txns.get(&r.transactional_id) {
            None => Some(ErrorCode::InvalidProducerIdMapping),
            Some(m) => {
                let epoch = self.accept_stale_epoch(m, r.producer_id, r.producer_epoch);
                if m.current.producer_id != r.producer_id {
                    Some(ErrorCode::InvalidProducerIdMapping)
                } else if m.current.producer_epoch != epoch {
                    Some(ErrorCode::ProducerFenced)
                } else if m.current.state.is_prepared() {
                    Some(ErrorCode::ConcurrentTransactions)
                } else {
                    None
                }
            }
        };
        if let Some(error) = error {
            return add_partitions_response(&r.partitions, error);
        }
        let m = &self.txns[&r.transactional_id];
        Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
            results: r
                .partitions
                .iter()
                .map(|tp| {
                    let error = if m.current.topic_partitions.contains(tp) {
                        ErrorCode::None
                    } else {
                        ErrorCode::InvalidTxnState
                    };
                    (tp.clone(), error)
                })
                .collect(),
        })
    }

    /// `AddPartitionsToTxn` (not `verify_only`) and `AddOffsetsToTxn`.
    #[allow(clippy::too_many_arguments)]
    fn add_partitions(
        &mut self,
        now: Millis,
        txn_id: &Arc<str>,
        partitions: &[TopicPartition],
        producer_id: i64,
        producer_epoch: i16,
        purpose: AppendPurpose,
        out: &mut TxnCoordinatorOutput,
    ) {
        let client_version = Self::client_transaction_version(self.transaction_version);
        let error = match self.txns.get(txn_id) {
            None => Some(ErrorCode::InvalidProducerIdMapping),
            Some(m) => {
                let epoch = self.accept_stale_epoch(m, producer_id, producer_epoch);
                // Kafka 4.x checks the pending transition first: with version 2 a
                // producer may already use the id of an epoch overflow still pending.
                if m.pending_state.is_some() {
                    Some(ErrorCode::ConcurrentTransactions)
                } else if m.current.producer_id != producer_id {
                    Some(ErrorCode::InvalidProducerIdMapping)
                } else if m.current.producer_epoch != epoch {
                    Some(ErrorCode::ProducerFenced)
                } else if m.current.state.is_prepared() {
                    Some(ErrorCode::ConcurrentTransactions)
                } else if m.current.state == TransactionState::Ongoing
                    && partitions
                        .iter()
                        .all(|tp| m.current.topic_partitions.contains(tp))
                {
                    // Nothing to write.
                    Some(ErrorCode::None)
                } else {
                    None
                }
            }
        };
        if let Some(error) = error {
            answer(purpose, error, out);
            return;
        }
        let m = self.txns.get_mut(txn_id).expect("present");
        let transit = m.prepare_add_partitions(partitions, now, client_version);
        self.append(now, txn_id, transit, purpose, out);
    }

    // ------------------------------------------------------------ EndTxn

    /// Bumps the epoch of `id`'s ongoing transaction (fencing its producer) and aborts
    /// it with that epoch, as the coordinator (Kafka's `prepareFenceProducerEpoch`, then
    /// `endTransaction` with `isFromClient` false and the cluster's version).
    fn fence_and_abort(
        &mut self,
        now: Millis,
        id: &Arc<str>,
        reply: EndTxnReply,
        out: &mut TxnCoordinatorOutput,
    ) {
        let m = self.txns.get_mut(id).expect("present");
        out.transitions.push(m.fence_producer_epoch());
        let producer = (m.current.producer_id, m.current.producer_epoch);
        let tv = self.transaction_version;
        let mut no_producer_ids =
            || -> Option<i64> { unreachable!("an epoch fence allocates no producer id") };
        self.end_txn(
            now,
            id,
            producer,
            false,
            false,
            tv,
            reply,
            &mut no_producer_ids,
            out,
        );
    }

    /// Kafka's `endTransaction` (from the client, or the coordinator's own abort after a
    /// fence with `from_client` false).
    #[allow(clippy::too_many_arguments)]
    fn end_txn(
        &mut self,
        now: Millis,
        id: &Arc<str>,
        (producer_id, producer_epoch): (i64, i16),
        committed: bool,
        from_client: bool,
        transaction_version: i16,
        reply: EndTxnReply,
        producer_ids: &mut dyn ProducerIdSource,
        out: &mut TxnCoordinatorOutput,
    ) {
        let Some(m) = self.txns.get(id) else {
            answer_end(reply, ErrorCode::InvalidProducerIdMapping, None, out);
            return;
        };
        // A client's `EndTxn` can arrive while the fence's abort is being written: the
        // state is `PrepareEpochFence` with the bumped epoch (Kafka: still `Ongoing`,
        // the bumped epoch set and `PrepareAbort` pending). As in Kafka's
        // `TransactionCoordinator.endTransaction` it goes through the ordinary checks:
        // its epoch is below the bumped one, `PRODUCER_FENCED` (version 1: strict
        // equality for clients; version 2: `Ongoing` needs the current epoch), else
        // `CONCURRENT_TRANSACTIONS` for the pending abort.
        let fence = !from_client && m.current.state == TransactionState::PrepareEpochFence;
        assert!(
            from_client || (fence && !committed),
            "transaction {id}: the coordinator ends only a fenced transaction, by an abort"
        );
        let v2 = transaction_version >= 2;
        let decision = if v2 {
            self.end_txn_decision_v2(m, producer_id, producer_epoch, committed, from_client)
        } else {
            self.end_txn_decision_v1(m, producer_id, producer_epoch, committed, from_client)
        };
        assert!(
            !fence || decision.is_ok(),
            "transaction {id}: the abort of a fence was refused: {decision:?}"
        );
        let (state, no_partition_added) = match decision {
            Ok(prepare) => prepare,
            Err(error) => {
                // A retry answered at once gets the current producer (version 2).
                let current = (v2 && error == ErrorCode::None)
                    .then_some((m.current.producer_id, m.current.producer_epoch));
                answer_end(reply, error, current, out);
                return;
            }
        };
        let next_producer_id = if v2 && !fence && m.is_producer_epoch_exhausted() {
            match producer_ids.next_producer_id() {
                Some(p) => p,
                None => {
                    answer_end(reply, ErrorCode::CoordinatorLoadInProgress, None, out);
                    return;
                }
            }
        } else {
            NO_PRODUCER_ID
        };
        let client_version = Self::client_transaction_version(transaction_version);
        let m = self.txns.get_mut(id).expect("present");
        let transit = m.prepare_abort_or_commit(
            state,
            client_version,
            next_producer_id,
            now,
            no_partition_added,
        );
        self.append(
            now,
            id,
            transit,
            AppendPurpose::EndTxn { reply, fence },
            out,
        );
    }

    /// `endTransactionWithTV1`'s checks: the state to prepare, or the answer.
    fn end_txn_decision_v1(
        &self,
        m: &TransactionMetadata,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
        from_client: bool,
    ) -> Result<(TransactionState, bool), ErrorCode> {
        let epoch = if from_client {
            self.accept_stale_epoch(m, producer_id, producer_epoch)
        } else {
            producer_epoch
        };
        if m.current.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        // Clients must send the current epoch; the coordinator's own abort sends the
        // fenced one.
        if (from_client && epoch != m.current.producer_epoch) || epoch < m.current.producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        end_txn_target(m, committed, None)
    }

    /// Kafka 4's `endTransaction` checks for transaction version 2, where every end
    /// bumps the epoch: a retry carries the epoch before the bump (or, after an epoch
    /// overflow, the previous producer id at `Short.MAX_VALUE - 1`).
    fn end_txn_decision_v2(
        &self,
        m: &TransactionMetadata,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
        from_client: bool,
    ) -> Result<(TransactionState, bool), ErrorCode> {
        use TransactionState::*;
        let fence = m.current.state == PrepareEpochFence;
        // (valid epoch, retry after a bump, retry after an overflow)
        let check = |epoch: i16| {
            let retry_on_overflow = !fence
                && m.current.previous_producer_id == producer_id
                && epoch == i16::MAX - 1
                && m.current.producer_epoch == 0;
            let retry_on_bump =
                !fence && i32::from(m.current.producer_epoch) == i32::from(epoch) + 1;
            let valid = if fence {
                (!from_client || epoch == m.current.producer_epoch)
                    && epoch >= m.current.producer_epoch
            } else {
                match m.current.state {
                    Ongoing | Empty | Dead | PrepareEpochFence => epoch == m.current.producer_epoch,
                    PrepareCommit | PrepareAbort => retry_on_bump,
                    CompleteCommit | CompleteAbort => {
                        retry_on_bump || retry_on_overflow || epoch == m.current.producer_epoch
                    }
                }
            };
            (valid, retry_on_bump, retry_on_overflow)
        };
        let (mut valid, mut retry_on_bump, mut retry_on_overflow) = check(producer_epoch);
        if !valid
            && from_client
            && self.accept_stale_epoch(m, producer_id, producer_epoch) != producer_epoch
        {
            (valid, retry_on_bump, retry_on_overflow) = check(m.current.producer_epoch);
        }
        let is_retry = retry_on_bump || retry_on_overflow;
        if m.current.producer_id != producer_id && !retry_on_overflow {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if !valid {
            return Err(ErrorCode::ProducerFenced);
        }
        end_txn_target(m, committed, Some(is_retry))
    }

    // ------------------------------------------------------------ appends

    /// The append `id` is decided: `NONE` once the high watermark passed it, else the
    /// produce error (`NOT_LEADER_OR_FOLLOWER`, `NOT_ENOUGH_REPLICAS`,
    /// `REQUEST_TIMED_OUT`, ...).
    pub fn on_append_complete(
        &mut self,
        now: Millis,
        id: u64,
        error: ErrorCode,
    ) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        // Appends of an unloaded partition were answered by the unload.
        let Some(a) = self.appends.remove(&id) else {
            return out;
        };
        let txn_id = a.transactional_id;
        let m = self
            .txns
            .get_mut(&txn_id)
            .expect("appends are dropped with their transactions");
        if error != ErrorCode::None {
            let error = txn_log_append_error(error);
            match a.purpose {
                AppendPurpose::Complete => {
                    // Kafka retries COORDINATOR_NOT_AVAILABLE and leaves the rest to the
                    // next load; here a broker may refuse appends (below its minimum ISR) and keep
                    // its leadership, so every failure is retried while loaded.
                    let retry_at = now + MARKER_RETRY_BACKOFF_MS;
                    self.complete_retries.insert(txn_id, (retry_at, a.transit));
                }
                AppendPurpose::EndTxn { fence: true, .. } => {
                    out.transitions.push(m.undo_epoch_fence());
                    answer(a.purpose, error, &mut out);
                }
                purpose => {
                    m.abandon_transition();
                    answer(purpose, error, &mut out);
                }
            }
            return out;
        }
        let before = (m.current.producer_id, m.current.producer_epoch);
        let transition = m.complete_transition(&a.transit);
        if transition.from != transition.to
            || (transition.producer_id, transition.producer_epoch) != before
        {
            out.transitions.push(transition);
        }
        match a.purpose {
            AppendPurpose::InitProducerId(reply_to) => out.respond(
                reply_to,
                Response::InitProducerId(InitProducerIdResponse {
                    error: ErrorCode::None,
                    producer_id: a.transit.producer_id,
                    producer_epoch: a.transit.producer_epoch,
                }),
            ),
            AppendPurpose::EndTxn { reply, .. } => {
                let next = self.start_markers(now, &txn_id, &mut out);
                let v2 = a.transit.client_transaction_version >= 2;
                answer_end(reply, ErrorCode::None, v2.then_some(next), &mut out);
            }
            purpose @ (AppendPurpose::AddPartitions(..) | AppendPurpose::AddOffsets(_)) => {
                answer(purpose, ErrorCode::None, &mut out)
            }
            AppendPurpose::Complete => {}
        }
        out
    }

    // ------------------------------------------------------------ markers

    /// The prepared transaction `id` is written: prepares its `Complete*` transition and
    /// queues its markers. Returns the producer id and epoch it completes with.
    fn start_markers(
        &mut self,
        now: Millis,
        id: &Arc<str>,
        out: &mut TxnCoordinatorOutput,
    ) -> (i64, i16) {
        let m = self.txns.get_mut(id).expect("present");
        let coordinator_epoch = self.loaded[&m.partition];
        let complete = m.prepare_complete(now);
        let next = (complete.producer_id, complete.producer_epoch);
        // The `partial-markers` switch writes the first partition's marker only.
        let partial = self.bugs.on(Bug::PartialMarkers);
        let job = MarkerJob {
            id: self.next_job,
            producer_id: m.current.producer_id,
            producer_epoch: m.current.producer_epoch,
            committed: m.current.state == TransactionState::PrepareCommit,
            coordinator_epoch,
            complete,
            partitions: m
                .current
                .topic_partitions
                .iter()
                .take(if partial { 1 } else { usize::MAX })
                .map(|tp| {
                    let p = MarkerPartition {
                        retry_at: now,
                        in_flight: None,
                    };
                    (tp.clone(), p)
                })
                .collect(),
        };
        self.next_job += 1;
        assert!(
            self.markers.insert(id.clone(), job).is_none(),
            "transaction {id} has markers pending twice"
        );
        self.maybe_write_completion(now, id, out);
        next
    }

    /// Every marker of `id` is written: write `Complete*` (Kafka's
    /// `maybeWriteTxnCompletion`).
    fn maybe_write_completion(
        &mut self,
        now: Millis,
        id: &Arc<str>,
        out: &mut TxnCoordinatorOutput,
    ) {
        if self
            .markers
            .get(id)
            .is_some_and(|j| j.partitions.is_empty())
        {
            let job = self.markers.remove(id).expect("present");
            self.append(now, id, job.complete, AppendPurpose::Complete, out);
        }
    }

    /// The `WriteTxnMarkers` requests to send now, one per partition leader
    /// (`leader_of`: the live leader of a partition, `None` when there is none): the
    /// markers not in flight and past their backoff, to leaders with no marker request
    /// in flight. A partition without a leader waits [`MARKER_RETRY_BACKOFF_MS`].
    pub fn markers_to_send(
        &mut self,
        now: Millis,
        leader_of: &mut dyn FnMut(&TopicPartition) -> Option<BrokerId>,
    ) -> Vec<MarkerRequest> {
        self.markers_polled_at = now;
        let busy: BTreeSet<BrokerId> = self
            .marker_requests
            .values()
            .map(|r| r.destination)
            .collect();
        let mut by_leader: BTreeMap<BrokerId, Vec<(Arc<str>, TopicPartition)>> = BTreeMap::new();
        for (id, job) in self.markers.iter_mut() {
            for (tp, p) in job.partitions.iter_mut() {
                if p.in_flight.is_some() || p.retry_at > now {
                    continue;
                }
                match leader_of(tp) {
                    None => p.retry_at = now + MARKER_RETRY_BACKOFF_MS,
                    Some(b) if busy.contains(&b) => {}
                    Some(b) => by_leader
                        .entry(b)
                        .or_default()
                        .push((id.clone(), tp.clone())),
                }
            }
        }
        let mut requests = Vec::new();
        for (destination, entries) in by_leader {
            let request_id = self.next_marker_request;
            self.next_marker_request += 1;
            let mut markers: Vec<TxnMarker> = Vec::new();
            let mut in_flight = Vec::new();
            for (id, tp) in entries {
                let job = self.markers.get_mut(&id).expect("listed");
                job.partitions.get_mut(&tp).expect("listed").in_flight = Some(request_id);
                in_flight.push((id.clone(), job.id, tp.clone()));
                match markers.last_mut() {
                    Some(m) if m.producer_id == job.producer_id => m.partitions.push(tp),
                    _ => markers.push(TxnMarker {
                        producer_id: job.producer_id,
                        producer_epoch: job.producer_epoch,
                        committed: job.committed,
                        partitions: vec![tp],
                        coordinator_epoch: job.coordinator_epoch,
                    }),
                }
            }
            assert!(
                self.marker_requests.len() < MAX_MARKER_REQUESTS,
                "too many marker requests in flight"
            );
            self.marker_requests.insert(
                request_id,
                MarkerRequestInFlight {
                    destination,
                    entries: in_flight,
                },
            );
            requests.push(MarkerRequest {
                id: request_id,
                destination,
                request: WriteTxnMarkersRequest { markers },
            });
        }
        requests
    }

    /// The outcome of marker request `id`: the leader's answer, or `Err` with
    /// `REQUEST_TIMED_OUT` / `NETWORK_EXCEPTION` when none came. Written partitions are
    /// done; `NOT_LEADER_OR_FOLLOWER`, `UNKNOWN_TOPIC_OR_PARTITION`,
    /// `NOT_ENOUGH_REPLICAS(_AFTER_APPEND)`, `REQUEST_TIMED_OUT`, `KAFKA_STORAGE_ERROR` and
    /// no answer are retried after [`MARKER_RETRY_BACKOFF_MS`] (to the leader of the
    /// time); `INVALID_PRODUCER_EPOCH` and `TRANSACTION_COORDINATOR_FENCED` stop the
    /// transaction's markers (this coordinator is stale: the transaction waits for the
    /// next load). Any other error is a bug, as in Kafka.
    pub fn on_markers_response(
        &mut self,
        now: Millis,
        id: u64,
        result: Result<&WriteTxnMarkersResponse, ErrorCode>,
    ) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        let Some(request) = self.marker_requests.remove(&id) else {
            return out;
        };
        let mut written: BTreeSet<Arc<str>> = BTreeSet::new();
        for (txn_id, job_id, tp) in request.entries {
            let Some(job) = self.markers.get_mut(&txn_id).filter(|j| j.id == job_id) else {
                continue; // dropped (unloaded, or stopped)
            };
            let p = job
                .partitions
                .get_mut(&tp)
                .expect("a partition in flight is still pending");
            assert_eq!(p.in_flight, Some(id));
            p.in_flight = None;
            let error = match result {
                Err(error) => error,
                Ok(response) => response
                    .markers
                    .iter()
                    .filter(|(producer_id, _)| *producer_id == job.producer_id)
                    .flat_map(|(_, errors)| errors)
                    .find(|(t, _)| *t == tp)
                    .map(|(_, e)| *e)
                    .unwrap_or_else(|| {
                        panic!(
                            "WriteTxnMarkers response without {tp} of producer {}",
                            job.producer_id
                        )
                    }),
            };
            match error {
                ErrorCode::None => {
                    job.partitions.remove(&tp);
                    self.txns
                        .get_mut(&txn_id)
                        .expect("jobs are dropped with their transactions")
                        .remove_partition(&tp);
                    written.insert(txn_id);
                }
                ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::RequestTimedOut
                | ErrorCode::KafkaStorageError
                | ErrorCode::NetworkException => p.retry_at = now + MARKER_RETRY_BACKOFF_MS,
                ErrorCode::InvalidProducerEpoch | ErrorCode::TransactionCoordinatorFenced => {
                    self.markers.remove(&txn_id);
                }
                other => panic!("unexpected {other} writing the markers of transaction {txn_id}"),
            }
        }
        for txn_id in written {
            self.maybe_write_completion(now, &txn_id, &mut out);
        }
        out
    }

    // ------------------------------------------------------------ timers

    /// Aborts transactions open longer than their timeout (every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`) and writes again
    /// the `Complete*` records whose append failed.
    pub fn on_timer(&mut self, now: Millis) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        if !self.loaded.is_empty() && self.next_abort_check.is_some_and(|t| t <= now) {
            self.next_abort_check = Some(now + self.abort_interval_ms);
            let timed_out: Vec<Arc<str>> = self
                .txns
                .iter()
                .filter(|(_, m)| {
                    m.current.state == TransactionState::Ongoing
                        && m.pending_state.is_none()
                        && m.current
                            .txn_start_timestamp
                            .saturating_add(m.current.txn_timeout_ms as i64)
                            < now as i64
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in timed_out {
                self.fence_and_abort(now, &id, EndTxnReply::Timeout, &mut out);
            }
        }
        let due: Vec<Arc<str>> = self
            .complete_retries
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let (_, transit) = self.complete_retries.remove(&id).expect("listed");
            self.append(now, &id, transit, AppendPurpose::Complete, &mut out);
        }
        out
    }

    /// The earliest time [`TxnCoordinator::on_timer`] (or, for markers past their
    /// backoff, [`TxnCoordinator::markers_to_send`]) has work.
    pub fn next_timer(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut at = |d: Millis| t = Some(t.map_or(d, |t| t.min(d)));
        if !self.loaded.is_empty() {
            if let Some(c) = self.next_abort_check {
                at(c);
            }
        }
        for (retry_at, _) in self.complete_retries.values() {
            at(*retry_at);
        }
        // Markers due at the last poll were sent or wait for their leader's answer.
        for job in self.markers.values() {
            for p in job.partitions.values() {
                if p.in_flight.is_none() && p.retry_at > self.markers_polled_at {
                    at(p.retry_at);
                }
            }
        }
        t
    }

    // ------------------------------------------------------------ snapshot

    /// Every loaded transactional id: state, producer id and epoch, partitions.
    pub fn transactions(&self) -> Vec<TxnSummary> {
        self.txns
            .values()
            .map(|m| TxnSummary {
                transactional_id: m.transactional_id.clone(),
                partition: m.partition,
                state: m.current.state,
                pending_state: m.pending_state,
                producer_id: m.current.producer_id,
                producer_epoch: m.current.producer_epoch,
                partitions: m.current.topic_partitions.iter().cloned().collect(),
                txn_start_timestamp: m.current.txn_start_timestamp,
            })
            .collect()
    }
}

/// After the producer checks of `EndTxn`: the state to prepare (and whether no
/// partition was added), or the answer. Version 1 (`version_2_retry` `None`) answers a
/// repeated end `NONE`; version 2 only a retry (`Some(true)`), and takes an abort with the
/// current epoch in `Empty` and `Complete*` (the client did not know the state).
fn end_txn_target(
    m: &TransactionMetadata,
    committed: bool,
    version_2_retry: Option<bool>,
) -> Result<(TransactionState, bool), ErrorCode> {
    use TransactionState::*;
    if m.pending_state.is_some() {
        return Err(ErrorCode::ConcurrentTransactions);
    }
    let target = if committed {
        PrepareCommit
    } else {
        PrepareAbort
    };
    match (m.current.state, committed, version_2_retry) {
        (Ongoing | PrepareEpochFence, _, _) => Ok((target, false)),
        (CompleteCommit, true, None | Some(true)) | (CompleteAbort, false, None | Some(true)) => {
            Err(ErrorCode::None)
        }
        (Empty | CompleteCommit | CompleteAbort, false, Some(false)) => Ok((PrepareAbort, true)),
        (PrepareCommit, true, _) | (PrepareAbort, false, _) => {
            Err(ErrorCode::ConcurrentTransactions)
        }
        (Dead, _, _) => unreachable!("transaction {} is Dead", m.transactional_id),
        _ => Err(ErrorCode::InvalidTxnState),
    }
}

/// Answers what waited for an append (or did not need one) with `error`.
fn answer(purpose: AppendPurpose, error: ErrorCode, out: &mut TxnCoordinatorOutput) {
    match purpose {
        AppendPurpose::InitProducerId(r) => out.respond(r, init_error(error)),
        AppendPurpose::AddPartitions(r, partitions) => {
            out.respond(r, add_partitions_response(&partitions, error))
        }
        AppendPurpose::AddOffsets(r) => out.respond(
            r,
            Response::AddOffsetsToTxn(AddOffsetsToTxnResponse { error }),
        ),
        AppendPurpose::EndTxn { reply, .. } => answer_end(reply, error, None, out),
        AppendPurpose::Complete => {}
    }
}

/// Answers an end of transaction: the client's `EndTxn` (with the producer id and epoch
/// to use next under version 2), or the fencing `InitProducerId`
/// (`CONCURRENT_TRANSACTIONS` when the abort is written: the client retries).
fn answer_end(
    reply: EndTxnReply,
    error: ErrorCode,
    producer: Option<(i64, i16)>,
    out: &mut TxnCoordinatorOutput,
) {
    match reply {
        EndTxnReply::Client(r) => {
            let (p, e) = producer.unwrap_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH));
            out.respond(r, end_txn_response(error, p, e));
        }
        EndTxnReply::InitProducerId(r) => {
            let error = if error == ErrorCode::None {
                ErrorCode::ConcurrentTransactions
            } else {
                error
            };
            out.respond(r, init_error(error));
        }
        EndTxnReply::Timeout => {}
    }
}

// ---------------------------------------------------------------- record format

const KEY_VERSION: i16 = 0;
/// Tags of `TransactionLogValue` v1's tagged fields.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

fn put_uvarint(b: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

/// A compact array's or string's length: `n + 1` (0 is null).
fn put_compact_len(b: &mut Vec<u8>, n: usize) {
    put_uvarint(b, u32::try_from(n + 1).expect("length fits a varint"));
}

fn read_uvarint(r: &mut Reader) -> Result<u32, String> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = r.take(1)?[0];
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("unsigned varint longer than 5 bytes".into())
}

/// A compact length: `None` for null.
fn read_compact_len(r: &mut Reader) -> Result<Option<usize>, String> {
    Ok(read_uvarint(r)?.checked_sub(1).map(|n| n as usize))
}

/// Tagged fields: `(tag, data)` in order.
fn read_tagged_fields(r: &mut Reader) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let mut fields = Vec::new();
    for _ in 0..read_uvarint(r)? {
        let tag = read_uvarint(r)?;
        let size = read_uvarint(r)? as usize;
        fields.push((tag, r.take(size)?.to_vec()));
    }
    Ok(fields)
}

fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, KEY_VERSION);
    put_str(&mut b, transactional_id);
    Bytes::from(b)
}

/// `TransactionLogValue`: version 0 with `transaction.version` 0, else version 1.
fn encode_value(t: &TxnValue, transaction_version: i16) -> Bytes {
    let flexible = transaction_version >= 1;
    let partitions: Vec<TopicPartition> = t.topic_partitions.iter().cloned().collect();
    let null_partitions = t.state == TransactionState::Empty;
    assert!(
        !null_partitions || partitions.is_empty(),
        "an Empty transaction with partitions"
    );
    let mut b = Vec::new();
    put_i16(&mut b, i16::from(flexible));
    put_i64(&mut b, t.producer_id);
    put_i16(&mut b, t.producer_epoch);
    put_timeout(&mut b, t.txn_timeout_ms);
    b.push(t.state.id());
    match (flexible, null_partitions) {
        (false, true) => put_i32(&mut b, -1),
        (false, false) => put_partitions(&mut b, &partitions),
        (true, true) => put_uvarint(&mut b, 0),
        (true, false) => {
            let runs = topic_runs(&partitions);
            put_compact_len(&mut b, runs.len());
            for (topic, ids) in runs {
                put_compact_len(&mut b, topic.len());
                b.extend_from_slice(topic.as_bytes());
                put_compact_len(&mut b, ids.len());
                for p in ids {
                    put_i32(&mut b, p);
                }
                put_uvarint(&mut b, 0); // no tagged fields
            }
        }
    }
    put_i64(&mut b, t.txn_last_update_timestamp);
    put_i64(&mut b, t.txn_start_timestamp);
    if flexible {
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        if t.previous_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_PREVIOUS_PRODUCER_ID,
                t.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if t.next_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_NEXT_PRODUCER_ID,
                t.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if t.client_transaction_version != 0 {
            let v = t.client_transaction_version.to_be_bytes().to_vec();
            tagged.push((TAG_CLIENT_TRANSACTION_VERSION, v));
        }
        put_uvarint(&mut b, tagged.len() as u32);
        for (tag, data) in tagged {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, data.len() as u32);
            b.extend_from_slice(&data);
        }
    }
    Bytes::from(b)
}

/// A `__transaction_state` record: the transactional id and its state (`None`: a
/// tombstone).
fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<(Arc<str>, Option<TxnValue>), String> {
    let mut k = Reader { buf: key };
    match k.i16()? {
        KEY_VERSION => {}
        other => return Err(format!("unknown key version {other}")),
    }
    let id = k.str()?;
    k.done()?;
    let Some(value) = value else {
        return Ok((id, None));
    };
    let mut v = Reader { buf: value };
    let flexible = match v.i16()? {
        0 => false,
        1 => true,
        other => return Err(format!("unknown value version {other}")),
    };
    let producer_id = v.i64()?;
    let producer_epoch = v.i16()?;
    let timeout = v.i32()?;
    let txn_timeout_ms =
        u64::try_from(timeout).map_err(|_| format!("negative timeout {timeout}"))?;
    let status = v.take(1)?[0];
    let state = TransactionState::from_id(status)
        .filter(|s| {
            !matches!(
                s,
                TransactionState::Dead | TransactionState::PrepareEpochFence
            )
        })
        .ok_or_else(|| format!("transaction status {status} is never written"))?;
    let mut topic_partitions = BTreeSet::new();
    if flexible {
        for _ in 0..read_compact_len(&mut v)?.unwrap_or(0) {
            let n = read_compact_len(&mut v)?.ok_or("null topic")?;
            let topic = std::str::from_utf8(v.take(n)?).map_err(|e| e.to_string())?;
            for _ in 0..read_compact_len(&mut v)?.ok_or("null partitions")? {
                let p = v.i32()?;
                let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
                topic_partitions.insert(TopicPartition::new(topic, partition));
            }
            read_tagged_fields(&mut v)?;
        }
    } else if v.buf.get(..4) == Some(&(-1i32).to_be_bytes()) {
        v.take(4)?; // null
    } else {
        topic_partitions.extend(v.partitions()?);
    }
    let txn_last_update_timestamp = v.i64()?;
    let txn_start_timestamp = v.i64()?;
    let (mut previous_producer_id, mut next_producer_id, mut client_transaction_version) =
        (NO_PRODUCER_ID, NO_PRODUCER_ID, 0);
    if flexible {
        for (tag, data) in read_tagged_fields(&mut v)? {
            let wrong = |_| format!("tagged field {tag} of {} bytes", data.len());
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    previous_producer_id = i64::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                TAG_NEXT_PRODUCER_ID => {
                    next_producer_id = i64::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    client_transaction_version =
                        i16::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                _ => {} // a later version's field
            }
        }
    }
    v.done()?;
    if state == TransactionState::Empty {
        topic_partitions.clear();
    }
    Ok((
        id,
        Some(TxnValue {
            producer_id,
            previous_producer_id,
            next_producer_id,
            producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state,
            topic_partitions,
            txn_start_timestamp,
            txn_last_update_timestamp,
            client_transaction_version,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransactionState::*;

    const TXN: &str = "pipeline-0";
    const TIMEOUT: u64 = 60_000;
    const COORDINATOR_EPOCH: i32 = 7;

    fn config(transaction_version: i16) -> BrokerConfig {
        BrokerConfig {
            transaction_version,
            ..BrokerConfig::default()
        }
    }

    /// A coordinator of partition 0 at coordinator epoch 7.
    fn coordinator(transaction_version: i16, bugs: Bugs) -> TxnCoordinator {
        let mut c = TxnCoordinator::new(&config(transaction_version), bugs);
        let out = c.load(0, 0, COORDINATOR_EPOCH, &[]);
        assert!(out.appends.is_empty() && out.responses.is_empty());
        c
    }

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn orders(n: u32) -> Vec<TopicPartition> {
        (0..n).map(|p| tp("orders", p)).collect()
    }

    /// The coordinator's pretend cluster: appends complete at once (the log keeps them),
    /// producer ids count up from 1000, every transition is kept.
    struct Harness {
        log: Vec<Bytes>,
        next_producer_id: i64,
        transitions: Vec<TxnTransition>,
        correlation_id: u64,
    }

    impl Default for Harness {
        fn default() -> Self {
            Harness {
                log: Vec::new(),
                next_producer_id: 1000,
                transitions: Vec::new(),
                correlation_id: 0,
            }
        }
    }

    impl Harness {
        fn run(
            &mut self,
            c: &mut TxnCoordinator,
            now: Millis,
            out: TxnCoordinatorOutput,
        ) -> Vec<(ReplyTo, Response)> {
            self.transitions.extend(out.transitions);
            let mut responses = out.responses;
            for a in out.appends {
                self.log.push(a.batch);
                let done = c.on_append_complete(now, a.id, ErrorCode::None);
                responses.extend(self.run(c, now, done));
            }
            responses
        }

        /// Sends `request` (as producer 0) and returns the coordinator's answer to it.
        fn call(&mut self, c: &mut TxnCoordinator, now: Millis, request: Request) -> Response {
            self.correlation_id += 1;
            let to = ReplyTo {
                client: NodeId::Producer(0),
                correlation_id: self.correlation_id,
            };
            let mut next = self.next_producer_id;
            let mut ids = || {
                next += 1;
                Some(next - 1)
            };
            let out = c.handle(now, 0, to, request, &mut ids);
            self.next_producer_id = next;
            let responses = self.run(c, now, out);
            let mine: Vec<Response> = responses
                .into_iter()
                .filter(|(r, _)| *r == to)
                .map(|(_, r)| r)
                .collect();
            assert_eq!(mine.len(), 1, "one answer");
            mine.into_iter().next().expect("one")
        }

        /// Writes every marker (every partition led by broker 1, answering `NONE`);
        /// returns the requests sent.
        fn deliver_markers(
            &mut self,
            c: &mut TxnCoordinator,
            now: Millis,
        ) -> Vec<WriteTxnMarkersRequest> {
            let mut sent = Vec::new();
            loop {
                let requests = c.markers_to_send(now, &mut |_| Some(1));
                if requests.is_empty() {
                    return sent;
                }
                assert!(sent.len() < 100, "markers never done");
                for r in requests {
                    let answer = answer_all(&r.request, ErrorCode::None);
                    let out = c.on_markers_response(now, r.id, Ok(&answer));
                    assert!(self.run(c, now, out).is_empty());
                    sent.push(r.request);
                }
            }
        }
    }

    /// The same error for every partition of every marker.
    fn answer_all(request: &WriteTxnMarkersRequest, error: ErrorCode) -> WriteTxnMarkersResponse {
        WriteTxnMarkersResponse {
            markers: request
                .markers
                .iter()
                .map(|m| {
                    let errors = m.partitions.iter().map(|tp| (tp.clone(), error)).collect();
                    (m.producer_id, errors)
                })
                .collect(),
        }
    }

    fn init_request_for(id: &str, timeout_ms: u64, producer: (i64, i16)) -> Request {
        Request::InitProducerId(InitProducerIdRequest {
            transactional_id: Some(Arc::from(id)),
            transaction_timeout_ms: timeout_ms,
            producer_id: producer.0,
            producer_epoch: producer.1,
        })
    }

    fn init_request(producer_id: i64, producer_epoch: i16) -> Request {
        init_request_for(TXN, TIMEOUT, (producer_id, producer_epoch))
    }

    fn add_request_for(
        id: &str,
        producer: (i64, i16),
        partitions: &[TopicPartition],
        verify_only: bool,
    ) -> Request {
        Request::AddPartitionsToTxn(AddPartitionsToTxnRequest {
            transactional_id: Arc::from(id),
            producer_id: producer.0,
            producer_epoch: producer.1,
            partitions: partitions.to_vec(),
            verify_only,
        })
    }

    fn add_request(
        producer: (i64, i16),
        partitions: &[TopicPartition],
        verify_only: bool,
    ) -> Request {
        add_request_for(TXN, producer, partitions, verify_only)
    }

    fn end_request_for(id: &str, producer: (i64, i16), committed: bool) -> Request {
        Request::EndTxn(EndTxnRequest {
            transactional_id: Arc::from(id),
            producer_id: producer.0,
            producer_epoch: producer.1,
            committed,
        })
    }

    fn end_request(producer: (i64, i16), committed: bool) -> Request {
        end_request_for(TXN, producer, committed)
    }

    fn init_answer(r: Response) -> InitProducerIdResponse {
        match r {
            Response::InitProducerId(r) => r,
            other => panic!("not an InitProducerId answer: {other:?}"),
        }
    }

    fn init(h: &mut Harness, c: &mut TxnCoordinator, now: Millis) -> (i64, i16) {
        let r = init_answer(h.call(c, now, init_request(-1, -1)));
        assert_eq!(r.error, ErrorCode::None);
        (r.producer_id, r.producer_epoch)
    }

    /// A coordinator where `TXN` has `partitions` in an open transaction (since 10 ms).
    fn open(version: i16, partitions: &[TopicPartition]) -> (Harness, TxnCoordinator, (i64, i16)) {
        let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        assert_eq!(producer, (1000, 0));
        assert_eq!(
            add(&mut h, &mut c, 10, producer, partitions),
            ErrorCode::None
        );
        (h, c, producer)
    }

    /// `open`, then ended (at 20 ms): the markers are to be written.
    fn ended(
        version: i16,
        partitions: &[TopicPartition],
        committed: bool,
    ) -> (Harness, TxnCoordinator, (i64, i16)) {
        let (mut h, mut c, producer) = open(version, partitions);
        assert_eq!(
            end(&mut h, &mut c, 20, producer, committed).error,
            ErrorCode::None
        );
        (h, c, producer)
    }

    fn add(
        h: &mut Harness,
        c: &mut TxnCoordinator,
        now: Millis,
        producer: (i64, i16),
        partitions: &[TopicPartition],
    ) -> ErrorCode {
        let Response::AddPartitionsToTxn(r) =
            h.call(c, now, add_request(producer, partitions, false))
        else {
            panic!("not an AddPartitionsToTxn answer")
        };
        assert_eq!(r.results.len(), partitions.len());
        let error = r.results[0].1;
        assert!(r.results.iter().all(|(_, e)| *e == error));
        error
    }

    fn add_offsets(
        h: &mut Harness,
        c: &mut TxnCoordinator,
        producer: (i64, i16),
        group_id: &str,
    ) -> ErrorCode {
        let request = Request::AddOffsetsToTxn(AddOffsetsToTxnRequest {
            transactional_id: Arc::from(TXN),
            producer_id: producer.0,
            producer_epoch: producer.1,
            group_id: Arc::from(group_id),
        });
        match h.call(c, 10, request) {
            Response::AddOffsetsToTxn(r) => r.error,
            other => panic!("not an AddOffsetsToTxn answer: {other:?}"),
        }
    }

    fn verify(
        h: &mut Harness,
        c: &mut TxnCoordinator,
        producer: (i64, i16),
        partitions: &[TopicPartition],
    ) -> Vec<ErrorCode> {
        let Response::AddPartitionsToTxn(r) = h.call(c, 0, add_request(producer, partitions, true))
        else {
            panic!("not an AddPartitionsToTxn answer")
        };
        r.results.into_iter().map(|(_, e)| e).collect()
    }

    fn end(
        h: &mut Harness,
        c: &mut TxnCoordinator,
        now: Millis,
        producer: (i64, i16),
        committed: bool,
    ) -> EndTxnResponse {
        match h.call(c, now, end_request(producer, committed)) {
            Response::EndTxn(r) => r,
            other => panic!("not an EndTxn answer: {other:?}"),
        }
    }

    fn txn(c: &TxnCoordinator) -> TxnSummary {
        c.transactions()
            .into_iter()
            .find(|t| &*t.transactional_id == TXN)
            .expect("the transaction is loaded")
    }

    fn states(h: &Harness) -> Vec<(TransactionState, TransactionState, i16)> {
        h.transitions
            .iter()
            .map(|t| (t.from, t.to, t.producer_epoch))
            .collect()
    }

    // ------------------------------------------------------------ states

    #[test]
    fn the_transition_table_is_kafkas() {
        let allowed: &[(TransactionState, TransactionState)] = &[
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Ongoing, Ongoing),
            (Empty, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (Empty, PrepareAbort),
            (CompleteCommit, PrepareAbort),
            (CompleteAbort, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteAbort, Dead),
            (CompleteCommit, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        for from in TransactionState::ALL {
            for to in TransactionState::ALL {
                assert_eq!(
                    to.can_enter_from(from),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
        assert_eq!(PrepareEpochFence.to_string(), "PrepareEpochFence");
    }

    fn metadata_in(state: TransactionState) -> TransactionMetadata {
        let mut m = TransactionMetadata::new(Arc::from(TXN), 0, 1000, TIMEOUT, 0);
        m.current.producer_epoch = 0;
        m.current.state = state;
        m
    }

    #[test]
    #[should_panic(expected = "illegal transition Empty -> PrepareCommit")]
    fn committing_an_empty_transaction_is_a_bug() {
        metadata_in(Empty).prepare_abort_or_commit(PrepareCommit, 0, NO_PRODUCER_ID, 0, false);
    }

    #[test]
    #[should_panic(expected = "illegal transition PrepareCommit -> Ongoing")]
    fn adding_partitions_to_a_prepared_transaction_is_a_bug() {
        metadata_in(PrepareCommit).prepare_add_partitions(&orders(1), 0, 0);
    }

    #[test]
    #[should_panic(expected = "illegal transition CompleteCommit -> CompleteAbort")]
    fn completing_twice_is_a_bug() {
        let mut m = metadata_in(CompleteCommit);
        let t = m.transit(CompleteAbort);
        m.prepare_transition(t);
    }

    #[test]
    #[should_panic(expected = "illegal transition Empty -> PrepareEpochFence")]
    fn fencing_without_a_transaction_is_a_bug() {
        metadata_in(Empty).fence_producer_epoch();
    }

    #[test]
    #[should_panic(expected = "completing Ongoing without preparing it")]
    fn completing_an_unprepared_transition_is_a_bug() {
        let mut m = metadata_in(Empty);
        let t = m.transit(Ongoing);
        m.complete_transition(&t);
    }

    // ------------------------------------------------------------ the happy paths

    #[test]
    fn a_commit_writes_its_markers_then_completes() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        assert_eq!(producer, (1000, 0));
        assert_eq!(
            add(&mut h, &mut c, 10, producer, &orders(2)),
            ErrorCode::None
        );
        let written = h.log.len();
        assert_eq!(
            add(&mut h, &mut c, 20, producer, &orders(1)),
            ErrorCode::None
        );
        assert_eq!(
            h.log.len(),
            written,
            "partitions already in: nothing written"
        );
        let t = txn(&c);
        assert_eq!(
            (t.state, t.partitions.clone(), t.txn_start_timestamp),
            (Ongoing, orders(2), 10)
        );

        let r = end(&mut h, &mut c, 30, producer, true);
        assert_eq!(
            (r.error, r.producer_id, r.producer_epoch),
            (ErrorCode::None, -1, -1)
        );
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state),
            (PrepareCommit, Some(CompleteCommit))
        );
        let sent = h.deliver_markers(&mut c, 40);
        assert_eq!(
            sent[0].markers,
            vec![TxnMarker {
                producer_id: 1000,
                producer_epoch: 0,
                committed: true,
                partitions: orders(2),
                coordinator_epoch: COORDINATOR_EPOCH,
            }]
        );
        let t = txn(&c);
        assert_eq!((t.state, t.pending_state), (CompleteCommit, None));
        assert!(t.partitions.is_empty());
        assert_eq!(
            states(&h),
            vec![
                (Empty, Empty, 0),
                (Empty, Ongoing, 0),
                (Ongoing, PrepareCommit, 0),
                (PrepareCommit, CompleteCommit, 0),
            ]
        );
        // A retried commit is answered again; an abort is not.
        let written = h.log.len();
        assert_eq!(
            end(&mut h, &mut c, 50, producer, true).error,
            ErrorCode::None
        );
        assert_eq!(h.log.len(), written);
        assert_eq!(
            end(&mut h, &mut c, 50, producer, false).error,
            ErrorCode::InvalidTxnState
        );
        // The next transaction starts anew.
        assert_eq!(
            add(&mut h, &mut c, 60, producer, &orders(1)[..1]),
            ErrorCode::None
        );
        assert_eq!(txn(&c).txn_start_timestamp, 60);
    }

    #[test]
    fn an_abort_writes_abort_markers() {
        let (mut h, mut c, producer) = ended(0, &orders(3), false);
        let sent = h.deliver_markers(&mut c, 30);
        assert!(!sent[0].markers[0].committed);
        assert_eq!(sent[0].markers[0].partitions, orders(3));
        assert_eq!(txn(&c).state, CompleteAbort);
        assert_eq!(
            end(&mut h, &mut c, 40, producer, false).error,
            ErrorCode::None
        );
        assert_eq!(
            end(&mut h, &mut c, 40, producer, true).error,
            ErrorCode::InvalidTxnState
        );
        // Ending a transaction that never began is refused.
        let (mut h, mut c) = (Harness::default(), coordinator(0, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        for committed in [true, false] {
            assert_eq!(
                end(&mut h, &mut c, 10, producer, committed).error,
                ErrorCode::InvalidTxnState
            );
        }
    }

    #[test]
    fn add_offsets_adds_the_groups_offsets_partition() {
        let (mut h, mut c) = (Harness::default(), coordinator(2, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        assert_eq!(
            add_offsets(&mut h, &mut c, producer, "my-group"),
            ErrorCode::None
        );
        // Utils.abs("my-group".hashCode) % 50 = 12.
        assert_eq!(txn(&c).partitions, vec![tp(OFFSETS_TOPIC, 12)]);
    }

    #[test]
    fn version_2_bumps_the_epoch_at_every_end_and_version_1_does_not() {
        for version in [1, 2] {
            let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
            let mut producer = init(&mut h, &mut c, 0);
            for round in 1..=3i16 {
                let now = Millis::from(round as u16) * 100;
                assert_eq!(
                    add(&mut h, &mut c, now, producer, &orders(1)),
                    ErrorCode::None
                );
                let r = end(&mut h, &mut c, now + 1, producer, round % 2 == 1);
                assert_eq!(r.error, ErrorCode::None);
                let sent = h.deliver_markers(&mut c, now + 2);
                if version == 2 {
                    assert_eq!((r.producer_id, r.producer_epoch), (1000, round));
                    assert_eq!(
                        sent[0].markers[0].producer_epoch, round,
                        "markers carry the bump"
                    );
                    // The old epoch is fenced for the next transaction.
                    assert_eq!(
                        add(&mut h, &mut c, now + 3, producer, &orders(1)),
                        ErrorCode::ProducerFenced
                    );
                    producer = (r.producer_id, r.producer_epoch);
                } else {
                    assert_eq!((r.producer_id, r.producer_epoch), (-1, -1));
                    assert_eq!(sent[0].markers[0].producer_epoch, 0);
                }
            }
            let t = txn(&c);
            assert_eq!(t.producer_epoch, if version == 2 { 3 } else { 0 });
        }
    }

    #[test]
    fn version_2_answers_a_retried_end_with_the_bumped_epoch() {
        let (mut h, mut c, producer) = open(2, &orders(1));
        // While the markers are written a retry is told to wait.
        assert_eq!(end(&mut h, &mut c, 20, producer, true).producer_epoch, 1);
        assert_eq!(
            end(&mut h, &mut c, 21, producer, true).error,
            ErrorCode::ConcurrentTransactions
        );
        h.deliver_markers(&mut c, 30);
        // Kafka's table: retry (epoch 0) / current (epoch 1) in CompleteCommit.
        let r = end(&mut h, &mut c, 40, producer, true);
        assert_eq!(
            (r.error, r.producer_id, r.producer_epoch),
            (ErrorCode::None, 1000, 1)
        );
        assert_eq!(
            end(&mut h, &mut c, 40, producer, false).error,
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            end(&mut h, &mut c, 40, (1000, 1), true).error,
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            end(&mut h, &mut c, 40, (1000, 5), true).error,
            ErrorCode::ProducerFenced
        );
        // An abort with the current epoch and no partition ends at once, bumping again.
        let written = h.log.len();
        let r = end(&mut h, &mut c, 50, (1000, 1), false);
        assert_eq!((r.error, r.producer_epoch), (ErrorCode::None, 2));
        assert!(
            h.deliver_markers(&mut c, 50).is_empty(),
            "no partition, no marker"
        );
        assert_eq!(h.log.len(), written + 2, "PrepareAbort, CompleteAbort");
        assert_eq!(txn(&c).state, CompleteAbort);
        let r = end(&mut h, &mut c, 60, (1000, 1), false);
        assert_eq!(
            (r.error, r.producer_epoch),
            (ErrorCode::None, 2),
            "retried abort"
        );
    }

    // ------------------------------------------------------------ fencing

    #[test]
    fn stale_epochs_and_unknown_producers_are_refused() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        let current = init_answer(h.call(&mut c, 10, init_request(producer.0, producer.1)));
        let current = (current.producer_id, current.producer_epoch);
        assert_eq!(current, (1000, 1));
        assert_eq!(
            add(&mut h, &mut c, 20, producer, &orders(1)),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            add(&mut h, &mut c, 20, (999, 1), &orders(1)),
            ErrorCode::InvalidProducerIdMapping
        );
        assert_eq!(
            add_offsets(&mut h, &mut c, producer, "g"),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            add(&mut h, &mut c, 30, current, &orders(1)),
            ErrorCode::None
        );
        assert_eq!(
            end(&mut h, &mut c, 40, producer, true).error,
            ErrorCode::ProducerFenced
        );
        let unknown = end_request_for("nobody", (1000, 0), true);
        let Response::EndTxn(r) = h.call(&mut c, 40, unknown) else {
            panic!("not an EndTxn answer")
        };
        assert_eq!(r.error, ErrorCode::InvalidProducerIdMapping);
        // An InitProducerId, even with an old epoch, fences the open transaction first.
        let r = init_answer(h.call(&mut c, 50, init_request(1000, 0)));
        assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
    }

    #[test]
    fn kip_360_bumps_the_producers_own_epoch() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        assert_eq!(init(&mut h, &mut c, 0), (1000, 0));
        let bump = |h: &mut Harness, c: &mut TxnCoordinator, p: i64, e: i16| {
            let r = init_answer(h.call(c, 10, init_request(p, e)));
            (r.error, r.producer_id, r.producer_epoch)
        };
        assert_eq!(bump(&mut h, &mut c, 1000, 0), (ErrorCode::None, 1000, 1));
        // The answer was lost: the retry gets the same epoch.
        assert_eq!(bump(&mut h, &mut c, 1000, 0), (ErrorCode::None, 1000, 1));
        assert_eq!(
            bump(&mut h, &mut c, 999, 1),
            (ErrorCode::ProducerFenced, -1, -1)
        );
        assert_eq!(bump(&mut h, &mut c, 1000, 1), (ErrorCode::None, 1000, 2));
        assert_eq!(
            bump(&mut h, &mut c, 1000, 0),
            (ErrorCode::ProducerFenced, -1, -1)
        );
        // A new instance (no id) bumps too, and forgets the last epoch.
        assert_eq!(init(&mut h, &mut c, 20), (1000, 3));
        assert_eq!(
            bump(&mut h, &mut c, 1000, 2),
            (ErrorCode::ProducerFenced, -1, -1)
        );
    }

    /// `InitProducerId` from a new instance while the old one has a transaction open.
    fn fence_ongoing(version: i16) {
        let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
        let old = init(&mut h, &mut c, 0);
        assert_eq!(add(&mut h, &mut c, 10, old, &orders(2)), ErrorCode::None);
        let r = init_answer(h.call(&mut c, 20, init_request(-1, -1)));
        assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
        // The fence bumps the epoch; version 2's abort bumps once more.
        let abort_epoch = if version == 2 { 2 } else { 1 };
        assert_eq!(
            states(&h)[2..],
            [
                (Ongoing, PrepareEpochFence, 1),
                (PrepareEpochFence, PrepareAbort, abort_epoch),
            ]
        );
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state),
            (PrepareAbort, Some(CompleteAbort))
        );
        // The old instance is fenced; the new one waits for the abort.
        assert_eq!(
            add(&mut h, &mut c, 21, old, &orders(1)),
            ErrorCode::ConcurrentTransactions
        );
        let r = init_answer(h.call(&mut c, 21, init_request(-1, -1)));
        assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
        let sent = h.deliver_markers(&mut c, 30);
        let m = &sent[0].markers[0];
        assert_eq!(
            (m.committed, m.producer_epoch, m.partitions.clone()),
            (false, abort_epoch, orders(2))
        );
        assert_eq!(txn(&c).state, CompleteAbort);
        assert_eq!(
            end(&mut h, &mut c, 40, old, true).error,
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            add(&mut h, &mut c, 40, old, &orders(1)),
            ErrorCode::ProducerFenced
        );
        // The retry succeeds with the next epoch.
        assert_eq!(init(&mut h, &mut c, 50), (1000, abort_epoch + 1));
    }

    #[test]
    fn init_producer_id_fences_an_ongoing_transaction() {
        fence_ongoing(1);
    }

    #[test]
    fn init_producer_id_fences_an_ongoing_transaction_with_version_2() {
        fence_ongoing(2);
    }

    /// The fenced instance's `EndTxn` arrives while the fence's abort is being written
    /// (Kafka's `TransactionCoordinator.endTransaction`: its epoch is below the bumped
    /// one, `PRODUCER_FENCED`, with versions 1 and 2; nothing is written).
    fn end_txn_while_the_fence_is_written(version: i16) {
        let (mut h, mut c) = (Harness::default(), coordinator(version, Bugs::default()));
        let old = init(&mut h, &mut c, 0);
        assert_eq!(add(&mut h, &mut c, 10, old, &orders(2)), ErrorCode::None);
        let to = ReplyTo {
            client: NodeId::Producer(1),
            correlation_id: 1,
        };
        let fence = c.handle(20, 0, to, init_request(-1, -1), &mut || None);
        assert_eq!(fence.appends.len(), 1, "the fence's PrepareAbort");
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state, t.producer_epoch),
            (PrepareEpochFence, Some(PrepareAbort), 1)
        );
        for committed in [true, false] {
            let out = c.handle(21, 0, to, end_request(old, committed), &mut || None);
            assert!(out.appends.is_empty() && out.transitions.is_empty());
            let Response::EndTxn(r) = &out.responses[0].1 else {
                panic!("not an EndTxn answer")
            };
            assert_eq!(r.error, ErrorCode::ProducerFenced, "commit {committed}");
        }
        // The fence goes on: its abort is written and the markers carry the new epoch.
        h.run(&mut c, 22, fence);
        let abort_epoch = if version == 2 { 2 } else { 1 };
        let sent = h.deliver_markers(&mut c, 30);
        let m = &sent[0].markers[0];
        assert_eq!((m.committed, m.producer_epoch), (false, abort_epoch));
        assert_eq!(txn(&c).state, CompleteAbort);
    }

    #[test]
    fn end_txn_while_the_fence_is_written_is_producer_fenced() {
        end_txn_while_the_fence_is_written(1);
    }

    #[test]
    fn end_txn_while_the_fence_is_written_is_producer_fenced_with_version_2() {
        end_txn_while_the_fence_is_written(2);
    }

    #[test]
    fn a_timed_out_transaction_is_aborted_with_a_bumped_epoch() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        assert_eq!(
            add(&mut h, &mut c, 1_000, producer, &orders(1)),
            ErrorCode::None
        );
        // Checked every 10 s (the first check 10 s after the load): open since 1 s with
        // a 60 s timeout, it is older than its timeout at the check of 70 s.
        for check in (10_000..=60_000).step_by(10_000) {
            assert_eq!(c.next_timer(), Some(check));
            let out = c.on_timer(check);
            assert!(h.run(&mut c, check, out).is_empty());
            assert_eq!(txn(&c).state, Ongoing, "at {check}");
        }
        assert_eq!(c.next_timer(), Some(70_000));
        let out = c.on_timer(70_000);
        assert!(h.run(&mut c, 70_000, out).is_empty(), "nobody to answer");
        assert_eq!(
            states(&h)[2..],
            [
                (Ongoing, PrepareEpochFence, 1),
                (PrepareEpochFence, PrepareAbort, 1)
            ]
        );
        assert_eq!(
            add(&mut h, &mut c, 70_001, producer, &orders(1)),
            ErrorCode::ConcurrentTransactions
        );
        let sent = h.deliver_markers(&mut c, 70_010);
        assert_eq!(sent[0].markers[0].producer_epoch, 1);
        assert!(!sent[0].markers[0].committed);
        assert_eq!(
            end(&mut h, &mut c, 70_020, producer, true).error,
            ErrorCode::ProducerFenced
        );
        assert_eq!(txn(&c).state, CompleteAbort);
        assert_eq!(c.next_timer(), Some(80_000));
    }

    #[test]
    fn a_failed_fence_keeps_its_epoch_and_is_not_bumped_again() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        let old = init(&mut h, &mut c, 0);
        assert_eq!(add(&mut h, &mut c, 10, old, &orders(1)), ErrorCode::None);
        let to = ReplyTo {
            client: NodeId::Producer(1),
            correlation_id: 1,
        };
        let out = c.handle(20, 0, to, init_request(-1, -1), &mut || None);
        assert_eq!(out.transitions.len(), 1, "the fence, at once");
        let done = c.on_append_complete(20, out.appends[0].id, ErrorCode::NotEnoughReplicas);
        assert_eq!(
            init_answer(done.responses[0].1.clone()).error,
            ErrorCode::CoordinatorNotAvailable
        );
        assert_eq!(
            (done.transitions[0].from, done.transitions[0].to),
            (PrepareEpochFence, Ongoing)
        );
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state, t.producer_epoch),
            (Ongoing, None, 1)
        );
        assert_eq!(
            add(&mut h, &mut c, 30, old, &orders(1)),
            ErrorCode::ProducerFenced
        );
        // The next fence does not bump again.
        let r = init_answer(h.call(&mut c, 40, init_request(-1, -1)));
        assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
        assert_eq!(
            h.deliver_markers(&mut c, 50)[0].markers[0].producer_epoch,
            1
        );
        assert_eq!(init(&mut h, &mut c, 60), (1000, 2));
    }

    #[test]
    fn no_producer_epoch_fencing_lets_a_zombie_end_its_successors_transaction() {
        for bug in [false, true] {
            let bugs = if bug {
                Bugs::of(&[Bug::NoProducerEpochFencing])
            } else {
                Bugs::default()
            };
            let (mut h, mut c) = (Harness::default(), coordinator(2, bugs));
            let zombie = init(&mut h, &mut c, 0);
            let successor = init(&mut h, &mut c, 10);
            assert_eq!(successor, (1000, 1));
            assert_eq!(
                add(&mut h, &mut c, 20, successor, &orders(1)),
                ErrorCode::None
            );
            let expected = if bug {
                ErrorCode::None
            } else {
                ErrorCode::ProducerFenced
            };
            let zombie_partition = [tp("orders", 5)];
            assert_eq!(add(&mut h, &mut c, 30, zombie, &zombie_partition), expected);
            assert_eq!(verify(&mut h, &mut c, zombie, &orders(1)), vec![expected]);
            assert_eq!(end(&mut h, &mut c, 40, zombie, true).error, expected);
            let t = txn(&c);
            if bug {
                assert_eq!(
                    t.state, PrepareCommit,
                    "the zombie committed the successor's work"
                );
                assert_eq!(t.partitions, vec![tp("orders", 0), tp("orders", 5)]);
            } else {
                assert_eq!((t.state, t.partitions), (Ongoing, orders(1)));
            }
        }
    }

    // ------------------------------------------------------------ verification

    #[test]
    fn verify_only_answers_per_partition_and_writes_nothing() {
        let (mut h, mut c) = (Harness::default(), coordinator(1, Bugs::default()));
        let producer = init(&mut h, &mut c, 0);
        assert_eq!(
            verify(&mut h, &mut c, producer, &orders(1)),
            vec![ErrorCode::InvalidTxnState]
        );
        assert_eq!(
            add(&mut h, &mut c, 10, producer, &orders(1)),
            ErrorCode::None
        );
        let written = h.log.len();
        assert_eq!(
            verify(&mut h, &mut c, producer, &orders(2)),
            vec![ErrorCode::None, ErrorCode::InvalidTxnState]
        );
        assert_eq!(h.log.len(), written);
        assert_eq!(txn(&c).partitions, orders(1), "nothing added");
        assert_eq!(
            verify(&mut h, &mut c, (1000, 1), &orders(1)),
            vec![ErrorCode::ProducerFenced]
        );
        assert_eq!(
            verify(&mut h, &mut c, (7, 0), &orders(1)),
            vec![ErrorCode::InvalidProducerIdMapping]
        );
        assert_eq!(
            end(&mut h, &mut c, 20, producer, true).error,
            ErrorCode::None
        );
        assert_eq!(
            verify(&mut h, &mut c, producer, &orders(1)),
            vec![ErrorCode::ConcurrentTransactions]
        );
    }

    // ------------------------------------------------------------ pending transitions

    #[test]
    fn requests_wait_while_a_transition_is_being_written() {
        let mut c = coordinator(1, Bugs::default());
        let to = |n| ReplyTo {
            client: NodeId::Producer(0),
            correlation_id: n,
        };
        let mut ids = || Some(1000);
        let pending = c.handle(0, 0, to(1), init_request(-1, -1), &mut ids);
        assert!(pending.responses.is_empty(), "answered once replicated");
        assert_eq!(txn(&c).pending_state, Some(Empty));
        let again = c.handle(1, 0, to(2), init_request(-1, -1), &mut ids);
        assert_eq!(
            init_answer(again.responses[0].1.clone()).error,
            ErrorCode::ConcurrentTransactions
        );
        let r = c.handle(
            1,
            0,
            to(3),
            add_request((1000, -1), &orders(1), false),
            &mut ids,
        );
        assert!(matches!(
            &r.responses[0].1,
            Response::AddPartitionsToTxn(a) if a.results[0].1 == ErrorCode::ConcurrentTransactions
        ));
        let r = c.handle(1, 0, to(4), end_request((1000, -1), true), &mut ids);
        assert!(matches!(
            &r.responses[0].1,
            Response::EndTxn(e) if e.error == ErrorCode::ConcurrentTransactions
        ));
        let done = c.on_append_complete(2, pending.appends[0].id, ErrorCode::None);
        let r = init_answer(done.responses[0].1.clone());
        assert_eq!(
            (r.error, r.producer_id, r.producer_epoch),
            (ErrorCode::None, 1000, 0)
        );
        // A failed write changes nothing and is answered with Kafka's mapping.
        for (error, answer) in [
            (ErrorCode::NotLeaderOrFollower, ErrorCode::NotCoordinator),
            (
                ErrorCode::RequestTimedOut,
                ErrorCode::CoordinatorNotAvailable,
            ),
            (
                ErrorCode::NotEnoughReplicas,
                ErrorCode::CoordinatorNotAvailable,
            ),
        ] {
            let out = c.handle(
                3,
                0,
                to(5),
                add_request((1000, 0), &orders(1), false),
                &mut ids,
            );
            let done = c.on_append_complete(4, out.appends[0].id, error);
            assert!(matches!(
                &done.responses[0].1,
                Response::AddPartitionsToTxn(a) if a.results[0].1 == answer
            ));
            let t = txn(&c);
            assert_eq!((t.state, t.pending_state), (Empty, None));
        }
    }

    #[test]
    fn producer_ids_and_bad_requests() {
        let mut c = coordinator(1, Bugs::default());
        let to = ReplyTo {
            client: NodeId::Producer(0),
            correlation_id: 1,
        };
        let error = |c: &mut TxnCoordinator, request: Request| {
            let out = c.handle(0, 0, to, request, &mut || None);
            assert!(out.appends.is_empty());
            init_answer(out.responses[0].1.clone()).error
        };
        assert_eq!(
            error(&mut c, init_request(-1, -1)),
            ErrorCode::CoordinatorLoadInProgress,
            "no producer id at hand"
        );
        assert!(c.transactions().is_empty());
        for ms in [0, 900_001] {
            assert_eq!(
                error(&mut c, init_request_for(TXN, ms, (-1, -1))),
                ErrorCode::InvalidTransactionTimeout
            );
        }
        assert_eq!(
            error(&mut c, init_request(1000, -1)),
            ErrorCode::InvalidRequest
        );
        let nameless = init_request_for("", TIMEOUT, (-1, -1));
        assert_eq!(error(&mut c, nameless), ErrorCode::InvalidRequest);
        let out = c.handle(0, 3, to, init_request(-1, -1), &mut || Some(5));
        assert_eq!(
            init_answer(out.responses[0].1.clone()).error,
            ErrorCode::NotCoordinator,
            "partition 3 is not loaded"
        );
        let mut idempotent = init_request(-1, -1);
        if let Request::InitProducerId(r) = &mut idempotent {
            r.transactional_id = None;
        }
        assert!(transactional_id(&idempotent).is_none(), "the broker's own");
    }

    #[test]
    fn exhausted_epochs_move_to_a_new_producer_id() {
        // InitProducerId at the last usable epoch.
        let record = |state, epoch, partitions: Vec<TopicPartition>| {
            let t = TxnValue {
                producer_id: 500,
                previous_producer_id: 500,
                next_producer_id: NO_PRODUCER_ID,
                producer_epoch: epoch,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                txn_timeout_ms: TIMEOUT,
                state,
                topic_partitions: partitions.into_iter().collect(),
                txn_start_timestamp: if state == Empty { -1 } else { 0 },
                txn_last_update_timestamp: 0,
                client_transaction_version: 2,
            };
            encode_batch(0, vec![(encode_key(TXN), encode_value(&t, 2))], None)
        };
        let mut h = Harness::default();
        let mut c = TxnCoordinator::new(&config(2), Bugs::default());
        c.load(0, 0, 1, &[record(CompleteCommit, i16::MAX - 1, vec![])]);
        assert_eq!(init(&mut h, &mut c, 10), (1000, 0));
        let t = &c.txns[TXN];
        assert_eq!(
            (
                t.current.previous_producer_id,
                t.current.last_producer_epoch
            ),
            (500, NO_PRODUCER_EPOCH)
        );

        // Version 2's EndTxn at the last usable epoch moves to the next id at Complete*.
        let mut h = Harness::default();
        let mut c = TxnCoordinator::new(&config(2), Bugs::default());
        c.load(0, 0, 1, &[record(Ongoing, i16::MAX - 1, orders(1))]);
        let r = end(&mut h, &mut c, 10, (500, i16::MAX - 1), true);
        assert_eq!(
            (r.error, r.producer_id, r.producer_epoch),
            (ErrorCode::None, 1000, 0)
        );
        let sent = h.deliver_markers(&mut c, 20);
        let m = &sent[0].markers[0];
        assert_eq!((m.producer_id, m.producer_epoch), (500, i16::MAX));
        let t = txn(&c);
        assert_eq!(
            (t.state, t.producer_id, t.producer_epoch),
            (CompleteCommit, 1000, 0)
        );
        // A retry with the old id and epoch is recognised.
        let r = end(&mut h, &mut c, 30, (500, i16::MAX - 1), true);
        assert_eq!(
            (r.error, r.producer_id, r.producer_epoch),
            (ErrorCode::None, 1000, 0)
        );
        assert_eq!(
            add(&mut h, &mut c, 40, (1000, 0), &orders(1)),
            ErrorCode::None
        );
    }

    // ------------------------------------------------------------ markers

    #[test]
    fn markers_are_retried_until_their_leaders_take_them() {
        let parts = [tp("orders", 0), tp("orders", 1), tp("payments", 0)];
        let (_, mut c, _) = ended(1, &parts, true);
        // orders-0 on broker 1, orders-1 on broker 2, payments-0 without a leader.
        let mut leaders = BTreeMap::from([(parts[0].clone(), 1), (parts[1].clone(), 2)]);
        let requests = c.markers_to_send(100, &mut |tp| leaders.get(tp).copied());
        let by_broker: Vec<(BrokerId, Vec<TopicPartition>)> = requests
            .iter()
            .map(|r| (r.destination, r.request.markers[0].partitions.clone()))
            .collect();
        assert_eq!(
            by_broker,
            vec![(1, vec![parts[0].clone()]), (2, vec![parts[1].clone()])]
        );
        assert_eq!(
            c.next_timer(),
            Some(100 + MARKER_RETRY_BACKOFF_MS),
            "payments-0"
        );
        assert!(c
            .markers_to_send(100, &mut |tp| leaders.get(tp).copied())
            .is_empty());
        // Broker 1 no longer leads; broker 2 never answers.
        let refused = answer_all(&requests[0].request, ErrorCode::NotLeaderOrFollower);
        let out = c.on_markers_response(150, requests[0].id, Ok(&refused));
        assert!(out.appends.is_empty());
        let out = c.on_markers_response(200, requests[1].id, Err(ErrorCode::RequestTimedOut));
        assert!(out.appends.is_empty());
        // payments-0 is due at 200, the others after their backoff.
        leaders.insert(parts[0].clone(), 3);
        leaders.insert(parts[2].clone(), 2);
        let requests = c.markers_to_send(200, &mut |tp| leaders.get(tp).copied());
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].request.markers[0].partitions,
            vec![parts[2].clone()]
        );
        assert_eq!(c.next_timer(), Some(250));
        assert!(
            c.markers_to_send(250, &mut |tp| leaders.get(tp).copied())
                .iter()
                .all(|r| r.destination == 3),
            "broker 2 has a request in flight"
        );
        let ok = answer_all(&requests[0].request, ErrorCode::None);
        let out = c.on_markers_response(260, requests[0].id, Ok(&ok));
        assert!(out.appends.is_empty(), "two partitions left");
        let t = txn(&c);
        assert_eq!(
            t.partitions,
            vec![parts[0].clone(), parts[1].clone()],
            "payments-0 written"
        );
        assert_eq!(t.state, PrepareCommit);
    }

    /// Kafka's `TransactionMarkerRequestCompletionHandler`, error by error: the
    /// retriable ones are sent again after the backoff (not a moment before) while the
    /// other partition's marker counts as written; a stale producer epoch or a fenced
    /// coordinator stops the markers; the last partition written completes.
    #[test]
    fn marker_errors_are_retried_after_the_backoff_or_stop_the_markers() {
        let retriable = [
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
            ErrorCode::RequestTimedOut,
            ErrorCode::KafkaStorageError,
            ErrorCode::NetworkException,
        ];
        for error in retriable {
            let parts = orders(2);
            let (mut h, mut c, _) = ended(1, &parts, true);
            let requests = c.markers_to_send(30, &mut |_| Some(1));
            assert_eq!(requests.len(), 1);
            let answer = WriteTxnMarkersResponse {
                markers: vec![(
                    requests[0].request.markers[0].producer_id,
                    vec![
                        (parts[0].clone(), ErrorCode::None),
                        (parts[1].clone(), error),
                    ],
                )],
            };
            let out = c.on_markers_response(40, requests[0].id, Ok(&answer));
            assert!(out.appends.is_empty(), "{error}: one partition left");
            assert_eq!(txn(&c).partitions, vec![parts[1].clone()], "{error}");
            let due = 40 + MARKER_RETRY_BACKOFF_MS;
            assert!(
                c.markers_to_send(due - 1, &mut |_| Some(1)).is_empty(),
                "{error}: not before the backoff"
            );
            let again = c.markers_to_send(due, &mut |_| Some(1));
            assert_eq!(
                again[0].request.markers[0].partitions,
                vec![parts[1].clone()],
                "{error}"
            );
            let ok = answer_all(&again[0].request, ErrorCode::None);
            let out = c.on_markers_response(due, again[0].id, Ok(&ok));
            assert!(h.run(&mut c, due, out).is_empty());
            assert_eq!(txn(&c).state, CompleteCommit, "{error}");
        }
        for error in [
            ErrorCode::InvalidProducerEpoch,
            ErrorCode::TransactionCoordinatorFenced,
        ] {
            let (_, mut c, _) = ended(1, &orders(1), false);
            let requests = c.markers_to_send(30, &mut |_| Some(1));
            let answer = answer_all(&requests[0].request, error);
            let out = c.on_markers_response(40, requests[0].id, Ok(&answer));
            assert!(out.appends.is_empty());
            assert!(
                c.markers_to_send(10_000, &mut |_| Some(1)).is_empty(),
                "{error}: no marker is sent again"
            );
            assert_eq!(txn(&c).state, PrepareAbort, "{error}");
        }
    }

    #[test]
    fn one_marker_request_per_leader_carries_every_transaction() {
        let mut h = Harness::default();
        let mut c = coordinator(1, Bugs::default());
        let mut producers = Vec::new();
        for (i, name) in ["a", "b"].iter().enumerate() {
            let r = init_answer(h.call(&mut c, 0, init_request_for(name, TIMEOUT, (-1, -1))));
            let producer = (r.producer_id, r.producer_epoch);
            h.call(
                &mut c,
                1,
                add_request_for(name, producer, &orders(i as u32 + 1), false),
            );
            h.call(&mut c, 2, end_request_for(name, producer, i == 0));
            producers.push(r.producer_id);
        }
        let requests = c.markers_to_send(10, &mut |_| Some(4));
        assert_eq!(requests.len(), 1);
        let markers = &requests[0].request.markers;
        assert_eq!(
            markers
                .iter()
                .map(|m| (m.producer_id, m.committed, m.partitions.len()))
                .collect::<Vec<_>>(),
            vec![(producers[0], true, 1), (producers[1], false, 2)]
        );
        let ok = answer_all(&requests[0].request, ErrorCode::None);
        let out = c.on_markers_response(20, requests[0].id, Ok(&ok));
        assert_eq!(out.appends.len(), 2, "both complete");
    }

    #[test]
    fn a_fenced_coordinator_stops_sending_markers() {
        let (mut h, mut c, _) = ended(1, &orders(2), true);
        let requests = c.markers_to_send(30, &mut |_| Some(1));
        let fenced = answer_all(
            &requests[0].request,
            ErrorCode::TransactionCoordinatorFenced,
        );
        let out = c.on_markers_response(40, requests[0].id, Ok(&fenced));
        assert!(out.appends.is_empty());
        assert!(c.markers_to_send(1_000, &mut |_| Some(1)).is_empty());
        assert_eq!(c.next_timer(), Some(10_000), "only the timeout check");
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state),
            (PrepareCommit, Some(CompleteCommit))
        );
        let r = init_answer(h.call(&mut c, 50, init_request(-1, -1)));
        assert_eq!(r.error, ErrorCode::ConcurrentTransactions);
    }

    #[test]
    fn a_failed_complete_is_written_again() {
        let (mut h, mut c, _) = ended(1, &orders(1), false);
        let requests = c.markers_to_send(30, &mut |_| Some(1));
        let ok = answer_all(&requests[0].request, ErrorCode::None);
        let out = c.on_markers_response(40, requests[0].id, Ok(&ok));
        let done = c.on_append_complete(50, out.appends[0].id, ErrorCode::RequestTimedOut);
        assert!(done.appends.is_empty() && done.transitions.is_empty());
        assert_eq!(c.next_timer(), Some(50 + MARKER_RETRY_BACKOFF_MS));
        let out = c.on_timer(150);
        assert_eq!(out.appends.len(), 1);
        h.run(&mut c, 150, out);
        assert_eq!(txn(&c).state, CompleteAbort);
        assert_eq!(c.next_timer(), Some(10_000));
    }

    // ------------------------------------------------------------ failover

    #[test]
    fn unloading_answers_not_coordinator() {
        let (_, mut c, producer) = open(1, &orders(1));
        let to = ReplyTo {
            client: NodeId::Producer(0),
            correlation_id: 99,
        };
        let pending = c.handle(20, 0, to, end_request(producer, true), &mut || None);
        let out = c.unload(0);
        assert!(matches!(
            &out.responses[..],
            [(r, Response::EndTxn(e))] if *r == to && e.error == ErrorCode::NotCoordinator
        ));
        assert!(c.transactions().is_empty() && !c.is_loaded(0));
        assert_eq!(c.next_timer(), None);
        let late = c.on_append_complete(30, pending.appends[0].id, ErrorCode::None);
        assert!(late.responses.is_empty() && late.transitions.is_empty());
        let r = c.handle(40, 0, to, end_request(producer, true), &mut || None);
        assert!(matches!(
            &r.responses[0].1,
            Response::EndTxn(e) if e.error == ErrorCode::NotCoordinator
        ));
    }

    /// A coordinator that prepared a commit (version 2) and fails before its markers,
    /// with a second transactional id left `Ongoing`; the new coordinator loads the log.
    fn failover(bugs: Bugs) -> (Harness, TxnCoordinator) {
        let (mut h, mut c, _) = ended(2, &orders(2), true);
        let r = init_answer(h.call(&mut c, 30, init_request_for("other", 15_000, (-1, -1))));
        let other = (r.producer_id, r.producer_epoch);
        h.call(
            &mut c,
            40,
            add_request_for("other", other, &[tp("payments", 0)], false),
        );
        drop(c);
        let mut moved = TxnCoordinator::new(&config(2), bugs);
        let out = moved.load(50_000, 0, COORDINATOR_EPOCH + 1, &h.log);
        assert!(out.appends.is_empty() && out.responses.is_empty());
        h.transitions.clear();
        (h, moved)
    }

    #[test]
    fn a_new_coordinator_completes_the_prepared_transactions_it_loads() {
        let (mut h, mut c) = failover(Bugs::default());
        let t = txn(&c);
        assert_eq!(
            (t.state, t.pending_state, t.producer_epoch),
            (PrepareCommit, Some(CompleteCommit), 1)
        );
        let sent = h.deliver_markers(&mut c, 50_010);
        assert_eq!(
            sent[0].markers[0],
            TxnMarker {
                producer_id: 1000,
                producer_epoch: 1,
                committed: true,
                partitions: orders(2),
                coordinator_epoch: COORDINATOR_EPOCH + 1,
            }
        );
        assert_eq!(txn(&c).state, CompleteCommit);
        assert_eq!(states(&h), vec![(PrepareCommit, CompleteCommit, 1)]);
        // The Ongoing one keeps its start time (40 ms) and its 15 s timeout.
        let other = c
            .transactions()
            .into_iter()
            .find(|t| &*t.transactional_id == "other");
        let other = other.expect("loaded");
        assert_eq!((other.state, other.txn_start_timestamp), (Ongoing, 40));
        assert_eq!(c.next_timer(), Some(60_000));
        let out = c.on_timer(60_000);
        h.run(&mut c, 60_000, out);
        assert_eq!(
            states(&h)[1..],
            [
                (Ongoing, PrepareEpochFence, 1),
                (PrepareEpochFence, PrepareAbort, 2)
            ]
        );
    }

    #[test]
    fn forget_prepared_txn_bug_drops_the_prepared_transaction() {
        let (mut h, mut c) = failover(Bugs::of(&[Bug::ForgetPreparedTxn]));
        let written = h.log.len();
        let t = txn(&c);
        assert_eq!((t.state, t.pending_state), (CompleteCommit, None));
        assert!(t.partitions.is_empty());
        assert!(
            h.deliver_markers(&mut c, 50_010).is_empty(),
            "no marker, ever"
        );
        assert_eq!(h.log.len(), written, "nothing written either");
    }

    // ------------------------------------------------------------ records

    fn transit(state: TransactionState) -> TxnValue {
        TxnValue {
            producer_id: 0,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 0,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: 60_000,
            state,
            topic_partitions: [tp("txtest", 0)].into_iter().collect(),
            txn_start_timestamp: 0x19e_7b4b_367a,
            txn_last_update_timestamp: 0x19e_7b4b_367a,
            client_transaction_version: 0,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn values_are_byte_for_byte_kafkas() {
        // An Ongoing record from a Kafka 4.0 broker with transaction.version 1.
        let kafka = "0001 0000000000000000 0000 0000ea60 01 02 07 747874657374 02 00000000 00 \
                     0000019e7b4b367a 0000019e7b4b367a 00";
        let ours = encode_value(&transit(Ongoing), 1);
        assert_eq!(hex(&ours), kafka.replace(' ', ""));
        assert_eq!(ours.len(), 48);
        // Version 0: i32 counts and i16 string lengths, no tagged fields.
        let v0 = encode_value(&transit(Ongoing), 0);
        assert_eq!(
            hex(&v0),
            "0000 0000000000000000 0000 0000ea60 01 00000001 0006 747874657374 00000001 \
             00000000 0000019e7b4b367a 0000019e7b4b367a"
                .replace(' ', "")
        );
        assert_eq!(hex(&encode_key("tx")), "000000027478");
    }

    #[test]
    fn records_round_trip() {
        let mut versions_2 = transit(PrepareCommit);
        versions_2.previous_producer_id = 41;
        versions_2.next_producer_id = 300;
        versions_2.client_transaction_version = 2;
        versions_2.topic_partitions = [tp("a", 1), tp("a", 3), tp("b", 0)].into_iter().collect();
        let mut empty = transit(Empty);
        empty.topic_partitions.clear();
        empty.txn_start_timestamp = -1;
        for (t, version) in [
            (transit(Ongoing), 0),
            (transit(CompleteAbort), 1),
            (versions_2.clone(), 2),
            (empty.clone(), 0),
            (empty, 2),
        ] {
            let (id, decoded) = decode_record(&encode_key("tx"), Some(&encode_value(&t, version)))
                .expect("decodes");
            let mut expected = t.clone();
            if version == 0 {
                // Version 0 has no tagged fields.
                expected.previous_producer_id = NO_PRODUCER_ID;
                expected.next_producer_id = NO_PRODUCER_ID;
                expected.client_transaction_version = 0;
            }
            assert_eq!((&*id, decoded), ("tx", Some(expected)), "version {version}");
        }
        let tagged = encode_value(&versions_2, 2);
        assert_eq!(
            hex(&tagged[tagged.len() - 25..]),
            "03000800000000000000290108000000000000012c02020002"
        );
        assert_eq!(
            decode_record(&encode_key("tx"), None),
            Ok((Arc::from("tx"), None))
        );
        assert!(decode_record(&encode_key("tx"), Some(&tagged[..tagged.len() - 1])).is_err());
        let mut dead = encode_value(&transit(Ongoing), 1).to_vec();
        dead[16] = Dead.id();
        assert!(decode_record(&encode_key("tx"), Some(&dead)).is_err());
        // A later version's tagged field is skipped.
        let mut later = encode_value(&transit(Ongoing), 1).to_vec();
        *later.last_mut().expect("tagged count") = 1;
        later.extend_from_slice(&[9, 2, 0xab, 0xcd]);
        let (_, decoded) = decode_record(&encode_key("tx"), Some(&later)).expect("decodes");
        assert_eq!(decoded, Some(transit(Ongoing)));
    }

    #[test]
    fn transactional_ids_map_to_partitions_as_groups_do() {
        assert_eq!(partition_for_transactional_id("my-group", 50), 12);
        let spec = transaction_state_topic_spec(&BrokerConfig::default(), 2);
        assert_eq!(
            (&*spec.name, spec.partitions, spec.replication_factor),
            (TRANSACTION_STATE_TOPIC, 50, 2)
        );
        let spec = transaction_state_topic_spec(&BrokerConfig::default(), 5);
        assert_eq!(spec.replication_factor, 3);
    }
}
