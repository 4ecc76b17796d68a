//! The transaction checker: Kafka's transactional guarantees, checked over a run's
//! [`History`] and end-of-run [`Snapshot`] in the manner of Jepsen's Kafka checker.
//!
//! [`TxnView`] is the white-box half. For every transactional record of a partition's
//! final log (its leader's, or the longest replica's when it has no leader) it reads
//! the fate of the record's transaction from the log itself: the first marker of the
//! same producer id after the record's batch says COMMIT or ABORT, and no marker means
//! the transaction is still open. When the log cannot tell (the record is gone, or the
//! snapshot has no batch for it), the client's `EndTxn` does. The main checker asks the
//! view which observations are of records nobody may see (aborted or open), so aborted
//! data is never counted as lost, duplicated or phantom.
//!
//! [`check`] adds the transactional anomalies to the main checker's tallies: aborted
//! and precommitted reads, partial commits, hanging transactions, zombie writes, the
//! pipelines' exactly-once (output missing or duplicated), Jepsen's G0 and G1c over
//! the write-write and write-read dependency graph of committed transactions, and the
//! internal checks of one transaction's reads and sends; and the client events that
//! show how transactions behave (markers taking offsets, consumers held at the last
//! stable offset, aborted transactions).
//!
//! Which polls belong to a transaction: those of the transaction's process since its
//! previous transaction ended (Kafka's read-process-write loop polls before
//! `beginTransaction`) up to its `EndTxn`; a rebalance (`Assigned`) ends the window.
//!
//! Everything is ordered (`BTreeMap`, `Vec`) and O(n log n) in the history and the
//! logs; the cycle search is Tarjan's algorithm, iterative, linear in the graph.

use crate::check::tally::{entry_ms, push_tight, Secs, Tallies};
use crate::history::{input_of, output_value};
use crate::history::{
    Entry, History, MarkerSnapshot, Op, Outcome, ReplicaSnapshot, Snapshot, TxnId, Value,
};
use crate::kafka::protocol::Millis;
use crate::kafka::protocol::{NodeId, Offset, TopicPartition};
use crate::kafka::record::RECORD_TIMESTAMP_BASE;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

pub mod view;
use view::*;

mod cycles;
use cycles::*;

/// Bound on the transactions, sends, records and graph nodes the checker holds (far
/// above any run: histories have about 50,000 entries).
const MAX_ITEMS: usize = 50_000_000;

/// Steps of a dependency cycle spelled out in an example.
const MAX_CYCLE_STEPS: usize = 6;

