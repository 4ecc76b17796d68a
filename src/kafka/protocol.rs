//! Kafka's request/response APIs and error codes, as plain data.
//!
//! Every message between simulated nodes is a [`Message`]: a request or a response
//! carrying a correlation id, exactly as on Kafka's wire. Names follow Kafka's API keys
//! (`Produce`, `Fetch`, `ListOffsets`, `Metadata`, `OffsetsForLeaderEpoch`,
//! `BrokerRegistration`, `BrokerHeartbeat`, `AlterPartition`, `ElectLeaders`, ...) and
//! error names (`NOT_LEADER_OR_FOLLOWER`, `NOT_ENOUGH_REPLICAS`, ...). Record batches
//! travel as encoded record batch v2 bytes (see [`crate::kafka::record`]).

use crate::kafka::config::{Acks, IsolationLevel};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Simulated time in milliseconds since the start of the run.
pub type Millis = u64;

/// A broker's `node.id`.
pub type BrokerId = u32;
/// An offset in a partition's log.
pub type Offset = i64;
/// A partition's leader epoch.
pub type LeaderEpoch = i32;

/// Every addressable process in the simulation.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    /// The KRaft controller (a single voter for now).
    Controller,
    /// A broker, by `node.id`.
    Broker(BrokerId),
    /// A producer client, by index in the scenario.
    Producer(u32),
    /// A consumer client, by index in the scenario.
    Consumer(u32),
    /// A read-process-write pipeline instance (a consumer and a producer in one
    /// process), by index in the scenario.
    Pipeline(u32),
    /// The nemesis' admin client (leader moves).
    Nemesis,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Controller => write!(f, "controller"),
            NodeId::Broker(id) => write!(f, "broker-{id}"),
            NodeId::Producer(i) => write!(f, "producer-{i}"),
            NodeId::Consumer(i) => write!(f, "consumer-{i}"),
            NodeId::Pipeline(i) => write!(f, "pipeline-{i}"),
            NodeId::Nemesis => write!(f, "nemesis"),
        }
    }
}

pub use super::topic_partition::TopicPartition;

/// Kafka's error codes (the subset this simulation produces), with Kafka's names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 0.
    None,
    /// 1: the requested offset is outside the log's range.
    OffsetOutOfRange,
    /// 2: a record batch failed its CRC or could not be parsed.
    CorruptMessage,
    /// 3.
    UnknownTopicOrPartition,
    /// 5: no leader right now (election in progress).
    LeaderNotAvailable,
    /// 6: this broker is not the leader (or follower) for the partition.
    NotLeaderOrFollower,
    /// 7: the request timed out (server side: `acks=all` not satisfied in time).
    RequestTimedOut,
    /// 13: the connection broke or the response never came (client side).
    NetworkException,
    /// 14: the coordinator is loading its state (or has no producer ids yet).
    CoordinatorLoadInProgress,
    /// 15: the coordinator is not available.
    CoordinatorNotAvailable,
    /// 17: the request names a topic it may not act on (an internal topic for
    /// `DeleteRecords`).
    InvalidTopicException,
    /// 16: this broker is not the coordinator.
    NotCoordinator,
    /// 22: the generation in a group request is not the group's current one.
    IllegalGeneration,
    /// 25: the coordinator does not know this member id.
    UnknownMemberId,
    /// 26: the session timeout is outside the broker's allowed range.
    InvalidSessionTimeout,
    /// 27: the group is rebalancing; the member must rejoin.
    RebalanceInProgress,
    /// 19: fewer in-sync replicas than `min.insync.replicas`; not appended.
    NotEnoughReplicas,
    /// 20: appended, but the ISR shrank below `min.insync.replicas` before it committed.
    NotEnoughReplicasAfterAppend,
    /// 41: the receiver is not the active controller.
    NotController,
    /// 45: the producer's sequence number is not the next one.
    OutOfOrderSequenceNumber,
    /// 46: the batch was already appended.
    DuplicateSequenceNumber,
    /// 47: the producer's epoch is stale.
    InvalidProducerEpoch,
    /// 56: the log directory failed.
    KafkaStorageError,
    /// 59: the broker has no state for this producer id.
    UnknownProducerId,
    /// 74: the request's leader epoch is older than the partition's.
    FencedLeaderEpoch,
    /// 75: the request's leader epoch is newer than the partition's.
    UnknownLeaderEpoch,
    /// 78: the new leader's high watermark is not yet known.
    OffsetNotAvailable,
    /// 80: no replica is eligible for the requested election.
    PreferredLeaderNotAvailable,
    /// 83: no eligible leader (the ISR is empty or fenced).
    EligibleLeadersNotAvailable,
    /// 84: the partition already has the requested leader.
    ElectionNotNeeded,
    /// 79: a first JoinGroup without a member id: rejoin with the id given (KIP-394).
    MemberIdRequired,
    /// 82: another instance with the same `group.instance.id` took over (KIP-345).
    FencedInstanceId,
    /// 77: the broker epoch in the request is stale.
    StaleBrokerEpoch,
    /// 102: the broker is not registered with the controller.
    BrokerIdNotRegistered,
    /// 95: an AlterPartition carried a stale partition epoch.
    InvalidUpdateVersion,
    /// 101: a broker id registered by another incarnation whose session is still alive
    /// (`ClusterControlManager.registerBroker`).
    DuplicateBrokerRegistration,
    /// 107: an AlterPartition's new ISR holds an ineligible (fenced, unregistered)
    /// replica; the request was not applied.
    IneligibleReplica,
    /// 55: the controller did not attempt the operation (INELIGIBLE_REPLICA before
    /// AlterPartition v2).
    OperationNotAttempted,
    /// 48: a transactional request in a state that does not allow it.
    InvalidTxnState,
    /// 49: the producer id is not the one assigned to the `transactional.id`.
    InvalidProducerIdMapping,
    /// 50: `transaction.timeout.ms` above `transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// 51: another operation on the same transaction is under way; retry.
    ConcurrentTransactions,
    /// 52: the coordinator sending `WriteTxnMarkers` is no longer the coordinator.
    TransactionCoordinatorFenced,
    /// 88: transactional offsets of the group are pending (`require_stable`); retry.
    UnstableOffsetCommit,
    /// 90: a newer producer with the same `transactional.id` exists.
    ProducerFenced,
    /// 42: the request was malformed.
    InvalidRequest,
}

