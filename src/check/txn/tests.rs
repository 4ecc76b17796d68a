//! Unit tests of `check::txn`.

use super::*;
use crate::check::{check as check_all, CheckResult};
use crate::history::{PartitionSnapshot, ReadRecord, Sink, TxnBatchSnapshot};

mod resent;

fn p(n: u32) -> TopicPartition {
    TopicPartition::new("orders", n)
}

fn out(n: u32) -> TopicPartition {
    TopicPartition::new("out", n)
}

/// Value number `n` of producer `p`, as the workload builds them.
fn v(p: u32, n: u32) -> Value {
    (u64::from(p) << 32) | u64::from(n)
}

/// Transaction number `n` of transactional client `c` (its `transactional.id` is
/// `tx-<c>`).
fn txn(c: u32, n: u32) -> TxnId {
    (u64::from(c) << 32) | u64::from(n)
}

const P0: NodeId = NodeId::Producer(0);
const P1: NodeId = NodeId::Producer(1);
const C0: NodeId = NodeId::Consumer(0);
const C1: NodeId = NodeId::Consumer(1);
const C2: NodeId = NodeId::Consumer(2);
const B2: NodeId = NodeId::Broker(2);

fn fail(error: &str) -> Outcome {
    Outcome::Fail {
        error: error.into(),
    }
}

fn info() -> Outcome {
    Outcome::Info {
        reason: "REQUEST_TIMED_OUT".into(),
    }
}

/// A history and snapshot builder.
#[derive(Default)]
struct B {
    h: History,
    snap: Snapshot,
}

impl B {
    /// An entry invoked 3 ms before it completed at `t`.
    fn push(&mut self, process: NodeId, t: Millis, outcome: Outcome, op: Op) -> &mut Self {
        let mut e = Entry::instant(process, t, op);
        e.invoke_ms = t.saturating_sub(3);
        e.outcome = outcome;
        self.h.push(e);
        self
    }

    fn begin(&mut self, process: NodeId, t: Millis, id: TxnId, pid: i64, epoch: i16) -> &mut Self {
        let op = Op::BeginTxn {
            transactional_id: format!("tx-{}", id >> 32),
            txn: id,
            producer_id: pid,
            producer_epoch: epoch,
        };
        self.push(process, t, Outcome::Ok, op)
    }

    /// A send, acknowledged at `offset` (indefinite without one).
    fn send(
        &mut self,
        process: NodeId,
        t: Millis,
        id: Option<TxnId>,
        value: Value,
        tp: &TopicPartition,
        offset: Option<Offset>,
    ) -> &mut Self {
        let outcome = if offset.is_some() {
            Outcome::Ok
        } else {
            info()
        };
        let op = Op::Send {
            timestamp: None,
            key: None,
            value,
            partition: tp.clone(),
            offset,
            attempts: 1,
            txn: id,
            timeout: None,
            headers: Vec::new(),
        };
        self.push(process, t, outcome, op)
    }

    #[allow(clippy::too_many_arguments)]
    fn end_with(
        &mut self,
        process: NodeId,
        t: Millis,
        id: TxnId,
        (pid, epoch): (i64, i16),
        commit: bool,
        outcome: Outcome,
        group: Option<(&str, &[(TopicPartition, Offset)])>,
    ) -> &mut Self {
        let op = Op::EndTxn {
            transactional_id: format!("tx-{}", id >> 32),
            txn: id,
            producer_id: pid,
            producer_epoch: epoch,
            commit,
            partitions: Vec::new(),
            group: group.map(|(g, _)| g.to_string()),
            offsets: group.map_or(Vec::new(), |(_, o)| o.to_vec()),
        };
        self.push(process, t, outcome, op)
    }

    /// A pipeline transaction's end, accepted: commits (else aborts) it with the
    /// offsets `offsets` of group `pipe`.
    fn end_pipe(
        &mut self,
        process: NodeId,
        t: Millis,
        id: TxnId,
        pe: (i64, i16),
        commit: bool,
        offsets: &[(TopicPartition, Offset)],
    ) -> &mut Self {
        let group = Some(("pipe", offsets));
        self.end_with(process, t, id, pe, commit, Outcome::Ok, group)
    }

    fn commit(&mut self, process: NodeId, t: Millis, id: TxnId, pe: (i64, i16)) -> &mut Self {
        self.end_with(process, t, id, pe, true, Outcome::Ok, None)
    }

    fn abort(&mut self, process: NodeId, t: Millis, id: TxnId, pe: (i64, i16)) -> &mut Self {
        self.end_with(process, t, id, pe, false, Outcome::Ok, None)
    }

    fn poll(
        &mut self,
        process: NodeId,
        t: Millis,
        tp: &TopicPartition,
        records: &[(Offset, Value)],
        read_committed: bool,
    ) -> &mut Self {
        let records: Vec<ReadRecord> = records
            .iter()
            .map(|&(offset, value)| ReadRecord {
                offset,
                key: None,
                value,
                headers: Vec::new(),
            })
            .collect();
        let high_watermark = records.last().map_or(0, |r| r.offset + 1);
        let op = Op::Poll {
            partition: tp.clone(),
            records,
            high_watermark,
            read_committed,
        };
        self.push(process, t, Outcome::Ok, op)
    }

    fn seek(
        &mut self,
        process: NodeId,
        t: Millis,
        tp: &TopicPartition,
        offset: Offset,
    ) -> &mut Self {
        let op = Op::Seek {
            partition: tp.clone(),
            offset,
            reason: "seek to the committed offset".into(),
        };
        self.push(process, t, Outcome::Ok, op)
    }

    #[allow(clippy::too_many_arguments)]
    fn processed(
        &mut self,
        process: NodeId,
        t: Millis,
        group: &str,
        tp: &TopicPartition,
        offset: Offset,
        value: Value,
    ) -> &mut Self {
        let op = Op::Processed {
            group: group.into(),
            member: format!("m{process}"),
            generation: 1,
            partition: tp.clone(),
            offset,
            value,
            sink: Sink::DedupStore,
        };
        self.push(process, t, Outcome::Ok, op)
    }

