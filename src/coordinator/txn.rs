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
//! `min.insync.replicas` = `transaction.state.log.min.isr` for its appends and
//! `unclean.leader.election.enable=false` whatever the cluster's; call
//! [`TxnCoordinator::load`] when it becomes the leader of one of its partitions (with the
//! new leader epoch: the coordinator epoch of the markers) and [`TxnCoordinator::unload`]
//! when it stops; route the requests [`transactional_id`] names to
//! [`TxnCoordinator::handle`]; after every call into the coordinator and at
//! [`TxnCoordinator::next_timer`], call [`TxnCoordinator::on_timer`] (when due) and
//! [`TxnCoordinator::markers_to_send`], send each request to its broker and give every
//! answer, timeout or disconnection to [`TxnCoordinator::on_markers_response`].

use crate::actor::WallClock;
use crate::bugs::{Bug, Bugs};
use crate::coordinator::group::OFFSETS_TOPIC;
use crate::coordinator::shared::{
    encode_batch, partition_for_group, put_i16, put_i32, put_i64, put_partitions, put_str,
    put_timeout, topic_runs, CoordinatorAppend, Reader, ReplyTo,
};
use crate::kafka::config::BrokerConfig;
use crate::kafka::metadata::TopicSpec;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::*;
use crate::kafka::record::NO_PRODUCER_ID;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

mod records;
use records::*;

mod load;
use load::replay;
pub use load::{unreplicated_prepares, UnreplicatedPrepare};

