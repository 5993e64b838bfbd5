//! The sparse offset and time indexes of a segment, and the rule that decides their entries.
//!
//! Owns the two on-disk entry formats, the [`Index`] file type shared by both, and
//! [`IndexPlanner`], the single place that decides which batch gets an entry. Appends and
//! rebuilds both run the planner, so an index rebuilt from the log equals the one written by
//! appends (given the same `index_interval_bytes`).
//!
//! # Formats (all integers big-endian, no header)
//!
//! `.index`, 8-byte entries `(relative_offset: u32, position: u32)`: the batch whose *base*
//! offset is `segment_base + relative_offset` starts at byte `position` of the `.log`.
//! Entries strictly increase in both fields. A lookup for offset `o` takes the last entry
//! with `relative_offset <= o - segment_base` and scans batch headers forward from there.
//!
//! `.timeindex`, 12-byte entries `(timestamp: i64, relative_offset: u32)`: `timestamp` is the
//! greatest batch `max_timestamp` seen in the segment up to and including the batch at
//! `relative_offset`, and that batch is the first to reach it. Timestamps are >= 0 (batches
//! without a timestamp, -1, are not indexed) and strictly increase, as do offsets. So every
//! batch before the entry's batch has a smaller max timestamp: a search for the first batch
//! with `max_timestamp >= t` may start at the last entry with `timestamp <= t`.
//!
//! Entries are added when a batch is the first of its segment or at least
//! `index_interval_bytes` were appended since the previous offset entry; the time index gets
//! an entry at those same batches when the maximum grew. When a segment is sealed (rolled),
//! one last time entry records the segment's maximum timestamp if it is not recorded yet, so
//! a sealed segment's greatest timestamp is its time index's last entry.
//!
//! # Files on disk
//!
//! The active segment's index files are sized for `segment_index_bytes` plus one spare entry
//! and memory mapped once at that size; entries are added with positioned writes and become
//! visible to lookups when committed. The spare entry is for the time entry written when a
//! full segment is sealed. With `preallocate` the whole size gets real blocks (`fallocate`,
//! zero filled) up front. Without it (the default) the file is extended sparsely to that size
//! and blocks are allocated in chunks of [`INDEX_ALLOCATION_CHUNK`] bytes (whole entries)
//! ahead of the next entry: before an entry is written, the space for it *and for the entry
//! after it* must be allocated, otherwise the next chunk is (capped at the sized length). So
//! a full disk fails the append cleanly before anything is written, and the seal entry
//! always finds its slot allocated: sealing never needs new disk space. Lookups only read
//! committed entries, which were written into allocated blocks; the sparse rest of the
//! mapping is never touched. Sealing and clean close trim the files to their entries.
//! Lookups read entries from the mapping, so a sealed segment's index costs no heap memory.

use std::{fmt::Debug, marker::PhantomData, path::Path};

use crate::{
    error::StorageError,
    fs::{FileHandle, SharedFs},
    mmap::Mapping,
};

/// Bytes of an active index allocated at a time when `preallocate` is off (rounded down to
/// whole entries): 8192 offset entries, 5461 time entries.
pub(crate) const INDEX_ALLOCATION_CHUNK: u64 = 64 * 1024;

type Result<T> = std::result::Result<T, StorageError>;

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + Eq + Debug {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// What lookups search by.
    type Key: Ord + Copy;
    fn key(&self) -> Self::Key;
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes an entry from the first [`Self::SIZE`] bytes; `None` if too short.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Whether `self` may follow `prev` in a well-formed index.
    fn follows(&self, prev: &Self) -> bool;
    /// Whether `self` may be the first entry.
    fn valid_first(&self) -> bool {
        true
    }
}

/// An `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    type Key = u32;
    fn key(&self) -> u32 {
        self.relative_offset
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            relative_offset: u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?),
            position: u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?),
        })
    }
    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    type Key = i64;
    fn key(&self) -> i64 {
        self.timestamp
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            timestamp: i64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            relative_offset: u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?),
        })
    }
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.relative_offset > prev.relative_offset
    }
    fn valid_first(&self) -> bool {
        self.timestamp >= 0
    }
}

