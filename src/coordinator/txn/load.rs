//! Replaying a `__transaction_state` log as a coordinator loads it, and what that load
//! completes on records only this replica may have.

use super::metadata::{TransactionState, TxnValue};
use super::records::decode_record;
use crate::kafka::protocol::Offset;
use crate::kafka::record::RecordBatch;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A transaction found prepared by a record at or above a given offset of its
/// `__transaction_state` partition ([`unreplicated_prepares`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreplicatedPrepare {
    /// `transactional.id`.
    pub transactional_id: Arc<str>,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// `PrepareCommit` or `PrepareAbort`.
    pub state: TransactionState,
}

/// The transactions that `batches` (a `__transaction_state` partition's log, in order)
/// leave prepared by a record at or above `high_watermark`: what a coordinator loading
/// this log to its end would complete on a decision its followers may not have.
pub fn unreplicated_prepares(
    partition: u32,
    batches: &[Bytes],
    high_watermark: Offset,
) -> Vec<UnreplicatedPrepare> {
    replay(partition, batches)
        .into_iter()
        .filter(|(_, (t, offset))| t.state.is_prepared() && *offset >= high_watermark)
        .map(|(id, (t, _))| UnreplicatedPrepare {
            transactional_id: id,
            producer_id: t.producer_id,
            producer_epoch: t.producer_epoch,
            state: t.state,
        })
        .collect()
}

/// Each transactional id's last value in `batches`, with the offset of its record (a
/// tombstone removes the id), as Kafka's `TransactionStateManager.loadTransactionMetadata`
/// replays the log.
pub(super) fn replay(partition: u32, batches: &[Bytes]) -> BTreeMap<Arc<str>, (TxnValue, Offset)> {
    let mut loaded = BTreeMap::new();
    for bytes in batches {
        let (batch, _) = RecordBatch::decode(bytes).expect("stored batches are valid");
        for r in &batch.records {
            let key = r.key.as_ref().expect("transaction records have keys");
            let offset = batch.base_offset + i64::from(r.offset_delta);
            match decode_record(key, r.value.as_deref()) {
                Ok((id, Some(t))) => {
                    loaded.insert(id, (t, offset));
                }
                Ok((id, None)) => {
                    loaded.remove(&id);
                }
                Err(e) => panic!("undecodable record in __transaction_state-{partition}: {e}"),
            }
        }
    }
    loaded
}
