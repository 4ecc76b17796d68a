//! The record batch v2 codec and the keyed partitioner against fixtures written by
//! an independent Kafka client, kafka-python (`scripts/make_fixtures.py`, which
//! documents how to regenerate them; the files are committed so CI needs no Python).
//!
//! For every fixture batch: `RecordBatch::decode` yields exactly the fields that
//! `batches.json` describes, `RecordBatch::encode` of that description reproduces
//! the fixture byte for byte, flipping any byte the CRC covers is caught as a CRC
//! error, and patching `baseOffset` / `partitionLeaderEpoch` keeps the CRC valid.

use std::path::PathBuf;

use bytes::Bytes;
use kafkasim::client::partitioner::{murmur2, partition_for_key};
use kafkasim::kafka::record::{
    set_base_offset, set_partition_leader_epoch, verify_crc, BatchHeader, CompressionType, Header,
    Record, RecordBatch, RecordError, BATCH_HEADER_SIZE, TRANSACTIONAL_BIT,
};
use serde::Deserialize;

/// Offset of the CRC field in a batch.
const CRC_OFFSET: usize = 17;

#[derive(Deserialize)]
struct Fixtures {
    library: String,
    library_version: String,
    batches: Vec<BatchDesc>,
    compressed_batches: Vec<BatchDesc>,
    murmur2: Vec<MurmurDesc>,
}

#[derive(Deserialize)]
struct BatchDesc {
    name: String,
    file: String,
    size: usize,
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<RecordDesc>,
}

#[derive(Deserialize)]
struct RecordDesc {
    attributes: i8,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderDesc>,
}

