//! Opening a partition directory: finding its segments, verifying them, repairing damage.
//!
//! Owns the rules for what counts as a valid log on disk, what is cut when it is not, and
//! how the checkpoint file ([`crate::checkpoint`]) and the [`OpenMode`] decide how much is
//! verified. It produces the sealed segments, the active segment, the log start offset and a
//! [`RecoveryReport`]; it never appends.
//!
//! # What is checked and what is cut
//!
//! * Files whose names are not `<20 digits>.log` are ignored (index files belong to the
//!   `.log` of the same name; a missing `.log` means no segment).
//! * **Which segments are scanned in full**: with [`OpenMode::Recover`] every segment from
//!   the one containing the checkpoint's recovery point on (all of them without a valid
//!   checkpoint), the last one always, except the checkpoint's durable prefix of the last
//!   segment (see [`crate::checkpoint`]): it gets the cheap checks below, against the index
//!   entries the checkpoint names and as if the file ended there, and only the bytes after
//!   it are scanned. If it fails them the whole segment is scanned. With [`OpenMode::AfterCleanShutdown`] none: the last
//!   segment too gets only the cheap checks, because a clean close trimmed and fsynced it.
//!   [`RecoveryPolicy`] (for [`crate::PartitionLog::open_with_policy`]) names the range
//!   explicitly.
//! * **Cheap checks** (the other segments): both index files exist, hold a whole number of
//!   strictly increasing entries, the first offset entry points at the first batch, the
//!   batches from the last offset entry on parse and end exactly at the end of the file, and
//!   the time index's last entry names a batch with that timestamp and (for a sealed segment)
//!   covers those batches' timestamps. A failure means the segment is scanned in full
//!   (below) and its indexes rebuilt. A cleanly closed last segment that passes them becomes
//!   the active segment again without a scan: the state for the next index entries is
//!   reconstructed from its last entries and the batches after them.
//! * **Full scan**: every batch is parsed (length bounds, magic 2), its CRC32C verified, base
//!   offsets checked to start at or after the segment base and to continue exactly where the
//!   previous batch ended or after it (compaction leaves gaps, as in Kafka). The
//!   `.log` is truncated at the first invalid byte — which removes
//!   the zeros a crash leaves after the last batch (the allocated but unwritten chunk and
//!   the sparse, unallocated rest read alike) as well as torn or corrupt tails — and
//!   the indexes are rebuilt from the valid prefix. If the damaged segment is not the last
//!   one, every later segment is deleted: offsets must stay contiguous, so nothing after the
//!   damage is kept.
//! * A segment whose batches reach past the next segment's base offset is treated the same
//!   way: the later segments are deleted.
//!
//! Rebuilt indexes of sealed segments are written to a temporary file and renamed into place.
//! The last segment is sized and allocated again like a new one (wholly with
//! [`LogConfig::preallocate`], else one chunk ahead of its data) and fsynced, so everything
//! the opened log holds is durable.
//!
//! # Log start offset
//!
//! The log start offset is the checkpoint's, but never below the first segment's base. If
//! recovery cut the log below it (data after the checkpoint's log start was lost), every
//! segment is deleted and the log restarts empty at the checkpoint's log start, so offsets
//! are never handed out twice. A missing or corrupt checkpoint is not fatal: it counts as
//! log start = first segment base and recovery point 0 (a full scan), with a warning, and a
//! new checkpoint is written once the log is open.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use brook_protocol::batch::BatchView;
use tracing::{debug, info, warn};

use crate::{
    checkpoint::{self, Checkpoint, DurablePrefix, Loaded},
    config::{LogConfig, OpenMode, RecoveryPolicy},
    error::{Corruption, StorageError},
    fs::{self, FileHandle, SharedFs},
    index::{
        offset_entry_due, Index, IndexEntry, IndexPlanner, OffsetEntry, PlannedBatch, TimeEntry,
    },
    segment::{
        parse_log_file_name, segment_path, ActiveState, FirstChunk, Segment, INDEX_SUFFIX,
        LOG_SUFFIX, TIME_INDEX_SUFFIX,
    },
    txn_index::TXN_INDEX_SUFFIX,
};

type Result<T> = std::result::Result<T, StorageError>;

/// What the checkpoint file looked like when the log was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// Read and valid.
    Found,
    /// Not there (a new log, or one written before checkpoints existed).
    Missing,
    /// Unreadable; ignored (full scan, log start at the first segment).
    Corrupt,
}

