//! The checker: a pure function from a run's [`History`] and end-of-run [`Snapshot`] to
//! the anomalies found, in the manner of Jepsen's Kafka checker.
//!
//! One pass over the history gathers every send, every read and every high watermark a
//! consumer saw, and detects on the way what depends only on the past (duplicates,
//! inconsistent offsets, non-monotonic polls, high watermark regressions, keys sent to
//! two partitions). Checks that need the whole history (lost and unseen writes,
//! phantom reads, reorders, skips) run on the gathered data afterwards, and the
//! white-box checks (stuck consumers, diverging replicas) read the snapshot.
//!
//! An *observation* of a value is either a read (a record in a poll) or an
//! acknowledgement (an `Ok` send with an offset): both say "this value is at this
//! offset of this partition". Indefinite sends (`Outcome::Info`) are never treated as
//! failed: they may or may not be in the log. Records of aborted or never-ended
//! transactions ([`TxnView`]) are no observations of their values, and the
//! transactional checks live in [`txn`], which adds to the same tallies.
//!
//! Everything is ordered (`BTreeMap`, `Vec`), so the same inputs always give the same
//! result, examples included: each kind keeps the first three examples in history order.
//! The cost is O(n log n) in the number of entries and records.

pub mod txn;

use crate::history::input_of;
use crate::history::{
    Entry, Headers, History, Op, Outcome, PartitionSnapshot, RebalanceCause, Sink, Snapshot, Value,
};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{NodeId, Offset, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use txn::view::TxnView;

pub mod tally;
use tally::*;

mod clocks;
mod groups;
use groups::*;

pub mod kinds;
use kinds::*;

/// What the checker found in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Anomalies by kind; only kinds seen at least once appear.
    pub anomalies: BTreeMap<String, AnomalyReport>,
    /// Counts of operations, independent of anomalies.
    pub stats: CheckStats,
}

/// All occurrences of one anomaly kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// How many times it occurred (the unit is given by [`describe`]).
    pub count: u64,
    /// At most three occurrences in plain English, the first ones in history order.
    pub examples: Vec<String>,
    /// The history lines (entry indices) each example involves, in the order of
    /// `examples`; empty for findings from the end-of-run snapshot.
    #[serde(default)]
    pub lines: Vec<Vec<u64>>,
}

/// Counts of the operations in a history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckStats {
    /// `Send` entries.
    pub sends: u64,
    /// Sends with `Outcome::Ok` (acknowledged, or sent with `acks=0`).
    pub acked: u64,
    /// Sends with `Outcome::Fail` (definitely not written).
    pub failed: u64,
    /// Sends with `Outcome::Info` (may or may not have been written).
    pub indefinite: u64,
    /// `Poll` entries.
    pub polls: u64,
    /// Records in all polls.
    pub records_read: u64,
    /// Faults injected (`FaultStart` entries).
    pub faults: u64,
    /// Rebalances (new generations after a group's first) by what triggered them
    /// (`session-expired`, `member-left`, ...; `unknown` when no trigger was recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rebalances_by_cause: BTreeMap<String, u64>,
}

/// Checks a history and the end-of-run snapshot for every kind in [`ANOMALY_KINDS`].
pub fn check(history: &History, snapshot: &Snapshot) -> CheckResult {
    check_with(history, snapshot, false)
}

/// [`check`] on two OS threads: the pass over the history and the transactional
/// checks run side by side (the same result). Only outside the simulation: madsim
/// forbids spawning threads, so `run` and `check` use [`check`]; `analyze` uses this.
pub fn check_on_two_threads(history: &History, snapshot: &Snapshot) -> CheckResult {
    check_with(history, snapshot, true)
}

fn check_with(history: &History, snapshot: &Snapshot, parallel: bool) -> CheckResult {
    let view = TxnView::new(history, snapshot);
    let values_and_groups = || {
        let mut collector = Collector {
            view: Some(&view),
            resent: resent_values(history),
            ..Collector::default()
        };
        for entry in &history.entries {
            collector.entry(entry);
        }
        collector.check_writes(snapshot);
        collector.check_reads();
        collector.check_headers();
        collector.check_reorders();
        collector.check_skips();
        let Collector {
            mut stats,
            mut tallies,
            ..
        } = collector;
        check_snapshot(snapshot, &mut tallies);
        check_truncation(history, snapshot, &mut tallies);
        check_groups(history, snapshot, &view, &mut tallies, &mut stats);
        (stats, tallies)
    };
    let transactions = || {
        let mut tallies = Tallies::default();
        txn::check(history, snapshot, &view, &mut tallies);
        clocks::check(history, snapshot, &mut tallies);
        tallies
    };
    let ((stats, mut tallies), later) = if parallel {
        std::thread::scope(|s| {
            let other = s.spawn(transactions);
            let first = values_and_groups();
            let later = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (first, later)
        })
    } else {
        (values_and_groups(), transactions())
    };
    // The same tallies as one thread adding in this order.
    tallies.merge(later);

    CheckResult {
        anomalies: tallies.into_reports(),
        stats,
    }
}

// ---------------------------------------------------------------- history pass

/// Who observed a value at an offset, and when.
#[derive(Clone, Copy)]
struct Seen {
    index: u64,
    /// Position of the record in its poll (0 for an acknowledgement).
    record: u64,
    process: NodeId,
    at_ms: Millis,
    /// An acknowledgement (true) or a read (false).
    ack: bool,
}