impl ErrorCode {
    /// The first error of a response's per-partition results, `NONE` when all passed.
    pub fn first_error<'a, T: 'a>(results: impl IntoIterator<Item = &'a (T, ErrorCode)>) -> Self {
        results
            .into_iter()
            .map(|(_, e)| *e)
            .find(|e| *e != ErrorCode::None)
            .unwrap_or(ErrorCode::None)
    }

    /// Kafka's numeric error code.
    pub fn code(self) -> i16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::OffsetOutOfRange => 1,
            ErrorCode::CorruptMessage => 2,
            ErrorCode::UnknownTopicOrPartition => 3,
            ErrorCode::LeaderNotAvailable => 5,
            ErrorCode::NotLeaderOrFollower => 6,
            ErrorCode::RequestTimedOut => 7,
            ErrorCode::NetworkException => 13,
            ErrorCode::CoordinatorLoadInProgress => 14,
            ErrorCode::CoordinatorNotAvailable => 15,
            ErrorCode::NotCoordinator => 16,
            ErrorCode::InvalidTopicException => 17,
            ErrorCode::NotEnoughReplicas => 19,
            ErrorCode::IllegalGeneration => 22,
            ErrorCode::UnknownMemberId => 25,
            ErrorCode::InvalidSessionTimeout => 26,
            ErrorCode::RebalanceInProgress => 27,
            ErrorCode::MemberIdRequired => 79,
            ErrorCode::FencedInstanceId => 82,
            ErrorCode::NotEnoughReplicasAfterAppend => 20,
            ErrorCode::NotController => 41,
            ErrorCode::InvalidRequest => 42,
            ErrorCode::OutOfOrderSequenceNumber => 45,
            ErrorCode::DuplicateSequenceNumber => 46,
            ErrorCode::InvalidProducerEpoch => 47,
            ErrorCode::KafkaStorageError => 56,
            ErrorCode::UnknownProducerId => 59,
            ErrorCode::FencedLeaderEpoch => 74,
            ErrorCode::UnknownLeaderEpoch => 75,
            ErrorCode::StaleBrokerEpoch => 77,
            ErrorCode::OffsetNotAvailable => 78,
            ErrorCode::PreferredLeaderNotAvailable => 80,
            ErrorCode::EligibleLeadersNotAvailable => 83,
            ErrorCode::ElectionNotNeeded => 84,
            ErrorCode::BrokerIdNotRegistered => 102,
            ErrorCode::InvalidUpdateVersion => 95,
            ErrorCode::DuplicateBrokerRegistration => 101,
            ErrorCode::IneligibleReplica => 107,
            ErrorCode::OperationNotAttempted => 55,
            ErrorCode::InvalidTxnState => 48,
            ErrorCode::InvalidProducerIdMapping => 49,
            ErrorCode::InvalidTransactionTimeout => 50,
            ErrorCode::ConcurrentTransactions => 51,
            ErrorCode::TransactionCoordinatorFenced => 52,
            ErrorCode::UnstableOffsetCommit => 88,
            ErrorCode::ProducerFenced => 90,
        }
    }

    /// Kafka's name for the error (`NOT_LEADER_OR_FOLLOWER`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "NONE",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::NetworkException => "NETWORK_EXCEPTION",
            ErrorCode::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::NotCoordinator => "NOT_COORDINATOR",
            ErrorCode::InvalidTopicException => "INVALID_TOPIC_EXCEPTION",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::DuplicateSequenceNumber => "DUPLICATE_SEQUENCE_NUMBER",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            ErrorCode::OffsetNotAvailable => "OFFSET_NOT_AVAILABLE",
            ErrorCode::PreferredLeaderNotAvailable => "PREFERRED_LEADER_NOT_AVAILABLE",
            ErrorCode::EligibleLeadersNotAvailable => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
            ErrorCode::ElectionNotNeeded => "ELECTION_NOT_NEEDED",
            ErrorCode::BrokerIdNotRegistered => "BROKER_ID_NOT_REGISTERED",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::DuplicateBrokerRegistration => "DUPLICATE_BROKER_REGISTRATION",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
            ErrorCode::OperationNotAttempted => "OPERATION_NOT_ATTEMPTED",
            ErrorCode::InvalidTxnState => "INVALID_TXN_STATE",
            ErrorCode::InvalidProducerIdMapping => "INVALID_PRODUCER_ID_MAPPING",
            ErrorCode::InvalidTransactionTimeout => "INVALID_TRANSACTION_TIMEOUT",
            ErrorCode::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            ErrorCode::TransactionCoordinatorFenced => "TRANSACTION_COORDINATOR_FENCED",
            ErrorCode::UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
            ErrorCode::ProducerFenced => "PRODUCER_FENCED",
        }
    }

    /// Whether Kafka's clients retry this error (a `RetriableException`).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::CorruptMessage
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::NetworkException
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::NotController
                | ErrorCode::KafkaStorageError
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::OffsetNotAvailable
                | ErrorCode::ConcurrentTransactions
                | ErrorCode::UnstableOffsetCommit
        )
    }

    /// Whether a client should refresh its metadata after this error.
    pub fn invalidates_metadata(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NetworkException
                | ErrorCode::RequestTimedOut
                | ErrorCode::KafkaStorageError
        )
    }

    /// Whether Kafka's exception for this error is an `InvalidMetadataException`
    /// (`LeaderNotAvailableException`, `NotLeaderOrFollowerException`,
    /// `FencedLeaderEpochException`, `UnknownTopicOrPartitionException`,
    /// `KafkaStorageException`, `NetworkException`, `ReplicaNotAvailableException`,
    /// `PreferredLeaderNotAvailableException`, `EligibleLeadersNotAvailableException`,
    /// `ElectionNotNeededException`): a partition-level error of this kind in a
    /// `Metadata` response makes the client ask again (`Metadata.handleMetadataResponse`).
    pub fn is_invalid_metadata(self) -> bool {
        matches!(
            self,
            ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::KafkaStorageError
                | ErrorCode::NetworkException
                | ErrorCode::PreferredLeaderNotAvailable
                | ErrorCode::EligibleLeadersNotAvailable
                | ErrorCode::ElectionNotNeeded
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message on a simulated connection.
#[derive(Clone, Debug)]
pub enum Message {
    /// A request; the response carries the same correlation id.
    Request {
        /// Chosen by the requester, unique per requester.
        correlation_id: u64,
        /// The API call.
        request: Request,
    },
    /// A response to the request with this correlation id.
    Response {
        /// The request's correlation id.
        correlation_id: u64,
        /// The answer.
        response: Response,
    },
}

impl Message {
    /// The request and its correlation id, if this is a request.
    pub fn as_request(&self) -> Option<(u64, &Request)> {
        match self {
            Message::Request {
                correlation_id,
                request,
            } => Some((*correlation_id, request)),
            Message::Response { .. } => None,
        }
    }
}

/// A request, named after its Kafka API key.
#[derive(Clone, Debug)]
pub enum Request {
    /// `Metadata` (API 3): brokers and partition leaders.
    Metadata(MetadataRequest),
    /// `Produce` (API 0).
    Produce(ProduceRequest),
    /// `Fetch` (API 1), from a consumer or a follower replica.
    Fetch(FetchRequest),
    /// `ListOffsets` (API 2).
    ListOffsets(ListOffsetsRequest),
    /// `OffsetsForLeaderEpoch` (API 23): where a leader epoch ends on the leader.
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochRequest),
    /// `BrokerRegistration` (API 62), broker to controller.
    BrokerRegistration(BrokerRegistrationRequest),
    /// `BrokerHeartbeat` (API 63), broker to controller.
    BrokerHeartbeat(BrokerHeartbeatRequest),
    /// A fetch of the `__cluster_metadata` log, broker to controller (KRaft).
    MetadataFetch(MetadataFetchRequest),
    /// `AlterPartition` (API 56): a leader asks the controller to change the ISR.
    AlterPartition(AlterPartitionRequest),
    /// `ElectLeaders` (API 43), admin to controller.
    ElectLeaders(ElectLeadersRequest),
    /// `AlterPartitionReassignments` (API 45), admin to controller: reorder replicas.
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    /// `InitProducerId` (API 22), producer to any broker: a producer id and epoch.
    InitProducerId(InitProducerIdRequest),
    /// `AllocateProducerIds` (API 67, KIP-730), broker to controller: a block of ids.
    AllocateProducerIds(AllocateProducerIdsRequest),
    /// `FindCoordinator` (API 10): the group or transaction coordinator for a key.
    FindCoordinator(FindCoordinatorRequest),
    /// `JoinGroup` (API 11).
    JoinGroup(JoinGroupRequest),
    /// `SyncGroup` (API 14).
    SyncGroup(SyncGroupRequest),
    /// `Heartbeat` (API 12).
    Heartbeat(HeartbeatRequest),
    /// `LeaveGroup` (API 13).
    LeaveGroup(LeaveGroupRequest),
    /// `OffsetCommit` (API 8).
    OffsetCommit(OffsetCommitRequest),
    /// `OffsetFetch` (API 9).
    OffsetFetch(OffsetFetchRequest),
    /// `AddPartitionsToTxn` (API 24): partitions join a transaction (from the producer
    /// with transaction version 1; from a partition leader to verify, KIP-890 part 1, or
    /// to add them, part 2).
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    /// `AddOffsetsToTxn` (API 25): the group's `__consumer_offsets` partition joins.
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    /// `EndTxn` (API 26): commit or abort.
    EndTxn(EndTxnRequest),
    /// `WriteTxnMarkers` (API 27): the transaction coordinator asks partition leaders to
    /// append commit or abort markers.
    WriteTxnMarkers(WriteTxnMarkersRequest),
    /// `TxnOffsetCommit` (API 28): offsets committed inside a transaction, sent to the
    /// group coordinator.
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// `DeleteRecords` (API 21, KIP-107), admin to partition leaders: move log start
    /// offsets up.
    DeleteRecords(DeleteRecordsRequest),
}

impl Request {
    /// Kafka's API name.
    pub fn api_name(&self) -> &'static str {
        match self {
            Request::Metadata(_) => "Metadata",
            Request::Produce(_) => "Produce",
            Request::Fetch(_) => "Fetch",
            Request::ListOffsets(_) => "ListOffsets",
            Request::OffsetsForLeaderEpoch(_) => "OffsetsForLeaderEpoch",
            Request::BrokerRegistration(_) => "BrokerRegistration",
            Request::BrokerHeartbeat(_) => "BrokerHeartbeat",
            Request::MetadataFetch(_) => "MetadataFetch",
            Request::AlterPartition(_) => "AlterPartition",
            Request::ElectLeaders(_) => "ElectLeaders",
            Request::AlterPartitionReassignments(_) => "AlterPartitionReassignments",
            Request::InitProducerId(_) => "InitProducerId",
            Request::AllocateProducerIds(_) => "AllocateProducerIds",
            Request::FindCoordinator(_) => "FindCoordinator",
            Request::JoinGroup(_) => "JoinGroup",
            Request::SyncGroup(_) => "SyncGroup",
            Request::Heartbeat(_) => "Heartbeat",
            Request::LeaveGroup(_) => "LeaveGroup",
            Request::OffsetCommit(_) => "OffsetCommit",
            Request::OffsetFetch(_) => "OffsetFetch",
            Request::AddPartitionsToTxn(_) => "AddPartitionsToTxn",
            Request::AddOffsetsToTxn(_) => "AddOffsetsToTxn",
            Request::EndTxn(_) => "EndTxn",
            Request::WriteTxnMarkers(_) => "WriteTxnMarkers",
            Request::TxnOffsetCommit(_) => "TxnOffsetCommit",
            Request::DeleteRecords(_) => "DeleteRecords",
        }
    }
}

