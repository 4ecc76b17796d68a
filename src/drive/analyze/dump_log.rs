//! A [`Snapshot`] from a real cluster's files: what `kafka-dump-log.sh
//! --deep-iteration --print-data-log --files ...` printed for each broker's segments
//! (Kafka's `DumpLogSegments`), the partitions' leaders and ISRs as `kafka-topics.sh
//! --describe` printed them (`TopicCommand`), and optionally each broker's
//! `replication-offset-checkpoint` (its high watermarks, `OffsetCheckpointFile`).
//!
//! Record values must be decimal integers, as kafkasim's workload and Jepsen's write
//! them (`DumpLogSegments` prints a value with its default string decoder). Without a
//! checkpoint a replica's high watermark is taken as the leader's log end: the files
//! are read from a cluster at rest after the test, as `run` takes its snapshot after a
//! quiet period.

use super::InputError;
use crate::history::{
    MarkerSnapshot, PartitionSnapshot, ReplicaSnapshot, Snapshot, TxnBatchSnapshot, Value,
};
use crate::kafka::protocol::{Offset, TopicPartition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bound on the batches read from one dump file.
const MAX_BATCHES: usize = 100_000_000;

/// One broker's replica of one partition as its segments' dumps show it.
#[derive(Debug, Default)]
struct Replica {
    /// Readable records: (offset, value).
    records: Vec<(Offset, Value)>,
    /// The offset after the last batch.
    log_end_offset: Offset,
    markers: Vec<MarkerSnapshot>,
    txn_batches: Vec<TxnBatchSnapshot>,
    corrupt: Vec<(Offset, Offset)>,
}

/// The batch line being read: what its record lines need.
struct Batch {
    base_offset: Offset,
    last_offset: Offset,
    producer_id: i64,
    producer_epoch: i16,
    control: bool,
    valid: bool,
    timestamp: i64,
}

/// Reads one file; `what` names the kind of file for errors.
fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| InputError {
        file: path.to_path_buf(),
        line: None,
        field: "-".into(),
        expected: format!("a readable {what} ({e})"),
    })
}

/// The `key: value` fields of a dump line, in order (a value is one word).
fn fields(line: &str) -> Vec<(&str, &str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0].ends_with(':') && !w[1].ends_with(':'))
        .map(|w| (w[0].trim_end_matches(':'), w[1]))
        .collect()
}

/// A line's parser: looks fields up and names the line on errors.
struct Line<'a> {
    path: &'a Path,
    number: u64,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Line<'a> {
    fn error(&self, field: &str, expected: &str) -> InputError {
        InputError {
            file: self.path.to_path_buf(),
            line: Some(self.number),
            field: field.into(),
            expected: expected.into(),
        }
    }

    fn get(&self, field: &str) -> Result<&'a str, InputError> {
        self.fields
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| *v)
            .ok_or_else(|| self.error(field, "the field, as kafka-dump-log.sh prints it"))
    }

    fn int<T: std::str::FromStr>(&self, field: &str) -> Result<T, InputError> {
        self.get(field)?
            .parse()
            .map_err(|_| self.error(field, "an integer"))
    }

    fn flag(&self, field: &str) -> Result<bool, InputError> {
        match self.get(field)? {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.error(field, "true or false")),
        }
    }
}

/// The partition a segment file belongs to: its directory is `<topic>-<partition>`.
/// Internal topics (`__consumer_offsets`, `__transaction_state`, `__cluster_metadata`,
/// ...) hold no workload records: `None`, as for files that are not segments.
fn partition_of(segment: &str) -> Option<TopicPartition> {
    let path = Path::new(segment.trim());
    if path.extension().is_none_or(|e| e != "log") {
        return None;
    }
    let dir = path.parent()?.file_name()?.to_str()?;
    let (topic, partition) = dir.rsplit_once('-')?;
    let partition = partition.parse().ok()?;
    (!topic.is_empty() && !topic.starts_with("__")).then(|| TopicPartition::new(topic, partition))
}

