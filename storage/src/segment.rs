//! One segment: a `.log` file of record batches and its two sparse indexes.
//!
//! Owns the segment's files, its memory map, its committed size and the per-segment facts
//! the log needs without scanning (next offset, greatest timestamp). It knows how to append a
//! batch, seal itself, and walk its batches; it does not decide when to roll (that is
//! [`crate::log`]) nor how a damaged segment is repaired (that is [`crate::recovery`]).
//!
//! # Write path
//!
//! The active segment's `.log` is extended to `segment_bytes` and mapped read-only once at
//! that length (its *capacity*). A batch is written with one positioned write at the
//! committed size and becomes readable only when the committed size is advanced, after the
//! write and its index entries succeeded. Writing through `pwrite` rather than into a
//! writable map means a failed write leaves the segment unchanged, so it can be retried.
//!
//! # Allocation: up front or in chunks
//!
//! Real disk blocks (`fallocate`, not a sparse hole) back every byte before it is written,
//! so a full disk is an `ENOSPC` error *before* anything is written: nothing half written,
//! the log stays writable and the append can be retried once space is freed. How far ahead
//! they are allocated depends on [`LogConfig::preallocate`] (Kafka's `preallocate`):
//!
//! * `true`: the whole capacity is allocated when the segment is created or reactivated, so
//!   each active segment occupies `segment_bytes` of disk.
//! * `false` (the default): the file is extended to its capacity sparsely (`set_len`, no
//!   blocks) and blocks are allocated in chunks ahead of the write position. The segment
//!   remembers how many bytes from the start are allocated; before a write whose end passes
//!   that, the range from there up to the write's end rounded up to a chunk (capped at the
//!   capacity) is allocated. A new segment gets its first chunk, [`LOG_FIRST_CHUNK`] (1 MiB),
//!   with its first batch, not when it is created; each later chunk is as large as what is
//!   already allocated, up to [`LOG_ALLOCATION_CHUNK`] (8 MiB). So an empty partition costs
//!   no disk blocks, and an idle one at most a chunk beyond its data.
//!
//! The map may cover sparse, unallocated pages; that is safe because nothing ever touches
//! them. Readers only ever read committed bytes (`0..size`), which were written with
//! `pwrite` into blocks allocated before the write, and nothing writes through the map. A
//! page of a hole is never faulted in, and even reading one would give zeros, not `SIGBUS`
//! (that needs an access past the end of the file; trimming only ever shortens a file down
//! to its committed size, see [`crate::mmap`]). A full disk thus
//! surfaces only as `ENOSPC` from `fallocate` (or, on a file system without it, from the
//! write itself), never as a fault in a reader.
//!
//! A batch larger than the capacity grows the segment: the blocks up to its end are
//! allocated (extending the file) and the file is mapped anew.
//!
//! A new segment's three files are created, allocated as above and fsynced before the
//! segment is used (the caller fsyncs the directory), so after a crash the files exist with
//! their full length and an `fdatasync` of the `.log` later suffices to make appended data
//! durable (the file's length does not change while it is active, unless a batch outgrows
//! it). If creation fails, the files created so far are removed again.
//!
//! Sealing (on roll) trims the `.log` and the indexes to their used length, fsyncs them, and
//! remaps the `.log` at its exact length. A clean close does the same without sealing. After
//! a crash, the tail after the last batch (zeros: allocated, never-written blocks and the
//! sparse rest, which also reads as zeros) is cut by recovery.
//!
//! # Releasing the page cache behind the writes
//!
//! Once a range is durable and further back than [`LogConfig::cache_window_bytes`] from
//! the newest durable data, the log releases its pages: this process's mapping of them is
//! dropped (`MADV_DONTNEED`, see [`crate::mmap`]) and the kernel is asked to evict them
//! (`POSIX_FADV_DONTNEED`, which evicts only clean pages: hence only durable ranges). The
//! next appends then reuse those pages. A segment remembers how far from its start it has
//! released ([`Segment::release_cache_below`]); releasing is advisory, so a failure is logged
//! and otherwise ignored. Reading a released range works as before and simply faults the
//! bytes in from the file again.
//!
//! Reads of a released range are left alone: they cache what they read, and the kernel evicts
//! it when memory is short. Releasing behind readers too would make a replay on such a VM
//! cheaper, but every later replay would then read from disk again.
//!
//! File names are the segment's base offset, 20 digits zero-padded: `<base>.log`,
//! `<base>.index`, `<base>.timeindex`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use brook_protocol::batch::BatchView;
use bytes::Bytes;
use tracing::{debug, warn};