/// A response, one variant per request.
#[derive(Clone, Debug)]
pub enum Response {
    /// Answer to [`Request::Metadata`].
    Metadata(MetadataResponse),
    /// Answer to [`Request::Produce`].
    Produce(ProduceResponse),
    /// Answer to [`Request::Fetch`].
    Fetch(FetchResponse),
    /// Answer to [`Request::ListOffsets`].
    ListOffsets(ListOffsetsResponse),
    /// Answer to [`Request::OffsetsForLeaderEpoch`].
    OffsetsForLeaderEpoch(OffsetsForLeaderEpochResponse),
    /// Answer to [`Request::BrokerRegistration`].
    BrokerRegistration(BrokerRegistrationResponse),
    /// Answer to [`Request::BrokerHeartbeat`].
    BrokerHeartbeat(BrokerHeartbeatResponse),
    /// Answer to [`Request::MetadataFetch`].
    MetadataFetch(MetadataFetchResponse),
    /// Answer to [`Request::AlterPartition`].
    AlterPartition(AlterPartitionResponse),
    /// Answer to [`Request::ElectLeaders`].
    ElectLeaders(ElectLeadersResponse),
    /// Answer to [`Request::AlterPartitionReassignments`].
    AlterPartitionReassignments(AlterPartitionReassignmentsResponse),
    /// Answer to [`Request::InitProducerId`].
    InitProducerId(InitProducerIdResponse),
    /// Answer to [`Request::AllocateProducerIds`].
    AllocateProducerIds(AllocateProducerIdsResponse),
    /// Answer to [`Request::FindCoordinator`].
    FindCoordinator(FindCoordinatorResponse),
    /// Answer to [`Request::JoinGroup`].
    JoinGroup(JoinGroupResponse),
    /// Answer to [`Request::SyncGroup`].
    SyncGroup(SyncGroupResponse),
    /// Answer to [`Request::Heartbeat`].
    Heartbeat(HeartbeatResponse),
    /// Answer to [`Request::LeaveGroup`].
    LeaveGroup(LeaveGroupResponse),
    /// Answer to [`Request::OffsetCommit`].
    OffsetCommit(OffsetCommitResponse),
    /// Answer to [`Request::OffsetFetch`].
    OffsetFetch(OffsetFetchResponse),
    /// Answer to [`Request::AddPartitionsToTxn`].
    AddPartitionsToTxn(AddPartitionsToTxnResponse),
    /// Answer to [`Request::AddOffsetsToTxn`].
    AddOffsetsToTxn(AddOffsetsToTxnResponse),
    /// Answer to [`Request::EndTxn`].
    EndTxn(EndTxnResponse),
    /// Answer to [`Request::WriteTxnMarkers`].
    WriteTxnMarkers(WriteTxnMarkersResponse),
    /// Answer to [`Request::TxnOffsetCommit`].
    TxnOffsetCommit(TxnOffsetCommitResponse),
    /// Answer to [`Request::DeleteRecords`].
    DeleteRecords(DeleteRecordsResponse),
}