/// What opening a log found and did ([`crate::PartitionLog::recovery_report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode asked for ([`OpenMode::Recover`] for `open_with_policy`).
    pub mode: OpenMode,
    pub checkpoint: CheckpointStatus,
    /// Segments from the one containing this offset on were scanned in full; `None` if only
    /// cheap checks were asked for.
    pub verified_from: Option<i64>,
    /// Segments of the opened log.
    pub segments: usize,
    /// Segments read batch by batch with CRC checks (asked for, or failing cheap checks).
    pub segments_scanned: usize,
    /// Bytes of valid batches read by those scans.
    pub bytes_scanned: u64,
    /// Bytes cut from the end of `.log` files: invalid data and, after a crash, the unused
    /// preallocated space of the last segment.
    pub bytes_truncated: u64,
    /// Segments cut at bytes that were neither valid batches nor zero fill (torn writes,
    /// corruption).
    pub corrupt_segments: usize,
    /// Segments deleted because an earlier one was damaged, or because the log had to
    /// restart at its log start offset.
    pub segments_deleted: usize,
    /// Index files of sealed segments rewritten because they did not match their log.
    pub indexes_rebuilt: usize,
    /// Wall-clock time the open took.
    pub duration: Duration,
}

/// How much [`open`] verifies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verify {
    /// [`OpenMode`]: cheap checks only, or a full scan from the checkpoint's recovery point.
    Mode(OpenMode),
    /// An explicit range, ignoring the checkpoint's recovery point.
    Policy(RecoveryPolicy),
}

/// An opened log.
pub(crate) struct Opened {
    pub(crate) sealed: BTreeMap<i64, Segment>,
    pub(crate) active: Segment,
    pub(crate) log_start_offset: i64,
    /// The checkpoint as it is now on disk, if valid.
    pub(crate) checkpoint: Option<Checkpoint>,
    pub(crate) report: RecoveryReport,
}

/// Opens (creating if needed) the log in `dir`, verifying and repairing it per `verify`.
pub(crate) fn open(
    fs: &SharedFs,
    dir: &Path,
    config: &LogConfig,
    verify: Verify,
) -> Result<Opened> {
    let started = Instant::now();
    if fs::ensure_dir(fs, dir)? {
        // Make the new directory's own entry durable.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::sync_dir(fs, parent)?;
        }
    }
    let mut names = fs::list_dir(fs, dir)?;
    // A compaction pass that a crash interrupted is completed or undone first.
    if crate::log::clean::complete_swaps(fs, dir, &names)? {
        names = fs::list_dir(fs, dir)?;
    }
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|name| parse_log_file_name(name))
        .collect();
    bases.sort_unstable();

    let (loaded, status) = match checkpoint::read(fs, dir)? {
        Loaded::Found(c) => (Some(c), CheckpointStatus::Found),
        // An empty log has no checkpoint (it needs none); `finish` warns if a log with data
        // had lost it.
        Loaded::Missing => (None, CheckpointStatus::Missing),
        Loaded::Corrupt(reason) => {
            warn!(
                dir = %dir.display(),
                "ignoring corrupt checkpoint file ({reason}): verifying every segment, log start at the first segment"
            );
            (None, CheckpointStatus::Corrupt)
        }
    };
    let (mode, verified_from) = match verify {
        Verify::Mode(OpenMode::AfterCleanShutdown) => (OpenMode::AfterCleanShutdown, None),
        Verify::Mode(mode) => (mode, Some(loaded.map_or(0, |c| c.recovery_point))),
        Verify::Policy(RecoveryPolicy::LastSegment) => {
            (OpenMode::Recover, Some(bases.last().copied().unwrap_or(0)))
        }
        Verify::Policy(RecoveryPolicy::FromOffset(offset)) => (OpenMode::Recover, Some(offset)),
    };
    // The durable prefix saves reading a crashed log's last segment; explicit policies ask for
    // their range to be read whatever the checkpoint says.
    let trusted = match verify {
        Verify::Mode(OpenMode::Recover) => loaded.and_then(|c| c.prefix),
        _ => None,
    };
    let mut r = Recovery {
        fs,
        dir,
        config,
        trusted,
        last_rewritten: false,
        report: RecoveryReport {
            mode,
            checkpoint: status,
            verified_from,
            segments: 0,
            segments_scanned: 0,
            bytes_scanned: 0,
            bytes_truncated: 0,
            corrupt_segments: 0,
            segments_deleted: 0,
            indexes_rebuilt: 0,
            duration: Duration::ZERO,
        },
    };
    let first_verified = match verified_from {
        None => usize::MAX,
        Some(offset) => bases.iter().rposition(|&b| b <= offset).unwrap_or(0),
    };
    let (sealed, active) = r.segments(&mut bases, first_verified, verified_from.is_some())?;
    r.finish(sealed, active, loaded, started)
}