/// Encodes entries back to back, as stored.
pub(crate) fn encode_all<E: IndexEntry>(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * E::SIZE);
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// Number of entries of `E` that fit in `bytes` (at least one, so that a segment's first
/// batch always gets its entry even with an absurdly small `segment_index_bytes`).
pub(crate) fn max_entries<E: IndexEntry>(bytes: u32) -> usize {
    (usize::try_from(bytes).unwrap_or(usize::MAX) / E::SIZE).max(1)
}

/// An index file: entries `0..len` are committed and readable through the mapping.
#[derive(Debug)]
pub(crate) struct Index<E> {
    file: FileHandle,
    map: Option<Mapping>,
    entries: usize,
    /// Entries at which the index counts as full (active segments; `usize::MAX` if sealed).
    max_entries: usize,
    /// Bytes from the start known to be backed by real blocks (written or allocated).
    allocated: u64,
    /// The length the active file is sized (and mapped) to: `max_entries` plus the spare.
    capacity: u64,
    /// Allocation granularity: [`index_chunk`], or `u64::MAX` with `preallocate`.
    chunk: u64,
    _entry: PhantomData<E>,
}

/// The allocation chunk of an index of `E`: [`INDEX_ALLOCATION_CHUNK`] in whole entries.
fn index_chunk<E: IndexEntry>() -> u64 {
    let size = E::SIZE as u64;
    (INDEX_ALLOCATION_CHUNK / size).max(1) * size
}

impl<E: IndexEntry> Index<E> {
    /// Creates (or overwrites) an active index holding `entries`, sized and mapped for
    /// `max_entries` plus the spare, with the whole of it (`preallocate`) or the first chunk
    /// allocated. With `required` false a full disk only skips the allocation (the index then
    /// allocates as it grows, each step able to fail cleanly); with `required` true it is an
    /// error.
    pub(crate) fn create_active(
        fs: &SharedFs,
        path: &Path,
        entries: &[E],
        max_entries: usize,
        preallocate: bool,
        required: bool,
    ) -> Result<Self> {
        // An existing file (the active segment's, after a crash) is rewritten in place rather
        // than created anew: creating files is the slow part of opening thousands of logs.
        // Whatever lies past the entries written below is never read (lookups see committed
        // entries only) and is cut when the index is trimmed.
        let file = match FileHandle::open_existing(fs, path)? {
            Some(file) => file,
            None => FileHandle::create(fs, path)?,
        }
        .unguarded();
        let mut index = Self {
            file,
            map: None,
            entries: entries.len(),
            max_entries,
            allocated: 0,
            capacity: 0,
            chunk: u64::MAX,
            _entry: PhantomData,
        };
        // Allocated from byte 0: the entries' space too, before they are written.
        index.activate(max_entries, preallocate, required)?;
        if !entries.is_empty() {
            index.file.write_all_at(&encode_all(entries), 0)?;
            index.allocated = index.allocated.max(byte_len::<E>(entries.len()));
        }
        Ok(index)
    }

    /// Sizes the file for `max_entries` plus the spare (sparse), allocates ahead of the next
    /// entry (module docs) and maps the file at that size.
    fn activate(&mut self, max_entries: usize, preallocate: bool, required: bool) -> Result<()> {
        self.capacity = byte_len::<E>(max_entries.max(self.entries).saturating_add(1));
        self.chunk = if preallocate {
            u64::MAX
        } else {
            index_chunk::<E>()
        };
        // An empty index of a new log takes no disk until its first entry (which allocates
        // before writing); see `prepare_active_log`.
        let need = if self.entries == 0 && !preallocate && !required {
            0
        } else {
            self.need_for_next()
        };
        self.file.preallocate(
            &mut self.allocated,
            need,
            self.chunk,
            self.capacity,
            required,
        )?;
        if self.file.file_len()? < self.capacity {
            self.file.set_len(self.capacity)?;
        }
        self.map = self.file.map(self.capacity)?;
        self.max_entries = max_entries;
        Ok(())
    }

    /// The bytes that must be allocated before the next entry is written: its slot and, while
    /// within the sized length, the slot after it (so the seal entry never needs new space).
    fn need_for_next(&self) -> u64 {
        let slot_end = byte_len::<E>(self.entries.saturating_add(1));
        let with_spare = byte_len::<E>(self.entries.saturating_add(2)).min(self.capacity);
        slot_end.max(with_spare)
    }

