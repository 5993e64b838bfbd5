//! Opening a partition directory: finding its segments, verifying them, repairing damage.
//!
//! Owns the rules for what counts as a valid log on disk and what is cut when it is not. It
//! produces the sealed segments and the active segment; it never appends.
//!
//! # What is checked and what is cut
//!
//! * Files whose names are not `<20 digits>.log` are ignored (index files belong to the
//!   `.log` of the same name; a missing `.log` means no segment).
//! * **Cheap checks** (sealed segments before the verified range): both index files exist, hold
//!   a whole number of strictly increasing entries, the first offset entry points at the first
//!   batch, the batches from the last offset entry on parse and end exactly at the end of the
//!   file, and the time index's last entry covers those batches' timestamps. A failure means
//!   the indexes are rebuilt from a full scan (below), which also checks the data.
//! * **Full scan** (the last segment always; every segment from the
//!   [`RecoveryPolicy::FromOffset`] checkpoint on; segments failing the cheap checks): every
//!   batch is parsed (length bounds, magic 2), its CRC32C verified, base offsets checked to
//!   start at or after the segment base and to continue exactly where the previous batch
//!   ended. The `.log` is truncated at the first invalid byte — which removes the zero-filled
//!   preallocation left by a crash as well as torn or corrupt tails — and the indexes are
//!   rebuilt from the valid prefix. If the damaged segment is not the last one, every later
//!   segment is deleted: offsets must stay contiguous, so nothing after the damage is kept.
//! * A segment whose batches reach past the next segment's base offset is treated the same
//!   way: the later segments are deleted.
//!
//! Rebuilt indexes of sealed segments are written to a temporary file and renamed into place.

use std::{collections::BTreeMap, path::Path};

use brook_protocol::batch::BatchView;
use tracing::{info, warn};

use crate::{
    config::{LogConfig, RecoveryPolicy},
    error::{Corruption, StorageError},
    fs::{self, FileHandle},
    index::{
        max_entries, offset_entry_due, Index, IndexEntry, IndexPlanner, OffsetEntry, PlannedBatch,
        TimeEntry,
    },
    segment::{
        parse_log_file_name, segment_path, ActiveState, Segment, SegmentParts, INDEX_SUFFIX,
        LOG_SUFFIX, TIME_INDEX_SUFFIX,
    },
};

type Result<T> = std::result::Result<T, StorageError>;

/// The segments of an opened log.
pub(crate) struct Opened {
    pub(crate) sealed: BTreeMap<i64, Segment>,
    pub(crate) active: Segment,
}

