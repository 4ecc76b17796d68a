//! KAFKA-17754's late `EndTxn` at the transaction coordinator.

use super::*;

/// KAFKA-17754: the first transaction's commit, answered through a retry, arrives again
/// while the next transaction is open. Version 1 takes it for that transaction's
/// commit; version 2 fences its older epoch, unless `late-end-txn` is on.
#[test]
fn a_late_end_txn_commits_the_next_transaction_only_under_version_1() {
    for (version, bug, commits) in [(1, false, true), (2, false, false), (2, true, true)] {
        let bugs = if bug {
            Bugs::of(&[Bug::LateEndTxn])
        } else {
            Bugs::default()
        };
        let (mut h, mut c) = (Harness::default(), coordinator(version, bugs));
        let first = init(&mut h, &mut c, 0);
        assert_eq!(add(&mut h, &mut c, 10, first, &orders(1)), ErrorCode::None);
        let r = end(&mut h, &mut c, 20, first, true);
        assert_eq!(r.error, ErrorCode::None);
        h.deliver_markers(&mut c, 30);
        let next = if version == 2 {
            (r.producer_id, r.producer_epoch)
        } else {
            first
        };
        assert_eq!(add(&mut h, &mut c, 40, next, &orders(2)), ErrorCode::None);
        let late = end(&mut h, &mut c, 50, first, true);
        let t = txn(&c);
        if commits {
            assert_eq!(late.error, ErrorCode::None, "version {version}");
            assert_eq!(
                (t.state, t.partitions),
                (PrepareCommit, orders(2)),
                "the late commit ends the next transaction (version {version})"
            );
        } else {
            assert_eq!(late.error, ErrorCode::ProducerFenced);
            assert_eq!((t.state, t.partitions), (Ongoing, orders(2)));
        }
    }
}