    fn committed(
        &mut self,
        process: NodeId,
        t: Millis,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> &mut Self {
        let op = Op::Committed {
            group: group.into(),
            member: format!("m{process}"),
            generation: 1,
            offsets: offsets.to_vec(),
        };
        self.push(process, t, Outcome::Ok, op)
    }

    /// An `offsetsForTimes(tp, target)` answered with `answer` (offset, timestamp);
    /// timestamps count from `RECORD_TIMESTAMP_BASE`.
    fn lookup(
        &mut self,
        process: NodeId,
        t: Millis,
        tp: &TopicPartition,
        target: i64,
        answer: Option<(Offset, i64)>,
    ) -> &mut Self {
        let op = Op::OffsetsForTimes {
            partition: tp.clone(),
            timestamp: RECORD_TIMESTAMP_BASE + target,
            offset: answer.map(|(o, _)| o),
            found_timestamp: answer.map(|(_, t)| RECORD_TIMESTAMP_BASE + t),
        };
        self.push(process, t, Outcome::Ok, op)
    }

    /// The final log of `tp` on its leader broker-1: data records, transactional
    /// batches (base, last, producer id, epoch) and markers (offset, producer id,
    /// epoch, commit, simulated ms written). The high watermark and the last stable
    /// offset are the log end offset.
    fn log(
        &mut self,
        tp: &TopicPartition,
        records: &[(Offset, Value)],
        batches: &[(Offset, Offset, i64, i16)],
        markers: &[(Offset, i64, i16, bool, Millis)],
    ) -> &mut Self {
        let end = records
            .iter()
            .map(|r| r.0)
            .chain(markers.iter().map(|m| m.0))
            .max()
            .map_or(0, |o| o + 1);
        let replica = ReplicaSnapshot {
            broker: 1,
            log_end_offset: end,
            high_watermark: end,
            records: records.to_vec(),
            corrupt: Vec::new(),
            last_stable_offset: end,
            markers: markers
                .iter()
                .map(
                    |&(offset, producer_id, producer_epoch, committed, ms)| MarkerSnapshot {
                        offset,
                        producer_id,
                        producer_epoch,
                        committed,
                        timestamp: RECORD_TIMESTAMP_BASE + ms as i64,
                    },
                )
                .collect(),
            txn_batches: batches
                .iter()
                .map(
                    |&(base_offset, last_offset, producer_id, producer_epoch)| TxnBatchSnapshot {
                        base_offset,
                        last_offset,
                        producer_id,
                        producer_epoch,
                    },
                )
                .collect(),
        };
        self.snap.partitions.push(PartitionSnapshot {
            partition: tp.clone(),
            leader: Some(1),
            isr: vec![1],
            replicas: vec![replica],
        });
        self
    }

    /// A final log whose records (offset, value, producer id) are each a batch of
    /// their own, in epoch 0.
    fn single_batches(
        &mut self,
        tp: &TopicPartition,
        records: &[(Offset, Value, i64)],
        markers: &[(Offset, i64, i16, bool, Millis)],
    ) -> &mut Self {
        let mut records = records.to_vec();
        records.sort_unstable();
        let batches: Vec<_> = records.iter().map(|&(o, _, pid)| (o, o, pid, 0)).collect();
        let values: Vec<_> = records.iter().map(|&(o, v, _)| (o, v)).collect();
        self.log(tp, &values, &batches, markers)
    }

    /// Sets the last stable offset of the last log added.
    fn lso(&mut self, lso: Offset) -> &mut Self {
        let p = self.snap.partitions.last_mut().expect("a log");
        p.replicas[0].last_stable_offset = lso;
        self
    }

    /// Sets the high watermark of the last log added.
    fn hw(&mut self, hw: Offset) -> &mut Self {
        let p = self.snap.partitions.last_mut().expect("a log");
        p.replicas[0].high_watermark = hw;
        self
    }

    fn run(&self) -> CheckResult {
        check_all(&self.h, &self.snap)
    }

    fn view(&self) -> TxnView {
        TxnView::new(&self.h, &self.snap)
    }
}

/// Counts of the transactional kinds only.
fn txn_counts(r: &CheckResult) -> Vec<(&str, u64)> {
    r.anomalies
        .iter()
        .filter(|(k, _)| describe(k).is_some())
        .map(|(k, a)| (k.as_str(), a.count))
        .collect()
}

/// Counts of every kind.
fn all_counts(r: &CheckResult) -> Vec<(&str, u64)> {
    r.anomalies
        .iter()
        .map(|(k, a)| (k.as_str(), a.count))
        .collect()
}

/// The examples of `kind`, which must be the only transactional kind found, once.
#[track_caller]
fn only_one<'a>(r: &'a CheckResult, kind: &str) -> &'a [String] {
    assert_eq!(txn_counts(r), vec![(kind, 1)]);
    examples(r, kind)
}

fn examples<'a>(r: &'a CheckResult, kind: &str) -> &'a [String] {
    &r.anomalies[kind].examples
}

// ------------------------------------------------------------ the view

#[test]
fn fates_come_from_the_first_marker_of_the_producer_after_the_batch() {
    let (a, b, c, d, e) = (v(0, 0), v(0, 1), v(1, 0), v(2, 0), v(0, 2));
    let mut bld = B::default();
    bld.log(
        &p(0),
        &[(0, a), (1, b), (2, c), (4, d), (5, e)],
        &[(0, 1, 7, 0), (4, 4, 8, 0), (5, 5, 7, 1)],
        // Producer 8's marker at 3 comes before its batch: it ends an earlier one.
        &[
            (3, 7, 0, true, 10),
            (6, 7, 1, false, 20),
            (3, 8, 0, true, 10),
        ],
    );
    let view = bld.view();
    assert_eq!(view.fate(&p(0), 0, a), Fate::Committed);
    assert_eq!(view.fate(&p(0), 1, b), Fate::Committed);
    assert_eq!(view.fate(&p(0), 2, c), Fate::NotTransactional);
    assert_eq!(view.fate(&p(0), 4, d), Fate::Open);
    assert_eq!(view.fate(&p(0), 5, e), Fate::Aborted);
    // Another value than the log holds there: the log says nothing about it.
    assert_eq!(view.fate(&p(0), 5, v(9, 9)), Fate::NotTransactional);
    assert!(view.visible(&p(0), 0, a) && !view.visible(&p(0), 4, d));
}

#[test]
fn without_the_log_a_send_takes_its_transactions_end() {
    let mut b = B::default();
    let cases = [
        (Some((true, Outcome::Ok)), Fate::Committed, Some(true)),
        (Some((false, Outcome::Ok)), Fate::Aborted, Some(false)),
        (
            Some((true, fail("PRODUCER_FENCED"))),
            Fate::Aborted,
            Some(false),
        ),
        (Some((true, info())), Fate::Unknown, Some(false)),
        (None, Fate::Unknown, Some(false)),
    ];
    for (n, (end, _, _)) in cases.iter().enumerate() {
        let id = txn(0, n as u32);
        b.begin(P0, 10, id, 7, n as i16).send(
            P0,
            20,
            Some(id),
            v(0, n as u32),
            &p(0),
            Some(n as Offset),
        );
        if let Some((commit, outcome)) = end {
            b.end_with(P0, 30, id, (7, n as i16), *commit, outcome.clone(), None);
        }
    }
    b.send(P1, 40, None, v(1, 0), &p(0), Some(9));
    let view = b.view();
    let sends: Vec<&Entry> =
        b.h.entries
            .iter()
            .filter(|e| matches!(e.op, Op::Send { .. }))
            .collect();
    for (send, (_, fate, visible)) in sends.iter().zip(&cases) {
        assert_eq!(view.send_fate(send), *fate, "{send:?}");
        assert_eq!(view.send_visible(send), *visible, "{send:?}");
    }
    assert_eq!(view.send_fate(sends[5]), Fate::NotTransactional);
    assert_eq!(view.send_visible(sends[5]), Some(true));
}

// ------------------------------------------------------------ aborted-read

