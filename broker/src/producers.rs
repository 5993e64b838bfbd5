//! Idempotent producers: per-partition producer state and the sequence rules Kafka applies.
//!
//! For every producer id seen in a partition, the broker keeps its epoch and its last five
//! batches (first and last sequence, first and last offset). A new batch is then:
//! - a duplicate, if it repeats one of those five batches: it is not appended again, and the
//!   producer is told the offset it got the first time (so retries after a lost response
//!   or a broker restart never duplicate records);
//! - refused with INVALID_PRODUCER_EPOCH if its epoch is older than the producer's;
//! - refused with OUT_OF_ORDER_SEQUENCE_NUMBER if it does not continue the sequence (or, for a
//!   new epoch, does not start at 0);
//! - otherwise appended and remembered.
//!
//! Transactions add, per partition:
//! - the *ongoing* transactions: for each producer with a transaction open here, the offset
//!   of its first batch. The smallest is where the last stable offset (LSO) stops
//!   read_committed consumers;
//! - when a transaction ends, what the aborted-transaction index needs (producer, first
//!   offset, offset of the ABORT marker, the LSO after it): the caller records it in the log
//!   (`brook_storage::AbortedTxn`), which a read_committed fetch lists so that the consumer
//!   drops those records.
//!
//! A transaction starts with a producer's first transactional batch and ends with the marker
//! (a control batch, see `brook_protocol::control`) the transaction coordinator writes.
//!
//! The state is not stored separately: it is rebuilt from the batch headers in the log when a
//! partition is opened, so it survives crashes exactly as the log does.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use brook_protocol::batch::BatchView;
use brook_protocol::control::{self, ControlType};
use brook_protocol::ErrorCode;
use brook_storage::AbortedTxn;

/// Batches remembered per producer, as in Kafka (and the most a client keeps in flight).
const REMEMBERED_BATCHES: usize = 5;
/// A producer without an epoch yet (Kafka's NO_PRODUCER_EPOCH).
const NO_EPOCH: i16 = -1;

/// The idempotence fields of a batch, and where it landed (or would land).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) offset_delta: i32,
    pub(crate) transactional: bool,
    pub(crate) max_timestamp: i64,
}

impl ProducerBatch {
    /// The producer fields of a batch; `None` for batches without a producer id.
    pub(crate) fn of(view: &BatchView<'_>) -> Option<Self> {
        if view.producer_id() < 0 {
            return None;
        }
        let first_seq = view.base_sequence();
        Some(Self {
            producer_id: view.producer_id(),
            epoch: view.producer_epoch(),
            first_seq,
            last_seq: increment_sequence(first_seq, view.last_offset_delta()),
            offset_delta: view.last_offset_delta(),
            transactional: view.is_transactional(),
            max_timestamp: view.max_timestamp(),
        })
    }
}

/// Sequences wrap from `i32::MAX` to 0.
fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remembered {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug)]
struct Producer {
    epoch: i16,
    batches: VecDeque<Remembered>,
    /// Offset of the first batch of this producer's ongoing transaction here.
    txn_first_offset: Option<i64>,
    /// Max timestamp of its last batch or marker (DescribeProducers).
    last_timestamp: i64,
}

