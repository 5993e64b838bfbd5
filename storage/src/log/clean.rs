//! One compaction pass over a log's sealed segments, and the file protocol that makes it
//! crash-atomic per segment.
//!
//! A pass has three steps, so that only the first and the last hold the log (the broker's
//! partition lock), and appends and fetches go on while the segments are cleaned:
//! 1. [`PartitionLog::plan_clean`] takes the sealed segments below `upto` (their mapped bytes
//!    stay readable whatever the log does meanwhile) and the aborted transactions among them;
//! 2. [`CleanJob::run`], without the log, builds the [`OffsetMap`] of every key's latest
//!    offset over those segments (stopping at a segment boundary if the map fills), then
//!    writes the cleaned version of each segment that changes as `<base>.*.cleaned` files
//!    (fsynced);
//! 3. [`PartitionLog::install_cleaned`] swaps one cleaned segment in, in offset order, unless
//!    retention or DeleteRecords removed the old one meanwhile.
//!
//! What survives (Kafka's `LogCleaner`):
//! - a record, unless a later record of its key is in the map, or it is a tombstone (null
//!   value) in a segment older than the tombstone horizon (`delete.retention.ms`);
//! - records without a key;
//! - nothing of an aborted transaction (its records never enter the map either, so they
//!   cannot hide a committed value);
//! - a transaction marker, unless no batch of its transaction is left before it and its
//!   segment is older than the horizon: data goes in one pass, its marker in a later one;
//! - each producer's last batch (the caller names them), without records if none survive,
//!   so that a restart still knows the producer's epoch and sequence.
//!
//! Replacing a segment (`<base>` below stands for its 20-digit name):
//! 1. the cleaned `.log`, `.index` and `.timeindex` are written as `<base>.*.cleaned` and
//!    fsynced (step 2 above);
//! 2. each is renamed to `<base>.*.swap`, the `.log` last, and the directory fsynced;
//! 3. each `.swap` is renamed over its final name, the `.log` last, and the directory
//!    fsynced.
//!
//! Recovery ([`complete_swaps`], at open): if `<base>.log.swap` exists, step 2 finished, so
//! every remaining `.swap` of that base is renamed into place (completing step 3); otherwise
//! the pass died before step 2 finished and its `.swap` and `.cleaned` files are removed (the
//! old segment was never touched). A new `.log` next to an old index (a crash inside step 3)
//! fails the cheap checks and gets its indexes rebuilt. A segment left without records is
//! removed instead (its files deleted, the directory fsynced), except the first, which stays
//! as an empty segment so that the log start offset does not move. Segments are installed
//! in offset order, so a crash never leaves a newer segment cleaned (a tombstone dropped)
//! above an older one that still holds the value the tombstone deleted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_protocol::batch::{BatchView, Batches};
use bytes::Bytes;

use super::{PartitionLog, Result};
use crate::cleaner::filter::{self, Retained};
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::throttle::Throttle;
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::fs::{self, FileHandle, SharedFs};
use crate::index::{encode_all, Index};
use crate::recovery::{self, Scan, ScanStart};
use crate::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::txn_index::AbortedTxn;

const CLEANED: &str = ".cleaned";
const SWAP: &str = ".swap";
/// The files a cleaned segment replaces, the `.log` last (see the module docs).
const SUFFIXES: [&str; 3] = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX];
/// Decompressed size a batch may reach while it is rewritten.
const MAX_SECTION: usize = 1 << 30;
/// Cleaned bytes buffered before they are written out.
const WRITE_BUFFER: usize = 1 << 20;

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Offsets below this were cleaned (where the next pass's dirty part starts).
    pub cleaned_upto: i64,
    pub segments_rewritten: usize,
    pub segments_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// How a pass cleans, besides where.
#[derive(Clone, Default)]
pub struct CleanOptions {
    /// Size of the offset map (`log.cleaner.dedupe.buffer.size`).
    pub map_bytes: usize,
    /// Tombstones and markers in segments whose newest record is older than this go.
    pub tombstone_horizon_ms: i64,
    /// Base offsets of each producer's last batch (module docs).
    pub keep_batches: HashSet<i64>,
    /// Shared by every pass of the broker (`log.cleaner.io.max.bytes.per.second`).
    pub throttle: Option<Arc<Throttle>>,
}

impl CleanOptions {
    fn take(&self, bytes: usize) {
        if let Some(t) = &self.throttle {
            t.take(bytes as u64);
        }
    }
}

/// Steps of a pass a test may stop it after, as a crash would.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Written,
    Swapped,
    Renamed,
}