#[test]
fn reading_aborted_data_is_an_aborted_read_at_either_isolation_level() {
    let a = v(0, 0);
    let t1 = txn(0, 1);
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .abort(P0, 30, t1, (7, 0))
        .poll(C0, 40, &p(0), &[(0, a)], true)
        .poll(C1, 40, &p(0), &[(0, a)], false)
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, false, 30)]);
    let r = b.run();
    // Neither the acknowledgement nor the reads count as observations of `a`:
    // nothing lost, unseen or phantom.
    assert_eq!(
        all_counts(&r),
        vec![("aborted-read", 2), ("transaction-aborted", 1)]
    );
    assert_eq!(
        examples(&r, "aborted-read")[0],
        format!(
            "consumer-0 (read_committed) read value {a} at offset 0 of orders-0 at 0.040 s, \
                 but its transaction tx-0#1 (producer id 7, epoch 0) was aborted: the ABORT \
                 marker of epoch 0 at offset 1, written at 0.030 s, follows it"
        )
    );
    assert!(examples(&r, "aborted-read")[1].starts_with("consumer-1 (read_uncommitted) read value"));
    assert_eq!(
        r.anomalies["aborted-read"].lines,
        [vec![1, 2, 3], vec![1, 2, 4]]
    );
}

#[test]
fn reading_an_open_transaction_is_an_aborted_read_and_committed_data_is_not() {
    let (a, c) = (v(0, 0), v(1, 0));
    let (t1, t2) = (txn(0, 1), txn(1, 1));
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .begin(P1, 10, t2, 8, 0)
        .send(P1, 20, Some(t2), c, &p(1), Some(0))
        .commit(P1, 30, t2, (8, 0))
        .poll(C0, 400, &p(0), &[(0, a)], true)
        .poll(C0, 400, &p(1), &[(0, c)], true)
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[])
        .lso(0)
        .log(&p(1), &[(0, c)], &[(0, 0, 8, 0)], &[(1, 8, 0, true, 30)]);
    let r = b.run();
    assert_eq!(
        txn_counts(&r),
        vec![("aborted-read", 1), ("hanging-transaction", 1)]
    );
    assert!(examples(&r, "aborted-read")[0]
        .ends_with("never committed: no marker follows it in the final log"));
    assert_eq!(
        examples(&r, "hanging-transaction"),
        [
            "producer id 7 epoch 0 (tx-0#1) left a transaction open on orders-0: its records \
              from offset 0 (sent at 0.017 s) have no marker after them in the final log of \
              its leader broker-1 (last stable offset 0, high watermark 1)"
        ]
    );
}

/// Kafka's coordinator aborts a transaction `transaction.timeout.ms` after it began,
/// at its next `transaction.abort.timed.out.transaction.cleanup.interval.ms` check,
/// while the cluster is up: one still open at the end of the run hangs only once it
/// has outlived that (the end of a run is not a hang).
#[test]
fn an_open_transaction_hangs_only_past_the_coordinators_timeout() {
    let a = v(0, 0);
    let t1 = txn(0, 1);
    let open = |end_ms: u64, fault_end: Option<u64>| {
        let mut b = B::default();
        b.begin(P0, 10, t1, 7, 0)
            .send(P0, 20, Some(t1), a, &p(0), Some(0))
            .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[])
            .lso(0);
        if let Some(t) = fault_end {
            b.push(
                NodeId::Nemesis,
                t,
                Outcome::Ok,
                Op::FaultEnd {
                    fault: "pause".into(),
                },
            );
        }
        b.snap.end_ms = end_ms;
        b.snap.transaction_abort_after_ms = 1_000;
        txn_counts(&b.run())
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect::<Vec<_>>()
    };
    let hangs = vec![("hanging-transaction".to_string(), 1)];
    // Begun 0.017 s in: still within the 1 s its coordinator allows at 1.000 s.
    assert_eq!(open(1_000, None), vec![]);
    assert_eq!(open(1_017, None), hangs);
    // A fault that ended at 0.997 s gives the coordinator until 1.997 s.
    assert_eq!(open(1_500, Some(1_000)), vec![]);
    assert_eq!(open(2_000, Some(1_000)), hangs);
    // Without the allowance (older snapshots) every open transaction hangs.
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[])
        .lso(0);
    assert_eq!(txn_counts(&b.run()), vec![("hanging-transaction", 1)]);
}

// ------------------------------------------------------------ precommitted-read

#[test]
fn reading_before_the_commit_marker_is_precommitted() {
    let a = v(0, 0);
    let t1 = txn(0, 1);
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .poll(C0, 50, &p(0), &[(0, a)], true)
        .commit(P0, 100, t1, (7, 0))
        .poll(C1, 150, &p(0), &[(0, a)], true)
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, true, 100)]);
    let r = b.run();
    assert_eq!(
        only_one(&r, "precommitted-read"),
        [format!(
            "consumer-0 (read_committed) read value {a} at offset 0 of orders-0 at 0.050 s, \
                 before the COMMIT marker of epoch 0 at offset 1, written at 0.100 s, ended its \
                 transaction tx-0#1 (producer id 7, epoch 0)"
        )]
    );
}

#[test]
fn a_transaction_polling_its_own_uncommitted_write_is_precommitted() {
    let o = output_value(v(0, 0));
    let t1 = txn(0, 1);
    let mut b = B::default();
    // No batches in the snapshot: the fate comes from the EndTxn (committed).
    b.begin(C0, 10, t1, 7, 0)
        .send(C0, 20, Some(t1), o, &out(0), Some(0))
        .poll(C0, 25, &out(0), &[(0, o)], true)
        .commit(C0, 30, t1, (7, 0))
        .poll(C1, 40, &out(0), &[(0, o)], true)
        .log(&out(0), &[(0, o)], &[], &[]);
    let r = b.run();
    assert!(only_one(&r, "precommitted-read")[0].starts_with("consumer-0 "));
    assert!(examples(&r, "precommitted-read")[0].ends_with(
        "a record its own transaction tx-0#1 (producer id 7, epoch 0) wrote and \
                        had not yet committed"
    ));
}

// ------------------------------------------------------------ partial-commit

/// A transaction writing one record to each of orders-0 and orders-1, whose markers
/// are `m0` and `m1` (commit?).
fn two_partitions(m0: bool, m1: bool) -> B {
    let (a, c) = (v(0, 0), v(0, 1));
    let t1 = txn(0, 1);
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .send(P0, 21, Some(t1), c, &p(1), Some(0))
        .commit(P0, 30, t1, (7, 0))
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, m0, 30)])
        .log(&p(1), &[(0, c)], &[(0, 0, 7, 0)], &[(1, 7, 0, m1, 30)]);
    b
}

#[test]
fn a_transaction_committed_in_one_partition_only_is_partial() {
    let r = two_partitions(true, false).run();
    assert_eq!(
            only_one(&r, "partial-commit"),
            ["transaction tx-0#1 (producer id 7, epoch 0) committed on orders-0 (offset 0, \
              then the COMMIT marker of epoch 0 at offset 1, written at 0.030 s) but not on \
              orders-1 (offset 0, then the ABORT marker of epoch 0 at offset 1, written at 0.030 s)"]
        );
    // The client was told it committed: the aborted record is a promise broken, so
    // the generic checks expect it (no consumer read anything here: unseen).
    assert_eq!(r.anomalies["unseen"].count, 2);
    assert_eq!(txn_counts(&two_partitions(true, true).run()), vec![]);
    assert_eq!(
        txn_counts(&two_partitions(false, false).run()),
        vec![("transaction-aborted", 1)]
    );
}

