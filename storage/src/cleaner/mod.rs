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
//!   timestamps, producer fields and codec, with a new CRC;
//! - [`throttle`] holds every cleaner thread together to `log.cleaner.io.max.bytes.per.second`.
//!
//! The pass that applies them to a log's segments (transaction-aware, crash-atomic, holding
//! the log only to plan and to swap) is in `log/clean.rs` ([`crate::PartitionLog::plan_clean`]);
//! the broker's cleaner threads decide when to run it.

pub mod filter;
pub mod offset_map;
pub mod policy;
pub mod throttle;