// ---------------------------------------------------------------- Metadata

/// `Metadata` request: `None` asks for every topic.
#[derive(Clone, Debug)]
pub struct MetadataRequest {
    /// Topics of interest; `None` for all.
    pub topics: Option<Vec<Arc<str>>>,
}

/// One partition in a `Metadata` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition.
    pub tp: TopicPartition,
    /// `NONE`, or `LEADER_NOT_AVAILABLE` when it has no leader.
    pub error: ErrorCode,
    /// The leader, if any.
    pub leader: Option<BrokerId>,
    /// The leader epoch the answering broker knows.
    pub leader_epoch: LeaderEpoch,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
}

/// `Metadata` response.
#[derive(Clone, Debug)]
pub struct MetadataResponse {
    /// Live (unfenced) brokers the answering broker knows of.
    pub brokers: Vec<BrokerId>,
    /// Partitions of the requested topics.
    pub partitions: Vec<PartitionMetadata>,
}

// ---------------------------------------------------------------- Produce

/// The producer id / epoch / sequence a batch carries (all -1 without idempotence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdentity {
    /// `producerId`, -1 when not idempotent.
    pub producer_id: i64,
    /// `producerEpoch`, -1 when not idempotent.
    pub producer_epoch: i16,
}

impl ProducerIdentity {
    /// The identity of a non-idempotent producer.
    pub const NONE: ProducerIdentity = ProducerIdentity {
        producer_id: -1,
        producer_epoch: -1,
    };
}

/// `Produce` request: one record batch per partition.
#[derive(Clone, Debug)]
pub struct ProduceRequest {
    /// The producer's `transactional.id`, if it is transactional.
    pub transactional_id: Option<Arc<str>>,
    /// `acks`.
    pub acks: Acks,
    /// How long the leader may wait for `acks=all` (`request.timeout.ms`).
    pub timeout_ms: u64,
    /// Encoded record batch v2 per partition.
    pub partitions: Vec<(TopicPartition, Bytes)>,
}

/// One partition of a `Produce` response.
#[derive(Clone, Debug)]
pub struct ProducePartitionResponse {
    /// The partition.
    pub tp: TopicPartition,
    /// The outcome.
    pub error: ErrorCode,
    /// Offset of the batch's first record when appended (or, with
    /// `DUPLICATE_SEQUENCE_NUMBER`, where the original was appended), else -1.
    pub base_offset: Offset,
    /// The partition's log start offset (KIP-360: lets the producer tell retention
    /// from lost producer state on `UNKNOWN_PRODUCER_ID`); -1 when unknown.
    pub log_start_offset: Offset,
}

/// `Produce` response.
#[derive(Clone, Debug)]
pub struct ProduceResponse {
    /// One entry per partition in the request.
    pub partitions: Vec<ProducePartitionResponse>,
}

// ---------------------------------------------------------------- Fetch

/// One partition of a `Fetch` request.
#[derive(Clone, Debug)]
pub struct FetchPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// First offset wanted; for a follower, its log end offset.
    pub fetch_offset: Offset,
    /// The leader epoch the fetcher believes current (KIP-320), -1 if unknown.
    pub current_leader_epoch: LeaderEpoch,
    /// `LastFetchedEpoch` (KIP-595, Fetch v12+): a follower's latest epoch, which the
    /// leader checks against its own epoch cache; `None` for consumers.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// `LogStartOffset` (Fetch v5+): a follower's log start offset, which the leader's
    /// `DeleteRecords` waits on; -1 for consumers.
    pub log_start_offset: Offset,
}

/// `Fetch` request.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// `replica.id`: the follower's broker id, `None` for a consumer.
    pub replica_id: Option<BrokerId>,
    /// The fetching broker's epoch (followers only), -1 for consumers.
    pub broker_epoch: i64,
    /// `fetch.max.wait.ms` / `replica.fetch.wait.max.ms`: long-poll bound.
    pub max_wait_ms: u64,
    /// `fetch.min.bytes`: answer early once this much is available.
    pub min_bytes: usize,
    /// `fetch.max.bytes` per partition (`max.partition.fetch.bytes`).
    pub max_bytes: usize,
    /// `isolation.level`.
    pub isolation_level: IsolationLevel,
    /// Partitions to fetch.
    pub partitions: Vec<FetchPartition>,
}