// ------------------------------------------------------------ hanging-transaction

#[test]
fn a_last_stable_offset_below_the_high_watermark_hangs_only_with_transactions() {
    let (a, c) = (v(0, 0), v(1, 0));
    let mut b = B::default();
    b.log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, true, 30)])
        .lso(1)
        .log(&p(1), &[(0, c), (1, v(1, 1))], &[], &[])
        .lso(0);
    let r = b.run();
    // orders-1 holds nothing transactional: its last stable offset (0, a snapshot
    // that does not report it) means nothing.
    assert_eq!(
        only_one(&r, "hanging-transaction"),
        [
            "orders-0 ends with last stable offset 1 below the high watermark 2 in the final \
              log of its leader broker-1, although every transactional batch there is \
              followed by a marker"
        ]
    );
    let mut fine = B::default();
    fine.log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, true, 30)]);
    assert_eq!(txn_counts(&fine.run()), vec![]);
    // A marker above the high watermark ends nothing for readers yet.
    let mut above = B::default();
    above
        .log(&p(0), &[(0, a)], &[(0, 0, 7, 0)], &[(1, 7, 0, true, 30)])
        .hw(1)
        .lso(0);
    let r = above.run();
    assert_eq!(
        only_one(&r, "hanging-transaction"),
        [
            "producer id 7 epoch 0 left a transaction open on orders-0: its records from \
              offset 0 end only at the COMMIT marker of epoch 0 at offset 1, written at \
              0.030 s, above the high watermark, in the final log of its leader broker-1 (last \
              stable offset 0, high watermark 1)"
        ]
    );
}

// ------------------------------------------------------------ zombie-write

#[test]
fn a_committed_batch_older_than_an_earlier_marker_is_a_zombie_write() {
    let (a, c) = (v(0, 0), v(0, 1));
    let (t1, t2) = (txn(0, 1), txn(0, 2));
    let mut b = B::default();
    // t1 runs in epoch 0; a new instance fences it (ABORT marker of epoch 1); the
    // zombie's next transaction, still in epoch 0, gets committed.
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .begin(P0, 50, t2, 7, 0)
        .send(P0, 60, Some(t2), c, &p(0), Some(2))
        .commit(P0, 70, t2, (7, 0))
        .log(
            &p(0),
            &[(0, a), (2, c)],
            &[(0, 0, 7, 0), (2, 2, 7, 0)],
            &[(1, 7, 1, false, 40), (3, 7, 0, true, 70)],
        );
    let r = b.run();
    assert_eq!(
        txn_counts(&r),
        vec![("transaction-aborted", 1), ("zombie-write", 1)]
    );
    assert_eq!(
        examples(&r, "zombie-write"),
        [
            "offsets 2-2 of orders-0 were written by producer id 7 with epoch 0 (tx-0#2) and \
              committed (the COMMIT marker of epoch 0 at offset 3, written at 0.070 s), \
              although a marker of epoch 1 of that producer precedes them at offset 1"
        ]
    );
    assert!(examples(&r, "transaction-aborted")[0].contains("without an EndTxn"));
}

#[test]
fn transaction_version_2_epoch_bumps_are_not_zombies() {
    // Every EndTxn bumps the epoch: markers carry the bumped epoch, and the next
    // transaction's records carry it too.
    let mut b = B::default();
    let mut records = Vec::new();
    let mut batches = Vec::new();
    let mut markers = Vec::new();
    for n in 0..3u32 {
        let id = txn(0, n);
        let epoch = n as i16;
        let offset = Offset::from(2 * n);
        let ms = 100 * Millis::from(n);
        b.begin(P0, ms + 10, id, 7, epoch).send(
            P0,
            ms + 20,
            Some(id),
            v(0, n),
            &p(0),
            Some(offset),
        );
        b.end_with(P0, ms + 30, id, (7, epoch), n != 2, Outcome::Ok, None);
        records.push((offset, v(0, n)));
        batches.push((offset, offset, 7, epoch));
        markers.push((offset + 1, 7, epoch + 1, n != 2, ms + 30));
    }
    b.log(&p(0), &records, &batches, &markers);
    let r = b.run();
    assert_eq!(
        only_one(&r, "transaction-aborted"),
        [
            "transaction tx-0#2 (producer id 7, epoch 2) of producer-0 was aborted by its \
              client at 0.230 s; the ABORT marker of epoch 3 at offset 5, written at 0.230 s, \
              ends it on orders-0"
        ]
    );
}

#[test]
fn a_fenced_transaction_that_got_committed_is_a_zombie_write() {
    let fenced = |commit_marker: bool| {
        let a = v(0, 0);
        let t1 = txn(0, 1);
        let mut b = B::default();
        b.begin(P0, 10, t1, 7, 0)
            .send(P0, 20, Some(t1), a, &p(0), Some(0))
            .end_with(P0, 30, t1, (7, 0), true, fail("PRODUCER_FENCED"), None)
            .log(
                &p(0),
                &[(0, a)],
                &[(0, 0, 7, 0)],
                &[(1, 7, 1, commit_marker, 25)],
            );
        b.run()
    };
    let r = fenced(true);
    assert_eq!(
        only_one(&r, "zombie-write"),
        [format!(
            "transaction tx-0#1 (producer id 7, epoch 0) was fenced (its EndTxn failed with \
                 PRODUCER_FENCED at 0.030 s), yet its value {} at offset 0 of orders-0 is \
                 committed (the COMMIT marker of epoch 1 at offset 1, written at 0.025 s)",
            v(0, 0)
        )]
    );
    let r = fenced(false);
    assert!(
        only_one(&r, "transaction-aborted")[0].contains("ended with PRODUCER_FENCED at 0.030 s")
    );
}

// ------------------------------------------------------------ output-duplicate

/// A pipeline (consumer-0, group `pipe`) processing input value `v(0, 0)` twice, in
/// two transactions; the second commits or aborts.
fn processed_twice(second_commits: bool) -> B {
    let x = v(0, 0);
    let o = output_value(x);
    let (t1, t2) = (txn(5, 1), txn(5, 2));
    let offsets = [(p(0), 1)];
    let mut b = B::default();
    b.send(P0, 5, None, x, &p(0), Some(0))
        .poll(C0, 8, &p(0), &[(0, x)], true)
        .begin(C0, 10, t1, 9, 0)
        .send(C0, 20, Some(t1), o, &out(0), Some(0))
        .end_pipe(C0, 30, t1, (9, 0), true, &offsets)
        .seek(C0, 35, &p(0), 0)
        .poll(C0, 38, &p(0), &[(0, x)], true)
        .begin(C0, 40, t2, 9, 1)
        .send(C0, 50, Some(t2), o, &out(0), Some(2))
        .end_pipe(C0, 60, t2, (9, 1), second_commits, &offsets)
        .log(&p(0), &[(0, x)], &[], &[])
        .log(
            &out(0),
            &[(0, o), (2, o)],
            &[(0, 0, 9, 0), (2, 2, 9, 1)],
            &[(1, 9, 1, true, 30), (3, 9, 2, second_commits, 60)],
        );
    b
}