use crate::{
    checkpoint::DurablePrefix,
    config::LogConfig,
    error::{Corruption, StorageError},
    fs::{self, FileHandle, SharedFs},
    index::{Index, IndexPlanner, OffsetEntry, PlannedBatch, TimeEntry},
    mmap::Mapping,
};

type Result<T> = std::result::Result<T, StorageError>;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// The most bytes of an active `.log` allocated at a time when `preallocate` is off
/// (module docs).
pub(crate) const LOG_ALLOCATION_CHUNK: u64 = 8 * 1024 * 1024;
/// The first chunk of a new segment. Chunks then grow with the segment (each as large as
/// what is allocated already, up to [`LOG_ALLOCATION_CHUNK`]), so a thousand idle partitions
/// hold about 1 GiB of disk rather than 8 GiB, while a busy one allocates every 8 MiB.
pub(crate) const LOG_FIRST_CHUNK: u64 = 1024 * 1024;

/// The active segment releases cached pages in steps of at least this much, so a group
/// commit every millisecond does not cost two system calls each.
const RELEASE_STEP: u64 = 4 * 1024 * 1024;
/// Releases are whole pages.
const PAGE: u64 = 4096;
/// Release boundaries inside a segment fall on multiples of this. The page cache holds file
/// data in naturally aligned folios of up to 2 MiB (readahead and large-folio writes build
/// them), and the kernel evicts no folio that a range covers only in part: a boundary that
/// cut through one would keep it cached for good.
const RELEASE_ALIGN: u64 = 2 * 1024 * 1024;

/// The `.log` allocation granularity for `config` with `allocated` bytes allocated so far:
/// the whole segment with `preallocate`.
fn log_chunk(config: &LogConfig, allocated: u64) -> u64 {
    if config.preallocate {
        u64::MAX
    } else {
        allocated.clamp(LOG_FIRST_CHUNK, LOG_ALLOCATION_CHUNK)
    }
}

/// Readies the `.log` of a segment becoming active with `size` committed bytes: allocates
/// ahead of `size` (the whole capacity with `preallocate`, else one chunk) and extends the
/// file sparsely to its capacity, `segment_bytes` (or `size` if larger). Returns the
/// capacity and the bytes from the start now allocated. With `required` false a full disk
/// only skips the allocation. The caller fsyncs.
pub(crate) fn prepare_active_log(
    log: &FileHandle,
    size: u64,
    config: &LogConfig,
    required: bool,
) -> Result<(u64, u64)> {
    let capacity = size.max(config.segment_limit());
    let mut allocated = size;
    // An empty segment opened or created for a new log takes no disk until its first batch
    // (which allocates its first chunk before writing), so an empty partition costs no
    // blocks. A segment created by a roll (`required`) gets its first chunk at once, so a
    // full disk fails the roll before anything changes.
    let need = if size == 0 && !config.preallocate && !required {
        0
    } else {
        size.saturating_add(1).min(capacity)
    };
    log.preallocate(
        &mut allocated,
        need,
        log_chunk(config, size),
        capacity,
        required,
    )?;
    if log.file_len()? < capacity {
        log.set_len(capacity)?;
    }
    Ok((capacity, allocated))
}

/// The path of a segment file: `dir/<base, 20 digits><suffix>`.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// The base offset named by a `.log` file name, if it is one of ours.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(LOG_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// When a new segment's files get their first blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstChunk {
    /// At creation: a roll, which must fail before changing anything on a full disk.
    Now,
    /// With the first batch: the first segment of a new or emptied log.
    WithFirstBatch,
}

/// Header facts of one stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchInfo {
    pub(crate) position: u64,
    pub(crate) size: u64,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
}

impl BatchInfo {
    pub(crate) fn of(view: &BatchView<'_>, position: u64) -> Self {
        Self {
            position,
            size: view.size() as u64,
            base_offset: view.base_offset(),
            last_offset: view.last_offset(),
            max_timestamp: view.max_timestamp(),
        }
    }
}