    /// Opens a sealed index file, checking that it is well formed: a whole number of entries,
    /// strictly increasing. `Ok(Err(reason))` when it is missing or malformed.
    pub(crate) fn open_sealed(
        fs: &SharedFs,
        path: &Path,
    ) -> Result<std::result::Result<Self, String>> {
        let Some(file) = FileHandle::open_existing(fs, path)?.map(FileHandle::unguarded) else {
            return Ok(Err("missing".to_string()));
        };
        let len = file.file_len()?;
        if len % E::SIZE as u64 != 0 {
            return Ok(Err(format!(
                "length {len} is not a multiple of {}",
                E::SIZE
            )));
        }
        let index = Self::sealed(file, usize::try_from(len).unwrap_or(usize::MAX) / E::SIZE)?;
        Ok(index.check_order().map(|()| index))
    }

    /// Opens the first `entries` entries of an index file that may hold more (an active
    /// segment's, after a crash), checking that they are well formed; what follows them is
    /// ignored. `Ok(Err(reason))` when the file is missing, shorter, or malformed.
    pub(crate) fn open_prefix(
        fs: &SharedFs,
        path: &Path,
        entries: usize,
    ) -> Result<std::result::Result<Self, String>> {
        let Some(file) = FileHandle::open_existing(fs, path)?.map(FileHandle::unguarded) else {
            return Ok(Err("missing".to_string()));
        };
        let len = file.file_len()?;
        if len < byte_len::<E>(entries) {
            return Ok(Err(format!("length {len} is short of {entries} entries")));
        }
        let index = Self::sealed(file, entries)?;
        Ok(index.check_order().map(|()| index))
    }

    /// Whether the committed entries are strictly increasing from a valid first one.
    fn check_order(&self) -> std::result::Result<(), String> {
        let mut prev: Option<E> = None;
        for i in 0..self.len() {
            let Some(e) = self.entry(i) else {
                return Err(format!("entry {i} unreadable"));
            };
            let ok = match prev {
                None => e.valid_first(),
                Some(p) => e.follows(&p),
            };
            if !ok {
                return Err(format!("entry {i} ({e:?}) out of order"));
            }
            prev = Some(e);
        }
        Ok(())
    }