#[test]
fn an_output_committed_twice_is_an_output_duplicate() {
    let r = processed_twice(true).run();
    assert_eq!(txn_counts(&r), vec![("output-duplicate", 1)]);
    assert!(!r.anomalies.contains_key("duplicate"));
    let (x, o) = (v(0, 0), output_value(v(0, 0)));
    assert_eq!(
        examples(&r, "output-duplicate"),
        [format!(
            "input value {x}'s output value {o} is committed at 2 places: offset 0 of \
                 out-0 (written by transaction tx-5#1), offset 2 of out-0 (written by \
                 transaction tx-5#2)"
        )]
    );
    // The second processing aborted: exactly once, and no generic duplicate either.
    let r = processed_twice(false).run();
    assert_eq!(txn_counts(&r), vec![("transaction-aborted", 1)]);
    assert!(!r.anomalies.contains_key("duplicate"));
}

// ------------------------------------------------------------ output-missing

/// Input `v(0, 0)` at offset 3 of orders-0, processed by the pipeline consumer-0
/// (group `pipe`) in a transaction committing orders-0 up to 4, and by consumer-1
/// of an ordinary group `g` that commits past it too. `kept`: whether out-0 still
/// holds the output.
fn processed_once(kept: bool) -> B {
    let x = v(0, 0);
    let o = output_value(x);
    let t1 = txn(5, 1);
    let offsets = [(p(0), 4)];
    let mut b = B::default();
    b.send(P0, 5, None, x, &p(0), Some(3))
        .poll(C0, 8, &p(0), &[(3, x)], true)
        .processed(C0, 9, "pipe", &p(0), 3, x)
        .begin(C0, 10, t1, 9, 0)
        .send(C0, 20, Some(t1), o, &out(0), Some(0))
        .end_pipe(C0, 30, t1, (9, 0), true, &offsets)
        .poll(C1, 8, &p(0), &[(3, x)], false)
        .processed(C1, 9, "g", &p(0), 3, x)
        .committed(C1, 10, "g", &offsets)
        .log(&p(0), &[(3, x)], &[], &[]);
    if kept {
        b.log(&out(0), &[(0, o)], &[(0, 0, 9, 0)], &[(1, 9, 1, true, 30)]);
    } else {
        b.log(&out(0), &[], &[], &[]);
    }
    b
}

#[test]
fn an_input_committed_past_without_its_output_is_output_missing() {
    let r = processed_once(false).run();
    assert_eq!(txn_counts(&r), vec![("output-missing", 1)]);
    let (x, o) = (v(0, 0), output_value(v(0, 0)));
    assert_eq!(
        examples(&r, "output-missing"),
        [format!(
            "input value {x} (offset 3 of orders-0) was processed by group pipe (member \
                 mconsumer-0 at 0.009 s), which committed orders-0 past it (to offset 4) at \
                 0.030 s (history line 5), but its output value {o} is committed in no \
                 partition's final log"
        )]
    );
    assert_eq!(txn_counts(&processed_once(true).run()), vec![]);
}

#[test]
fn an_at_least_once_pipeline_losing_an_output_is_output_missing() {
    // consumer-2 processes y and z in group `alo` without transactions, sends z's
    // output only, and commits past both.
    let (y, z) = (v(0, 1), v(0, 2));
    let mut b = B::default();
    b.send(P0, 5, None, y, &p(0), Some(0))
        .send(P0, 6, None, z, &p(0), Some(1))
        .poll(C2, 8, &p(0), &[(0, y), (1, z)], false)
        .processed(C2, 9, "alo", &p(0), 0, y)
        .processed(C2, 9, "alo", &p(0), 1, z)
        .send(C2, 10, None, output_value(z), &out(1), Some(0))
        .committed(C2, 11, "alo", &[(p(0), 2)])
        .log(&p(0), &[(0, y), (1, z)], &[], &[])
        .log(&out(1), &[(0, output_value(z))], &[], &[]);
    let r = b.run();
    assert!(only_one(&r, "output-missing")[0].starts_with(&format!("input value {y} ")));
}

// ------------------------------------------------------------ g0, g1c

/// tx-0#1 (producer id 1) and tx-1#1 (producer id 2) each write orders-0 and
/// orders-1, both committed; on orders-1 in the order `t1_first`.
fn two_writers(t1_first_on_1: bool) -> B {
    let (t1, t2) = (txn(0, 1), txn(1, 1));
    let (a0, a1, b0, b1) = (v(0, 0), v(0, 1), v(1, 0), v(1, 1));
    let (o_a1, o_b1) = if t1_first_on_1 { (0, 1) } else { (1, 0) };
    let mut b = B::default();
    b.begin(P0, 10, t1, 1, 0)
        .begin(P1, 10, t2, 2, 0)
        .send(P0, 20, Some(t1), a0, &p(0), Some(0))
        .send(P1, 21, Some(t2), b0, &p(0), Some(1))
        .send(P0, 22, Some(t1), a1, &p(1), Some(o_a1))
        .send(P1, 23, Some(t2), b1, &p(1), Some(o_b1))
        .commit(P0, 30, t1, (1, 0))
        .commit(P1, 31, t2, (2, 0))
        .log(
            &p(0),
            &[(0, a0), (1, b0)],
            &[(0, 0, 1, 0), (1, 1, 2, 0)],
            &[(2, 1, 0, true, 30), (3, 2, 0, true, 31)],
        );
    b.single_batches(
        &p(1),
        &[(o_a1, a1, 1), (o_b1, b1, 2)],
        &[(2, 1, 0, true, 30), (3, 2, 0, true, 31)],
    );
    b
}

#[test]
fn two_transactions_writing_in_opposite_orders_form_g0() {
    let r = two_writers(false).run();
    assert_eq!(
        only_one(&r, "g0"),
        [
            "committed transactions tx-0#1 (producer id 1, epoch 0), tx-1#1 (producer id 2, \
              epoch 0) form a write cycle (G0): tx-0#1 wrote offset 0 of orders-0 before \
              tx-1#1 wrote offset 1; tx-1#1 wrote offset 0 of orders-1 before tx-0#1 wrote \
              offset 1"
        ]
    );
    // The first transaction's BeginTxn, and both EndTxns.
    assert_eq!(r.anomalies["g0"].lines, [vec![0, 6, 7]]);
    assert_eq!(txn_counts(&two_writers(true).run()), vec![]);
}

/// tx-0#1 writes orders-0 and orders-1; the pipeline transaction tx-5#1 polls
/// tx-0#1's record of orders-0 and writes orders-1 before (`before`) or after it.
fn read_and_write(before: bool) -> B {
    let (t1, t2) = (txn(0, 1), txn(5, 1));
    let (a0, a1, o) = (v(0, 0), v(0, 1), output_value(v(0, 0)));
    let (o_a1, o_o) = if before { (1, 0) } else { (0, 1) };
    let mut b = B::default();
    b.begin(P0, 10, t1, 1, 0)
        .send(P0, 20, Some(t1), a0, &p(0), Some(0))
        .begin(C0, 21, t2, 2, 0)
        .send(C0, 22, Some(t2), o, &p(1), Some(o_o))
        .send(P0, 23, Some(t1), a1, &p(1), Some(o_a1))
        .commit(P0, 30, t1, (1, 0))
        .poll(C0, 40, &p(0), &[(0, a0)], true)
        .commit(C0, 50, t2, (2, 0))
        .log(&p(0), &[(0, a0)], &[(0, 0, 1, 0)], &[(1, 1, 0, true, 30)]);
    b.single_batches(
        &p(1),
        &[(o_a1, a1, 1), (o_o, o, 2)],
        &[(2, 1, 0, true, 30), (3, 2, 0, true, 50)],
    );
    b
}

