//! The idempotent producer's state in one partition (KIP-98): Kafka's
//! `ProducerStateManager`, `ProducerStateEntry` and the sequence rules of
//! `ProducerAppendInfo`.
//!
//! For every producer id with batches in the log the state keeps the current producer
//! epoch and the metadata of its last [`NUM_BATCHES_TO_RETAIN`] batches. The partition
//! leader checks each client batch against it before appending ([`check_append`]):
//! a retry of a batch already in the log is recognised as a duplicate, a gap or a
//! stale epoch is refused. Every replica applies every appended batch ([`update`]),
//! the leader after its check and followers without one (Kafka's
//! `AppendOrigin.REPLICATION`), so a follower elected leader knows the producers.
//!
//! The state is a function of the log: replaying the log's batches in order
//! ([`ProducerStateManager::rebuild`]) gives the same state, which is how truncation and
//! log recovery after a restart rebuild it. Batches without a producer id
//! (`producer_id = -1`) carry no state.
//!
//! [`check_append`]: ProducerStateManager::check_append
//! [`update`]: ProducerStateManager::update

use crate::protocol::{ErrorCode, Offset};
use crate::record::BatchHeader;
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
/// epoch and its last batches of that epoch, oldest first (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    producer_epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

impl ProducerStateEntry {
    /// The producer's current epoch.
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// The sequence of the producer's last record in the log.
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().expect("an entry has batches").last_seq
    }

    /// The cached batches of the current epoch, oldest first (at most
    /// [`NUM_BATCHES_TO_RETAIN`]).
    pub fn batches(&self) -> &VecDeque<BatchMetadata> {
        &self.batches
    }

    /// Kafka's `findDuplicateBatch`: the cached batch with exactly this sequence range.
    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
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