    /// Writes `entries` after the committed ones of an index that is not sized for appends
    /// (opened by [`Index::open_prefix`]) and commits them; the dormant active segment's
    /// index after a crash, as [`Index::write_in_place`].
    pub(crate) fn extend_in_place(&mut self, entries: &[E]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&encode_all(entries), byte_len::<E>(self.entries))?;
        let total = self.entries.saturating_add(entries.len());
        let len = byte_len::<E>(total);
        self.map = self.file.map(len)?;
        self.entries = total;
        self.allocated = self.allocated.max(len);
        self.capacity = len;
        Ok(())
    }

    /// Writes `entries` at the start of the existing file (created if missing), without
    /// sizing or allocating it for appends: the index of a dormant active segment after a
    /// crash (see [`crate::segment`]), activated by the segment's first append. Bytes after the
    /// entries are never read and are cut when the index is trimmed.
    pub(crate) fn write_in_place(fs: &SharedFs, path: &Path, entries: &[E]) -> Result<Self> {
        let file = match FileHandle::open_existing(fs, path)? {
            Some(file) => file,
            None => FileHandle::create(fs, path)?,
        }
        .unguarded();
        if !entries.is_empty() {
            file.write_all_at(&encode_all(entries), 0)?;
        }
        Self::sealed(file, entries.len())
    }

    /// An index of `entries` committed entries at the start of `file`, mapped exactly, that
    /// is not sized for appends (sealed, or dormant until [`Index::reopen_active`]).
    pub(crate) fn sealed(file: FileHandle, entries: usize) -> Result<Self> {
        let len = byte_len::<E>(entries);
        let map = file.map(len)?;
        Ok(Self {
            entries,
            file,
            map,
            max_entries: usize::MAX,
            allocated: len,
            capacity: len,
            chunk: u64::MAX,
            _entry: PhantomData,
        })
    }

    /// Writes a sealed index holding exactly `entries` through a temporary file renamed into
    /// place, so a crash leaves either the old file or the complete new one. The caller
    /// fsyncs the directory.
    pub(crate) fn write_sealed(fs: &SharedFs, path: &Path, entries: &[E]) -> Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let file = FileHandle::create(fs, &tmp)?;
        file.write_all_at(&encode_all(entries), 0)?;
        file.sync_all()?;
        drop(file);
        crate::fs::rename(fs, &tmp, path)?;
        let file = FileHandle::open_existing(fs, path)?
            .ok_or_else(|| StorageError::io("open", path)(std::io::ErrorKind::NotFound.into()))?
            .unguarded();
        Self::sealed(file, entries.len())
    }

    /// Number of committed entries.
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    /// Entry `i`, if committed.
    pub(crate) fn entry(&self, i: usize) -> Option<E> {
        if i >= self.entries {
            return None;
        }
        let start = i.checked_mul(E::SIZE)?;
        E::decode(self.map.as_ref()?.get(start..start.checked_add(E::SIZE)?)?)
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// All committed entries, in order.
    pub(crate) fn to_vec(&self) -> Vec<E> {
        (0..self.entries).map_while(|i| self.entry(i)).collect()
    }

    /// The last entry whose key is `<= key` (`None` if all are greater or there are none).
    pub(crate) fn floor(&self, key: E::Key) -> Option<E> {
        // Binary search for the number of entries with key <= `key`.
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if e.key() <= key => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1).and_then(|i| self.entry(i))
    }

    /// The number of leading committed entries for which `below` holds (`below` must hold
    /// for a prefix of the entries and not after it, as for a sorted slice's partition point).
    pub(crate) fn count_below(&self, below: impl Fn(&E) -> bool) -> usize {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid) {
                Some(e) if below(&e) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Writes `entry` into the next slot without committing it. First the blocks for the slot
    /// (and the spare after it) are allocated if they are not yet (module docs); a slot
    /// beyond the mapping (past the sized length) is mapped after writing. Writing again
    /// overwrites the same slot, so a failed append can be retried.
    pub(crate) fn write_pending(&mut self, entry: E) -> Result<()> {
        let mut buf = Vec::with_capacity(E::SIZE);
        entry.encode(&mut buf);
        let slot_end = byte_len::<E>(self.entries + 1);
        let need = self.need_for_next();
        self.file
            .allocate_ahead(&mut self.allocated, need, self.chunk, self.capacity)?;
        self.file.write_all_at(&buf, slot_end - E::SIZE as u64)?;
        let mapped = self.map.as_ref().map_or(0, |m| m.len() as u64);
        if mapped < slot_end {
            self.map = self.file.map(slot_end)?;
        }
        Ok(())
    }

    /// Commits the entry written by [`Index::write_pending`].
    pub(crate) fn commit_pending(&mut self) {
        self.entries += 1;
    }

    /// fsyncs the file (after creating it).
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_all()
    }

    /// Makes a trimmed index (of a segment closed cleanly) active again without rewriting
    /// it: sizes it for `max_entries` (plus the spare) after the existing entries, which stay
    /// as they are, allocates ahead as [`Index::create_active`] does, and maps it.
    /// `preallocate` and `required` as for [`Index::create_active`].
    pub(crate) fn reopen_active(
        &mut self,
        max_entries: usize,
        preallocate: bool,
        required: bool,
    ) -> Result<()> {
        self.allocated = self.allocated.min(byte_len::<E>(self.entries));
        self.activate(max_entries, preallocate, required)
    }

    /// Shortens the file to its committed entries, fsyncs it and maps exactly those. The
    /// index then counts as sealed (never full).
    pub(crate) fn trim(&mut self) -> Result<()> {
        let len = byte_len::<E>(self.entries);
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.map = self.file.map(len)?;
        self.max_entries = usize::MAX;
        self.allocated = len;
        self.capacity = len;
        Ok(())
    }
}

fn byte_len<E: IndexEntry>(entries: usize) -> u64 {
    (entries as u64).saturating_mul(E::SIZE as u64)
}

/// What the planner needs to know about a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlannedBatch {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
}

/// Index entries to add for one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) offset: Option<OffsetEntry>,
    pub(crate) time: Option<TimeEntry>,
}

/// Whether a batch needs an offset entry, given the bytes appended since the last entry.
pub(crate) fn offset_entry_due(bytes_since_entry: u64, interval_bytes: u32) -> bool {
    bytes_since_entry >= u64::from(interval_bytes)
}

/// Decides which batches of a segment get index entries (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexPlanner {
    bytes_since_entry: u64,
    has_offset_entry: bool,
    max_so_far: Option<TimeEntry>,
    last_time_entry: Option<i64>,
}

