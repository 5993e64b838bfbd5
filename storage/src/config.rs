//! Tunables of one partition log and how it is opened.
//!
//! Owns plain data (plus the file-system handle in [`OpenOptions`]); the log reads these
//! values at the moment it needs them, so a changed configuration
//! ([`crate::PartitionLog::set_config`]) applies from the next append or roll on, never
//! retroactively to existing segments.

use std::sync::Arc;

use crate::fs::{FileSystem, OsFileSystem};

/// Per-partition log settings. Field names follow Kafka's topic configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: a segment is rolled before an append would take it past this size.
    /// A single batch larger than this gets a segment of its own. Values above `u32::MAX`
    /// behave as `u32::MAX`, because index entries hold 32-bit file positions.
    pub segment_bytes: u64,
    /// `segment.ms`: a non-empty segment is rolled at the next append once more than this
    /// many milliseconds have passed since its first batch was appended.
    pub segment_ms: i64,
    /// `index.interval.bytes`: the sparse indexes get one entry each time at least this many
    /// bytes were appended since the previous entry (and one for a segment's first batch).
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: space preallocated for each index file of the active segment;
    /// a segment is rolled when either index is full.
    pub segment_index_bytes: u32,
    /// `preallocate` (default false): when true, the active segment's `.log` is allocated
    /// (`fallocate`, real blocks) to `segment_bytes` and each index to `segment_index_bytes`
    /// up front, when the segment is created or reactivated, so every active partition holds
    /// a whole segment of disk. When false, the files are extended sparsely to that size but
    /// real blocks are allocated in chunks just ahead of the write position
    /// (for the `.log` 1 MiB first, then growing with the segment up to 8 MiB; 64 KiB for
    /// each index), so an empty partition costs about 1 MiB. Either way a full disk is an `ENOSPC` error before
    /// anything is written, never a `SIGBUS`.
    pub preallocate: bool,
    /// How much of the newest durable data stays in the OS page cache (Brook's own setting,
    /// `log.cache.window.bytes`; `None` leaves the cache to the kernel). Pages further back
    /// are released once fsynced, so a partition that is written steadily reuses the pages it
    /// released instead of taking fresh ones from the kernel for every byte: on machines
    /// where fresh pages are expensive (VMs that hand free memory back to their host) that
    /// is most of the cost of an append. Consumers within the window read from memory; those
    /// further behind read from the file system, as after a restart.
    pub cache_window_bytes: Option<u64>,
    /// `brook.key.index` (Brook's own): index every record's key (see
    /// [`crate::key_index`]); `None` keeps no index.
    pub key_index: Option<KeyIndexConfig>,
}

/// Settings of a partition's key index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIndexConfig {
    /// How many keys' stream heads are cached in memory (`brook.key.index.cache.keys`): the
    /// index's memory is bounded by this and by the active segment, never by the number of
    /// keys in the partition.
    pub cache_keys: usize,
    /// The most entries the active segment's index holds in memory
    /// (`brook.key.index.segment.entries`): the segment rolls when the next batch would
    /// pass it, as it rolls when its offset index is full.
    pub segment_entries: usize,
}

/// The default [`KeyIndexConfig::cache_keys`].
pub const DEFAULT_KEY_INDEX_CACHE_KEYS: usize = 100_000;
/// The default [`KeyIndexConfig::segment_entries`]: about 50 MiB of memory at most.
pub const DEFAULT_KEY_INDEX_SEGMENT_ENTRIES: usize = 500_000;

impl Default for KeyIndexConfig {
    fn default() -> Self {
        Self {
            cache_keys: DEFAULT_KEY_INDEX_CACHE_KEYS,
            segment_entries: DEFAULT_KEY_INDEX_SEGMENT_ENTRIES,
        }
    }
}

/// The default [`LogConfig::cache_window_bytes`]: 64 MiB per partition.
pub const DEFAULT_CACHE_WINDOW_BYTES: u64 = 64 * 1024 * 1024;

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 7 days, an index entry every 4 KiB, 10 MiB indexes,
    /// no up-front preallocation; and a [`DEFAULT_CACHE_WINDOW_BYTES`] page-cache window.
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            preallocate: false,
            cache_window_bytes: Some(DEFAULT_CACHE_WINDOW_BYTES),
            key_index: None,
        }
    }
}

impl LogConfig {
    /// The size limit actually enforced: `segment_bytes` capped to what a 32-bit index
    /// position can address.
    pub(crate) fn segment_limit(&self) -> u64 {
        self.segment_bytes.min(u64::from(u32::MAX))
    }
}

/// How much checking [`crate::PartitionLog::open_with`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OpenMode {
    /// The log was closed cleanly ([`crate::PartitionLog::close`]; the broker knows from its
    /// clean-shutdown marker): only cheap checks, the last segment included. A segment that
    /// fails them is still scanned and repaired.
    AfterCleanShutdown,
    /// After a crash or when unsure: every segment from the checkpoint's recovery point on
    /// (the last one always) is verified batch by batch and truncated at the first invalid
    /// byte; [`RecoveryPolicy::FromOffset`] with the recovery point. Without a valid
    /// checkpoint, every segment.
    #[default]
    Recover,
}

/// How to open a log: the file system to use and the [`OpenMode`]. Builder style:
/// `OpenOptions::default().with_mode(OpenMode::AfterCleanShutdown)`.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) mode: OpenMode,
}

impl Default for OpenOptions {
    /// The real file system, [`OpenMode::Recover`].
    fn default() -> Self {
        Self {
            fs: Arc::new(OsFileSystem),
            mode: OpenMode::default(),
        }
    }
}

impl OpenOptions {
    /// Uses `fs` for every file-system call (for fault injection in tests).
    pub fn with_fs(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    pub fn with_mode(mut self, mode: OpenMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> OpenMode {
        self.mode
    }
}

/// Which segments [`crate::PartitionLog::open_with_policy`] verifies batch by batch.
///
/// Every segment gets cheap checks (index files well formed, the last indexed batch and the
/// batches after it parse and end exactly at the end of the file); the segments selected here
/// are in addition read in full with CRC checks. A segment that fails either is truncated at
/// its first invalid byte and every later segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryPolicy {
    /// Verify only the last segment, the only one a crash can leave half written (segments
    /// are trimmed and fsynced before the next one takes appends; a crash in the middle of a
    /// roll leaves an untrimmed segment that fails the cheap checks).
    #[default]
    LastSegment,
    /// Verify the segment containing this offset and every later one (a recovery checkpoint:
    /// everything before it is known to be durable). `FromOffset(0)` verifies everything.
    FromOffset(i64),
}
