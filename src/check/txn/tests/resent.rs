//! Values sent twice: a pipeline instance that crashed before its records got a
//! partition, and its successor sending the same outputs elsewhere.

use super::*;
use crate::history::UNKNOWN_PARTITION;

/// Explore seed 128606: transaction 0 sends `a` then `c` while its producer still waits
/// for metadata (no partition yet) and its process crashes; transaction 1 of the next
/// process sends the same values to two partitions, `c` first at offset 0 of `out-0`,
/// then `a` at offset 0 of `out-1`, and commits. Black-box (no final logs).
fn resent_after_a_crash() -> B {
    let (a, c) = (v(0, 0), v(0, 1));
    let unknown = TopicPartition::new("out", UNKNOWN_PARTITION);
    let (t0, t1) = (txn(0, 0), txn(0, 1));
    let mut b = B::default();
    b.begin(P0, 10, t0, 7, 0)
        .send(P0, 20, Some(t0), a, &unknown, None)
        .send(P0, 30, Some(t0), c, &unknown, None)
        .begin(P1, 100, t1, 7, 1)
        .send(P1, 110, Some(t1), c, &out(0), Some(0))
        .send(P1, 120, Some(t1), a, &out(1), Some(0))
        .commit(P1, 130, t1, (7, 1))
        .poll(C0, 140, &out(0), &[(0, c)], true)
        .poll(C0, 150, &out(1), &[(0, a)], true);
    b
}

#[test]
fn a_send_that_never_got_a_partition_is_no_write() {
    let b = resent_after_a_crash();
    let view = b.view();
    // The reads are of transaction 1's copies: they say nothing of transaction 0.
    assert_eq!(view.txn_fate(txn(0, 0)), Some(Fate::Unknown));
    assert_eq!(view.txn_fate(txn(0, 1)), Some(Fate::Committed));
    assert_eq!(txn_counts(&b.run()), vec![]);
}

#[test]
fn a_read_in_another_partition_is_no_read_of_a_send() {
    // Transaction 0's sends had partitions this time (out-2), and stayed indefinite:
    // reads of the same values in out-0 and out-1 prove nothing of them.
    let mut b = resent_after_a_crash();
    let t0 = Some(txn(0, 0));
    for e in &mut b.h.entries {
        if let Op::Send {
            partition, txn: t, ..
        } = &mut e.op
        {
            if *t == t0 {
                *partition = out(2);
            }
        }
    }
    assert_eq!(b.view().txn_fate(txn(0, 0)), Some(Fate::Unknown));
    assert_eq!(txn_counts(&b.run()), vec![]);
}
