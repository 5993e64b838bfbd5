//! [`PartitionLog`]: one partition's log, an ordered set of segments.
//!
//! Owns the segment map, offset assignment, the roll decision, and the read and timestamp
//! lookups that span segments. Segment files and their formats belong to
//! [`crate::segment`] and [`crate::index`]; opening and repair to [`crate::recovery`].

use std::{
    collections::BTreeMap,
    iter,
    path::{Path, PathBuf},
};

use brook_protocol::batch::{set_base_offset, BatchError, BatchView};
use bytes::Bytes;
use tracing::debug;

use crate::{
    config::{LogConfig, RecoveryPolicy},
    error::StorageError,
    fs, recovery,
    segment::{BatchInfo, RollReason, Segment},
};

type Result<T> = std::result::Result<T, StorageError>;

/// Offsets assigned by one [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Base offset of the first appended batch.
    pub base_offset: i64,
    /// Last offset of the last appended batch.
    pub last_offset: i64,
}

/// One partition's log: sealed segments plus the active segment that takes appends.
///
/// Reads take `&self` and return zero-copy slices of the segment maps, so a caller may share
/// the log behind a read-write lock and keep the returned [`Bytes`] as long as it likes,
/// even across later appends, rolls, `close` or `delete`.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sealed segments by base offset; all below the active segment's base.
    sealed: BTreeMap<i64, Segment>,
    active: Segment,
    /// Set after a failed fsync or roll: the log refuses writes until reopened.
    failed: Option<String>,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering it: the last segment is
    /// verified batch by batch and truncated at the first invalid byte; missing or malformed
    /// indexes are rebuilt. See [`RecoveryPolicy`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        Self::open_with_policy(dir, config, RecoveryPolicy::default())
    }

    /// [`PartitionLog::open`] with an explicit choice of which segments to verify in full.
    pub fn open_with_policy(
        dir: &Path,
        config: LogConfig,
        policy: RecoveryPolicy,
    ) -> Result<PartitionLog> {
        let opened = recovery::open(dir, &config, policy)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            sealed: opened.sealed,
            active: opened.active,
            failed: None,
        })
    }

    /// Appends one or more already validated v2 batches laid end to end in `batches`,
    /// assigning offsets by patching each base offset. `now_ms` drives `segment_ms` rolls.
    ///
    /// The whole buffer is parsed before anything is written, so malformed input appends
    /// nothing. The batches are readable once this returns; they are durable after
    /// [`PartitionLog::flush`]. If a write fails (say, disk full) the failing batch is not
    /// appended and may be retried; batches before it in the same call stay appended.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_writable()?;
        let infos = assign_offsets(batches, self.active.next_offset())?;
        let (Some(first), Some(last)) = (infos.first(), infos.last()) else {
            return Err(StorageError::EmptyAppend);
        };
        let result = AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset,
        };
        for info in &infos {
            let end = info.position + info.size;
            let data = usize::try_from(info.position)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(s, e)| batches.get(s..e))
                .ok_or(BatchError::Invalid("batch outside the buffer"))?;
            if let Some(reason) =
                self.active
                    .roll_reason(info.size, info.last_offset, now_ms, &self.config)
            {
                self.roll_active(reason)?;
            }
            self.active.append(data, *info, now_ms, &self.config)?;
        }
        Ok(result)
    }

    /// Whole batches from the one containing `offset`: at least one batch (even if larger
    /// than `max_bytes`, as in KIP-74), then more while the total stays `<= max_bytes`. One
    /// [`Bytes`] per segment touched. Empty at the log end; `OffsetOutOfRange` outside
    /// `[log_start_offset, log_end_offset]`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Bytes>> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut first_segment = true;
        'segments: for segment in self.segments_from(offset) {
            let from = if first_segment {
                segment.position_floor(offset)
            } else {
                0
            };
            first_segment = false;
            let mut range: Option<(u64, u64)> = None;
            let mut full = false;
            for batch in segment.batches_from(from) {
                let batch = batch?;
                if batch.last_offset < offset {
                    continue;
                }
                let size = usize::try_from(batch.size).unwrap_or(usize::MAX);
                if total > 0 && total.saturating_add(size) > max_bytes {
                    full = true;
                    break;
                }
                total = total.saturating_add(size);
                let range_start = range.map_or(batch.position, |r| r.0);
                range = Some((range_start, batch.position + batch.size));
            }
            if let Some((s, e)) = range {
                out.push(segment.bytes(s, e)?);
            }
            if full {
                break 'segments;
            }
        }
        Ok(out)
    }

    /// The first offset in the log (the oldest segment's base offset).
    pub fn log_start_offset(&self) -> i64 {
        self.sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(self.active.base_offset())
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset()
    }

    /// The first batch in offset order whose `max_timestamp >= ts`. Batches without a
    /// timestamp (negative `max_timestamp`) never match. Segments whose greatest timestamp is
    /// below `ts` are skipped without reading them; within a segment the time index gives
    /// the starting point.
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>> {
        for segment in self.segments() {
            if segment.max_timestamp().is_some_and(|m| m.timestamp >= ts) {
                if let Some(batch) = segment.find_by_timestamp(ts)? {
                    return segment
                        .bytes(batch.position, batch.position + batch.size)
                        .map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The batch holding the greatest `max_timestamp` (the first one on ties); `None` if no
    /// batch has a timestamp. Costs one comparison per segment and one index lookup.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>> {
        let mut best = None;
        for segment in self.segments() {
            if let Some(m) = segment.max_timestamp() {
                if best.is_none_or(|(_, b): (&Segment, crate::index::TimeEntry)| {
                    m.timestamp > b.timestamp
                }) {
                    best = Some((segment, m));
                }
            }
        }
        let Some((segment, m)) = best else {
            return Ok(None);
        };
        let offset = segment.base_offset() + i64::from(m.relative_offset);
        match segment.find_batch(offset)? {
            Some(batch) => segment
                .bytes(batch.position, batch.position + batch.size)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the configuration; it applies from the next append or roll on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Seals the active segment and starts a new one at the log end offset. Does nothing if
    /// the active segment is empty.
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        self.check_writable()?;
        if self.active.is_empty() {
            return Ok(());
        }
        debug!(dir = %self.dir.display(), now_ms, "roll requested");
        self.roll_active(RollReason::Requested)
    }

    /// Makes everything appended so far durable (fdatasync of the active `.log`; sealed
    /// segments were fsynced when rolled). A failure disables further writes.
    pub fn flush(&mut self) -> Result<()> {
        self.check_writable()?;
        let result = self.active.flush();
        self.fail_on_error(result)
    }

    /// Clean shutdown: trims the active segment's files to their used length and fsyncs
    /// them. Dropping the log without closing is safe too; the next open recovers it.
    pub fn close(mut self) -> Result<()> {
        self.active.close()?;
        fs::sync_dir(&self.dir)
    }

    /// Removes the log's directory and everything in it. Outstanding [`Bytes`] stay valid.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir)
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Bytes of batches stored, over all segments.
    pub fn size_in_bytes(&self) -> u64 {
        self.segments().map(Segment::size).sum()
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.values().chain(iter::once(&self.active))
    }

    /// Segments in order, starting with the one that may contain `offset`.
    fn segments_from(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let from = if offset >= self.active.base_offset() {
            self.active.base_offset()
        } else {
            self.sealed
                .range(..=offset)
                .next_back()
                .map_or(i64::MIN, |(base, _)| *base)
        };
        self.sealed
            .range(from..)
            .map(|(_, s)| s)
            .chain(iter::once(&self.active))
    }

    fn check_writable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(reason) => Err(StorageError::WritesDisabled {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Records a failure that leaves durability or the segment layout uncertain.
    fn fail_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Seals the active segment (trimmed and fsynced) before creating the next, so a crash
    /// in between leaves the old segment last and recoverable. Any failure disables writes:
    /// the layout is then half changed.
    fn roll_active(&mut self, reason: RollReason) -> Result<()> {
        let result = self.try_roll(reason);
        self.fail_on_error(result)
    }

    fn try_roll(&mut self, reason: RollReason) -> Result<()> {
        let base = self.active.next_offset();
        debug!(
            dir = %self.dir.display(),
            ?reason,
            old_base = self.active.base_offset(),
            new_base = base,
            "rolling segment"
        );
        self.active.seal()?;
        let next = Segment::create(&self.dir, base, &self.config)?;
        fs::sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.insert(old.base_offset(), old);
        Ok(())
    }
}

/// Parses every batch in `buf`, then patches base offsets from `next_offset` on. Nothing is
/// patched unless the whole buffer is valid. The returned `position`s index into `buf`.
fn assign_offsets(buf: &mut [u8], mut next_offset: i64) -> Result<Vec<BatchInfo>> {
    let mut infos = Vec::new();
    let mut position = 0usize;
    while let Some(rest) = buf.get(position..).filter(|r| !r.is_empty()) {
        let view = BatchView::parse(rest)?;
        let delta = view.last_offset_delta();
        if delta < 0 {
            return Err(BatchError::Invalid("negative last offset delta").into());
        }
        let last_offset = next_offset
            .checked_add(i64::from(delta))
            .filter(|l| *l < i64::MAX)
            .ok_or(StorageError::OffsetOverflow {
                next_offset,
                records: i64::from(delta) + 1,
            })?;
        let mut info = BatchInfo::of(&view, position as u64);
        info.base_offset = next_offset;
        info.last_offset = last_offset;
        infos.push(info);
        position += view.size();
        next_offset = last_offset + 1;
    }
    for info in &infos {
        if let Some(batch) = usize::try_from(info.position)
            .ok()
            .and_then(|p| buf.get_mut(p..))
        {
            set_base_offset(batch, info.base_offset);
        }
    }
    Ok(infos)
}

#[cfg(test)]
mod tests;
