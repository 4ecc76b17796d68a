//! What skewed clocks do that Kafka documents, judged in true time: client events, never
//! invariants. Kafka's rules go by record timestamps (CreateTime, the producer's wall
//! clock) and the broker's wall clock; the history's times are true (simulated) time,
//! so when clocks disagree an answer that is right by Kafka's rule can be early or late
//! by the clock.
//!
//! - `lookup-early-by-clock`, `lookup-late-by-clock`: an `offsetsForTimes` answer
//!   (the earliest offset whose timestamp is at or after the target, KIP-79) that, in
//!   true time, points at a record sent before the target, or skips a record sent at or
//!   after it (its producer's clock was ahead, or behind). `lookup-not-earliest` still
//!   judges the answer by the records' timestamps.
//! - `retention-early-by-clock`: a segment deletion by `retention.ms` (Kafka's
//!   `deleteRetentionMsBreachedSegments`: the broker's `now` minus the segment's
//!   largest timestamp) removed a record younger than `retention.ms` in true time (the
//!   broker's clock ahead, or the record's CreateTime behind).

use super::tally::{Secs, Tallies};
use crate::history::{History, Op, Outcome, Snapshot};
use crate::kafka::protocol::{Millis, NodeId, Offset, TopicPartition};
use crate::kafka::record::RECORD_TIMESTAMP_BASE;
use std::collections::{BTreeMap, BTreeSet};

/// An acknowledged record: its CreateTime, when it was sent and acknowledged (true
/// time) and its history line.
#[derive(Clone, Copy)]
struct Acked {
    create_time: i64,
    sent_ms: Millis,
    acked_ms: Millis,
    index: u64,
}

/// The definitions of this module's events.
pub(super) fn describe(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "lookup-early-by-clock" => {
            "An offsetsForTimes answer (the earliest offset whose timestamp is at or after \
             the target) at a record sent, in true time, before the target: its producer's \
             clock was ahead, so its CreateTime reached the target early."
        }
        "lookup-late-by-clock" => {
            "An offsetsForTimes answer (or no answer) past an acknowledged record sent, in \
             true time, at or after the target whose CreateTime is before it: its \
             producer's clock was behind, so the lookup skipped it."
        }
        "retention-early-by-clock" => {
            "A time-based segment deletion (retention.ms, judged on the broker's clock \
             against the segment's largest timestamp) removed an acknowledged record \
             younger than retention.ms in true time: the broker's clock ahead, or the \
             record's CreateTime behind; counted once per record."
        }
        _ => return None,
    })
}

/// Reports this module's events.
pub(super) fn check(history: &History, snapshot: &Snapshot, tallies: &mut Tallies) {
    let lookups = history
        .entries
        .iter()
        .any(|e| matches!(e.op, Op::OffsetsForTimes { .. }));
    if !lookups && snapshot.time_retention_ms.is_empty() {
        return; // nothing to judge: no lookup, and clocks are all true
    }
    let mut acked: BTreeMap<&TopicPartition, BTreeMap<Offset, Acked>> = BTreeMap::new();
    for e in &history.entries {
        let (
            Op::Send {
                partition,
                offset: Some(offset),
                ..
            },
            Outcome::Ok,
            Some(create_time),
            Some(acked_ms),
        ) = (&e.op, &e.outcome, e.create_time(), e.complete_ms)
        else {
            continue;
        };
        acked
            .entry(partition)
            .or_default()
            .entry(*offset)
            .or_insert(Acked {
                create_time,
                sent_ms: e.invoke_ms,
                acked_ms,
                index: e.index,
            });
    }
    check_lookups(history, &acked, tallies);
    check_retention(history, snapshot, &acked, tallies);
}

/// The true time a timestamp names (ms since the run's start; negative before it).
fn true_ms(timestamp: i64) -> i64 {
    timestamp - RECORD_TIMESTAMP_BASE
}

/// A history time as a signed number of milliseconds.
fn signed(ms: Millis) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn check_lookups(
    history: &History,
    acked: &BTreeMap<&TopicPartition, BTreeMap<Offset, Acked>>,
    tallies: &mut Tallies,
) {
    for e in &history.entries {
        let Op::OffsetsForTimes {
            partition,
            timestamp,
            offset: answer,
            ..
        } = &e.op
        else {
            continue;
        };
        let Some(records) = acked.get(partition).filter(|_| e.outcome == Outcome::Ok) else {
            continue;
        };
        let target = true_ms(*timestamp);
        if let Some(r) = answer.and_then(|o| records.get(&o).map(|r| (o, r))) {
            let (o, r) = r;
            if signed(r.sent_ms) < target && r.create_time >= *timestamp {
                tallies.add_lines("lookup-early-by-clock", (e.index, 0), &[r.index], || {
                    format!(
                        "{}'s offsetsForTimes({partition}, {timestamp}) at {} s returned \
                         offset {o}, whose record has CreateTime {} but was sent at {} s, \
                         {} ms before the target in true time: its producer's clock was \
                         ahead",
                        e.process,
                        Secs(e.invoke_ms),
                        r.create_time,
                        Secs(r.sent_ms),
                        target - signed(r.sent_ms)
                    )
                });
            }
        }
        let below = answer.unwrap_or(Offset::MAX);
        let skipped = records.range(..below).find(|(_, r)| {
            signed(r.sent_ms) >= target && r.create_time < *timestamp && r.acked_ms < e.invoke_ms
        });
        if let Some((o, r)) = skipped {
            tallies.add_lines("lookup-late-by-clock", (e.index, 0), &[r.index], || {
                let answered = answer.map_or("no offset".to_string(), |a| format!("offset {a}"));
                format!(
                    "{}'s offsetsForTimes({partition}, {timestamp}) at {} s returned \
                     {answered}, past offset {o}, whose record was sent at {} s ({} ms after \
                     the target in true time) and acknowledged before the lookup, but has \
                     CreateTime {}: its producer's clock was behind",
                    e.process,
                    Secs(e.invoke_ms),
                    Secs(r.sent_ms),
                    signed(r.sent_ms) - target,
                    r.create_time
                )
            });
        }
    }
}