/// Reads one broker's `kafka-dump-log.sh` output (any number of segment files, of any
/// partitions, in any order). Files that are not a partition's `.log` segment (indexes,
/// producer snapshots, `__cluster_metadata`'s KRaft snapshots) are passed over.
fn read_dump(path: &Path) -> Result<BTreeMap<TopicPartition, Replica>, InputError> {
    let text = read_text(path, "kafka-dump-log.sh output")?;
    let mut replicas: BTreeMap<TopicPartition, Replica> = BTreeMap::new();
    let mut current: Option<TopicPartition> = None;
    let mut batch: Option<Batch> = None;
    let mut batches = 0usize;
    if !text.lines().any(|l| l.starts_with("Dumping ")) {
        return Err(InputError {
            file: path.to_path_buf(),
            line: None,
            field: "Dumping".into(),
            expected: "kafka-dump-log.sh output (`Dumping <segment file>` lines, each \
                       followed by its batches)"
                .into(),
        });
    }
    for (i, raw) in text.lines().enumerate() {
        let number = i as u64 + 1;
        let line = Line {
            path,
            number,
            fields: fields(raw),
        };
        if let Some(file) = raw.strip_prefix("Dumping ") {
            current = partition_of(file);
            if let Some(tp) = &current {
                replicas.entry(tp.clone()).or_default();
            }
            batch = None;
            continue;
        }
        let Some(tp) = &current else { continue };
        let replica = replicas.get_mut(tp).expect("entered at its Dumping line");
        if raw.starts_with("baseOffset: ") {
            batches += 1;
            if batches > MAX_BATCHES {
                return Err(line.error("-", &format!("at most {MAX_BATCHES} batches")));
            }
            let b = Batch {
                base_offset: line.int("baseOffset")?,
                last_offset: line.int("lastOffset")?,
                producer_id: line.int("producerId")?,
                producer_epoch: line.int("producerEpoch")?,
                control: line.flag("isControl")?,
                valid: line.flag("isvalid")?,
                timestamp: ["CreateTime", "LogAppendTime", "NoTimestampType"]
                    .iter()
                    .find_map(|k| line.int(k).ok())
                    .ok_or_else(|| line.error("CreateTime", "the batch's timestamp"))?,
            };
            if b.last_offset < b.base_offset || b.base_offset < replica.log_end_offset {
                let expected = format!(
                    "a batch after offset {} of {tp} whose lastOffset is at least its \
                     baseOffset (dump each partition's segments in order)",
                    replica.log_end_offset - 1
                );
                return Err(line.error("baseOffset", &expected));
            }
            replica.log_end_offset = b.last_offset + 1;
            if !b.valid {
                replica.corrupt.push((b.base_offset, b.last_offset));
            } else if line.flag("isTransactional")? && !b.control {
                replica.txn_batches.push(TxnBatchSnapshot {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    producer_id: b.producer_id,
                    producer_epoch: b.producer_epoch,
                });
            }
            batch = Some(b);
            continue;
        }
        if let Some(base) = raw.strip_prefix("Log starting offset: ") {
            // The segment's base offset: an empty active segment still says where the
            // log ends.
            let base: Offset = base
                .trim()
                .parse()
                .map_err(|_| line.error("Log starting offset", "an integer"))?;
            replica.log_end_offset = replica.log_end_offset.max(base);
            continue;
        }
        let Some(record) = raw.strip_prefix('|') else {
            continue; // "Found N invalid bytes at the end of ...", index entries
        };
        let b = batch
            .as_ref()
            .ok_or_else(|| line.error("offset", "a record line after its batch line"))?;
        let offset: Offset = line.int("offset")?;
        if !(b.base_offset..=b.last_offset).contains(&offset) {
            let expected = format!(
                "an offset of its batch, {}..={}",
                b.base_offset, b.last_offset
            );
            return Err(line.error("offset", &expected));
        }
        if !b.valid {
            continue; // present but unreadable: the batch is in `corrupt`
        }
        if b.control {
            if let Ok(kind) = line.get("endTxnMarker") {
                let committed = match kind {
                    "COMMIT" => true,
                    "ABORT" => false,
                    _ => return Err(line.error("endTxnMarker", "COMMIT or ABORT")),
                };
                replica.markers.push(MarkerSnapshot {
                    offset,
                    producer_id: b.producer_id,
                    producer_epoch: b.producer_epoch,
                    committed,
                    timestamp: b.timestamp,
                });
            }
            continue;
        }
        let payload = record
            .split_once(" payload: ")
            .map(|(_, p)| p.trim())
            .ok_or_else(|| {
                line.error("payload", "the record's value (run with --print-data-log)")
            })?;
        let value: Value = payload.parse().map_err(|_| {
            line.error(
                "payload",
                "a decimal integer value (as kafkasim's and Jepsen's workloads write them)",
            )
        })?;
        replica.records.push((offset, value));
    }
    Ok(replicas)
}

/// A described partition: its leader (`None`: `none`), replicas and ISR.
type Described = (TopicPartition, Option<u32>, Vec<u32>, Vec<u32>);

/// Reads `kafka-topics.sh --describe` output: each partition's leader (`none`: no
/// leader), replicas and ISR.
fn read_describe(path: &Path) -> Result<Vec<Described>, InputError> {
    let text = read_text(path, "kafka-topics.sh --describe output")?;
    let mut partitions = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        // Partition lines are tab-separated `Key: value` pairs; lists may be empty.
        let pairs: Vec<(&str, &str)> = raw
            .split('\t')
            .filter_map(|f| f.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let (Some(topic), Some(partition)) = (get("Topic"), get("Partition")) else {
            continue;
        };
        let error = |field: &str, expected: &str| InputError {
            file: path.to_path_buf(),
            line: Some(i as u64 + 1),
            field: field.into(),
            expected: expected.into(),
        };
        let ids = |field: &str| -> Result<Vec<u32>, InputError> {
            let v = get(field)
                .ok_or_else(|| error(field, "the field, as kafka-topics.sh prints it"))?;
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .map_err(|_| error(field, "broker ids separated by commas"))
                })
                .collect()
        };
        let leader = match get("Leader") {
            Some("none") => None,
            Some(l) => Some(
                l.parse()
                    .map_err(|_| error("Leader", "a broker id or none"))?,
            ),
            None => return Err(error("Leader", "the field, as kafka-topics.sh prints it")),
        };
        let partition = partition
            .parse()
            .map_err(|_| error("Partition", "a partition number"))?;
        partitions.push((
            TopicPartition::new(topic, partition),
            leader,
            ids("Replicas")?,
            ids("Isr")?,
        ));
    }
    Ok(partitions)
}