/// State of one open: where, how, and what was done so far.
struct Recovery<'a> {
    fs: &'a SharedFs,
    dir: &'a Path,
    config: &'a LogConfig,
    /// The checkpoint's durable prefix, if the last segment may be opened after it.
    trusted: Option<DurablePrefix>,
    /// The last segment's index entries were rewritten (not yet synced), so the checkpoint's
    /// durable prefix no longer vouches for them.
    last_rewritten: bool,
    report: RecoveryReport,
}

impl Recovery<'_> {
    /// Opens the segments named by `bases` (sorted), deleting those after damage; full scans
    /// from index `first_verified` on, and of the last segment if `verify_last`.
    fn segments(
        &mut self,
        bases: &mut Vec<i64>,
        first_verified: usize,
        verify_last: bool,
    ) -> Result<(BTreeMap<i64, Segment>, Segment)> {
        let (fs, dir, config) = (self.fs, self.dir, self.config);
        let mut sealed = BTreeMap::new();
        let mut dir_changed = false;
        let mut i = 0;
        while let Some(&base) = bases.get(i) {
            let mut is_last = i + 1 == bases.len();
            let mut segment = None;
            if i < first_verified && !(is_last && verify_last) {
                match open_checked(fs, dir, base, config, is_last)? {
                    Ok((mut seg, checked)) => {
                        if is_last {
                            let state = checked.active_state(&seg);
                            seg.reactivate(state, config)?;
                            return Ok((sealed, seg));
                        }
                        segment = Some(seg);
                    }
                    Err(reason) => info!(
                        segment = %segment_path(dir, base, LOG_SUFFIX).display(),
                        "scanning the segment and rebuilding its indexes: {reason}"
                    ),
                }
            }
            if let Some(prefix) = self.trusted.filter(|p| is_last && p.segment_base == base) {
                match self.open_after_prefix(prefix)? {
                    Ok(active) => {
                        if dir_changed {
                            fs::sync_dir(fs, dir)?;
                        }
                        return Ok((sealed, active));
                    }
                    Err(reason) => info!(
                        segment = %segment_path(dir, base, LOG_SUFFIX).display(),
                        "scanning the whole segment: it does not match the checkpoint's durable prefix ({reason})"
                    ),
                }
            }
            let segment = match segment {
                Some(seg) => seg,
                None => {
                    let log_path = segment_path(dir, base, LOG_SUFFIX);
                    let Some(log) = FileHandle::open_existing(fs, &log_path)? else {
                        // Vanished since the listing: nothing to recover.
                        bases.remove(i);
                        continue;
                    };
                    let ScannedFile {
                        scan,
                        len,
                        written,
                        zeros_after,
                    } = scan_file(&log, base, config)?;
                    self.report.segments_scanned += 1;
                    self.report.bytes_scanned += scan.valid_len;
                    if let Some(problem) = &scan.problem {
                        // An active segment whose valid batches are followed only by zeros
                        // (the unwritten rest of its last block, after a crash) keeps its file
                        // as it is: nothing to cut, and cutting then re-extending thousands of
                        // files is most of a restart's cost.
                        let clean_tail = is_last && problem.zero_fill && zeros_after;
                        if (scan.valid_len < written && !clean_tail)
                            || (!is_last && scan.valid_len < len)
                        {
                            self.truncate(&log, &scan, problem, len)?;
                            if !is_last {
                                self.delete_segments(bases.get(i + 1..).unwrap_or_default())?;
                                bases.truncate(i + 1);
                                dir_changed = true;
                                is_last = true;
                            }
                        }
                    }
                    if is_last {
                        self.last_rewritten = true;
                        let active = activate(fs, dir, base, log, scan, config)?;
                        if dir_changed {
                            fs::sync_dir(fs, dir)?;
                        }
                        return Ok((sealed, active));
                    }
                    dir_changed = true;
                    self.seal_from_scan(base, log, scan)?
                }
            };
            if let Some(&next_base) = bases.get(i + 1) {
                if segment.next_offset() > next_base {
                    warn!(
                        segment = %segment.log_path().display(),
                        "batches reach offset {} past the next segment's base {next_base}",
                        segment.next_offset()
                    );
                    self.delete_segments(bases.get(i + 1..).unwrap_or_default())?;
                    bases.truncate(i + 1);
                    dir_changed = true;
                    // Process this segment again, now as the last (active) one.
                    continue;
                }
            }
            sealed.insert(base, segment);
            i += 1;
        }

        // Empty directory (or every segment vanished): start an empty log.
        let base = sealed.values().next_back().map_or(0, Segment::next_offset);
        let active = Segment::create(fs, dir, base, config, FirstChunk::WithFirstBatch)?;
        fs::sync_dir(fs, dir)?;
        Ok((sealed, active))
    }

    /// Opens the last segment after a crash without reading its durable prefix (module
    /// docs): the prefix gets the cheap checks against the first index entries the checkpoint
    /// names, and only the bytes after it are read batch by batch. `Ok(Err(reason))` if the
    /// files do not match the prefix (the caller then scans the whole segment).
    fn open_after_prefix(
        &mut self,
        prefix: DurablePrefix,
    ) -> Result<std::result::Result<Segment, String>> {
        let (fs, dir, config, base) = (self.fs, self.dir, self.config, prefix.segment_base);
        let Some(log) = FileHandle::open_existing(fs, &segment_path(dir, base, LOG_SUFFIX))? else {
            return Ok(Err("log file vanished".to_string()));
        };
        let len = log.file_len()?;
        if len < prefix.position {
            return Ok(Err(format!("the log is {len} bytes long")));
        }
        let entries = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        let offset_index = match Index::open_prefix(
            fs,
            &segment_path(dir, base, INDEX_SUFFIX),
            entries(prefix.offset_entries),
        )? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("offset index {reason}"))),
        };
        let time_index = match Index::open_prefix(
            fs,
            &segment_path(dir, base, TIME_INDEX_SUFFIX),
            entries(prefix.time_entries),
        )? {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("time index {reason}"))),
        };
        let mut segment =
            Segment::sealed(base, log, prefix.position, base, offset_index, time_index)?;
        let checked = match check_segment(&segment, config, true) {
            Ok(checked) if checked.next_offset == prefix.next_offset => checked,
            Ok(checked) => {
                return Ok(Err(format!(
                    "its batches end before offset {}, not {}",
                    checked.next_offset, prefix.next_offset
                )))
            }
            Err(reason) => return Ok(Err(reason)),
        };
        let start = ScanStart {
            position: prefix.position,
            next_offset: prefix.next_offset,
            planner: checked.active_state(&segment).planner,
            first_max_timestamp: checked.first_max_timestamp,
        };
        let log = segment.log_file();
        let ScannedFile {
            scan,
            len,
            written,
            zeros_after,
        } = scan_file_from(&log, base, config, start)?;
        let read = scan.valid_len.saturating_sub(prefix.position);
        if read > 0 {
            self.report.segments_scanned += 1;
            self.report.bytes_scanned += read;
        }
        if let Some(problem) = &scan.problem {
            let clean_tail = problem.zero_fill && zeros_after;
            if scan.valid_len < written && !clean_tail {
                self.truncate(&log, &scan, problem, len)?;
            }
        }
        if read > 0 {
            // What the scan kept after the prefix may so far be only in the page cache.
            log.sync_all()?;
        }
        segment.extend_recovered(
            scan.valid_len,
            scan.next_offset,
            &scan.offset_entries,
            &scan.time_entries,
        )?;
        segment.reactivate(
            ActiveState {
                roll_base_ms: scan.first_max_timestamp.filter(|t| *t >= 0),
                planner: scan.planner,
            },
            config,
        )?;
        Ok(Ok(segment))
    }

    /// Cuts a scanned `.log` at the end of its valid prefix.
    fn truncate(
        &mut self,
        log: &FileHandle,
        scan: &Scan,
        problem: &Problem,
        len: u64,
    ) -> Result<()> {
        let cut = len - scan.valid_len;
        self.report.bytes_truncated += cut;
        if problem.zero_fill {
            debug!(
                segment = %log.path().display(),
                "trimming {cut} bytes of zero fill after the last batch (next offset {})",
                scan.next_offset
            );
        } else {
            self.report.corrupt_segments += 1;
            warn!(
                segment = %log.path().display(),
                "truncating from {len} to {} bytes (next offset {}): {} at byte {}",
                scan.valid_len, scan.next_offset, problem.corruption, problem.position
            );
        }
        log.set_len(scan.valid_len)?;
        log.sync_all()
    }

    /// A fully scanned, valid, non-last segment: keeps its index files if they already equal
    /// the rebuilt ones, otherwise replaces them.
    fn seal_from_scan(&mut self, base: i64, log: FileHandle, mut scan: Scan) -> Result<Segment> {
        scan.time_entries.extend(scan.planner.seal_entry());
        let offset_index = self.sealed_index(
            &segment_path(self.dir, base, INDEX_SUFFIX),
            &scan.offset_entries,
        )?;
        let time_index = self.sealed_index(
            &segment_path(self.dir, base, TIME_INDEX_SUFFIX),
            &scan.time_entries,
        )?;
        Segment::sealed(
            base,
            log,
            scan.valid_len,
            scan.next_offset,
            offset_index,
            time_index,
        )
    }

    fn sealed_index<E: IndexEntry>(&mut self, path: &Path, entries: &[E]) -> Result<Index<E>> {
        if let Ok(index) = Index::open_sealed(self.fs, path)? {
            if index.to_vec() == entries {
                return Ok(index);
            }
        }
        info!(index = %path.display(), entries = entries.len(), "writing rebuilt index");
        self.report.indexes_rebuilt += 1;
        Index::write_sealed(self.fs, path, entries)
    }

    fn delete_segments(&mut self, bases: &[i64]) -> Result<()> {
        for &base in bases {
            warn!(
                segment = %segment_path(self.dir, base, LOG_SUFFIX).display(),
                "deleting segment after a damaged one"
            );
            remove_segment_files(self.fs, self.dir, base)?;
            self.report.segments_deleted += 1;
        }
        Ok(())
    }

    /// Applies the checkpoint's log start offset, writes a checkpoint if there was no valid
    /// one, and logs the recovery.
    fn finish(
        mut self,
        mut sealed: BTreeMap<i64, Segment>,
        mut active: Segment,
        loaded: Option<Checkpoint>,
        started: Instant,
    ) -> Result<Opened> {
        let (fs, dir) = (self.fs, self.dir);
        let first_base = sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(active.base_offset());
        let wanted_start = loaded.map_or(0, |c| c.log_start_offset);
        let mut log_start_offset = wanted_start.max(first_base);
        if active.next_offset() < wanted_start {
            warn!(
                dir = %dir.display(),
                "the log ends at {} below its log start offset {wanted_start}: restarting it empty there",
                active.next_offset()
            );
            let bases: Vec<i64> = sealed
                .keys()
                .copied()
                .chain([active.base_offset()])
                .collect();
            sealed.clear();
            drop(active);
            self.delete_segments(&bases)?;
            active = Segment::create(
                fs,
                dir,
                wanted_start,
                self.config,
                FirstChunk::WithFirstBatch,
            )?;
            fs::sync_dir(fs, dir)?;
            log_start_offset = wanted_start;
        }
        // A prefix whose index entries recovery rewrote no longer vouches for what is on
        // disk: forgetting it makes the next checkpoint sync them and name them again.
        let mut checkpoint = loaded.map(|c| Checkpoint {
            prefix: c.prefix.filter(|_| !self.last_rewritten),
            ..c
        });
        let empty = sealed.is_empty() && active.next_offset() == 0 && log_start_offset == 0;
        if loaded.is_none() && !empty {
            // Common after a crash soon after the first data (checkpoints are periodic), so
            // not a warning: the broker counts recovered partitions in one line.
            debug!(
                dir = %dir.display(),
                "no checkpoint file: verified every segment, log start at the first segment"
            );
            // A missing one is not written here: creating a file per partition is most of
            // what reopening thousands of them after a crash would cost. The next checkpoint
            // (periodic, or at close) records it; until then a crash verifies this log again.
            // A corrupt one is replaced at once (rare, and warned about on every open).
            if self.report.checkpoint == CheckpointStatus::Corrupt {
                // Everything the log holds is durable now (module docs).
                let fresh = Checkpoint {
                    log_start_offset,
                    recovery_point: active.next_offset(),
                    // The rebuilt index entries are not synced yet.
                    prefix: None,
                };
                match checkpoint::write(fs, dir, &fresh) {
                    Ok(()) => checkpoint = Some(fresh),
                    Err(e) => warn!(dir = %dir.display(), "cannot write the checkpoint: {e}"),
                }
            }
        }
        self.report.segments = sealed.len() + 1;
        self.report.duration = started.elapsed();
        let r = &self.report;
        // One line per partition: at debug, as a broker opens thousands (it logs a summary).
        debug!(
            dir = %dir.display(),
            mode = ?r.mode,
            checkpoint = ?r.checkpoint,
            verified_from = ?r.verified_from,
            segments = r.segments,
            segments_scanned = r.segments_scanned,
            bytes_scanned = r.bytes_scanned,
            bytes_truncated = r.bytes_truncated,
            corrupt_segments = r.corrupt_segments,
            segments_deleted = r.segments_deleted,
            indexes_rebuilt = r.indexes_rebuilt,
            duration_ms = r.duration.as_secs_f64() * 1000.0,
            log_start_offset,
            log_end_offset = active.next_offset(),
            "log opened"
        );
        Ok(Opened {
            sealed,
            active,
            log_start_offset,
            checkpoint,
            report: self.report,
        })
    }
}