/// Kafka's `ProducerStateManager` for one partition: producer id -> its entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    /// The state after the batches with these headers (offsets assigned), in log order.
    pub fn rebuild(headers: impl IntoIterator<Item = BatchHeader>) -> Self {
        let mut state = ProducerStateManager::default();
        for header in headers {
            state.update(&header);
        }
        state
    }

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

    /// The leader's check of a client batch (Kafka's `ProducerAppendInfo` with
    /// `AppendOrigin.CLIENT`), in this order:
    ///
    /// - no producer id: append, there is nothing to check;
    /// - an epoch older than the producer's: `INVALID_PRODUCER_EPOCH`;
    /// - the same epoch and the sequence range of one of the cached batches: a
    ///   duplicate of that batch;
    /// - a newer epoch (a bumped producer, KIP-360): the first sequence must be 0, else
    ///   `OUT_OF_ORDER_SEQUENCE_NUMBER`;
    /// - an unknown producer id: the first sequence must be 0, else
    ///   `UNKNOWN_PRODUCER_ID`. This is the rule of brokers before KIP-360; since Kafka
    ///   2.5 a broker accepts any sequence from a producer whose state was removed (by
    ///   retention or `DeleteRecords`), which this simulation, without retention, never
    ///   removes;
    /// - the same epoch: the first sequence must follow the last one ([`in_sequence`]),
    ///   else `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    pub fn check_append(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<AppendCheck, ErrorCode> {
        if producer_id < 0 {
            return Ok(AppendCheck::Append);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return if first_seq == 0 {
                Ok(AppendCheck::Append)
            } else {
                Err(ErrorCode::UnknownProducerId)
            };
        };
        if producer_epoch < entry.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if producer_epoch > entry.producer_epoch {
            return if first_seq == 0 {
                Ok(AppendCheck::Append)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(b) = entry.find_duplicate(first_seq, last_seq) {
            return Ok(AppendCheck::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            });
        }
        if in_sequence(entry.last_sequence(), first_seq) {
            Ok(AppendCheck::Append)
        } else {
            Err(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Applies a batch just appended to the log, with its offsets assigned, on the
    /// leader and on followers alike. Nothing is checked here (a follower copies what
    /// its leader wrote): a different epoch replaces the producer's epoch and forgets
    /// its cached batches, as Kafka's `maybeUpdateProducerEpoch` does.
    pub fn update(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        let batch = BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        };
        assert!(batch.first_offset >= 0 && batch.last_offset >= batch.first_offset);
        if !self.producers.contains_key(&header.producer_id) {
            assert!(
                self.producers.len() < MAX_PRODUCERS,
                "more than {MAX_PRODUCERS} producers in one partition"
            );
        }
        let entry =
            self.producers
                .entry(header.producer_id)
                .or_insert_with(|| ProducerStateEntry {
                    producer_epoch: header.producer_epoch,
                    batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
                });
        if entry.producer_epoch != header.producer_epoch {
            entry.producer_epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.add_batch(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordBatch};
    use bytes::Bytes;

    const PID: i64 = 1_000;

    /// The header of a batch of `n` records at `offset`.
    fn header(producer_id: i64, epoch: i16, first_seq: i32, n: i32, offset: Offset) -> BatchHeader {
        let bytes = RecordBatch {
            base_offset: offset,
            partition_leader_epoch: 0,
            attributes: 0,
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

    /// A state that saw `PID` epoch 0 write sequences 0..=4 in one batch at offset 10
    /// and 5..=6 at offset 20.
    fn state() -> ProducerStateManager {
        let mut s = ProducerStateManager::default();
        s.update(&header(PID, 0, 0, 5, 10));
        s.update(&header(PID, 0, 5, 2, 20));
        s
    }

    #[test]
    fn next_sequence_is_appended_and_a_gap_is_out_of_order() {
        let s = state();
        assert_eq!(s.check_append(PID, 0, 7, 9), Ok(AppendCheck::Append));
        assert_eq!(
            s.check_append(PID, 0, 8, 9),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            s.check_append(PID, 0, 3, 4),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "overlaps a cached batch without matching it"
        );
    }

    #[test]
    fn retried_batch_is_a_duplicate_of_the_original() {
        let s = state();
        assert_eq!(
            s.check_append(PID, 0, 0, 4),
            Ok(AppendCheck::Duplicate {
                first_offset: 10,
                last_offset: 14
            })
        );
        assert_eq!(
            s.check_append(PID, 0, 5, 6),
            Ok(AppendCheck::Duplicate {
                first_offset: 20,
                last_offset: 21
            })
        );
    }

    #[test]
    fn stale_epoch_is_refused_even_for_a_duplicate() {
        let mut s = state();
        s.update(&header(PID, 2, 0, 1, 30));
        assert_eq!(s.last_entry(PID).unwrap().producer_epoch(), 2);
        assert_eq!(
            s.check_append(PID, 1, 1, 1),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            s.check_append(PID, 0, 0, 4),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn new_epoch_starts_at_sequence_zero_and_resets_the_batches() {
        let mut s = state();
        assert_eq!(s.check_append(PID, 1, 0, 0), Ok(AppendCheck::Append));
        assert_eq!(
            s.check_append(PID, 1, 7, 7),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        s.update(&header(PID, 1, 0, 1, 30));
        let entry = s.last_entry(PID).unwrap();
        assert_eq!((entry.producer_epoch(), entry.batches().len()), (1, 1));
        assert_eq!(
            s.check_append(PID, 1, 0, 0),
            Ok(AppendCheck::Duplicate {
                first_offset: 30,
                last_offset: 30
            })
        );
        assert_eq!(s.check_append(PID, 1, 1, 1), Ok(AppendCheck::Append));
    }

    #[test]
    fn unknown_producer_must_start_at_sequence_zero() {
        let s = state();
        assert_eq!(s.check_append(7, 0, 0, 3), Ok(AppendCheck::Append));
        assert_eq!(
            s.check_append(7, 0, 1, 3),
            Err(ErrorCode::UnknownProducerId)
        );
        assert_eq!(
            s.check_append(7, 3, 5, 5),
            Err(ErrorCode::UnknownProducerId)
        );
    }

    #[test]
    fn batches_without_a_producer_id_carry_no_state() {
        let mut s = ProducerStateManager::default();
        s.update(&header(-1, -1, -1, 3, 0));
        assert!(s.is_empty());
        assert_eq!(s.check_append(-1, -1, -1, -1), Ok(AppendCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.update(&header(PID, 0, i, 1, i64::from(i)));
        }
        let entry = s.last_entry(PID).unwrap();
        assert_eq!(entry.batches().len(), NUM_BATCHES_TO_RETAIN);
        assert_eq!(entry.batches().front().unwrap().first_seq, 2);
        assert_eq!(entry.last_sequence(), 6);
        assert_eq!(
            s.check_append(PID, 0, 2, 2),
            Ok(AppendCheck::Duplicate {
                first_offset: 2,
                last_offset: 2
            })
        );
        assert_eq!(
            s.check_append(PID, 0, 1, 1),
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
        s.update(&header(PID, 0, 0, 1, 0));
        s.update(&header(PID, 0, i32::MAX - 2, 2, 1));
        assert_eq!(s.last_entry(PID).unwrap().last_sequence(), i32::MAX - 1);
        // A batch of 3 records from i32::MAX: sequences MAX, 0, 1.
        assert_eq!(s.check_append(PID, 0, i32::MAX, 1), Ok(AppendCheck::Append));
        s.update(&header(PID, 0, i32::MAX, 3, 3));
        assert_eq!(s.last_entry(PID).unwrap().last_sequence(), 1);
        assert_eq!(s.check_append(PID, 0, 2, 2), Ok(AppendCheck::Append));
        assert_eq!(
            s.check_append(PID, 0, i32::MAX, 1),
            Ok(AppendCheck::Duplicate {
                first_offset: 3,
                last_offset: 5
            })
        );
    }

    #[test]
    fn rebuild_replays_updates_in_order() {
        let headers = vec![
            header(PID, 0, 0, 2, 0),
            header(-1, -1, -1, 1, 2),
            header(7, 0, 0, 1, 3),
            header(PID, 0, 2, 1, 4),
            header(PID, 1, 0, 1, 5),
        ];
        let mut incremental = ProducerStateManager::default();
        for h in &headers {
            incremental.update(h);
        }
        let rebuilt = ProducerStateManager::rebuild(headers);
        assert_eq!(rebuilt, incremental);
        assert_eq!(rebuilt.len(), 2);
        assert_eq!(rebuilt.last_entry(PID).unwrap().batches().len(), 1);
    }

    #[test]
    #[should_panic(expected = "move forward")]
    fn offsets_must_increase() {
        let mut s = state();
        s.update(&header(PID, 0, 7, 1, 21));
    }
}