/// A one-sentence definition of each transactional anomaly kind and client event
/// (`None` for other kinds).
pub fn describe(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "lookup-not-earliest" => {
            "An offsetsForTimes answer was not the earliest offset whose record has a \
             timestamp at or after the target (KIP-79): an earlier record reaches it, or \
             the answered record does not."
        }
        "aborted-read" => {
            "A consumer read a record of a transaction that aborted or never committed \
             (Jepsen's G1a, aborted read: an anomaly with isolation.level=read_committed, \
             allowed with read_uncommitted, which is what read_committed prevents); counted \
             once per record and reader."
        }
        "precommitted-read" => {
            "A read_committed consumer read a transactional record before its transaction \
             committed (before its COMMIT marker was written, or inside the transaction that \
             wrote it); counted once per record and reader."
        }
        "partial-commit" => {
            "A transaction committed in some of the partitions it wrote to but not in others \
             (an ABORT marker, or no marker, after its records there); counted once per \
             transaction."
        }
        "hanging-transaction" => {
            "At the end of the run a transaction is still open in a partition's final log \
             (records of a producer with no marker after them, or a leader whose last stable \
             offset is below its high watermark) although Kafka would have aborted it: it \
             began (or the last fault ended) more than transaction.timeout.ms plus \
             transaction.abort.timed.out.transaction.cleanup.interval.ms before the end; \
             counted once per partition and producer id (once per partition when only the \
             last stable offset shows it)."
        }
        "zombie-write" => {
            "A committed record written by a fenced producer: with an epoch older than a \
             marker of its producer id earlier in the log, or in a transaction whose producer \
             was told it was fenced; counted once per transaction."
        }
        "output-duplicate" => {
            "An input value whose read-process-write output is committed at two or more \
             offsets (exactly-once broken); counted once per input value."
        }
        "output-missing" => {
            "An input value that a pipeline's group processed and committed its offset past, \
             whose output is committed in no partition's final log; counted once per input \
             value."
        }
        "g0" => {
            "A cycle of committed transactions over write-write dependencies only (one wrote \
             before the other in a partition's log; Jepsen's G0, write cycle); counted once \
             per strongly connected component."
        }
        "g1c" => {
            "A cycle of committed transactions over write-write and write-read dependencies \
             with at least one write-read edge (a transaction polled another's record; \
             Jepsen's G1c); counted once per strongly connected component."
        }
        "int-poll-skip" => {
            "Within one transaction, two consecutive reads of a partition jumped over a \
             record that is committed or not transactional; counted once per pair of reads."
        }
        "int-nonmonotonic-poll" => {
            "Within one transaction, a read of a partition at or below the offset read just \
             before it; counted once per pair of reads."
        }
        "int-send-skip" => {
            "Within one transaction, two consecutive acknowledged sends to a partition landed \
             with another visible record between them; counted once per pair of sends."
        }
        "int-nonmonotonic-send" => {
            "Within one transaction, an acknowledged send to a partition landed at or below \
             the offset of the send just before it; counted once per pair of sends."
        }
        "lookup-hit-marker" => {
            "An offsetsForTimes lookup returned an offset that holds a transaction marker, \
             not a data record (markers take offsets and carry the coordinator's clock); \
             counted once per lookup."
        }
        "marker-gap" => {
            "A consumer's consecutive reads of a partition jumped over offsets that hold \
             transaction markers, which take offsets but are never returned; counted once \
             per gap."
        }
        "lso-stall" => {
            "A read_committed consumer saw a partition's last stable offset below its high \
             watermark (held back by an open transaction); counted once per consumer, \
             partition and episode."
        }
        "transaction-aborted" => {
            "A transaction that ended aborted: by its client, by its coordinator \
             (transaction.timeout.ms) or by fencing; counted once per transaction."
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------- the checks

/// Checks the transactional guarantees and counts the transactional client events,
/// adding to the main checker's tallies.
pub(crate) fn check(history: &History, snapshot: &Snapshot, view: &TxnView, tallies: &mut Tallies) {
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        (u64::MAX, seq)
    };
    check_reads(history, view, tallies);
    check_logs(history, snapshot, view, tallies, &mut next);
    check_outputs(history, snapshot, view, tallies, &mut next);
    check_cycles(history, view, tallies);
    check_internal(history, view, tallies);
    check_lookups(history, view, tallies);
    check_lookup_earliest(history, view, tallies);
    check_lso(history, tallies);
    check_aborted(history, view, tallies);
}

/// `aborted-read`, `precommitted-read` and `marker-gap`: every record every consumer
/// read.
fn check_reads(history: &History, view: &TxnView, tallies: &mut Tallies) {
    // Each (reader, partition, offset) is judged once.
    let mut judged: BTreeSet<(NodeId, &TopicPartition, Offset)> = BTreeSet::new();
    let mut last_read: BTreeMap<(NodeId, &TopicPartition), Offset> = BTreeMap::new();
    for e in &history.entries {
        let (partition, records, read_committed) = match &e.op {
            Op::Poll {
                partition,
                records,
                read_committed,
                ..
            } => (partition, records, *read_committed),
            Op::Seek { partition, .. } => {
                last_read.remove(&(e.process, partition));
                continue;
            }
            _ => continue,
        };
        let at_ms = entry_ms(e);
        let log = view.logs.get(partition);
        for (i, r) in records.iter().enumerate() {
            let order = (e.index, i as u64);
            let prev = last_read.insert((e.process, partition), r.offset);
            if let (Some(prev), Some(log)) = (prev, log) {
                let skipped = log.markers_in(prev + 1, r.offset);
                if !skipped.is_empty() {
                    tallies.add("marker-gap", order, || {
                        let shown: Vec<String> = skipped
                            .iter()
                            .take(2)
                            .map(|m| {
                                let kind = if m.committed { "COMMIT" } else { "ABORT" };
                                format!("{kind} of producer id {} at {}", m.producer_id, m.offset)
                            })
                            .collect();
                        let more = skipped.len().saturating_sub(2);
                        let more = if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        };
                        format!(
                            "{} read offset {prev} then offset {} of {partition} at {} s: \
                             {} marker(s) sit between them ({}{more}), control records that \
                             take offsets but are never returned to consumers",
                            e.process,
                            r.offset,
                            Secs(at_ms),
                            skipped.len(),
                            shown.join(", ")
                        )
                    });
                }
            }
            if !judged.insert((e.process, partition, r.offset)) {
                continue;
            }
            let isolation = if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            };
            let fate = view.fate(partition, r.offset, r.value);
            // Only aborted, open and (read_committed) committed records are judged.
            let judged_fate = match fate {
                Fate::Aborted | Fate::Open => true,
                Fate::Committed => read_committed,
                Fate::NotTransactional | Fate::Unknown => false,
            };
            if !judged_fate {
                continue;
            }
            let writer = view.writer_of(partition, r.offset, r.value);
            let read = || {
                format!(
                    "{} ({isolation}) read value {} at offset {} of {partition} at {} s",
                    e.process,
                    r.value,
                    r.offset,
                    Secs(at_ms)
                )
            };
            let lines = || -> Vec<u64> {
                let end = writer.and_then(|t| view.txns[&t].end);
                view.send_line(r.value).into_iter().chain(end).collect()
            };
            let batch = log
                .filter(|l| l.records.get(&r.offset) == Some(&r.value))
                .and_then(|l| Some((l, l.batch_at(r.offset)?)));
            match fate {
                Fate::Aborted | Fate::Open => {
                    let whose = writer.map_or("its transaction".into(), |t| {
                        format!("its transaction {}", view.name(t))
                    });
                    let why = match batch.and_then(|(l, b)| l.end_marker(b)) {
                        Some(m) => format!("was aborted: {}, follows it", MarkerWords(m)),
                        None if fate == Fate::Open => {
                            "never committed: no marker follows it in the final log".to_string()
                        }
                        None => "was aborted, as its client's EndTxn says".to_string(),
                    };
                    tallies.add_lines("aborted-read", order, &lines(), || {
                        format!("{}, but {whose} {why}", read())
                    });
                }
                // read_uncommitted returns what is not committed yet by definition.
                Fate::Committed if read_committed => {
                    let marker = batch.and_then(|(l, b)| l.end_marker(b));
                    let reader_txn = view.poll_txn.get(&e.index).copied();
                    if let Some(m) = marker.filter(|m| at_ms < marker_ms(m)) {
                        let whose = writer.map_or(String::new(), |t| format!(" {}", view.name(t)));
                        tallies.add_lines("precommitted-read", order, &lines(), || {
                            format!(
                                "{}, before {}, ended its transaction{whose}",
                                read(),
                                MarkerWords(m)
                            )
                        });
                    } else if let Some(t) = reader_txn.filter(|t| writer == Some(*t)) {
                        tallies.add_lines("precommitted-read", order, &lines(), || {
                            format!(
                                "{}, a record its own transaction {} wrote and had not yet \
                                 committed",
                                read(),
                                view.name(t)
                            )
                        });
                    }
                }
                Fate::Committed | Fate::NotTransactional | Fate::Unknown => {}
            }
        }
    }
}

