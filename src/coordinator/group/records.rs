//! The `__consumer_offsets` record format: offset commit and group metadata keys and
//! values (Kafka's `OffsetCommitKey`/`Value`, `GroupMetadataKey`/`Value`).

use super::*;

/// A decoded `__consumer_offsets` record.
#[derive(Debug, PartialEq)]
pub(super) enum OffsetsRecord {
    Offset {
        group_id: Arc<str>,
        offset: CommittedOffset,
    },
    Group {
        group_id: Arc<str>,
        value: GroupValue,
    },
}

#[derive(Debug, PartialEq)]
pub(super) struct GroupValue {
    pub(super) generation: i32,
    pub(super) protocol: Option<Arc<str>>,
    pub(super) leader: Option<Arc<str>>,
    pub(super) state_timestamp: i64,
    pub(super) members: Vec<MemberValue>,
}

#[derive(Debug, PartialEq)]
pub(super) struct MemberValue {
    pub(super) member_id: Arc<str>,
    pub(super) group_instance_id: Option<Arc<str>>,
    pub(super) client_id: Arc<str>,
    pub(super) rebalance_timeout_ms: u64,
    pub(super) session_timeout_ms: u64,
    pub(super) protocol_subscription: Subscription,
    pub(super) assignment: Vec<TopicPartition>,
}

pub(super) const OFFSET_KEY_VERSION: i16 = 1;

pub(super) const GROUP_KEY_VERSION: i16 = 2;

pub(super) const OFFSET_VALUE_VERSION: i16 = 3;

pub(super) const GROUP_VALUE_VERSION: i16 = 3;

pub(super) const SUBSCRIPTION_VERSION: i16 = 1;

pub(super) const ASSIGNMENT_VERSION: i16 = 0;

pub(super) const CLIENT_HOST: &str = "/sim";

pub(super) fn encode_offset_key(group_id: &str, tp: &TopicPartition) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, OFFSET_KEY_VERSION);
    put_str(&mut b, group_id);
    put_str(&mut b, &tp.topic);
    put_i32(
        &mut b,
        i32::try_from(tp.partition).expect("partition fits an i32"),
    );
    Bytes::from(b)
}

pub(super) fn encode_offset_value(o: &CommittedOffset, now: Millis) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, OFFSET_VALUE_VERSION);
    put_i64(&mut b, o.offset);
    put_i32(&mut b, o.leader_epoch);
    put_str(&mut b, "");
    put_i64(&mut b, now as i64);
    Bytes::from(b)
}

/// The records of a commit: one offset record (key, value) per partition.
pub(super) fn encode_offset_records(
    group_id: &str,
    offsets: &[CommittedOffset],
    now: Millis,
) -> Vec<(Bytes, Bytes)> {
    offsets
        .iter()
        .map(|o| {
            (
                encode_offset_key(group_id, &o.tp),
                encode_offset_value(o, now),
            )
        })
        .collect()
}

pub(super) fn encode_group_key(group_id: &str) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, GROUP_KEY_VERSION);
    put_str(&mut b, group_id);
    Bytes::from(b)
}

pub(super) fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = Vec::new();
    put_i16(&mut b, GROUP_VALUE_VERSION);
    put_str(&mut b, PROTOCOL_TYPE);
    put_i32(&mut b, v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    put_i64(&mut b, v.state_timestamp);
    put_len(&mut b, v.members.len());
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, CLIENT_HOST);
        put_timeout(&mut b, m.rebalance_timeout_ms);
        put_timeout(&mut b, m.session_timeout_ms);
        let mut s = Vec::new();
        put_i16(&mut s, SUBSCRIPTION_VERSION);
        put_len(&mut s, m.protocol_subscription.topics.len());
        for t in &m.protocol_subscription.topics {
            put_str(&mut s, t);
        }
        put_i32(&mut s, -1);
        put_partitions(&mut s, &m.protocol_subscription.owned_partitions);
        put_len(&mut b, s.len());
        b.extend_from_slice(&s);
        let mut a = Vec::new();
        put_i16(&mut a, ASSIGNMENT_VERSION);
        put_partitions(&mut a, &m.assignment);
        put_i32(&mut a, -1);
        put_len(&mut b, a.len());
        b.extend_from_slice(&a);
    }
    Bytes::from(b)
}

pub(super) fn decode_record(key: &[u8], value: &[u8]) -> Result<OffsetsRecord, String> {
    let mut k = Reader { buf: key };
    let mut v = Reader { buf: value };
    let record = match k.i16()? {
        OFFSET_KEY_VERSION => {
            let group_id = k.str()?;
            let topic = k.str()?;
            let p = k.i32()?;
            let partition = u32::try_from(p).map_err(|_| format!("partition {p}"))?;
            v.version(OFFSET_VALUE_VERSION)?;
            let offset = v.i64()?;
            let leader_epoch = v.i32()?;
            v.str()?; // metadata
            v.i64()?; // commit timestamp
            OffsetsRecord::Offset {
                group_id,
                offset: CommittedOffset {
                    tp: TopicPartition { topic, partition },
                    offset,
                    leader_epoch,
                },
            }
        }
        GROUP_KEY_VERSION => {
            let group_id = k.str()?;
            v.version(GROUP_VALUE_VERSION)?;
            let protocol_type = v.str()?;
            if &*protocol_type != PROTOCOL_TYPE {
                return Err(format!("protocol type {protocol_type}"));
            }
            let generation = v.i32()?;
            let protocol = v.nullable_str()?;
            let leader = v.nullable_str()?;
            let state_timestamp = v.i64()?;
            let mut members = Vec::new();
            for _ in 0..v.len()? {
                let member_id = v.str()?;
                let group_instance_id = v.nullable_str()?;
                let client_id = v.str()?;
                v.str()?; // client host
                let rebalance_timeout_ms = v.timeout()?;
                let session_timeout_ms = v.timeout()?;
                let n = v.len()?;
                let mut s = Reader { buf: v.take(n)? };
                s.version(SUBSCRIPTION_VERSION)?;
                let mut topics = Vec::new();
                for _ in 0..s.len()? {
                    topics.push(s.str()?);
                }
                s.skip_nullable_bytes()?;
                let owned_partitions = s.partitions()?;
                s.done()?;
                let n = v.len()?;
                let mut a = Reader { buf: v.take(n)? };
                a.version(ASSIGNMENT_VERSION)?;
                let assignment = a.partitions()?;
                a.skip_nullable_bytes()?;
                a.done()?;
                members.push(MemberValue {
                    member_id,
                    group_instance_id,
                    client_id,
                    rebalance_timeout_ms,
                    session_timeout_ms,
                    protocol_subscription: Subscription {
                        topics,
                        owned_partitions,
                    },
                    assignment,
                });
            }
            OffsetsRecord::Group {
                group_id,
                value: GroupValue {
                    generation,
                    protocol,
                    leader,
                    state_timestamp,
                    members,
                },
            }
        }
        other => return Err(format!("unknown key version {other}")),
    };
    k.done()?;
    v.done()?;
    Ok(record)
}
