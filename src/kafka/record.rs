//! Kafka's record batch format, magic v2 (`DefaultRecordBatch`, `DefaultRecord`).
//!
//! Replicas store batches as these bytes and ship them unchanged between leader,
//! followers and consumers. The leader patches only `baseOffset` and
//! `partitionLeaderEpoch`, which lie outside the CRC, exactly as Kafka does; the CRC-32C
//! covers everything from `attributes` to the end and is checked where a batch is
//! produced, appended and consumed (a pair assertion).

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Size of the batch header, up to and including the record count.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Offset of `partitionLeaderEpoch` within the batch.
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Offset of `magic`.
const MAGIC_OFFSET: usize = 16;
/// Offset of `crc`.
const CRC_OFFSET: usize = 17;
/// Offset of `attributes`: the CRC covers from here to the end.
const ATTRIBUTES_OFFSET: usize = 21;
/// Bytes before `partitionLeaderEpoch` that `batchLength` does not count.
const LOG_OVERHEAD: usize = 12;

/// Attribute bits 0-2: compression codec (0 = none).
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch is a control batch (a transaction marker).
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6: the batch has a delete horizon.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// `compression.type`: Kafka's codecs, by their attribute ids.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    /// 0: records stored as they are (the producer default).
    #[default]
    None,
    /// 1: one gzip stream of the records.
    Gzip,
    /// 2: snappy (xerial framing).
    Snappy,
    /// 3: LZ4 frames.
    Lz4,
    /// 4: zstd.
    Zstd,
}

impl CompressionType {
    /// Every codec, in attribute-id order.
    pub const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ];

    /// The id in the batch attributes' low 3 bits.
    pub fn id(self) -> i16 {
        self as i16
    }

    /// The codec with attribute id `id`.
    pub fn from_id(id: i16) -> Option<CompressionType> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Kafka's name (`gzip`).
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    /// Whether this build can encode and decode the codec.
    pub fn is_supported(self) -> bool {
        matches!(self, CompressionType::None | CompressionType::Gzip)
    }
}

/// Why a batch could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the format requires.
    #[error("record batch truncated: needed {needed} bytes, had {had}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        had: usize,
    },
    /// `magic` is not 2.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    Magic(i8),
    /// The stored CRC does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A compression codec this build does not implement.
    #[error("unsupported compression codec {0}")]
    Compression(i16),
    /// A varint or length field is malformed.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// A record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value (may be null).
    pub value: Option<Bytes>,
}

/// One record inside a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record attributes (unused by Kafka, always 0).
    pub attributes: i8,
    /// Timestamp relative to the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset relative to the batch's base offset.
    pub offset_delta: i32,
    /// Key (may be null).
    pub key: Option<Bytes>,
    /// Value (may be null).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl Record {
    /// The `i`th record of a batch, at the batch's timestamp, without headers.
    pub fn plain(i: usize, key: Option<Bytes>, value: Bytes) -> Record {
        Record {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: i32::try_from(i).expect("a batch's records fit an i32"),
            key,
            value: Some(value),
            headers: Vec::new(),
        }
    }
}

/// A decoded record batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// Offset of the first record (assigned by the leader).
    pub base_offset: i64,
    /// Leader epoch at append (assigned by the leader), -1 from producers.
    pub partition_leader_epoch: i32,
    /// Attribute bits (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 when not idempotent.
    pub producer_id: i64,
    /// Producer epoch, -1 when not idempotent.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when not idempotent.
    pub base_sequence: i32,
    /// The records.
    pub records: Vec<Record>,
}