#[test]
fn a_cycle_through_a_read_is_g1c() {
    let r = read_and_write(true).run();
    assert_eq!(
        only_one(&r, "g1c"),
        [format!(
            "committed transactions tx-0#1 (producer id 1, epoch 0), tx-5#1 (producer id \
                 2, epoch 0) form a cycle with a write-read edge (G1c): tx-5#1 polled value \
                 {} at offset 0 of orders-0, which tx-0#1 wrote; tx-5#1 wrote offset 0 of \
                 orders-1 before tx-0#1 wrote offset 1",
            v(0, 0)
        )]
    );
    assert_eq!(txn_counts(&read_and_write(false).run()), vec![]);
}

#[test]
fn components_and_cycles_follow_tarjan() {
    // 0 -> 1 -> 2 -> 0, 2 -> 3, 3 -> 4 -> 3, 5 alone.
    let adj = vec![vec![1], vec![2], vec![0, 3], vec![4], vec![3], vec![]];
    assert_eq!(components(&adj), vec![vec![3, 4], vec![0, 1, 2]]);
    assert_eq!(shortest_cycle(&adj, &[0, 1, 2], 1, 1), vec![1, 2, 0, 1]);
    assert_eq!(shortest_cycle(&adj, &[0, 1, 2], 2, 1), vec![2, 0, 1]);
    // A long chain closing into one cycle: no recursion, one component.
    let n = 200_000;
    let long: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
    let comps = components(&long);
    assert_eq!(comps.len(), 1);
    assert_eq!(comps[0].len(), n);
}

// ------------------------------------------------------------ internal checks

/// The pipeline transaction tx-5#1 of consumer-0 polls orders-0 twice: `first` then
/// `second`, optionally seeking in between. orders-0 holds a, b, c at 0, 1, 2; b is
/// in a transaction of producer id 3 that `b_commits` or aborts.
fn polls_in_a_transaction(first: Offset, second: Offset, seek: bool, b_commits: bool) -> B {
    let vals = [v(0, 0), v(3, 0), v(0, 1)];
    let t = txn(5, 1);
    let mut b = B::default();
    b.begin(C0, 10, t, 9, 0)
        .poll(C0, 20, &p(0), &[(first, vals[first as usize])], false);
    if seek {
        b.seek(C0, 25, &p(0), second);
    }
    b.poll(C0, 30, &p(0), &[(second, vals[second as usize])], false)
        .commit(C0, 40, t, (9, 0))
        .log(
            &p(0),
            &[(0, vals[0]), (1, vals[1]), (2, vals[2])],
            &[(1, 1, 3, 0)],
            &[(3, 3, 0, b_commits, 5)],
        );
    b
}

#[test]
fn a_transaction_jumping_over_a_committed_record_is_an_int_poll_skip() {
    let r = polls_in_a_transaction(0, 2, false, true).run();
    assert_eq!(
        only_one(&r, "int-poll-skip"),
        [format!(
            "transaction tx-5#1 (producer id 9, epoch 0) read offset 0 then offset 2 of \
                 orders-0 (at 0.030 s), skipping value {} at offset 1",
            v(3, 0)
        )]
    );
    // Jumping over an aborted record, or seeking, is no skip.
    assert_eq!(
        txn_counts(&polls_in_a_transaction(0, 2, false, false).run()),
        vec![]
    );
    assert_eq!(
        txn_counts(&polls_in_a_transaction(0, 2, true, true).run()),
        vec![]
    );
}

#[test]
fn a_transaction_reading_backwards_is_an_int_nonmonotonic_poll() {
    let r = polls_in_a_transaction(2, 1, false, true).run();
    assert_eq!(txn_counts(&r), vec![("int-nonmonotonic-poll", 1)]);
    assert_eq!(r.anomalies["nonmonotonic-poll"].count, 1);
    assert_eq!(
        txn_counts(&polls_in_a_transaction(2, 1, true, true).run()),
        vec![]
    );
    assert_eq!(
        txn_counts(&polls_in_a_transaction(0, 1, false, true).run()),
        vec![]
    );
}

/// tx-0#1 sends a then b to orders-0, acknowledged at `oa` and `ob`; producer-1's
/// plain record sits at 1 when `other` (else a marker of producer id 4 does).
fn sends_in_a_transaction(oa: Offset, ob: Offset, other: bool) -> B {
    let (a, c, x) = (v(0, 0), v(0, 1), v(1, 0));
    let t = txn(0, 1);
    let mut b = B::default();
    b.begin(P0, 10, t, 7, 0)
        .send(P0, 20, Some(t), a, &p(0), Some(oa))
        .send(P0, 30, Some(t), c, &p(0), Some(ob))
        .commit(P0, 40, t, (7, 0));
    let mut records = vec![(oa, a), (ob, c)];
    let mut markers = vec![(3, 7, 0, true, 40)];
    if other {
        b.send(P1, 25, None, x, &p(0), Some(1));
        records.push((1, x));
    } else {
        markers.push((1, 4, 0, false, 25));
    }
    records.sort_unstable();
    markers.sort_unstable_by_key(|m| m.0);
    let batches: Vec<(Offset, Offset, i64, i16)> = [oa, ob].iter().map(|&o| (o, o, 7, 0)).collect();
    b.log(&p(0), &records, &batches, &markers);
    b
}

#[test]
fn another_record_between_two_sends_of_a_transaction_is_an_int_send_skip() {
    let r = sends_in_a_transaction(0, 2, true).run();
    assert_eq!(
        only_one(&r, "int-send-skip"),
        [format!(
            "transaction tx-0#1 (producer id 7, epoch 0) sent value {} then value {} to \
                 orders-0, which landed at offset 0 then offset 2, with value {} of another \
                 writer at offset 1 between",
            v(0, 0),
            v(0, 1),
            v(1, 0)
        )]
    );
    // A marker between them takes an offset but is no record.
    assert_eq!(
        txn_counts(&sends_in_a_transaction(0, 2, false).run()),
        vec![]
    );
}

#[test]
fn sends_of_a_transaction_landing_backwards_are_int_nonmonotonic() {
    let r = sends_in_a_transaction(2, 0, false).run();
    assert_eq!(txn_counts(&r), vec![("int-nonmonotonic-send", 1)]);
    assert_eq!(
        txn_counts(&sends_in_a_transaction(0, 2, false).run()),
        vec![]
    );
}

// ------------------------------------------------------------ client events