/// Reads a `replication-offset-checkpoint` (Kafka's `OffsetCheckpointFile`: version 0,
/// the entry count, then `topic partition offset` lines).
fn read_checkpoint(path: &Path) -> Result<BTreeMap<TopicPartition, Offset>, InputError> {
    let text = read_text(path, "replication-offset-checkpoint")?;
    let error = |line: usize, field: &str, expected: &str| InputError {
        file: path.to_path_buf(),
        line: Some(line as u64),
        field: field.into(),
        expected: expected.into(),
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(error(1, "version", "0"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| error(2, "count", "the number of entries"))?;
    let mut offsets = BTreeMap::new();
    for (i, l) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let words: Vec<&str> = l.split_whitespace().collect();
        let [topic, partition, offset] = words[..] else {
            return Err(error(i + 3, "-", "topic partition offset"));
        };
        let partition = partition
            .parse()
            .map_err(|_| error(i + 3, "partition", "a number"))?;
        let offset = offset
            .parse()
            .map_err(|_| error(i + 3, "offset", "an integer"))?;
        offsets.insert(TopicPartition::new(topic, partition), offset);
    }
    if offsets.len() != count {
        return Err(error(
            2,
            "count",
            &format!("{} (the entries that follow)", offsets.len()),
        ));
    }
    Ok(offsets)
}

/// The last stable offset of a log: the first offset of a transaction no marker ends
/// yet (Kafka's first unstable offset), else the high watermark.
fn last_stable_offset(r: &Replica, high_watermark: Offset) -> Offset {
    let mut open: BTreeMap<i64, Offset> = BTreeMap::new();
    let mut markers = r.markers.iter().peekable();
    for b in &r.txn_batches {
        while let Some(m) = markers.next_if(|m| m.offset < b.base_offset) {
            open.remove(&m.producer_id);
        }
        open.entry(b.producer_id).or_insert(b.base_offset);
    }
    for m in markers {
        open.remove(&m.producer_id);
    }
    open.values()
        .copied()
        .min()
        .unwrap_or(high_watermark)
        .min(high_watermark)
}

/// The inputs of [`snapshot`]: where each file is.
pub struct DumpFiles {
    /// `kafka-topics.sh --describe` output.
    pub describe: PathBuf,
    /// Per broker, its `kafka-dump-log.sh` output.
    pub dumps: Vec<(u32, PathBuf)>,
    /// Per broker, its `replication-offset-checkpoint` (optional).
    pub checkpoints: Vec<(u32, PathBuf)>,
}

/// Builds the snapshot of every described partition from the dumps of its replicas.
pub fn snapshot(files: &DumpFiles) -> Result<Snapshot, InputError> {
    let described = read_describe(&files.describe)?;
    if described.is_empty() {
        return Err(InputError {
            file: files.describe.clone(),
            line: None,
            field: "Partition".into(),
            expected: "partition lines as kafka-topics.sh --describe prints them".into(),
        });
    }
    let mut dumps: BTreeMap<u32, BTreeMap<TopicPartition, Replica>> = BTreeMap::new();
    for (broker, path) in &files.dumps {
        dumps.insert(*broker, read_dump(path)?);
    }
    let mut checkpoints: BTreeMap<u32, BTreeMap<TopicPartition, Offset>> = BTreeMap::new();
    for (broker, path) in &files.checkpoints {
        checkpoints.insert(*broker, read_checkpoint(path)?);
    }
    let mut snapshot = Snapshot::default();
    for (tp, leader, replicas, isr) in described {
        let mut held: Vec<(u32, Replica)> = replicas
            .iter()
            .filter_map(|b| Some((*b, dumps.get_mut(b)?.remove(&tp)?)))
            .collect();
        if held.is_empty() {
            continue; // no replica of it was dumped: nothing to judge
        }
        let leader_end = leader
            .and_then(|l| held.iter().find(|(b, _)| *b == l))
            .map(|(_, r)| r.log_end_offset);
        let replicas = held
            .drain(..)
            .map(|(broker, r)| {
                let high_watermark = checkpoints
                    .get(&broker)
                    .and_then(|c| c.get(&tp))
                    .copied()
                    .unwrap_or(leader_end.unwrap_or(r.log_end_offset).min(r.log_end_offset));
                ReplicaSnapshot {
                    broker,
                    log_end_offset: r.log_end_offset,
                    high_watermark,
                    last_stable_offset: last_stable_offset(&r, high_watermark),
                    records: r.records,
                    markers: r.markers,
                    txn_batches: r.txn_batches,
                    corrupt: r.corrupt,
                }
            })
            .collect();
        snapshot.partitions.push(PartitionSnapshot {
            partition: tp,
            leader,
            isr,
            replicas,
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests;
