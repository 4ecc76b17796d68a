//! The idempotent and transactional producers' state in one partition (KIP-98):
//! Kafka's `ProducerStateManager`, `ProducerStateEntry` and the rules of
//! `ProducerAppendInfo`.
//!
//! For every producer id with batches in the log the state keeps the current producer
//! epoch, the metadata of its last [`NUM_BATCHES_TO_RETAIN`] batches of that epoch, the
//! first offset of its ongoing transaction in the partition and the coordinator epoch of
//! the last transaction marker written for it. The partition leader checks each client
//! batch against it before appending ([`check_append`]): a retry of a batch already in
//! the log is recognised as a duplicate, a gap or a stale epoch is refused; and each
//! transaction marker ([`check_marker`]): a marker of an older producer epoch or from a
//! replaced transaction coordinator is refused. Every replica applies every appended
//! batch ([`update`]), the leader after its check and followers without one (Kafka's
//! `AppendOrigin.REPLICATION`), so a follower elected leader knows the producers and
//! their open transactions.
//!
//! The state is a function of the log: replaying the log's batches in order gives the
//! same state, which is how truncation and log recovery after a restart rebuild it (see
//! [`crate::broker::log::Log`]). Batches without a producer id (`producer_id = -1`) carry no
//! state.
//!
//! [`check_append`]: ProducerStateManager::check_append
//! [`check_marker`]: ProducerStateManager::check_marker
//! [`update`]: ProducerStateManager::update

use crate::kafka::protocol::{ErrorCode, Offset};
use crate::kafka::record::{BatchHeader, ControlRecordType, EndTransactionMarker, NO_SEQUENCE};
use std::collections::{BTreeMap, VecDeque};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`: batches remembered per producer
/// for duplicate detection, the producer's limit of 5 requests in flight.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;

/// Bound on producer ids per partition, far above any scenario's producer count.
const MAX_PRODUCERS: usize = 1_000_000;

/// Kafka's `inSequence`: whether `next_seq` directly follows `last_seq`, wrapping from
/// `i32::MAX` to 0.
pub fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Where one batch of a producer landed (Kafka's `BatchMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offset of its first record.
    pub first_offset: Offset,
    /// Offset of its last record.
    pub last_offset: Offset,
}

/// One producer's state in a partition (Kafka's `ProducerStateEntry`): its current
/// epoch, its last batches of that epoch, oldest first (none after a marker that moved
/// the epoch, or when only markers of it are in the log), its ongoing transaction and
/// the coordinator epoch of its last marker, and the max timestamp of its last batch
/// (what its expiration counts from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    producer_epoch: i16,
    batches: VecDeque<BatchMetadata>,
    coordinator_epoch: i32,
    current_txn_first_offset: Option<Offset>,
    last_timestamp: i64,
}

impl ProducerStateEntry {
    /// Kafka's `ProducerStateEntry.empty`, at `producer_epoch`: no batch, no
    /// transaction, coordinator epoch -1.
    fn empty(producer_epoch: i16) -> Self {
        ProducerStateEntry {
            producer_epoch,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
            coordinator_epoch: -1,
            current_txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    /// Kafka's `lastTimestamp`: the max timestamp of the producer's last batch in the
    /// log, a marker's included (KAFKA-9144).
    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// The producer's current epoch.
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// The sequence of the producer's last record of the current epoch in the log;
    /// `NO_SEQUENCE` (-1) when there is none.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// The cached batches of the current epoch, oldest first (at most
    /// [`NUM_BATCHES_TO_RETAIN`]).
    pub fn batches(&self) -> &VecDeque<BatchMetadata> {
        &self.batches
    }

    /// The epoch of the transaction coordinator that wrote the producer's last marker
    /// in this partition (-1 before any).
    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// The first offset of the producer's ongoing transaction in this partition.
    pub fn current_txn_first_offset(&self) -> Option<Offset> {
        self.current_txn_first_offset
    }

    /// Kafka's `findDuplicateBatch`: the cached batch with exactly this sequence range.
    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a different epoch forgets the batches.
    fn set_epoch(&mut self, producer_epoch: i16) {
        if self.producer_epoch != producer_epoch {
            self.producer_epoch = producer_epoch;
            self.batches.clear();
        }
    }

    fn add_batch(&mut self, batch: BatchMetadata) {
        if let Some(last) = self.batches.back() {
            assert!(
                batch.first_offset > last.last_offset,
                "producer batches must move forward in the log: {batch:?} after {last:?}"
            );
        }
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        assert!(!self.batches.is_empty() && self.batches.len() <= NUM_BATCHES_TO_RETAIN);
    }
}

/// The leader's verdict on a client batch that passed the sequence rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendCheck {
    /// The next batch of the producer: append it.
    Append,
    /// A retry of a batch already in the log at these offsets: do not append it again.
    Duplicate {
        /// Offset of the original batch's first record.
        first_offset: Offset,
        /// Offset of its last record.
        last_offset: Offset,
    },
}

/// A transaction a marker ended in this partition (Kafka's `CompletedTxn`): only a
/// marker that ends an ongoing transaction completes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// The transaction's first offset in the partition.
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    /// Whether the marker is an ABORT.
    pub aborted: bool,
}