impl IndexPlanner {
    /// The planner state of a segment reopened after a clean close, reconstructed without a
    /// scan from its last index entries and the batches after its last offset entry:
    /// `tail_bytes` is the size of those batches (the indexed one included), `max_so_far` the
    /// segment's greatest timestamp and the first batch with it, `last_time_entry` the
    /// timestamp of the last time-index entry.
    pub(crate) fn resume(
        tail_bytes: u64,
        has_offset_entry: bool,
        max_so_far: Option<TimeEntry>,
        last_time_entry: Option<i64>,
    ) -> Self {
        Self {
            bytes_since_entry: tail_bytes,
            has_offset_entry,
            max_so_far,
            last_time_entry,
        }
    }

    /// The entries for the next batch of the segment, and the planner state after it.
    /// Pure, so a caller can commit the new state only once the entries are written.
    pub(crate) fn plan(&self, batch: PlannedBatch, interval_bytes: u32) -> (Self, Planned) {
        let mut next = self.clone();
        if batch.max_timestamp >= 0
            && next
                .max_so_far
                .is_none_or(|m| batch.max_timestamp > m.timestamp)
        {
            next.max_so_far = Some(TimeEntry {
                timestamp: batch.max_timestamp,
                relative_offset: batch.relative_offset,
            });
        }
        let mut planned = Planned::default();
        if !next.has_offset_entry || offset_entry_due(next.bytes_since_entry, interval_bytes) {
            planned.offset = Some(OffsetEntry {
                relative_offset: batch.relative_offset,
                position: batch.position,
            });
            next.has_offset_entry = true;
            next.bytes_since_entry = 0;
            planned.time = next.time_entry_due();
            if let Some(t) = planned.time {
                next.last_time_entry = Some(t.timestamp);
            }
        }
        next.bytes_since_entry = next.bytes_since_entry.saturating_add(batch.size);
        (next, planned)
    }

    /// The time entry to append when the segment is sealed, if its maximum is not recorded.
    pub(crate) fn seal_entry(&self) -> Option<TimeEntry> {
        self.time_entry_due()
    }

    /// The segment's greatest max timestamp so far and the first batch that reached it.
    pub(crate) fn max_timestamp(&self) -> Option<TimeEntry> {
        self.max_so_far
    }

    fn time_entry_due(&self) -> Option<TimeEntry> {
        self.max_so_far
            .filter(|m| self.last_time_entry.is_none_or(|t| m.timestamp > t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os() -> SharedFs {
        std::sync::Arc::new(crate::fs::OsFileSystem)
    }

    fn offset_index(dir: &Path, entries: &[(u32, u32)]) -> Index<OffsetEntry> {
        let entries: Vec<_> = entries
            .iter()
            .map(|&(relative_offset, position)| OffsetEntry {
                relative_offset,
                position,
            })
            .collect();
        Index::create_active(&os(), &dir.join("x.index"), &entries, 100, false, true).unwrap()
    }

    #[test]
    fn offset_index_floor_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let idx = offset_index(dir.path(), &[(0, 0), (10, 4100), (25, 8300), (40, 12400)]);
        let pos = |o| idx.floor(o).map(|e| (e.relative_offset, e.position));
        // Exact hits.
        assert_eq!(pos(0), Some((0, 0)));
        assert_eq!(pos(25), Some((25, 8300)));
        assert_eq!(pos(40), Some((40, 12400)));
        // Between entries.
        assert_eq!(pos(9), Some((0, 0)));
        assert_eq!(pos(11), Some((10, 4100)));
        assert_eq!(pos(39), Some((25, 8300)));
        // After the last.
        assert_eq!(pos(1_000_000), Some((40, 12400)));
        // Before the first.
        let idx = offset_index(dir.path(), &[(5, 0), (10, 100)]);
        assert_eq!(idx.floor(4), None);
        assert_eq!(idx.floor(5).map(|e| e.position), Some(0));
        // Empty.
        let idx = offset_index(dir.path(), &[]);
        assert_eq!(idx.floor(3), None);
        assert_eq!(idx.last(), None);
    }

    #[test]
    fn time_index_floor_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let entries =
            [(100, 0), (200, 3), (350, 9)].map(|(timestamp, relative_offset)| TimeEntry {
                timestamp,
                relative_offset,
            });
        let idx = Index::create_active(
            &os(),
            &dir.path().join("x.timeindex"),
            &entries,
            10,
            false,
            true,
        )
        .unwrap();
        let rel = |t| idx.floor(t).map(|e| e.relative_offset);
        assert_eq!(rel(99), None);
        assert_eq!(rel(100), Some(0));
        assert_eq!(rel(199), Some(0));
        assert_eq!(rel(200), Some(3));
        assert_eq!(rel(349), Some(3));
        assert_eq!(rel(i64::MAX), Some(9));
    }

    #[test]
    fn pending_entries_are_invisible_until_committed_and_full_is_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx =
            Index::<OffsetEntry>::create_active(&os(), &path, &[], 2, false, true).unwrap();
        let e = |r, p| OffsetEntry {
            relative_offset: r,
            position: p,
        };
        idx.write_pending(e(0, 0)).unwrap();
        assert_eq!(idx.len(), 0);
        assert_eq!(idx.floor(0), None);
        idx.commit_pending();
        idx.write_pending(e(7, 700)).unwrap();
        idx.commit_pending();
        assert!(idx.is_full());
        // The spare slot, then past the preallocated space: it grows and remaps.
        idx.write_pending(e(9, 900)).unwrap();
        idx.commit_pending();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        idx.write_pending(e(11, 1100)).unwrap();
        idx.commit_pending();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        assert_eq!(idx.floor(100), Some(e(11, 1100)));
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let reopened = Index::<OffsetEntry>::open_sealed(&os(), &path)
            .unwrap()
            .unwrap();
        assert_eq!(
            reopened.to_vec(),
            vec![e(0, 0), e(7, 700), e(9, 900), e(11, 1100)]
        );
    }

