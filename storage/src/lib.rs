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
//! * [`PartitionLog::open`] / [`PartitionLog::open_with`] open or create a log and recover
//!   it ([`OpenOptions`]: the [`FileSystem`] to use and the [`OpenMode`]);
//!   [`PartitionLog::recovery_report`] says what was checked and repaired.
//! * [`PartitionLog::append`] assigns offsets to already validated batches and stores them,
//!   rolling segments by size, age and index capacity ([`LogConfig`]).
//! * [`PartitionLog::read`] returns whole batches from an offset (KIP-74: at least one batch).
//! * [`PartitionLog::batch_for_timestamp`] and [`PartitionLog::batch_with_max_timestamp`]
//!   serve ListOffsets by timestamp.
//! * Durability: [`PartitionLog::flush`] syncs under the caller's lock; for group commit,
//!   [`PartitionLog::sync_point`] gives a [`SyncPoint`] to sync without it, then
//!   [`PartitionLog::mark_durable`]. [`PartitionLog::durable_offset`] is what is on disk;
//!   [`PartitionLog::fail`] stops writes after a failed sync; [`PartitionLog::write_checkpoint`]
//!   persists the recovery point and the durable prefix (or, for many logs at once,
//!   [`PartitionLog::stage_checkpoint`], one file-system sync, then
//!   [`PartitionLog::commit_checkpoint`]).
//! * Retention: [`plan_retention`] decides, [`PartitionLog::apply_retention`] deletes;
//!   [`PartitionLog::delete_records_before`] moves the log start offset (DeleteRecords).
//! * [`PartitionLog::close`] is a clean shutdown; [`PartitionLog::delete`] removes the
//!   partition.
//! * [`testing::FaultyFileSystem`] injects `EIO` and `ENOSPC` for tests.
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
//! * `.txnindex`: aborted transactions whose ABORT marker is in the segment, 34-byte entries
//!   (only for segments that have one; see the `txn_index` module).
//!
//! plus `checkpoint` (log start offset, recovery point and the durable prefix of the active
//! segment, see the `checkpoint` module).
//! The index formats and the rule for which batches are indexed are in the `index` module;
//! the write path in `segment`; recovery (what is checked, what is cut) in `recovery`. The
//! whole format is in `docs/storage-format.md`.
//!
//! # Durability
//!
//! Appended batches are readable at once and durable after [`PartitionLog::flush`] or a
//! [`SyncPoint::sync`]. Disk blocks are allocated with `fallocate` before anything is
//! written into them (in 8 MiB chunks ahead of the write position, or the whole segment up
//! front with [`LogConfig::preallocate`]), so a full disk is an error
//! ([`StorageError::is_no_space`]) that leaves the log writable once space is freed, never a
//! `SIGBUS`. A segment is trimmed and fsynced when it rolls, so
//! only the last segment can be left half written by a crash; opening the log verifies what
//! follows its durable prefix (the part the checkpoint vouches for) batch by batch (CRC32C,
//! offsets) and truncates it at the first invalid byte. After a
//! failed write or fsync the log refuses further writes ([`StorageError::WritesDisabled`])
//! until it is reopened, and nothing written after the failure is reported durable.
//!
//! # Modules
//!
//! `cleaner` (compaction: policy, offset map, batch rewriting), `config` (tunables, open options), `error`, `fs` (every file-system call, the
//! [`FileSystem`] trait), `mmap` (the `unsafe` of memory maps; the only other `unsafe` is one prefetch instruction in `key_index`), `index`, `txn_index`, `segment`, `checkpoint`,
//! `recovery`, `retention` (policy), `durability` ([`SyncPoint`]), `log` ([`PartitionLog`]),
//! `testing` (fault injection).

mod bulk;
mod checkpoint;
pub mod cleaner;
mod config;
mod durability;
mod error;
mod fs;
mod index;
pub mod key_index;
mod log;
mod mmap;
mod recovery;
mod retention;
mod segment;
pub mod testing;
mod txn_index;

pub use bulk::{BulkSync, DeferAll, SyncGroup};
pub use config::{
    KeyIndexConfig, LogConfig, OpenMode, OpenOptions, RecoveryPolicy, DEFAULT_CACHE_WINDOW_BYTES,
    DEFAULT_KEY_INDEX_CACHE_KEYS, DEFAULT_KEY_INDEX_SEGMENT_ENTRIES,
};
pub use durability::SyncPoint;
pub use error::{Corruption, StorageError};
pub use fs::{open_files, set_max_open_files, FileSystem, OsFileSystem};
pub use log::{
    AppendInfo, CleanJob, CleanOptions, CleanOutcome, CleanedLog, CleanedSegment, Installed,
    PartitionLog, StagedCheckpoint,
};
pub use mmap::Mapping;
pub use recovery::{CheckpointStatus, RecoveryReport};
pub use retention::{plan_retention, RetentionOutcome, SegmentSummary};
pub use txn_index::AbortedTxn;
