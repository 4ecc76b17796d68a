//! Unit tests of `client::partitioner`.

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
