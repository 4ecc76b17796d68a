//! What both coordinators share: the partition of a coordinator key (`group.id`,
//! `transactional.id`) in its internal topic, the reply address of a request waiting
//! on an append, the append itself, and the binary codec of their records (Kafka's
//! big-endian schema types, written and read with [`Reader`]).

use crate::kafka::protocol::{NodeId, ProducerIdentity, TopicPartition};
use crate::kafka::record::{Record, RecordBatch};
use bytes::Bytes;
use std::sync::Arc;

/// Java's `String.hashCode`: `h = 31 * h + c` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Kafka's `partitionFor(groupId)`: `Utils.abs(groupId.hashCode) % partitions`, where
/// `Utils.abs` is `Math.abs` except that `Integer.MIN_VALUE` gives 0.
pub fn partition_for_group(group_id: &str, num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "__consumer_offsets has no partitions");
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    abs % num_partitions
}

/// Where a deferred answer goes: the client and its request's correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplyTo {
    /// The requesting client.
    pub client: NodeId,
    /// The request's correlation id.
    pub correlation_id: u64,
}

impl ReplyTo {
    /// The answer to `client`'s request `correlation_id`.
    pub fn new(client: NodeId, correlation_id: u64) -> ReplyTo {
        ReplyTo {
            client,
            correlation_id,
        }
    }
}

/// A batch a coordinator wants appended to a partition of its internal topic
/// (`__consumer_offsets`, or `__transaction_state` for the transaction coordinator).
#[derive(Clone, Debug)]
pub struct CoordinatorAppend {
    /// Given back to the coordinator's `on_append_complete`.
    pub id: u64,
    /// The internal topic's partition.
    pub partition: u32,
    /// An encoded record batch v2 (producer id -1).
    pub batch: Bytes,
}

pub fn put_i16(b: &mut Vec<u8>, v: i16) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub fn put_len(b: &mut Vec<u8>, n: usize) {
    put_i32(b, i32::try_from(n).expect("array fits an i32"));
}

pub fn put_str(b: &mut Vec<u8>, s: &str) {
    put_i16(
        b,
        i16::try_from(s.len()).expect("string fits an i16 length"),
    );
    b.extend_from_slice(s.as_bytes());
}

pub fn put_nullable_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => put_i16(b, -1),
    }
}

pub fn put_timeout(b: &mut Vec<u8>, ms: u64) {
    put_i32(b, i32::try_from(ms).expect("timeouts fit an i32"));
}

/// Partitions as `(topic, [partition])`, one entry per run of one topic.
pub fn topic_runs(tps: &[TopicPartition]) -> Vec<(&str, Vec<i32>)> {
    let mut runs: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in tps {
        let p = i32::try_from(tp.partition).expect("partition fits an i32");
        match runs.last_mut() {
            Some((t, ps)) if *t == &*tp.topic => ps.push(p),
            _ => runs.push((&tp.topic, vec![p])),
        }
    }
    runs
}

/// Partitions as `[string topic, [i32 partition]]`, one entry per run of one topic.
pub fn put_partitions(b: &mut Vec<u8>, tps: &[TopicPartition]) {
    let runs = topic_runs(tps);
    put_len(b, runs.len());
    for (t, ps) in runs {
        put_str(b, t);
        put_len(b, ps.len());
        for p in ps {
            put_i32(b, p);
        }
    }
}

/// One batch of (key, value) records, producer id -1, stamped `timestamp` (CreateTime).
/// A coordinator batch; with `producer`, a transactional one of that producer (no
/// sequence: Kafka writes transactional offset commits without one).
pub fn encode_batch(
    timestamp: i64,
    records: Vec<(Bytes, Bytes)>,
    producer: Option<ProducerIdentity>,
) -> Bytes {
    assert!(!records.is_empty(), "an empty coordinator batch");
    let identity = producer.unwrap_or(ProducerIdentity::NONE);
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: if producer.is_some() {
            crate::kafka::record::TRANSACTIONAL_BIT
        } else {
            0
        },
        last_offset_delta: i32::try_from(records.len() - 1).expect("batch size fits an i32"),
        // CreateTime: the broker's wall clock (Kafka's coordinators stamp
        // `time.milliseconds()`), which producer expiration compares them with.
        base_timestamp: timestamp,
        max_timestamp: timestamp,
        producer_id: identity.producer_id,
        producer_epoch: identity.producer_epoch,
        base_sequence: -1,
        records: records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record::plain(i, Some(key), value))
            .collect(),
    }
    .encode()
}

/// A reader over Kafka's big-endian schema types.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("{n} bytes wanted, {} left", self.buf.len()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub(crate) fn len(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }
    pub(crate) fn nullable_str(&mut self) -> Result<Option<Arc<str>>, String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let bytes = self.take(n as usize)?;
        let s = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Ok(Some(Arc::from(s)))
    }
    pub(crate) fn str(&mut self) -> Result<Arc<str>, String> {
        self.nullable_str()?
            .ok_or_else(|| "null string".to_string())
    }
    pub(crate) fn timeout(&mut self) -> Result<u64, String> {
        let v = self.i32()?;
        u64::try_from(v).map_err(|_| format!("negative timeout {v}"))
    }
    pub(crate) fn version(&mut self, expected: i16) -> Result<(), String> {
        let v = self.i16()?;
        if v == expected {
            Ok(())
        } else {
            Err(format!("version {v}, expected {expected}"))
        }
    }
    pub(crate) fn skip_nullable_bytes(&mut self) -> Result<(), String> {
        let n = self.i32()?;
        if n >= 0 {
            self.take(n as usize)?;
        }
        Ok(())
    }
    pub(crate) fn partitions(&mut self) -> Result<Vec<TopicPartition>, String> {
        let mut out = Vec::new();
        for _ in 0..self.len()? {
            let topic = self.str()?;
            for _ in 0..self.len()? {
                let p = self.i32()?;
                let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
                out.push(TopicPartition {
                    topic: topic.clone(),
                    partition,
                });
            }
        }
        Ok(out)
    }
    pub(crate) fn done(&self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.buf.len()))
        }
    }
}

/// Test support shared by both coordinators' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{CoordinatorAppend, ReplyTo};
    use crate::kafka::protocol::Response;
    use bytes::Bytes;

    /// Completes every append of a coordinator output at once, depth first, as a log
    /// whose high watermark passes each at once: keeps its batch in `log` and hands
    /// its id to `complete` (the coordinator's `on_append_complete` with `NONE`).
    /// `split` takes an output apart into its answers and appends. Returns every
    /// answer, in order.
    pub(crate) fn complete_appends<O>(
        log: &mut Vec<Bytes>,
        out: O,
        split: &mut impl FnMut(O) -> (Vec<(ReplyTo, Response)>, Vec<CoordinatorAppend>),
        complete: &mut impl FnMut(u64) -> O,
    ) -> Vec<(ReplyTo, Response)> {
        let (mut responses, appends) = split(out);
        for a in appends {
            log.push(a.batch);
            let done = complete(a.id);
            responses.extend(complete_appends(log, done, split, complete));
        }
        responses
    }
}
