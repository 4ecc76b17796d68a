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

mod partition_change;

use crate::actor::{Actor, Outbox};
use crate::bugs::{Bug, Bugs};
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
use partition_change::{Election, PartitionChange};
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
    /// Safeguards switched off.
    bugs: Bugs,
}

/// Who a partition change takes out and brings in, as Kafka's
/// `generateLeaderAndIsrUpdates` arguments.
#[derive(Clone, Copy, Debug, Default)]
struct Moves {
    /// Leaves the ISR and may not lead (a broker being fenced).
    remove: Option<BrokerId>,
    /// May lead although still fenced (a broker being unfenced).
    add: Option<BrokerId>,
    /// Registered after an unclean shutdown: leaves the ISR and the ELR, may not lead.
    unclean_shutdown: Option<BrokerId>,
}

impl Controller {
    /// A controller for the cluster `broker_ids` that will create `topics` once every
    /// broker has registered and been unfenced.
    pub fn new(
        config: BrokerConfig,
        broker_ids: Vec<BrokerId>,
        topics: Vec<TopicSpec>,
        bugs: Bugs,
    ) -> Self {
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
            bugs,
        }
    }

    /// The controller's own replay of its metadata log.
    pub fn image(&self) -> &MetadataImage {
        &self.image
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
        if !self.bugs.on(Bug::NoUncleanShutdownDetection) {
            self.handle_unclean_shutdown(now, broker_id, out);
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

    /// Fences a live broker: it leaves every ISR (the last member stays unless eligible
    /// leader replicas are on) and every partition it led gets a new leader (or none);
    /// Kafka's `handleBrokerFenced`.
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
        let moves = Moves {
            remove: Some(broker_id),
            ..Moves::default()
        };
        self.update_partitions(now, |p| p.isr.contains(&broker_id), moves, out);
    }

    /// Unfences a broker: leaderless partitions elect it when it is in their ISR (or,
    /// with the ISR empty, their ELR), or (with unclean election enabled) when it is
    /// one of their replicas; Kafka's `handleBrokerUnfenced`. The first time every
    /// broker is unfenced, the topics are created.
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
        let moves = Moves {
            add: Some(broker_id),
            ..Moves::default()
        };
        self.update_partitions(now, |p| p.leader.is_none(), moves, out);
        self.create_topics_when_ready();
    }

    /// A new incarnation of a broker registers: Kafka brokers here never shut down
    /// cleanly (no controlled shutdown writes `.kafka_cleanshutdown`), so its
    /// `PreviousBrokerEpoch` never matches and the controller takes it out of every ISR
    /// and ELR it is in, and it may not lead them (KIP-966's
    /// `handleBrokerUncleanShutdown`). With eligible leader replicas off an ISR keeps
    /// its last member, so this changes nothing then.
    fn handle_unclean_shutdown(&mut self, now: Millis, broker_id: BrokerId, out: &mut Outbox) {
        let moves = Moves {
            unclean_shutdown: Some(broker_id),
            ..Moves::default()
        };
        self.update_partitions(
            now,
            |p| p.isr.contains(&broker_id) || p.elr.contains(&broker_id),
            moves,
            out,
        );
    }

    /// Applies `moves` to every partition `affected` selects, in partition order, as
    /// Kafka's `generateLeaderAndIsrUpdates`: the target ISR drops the removed and
    /// uncleanly shut down broker, the election is unclean where the topic allows it.
    fn update_partitions(
        &mut self,
        now: Millis,
        affected: impl Fn(&PartitionRegistration) -> bool,
        moves: Moves,
        out: &mut Outbox,
    ) {
        let partitions: Vec<PartitionRegistration> = self
            .image
            .partitions
            .values()
            .filter(|p| affected(p))
            .cloned()
            .collect();
        for old in partitions {
            let target_isr = old
                .isr
                .iter()
                .copied()
                .filter(|r| Some(*r) != moves.remove && Some(*r) != moves.unclean_shutdown)
                .collect();
            let election = if self.unclean_enabled(&old.tp) {
                Election::Unclean
            } else {
                Election::Online
            };
            self.change_partition(now, &old, target_isr, election, moves, out);
        }
    }

    /// Builds and commits one partition's change, if it changes anything.
    fn change_partition(
        &mut self,
        now: Millis,
        old: &PartitionRegistration,
        target_isr: Vec<BrokerId>,
        election: Election,
        moves: Moves,
        out: &mut Outbox,
    ) -> Option<PartitionRegistration> {
        self.change_partition_to(
            now,
            old,
            target_isr,
            old.replicas.clone(),
            election,
            moves,
            out,
        )
    }

    /// As [`Self::change_partition`], with a new replica order.
    #[allow(clippy::too_many_arguments)]
    fn change_partition_to(
        &mut self,
        now: Millis,
        old: &PartitionRegistration,
        target_isr: Vec<BrokerId>,
        target_replicas: Vec<BrokerId>,
        election: Election,
        moves: Moves,
        out: &mut Outbox,
    ) -> Option<PartitionRegistration> {
        let min_isr = (self.image.configured_min_isr(&old.tp.topic, &self.config) as usize)
            .min(old.replicas.len());
        let image = &self.image;
        let change = PartitionChange {
            old,
            target_isr,
            target_replicas,
            election,
            elr_enabled: self.elr_enabled(),
            min_isr,
            unclean_shutdown: moves.unclean_shutdown,
        }
        .build(|r| {
            Some(r) != moves.remove
                && Some(r) != moves.unclean_shutdown
                && (Some(r) == moves.add || image.is_live(r))
        })?;
        Some(self.commit_change(now, change.registration, change.unclean, out))
    }

    /// `eligible.leader.replicas.version` ≥ 1.
    fn elr_enabled(&self) -> bool {
        self.config.eligible_leader_replicas_version >= 1
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
                    elr: Vec::new(),
                    last_known_elr: Vec::new(),
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
            leader_changed
                || new.isr != old.isr
                || new.replicas != old.replicas
                || new.elr != old.elr
                || new.last_known_elr != old.last_known_elr,
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
                elr: new.elr.clone(),
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
        assert!(
            !reg.isr.is_empty() || self.elr_enabled(),
            "{tp} has an empty ISR without eligible leader replicas"
        );
        assert!(
            reg.elr.is_empty() && reg.last_known_elr.is_empty() || self.elr_enabled(),
            "{tp} has eligible leader replicas with the feature off"
        );
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
        for (i, r) in reg.elr.iter().enumerate() {
            assert!(!reg.elr[..i].contains(r), "{tp}: ELR member {r} twice");
            assert!(!reg.isr.contains(r), "{tp}: {r} in both ISR and ELR");
        }
        match reg.leader {
            Some(leader) => {
                assert!(
                    reg.isr.contains(&leader),
                    "{tp}: leader {leader} not in ISR"
                );
                // Kafka 4.x elects the last known leader of a partition whose ISR and
                // ELR are empty whether or not it is fenced.
                assert!(
                    self.image.is_live(leader) || self.elr_enabled() && reg.isr == [leader],
                    "{tp}: fenced leader {leader}"
                );
            }
            None => {
                assert!(
                    self.first_live_in_isr(&reg.replicas, &reg.isr).is_none(),
                    "{tp} is offline with a live ISR member"
                );
                assert!(
                    !reg.isr.is_empty()
                        || self.first_live_in_isr(&reg.replicas, &reg.elr).is_none(),
                    "{tp} is offline with an empty ISR and a live ELR member"
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
        let registration = self
            .change_partition(
                now,
                &current,
                request.new_isr(),
                Election::Online,
                Moves::default(),
                out,
            )
            .unwrap_or(current);
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
        let isr = &request.new_isr();
        let well_formed = isr
            .iter()
            .enumerate()
            .all(|(i, r)| !isr[..i].contains(r) && current.replicas.contains(r));
        if !well_formed || !isr.contains(&request.broker_id) {
            return ErrorCode::InvalidRequest;
        }
        // `ineligibleReplicasForIsr`: every member must be registered and unfenced, and
        // a broker epoch the leader sends must be the member's current one (KIP-903: a
        // fetch from an incarnation that has since restarted does not count);
        // AlterPartition v2+ answers INELIGIBLE_REPLICA, older OPERATION_NOT_ATTEMPTED.
        let ineligible = request.new_isr_with_epochs.iter().any(|b| {
            let registered = self.image.brokers.get(&b.broker_id).map(|r| r.broker_epoch);
            !self.image.is_live(b.broker_id)
                || (b.broker_epoch != -1 && Some(b.broker_epoch) != registered)
        });
        if ineligible {
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
        let isr = current.isr.clone();
        let new = self.change_partition(
            now,
            &current,
            isr,
            Election::Preferred,
            Moves::default(),
            out,
        );
        assert_eq!(new.and_then(|n| n.leader), Some(preferred));
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
        let isr = current.isr.clone();
        let new =
            self.change_partition(now, &current, isr, Election::Unclean, Moves::default(), out);
        if new.is_some_and(|n| n.leader.is_some()) {
            ErrorCode::None
        } else {
            ErrorCode::EligibleLeadersNotAvailable
        }
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
            let isr = current.isr.clone();
            self.change_partition_to(
                now,
                &current,
                isr,
                request.replicas,
                Election::Online,
                Moves::default(),
                out,
            );
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
            | Request::TxnOffsetCommit(_)
            | Request::DeleteRecords(_) => None,
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
mod tests;