/// The fixed-size header of an encoded batch, parsed without touching the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// `baseOffset`.
    pub base_offset: i64,
    /// `batchLength`: bytes after this field.
    pub batch_length: i32,
    /// `partitionLeaderEpoch`.
    pub partition_leader_epoch: i32,
    /// `magic`.
    pub magic: i8,
    /// `crc`.
    pub crc: u32,
    /// `attributes`.
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `baseTimestamp`.
    pub base_timestamp: i64,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// `producerId`.
    pub producer_id: i64,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (no CRC check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_SIZE,
                had: buf.len(),
            });
        }
        let mut r = Reader { buf, pos: 0 };
        let h = BatchHeader {
            base_offset: r.i64()?,
            batch_length: r.i32()?,
            partition_leader_epoch: r.i32()?,
            magic: r.i8()?,
            crc: r.i32()? as u32,
            attributes: r.i16()?,
            last_offset_delta: r.i32()?,
            base_timestamp: r.i64()?,
            max_timestamp: r.i64()?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            base_sequence: r.i32()?,
            record_count: r.i32()?,
        };
        if h.magic != 2 {
            return Err(RecordError::Magic(h.magic));
        }
        // `batchLength` lies outside the CRC; like Kafka's `DefaultRecordBatch.ensureValid`,
        // reject a batch smaller than its own header instead of slicing with it.
        if h.batch_length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(RecordError::Malformed(
                "batch length smaller than the batch header",
            ));
        }
        Ok(h)
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Total encoded size of the batch.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Whether the batch comes from an idempotent or transactional producer (Kafka's
    /// `hasProducerId`: a producer id other than `NO_PRODUCER_ID`, -1).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Sequence of the last record: `baseSequence + lastOffsetDelta`, wrapping past
    /// `i32::MAX` to 0; -1 (`NO_SEQUENCE`) when the batch has no sequence.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// `RecordBatch.NO_PRODUCER_ID`: the producer id of a batch from a producer without
/// idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `RecordBatch.NO_SEQUENCE`.
pub const NO_SEQUENCE: i32 = -1;

/// Kafka's `DefaultRecordBatch.incrementSequence`: `sequence + increment` (a
/// non-negative increment), wrapping from `i32::MAX` to 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    assert!(increment >= 0, "negative sequence increment {increment}");
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Checks the CRC-32C of an encoded batch.
pub fn verify_crc(buf: &[u8]) -> Result<(), RecordError> {
    let h = BatchHeader::parse(buf)?;
    if buf.len() < h.size() {
        return Err(RecordError::Truncated {
            needed: h.size(),
            had: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..h.size()]);
    if computed != h.crc {
        return Err(RecordError::Crc {
            stored: h.crc,
            computed,
        });
    }
    Ok(())
}

/// Sets `baseOffset` in an encoded batch (outside the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets `partitionLeaderEpoch` in an encoded batch (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

impl RecordBatch {
    /// Whether the batch belongs to a transaction (attribute bit 4, [`TRANSACTIONAL_BIT`]:
    /// a transactional producer sets it on every data batch it sends in a transaction).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch (attribute bit 5: a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Encodes the batch, computing `batchLength` and the CRC-32C.
    pub fn encode(&self) -> Bytes {
        let codec = CompressionType::from_id(self.attributes & COMPRESSION_MASK)
            .filter(|c| c.is_supported())
            .unwrap_or_else(|| {
                panic!(
                    "cannot encode compression codec {}",
                    self.attributes & COMPRESSION_MASK
                )
            });
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_SIZE + 32 * self.records.len());
        buf.put_i64(self.base_offset);
        buf.put_i32(0); // batchLength, patched below
        buf.put_i32(self.partition_leader_epoch);
        buf.put_i8(2);
        buf.put_u32(0); // crc, patched below
        buf.put_i16(self.attributes);
        buf.put_i32(self.last_offset_delta);
        buf.put_i64(self.base_timestamp);
        buf.put_i64(self.max_timestamp);
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.base_sequence);
        buf.put_i32(self.records.len() as i32);
        let mut records = Vec::with_capacity(32 * self.records.len());
        let mut body = Vec::with_capacity(64);
        for rec in &self.records {
            body.clear();
            body.push(rec.attributes as u8);
            put_varlong(&mut body, rec.timestamp_delta);
            put_varint(&mut body, rec.offset_delta);
            put_nullable(&mut body, rec.key.as_deref());
            put_nullable(&mut body, rec.value.as_deref());
            put_varint(&mut body, rec.headers.len() as i32);
            for h in &rec.headers {
                put_varint(&mut body, h.key.len() as i32);
                body.extend_from_slice(h.key.as_bytes());
                put_nullable(&mut body, h.value.as_deref());
            }
            put_varint(&mut records, body.len() as i32);
            records.extend_from_slice(&body);
        }
        match codec {
            CompressionType::Gzip => buf.put_slice(&gzip(&records)),
            _ => buf.put_slice(&records),
        }
        let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
        buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(buf[MAGIC_OFFSET], 2);
        buf.freeze()
    }

    /// Decodes one batch from the start of `buf`, checking magic and CRC.
    /// Returns the batch and the number of bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(RecordBatch, usize), RecordError> {
        verify_crc(buf)?;
        RecordBatch::decode_unchecked(buf)
    }

    /// Decodes one batch from the start of `buf` without checking its CRC (a consumer
    /// with `check.crcs=false`): a corrupt batch may decode to other records, or fail
    /// wherever its bytes stop making sense. Returns the batch and the bytes it took.
    pub fn decode_unchecked(buf: &[u8]) -> Result<(RecordBatch, usize), RecordError> {
        let h = BatchHeader::parse(buf)?;
        if buf.len() < h.size() {
            return Err(RecordError::Truncated {
                needed: h.size(),
                had: buf.len(),
            });
        }
        let batch_end = h.size();
        let end = batch_end;
        let codec_id = h.attributes & COMPRESSION_MASK;
        let inflated;
        let mut r = match CompressionType::from_id(codec_id) {
            Some(CompressionType::None) => Reader {
                buf: &buf[..end],
                pos: BATCH_HEADER_SIZE,
            },
            Some(CompressionType::Gzip) => {
                inflated = gunzip(&buf[BATCH_HEADER_SIZE..end])?;
                Reader {
                    buf: &inflated,
                    pos: 0,
                }
            }
            _ => return Err(RecordError::Compression(codec_id)),
        };
        let end = r.buf.len();
        if h.record_count < 0 {
            return Err(RecordError::Malformed("negative record count"));
        }
        let mut records = Vec::with_capacity(h.record_count as usize);
        for _ in 0..h.record_count {
            let len = r.varint()?;
            if len < 0 {
                return Err(RecordError::Malformed("negative record length"));
            }
            let rec_end = r.pos + len as usize;
            if rec_end > end {
                return Err(RecordError::Malformed("record overruns its batch"));
            }
            let attributes = r.i8()?;
            let timestamp_delta = r.varlong()?;
            let offset_delta = r.varint()?;
            let key = r.nullable()?;
            let value = r.nullable()?;
            let header_count = r.varint()?;
            if header_count < 0 {
                return Err(RecordError::Malformed("negative header count"));
            }
            let mut headers = Vec::with_capacity(header_count as usize);
            for _ in 0..header_count {
                let key = r
                    .nullable()?
                    .ok_or(RecordError::Malformed("null header key"))?;
                let key = String::from_utf8(key.to_vec())
                    .map_err(|_| RecordError::Malformed("header key is not UTF-8"))?;
                headers.push(Header {
                    key,
                    value: r.nullable()?,
                });
            }
            if r.pos != rec_end {
                return Err(RecordError::Malformed("record length does not match"));
            }
            records.push(Record {
                attributes,
                timestamp_delta,
                offset_delta,
                key,
                value,
                headers,
            });
        }
        if r.pos != end {
            return Err(RecordError::Malformed(
                "batch length does not match records",
            ));
        }
        Ok((
            RecordBatch {
                base_offset: h.base_offset,
                partition_leader_epoch: h.partition_leader_epoch,
                attributes: h.attributes,
                last_offset_delta: h.last_offset_delta,
                base_timestamp: h.base_timestamp,
                max_timestamp: h.max_timestamp,
                producer_id: h.producer_id,
                producer_epoch: h.producer_epoch,
                base_sequence: h.base_sequence,
                records,
            },
            batch_end,
        ))
    }
}

