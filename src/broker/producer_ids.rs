//! Producer ids for `InitProducerId`: blocks from the controller (KIP-730), handed out in
//! order. [`ProducerIdManager`] owns the state and never calls back into the broker.

use super::*;

/// The transaction coordinators' internal topic (`txn_coordinator` will own it).
/// `RPCProducerIdManager.RETRY_BACKOFF_MS`: wait after a failed `AllocateProducerIds`.
pub(super) const PRODUCER_ID_RETRY_BACKOFF_MS: Millis = 50;

/// A block of producer ids from the controller: `[first, end)`; `next` is the first id
/// not handed out yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProducerIdsBlock {
    pub(super) first: i64,
    pub(super) end: i64,
    pub(super) next: i64,
}

/// Kafka's `RPCProducerIdManager`: hands out producer ids from blocks the controller
/// allocates (`AllocateProducerIds`, KIP-730). A block is asked for when the first id is
/// wanted, when the current block is 90% used (a prefetch) or used up; at most one
/// request is in flight and at most one block waits behind the current one. Process
/// memory: a restarted broker asks for a new block, and ids never repeat because the
/// controller's log records every block it gave.
#[derive(Debug, Default)]
pub(super) struct ProducerIdManager {
    pub(super) current: Option<ProducerIdsBlock>,
    /// The block received while the current one still had ids.
    pub(super) next_block: Option<ProducerIdsBlock>,
    /// A block is needed and has not arrived yet.
    pub(super) wanted: bool,
    /// No `AllocateProducerIds` before this time (after a failure).
    pub(super) retry_at: Millis,
    /// The end of the newest block received: blocks only move forward.
    pub(super) blocks_end: i64,
    /// The last id handed out.
    pub(super) last_producer_id: Option<i64>,
}

impl ProducerIdManager {
    /// Kafka's `generateProducerId`: the next id, or `None` while no block has one (a
    /// block is then wanted).
    pub(super) fn generate(&mut self) -> Option<i64> {
        if self.current.is_none_or(|b| b.next == b.end) {
            match self.next_block.take() {
                Some(block) => self.current = Some(block),
                None => {
                    self.wanted = true;
                    return None;
                }
            }
        }
        let block = self.current.as_mut().expect("a block with ids");
        let id = block.next;
        block.next += 1;
        assert!(block.next <= block.end);
        // Kafka's PID_PREFETCH_THRESHOLD: ask for the next block at 90%.
        if id == block.first + (block.end - block.first) * 9 / 10 && self.next_block.is_none() {
            self.wanted = true;
        }
        assert!(
            self.last_producer_id.is_none_or(|last| id > last),
            "producer id {id} handed out after {:?}",
            self.last_producer_id
        );
        self.last_producer_id = Some(id);
        Some(id)
    }

    /// Whether to send `AllocateProducerIds` now (if none is in flight).
    pub(super) fn should_request(&self, now: Millis) -> bool {
        self.wanted && now >= self.retry_at
    }

    /// The controller's block `[start, start + len)`; `image_next` is the metadata
    /// image's first unallocated id, which the block cannot straddle.
    pub(super) fn on_block(&mut self, start: i64, len: i32, image_next: i64) {
        assert!(
            start >= 0 && len > 0 && start.checked_add(i64::from(len)).is_some(),
            "invalid producer id block {start}+{len}"
        );
        let end = start + i64::from(len);
        assert!(
            start >= self.blocks_end,
            "producer id block {start}..{end} overlaps an earlier block ending at {}",
            self.blocks_end
        );
        assert!(
            image_next <= start || image_next >= end,
            "producer id block {start}..{end} disagrees with the metadata log ({image_next})"
        );
        assert!(self.next_block.is_none(), "a block was not asked for");
        self.blocks_end = end;
        self.wanted = false;
        self.next_block = Some(ProducerIdsBlock {
            first: start,
            end,
            next: start,
        });
    }

    /// `AllocateProducerIds` failed or timed out: retry after the backoff.
    pub(super) fn on_failure(&mut self, now: Millis) {
        self.retry_at = now + PRODUCER_ID_RETRY_BACKOFF_MS;
    }
}

impl Broker {
    /// `InitProducerId`. Without a `transactional.id` this is Kafka's
    /// `TransactionCoordinator.handleInitProducerId` for an idempotent producer: a fresh
    /// producer id at epoch 0 every time, even for a producer that sends its current id
    /// and epoch; `COORDINATOR_LOAD_IN_PROGRESS` (retriable) while no block has an id.
    pub(super) fn handle_init_producer_id(
        &mut self,
        req: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        assert!(
            req.transactional_id.is_none(),
            "a transactional InitProducerId goes to the transaction coordinator"
        );
        let answer = self
            .producer_ids
            .generate()
            .ok_or(ErrorCode::CoordinatorLoadInProgress);
        match answer {
            Ok(producer_id) => InitProducerIdResponse {
                error: ErrorCode::None,
                producer_id,
                producer_epoch: 0,
            },
            Err(error) => InitProducerIdResponse {
                error,
                producer_id: -1,
                producer_epoch: -1,
            },
        }
    }
}
