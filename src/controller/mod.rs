//! The KRaft controller, sans-IO: broker lifecycle, topic creation, leader and ISR
//! changes, all as an ordered metadata log.
//!
//! Kafka 4.x's `QuorumController` is the reference: brokers register
//! (`ClusterControlManager`), heartbeat to stay unfenced (`BrokerHeartbeatManager`),
//! and every leader or ISR change goes through the rules of `PartitionChangeBuilder`
//! (`ReplicationControlManager`). Every decision is a [`MetadataRecord`] appended to
//! one log (offset = index) and applied at once to the controller's own
//! [`MetadataImage`]; brokers replay the same records through `MetadataFetch`.
//!
//! The controller is a single voter: a record is committed as soon as it is appended.
//! It never reads a clock: the host passes the simulated time with every input.

use crate::actor::{Actor, Outbox};
use crate::history::{Entry, Op};
use crate::kafka::config::BrokerConfig;
use crate::kafka::metadata::MetadataImage;
use crate::kafka::metadata::TopicSpec;
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterPartitionRequest, AlterPartitionResponse,
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse, ElectLeadersRequest, ElectLeadersResponse, ElectionType, ErrorCode,
    Message, MetadataFetchRequest, MetadataFetchResponse, MetadataRecord, NodeId,
    PartitionRegistration, Request, Response, TopicPartition,
};
use std::collections::BTreeMap;

/// Upper bound on the metadata log's length; a run that reaches it is broken.
const METADATA_LOG_MAX: usize = 1_000_000;

/// At most this many records per `MetadataFetch` response.
const METADATA_FETCH_MAX_RECORDS: usize = 1_000;

/// Producer ids per `AllocateProducerIds` block (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// The controller's view of a broker's current registration, beyond the image.
#[derive(Clone, Debug)]
struct BrokerSession {
    /// The incarnation that registered the current broker epoch.
    incarnation_id: u64,
    /// When the current registration last registered or heartbeated.
    last_heartbeat_ms: Millis,
}

/// A `MetadataFetch` waiting for the log to grow past its offset.
#[derive(Clone, Debug)]
struct ParkedFetch {
    /// Where the answer goes.
    to: NodeId,
    /// The request's correlation id.
    correlation_id: u64,
    /// The offset asked for (the log end when parked).
    fetch_offset: i64,
    /// When to answer with no records.
    deadline_ms: Millis,
}

/// The single KRaft controller (a one-voter quorum).
#[derive(Debug)]
pub struct Controller {
    /// Broker settings (session timeout, unclean leader election).
    config: BrokerConfig,
    /// The cluster's brokers, in the order replica assignment uses.
    broker_ids: Vec<BrokerId>,
    /// Topics not created yet; emptied once every broker is unfenced.
    pending_topics: Vec<TopicSpec>,
    /// The metadata log, offset = index.
    log: Vec<MetadataRecord>,
    /// The replay of `log`.
    image: MetadataImage,
    /// Per registered broker: incarnation and last heartbeat.
    sessions: BTreeMap<BrokerId, BrokerSession>,
    /// At most one long-polling metadata fetch per configured broker.
    parked: BTreeMap<BrokerId, ParkedFetch>,
}