fn check_retention(
    history: &History,
    snapshot: &Snapshot,
    acked: &BTreeMap<&TopicPartition, BTreeMap<Offset, Acked>>,
    tallies: &mut Tallies,
) {
    if snapshot.time_retention_ms.is_empty() {
        return;
    }
    // Each replica's log start, as its broker recorded it.
    let mut starts: BTreeMap<(NodeId, &TopicPartition), Offset> = BTreeMap::new();
    let mut reported: BTreeSet<(&TopicPartition, Offset)> = BTreeSet::new();
    for e in &history.entries {
        let Op::LogStartOffsetIncremented {
            partition,
            log_start_offset,
            reason,
        } = &e.op
        else {
            continue;
        };
        let from = starts
            .insert((e.process, partition), *log_start_offset)
            .unwrap_or(0);
        let Some(&retention_ms) = snapshot.time_retention_ms.get(&*partition.topic) else {
            continue;
        };
        if reason != "segment-deletion" {
            continue;
        }
        let Some(records) = acked.get(partition) else {
            continue;
        };
        let young_after = e
            .invoke_ms
            .saturating_sub(u64::try_from(retention_ms).unwrap_or(0));
        for (o, r) in records.range(from..*log_start_offset) {
            if r.sent_ms <= young_after || !reported.insert((partition, *o)) {
                continue;
            }
            tallies.add_lines("retention-early-by-clock", (e.index, 0), &[r.index], || {
                format!(
                    "{} deleted the segment holding {partition} offset {o} at {} s \
                     (retention.ms {retention_ms}); the record was sent at {} s, {} ms \
                     before in true time, with CreateTime {}: the broker's clock ran ahead \
                     of the record's",
                    e.process,
                    Secs(e.invoke_ms),
                    Secs(r.sent_ms),
                    e.invoke_ms - r.sent_ms,
                    r.create_time
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Entry;

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    /// An acknowledged send at `at` (true time), offset `offset`, CreateTime `ts`.
    fn send(at: Millis, offset: Offset, ts: i64) -> Entry {
        Entry {
            index: 0,
            process: NodeId::Producer(0),
            invoke_ms: at,
            complete_ms: Some(at + 5),
            outcome: Outcome::Ok,
            op: Op::Send {
                key: None,
                value: offset as u64,
                partition: tp(),
                offset: Some(offset),
                attempts: 1,
                txn: None,
                timeout: None,
                headers: Vec::new(),
                timestamp: Some(ts),
            },
        }
    }

    fn lookup(at: Millis, target_ms: i64, answer: Option<Offset>) -> Entry {
        let op = Op::OffsetsForTimes {
            partition: tp(),
            timestamp: RECORD_TIMESTAMP_BASE + target_ms,
            offset: answer,
            found_timestamp: answer.map(|_| RECORD_TIMESTAMP_BASE + target_ms),
        };
        Entry::instant(NodeId::Consumer(0), at, op)
    }

    /// The kinds reported for a history of `entries`.
    fn events(entries: Vec<Entry>) -> Vec<String> {
        let mut history = History::default();
        entries.into_iter().for_each(|e| history.push(e));
        let mut tallies = Tallies::default();
        check(&history, &Snapshot::default(), &mut tallies);
        tallies.into_reports().into_keys().collect()
    }

    #[test]
    fn lookups_are_judged_in_true_time() {
        let base = RECORD_TIMESTAMP_BASE;
        // A clock 10 s ahead: the record sent at 1 s reaches a 5 s target.
        let early = vec![send(1_000, 0, base + 11_000), lookup(8_000, 5_000, Some(0))];
        assert_eq!(events(early), ["lookup-early-by-clock"]);
        // A clock 10 s behind: the record sent at 6 s is skipped by a 5 s target.
        let late = vec![send(6_000, 0, base - 4_000), lookup(8_000, 5_000, None)];
        assert_eq!(events(late), ["lookup-late-by-clock"]);
        // True clocks: the same answers are right in true time too.
        let true_clock = vec![
            send(4_000, 0, base + 4_000),
            send(6_000, 1, base + 6_000),
            lookup(8_000, 5_000, Some(1)),
        ];
        assert!(events(true_clock).is_empty());
    }
}
