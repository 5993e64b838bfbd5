//! One compaction pass over a log's sealed segments ([`PartitionLog::clean`]), and the file
//! protocol that makes it crash-atomic per segment.
//!
//! A pass builds the [`OffsetMap`] of every key's latest offset over the sealed segments
//! below `upto` (stopping at a segment boundary if the map fills), then rewrites each of those
//! segments with [`filter::retain`]: a record survives unless a later record of its key is in
//! the map, or it is a tombstone (null value) in a segment older than the tombstone horizon.
//! Records without a key are kept. The active segment is never touched.
//!
//! Replacing a segment (`<base>` below stands for its 20-digit name):
//! 1. the cleaned `.log`, `.index` and `.timeindex` are written as `<base>.*.cleaned` and
//!    fsynced;
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
//! as an empty segment so that the log start offset does not move.

use std::path::Path;

use brook_protocol::batch::Batches;

use super::{PartitionLog, Result};
use crate::cleaner::filter::{self, Retained};
use crate::cleaner::offset_map::OffsetMap;
use crate::error::StorageError;
use crate::fs::{self, FileHandle, SharedFs};
use crate::index::{encode_all, Index};
use crate::recovery::{self, scan_from, ScanStart};
use crate::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

const CLEANED: &str = ".cleaned";
const SWAP: &str = ".swap";
/// The files a cleaned segment replaces, the `.log` last (see the module docs).
const SUFFIXES: [&str; 3] = [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX];
/// Decompressed size a batch may reach while it is rewritten.
const MAX_SECTION: usize = 1 << 30;

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

/// Steps of a pass a test may stop it after, as a crash would.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Written,
    Swapped,
    Renamed,
}

impl PartitionLog {
    /// Compacts the sealed segments below `upto` (rounded down to a segment boundary, never
    /// the active segment) with an offset map of `map_bytes` bytes; tombstones in segments
    /// whose newest record is older than `tombstone_horizon_ms` are dropped (module docs).
    pub fn clean(
        &mut self,
        upto: i64,
        map_bytes: usize,
        tombstone_horizon_ms: i64,
    ) -> Result<CleanOutcome> {
        self.clean_until(upto, map_bytes, tombstone_horizon_ms, None)
    }