/// Why the active segment must be rolled before the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollReason {
    Size,
    Age,
    IndexFull,
    /// The key index of the segment holds `brook.key.index.segment.entries`.
    KeyIndexFull,
    OffsetRange,
    Requested,
}

/// State only the active (writable) segment has.
#[derive(Debug)]
pub(crate) struct ActiveState {
    /// Decides the index entries of the next batch.
    pub(crate) planner: IndexPlanner,
    /// Time the segment's age is measured from (`segment.ms`): `now_ms` of its first append,
    /// or after a reopen its first batch's max timestamp. `None` until known.
    pub(crate) roll_base_ms: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    /// Shared with [`crate::SyncPoint`]s, which fdatasync it without holding the log.
    log: Arc<FileHandle>,
    /// Maps `capacity` bytes of the `.log`; only `0..size` is ever read.
    map: Option<Mapping>,
    /// Committed bytes: everything below is whole, valid batches.
    size: u64,
    /// Length of the file and of the map (active: `segment_bytes` or more; sealed: `size`).
    capacity: u64,
    /// Bytes from the start backed by real blocks, `size..=capacity` (module docs).
    allocated: u64,
    offset_index: Index<OffsetEntry>,
    time_index: Index<TimeEntry>,
    /// Offset after the last batch (the base offset when empty).
    next_offset: i64,
    /// Greatest batch max timestamp (>= 0) and the first batch that has it.
    max_timestamp: Option<TimeEntry>,
    /// `Some` while this is the active segment.
    active: Option<ActiveState>,
    /// Bytes from the start whose cached pages were released (module docs).
    cache_released: u64,
    /// Active, but its files are still as a clean close left them (trimmed, mapped at their
    /// length): they are sized and allocated for appends by the first append, not when the
    /// log is opened, so reopening thousands of idle partitions changes no file.
    dormant: bool,
}

/// The parts a segment is assembled from (by creation or recovery).
pub(crate) struct SegmentParts {
    pub(crate) base_offset: i64,
    pub(crate) log: FileHandle,
    pub(crate) size: u64,
    /// Length to map: the committed size for sealed segments, the file's length if active.
    pub(crate) capacity: u64,
    /// Bytes from the start backed by real blocks (the committed size for sealed segments).
    pub(crate) allocated: u64,
    pub(crate) offset_index: Index<OffsetEntry>,
    pub(crate) time_index: Index<TimeEntry>,
    pub(crate) next_offset: i64,
    pub(crate) active: Option<ActiveState>,
}

impl Segment {
    /// Assembles a segment, mapping its `.log`. A sealed segment's greatest timestamp is its
    /// time index's last entry (see [`crate::index`]); an active one's comes from its planner.
    pub(crate) fn from_parts(parts: SegmentParts) -> Result<Self> {
        let map = parts.log.map(parts.capacity)?;
        let max_timestamp = match &parts.active {
            Some(a) => a.planner.max_timestamp(),
            None => parts.time_index.last(),
        };
        Ok(Self {
            base_offset: parts.base_offset,
            log: Arc::new(parts.log),
            map,
            size: parts.size,
            capacity: parts.capacity,
            allocated: parts.allocated.max(parts.size),
            offset_index: parts.offset_index,
            time_index: parts.time_index,
            next_offset: parts.next_offset,
            max_timestamp,
            active: parts.active,
            cache_released: 0,
            dormant: false,
        })
    }

    /// Assembles a sealed segment of `len` committed bytes: mapped, sized and backed by blocks
    /// up to exactly `len`, with no append state.
    pub(crate) fn sealed(
        base_offset: i64,
        log: FileHandle,
        len: u64,
        next_offset: i64,
        offset_index: Index<OffsetEntry>,
        time_index: Index<TimeEntry>,
    ) -> Result<Self> {
        Self::from_parts(SegmentParts {
            base_offset,
            log,
            size: len,
            capacity: len,
            allocated: len,
            offset_index,
            time_index,
            next_offset,
            active: None,
        })
    }

