//! The aborted-transaction index of a segment (`<base>.txnindex`): one entry per transaction
//! whose ABORT marker is in that segment, so that a read_committed fetch can tell the
//! consumer which records to drop without reading the log.
//!
//! # Format (Kafka's `.txnindex`; headerless, big-endian, 34-byte entries)
//!
//! ```text
//! offset  size  field
//!      0     2  version             0
//!      2     8  producer_id
//!     10     8  first_offset        the transaction's first offset in this partition
//!     18     8  last_offset         the offset of its ABORT marker
//!     26     8  last_stable_offset  the partition's LSO once the marker was written
//! ```
//!
//! Entries are in marker order (increasing `last_offset`). A trailing partial entry is
//! ignored. The file exists only for segments with an aborted transaction, so a partition
//! that never saw one has none.
//!
//! Entries are appended without a sync while the segment is active; the broker rebuilds
//! them from the log when it opens the partition (as it rebuilds producer state), and the
//! file is fsynced when the segment is sealed or the log closed.

use std::path::Path;

use crate::{
    error::StorageError,
    fs::{self, FileHandle, SharedFs},
};

type Result<T> = std::result::Result<T, StorageError>;

pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// The transaction's first offset in the partition.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written: no transaction that
    /// starts below it is still open after this one.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?));
        Some(Self {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

fn encode_all(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_SIZE);
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// Appends `entry` to the index at `path` (created if missing).
pub(crate) fn append(fs: &SharedFs, path: &Path, entry: &AbortedTxn) -> Result<()> {
    let file = match FileHandle::open_existing(fs, path)? {
        Some(f) => f,
        None => FileHandle::create(fs, path)?,
    };
    // After whole entries only: a torn tail from a crash is overwritten.
    let end = file.file_len()? / ENTRY_SIZE as u64 * ENTRY_SIZE as u64;
    file.write_all_at(&encode_all(&[*entry]), end)?;
    if file.file_len()? > end + ENTRY_SIZE as u64 {
        file.set_len(end + ENTRY_SIZE as u64)?;
    }
    Ok(())
}

/// Every entry of the index at `path` (none if there is no file).
pub(crate) fn read(fs: &SharedFs, path: &Path) -> Result<Vec<AbortedTxn>> {
    let Some(file) = FileHandle::open_existing(fs, path)? else {
        return Ok(Vec::new());
    };
    let len = file.file_len()? / ENTRY_SIZE as u64 * ENTRY_SIZE as u64;
    if len == 0 {
        return Ok(Vec::new());
    }
    let map = file.map(len)?;
    let bytes = usize::try_from(len)
        .ok()
        .and_then(|l| map.as_ref()?.get(0..l))
        .unwrap_or_default();
    Ok(bytes
        .chunks_exact(ENTRY_SIZE)
        .filter_map(AbortedTxn::decode)
        .collect())
}

/// Replaces the index at `path` with `entries` (removing the file if there are none).
pub(crate) fn write_all(fs: &SharedFs, path: &Path, entries: &[AbortedTxn]) -> Result<()> {
    if entries.is_empty() {
        return fs::remove_file(fs, path);
    }
    let file = FileHandle::create(fs, path)?;
    file.write_all_at(&encode_all(entries), 0)
}

/// fsyncs the index at `path` if there is one.
pub(crate) fn sync(fs: &SharedFs, path: &Path) -> Result<()> {
    match FileHandle::open_existing(fs, path)? {
        Some(file) => file.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_are_kafkas_34_byte_layout() {
        let mut b = Vec::new();
        AbortedTxn {
            producer_id: 0x0102,
            first_offset: 3,
            last_offset: 4,
            last_stable_offset: 5,
        }
        .encode(&mut b);
        assert_eq!(b.len(), ENTRY_SIZE);
        assert_eq!(&b[0..2], &[0, 0]);
        assert_eq!(&b[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&b[10..18], &3i64.to_be_bytes());
        assert_eq!(&b[18..26], &4i64.to_be_bytes());
        assert_eq!(&b[26..34], &5i64.to_be_bytes());
    }

    #[test]
    fn append_read_rewrite_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let fs: SharedFs = std::sync::Arc::new(crate::fs::OsFileSystem);
        let path = dir.path().join("00000000000000000000.txnindex");
        assert_eq!(read(&fs, &path).unwrap(), vec![]);
        append(&fs, &path, &entry(1, 0, 4)).unwrap();
        append(&fs, &path, &entry(2, 5, 9)).unwrap();
        assert_eq!(
            read(&fs, &path).unwrap(),
            vec![entry(1, 0, 4), entry(2, 5, 9)]
        );
        // A torn entry (a crash mid-append) is ignored, then overwritten.
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut &f, &[0, 0, 1]).unwrap();
        assert_eq!(read(&fs, &path).unwrap().len(), 2);
        append(&fs, &path, &entry(3, 10, 12)).unwrap();
        assert_eq!(read(&fs, &path).unwrap()[2], entry(3, 10, 12));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            3 * ENTRY_SIZE as u64
        );
        write_all(&fs, &path, &[entry(9, 1, 2)]).unwrap();
        assert_eq!(read(&fs, &path).unwrap(), vec![entry(9, 1, 2)]);
        write_all(&fs, &path, &[]).unwrap();
        assert!(!path.exists());
        sync(&fs, &path).unwrap();
    }
}
