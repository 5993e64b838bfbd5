//! Log compaction (`cleanup.policy=compact`): the latest record per key survives.
//!
//! Policy and mechanism apart, as the rest of the crate:
//! - [`policy`] decides, without I/O, which log to clean next and up to where (Kafka's
//!   `LogCleanerManager`: the dirtiest log first, `min.cleanable.dirty.ratio`,
//!   `min.compaction.lag.ms`, `max.compaction.lag.ms`, never past the active segment or the
//!   last stable offset);
//! - [`offset_map`] is the bounded key-hash -> latest-offset map a cleaning pass builds over
//!   the dirty part of a log (`log.cleaner.dedupe.buffer.size` bytes, whatever the number of
//!   keys: a log with more keys is cleaned in several passes);
//! - [`filter`] rewrites one batch keeping the records a pass retains, copying surviving
//!   records verbatim (duplicate headers included) under the batch's own base offset,
//!   timestamps, producer fields and codec, with a new CRC.
//!
//! The pass that applies them to a log's segments, crash-atomically, is
//! [`crate::PartitionLog::clean`] (in `log/clean.rs`); the broker's maintenance task decides
//! when to run it. Not yet: removing transaction markers and aborted records (a pass treats
//! every batch alike and keeps markers), and cleaning without the partition's lock.

pub mod filter;
pub mod offset_map;
pub mod policy;
