//! The log's side of the key index ([`crate::key_index`]): its files, and rebuilding it when
//! the log is opened.
//!
//! - `<base>.keyindex`: the index of the entries made while that segment was active, written
//!   and fsynced when it is sealed. A torn or missing one is rebuilt from the log: the first
//!   sealed segment without a valid index and every later one are indexed again.
//! - `retired.keyindex`: the last entry of each key whose segments retention, DeleteRecords
//!   or compaction removed (it cannot be rebuilt from the log, so it is replaced atomically).
//! - The active segment's entries are in memory only and rebuilt at open, like producer
//!   state.
//!
//! A rolled segment's file is written on a thread of its own ([`KeySeal`]): sorting and
//! writing half a million entries takes tens of milliseconds, and the roll happens inside an
//! append with the partition locked. Until the file is in place, lookups read the entries
//! from memory; a crash before leaves no file or a torn one, which the next open rebuilds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use brook_protocol::batch::BatchView;
use bytes::Bytes;
use tracing::{info, warn};

use super::PartitionLog;
use crate::{
    error::StorageError,
    fs::{self, FileHandle, SharedFs},
    key_index::{file::SealedKeyIndex, KeyIndex},
    segment::{segment_path, RollReason, Segment},
};

type Result<T> = std::result::Result<T, StorageError>;

pub(crate) const KEY_INDEX_SUFFIX: &str = ".keyindex";
const RETIRED_FILE: &str = "retired.keyindex";

/// A rolled segment's key index file, being written on its own thread.
#[derive(Debug)]
pub(super) struct KeySeal {
    base: i64,
    writer: JoinHandle<Result<SealedKeyIndex>>,
}

impl PartitionLog {
    /// The partition's key index, if its topic keeps one (`brook.key.index`). Mutable because
    /// lookups fill its cache of stream heads.
    pub fn key_index(&mut self) -> Option<&mut KeyIndex> {
        // A failure to install a written file puts the log in the failed state, which its
        // writers see; a lookup is still answered from memory.
        let _ = self.settle_key_seal(false);
        self.keys.as_mut()
    }

    /// Waits for the work this log does on threads of its own (writing the key index file
    /// of the segment that rolled last), e.g. before its directory is removed.
    pub fn wait_for_background_writes(&mut self) -> Result<()> {
        self.settle_key_seal(true)
    }

    /// Installs the key index file written on its own thread once it is done (with `wait`,
    /// waits for it). If writing it failed, the log goes to the failed state, as it does
    /// when a roll fails.
    pub(super) fn settle_key_seal(&mut self, wait: bool) -> Result<()> {
        let Some(seal) = self
            .key_seal
            .take_if(|seal| wait || seal.writer.is_finished())
        else {
            return Ok(());
        };
        let path = self.key_index_path(seal.base);
        let written = seal.writer.join().unwrap_or_else(|_| {
            Err(StorageError::io("write", &path)(std::io::Error::other(
                "the key index writer panicked",
            )))
        });
        match written {
            Ok(sealed) => {
                if let Some(index) = self.keys.as_mut() {
                    index.sealed_written(seal.base, sealed);
                }
                Ok(())
            }
            Err(e) => {
                self.fail(format!("writing a key index failed: {e}"));
                Err(e)
            }
        }
    }

    /// Loads the sealed segments' key indexes and rebuilds what is missing, or drops the
    /// index (and its files) if the configuration keeps none.
    pub(super) fn open_key_index(&mut self) -> Result<()> {
        let Some(config) = self.config.key_index else {
            self.keys = None;
            return self.remove_key_index_files(|_| true);
        };
        let mut index = KeyIndex::new(config.cache_keys);
        let mut rebuild_from = self.active.base_offset();
        for (&base, segment) in &self.sealed {
            match load(&self.fs, &segment_path(&self.dir, base, KEY_INDEX_SUFFIX)) {
                Some(sealed) if sealed.max_offset() < segment.next_offset() => {
                    index.sealed_written(base, sealed);
                }
                _ => {
                    rebuild_from = base;
                    break;
                }
            }
        }
        self.remove_key_index_files(|base| index.sealed(base).is_none())?;
        index.set_retired(load(&self.fs, &self.dir.join(RETIRED_FILE)));
        let started = std::time::Instant::now();
        self.replay_into(&mut index, rebuild_from)?;
        let rebuilt_segments = self.sealed.range(rebuild_from..).count();
        if rebuilt_segments > 0 {
            info!(dir = %self.dir.display(), rebuilt_segments, from = rebuild_from, elapsed_ms = started.elapsed().as_millis() as u64, "rebuilt key index files");
        }
        self.keys = Some(index);
        Ok(())
    }