/// `partial-commit`, `hanging-transaction` and `zombie-write`: the final logs against
/// the transactions that wrote them.
fn check_logs(
    history: &History,
    snapshot: &Snapshot,
    view: &TxnView,
    tallies: &mut Tallies,
    next: &mut impl FnMut() -> (u64, u64),
) {
    // partial-commit: per transaction, the fate of its records in each partition.
    for (&txn, t) in &view.txns {
        let mut per_partition: BTreeMap<&TopicPartition, (Offset, Offset, Fate, Option<usize>)> =
            BTreeMap::new();
        for (tp, o) in &t.records {
            let log = &view.logs[tp];
            let Some(b) = log.batch_at(*o) else {
                continue;
            };
            let fate = log.batch_fate(b);
            let slot = per_partition.entry(tp).or_insert((*o, *o, fate, b.end));
            slot.0 = slot.0.min(*o);
            slot.1 = slot.1.max(*o);
            // Within one partition the worst fate wins (records of one transaction in
            // one partition split between fates are partial too).
            if fate != Fate::Committed {
                slot.2 = fate;
                slot.3 = b.end;
            }
        }
        let committed = per_partition.iter().find(|(_, s)| s.2 == Fate::Committed);
        let other = per_partition.iter().find(|(_, s)| s.2 != Fate::Committed);
        let (Some((ctp, c)), Some((otp, o))) = (committed, other) else {
            continue;
        };
        let say = |tp: &TopicPartition, s: &(Offset, Offset, Fate, Option<usize>)| {
            let log = &view.logs[tp];
            let span = if s.0 == s.1 {
                format!("offset {}", s.0)
            } else {
                format!("offsets {}-{}", s.0, s.1)
            };
            let marker = match s.3 {
                Some(m) => format!("{}", MarkerWords(&log.markers[m])),
                None => "no marker".to_string(),
            };
            format!("{tp} ({span}, then {marker})")
        };
        let lines: Vec<u64> = t.end.into_iter().collect();
        tallies.add_lines("partial-commit", (t.first_line(), 0), &lines, || {
            format!(
                "transaction {} committed on {} but not on {}",
                view.name(txn),
                say(ctp, c),
                say(otp, o)
            )
        });
    }

    // Kafka lets a transaction stay open until its coordinator aborts it:
    // `transaction.timeout.ms` after it began, found by the expiry check that runs every
    // `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    // (`TransactionCoordinator.abortTimedOutTransactions`), while the cluster is up. A
    // transaction still open at the end of the run hangs only when it outlived that,
    // counted from its first send or from the end of the last fault, whichever is later.
    let cluster_up_ms = history
        .entries
        .iter()
        .filter(|e| matches!(e.op, Op::FaultEnd { .. }))
        .map(|e| e.invoke_ms)
        .max()
        .unwrap_or(0);
    let still_allowed = |opened_ms: Millis| {
        snapshot.end_ms > 0
            && snapshot.transaction_abort_after_ms > 0
            && snapshot.end_ms < opened_ms.max(cluster_up_ms) + snapshot.transaction_abort_after_ms
    };
    for (tp, log) in &view.logs {
        // hanging-transaction: the first batch of each producer that no marker below the
        // high watermark ends (readers never get past it).
        let mut open: BTreeMap<i64, &Batch> = BTreeMap::new();
        let ended = |b: &Batch| log.end_marker(b).filter(|m| m.offset < log.high_watermark);
        for b in log.batches.iter().filter(|b| ended(b).is_none()) {
            open.entry(b.producer_id).or_insert(b);
        }
        let lso = (log.last_stable_offset, log.high_watermark);
        for b in open.values() {
            let txn = log.txn_of.get(&b.base_offset).copied();
            let first_send = log
                .records
                .get(&b.base_offset)
                .and_then(|v| view.txn_sends.get(v))
                .and_then(|s| s.first())
                .map(|s| s.index);
            if first_send.is_some_and(|i| still_allowed(history.entries[i as usize].invoke_ms)) {
                continue;
            }
            let lines: Vec<u64> = first_send.into_iter().collect();
            tallies.add_lines("hanging-transaction", next(), &lines, || {
                let who = txn.map_or(String::new(), |t| format!(" ({})", view.short(t)));
                let since = first_send.map_or(String::new(), |i| {
                    format!(
                        " (sent at {} s)",
                        Secs(history.entries[i as usize].invoke_ms)
                    )
                });
                let after = match log.end_marker(b) {
                    None => "have no marker after them".to_string(),
                    Some(m) => format!("end only at {}, above the high watermark,", MarkerWords(m)),
                };
                format!(
                    "producer id {} epoch {}{who} left a transaction open on {tp}: its records \
                     from offset {}{since} {after} in {} (last stable offset {}, high \
                     watermark {})",
                    b.producer_id,
                    b.producer_epoch,
                    b.base_offset,
                    log.whose(),
                    lso.0,
                    lso.1
                )
            });
        }
        // A snapshot without transactional data has no last stable offset to compare.
        if open.is_empty() && log.has_transactions() && lso.0 < lso.1 {
            tallies.add("hanging-transaction", next(), || {
                format!(
                    "{tp} ends with last stable offset {} below the high watermark {} in {}, \
                     although every transactional batch there is followed by a marker",
                    lso.0,
                    lso.1,
                    log.whose()
                )
            });
        }
    }

    // zombie-write, once per transaction (or batch, when no transaction is known).
    let mut flagged: BTreeSet<ZombieKey> = BTreeSet::new();
    for (tp, log) in &view.logs {
        // Markers and batches in offset order; the highest marker epoch per producer.
        let mut highest: BTreeMap<i64, (i16, Offset)> = BTreeMap::new();
        let mut markers = log.markers.iter().peekable();
        for b in &log.batches {
            while let Some(m) = markers.next_if(|m| m.offset < b.base_offset) {
                let h = highest
                    .entry(m.producer_id)
                    .or_insert((m.producer_epoch, m.offset));
                if m.producer_epoch > h.0 {
                    *h = (m.producer_epoch, m.offset);
                }
            }
            let Some(&(epoch, at)) = highest.get(&b.producer_id) else {
                continue;
            };
            if b.producer_epoch >= epoch || log.batch_fate(b) != Fate::Committed {
                continue;
            }
            let txn = log.txn_of.get(&b.base_offset).copied();
            let key = match txn {
                Some(t) => (Some(t), None),
                None => (None, Some((tp, b.base_offset))),
            };
            if !flagged.insert(key) {
                continue;
            }
            let lines: Vec<u64> = txn.and_then(|t| view.txns[&t].end).into_iter().collect();
            let order = txn.map_or_else(&mut *next, |t| (view.txns[&t].first_line(), 0));
            tallies.add_lines("zombie-write", order, &lines, || {
                let who = txn.map_or(String::new(), |t| format!(" ({})", view.short(t)));
                let m = log.end_marker(b).expect("a committed batch has a marker");
                format!(
                    "offsets {}-{} of {tp} were written by producer id {} with epoch {}{who} \
                     and committed ({}), although a marker of epoch {epoch} of that producer \
                     precedes them at offset {at}",
                    b.base_offset,
                    b.last_offset,
                    b.producer_id,
                    b.producer_epoch,
                    MarkerWords(m)
                )
            });
        }
    }
    for (&txn, t) in &view.txns {
        let fenced = t.ends.iter().chain(&t.sends).find_map(|&i| {
            let e = &history.entries[i as usize];
            match &e.outcome {
                Outcome::Fail { error } if is_fencing(error) => Some((e, error)),
                _ => None,
            }
        });
        let Some((fenced_by, error)) = fenced else {
            continue;
        };
        let committed = t.records.iter().find_map(|(tp, o)| {
            let log = &view.logs[tp];
            let b = log.batch_at(*o)?;
            let m = log.end_marker(b).filter(|m| m.committed)?;
            Some((tp, *o, log.records[o], m))
        });
        let Some((tp, o, value, m)) = committed else {
            continue;
        };
        if !flagged.insert((Some(txn), None)) {
            continue;
        }
        let what = if matches!(fenced_by.op, Op::EndTxn { .. }) {
            "its EndTxn"
        } else {
            "one of its sends"
        };
        let example = || {
            format!(
                "transaction {} was fenced ({what} failed with {error} at {} s), yet its \
                 value {value} at offset {o} of {tp} is committed ({})",
                view.name(txn),
                Secs(entry_ms(fenced_by)),
                MarkerWords(m)
            )
        };
        let order = (t.first_line(), 0);
        tallies.add_lines("zombie-write", order, &[fenced_by.index], example);
    }
}