impl Controller {
    /// A controller for the cluster `broker_ids` that will create `topics` once every
    /// broker has registered and been unfenced.
    pub fn new(config: BrokerConfig, broker_ids: Vec<BrokerId>, topics: Vec<TopicSpec>) -> Self {
        assert!(
            !broker_ids.is_empty(),
            "a cluster needs at least one broker"
        );
        let mut distinct = broker_ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), broker_ids.len(), "duplicate broker ids");
        assert!(
            config.broker_session_timeout_ms > 0,
            "broker.session.timeout.ms must be positive"
        );
        for (i, topic) in topics.iter().enumerate() {
            assert!(
                topic.partitions > 0,
                "topic {} has no partitions",
                topic.name
            );
            assert!(
                topic.replication_factor >= 1
                    && topic.replication_factor as usize <= broker_ids.len(),
                "topic {}: replication factor {} with {} brokers",
                topic.name,
                topic.replication_factor,
                broker_ids.len()
            );
            assert!(
                topics[..i].iter().all(|t| t.name != topic.name),
                "topic {} specified twice",
                topic.name
            );
        }
        Controller {
            config,
            broker_ids,
            pending_topics: topics,
            log: Vec::new(),
            image: MetadataImage::default(),
            sessions: BTreeMap::new(),
            parked: BTreeMap::new(),
        }
    }

    /// The controller's own replay of its metadata log.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The whole metadata log; a record's offset is its index.
    pub fn log(&self) -> &[MetadataRecord] {
        &self.log
    }

    /// The offset the next record will get.
    fn log_end(&self) -> i64 {
        i64::try_from(self.log.len()).expect("metadata log length fits in i64")
    }

    /// Appends a record and applies it to the image; returns its offset.
    fn append(&mut self, record: MetadataRecord) -> i64 {
        assert!(
            self.log.len() < METADATA_LOG_MAX,
            "metadata log reached {METADATA_LOG_MAX} records"
        );
        let offset = self.log_end();
        self.image.apply(offset, &record);
        self.log.push(record);
        assert_eq!(self.image.next_offset, self.log_end());
        offset
    }

    // ------------------------------------------------------------ broker lifecycle

    /// `BrokerRegistration`: a new incarnation gets a new broker epoch (its record's
    /// offset) and starts fenced; a repeated incarnation gets its existing epoch. A new
    /// incarnation is refused with `DUPLICATE_BROKER_REGISTRATION` while the old one's
    /// session is valid (unfenced, heard from within `broker.session.timeout.ms`:
    /// Kafka's `ClusterControlManager.registerBroker` with
    /// `BrokerHeartbeatManager.hasValidSession`); the broker retries, and is accepted
    /// once the old session has expired and the controller fenced it.
    fn register_broker(
        &mut self,
        now: Millis,
        request: BrokerRegistrationRequest,
        out: &mut Outbox,
    ) -> BrokerRegistrationResponse {
        let broker_id = request.broker_id;
        if !self.broker_ids.contains(&broker_id) {
            return BrokerRegistrationResponse {
                error: ErrorCode::InvalidRequest,
                broker_epoch: -1,
            };
        }
        if let Some(session) = self.sessions.get(&broker_id) {
            if session.incarnation_id == request.incarnation_id {
                let registration = &self.image.brokers[&broker_id];
                return BrokerRegistrationResponse {
                    error: ErrorCode::None,
                    broker_epoch: registration.broker_epoch,
                };
            }
            let valid = self.image.is_live(broker_id)
                && now < self.session_deadline(session.last_heartbeat_ms);
            if valid {
                return BrokerRegistrationResponse {
                    error: ErrorCode::DuplicateBrokerRegistration,
                    broker_epoch: -1,
                };
            }
        }
        if self.image.is_live(broker_id) {
            // The old session expired but the timer has not fenced it yet: take away
            // its leaderships and ISR seats before the new registration (which starts
            // fenced) replaces it, as the session expiry would.
            self.fence_broker(now, broker_id, out);
        }
        let broker_epoch = self.log_end();
        let offset = self.append(MetadataRecord::RegisterBroker {
            broker_id,
            broker_epoch,
        });
        assert_eq!(offset, broker_epoch);
        self.sessions.insert(
            broker_id,
            BrokerSession {
                incarnation_id: request.incarnation_id,
                last_heartbeat_ms: now,
            },
        );
        BrokerRegistrationResponse {
            error: ErrorCode::None,
            broker_epoch,
        }
    }

    /// `BrokerHeartbeat`: keeps the session alive, unfences a caught-up broker, fences
    /// one that asks for it.
    fn heartbeat(
        &mut self,
        now: Millis,
        request: BrokerHeartbeatRequest,
        out: &mut Outbox,
    ) -> BrokerHeartbeatResponse {
        let broker_id = request.broker_id;
        let Some(registration) = self.image.brokers.get(&broker_id) else {
            return BrokerHeartbeatResponse {
                error: ErrorCode::BrokerIdNotRegistered,
                is_fenced: true,
            };
        };
        if registration.broker_epoch != request.broker_epoch {
            return BrokerHeartbeatResponse {
                error: ErrorCode::StaleBrokerEpoch,
                is_fenced: true,
            };
        }
        let registration_offset = registration.broker_epoch;
        let fenced = registration.fenced;
        self.sessions
            .get_mut(&broker_id)
            .expect("a registered broker has a session")
            .last_heartbeat_ms = now;
        if fenced && !request.want_fence && request.current_metadata_offset >= registration_offset {
            self.unfence_broker(now, broker_id, out);
        } else if !fenced && request.want_fence {
            self.fence_broker(now, broker_id, out);
        }
        BrokerHeartbeatResponse {
            error: ErrorCode::None,
            is_fenced: !self.image.is_live(broker_id),
        }
    }

    /// Fences a live broker: it leaves every ISR it is not the last member of, and
    /// every partition it led gets a new leader (or none).
    fn fence_broker(&mut self, now: Millis, broker_id: BrokerId, out: &mut Outbox) {
        let broker_epoch = self.image.brokers[&broker_id].broker_epoch;
        assert!(
            self.image.is_live(broker_id),
            "fencing fenced broker {broker_id}"
        );
        self.append(MetadataRecord::FenceBroker {
            broker_id,
            broker_epoch,
        });
        let affected: Vec<PartitionRegistration> = self
            .image
            .partitions
            .values()
            .filter(|p| p.isr.contains(&broker_id))
            .cloned()
            .collect();
        for old in affected {
            let mut new = old.clone();
            if new.isr.len() > 1 {
                new.isr.retain(|r| *r != broker_id);
            }
            let mut unclean = false;
            if old.leader == Some(broker_id) {
                new.leader = self.first_live_in_isr(&new.replicas, &new.isr);
                if new.leader.is_none() && self.unclean_enabled(&new.tp) {
                    if let Some(leader) = self.first_live(&new.replicas) {
                        new.leader = Some(leader);
                        new.isr = vec![leader];
                        unclean = true;
                    }
                }
            }
            self.commit_change(now, new, unclean, out);
        }
    }

    /// Unfences a broker: leaderless partitions get it as leader when it is in their
    /// ISR, or (with unclean election enabled) when it is one of their replicas. The
    /// first time every broker is unfenced, the topics are created.
    fn unfence_broker(&mut self, now: Millis, broker_id: BrokerId, out: &mut Outbox) {
        let broker_epoch = self.image.brokers[&broker_id].broker_epoch;
        assert!(
            !self.image.is_live(broker_id),
            "unfencing live broker {broker_id}"
        );
        self.append(MetadataRecord::UnfenceBroker {
            broker_id,
            broker_epoch,
        });
        let offline: Vec<PartitionRegistration> = self
            .image
            .partitions
            .values()
            .filter(|p| p.leader.is_none() && p.replicas.contains(&broker_id))
            .cloned()
            .collect();
        for old in offline {
            let mut new = old.clone();
            new.leader = Some(broker_id);
            if old.isr.contains(&broker_id) {
                self.commit_change(now, new, false, out);
            } else if self.unclean_enabled(&old.tp) {
                new.isr = vec![broker_id];
                self.commit_change(now, new, true, out);
            }
        }
        self.create_topics_when_ready();
    }

    /// Creates the pending topics once every configured broker is unfenced.
    fn create_topics_when_ready(&mut self) {
        if self.pending_topics.is_empty() || !self.broker_ids.iter().all(|b| self.image.is_live(*b))
        {
            return;
        }
        let n = self.broker_ids.len();
        for spec in std::mem::take(&mut self.pending_topics) {
            assert!(spec.replication_factor as usize <= n);
            assert!(!self.image.topics.contains_key(&spec.name));
            self.append(MetadataRecord::Topic {
                name: spec.name.clone(),
                partitions: spec.partitions,
            });
            if !spec.config.is_empty() {
                self.append(MetadataRecord::TopicConfig {
                    name: spec.name.clone(),
                    config: spec.config.clone(),
                });
            }
            for partition in 0..spec.partitions {
                let replicas: Vec<BrokerId> = (0..spec.replication_factor)
                    .map(|i| self.broker_ids[(partition as usize + i as usize) % n])
                    .collect();
                let registration = PartitionRegistration {
                    tp: TopicPartition {
                        topic: spec.name.clone(),
                        partition,
                    },
                    isr: replicas.clone(),
                    leader: Some(replicas[0]),
                    replicas,
                    leader_epoch: 0,
                    partition_epoch: 0,
                };
                assert!(!self.image.partitions.contains_key(&registration.tp));
                self.assert_registration(&registration);
                self.append(MetadataRecord::PartitionChange(registration));
            }
        }
    }

    // ------------------------------------------------------------ partition changes

    /// `unclean.leader.election.enable` for the partition's topic: its override, else
    /// the cluster's (Kafka's `ConfigurationControlManager`, read per topic by
    /// `ReplicationControlManager`).
    fn unclean_enabled(&self, tp: &TopicPartition) -> bool {
        self.image
            .unclean_leader_election_enable(&tp.topic)
            .unwrap_or(self.config.unclean_leader_election_enable)
    }

    /// The first replica, in `replicas` order, that is in `isr` and unfenced.
    fn first_live_in_isr(&self, replicas: &[BrokerId], isr: &[BrokerId]) -> Option<BrokerId> {
        replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && self.image.is_live(*r))
    }

    /// The first unfenced replica, in `replicas` order.
    fn first_live(&self, replicas: &[BrokerId]) -> Option<BrokerId> {
        replicas.iter().copied().find(|r| self.image.is_live(*r))
    }

    /// Appends `new` as the next registration of its partition: the leader epoch is
    /// bumped when the leader changes, the partition epoch always. Records the change
    /// in the history and returns the registration as appended.
    fn commit_change(
        &mut self,
        now: Millis,
        mut new: PartitionRegistration,
        unclean: bool,
        out: &mut Outbox,
    ) -> PartitionRegistration {
        let old = self
            .image
            .partitions
            .get(&new.tp)
            .expect("only existing partitions change");
        let leader_changed = new.leader != old.leader;
        assert!(
            leader_changed || new.isr != old.isr || new.replicas != old.replicas,
            "partition change of {} changes nothing",
            new.tp
        );
        let mut old_set = old.replicas.clone();
        old_set.sort_unstable();
        let mut new_set = new.replicas.clone();
        new_set.sort_unstable();
        assert_eq!(old_set, new_set, "replica set of {} changed", new.tp);
        assert!(
            !unclean || (leader_changed && new.leader.is_some() && new.isr.len() == 1),
            "an unclean election of {} must elect a leader with ISR = [leader]",
            new.tp
        );
        new.leader_epoch = old.leader_epoch + i32::from(leader_changed);
        new.partition_epoch = old.partition_epoch + 1;
        self.assert_registration(&new);
        self.append(MetadataRecord::PartitionChange(new.clone()));
        out.record(Entry::instant(
            NodeId::Controller,
            now,
            Op::PartitionChange {
                partition: new.tp.clone(),
                leader: new.leader,
                leader_epoch: new.leader_epoch,
                isr: new.isr.clone(),
                unclean,
            },
        ));
        new
    }

    /// The invariants every committed registration satisfies.
    fn assert_registration(&self, reg: &PartitionRegistration) {
        let tp = &reg.tp;
        assert!(!reg.replicas.is_empty(), "{tp} has no replicas");
        for (i, r) in reg.replicas.iter().enumerate() {
            assert!(!reg.replicas[..i].contains(r), "{tp}: replica {r} twice");
            assert!(
                self.broker_ids.contains(r),
                "{tp}: replica {r} is no broker"
            );
        }
        assert!(!reg.isr.is_empty(), "{tp} has an empty ISR");
        for (i, r) in reg.isr.iter().enumerate() {
            assert!(!reg.isr[..i].contains(r), "{tp}: ISR member {r} twice");
            assert!(
                reg.replicas.contains(r),
                "{tp}: ISR member {r} is no replica"
            );
            assert!(
                reg.isr.len() == 1 || self.image.is_live(*r),
                "{tp}: fenced broker {r} in a multi-member ISR {:?}",
                reg.isr
            );
        }
        match reg.leader {
            Some(leader) => {
                assert!(
                    reg.isr.contains(&leader),
                    "{tp}: leader {leader} not in ISR"
                );
                assert!(self.image.is_live(leader), "{tp}: fenced leader {leader}");
            }
            None => {
                assert!(
                    self.first_live_in_isr(&reg.replicas, &reg.isr).is_none(),
                    "{tp} is offline with a live ISR member"
                );
                assert!(
                    !self.unclean_enabled(tp) || self.first_live(&reg.replicas).is_none(),
                    "{tp} is offline with a live replica and unclean election enabled"
                );
            }
        }
        assert!(reg.leader_epoch >= 0 && reg.partition_epoch >= 0);
    }

    /// The invariants that hold between inputs.
    fn assert_invariants(&self) {
        assert_eq!(self.image.next_offset, self.log_end());
        assert!(self.sessions.len() <= self.broker_ids.len());
        assert!(self.parked.len() <= self.broker_ids.len());
        assert!(self.sessions.keys().all(|b| self.broker_ids.contains(b)));
        assert!(self
            .image
            .brokers
            .keys()
            .all(|b| self.sessions.contains_key(b)));
        for reg in self.image.partitions.values() {
            self.assert_registration(reg);
        }
    }

    /// `AlterPartition`: the leader's proposed ISR, validated as KRaft does.
    fn alter_partition(
        &mut self,
        now: Millis,
        request: AlterPartitionRequest,
        out: &mut Outbox,
    ) -> AlterPartitionResponse {
        let current = self.image.partitions.get(&request.tp).cloned();
        let error = self.validate_alter_partition(&request, current.as_ref());
        let (Some(current), ErrorCode::None) = (current.clone(), error) else {
            return AlterPartitionResponse {
                tp: request.tp,
                error,
                registration: current,
            };
        };
        let registration = if request.new_isr == current.isr {
            current
        } else {
            let mut new = current;
            new.isr = request.new_isr;
            self.commit_change(now, new, false, out)
        };
        AlterPartitionResponse {
            tp: request.tp,
            error: ErrorCode::None,
            registration: Some(registration),
        }
    }

    /// The error an `AlterPartition` gets, `NONE` if it is valid.
    fn validate_alter_partition(
        &self,
        request: &AlterPartitionRequest,
        current: Option<&PartitionRegistration>,
    ) -> ErrorCode {
        let epoch_current = self
            .image
            .brokers
            .get(&request.broker_id)
            .is_some_and(|b| b.broker_epoch == request.broker_epoch);
        if !epoch_current {
            return ErrorCode::StaleBrokerEpoch;
        }
        // Kafka's `ReplicationControlManager.validateAlterPartitionData`, in its order.
        let Some(current) = current else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        // Epochs ahead of ours: the requester knows a newer controller.
        if request.leader_epoch > current.leader_epoch
            || request.partition_epoch > current.partition_epoch
        {
            return ErrorCode::NotController;
        }
        if request.leader_epoch < current.leader_epoch {
            return ErrorCode::FencedLeaderEpoch;
        }
        if current.leader != Some(request.broker_id) {
            return ErrorCode::InvalidRequest;
        }
        if request.partition_epoch < current.partition_epoch {
            return ErrorCode::InvalidUpdateVersion;
        }
        let isr = &request.new_isr;
        let well_formed = isr
            .iter()
            .enumerate()
            .all(|(i, r)| !isr[..i].contains(r) && current.replicas.contains(r));
        if !well_formed || !isr.contains(&request.broker_id) {
            return ErrorCode::InvalidRequest;
        }
        // `ineligibleReplicasForIsr`: every member must be registered and unfenced
        // (AlterPartition v2+ answers INELIGIBLE_REPLICA, older OPERATION_NOT_ATTEMPTED).
        if isr.iter().any(|r| !self.image.is_live(*r)) {
            return ErrorCode::IneligibleReplica;
        }
        ErrorCode::None
    }

    /// Makes the preferred replica the leader when it is live and in the ISR.
    fn elect_preferred(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) -> ErrorCode {
        let Some(current) = self.image.partitions.get(tp).cloned() else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        let preferred = current.replicas[0];
        if current.leader == Some(preferred) {
            return ErrorCode::ElectionNotNeeded;
        }
        if !current.isr.contains(&preferred) || !self.image.is_live(preferred) {
            return ErrorCode::PreferredLeaderNotAvailable;
        }
        let mut new = current;
        new.leader = Some(preferred);
        self.commit_change(now, new, false, out);
        ErrorCode::None
    }

    /// Elects the first live replica of a leaderless partition, with ISR = [it].
    fn elect_unclean(&mut self, now: Millis, tp: &TopicPartition, out: &mut Outbox) -> ErrorCode {
        let Some(current) = self.image.partitions.get(tp).cloned() else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        if current.leader.is_some() {
            return ErrorCode::ElectionNotNeeded;
        }
        let Some(leader) = self.first_live(&current.replicas) else {
            return ErrorCode::EligibleLeadersNotAvailable;
        };
        // A leaderless partition has no live ISR member, so this is always unclean.
        assert!(!current.isr.contains(&leader));
        let mut new = current;
        new.leader = Some(leader);
        new.isr = vec![leader];
        self.commit_change(now, new, true, out);
        ErrorCode::None
    }

    /// `ElectLeaders`, partition by partition in request order.
    fn elect_leaders(
        &mut self,
        now: Millis,
        request: ElectLeadersRequest,
        out: &mut Outbox,
    ) -> ElectLeadersResponse {
        let partitions = request
            .partitions
            .into_iter()
            .map(|tp| {
                let error = match request.election_type {
                    ElectionType::Preferred => self.elect_preferred(now, &tp, out),
                    ElectionType::Unclean => self.elect_unclean(now, &tp, out),
                };
                (tp, error)
            })
            .collect();
        ElectLeadersResponse { partitions }
    }

    /// `AlterPartitionReassignments`: reorders the replicas (the set may not change),
    /// then runs a preferred election, which moves leadership to the new first replica
    /// when it is live and in the ISR.
    fn reassign(
        &mut self,
        now: Millis,
        request: AlterPartitionReassignmentsRequest,
        out: &mut Outbox,
    ) -> AlterPartitionReassignmentsResponse {
        let Some(current) = self.image.partitions.get(&request.tp).cloned() else {
            return AlterPartitionReassignmentsResponse {
                tp: request.tp,
                error: ErrorCode::UnknownTopicOrPartition,
            };
        };
        let mut old_set = current.replicas.clone();
        old_set.sort_unstable();
        let mut new_set = request.replicas.clone();
        new_set.sort_unstable();
        if old_set != new_set {
            return AlterPartitionReassignmentsResponse {
                tp: request.tp,
                error: ErrorCode::InvalidRequest,
            };
        }
        if request.replicas != current.replicas {
            let mut new = current;
            new.replicas = request.replicas;
            self.commit_change(now, new, false, out);
        }
        // The reassignment itself succeeded; the election's outcome shows in the log.
        self.elect_preferred(now, &request.tp, out);
        AlterPartitionReassignmentsResponse {
            tp: request.tp,
            error: ErrorCode::None,
        }
    }

    // ------------------------------------------------------------ metadata fetch

    /// `AllocateProducerIds` (KIP-730): hands a registered broker the next block of
    /// [`PRODUCER_ID_BLOCK_SIZE`] ids, recorded in the metadata log so that no id is
    /// ever given twice.
    fn allocate_producer_ids(
        &mut self,
        request: AllocateProducerIdsRequest,
    ) -> AllocateProducerIdsResponse {
        let registered = self
            .image
            .brokers
            .get(&request.broker_id)
            .is_some_and(|b| b.broker_epoch == request.broker_epoch);
        if !registered {
            return AllocateProducerIdsResponse {
                error: ErrorCode::StaleBrokerEpoch,
                producer_id_start: -1,
                producer_id_len: 0,
            };
        }
        let start = self.image.next_producer_id;
        let next = start + i64::from(PRODUCER_ID_BLOCK_SIZE);
        self.append(MetadataRecord::ProducerIds {
            broker_id: request.broker_id,
            broker_epoch: request.broker_epoch,
            next_producer_id: next,
        });
        AllocateProducerIdsResponse {
            error: ErrorCode::None,
            producer_id_start: start,
            producer_id_len: PRODUCER_ID_BLOCK_SIZE,
        }
    }

    /// Up to `METADATA_FETCH_MAX_RECORDS` records from `fetch_offset` (clamped to the
    /// log), and the log end.
    fn fetch_response(&self, fetch_offset: i64) -> MetadataFetchResponse {
        let end = self.log.len();
        let start = usize::try_from(fetch_offset.max(0)).map_or(end, |s| s.min(end));
        let stop = end.min(start + METADATA_FETCH_MAX_RECORDS);
        MetadataFetchResponse {
            records: (start..stop)
                .map(|o| (o as i64, self.log[o].clone()))
                .collect(),
            log_end_offset: self.log_end(),
        }
    }

    /// `MetadataFetch`: answered at once when there is something to return (or the
    /// fetcher may not wait), else parked until the log grows or `max_wait_ms` passes.
    fn metadata_fetch(
        &mut self,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        request: MetadataFetchRequest,
    ) -> Option<MetadataFetchResponse> {
        // A broker's new fetch supersedes its parked one.
        self.parked.remove(&request.broker_id);
        let park = request.fetch_offset == self.log_end()
            && request.max_wait_ms > 0
            && self.broker_ids.contains(&request.broker_id);
        if !park {
            return Some(self.fetch_response(request.fetch_offset));
        }
        self.parked.insert(
            request.broker_id,
            ParkedFetch {
                to: from,
                correlation_id,
                fetch_offset: request.fetch_offset,
                deadline_ms: now.saturating_add(request.max_wait_ms),
            },
        );
        None
    }

    /// Answers every parked fetch that the log has grown past or whose wait is over.
    fn answer_parked(&mut self, now: Millis, out: &mut Outbox) {
        let end = self.log_end();
        let ready: Vec<BrokerId> = self
            .parked
            .iter()
            .filter(|(_, p)| p.fetch_offset < end || p.deadline_ms <= now)
            .map(|(b, _)| *b)
            .collect();
        for broker in ready {
            let parked = self.parked.remove(&broker).expect("ready fetch is parked");
            let response = self.fetch_response(parked.fetch_offset);
            out.send(
                parked.to,
                Message::Response {
                    correlation_id: parked.correlation_id,
                    response: Response::MetadataFetch(response),
                },
            );
        }
    }

    /// When the session of a live broker whose last heartbeat was at `last` expires:
    /// the first instant at which it is older than the session timeout.
    fn session_deadline(&self, last: Millis) -> Millis {
        last.saturating_add(self.config.broker_session_timeout_ms)
            .saturating_add(1)
    }
}