    #[test]
    fn open_sealed_rejects_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        assert!(Index::<OffsetEntry>::open_sealed(&os(), &path)
            .unwrap()
            .is_err());
        std::fs::write(&path, [0u8; 12]).unwrap();
        assert!(Index::<OffsetEntry>::open_sealed(&os(), &path)
            .unwrap()
            .is_err());
        // Zero-filled preallocation after the first entry: not increasing.
        std::fs::write(&path, [0u8; 16]).unwrap();
        assert!(Index::<OffsetEntry>::open_sealed(&os(), &path)
            .unwrap()
            .is_err());
        let mut ok = Vec::new();
        for e in [(0, 0), (3, 90)] {
            OffsetEntry {
                relative_offset: e.0,
                position: e.1,
            }
            .encode(&mut ok);
        }
        std::fs::write(&path, &ok).unwrap();
        assert_eq!(
            Index::<OffsetEntry>::open_sealed(&os(), &path)
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        let tpath = dir.path().join("x.timeindex");
        let mut t = Vec::new();
        TimeEntry {
            timestamp: -5,
            relative_offset: 0,
        }
        .encode(&mut t);
        std::fs::write(&tpath, &t).unwrap();
        assert!(Index::<TimeEntry>::open_sealed(&os(), &tpath)
            .unwrap()
            .is_err());
    }

    #[test]
    fn planner_indexes_first_batch_then_every_interval() {
        let mut p = IndexPlanner::default();
        let mut offsets = Vec::new();
        let mut times = Vec::new();
        let mut pos = 0u32;
        // Ten 1000-byte batches, interval 2500: entries at batches 0, 3, 6, 9.
        let ts = [10, 5, 30, 20, 40, 40, 35, 50, -1, 45];
        for (i, &max_timestamp) in ts.iter().enumerate() {
            let (next, planned) = p.plan(
                PlannedBatch {
                    relative_offset: i as u32,
                    position: pos,
                    size: 1000,
                    max_timestamp,
                },
                2500,
            );
            p = next;
            offsets.extend(planned.offset.map(|e| e.relative_offset));
            times.extend(planned.time.map(|e| (e.timestamp, e.relative_offset)));
            pos += 1000;
        }
        assert_eq!(offsets, vec![0, 3, 6, 9]);
        assert_eq!(times, vec![(10, 0), (30, 2), (40, 4), (50, 7)]);
        assert_eq!(p.seal_entry(), None);
        assert_eq!(
            p.max_timestamp(),
            Some(TimeEntry {
                timestamp: 50,
                relative_offset: 7
            })
        );
    }
}
