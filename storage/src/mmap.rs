//! Read-only memory maps of segment and index files: the crate's `unsafe` code (besides a
//! prefetch hint in `key_index`).
//!
//! Owns [`Mapping`], a shared read-only map of the first `len` bytes of a file, and the way
//! a range of it becomes a [`Bytes`] without copying. Nothing in this module writes to a
//! file; writes go through positioned writes in [`crate::fs`] and become visible here
//! through the shared page cache.
//!
//! [`Mapping`] is public only because [`crate::FileSystem::map`] returns it; it is opaque
//! outside the crate (no constructor, no accessors), so only [`crate::OsFileSystem`] creates
//! one and only this crate reads through one.
//!
//! # Why this is sound
//!
//! Mapping a file is `unsafe` because Rust requires that memory behind a `&[u8]` does not
//! change and stays accessible while the reference lives. A file can be changed or shortened
//! behind the map's back. The crate upholds, for every byte a reference is created to:
//!
//! 1. **Only committed bytes are ever referenced.** [`Mapping::get`] and [`Mapping::bytes`]
//!    build a slice of exactly the requested range straight from the map's pointer (never a
//!    reference to the whole mapping), and callers only request ranges below a segment's
//!    committed size (or an index's committed entry count). Committed bytes have been fully
//!    written before the size was advanced.
//! 2. **Committed bytes are never rewritten or truncated while the log is open.** Appends
//!    write strictly at or beyond the committed size. Trimming (roll, clean close) shortens a
//!    file only down to its committed size. Recovery truncates invalid tails before any
//!    slice of that file exists, and after dropping the map it scanned with.
//! 3. **No reference reaches a page that could fault.** A map may be longer than the
//!    written data: an active segment's `.log` and indexes are extended *sparsely* to their
//!    full size and mapped once, while disk blocks are allocated in chunks ahead of the
//!    writes (see [`crate::segment`]). Only committed bytes are referenced (rule 1), and they
//!    were written with `pwrite` into blocks allocated beforehand, so they are in the page
//!    cache or on disk; nothing is ever written through a map, so a full disk can never turn
//!    into a `SIGBUS` on a dirty mapped page. The unallocated rest of a map is never touched
//!    (a read there would see zeros, as the file is never shorter than a map while its
//!    committed range is read: files are only shortened to their committed size, rule 2).
//! 4. **Releasing pages keeps their bytes.** [`Mapping::release`] (`MADV_DONTNEED`) only
//!    drops this process's page-table entries for a range of a *shared, file-backed* map;
//!    the next access faults the same file bytes back in (from the page cache or the disk).
//!    It is only used on committed ranges, which never change (rule 2), so a reference into
//!    such a range sees the same bytes before and after.
//! 5. **Deleted files stay readable.** A [`Bytes`] may outlive its log; deleting or replacing
//!    a file only unlinks it, and the kernel keeps the inode alive while it is mapped.
//!
//! The remaining assumption, shared by every mmap-based store, is that no other process
//! modifies the log directory while a log is open (one `PartitionLog` per directory).

#![allow(unsafe_code)]

use std::{fs::File, io, ops::Range, sync::Arc};

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

/// A shared, read-only memory map of a file's first bytes, as returned by
/// [`crate::FileSystem::map`]. Opaque outside this crate; cloning shares the map.
#[derive(Debug, Clone)]
pub struct Mapping(Arc<Mmap>);

impl Mapping {
    /// Maps the first `len` bytes of `file` read-only and shared. `None` for `len == 0`
    /// (an empty map cannot be created portably and holds nothing to read).
    ///
    /// The file must already be at least `len` bytes long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Option<Self>> {
        if len == 0 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        // SAFETY: see the module docs. The map is read-only; every reference into it is
        // created by `slice` below for a committed range that is never modified or truncated
        // while a reference exists.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(Some(Self(Arc::new(map))))
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes in `range`, or `None` if the range is not inside the mapping.
    ///
    /// Callers pass committed ranges only (module docs, rule 1).
    pub(crate) fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        slice(&self.0, range)
    }

    /// Unmaps the pages of `range` from this process (`MADV_DONTNEED`) so the kernel may then
    /// evict them from the page cache: it never evicts a page that is mapped. The bytes stay
    /// readable (module docs, rule 4). Advisory: an error only means the pages stay.
    ///
    /// Callers pass committed ranges only (module docs, rule 1).
    pub(crate) fn release(&self, range: Range<usize>) -> io::Result<()> {
        if range.start >= range.end || range.end > self.0.len() {
            return Ok(());
        }
        // SAFETY: the map is shared and file-backed, so MADV_DONTNEED drops page-table
        // entries only: later reads fault the file's bytes back in, and the range is
        // committed, so those bytes are the ones any live reference saw (module docs, rule 4).
        unsafe {
            self.0
                .unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.len())
        }
    }

    /// The bytes in `range` as a [`Bytes`] that keeps the mapping alive, without copying.
    pub(crate) fn bytes(&self, range: Range<usize>) -> Option<Bytes> {
        slice(&self.0, range.clone())?;
        Some(Bytes::from_owner(Window {
            map: Arc::clone(&self.0),
            range,
        }))
    }
}

/// Owner of a zero-copy [`Bytes`]: one committed range of a mapping.
struct Window {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        slice(&self.map, self.range.clone()).unwrap_or_default()
    }
}

/// A slice of exactly `range` of `map`, without creating a reference to the rest of it.
fn slice(map: &Mmap, range: Range<usize>) -> Option<&[u8]> {
    if range.start > range.end || range.end > map.len() {
        return None;
    }
    // SAFETY: `range` lies inside the live mapping (checked above), which stays mapped for
    // the lifetime of `map`; the bytes are committed and never change while referenced
    // (module docs). `u8` has no alignment or validity requirements.
    Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(range.start), range.len()) })
}
