//! The `__transaction_state` record format: key and value schemas (versions 0 and 1,
//! the tagged fields of KIP-890 in version 1), encoded and decoded as Kafka's
//! `TransactionLogKey` / `TransactionLogValue`.

use super::*;

pub(super) const KEY_VERSION: i16 = 0;

/// Tags of `TransactionLogValue` v1's tagged fields.
pub(super) const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;

pub(super) const TAG_NEXT_PRODUCER_ID: u32 = 1;

pub(super) const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

pub(super) fn put_uvarint(b: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

/// A compact array's or string's length: `n + 1` (0 is null).
pub(super) fn put_compact_len(b: &mut Vec<u8>, n: usize) {
    put_uvarint(b, u32::try_from(n + 1).expect("length fits a varint"));
}

pub(super) fn read_uvarint(r: &mut Reader) -> Result<u32, String> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = r.take(1)?[0];
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("unsigned varint longer than 5 bytes".into())
}

/// A compact length: `None` for null.
pub(super) fn read_compact_len(r: &mut Reader) -> Result<Option<usize>, String> {
    Ok(read_uvarint(r)?.checked_sub(1).map(|n| n as usize))
}

/// Tagged fields: `(tag, data)` in order.
pub(super) fn read_tagged_fields(r: &mut Reader) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let mut fields = Vec::new();
    for _ in 0..read_uvarint(r)? {
        let tag = read_uvarint(r)?;
        let size = read_uvarint(r)? as usize;
        fields.push((tag, r.take(size)?.to_vec()));
    }
    Ok(fields)
}

pub(super) fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, KEY_VERSION);
    put_str(&mut b, transactional_id);
    Bytes::from(b)
}

/// `TransactionLogValue`: version 0 with `transaction.version` 0, else version 1.
pub(super) fn encode_value(t: &TxnValue, transaction_version: i16) -> Bytes {
    let flexible = transaction_version >= 1;
    let partitions: Vec<TopicPartition> = t.topic_partitions.iter().cloned().collect();
    let null_partitions = t.state == TransactionState::Empty;
    assert!(
        !null_partitions || partitions.is_empty(),
        "an Empty transaction with partitions"
    );
    let mut b = Vec::new();
    put_i16(&mut b, i16::from(flexible));
    put_i64(&mut b, t.producer_id);
    put_i16(&mut b, t.producer_epoch);
    put_timeout(&mut b, t.txn_timeout_ms);
    b.push(t.state.id());
    match (flexible, null_partitions) {
        (false, true) => put_i32(&mut b, -1),
        (false, false) => put_partitions(&mut b, &partitions),
        (true, true) => put_uvarint(&mut b, 0),
        (true, false) => {
            let runs = topic_runs(&partitions);
            put_compact_len(&mut b, runs.len());
            for (topic, ids) in runs {
                put_compact_len(&mut b, topic.len());
                b.extend_from_slice(topic.as_bytes());
                put_compact_len(&mut b, ids.len());
                for p in ids {
                    put_i32(&mut b, p);
                }
                put_uvarint(&mut b, 0); // no tagged fields
            }
        }
    }
    put_i64(&mut b, t.txn_last_update_timestamp);
    put_i64(&mut b, t.txn_start_timestamp);
    if flexible {
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        if t.previous_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_PREVIOUS_PRODUCER_ID,
                t.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if t.next_producer_id != NO_PRODUCER_ID {
            tagged.push((
                TAG_NEXT_PRODUCER_ID,
                t.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if t.client_transaction_version != 0 {
            let v = t.client_transaction_version.to_be_bytes().to_vec();
            tagged.push((TAG_CLIENT_TRANSACTION_VERSION, v));
        }
        put_uvarint(&mut b, tagged.len() as u32);
        for (tag, data) in tagged {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, data.len() as u32);
            b.extend_from_slice(&data);
        }
    }
    Bytes::from(b)
}

/// A `__transaction_state` record: the transactional id and its state (`None`: a
/// tombstone).
pub(super) fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(Arc<str>, Option<TxnValue>), String> {
    let mut k = Reader { buf: key };
    match k.i16()? {
        KEY_VERSION => {}
        other => return Err(format!("unknown key version {other}")),
    }
    let id = k.str()?;
    k.done()?;
    let Some(value) = value else {
        return Ok((id, None));
    };
    let mut v = Reader { buf: value };
    let flexible = match v.i16()? {
        0 => false,
        1 => true,
        other => return Err(format!("unknown value version {other}")),
    };
    let producer_id = v.i64()?;
    let producer_epoch = v.i16()?;
    let timeout = v.i32()?;
    let txn_timeout_ms =
        u64::try_from(timeout).map_err(|_| format!("negative timeout {timeout}"))?;
    let status = v.take(1)?[0];
    let state = TransactionState::from_id(status)
        .filter(|s| {
            !matches!(
                s,
                TransactionState::Dead | TransactionState::PrepareEpochFence
            )
        })
        .ok_or_else(|| format!("transaction status {status} is never written"))?;
    let mut topic_partitions = BTreeSet::new();
    if flexible {
        for _ in 0..read_compact_len(&mut v)?.unwrap_or(0) {
            let n = read_compact_len(&mut v)?.ok_or("null topic")?;
            let topic = std::str::from_utf8(v.take(n)?).map_err(|e| e.to_string())?;
            for _ in 0..read_compact_len(&mut v)?.ok_or("null partitions")? {
                let p = v.i32()?;
                let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
                topic_partitions.insert(TopicPartition::new(topic, partition));
            }
            read_tagged_fields(&mut v)?;
        }
    } else if v.buf.get(..4) == Some(&(-1i32).to_be_bytes()) {
        v.take(4)?; // null
    } else {
        topic_partitions.extend(v.partitions()?);
    }
    let txn_last_update_timestamp = v.i64()?;
    let txn_start_timestamp = v.i64()?;
    let (mut previous_producer_id, mut next_producer_id, mut client_transaction_version) =
        (NO_PRODUCER_ID, NO_PRODUCER_ID, 0);
    if flexible {
        for (tag, data) in read_tagged_fields(&mut v)? {
            let wrong = |_| format!("tagged field {tag} of {} bytes", data.len());
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    previous_producer_id = i64::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                TAG_NEXT_PRODUCER_ID => {
                    next_producer_id = i64::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    client_transaction_version =
                        i16::from_be_bytes(data[..].try_into().map_err(wrong)?)
                }
                _ => {} // a later version's field
            }
        }
    }
    v.done()?;
    if state == TransactionState::Empty {
        topic_partitions.clear();
    }
    Ok((
        id,
        Some(TxnValue {
            producer_id,
            previous_producer_id,
            next_producer_id,
            producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state,
            topic_partitions,
            txn_start_timestamp,
            txn_last_update_timestamp,
            client_transaction_version,
        }),
    ))
}
