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
/// the coordinator epoch of its last marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    producer_epoch: i16,
    batches: VecDeque<BatchMetadata>,
    coordinator_epoch: i32,
    current_txn_first_offset: Option<Offset>,
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
        }
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
mod tests {
    use super::*;
    use crate::kafka::record::{Record, RecordBatch, TRANSACTIONAL_BIT};
    use bytes::Bytes;

    const PID: i64 = 1_000;

    /// The header of a batch of `n` records at `offset` with these attributes.
    fn batch_header(
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        n: i32,
        offset: Offset,
        attributes: i16,
    ) -> BatchHeader {
        let bytes = RecordBatch {
            base_offset: offset,
            partition_leader_epoch: 0,
            attributes,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records: (0..n)
                .map(|i| Record {
                    attributes: 0,
                    timestamp_delta: 0,
                    offset_delta: i,
                    key: None,
                    value: Some(Bytes::from(i.to_string())),
                    headers: vec![],
                })
                .collect(),
        }
        .encode();
        BatchHeader::parse(&bytes).unwrap()
    }

    /// A batch of `n` records outside a transaction.
    fn header(producer_id: i64, epoch: i16, first_seq: i32, n: i32, offset: Offset) -> BatchHeader {
        batch_header(producer_id, epoch, first_seq, n, offset, 0)
    }

    /// A transactional batch of `n` records.
    fn txn(producer_id: i64, epoch: i16, first_seq: i32, n: i32, offset: Offset) -> BatchHeader {
        batch_header(producer_id, epoch, first_seq, n, offset, TRANSACTIONAL_BIT)
    }

    /// A marker at `offset` and its header.
    fn marker(
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        offset: Offset,
    ) -> (BatchHeader, EndTransactionMarker) {
        let m = EndTransactionMarker {
            control_type: if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
            coordinator_epoch,
        };
        let mut bytes = m.to_batch(producer_id, epoch, 0).encode().to_vec();
        crate::kafka::record::set_base_offset(&mut bytes, offset);
        (BatchHeader::parse(&bytes).unwrap(), m)
    }

