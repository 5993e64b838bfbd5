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
//! The state is not stored separately: it is rebuilt from the batch headers in the log when a
//! partition is opened, so it survives crashes exactly as the log does.

use std::collections::{HashMap, VecDeque};

use brook_protocol::batch::BatchView;
use brook_protocol::ErrorCode;

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

    /// Remembers a batch appended at `first_offset`.
    pub(crate) fn record(&mut self, batch: &ProducerBatch, first_offset: i64) {
        let producer = self.producers.entry(batch.producer_id).or_insert(Producer {
            epoch: batch.epoch,
            batches: VecDeque::with_capacity(REMEMBERED_BATCHES),
        });
        if producer.epoch != batch.epoch {
            producer.epoch = batch.epoch;
            producer.batches.clear();
        }
        if producer.batches.len() == REMEMBERED_BATCHES {
            producer.batches.pop_front();
        }
        producer.batches.push_back(Remembered {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            first_offset,
            last_offset: first_offset + i64::from(batch.offset_delta),
        });
    }

    /// Replays a batch read back from the log (at open).
    pub(crate) fn replay(&mut self, view: &BatchView<'_>) {
        if view.is_control() {
            return;
        }
        if let Some(batch) = ProducerBatch::of(view) {
            self.record(&batch, view.base_offset());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.producers.len()
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
        }
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
