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
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// `org.apache.kafka.common.utils.UtilsTest.testMurmur2`.
    const KAFKA_VECTORS: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];

    /// Computed by kafka-python 3.0.12's `kafka.partitioner.default.murmur2`
    /// (signed form) via `scripts/make_fixtures.py`; the full table is in
    /// `tests/fixtures/batches.json` and checked by `tests/record_fixtures.rs`.
    /// Covers every tail length and bytes with the high bit set.
    const KAFKA_PYTHON_VECTORS: [(&[u8], i32); 12] = [
        (b"", 275_646_681),
        (b"a", -1_563_381_124),
        (b"ab", 316_155_434),
        (b"abcd", -1_323_649_548),
        (b"abcde", 461_995_741),
        (b"abcdef", 1_870_650_108),
        (b"abcdefg", -346_467_175),
        (b"\x80", 857_690_492),
        (b"\xff\xfe", 1_717_632_651),
        (b"\xff\xfe\xfd", 998_637_092),
        (b"\xff\xfe\xfd\xfc", 2_136_149_935),
        (b"\x80\x81\x82\x83\x84", -1_665_622_439),
    ];

    #[test]
    fn murmur2_matches_kafka_utils_test() {
        for (key, want) in KAFKA_VECTORS {
            assert_eq!(
                murmur2(key),
                want,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn murmur2_matches_kafka_python() {
        for (key, want) in KAFKA_PYTHON_VECTORS {
            assert_eq!(murmur2(key), want, "murmur2({key:?})");
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(0), 0);
        assert_eq!(to_positive(42), 42);
        assert_eq!(to_positive(i32::MAX), i32::MAX);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
    }

    #[test]
    fn partition_for_key_matches_kafka_python() {
        // (key, partitions, partition) from the kafka-python table.
        let cases: [(&[u8], u32, u32); 8] = [
            (b"21", 7, 3),
            (b"foobar", 50, 16),
            (b"foobar", 12, 6),
            (b"a-little-bit-longer-string", 12, 11),
            (b"abc", 100, 7),
            (b"key-12", 3, 2),
            (b"user-4711", 50, 19),
            (b"", 100, 81),
        ];
        for (key, n, want) in cases {
            assert_eq!(partition_for_key(key, n), want, "{key:?} over {n}");
        }
        for (key, _) in KAFKA_VECTORS {
            assert_eq!(partition_for_key(key, 1), 0);
        }
    }

    #[test]
    #[should_panic(expected = "at least one partition")]
    fn partition_for_key_rejects_zero_partitions() {
        partition_for_key(b"k", 0);
    }

    #[test]
    fn sticky_partition_is_stable_until_a_new_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut p = StickyPartitioner::new();
        assert_eq!(p.current("t"), None);
        let first = p.partition("t", 6, &mut rng);
        assert!(first < 6);
        for _ in 0..100 {
            assert_eq!(p.partition("t", 6, &mut rng), first);
        }
        assert_eq!(p.current("t"), Some(first));
        p.on_new_batch("t", 6, first, &mut rng);
        let second = p.partition("t", 6, &mut rng);
        assert!(second < 6);
        for _ in 0..100 {
            assert_eq!(p.partition("t", 6, &mut rng), second);
        }
    }

    #[test]
    fn new_batch_draws_uniformly_over_all_partitions() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 4u32;
        let mut p = StickyPartitioner::new();
        // counts[from][to]: Kafka 4.x may also stay on the same partition.
        let mut counts = [[0u32; 4]; 4];
        let mut prev = p.partition("t", n, &mut rng);
        for _ in 0..32_000 {
            p.on_new_batch("t", n, prev, &mut rng);
            let next = p.partition("t", n, &mut rng);
            assert!(next < n);
            counts[prev as usize][next as usize] += 1;
            prev = next;
        }
        for (from, row) in counts.iter().enumerate() {
            let total: u32 = row.iter().sum();
            for (to, &c) in row.iter().enumerate() {
                let share = f64::from(c) / f64::from(total);
                assert!((share - 0.25).abs() < 0.04, "{from}->{to}: {share}");
            }
        }
    }

    #[test]
    fn single_partition_topic_stays_on_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut p = StickyPartitioner::new();
        assert_eq!(p.partition("one", 1, &mut rng), 0);
        for _ in 0..10 {
            p.on_new_batch("one", 1, 0, &mut rng);
            assert_eq!(p.partition("one", 1, &mut rng), 0);
        }
    }

    #[test]
    fn stale_new_batch_notification_does_not_switch() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut p = StickyPartitioner::new();
        let first = p.partition("t", 8, &mut rng);
        let mut second = first;
        for _ in 0..100 {
            p.on_new_batch("t", 8, second, &mut rng);
            second = p.partition("t", 8, &mut rng);
            if second != first {
                break;
            }
        }
        assert_ne!(second, first);
        // A late notice about the first partition's batch leaves the sticky one alone.
        p.on_new_batch("t", 8, first, &mut rng);
        assert_eq!(p.partition("t", 8, &mut rng), second);
    }

    #[test]
    fn new_batch_before_any_choice_picks_a_partition() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut seen = [false; 3];
        for _ in 0..50 {
            let mut p = StickyPartitioner::new();
            p.on_new_batch("t", 3, 1, &mut rng);
            seen[p.current("t").unwrap() as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn topics_are_independent() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut p = StickyPartitioner::new();
        let a = p.partition("a", 10, &mut rng);
        let b = p.partition("b", 10, &mut rng);
        for _ in 0..20 {
            p.on_new_batch("b", 10, p.current("b").unwrap(), &mut rng);
        }
        assert_eq!(p.partition("a", 10, &mut rng), a);
        let _ = b;
    }

    #[test]
    fn out_of_range_sticky_partition_is_redrawn() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut p = StickyPartitioner::new();
        p.sticky.insert("t".into(), 9);
        let q = p.partition("t", 3, &mut rng);
        assert!(q < 3);
        assert_eq!(p.current("t"), Some(q));
        // A switch from a partition that no longer exists still lands in range.
        p.sticky.insert("t".into(), 9);
        p.on_new_batch("t", 3, 9, &mut rng);
        assert!(p.current("t").unwrap() < 3);
    }

    #[test]
    fn same_seed_same_choices() {
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut p = StickyPartitioner::new();
            let mut seen = Vec::new();
            for i in 0..200u32 {
                let topic = if i % 3 == 0 { "x" } else { "y" };
                let part = p.partition(topic, 7, &mut rng);
                seen.push(part);
                if i % 5 == 4 {
                    p.on_new_batch(topic, 7, part, &mut rng);
                }
            }
            seen
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