impl Seen {
    /// Where the observation sits in the history.
    fn order(&self) -> Order {
        (self.index, self.record)
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.ack {
            "acknowledged to"
        } else {
            "read by"
        };
        write!(f, "{how} {} at {} s", self.process, Secs(self.at_ms))
    }
}

/// A `Send` entry.
struct SendRec<'h> {
    index: u64,
    process: NodeId,
    /// When `send` was called (the send order of one process).
    invoke_ms: Millis,
    at_ms: Millis,
    key: Option<&'h str>,
    value: Value,
    partition: &'h TopicPartition,
    outcome: &'h Outcome,
    /// The acknowledged offset (`Ok` sends only), also when it is no promise.
    acked_offset: Option<Offset>,
    /// The headers it was sent with.
    headers: &'h Headers,
    /// Whether the acknowledgement promises the record to readers: not when its
    /// transaction aborted (or never committed) and its client was never told it
    /// committed.
    promised: bool,
}

/// Everything known about one value.
#[derive(Default)]
struct ValueObs<'h> {
    /// Index into `Collector::sends` of the value's send.
    send: Option<usize>,
    /// Each distinct (partition, offset) it was observed at, with the first observation.
    positions: Vec<(&'h TopicPartition, Offset, Seen)>,
    /// Already counted as a duplicate.
    duplicate: bool,
    /// Already counted as a restart duplicate (a later copy can still make it a
    /// duplicate).
    restart_duplicate: bool,
    /// The first read of it in each partition it was read from, in history order.
    first_reads: Vec<(&'h TopicPartition, Offset, Seen)>,
}

/// The first value observed at one (partition, offset).
struct AtOffset {
    value: Value,
    seen: Seen,
    /// Already counted as inconsistent.
    inconsistent: bool,
}

/// The first send of one key.
struct KeyFirst<'h> {
    partition: &'h TopicPartition,
    value: Value,
    at_ms: Millis,
    /// Already counted as sent to two partitions.
    flagged: bool,
}

/// Where one consumer stands on one partition: just after reading an offset, or just
/// after a seek (or offset reset) to a position, the offset it must read next.
#[derive(Clone, Copy)]
enum Position {
    /// It read this offset (at this time).
    Read(Offset, Millis),
    /// It moved its position to this offset (at this time), not by consuming.
    Sought(Offset, Millis),
}

impl Position {
    /// The offset the next read should return.
    fn next(self) -> Offset {
        match self {
            Position::Read(o, _) => o.saturating_add(1),
            Position::Sought(o, _) => o,
        }
    }
}

/// A read of one consumer on one partition that jumped past offsets it should have
/// read next (after its previous read, or after its last seek).
struct Gap<'h> {
    /// The read past the gap.
    seen: Seen,
    partition: &'h TopicPartition,
    /// Where the consumer stood before it.
    from: Position,
    to: Offset,
}

/// The last high watermark one consumer saw for one partition: (hw, broker, time).
type LastHw = (Offset, NodeId, Millis);