/// Removes a segment's files: indexes first, so that a crash in between leaves a `.log`
/// whose indexes are rebuilt rather than orphaned index files.
pub(crate) fn remove_segment_files(fs: &SharedFs, dir: &Path, base: i64) -> Result<()> {
    for suffix in [
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
        crate::log::KEY_INDEX_SUFFIX,
        LOG_SUFFIX,
    ] {
        fs::remove_file(fs, &segment_path(dir, base, suffix))?;
    }
    Ok(())
}

/// What the cheap checks established about a segment.
struct Checked {
    next_offset: i64,
    /// Bytes of the batches from the last offset entry's batch on.
    tail_bytes: u64,
    /// The greatest max timestamp among those batches, and the first of them with it.
    tail_max: Option<TimeEntry>,
    first_max_timestamp: Option<i64>,
}

impl Checked {
    /// The append state of a cleanly closed last segment (see [`IndexPlanner::resume`]):
    /// up to the last offset entry's batch the segment's maximum is the last time entry
    /// (an entry is written at an offset entry whenever the maximum grew), after it the
    /// tail decides.
    fn active_state(&self, segment: &Segment) -> ActiveState {
        let last_time = segment.time_index().last();
        let max_so_far = match (last_time, self.tail_max) {
            (Some(t), Some(tail)) if tail.timestamp > t.timestamp => Some(tail),
            (None, tail) => tail,
            (time, _) => time,
        };
        ActiveState {
            planner: IndexPlanner::resume(
                self.tail_bytes,
                segment.offset_index().len() > 0,
                max_so_far,
                last_time.map(|t| t.timestamp),
            ),
            roll_base_ms: self.first_max_timestamp.filter(|t| *t >= 0),
        }
    }
}