/// Opens (creating if needed) the log in `dir`, verifying and repairing it per `policy`.
pub(crate) fn open(dir: &Path, config: &LogConfig, policy: RecoveryPolicy) -> Result<Opened> {
    if fs::ensure_dir(dir)? {
        // Make the new directory's own entry durable.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::sync_dir(parent)?;
        }
    }
    let mut bases: Vec<i64> = fs::list_dir(dir)?
        .iter()
        .filter_map(|name| parse_log_file_name(name))
        .collect();
    bases.sort_unstable();
    let first_verified = match policy {
        RecoveryPolicy::LastSegment => bases.len().saturating_sub(1),
        RecoveryPolicy::FromOffset(offset) => bases.iter().rposition(|&b| b <= offset).unwrap_or(0),
    };

    let mut sealed = BTreeMap::new();
    let mut dir_changed = false;
    let mut i = 0;
    while let Some(&base) = bases.get(i) {
        let mut is_last = i + 1 == bases.len();
        let mut segment = None;
        if !is_last && i < first_verified {
            match open_checked(dir, base, config)? {
                Ok(seg) => segment = Some(seg),
                Err(reason) => info!(
                    segment = %segment_path(dir, base, LOG_SUFFIX).display(),
                    "rebuilding indexes from the log: {reason}"
                ),
            }
        }
        let segment = match segment {
            Some(seg) => seg,
            None => {
                let log_path = segment_path(dir, base, LOG_SUFFIX);
                let Some(log) = FileHandle::open_existing(&log_path)? else {
                    // Vanished since the listing: nothing to recover.
                    bases.remove(i);
                    continue;
                };
                let scan = scan_file(&log, base, config)?;
                if let Some((position, corruption)) = &scan.problem {
                    let len = log.file_len()?;
                    if scan.valid_len < len {
                        warn!(
                            segment = %log_path.display(),
                            "truncating from {len} to {} bytes (next offset {}): {corruption} at byte {position}",
                            scan.valid_len, scan.next_offset
                        );
                        log.set_len(scan.valid_len)?;
                        log.sync_all()?;
                        if !is_last {
                            delete_segments(dir, bases.get(i + 1..).unwrap_or_default())?;
                            bases.truncate(i + 1);
                            dir_changed = true;
                            is_last = true;
                        }
                    }
                }
                if is_last {
                    let active = activate(dir, base, log, scan, config)?;
                    if dir_changed {
                        fs::sync_dir(dir)?;
                    }
                    return Ok(Opened { sealed, active });
                }
                dir_changed = true;
                seal_from_scan(dir, base, log, scan)?
            }
        };
        if let Some(&next_base) = bases.get(i + 1) {
            if segment.next_offset() > next_base {
                warn!(
                    segment = %segment.log_path().display(),
                    "batches reach offset {} past the next segment's base {next_base}",
                    segment.next_offset()
                );
                delete_segments(dir, bases.get(i + 1..).unwrap_or_default())?;
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
    let active = Segment::create(dir, base, config)?;
    fs::sync_dir(dir)?;
    Ok(Opened { sealed, active })
}

/// A sealed segment opened with the cheap checks only; `Ok(Err(reason))` if they fail.
fn open_checked(
    dir: &Path,
    base: i64,
    config: &LogConfig,
) -> Result<std::result::Result<Segment, String>> {
    let Some(log) = FileHandle::open_existing(&segment_path(dir, base, LOG_SUFFIX))? else {
        return Ok(Err("log file vanished".to_string()));
    };
    let size = log.file_len()?;
    let offset_index = match Index::open_sealed(&segment_path(dir, base, INDEX_SUFFIX))? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("offset index {reason}"))),
    };
    let time_index = match Index::open_sealed(&segment_path(dir, base, TIME_INDEX_SUFFIX))? {
        Ok(index) => index,
        Err(reason) => return Ok(Err(format!("time index {reason}"))),
    };
    let mut segment = Segment::from_parts(SegmentParts {
        base_offset: base,
        log,
        size,
        capacity: size,
        offset_index,
        time_index,
        next_offset: base,
        active: None,
    })?;
    Ok(check_sealed(&segment, config).map(|next_offset| {
        segment.set_next_offset(next_offset);
        segment
    }))
}