/// Kafka's `ProducerStateManager` for one partition: producer id -> its entry, and the
/// ongoing transactions by first offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerStateEntry>,
    /// Kafka's `ongoingTxns`: first offset -> producer id (at most one per producer).
    ongoing_txns: BTreeMap<Offset, i64>,
}

impl ProducerStateManager {
    /// Kafka's `lastEntry`: the state of a producer id, if it has batches in the log.
    pub fn last_entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producer ids with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Kafka's `removeExpiredProducers`: forgets every producer with no transaction
    /// open here whose last batch's timestamp is `expiration_ms` or more before `now`
    /// (`isProducerExpired`). Returns how many were removed.
    pub fn remove_expired(&mut self, now: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// The pre-KAFKA-7190 `evictUnretainedProducers` (the `evict-producers-on-log-start`
    /// switch): forgets every producer whose last data batch lies below the new log
    /// start offset (one with only markers, or none, too), unless a transaction of it
    /// is open here.
    pub fn evict_unretained(&mut self, log_start_offset: Offset) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || e.batches
                    .back()
                    .is_some_and(|b| b.last_offset >= log_start_offset)
        });
        before - self.producers.len()
    }

    /// Kafka's `firstUndecidedOffset`: the first offset of the earliest transaction no
    /// marker has ended yet.
    pub fn first_undecided_offset(&self) -> Option<Offset> {
        self.ongoing_txns.keys().next().copied()
    }

    /// Kafka's `UnifiedLog.hasOngoingTransaction`: whether the producer has a
    /// transaction open in this partition in exactly this epoch.
    pub fn has_ongoing_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers.get(&producer_id).is_some_and(|e| {
            e.current_txn_first_offset.is_some() && e.producer_epoch == producer_epoch
        })
    }

    /// The leader's check of a client batch (Kafka's `ProducerAppendInfo` with
    /// `AppendOrigin.CLIENT`), in this order:
    ///
    /// - no producer id: append, there is nothing to check;
    /// - an epoch older than the producer's: `INVALID_PRODUCER_EPOCH` (without
    ///   `epoch_fencing`, the `no-producer-epoch-fencing` bug, a transactional batch is
    ///   appended as it is);
    /// - the same epoch and the sequence range of one of the cached batches: a
    ///   duplicate of that batch;
    /// - a newer epoch (a bumped producer, KIP-360, or the epoch of the producer's
    ///   next transaction, KIP-890): the first sequence must be 0, else
    ///   `OUT_OF_ORDER_SEQUENCE_NUMBER`;
    /// - an unknown producer id: any sequence is appended (Kafka 4.x
    ///   `ProducerAppendInfo.checkSequence`: the entry of a producer without state has
    ///   no epoch, and a batch of a new epoch needs sequence 0 only when the entry has
    ///   one; `UnknownProducerIdException` is never raised on append since KIP-360);
    /// - the same epoch: the first sequence must follow the last one ([`in_sequence`];
    ///   0 after a marker that moved the epoch), else `OUT_OF_ORDER_SEQUENCE_NUMBER`;
    /// - a batch outside a transaction while the producer has one open here:
    ///   `INVALID_TXN_STATE`.
    pub fn check_append(
        &self,
        header: &BatchHeader,
        epoch_fencing: bool,
    ) -> Result<AppendCheck, ErrorCode> {
        self.check_append_verified(header, epoch_fencing, None)
    }

    /// [`Self::check_append`] with the lowest sequence of the producer's KIP-890
    /// verification under way in this partition (Kafka's `VerificationStateEntry`,
    /// kept until a transactional batch or a marker of the producer is written): a
    /// batch that is not a duplicate, with a higher first sequence, is
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER` (the first clause of Kafka's `checkSequence`),
    /// which keeps the batches behind a refused first batch of a transaction out of
    /// the log until it is in; the client retries them without an epoch bump.
    pub fn check_append_verified(
        &self,
        header: &BatchHeader,
        epoch_fencing: bool,
        verification_lowest_seq: Option<i32>,
    ) -> Result<AppendCheck, ErrorCode> {
        if !header.has_producer_id() {
            return Ok(AppendCheck::Append);
        }
        let (epoch, first_seq) = (header.producer_epoch, header.base_sequence);
        let beyond_verification = verification_lowest_seq.is_some_and(|lowest| first_seq > lowest);
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return if beyond_verification {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            } else {
                Ok(AppendCheck::Append)
            };
        };
        if epoch < entry.producer_epoch {
            return if !epoch_fencing && header.is_transactional() {
                Ok(AppendCheck::Append)
            } else {
                Err(ErrorCode::InvalidProducerEpoch)
            };
        }
        if epoch == entry.producer_epoch {
            if let Some(b) = entry.find_duplicate(first_seq, header.last_sequence()) {
                return Ok(AppendCheck::Duplicate {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                });
            }
        }
        if beyond_verification {
            return Err(ErrorCode::OutOfOrderSequenceNumber);
        }
        let in_order = if epoch > entry.producer_epoch {
            first_seq == 0
        } else {
            in_sequence(entry.last_sequence(), first_seq)
        };
        if !in_order {
            return Err(ErrorCode::OutOfOrderSequenceNumber);
        }
        if entry.current_txn_first_offset.is_some() && !header.is_transactional() {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(AppendCheck::Append)
    }

    /// The leader's check of a batch the group coordinator writes for a producer (a
    /// `TxnOffsetCommit`'s offsets; Kafka's `ProducerAppendInfo` with
    /// `AppendOrigin.COORDINATOR`: `checkProducerEpoch` only, no sequence): an epoch
    /// older than the producer's in this partition (a fenced producer, once the fence's
    /// marker is written here) is `INVALID_PRODUCER_EPOCH`. Without `epoch_fencing` (the
    /// `no-producer-epoch-fencing` bug) it is appended as it is.
    pub fn check_coordinator_append(
        &self,
        header: &BatchHeader,
        epoch_fencing: bool,
    ) -> Result<(), ErrorCode> {
        if !header.has_producer_id() || !epoch_fencing {
            return Ok(());
        }
        match self.producers.get(&header.producer_id) {
            Some(entry) if header.producer_epoch < entry.producer_epoch => {
                Err(ErrorCode::InvalidProducerEpoch)
            }
            _ => Ok(()),
        }
    }

    /// The leader's check of a transaction marker (Kafka's `appendEndTxnMarker` with
    /// transaction version 0/1 rules): a marker epoch older than the producer's is
    /// `INVALID_PRODUCER_EPOCH`; a coordinator epoch older than that of the producer's
    /// last marker is `TRANSACTION_COORDINATOR_FENCED` (a zombie coordinator). A marker
    /// without an ongoing transaction is fine: Kafka writes it all the same.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < entry.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ErrorCode::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Applies a batch just appended to the log, with its offsets assigned, on the
    /// leader and on followers alike; `marker` is the end-transaction marker of a
    /// control batch (`None` for a data batch). Nothing is checked here (a follower
    /// copies what its leader wrote), as Kafka's `AppendOrigin.REPLICATION`:
    ///
    /// - a data batch of the producer's epoch or a newer one moves the epoch (a
    ///   different epoch forgets the cached batches) and is cached; one of an older
    ///   epoch (only the `no-producer-epoch-fencing` bug appends those) leaves the
    ///   epoch and the batches alone. A transactional batch starts the producer's
    ///   transaction here if none is open;
    /// - a marker ends the producer's open transaction, if any (returned), and sets the
    ///   producer's epoch and coordinator epoch to its own.
    pub fn update(
        &mut self,
        header: &BatchHeader,
        marker: Option<&EndTransactionMarker>,
    ) -> Option<CompletedTxn> {
        assert_eq!(
            header.is_control(),
            marker.is_some(),
            "a control batch comes with its marker, a data batch without"
        );
        if !header.has_producer_id() {
            assert!(
                !header.is_transactional(),
                "a transaction needs a producer id"
            );
            return None;
        }
        let producer_id = header.producer_id;
        if !self.producers.contains_key(&producer_id) {
            assert!(
                self.producers.len() < MAX_PRODUCERS,
                "more than {MAX_PRODUCERS} producers in one partition"
            );
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerStateEntry::empty(header.producer_epoch));
        entry.last_timestamp = header.max_timestamp;
        let completed = match marker {
            Some(marker) => {
                let completed =
                    entry
                        .current_txn_first_offset
                        .take()
                        .map(|first_offset| CompletedTxn {
                            producer_id,
                            first_offset,
                            last_offset: header.base_offset,
                            aborted: marker.control_type == ControlRecordType::Abort,
                        });
                entry.set_epoch(header.producer_epoch);
                entry.coordinator_epoch = marker.coordinator_epoch;
                if let Some(c) = &completed {
                    let removed = self.ongoing_txns.remove(&c.first_offset);
                    assert_eq!(
                        removed,
                        Some(producer_id),
                        "ongoing transactions out of step"
                    );
                }
                completed
            }
            None => {
                let batch = BatchMetadata {
                    first_seq: header.base_sequence,
                    last_seq: header.last_sequence(),
                    first_offset: header.base_offset,
                    last_offset: header.last_offset(),
                };
                assert!(batch.first_offset >= 0 && batch.last_offset >= batch.first_offset);
                if header.producer_epoch >= entry.producer_epoch {
                    entry.set_epoch(header.producer_epoch);
                    entry.add_batch(batch);
                }
                if header.is_transactional() && entry.current_txn_first_offset.is_none() {
                    entry.current_txn_first_offset = Some(batch.first_offset);
                    let previous = self.ongoing_txns.insert(batch.first_offset, producer_id);
                    assert!(previous.is_none(), "two transactions start at one offset");
                }
                None
            }
        };
        assert!(self.ongoing_txns.len() <= self.producers.len());
        completed
    }
}

#[cfg(test)]
mod tests;