/// A segment opened with the cheap checks only; `Ok(Err(reason))` if they fail. `last`: the
/// segment was the active one when the log was closed (its time index has no seal entry).
fn open_checked(
    fs: &SharedFs,
    dir: &Path,
    base: i64,
    config: &LogConfig,
    last: bool,
) -> Result<std::result::Result<(Segment, Checked), String>> {
    let Some(log) = FileHandle::open_existing(fs, &segment_path(dir, base, LOG_SUFFIX))? else {
        return Ok(Err("log file vanished".to_string()));
    };
    let size = log.file_len()?;
    let offset_index = match Index::open_sealed(fs, &segment_path(dir, base, INDEX_SUFFIX))? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("offset index {reason}"))),
    };
    let time_index = match Index::open_sealed(fs, &segment_path(dir, base, TIME_INDEX_SUFFIX))? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("time index {reason}"))),
    };
    let mut segment = Segment::sealed(base, log, size, base, offset_index, time_index)?;
    Ok(check_segment(&segment, config, last).map(|checked| {
        segment.set_next_offset(checked.next_offset);
        (segment, checked)
    }))
}

/// The cheap consistency checks of a segment (module docs).
fn check_segment(
    segment: &Segment,
    config: &LogConfig,
    last: bool,
) -> std::result::Result<Checked, String> {
    let base = segment.base_offset();
    let (offsets, times) = (segment.offset_index(), segment.time_index());
    if segment.is_empty() {
        return if offsets.len() == 0 && times.len() == 0 {
            Ok(Checked {
                next_offset: base,
                tail_bytes: 0,
                tail_max: None,
                first_max_timestamp: None,
            })
        } else {
            Err("index entries for an empty log".to_string())
        };
    }
    let first = match segment.batches_from(0).next() {
        Some(Ok(batch)) => batch,
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("no first batch".to_string()),
    };
    let expected_first = segment
        .relative(first.base_offset)
        .map(|relative_offset| OffsetEntry {
            relative_offset,
            position: 0,
        });
    if offsets.entry(0) != expected_first {
        return Err("first offset entry does not point at the first batch".to_string());
    }
    let Some(last_entry) = offsets.last() else {
        return Err("offset index is empty".to_string());
    };
    // Walk the batches from the last offset entry to the end of the file: they must be
    // contiguous, end exactly at the end, and (by the planner's rule) none of them but the
    // first may be due an entry, or the index lost entries at its end.
    let mut expected = base + i64::from(last_entry.relative_offset);
    let mut tail_max: Option<TimeEntry> = None;
    let mut bytes_since_entry = None;
    for batch in segment.batches_from(u64::from(last_entry.position)) {
        let batch = batch.map_err(|e| e.to_string())?;
        if batch.base_offset < expected || batch.last_offset < batch.base_offset {
            return Err(format!(
                "batch at byte {} has base offset {}, expected {expected}",
                batch.position, batch.base_offset
            ));
        }
        if bytes_since_entry.is_some_and(|b| offset_entry_due(b, config.index_interval_bytes)) {
            return Err(format!(
                "no offset entry for the batch at byte {}",
                batch.position
            ));
        }
        bytes_since_entry = Some(bytes_since_entry.unwrap_or(0) + batch.size);
        expected = batch.last_offset.saturating_add(1);
        if batch.max_timestamp >= 0 && tail_max.is_none_or(|m| batch.max_timestamp > m.timestamp) {
            let relative_offset = segment
                .relative(batch.base_offset)
                .ok_or_else(|| format!("batch offset {} out of range", batch.base_offset))?;
            tail_max = Some(TimeEntry {
                timestamp: batch.max_timestamp,
                relative_offset,
            });
        }
    }
    let Some(tail_bytes) = bytes_since_entry else {
        return Err("last offset entry points at the end of the log".to_string());
    };
    // The time index's last entry names a batch with exactly that timestamp. In a sealed
    // segment it is the segment's greatest timestamp, so it also covers the tail.
    match times.last() {
        Some(t) => {
            let batch = segment
                .find_batch(base + i64::from(t.relative_offset))
                .map_err(|e| e.to_string())?;
            let matches = batch.is_some_and(|b| {
                b.base_offset == base + i64::from(t.relative_offset)
                    && b.max_timestamp == t.timestamp
            });
            let covers = last || tail_max.is_none_or(|m| t.timestamp >= m.timestamp);
            if !matches || !covers {
                return Err(format!("last time entry {t:?} does not match the log"));
            }
        }
        None if !last && tail_max.is_some() => return Err("time index is empty".to_string()),
        None => {}
    }
    Ok(Checked {
        next_offset: expected,
        tail_bytes,
        tail_max,
        first_max_timestamp: Some(first.max_timestamp),
    })
}