/// A sealed segment as a pass found it.
struct Snapshot {
    base: i64,
    bytes: Bytes,
    next_offset: i64,
    /// The next segment's base offset.
    range_end: i64,
    newest_timestamp: i64,
}

/// A pass's input, taken from the log by [`PartitionLog::plan_clean`].
pub struct CleanJob {
    fs: SharedFs,
    dir: PathBuf,
    config: LogConfig,
    log_start: i64,
    /// End of the sealed segments below the pass's limit (empty ones included).
    end: i64,
    segments: Vec<Snapshot>,
    aborted: Vec<AbortedTxn>,
}

/// A pass's output: the cleaned segments still to install, in offset order.
pub struct CleanedLog {
    pub cleaned_upto: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub segments: Vec<CleanedSegment>,
}

/// One segment's `.cleaned` files, and what they replace.
pub struct CleanedSegment {
    base: i64,
    old_size: u64,
    old_next_offset: i64,
    len: u64,
    next_offset: i64,
    offset_entries: usize,
    time_entries: usize,
}

/// What installing a cleaned segment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Rewritten,
    /// Nothing survived: the segment is gone.
    Removed,
    /// The old segment went meanwhile (retention, DeleteRecords); the cleaned one is dropped.
    Skipped,
    /// A test stopped here, as a crash would.
    Stopped,
}

impl PartitionLog {
    /// Compacts the sealed segments below `upto` (rounded down to a segment boundary, never
    /// the active segment), all three steps of the module docs at once.
    pub fn clean(&mut self, upto: i64, options: &CleanOptions) -> Result<CleanOutcome> {
        self.clean_until(upto, options, None)
    }

    pub(crate) fn clean_until(
        &mut self,
        upto: i64,
        options: &CleanOptions,
        stop_after: Option<Step>,
    ) -> Result<CleanOutcome> {
        let cleaned = self.plan_clean(upto)?.run(options)?;
        let mut outcome = CleanOutcome {
            cleaned_upto: cleaned.cleaned_upto,
            bytes_before: cleaned.bytes_before,
            bytes_after: cleaned.bytes_after,
            ..CleanOutcome::default()
        };
        if stop_after == Some(Step::Written) {
            return Ok(outcome);
        }
        for segment in cleaned.segments {
            match self.install_step(segment, stop_after)? {
                Installed::Rewritten => outcome.segments_rewritten += 1,
                Installed::Removed => outcome.segments_removed += 1,
                Installed::Skipped => {}
                Installed::Stopped => return Ok(outcome),
            }
        }
        Ok(outcome)
    }

    /// Step 1 of a pass (module docs): the sealed segments wholly below `upto`.
    pub fn plan_clean(&self, upto: i64) -> Result<CleanJob> {
        self.check_writable()?;
        // A segment's range ends where the next one starts (after a pass, its own next
        // offset may be lower: its last records may be gone).
        let mut segments = Vec::new();
        let mut end = self.log_start;
        let bases: Vec<i64> = self.sealed.keys().copied().collect();
        for (i, segment) in self.sealed.values().enumerate() {
            let range_end = bases
                .get(i + 1)
                .copied()
                .unwrap_or(self.active.base_offset());
            if range_end > upto {
                break;
            }
            end = range_end;
            if segment.is_empty() {
                continue;
            }
            segments.push(Snapshot {
                base: segment.base_offset(),
                bytes: segment.bytes(0, segment.size())?,
                next_offset: segment.next_offset(),
                range_end,
                newest_timestamp: segment.max_timestamp().map_or(-1, |m| m.timestamp),
            });
        }
        Ok(CleanJob {
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            config: self.config,
            log_start: self.log_start,
            end,
            aborted: self.aborted_txns(self.log_start, end)?,
            segments,
        })
    }

    /// Step 3 of a pass (module docs) for the next cleaned segment.
    pub fn install_cleaned(&mut self, cleaned: CleanedSegment) -> Result<Installed> {
        self.install_step(cleaned, None)
    }