/// A zombie write's identity: its transaction, else its batch (partition, base offset).
type ZombieKey<'a> = (Option<TxnId>, Option<(&'a TopicPartition, Offset)>);

/// Whether a failure says the producer was fenced.
fn is_fencing(error: &str) -> bool {
    [
        "PRODUCER_FENCED",
        "INVALID_PRODUCER_EPOCH",
        "ProducerFenced",
        "InvalidProducerEpoch",
    ]
    .iter()
    .any(|e| error.contains(e))
}

/// Per (group, partition): the highest offset committed, with the history line and
/// time of the commit (`None`: the coordinator's state at the end of the run).
type CommittedUpTo<'a> = BTreeMap<(&'a str, &'a TopicPartition), (Offset, Option<(u64, Millis)>)>;

/// Raises a group's committed offset for a partition to `offset`.
fn raise<'a>(
    committed: &mut CommittedUpTo<'a>,
    (group, tp): (&'a str, &'a TopicPartition),
    offset: Offset,
    by: Option<(u64, Millis)>,
) {
    let c = committed.entry((group, tp)).or_insert((offset, by));
    if offset > c.0 {
        *c = (offset, by);
    }
}

/// What shows an output value at a position.
#[derive(Clone, Copy)]
enum Shown {
    /// A final log holds it, written by this transaction (or none).
    Log(Option<TxnId>),
    /// Acknowledged to, or read by, a process at a time.
    Acked(NodeId, Millis),
    Read(NodeId, Millis),
}

/// Where an output value is, and what shows it there.
type Positions = BTreeMap<(TopicPartition, Offset), Shown>;