/// Kafka's `ControlRecordType` for the two transaction markers: the `type` of a
/// control record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ControlRecordType {
    /// 0: the transaction was aborted.
    Abort,
    /// 1: the transaction was committed.
    Commit,
}

impl ControlRecordType {
    /// The type id in the control record key.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }
}

/// `ControlRecordType.CURRENT_CONTROL_RECORD_KEY_VERSION` and
/// `EndTransactionMarker`'s value version.
const CONTROL_RECORD_VERSION: i16 = 0;
/// Size of a control record key: version (i16) and type (i16).
const CONTROL_KEY_SIZE: usize = 4;
/// Size of an end-transaction marker value: version (i16) and coordinator epoch (i32).
const END_TXN_MARKER_VALUE_SIZE: usize = 6;

/// Kafka's `EndTransactionMarker`: the one control record of a control batch that ends
/// a producer's transaction in a partition. Its key holds the control type, its value
/// the epoch of the transaction coordinator that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndTransactionMarker {
    /// COMMIT or ABORT.
    pub control_type: ControlRecordType,
    /// The writing coordinator's epoch (its `__transaction_state` partition's leader
    /// epoch), which fences markers of a replaced coordinator.
    pub coordinator_epoch: i32,
}

impl EndTransactionMarker {
    /// The control record key: version 0, then the type.
    pub fn key(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(CONTROL_KEY_SIZE);
        b.put_i16(CONTROL_RECORD_VERSION);
        b.put_i16(self.control_type.id());
        b.freeze()
    }

    /// The record value: version 0, then the coordinator epoch.
    pub fn value(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(END_TXN_MARKER_VALUE_SIZE);
        b.put_i16(CONTROL_RECORD_VERSION);
        b.put_i32(self.coordinator_epoch);
        b.freeze()
    }