    fn install_step(&mut self, c: CleanedSegment, stop_after: Option<Step>) -> Result<Installed> {
        self.check_writable()?;
        let (fs, dir, base) = (&Arc::clone(&self.fs), &self.dir.clone(), c.base);
        let unchanged = self
            .sealed
            .get(&base)
            .is_some_and(|s| s.size() == c.old_size && s.next_offset() == c.old_next_offset);
        let first = self.sealed.keys().next() == Some(&base);
        if !unchanged || (c.len == 0 && !first) {
            for suffix in SUFFIXES {
                fs::remove_file(fs, &with_extra(dir, base, suffix, CLEANED))?;
            }
            if !unchanged {
                return Ok(Installed::Skipped);
            }
            // Emptied: the segment goes (the first stays, empty, for the log start).
            self.retire_key_indexes(&[base])?;
            self.sealed.remove(&base);
            recovery::remove_segment_files(fs, dir, base)?;
            fs::sync_dir(fs, dir)?;
            return Ok(Installed::Removed);
        }
        for suffix in SUFFIXES {
            fs::rename(
                fs,
                &with_extra(dir, base, suffix, CLEANED),
                &with_extra(dir, base, suffix, SWAP),
            )?;
        }
        fs::sync_dir(fs, dir)?;
        if stop_after == Some(Step::Swapped) {
            return Ok(Installed::Stopped);
        }
        for suffix in SUFFIXES {
            fs::rename(
                fs,
                &with_extra(dir, base, suffix, SWAP),
                &segment_path(dir, base, suffix),
            )?;
        }
        fs::sync_dir(fs, dir)?;
        if stop_after == Some(Step::Renamed) {
            return Ok(Installed::Stopped);
        }
        let open = |suffix: &str| -> Result<FileHandle> {
            let path = segment_path(dir, base, suffix);
            FileHandle::open_existing(fs, &path)?.ok_or_else(|| missing(&path))
        };
        let log = open(LOG_SUFFIX)?;
        let offset_index = Index::sealed(open(INDEX_SUFFIX)?.unguarded(), c.offset_entries)?;
        let time_index = Index::sealed(open(TIME_INDEX_SUFFIX)?.unguarded(), c.time_entries)?;
        let segment = Segment::sealed(base, log, c.len, c.next_offset, offset_index, time_index)?;
        self.sealed.insert(base, segment);
        Ok(Installed::Rewritten)
    }
}

impl CleanJob {
    /// Step 2 of a pass (module docs); needs no access to the log.
    pub fn run(mut self, options: &CleanOptions) -> Result<CleanedLog> {
        let aborted = AbortedRanges::new(&self.aborted);
        let mapped = self.build_map(options, &aborted)?;
        let (mut map, count) = mapped;
        let cleaned_upto = if count == self.segments.len() {
            self.end
        } else {
            self.segments[..count]
                .last()
                .map_or(self.log_start, |s| s.range_end)
        };
        self.segments.truncate(count);
        let mut out = CleanedLog {
            cleaned_upto,
            bytes_before: 0,
            bytes_after: 0,
            segments: Vec::new(),
        };
        let mut open_txns = HashSet::new();
        for snapshot in &self.segments {
            let cleaned =
                self.clean_segment(snapshot, &mut map, &aborted, &mut open_txns, options)?;
            out.bytes_before += snapshot.bytes.len() as u64;
            match cleaned {
                Some(c) => {
                    out.bytes_after += c.len;
                    out.segments.push(c);
                }
                None => out.bytes_after += snapshot.bytes.len() as u64,
            }
        }
        Ok(out)
    }

    /// Puts every key's latest offset in the map, segment by segment; returns the map and
    /// how many segments it covers whole.
    fn build_map(
        &self,
        options: &CleanOptions,
        aborted: &AbortedRanges,
    ) -> Result<(OffsetMap, usize)> {
        let mut map = OffsetMap::new(options.map_bytes);
        for (i, snapshot) in self.segments.iter().enumerate() {
            let mut full = false;
            for view in Batches::new(&snapshot.bytes) {
                options.take(view.size());
                if aborted.contains(&view) {
                    continue;
                }
                filter::for_each_record(&view, MAX_SECTION, |r, offset| {
                    if let Some(key) = r.key {
                        full = full || map.put(key, offset).is_err();
                    }
                })
                .map_err(|e| self.corrupt(snapshot.base, &e.to_string()))?;
                if full {
                    // Keys of later segments that made it in are still latest: harmless.
                    return Ok((map, i));
                }
            }
        }
        let count = self.segments.len();
        Ok((map, count))
    }