/// One partition of a `Fetch` response.
#[derive(Clone, Debug)]
pub struct FetchPartitionResponse {
    /// The partition.
    pub tp: TopicPartition,
    /// The outcome.
    pub error: ErrorCode,
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// The leader's last stable offset.
    pub last_stable_offset: Offset,
    /// The leader's log start offset.
    pub log_start_offset: Offset,
    /// Encoded record batches, in offset order.
    pub batches: Vec<Bytes>,
    /// With `read_committed`: the aborted transactions overlapping the returned
    /// batches.
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// `DivergingEpoch` (KIP-595): the leader's (epoch, end offset) where a follower's
    /// `last_fetched_epoch` and fetch offset leave the leader's log; no records then.
    pub diverging_epoch: Option<(LeaderEpoch, Offset)>,
}

/// `Fetch` response.
#[derive(Clone, Debug)]
pub struct FetchResponse {
    /// Top-level error (e.g. `STALE_BROKER_EPOCH`), else `NONE`.
    pub error: ErrorCode,
    /// One entry per requested partition.
    pub partitions: Vec<FetchPartitionResponse>,
}

// ---------------------------------------------------------------- DeleteRecords

/// The `DeleteRecords` offset that means the partition's high watermark
/// (`DeleteRecordsRequest.HIGH_WATERMARK`).
pub const DELETE_RECORDS_HIGH_WATERMARK: Offset = -1;

/// `DeleteRecords` request: per partition, the offset before which every record goes.
#[derive(Clone, Debug)]
pub struct DeleteRecordsRequest {
    /// Each partition and its offset ([`DELETE_RECORDS_HIGH_WATERMARK`] for the high
    /// watermark).
    pub partitions: Vec<(TopicPartition, Offset)>,
    /// How long the leader waits for its replicas' log starts (`timeoutMs`).
    pub timeout_ms: u64,
}

/// One partition of a `DeleteRecords` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRecordsPartitionResult {
    /// The partition.
    pub tp: TopicPartition,
    /// The smallest log start offset of the leader and its live replicas, -1 on error.
    pub low_watermark: Offset,
    /// The outcome.
    pub error: ErrorCode,
}

/// `DeleteRecords` response.
#[derive(Clone, Debug)]
pub struct DeleteRecordsResponse {
    /// One entry per partition in the request.
    pub partitions: Vec<DeleteRecordsPartitionResult>,
}

// ---------------------------------------------------------------- ListOffsets

/// `ListOffsets` timestamp for the latest offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// `ListOffsets` timestamp for the earliest offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// `ListOffsets` request.
#[derive(Clone, Debug)]
pub struct ListOffsetsRequest {
    /// `isolation.level`: latest means the LSO for `read_committed`, else the HW.
    pub isolation_level: IsolationLevel,
    /// (partition, timestamp or `LATEST_TIMESTAMP` / `EARLIEST_TIMESTAMP`, current leader epoch).
    pub partitions: Vec<(TopicPartition, i64, LeaderEpoch)>,
}

/// One partition of a `ListOffsets` response.
#[derive(Clone, Debug)]
pub struct ListOffsetsPartitionResponse {
    /// The partition.
    pub tp: TopicPartition,
    /// The outcome.
    pub error: ErrorCode,
    /// The offset found, -1 if none.
    pub offset: Offset,
    /// The leader epoch of the answering leader.
    pub leader_epoch: LeaderEpoch,
    /// The timestamp of the record found (-1 for earliest/latest lookups).
    pub timestamp: i64,
}

/// `ListOffsets` response.
#[derive(Clone, Debug)]
pub struct ListOffsetsResponse {
    /// One entry per requested partition.
    pub partitions: Vec<ListOffsetsPartitionResponse>,
}

// ---------------------------------------------------------------- OffsetsForLeaderEpoch

/// `OffsetsForLeaderEpoch` request (KIP-101, KIP-279).
#[derive(Clone, Debug)]
pub struct OffsetsForLeaderEpochRequest {
    /// The asking follower, or `None` for a consumer (KIP-320).
    pub replica_id: Option<BrokerId>,
    /// (partition, current leader epoch of the asker, epoch whose end offset is wanted).
    pub partitions: Vec<(TopicPartition, LeaderEpoch, LeaderEpoch)>,
}

/// One partition of an `OffsetsForLeaderEpoch` response.
#[derive(Clone, Debug)]
pub struct EpochEndOffset {
    /// The partition.
    pub tp: TopicPartition,
    /// The outcome.
    pub error: ErrorCode,
    /// The largest epoch <= the requested one that the leader has.
    pub leader_epoch: LeaderEpoch,
    /// Where that epoch ends on the leader (start of the next epoch, or its LEO).
    pub end_offset: Offset,
}

/// `OffsetsForLeaderEpoch` response.
#[derive(Clone, Debug)]
pub struct OffsetsForLeaderEpochResponse {
    /// One entry per requested partition.
    pub partitions: Vec<EpochEndOffset>,
}

// ---------------------------------------------------------------- KRaft broker lifecycle

/// `BrokerRegistration` request.
#[derive(Clone, Debug)]
pub struct BrokerRegistrationRequest {
    /// The broker's `node.id`.
    pub broker_id: BrokerId,
    /// Unique per broker process start; a new one means the broker restarted.
    pub incarnation_id: u64,
}

/// `BrokerRegistration` response.
#[derive(Clone, Debug)]
pub struct BrokerRegistrationResponse {
    /// The outcome.
    pub error: ErrorCode,
    /// The broker epoch assigned to this registration (the metadata log offset).
    pub broker_epoch: i64,
}

/// `BrokerHeartbeat` request.
#[derive(Clone, Debug)]
pub struct BrokerHeartbeatRequest {
    /// The broker's `node.id`.
    pub broker_id: BrokerId,
    /// The epoch from its registration.
    pub broker_epoch: i64,
    /// How far the broker has applied the metadata log.
    pub current_metadata_offset: i64,
    /// The broker asks to stay fenced (still catching up).
    pub want_fence: bool,
}

