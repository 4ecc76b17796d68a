//! Unit tests of `kafka::record`.

use super::*;

fn sample() -> RecordBatch {
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: 0,
        last_offset_delta: 1,
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_007,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records: vec![
            Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(Bytes::from_static(b"k1")),
                value: Some(Bytes::from_static(b"4711")),
                headers: vec![Header {
                    key: "h".into(),
                    value: Some(Bytes::from_static(b"v")),
                }],
            },
            Record {
                attributes: 0,
                timestamp_delta: 7,
                offset_delta: 1,
                key: None,
                value: None,
                headers: vec![],
            },
        ],
    }
}

#[test]
fn round_trip() {
    let b = sample();
    let bytes = b.encode();
    let (d, n) = RecordBatch::decode(&bytes).unwrap();
    assert_eq!(n, bytes.len());
    assert_eq!(d, b);
    let h = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(h.record_count, 2);
    assert_eq!(h.size(), bytes.len());
}

#[test]
fn last_sequence_wraps_past_i32_max() {
    let header = |producer_id, base_sequence| {
        let bytes = RecordBatch {
            producer_id,
            producer_epoch: 0,
            base_sequence,
            ..sample()
        }
        .encode();
        BatchHeader::parse(&bytes).unwrap()
    };
    let h = header(7, 5);
    assert!(h.has_producer_id());
    assert_eq!(h.last_sequence(), 6);
    assert_eq!(header(7, i32::MAX - 1).last_sequence(), i32::MAX);
    assert_eq!(header(7, i32::MAX).last_sequence(), 0);
    let h = header(NO_PRODUCER_ID, NO_SEQUENCE);
    assert!(!h.has_producer_id());
    assert_eq!(h.last_sequence(), NO_SEQUENCE);
    assert_eq!(increment_sequence(i32::MAX - 2, 5), 2);
}

#[test]
fn leader_patches_stay_outside_the_crc() {
    let mut bytes = sample().encode().to_vec();
    set_base_offset(&mut bytes, 42);
    set_partition_leader_epoch(&mut bytes, 7);
    verify_crc(&bytes).unwrap();
    let (d, _) = RecordBatch::decode(&bytes).unwrap();
    assert_eq!((d.base_offset, d.partition_leader_epoch), (42, 7));
}

#[test]
fn corruption_is_detected() {
    let mut bytes = sample().encode().to_vec();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    assert!(matches!(
        RecordBatch::decode(&bytes),
        Err(RecordError::Crc { .. })
    ));
}

/// A COMMIT marker batch laid out field by field as Kafka's
/// `MemoryRecords.withEndTransactionMarker` writes it (kafka-python cannot write
/// control batches, so this is the byte-level reference).
#[test]
fn end_transaction_marker_matches_kafkas_layout() {
    let marker = EndTransactionMarker {
        control_type: ControlRecordType::Commit,
        coordinator_epoch: 79,
    };
    let t = 1_700_000_000_123_i64;
    let bytes = marker.to_batch(7, 3, t).encode();
    let mut expected = Vec::new();
    expected.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    expected.extend_from_slice(&66i32.to_be_bytes()); // batchLength: 78 - 12
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
    expected.push(2); // magic
    expected.extend_from_slice(&[0; 4]); // crc, checked below
    expected.extend_from_slice(&0x30i16.to_be_bytes()); // transactional | control
    expected.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    expected.extend_from_slice(&t.to_be_bytes()); // baseTimestamp
    expected.extend_from_slice(&t.to_be_bytes()); // maxTimestamp
    expected.extend_from_slice(&7i64.to_be_bytes()); // producerId
    expected.extend_from_slice(&3i16.to_be_bytes()); // producerEpoch
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    expected.extend_from_slice(&1i32.to_be_bytes()); // records
                                                     // The record: length 16 (zigzag 0x20), attributes, timestampDelta 0,
                                                     // offsetDelta 0, key of 4 bytes (version 0, type 1 = COMMIT), value of 6 bytes
                                                     // (version 0, coordinator epoch 79), no headers.
    expected.extend_from_slice(&[0x20, 0, 0, 0, 0x08, 0, 0, 0, 1, 0x0c, 0, 0, 0, 0, 0, 79, 0]);
    assert_eq!(bytes.len(), expected.len());
    let crc = crc32c::crc32c(&expected[ATTRIBUTES_OFFSET..]);
    expected[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(&bytes[..], &expected[..]);

    let h = BatchHeader::parse(&bytes).unwrap();
    assert!(h.is_control() && h.is_transactional() && h.has_producer_id());
    assert_eq!(h.last_sequence(), NO_SEQUENCE);
    let (batch, _) = RecordBatch::decode(&bytes).unwrap();
    assert!(batch.is_control() && batch.is_transactional());
    assert_eq!(EndTransactionMarker::of_batch(&batch), Ok(Some(marker)));
    let abort = EndTransactionMarker {
        control_type: ControlRecordType::Abort,
        coordinator_epoch: -1,
    };
    let (batch, _) = RecordBatch::decode(&abort.to_batch(7, 3, t).encode()).unwrap();
    assert_eq!(batch.records[0].key.as_deref().unwrap(), &[0, 0, 0, 0]);
    assert_eq!(EndTransactionMarker::of_batch(&batch), Ok(Some(abort)));
}

#[test]
fn malformed_markers_are_refused() {
    let record = |key: &[u8], value: &[u8]| Record {
        attributes: 0,
        timestamp_delta: 0,
        offset_delta: 0,
        key: Some(Bytes::copy_from_slice(key)),
        value: Some(Bytes::copy_from_slice(value)),
        headers: vec![],
    };
    let value = [0, 0, 0, 0, 0, 9];
    assert!(EndTransactionMarker::decode(&record(&[0xff, 0xff, 0, 1], &value)).is_err());
    assert!(EndTransactionMarker::decode(&record(&[0, 0, 0, 2], &value)).is_err());
    assert!(EndTransactionMarker::decode(&record(&[0, 0, 0], &value)).is_err());
    assert!(EndTransactionMarker::decode(&record(&[0, 0, 0, 1], &[0, 0, 0])).is_err());
    // A later version is read by its version-0 prefix.
    let later = EndTransactionMarker::decode(&record(&[0, 1, 0, 1], &[0, 1, 0, 0, 0, 9, 42]));
    assert_eq!(later.map(|m| m.coordinator_epoch), Ok(9));
    let data = sample();
    assert!(
        EndTransactionMarker::of_batch(&data).is_err(),
        "not a control batch"
    );
}

#[test]
fn varints_are_zigzag() {
    for (v, enc) in [
        (0, vec![0u8]),
        (-1, vec![1]),
        (1, vec![2]),
        (-64, vec![127]),
        (64, vec![128, 1]),
    ] {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        assert_eq!(b, enc, "varint {v}");
        let mut r = Reader { buf: &b, pos: 0 };
        assert_eq!(r.varint().unwrap(), v);
    }
}
