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

/// `RangeAssignor.assign` without rack information.
fn range(
    sorted: &[&JoinGroupMember],
    partition_counts: &BTreeMap<Arc<str>, u32>,
    assigned: &mut BTreeMap<Arc<str>, BTreeSet<TopicPartition>>,
) {
    let topics: BTreeSet<&Arc<str>> = sorted
        .iter()
        .flat_map(|m| m.subscription.topics.iter())
        .collect();
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
    let topics: BTreeSet<&Arc<str>> = sorted
        .iter()
        .flat_map(|m| m.subscription.topics.iter())
        .collect();
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
mod tests {
    use super::*;
    use crate::kafka::protocol::Subscription;

    fn member(id: &str, instance: Option<&str>, topics: &[&str]) -> JoinGroupMember {
        JoinGroupMember {
            member_id: Arc::from(id),
            group_instance_id: instance.map(Arc::from),
            subscription: Subscription {
                topics: topics.iter().map(|t| Arc::from(*t)).collect(),
                owned_partitions: Vec::new(),
            },
        }
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<Arc<str>, u32> {
        topics.iter().map(|(t, n)| (Arc::from(*t), *n)).collect()
    }

    /// The assignment as `member: [t0p0, ...]` strings, in the members' order.
    fn show(assignment: &[(Arc<str>, Vec<TopicPartition>)]) -> Vec<String> {
        assignment
            .iter()
            .map(|(m, parts)| {
                let parts: Vec<String> = parts
                    .iter()
                    .map(|tp| format!("{}p{}", tp.topic, tp.partition))
                    .collect();
                format!("{m}: [{}]", parts.join(", "))
            })
            .collect()
    }

    /// `RangeAssignor`'s javadoc: C0 and C1 subscribe to t0 and t1, 3 partitions each.
    #[test]
    fn range_javadoc_example() {
        let members = [
            member("C0", None, &["t0", "t1"]),
            member("C1", None, &["t0", "t1"]),
        ];
        let a = Assignor::Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(
            show(&a),
            vec![
                "C0: [t0p0, t0p1, t1p0, t1p1]".to_string(),
                "C1: [t0p2, t1p2]".to_string()
            ]
        );
    }

    /// `RoundRobinAssignor`'s javadoc, first example: same members and topics.
    #[test]
    fn round_robin_javadoc_example_same_subscriptions() {
        let members = [
            member("C0", None, &["t0", "t1"]),
            member("C1", None, &["t0", "t1"]),
        ];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(
            show(&a),
            vec![
                "C0: [t0p0, t0p2, t1p1]".to_string(),
                "C1: [t0p1, t1p0, t1p2]".to_string()
            ]
        );
    }

    /// `RoundRobinAssignor`'s javadoc, second example: C0 subscribes to t0, C1 to t0
    /// and t1, C2 to t0, t1 and t2; t0 has 1 partition, t1 2, t2 3.
    #[test]
    fn round_robin_javadoc_example_different_subscriptions() {
        let members = [
            member("C0", None, &["t0"]),
            member("C1", None, &["t0", "t1"]),
            member("C2", None, &["t0", "t1", "t2"]),
        ];
        let a = Assignor::RoundRobin.assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(
            show(&a),
            vec![
                "C0: [t0p0]".to_string(),
                "C1: [t1p0]".to_string(),
                "C2: [t1p1, t2p0, t2p1, t2p2]".to_string()
            ]
        );
    }

    #[test]
    fn range_gives_the_extra_partitions_to_the_first_members_per_topic() {
        let members = [
            member("c", None, &["t"]),
            member("a", None, &["t", "u"]),
            member("b", None, &["t"]),
        ];
        // Sorted: a, b, c. t: 7 = 3 + 2 + 2; u: only a.
        let a = Assignor::Range.assign(&members, &counts(&[("t", 7), ("u", 2)]));
        assert_eq!(
            show(&a),
            vec![
                "c: [tp5, tp6]".to_string(),
                "a: [tp0, tp1, tp2, up0, up1]".to_string(),
                "b: [tp3, tp4]".to_string()
            ],
            "one entry per member, in the given order"
        );
    }

    #[test]
    fn more_members_than_partitions_leaves_the_last_ones_empty() {
        let members = [
            member("m1", None, &["t"]),
            member("m2", None, &["t"]),
            member("m3", None, &["t"]),
        ];
        for assignor in Assignor::ALL {
            let a = assignor.assign(&members, &counts(&[("t", 2)]));
            assert_eq!(
                show(&a),
                vec!["m1: [tp0]", "m2: [tp1]", "m3: []"],
                "{assignor:?}"
            );
        }
    }

    #[test]
    fn static_members_sort_first_by_instance_id() {
        let members = [
            member("a-dynamic", None, &["t"]),
            member("z-static", Some("i1"), &["t"]),
            member("b-static", Some("i2"), &["t"]),
        ];
        // Order: i1 (z-static), i2 (b-static), a-dynamic.
        let a = Assignor::Range.assign(&members, &counts(&[("t", 3)]));
        assert_eq!(
            show(&a),
            vec!["a-dynamic: [tp2]", "z-static: [tp0]", "b-static: [tp1]"]
        );
    }

    #[test]
    fn unknown_topics_are_skipped_and_every_partition_is_assigned_once() {
        let members = [
            member("m1", None, &["t", "gone"]),
            member("m2", None, &["t", "u"]),
        ];
        for assignor in Assignor::ALL {
            let a = assignor.assign(&members, &counts(&[("t", 5), ("u", 3)]));
            let all: Vec<TopicPartition> = a.iter().flat_map(|(_, p)| p.clone()).collect();
            let unique: BTreeSet<TopicPartition> = all.iter().cloned().collect();
            assert_eq!(all.len(), 8, "{assignor:?}");
            assert_eq!(unique.len(), 8, "{assignor:?}");
            assert!(
                a[0].1.iter().all(|tp| &*tp.topic == "t"),
                "m1 gets no partition of u"
            );
        }
    }

    #[test]
    fn names_and_class_names_parse() {
        for a in Assignor::ALL {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
            assert_eq!(Assignor::from_name(a.class_name()), Some(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Assignor>(&json).unwrap(), a);
        }
        let err = serde_json::from_str::<Assignor>("\"cooperative-sticky\"").unwrap_err();
        assert!(err.to_string().contains("could not be found"), "{err}");
    }
}