/// `BrokerHeartbeat` response.
#[derive(Clone, Debug)]
pub struct BrokerHeartbeatResponse {
    /// The outcome (`STALE_BROKER_EPOCH`, `BROKER_ID_NOT_REGISTERED` mean re-register).
    pub error: ErrorCode,
    /// Whether the controller considers the broker fenced.
    pub is_fenced: bool,
}

/// A fetch of the metadata log, long-polled like a follower fetch.
#[derive(Clone, Debug)]
pub struct MetadataFetchRequest {
    /// The fetching broker.
    pub broker_id: BrokerId,
    /// The next metadata offset the broker wants.
    pub fetch_offset: i64,
    /// Long-poll bound.
    pub max_wait_ms: u64,
}

/// Answer to a metadata log fetch.
#[derive(Clone, Debug)]
pub struct MetadataFetchResponse {
    /// Records from `fetch_offset` on (bounded).
    pub records: Vec<(i64, MetadataRecord)>,
    /// The metadata log's end offset.
    pub log_end_offset: i64,
}

/// A record in `__cluster_metadata`, named as in KRaft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// `RegisterBrokerRecord`.
    RegisterBroker {
        /// The broker.
        broker_id: BrokerId,
        /// Its new epoch.
        broker_epoch: i64,
    },
    /// `FenceBrokerRecord`: the broker may not lead or be in an ISR.
    FenceBroker {
        /// The broker.
        broker_id: BrokerId,
        /// Its epoch.
        broker_epoch: i64,
    },
    /// `UnfenceBrokerRecord`.
    UnfenceBroker {
        /// The broker.
        broker_id: BrokerId,
        /// Its epoch.
        broker_epoch: i64,
    },
    /// `TopicRecord`.
    Topic {
        /// Topic name.
        name: Arc<str>,
        /// Partition count.
        partitions: u32,
    },
    /// `ConfigRecord`s of a topic (resource type TOPIC): its overrides, written after
    /// its `TopicRecord` when it has any.
    TopicConfig {
        /// Topic name.
        name: Arc<str>,
        /// The topic's overrides.
        config: crate::kafka::config::TopicConfig,
    },
    /// `PartitionRecord` (creation) and `PartitionChangeRecord` (every later change),
    /// carried here as the partition's whole new registration.
    PartitionChange(PartitionRegistration),
    /// `ProducerIdsRecord` (KIP-730): the block of producer ids up to
    /// `next_producer_id` (exclusive) went to `broker_id`.
    ProducerIds {
        /// The broker the block was given to.
        broker_id: BrokerId,
        /// That broker's epoch.
        broker_epoch: i64,
        /// The first producer id not yet handed out.
        next_producer_id: i64,
    },
}

/// A partition's registration in the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    /// The partition.
    pub tp: TopicPartition,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Leader, `None` when offline.
    pub leader: Option<BrokerId>,
    /// Eligible leader replicas (KIP-966): replicas out of the ISR that still hold every
    /// committed record, kept while the ISR is below `min.insync.replicas` (always empty
    /// with `eligible.leader.replicas.version` 0). Disjoint from the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<BrokerId>,
    /// Kafka's `LastKnownElr`, which 4.x uses to keep the last leader of a partition
    /// whose ISR and ELR became empty: that replica is elected (uncleanly) when no ISR
    /// or ELR member can be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<BrokerId>,
    /// Bumped on every leader change.
    pub leader_epoch: LeaderEpoch,
    /// Bumped on every change (ISR or leader), guards AlterPartition.
    pub partition_epoch: i32,
}

impl PartitionRegistration {
    /// Asserts that this registration does not take the partition's leader epoch back
    /// from `known`, the epoch `holder` knew: leader epochs never go back.
    pub fn assert_epoch_not_behind(&self, holder: impl fmt::Display, known: LeaderEpoch) {
        assert!(
            self.leader_epoch >= known,
            "{holder}: leader epoch of {} went back from {known} to {}",
            self.tp,
            self.leader_epoch
        );
    }
}

// ---------------------------------------------------------------- AlterPartition

/// `AlterPartition` request: the leader proposes a new ISR.
#[derive(Clone, Debug)]
pub struct AlterPartitionRequest {
    /// The leader.
    pub broker_id: BrokerId,
    /// Its broker epoch.
    pub broker_epoch: i64,
    /// The partition.
    pub tp: TopicPartition,
    /// The leader's epoch.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    /// The proposed ISR with the broker epoch the leader knows for each member
    /// (`NewIsrWithEpochs`, KIP-903).
    pub new_isr_with_epochs: Vec<BrokerState>,
}

impl AlterPartitionRequest {
    /// The proposed ISR's broker ids, in order.
    pub fn new_isr(&self) -> Vec<BrokerId> {
        self.new_isr_with_epochs
            .iter()
            .map(|b| b.broker_id)
            .collect()
    }
}

/// `AlterPartition`'s `BrokerState` (KIP-903): an ISR member and its broker epoch as
/// the leader knows it: its own, or the one a follower's last fetch carried; -1 when
/// none has arrived yet (the controller then skips the check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerState {
    /// The member.
    pub broker_id: BrokerId,
    /// Its broker epoch, or -1.
    pub broker_epoch: i64,
}

/// `AlterPartition` response.
#[derive(Clone, Debug)]
pub struct AlterPartitionResponse {
    /// The partition.
    pub tp: TopicPartition,
    /// `NONE`, `FENCED_LEADER_EPOCH`, `INVALID_UPDATE_VERSION`, `STALE_BROKER_EPOCH`, ...
    pub error: ErrorCode,
    /// The registration after the change (or the current one on error).
    pub registration: Option<PartitionRegistration>,
}

// ---------------------------------------------------------------- Admin

/// `ElectLeaders` election type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// Move leadership to the first live in-sync replica in the replica list.
    Preferred,
    /// Elect any live replica when no in-sync one is available.
    Unclean,
}

/// `ElectLeaders` request.
#[derive(Clone, Debug)]
pub struct ElectLeadersRequest {
    /// Preferred or unclean.
    pub election_type: ElectionType,
    /// Partitions to elect for.
    pub partitions: Vec<TopicPartition>,
}

