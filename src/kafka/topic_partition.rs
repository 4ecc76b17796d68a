//! [`TopicPartition`]: a topic name and partition index, the key of nearly every map
//! in the broker, the clients and the checker.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A topic name and partition index, displayed (and serialized) as Kafka does
/// (`orders-2`). Ordered by topic name, then partition; two that share the topic's
/// `Arc` compare without reading the names.
#[derive(Clone, Debug)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: u32,
}

impl PartialEq for TopicPartition {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && (Arc::ptr_eq(&self.topic, &other.topic) || self.topic == other.topic)
    }
}

impl Eq for TopicPartition {}

/// By name and partition, as equality compares.
impl std::hash::Hash for TopicPartition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.topic.hash(state);
        self.partition.hash(state);
    }
}

impl Ord for TopicPartition {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let topic = if Arc::ptr_eq(&self.topic, &other.topic) {
            std::cmp::Ordering::Equal
        } else {
            self.topic.cmp(&other.topic)
        };
        topic.then(self.partition.cmp(&other.partition))
    }
}

impl PartialOrd for TopicPartition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: &str, partition: u32) -> Self {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }
}

impl Serialize for TopicPartition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for TopicPartition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TopicPartition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A topic-partition, `<topic>-<partition>` (`orders-0`).",
            "type": "string", "pattern": "^.*-[0-9]+$"
        })
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let (topic, partition) = s
            .rsplit_once('-')
            .and_then(|(t, p)| Some((t, p.parse::<u32>().ok()?)))
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not `topic-partition`")))?;
        Ok(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partitions_compare_by_name_whether_or_not_they_share_it() {
        let a0 = TopicPartition::new("a", 0);
        let a1 = TopicPartition {
            partition: 1,
            ..a0.clone()
        };
        let other_a0 = TopicPartition::new("a", 0);
        let b0 = TopicPartition::new("b", 0);
        assert!(!Arc::ptr_eq(&a0.topic, &other_a0.topic));
        assert_eq!(a0, other_a0);
        assert_eq!(a0.cmp(&other_a0), std::cmp::Ordering::Equal);
        assert!(a0 < a1 && other_a0 < a1 && a1 < b0);
        assert_ne!(a0, a1);
        let mut sorted = vec![b0.clone(), a1.clone(), other_a0.clone(), a0.clone()];
        sorted.sort();
        assert_eq!(sorted, vec![a0.clone(), other_a0, a1, b0]);
    }
}