/// `output-duplicate` and `output-missing`: the pipelines' exactly-once.
fn check_outputs(
    history: &History,
    snapshot: &Snapshot,
    view: &TxnView,
    tallies: &mut Tallies,
    next: &mut impl FnMut() -> (u64, u64),
) {
    // Every visible position of every output value, by input value: the final logs,
    // then visible reads and acknowledgements (of records since truncated, too).
    let mut outputs: BTreeMap<Value, Positions> = BTreeMap::new();
    for (tp, log) in &view.logs {
        for (&o, &v) in &log.records {
            let Some(input) = input_of(v) else {
                continue;
            };
            if view.fate(tp, o, v).visible() {
                let how = Shown::Log(log.txn_of.get(&o).copied());
                outputs
                    .entry(input)
                    .or_default()
                    .insert((tp.clone(), o), how);
            }
        }
    }
    // Inputs whose output the final logs hold (what `output-missing` asks).
    let in_logs: BTreeSet<Value> = outputs.keys().copied().collect();
    // History lines of each output value's sends and reads.
    let mut lines: BTreeMap<Value, Vec<u64>> = BTreeMap::new();
    let mut senders: BTreeSet<NodeId> = BTreeSet::new();
    for e in &history.entries {
        let mut seen = |tp: &TopicPartition, o: Offset, v: Value, how: Shown| {
            let Some(input) = input_of(v) else {
                return;
            };
            let l = lines.entry(input).or_default();
            if l.len() < 4 {
                l.push(e.index);
            }
            if view.fate(tp, o, v).visible() {
                let at = outputs.entry(input).or_default();
                assert!(at.len() < MAX_ITEMS, "output value everywhere");
                at.entry((tp.clone(), o)).or_insert(how);
            }
        };
        match &e.op {
            Op::Send {
                value,
                partition,
                offset,
                ..
            } => {
                if input_of(*value).is_some() {
                    senders.insert(e.process);
                }
                if let (Outcome::Ok, Some(o)) = (&e.outcome, offset) {
                    if view.send_visible(e) != Some(false) {
                        let how = Shown::Acked(e.process, entry_ms(e));
                        seen(partition, *o, *value, how);
                    }
                }
            }
            Op::Poll {
                partition, records, ..
            } => {
                for r in records {
                    let how = Shown::Read(e.process, entry_ms(e));
                    seen(partition, r.offset, r.value, how);
                }
            }
            _ => {}
        }
    }
    for (input, at) in &outputs {
        if at.len() < 2 {
            continue;
        }
        let l = lines.get(input).cloned().unwrap_or_default();
        let order = l.first().map_or_else(&mut *next, |i| (*i, 0));
        tallies.add_lines("output-duplicate", order, &l, || {
            let shown: Vec<String> = at
                .iter()
                .take(3)
                .map(|((tp, o), how)| {
                    let how = match *how {
                        Shown::Log(Some(t)) => format!("written by transaction {}", view.short(t)),
                        Shown::Log(None) => "written without a transaction".to_string(),
                        Shown::Acked(p, t) => format!("acknowledged to {p} at {} s", Secs(t)),
                        Shown::Read(p, t) => format!("read by {p} at {} s", Secs(t)),
                    };
                    format!("offset {o} of {tp} ({how})")
                })
                .collect();
            format!(
                "input value {input}'s output value {} is committed at {} places: {}",
                output_value(*input),
                at.len(),
                shown.join(", ")
            )
        });
    }

    // output-missing needs the final logs.
    if view.logs.is_empty() {
        return;
    }
    // Pipeline groups: named by an EndTxn, or processing in a process that sends outputs.
    let mut pipelines: BTreeSet<&str> = BTreeSet::new();
    let mut committed = CommittedUpTo::new();
    for e in &history.entries {
        match &e.op {
            Op::EndTxn {
                txn,
                group: Some(group),
                offsets,
                commit: true,
                ..
            } if e.outcome == Outcome::Ok => {
                pipelines.insert(group);
                if view.txn_fate(*txn) == Some(Fate::Committed) {
                    for (tp, o) in offsets {
                        raise(
                            &mut committed,
                            (group, tp),
                            *o,
                            Some((e.index, entry_ms(e))),
                        );
                    }
                }
            }
            Op::EndTxn {
                group: Some(group), ..
            } => {
                pipelines.insert(group);
            }
            Op::Committed { group, offsets, .. } if e.outcome == Outcome::Ok => {
                for (tp, o) in offsets {
                    raise(
                        &mut committed,
                        (group, tp),
                        *o,
                        Some((e.index, entry_ms(e))),
                    );
                }
            }
            Op::Processed { group, .. } if senders.contains(&e.process) => {
                pipelines.insert(group);
            }
            _ => {}
        }
    }
    for (group, tp, o) in &snapshot.committed_offsets {
        raise(&mut committed, (group, tp), *o, None);
    }
    let mut judged: BTreeSet<Value> = BTreeSet::new();
    for e in &history.entries {
        let Op::Processed {
            group,
            member,
            partition,
            offset,
            value,
            ..
        } = &e.op
        else {
            continue;
        };
        if !pipelines.contains(group.as_str()) || judged.contains(value) {
            continue;
        }
        let Some(&(upto, by)) = committed.get(&(group.as_str(), partition)) else {
            continue;
        };
        if upto <= *offset || !view.fate(partition, *offset, *value).visible() {
            continue;
        }
        judged.insert(*value);
        if in_logs.contains(value) {
            continue;
        }
        let mut l: Vec<u64> = by.map(|(i, _)| i).into_iter().collect();
        l.extend(lines.get(value).into_iter().flatten());
        tallies.add_lines("output-missing", (e.index, 0), &l, || {
            let when = match by {
                Some((i, t)) => format!("at {} s (history line {i})", Secs(t)),
                None => "by the end of the run".to_string(),
            };
            format!(
                "input value {value} (offset {offset} of {partition}) was processed by group \
                 {group} (member {member} at {} s), which committed {partition} past it (to \
                 offset {upto}) {when}, but its output value {} is committed in no \
                 partition's final log",
                Secs(entry_ms(e)),
                output_value(*value)
            )
        });
    }
}

// ---------------------------------------------------------------- internal checks