impl Actor for Controller {
    /// The controller keeps no volatile state to rebuild: nothing to do.
    fn on_start(&mut self, _now: Millis, _out: &mut Outbox) {}

    /// Serves the KRaft broker lifecycle and admin requests; other requests get no
    /// answer and responses are ignored.
    fn on_message(&mut self, now: Millis, from: NodeId, message: Message, out: &mut Outbox) {
        let Message::Request {
            correlation_id,
            request,
        } = message
        else {
            return;
        };
        let response = match request {
            Request::BrokerRegistration(r) => Some(Response::BrokerRegistration(
                self.register_broker(now, r, out),
            )),
            Request::BrokerHeartbeat(r) => {
                Some(Response::BrokerHeartbeat(self.heartbeat(now, r, out)))
            }
            Request::MetadataFetch(r) => self
                .metadata_fetch(now, from, correlation_id, r)
                .map(Response::MetadataFetch),
            Request::AlterPartition(r) => {
                Some(Response::AlterPartition(self.alter_partition(now, r, out)))
            }
            Request::ElectLeaders(r) => {
                Some(Response::ElectLeaders(self.elect_leaders(now, r, out)))
            }
            Request::AlterPartitionReassignments(r) => Some(Response::AlterPartitionReassignments(
                self.reassign(now, r, out),
            )),
            Request::AllocateProducerIds(r) => {
                Some(Response::AllocateProducerIds(self.allocate_producer_ids(r)))
            }
            Request::Metadata(_)
            | Request::InitProducerId(_)
            | Request::Produce(_)
            | Request::Fetch(_)
            | Request::ListOffsets(_)
            | Request::OffsetsForLeaderEpoch(_)
            | Request::FindCoordinator(_)
            | Request::JoinGroup(_)
            | Request::SyncGroup(_)
            | Request::Heartbeat(_)
            | Request::LeaveGroup(_)
            | Request::OffsetCommit(_)
            | Request::OffsetFetch(_)
            | Request::AddPartitionsToTxn(_)
            | Request::AddOffsetsToTxn(_)
            | Request::EndTxn(_)
            | Request::WriteTxnMarkers(_)
            | Request::TxnOffsetCommit(_) => None,
        };
        if let Some(response) = response {
            out.send(
                from,
                Message::Response {
                    correlation_id,
                    response,
                },
            );
        }
        self.answer_parked(now, out);
        self.assert_invariants();
    }