/// The result of reading a segment's `.log` batch by batch.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Bytes of whole, valid batches from the start.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch (the segment base offset if none).
    pub(crate) next_offset: i64,
    pub(crate) offset_entries: Vec<OffsetEntry>,
    pub(crate) time_entries: Vec<TimeEntry>,
    /// Planner state after the last valid batch (to continue appending).
    pub(crate) planner: IndexPlanner,
    pub(crate) first_max_timestamp: Option<i64>,
    /// Where and why the valid prefix ends, if it does not reach the end of the data.
    pub(crate) problem: Option<Problem>,
}

/// The first invalid bytes of a scanned `.log`.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) position: u64,
    pub(crate) corruption: Corruption,
    /// The bytes where a batch header should start are all zero: the unused preallocated
    /// space a crash leaves, not damage.
    pub(crate) zero_fill: bool,
}

impl Problem {
    fn at(rest: &[u8], position: u64, corruption: Corruption) -> Self {
        const HEADER: usize = 61;
        let header = rest.get(..HEADER.min(rest.len())).unwrap_or_default();
        Self {
            position,
            corruption,
            zero_fill: header.iter().all(|b| *b == 0),
        }
    }
}

/// Where a scan starts: the start of the segment, or the end of a prefix known to be valid.
pub(crate) struct ScanStart {
    pub(crate) position: u64,
    pub(crate) next_offset: i64,
    /// Planner state after the batches before `position`.
    pub(crate) planner: IndexPlanner,
    pub(crate) first_max_timestamp: Option<i64>,
}

