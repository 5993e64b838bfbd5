//! Retention and DeleteRecords: what is deleted, where the log start offset goes, and that
//! it stays there.

use std::{fs as stdfs, sync::Arc};

use brook_protocol::batch::{testing::simple_batch, BatchView};

use super::tests::{append_simple, base_offsets, config, offsets, read_all, seg_file};
use super::*;
use crate::{checkpoint::Checkpoint, config::OpenMode, fs::OsFileSystem};

/// A log of 3-batch segments (2 records per batch, batch `i` with timestamps `1000 * i` and
/// `1000 * i + 1`):
/// segments 0, 6, 12, 18 (active, holding 3 batches).
fn four_segments(dir: &Path) -> (PartitionLog, Vec<Vec<u8>>, u64) {
    let size = simple_batch(0, 2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir, cfg).unwrap();
    let batches = (0..12)
        .map(|i| append_simple(&mut log, 1000 * i, 2))
        .collect();
    assert_eq!(base_offsets(dir), vec![0, 6, 12, 18]);
    (log, batches, size)
}

fn reopen(log: PartitionLog) -> PartitionLog {
    let (dir, cfg) = (log.dir().to_path_buf(), *log.config());
    log.close().unwrap();
    PartitionLog::open(&dir, cfg).unwrap()
}

#[test]
fn retention_by_time_deletes_expired_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches, _) = four_segments(dir.path());
    // Segment 0's largest timestamp is 2001, segment 6's 5001.
    let outcome = log.apply_retention(5001, 3000, -1).unwrap();
    assert_eq!(outcome.deleted_segments, 0, "2001 is exactly 3000 ms old");
    let outcome = log.apply_retention(5002, 3000, -1).unwrap();
    assert_eq!(
        outcome,
        RetentionOutcome {
            deleted_segments: 1,
            deleted_bytes: batches[..3].iter().map(|b| b.len() as u64).sum(),
            log_start_offset: 6,
        }
    );
    assert_eq!(base_offsets(dir.path()), vec![6, 12, 18]);
    assert!(!seg_file(dir.path(), 0, "index").exists());
    assert!(!seg_file(dir.path(), 0, "timeindex").exists());
    assert_eq!(log.log_start_offset(), 6);
    assert!(matches!(
        log.read(5, 100),
        Err(StorageError::OffsetOutOfRange { start: 6, .. })
    ));
    assert_eq!(read_all(&log), batches[3..].concat());
    let log = reopen(log);
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(read_all(&log), batches[3..].concat());
}

#[test]
fn retention_by_bytes_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches, size) = four_segments(dir.path());
    let total = log.size_in_bytes();
    assert_eq!(total, 12 * size);
    assert_eq!(
        log.apply_retention(0, -1, total as i64)
            .unwrap()
            .deleted_segments,
        0
    );
    // 12 batches stored; keep at least 7 batches' worth: one segment goes (9 remain).
    let outcome = log.apply_retention(0, -1, 7 * size as i64).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!(outcome.log_start_offset, 6);
    assert!(log.size_in_bytes() >= 7 * size);
    // Keep at least 3 batches: two more segments go, leaving the active one.
    let outcome = log.apply_retention(0, -1, 3 * size as i64).unwrap();
    assert_eq!(outcome.deleted_segments, 2);
    assert_eq!(base_offsets(dir.path()), vec![18]);
    assert_eq!(read_all(&log), batches[9..].concat());
}

#[test]
fn retention_never_deletes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches, _) = four_segments(dir.path());
    let outcome = log.apply_retention(i64::MAX, 0, 0).unwrap();
    assert_eq!(outcome.deleted_segments, 3);
    assert_eq!(outcome.log_start_offset, 18);
    assert_eq!(base_offsets(dir.path()), vec![18]);
    assert_eq!(
        log.apply_retention(i64::MAX, 0, 0)
            .unwrap()
            .deleted_segments,
        0
    );
    assert_eq!(read_all(&log), batches[9..].concat());
    // An empty active segment is never deleted either, and appends continue.
    log.roll(0).unwrap();
    assert_eq!(
        log.apply_retention(i64::MAX, 0, 0)
            .unwrap()
            .deleted_segments,
        1
    );
    assert_eq!(base_offsets(dir.path()), vec![24]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (24, 24));
    let next = append_simple(&mut log, 0, 1);
    assert_eq!(offsets(&next), vec![(24, 24)]);
}

#[test]
fn retention_removes_segments_below_the_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, batches, _) = four_segments(dir.path());
    let cfg = *log.config();
    log.close().unwrap();
    // As after a crash between DeleteRecords' checkpoint and its segment removal.
    let fs: SharedFs = Arc::new(OsFileSystem);
    crate::checkpoint::write(
        &fs,
        dir.path(),
        &Checkpoint {
            log_start_offset: 13,
            recovery_point: 24,
            prefix: None,
        },
    )
    .unwrap();
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 13);
    assert_eq!(base_offsets(dir.path()), vec![0, 6, 12, 18]);
    let outcome = log.apply_retention(0, -1, -1).unwrap();
    assert_eq!(outcome.deleted_segments, 2);
    assert_eq!(
        outcome.log_start_offset, 13,
        "never moved back to the segment base"
    );
    assert_eq!(base_offsets(dir.path()), vec![12, 18]);
    assert_eq!(read_all(&log), batches[6..].concat());
}