    /// Fences brokers whose session expired, then answers parked fetches that the log
    /// has grown past or whose wait is over.
    fn on_timer(&mut self, now: Millis, out: &mut Outbox) {
        let expired: Vec<BrokerId> = self
            .sessions
            .iter()
            .filter(|(b, s)| {
                self.image.is_live(**b) && now >= self.session_deadline(s.last_heartbeat_ms)
            })
            .map(|(b, _)| *b)
            .collect();
        for broker in expired {
            self.fence_broker(now, broker, out);
        }
        self.answer_parked(now, out);
        self.assert_invariants();
    }

    /// The earliest session expiry of a live broker or parked fetch deadline.
    fn next_timer(&self) -> Option<Millis> {
        let sessions = self
            .sessions
            .iter()
            .filter(|(b, _)| self.image.is_live(**b))
            .map(|(_, s)| self.session_deadline(s.last_heartbeat_ms));
        let fetches = self.parked.values().map(|p| p.deadline_ms);
        sessions.chain(fetches).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::metadata::BrokerRegistration;
    use std::sync::Arc;

    const CORR: u64 = 7;
    const BROKERS: [BrokerId; 3] = [1, 2, 3];

    fn config(unclean: bool) -> BrokerConfig {
        BrokerConfig {
            unclean_leader_election_enable: unclean,
            ..BrokerConfig::default()
        }
    }

    fn topic(name: &str, partitions: u32, replication_factor: u32) -> TopicSpec {
        TopicSpec {
            config: Default::default(),
            name: Arc::from(name),
            partitions,
            replication_factor,
        }
    }

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn reg(
        tp: TopicPartition,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        leader: Option<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> PartitionRegistration {
        PartitionRegistration {
            tp,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch,
            partition_epoch,
        }
    }

    fn change(
        partition: TopicPartition,
        leader: Option<BrokerId>,
        leader_epoch: i32,
        isr: &[BrokerId],
        unclean: bool,
    ) -> Op {
        Op::PartitionChange {
            partition,
            leader,
            leader_epoch,
            isr: isr.to_vec(),
            unclean,
        }
    }

    fn send_with(
        c: &mut Controller,
        now: Millis,
        from: NodeId,
        correlation_id: u64,
        request: Request,
    ) -> Outbox {
        let mut out = Outbox::default();
        c.on_message(
            now,
            from,
            Message::Request {
                correlation_id,
                request,
            },
            &mut out,
        );
        out
    }

    fn send(c: &mut Controller, now: Millis, from: NodeId, request: Request) -> Outbox {
        send_with(c, now, from, CORR, request)
    }

    /// The one response in `out` to `to` with correlation id `correlation_id`.
    fn response_with(out: &Outbox, to: NodeId, correlation_id: u64) -> Response {
        let found: Vec<&Response> = out
            .sends
            .iter()
            .filter_map(|(node, message)| match message {
                Message::Response {
                    correlation_id: c,
                    response,
                } if *node == to && *c == correlation_id => Some(response),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "responses to {to}: {:?}", out.sends);
        found[0].clone()
    }

    fn response(out: &Outbox, to: NodeId) -> Response {
        assert_eq!(out.sends.len(), 1, "sends: {:?}", out.sends);
        response_with(out, to, CORR)
    }

    fn history(out: &Outbox) -> Vec<Op> {
        for entry in &out.history {
            assert_eq!(entry.process, NodeId::Controller);
            assert_eq!(entry.invoke_ms, entry.complete_ms.expect("instant entry"));
        }
        out.history.iter().map(|e| e.op.clone()).collect()
    }

    fn try_register(
        c: &mut Controller,
        now: Millis,
        broker: BrokerId,
        incarnation_id: u64,
    ) -> BrokerRegistrationResponse {
        let out = send(
            c,
            now,
            NodeId::Broker(broker),
            Request::BrokerRegistration(BrokerRegistrationRequest {
                broker_id: broker,
                incarnation_id,
            }),
        );
        match response(&out, NodeId::Broker(broker)) {
            Response::BrokerRegistration(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn register(c: &mut Controller, now: Millis, broker: BrokerId, incarnation_id: u64) -> i64 {
        let r = try_register(c, now, broker, incarnation_id);
        assert_eq!(r.error, ErrorCode::None);
        r.broker_epoch
    }

    fn heartbeat_with(
        c: &mut Controller,
        now: Millis,
        broker: BrokerId,
        broker_epoch: i64,
        current_metadata_offset: i64,
        want_fence: bool,
    ) -> (BrokerHeartbeatResponse, Outbox) {
        let out = send(
            c,
            now,
            NodeId::Broker(broker),
            Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id: broker,
                broker_epoch,
                current_metadata_offset,
                want_fence,
            }),
        );
        match response(&out, NodeId::Broker(broker)) {
            Response::BrokerHeartbeat(r) => (r, out),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A caught-up heartbeat that does not want to be fenced; returns `is_fenced`.
    fn heartbeat(c: &mut Controller, now: Millis, broker: BrokerId, epoch: i64) -> (bool, Outbox) {
        let offset = c.log_end() - 1;
        let (r, out) = heartbeat_with(c, now, broker, epoch, offset, false);
        assert_eq!(r.error, ErrorCode::None);
        (r.is_fenced, out)
    }

    /// Brokers 1, 2, 3 registered and unfenced at time 0 (epochs 0, 1, 2), topics created.
    fn cluster(config: BrokerConfig, topics: Vec<TopicSpec>) -> Controller {
        let mut c = Controller::new(config, BROKERS.to_vec(), topics);
        for b in BROKERS {
            assert_eq!(register(&mut c, 0, b, 100 + u64::from(b)), i64::from(b) - 1);
        }
        for b in BROKERS {
            assert!(!heartbeat(&mut c, 0, b, i64::from(b) - 1).0);
        }
        c
    }

    fn timer(c: &mut Controller, now: Millis) -> Outbox {
        let mut out = Outbox::default();
        c.on_timer(now, &mut out);
        out
    }

    fn partition(c: &Controller, p: u32) -> PartitionRegistration {
        c.image().partitions[&tp(p)].clone()
    }

    fn tail(c: &Controller, n: usize) -> Vec<MetadataRecord> {
        c.log()[c.log().len() - n..].to_vec()
    }

    #[allow(clippy::too_many_arguments)]
    fn alter(
        c: &mut Controller,
        now: Millis,
        broker_id: BrokerId,
        broker_epoch: i64,
        tp: TopicPartition,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[BrokerId],
    ) -> (AlterPartitionResponse, Outbox) {
        let out = send(
            c,
            now,
            NodeId::Broker(broker_id),
            Request::AlterPartition(AlterPartitionRequest {
                broker_id,
                broker_epoch,
                tp,
                leader_epoch,
                partition_epoch,
                new_isr: new_isr.to_vec(),
            }),
        );
        match response(&out, NodeId::Broker(broker_id)) {
            Response::AlterPartition(r) => (r, out),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn elect(
        c: &mut Controller,
        now: Millis,
        election_type: ElectionType,
        partitions: &[u32],
    ) -> (Vec<ErrorCode>, Outbox) {
        let out = send(
            c,
            now,
            NodeId::Nemesis,
            Request::ElectLeaders(ElectLeadersRequest {
                election_type,
                partitions: partitions.iter().map(|p| tp(*p)).collect(),
            }),
        );
        match response(&out, NodeId::Nemesis) {
            Response::ElectLeaders(r) => {
                let expected: Vec<TopicPartition> = partitions.iter().map(|p| tp(*p)).collect();
                let got: Vec<TopicPartition> =
                    r.partitions.iter().map(|(t, _)| t.clone()).collect();
                assert_eq!(got, expected);
                (r.partitions.into_iter().map(|(_, e)| e).collect(), out)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn reassign(
        c: &mut Controller,
        now: Millis,
        tp: TopicPartition,
        replicas: &[BrokerId],
    ) -> (ErrorCode, Outbox) {
        let out = send(
            c,
            now,
            NodeId::Nemesis,
            Request::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
                tp: tp.clone(),
                replicas: replicas.to_vec(),
            }),
        );
        match response(&out, NodeId::Nemesis) {
            Response::AlterPartitionReassignments(r) => {
                assert_eq!(r.tp, tp);
                (r.error, out)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn fetch_request(broker_id: BrokerId, fetch_offset: i64, max_wait_ms: u64) -> Request {
        Request::MetadataFetch(MetadataFetchRequest {
            broker_id,
            fetch_offset,
            max_wait_ms,
        })
    }

    fn fetch_response(out: &Outbox, to: NodeId, correlation_id: u64) -> MetadataFetchResponse {
        match response_with(out, to, correlation_id) {
            Response::MetadataFetch(r) => r,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A broker replaying `log()` into a fresh image reaches the controller's image.
    fn assert_replay_matches(c: &Controller) {
        let mut replay = MetadataImage::default();
        for (offset, record) in c.log().iter().enumerate() {
            replay.apply(offset as i64, record);
        }
        assert_eq!(replay.next_offset, c.image().next_offset);
        assert_eq!(replay.brokers, c.image().brokers);
        assert_eq!(replay.topics, c.image().topics);
        assert_eq!(replay.partitions, c.image().partitions);
        assert_eq!(replay.next_producer_id, c.image().next_producer_id);
    }

    #[test]
    fn registration_is_fenced_until_a_caught_up_heartbeat() {
        let mut c = Controller::new(config(false), BROKERS.to_vec(), vec![topic("t", 1, 3)]);
        assert_eq!(register(&mut c, 0, 1, 100), 0);
        let registered = MetadataRecord::RegisterBroker {
            broker_id: 1,
            broker_epoch: 0,
        };
        assert_eq!(c.log(), std::slice::from_ref(&registered));
        assert_eq!(
            c.image().brokers[&1],
            BrokerRegistration {
                broker_epoch: 0,
                fenced: true
            }
        );
        // Fenced brokers have no session to expire.
        assert_eq!(c.next_timer(), None);

        // The same incarnation again: the same epoch, no record.
        assert_eq!(register(&mut c, 5, 1, 100), 0);
        assert_eq!(c.log().len(), 1);

        // Not caught up yet, then asking to stay fenced: still fenced.
        let (r, _) = heartbeat_with(&mut c, 10, 1, 0, -1, false);
        assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
        let (r, _) = heartbeat_with(&mut c, 10, 1, 0, 0, true);
        assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
        assert_eq!(c.log().len(), 1);

        // Caught up: unfenced.
        let (r, out) = heartbeat_with(&mut c, 20, 1, 0, 0, false);
        assert_eq!((r.error, r.is_fenced), (ErrorCode::None, false));
        assert!(out.history.is_empty());
        assert_eq!(
            c.log()[1],
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 0
            }
        );
        assert!(c.image().is_live(1));
        assert_eq!(c.next_timer(), Some(20 + 9_000 + 1));

        // Errors: unknown broker, stale epoch, broker outside the cluster.
        let (r, _) = heartbeat_with(&mut c, 30, 2, 0, 5, false);
        assert_eq!(
            (r.error, r.is_fenced),
            (ErrorCode::BrokerIdNotRegistered, true)
        );
        let (r, _) = heartbeat_with(&mut c, 30, 1, 7, 5, false);
        assert_eq!((r.error, r.is_fenced), (ErrorCode::StaleBrokerEpoch, true));
        let r = try_register(&mut c, 30, 9, 1);
        assert_eq!((r.error, r.broker_epoch), (ErrorCode::InvalidRequest, -1));
        assert_eq!(c.log().len(), 2);
        assert!(c.image().topics.is_empty());

        // An unfenced broker asking to be fenced is fenced.
        let (r, _) = heartbeat_with(&mut c, 40, 1, 0, 1, true);
        assert_eq!((r.error, r.is_fenced), (ErrorCode::None, true));
        assert_eq!(
            c.log()[2],
            MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 0
            }
        );
        assert_eq!(c.next_timer(), None);
        assert_replay_matches(&c);
    }

    #[test]
    fn topics_are_created_round_robin_once_every_broker_is_unfenced() {
        let mut c = Controller::new(
            config(false),
            BROKERS.to_vec(),
            vec![topic("t", 4, 2), topic("u", 1, 3)],
        );
        for b in BROKERS {
            register(&mut c, 0, b, 100);
        }
        assert!(!heartbeat(&mut c, 0, 1, 0).0);
        assert!(!heartbeat(&mut c, 0, 2, 1).0);
        assert!(c.image().topics.is_empty());
        assert_eq!(c.log().len(), 5);
        let (fenced, out) = heartbeat(&mut c, 0, 3, 2);
        assert!(!fenced);
        assert!(out.history.is_empty(), "creation is not a change");

        let u0 = TopicPartition::new("u", 0);
        let expected = vec![
            MetadataRecord::UnfenceBroker {
                broker_id: 3,
                broker_epoch: 2,
            },
            MetadataRecord::Topic {
                name: Arc::from("t"),
                partitions: 4,
            },
            MetadataRecord::PartitionChange(reg(tp(0), &[1, 2], &[1, 2], Some(1), 0, 0)),
            MetadataRecord::PartitionChange(reg(tp(1), &[2, 3], &[2, 3], Some(2), 0, 0)),
            MetadataRecord::PartitionChange(reg(tp(2), &[3, 1], &[3, 1], Some(3), 0, 0)),
            MetadataRecord::PartitionChange(reg(tp(3), &[1, 2], &[1, 2], Some(1), 0, 0)),
            MetadataRecord::Topic {
                name: Arc::from("u"),
                partitions: 1,
            },
            MetadataRecord::PartitionChange(reg(u0.clone(), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 0)),
        ];
        assert_eq!(&c.log()[5..], expected.as_slice());
        assert_eq!(c.image().topics.len(), 2);
        assert_eq!(c.image().partitions.len(), 5);
        assert_eq!(c.image().partitions[&u0].replicas, vec![1, 2, 3]);

        // A broker fenced and unfenced again does not create anything twice.
        let end = c.log().len();
        heartbeat_with(&mut c, 100, 3, 2, 0, true);
        heartbeat(&mut c, 100, 3, 2);
        assert!(c.log()[end..]
            .iter()
            .all(|r| !matches!(r, MetadataRecord::Topic { .. })));
        assert_replay_matches(&c);
    }

    #[test]
    fn missed_heartbeats_fence_the_leader_and_elect_from_the_isr() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 0)
        );
        assert_eq!(c.next_timer(), Some(9_001));
        heartbeat(&mut c, 5_000, 2, 1);
        heartbeat(&mut c, 5_000, 3, 2);
        assert_eq!(c.next_timer(), Some(9_001));

        let end = c.log().len();
        let out = timer(&mut c, 9_000);
        assert!(out.history.is_empty() && out.sends.is_empty());
        assert_eq!(c.log().len(), end);

        let out = timer(&mut c, 9_001);
        let moved = reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 1);
        assert_eq!(
            tail(&c, 2),
            vec![
                MetadataRecord::FenceBroker {
                    broker_id: 1,
                    broker_epoch: 0
                },
                MetadataRecord::PartitionChange(moved.clone()),
            ]
        );
        assert_eq!(
            history(&out),
            vec![change(tp(0), Some(2), 1, &[2, 3], false)]
        );
        assert_eq!(partition(&c, 0), moved);
        assert_eq!(c.next_timer(), Some(14_001));

        // Back, but out of the ISR: unfenced without a partition change.
        let (fenced, out) = heartbeat(&mut c, 9_500, 1, 0);
        assert!(!fenced);
        assert!(out.history.is_empty());
        assert_eq!(
            tail(&c, 1),
            vec![MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 0
            }]
        );
        assert_eq!(partition(&c, 0), moved);
        assert_replay_matches(&c);
    }

    #[test]
    fn losing_the_last_isr_member_leaves_the_partition_offline() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        heartbeat(&mut c, 5_000, 1, 0);
        let out = timer(&mut c, 9_001);
        assert_eq!(
            history(&out),
            vec![
                change(tp(0), Some(1), 0, &[1, 3], false),
                change(tp(0), Some(1), 0, &[1], false),
            ]
        );
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1], Some(1), 0, 2)
        );

        // The last ISR member dies: it keeps its seat, the partition has no leader.
        let out = timer(&mut c, 14_001);
        assert_eq!(history(&out), vec![change(tp(0), None, 1, &[1], false)]);
        let offline = reg(tp(0), &[1, 2, 3], &[1], None, 1, 3);
        assert_eq!(partition(&c, 0), offline);
        assert_eq!(
            c.image().describe(None)[0].error,
            ErrorCode::LeaderNotAvailable
        );
        assert_eq!(c.next_timer(), None);
        let (errors, _) = elect(&mut c, 14_100, ElectionType::Unclean, &[0]);
        assert_eq!(errors, vec![ErrorCode::EligibleLeadersNotAvailable]);

        // Another replica returns: no unclean election when disabled.
        let (fenced, out) = heartbeat(&mut c, 15_000, 2, 1);
        assert!(!fenced);
        assert!(out.history.is_empty());
        assert_eq!(partition(&c, 0), offline);
        let (errors, _) = elect(&mut c, 15_000, ElectionType::Preferred, &[0]);
        assert_eq!(errors, vec![ErrorCode::PreferredLeaderNotAvailable]);

        // The last ISR member returns: a clean election.
        let (fenced, out) = heartbeat(&mut c, 15_000, 1, 0);
        assert!(!fenced);
        assert_eq!(history(&out), vec![change(tp(0), Some(1), 2, &[1], false)]);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1], Some(1), 2, 4)
        );
        assert_replay_matches(&c);
    }

