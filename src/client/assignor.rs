//! Kafka's client-side partition assignors for the classic `consumer` protocol: pure
//! functions from the group's members (with their subscriptions) and the partition
//! counts the leader's metadata knows to each member's partitions.
//!
//! - [`Assignor::Range`] (`RangeAssignor`, "range"): per topic, the members subscribed to
//!   it in Kafka's member order get consecutive ranges of partitions; the first
//!   `partitions % members` members get one extra.
//! - [`Assignor::RoundRobin`] (`RoundRobinAssignor`, "roundrobin"): every partition of
//!   every subscribed topic, sorted by topic then partition, dealt out circularly over
//!   the members in Kafka's member order, skipping members not subscribed to the topic.
//!
//! Kafka's member order (`MemberInfo.compareTo`, KIP-345): static members (with a
//! `group.instance.id`) first, ordered by instance id, then dynamic members ordered by
//! member id. Topics the metadata does not know are skipped, as Kafka does.
//!
//! `CooperativeStickyAssignor` ("cooperative-sticky", KIP-429) is not implemented: it
//! needs the cooperative rebalance protocol in the client, which kafkasim's consumer
//! (eager protocol) does not have. The name is refused by the configuration.

use crate::kafka::config::Assignor;
use crate::kafka::protocol::{JoinGroupMember, TopicPartition};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl Assignor {
    /// Assigns partitions to `members`. The result has one entry per member, in the
    /// order of `members` (possibly with no partitions); each member's partitions are
    /// sorted by topic, then partition.
    pub fn assign(
        self,
        members: &[JoinGroupMember],
        partition_counts: &BTreeMap<Arc<str>, u32>,
    ) -> Vec<(Arc<str>, Vec<TopicPartition>)> {
        let mut sorted: Vec<&JoinGroupMember> = members.iter().collect();
        sorted.sort_by(|a, b| member_order(a, b));
        let mut assigned: BTreeMap<Arc<str>, BTreeSet<TopicPartition>> = members
            .iter()
            .map(|m| (m.member_id.clone(), BTreeSet::new()))
            .collect();
        assert_eq!(
            assigned.len(),
            members.len(),
            "member ids in a group are unique"
        );
        match self {
            Assignor::Range => range(&sorted, partition_counts, &mut assigned),
            Assignor::RoundRobin => round_robin(&sorted, partition_counts, &mut assigned),
        }
        members
            .iter()
            .map(|m| {
                let parts = assigned.remove(&m.member_id).expect("every member");
                (m.member_id.clone(), parts.into_iter().collect())
            })
            .collect()
    }
}

/// Kafka's `MemberInfo.compareTo`: static members by instance id, then dynamic members
/// by member id.
fn member_order(a: &JoinGroupMember, b: &JoinGroupMember) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

fn subscribes(member: &JoinGroupMember, topic: &str) -> bool {
    member.subscription.topics.iter().any(|t| &**t == topic)
}

/// The topics any member subscribes to, in name order.
fn subscribed_topics<'a>(sorted: &[&'a JoinGroupMember]) -> BTreeSet<&'a Arc<str>> {
    sorted
        .iter()
        .flat_map(|m| m.subscription.topics.iter())
        .collect()
}

/// `RangeAssignor.assign` without rack information.
fn range(
    sorted: &[&JoinGroupMember],
    partition_counts: &BTreeMap<Arc<str>, u32>,
    assigned: &mut BTreeMap<Arc<str>, BTreeSet<TopicPartition>>,
) {
    let topics = subscribed_topics(sorted);
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let consumers: Vec<&&JoinGroupMember> =
            sorted.iter().filter(|m| subscribes(m, topic)).collect();
        let n = consumers.len() as u32;
        let per_consumer = count / n;
        let with_extra = count % n;
        for (i, member) in consumers.into_iter().enumerate() {
            let i = i as u32;
            let start = per_consumer * i + i.min(with_extra);
            let length = per_consumer + u32::from(i < with_extra);
            let parts = assigned.get_mut(&member.member_id).expect("every member");
            parts.extend((start..start + length).map(|p| TopicPartition {
                topic: topic.clone(),
                partition: p,
            }));
        }
    }
}

/// `RoundRobinAssignor.assign`: a circular iterator over the sorted members.
fn round_robin(
    sorted: &[&JoinGroupMember],
    partition_counts: &BTreeMap<Arc<str>, u32>,
    assigned: &mut BTreeMap<Arc<str>, BTreeSet<TopicPartition>>,
) {
    let topics = subscribed_topics(sorted);
    let mut next = 0usize;
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        for partition in 0..count {
            // Some member subscribes to `topic` (it came from a subscription), so this
            // stops within one lap.
            while !subscribes(sorted[next % sorted.len()], topic) {
                next += 1;
            }
            let member = sorted[next % sorted.len()];
            next += 1;
            assigned
                .get_mut(&member.member_id)
                .expect("every member")
                .insert(TopicPartition {
                    topic: topic.clone(),
                    partition,
                });
        }
    }
}

#[cfg(test)]
mod tests;