/// `ElectLeaders` response.
#[derive(Clone, Debug)]
pub struct ElectLeadersResponse {
    /// Per partition outcome.
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// `AlterPartitionReassignments` request; here it may only reorder the replicas
/// (which changes the preferred leader), followed by a preferred election.
#[derive(Clone, Debug)]
pub struct AlterPartitionReassignmentsRequest {
    /// The partition.
    pub tp: TopicPartition,
    /// The new replica order.
    pub replicas: Vec<BrokerId>,
}

/// `AlterPartitionReassignments` response.
#[derive(Clone, Debug)]
pub struct AlterPartitionReassignmentsResponse {
    /// The partition.
    pub tp: TopicPartition,
    /// The outcome.
    pub error: ErrorCode,
}

// ---------------------------------------------------------------- Producer ids

/// `InitProducerId`: a producer asks any broker (or, with a `transactional.id`, its
/// transaction coordinator) for a producer id and epoch. With `producer_id`/`epoch` set
/// to a current identity it asks for that epoch to be bumped (KIP-360).
#[derive(Clone, Debug)]
pub struct InitProducerIdRequest {
    /// `transactional.id`, or `None` for an idempotent producer.
    pub transactional_id: Option<Arc<str>>,
    /// `transaction.timeout.ms`.
    pub transaction_timeout_ms: u64,
    /// The current producer id, or -1.
    pub producer_id: i64,
    /// The current epoch, or -1.
    pub producer_epoch: i16,
}

/// The answer to `InitProducerId`.
#[derive(Clone, Debug)]
pub struct InitProducerIdResponse {
    /// `NONE`, or why no id was given (`COORDINATOR_LOAD_IN_PROGRESS`, ...).
    pub error: ErrorCode,
    /// The producer id, or -1.
    pub producer_id: i64,
    /// The epoch, or -1.
    pub producer_epoch: i16,
}

/// `AllocateProducerIds` (KIP-730): a broker asks the controller for a block of ids.
#[derive(Clone, Debug)]
pub struct AllocateProducerIdsRequest {
    /// The asking broker.
    pub broker_id: BrokerId,
    /// Its broker epoch.
    pub broker_epoch: i64,
}

/// The controller's answer: ids `[producer_id_start, producer_id_start + producer_id_len)`.
#[derive(Clone, Debug)]
pub struct AllocateProducerIdsResponse {
    /// `NONE`, `STALE_BROKER_EPOCH`, `NOT_CONTROLLER`, ...
    pub error: ErrorCode,
    /// The first id of the block.
    pub producer_id_start: i64,
    /// The block's length (Kafka: 1000).
    pub producer_id_len: i32,
}

// ---------------------------------------------------------------- Consumer groups

/// What a `FindCoordinator` looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorType {
    /// A consumer group (`group.id`, `__consumer_offsets`).
    Group,
    /// A transactional producer (`transactional.id`, `__transaction_state`).
    Transaction,
}

/// `FindCoordinator`: which broker coordinates `key`.
#[derive(Clone, Debug)]
pub struct FindCoordinatorRequest {
    /// The group id or transactional id.
    pub key: Arc<str>,
    /// Which kind of coordinator.
    pub key_type: CoordinatorType,
}

/// The coordinator: the leader of the internal topic's partition `key` hashes to.
#[derive(Clone, Debug)]
pub struct FindCoordinatorResponse {
    /// `NONE` or `COORDINATOR_NOT_AVAILABLE`.
    pub error: ErrorCode,
    /// The coordinator's node id, when known.
    pub node_id: Option<BrokerId>,
}

/// A member's subscription, the `consumer` protocol's metadata in `JoinGroup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<Arc<str>>,
    /// Partitions the member owns now (cooperative rebalancing, KIP-429).
    pub owned_partitions: Vec<TopicPartition>,
}

/// `JoinGroup` (classic protocol, `protocol_type` "consumer").
#[derive(Clone, Debug)]
pub struct JoinGroupRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout_ms: u64,
    /// Empty on the first join (the coordinator answers `MEMBER_ID_REQUIRED`).
    pub member_id: Arc<str>,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<Arc<str>>,
    /// Assignor names in preference order (`range`, `roundrobin`, `cooperative-sticky`),
    /// each with the member's subscription.
    pub protocols: Vec<(Arc<str>, Subscription)>,
}

/// One member as the group leader sees it in the `JoinGroup` response.
#[derive(Clone, Debug)]
pub struct JoinGroupMember {
    /// Its member id.
    pub member_id: Arc<str>,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
    /// Its subscription for the chosen protocol.
    pub subscription: Subscription,
}

/// The `JoinGroup` answer, sent when the join phase completes.
#[derive(Clone, Debug)]
pub struct JoinGroupResponse {
    /// `NONE`, `MEMBER_ID_REQUIRED`, `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`,
    /// `NOT_COORDINATOR`, ...
    pub error: ErrorCode,
    /// The new generation.
    pub generation_id: i32,
    /// The chosen assignor.
    pub protocol_name: Option<Arc<str>>,
    /// The leader's member id.
    pub leader: Arc<str>,
    /// This member's id (new on `MEMBER_ID_REQUIRED`).
    pub member_id: Arc<str>,
    /// Every member with its subscription: only for the leader, empty otherwise.
    pub members: Vec<JoinGroupMember>,
}

/// `SyncGroup`: the leader sends the assignment; followers send none.
#[derive(Clone, Debug)]
pub struct SyncGroupRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The generation the assignment is for.
    pub generation_id: i32,
    /// The sender's member id.
    pub member_id: Arc<str>,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
    /// From the leader: each member's partitions.
    pub assignments: Vec<(Arc<str>, Vec<TopicPartition>)>,
}

/// The `SyncGroup` answer: this member's partitions.
#[derive(Clone, Debug)]
pub struct SyncGroupResponse {
    /// `NONE`, `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, `REBALANCE_IN_PROGRESS`, ...
    pub error: ErrorCode,
    /// The partitions assigned to the member.
    pub assignment: Vec<TopicPartition>,
}

/// `Heartbeat`: keeps the member's session alive.
#[derive(Clone, Debug)]
pub struct HeartbeatRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The member's generation.
    pub generation_id: i32,
    /// Its member id.
    pub member_id: Arc<str>,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
}