impl ScanStart {
    pub(crate) fn segment_start(base_offset: i64) -> Self {
        Self {
            position: 0,
            next_offset: base_offset,
            planner: IndexPlanner::default(),
            first_max_timestamp: None,
        }
    }
}

/// Reads `data` (a whole `.log`) batch by batch from `start` with full checks (module docs),
/// computing the index entries of the valid batches after `start` with the same planner
/// appends use.
pub(crate) fn scan_from(
    data: &[u8],
    base_offset: i64,
    config: &LogConfig,
    start: ScanStart,
) -> Scan {
    let mut out = Scan::starting(start);
    let mut position = usize::try_from(out.valid_len).unwrap_or(usize::MAX);
    while let Some(rest) = data.get(position..).filter(|r| !r.is_empty()) {
        let pos = position as u64;
        let view = match BatchView::parse_verified(rest) {
            Ok(view) => view,
            Err(e) => {
                out.problem = Some(Problem::at(rest, pos, Corruption::Batch(e)));
                break;
            }
        };
        if let Err(corruption) = out.push(&view, base_offset, config) {
            out.problem = Some(Problem::at(rest, pos, corruption));
            break;
        }
        position += view.size();
    }
    out
}

impl Scan {
    /// A scan that has read nothing after `start` yet.
    pub(crate) fn starting(start: ScanStart) -> Self {
        Self {
            valid_len: start.position,
            next_offset: start.next_offset,
            offset_entries: Vec::new(),
            time_entries: Vec::new(),
            planner: start.planner,
            first_max_timestamp: start.first_max_timestamp,
            problem: None,
        }
    }

    /// Takes `view`, the batch at `valid_len` of a segment based at `base_offset`, with the
    /// structural checks of a scan, and plans its index entries as appends would.
    pub(crate) fn push(
        &mut self,
        view: &BatchView<'_>,
        base_offset: i64,
        config: &LogConfig,
    ) -> std::result::Result<(), Corruption> {
        let first = self.valid_len == 0;
        let planned = check_batch(view, base_offset, first, self.next_offset, self.valid_len)?;
        let (planner, entries) = self.planner.plan(planned, config.index_interval_bytes);
        self.planner = planner;
        self.offset_entries.extend(entries.offset);
        self.time_entries.extend(entries.time);
        self.first_max_timestamp.get_or_insert(view.max_timestamp());
        self.next_offset = view.last_offset() + 1;
        self.valid_len += view.size() as u64;
        Ok(())
    }
}