#[test]
fn an_offsets_for_times_answer_on_a_marker_is_a_lookup_hit_marker() {
    let lookup = |offset: Offset| {
        let (a, c) = (v(0, 0), v(1, 0));
        let t = txn(0, 1);
        let mut b = B::default();
        b.begin(P0, 10, t, 7, 0)
            .send(P0, 20, Some(t), a, &p(0), Some(0))
            .commit(P0, 50, t, (7, 0))
            .send(P1, 63, None, c, &p(0), Some(2))
            .poll(C0, 70, &p(0), &[(0, a), (2, c)], true)
            .lookup(C0, 80, &p(0), 40, Some((offset, 50)))
            .log(
                &p(0),
                &[(0, a), (2, c)],
                &[(0, 0, 7, 0)],
                &[(1, 7, 0, true, 50)],
            );
        b.run()
    };
    let r = lookup(1);
    assert_eq!(
        txn_counts(&r),
        vec![("lookup-hit-marker", 1), ("marker-gap", 1)]
    );
    assert_eq!(
        examples(&r, "lookup-hit-marker"),
        [format!(
            "consumer-0's offsetsForTimes(orders-0, {}) at 0.080 s returned offset 1 \
                 (timestamp {}), which holds the COMMIT marker of producer id 7 (epoch 0, \
                 timestamp {}, written at 0.050 s), not a data record; the next data record, \
                 value {} at offset 2, has CreateTime {} (sent at 0.060 s): markers take \
                 offsets and carry the coordinator's clock, so a lookup by CreateTime can land \
                 on one",
            RECORD_TIMESTAMP_BASE + 40,
            RECORD_TIMESTAMP_BASE + 50,
            RECORD_TIMESTAMP_BASE + 50,
            v(1, 0),
            RECORD_TIMESTAMP_BASE + 60
        )]
    );
    assert_eq!(txn_counts(&lookup(2)), vec![("marker-gap", 1)]);
}

/// Two plain records on orders-0 (CreateTime 17 and 27 past the base), read at 35,
/// then one `offsetsForTimes(target)` at 80 answered with `answer` (offset, timestamp).
fn lookup_after_reads(target: i64, answer: Option<(Offset, i64)>) -> CheckResult {
    let (a, c) = (v(0, 0), v(0, 1));
    let mut b = B::default();
    b.send(P0, 20, None, a, &p(0), Some(0))
        .send(P0, 30, None, c, &p(0), Some(1))
        .poll(C0, 35, &p(0), &[(0, a), (1, c)], false)
        .lookup(C0, 80, &p(0), target, answer)
        .log(&p(0), &[(0, a), (1, c)], &[], &[]);
    b.run()
}

#[test]
fn an_offsets_for_times_answer_must_be_the_earliest_offset_reaching_the_target() {
    // KIP-79: the earliest offset whose timestamp is at or after the target.
    assert_eq!(txn_counts(&lookup_after_reads(20, Some((1, 27)))), vec![]);
    assert_eq!(txn_counts(&lookup_after_reads(30, None)), vec![]);
    let r = lookup_after_reads(10, Some((1, 27)));
    assert_eq!(
        only_one(&r, "lookup-not-earliest"),
        [format!(
            "consumer-0's offsetsForTimes(orders-0, {}) at 0.080 s returned offset 1 \
             (timestamp {}), but offset 0 holds an earlier record with timestamp {}, at or \
             after the target: Kafka answers with the earliest offset whose timestamp is at \
             or after the target",
            RECORD_TIMESTAMP_BASE + 10,
            RECORD_TIMESTAMP_BASE + 27,
            RECORD_TIMESTAMP_BASE + 17
        )]
    );
    // An answered record that does not reach the target.
    assert_eq!(
        txn_counts(&lookup_after_reads(28, Some((1, 27)))),
        vec![("lookup-not-earliest", 1)]
    );
    // Nothing found, though a record reaching the target had been read.
    assert_eq!(
        txn_counts(&lookup_after_reads(20, None)),
        vec![("lookup-not-earliest", 1)]
    );
    // The final log no longer holds the answered record: not judged.
    assert_eq!(txn_counts(&lookup_after_reads(10, Some((1, 99)))), vec![]);
}

#[test]
fn reads_jumping_over_markers_are_marker_gaps() {
    let (a, c) = (v(0, 0), v(0, 1));
    let mut b = B::default();
    b.poll(C0, 10, &p(0), &[(0, a), (3, c)], true)
        .poll(C1, 10, &p(0), &[(0, a)], false)
        .seek(C1, 12, &p(0), 3)
        .poll(C1, 14, &p(0), &[(3, c)], false)
        .log(
            &p(0),
            &[(0, a), (3, c)],
            &[(0, 0, 7, 0), (3, 3, 7, 1)],
            &[(1, 7, 1, true, 5), (2, 8, 0, false, 6), (4, 7, 2, true, 9)],
        );
    let r = b.run();
    assert_eq!(
        only_one(&r, "marker-gap"),
        [
            "consumer-0 read offset 0 then offset 3 of orders-0 at 0.010 s: 2 marker(s) sit \
              between them (COMMIT of producer id 7 at 1, ABORT of producer id 8 at 2), \
              control records that take offsets but are never returned to consumers"
        ]
    );
}

#[test]
fn a_read_committed_consumer_held_at_the_lso_is_an_lso_stall() {
    let mut b = B::default();
    let mut observe = |process: NodeId, t: Millis, hw: Offset, lso: Option<Offset>| {
        let op = Op::ObserveHighWatermark {
            partition: p(0),
            high_watermark: hw,
            last_stable_offset: lso,
            broker: NodeId::Broker(1),
        };
        b.push(process, t, Outcome::Ok, op);
    };
    observe(C0, 1_000, 5, Some(3));
    observe(C0, 3_000, 6, Some(3));
    observe(C1, 2_000, 5, Some(3));
    observe(C0, 3_500, 6, Some(6));
    observe(C2, 3_500, 9, None);
    observe(C2, 3_600, 9, Some(9));
    let r = b.run();
    assert_eq!(txn_counts(&r), vec![("lso-stall", 2)]);
    assert_eq!(
        examples(&r, "lso-stall"),
        [
            "consumer-0 was held at the last stable offset 3 of orders-0 (high watermark 5) \
                 from 1.000 s until 3.500 s, 2.500 s; the longest stall on orders-0 was 2.500 s \
                 (consumer-0 from 1.000 s)",
            "consumer-1 was held at the last stable offset 3 of orders-0 (high watermark 5) \
                 from 2.000 s until the end of the run, 1.600 s; the longest stall on orders-0 \
                 was 2.500 s (consumer-0 from 1.000 s)",
        ]
    );
}