    /// Removes the `<base>.keyindex` files whose base `stale` selects.
    fn remove_key_index_files(&self, stale: impl Fn(i64) -> bool) -> Result<()> {
        let mut removed = false;
        for name in fs::list_dir(&self.fs, &self.dir)? {
            let Some(base) = name
                .strip_suffix(KEY_INDEX_SUFFIX)
                .and_then(|b| b.parse::<i64>().ok())
            else {
                continue;
            };
            if stale(base) {
                fs::remove_file(&self.fs, &self.dir.join(&name))?;
                removed = true;
            }
        }
        if removed {
            fs::sync_dir(&self.fs, &self.dir)?;
        }
        Ok(())
    }

    /// Feeds `index` every batch from `from` on, writing the index file of each sealed
    /// segment it completes. A transaction still open at `from` has batches before it: those
    /// are found from the batch headers and fed first, so its records count if it commits.
    fn replay_into(&self, index: &mut KeyIndex, from: i64) -> Result<()> {
        let mut open: HashMap<i64, Vec<Bytes>> = HashMap::new();
        for segment in self.live_segments() {
            if segment.base_offset() >= from {
                break;
            }
            for_each_batch(segment, self.log_start, |bytes, view| {
                if view.last_offset() >= from {
                    return;
                }
                if view.is_control() {
                    open.remove(&view.producer_id());
                } else if view.is_transactional() {
                    open.entry(view.producer_id()).or_default().push(bytes);
                }
            })?;
        }
        let mut earlier: Vec<Bytes> = open.into_values().flatten().collect();
        earlier.sort_by_key(|b| BatchView::parse(b).map_or(0, |v| v.base_offset()));
        for bytes in &earlier {
            if let Ok(view) = BatchView::parse(bytes) {
                index.observe(&view);
            }
        }
        for (&base, segment) in self.sealed.range(from..) {
            for_each_batch(segment, self.log_start, |_, view| index.observe(&view))?;
            let entries = index.start_seal(base);
            let sealed = write_sealed_with(&self.fs, &self.key_index_path(base), |sink| {
                entries.write_sealed(sink)
            })?;
            index.sealed_written(base, sealed);
        }
        if from <= self.active.base_offset() {
            for_each_batch(&self.active, self.log_start, |_, view| index.observe(&view))?;
        }
        Ok(())
    }

    /// Rolls when the active segment's key index could not take `records` more entries
    /// (and holds any: a batch larger than the limit gets a segment of its own).
    pub(super) fn key_index_full(&self, records: i64) -> Option<RollReason> {
        let limit = self.config.key_index?.segment_entries;
        let held = self.keys.as_ref()?.active_entries();
        let records = usize::try_from(records).unwrap_or(usize::MAX);
        (held > 0 && held.saturating_add(records) > limit).then_some(RollReason::KeyIndexFull)
    }

    pub(super) fn key_index_path(&self, base: i64) -> PathBuf {
        segment_path(&self.dir, base, KEY_INDEX_SUFFIX)
    }

    /// The active segment (base `base`) was sealed: starts writing its key index file on a
    /// thread of its own (see the module docs), once the previous one is in place.
    pub(super) fn seal_key_index(&mut self, base: i64) -> Result<()> {
        self.settle_key_seal(true)?;
        let path = self.key_index_path(base);
        let Some(index) = self.keys.as_mut() else {
            return Ok(());
        };
        let entries = index.start_seal(base);
        let writer = {
            let (fs, path, entries) = (Arc::clone(&self.fs), path.clone(), Arc::clone(&entries));
            move || write_sealed_with(&fs, &path, |sink| entries.write_sealed(sink))
        };
        match std::thread::Builder::new()
            .name("brook-key-index".into())
            .spawn(writer)
        {
            Ok(writer) => {
                self.key_seal = Some(KeySeal { base, writer });
                Ok(())
            }
            // No thread to be had: written here, as it would be there.
            Err(_) => {
                let sealed = write_sealed_with(&self.fs, &path, |sink| entries.write_sealed(sink))?;
                index.sealed_written(base, sealed);
                Ok(())
            }
        }
    }