mod metadata;
use metadata::*;

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
        // `min.insync.replicas` is `transaction.state.log.min.isr`, and
        // `unclean.leader.election.enable` is false whatever the cluster's (an
        // out-of-sync leader would drop prepared transactions the markers of which are
        // still to be written).
        config: crate::kafka::config::TopicConfig {
            min_insync_replicas: Some(config.transaction_state_log_min_isr),
            unclean_leader_election_enable: Some(false),
            ..Default::default()
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

/// An `EndTxn` as the coordinator judges it: from a client, or its own abort of a
/// fenced or timed-out transaction.
#[derive(Clone, Copy, Debug)]
struct EndTxnAsk {
    producer_id: i64,
    producer_epoch: i16,
    committed: bool,
    from_client: bool,
}

/// The state an `EndTxn` prepares and whether no partition was added (version 2's
/// empty transaction), or the error it is answered with.
type EndDecision = Result<(TransactionState, bool), ErrorCode>;

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
    /// The broker's wall clock: the transactions' timestamps and timeouts
    /// (`TransactionStateManager` reads `time.milliseconds()`), its batches' CreateTime.
    clock: WallClock,
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
            clock: WallClock::default(),
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
        let mut out = TxnCoordinatorOutput::default();
        for (id, (t, _)) in replay(partition, batches) {
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
                    let t = m.prepare_complete(self.clock.ms(now));
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
        for (id, _) in self.txns.extract_if(.., |_, m| m.partition == partition) {
            self.markers.remove(&id);
            self.complete_retries.remove(&id);
        }
        for (_, a) in self.appends.extract_if(.., |_, a| a.partition == partition) {
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
            batch: encode_batch(self.clock.timestamp(now), vec![record], None),
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
            let m = TransactionMetadata::new(
                id.clone(),
                partition,
                producer_id,
                timeout,
                self.clock.ms(now),
            );
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
        let wall = self.clock.ms(now);
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
                    m.prepare_producer_id_rotation(producer_id, timeout, wall, expected.is_some())
                } else {
                    match m.prepare_increment_producer_epoch(
                        timeout,
                        expected.map(|(_, e)| e),
                        wall,
                    ) {
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
        let transit = m.prepare_add_partitions(partitions, self.clock.ms(now), client_version);
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
        let ask = EndTxnAsk {
            producer_id,
            producer_epoch,
            committed,
            from_client,
        };
        let decision = if v2 {
            self.end_txn_decision_v2(m, ask)
        } else {
            self.end_txn_decision_v1(m, ask)
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
            self.clock.ms(now),
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
    fn end_txn_decision_v1(&self, m: &TransactionMetadata, ask: EndTxnAsk) -> EndDecision {
        let epoch = if ask.from_client {
            self.accept_stale_epoch(m, ask.producer_id, ask.producer_epoch)
        } else {
            ask.producer_epoch
        };
        if m.current.producer_id != ask.producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        // Clients must send the current epoch; the coordinator's own abort sends the
        // fenced one.
        if (ask.from_client && epoch != m.current.producer_epoch)
            || epoch < m.current.producer_epoch
        {
            return Err(ErrorCode::ProducerFenced);
        }
        end_txn_target(m, ask.committed, None)
    }

    /// Kafka 4's `endTransaction` checks for transaction version 2, where every end
    /// bumps the epoch: a retry carries the epoch before the bump (or, after an epoch
    /// overflow, the previous producer id at `Short.MAX_VALUE - 1`).
    fn end_txn_decision_v2(&self, m: &TransactionMetadata, ask: EndTxnAsk) -> EndDecision {
        use TransactionState::*;
        let fence = m.current.state == PrepareEpochFence;
        // (valid epoch, retry after a bump, retry after an overflow)
        let check = |epoch: i16| {
            let retry_on_overflow = !fence
                && m.current.previous_producer_id == ask.producer_id
                && epoch == i16::MAX - 1
                && m.current.producer_epoch == 0;
            let retry_on_bump =
                !fence && i32::from(m.current.producer_epoch) == i32::from(epoch) + 1;
            let valid = if fence {
                (!ask.from_client || epoch == m.current.producer_epoch)
                    && epoch >= m.current.producer_epoch
            } else {
                match m.current.state {
                    Ongoing if self.bugs.on(Bug::LateEndTxn) && retry_on_bump => true,
                    Ongoing | Empty | Dead | PrepareEpochFence => epoch == m.current.producer_epoch,
                    PrepareCommit | PrepareAbort => retry_on_bump,
                    CompleteCommit | CompleteAbort => {
                        retry_on_bump || retry_on_overflow || epoch == m.current.producer_epoch
                    }
                }
            };
            (valid, retry_on_bump, retry_on_overflow)
        };
        let (mut valid, mut retry_on_bump, mut retry_on_overflow) = check(ask.producer_epoch);
        if !valid
            && ask.from_client
            && self.accept_stale_epoch(m, ask.producer_id, ask.producer_epoch) != ask.producer_epoch
        {
            (valid, retry_on_bump, retry_on_overflow) = check(m.current.producer_epoch);
        }
        let is_retry = retry_on_bump || retry_on_overflow;
        if m.current.producer_id != ask.producer_id && !retry_on_overflow {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if !valid {
            return Err(ErrorCode::ProducerFenced);
        }
        end_txn_target(m, ask.committed, Some(is_retry))
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
        let complete = m.prepare_complete(self.clock.ms(now));
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

    /// Sets the broker's wall clock (see [`WallClock`]).
    pub fn set_wall_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    /// Aborts transactions open longer than their timeout (every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`) and writes again
    /// the `Complete*` records whose append failed.
    pub fn on_timer(&mut self, now: Millis) -> TxnCoordinatorOutput {
        let mut out = TxnCoordinatorOutput::default();
        if !self.loaded.is_empty() && self.next_abort_check.is_some_and(|t| t <= now) {
            self.next_abort_check = Some(now + self.abort_interval_ms);
            let wall = self.clock.ms(now);
            let timed_out: Vec<Arc<str>> = self
                .txns
                .iter()
                .filter(|(_, m)| {
                    m.current.state == TransactionState::Ongoing
                        && m.pending_state.is_none()
                        && m.current
                            .txn_start_timestamp
                            .saturating_add(m.current.txn_timeout_ms as i64)
                            < wall
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

#[cfg(test)]
mod tests;
