//! The metadata image: the state obtained by applying `__cluster_metadata` in order.
//!
//! The controller appends [`MetadataRecord`]s to an ordered log (KRaft-style); every
//! broker replays the same records into the same image. Nothing but the log changes an
//! image, so a Raft quorum can later replace the single controller without touching
//! the brokers.

use crate::kafka::config::{BrokerConfig, TopicConfig};
use crate::kafka::protocol::{
    BrokerId, ErrorCode, MetadataRecord, PartitionMetadata, PartitionRegistration, TopicPartition,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A broker's registration state as the metadata log says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// The broker epoch of its latest registration.
    pub broker_epoch: i64,
    /// Fenced brokers may not lead or join an ISR.
    pub fenced: bool,
}

/// The cluster state after applying a prefix of the metadata log.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    /// The offset of the next record to apply (= records applied).
    pub next_offset: i64,
    /// Registered brokers.
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Topics and their partition counts.
    pub topics: BTreeMap<Arc<str>, u32>,
    /// Topic-level configuration overrides (`ConfigRecord`s).
    pub topic_configs: BTreeMap<Arc<str>, TopicConfig>,
    /// Every partition's registration.
    pub partitions: BTreeMap<TopicPartition, PartitionRegistration>,
    /// The first producer id no broker has been given (KIP-730's `ProducerIdsRecord`).
    pub next_producer_id: i64,
}

impl MetadataImage {
    /// Applies the record at `offset`; records must be applied in order, once.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) {
        assert_eq!(
            offset, self.next_offset,
            "metadata log applied out of order"
        );
        self.next_offset += 1;
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_epoch: *broker_epoch,
                        fenced: true,
                    },
                );
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.broker_epoch == *broker_epoch {
                        b.fenced = fenced;
                    }
                }
            }
            MetadataRecord::Topic { name, partitions } => {
                self.topics.insert(name.clone(), *partitions);
            }
            MetadataRecord::TopicConfig { name, config } => {
                assert!(
                    self.topics.contains_key(name),
                    "config of unknown topic {name}"
                );
                self.topic_configs.insert(name.clone(), config.clone());
            }
            MetadataRecord::PartitionChange(reg) => {
                if let Some(old) = self.partitions.get(&reg.tp) {
                    reg.assert_epoch_not_behind("metadata image", old.leader_epoch);
                    assert!(
                        reg.partition_epoch > old.partition_epoch,
                        "partition epoch of {} did not advance",
                        reg.tp
                    );
                }
                assert!(
                    reg.elr
                        .iter()
                        .all(|r| !reg.isr.contains(r) && reg.replicas.contains(r)),
                    "ELR {:?} of {} overlaps its ISR {:?} or is no replica set",
                    reg.elr,
                    reg.tp,
                    reg.isr
                );
                if let Some(leader) = reg.leader {
                    assert!(
                        reg.isr.contains(&leader),
                        "leader {leader} of {} is not in its ISR",
                        reg.tp
                    );
                    assert!(
                        reg.replicas.contains(&leader),
                        "leader {leader} of {} is not a replica",
                        reg.tp
                    );
                }
                self.partitions.insert(reg.tp.clone(), reg.clone());
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                assert!(
                    *next_producer_id > self.next_producer_id,
                    "producer id blocks must move forward"
                );
                self.next_producer_id = *next_producer_id;
            }
        }
    }

    /// The topic's overrides, if it has any.
    pub fn topic_config(&self, topic: &str) -> Option<&TopicConfig> {
        self.topic_configs.get(topic)
    }

    /// The topic's `min.insync.replicas` override, if any.
    pub fn min_insync_replicas(&self, topic: &str) -> Option<u32> {
        self.topic_configs.get(topic)?.min_insync_replicas
    }

    /// The topic's `min.insync.replicas`: its override (`__transaction_state` is
    /// created with one), else the cluster's.
    pub fn configured_min_isr(&self, topic: &str, config: &BrokerConfig) -> u32 {
        self.min_insync_replicas(topic)
            .unwrap_or(config.min_insync_replicas)
    }

    /// The topic's `unclean.leader.election.enable` override, if any.
    pub fn unclean_leader_election_enable(&self, topic: &str) -> Option<bool> {
        self.topic_configs
            .get(topic)?
            .unclean_leader_election_enable
    }

    /// Whether the broker is registered and unfenced.
    pub fn is_live(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// The partitions of the given topics (all topics for `None`), as a `Metadata`
    /// response describes them.
    pub fn describe(&self, topics: Option<&[Arc<str>]>) -> Vec<PartitionMetadata> {
        self.partitions
            .values()
            .filter(|r| topics.is_none_or(|ts| ts.contains(&r.tp.topic)))
            .map(|r| PartitionMetadata {
                tp: r.tp.clone(),
                error: if r.leader.is_some() {
                    ErrorCode::None
                } else {
                    ErrorCode::LeaderNotAvailable
                },
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
            })
            .collect()
    }

    /// Unfenced brokers.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A topic the controller creates once every broker has registered and unfenced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: Arc<str>,
    /// Partition count (at least 1).
    pub partitions: u32,
    /// Replicas per partition (at least 1, at most the number of brokers).
    pub replication_factor: u32,
    /// Topic-level configuration overrides.
    pub config: crate::kafka::config::TopicConfig,
}