#[test]
fn delete_records_before_checks_bounds_and_persists_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, batches, _) = four_segments(dir.path());
    for bad in [-1, 25, i64::MAX] {
        assert!(
            matches!(
                log.delete_records_before(bad),
                Err(StorageError::OffsetOutOfRange {
                    start: 0,
                    end: 24,
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert_eq!(log.delete_records_before(0).unwrap(), 0);
    // Inside the batch 2..=3 of segment 0: the segment stays.
    assert_eq!(log.delete_records_before(3).unwrap(), 3);
    assert_eq!(base_offsets(dir.path()), vec![0, 6, 12, 18]);
    assert!(matches!(
        log.delete_records_before(2),
        Err(StorageError::OffsetOutOfRange { start: 3, .. })
    ));
    assert!(matches!(
        log.read(2, 100),
        Err(StorageError::OffsetOutOfRange { start: 3, .. })
    ));
    assert_eq!(read_all(&log), batches[1..].concat());
    // Up to a segment boundary: whole segments below go at once.
    assert_eq!(log.delete_records_before(12).unwrap(), 12);
    assert_eq!(base_offsets(dir.path()), vec![12, 18]);
    // Persisted before returning: a crash keeps it.
    drop(log);
    let cfg = LogConfig {
        segment_bytes: simple_batch(0, 2).len() as u64 * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 12);
    assert_eq!(read_all(&log), batches[6..].concat());
    // Up to the log end: nothing readable, appends continue.
    assert_eq!(log.delete_records_before(24).unwrap(), 24);
    assert!(log.read(24, 100).unwrap().is_empty());
    assert_eq!(log.batch_for_timestamp(0).unwrap(), None);
    assert_eq!(log.batch_with_max_timestamp().unwrap(), None);
    log.close().unwrap();
    let mut log = PartitionLog::open_with(
        dir.path(),
        cfg,
        OpenOptions::default().with_mode(OpenMode::AfterCleanShutdown),
    )
    .unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (24, 24));
    let next = append_simple(&mut log, 0, 1);
    assert_eq!(offsets(&next), vec![(24, 24)]);
    assert_eq!(read_all(&log), next);
}

#[test]
fn timestamp_lookups_ignore_batches_below_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 4,
        index_interval_bytes: 0,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    // Batch i holds offsets 2i..=2i+1 with timestamps t and t + 1. The greatest timestamp
    // is in batch 1.
    let times = [100, 900, 300, 200, 500, 400, 800, 700, 600];
    let batches: Vec<Vec<u8>> = times
        .iter()
        .map(|&t| append_simple(&mut log, t, 2))
        .collect();
    let max_ts = |log: &PartitionLog| {
        log.batch_with_max_timestamp()
            .unwrap()
            .map(|b| BatchView::parse(&b).unwrap().max_timestamp() - 1)
    };
    assert_eq!(max_ts(&log), Some(900));
    // Log start inside batch 1 (offset 3): it still counts.
    log.delete_records_before(3).unwrap();
    assert_eq!(max_ts(&log), Some(900));
    assert_eq!(log.batch_for_timestamp(0).unwrap().unwrap(), batches[1]);
    // Past batch 1, still inside segment 0 (offsets 0..=7): the maximum comes from the rest.
    log.delete_records_before(4).unwrap();
    assert_eq!(max_ts(&log), Some(800));
    assert_eq!(log.batch_for_timestamp(0).unwrap().unwrap(), batches[2]);
    assert_eq!(log.batch_for_timestamp(850).unwrap(), None);
    assert_eq!(log.batch_for_timestamp(650).unwrap().unwrap(), batches[6]);
    // After reopening (sealed segments answer from their time indexes) the same.
    let log = reopen(log);
    assert_eq!(max_ts(&log), Some(800));
    assert_eq!(log.batch_for_timestamp(0).unwrap().unwrap(), batches[2]);
    let mut log = log;
    log.delete_records_before(14).unwrap();
    assert_eq!(max_ts(&log), Some(700));
    assert_eq!(log.batch_for_timestamp(0).unwrap().unwrap(), batches[7]);
    assert_eq!(log.batch_for_timestamp(750).unwrap(), None);
}

#[test]
fn segments_without_timestamps_expire_by_file_time() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(-1, 1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for _ in 0..3 {
        append_simple(&mut log, -1, 1);
    }
    let summaries = log.segment_summaries().unwrap();
    assert_eq!(summaries.len(), 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for s in &summaries {
        assert!((now - s.largest_timestamp_ms).abs() < 60_000, "{s:?}");
    }
    assert_eq!(
        log.apply_retention(now, 3_600_000, -1)
            .unwrap()
            .deleted_segments,
        0
    );
    let outcome = log.apply_retention(now + 7_200_000, 3_600_000, -1).unwrap();
    assert_eq!(outcome.deleted_segments, 2);
    assert_eq!(
        stdfs::read_dir(dir.path()).unwrap().count(),
        4,
        "3 files + checkpoint"
    );
}