    /// Broker 1 leads with ISR [1] (shrunk by AlterPartition) and its session expires.
    fn lose_sole_isr_leader(unclean: bool) -> (Controller, Outbox) {
        let mut c = cluster(config(unclean), vec![topic("t", 1, 3)]);
        let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
        assert_eq!(r.error, ErrorCode::None);
        heartbeat(&mut c, 5_000, 2, 1);
        heartbeat(&mut c, 5_000, 3, 2);
        let out = timer(&mut c, 9_001);
        (c, out)
    }

    #[test]
    fn unclean_election_happens_only_when_enabled() {
        let (mut c, out) = lose_sole_isr_leader(false);
        assert_eq!(history(&out), vec![change(tp(0), None, 1, &[1], false)]);
        assert_eq!(partition(&c, 0), reg(tp(0), &[1, 2, 3], &[1], None, 1, 2));
        // The admin may still force an unclean election.
        let (errors, out) = elect(&mut c, 9_100, ElectionType::Unclean, &[0]);
        assert_eq!(errors, vec![ErrorCode::None]);
        assert_eq!(history(&out), vec![change(tp(0), Some(2), 2, &[2], true)]);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[2], Some(2), 2, 3)
        );
        let (errors, _) = elect(&mut c, 9_100, ElectionType::Unclean, &[0]);
        assert_eq!(errors, vec![ErrorCode::ElectionNotNeeded]);
        assert_replay_matches(&c);

        let (mut c, out) = lose_sole_isr_leader(true);
        assert_eq!(history(&out), vec![change(tp(0), Some(2), 1, &[2], true)]);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[2], Some(2), 1, 2)
        );

        // Brokers 2 then 3 expire: 3 is elected uncleanly, then nobody is left.
        let out = timer(&mut c, 14_001);
        assert_eq!(
            history(&out),
            vec![
                change(tp(0), Some(3), 2, &[3], true),
                change(tp(0), None, 3, &[3], false),
            ]
        );
        // Broker 1 (fenced, never re-registered) returns: elected uncleanly on unfence.
        let (fenced, out) = heartbeat(&mut c, 14_500, 1, 0);
        assert!(!fenced);
        assert_eq!(history(&out), vec![change(tp(0), Some(1), 4, &[1], true)]);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1], Some(1), 4, 5)
        );
        assert_replay_matches(&c);
    }

    /// `unclean.leader.election.enable` is read per topic: the topic's override (a
    /// `TopicConfig` record after its `TopicRecord`) wins over the cluster's.
    #[test]
    fn unclean_election_follows_the_topics_override() {
        for (cluster_unclean, topic_unclean) in [(false, true), (true, false)] {
            let mut spec = topic("t", 1, 3);
            spec.config.unclean_leader_election_enable = Some(topic_unclean);
            let mut c = cluster(config(cluster_unclean), vec![spec.clone()]);
            assert!(c.log().contains(&MetadataRecord::TopicConfig {
                name: spec.name.clone(),
                config: spec.config.clone(),
            }));
            let (r, _) = alter(&mut c, 0, 1, 0, tp(0), 0, 0, &[1]);
            assert_eq!(r.error, ErrorCode::None);
            heartbeat(&mut c, 5_000, 2, 1);
            heartbeat(&mut c, 5_000, 3, 2);
            let out = timer(&mut c, 9_001);
            let expected = if topic_unclean {
                change(tp(0), Some(2), 1, &[2], true)
            } else {
                change(tp(0), None, 1, &[1], false)
            };
            assert_eq!(history(&out), vec![expected], "cluster {cluster_unclean}");
            assert_replay_matches(&c);
        }
    }

    #[test]
    fn alter_partition_is_validated() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        let current = partition(&c, 0);
        let end = c.log().len();
        // (sender, broker epoch, leader epoch, partition epoch, new ISR, expected error)
        type Case = (BrokerId, i64, i32, i32, &'static [BrokerId], ErrorCode);
        // Kafka's ReplicationControlManager.validateAlterPartitionData: epochs ahead of
        // the controller's are NOT_CONTROLLER, a non-leader is INVALID_REQUEST.
        let cases: [Case; 9] = [
            (1, 5, 0, 0, &[1, 2], ErrorCode::StaleBrokerEpoch),
            (2, 1, 0, 0, &[1, 2], ErrorCode::InvalidRequest),
            (1, 0, 1, 0, &[1, 2], ErrorCode::NotController),
            (1, 0, 0, 3, &[1, 2], ErrorCode::NotController),
            (2, 1, 0, 0, &[2, 3], ErrorCode::InvalidRequest),
            (1, 0, 0, 0, &[1, 4], ErrorCode::InvalidRequest),
            (1, 0, 0, 0, &[2, 3], ErrorCode::InvalidRequest),
            (1, 0, 0, 0, &[1, 1], ErrorCode::InvalidRequest),
            (1, 0, 0, 0, &[], ErrorCode::InvalidRequest),
        ];
        for (broker, epoch, leader_epoch, partition_epoch, isr, error) in cases {
            let (r, out) = alter(
                &mut c,
                10,
                broker,
                epoch,
                tp(0),
                leader_epoch,
                partition_epoch,
                isr,
            );
            assert_eq!(
                r.error, error,
                "{broker} {epoch} {leader_epoch} {partition_epoch} {isr:?}"
            );
            assert_eq!(r.tp, tp(0));
            assert_eq!(r.registration.as_ref(), Some(&current));
            assert!(out.history.is_empty());
        }
        let (r, _) = alter(&mut c, 10, 1, 0, tp(7), 0, 0, &[1]);
        assert_eq!(
            (r.error, r.registration),
            (ErrorCode::UnknownTopicOrPartition, None)
        );
        assert_eq!(c.log().len(), end);

        // A valid shrink: same leader epoch, next partition epoch.
        let (r, out) = alter(&mut c, 20, 1, 0, tp(0), 0, 0, &[1, 2]);
        let shrunk = reg(tp(0), &[1, 2, 3], &[1, 2], Some(1), 0, 1);
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(r.registration.as_ref(), Some(&shrunk));
        assert_eq!(
            tail(&c, 1),
            vec![MetadataRecord::PartitionChange(shrunk.clone())]
        );
        assert_eq!(
            history(&out),
            vec![change(tp(0), Some(1), 0, &[1, 2], false)]
        );

        // The old partition epoch is now stale.
        let (r, _) = alter(&mut c, 30, 1, 0, tp(0), 0, 0, &[1, 2, 3]);
        assert_eq!(r.error, ErrorCode::InvalidUpdateVersion);

        // Adding a fenced broker is refused, saying the request was not applied.
        heartbeat_with(&mut c, 40, 3, 2, 10, true);
        let (r, _) = alter(&mut c, 50, 1, 0, tp(0), 0, 1, &[1, 2, 3]);
        assert_eq!(r.error, ErrorCode::IneligibleReplica);
        assert_eq!(r.registration.as_ref(), Some(&shrunk));

        // The same ISR again: accepted without a record.
        let end = c.log().len();
        let (r, out) = alter(&mut c, 60, 1, 0, tp(0), 0, 1, &[1, 2]);
        assert_eq!(
            (r.error, r.registration.as_ref()),
            (ErrorCode::None, Some(&shrunk))
        );
        assert!(out.history.is_empty());
        assert_eq!(c.log().len(), end);

        // Broker 3 is back; the leader expands the ISR.
        heartbeat(&mut c, 70, 3, 2);
        let (r, _) = alter(&mut c, 80, 1, 0, tp(0), 0, 1, &[1, 2, 3]);
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 2)
        );
        // Broker 1 is fenced and 2 leads in epoch 1: the old leader's update, in its old
        // leader epoch, is FENCED_LEADER_EPOCH (a zombie leader's shrink changes nothing).
        heartbeat_with(&mut c, 90, 1, 0, 10, true);
        assert_eq!(partition(&c, 0).leader, Some(2));
        let end = c.log().len();
        let (r, out) = alter(&mut c, 100, 1, 0, tp(0), 0, 2, &[1]);
        assert_eq!(r.error, ErrorCode::FencedLeaderEpoch);
        assert!(out.history.is_empty());
        assert_eq!(c.log().len(), end);
        assert_replay_matches(&c);
    }

    #[test]
    fn preferred_election_and_reassignment_move_the_leader() {
        let mut c = cluster(config(false), vec![topic("t", 2, 3)]);
        let (errors, _) = elect(&mut c, 10, ElectionType::Preferred, &[0, 1, 9]);
        assert_eq!(
            errors,
            vec![
                ErrorCode::ElectionNotNeeded,
                ErrorCode::ElectionNotNeeded,
                ErrorCode::UnknownTopicOrPartition
            ]
        );

        // Reorder, then the preferred election moves the leader.
        let (error, out) = reassign(&mut c, 20, tp(0), &[2, 1, 3]);
        assert_eq!(error, ErrorCode::None);
        assert_eq!(
            tail(&c, 2),
            vec![
                MetadataRecord::PartitionChange(reg(tp(0), &[2, 1, 3], &[1, 2, 3], Some(1), 0, 1)),
                MetadataRecord::PartitionChange(reg(tp(0), &[2, 1, 3], &[1, 2, 3], Some(2), 1, 2)),
            ]
        );
        assert_eq!(
            history(&out),
            vec![
                change(tp(0), Some(1), 0, &[1, 2, 3], false),
                change(tp(0), Some(2), 1, &[1, 2, 3], false),
            ]
        );

        // Only a reordering of the same replicas is allowed.
        let end = c.log().len();
        assert_eq!(
            reassign(&mut c, 30, tp(0), &[2, 1]).0,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            reassign(&mut c, 30, tp(0), &[2, 1, 4]).0,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            reassign(&mut c, 30, tp(0), &[2, 2, 1, 3]).0,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            reassign(&mut c, 30, tp(5), &[1, 2, 3]).0,
            ErrorCode::UnknownTopicOrPartition
        );
        assert_eq!(c.log().len(), end);

        // The new preferred replica is out of the ISR: reordered, leader unchanged.
        let (r, _) = alter(&mut c, 40, 2, 1, tp(0), 1, 2, &[2, 3]);
        assert_eq!(r.error, ErrorCode::None);
        let (error, out) = reassign(&mut c, 50, tp(0), &[1, 2, 3]);
        assert_eq!(error, ErrorCode::None);
        assert_eq!(
            history(&out),
            vec![change(tp(0), Some(2), 1, &[2, 3], false)]
        );
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 4)
        );
        let (errors, _) = elect(&mut c, 60, ElectionType::Preferred, &[0]);
        assert_eq!(errors, vec![ErrorCode::PreferredLeaderNotAvailable]);

        // Back in the ISR: the preferred election succeeds.
        let (r, _) = alter(&mut c, 70, 2, 1, tp(0), 1, 4, &[2, 3, 1]);
        assert_eq!(r.error, ErrorCode::None);
        let (errors, out) = elect(&mut c, 80, ElectionType::Preferred, &[0]);
        assert_eq!(errors, vec![ErrorCode::None]);
        assert_eq!(
            history(&out),
            vec![change(tp(0), Some(1), 2, &[2, 3, 1], false)]
        );
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[2, 3, 1], Some(1), 2, 6)
        );
        // Unclean election is not needed for a partition with a leader.
        let (errors, _) = elect(&mut c, 90, ElectionType::Unclean, &[0]);
        assert_eq!(errors, vec![ErrorCode::ElectionNotNeeded]);
        // The untouched partition never changed.
        assert_eq!(
            partition(&c, 1),
            reg(tp(1), &[2, 3, 1], &[2, 3, 1], Some(2), 0, 0)
        );
        assert_replay_matches(&c);
    }

    #[test]
    fn a_new_incarnation_fences_the_old_one_first() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        // ClusterControlManager.registerBroker: while the old incarnation's session is
        // valid, a new one is refused (DUPLICATE_BROKER_REGISTRATION) and nothing is
        // written; the broker retries.
        let end = c.log_end();
        let session = c.config.broker_session_timeout_ms;
        for now in [100, session] {
            let r = try_register(&mut c, now, 1, 999);
            assert_eq!(
                (r.error, r.broker_epoch),
                (ErrorCode::DuplicateBrokerRegistration, -1)
            );
        }
        assert_eq!(c.log_end(), end);
        // Past the session (before the timer fenced it): the old incarnation is fenced
        // and the new one registered.
        let epoch = register(&mut c, session + 1, 1, 999);
        let end = c.log_end();
        assert_eq!(epoch, end - 1);
        assert_eq!(
            tail(&c, 3),
            vec![
                MetadataRecord::FenceBroker {
                    broker_id: 1,
                    broker_epoch: 0
                },
                MetadataRecord::PartitionChange(reg(tp(0), &[1, 2, 3], &[2, 3], Some(2), 1, 1)),
                MetadataRecord::RegisterBroker {
                    broker_id: 1,
                    broker_epoch: epoch
                },
            ]
        );
        // The old epoch is stale; the same new incarnation is idempotent.
        let (r, _) = heartbeat_with(&mut c, 110, 1, 0, end, false);
        assert_eq!(r.error, ErrorCode::StaleBrokerEpoch);
        assert_eq!(register(&mut c, 120, 1, 999), epoch);
        // Another restart while fenced: just a new registration.
        let epoch2 = register(&mut c, 130, 1, 1_000);
        assert_eq!(epoch2, end);
        assert_eq!(
            tail(&c, 1),
            vec![MetadataRecord::RegisterBroker {
                broker_id: 1,
                broker_epoch: epoch2
            }]
        );
        // Caught up to its registration: unfenced.
        let (r, _) = heartbeat_with(&mut c, 140, 1, epoch2, epoch2 - 1, false);
        assert!(r.is_fenced);
        let (r, _) = heartbeat_with(&mut c, 150, 1, epoch2, epoch2, false);
        assert!(!r.is_fenced);
        assert_replay_matches(&c);
    }

    #[test]
    fn metadata_fetch_long_polls() {
        let mut c = Controller::new(config(false), BROKERS.to_vec(), vec![]);
        register(&mut c, 0, 1, 100);
        let b2 = NodeId::Broker(2);

        // Behind the log end: answered at once.
        let out = send_with(&mut c, 10, b2, 1, fetch_request(2, 0, 500));
        let r = fetch_response(&out, b2, 1);
        assert_eq!(
            r.records,
            vec![(
                0,
                MetadataRecord::RegisterBroker {
                    broker_id: 1,
                    broker_epoch: 0
                }
            )]
        );
        assert_eq!(r.log_end_offset, 1);

        // At the log end: parked until the next append.
        let out = send_with(&mut c, 10, b2, 2, fetch_request(2, 1, 500));
        assert!(out.sends.is_empty());
        assert_eq!(c.next_timer(), Some(510));
        let out = send(
            &mut c,
            20,
            NodeId::Broker(3),
            Request::BrokerRegistration(BrokerRegistrationRequest {
                broker_id: 3,
                incarnation_id: 1,
            }),
        );
        assert_eq!(out.sends.len(), 2);
        let r = fetch_response(&out, b2, 2);
        assert_eq!(
            r.records,
            vec![(
                1,
                MetadataRecord::RegisterBroker {
                    broker_id: 3,
                    broker_epoch: 1
                }
            )]
        );
        assert_eq!(r.log_end_offset, 2);
        assert_eq!(c.next_timer(), None);

        // Parked, then answered empty when the wait is over.
        let out = send_with(&mut c, 30, b2, 3, fetch_request(2, 2, 500));
        assert!(out.sends.is_empty());
        assert!(timer(&mut c, 529).sends.is_empty());
        let out = timer(&mut c, 530);
        let r = fetch_response(&out, b2, 3);
        assert!(r.records.is_empty());
        assert_eq!(r.log_end_offset, 2);
        assert_eq!(c.next_timer(), None);

        // A new fetch replaces the parked one.
        send_with(&mut c, 600, b2, 4, fetch_request(2, 2, 500));
        send_with(&mut c, 610, b2, 5, fetch_request(2, 2, 500));
        assert_eq!(c.next_timer(), Some(1_110));
        let out = send(
            &mut c,
            620,
            NodeId::Broker(2),
            Request::BrokerRegistration(BrokerRegistrationRequest {
                broker_id: 2,
                incarnation_id: 1,
            }),
        );
        assert_eq!(out.sends.len(), 2);
        assert_eq!(fetch_response(&out, b2, 5).records.len(), 1);
        assert_eq!(c.next_timer(), None);

        // No waiting allowed, or a broker outside the cluster: answered at once.
        let out = send_with(&mut c, 700, b2, 6, fetch_request(2, 3, 0));
        assert!(fetch_response(&out, b2, 6).records.is_empty());
        let b9 = NodeId::Broker(9);
        let out = send_with(&mut c, 700, b9, 7, fetch_request(9, 3, 500));
        assert!(fetch_response(&out, b9, 7).records.is_empty());
        assert_eq!(c.next_timer(), None);
    }

    #[test]
    fn metadata_fetch_is_bounded_and_replays_to_the_same_image() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        for i in 0..600 {
            let (r, _) = alter(&mut c, 10, 1, 0, tp(0), 0, 2 * i, &[1, 2]);
            assert_eq!(r.error, ErrorCode::None);
            let (r, _) = alter(&mut c, 10, 1, 0, tp(0), 0, 2 * i + 1, &[1, 2, 3]);
            assert_eq!(r.error, ErrorCode::None);
        }
        let end = c.log_end();
        assert_eq!(end, 8 + 1_200);

        // A broker catching up through MetadataFetch, 1000 records at a time.
        let b1 = NodeId::Broker(1);
        let mut replay = MetadataImage::default();
        let mut batches = Vec::new();
        while replay.next_offset < end {
            let out = send(&mut c, 20, b1, fetch_request(1, replay.next_offset, 500));
            let r = fetch_response(&out, b1, CORR);
            assert_eq!(r.log_end_offset, end);
            batches.push(r.records.len());
            for (offset, record) in &r.records {
                replay.apply(*offset, record);
            }
        }
        assert_eq!(batches, vec![1_000, 208]);
        assert_eq!(replay.partitions, c.image().partitions);
        assert_eq!(replay.brokers, c.image().brokers);
        assert_eq!(replay.topics, c.image().topics);
        assert_eq!(
            partition(&c, 0),
            reg(tp(0), &[1, 2, 3], &[1, 2, 3], Some(1), 0, 1_200)
        );
        assert_replay_matches(&c);
    }

    #[test]
    fn other_requests_and_responses_get_no_answer() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        let end = c.log().len();
        let mut out = Outbox::default();
        c.on_start(0, &mut out);
        let out = send(
            &mut c,
            10,
            NodeId::Producer(0),
            Request::Metadata(crate::kafka::protocol::MetadataRequest { topics: None }),
        );
        assert!(out.sends.is_empty());
        let mut out = Outbox::default();
        c.on_message(
            10,
            NodeId::Broker(1),
            Message::Response {
                correlation_id: 1,
                response: Response::AlterPartitionReassignments(
                    AlterPartitionReassignmentsResponse {
                        tp: tp(0),
                        error: ErrorCode::None,
                    },
                ),
            },
            &mut out,
        );
        assert!(out.sends.is_empty() && out.history.is_empty());
        assert_eq!(c.log().len(), end);
    }

    fn allocate(c: &mut Controller, broker_id: BrokerId, broker_epoch: i64) -> (i64, i64) {
        let out = send(
            c,
            10,
            NodeId::Broker(broker_id),
            Request::AllocateProducerIds(AllocateProducerIdsRequest {
                broker_id,
                broker_epoch,
            }),
        );
        match response(&out, NodeId::Broker(broker_id)) {
            Response::AllocateProducerIds(r) if r.error == ErrorCode::None => (
                r.producer_id_start,
                r.producer_id_start + i64::from(r.producer_id_len),
            ),
            Response::AllocateProducerIds(r) => (-1, i64::from(r.error.code())),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn producer_id_blocks_are_disjoint_and_recorded() {
        let mut c = cluster(config(false), vec![topic("t", 1, 3)]);
        let end = c.log().len();
        let a = allocate(&mut c, 1, 0);
        let b = allocate(&mut c, 2, 1);
        let a2 = allocate(&mut c, 1, 0);
        let size = i64::from(PRODUCER_ID_BLOCK_SIZE);
        assert_eq!(a, (0, size));
        assert_eq!(b, (size, 2 * size));
        assert_eq!(a2, (2 * size, 3 * size));
        assert_eq!(
            allocate(&mut c, 3, 0),
            (-1, i64::from(ErrorCode::StaleBrokerEpoch.code())),
            "broker 3's epoch is 2"
        );
        assert_eq!(c.log().len(), end + 3, "one record per block given");
        assert_eq!(
            c.log()[end + 1],
            MetadataRecord::ProducerIds {
                broker_id: 2,
                broker_epoch: 1,
                next_producer_id: 2 * size,
            }
        );
        assert_eq!(c.image().next_producer_id, 3 * size);
        assert_replay_matches(&c);
    }
}