#[derive(Deserialize)]
struct HeaderDesc {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct MurmurDesc {
    key: String,
    murmur2: i32,
    partitions: std::collections::BTreeMap<String, u32>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load() -> Fixtures {
    let path = fixture_dir().join("batches.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("batches.json parses")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn opt_bytes(s: &Option<String>) -> Option<Bytes> {
    s.as_deref().map(|h| Bytes::from(unhex(h)))
}

impl BatchDesc {
    fn bytes(&self) -> Vec<u8> {
        let path = fixture_dir().join(&self.file);
        let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(b.len(), self.size, "{}: file size", self.name);
        b
    }

    fn batch(&self) -> RecordBatch {
        RecordBatch {
            base_offset: self.base_offset,
            partition_leader_epoch: self.partition_leader_epoch,
            attributes: self.attributes,
            last_offset_delta: self.last_offset_delta,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            records: self
                .records
                .iter()
                .map(|r| Record {
                    attributes: r.attributes,
                    timestamp_delta: r.timestamp_delta,
                    offset_delta: r.offset_delta,
                    key: opt_bytes(&r.key),
                    value: opt_bytes(&r.value),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| Header {
                            key: h.key.clone(),
                            value: opt_bytes(&h.value),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Names the first differing byte outside the CRC field (a difference there only
/// echoes one further on), which is far more useful than two hex dumps.
fn assert_same_bytes(name: &str, got: &[u8], want: &[u8]) {
    let differs = |i: &usize| got.get(*i) != want.get(*i);
    let n = got.len().max(want.len());
    let first = (0..n)
        .filter(|i| !(CRC_OFFSET..CRC_OFFSET + 4).contains(i))
        .find(differs)
        .or_else(|| (0..n).find(differs));
    if let Some(i) = first {
        panic!(
            "{name}: first difference at byte {i} (of {} encoded, {} in the fixture): \
             encoded {:02x?}, fixture {:02x?}",
            got.len(),
            want.len(),
            &got[i.min(got.len())..(i + 8).min(got.len())],
            &want[i.min(want.len())..(i + 8).min(want.len())]
        );
    }
}

#[test]
fn fixtures_come_from_kafka_python() {
    let f = load();
    assert_eq!(f.library, "kafka-python");
    assert!(!f.library_version.is_empty());
    let names: Vec<&str> = f.batches.iter().map(|b| b.name.as_str()).collect();
    for want in [
        "keyed",
        "null_key",
        "null_value",
        "headers",
        "idempotent",
        "transactional",
        "base_offset_epoch",
        "large_timestamps",
        "hundred",
    ] {
        assert!(names.contains(&want), "fixture {want} missing: {names:?}");
    }
}

#[test]
fn decode_gives_the_described_batch() {
    for d in load().batches {
        let bytes = d.bytes();
        let (batch, used) =
            RecordBatch::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(used, bytes.len(), "{}: bytes consumed", d.name);
        assert_eq!(batch, d.batch(), "{}", d.name);
    }
}

#[test]
fn header_parse_agrees_with_the_description() {
    for d in load().batches {
        let bytes = d.bytes();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.base_offset, d.base_offset, "{}", d.name);
        assert_eq!(h.partition_leader_epoch, d.partition_leader_epoch);
        assert_eq!(h.attributes, d.attributes, "{}", d.name);
        assert_eq!(h.last_offset_delta, d.last_offset_delta);
        assert_eq!(h.base_timestamp, d.base_timestamp);
        assert_eq!(h.max_timestamp, d.max_timestamp);
        assert_eq!(h.producer_id, d.producer_id);
        assert_eq!(h.producer_epoch, d.producer_epoch);
        assert_eq!(h.base_sequence, d.base_sequence);
        assert_eq!(h.record_count as usize, d.records.len());
        assert_eq!(h.size(), bytes.len(), "{}", d.name);
        assert_eq!(
            h.last_offset(),
            d.base_offset + i64::from(d.last_offset_delta)
        );
        assert_eq!(
            h.is_transactional(),
            d.attributes & TRANSACTIONAL_BIT != 0,
            "{}",
            d.name
        );
        assert!(!h.is_control());
        verify_crc(&bytes).unwrap();
    }
}

#[test]
fn encode_reproduces_the_fixture_bytes() {
    for d in load().batches {
        let encoded = d.batch().encode();
        assert_same_bytes(&d.name, &encoded, &d.bytes());
    }
}

#[test]
fn specific_fixtures_have_the_intended_shape() {
    let f = load();
    let get = |name: &str| f.batches.iter().find(|b| b.name == name).unwrap().batch();

    let txn = get("transactional");
    assert_eq!(txn.attributes, TRANSACTIONAL_BIT);
    assert!(txn.producer_id > i64::from(i32::MAX));

    let idem = get("idempotent");
    assert_eq!(
        (idem.producer_id, idem.producer_epoch, idem.base_sequence),
        (4242, 3, 17)
    );
    assert_eq!(idem.attributes, 0);

    let patched = get("base_offset_epoch");
    assert_eq!(
        (patched.base_offset, patched.partition_leader_epoch),
        (1_234_567_890_123, 42)
    );

    let hundred = get("hundred");
    assert_eq!(hundred.records.len(), 100);
    assert_eq!(hundred.last_offset_delta, 99);

    let headers = get("headers");
    assert!(headers.records[0]
        .headers
        .iter()
        .any(|h| h.key == "null-header" && h.value.is_none()));
    assert!(headers.records[0]
        .headers
        .iter()
        .any(|h| h.key == "empty-header" && h.value.as_deref() == Some(&b""[..])));

    let ts = get("large_timestamps");
    assert!(ts.records.iter().any(|r| r.timestamp_delta < 0));
    assert!(ts.records.iter().any(|r| r.timestamp_delta > 1 << 40));
    assert!(ts.max_timestamp > ts.base_timestamp + ts.records.last().unwrap().timestamp_delta);

    let tomb = get("null_value");
    assert!(tomb
        .records
        .iter()
        .any(|r| r.key.is_some() && r.value.is_none()));
    assert!(tomb
        .records
        .iter()
        .any(|r| r.key.is_none() && r.value.is_none()));
    assert!(get("null_key").records.iter().all(|r| r.key.is_none()));
}

#[test]
fn flipping_any_crc_covered_byte_is_a_crc_error() {
    for d in load().batches {
        let bytes = d.bytes();
        // The CRC field itself and everything from `attributes` to the end.
        for i in CRC_OFFSET..bytes.len() {
            for mask in [0x01u8, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                match RecordBatch::decode(&bad) {
                    Err(RecordError::Crc { .. }) => {}
                    other => panic!("{}: byte {i} ^ {mask:#04x}: {other:?}", d.name),
                }
                assert!(matches!(verify_crc(&bad), Err(RecordError::Crc { .. })));
            }
        }
    }
}

#[test]
fn bytes_before_the_crc_are_not_covered() {
    // baseOffset and partitionLeaderEpoch: any value keeps the CRC valid.
    for d in load().batches {
        let bytes = d.bytes();
        for i in (0..8).chain(12..16) {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            verify_crc(&b).unwrap_or_else(|e| panic!("{}: byte {i}: {e}", d.name));
        }
        let mut b = bytes.clone();
        b[16] = 1;
        assert_eq!(RecordBatch::decode(&b).unwrap_err(), RecordError::Magic(1));
    }
}

#[test]
fn corrupt_batch_length_is_an_error_not_a_panic() {
    // `batchLength` lies outside the CRC, so a corrupted length must be caught by the
    // bounds checks (Kafka: "the size is smaller than the minimum allowed overhead").
    for d in load().batches {
        let bytes = d.bytes();
        for i in 8..12 {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                assert!(RecordBatch::decode(&b).is_err(), "{}: byte {i}", d.name);
            }
        }
        for len in [i32::MIN, -13, -12, -1, 0, 8, 9, 48] {
            let mut b = bytes.clone();
            b[8..12].copy_from_slice(&len.to_be_bytes());
            assert!(
                matches!(RecordBatch::decode(&b), Err(RecordError::Malformed(_))),
                "{}: batchLength {len}",
                d.name
            );
            assert!(verify_crc(&b).is_err());
        }
    }
}

#[test]
fn leader_patches_keep_the_crc_valid() {
    for d in load().batches {
        for (offset, epoch) in [
            (0, -1),
            (77, 0),
            (1 << 40, 9),
            (i64::MAX - 200_000, i32::MAX),
        ] {
            let mut bytes = d.bytes();
            let crc_before = BatchHeader::parse(&bytes).unwrap().crc;
            set_base_offset(&mut bytes, offset);
            set_partition_leader_epoch(&mut bytes, epoch);
            verify_crc(&bytes).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(BatchHeader::parse(&bytes).unwrap().crc, crc_before);
            let (got, _) = RecordBatch::decode(&bytes).unwrap();
            let mut want = d.batch();
            want.base_offset = offset;
            want.partition_leader_epoch = epoch;
            assert_eq!(got, want, "{}", d.name);
            // A leader-patched batch is what encoding the patched description gives.
            assert_same_bytes(&d.name, &want.encode(), &bytes);
        }
    }
}

#[test]
fn concatenated_fixtures_decode_one_after_another() {
    let f = load();
    let mut log = Vec::new();
    for d in &f.batches {
        log.extend_from_slice(&d.bytes());
    }
    let mut pos = 0;
    for d in &f.batches {
        assert_eq!(BatchHeader::parse(&log[pos..]).unwrap().size(), d.size);
        let (batch, used) = RecordBatch::decode(&log[pos..]).unwrap();
        assert_eq!(batch, d.batch(), "{}", d.name);
        pos += used;
    }
    assert_eq!(pos, log.len());
}

#[test]
fn truncated_fixtures_are_rejected() {
    for d in load().batches {
        let bytes = d.bytes();
        for cut in [
            0,
            1,
            BATCH_HEADER_SIZE - 1,
            BATCH_HEADER_SIZE,
            bytes.len() - 1,
        ] {
            assert!(
                matches!(
                    RecordBatch::decode(&bytes[..cut]),
                    Err(RecordError::Truncated { .. })
                ),
                "{}: cut at {cut}",
                d.name
            );
        }
    }
}

#[test]
fn murmur2_and_key_partitions_match_kafka_python() {
    let f = load();
    assert!(f.murmur2.len() >= 20);
    for m in &f.murmur2 {
        let key = unhex(&m.key);
        assert_eq!(murmur2(&key), m.murmur2, "murmur2({})", m.key);
        for (n, want) in &m.partitions {
            let n: u32 = n.parse().unwrap();
            assert_eq!(partition_for_key(&key, n), *want, "{} over {n}", m.key);
        }
    }
}

#[test]
fn gzip_batches_from_kafka_python_decode() {
    let f = load();
    assert!(!f.compressed_batches.is_empty());
    for d in f.compressed_batches {
        let bytes = d.bytes();
        assert_eq!(
            d.attributes & 0x07,
            CompressionType::Gzip.id(),
            "{}",
            d.name
        );
        let (batch, used) =
            RecordBatch::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", d.name));
        assert_eq!(used, bytes.len(), "{}: bytes consumed", d.name);
        assert_eq!(batch, d.batch(), "{}", d.name);
        // Our own gzip bytes differ from zlib's, but decode to the same batch.
        let ours = d.batch().encode();
        assert_eq!(
            RecordBatch::decode(&ours).unwrap().0,
            d.batch(),
            "{}",
            d.name
        );
        assert!(
            ours.len() < d.batch().records.len() * 12,
            "{}: compressed",
            d.name
        );
    }
}

/// The batch `tests/fixtures/ours_gzip.bin` holds: kafkasim's gzip encoding, which
/// `scripts/make_fixtures.py` reads back with kafka-python.
fn our_gzip_batch() -> RecordBatch {
    let base = 1_700_000_000_000;
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: CompressionType::Gzip.id(),
        last_offset_delta: 49,
        base_timestamp: base,
        max_timestamp: base + 49,
        producer_id: 1000,
        producer_epoch: 0,
        base_sequence: 0,
        records: (0..50)
            .map(|i| Record {
                attributes: 0,
                timestamp_delta: i64::from(i),
                offset_delta: i,
                key: Some(Bytes::from(format!("key-{}", i % 5))),
                value: Some(Bytes::from(format!("{}", 4_294_967_296u64 + i as u64))),
                headers: vec![],
            })
            .collect(),
    }
}

#[test]
fn our_gzip_encoding_is_pinned_to_the_file_kafka_python_reads() {
    let encoded = our_gzip_batch().encode();
    let path = fixture_dir().join("ours_gzip.bin");
    if std::env::var_os("KAFKASIM_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let pinned = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_same_bytes("ours_gzip", &encoded, &pinned);
    assert_eq!(RecordBatch::decode(&pinned).unwrap().0, our_gzip_batch());
}