fn check_batch(
    view: &BatchView<'_>,
    segment_base: i64,
    first: bool,
    expected: i64,
    position: u64,
) -> std::result::Result<PlannedBatch, Corruption> {
    let base = view.base_offset();
    if view.last_offset_delta() < 0 {
        return Err(Corruption::NegativeOffsetDelta(view.last_offset_delta()));
    }
    if first && base < segment_base {
        return Err(Corruption::BelowSegmentBase {
            segment_base,
            found: base,
        });
    }
    if !first && base < expected {
        return Err(Corruption::NonContiguous {
            expected,
            found: base,
        });
    }
    let relative = |offset: i64| {
        offset
            .checked_sub(segment_base)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or(Corruption::RelativeOffsetOverflow {
                segment_base,
                offset,
            })
    };
    let relative_offset = relative(base)?;
    let last = base
        .checked_add(i64::from(view.last_offset_delta()))
        .filter(|l| *l < i64::MAX)
        .ok_or(Corruption::RelativeOffsetOverflow {
            segment_base,
            offset: base,
        })?;
    relative(last)?;
    let position32 = u32::try_from(position).map_err(|_| Corruption::PositionOverflow(position))?;
    Ok(PlannedBatch {
        relative_offset,
        position: position32,
        size: view.size() as u64,
        max_timestamp: view.max_timestamp(),
    })
}

/// Most bytes after the valid batches that are read to see they are all zeros (more counts as
/// not zero, and is cut).
const ZERO_TAIL_CHECK: usize = 64 * 1024;

/// A scanned `.log` file.
struct ScannedFile {
    scan: Scan,
    /// The file's length.
    len: u64,
    /// Where its first hole starts: nothing was ever written past it (an active segment's
    /// sparse capacity, which it keeps).
    written: u64,
    /// The bytes between the valid batches and `written` are all zeros (and few).
    zeros_after: bool,
}

/// Maps and scans a `.log` file up to its first hole: touching the sparse rest would only
/// read zeros. The map is dropped before the caller truncates.
fn scan_file(log: &FileHandle, base: i64, config: &LogConfig) -> Result<ScannedFile> {
    scan_file_from(log, base, config, ScanStart::segment_start(base))
}

/// [`scan_file`] from `start` on.
fn scan_file_from(
    log: &FileHandle,
    base: i64,
    config: &LogConfig,
    start: ScanStart,
) -> Result<ScannedFile> {
    let len = log.file_len()?;
    let written = log.first_hole()?.min(len);
    let map = log.map(written)?;
    let data = usize::try_from(written)
        .ok()
        .and_then(|w| map.as_ref()?.get(0..w))
        .unwrap_or_default();
    let scan = scan_from(data, base, config, start);
    let tail = usize::try_from(scan.valid_len)
        .ok()
        .and_then(|v| data.get(v..))
        .unwrap_or_default();
    let zeros_after = tail.len() <= ZERO_TAIL_CHECK && tail.iter().all(|b| *b == 0);
    Ok(ScannedFile {
        scan,
        len,
        written,
        zeros_after,
    })
}

/// Makes the scanned last segment the active one: fsyncs its `.log` (what the scan kept may
/// so far be only in the page cache) and writes its rebuilt index entries in place (always: a
/// crash leaves the indexes in an unknown state). The files are sized and allocated for
/// appends by the first append (the segment is dormant until then), so reopening thousands of
/// partitions after a crash changes as little as possible.
fn activate(
    fs: &SharedFs,
    dir: &Path,
    base: i64,
    log: FileHandle,
    scan: Scan,
    config: &LogConfig,
) -> Result<Segment> {
    log.sync_all()?;
    let offset_index = Index::write_in_place(
        fs,
        &segment_path(dir, base, INDEX_SUFFIX),
        &scan.offset_entries,
    )?;
    let time_index = Index::write_in_place(
        fs,
        &segment_path(dir, base, TIME_INDEX_SUFFIX),
        &scan.time_entries,
    )?;
    let mut segment = Segment::sealed(
        base,
        log,
        scan.valid_len,
        scan.next_offset,
        offset_index,
        time_index,
    )?;
    segment.reactivate(
        ActiveState {
            roll_base_ms: scan.first_max_timestamp.filter(|t| *t >= 0),
            planner: scan.planner,
        },
        config,
    )?;
    Ok(segment)
}