/// `int-poll-skip`, `int-nonmonotonic-poll`, `int-send-skip` and `int-nonmonotonic-send`:
/// one transaction's own reads and sends, partition by partition.
fn check_internal(history: &History, view: &TxnView, tallies: &mut Tallies) {
    // The first visible record of the final log (or, black-box, of the records the
    // history shows) at an offset in `from..to`.
    let visible_between = |tp: &TopicPartition, from: Offset, to: Offset, skip: Option<TxnId>| {
        view.records_of(tp)?
            .range(from..to.max(from))
            .find(|(o, v)| {
                view.fate(tp, **o, **v).visible()
                    && (skip.is_none() || view.writer_of(tp, **o, **v) != skip)
            })
            .map(|(o, v)| (*o, *v))
    };
    for (&txn, t) in &view.txns {
        let mut last: BTreeMap<&TopicPartition, (Offset, u64)> = BTreeMap::new();
        for &i in &t.reads {
            let e = &history.entries[i as usize];
            let (partition, records) = match &e.op {
                Op::Poll {
                    partition, records, ..
                } => (partition, records),
                Op::Seek { partition, .. } => {
                    last.remove(partition);
                    continue;
                }
                _ => unreachable!("reads are polls and seeks"),
            };
            for (k, r) in records.iter().enumerate() {
                let prev = last.insert(partition, (r.offset, i));
                let Some((p, p_line)) = prev else {
                    continue;
                };
                let order = (i, k as u64);
                let read = || {
                    format!(
                        "transaction {} read offset {p} then offset {} of {partition} (at {} s)",
                        view.name(txn),
                        r.offset,
                        Secs(entry_ms(e))
                    )
                };
                if r.offset <= p {
                    tallies.add_lines("int-nonmonotonic-poll", order, &[p_line], read);
                } else if let Some((o, v)) = visible_between(partition, p + 1, r.offset, None) {
                    tallies.add_lines("int-poll-skip", order, &[p_line], || {
                        format!("{}, skipping value {v} at offset {o}", read())
                    });
                }
            }
        }
        // Acknowledged sends in the order they were made.
        let mut sends: Vec<(Millis, u64)> = t
            .sends
            .iter()
            .map(|&i| (history.entries[i as usize].invoke_ms, i))
            .collect();
        sends.sort_unstable();
        let mut last: BTreeMap<&TopicPartition, (Offset, Value, u64)> = BTreeMap::new();
        for (_, i) in sends {
            let e = &history.entries[i as usize];
            let Op::Send {
                value,
                partition,
                offset,
                ..
            } = &e.op
            else {
                continue;
            };
            // Black-box (no final log of the partition): a send without its offset
            // takes the offset a read found its value at, and an indefinite one counts
            // once its transaction is known to have committed.
            let black_box = !view.logs.contains_key(partition);
            let inferred = || {
                view.read_at
                    .get(&(partition.clone(), *value))
                    .filter(|_| black_box)
            };
            let Some(offset) = offset.as_ref().or_else(inferred) else {
                continue;
            };
            let committed = black_box && view.txn_fate(txn) == Some(Fate::Committed);
            if e.outcome != Outcome::Ok && !(committed && matches!(e.outcome, Outcome::Info { .. }))
            {
                continue;
            }
            let Some((p, pv, p_line)) = last.insert(partition, (*offset, *value, i)) else {
                continue;
            };
            let sent = || {
                format!(
                    "transaction {} sent value {pv} then value {value} to {partition}, which \
                     landed at offset {p} then offset {offset}",
                    view.name(txn)
                )
            };
            if *offset <= p {
                tallies.add_lines("int-nonmonotonic-send", (i, 0), &[p_line], sent);
            } else if let Some((o, v)) = visible_between(partition, p + 1, *offset, Some(txn)) {
                tallies.add_lines("int-send-skip", (i, 0), &[p_line], || {
                    format!(
                        "{}, with value {v} of another writer at offset {o} between",
                        sent()
                    )
                });
            }
        }
    }
}

// ---------------------------------------------------------------- client events

/// `lookup-hit-marker`: `offsetsForTimes` answers that point at a marker.
fn check_lookups(history: &History, view: &TxnView, tallies: &mut Tallies) {
    // Each value's CreateTime and send time, built on the first hit only.
    let mut sent_at: Option<BTreeMap<Value, (i64, Millis)>> = None;
    for e in &history.entries {
        let Op::OffsetsForTimes {
            partition,
            timestamp,
            offset: Some(offset),
            found_timestamp,
        } = &e.op
        else {
            continue;
        };
        let Some(log) = view.logs.get(partition) else {
            continue;
        };
        let Some(m) = log.marker_at(*offset) else {
            continue;
        };
        let sent_at = sent_at.get_or_insert_with(|| {
            let mut map = BTreeMap::new();
            for s in &history.entries {
                if let (Op::Send { value, .. }, Some(t)) = (&s.op, s.create_time()) {
                    map.entry(*value).or_insert((t, s.invoke_ms));
                }
            }
            map
        });
        let next_record = log.records.range(offset + 1..).next();
        tallies.add("lookup-hit-marker", (e.index, 0), || {
            let found = found_timestamp.map_or(String::new(), |f| format!(" (timestamp {f})"));
            let after = match next_record {
                Some((o, v)) => match sent_at.get(v) {
                    Some((ts, t)) => format!(
                        "the next data record, value {v} at offset {o}, has CreateTime {ts} \
                         (sent at {} s)",
                        Secs(*t)
                    ),
                    None => format!("the next data record is value {v} at offset {o}"),
                },
                None => "no data record follows it".to_string(),
            };
            format!(
                "{}'s offsetsForTimes({partition}, {timestamp}) at {} s returned offset \
                 {offset}{found}, which holds the {} marker of producer id {} (epoch {}, \
                 timestamp {}, written at {} s), not a data record; {after}: markers take \
                 offsets and carry the coordinator's clock, so a lookup by CreateTime can land \
                 on one",
                e.process,
                Secs(entry_ms(e)),
                if m.committed { "COMMIT" } else { "ABORT" },
                m.producer_id,
                m.producer_epoch,
                m.timestamp,
                Secs(marker_ms(m))
            )
        });
    }
}