    /// Segments `bases` are about to be removed: their keys' last entries move into the
    /// retired index first (atomically replaced), so their streams keep their revisions.
    pub(super) fn retire_key_indexes(&mut self, bases: &[i64]) -> Result<()> {
        self.settle_key_seal(true)?;
        let Some(index) = self.keys.as_mut() else {
            return Ok(());
        };
        if bases.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(RETIRED_FILE);
        let tmp = self.dir.join(format!("{RETIRED_FILE}.tmp"));
        write_sealed_with(&self.fs, &tmp, |sink| index.write_retired_with(bases, sink))?;
        fs::rename(&self.fs, &tmp, &path)?;
        fs::sync_dir(&self.fs, &self.dir)?;
        index.set_retired(load(&self.fs, &path));
        for &base in bases {
            index.remove_sealed(base);
        }
        Ok(())
    }

    /// Applies a changed `brook.key.index`: builds the index from the whole log when it is
    /// turned on, drops it when turned off.
    pub(super) fn reconcile_key_index(&mut self) -> Result<()> {
        self.settle_key_seal(true)?;
        if self.config.key_index.is_some() == self.keys.is_some() {
            return Ok(());
        }
        if self.config.key_index.is_some() {
            // Files left from an earlier time the index was on are stale.
            self.remove_key_index_files(|_| true)?;
            fs::remove_file(&self.fs, &self.dir.join(RETIRED_FILE))?;
        }
        self.open_key_index()?;
        if self.keys.is_none() {
            fs::remove_file(&self.fs, &self.dir.join(RETIRED_FILE))?;
        }
        Ok(())
    }
}

/// Calls `f` with each batch of `segment` that ends at or after `log_start`.
fn for_each_batch(
    segment: &Segment,
    log_start: i64,
    mut f: impl FnMut(Bytes, BatchView<'_>),
) -> Result<()> {
    for info in segment.batches_from(0) {
        let info = info?;
        if info.last_offset < log_start {
            continue;
        }
        let bytes = segment.bytes(info.position, info.position + info.size)?;
        if let Ok(view) = BatchView::parse(&bytes) {
            f(bytes.clone(), view);
        }
    }
    Ok(())
}

/// Writes an index file from what `write` hands its sink piece by piece, fsyncs it, and
/// maps it back.
fn write_sealed_with(
    fs: &SharedFs,
    path: &Path,
    write: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
) -> Result<SealedKeyIndex> {
    let file = FileHandle::create(fs, path)?;
    let mut len = 0u64;
    write(&mut |chunk: &[u8]| {
        file.write_all_at(chunk, len)?;
        len += chunk.len() as u64;
        Ok(())
    })?;
    file.sync_all()?;
    let read_back = |e: &dyn std::fmt::Display| {
        StorageError::io("read back", path)(std::io::Error::other(e.to_string()))
    };
    let mapped = match file.map(len)?.and_then(|m| m.bytes(0..m.len())) {
        Some(bytes) => bytes,
        // An empty file cannot be mapped; an index is never empty, so this is damage.
        None => return Err(read_back(&"the index file is empty")),
    };
    SealedKeyIndex::open(mapped).map_err(|e| read_back(&e))
}

/// The index file at `path`; `None` if it is missing or unusable (then it is rebuilt).
fn load(fs: &SharedFs, path: &Path) -> Option<SealedKeyIndex> {
    let file = match FileHandle::open_existing(fs, path) {
        Ok(Some(file)) => file,
        Ok(None) => return None,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "key index unreadable; rebuilding it");
            return None;
        }
    };
    let bytes = file
        .file_len()
        .and_then(|len| file.map(len))
        .ok()
        .flatten()
        .and_then(|m| m.bytes(0..m.len()))?;
    match SealedKeyIndex::open(bytes) {
        Ok(index) => Some(index),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "key index damaged; rebuilding it");
            None
        }
    }
}
