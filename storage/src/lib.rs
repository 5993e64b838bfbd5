//! `brook-storage`: the partition log.
//!
//! A [`PartitionLog`] stores one partition as a directory of segments. Record batches (Kafka
//! v2) are stored exactly as produced, apart from the base offset the log assigns; reads hand
//! back zero-copy slices of memory-mapped segment files.
//!
//! ```no_run
//! # fn main() -> Result<(), brook_storage::StorageError> {
//! use brook_storage::{LogConfig, PartitionLog};
//! # let mut batch: Vec<u8> = Vec::new();
//! let mut log = PartitionLog::open(std::path::Path::new("/data/topic-0"), LogConfig::default())?;
//! let info = log.append(&mut batch, 1_700_000_000_000)?; // patches the base offset
//! log.flush()?; // durable from here on
//! let slices = log.read(info.base_offset, 1 << 20)?; // whole batches, zero-copy
//! # let _ = slices;
//! log.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # API
//!
//! * [`PartitionLog::open`] / [`PartitionLog::open_with_policy`] open or create a log and
//!   recover it ([`RecoveryPolicy`]).
//! * [`PartitionLog::append`] assigns offsets to already validated batches and stores them,
//!   rolling segments by size, age and index capacity ([`LogConfig`]).
//! * [`PartitionLog::read`] returns whole batches from an offset (KIP-74: at least one batch).
//! * [`PartitionLog::batch_for_timestamp`] and [`PartitionLog::batch_with_max_timestamp`]
//!   serve ListOffsets by timestamp.
//! * [`PartitionLog::flush`] makes appends durable; [`PartitionLog::close`] is a clean
//!   shutdown; [`PartitionLog::delete`] removes the partition.
//!
//! # On disk
//!
//! A partition directory holds, per segment, files named by the segment's base offset in 20
//! zero-padded digits:
//!
//! * `00000000000000000000.log`: record batches back to back, byte for byte as received
//!   except the base offset.
//! * `.index`: sparse offset index, 8-byte entries (relative offset u32 BE, position u32 BE).
//! * `.timeindex`: sparse time index, 12-byte entries (timestamp i64 BE, relative offset
//!   u32 BE).
//!
//! The index formats and the rule for which batches are indexed are in the `index` module;
//! the write path in `segment`; recovery (what is checked, what is truncated) in `recovery`.
//!
//! # Durability
//!
//! Appended batches are readable at once and durable after [`PartitionLog::flush`]. A segment
//! is trimmed and fsynced before the next one is created, so only the last segment can be
//! left half written by a crash; opening the log verifies it batch by batch (CRC32C, offsets)
//! and truncates it at the first invalid byte. After a failed fsync or roll the log refuses
//! further writes ([`StorageError::WritesDisabled`]) until it is reopened.
//!
//! # Modules
//!
//! `config` (tunables), `error`, `fs` (every file-system call), `mmap` (the only `unsafe`),
//! `index`, `segment`, `recovery`, `log` ([`PartitionLog`]).

mod config;
mod error;
mod fs;
mod index;
mod log;
mod mmap;
mod recovery;
mod segment;

pub use config::{LogConfig, RecoveryPolicy};
pub use error::{Corruption, StorageError};
pub use log::{AppendInfo, PartitionLog};