    /// Writes the cleaned version of one segment as `.cleaned` files; `None` if nothing in it
    /// changes. `open_txns`: producers with a transactional batch since their last marker.
    fn clean_segment(
        &self,
        snapshot: &Snapshot,
        map: &mut OffsetMap,
        aborted: &AbortedRanges,
        open_txns: &mut HashSet<i64>,
        options: &CleanOptions,
    ) -> Result<Option<CleanedSegment>> {
        let base = snapshot.base;
        let bytes = &snapshot.bytes;
        let past_horizon = snapshot.newest_timestamp < options.tombstone_horizon_ms;
        let mut out = Output::new(self, base);
        let mut scan = Scan::starting(ScanStart::segment_start(base));
        let mut position = 0;
        for view in Batches::new(bytes) {
            options.take(view.size());
            let last_of_producer = options.keep_batches.contains(&view.base_offset());
            let retained = if view.is_control() {
                let had_data = open_txns.remove(&view.producer_id());
                if !had_data && past_horizon {
                    Retained::Dropped
                } else {
                    Retained::Unchanged
                }
            } else {
                if view.is_transactional() {
                    open_txns.insert(view.producer_id());
                }
                let aborted = aborted.contains(&view);
                filter::retain(
                    &view,
                    |r, offset| match r.key {
                        _ if aborted => false,
                        None => true,
                        Some(k) => {
                            let latest = map.get(k).is_none_or(|l| l <= offset);
                            latest && !(past_horizon && r.value.is_none())
                        }
                    },
                    last_of_producer,
                    MAX_SECTION,
                )
                .map_err(|e| self.corrupt(base, &e.to_string()))?
            };
            let kept: &[u8] = match &retained {
                Retained::Unchanged => view.bytes(),
                Retained::Rewritten(b) => b,
                Retained::Dropped => &[],
            };
            if !matches!(retained, Retained::Unchanged) {
                out.diverge(&bytes[..position])?;
            }
            if !kept.is_empty() {
                let kept_view =
                    BatchView::parse(kept).map_err(|e| self.corrupt(base, &e.to_string()))?;
                scan.push(&kept_view, base, &self.config)
                    .map_err(|e| self.corrupt(base, &e.to_string()))?;
                out.push(kept)?;
            }
            position += view.size();
        }
        if !out.diverged() {
            return Ok(None);
        }
        out.finish(snapshot, scan).map(Some)
    }

    fn corrupt(&self, base: i64, reason: &str) -> StorageError {
        let path = segment_path(&self.dir, base, LOG_SUFFIX);
        StorageError::io("clean", &path)(std::io::Error::other(reason.to_string()))
    }
}

/// The aborted transactions of a pass, by producer: (first offset, marker offset).
struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    fn new(txns: &[AbortedTxn]) -> Self {
        let mut map: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            map.entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        Self(map)
    }

    /// `view` is a data batch of an aborted transaction.
    fn contains(&self, view: &BatchView<'_>) -> bool {
        if !view.is_transactional() || view.is_control() {
            return false;
        }
        let offset = view.base_offset();
        self.0
            .get(&view.producer_id())
            .is_some_and(|ranges| ranges.iter().any(|(f, l)| (*f..*l).contains(&offset)))
    }
}