/// `lookup-not-earliest`: an `offsetsForTimes` answer must be the earliest offset whose
/// record has a timestamp at or after the target (KIP-79; `LogSegment.findOffsetByTimestamp`
/// scans from the first batch whose maximum timestamp reaches the target), and the
/// record there must reach it. Judged against the final log, and only where the final
/// log still holds at the answered offset the record the broker answered with (its
/// timestamp is the one answered), so that a log rewritten since (an unclean election)
/// is not taken for a wrong answer. Data records carry their CreateTime (the send's
/// invoke time), markers the coordinator's clock.
///
/// An empty answer is wrong when a consumer had already read, on a partition without
/// transactions, a record reaching the target that the final log still holds: a record
/// read below the high watermark is committed, and a leader answers a timestamp lookup
/// only once its high watermark passed its epoch's start (`OFFSET_NOT_AVAILABLE`
/// before), so the record was below the answering leader's high watermark.
fn check_lookup_earliest(history: &History, view: &TxnView, tallies: &mut Tallies) {
    // Each value's CreateTime.
    let mut sent_at: BTreeMap<Value, i64> = BTreeMap::new();
    for e in &history.entries {
        if let (Op::Send { value, .. }, Some(t)) = (&e.op, e.create_time()) {
            sent_at.entry(*value).or_insert(t);
        }
    }
    // Per partition: (offset, timestamp) in offset order, with the running maximum.
    let mut timelines: BTreeMap<&TopicPartition, Vec<(Offset, i64, i64)>> = BTreeMap::new();
    let timeline = |log: &PartitionLog| {
        let mut stamped: Vec<(Offset, i64)> = log
            .records
            .iter()
            .filter_map(|(o, v)| sent_at.get(v).map(|t| (*o, *t)))
            .chain(log.markers.iter().map(|m| (m.offset, m.timestamp)))
            .collect();
        stamped.sort_unstable();
        let mut max = i64::MIN;
        stamped
            .into_iter()
            .map(|(o, t)| {
                max = max.max(t);
                (o, t, max)
            })
            .collect::<Vec<_>>()
    };
    // Per partition without markers: the records consumers read, by completion time,
    // with the running latest timestamp (and its offset) among them.
    let mut reads: BTreeMap<&TopicPartition, Vec<(Millis, i64, Offset)>> = BTreeMap::new();
    for e in &history.entries {
        let Op::Poll {
            partition, records, ..
        } = &e.op
        else {
            continue;
        };
        let Some(log) = view.logs.get(partition).filter(|l| l.markers.is_empty()) else {
            continue;
        };
        for r in records {
            let (Some(t), Some(v)) = (sent_at.get(&r.value), log.records.get(&r.offset)) else {
                continue;
            };
            if let (true, Some(done)) = (*v == r.value, e.complete_ms) {
                let ts = *t;
                reads
                    .entry(partition)
                    .or_default()
                    .push((done, ts, r.offset));
            }
        }
    }
    for line in reads.values_mut() {
        line.sort_unstable();
        let mut best = (i64::MIN, -1);
        for entry in line.iter_mut() {
            if entry.1 > best.0 {
                best = (entry.1, entry.2);
            }
            (entry.1, entry.2) = best;
        }
    }
    for e in &history.entries {
        let Op::OffsetsForTimes {
            partition,
            timestamp,
            offset: answer,
            found_timestamp,
        } = &e.op
        else {
            continue;
        };
        if e.outcome != Outcome::Ok {
            continue;
        }
        let (Some(offset), Some(found)) = (answer, found_timestamp) else {
            // Empty: wrong if a record reaching the target was read before the lookup.
            let Some(line) = reads.get(partition) else {
                continue;
            };
            let before = line.partition_point(|(done, _, _)| *done < e.invoke_ms);
            let Some(&(_, ts, o)) = before.checked_sub(1).map(|i| &line[i]) else {
                continue;
            };
            if answer.is_none() && ts >= *timestamp {
                tallies.add("lookup-not-earliest", (e.index, 0), || {
                    format!(
                        "{}'s offsetsForTimes({partition}, {timestamp}) at {} s found no \
                         offset, but offset {o} (timestamp {ts}) had been read before: Kafka \
                         answers with the earliest offset whose timestamp is at or after the \
                         target",
                        e.process,
                        Secs(entry_ms(e)),
                    )
                });
            }
            continue;
        };
        let Some(log) = view.logs.get(partition) else {
            continue;
        };
        let line = timelines.entry(partition).or_insert_with(|| timeline(log));
        let Ok(at) = line.binary_search_by_key(offset, |(o, _, _)| *o) else {
            continue;
        };
        if line[at].1 != *found {
            continue; // the log no longer holds the answered record
        }
        // The first offset whose running maximum reaches the target.
        let first = line.partition_point(|(_, _, max)| max < timestamp);
        let problem = if *found < *timestamp {
            Some(format!(
                "the record there has timestamp {found}, before the target"
            ))
        } else if first < at {
            let (o, t, _) = line[first];
            Some(format!(
                "offset {o} holds an earlier record with timestamp {t}, at or after the target"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            tallies.add("lookup-not-earliest", (e.index, 0), || {
                format!(
                    "{}'s offsetsForTimes({partition}, {timestamp}) at {} s returned offset \
                     {offset} (timestamp {found}), but {problem}: Kafka answers with the \
                     earliest offset whose timestamp is at or after the target",
                    e.process,
                    Secs(entry_ms(e)),
                )
            });
        }
    }
}

/// One stretch of time a consumer saw a partition's LSO below its high watermark.
struct Stall<'h> {
    process: NodeId,
    partition: &'h TopicPartition,
    index: u64,
    from_ms: Millis,
    to_ms: Millis,
    lso: Offset,
    hw: Offset,
    ended: bool,
}

/// `lso-stall`: from read_committed consumers' `ObserveHighWatermark` entries.
fn check_lso(history: &History, tallies: &mut Tallies) {
    let end_ms = history.entries.iter().map(entry_ms).max().unwrap_or(0);
    let mut open: BTreeMap<(NodeId, &TopicPartition), Stall> = BTreeMap::new();
    let mut stalls: Vec<Stall> = Vec::new();
    for e in &history.entries {
        let Op::ObserveHighWatermark {
            partition,
            high_watermark,
            last_stable_offset: Some(lso),
            ..
        } = &e.op
        else {
            continue;
        };
        let key = (e.process, partition);
        let at_ms = entry_ms(e);
        if lso < high_watermark {
            open.entry(key).or_insert(Stall {
                process: e.process,
                partition,
                index: e.index,
                from_ms: at_ms,
                to_ms: at_ms,
                lso: *lso,
                hw: *high_watermark,
                ended: true,
            });
        } else if let Some(mut s) = open.remove(&key) {
            s.to_ms = at_ms;
            assert!(stalls.len() < MAX_ITEMS, "too many stalls");
            stalls.push(s);
        }
    }
    stalls.extend(open.into_values().map(|mut s| {
        s.to_ms = end_ms;
        s.ended = false;
        s
    }));
    let mut longest: BTreeMap<&TopicPartition, (Millis, NodeId, Millis)> = BTreeMap::new();
    for s in &stalls {
        let d = s.to_ms - s.from_ms;
        let l = longest
            .entry(s.partition)
            .or_insert((d, s.process, s.from_ms));
        if d > l.0 {
            *l = (d, s.process, s.from_ms);
        }
    }
    for s in &stalls {
        let (d, who, when) = longest[s.partition];
        tallies.add("lso-stall", (s.index, 0), || {
            let until = if s.ended {
                format!("until {} s", Secs(s.to_ms))
            } else {
                "until the end of the run".to_string()
            };
            format!(
                "{} was held at the last stable offset {} of {} (high watermark {}) from {} s \
                 {until}, {} s; the longest stall on {} was {} s ({who} from {} s)",
                s.process,
                s.lso,
                s.partition,
                s.hw,
                Secs(s.from_ms),
                Secs(s.to_ms - s.from_ms),
                s.partition,
                Secs(d),
                Secs(when)
            )
        });
    }
}

/// `transaction-aborted`: every transaction that ended aborted, and who ended it.
fn check_aborted(history: &History, view: &TxnView, tallies: &mut Tallies) {
    // The coordinator's moves to PrepareAbort (a timeout, or a fence: a new instance's
    // InitProducerId passes through PrepareEpochFence first), per transactional id:
    // (line, time, epoch, fenced).
    let mut prepare_abort: BTreeMap<&str, Vec<(u64, Millis, i16, bool)>> = BTreeMap::new();
    let mut fencing: BTreeSet<&str> = BTreeSet::new();
    for e in &history.entries {
        let Op::TxnState {
            transactional_id: id,
            producer_epoch,
            to,
            ..
        } = &e.op
        else {
            continue;
        };
        match to.as_str() {
            "PrepareEpochFence" => {
                fencing.insert(id);
            }
            "PrepareAbort" => {
                let v = prepare_abort.entry(id).or_default();
                assert!(v.len() < MAX_ITEMS, "too many state changes");
                v.push((
                    e.index,
                    entry_ms(e),
                    *producer_epoch,
                    fencing.remove(id.as_str()),
                ));
            }
            _ => {}
        }
    }
    for (&txn, t) in &view.txns {
        if t.fate != Fate::Aborted {
            continue;
        }
        let end = t.end.map(|i| &history.entries[i as usize]);
        let coordinator = t.transactional_id.as_deref().and_then(|id| {
            let after = t.first_line();
            prepare_abort
                .get(id)?
                .iter()
                .find(|(i, _, _, _)| *i > after)
        });
        let marker = t.records.iter().find_map(|(tp, o)| {
            let log = &view.logs[tp];
            let m = log.end_marker(log.batch_at(*o)?)?;
            Some((tp, m))
        });
        let mut lines: Vec<u64> = t.end.into_iter().collect();
        lines.extend(coordinator.map(|c| c.0));
        tallies.add_lines("transaction-aborted", (t.first_line(), 0), &lines, || {
            let how = match end.map(|e| (&e.outcome, e)) {
                Some((Outcome::Ok, e)) if t.commit_acknowledged => format!(
                    "was aborted although its client's commit was acknowledged at {} s",
                    Secs(entry_ms(e))
                ),
                Some((Outcome::Ok, e)) => {
                    format!("was aborted by its client at {} s", Secs(entry_ms(e)))
                }
                Some((Outcome::Fail { error }, e)) => {
                    format!("ended with {error} at {} s", Secs(entry_ms(e)))
                }
                _ => match coordinator {
                    Some((_, at, epoch, true)) => format!(
                        "was fenced by its coordinator (PrepareEpochFence: a new instance of \
                         its transactional id, or its transaction.timeout.ms passed) and \
                         aborted (PrepareAbort at {} s, epoch {epoch})",
                        Secs(*at)
                    ),
                    Some((_, at, epoch, false)) => format!(
                        "was aborted by its coordinator (PrepareAbort at {} s, epoch {epoch})",
                        Secs(*at)
                    ),
                    None => "was aborted without an EndTxn from its client".to_string(),
                },
            };
            let by = t.process.map_or(String::new(), |p| format!(" of {p}"));
            let marker = marker.map_or(String::new(), |(tp, m)| {
                format!("; {}, ends it on {tp}", MarkerWords(m))
            });
            format!("transaction {}{by} {how}{marker}", view.name(txn))
        });
    }
}

#[cfg(test)]
mod tests;