/// State gathered over the history.
#[derive(Default)]
struct Collector<'h> {
    /// Which transactional records are visible (aborted or open ones are no
    /// observations of their values).
    view: Option<&'h TxnView>,
    stats: CheckStats,
    tallies: Tallies,
    sends: Vec<SendRec<'h>>,
    values: BTreeMap<Value, ValueObs<'h>>,
    at: BTreeMap<(&'h TopicPartition, Offset), AtOffset>,
    max_read: BTreeMap<&'h TopicPartition, Offset>,
    /// The highest log start offset any replica of each partition reached: what lies
    /// below it retention removed on purpose.
    log_start: BTreeMap<&'h TopicPartition, Offset>,
    /// First send of each (topic, key): the partitioner maps a key within a topic.
    keys: BTreeMap<(&'h str, &'h str), KeyFirst<'h>>,
    /// Each consumer's position per partition: its last read, or its last seek.
    last_read: BTreeMap<(NodeId, &'h TopicPartition), Position>,
    gaps: Vec<Gap<'h>>,
    last_hw: BTreeMap<(NodeId, &'h TopicPartition), LastHw>,
    /// Every record read, with its headers, for `header-mismatch`.
    header_reads: Vec<(Value, &'h Headers, Seen, &'h TopicPartition, Offset)>,
    /// Values a producer application sent more than once (again after a crash, from
    /// a new producer session), with how many times.
    resent: BTreeMap<Value, u64>,
}

/// Workload values sent more than once: a restarted producer application sends again
/// what its dead process had not seen acknowledged.
fn resent_values(history: &History) -> BTreeMap<Value, u64> {
    let mut sends: BTreeMap<Value, u64> = BTreeMap::new();
    for e in &history.entries {
        if let (Op::Send { value, .. }, NodeId::Producer(_)) = (&e.op, e.process) {
            *sends.entry(*value).or_default() += 1;
        }
    }
    sends.retain(|_, n| *n > 1);
    sends
}

impl<'h> Collector<'h> {
    /// Takes in one history entry.
    fn entry(&mut self, entry: &'h Entry) {
        let at_ms = entry_ms(entry);
        match &entry.op {
            Op::Send {
                key,
                value,
                partition,
                offset,
                headers,
                ..
            } => self.send(entry, key.as_deref(), *value, partition, *offset, headers),
            Op::Poll {
                partition,
                records,
                high_watermark,
                ..
            } => {
                self.stats.polls += 1;
                self.stats.records_read += records.len() as u64;
                for (i, record) in records.iter().enumerate() {
                    let seen = Seen {
                        index: entry.index,
                        record: i as u64,
                        process: entry.process,
                        at_ms,
                        ack: false,
                    };
                    // Kafka's leader reads for a consumer up to the high watermark
                    // (`FetchIsolation.HIGH_WATERMARK`, or `TXN_COMMITTED`: the last
                    // stable offset, never above it; `Partition.fetchRecords` /
                    // `UnifiedLog.read` with `maxOffsetMetadata`), and the response
                    // carries that high watermark: a record at or above it was served
                    // before it was on every in-sync replica.
                    if *high_watermark >= 0 && record.offset >= *high_watermark {
                        self.tallies
                            .add("read-above-high-watermark", seen.order(), || {
                                format!(
                                    "{} read offset {} of {partition} (value {}) from a fetch \
                                     response whose high watermark is {high_watermark}",
                                    entry.process, record.offset, record.value
                                )
                            });
                    }
                    let visible = self
                        .view
                        .is_none_or(|v| v.visible(partition, record.offset, record.value));
                    let read = (
                        record.value,
                        &record.headers,
                        seen,
                        partition,
                        record.offset,
                    );
                    self.header_reads.push(read);
                    self.read(seen, partition, record.offset, record.value, visible);
                }
            }
            Op::LogStartOffsetIncremented {
                partition,
                log_start_offset,
                ..
            } => {
                let start = self.log_start.entry(partition).or_insert(*log_start_offset);
                *start = (*start).max(*log_start_offset);
            }
            // The seek sets the position (`KafkaConsumer.seek` /
            // `SubscriptionState.seekUnvalidated`): the next read must be at `offset`.
            Op::Seek {
                partition, offset, ..
            } => {
                let sought = Position::Sought(*offset, at_ms);
                self.last_read.insert((entry.process, partition), sought);
            }
            Op::ObserveHighWatermark {
                partition,
                high_watermark,
                broker,
                ..
            } => {
                let now = (*high_watermark, *broker, at_ms);
                let prev = self.last_hw.insert((entry.process, partition), now);
                if let Some((prev_hw, prev_broker, prev_ms)) = prev {
                    if *high_watermark < prev_hw {
                        let process = entry.process;
                        self.tallies
                            .add("high-watermark-regression", (entry.index, 0), || {
                                format!(
                                    "{process} saw the high watermark of {partition} drop \
                                     from {prev_hw} ({prev_broker} at {} s) to \
                                     {high_watermark} ({broker} at {} s)",
                                    Secs(prev_ms),
                                    Secs(at_ms)
                                )
                            });
                    }
                }
            }
            Op::FaultStart { .. } => self.stats.faults += 1,
            Op::FaultEnd { .. }
            | Op::LogPowerLoss { .. }
            | Op::LogCorrupted { .. }
            | Op::LogDirFailure { .. }
            | Op::LogRecovered { .. }
            | Op::PartitionChange { .. }
            | Op::PrepareRebalance { .. }
            | Op::FetchCommitted { .. }
            | Op::BeginTxn { .. }
            | Op::EndTxn { .. }
            | Op::TxnState { .. }
            | Op::TxnLoadedUnreplicated { .. }
            | Op::OffsetsForTimes { .. }
            | Op::ProducerMetrics(_)
            | Op::Processed { .. }
            | Op::Assigned { .. }
            | Op::Committed { .. }
            | Op::MemberEvent { .. } => {}
        }
    }

    /// Takes in a `Send` entry.
    /// Counts the client events of a send that did not succeed, by the timeout the
    /// producer recorded (Kafka throws a `TimeoutException` for each, so the message
    /// alone cannot tell a blocked `send()` from an expired batch).
    fn client_event(&mut self, entry: &Entry, value: Value, why: &str) {
        let Op::Send {
            attempts, timeout, ..
        } = entry.op
        else {
            return;
        };
        let at = Secs(entry.invoke_ms);
        let end = Secs(entry_ms(entry));
        match timeout {
            // `KafkaProducer.waitOnMetadata` / `BufferPool.allocate`: send() itself
            // blocked for max.block.ms.
            Some(t) if t.blocked() => {
                self.tallies.add("send-timeout", (entry.index, 0), || {
                    format!(
                        "{}'s send of value {value} at {at} s blocked and failed at {end} s: {why}",
                        entry.process
                    )
                });
            }
            // `RecordAccumulator.expiredBatches` / `Sender.getExpiredInflightBatches`:
            // the batch ran out of delivery.timeout.ms after send() had returned.
            Some(_) if attempts >= 2 => {
                self.tallies
                    .add("expired-after-retries", (entry.index, 0), || {
                        format!(
                            "{}'s value {value}, sent at {at} s, expired at {end} s after \
                             {attempts} attempts: {why}",
                            entry.process
                        )
                    });
            }
            Some(_) if attempts == 0 => {
                self.tallies.add("expired-unsent", (entry.index, 0), || {
                    format!(
                        "{}'s value {value}, handed to send() at {at} s, expired in the \
                         accumulator at {end} s without being sent: {why}",
                        entry.process
                    )
                });
            }
            _ => {}
        }
    }

    fn send(
        &mut self,
        entry: &'h Entry,
        key: Option<&'h str>,
        value: Value,
        partition: &'h TopicPartition,
        offset: Option<Offset>,
        headers: &'h Headers,
    ) {
        let at_ms = entry_ms(entry);
        self.stats.sends += 1;
        // An aborted transaction's acknowledged record is no promise (Kafka's
        // `read_committed` readers never return it, `ControlRecordType.ABORT`), but its
        // offset was still assigned: it stays known, only not as an observation.
        let promised = self
            .view
            .is_none_or(|v| v.send_visible(entry) != Some(false));
        let acked_offset = match &entry.outcome {
            Outcome::Ok => {
                self.stats.acked += 1;
                offset
            }
            Outcome::Fail { error } => {
                self.stats.failed += 1;
                self.client_event(entry, value, error);
                None
            }
            Outcome::Info { reason } => {
                self.stats.indefinite += 1;
                self.client_event(entry, value, reason);
                None
            }
        };
        if let Some(o) = acked_offset.filter(|_| promised) {
            let seen = Seen {
                index: entry.index,
                record: 0,
                process: entry.process,
                at_ms,
                ack: true,
            };
            self.observe(seen, partition, o, value);
        }
        // A send that failed before the partitioner ran has no partition to compare.
        let partitioned = partition.partition != crate::history::UNKNOWN_PARTITION;
        if let Some(k) = key.filter(|_| partitioned) {
            match self.keys.entry((&*partition.topic, k)) {
                MapEntry::Vacant(slot) => {
                    slot.insert(KeyFirst {
                        partition,
                        value,
                        at_ms,
                        flagged: false,
                    });
                }
                MapEntry::Occupied(mut slot) => {
                    let first = slot.get_mut();
                    if first.partition != partition && !first.flagged {
                        first.flagged = true;
                        let (p1, v1, t1) = (first.partition, first.value, first.at_ms);
                        self.tallies.add("wrong-partition", (entry.index, 0), || {
                            format!(
                                "key {k} was sent to {p1} (value {v1} at {} s) and to \
                                 {partition} (value {value} at {} s)",
                                Secs(t1),
                                Secs(at_ms)
                            )
                        });
                    }
                }
            }
        }
        let idx = self.sends.len();
        self.sends.push(SendRec {
            index: entry.index,
            process: entry.process,
            invoke_ms: entry.invoke_ms,
            at_ms,
            key,
            value,
            partition,
            outcome: &entry.outcome,
            acked_offset,
            headers,
            promised,
        });
        // A value sent more than once (a pipeline's output, processed again after an
        // abort) keeps its first send, unless that one failed and this one did not.
        let obs = self.values.entry(value).or_default();
        let failed = |i: usize| matches!(self.sends[i].outcome, Outcome::Fail { .. });
        match obs.send {
            Some(first) if !failed(first) || failed(idx) => {}
            _ => obs.send = Some(idx),
        }
    }

    /// Takes in one record of a poll. A record that is not `visible` (its transaction
    /// aborted or never ended) is no observation of its value, but still a read.
    fn read(
        &mut self,
        seen: Seen,
        partition: &'h TopicPartition,
        offset: Offset,
        value: Value,
        visible: bool,
    ) {
        if visible {
            self.observe(seen, partition, offset, value);
            let obs = self.values.entry(value).or_default();
            if !obs.first_reads.iter().any(|(p, _, _)| *p == partition) {
                push_tight(&mut obs.first_reads, (partition, offset, seen));
            }
        }
        let max = self.max_read.entry(partition).or_insert(offset);
        *max = (*max).max(offset);

        let process = seen.process;
        let prev = self
            .last_read
            .insert((process, partition), Position::Read(offset, seen.at_ms));
        let Some(prev) = prev else { return };
        if offset < prev.next() {
            self.tallies.add("nonmonotonic-poll", seen.order(), || {
                let at = Secs(seen.at_ms);
                match prev {
                    Position::Read(prev, prev_ms) => format!(
                        "{process} read offset {offset} of {partition} at {at} s right \
                         after offset {prev} (read at {} s), with no seek in between",
                        Secs(prev_ms)
                    ),
                    Position::Sought(pos, ms) => format!(
                        "{process} read offset {offset} of {partition} at {at} s right \
                         after seeking to offset {pos} (at {} s)",
                        Secs(ms)
                    ),
                }
            });
        } else if offset > prev.next() {
            self.gaps.push(Gap {
                seen,
                partition,
                from: prev,
                to: offset,
            });
        }
    }

    /// Records that `value` was observed at `offset` of `partition`, and counts the
    /// duplicates and inconsistent offsets this reveals.
    fn observe(&mut self, seen: Seen, partition: &'h TopicPartition, offset: Offset, value: Value) {
        let order = seen.order();
        let at = self.at.entry((partition, offset)).or_insert(AtOffset {
            value,
            seen,
            inconsistent: false,
        });
        if at.value != value && !at.inconsistent {
            at.inconsistent = true;
            let (first_value, first_seen) = (at.value, at.seen);
            self.tallies
                .add_lines("inconsistent-offsets", order, &[first_seen.index], || {
                    format!(
                        "offset {offset} of {partition} held value {first_value} ({first_seen}) \
                         and value {value} ({seen})"
                    )
                });
        }

        let obs = self.values.entry(value).or_default();
        if obs
            .positions
            .iter()
            .any(|(p, o, _)| *p == partition && *o == offset)
        {
            return;
        }
        // A pipeline's output twice is `output-duplicate` (`txn_checker`).
        if !obs.duplicate && input_of(value).is_none() {
            if let Some(&(_, first_offset, first_seen)) =
                obs.positions.iter().find(|(p, _, _)| *p == partition)
            {
                // A value sent again after a crash may be there once per send: one
                // copy per producer session. More copies than sends means one session
                // wrote it twice.
                let copies = 1 + obs
                    .positions
                    .iter()
                    .filter(|(p, _, _)| *p == partition)
                    .count() as u64;
                let kind = match self.resent.get(&value) {
                    Some(&sends) if copies <= sends => "restart-duplicate",
                    _ => "duplicate",
                };
                let counted = if kind == "duplicate" {
                    &mut obs.duplicate
                } else {
                    &mut obs.restart_duplicate
                };
                if *counted {
                    push_tight(&mut obs.positions, (partition, offset, seen));
                    return;
                }
                *counted = true;
                self.tallies
                    .add_lines(kind, order, &[first_seen.index], || {
                        let resent = if kind == "duplicate" {
                            ""
                        } else {
                            ", each copy from its own producer session"
                        };
                        format!(
                            "value {value} was observed at offset {first_offset} of {partition} \
                             ({first_seen}) and at offset {offset} ({seen}){resent}"
                        )
                    });
            }
        }
        push_tight(&mut obs.positions, (partition, offset, seen));
    }

    // ------------------------------------------------------------ whole-history checks

    /// `lost-write` and `unseen`: acknowledged writes never read. One that no consumer
    /// read as far as is still lost, not merely unseen, when the final leader's log
    /// (white box) no longer holds it: no later reader can ever see it. A write below
    /// a log start offset that retention or `DeleteRecords` reached
    /// (`Op::LogStartOffsetIncremented`) is neither: Kafka deleted it as asked.
    fn check_writes(&mut self, snapshot: &Snapshot) {
        let mut final_logs: BTreeMap<&TopicPartition, FinalLog> = BTreeMap::new();
        for s in &self.sends {
            let read = self
                .values
                .get(&s.value)
                .is_some_and(|obs| !obs.first_reads.is_empty());
            if !matches!(s.outcome, Outcome::Ok) || !s.promised {
                continue;
            }
            let what = Val(s.value, s.key);
            let (p, t) = (s.partition, Secs(s.at_ms));
            let retained_from = self.log_start.get(p).copied().unwrap_or(0);
            if s.acked_offset.is_some_and(|o| o < retained_from) {
                continue;
            }
            if read {
                // Read once, then gone from the log (every replica lost it): a reader
                // starting from the beginning now would never see it.
                if let (Some(offset), Some(log)) =
                    (s.acked_offset, final_log(&mut final_logs, snapshot, p))
                {
                    if !log.holds(s.value, Some(offset)) {
                        let leader = log.leader;
                        self.tallies.add("lost-write", (s.index, 0), || {
                            format!(
                                "{what} was acknowledged at offset {offset} of {p} at {t} s and \
                                 read, but is not in the final log of its leader broker-{leader}"
                            )
                        });
                    }
                }
                continue;
            }
            let Some(offset) = s.acked_offset else {
                // acks=0: the send succeeded without an offset; lost if it is not where
                // every later reader would find it.
                if let Some(log) = final_log(&mut final_logs, snapshot, p) {
                    if !log.holds(s.value, None) {
                        let leader = log.leader;
                        self.tallies.add("lost-write", (s.index, 0), || {
                            format!(
                                "{what} was sent with acks=0 to {p} at {t} s (success, no \
                                 offset), never read, and is not in the final log of its \
                                 leader broker-{leader}"
                            )
                        });
                    }
                }
                continue;
            };
            let max = self.max_read.get(s.partition).copied();
            if let Some(max) = max.filter(|m| *m >= offset) {
                self.tallies.add("lost-write", (s.index, 0), || {
                    format!(
                        "{what} was acknowledged at offset {offset} of {p} at {t} s and \
                         never read, although consumers read up to offset {max}"
                    )
                });
                continue;
            }
            if let Some(log) = final_log(&mut final_logs, snapshot, p) {
                if !log.holds(s.value, Some(offset)) {
                    let leader = log.leader;
                    self.tallies.add("lost-write", (s.index, 0), || {
                        format!(
                            "{what} was acknowledged at offset {offset} of {p} at {t} s, never \
                             read, and is not in the final log of its leader broker-{leader}"
                        )
                    });
                    continue;
                }
            }
            match max {
                Some(max) => self.tallies.add("unseen", (s.index, 0), || {
                    format!(
                        "{what} was acknowledged at offset {offset} of {p} at {t} s and never \
                         read; consumers read only up to offset {max}"
                    )
                }),
                None => self.tallies.add("unseen", (s.index, 0), || {
                    format!(
                        "{what} was acknowledged at offset {offset} of {p} at {t} s and never \
                         read; no consumer read anything from {p}"
                    )
                }),
            }
        }
    }

    /// `phantom-read` and the read half of `wrong-partition`.
    fn check_reads(&mut self) {
        for (&value, obs) in &self.values {
            let Some(&(partition, offset, seen)) = obs.first_reads.first() else {
                continue;
            };
            let send = obs.send.map(|i| &self.sends[i]);
            let reader = seen.process;
            let read = || {
                format!(
                    "{reader} read value {value} at offset {offset} of {partition} at {} s",
                    Secs(seen.at_ms)
                )
            };
            // A value sent again after a crash: each send, its own partition and outcome.
            let resends: Vec<&SendRec> = if self.resent.contains_key(&value) {
                self.sends.iter().filter(|s| s.value == value).collect()
            } else {
                Vec::new()
            };
            match send {
                None => self.tallies.add("phantom-read", seen.order(), || {
                    format!("{}, but no producer ever sent it", read())
                }),
                Some(_)
                    if resends
                        .iter()
                        .any(|r| !matches!(r.outcome, Outcome::Fail { .. }))
                        && obs.first_reads.iter().all(|(p, _, _)| {
                            resends.iter().any(|r| {
                                r.partition == *p
                                    || r.partition.partition == crate::history::UNKNOWN_PARTITION
                            })
                        }) => {}
                Some(s) => {
                    if let Outcome::Fail { error } = s.outcome {
                        self.tallies
                            .add_lines("phantom-read", seen.order(), &[s.index], || {
                                format!(
                                    "{}, but its send failed with {error} at {} s",
                                    read(),
                                    Secs(s.at_ms)
                                )
                            });
                    }
                    // A send that never chose a partition (it blocked until the process
                    // ended) cannot have sent it elsewhere.
                    let chosen = s.partition.partition != crate::history::UNKNOWN_PARTITION;
                    let elsewhere = obs
                        .first_reads
                        .iter()
                        .find(|(p, _, _)| chosen && *p != s.partition);
                    if let Some(&(p, o, seen)) = elsewhere {
                        let what = Val(value, s.key);
                        self.tallies
                            .add_lines("wrong-partition", seen.order(), &[s.index], || {
                                format!(
                                    "{} read {what} at offset {o} of {p} at {} s, but {} sent it \
                                     to {}",
                                    seen.process,
                                    Secs(seen.at_ms),
                                    s.process,
                                    s.partition
                                )
                            });
                    }
                }
            }
        }
    }

    /// `header-mismatch`: a record read with other headers than its send carried
    /// (record batch v2 carries them verbatim, `DefaultRecord.writeTo` / `readFrom`).
    fn check_headers(&mut self) {
        let mut flagged: BTreeSet<Value> = BTreeSet::new();
        for &(value, headers, seen, partition, offset) in &self.header_reads {
            let Some(s) = self
                .values
                .get(&value)
                .and_then(|o| o.send)
                .map(|i| &self.sends[i])
            else {
                continue;
            };
            if s.headers == headers || flagged.contains(&value) {
                continue;
            }
            flagged.insert(value);
            let (sent, process) = (s.headers, s.process);
            self.tallies
                .add_lines("header-mismatch", seen.order(), &[s.index], || {
                    format!(
                        "{} read value {value} at offset {offset} of {partition} at {} s with \
                         headers {headers:?}, but {process} sent it with headers {sent:?}",
                        seen.process,
                        Secs(seen.at_ms)
                    )
                });
        }
    }

    /// `reorder`: per producer and partition, acknowledged values in send (numeric)
    /// order must land at increasing offsets.
    fn check_reorders(&mut self) {
        // Per (producer, partition): (send order, value, lowest offset, history index of
        // the send). A producer's values grow in send order; a pipeline's outputs do
        // not, so their send time orders them first.
        let mut lanes: BTreeMap<_, Vec<(Millis, Value, Offset, u64)>> = BTreeMap::new();
        for s in &self.sends {
            // A pipeline's outputs follow its input order, not its own send order.
            // A value sent again after a crash is in a new session's order.
            if s.outcome != &Outcome::Ok
                || input_of(s.value).is_some()
                || self.resent.contains_key(&s.value)
            {
                continue;
            }
            let lowest = self.values.get(&s.value).and_then(|obs| {
                obs.positions
                    .iter()
                    .filter(|(p, _, _)| *p == s.partition)
                    .map(|(_, o, _)| *o)
                    .min()
            });
            if let Some(offset) = lowest {
                let order = match s.process {
                    NodeId::Producer(_) => 0,
                    _ => s.invoke_ms,
                };
                lanes
                    .entry((s.process, s.partition))
                    .or_default()
                    .push((order, s.value, offset, s.index));
            }
        }
        for ((process, partition), mut lane) in lanes {
            lane.sort_unstable();
            // The earlier-sent value that landed furthest: (offset, value, send's index).
            let mut furthest: Option<(Offset, Value, u64)> = None;
            for (_, value, offset, index) in lane {
                match furthest {
                    Some((f_offset, f_value, f_index)) if offset < f_offset => {
                        self.tallies
                            .add_lines("reorder", (index, 0), &[f_index], || {
                                format!(
                                    "{process} sent value {f_value} before value {value}, but on \
                                     {partition} value {value} landed at offset {offset}, before \
                                     value {f_value} at offset {f_offset}"
                                )
                            });
                    }
                    Some((f_offset, _, _)) if offset == f_offset => {}
                    _ => furthest = Some((offset, value, index)),
                }
            }
        }
    }

    /// `poll-skip`: gaps between consecutive reads that jump over a known value.
    fn check_skips(&mut self) {
        for g in &self.gaps {
            let known = self
                .at
                .range((g.partition, g.from.next())..(g.partition, g.to))
                .next();
            if let Some((&(_, skipped), at)) = known {
                let (process, p, to) = (g.seen.process, g.partition, g.to);
                let from = match g.from {
                    Position::Read(o, _) => format!("read offset {o}"),
                    Position::Sought(o, ms) => {
                        format!("sought to offset {o} (at {} s)", Secs(ms))
                    }
                };
                self.tallies
                    .add_lines("poll-skip", g.seen.order(), &[at.seen.index], || {
                        format!(
                            "{process} {from} then read offset {to} of {p} (at {} s), \
                             skipping offset {skipped} where value {} is known ({})",
                            Secs(g.seen.at_ms),
                            at.value,
                            at.seen
                        )
                    });
            }
        }
    }
}

// ---------------------------------------------------------------- snapshot checks

/// The final log of `p`'s leader, as far as the lost-write check reads it.
struct FinalLog {
    leader: u32,
    values: BTreeSet<Value>,
    /// Its corrupt batches' offset ranges.
    corrupt: Vec<(Offset, Offset)>,
}

impl FinalLog {
    /// Whether the log may hold `value` (written at `offset`, when known): its records
    /// include it, or a corrupt batch covers the offset (or, without one, exists). A
    /// corrupt batch's records are still on the disk, unreadable: Kafka makes them
    /// unavailable (a stuck follower, a consumer's `CorruptRecordException`), not
    /// lost.
    fn holds(&self, value: Value, offset: Option<Offset>) -> bool {
        self.values.contains(&value)
            || offset.map_or(!self.corrupt.is_empty(), |o| {
                self.corrupt.iter().any(|(a, b)| (*a..=*b).contains(&o))
            })
    }
}

/// The final log of `p`'s leader, cached in `logs`; `None` when the partition has no
/// leader at the end.
fn final_log<'a, 'h>(
    logs: &'a mut BTreeMap<&'h TopicPartition, FinalLog>,
    snapshot: &Snapshot,
    p: &'h TopicPartition,
) -> Option<&'a FinalLog> {
    if !logs.contains_key(p) {
        let leader_log = snapshot
            .partitions
            .iter()
            .find(|ps| ps.partition == *p)
            .and_then(|ps| {
                let leader = ps.leader?;
                let r = ps.replicas.iter().find(|r| r.broker == leader)?;
                Some(FinalLog {
                    leader,
                    values: r.records.iter().map(|(_, v)| *v).collect(),
                    corrupt: r.corrupt.clone(),
                })
            });
        logs.insert(p, leader_log?);
    }
    logs.get(p)
}

/// `stuck` and `replica-divergence`, from the end-of-run snapshot.
fn check_snapshot(snapshot: &Snapshot, tallies: &mut Tallies) {
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        (u64::MAX, seq)
    };
    // Each partition's leader and its high watermark, when the leader's replica is known.
    let mut leader_hw: BTreeMap<&TopicPartition, (u32, Offset)> = BTreeMap::new();
    let mut leaderless: BTreeSet<&TopicPartition> = BTreeSet::new();
    for p in &snapshot.partitions {
        let tp = &p.partition;
        let Some(leader) = p.leader else {
            leaderless.insert(tp);
            tallies.add("stuck", next(), || format!("{tp} has no leader at the end"));
            continue;
        };
        if let Some(r) = p.replicas.iter().find(|r| r.broker == leader) {
            leader_hw.insert(tp, (leader, r.high_watermark));
            check_divergence(p, r.high_watermark, tallies, &mut next);
        }
    }
    for (consumer, tp, position) in &snapshot.consumer_positions {
        if let Some(&(leader, hw)) = leader_hw.get(tp) {
            if *position < hw {
                tallies.add("stuck", next(), || {
                    format!(
                        "consumer-{consumer} ended at position {position} of {tp}, below the \
                         high watermark {hw} of its leader broker-{leader}"
                    )
                });
            }
        }
    }
}