    pub(crate) fn clean_until(
        &mut self,
        upto: i64,
        map_bytes: usize,
        tombstone_horizon_ms: i64,
        stop_after: Option<Step>,
    ) -> Result<CleanOutcome> {
        self.check_writable()?;
        // The sealed segments wholly below `upto`.
        let bases: Vec<i64> = self
            .sealed
            .values()
            .filter(|s| s.next_offset() <= upto)
            .map(Segment::base_offset)
            .collect();
        let mut map = OffsetMap::new(map_bytes);
        let mut mapped = Vec::new();
        'segments: for base in &bases {
            let Some(segment) = self.sealed.get(base) else {
                continue;
            };
            if segment.is_empty() {
                mapped.push(*base);
                continue;
            }
            let bytes = segment.bytes(0, segment.size())?;
            let mut keys = Vec::new();
            for view in Batches::new(&bytes) {
                filter::for_each_record(&view, MAX_SECTION, |r, offset| {
                    if let Some(k) = r.key {
                        keys.push((k.to_vec(), offset));
                    }
                })
                .map_err(|e| corrupt(segment, &e.to_string()))?;
            }
            for (key, offset) in keys {
                if map.put(&key, offset).is_err() {
                    // Full: clean only the segments whose keys all fit.
                    break 'segments;
                }
            }
            mapped.push(*base);
        }
        let mut outcome = CleanOutcome {
            cleaned_upto: mapped
                .last()
                .and_then(|b| self.sealed.get(b))
                .map_or(self.log_start, Segment::next_offset),
            ..CleanOutcome::default()
        };
        for base in mapped {
            let Some(segment) = self.sealed.get(&base).filter(|s| !s.is_empty()) else {
                continue;
            };
            let newest = segment.max_timestamp().map_or(-1, |m| m.timestamp);
            let drop_tombstones = newest < tombstone_horizon_ms;
            let bytes = segment.bytes(0, segment.size())?;
            let mut cleaned = Vec::with_capacity(bytes.len());
            let mut changed = false;
            for view in Batches::new(&bytes) {
                let retained = filter::retain(
                    &view,
                    |r, offset| match r.key {
                        None => true,
                        Some(k) => {
                            let latest = map.get(k).is_none_or(|l| l <= offset);
                            latest && !(drop_tombstones && r.value.is_none())
                        }
                    },
                    false,
                    MAX_SECTION,
                )
                .map_err(|e| corrupt(segment, &e.to_string()))?;
                match retained {
                    Retained::Unchanged => cleaned.extend_from_slice(view.bytes()),
                    Retained::Rewritten(b) => {
                        changed = true;
                        cleaned.extend_from_slice(&b);
                    }
                    Retained::Dropped => changed = true,
                }
            }
            outcome.bytes_before += bytes.len() as u64;
            outcome.bytes_after += cleaned.len() as u64;
            if !changed {
                continue;
            }
            // An emptied segment goes, unless it is the first: it keeps the log's start.
            let first = self.sealed.keys().next() == Some(&base);
            if cleaned.is_empty() && !first {
                self.sealed.remove(&base);
                recovery::remove_segment_files(&self.fs, &self.dir, base)?;
                fs::sync_dir(&self.fs, &self.dir)?;
                outcome.segments_removed += 1;
                continue;
            }
            let replaced = self.replace_segment(base, &cleaned, stop_after)?;
            match replaced {
                Some(segment) => {
                    self.sealed.insert(base, segment);
                    outcome.segments_rewritten += 1;
                }
                // A test stopped the pass here, as a crash would.
                None => return Ok(outcome),
            }
        }
        Ok(outcome)
    }

    /// Writes `cleaned` (whole batches) as the new contents of segment `base` with the file
    /// protocol of the module docs, and opens it. `None` if a test stopped it early.
    fn replace_segment(
        &self,
        base: i64,
        cleaned: &[u8],
        stop_after: Option<Step>,
    ) -> Result<Option<Segment>> {
        let (fs, dir) = (&self.fs, &self.dir);
        let mut scan = scan_from(cleaned, base, &self.config, ScanStart::segment_start(base));
        scan.time_entries.extend(scan.planner.seal_entry());
        let (offset_entries, time_entries) = (
            encode_all(&scan.offset_entries),
            encode_all(&scan.time_entries),
        );
        let contents: [&[u8]; 3] = [&offset_entries, &time_entries, cleaned];
        for (suffix, bytes) in SUFFIXES.iter().zip(contents) {
            let file = FileHandle::create(fs, &with_extra(dir, base, suffix, CLEANED))?;
            file.write_all_at(bytes, 0)?;
            file.sync_all()?;
        }
        if stop_after == Some(Step::Written) {
            return Ok(None);
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
            return Ok(None);
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
            return Ok(None);
        }
        let log = FileHandle::open_existing(fs, &segment_path(dir, base, LOG_SUFFIX))?
            .ok_or_else(|| missing(&segment_path(dir, base, LOG_SUFFIX)))?;
        let open = |suffix: &str| -> Result<FileHandle> {
            let path = segment_path(dir, base, suffix);
            Ok(FileHandle::open_existing(fs, &path)?
                .ok_or_else(|| missing(&path))?
                .unguarded())
        };
        let offset_index = Index::sealed(open(INDEX_SUFFIX)?, scan.offset_entries.len())?;
        let time_index = Index::sealed(open(TIME_INDEX_SUFFIX)?, scan.time_entries.len())?;
        Ok(Some(Segment::sealed(
            base,
            log,
            scan.valid_len,
            scan.next_offset,
            offset_index,
            time_index,
        )?))
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

fn corrupt(segment: &Segment, reason: &str) -> StorageError {
    StorageError::io("clean", segment.log_path())(std::io::Error::other(reason.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogConfig;
    use crate::log::tests::config;
    use brook_protocol::batch::testing::{build_batch, TestRecord};
    use std::collections::BTreeMap;

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
            let outcome = log.clean(upto, 1 << 16, 0).unwrap();
            assert_eq!(outcome.cleaned_upto, upto, "seed {seed}");
            assert!(outcome.bytes_after < outcome.bytes_before);
            assert_eq!(contents(&log), expected(&all, upto, true), "seed {seed}");
            log.clean(upto, 1 << 16, i64::MAX).unwrap();
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
        let outcome = log.clean(upto, 24 * 23, 0).unwrap();
        assert!(
            outcome.cleaned_upto > 0 && outcome.cleaned_upto < upto,
            "{outcome:?}"
        );
        assert_eq!(contents(&log).len(), 200, "unique keys: nothing to remove");
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
            log.clean_until(upto, 1 << 16, 0, Some(stop)).unwrap();
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
            log.clean(upto, 1 << 16, 0).unwrap();
            assert_eq!(contents(&log), new, "{stop:?}");
        }
    }
}