    /// Reads the marker of a control record (Kafka's `ControlRecordType.parse` and
    /// `EndTransactionMarker.deserializeValue`): a negative version is refused, a
    /// higher one is read by its version-0 prefix, as Kafka's readers do.
    pub fn decode(record: &Record) -> Result<EndTransactionMarker, RecordError> {
        let key = record
            .key
            .as_deref()
            .ok_or(RecordError::Malformed("control record without a key"))?;
        let mut r = Reader { buf: key, pos: 0 };
        if r.i16()? < 0 {
            return Err(RecordError::Malformed(
                "negative control record key version",
            ));
        }
        let control_type = match r.i16()? {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            _ => {
                return Err(RecordError::Malformed(
                    "control record is not a transaction marker",
                ))
            }
        };
        let value = record
            .value
            .as_deref()
            .ok_or(RecordError::Malformed("transaction marker without a value"))?;
        let mut r = Reader { buf: value, pos: 0 };
        if r.i16()? < 0 {
            return Err(RecordError::Malformed(
                "negative transaction marker version",
            ));
        }
        Ok(EndTransactionMarker {
            control_type,
            coordinator_epoch: r.i32()?,
        })
    }

    /// Kafka's `MemoryRecords.withEndTransactionMarker`: the control batch holding this
    /// marker for `producer_id` at `producer_epoch`, written at `timestamp`
    /// (CreateTime); transactional and control bits set, no sequence. The leader
    /// assigns its offset and leader epoch.
    pub fn to_batch(&self, producer_id: i64, producer_epoch: i16, timestamp: i64) -> RecordBatch {
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: TRANSACTIONAL_BIT | CONTROL_BIT,
            last_offset_delta: 0,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            producer_id,
            producer_epoch,
            base_sequence: NO_SEQUENCE,
            records: vec![Record {
                attributes: 0,
                timestamp_delta: 0,
                offset_delta: 0,
                key: Some(self.key()),
                value: Some(self.value()),
                headers: vec![],
            }],
        }
    }

    /// The marker of a control batch (its first record); `Ok(None)` for a control
    /// batch without records (Kafka: its transaction was cleaned from the log).
    pub fn of_batch(batch: &RecordBatch) -> Result<Option<EndTransactionMarker>, RecordError> {
        if batch.attributes & CONTROL_BIT == 0 {
            return Err(RecordError::Malformed("not a control batch"));
        }
        batch.records.first().map(Self::decode).transpose()
    }
}

/// Bound on a batch's decompressed size (far above `max.request.size`).
const MAX_INFLATED_SIZE: u64 = 64 << 20;

/// Kafka's `GzipCompression` at its default level (6): one gzip member holding the
/// records.
fn gzip(records: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(records.len() / 2 + 32),
        flate2::Compression::new(6),
    );
    encoder
        .write_all(records)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory cannot fail")
}

/// Inflates a gzip stream of records, refusing more than [`MAX_INFLATED_SIZE`] bytes.
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, RecordError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(compressed.len() * 4);
    flate2::read::MultiGzDecoder::new(compressed)
        .take(MAX_INFLATED_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|_| RecordError::Malformed("gzip stream does not inflate"))?;
    if out.len() as u64 > MAX_INFLATED_SIZE {
        return Err(RecordError::Malformed("batch inflates past 64 MiB"));
    }
    Ok(out)
}

fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_unsigned_varlong(buf, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_unsigned_varlong(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_unsigned_varlong(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_nullable(buf: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => put_varint(buf, -1),
        Some(d) => {
            put_varint(buf, d.len() as i32);
            buf.extend_from_slice(d);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.pos + n > self.buf.len() {
            return Err(RecordError::Truncated {
                needed: self.pos + n,
                had: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn unsigned_varlong(&mut self, max_bytes: u32) -> Result<u64, RecordError> {
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Malformed("varint too long"))
    }
    fn varint(&mut self) -> Result<i32, RecordError> {
        let u = self.unsigned_varlong(5)? as u32;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let u = self.unsigned_varlong(10)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    fn nullable(&mut self) -> Result<Option<Bytes>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(self.take(len as usize)?)))
    }
}

/// CreateTime of a record sent at simulated time `t` is `RECORD_TIMESTAMP_BASE + t`.
pub const RECORD_TIMESTAMP_BASE: i64 = 1_700_000_000_000;

#[cfg(test)]
mod tests;

/// Test support shared by the unit tests that build record batches.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Bytes, Record, RecordBatch};

    /// A batch of one record per (key, value), at offset deltas 0, 1, ...: base offset
    /// 0, no leader epoch, no attributes, timestamps 0, no producer; the callers set
    /// the header fields they need with `..plain_batch(..)`.
    pub(crate) fn plain_batch(records: Vec<(Option<Bytes>, Bytes)>) -> RecordBatch {
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            last_offset_delta: records.len() as i32 - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: records
                .into_iter()
                .enumerate()
                .map(|(i, (key, value))| Record::plain(i, key, value))
                .collect(),
        }
    }
}
