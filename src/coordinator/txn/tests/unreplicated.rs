//! [`unreplicated_prepares`]: the prepared transactions a coordinator loading its log to
//! the end completes on a record only it may have.

use super::*;
use crate::kafka::record::{set_base_offset, RECORD_TIMESTAMP_BASE};

/// A `__transaction_state` batch of one record of `tx` in `state`, at `offset`.
fn at(offset: Offset, state: TransactionState) -> Bytes {
    let mut t = transit(state);
    t.producer_epoch = 3;
    let record = (encode_key("tx"), encode_value(&t, 2));
    let mut b = encode_batch(RECORD_TIMESTAMP_BASE, vec![record], None).to_vec();
    set_base_offset(&mut b, offset);
    Bytes::from(b)
}

#[test]
fn only_a_prepare_left_above_the_high_watermark_is_unreplicated() {
    let log = [at(0, Ongoing), at(1, PrepareCommit)];
    assert_eq!(
        unreplicated_prepares(0, &log, 1),
        vec![UnreplicatedPrepare {
            transactional_id: "tx".into(),
            producer_id: 0,
            producer_epoch: 3,
            state: PrepareCommit,
        }]
    );
    // Below the high watermark: the followers have it.
    assert!(unreplicated_prepares(0, &log, 2).is_empty());
    // Completed later in the log: nothing left to complete.
    let done = [at(0, Ongoing), at(1, PrepareAbort), at(2, CompleteAbort)];
    assert!(unreplicated_prepares(0, &done, 1).is_empty());
    // Ongoing at the end: no decision yet.
    assert!(unreplicated_prepares(0, &log[..1], 0).is_empty());
}