    /// Creates a new, empty active segment in `dir` (overwriting stray files of that name):
    /// every file sized, allocated (wholly or its first chunk) and fsynced (module docs). The caller fsyncs the directory. On
    /// error (say, `NoSpace`) the files created so far are removed again, best effort.
    pub(crate) fn create(
        fs: &SharedFs,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        allocation: FirstChunk,
    ) -> Result<Self> {
        let result = Self::try_create(fs, dir, base_offset, config, allocation);
        if let Err(e) = &result {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let path = segment_path(dir, base_offset, suffix);
                if let Err(cleanup) = fs::remove_file(fs, &path) {
                    warn!(file = %path.display(), "after failing to create a segment ({e}): {cleanup}");
                }
            }
        }
        result
    }

    fn try_create(
        fs: &SharedFs,
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        allocation: FirstChunk,
    ) -> Result<Self> {
        let now = allocation == FirstChunk::Now;
        let log = FileHandle::create(fs, &segment_path(dir, base_offset, LOG_SUFFIX))?;
        let (capacity, allocated) = prepare_active_log(&log, 0, config, now)?;
        log.sync_all()?;
        let offset_index = Index::create_active(
            fs,
            &segment_path(dir, base_offset, INDEX_SUFFIX),
            &[],
            crate::index::max_entries::<OffsetEntry>(config.segment_index_bytes),
            config.preallocate,
            now,
        )?;
        offset_index.sync()?;
        let time_index = Index::create_active(
            fs,
            &segment_path(dir, base_offset, TIME_INDEX_SUFFIX),
            &[],
            crate::index::max_entries::<TimeEntry>(config.segment_index_bytes),
            config.preallocate,
            now,
        )?;
        time_index.sync()?;
        Self::from_parts(SegmentParts {
            base_offset,
            log,
            size: 0,
            capacity,
            allocated,
            offset_index,
            time_index,
            next_offset: base_offset,
            active: Some(ActiveState {
                planner: IndexPlanner::default(),
                roll_base_ms: None,
            }),
        })
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub(crate) fn log_path(&self) -> &Path {
        self.log.path()
    }
    /// The `.log` file, for syncing it outside the log's lock.
    pub(crate) fn log_file(&self) -> Arc<FileHandle> {
        Arc::clone(&self.log)
    }
    /// Modification time of the `.log` file.
    pub(crate) fn modified(&self) -> Result<SystemTime> {
        self.log.modified()
    }
    pub(crate) fn max_timestamp(&self) -> Option<TimeEntry> {
        self.max_timestamp
    }
    /// Sets the next offset of a sealed segment once recovery has established it.
    pub(crate) fn set_next_offset(&mut self, next_offset: i64) {
        self.next_offset = next_offset;
    }
    pub(crate) fn offset_index(&self) -> &Index<OffsetEntry> {
        &self.offset_index
    }
    pub(crate) fn time_index(&self) -> &Index<TimeEntry> {
        &self.time_index
    }

    /// `offset - base_offset` as a 32-bit relative offset, if it fits.
    pub(crate) fn relative(&self, offset: i64) -> Option<u32> {
        offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
    }

    /// Why this segment must roll before a batch of `batch_size` bytes ending at
    /// `last_offset` is appended at `now_ms`; `None` if it can take it. Empty segments never
    /// roll (an oversized batch grows them instead).
    pub(crate) fn roll_reason(
        &self,
        batch_size: u64,
        last_offset: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> Option<RollReason> {
        if self.is_empty() {
            return None;
        }
        if self.size.saturating_add(batch_size) > config.segment_limit() {
            return Some(RollReason::Size);
        }
        if self.relative(last_offset).is_none() {
            return Some(RollReason::OffsetRange);
        }
        if self.offset_index.is_full() || self.time_index.is_full() {
            return Some(RollReason::IndexFull);
        }
        let base_ms = self.active.as_ref().and_then(|a| a.roll_base_ms)?;
        (now_ms.saturating_sub(base_ms) > config.segment_ms).then_some(RollReason::Age)
    }

    /// Appends one batch whose base offset has been assigned (`info.position` is ignored).
    /// On error nothing is committed and the append can be retried.
    pub(crate) fn append(
        &mut self,
        data: &[u8],
        info: BatchInfo,
        now_ms: i64,
        config: &LogConfig,
    ) -> Result<()> {
        let position = self.size;
        let end = position.saturating_add(data.len() as u64);
        // The roll rules keep both in range; checked anyway so an index entry never wraps.
        let Some(relative_offset) = self.relative(info.base_offset) else {
            return Err(self.corrupt(
                position,
                Corruption::RelativeOffsetOverflow {
                    segment_base: self.base_offset,
                    offset: info.base_offset,
                },
            ));
        };
        let Ok(pos32) = u32::try_from(position) else {
            return Err(self.corrupt(position, Corruption::PositionOverflow(position)));
        };
        self.wake(config)?;
        let Some(active) = &self.active else {
            return Err(StorageError::WritesDisabled {
                dir: self.log.path().to_path_buf(),
                reason: "segment is sealed".to_string(),
            });
        };
        let (planner, planned) = active.planner.plan(
            PlannedBatch {
                relative_offset,
                position: pos32,
                size: data.len() as u64,
                max_timestamp: info.max_timestamp,
            },
            config.index_interval_bytes,
        );
        // Blocks first (a full disk fails here, before anything is written), then the map if
        // the batch outgrows the segment.
        let limit = self.capacity.max(config.segment_limit());
        let chunk = log_chunk(config, self.allocated);
        self.log
            .allocate_ahead(&mut self.allocated, end, chunk, limit)?;
        if end > self.capacity {
            self.grow(end.max(config.segment_limit()))?;
        }
        self.log.write_all_at(data, position)?;
        if let Some(e) = planned.offset {
            self.offset_index.write_pending(e)?;
        }
        if let Some(e) = planned.time {
            self.time_index.write_pending(e)?;
        }
        // Commit: everything is written; make it visible.
        if planned.offset.is_some() {
            self.offset_index.commit_pending();
        }
        if planned.time.is_some() {
            self.time_index.commit_pending();
        }
        self.max_timestamp = planner.max_timestamp();
        if let Some(active) = &mut self.active {
            active.planner = planner;
            active.roll_base_ms.get_or_insert(now_ms);
        }
        self.size = end;
        self.next_offset = info.last_offset.saturating_add(1);
        Ok(())
    }

    /// Extends the `.log` to `capacity` (sparsely beyond what is allocated; a batch is only
    /// written after its blocks were) and maps it anew. Readers holding the old map keep it;
    /// new reads use the new one.
    fn grow(&mut self, capacity: u64) -> Result<()> {
        if self.log.file_len()? < capacity {
            self.log.set_len(capacity)?;
        }
        self.map = self.log.map(capacity)?;
        self.capacity = capacity;
        Ok(())
    }

    /// Makes a segment recovery opened (trimmed after a clean close, or rebuilt after a crash)
    /// the active one again, restoring the planner state recovery reconstructed. Its files are
    /// left as they are until the first append ([`Segment::wake`]), unless `preallocate` asks
    /// for the whole segment on disk up front.
    pub(crate) fn reactivate(&mut self, state: ActiveState, config: &LogConfig) -> Result<()> {
        self.max_timestamp = state.planner.max_timestamp();
        self.active = Some(state);
        self.dormant = true;
        if config.preallocate {
            self.wake(config)?;
        }
        Ok(())
    }

    /// Sizes and allocates a dormant segment's `.log` and indexes as a new segment's (module
    /// docs), before the roll decision of its first append (which needs its index limits).
    /// A full disk only skips the allocation (the append then fails cleanly). No-op unless
    /// dormant.
    pub(crate) fn wake(&mut self, config: &LogConfig) -> Result<()> {
        if !self.dormant {
            return Ok(());
        }
        let (capacity, allocated) = prepare_active_log(&self.log, self.size, config, false)?;
        self.log.sync_all()?;
        self.map = self.log.map(capacity)?;
        self.capacity = capacity;
        self.allocated = allocated;
        self.offset_index.reopen_active(
            crate::index::max_entries::<OffsetEntry>(config.segment_index_bytes),
            config.preallocate,
            false,
        )?;
        self.time_index.reopen_active(
            crate::index::max_entries::<TimeEntry>(config.segment_index_bytes),
            config.preallocate,
            false,
        )?;
        self.dormant = false;
        Ok(())
    }

    /// Turns the active segment into a sealed one: records the segment's greatest timestamp
    /// in the time index, trims and fsyncs all three files.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Some(active) = self.active.take() {
            if let Some(e) = active.planner.seal_entry() {
                self.time_index.write_pending(e)?;
                self.time_index.commit_pending();
            }
        }
        self.trim_and_sync()
    }

    /// Clean close: trims and fsyncs the files without sealing, so the segment reopens as the
    /// active one exactly as it was.
    pub(crate) fn close(&mut self) -> Result<()> {
        self.trim_and_sync()
    }

    fn trim_and_sync(&mut self) -> Result<()> {
        self.log.set_len(self.size)?;
        self.log.sync_all()?;
        self.map = self.log.map(self.size)?;
        self.capacity = self.size;
        self.allocated = self.size;
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// fdatasync of the `.log` (the indexes of the active segment are rebuilt on recovery,
    /// so they need no sync until sealed).
    pub(crate) fn flush(&self) -> Result<()> {
        self.log.sync_data()
    }

    /// The start of this segment that holds only offsets below `durable` (whose bytes a sync
    /// made durable), ending at a batch this segment's offset index points at (or at its
    /// end), with the index entries covering it; `None` if that start is empty. What the
    /// checkpoint records so that recovery need not read it ([`crate::checkpoint`]).
    pub(crate) fn durable_prefix(&self, durable: i64) -> Option<DurablePrefix> {
        let (position, next_offset) = if durable >= self.next_offset {
            (self.size, self.next_offset)
        } else {
            let entry = self.offset_index.floor(self.relative(durable)?)?;
            (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            )
        };
        if position == 0 {
            return None;
        }
        let relative_end = self.relative(next_offset).unwrap_or(u32::MAX);
        let count = |n: usize| u32::try_from(n).ok();
        Some(DurablePrefix {
            segment_base: self.base_offset,
            next_offset,
            position,
            offset_entries: count(
                self.offset_index
                    .count_below(|e| u64::from(e.position) < position),
            )?,
            time_entries: count(
                self.time_index
                    .count_below(|e| e.relative_offset < relative_end),
            )?,
        })
    }

    /// fsyncs both index files: before a checkpoint names their first entries as durable.
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Recovery read valid batches after the durable prefix this segment was opened with (at
    /// its `size`): the segment now ends at `end` before `next_offset`, and the index entries
    /// of those batches are written after the prefix's. The `.log` must not be longer than
    /// `end` any more, or hold only zeros after it.
    pub(crate) fn extend_recovered(
        &mut self,
        end: u64,
        next_offset: i64,
        offsets: &[OffsetEntry],
        times: &[TimeEntry],
    ) -> Result<()> {
        self.offset_index.extend_in_place(offsets)?;
        self.time_index.extend_in_place(times)?;
        self.map = self.log.map(end)?;
        self.size = end;
        self.capacity = end;
        self.allocated = end;
        self.next_offset = next_offset;
        Ok(())
    }

    /// Releases the cached pages of this segment below `position`, which the caller knows to
    /// be durable (module docs): below `position` rounded down to [`RELEASE_ALIGN`], in steps
    /// of at least [`RELEASE_STEP`], or the whole segment if it is sealed and `position` is at
    /// or past its end.
    pub(crate) fn release_cache_below(&mut self, position: u64) {
        let whole = self.active.is_none() && position >= self.size;
        let target = if whole {
            self.size
        } else {
            position.min(self.size) / RELEASE_ALIGN * RELEASE_ALIGN
        };
        if target <= self.cache_released || (target - self.cache_released < RELEASE_STEP && !whole)
        {
            return;
        }
        let start = self.cache_released;
        self.cache_released = target;
        self.release_range(start, target);
    }

    /// Unmaps and evicts the cached pages of `start..end`, a durable, committed range.
    fn release_range(&self, start: u64, end: u64) {
        let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
        if let (Some(map), Some((s, e))) = (&self.map, range) {
            if let Err(e) = map.release(s..e) {
                debug!(file = %self.log.path().display(), "madvise(DONTNEED): {e}");
            }
        }
        // The kernel keeps a partly covered last page; past the end of the file there is
        // nothing to keep, so a sealed segment's last partial page goes too.
        let end = end.div_ceil(PAGE) * PAGE;
        if let Err(e) = self.log.drop_cache(start, end - start) {
            debug!("{e}");
        }
    }

    /// Whether all of this segment has been released.
    pub(crate) fn cache_fully_released(&self) -> bool {
        self.cache_released >= self.size
    }

    /// A position below which every byte holds offsets below `offset`: the whole segment if
    /// `offset` is past its end, else the start of the nearest indexed batch at or before it.
    pub(crate) fn position_below(&self, offset: i64) -> u64 {
        if offset >= self.next_offset {
            self.size
        } else {
            self.position_floor(offset)
        }
    }

    /// The committed bytes.
    fn committed(&self) -> &[u8] {
        usize::try_from(self.size)
            .ok()
            .and_then(|size| self.map.as_ref()?.get(0..size))
            .unwrap_or_default()
    }

    /// Zero-copy bytes of the committed range `start..end`.
    pub(crate) fn bytes(&self, start: u64, end: u64) -> Result<Bytes> {
        let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
        range
            .filter(|_| end <= self.size)
            .and_then(|(s, e)| self.map.as_ref()?.bytes(s..e))
            .ok_or_else(|| self.corrupt(end, Corruption::IndexBeyondEnd))
    }

    /// The batches starting at `position`, in order, parsed structurally (no CRC check).
    pub(crate) fn batches_from(&self, position: u64) -> SegmentBatches<'_> {
        SegmentBatches {
            segment: self,
            data: self.committed(),
            position,
            failed: false,
        }
    }

    /// Where to start scanning for `offset`: the position of the last indexed batch whose
    /// base offset is `<= offset`, or 0.
    pub(crate) fn position_floor(&self, offset: i64) -> u64 {
        let rel = match offset.checked_sub(self.base_offset) {
            Some(r) if r > 0 => u32::try_from(r).unwrap_or(u32::MAX),
            _ => return 0,
        };
        self.offset_index
            .floor(rel)
            .map_or(0, |e| u64::from(e.position))
    }

    /// The first batch whose last offset is `>= offset`, if this segment has one.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<BatchInfo>> {
        for batch in self.batches_from(self.position_floor(offset)) {
            let batch = batch?;
            if batch.last_offset >= offset {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is `>= timestamp` (and >= 0), ignoring batches
    /// that end below `min_offset` (the log start offset), if any.
    pub(crate) fn find_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<BatchInfo>> {
        let by_time = self.time_index.floor(timestamp).map_or(0, |e| {
            self.position_floor(self.base_offset + i64::from(e.relative_offset))
        });
        let start = by_time.max(self.position_floor(min_offset));
        for batch in self.batches_from(start) {
            let batch = batch?;
            if batch.last_offset >= min_offset
                && batch.max_timestamp >= timestamp
                && batch.max_timestamp >= 0
            {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// The first batch with the greatest max timestamp (>= 0) among those ending at or after
    /// `min_offset`, by scanning from there. For a segment the log start offset cuts through,
    /// where [`Segment::max_timestamp`] may name a batch below it.
    pub(crate) fn max_timestamp_batch_from(&self, min_offset: i64) -> Result<Option<BatchInfo>> {
        let mut best: Option<BatchInfo> = None;
        for batch in self.batches_from(self.position_floor(min_offset)) {
            let batch = batch?;
            if batch.last_offset >= min_offset
                && batch.max_timestamp >= 0
                && best.is_none_or(|b| batch.max_timestamp > b.max_timestamp)
            {
                best = Some(batch);
            }
        }
        Ok(best)
    }

    pub(crate) fn corrupt(&self, position: u64, corruption: Corruption) -> StorageError {
        StorageError::Corrupt {
            path: self.log.path().to_path_buf(),
            position,
            corruption,
        }
    }
}

/// Iterator over a segment's committed batches from some position. Yields an error (once)
/// if bytes that should be a batch are not one.
pub(crate) struct SegmentBatches<'a> {
    segment: &'a Segment,
    data: &'a [u8],
    position: u64,
    failed: bool,
}

impl Iterator for SegmentBatches<'_> {
    type Item = Result<BatchInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position == self.data.len() as u64 {
            return None;
        }
        let rest = usize::try_from(self.position)
            .ok()
            .and_then(|p| self.data.get(p..));
        let Some(rest) = rest else {
            self.failed = true;
            return Some(Err(self
                .segment
                .corrupt(self.position, Corruption::IndexBeyondEnd)));
        };
        match BatchView::parse(rest) {
            Ok(view) => {
                let info = BatchInfo::of(&view, self.position);
                self.position += info.size;
                Some(Ok(info))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(self
                    .segment
                    .corrupt(self.position, Corruption::Batch(e))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let p = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_log_file_name(name), Some(42));
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_file_name("0000000000000000042.log"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_file_name("99999999999999999999.log"), None);
    }
}