impl Producer {
    fn new(epoch: i16) -> Self {
        Self {
            epoch,
            batches: VecDeque::with_capacity(REMEMBERED_BATCHES),
            txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    /// A newer epoch forgets the old epoch's batches (its sequences start again at 0).
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Append,
    /// Already in the log at these offsets.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
    },
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerSummary {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) last_sequence: i32,
    pub(crate) last_timestamp: i64,
    /// First offset of its ongoing transaction here.
    pub(crate) txn_first_offset: Option<i64>,
}

/// A batch the sequence rules refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SequenceError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// All producers of one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    producers: HashMap<i64, Producer>,
    /// First offset of each ongoing transaction -> its producer.
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerStates {
    /// Decides whether `batch` is appended, a duplicate, or refused.
    pub(crate) fn check(&self, batch: &ProducerBatch) -> Result<Verdict, SequenceError> {
        let Some(current) = self.producers.get(&batch.producer_id) else {
            // Nothing known (new producer, or its records are gone): accept any sequence.
            return Ok(Verdict::Append);
        };
        if batch.epoch < current.epoch {
            return Err(SequenceError {
                code: ErrorCode::InvalidProducerEpoch,
                message: format!(
                    "Epoch {} of producer {} is older than its current epoch {}",
                    batch.epoch, batch.producer_id, current.epoch
                ),
            });
        }
        if !batch.transactional && current.txn_first_offset.is_some() {
            return Err(SequenceError {
                code: ErrorCode::InvalidTxnState,
                message: format!(
                    "Expected a transactional write from producer {}: its transaction is ongoing",
                    batch.producer_id
                ),
            });
        }
        if batch.epoch != current.epoch {
            if batch.first_seq != 0 && current.epoch != NO_EPOCH {
                return Err(SequenceError {
                    code: ErrorCode::OutOfOrderSequenceNumber,
                    message: format!(
                        "Invalid sequence number {} for new epoch {} of producer {} (must be 0)",
                        batch.first_seq, batch.epoch, batch.producer_id
                    ),
                });
            }
            return Ok(Verdict::Append);
        }
        if let Some(b) = current
            .batches
            .iter()
            .find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq)
        {
            return Ok(Verdict::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            });
        }
        let last_seq = current.batches.back().map_or(-1, |b| b.last_seq);
        let in_sequence = i64::from(batch.first_seq) == i64::from(last_seq) + 1
            || (batch.first_seq == 0 && last_seq == i32::MAX);
        if !in_sequence {
            return Err(SequenceError {
                code: ErrorCode::OutOfOrderSequenceNumber,
                message: format!(
                    "Out of order sequence number for producer {}: {} (incoming), {} (current end)",
                    batch.producer_id, batch.first_seq, last_seq
                ),
            });
        }
        Ok(Verdict::Append)
    }

    /// Remembers a batch appended at `first_offset`; a transactional batch opens its
    /// producer's transaction here if none is ongoing.
    pub(crate) fn record(&mut self, batch: &ProducerBatch, first_offset: i64) {
        let producer = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| Producer::new(batch.epoch));
        producer.set_epoch(batch.epoch);
        producer.last_timestamp = batch.max_timestamp;
        if producer.batches.len() == REMEMBERED_BATCHES {
            producer.batches.pop_front();
        }
        producer.batches.push_back(Remembered {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            first_offset,
            last_offset: first_offset + i64::from(batch.offset_delta),
        });
        if batch.transactional && producer.txn_first_offset.is_none() {
            producer.txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, batch.producer_id);
        }
    }

    /// Checks a transaction marker of `producer_id` at `epoch` before it is appended: the
    /// coordinator's epoch is never older than the producer's here.
    pub(crate) fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(p) if epoch < p.epoch => Err(SequenceError {
                code: ErrorCode::InvalidProducerEpoch,
                message: format!(
                    "Marker epoch {epoch} of producer {producer_id} is older than its current epoch {}",
                    p.epoch
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Records a marker appended at `offset`: the producer's transaction here (if one is
    /// ongoing) ends, committed or aborted, and the producer moves to the marker's epoch (the
    /// coordinator bumps it to fence a zombie). For an ABORT that ended a transaction,
    /// returns its entry for the log's aborted-transaction index.
    pub(crate) fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        control: ControlType,
        offset: i64,
    ) -> Option<AbortedTxn> {
        let producer = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| Producer::new(epoch));
        producer.set_epoch(epoch);
        let first_offset = producer.txn_first_offset.take()?;
        self.ongoing.remove(&first_offset);
        (control == ControlType::Abort).then(|| AbortedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
            last_stable_offset: self.last_stable_offset(offset + 1),
        })
    }

    /// Every producer known here, for DescribeProducers, by producer id.
    pub(crate) fn describe(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(id, p)| ProducerSummary {
                producer_id: *id,
                epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: p.last_timestamp,
                txn_first_offset: p.txn_first_offset,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Each producer with a transaction ongoing here: (producer id, epoch).
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i16)> {
        self.ongoing
            .values()
            .filter_map(|pid| self.producers.get(pid).map(|p| (*pid, p.epoch)))
            .collect()
    }

    /// Whether `producer_id` has a transaction ongoing in this partition.
    pub(crate) fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.txn_first_offset.is_some())
    }

    /// The last stable offset given the high watermark: read_committed consumers read only
    /// below it (the first offset of the oldest ongoing transaction, else the watermark).
    pub(crate) fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.ongoing
            .keys()
            .next()
            .map_or(high_watermark, |first| (*first).min(high_watermark))
    }

    /// Replays a batch read back from the log (at open); an ABORT marker that ended a
    /// transaction gives its aborted-transaction entry.
    pub(crate) fn replay(&mut self, view: &BatchView<'_>) -> Option<AbortedTxn> {
        if view.is_control() {
            let marker = control::parse_marker(view)?;
            return self.record_marker(
                view.producer_id(),
                view.producer_epoch(),
                marker.control,
                view.base_offset(),
            );
        }
        if let Some(batch) = ProducerBatch::of(view) {
            self.record(&batch, view.base_offset());
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// The first offset of each producer's last batch: the cleaner keeps those batches so
    /// that a restart rebuilds every producer's epoch and sequence (Kafka keeps them too).
    pub(crate) fn last_batch_offsets(&self) -> HashSet<i64> {
        self.producers
            .values()
            .filter_map(|p| p.batches.back().map(|b| b.first_offset))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first_seq: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq,
            last_seq: increment_sequence(first_seq, records - 1),
            offset_delta: records - 1,
            transactional: false,
            max_timestamp: 0,
        }
    }

    fn txn_batch(pid: i64, epoch: i16, first_seq: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            transactional: true,
            ..batch(pid, epoch, first_seq, records)
        }
    }

    #[test]
    fn the_lso_stops_at_the_oldest_ongoing_transaction() {
        let mut s = ProducerStates::default();
        assert_eq!(s.last_stable_offset(10), 10);
        s.record(&txn_batch(1, 0, 0, 2), 10);
        s.record(&batch(3, 0, 0, 1), 12); // not transactional: no effect
        s.record(&txn_batch(2, 0, 0, 1), 13);
        s.record(&txn_batch(1, 0, 2, 1), 14); // same transaction: still starts at 10
        assert_eq!(s.last_stable_offset(15), 10);
        assert!(s.in_transaction(1) && s.in_transaction(2) && !s.in_transaction(3));
        // A commit ends the transaction and needs no index entry.
        assert_eq!(s.record_marker(1, 0, ControlType::Commit, 15), None);
        assert!(!s.in_transaction(1));
        assert_eq!(s.last_stable_offset(16), 13);
        // An abort gives its entry; no other transaction is open, so the LSO follows it.
        assert_eq!(
            s.record_marker(2, 0, ControlType::Abort, 16),
            Some(AbortedTxn {
                producer_id: 2,
                first_offset: 13,
                last_offset: 16,
                last_stable_offset: 17
            })
        );
        assert_eq!(s.last_stable_offset(17), 17);
        // A marker for a producer without a transaction here changes nothing.
        assert_eq!(s.record_marker(1, 0, ControlType::Abort, 17), None);
    }

    #[test]
    fn an_aborted_entry_records_the_lso_of_the_transactions_still_open() {
        let mut s = ProducerStates::default();
        s.record(&txn_batch(1, 0, 0, 1), 0);
        s.record(&txn_batch(2, 0, 0, 1), 1);
        let entry = s.record_marker(2, 0, ControlType::Abort, 2).unwrap();
        assert_eq!((entry.first_offset, entry.last_stable_offset), (1, 0));
    }

    #[test]
    fn markers_fence_older_epochs_and_non_transactional_writes_wait_for_the_end() {
        let mut s = ProducerStates::default();
        s.record(&txn_batch(5, 0, 0, 1), 0);
        assert_eq!(
            s.check(&batch(5, 0, 1, 1)).unwrap_err().code,
            ErrorCode::InvalidTxnState
        );
        // The coordinator aborts with a bumped epoch: the zombie's epoch 0 is fenced.
        assert!(s.check_marker(5, 1).is_ok());
        s.record_marker(5, 1, ControlType::Abort, 1);
        assert_eq!(
            s.check(&txn_batch(5, 0, 1, 1)).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            s.check_marker(5, 0).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        // The new incarnation starts its sequence at 0.
        assert_eq!(s.check(&txn_batch(5, 2, 0, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn replay_rebuilds_ongoing_and_aborted_transactions_from_the_log() {
        use brook_protocol::batch::set_base_offset;
        use brook_protocol::batch::testing::{set_producer, simple_batch};
        let mut data = simple_batch(0, 2);
        set_producer(&mut data, 8, 0, 0, true);
        set_base_offset(&mut data, 100);
        let mut s = ProducerStates::default();
        assert_eq!(s.replay(&BatchView::parse_verified(&data).unwrap()), None);
        assert_eq!(s.last_stable_offset(200), 100);
        let mut marker = control::encode_marker(8, 0, ControlType::Abort, 0, 5);
        set_base_offset(&mut marker, 102);
        assert_eq!(
            s.replay(&BatchView::parse_verified(&marker).unwrap()),
            Some(AbortedTxn {
                producer_id: 8,
                first_offset: 100,
                last_offset: 102,
                last_stable_offset: 103
            })
        );
        assert_eq!(s.last_stable_offset(200), 200);
    }

    #[test]
    fn sequences_continue_duplicates_are_found_and_gaps_refused() {
        let mut s = ProducerStates::default();
        let b0 = batch(7, 0, 0, 3);
        assert_eq!(s.check(&b0), Ok(Verdict::Append));
        s.record(&b0, 100);
        let b1 = batch(7, 0, 3, 2);
        assert_eq!(s.check(&b1), Ok(Verdict::Append));
        s.record(&b1, 103);
        // A retry of either batch is a duplicate with its original offsets.
        assert_eq!(
            s.check(&b0),
            Ok(Verdict::Duplicate {
                first_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(
            s.check(&b1),
            Ok(Verdict::Duplicate {
                first_offset: 103,
                last_offset: 104
            })
        );
        // A gap, or a batch overlapping differently, is out of order.
        assert_eq!(
            s.check(&batch(7, 0, 6, 1)).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
        assert_eq!(
            s.check(&batch(7, 0, 1, 1)).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
        assert_eq!(s.check(&batch(7, 0, 5, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            s.record(&batch(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(
            s.check(&batch(1, 0, 0, 1)).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
        assert_eq!(
            s.check(&batch(1, 0, 1, 1)),
            Ok(Verdict::Duplicate {
                first_offset: 1,
                last_offset: 1
            })
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.record(&batch(9, 2, 0, 4), 0);
        assert_eq!(
            s.check(&batch(9, 1, 4, 1)).unwrap_err().code,
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            s.check(&batch(9, 3, 4, 1)).unwrap_err().code,
            ErrorCode::OutOfOrderSequenceNumber
        );
        let bumped = batch(9, 3, 0, 1);
        assert_eq!(s.check(&bumped), Ok(Verdict::Append));
        s.record(&bumped, 4);
        // The old epoch's batches are forgotten.
        assert_eq!(s.check(&batch(9, 3, 1, 1)), Ok(Verdict::Append));
        // Unknown producers may start anywhere (their records may have been deleted).
        assert_eq!(s.check(&batch(10, 0, 500, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerStates::default();
        s.record(&batch(1, 0, i32::MAX - 1, 2), 0);
        assert_eq!(s.check(&batch(1, 0, 0, 1)), Ok(Verdict::Append));
    }
}