#[test]
fn aborted_transactions_are_counted_with_who_ended_them() {
    let (t1, t2, t3, t4) = (txn(0, 1), txn(1, 1), txn(0, 2), txn(2, 1));
    let state = |id: &str, epoch: i16, from: &str, to: &str| Op::TxnState {
        transactional_id: id.into(),
        producer_id: 8,
        producer_epoch: epoch,
        from: from.into(),
        to: to.into(),
    };
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), v(0, 0), &p(0), Some(0))
        .abort(P0, 30, t1, (7, 0))
        .begin(P1, 10, t2, 8, 0)
        .send(P1, 20, Some(t2), v(1, 0), &p(1), Some(0))
        .begin(NodeId::Producer(2), 10, t4, 9, 0)
        .send(NodeId::Producer(2), 20, Some(t4), v(2, 0), &p(2), Some(0))
        .push(
            B2,
            5_000,
            Outcome::Ok,
            state("tx-2", 1, "Ongoing", "PrepareEpochFence"),
        )
        .push(
            B2,
            5_001,
            Outcome::Ok,
            state("tx-2", 1, "PrepareEpochFence", "PrepareAbort"),
        )
        .push(
            B2,
            60_010,
            Outcome::Ok,
            state("tx-1", 1, "Ongoing", "PrepareAbort"),
        )
        .begin(P0, 40, t3, 7, 1)
        .send(P0, 50, Some(t3), v(0, 1), &p(0), Some(2))
        .commit(P0, 60, t3, (7, 1))
        .log(
            &p(0),
            &[(0, v(0, 0)), (2, v(0, 1))],
            &[(0, 0, 7, 0), (2, 2, 7, 1)],
            &[(1, 7, 1, false, 30), (3, 7, 2, true, 60)],
        )
        .log(
            &p(1),
            &[(0, v(1, 0))],
            &[(0, 0, 8, 0)],
            &[(1, 8, 1, false, 60_020)],
        )
        .log(
            &p(2),
            &[(0, v(2, 0))],
            &[(0, 0, 9, 0)],
            &[(1, 9, 1, false, 5_002)],
        );
    let r = b.run();
    assert_eq!(txn_counts(&r), vec![("transaction-aborted", 3)]);
    assert_eq!(
        examples(&r, "transaction-aborted"),
        [
            "transaction tx-0#1 (producer id 7, epoch 0) of producer-0 was aborted by its \
                 client at 0.030 s; the ABORT marker of epoch 1 at offset 1, written at 0.030 s, \
                 ends it on orders-0",
            "transaction tx-1#1 (producer id 8, epoch 0) of producer-1 was aborted by its \
                 coordinator (PrepareAbort at 60.010 s, epoch 1); the ABORT marker of epoch 1 \
                 at offset 1, written at 60.020 s, ends it on orders-1",
            "transaction tx-2#1 (producer id 9, epoch 0) of producer-2 was fenced by its \
                 coordinator (PrepareEpochFence: a new instance of its transactional id, or its \
                 transaction.timeout.ms passed) and aborted (PrepareAbort at 5.001 s, epoch 1); \
                 the ABORT marker of epoch 1 at offset 1, written at 5.002 s, ends it on \
                 orders-2",
        ]
    );
}

// ------------------------------------------------------------ the main checker

#[test]
fn every_transactional_kind_is_listed_by_the_checker() {
    let anomalies = crate::check::kinds::ANOMALY_KINDS
        .iter()
        .filter(|k| describe(k).is_some());
    let events = crate::check::kinds::EVENT_KINDS
        .iter()
        .filter(|k| describe(k).is_some());
    assert_eq!((anomalies.count(), events.count()), (14, 4));
}

#[test]
fn aborted_data_is_no_observation_but_a_broken_commit_is_a_lost_write() {
    let (a, c, d) = (v(0, 0), v(0, 1), v(1, 0));
    let (t1, t2) = (txn(0, 1), txn(0, 2));
    let mut b = B::default();
    b.begin(P0, 10, t1, 7, 0)
        .send(P0, 20, Some(t1), a, &p(0), Some(0))
        .abort(P0, 30, t1, (7, 0))
        .begin(P0, 40, t2, 7, 1)
        .send(P0, 50, Some(t2), c, &p(0), Some(2))
        .commit(P0, 60, t2, (7, 1))
        .send(P1, 70, None, d, &p(0), Some(4))
        .poll(C0, 80, &p(0), &[(4, d)], true)
        .processed(C0, 81, "g", &p(0), 4, d)
        .committed(C0, 82, "g", &[(p(0), 5)])
        // The log aborted t2, although its client was told it committed.
        .log(
            &p(0),
            &[(0, a), (2, c), (4, d)],
            &[(0, 0, 7, 0), (2, 2, 7, 1)],
            &[(1, 7, 1, false, 30), (3, 7, 2, false, 60)],
        );
    let r = b.run();
    assert_eq!(
        all_counts(&r),
        vec![
            ("lost-write", 1),
            ("processing-loss", 1),
            ("transaction-aborted", 2)
        ]
    );
    assert!(examples(&r, "lost-write")[0].starts_with(&format!("value {c} ")));
    assert!(examples(&r, "processing-loss")[0].starts_with(&format!("value {c},")));
    assert!(examples(&r, "transaction-aborted")[1]
        .contains("was aborted although its client's commit was acknowledged at 0.060 s"));
}

#[test]
fn large_transactional_history_checks_fast_and_deterministically() {
    // 2 producers x 2,500 transactions of 10 sends over 2 of 4 partitions (one in
    // ten aborted, transaction version 2 epochs), then a read_committed consumer
    // reading every committed record in polls of 50: 50,000 sends.
    let mut b = B::default();
    type Log = (
        Vec<(Offset, Value)>,
        Vec<(Offset, Offset, i64, i16)>,
        Vec<Marker>,
    );
    type Marker = (Offset, i64, i16, bool, Millis);
    let mut logs: Vec<Log> = vec![(Vec::new(), Vec::new(), Vec::new()); 4];
    let mut next = [0 as Offset; 4];
    let mut counter = [0u32; 2];
    let mut committed: Vec<Vec<(Offset, Value)>> = vec![Vec::new(); 4];
    for k in 0..5_000u32 {
        let producer = k % 2;
        let process = NodeId::Producer(producer);
        let (pid, epoch) = (i64::from(producer) + 1, (k / 2) as i16);
        let id = txn(producer, k / 2);
        let t = Millis::from(k) * 10;
        let commit = k % 10 != 9;
        b.begin(process, t, id, pid, epoch);
        for part in [k % 4, (k + 1) % 4] {
            let i = part as usize;
            let base = next[i];
            for _ in 0..5 {
                let value = v(producer, counter[producer as usize]);
                counter[producer as usize] += 1;
                b.send(process, t + 1, Some(id), value, &p(part), Some(next[i]));
                logs[i].0.push((next[i], value));
                if commit {
                    committed[i].push((next[i], value));
                }
                next[i] += 1;
            }
            logs[i].1.push((base, next[i] - 1, pid, epoch));
        }
        b.end_with(process, t + 5, id, (pid, epoch), commit, Outcome::Ok, None);
        for part in [k % 4, (k + 1) % 4] {
            let i = part as usize;
            logs[i].2.push((next[i], pid, epoch + 1, commit, t + 5));
            next[i] += 1;
        }
    }
    for (part, records) in committed.iter().enumerate() {
        for chunk in records.chunks(50) {
            b.poll(C0, 60_000, &p(part as u32), chunk, true);
        }
    }
    for (part, (records, batches, markers)) in logs.iter().enumerate() {
        b.log(&p(part as u32), records, batches, markers);
    }
    let start = std::time::Instant::now();
    let r = b.run();
    let elapsed = start.elapsed();
    let kinds: Vec<&str> = r.anomalies.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["marker-gap", "transaction-aborted"]);
    assert_eq!(r.anomalies["transaction-aborted"].count, 500);
    assert_eq!(r.stats.sends, 50_000);
    assert_eq!(b.run(), r);
    assert!(elapsed.as_secs() < 10, "checking took {elapsed:?}");
}