/// A consumer's read of a record the final log does not hold at its offset.
struct DivergedRead {
    offset: Offset,
    value: Value,
    /// What the final log holds there.
    held: Option<Value>,
    index: u64,
    at_ms: Millis,
    /// The partition's count of log-replacing events when it was read.
    log_events: u64,
    /// The broker the consumer last saw answer for the partition, if it recorded one.
    broker: Option<NodeId>,
}

/// `undetected-truncation`: per consumer process and partition, a read that the
/// partition's final log (its leader's at the end) contradicts, then a read that it
/// confirms at a higher offset, with no seek to or below the contradicted offset in
/// between and no new assignment of the partition (which starts the consumer from the
/// group's committed offset, not from its own reads). A consumer that validates its
/// position after a leader change (KIP-320) seeks back to the divergence point before
/// it reads from the new log.
///
/// A log loses only a suffix, so a read of the same log as the contradicted read, at a
/// higher offset, is of a record that went too: when it matches the final log, that is
/// a retried send that landed twice at the same offset, not a read of the new log.
/// Where the history records what replaces a log's suffix (leader changes, power
/// losses, recovery: kafkasim's own histories do), a confirming read counts only once
/// one of them happened to the partition after the contradicted read, or once the
/// consumer saw another broker answer for it. A history without any such record (a
/// black-box harness's) gives no way to tell, and every confirming read counts.
fn check_truncation(history: &History, snapshot: &Snapshot, tallies: &mut Tallies) {
    let final_logs: BTreeMap<
        &TopicPartition,
        (BTreeMap<Offset, Value>, &crate::history::ReplicaSnapshot),
    > = snapshot
        .partitions
        .iter()
        .filter_map(|p| {
            let leader = p.leader?;
            let r = p.replicas.iter().find(|r| r.broker == leader)?;
            Some((&p.partition, (r.records.iter().copied().collect(), r)))
        })
        .collect();
    if final_logs.is_empty() {
        return;
    }
    let records_log_events = history.entries.iter().any(|e| {
        matches!(
            e.op,
            Op::PartitionChange { .. } | Op::LogPowerLoss { .. } | Op::LogRecovered { .. }
        )
    });
    // Per partition: how many events so far may have replaced a suffix of its log, and
    // the last leader epoch the controller recorded.
    let mut log_events: BTreeMap<&TopicPartition, (u64, Option<i32>)> = BTreeMap::new();
    // Per (consumer, partition): the broker it last saw answer.
    let mut serving: BTreeMap<(NodeId, &TopicPartition), NodeId> = BTreeMap::new();
    // Per (consumer, partition): the lowest contradicted read since the last seek to or
    // below it, and whether the pair was already counted.
    let mut lanes: BTreeMap<(NodeId, &TopicPartition), (Option<DivergedRead>, bool)> =
        BTreeMap::new();
    for entry in &history.entries {
        match &entry.op {
            Op::PartitionChange {
                partition,
                leader_epoch,
                ..
            } => {
                let (count, epoch) = log_events.entry(partition).or_default();
                if *epoch != Some(*leader_epoch) {
                    *count += 1;
                    *epoch = Some(*leader_epoch);
                }
            }
            Op::LogPowerLoss {
                partition,
                log_end_offset,
                durable_end_offset,
                ..
            } if durable_end_offset < log_end_offset => {
                log_events.entry(partition).or_default().0 += 1;
            }
            Op::LogRecovered { partition, .. } => {
                log_events.entry(partition).or_default().0 += 1;
            }
            Op::ObserveHighWatermark {
                partition, broker, ..
            } => {
                serving.insert((entry.process, partition), *broker);
            }
            Op::Seek {
                partition, offset, ..
            } => {
                if let Some((diverged, _)) = lanes.get_mut(&(entry.process, partition)) {
                    if diverged.as_ref().is_some_and(|d| *offset <= d.offset) {
                        *diverged = None;
                    }
                }
            }
            Op::Assigned { partitions, .. } => {
                for partition in partitions {
                    if let Some((diverged, _)) = lanes.get_mut(&(entry.process, partition)) {
                        *diverged = None;
                    }
                }
            }
            Op::Poll {
                partition, records, ..
            } => {
                let Some((log, replica)) = final_logs.get(partition) else {
                    continue;
                };
                let events_now = log_events.get(partition).map_or(0, |e| e.0);
                let broker_now = serving.get(&(entry.process, partition)).copied();
                let (diverged, counted) = lanes.entry((entry.process, partition)).or_default();
                for (i, r) in records.iter().enumerate() {
                    if replica.corrupt_at(r.offset) {
                        // Still there, unreadable: neither contradicted nor confirmed.
                        continue;
                    }
                    let held = log.get(&r.offset).copied();
                    if held != Some(r.value) {
                        if diverged.as_ref().is_none_or(|d| r.offset < d.offset) {
                            *diverged = Some(DivergedRead {
                                offset: r.offset,
                                value: r.value,
                                held,
                                index: entry.index,
                                at_ms: entry_ms(entry),
                                log_events: events_now,
                                broker: broker_now,
                            });
                        }
                        continue;
                    }
                    let Some(d) = diverged.as_ref().filter(|d| r.offset > d.offset) else {
                        continue;
                    };
                    let same_log =
                        records_log_events && d.log_events == events_now && d.broker == broker_now;
                    if *counted || same_log {
                        continue;
                    }
                    *counted = true;
                    let process = entry.process;
                    let at = Secs(entry_ms(entry));
                    tallies.add_lines(
                        "undetected-truncation",
                        (entry.index, i as u64),
                        &[d.index],
                        || {
                            let held = match d.held {
                                Some(v) => format!("holds value {v} there"),
                                None => "holds no record there".to_string(),
                            };
                            format!(
                                "{process} read value {} at offset {} of {partition} at {} s (the \
                             final log {held}), then read offset {} at {at} s without seeking \
                             back to offset {} or below",
                                d.value,
                                d.offset,
                                Secs(d.at_ms),
                                r.offset,
                                d.offset
                            )
                        },
                    );
                }
            }
            _ => {}
        }
    }
}

