//! Tunables of one partition log and the recovery policy used when it is opened.
//!
//! Owns plain data only; the log reads these values at the moment it needs them, so a
//! changed configuration ([`crate::PartitionLog::set_config`]) applies from the next append
//! or roll on, never retroactively to existing segments.

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
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 7 days, an index entry every 4 KiB, 10 MiB indexes.
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
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
    /// are trimmed and fsynced before a new one is created).
    #[default]
    LastSegment,
    /// Verify the segment containing this offset and every later one (a recovery checkpoint:
    /// everything before it is known to be durable). `FromOffset(0)` verifies everything.
    FromOffset(i64),
}
