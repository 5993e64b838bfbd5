//! [`PartitionLog`]: one partition's log, an ordered set of segments.
//!
//! Owns the segment map, offset assignment, the roll decision, the read and timestamp
//! lookups that span segments, the log start offset, what is known to be durable, the
//! failed state, and when the checkpoint is written. Segment files and their formats belong
//! to [`crate::segment`] and [`crate::index`]; opening and repair to [`crate::recovery`];
//! the retention decision to [`crate::retention`].
//!
//! # Failures
//!
//! A full disk (`StorageError::NoSpace`) fails the call cleanly: nothing of the failing batch
//! is committed and the log stays writable, so the same append (or the roll it needs) is
//! retried by the next call. Any other failed write, fsync or roll puts the log in the failed
//! state: it refuses writes (`WritesDisabled`) until reopened, because it can no longer tell
//! which acknowledged data is durable. Reads keep working in both cases.

use std::{
    collections::BTreeMap,
    iter,
    path::{Path, PathBuf},
    sync::Arc,
    time::UNIX_EPOCH,
};

use brook_protocol::batch::{set_base_offset, BatchError, BatchView};
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::{
    checkpoint::{self, Checkpoint},
    config::{LogConfig, OpenOptions, RecoveryPolicy},
    durability::{FailState, SyncPoint},
    error::StorageError,
    fs::{self, OsFileSystem, SharedFs},
    key_index::{BatchKeys, KeyIndex},
    recovery::{self, RecoveryReport, Verify},
    retention::{plan_retention, RetentionOutcome, SegmentSummary},
    segment::{segment_path, BatchInfo, FirstChunk, RollReason, Segment},
    txn_index::{self, AbortedTxn, TXN_INDEX_SUFFIX},
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

/// A checkpoint written to `checkpoint.tmp` and not yet renamed into place
/// ([`PartitionLog::stage_checkpoint`]).
#[derive(Debug)]
#[must_use = "a staged checkpoint takes effect only when committed"]
pub struct StagedCheckpoint(Checkpoint);

/// One partition's log: sealed segments plus the active segment that takes appends.
///
/// Reads take `&self` and return zero-copy slices of the segment maps, so a caller may share
/// the log behind a read-write lock and keep the returned [`Bytes`] as long as it likes,
/// even across later appends, rolls, `close` or `delete`.
#[derive(Debug)]
pub struct PartitionLog {
    fs: SharedFs,
    dir: PathBuf,
    config: LogConfig,
    /// Sealed segments by base offset; all below the active segment's base.
    sealed: BTreeMap<i64, Segment>,
    active: Segment,
    /// Reads below it are out of range; never decreases.
    log_start: i64,
    /// Every offset below it is known to be on disk; never decreases.
    durable: i64,
    /// Shared with this log's sync points.
    failed: Arc<FailState>,
    /// The checkpoint on disk as last read or written (to skip rewriting an unchanged one).
    checkpoint: Option<Checkpoint>,
    report: RecoveryReport,
    /// The per-key index, when the configuration keeps one ([`crate::key_index`]).
    keys: Option<KeyIndex>,
    /// The key index file of the segment that rolled last, while it is written.
    key_seal: Option<keys::KeySeal>,
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir` with [`OpenOptions::default`]: the real
    /// file system and [`crate::OpenMode::Recover`] (every segment from the checkpoint's
    /// recovery point on, the last one always, verified batch by batch and truncated at the
    /// first invalid byte; missing or malformed indexes rebuilt).
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        Self::open_with(dir, config, OpenOptions::default())
    }

    /// Opens (creating if needed) the log in `dir` on `options.fs`, checking as much as
    /// `options.mode` asks. The recovery done is logged and kept in
    /// [`PartitionLog::recovery_report`]. Everything the opened log holds is durable
    /// ([`PartitionLog::durable_offset`] is the log end offset).
    pub fn open_with(dir: &Path, config: LogConfig, options: OpenOptions) -> Result<PartitionLog> {
        let opened = recovery::open(&options.fs, dir, &config, Verify::Mode(options.mode))?;
        Self::from_opened(options.fs, dir, config, opened)
    }

    /// [`PartitionLog::open`] with an explicit choice of which segments to verify in full,
    /// instead of the checkpoint's recovery point.
    pub fn open_with_policy(
        dir: &Path,
        config: LogConfig,
        policy: RecoveryPolicy,
    ) -> Result<PartitionLog> {
        let fs: SharedFs = Arc::new(OsFileSystem);
        let opened = recovery::open(&fs, dir, &config, Verify::Policy(policy))?;
        Self::from_opened(fs, dir, config, opened)
    }

    fn from_opened(
        fs: SharedFs,
        dir: &Path,
        config: LogConfig,
        opened: recovery::Opened,
    ) -> Result<Self> {
        let mut log = Self {
            fs,
            dir: dir.to_path_buf(),
            config,
            sealed: opened.sealed,
            durable: opened.active.next_offset(),
            active: opened.active,
            log_start: opened.log_start_offset,
            failed: Arc::default(),
            checkpoint: opened.checkpoint,
            report: opened.report,
            keys: None,
            key_seal: None,
        };
        log.open_key_index()?;
        // Everything opened is durable: what lies behind the cache window (say, pages the
        // recovery scan read) is released now, as it would have been while running.
        log.release_cache();
        Ok(log)
    }

    /// Appends one or more already validated v2 batches laid end to end in `batches`,
    /// assigning offsets by patching each base offset. `now_ms` drives `segment_ms` rolls.
    ///
    /// The whole buffer is parsed before anything is written, so malformed input appends
    /// nothing. The batches are readable once this returns; they are durable after
    /// [`PartitionLog::flush`] or a [`SyncPoint`]. If the disk is full
    /// ([`StorageError::is_no_space`]; a roll needs space for the new segment) the failing
    /// batch is not appended and may be retried; batches before it in the same call stay
    /// appended. Any other write error puts the log in the failed state.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        self.append_keyed(batches, now_ms, None)
    }

    /// [`PartitionLog::append`] of a single batch whose records the caller has read for the
    /// key index already (see [`BatchKeys`]), so that less is done with the log locked.
    /// `keys` that do not match the batch are ignored (the index reads the batch itself).
    pub fn append_keyed(
        &mut self,
        batches: &mut [u8],
        now_ms: i64,
        keys: Option<&BatchKeys>,
    ) -> Result<AppendInfo> {
        self.settle_key_seal(false)?;
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
            if let Err(e) = self.active.wake(&self.config) {
                if e.disables_writes() {
                    self.fail(format!("write failed: {e}"));
                }
                return Err(e);
            }
            let reason = self
                .active
                .roll_reason(info.size, info.last_offset, now_ms, &self.config)
                .or_else(|| self.key_index_full(info.last_offset - info.base_offset + 1));
            if let Some(reason) = reason {
                self.roll_active(reason)?;
            }
            if let Err(e) = self.active.append(data, *info, now_ms, &self.config) {
                if e.disables_writes() {
                    self.fail(format!("write failed: {e}"));
                }
                return Err(e);
            }
            if let Some(index) = self.keys.as_mut() {
                let given = keys.filter(|_| infos.len() == 1);
                index.observe_keys(&BatchView::parse(data)?, given);
            }
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

    /// The first offset readable: the oldest segment's base offset, or higher after
    /// [`PartitionLog::delete_records_before`] (then possibly inside a batch, which reads
    /// still return whole). Survives reopening through the checkpoint.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset()
    }

    /// The timestamp of the first data record at or after `offset` (`None` at the log end):
    /// what a consumer that committed `offset` has yet to read, for lag in time. Exact for
    /// uncompressed batches; a compressed batch gives its first record's (base) timestamp,
    /// a LogAppendTime batch its append time. Reads batch headers only, from the map.
    pub fn timestamp_at(&self, offset: i64) -> Result<Option<i64>> {
        const LOOK_AHEAD: usize = 64 * 1024;
        if offset >= self.log_end_offset() {
            return Ok(None);
        }
        for chunk in self.read(offset.max(self.log_start), LOOK_AHEAD)? {
            for view in brook_protocol::batch::Batches::new(&chunk) {
                if view.last_offset() < offset || view.is_control() || view.records_count() == 0 {
                    continue;
                }
                if view.is_log_append_time() {
                    return Ok(Some(view.max_timestamp()));
                }
                if view.compression().is_some_and(|c| c.id() != 0) {
                    return Ok(Some(view.base_timestamp()));
                }
                let records = brook_protocol::records::Records::new(
                    view.records_data(),
                    view.records_count(),
                );
                for record in records.flatten() {
                    if view.base_offset() + i64::from(record.offset_delta) >= offset {
                        return Ok(Some(view.base_timestamp() + record.timestamp_delta));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The first batch in offset order whose `max_timestamp >= ts`, ignoring batches that
    /// end below the log start offset. Batches without a timestamp (negative
    /// `max_timestamp`) never match. Segments whose greatest timestamp is below `ts` are
    /// skipped without reading them; within a segment the time index gives the starting
    /// point.
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>> {
        for segment in self.live_segments() {
            if segment.max_timestamp().is_some_and(|m| m.timestamp >= ts) {
                if let Some(batch) = segment.find_by_timestamp(ts, self.log_start)? {
                    return segment
                        .bytes(batch.position, batch.position + batch.size)
                        .map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The batch holding the greatest `max_timestamp` (the first one on ties) at or after
    /// the log start offset; `None` if no such batch has a timestamp. Costs one comparison
    /// per segment and one index lookup, plus a scan of the segment the log start offset
    /// cuts through, if any.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>> {
        // (segment, timestamp, an offset inside the batch)
        let mut best: Option<(&Segment, i64, i64)> = None;
        for segment in self.live_segments() {
            let candidate = if segment.base_offset() < self.log_start {
                segment
                    .max_timestamp_batch_from(self.log_start)?
                    .map(|b| (b.max_timestamp, b.base_offset))
            } else {
                segment.max_timestamp().map(|m| {
                    (
                        m.timestamp,
                        segment.base_offset() + i64::from(m.relative_offset),
                    )
                })
            };
            if let Some((timestamp, offset)) = candidate {
                if best.is_none_or(|(_, b, _)| timestamp > b) {
                    best = Some((segment, timestamp, offset));
                }
            }
        }
        let Some((segment, _, offset)) = best else {
            return Ok(None);
        };
        match segment.find_batch(offset)? {
            Some(batch) => segment
                .bytes(batch.position, batch.position + batch.size)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the configuration; it applies from the next append or roll on. Turning the
    /// key index on indexes the whole log now; turning it off removes it.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        self.config = config;
        self.reconcile_key_index()
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

    /// Rolls the active segment if it is older than `segment.ms` (appends roll it too, but a
    /// quiet partition has none: this lets its data become compactable). True if it rolled.
    pub fn roll_if_aged(&mut self, now_ms: i64) -> Result<bool> {
        self.check_writable()?;
        let aged = self
            .active
            .roll_reason(0, self.active.next_offset(), now_ms, &self.config)
            == Some(RollReason::Age);
        if aged {
            self.roll_active(RollReason::Age)?;
        }
        Ok(aged)
    }

    /// Sizes and timestamps of the segments, oldest first (the last is the active one), as
    /// the cleaner's policy sees them.
    pub fn cleaner_segments(&self) -> Vec<crate::cleaner::policy::SegmentInfo> {
        self.segments()
            .map(|s| {
                let largest = s.max_timestamp().map_or(-1, |m| m.timestamp);
                crate::cleaner::policy::SegmentInfo {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    size_bytes: s.size(),
                    first_timestamp_ms: largest,
                    largest_timestamp_ms: largest,
                }
            })
            .collect()
    }

    /// Makes everything appended so far durable (fdatasync of the active `.log`; sealed
    /// segments were fsynced when rolled) and records it as the durable offset. A failure
    /// puts the log in the failed state.
    pub fn flush(&mut self) -> Result<()> {
        self.check_writable()?;
        let end = self.log_end_offset();
        match self.active.flush() {
            Ok(()) => {
                self.mark_durable(end);
                Ok(())
            }
            Err(e) => {
                self.fail(format!("fdatasync failed: {e}"));
                Err(e)
            }
        }
    }

    /// A [`SyncPoint`] for everything appended so far, to be synced without holding the log
    /// (group commit). Fails if the log is in the failed state.
    pub fn sync_point(&self) -> Result<SyncPoint> {
        self.check_writable()?;
        Ok(SyncPoint {
            file: self.active.log_file(),
            end_offset: self.log_end_offset(),
            failed: Arc::clone(&self.failed),
            dir: self.dir.clone(),
        })
    }

    /// Records that every offset below `end_offset` is durable (after a successful
    /// [`SyncPoint::sync`]). Lower values than already recorded, and any value once the log
    /// has failed, are ignored; values past the log end are capped to it.
    pub fn mark_durable(&mut self, end_offset: i64) {
        let end = end_offset.min(self.log_end_offset());
        if self.failed.reason().is_none() && end > self.durable {
            self.durable = end;
            self.release_cache();
        }
    }

    /// Releases the page cache of durable data further back than the cache window from the
    /// durable end (see [`crate::segment`]): the active segment up to there, then sealed
    /// segments, newest first, until one that was released wholly before.
    fn release_cache(&mut self) {
        let Some(mut keep) = self.config.cache_window_bytes else {
            return;
        };
        let durable_end = self.active.position_below(self.durable);
        let kept = keep.min(durable_end);
        self.active.release_cache_below(durable_end - kept);
        keep -= kept;
        for segment in self.sealed.values_mut().rev() {
            if segment.cache_fully_released() {
                break;
            }
            let kept = keep.min(segment.size());
            segment.release_cache_below(segment.size() - kept);
            keep -= kept;
        }
    }

    /// Every offset below this one is known to be on disk. It is the recovery point the
    /// checkpoint records.
    pub fn durable_offset(&self) -> i64 {
        self.durable
    }

    /// Puts the log in the failed state (say, because a [`SyncPoint::sync`] failed): it
    /// refuses writes until reopened. The first reason is kept.
    pub fn fail(&mut self, reason: String) {
        self.failed.fail(&self.dir, reason);
    }

    /// Why the log is in the failed state, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failed.reason()
    }

    /// Writes the checkpoint file (log start offset, durable offset as the recovery point)
    /// unless it already holds these values. Called periodically by the broker, so that a
    /// recovery after a crash scans only what was written since.
    pub fn write_checkpoint(&mut self) -> Result<()> {
        self.persist_checkpoint(self.log_start)
    }

    /// What opening the log checked and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Clean shutdown: trims the active segment's files to their used length, fsyncs them
    /// and writes the checkpoint, so that the next open may use
    /// [`crate::OpenMode::AfterCleanShutdown`]. A log in the failed state is left as it is
    /// on disk (`WritesDisabled`): the next open must recover it. Dropping the log without
    /// closing is safe too; the next open recovers it.
    pub fn close(mut self) -> Result<()> {
        self.settle_key_seal(true)?;
        self.check_writable()?;
        self.active.close()?;
        txn_index::sync(&self.fs, &self.txn_index_path(self.active.base_offset()))?;
        self.mark_durable(self.log_end_offset());
        self.write_checkpoint()?;
        fs::sync_dir(&self.fs, &self.dir)
    }

    /// Records a transaction whose ABORT marker was just appended, in the active segment's
    /// aborted-transaction index ([`crate::txn_index`]).
    pub fn append_aborted_txn(&mut self, txn: &AbortedTxn) -> Result<()> {
        self.check_writable()?;
        txn_index::append(
            &self.fs,
            &self.txn_index_path(self.active.base_offset()),
            txn,
        )
    }

    /// The aborted transactions a read_committed fetch of `from..upper` must list: those
    /// whose marker is at or after `from` and that started before `upper`, in marker order.
    /// Reads the indexes of the segments from the one holding `from` on, until an entry
    /// shows that no transaction started below `upper` is still to come.
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>> {
        let mut out = Vec::new();
        for segment in self.segments_from(from) {
            for txn in txn_index::read(&self.fs, &self.txn_index_path(segment.base_offset()))? {
                if txn.last_offset >= from && txn.first_offset < upper {
                    out.push(txn);
                }
                if txn.last_stable_offset >= upper {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Makes the active segment's aborted-transaction index hold exactly the entries of
    /// `txns` whose marker is in it (`txns`: the aborted transactions the broker rebuilt from
    /// the log at open, in marker order). After a crash that index may lack entries or name
    /// markers that were lost; sealed segments' indexes were synced when they were sealed.
    /// Not rewritten if it already matches.
    pub fn rebuild_txn_indexes(&mut self, txns: &[AbortedTxn]) -> Result<()> {
        let base = self.active.base_offset();
        let wanted: Vec<AbortedTxn> = txns
            .iter()
            .filter(|t| t.last_offset >= base)
            .copied()
            .collect();
        let path = self.txn_index_path(base);
        if txn_index::read(&self.fs, &path)? != wanted {
            txn_index::write_all(&self.fs, &path, &wanted)?;
        }
        Ok(())
    }

    fn txn_index_path(&self, base: i64) -> PathBuf {
        segment_path(&self.dir, base, TXN_INDEX_SUFFIX)
    }

    /// Removes the log's directory and everything in it. Outstanding [`Bytes`] stay valid.
    pub fn delete(mut self) -> Result<()> {
        // The files go whatever became of the last one being written.
        let _ = self.settle_key_seal(true);
        let (fs, dir) = (Arc::clone(&self.fs), self.dir.clone());
        drop(self);
        fs::remove_dir_all(&fs, &dir)
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

    /// What [`plan_retention`] needs to know about each segment, oldest first; the last is
    /// the active segment.
    pub fn segment_summaries(&self) -> Result<Vec<SegmentSummary>> {
        self.segments()
            .map(|s| {
                let largest_timestamp_ms = match s.max_timestamp() {
                    Some(m) => m.timestamp,
                    None => s
                        .modified()?
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                };
                Ok(SegmentSummary {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    size_bytes: s.size(),
                    largest_timestamp_ms,
                })
            })
            .collect()
    }

    /// Applies retention ([`plan_retention`]): deletes the oldest sealed segments that
    /// `retention_ms` / `retention_bytes` (-1 = unlimited) or the log start offset select
    /// (never the active segment), moves the log start offset up to the first remaining
    /// segment (never backwards) and writes the checkpoint.
    ///
    /// Files are removed before the checkpoint is written: reopening after a crash in
    /// between gives the same log start offset (it is never below the first segment), and on
    /// a full disk the space is freed even if the checkpoint cannot be written.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<RetentionOutcome> {
        self.check_writable()?;
        let summaries = self.segment_summaries()?;
        let count = plan_retention(
            &summaries,
            now_ms,
            retention_ms,
            retention_bytes,
            self.log_start,
        );
        if count == 0 {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start,
                ..RetentionOutcome::default()
            });
        }
        let (deleted_segments, deleted_bytes, removal) = self.remove_oldest(count);
        self.log_start = self.log_start.max(self.first_base());
        info!(
            dir = %self.dir.display(),
            deleted_segments,
            deleted_bytes,
            log_start_offset = self.log_start,
            "retention deleted segments"
        );
        let written = self.write_checkpoint();
        removal?;
        written?;
        Ok(RetentionOutcome {
            deleted_segments,
            deleted_bytes,
            log_start_offset: self.log_start,
        })
    }

    /// DeleteRecords: moves the log start offset up to `offset`, which must lie in
    /// `[log_start_offset, log_end_offset]` (else `OffsetOutOfRange`), and returns the new
    /// low watermark. The new start is in the checkpoint before this returns; sealed segments
    /// entirely below it are removed now (or, if that fails, by the next retention pass).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        self.check_writable()?;
        let (start, end) = (self.log_start, self.log_end_offset());
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset > start {
            self.persist_checkpoint(offset)?;
            self.log_start = offset;
            let below = self
                .sealed
                .values()
                .take_while(|s| s.next_offset() <= offset)
                .count();
            let (deleted, _, removal) = self.remove_oldest(below);
            debug!(dir = %self.dir.display(), offset, deleted, "log start offset moved");
            if let Err(e) = removal {
                warn!(dir = %self.dir.display(), "segments below the log start offset stay until the next retention pass: {e}");
            }
        }
        Ok(self.log_start)
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.values().chain(iter::once(&self.active))
    }

    /// Segments holding offsets at or after the log start offset.
    fn live_segments(&self) -> impl Iterator<Item = &Segment> {
        let start = self.log_start;
        self.segments().filter(move |s| s.next_offset() > start)
    }

    fn first_base(&self) -> i64 {
        self.sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(self.active.base_offset())
    }

    /// Removes up to `count` of the oldest sealed segments (files, then the directory
    /// fsynced). Returns how many segments and bytes went, and the first error; segments
    /// whose files could not all be removed stay in the log.
    fn remove_oldest(&mut self, count: usize) -> (usize, u64, Result<()>) {
        let bases: Vec<i64> = self.sealed.keys().take(count).copied().collect();
        if let Err(e) = self.retire_key_indexes(&bases) {
            return (0, 0, Err(e));
        }
        let (mut removed, mut bytes) = (0, 0);
        let mut result = Ok(());
        while removed < count {
            let Some(&base) = self.sealed.keys().next() else {
                break;
            };
            if let Err(e) = recovery::remove_segment_files(&self.fs, &self.dir, base) {
                result = Err(e);
                break;
            }
            bytes += self.sealed.remove(&base).map_or(0, |s| s.size());
            removed += 1;
        }
        if removed > 0 {
            if let Err(e) = fs::sync_dir(&self.fs, &self.dir) {
                result = result.and(Err(e));
            }
        }
        (removed, bytes, result)
    }

    /// The first half of a checkpoint whose syncs are batched with other logs' (the
    /// broker's periodic checkpoint of every partition): writes the new checkpoint to
    /// `checkpoint.tmp` without syncing anything. `None` if the checkpoint on disk is
    /// current. The caller then makes the file system durable (one `syncfs`, which covers
    /// the index entries the checkpoint names too) and calls
    /// [`PartitionLog::commit_checkpoint`]; nothing is changed on disk until then.
    pub fn stage_checkpoint(&mut self) -> Result<Option<StagedCheckpoint>> {
        let Some(checkpoint) = self.due_checkpoint(self.log_start) else {
            return Ok(None);
        };
        checkpoint::stage(&self.fs, &self.dir, &checkpoint)?;
        Ok(Some(StagedCheckpoint(checkpoint)))
    }

    /// Renames a staged checkpoint into place once the caller made it durable (see
    /// [`PartitionLog::stage_checkpoint`]); the rename is durable after the caller's next
    /// file-system sync (until then a crash leaves the previous checkpoint, which stays
    /// valid). A checkpoint written directly since (say, by DeleteRecords) took the staged
    /// file, and this does nothing.
    pub fn commit_checkpoint(&mut self, staged: StagedCheckpoint) -> Result<()> {
        if checkpoint::commit_staged(&self.fs, &self.dir)? {
            self.checkpoint = Some(staged.0);
        }
        Ok(())
    }

    /// The checkpoint for `log_start_offset`, the durable offset and the active segment's
    /// durable prefix; `None` if it is the one on disk, or if the log needs none (an empty
    /// log at offset 0: a missing checkpoint means just that, and an idle partition costs no
    /// disk).
    fn due_checkpoint(&self, log_start_offset: i64) -> Option<Checkpoint> {
        let checkpoint = Checkpoint {
            log_start_offset,
            recovery_point: self.durable,
            prefix: self.active.durable_prefix(self.durable),
        };
        let needs_none = self.checkpoint.is_none()
            && log_start_offset == 0
            && self.durable == 0
            && self.log_end_offset() == 0;
        (self.checkpoint != Some(checkpoint) && !needs_none).then_some(checkpoint)
    }

    /// Writes the checkpoint for `log_start_offset` ([`PartitionLog::due_checkpoint`]) and
    /// syncs it. The prefix's index entries are fsynced first, since the checkpoint vouches
    /// for them ([`crate::checkpoint`]).
    fn persist_checkpoint(&mut self, log_start_offset: i64) -> Result<()> {
        let Some(checkpoint) = self.due_checkpoint(log_start_offset) else {
            return Ok(());
        };
        if let Some(prefix) = checkpoint.prefix {
            let synced = self.checkpoint.and_then(|c| c.prefix).is_some_and(|p| {
                p.segment_base == prefix.segment_base
                    && p.offset_entries == prefix.offset_entries
                    && p.time_entries == prefix.time_entries
            });
            if !synced {
                self.active.sync_indexes()?;
            }
        }
        checkpoint::write(&self.fs, &self.dir, &checkpoint)?;
        self.checkpoint = Some(checkpoint);
        Ok(())
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
        self.failed.check(&self.dir)
    }

    /// Rolls: creates the next segment first, then seals the active one (trimmed and
    /// fsynced) and fsyncs the directory.
    ///
    /// Creating first means every allocation happens before anything changes: if the disk
    /// is full the new segment's files are removed again, the log is exactly as before and
    /// writable, and the next append retries the roll. A crash after creating but before
    /// sealing leaves an unsealed segment followed by an empty one; recovery finds the
    /// unsealed segment's preallocated tail, truncates it and deletes the empty one. Any
    /// other failure puts the log in the failed state.
    fn roll_active(&mut self, reason: RollReason) -> Result<()> {
        let base = self.active.next_offset();
        debug!(
            dir = %self.dir.display(),
            ?reason,
            old_base = self.active.base_offset(),
            new_base = base,
            "rolling segment"
        );
        let next = match Segment::create(&self.fs, &self.dir, base, &self.config, FirstChunk::Now) {
            Ok(next) => next,
            Err(e) => {
                if e.disables_writes() {
                    self.fail(format!("creating a segment failed: {e}"));
                }
                return Err(e);
            }
        };
        let old_base = self.active.base_offset();
        let txn_index = self.txn_index_path(old_base);
        let sealed = self
            .active
            .seal()
            .and_then(|()| txn_index::sync(&self.fs, &txn_index))
            .and_then(|()| self.seal_key_index(old_base))
            .and_then(|()| fs::sync_dir(&self.fs, &self.dir));
        if let Err(e) = sealed {
            self.fail(format!("sealing a segment failed: {e}"));
            return Err(e);
        }
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.insert(old.base_offset(), old);
        // The sealed segments are fsynced: everything below the new segment is durable.
        self.mark_durable(base);
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

pub(crate) mod clean;
mod keys;
pub use clean::{CleanJob, CleanOptions, CleanOutcome, CleanedLog, CleanedSegment, Installed};
pub(crate) use keys::KEY_INDEX_SUFFIX;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fault_tests;

#[cfg(test)]
mod recovery_tests;

#[cfg(test)]
mod retention_tests;

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod clean_txn_tests;
#[cfg(test)]
mod key_index_tests;
#[cfg(test)]
mod txn_tests;
