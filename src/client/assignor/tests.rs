//! Unit tests of `client::assignor`.

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