    /// `check_append` (with epoch fencing) of a batch from `first_seq` to `last_seq`.
    fn check(
        s: &ProducerStateManager,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<AppendCheck, ErrorCode> {
        let n = if first_seq < 0 {
            1
        } else if last_seq >= first_seq {
            last_seq - first_seq + 1
        } else {
            (i32::MAX - first_seq) + last_seq + 2
        };
        s.check_append(&header(producer_id, epoch, first_seq, n, 0), true)
    }

    /// A state that saw `PID` epoch 0 write sequences 0..=4 in one batch at offset 10
    /// and 5..=6 at offset 20.
    fn state() -> ProducerStateManager {
        let mut s = ProducerStateManager::default();
        s.update(&header(PID, 0, 0, 5, 10), None);
        s.update(&header(PID, 0, 5, 2, 20), None);
        s
    }

    #[test]
    fn next_sequence_is_appended_and_a_gap_is_out_of_order() {
        let s = state();
        assert_eq!(check(&s, PID, 0, 7, 9), Ok(AppendCheck::Append));
        assert_eq!(
            check(&s, PID, 0, 8, 9),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            check(&s, PID, 0, 3, 4),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "overlaps a cached batch without matching it"
        );
    }

    #[test]
    fn retried_batch_is_a_duplicate_of_the_original() {
        let s = state();
        assert_eq!(
            check(&s, PID, 0, 0, 4),
            Ok(AppendCheck::Duplicate {
                first_offset: 10,
                last_offset: 14
            })
        );
        assert_eq!(
            check(&s, PID, 0, 5, 6),
            Ok(AppendCheck::Duplicate {
                first_offset: 20,
                last_offset: 21
            })
        );
    }

    #[test]
    fn stale_epoch_is_refused_even_for_a_duplicate() {
        let mut s = state();
        s.update(&header(PID, 2, 0, 1, 30), None);
        assert_eq!(s.last_entry(PID).unwrap().producer_epoch(), 2);
        assert_eq!(
            check(&s, PID, 1, 1, 1),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            check(&s, PID, 0, 0, 4),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn new_epoch_starts_at_sequence_zero_and_resets_the_batches() {
        let mut s = state();
        assert_eq!(check(&s, PID, 1, 0, 0), Ok(AppendCheck::Append));
        assert_eq!(
            check(&s, PID, 1, 7, 7),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        s.update(&header(PID, 1, 0, 1, 30), None);
        let entry = s.last_entry(PID).unwrap();
        assert_eq!((entry.producer_epoch(), entry.batches().len()), (1, 1));
        assert_eq!(
            check(&s, PID, 1, 0, 0),
            Ok(AppendCheck::Duplicate {
                first_offset: 30,
                last_offset: 30
            })
        );
        assert_eq!(check(&s, PID, 1, 1, 1), Ok(AppendCheck::Append));
    }

    #[test]
    fn unknown_producer_is_appended_at_any_sequence() {
        // Kafka 4.x `ProducerAppendInfo.checkSequence`: no state, no epoch, any
        // sequence; UNKNOWN_PRODUCER_ID is never answered.
        let s = state();
        assert_eq!(check(&s, 7, 0, 0, 3), Ok(AppendCheck::Append));
        assert_eq!(check(&s, 7, 0, 1, 3), Ok(AppendCheck::Append));
        assert_eq!(check(&s, 7, 3, 5, 5), Ok(AppendCheck::Append));
    }

    /// Kafka's `checkSequence` first clause: with a verification under way (lowest
    /// sequence seen), a higher first sequence is out of order, for an unknown producer
    /// and a known one alike; the lowest itself and a duplicate are not.
    #[test]
    fn a_verification_keeps_later_batches_out_until_the_lowest_is_in() {
        let s = state();
        let verified = |pid, epoch, first_seq, n, lowest| {
            let h = txn(pid, epoch, first_seq, n, 0);
            s.check_append_verified(&h, true, Some(lowest))
        };
        // Unknown producer 7: its first batch (0..4) was refused after verification.
        assert_eq!(
            verified(7, 0, 5, 5, 0),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(verified(7, 0, 0, 5, 0), Ok(AppendCheck::Append));
        assert_eq!(
            verified(7, 0, 1, 5, 0),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "one above the lowest"
        );
        // Known producer PID (last sequence 6).
        assert_eq!(verified(PID, 0, 7, 1, 7), Ok(AppendCheck::Append));
        assert_eq!(
            verified(PID, 0, 8, 1, 7),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            verified(PID, 0, 5, 2, 0),
            Ok(AppendCheck::Duplicate {
                first_offset: 20,
                last_offset: 21
            }),
            "a duplicate is found first"
        );
        assert_eq!(
            verified(PID, 1, 0, 1, 0),
            Ok(AppendCheck::Append),
            "new epoch at 0"
        );
    }

    #[test]
    fn batches_without_a_producer_id_carry_no_state() {
        let mut s = ProducerStateManager::default();
        s.update(&header(-1, -1, -1, 3, 0), None);
        assert!(s.is_empty());
        assert_eq!(check(&s, -1, -1, -1, -1), Ok(AppendCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.update(&header(PID, 0, i, 1, i64::from(i)), None);
        }
        let entry = s.last_entry(PID).unwrap();
        assert_eq!(entry.batches().len(), NUM_BATCHES_TO_RETAIN);
        assert_eq!(entry.batches().front().unwrap().first_seq, 2);
        assert_eq!(entry.last_sequence(), 6);
        assert_eq!(
            check(&s, PID, 0, 2, 2),
            Ok(AppendCheck::Duplicate {
                first_offset: 2,
                last_offset: 2
            })
        );
        assert_eq!(
            check(&s, PID, 0, 1, 1),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "evicted: no longer recognised as a duplicate"
        );
    }

    #[test]
    fn sequences_wrap_from_i32_max_to_zero() {
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(i32::MAX, 1));
        assert!(!in_sequence(-1, 1));
        let mut s = ProducerStateManager::default();
        s.update(&header(PID, 0, 0, 1, 0), None);
        s.update(&header(PID, 0, i32::MAX - 2, 2, 1), None);
        assert_eq!(s.last_entry(PID).unwrap().last_sequence(), i32::MAX - 1);
        // A batch of 3 records from i32::MAX: sequences MAX, 0, 1.
        assert_eq!(check(&s, PID, 0, i32::MAX, 1), Ok(AppendCheck::Append));
        s.update(&header(PID, 0, i32::MAX, 3, 3), None);
        assert_eq!(s.last_entry(PID).unwrap().last_sequence(), 1);
        assert_eq!(check(&s, PID, 0, 2, 2), Ok(AppendCheck::Append));
        assert_eq!(
            check(&s, PID, 0, i32::MAX, 1),
            Ok(AppendCheck::Duplicate {
                first_offset: 3,
                last_offset: 5
            })
        );
    }

    #[test]
    fn a_transaction_starts_with_its_first_batch_and_ends_with_a_marker() {
        let mut s = ProducerStateManager::default();
        s.update(&txn(PID, 0, 0, 2, 10), None);
        s.update(&header(7, 0, 0, 1, 12), None);
        s.update(&txn(8, 0, 0, 1, 13), None);
        s.update(&txn(PID, 0, 2, 1, 14), None);
        let e = s.last_entry(PID).unwrap();
        assert_eq!(e.current_txn_first_offset(), Some(10));
        assert!(s.has_ongoing_transaction(PID, 0));
        assert!(!s.has_ongoing_transaction(PID, 1), "another epoch");
        assert!(!s.has_ongoing_transaction(7, 0));
        assert_eq!(s.first_undecided_offset(), Some(10));
        // Inside its transaction the producer must keep writing transactionally.
        assert_eq!(check(&s, PID, 0, 3, 3), Err(ErrorCode::InvalidTxnState));
        let next = txn(PID, 0, 3, 1, 0);
        assert_eq!(s.check_append(&next, true), Ok(AppendCheck::Append));

        let (h, m) = marker(PID, 0, false, 4, 15);
        assert_eq!(
            s.update(&h, Some(&m)),
            Some(CompletedTxn {
                producer_id: PID,
                first_offset: 10,
                last_offset: 15,
                aborted: true
            })
        );
        let e = s.last_entry(PID).unwrap();
        assert_eq!(
            (
                e.current_txn_first_offset(),
                e.coordinator_epoch(),
                e.batches().len()
            ),
            (None, 4, 2),
            "the same epoch keeps the cached batches"
        );
        assert_eq!(s.first_undecided_offset(), Some(13), "producer 8's");
        assert_eq!(check(&s, PID, 0, 3, 3), Ok(AppendCheck::Append));
        // A marker without an open transaction completes nothing.
        let (h, m) = marker(PID, 0, true, 4, 16);
        assert_eq!(s.update(&h, Some(&m)), None);
        let (h, m) = marker(8, 0, true, 4, 17);
        assert!(s.update(&h, Some(&m)).is_some_and(|c| !c.aborted));
        assert_eq!(s.first_undecided_offset(), None);
    }

    #[test]
    fn a_marker_with_a_new_epoch_restarts_the_sequence() {
        // Transaction version 2: the coordinator bumps the epoch in the marker.
        let mut s = ProducerStateManager::default();
        s.update(&txn(PID, 3, 0, 5, 0), None);
        let (h, m) = marker(PID, 4, true, 0, 5);
        s.update(&h, Some(&m));
        let e = s.last_entry(PID).unwrap();
        assert_eq!((e.producer_epoch(), e.last_sequence()), (4, NO_SEQUENCE));
        assert_eq!(check(&s, PID, 4, 0, 0), Ok(AppendCheck::Append));
        assert_eq!(
            check(&s, PID, 4, 5, 5),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            check(&s, PID, 3, 5, 5),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        // A producer first seen through a marker.
        let (h, m) = marker(9, 2, false, 1, 6);
        assert_eq!(s.update(&h, Some(&m)), None);
        assert_eq!(s.last_entry(9).unwrap().producer_epoch(), 2);
        assert_eq!(check(&s, 9, 2, 0, 0), Ok(AppendCheck::Append));
    }

    #[test]
    fn stale_markers_and_zombie_coordinators_are_refused() {
        let mut s = ProducerStateManager::default();
        assert_eq!(s.check_marker(PID, 0, -1), Ok(()), "unknown producer");
        s.update(&txn(PID, 2, 0, 1, 0), None);
        assert_eq!(
            s.check_marker(PID, 1, 0),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(s.check_marker(PID, 2, 0), Ok(()));
        assert_eq!(s.check_marker(PID, 3, 0), Ok(()));
        let (h, m) = marker(PID, 2, true, 5, 1);
        s.update(&h, Some(&m));
        assert_eq!(
            s.check_marker(PID, 2, 4),
            Err(ErrorCode::TransactionCoordinatorFenced)
        );
        assert_eq!(s.check_marker(PID, 2, 5), Ok(()));
    }

    #[test]
    fn without_epoch_fencing_a_zombie_joins_the_open_transaction() {
        let mut s = ProducerStateManager::default();
        s.update(&txn(PID, 1, 0, 2, 0), None);
        let zombie = txn(PID, 0, 40, 1, 0);
        assert_eq!(
            s.check_append(&zombie, true),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(s.check_append(&zombie, false), Ok(AppendCheck::Append));
        let plain = header(PID, 0, 40, 1, 0);
        assert_eq!(
            s.check_append(&plain, false),
            Err(ErrorCode::InvalidProducerEpoch),
            "the bug is about transactional batches"
        );
        let before = s.last_entry(PID).unwrap().clone();
        s.update(&txn(PID, 0, 40, 1, 2), None);
        assert_eq!(
            s.last_entry(PID).unwrap(),
            &before,
            "epoch and sequence untouched"
        );
        let (h, m) = marker(PID, 1, true, 0, 3);
        let c = s.update(&h, Some(&m)).unwrap();
        assert_eq!((c.first_offset, c.last_offset), (0, 3));
        // With no transaction open, the zombie's batch opens one.
        s.update(&txn(PID, 0, 41, 1, 4), None);
        assert_eq!(s.first_undecided_offset(), Some(4));
    }

    #[test]
    #[should_panic(expected = "move forward")]
    fn offsets_must_increase() {
        let mut s = state();
        s.update(&header(PID, 0, 7, 1, 21), None);
    }
    /// Kafka's `checkProducerEpoch` for the group coordinator's append of a
    /// `TxnOffsetCommit` (origin COORDINATOR): only the epoch is checked.
    #[test]
    fn coordinator_appends_check_the_epoch_only() {
        let mut s = ProducerStateManager::default();
        // No state yet: anything goes, sequence or not.
        let offsets = |epoch| txn(PID, epoch, NO_SEQUENCE, 1, 0);
        assert_eq!(s.check_coordinator_append(&offsets(3), true), Ok(()));
        let (h, m) = marker(PID, 5, false, 0, 10);
        s.update(&h, Some(&m));
        assert_eq!(
            s.check_coordinator_append(&offsets(4), true),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(s.check_coordinator_append(&offsets(4), false), Ok(()));
        assert_eq!(s.check_coordinator_append(&offsets(5), true), Ok(()));
        assert_eq!(s.check_coordinator_append(&offsets(6), true), Ok(()));
        assert_eq!(
            s.check_coordinator_append(&txn(PID + 1, 0, NO_SEQUENCE, 1, 0), true),
            Ok(())
        );
    }
}