/// The cheap consistency checks of a sealed segment (module docs); its next offset if valid.
fn check_sealed(segment: &Segment, config: &LogConfig) -> std::result::Result<i64, String> {
    let base = segment.base_offset();
    let (offsets, times) = (segment.offset_index(), segment.time_index());
    if segment.is_empty() {
        return if offsets.len() == 0 && times.len() == 0 {
            Ok(base)
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
    let Some(last) = offsets.last() else {
        return Err("offset index is empty".to_string());
    };
    // Walk the batches from the last offset entry to the end of the file: they must be
    // contiguous, end exactly at the end, and (by the planner's rule) none of them but the
    // first may be due an entry, or the index lost entries at its end.
    let mut expected = base + i64::from(last.relative_offset);
    let mut tail_max = -1;
    let mut bytes_since_entry = None;
    for batch in segment.batches_from(u64::from(last.position)) {
        let batch = batch.map_err(|e| e.to_string())?;
        if batch.base_offset != expected || batch.last_offset < batch.base_offset {
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
        tail_max = tail_max.max(batch.max_timestamp);
    }
    if bytes_since_entry.is_none() {
        return Err("last offset entry points at the end of the log".to_string());
    }
    // The time index's last entry is the segment's greatest timestamp: it must cover the
    // tail and name a batch that has exactly that timestamp.
    match times.last() {
        Some(t) => {
            let batch = segment
                .find_batch(base + i64::from(t.relative_offset))
                .map_err(|e| e.to_string())?;
            let matches = batch.is_some_and(|b| {
                b.base_offset == base + i64::from(t.relative_offset)
                    && b.max_timestamp == t.timestamp
            });
            if !matches || t.timestamp < tail_max {
                return Err(format!("last time entry {t:?} does not match the log"));
            }
        }
        None if tail_max >= 0 => return Err("time index is empty".to_string()),
        None => {}
    }
    Ok(expected)
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
    pub(crate) problem: Option<(u64, Corruption)>,
}

/// Reads `data` (a whole `.log`) batch by batch with full checks (module docs), computing
/// the index entries of its valid prefix with the same planner appends use.
pub(crate) fn scan(data: &[u8], base_offset: i64, index_interval_bytes: u32) -> Scan {
    let mut out = Scan {
        valid_len: 0,
        next_offset: base_offset,
        offset_entries: Vec::new(),
        time_entries: Vec::new(),
        planner: IndexPlanner::default(),
        first_max_timestamp: None,
        problem: None,
    };
    let mut position = 0usize;
    while let Some(rest) = data.get(position..).filter(|r| !r.is_empty()) {
        let pos = position as u64;
        let view = match BatchView::parse_verified(rest) {
            Ok(view) => view,
            Err(e) => {
                out.problem = Some((pos, Corruption::Batch(e)));
                break;
            }
        };
        match check_batch(&view, base_offset, position == 0, out.next_offset, pos) {
            Ok(planned) => {
                let (planner, entries) = out.planner.plan(planned, index_interval_bytes);
                out.planner = planner;
                out.offset_entries.extend(entries.offset);
                out.time_entries.extend(entries.time);
            }
            Err(corruption) => {
                out.problem = Some((pos, corruption));
                break;
            }
        }
        out.first_max_timestamp.get_or_insert(view.max_timestamp());
        out.next_offset = view.last_offset() + 1;
        position += view.size();
        out.valid_len = position as u64;
    }
    out
}

/// Offset and position checks of one CRC-valid batch; what the planner needs if it passes.
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
    if !first && base != expected {
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

/// Maps and scans a whole `.log` file. The map is dropped before the caller truncates.
fn scan_file(log: &FileHandle, base: i64, config: &LogConfig) -> Result<Scan> {
    let len = log.file_len()?;
    let map = log.map(len)?;
    let data = usize::try_from(len)
        .ok()
        .and_then(|len| map.as_ref()?.get(0..len))
        .unwrap_or_default();
    Ok(scan(data, base, config.index_interval_bytes))
}

/// Makes the scanned last segment the active one: preallocates its `.log` again and rewrites
/// its indexes (always: a crash leaves them in an unknown state).
fn activate(
    dir: &Path,
    base: i64,
    log: FileHandle,
    scan: Scan,
    config: &LogConfig,
) -> Result<Segment> {
    let capacity = scan.valid_len.max(config.segment_limit());
    log.set_len(capacity)?;
    log.sync_all()?;
    let offset_index = Index::create_active(
        &segment_path(dir, base, INDEX_SUFFIX),
        &scan.offset_entries,
        max_entries::<OffsetEntry>(config.segment_index_bytes),
    )?;
    let time_index = Index::create_active(
        &segment_path(dir, base, TIME_INDEX_SUFFIX),
        &scan.time_entries,
        max_entries::<TimeEntry>(config.segment_index_bytes),
    )?;
    Segment::from_parts(SegmentParts {
        base_offset: base,
        log,
        size: scan.valid_len,
        capacity,
        offset_index,
        time_index,
        next_offset: scan.next_offset,
        active: Some(ActiveState {
            roll_base_ms: scan.first_max_timestamp.filter(|t| *t >= 0),
            planner: scan.planner,
        }),
    })
}

/// A fully scanned, valid, non-last segment: keeps its index files if they already equal the
/// rebuilt ones, otherwise replaces them.
fn seal_from_scan(dir: &Path, base: i64, log: FileHandle, mut scan: Scan) -> Result<Segment> {
    scan.time_entries.extend(scan.planner.seal_entry());
    let offset_index = sealed_index(&segment_path(dir, base, INDEX_SUFFIX), &scan.offset_entries)?;
    let time_index = sealed_index(
        &segment_path(dir, base, TIME_INDEX_SUFFIX),
        &scan.time_entries,
    )?;
    Segment::from_parts(SegmentParts {
        base_offset: base,
        log,
        size: scan.valid_len,
        capacity: scan.valid_len,
        offset_index,
        time_index,
        next_offset: scan.next_offset,
        active: None,
    })
}

fn sealed_index<E: IndexEntry>(path: &Path, entries: &[E]) -> Result<Index<E>> {
    if let Ok(index) = Index::open_sealed(path)? {
        if index.to_vec() == entries {
            return Ok(index);
        }
    }
    info!(index = %path.display(), entries = entries.len(), "writing rebuilt index");
    Index::write_sealed(path, entries)
}

fn delete_segments(dir: &Path, bases: &[i64]) -> Result<()> {
    for &base in bases {
        warn!(
            segment = %segment_path(dir, base, LOG_SUFFIX).display(),
            "deleting segment after a damaged one"
        );
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            fs::remove_file(&segment_path(dir, base, suffix))?;
        }
    }
    Ok(())
}
