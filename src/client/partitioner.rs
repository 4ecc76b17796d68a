//! Kafka's default producer partitioner.
//!
//! * Records **with a key** go to `toPositive(murmur2(key)) % numPartitions`, exactly
//!   as the Java client's `BuiltInPartitioner.partitionForKey` computes it, so a key
//!   lands on the same partition in kafkasim as with a real producer.
//! * Records **without a key** use the "uniform sticky" strategy of KIP-794 (the
//!   built-in partitioner since Kafka 3.3, the only one in 4.x): the producer sticks
//!   to one partition per topic until a batch's worth of bytes (`batch.size`) has been
//!   produced to it, then switches to another partition chosen at random.
//!   [`StickyPartitioner`] keeps that choice; the producer model decides when a batch
//!   is complete and calls [`StickyPartitioner::on_new_batch`].
//!
//! All randomness comes from the caller's RNG and all state sits in a `BTreeMap`, so
//! a simulation seed reproduces every choice.

use std::collections::BTreeMap;

use rand::Rng;

/// Seed of Kafka's murmur2 (`Utils.murmur2`).
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// Mixing constant `m` of murmur2.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// Shift `r` of murmur2.
const MURMUR2_R: u32 = 24;

/// Kafka's 32-bit murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
///
/// Returns the hash as Java does, a signed `int`. Bytes are read unsigned
/// (`b & 0xff` in Java) and 4-byte blocks little-endian.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java: `int h = seed ^ length` on an int length.
    let mut h: u32 = MURMUR2_SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    // The trailing 1-3 bytes, mirroring Java's fall-through switch.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (`n & 0x7fffffff`).
///
/// Unlike `abs`, this maps `i32::MIN` to 0 and never overflows.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's producer picks for a record with `key`:
/// `toPositive(murmur2(key)) % numPartitions`.
///
/// # Panics
/// If `num_partitions` is 0.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    (to_positive(murmur2(key)) as u32) % num_partitions
}

/// The "uniform sticky" choice for records without a key (KIP-794), one sticky
/// partition per topic.
///
/// The producer calls [`partition`](Self::partition) for each keyless record and,
/// once `batch.size` bytes have gone to the sticky partition (a batch is complete),
/// [`on_new_batch`](Self::on_new_batch) to move on to another partition.
///
/// Differences from the Java client, by design of this model:
/// * Partition availability (leaderless partitions) and KIP-794's adaptive,
///   queue-size-weighted choice are not modelled: partitions are drawn uniformly
///   from `0..num_partitions`.
/// * A switch always lands on a *different* partition when the topic has more than
///   one (as KIP-480's `StickyPartitionCache` did). Kafka 4.x's `BuiltInPartitioner`
///   draws uniformly over all partitions, so it re-picks the same one with
///   probability `1/n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickyPartitioner {
    /// Current sticky partition per topic.
    sticky: BTreeMap<String, u32>,
}

impl StickyPartitioner {
    /// A partitioner with no sticky partition chosen for any topic yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sticky partition for `topic`, drawing one uniformly at random from
    /// `0..num_partitions` when none is chosen yet (or the chosen one is no longer
    /// below `num_partitions`).
    ///
    /// # Panics
    /// If `num_partitions` is 0.
    pub fn partition(&mut self, topic: &str, num_partitions: u32, rng: &mut impl Rng) -> u32 {
        assert!(num_partitions > 0, "a topic has at least one partition");
        if let Some(&p) = self.sticky.get(topic) {
            if p < num_partitions {
                return p;
            }
        }
        let p = rng.gen_range(0..num_partitions);
        self.sticky.insert(topic.to_owned(), p);
        p
    }

    /// Called when a batch for partition `previous` of `topic` is complete: draws the
    /// topic's next sticky partition uniformly over all `num_partitions`, as Kafka
    /// 4.x's `BuiltInPartitioner.nextPartition` does without queue statistics (so it
    /// may stay where it was; the older `StickyPartitionCache` always moved away).
    ///
    /// The call does nothing when the sticky partition has already moved away from
    /// `previous` (a stale notification).
    ///
    /// # Panics
    /// If `num_partitions` is 0.
    pub fn on_new_batch(
        &mut self,
        topic: &str,
        num_partitions: u32,
        previous: u32,
        rng: &mut impl Rng,
    ) {
        assert!(num_partitions > 0, "a topic has at least one partition");
        if let Some(&current) = self.sticky.get(topic) {
            if current != previous && current < num_partitions {
                return;
            }
        }
        let next = rng.gen_range(0..num_partitions);
        self.sticky.insert(topic.to_owned(), next);
    }

    /// The current sticky partition of `topic`, if one has been chosen.
    pub fn current(&self, topic: &str) -> Option<u32> {
        self.sticky.get(topic).copied()
    }
}

#[cfg(test)]
mod tests;