/// `replica-divergence` for one partition: every offset below `hw` where the ISR
/// replicas do not all hold the same value. An offset in a corrupt batch of any of
/// them is passed over: its records are there, unreadable (what Kafka shows is a
/// follower stuck before it, not a divergence).
fn check_divergence(
    p: &PartitionSnapshot,
    hw: Offset,
    tallies: &mut Tallies,
    next: &mut impl FnMut() -> Order,
) {
    let isr: Vec<(u32, BTreeMap<Offset, Value>)> = p
        .isr
        .iter()
        .filter_map(|b| p.replicas.iter().find(|r| r.broker == *b))
        .map(|r| {
            let below: BTreeMap<Offset, Value> =
                r.records.iter().filter(|(o, _)| *o < hw).copied().collect();
            (r.broker, below)
        })
        .collect();
    if isr.len() < 2 {
        return;
    }
    let offsets: BTreeSet<Offset> = isr
        .iter()
        .flat_map(|(_, log)| log.keys().copied())
        .collect();
    let corrupt = |o: Offset| {
        p.replicas
            .iter()
            .any(|r| p.isr.contains(&r.broker) && r.corrupt_at(o))
    };
    for offset in offsets.into_iter().filter(|o| !corrupt(*o)) {
        let held: Vec<(u32, Option<Value>)> = isr
            .iter()
            .map(|(b, log)| (*b, log.get(&offset).copied()))
            .collect();
        if held.iter().all(|(_, v)| *v == held[0].1) {
            continue;
        }
        let tp = &p.partition;
        tallies.add("replica-divergence", next(), || {
            let holdings: Vec<String> = held
                .iter()
                .map(|(b, v)| match v {
                    Some(v) => format!("broker-{b} holds value {v}"),
                    None => format!("broker-{b} holds nothing"),
                })
                .collect();
            format!(
                "in-sync replicas of {tp} disagree at offset {offset}, below the leader's \
                 high watermark {hw}: {}",
                holdings.join(", ")
            )
        });
    }
}

#[cfg(test)]
mod tests;