/// The `Heartbeat` answer.
#[derive(Clone, Debug)]
pub struct HeartbeatResponse {
    /// `NONE`, `REBALANCE_IN_PROGRESS` (rejoin), `ILLEGAL_GENERATION`,
    /// `UNKNOWN_MEMBER_ID`, `FENCED_INSTANCE_ID`, `NOT_COORDINATOR`, ...
    pub error: ErrorCode,
}

/// `LeaveGroup`: members leave (a dynamic member on close or after
/// `max.poll.interval.ms`).
#[derive(Clone, Debug)]
pub struct LeaveGroupRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// (member id, `group.instance.id`) of each leaving member.
    pub members: Vec<(Arc<str>, Option<Arc<str>>)>,
    /// Why the members leave (KIP-800's client reason).
    pub reason: Option<Arc<str>>,
}

/// The `LeaveGroup` answer.
#[derive(Clone, Debug)]
pub struct LeaveGroupResponse {
    /// `NONE`, `UNKNOWN_MEMBER_ID`, `NOT_COORDINATOR`, ...
    pub error: ErrorCode,
}

/// One partition's committed position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The partition.
    pub tp: TopicPartition,
    /// The next offset to consume.
    pub offset: Offset,
    /// The leader epoch of the last consumed record (KIP-320), or -1.
    pub leader_epoch: LeaderEpoch,
}

/// `OffsetCommit`: the member's positions, fenced by generation and member id.
#[derive(Clone, Debug)]
pub struct OffsetCommitRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The member's generation (-1 for a commit outside group management).
    pub generation_id: i32,
    /// Its member id (empty outside group management).
    pub member_id: Arc<str>,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
    /// The offsets.
    pub offsets: Vec<CommittedOffset>,
}

/// The `OffsetCommit` answer, per partition.
#[derive(Clone, Debug)]
pub struct OffsetCommitResponse {
    /// Each partition's error: `NONE`, `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`,
    /// `REBALANCE_IN_PROGRESS`, `FENCED_INSTANCE_ID`, `NOT_COORDINATOR`,
    /// `COORDINATOR_LOAD_IN_PROGRESS`, `REQUEST_TIMED_OUT`, ...
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// `OffsetFetch`: the group's committed offsets.
#[derive(Clone, Debug)]
pub struct OffsetFetchRequest {
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The partitions asked for.
    pub partitions: Vec<TopicPartition>,
    /// KIP-447: answer `UNSTABLE_OFFSET_COMMIT` while transactional offsets of these
    /// partitions are pending (a `read_committed` consumer asks for this).
    pub require_stable: bool,
}

/// The `OffsetFetch` answer.
#[derive(Clone, Debug)]
pub struct OffsetFetchResponse {
    /// `NONE`, `NOT_COORDINATOR`, `COORDINATOR_LOAD_IN_PROGRESS`, ...
    pub error: ErrorCode,
    /// The committed offsets of the asked partitions that have one.
    pub offsets: Vec<CommittedOffset>,
}

// ---------------------------------------------------------------- Transactions

/// `AddPartitionsToTxn`.
#[derive(Clone, Debug)]
pub struct AddPartitionsToTxnRequest {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The partitions.
    pub partitions: Vec<TopicPartition>,
    /// Only check that the partitions are already in the ongoing transaction (a
    /// partition leader's verification, KIP-890 part 1); add nothing.
    pub verify_only: bool,
}

/// The answer to `AddPartitionsToTxn`: an error per partition.
#[derive(Clone, Debug)]
pub struct AddPartitionsToTxnResponse {
    /// Each partition's error.
    pub results: Vec<(TopicPartition, ErrorCode)>,
}

/// `AddOffsetsToTxn`.
#[derive(Clone, Debug)]
pub struct AddOffsetsToTxnRequest {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The group whose offsets the transaction will commit.
    pub group_id: Arc<str>,
}

/// The answer to `AddOffsetsToTxn`.
#[derive(Clone, Debug)]
pub struct AddOffsetsToTxnResponse {
    /// The error.
    pub error: ErrorCode,
}

/// `EndTxn`.
#[derive(Clone, Debug)]
pub struct EndTxnRequest {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Commit (true) or abort.
    pub committed: bool,
}

/// The answer to `EndTxn` (with transaction version 2 it carries the bumped epoch).
#[derive(Clone, Debug)]
pub struct EndTxnResponse {
    /// The error.
    pub error: ErrorCode,
    /// The producer id to use next (-1 before transaction version 2).
    pub producer_id: i64,
    /// The producer epoch to use next (-1 before transaction version 2).
    pub producer_epoch: i16,
}

/// One transaction's markers in `WriteTxnMarkers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch the marker is written with.
    pub producer_epoch: i16,
    /// Commit (true) or abort.
    pub committed: bool,
    /// The partitions to write it to.
    pub partitions: Vec<TopicPartition>,
    /// The coordinator's epoch (its `__transaction_state` partition's leader epoch).
    pub coordinator_epoch: i32,
}

/// `WriteTxnMarkers`.
#[derive(Clone, Debug)]
pub struct WriteTxnMarkersRequest {
    /// The markers.
    pub markers: Vec<TxnMarker>,
}

/// The answer to `WriteTxnMarkers`: per producer id, an error per partition.
#[derive(Clone, Debug)]
pub struct WriteTxnMarkersResponse {
    /// (producer id, each partition's error).
    pub markers: Vec<(i64, Vec<(TopicPartition, ErrorCode)>)>,
}

/// `TxnOffsetCommit` (with the consumer's group metadata for KIP-447 fencing).
#[derive(Clone, Debug)]
pub struct TxnOffsetCommitRequest {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// `group.id`.
    pub group_id: Arc<str>,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The consumer's generation (-1 without group metadata).
    pub generation_id: i32,
    /// The consumer's member id (empty without group metadata).
    pub member_id: Arc<str>,
    /// The consumer's `group.instance.id`.
    pub group_instance_id: Option<Arc<str>>,
    /// The offsets.
    pub offsets: Vec<CommittedOffset>,
}

/// The answer to `TxnOffsetCommit`.
#[derive(Clone, Debug)]
pub struct TxnOffsetCommitResponse {
    /// Each partition's error.
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// An aborted transaction in a `read_committed` fetch response (Kafka's abort index
/// entry): the consumer drops this producer's records from `first_offset` on, up to
/// its abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbortedTransaction {
    /// The producer id.
    pub producer_id: i64,
    /// The transaction's first offset in the partition.
    pub first_offset: Offset,
}