/// A cleaned `.log` being written: nothing until the first batch that changes (an unchanged
/// segment writes no file), then the unchanged prefix from the old file's bytes and the rest
/// through a bounded buffer.
struct Output<'a> {
    job: &'a CleanJob,
    base: i64,
    file: Option<FileHandle>,
    written: u64,
    buffer: Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(job: &'a CleanJob, base: i64) -> Self {
        Self {
            job,
            base,
            file: None,
            written: 0,
            buffer: Vec::new(),
        }
    }

    fn diverged(&self) -> bool {
        self.file.is_some()
    }

    /// The first change: the batches before it (`prefix`, unchanged) go out as they are.
    fn diverge(&mut self, prefix: &[u8]) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = with_extra(&self.job.dir, self.base, LOG_SUFFIX, CLEANED);
        let file = FileHandle::create(&self.job.fs, &path)?;
        file.write_all_at(prefix, 0)?;
        self.written = prefix.len() as u64;
        self.file = Some(file);
        self.buffer.reserve(WRITE_BUFFER);
        Ok(())
    }

    fn push(&mut self, batch: &[u8]) -> Result<()> {
        if self.file.is_none() {
            return Ok(()); // still the unchanged prefix
        }
        self.buffer.extend_from_slice(batch);
        if self.buffer.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(file) = &self.file {
            file.write_all_at(&self.buffer, self.written)?;
            self.written += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes the rest and the indexes, fsyncs the three `.cleaned` files.
    fn finish(mut self, snapshot: &Snapshot, mut scan: Scan) -> Result<CleanedSegment> {
        self.flush()?;
        let (job, base) = (self.job, self.base);
        if let Some(file) = &self.file {
            file.sync_all()?;
        }
        scan.time_entries.extend(scan.planner.seal_entry());
        let indexes: [(&str, Vec<u8>); 2] = [
            (INDEX_SUFFIX, encode_all(&scan.offset_entries)),
            (TIME_INDEX_SUFFIX, encode_all(&scan.time_entries)),
        ];
        for (suffix, bytes) in indexes {
            let file = FileHandle::create(&job.fs, &with_extra(&job.dir, base, suffix, CLEANED))?;
            file.write_all_at(&bytes, 0)?;
            file.sync_all()?;
        }
        Ok(CleanedSegment {
            base,
            old_size: snapshot.bytes.len() as u64,
            old_next_offset: snapshot.next_offset,
            len: self.written,
            next_offset: scan.next_offset,
            offset_entries: scan.offset_entries.len(),
            time_entries: scan.time_entries.len(),
        })
    }
}

/// Completes or undoes an interrupted replacement in `dir` (module docs); called before the
/// segments are listed at open.
pub(crate) fn complete_swaps(fs: &SharedFs, dir: &Path, names: &[String]) -> Result<bool> {
    let mut changed = false;
    // `<20-digit base>.<suffix>.swap` or `.cleaned`.
    let mut bases: Vec<i64> = names
        .iter()
        .filter(|n| n.ends_with(SWAP) || n.ends_with(CLEANED))
        .filter_map(|n| {
            let digits = n.split('.').next()?;
            (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect();
    bases.sort_unstable();
    bases.dedup();
    for base in bases {
        let log_swap = with_extra(dir, base, LOG_SUFFIX, SWAP);
        let complete = names.iter().any(|n| dir.join(n) == log_swap);
        for suffix in SUFFIXES {
            let swap = with_extra(dir, base, suffix, SWAP);
            let cleaned = with_extra(dir, base, suffix, CLEANED);
            let has = |p: &Path| names.iter().any(|n| dir.join(n) == p);
            if complete && has(&swap) {
                fs::rename(fs, &swap, &segment_path(dir, base, suffix))?;
            } else {
                if has(&swap) {
                    fs::remove_file(fs, &swap)?;
                }
                if has(&cleaned) {
                    fs::remove_file(fs, &cleaned)?;
                }
            }
            changed = true;
        }
    }
    if changed {
        fs::sync_dir(fs, dir)?;
    }
    Ok(changed)
}

/// `<dir>/<base><suffix><extra>`.
fn with_extra(dir: &Path, base: i64, suffix: &str, extra: &str) -> std::path::PathBuf {
    let mut p = segment_path(dir, base, suffix).into_os_string();
    p.push(extra);
    p.into()
}

fn missing(path: &Path) -> StorageError {
    StorageError::io("open", path)(std::io::ErrorKind::NotFound.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::log::tests::config;
    use brook_protocol::batch::testing::{build_batch, TestRecord};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn options(map_bytes: usize, tombstone_horizon_ms: i64) -> CleanOptions {
        CleanOptions {
            map_bytes,
            tombstone_horizon_ms,
            ..CleanOptions::default()
        }
    }

    fn compacted() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            ..config()
        }
    }

    /// Appends one record of `key` (`None` value: a tombstone); returns its offset.
    fn put(log: &mut PartitionLog, key: &str, value: Option<&str>, ts: i64) -> i64 {
        let mut b = build_batch(
            ts,
            &[TestRecord {
                key: Some(key.as_bytes().to_vec()),
                value: value.map(|v| v.as_bytes().to_vec()),
                ..TestRecord::default()
            }],
        );
        log.append(&mut b, ts).unwrap().base_offset
    }

    /// Every (offset, key, value) in the log.
    fn contents(log: &PartitionLog) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        for chunk in log.read(log.log_start_offset(), usize::MAX).unwrap() {
            for view in Batches::new(&chunk) {
                let section = view.records_data();
                for r in brook_protocol::records::Records::new(section, view.records_count()) {
                    let r = r.unwrap();
                    out.push((
                        view.base_offset() + i64::from(r.offset_delta),
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    ));
                }
            }
        }
        out
    }

    /// What the log must hold after cleaning below `upto`: below it, the latest record of
    /// each key (tombstones too when `keep_tombstones`); from it on, everything.
    fn expected(
        all: &[(i64, String, Option<String>)],
        upto: i64,
        keep_tombstones: bool,
    ) -> Vec<(i64, String, Option<String>)> {
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (o, k, _) in all.iter().filter(|(o, _, _)| *o < upto) {
            latest.insert(k, *o);
        }
        all.iter()
            .filter(|(o, k, v)| {
                *o >= upto || (latest[k.as_str()] == *o && (keep_tombstones || v.is_some()))
            })
            .cloned()
            .collect()
    }

    #[test]
    fn a_pass_keeps_the_latest_record_per_key_and_never_moves_offsets() {
        for seed in 1..=8u64 {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), compacted()).unwrap();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for i in 0..300 {
                let key = format!("k{}", next() % 12);
                let value = (next() % 10 != 0).then(|| format!("v{i}"));
                put(&mut log, &key, value.as_deref(), 1_000 + i);
            }
            let all = contents(&log);
            let upto = log.active.base_offset();
            // Tombstones kept (their segments are newer than the horizon), then dropped.
            let outcome = log.clean(upto, &options(1 << 16, 0)).unwrap();
            assert_eq!(outcome.cleaned_upto, upto, "seed {seed}");
            assert!(outcome.bytes_after < outcome.bytes_before);
            assert_eq!(contents(&log), expected(&all, upto, true), "seed {seed}");
            log.clean(upto, &options(1 << 16, i64::MAX)).unwrap();
            let cleaned = contents(&log);
            assert_eq!(cleaned, expected(&all, upto, false), "seed {seed}");
            assert_eq!(
                log.log_start_offset(),
                0,
                "compaction never moves the log start"
            );
            assert!(
                cleaned.windows(2).all(|w| w[0].0 < w[1].0),
                "offsets increase"
            );
            // Appends continue after the cleaned segments; a restart finds the same log,
            // after a clean close and after a crash (recovery accepts the gaps).
            put(&mut log, "k0", Some("after"), 9_999);
            let before = contents(&log);
            log.close().unwrap();
            let log = PartitionLog::open(dir.path(), compacted()).unwrap();
            assert_eq!(contents(&log), before);
            assert_eq!(
                log.log_start_offset(),
                0,
                "seed {seed}: after a restart too"
            );
            drop(log);
            let log = PartitionLog::open_with_policy(
                dir.path(),
                compacted(),
                crate::config::RecoveryPolicy::FromOffset(0),
            )
            .unwrap();
            assert_eq!(
                contents(&log),
                before,
                "seed {seed}: full scan of the cleaned log"
            );
        }
    }

    #[test]
    fn a_full_map_cleans_up_to_the_segments_whose_keys_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), compacted()).unwrap();
        for i in 0..200 {
            put(&mut log, &format!("unique-{i}"), Some("v"), 1_000 + i);
        }
        let upto = log.active.base_offset();
        // Room for about 20 keys: only the first segments are cleaned in this pass.
        let outcome = log.clean(upto, &options(24 * 23, 0)).unwrap();
        assert!(
            outcome.cleaned_upto > 0 && outcome.cleaned_upto < upto,
            "{outcome:?}"
        );
        assert_eq!(contents(&log).len(), 200, "unique keys: nothing to remove");
    }

    #[test]
    fn a_power_cut_at_every_file_system_call_of_a_pass_leaves_old_or_new_segments() {
        let mut cuts = 0;
        for calls in 0.. {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("p");
            let mut log = PartitionLog::open(&dir, compacted()).unwrap();
            for i in 0..40 {
                let key = format!("k{}", i % 3);
                let value = (i % 7 != 6).then(|| format!("v{i}"));
                put(&mut log, &key, value.as_deref(), 1_000 + i);
            }
            log.roll(0).unwrap();
            let old = contents(&log);
            let upto = log.active.base_offset();
            log.close().unwrap();
            // Everything so far is durable; the pass's calls are counted from here.
            let model = Arc::new(crate::testing::PowerLossFileSystem::new(root.path()).unwrap());
            let open = crate::OpenOptions::default().with_fs(model.clone());
            let mut log = PartitionLog::open_with(&dir, compacted(), open).unwrap();
            model.cut_after(calls);
            let result = log.clean(upto, &options(1 << 16, i64::MAX));
            if !model.is_off() {
                // The pass made fewer calls than `calls`: every step was cut once.
                result.unwrap();
                assert_eq!(contents(&log), expected(&old, upto, false));
                break;
            }
            cuts += 1;
            drop(log);
            model.restore().unwrap();
            let log = PartitionLog::open(&dir, compacted()).unwrap();
            let after = contents(&log);
            // Old or new per segment: nothing but superseded records or dropped tombstones
            // gone, nothing moved, every key's latest value readable.
            assert!(after.iter().all(|r| old.contains(r)), "cut after {calls}");
            for (o, k, v) in old.iter().filter(|r| !after.contains(r)) {
                let superseded = old.iter().any(|(o2, k2, _)| k2 == k && o2 > o);
                assert!(superseded || v.is_none(), "cut after {calls}: {k}@{o} lost");
            }
            for k in ["k0", "k1", "k2"] {
                let latest = old.iter().rev().find(|(_, key, _)| key == k).unwrap();
                assert!(
                    latest.2.is_none() || after.contains(latest),
                    "cut after {calls}: {k}"
                );
            }
        }
        assert!(cuts > 10, "only {cuts} cuts: the pass made few calls?");
    }

    #[test]
    fn a_pass_interrupted_at_any_step_leaves_the_old_or_the_new_segments() {
        for stop in [Step::Written, Step::Swapped, Step::Renamed] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), compacted()).unwrap();
            for i in 0..60 {
                put(
                    &mut log,
                    &format!("k{}", i % 3),
                    Some(&format!("v{i}")),
                    1_000 + i,
                );
            }
            let all = contents(&log);
            let upto = log.active.base_offset();
            log.clean_until(upto, &options(1 << 16, 0), Some(stop))
                .unwrap();
            drop(log); // the crash
            let log = PartitionLog::open(dir.path(), compacted()).unwrap();
            let after = contents(&log);
            let old = all.clone();
            let new = expected(&all, upto, true);
            // Segments left empty went before the stop; the one being replaced is old if the
            // pass stopped before its swap was durable, cleaned after. Either way nothing but
            // superseded records is gone, and nothing changed its offset.
            assert!(after.iter().all(|r| old.contains(r)), "{stop:?}");
            for (o, k, _) in old.iter().filter(|r| !after.contains(r)) {
                assert!(
                    old.iter()
                        .any(|(o2, k2, _)| k2 == k && o2 > o && *o2 < upto),
                    "{stop:?}: {k}@{o} removed without a later record"
                );
            }
            assert!(after.len() >= new.len(), "{stop:?}");
            let leftovers: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(SWAP) || n.ends_with(CLEANED))
                .collect();
            assert!(leftovers.is_empty(), "{stop:?}: {leftovers:?}");
            // Every key's latest value is still readable.
            for k in ["k0", "k1", "k2"] {
                let latest = old.iter().rev().find(|(_, key, _)| key == k).unwrap();
                assert!(after.contains(latest), "{stop:?}: {k}");
            }
            // A later full pass reaches the cleaned state.
            let mut log = log;
            log.clean(upto, &options(1 << 16, 0)).unwrap();
            assert_eq!(contents(&log), new, "{stop:?}");
        }
    }
}
