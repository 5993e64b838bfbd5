//! Failure behaviour through [`FaultyFileSystem`]: failed fsyncs and writes put the log in
//! the failed state; a full disk fails cleanly and writes resume once space is freed; sync
//! points cover what they claim.

use std::{io, sync::Arc};

use brook_protocol::batch::testing::simple_batch;

use super::tests::{append_simple, base_offsets, config, offsets, read_all, seg_file};
use super::*;
use crate::{
    config::OpenMode,
    testing::{Fault, FaultyFileSystem},
};

fn open_faulty(dir: &Path, cfg: LogConfig) -> (PartitionLog, Arc<FaultyFileSystem>) {
    let faults = Arc::new(FaultyFileSystem::new());
    let options = OpenOptions::default().with_fs(faults.clone());
    (PartitionLog::open_with(dir, cfg, options).unwrap(), faults)
}

fn is_writes_disabled<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StorageError::WritesDisabled { .. }))
}

#[test]
fn fsync_failure_disables_writes_and_nothing_after_it_is_reported_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_faulty(dir.path(), config());
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.extend(append_simple(&mut log, i, 2));
    }
    let point = log.sync_point().unwrap();
    assert_eq!(point.end_offset(), 6);
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    assert_eq!(log.durable_offset(), 6);

    expected.extend(append_simple(&mut log, 3, 2));
    let earlier = log.sync_point().unwrap(); // taken before the failure, synced after it
    expected.extend(append_simple(&mut log, 4, 2));
    faults.fail_next_syncs(1);
    let failing = log.sync_point().unwrap();
    let err = failing.sync().unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_no_space());
    // The sync point put the log in the failed state by itself; fail() is harmless on top.
    assert!(
        log.failure().is_some_and(|r| r.contains("fdatasync")),
        "{:?}",
        log.failure()
    );
    log.fail(format!("fsync failed: {err}"));
    assert!(
        log.failure().unwrap().contains("fdatasync"),
        "first reason kept"
    );

    faults.heal();
    // Nothing after the failure is reported durable, by any path.
    assert!(is_writes_disabled(earlier.sync()));
    log.mark_durable(failing.end_offset());
    assert_eq!(log.durable_offset(), 6);
    assert!(is_writes_disabled(log.flush()));
    assert!(is_writes_disabled(log.sync_point()));
    assert!(is_writes_disabled(log.append(&mut simple_batch(5, 1), 0)));
    assert!(is_writes_disabled(log.roll(0)));
    assert!(is_writes_disabled(log.apply_retention(0, 0, 0)));
    assert!(is_writes_disabled(log.delete_records_before(1)));
    // Reads still work.
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.log_end_offset(), 10);
    // A failed log is not closed cleanly: its files stay for recovery.
    assert!(is_writes_disabled(log.close()));

    // Reopening clears the failed state; the data is still in the page cache.
    let (mut log, _) = open_faulty(dir.path(), config());
    assert_eq!(log.failure(), None);
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.durable_offset(), 10);
    let next = append_simple(&mut log, 9, 1);
    assert_eq!(offsets(&next), vec![(10, 10)]);
}

#[test]
fn a_failed_flush_disables_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_faulty(dir.path(), config());
    append_simple(&mut log, 0, 1);
    log.flush().unwrap();
    assert_eq!(log.durable_offset(), 1);
    append_simple(&mut log, 0, 1);
    faults.fail_next_syncs(1);
    assert!(log.flush().is_err());
    assert_eq!(faults.failed_syncs(), 1);
    faults.heal();
    assert!(is_writes_disabled(log.flush()));
    assert_eq!(log.durable_offset(), 1);
}

#[test]
fn a_failed_fsync_while_rolling_disables_writes() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 2,
        ..config()
    };
    let (mut log, faults) = open_faulty(dir.path(), cfg);
    let mut expected = Vec::new();
    expected.extend(append_simple(&mut log, 0, 1));
    expected.extend(append_simple(&mut log, 0, 1));
    faults.fail_next_syncs(1); // the new segment's fsync
    let err = log.append(&mut simple_batch(0, 1), 0).unwrap_err();
    assert!(!err.is_no_space(), "{err}");
    assert!(log.failure().is_some());
    faults.heal();
    assert!(is_writes_disabled(log.append(&mut simple_batch(0, 1), 0)));
    assert_eq!(read_all(&log), expected);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(read_all(&log), expected);
    assert_eq!(offsets(&append_simple(&mut log, 0, 1)), vec![(2, 2)]);
}

#[test]
fn eio_on_write_puts_the_log_in_the_failed_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_faulty(dir.path(), config());
    let first = append_simple(&mut log, 0, 3);
    faults.fail_writes(Fault::Eio);
    let err = log.append(&mut simple_batch(1, 2), 0).unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "write", .. }), "{err}");
    assert!(log.failure().is_some_and(|r| r.contains("write")));
    faults.heal();
    assert!(is_writes_disabled(log.append(&mut simple_batch(1, 2), 0)));
    assert_eq!(read_all(&log), first);
    assert_eq!(log.log_end_offset(), 3);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(read_all(&log), first);
    assert_eq!(offsets(&append_simple(&mut log, 0, 2)), vec![(3, 4)]);
}

#[test]
fn enospc_on_a_write_fails_cleanly_and_the_append_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = open_faulty(dir.path(), config());
    let mut expected = append_simple(&mut log, 0, 3);
    faults.fail_writes(Fault::NoSpace);
    let mut b = simple_batch(1, 2);
    let err = log.append(&mut b, 0).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(log.failure(), None);
    assert_eq!(log.log_end_offset(), 3);
    faults.heal();
    let info = log.append(&mut b, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    expected.extend(&b);
    assert_eq!(read_all(&log), expected);
}

#[test]
fn a_full_disk_at_roll_fails_cleanly_and_appends_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 3,
        ..config()
    };
    let (mut log, faults) = open_faulty(dir.path(), cfg);
    let mut expected = Vec::new();
    for i in 0..4 {
        expected.extend(append_simple(&mut log, i, 2)); // segments 0 (3 batches) and 6
    }
    assert_eq!(base_offsets(dir.path()), vec![0, 6]);
    faults.set_disk_full(true);
    // Appends into the preallocated space still succeed on a full disk.
    expected.extend(append_simple(&mut log, 4, 2));
    expected.extend(append_simple(&mut log, 5, 2));
    assert_eq!(log.log_end_offset(), 12);
    // The next batch needs a new segment: the roll fails before changing anything.
    for _ in 0..3 {
        let mut b = simple_batch(6, 2);
        let err = log.append(&mut b, 0).unwrap_err();
        assert!(err.is_no_space(), "{err}");
        assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
        assert_eq!(log.failure(), None);
        assert_eq!(log.log_end_offset(), 12);
        assert_eq!(
            base_offsets(dir.path()),
            vec![0, 6],
            "no half-created segment"
        );
        assert!(!seg_file(dir.path(), 12, "index").exists());
        assert!(!seg_file(dir.path(), 12, "timeindex").exists());
    }
    // Reads, timestamp lookups and flushes keep working.
    assert_eq!(read_all(&log), expected);
    assert!(log.batch_with_max_timestamp().unwrap().is_some());
    log.flush().unwrap();
    assert_eq!(log.durable_offset(), 12);

    faults.set_disk_full(false);
    let next = append_simple(&mut log, 6, 2);
    assert_eq!(offsets(&next), vec![(12, 13)]);
    expected.extend(&next);
    assert_eq!(base_offsets(dir.path()), vec![0, 6, 12]);
    assert_eq!(read_all(&log), expected);
    log.close().unwrap();
    let log = PartitionLog::open_with(
        dir.path(),
        cfg,
        OpenOptions::default().with_mode(OpenMode::AfterCleanShutdown),
    )
    .unwrap();
    assert_eq!(read_all(&log), expected);
}

#[test]
fn a_full_disk_when_a_batch_outgrows_its_segment_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let small = simple_batch(0, 1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: small,
        ..config()
    };
    let (mut log, faults) = open_faulty(dir.path(), cfg);
    faults.set_disk_full(true);
    // The first batch of an empty segment is larger than the segment: it must grow.
    let mut big = simple_batch(0, 20);
    assert!(log.append(&mut big, 0).unwrap_err().is_no_space());
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.read(0, 100).unwrap().is_empty());
    faults.set_disk_full(false);
    log.append(&mut big, 0).unwrap();
    assert_eq!(read_all(&log), big);
}

#[test]
fn a_sync_point_of_a_segment_that_rolled_still_covers_its_end_offset() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 2,
        ..config()
    };
    let (mut log, faults) = open_faulty(dir.path(), cfg);
    append_simple(&mut log, 0, 1);
    let point = log.sync_point().unwrap();
    append_simple(&mut log, 0, 1);
    append_simple(&mut log, 0, 1); // rolls: segment 0 is sealed and fsynced
    assert_eq!(log.segment_count(), 2);
    // Rolling made everything below the new segment durable already.
    assert_eq!(log.durable_offset(), 2);
    let before = faults.sync_calls();
    // Synced from another thread, while the log is not borrowed.
    let handle = std::thread::spawn(move || point.sync().map(|()| point.end_offset()));
    append_simple(&mut log, 0, 1);
    let end = handle.join().unwrap().unwrap();
    assert_eq!(end, 1);
    assert_eq!(faults.sync_calls(), before + 1);
    log.mark_durable(end);
    assert_eq!(log.durable_offset(), 2, "never moves backwards");
    let point = log.sync_point().unwrap();
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    assert_eq!(log.durable_offset(), 4);
    log.mark_durable(1_000);
    assert_eq!(log.durable_offset(), 4, "capped to the log end");
}

#[test]
fn sync_points_are_cheap_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SyncPoint>();
    assert_send_sync::<FaultyFileSystem>();
}

#[test]
fn a_full_disk_at_an_allocation_chunk_boundary_fails_cleanly_and_appends_resume() {
    use super::tests::big_batch;
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 << 20,
        index_interval_bytes: 0, // an index entry per batch
        segment_index_bytes: 10 << 20,
        ..config()
    };
    assert!(!cfg.preallocate);
    let (mut log, faults) = open_faulty(dir.path(), cfg);
    // A new log allocates nothing before its first batch: the first one takes the chunks.
    let mut expected = append_simple(&mut log, 0, 1);

    // Index chunk: appends go on into the allocated chunks until the time index (5461
    // entries a chunk, one kept spare for the seal entry) needs its next chunk.
    faults.set_disk_full(true);
    let err = loop {
        let mut b = simple_batch(log.log_end_offset(), 1);
        match log.append(&mut b, 0) {
            Ok(_) => expected.extend(b),
            Err(e) => break e,
        }
    };
    assert!(err.is_no_space(), "{err}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(log.log_end_offset(), 5460);
    assert_eq!(log.failure(), None);
    assert!(read_all(&log) == expected);
    assert!(log.batch_with_max_timestamp().unwrap().is_some());
    faults.set_disk_full(false);
    let next = append_simple(&mut log, 5460, 1);
    assert_eq!(offsets(&next), vec![(5460, 5460)]);
    expected.extend(next);

    // `.log` chunk: 1 MiB batches fill the allocated chunks (1 MiB first, then growing); the
    // batch crossing into unallocated space fails before anything is written, however often
    // it is retried.
    faults.set_disk_full(true);
    let mut big = loop {
        let mut b = big_batch(log.log_end_offset(), 1 << 20);
        match log.append(&mut b, 0) {
            Ok(_) => expected.extend(b),
            Err(e) => {
                assert!(e.is_no_space(), "{e}");
                break b;
            }
        }
    };
    let end = log.log_end_offset();
    let size = expected.len() as u64;
    // The first chunk is 1 MiB: the index part above wrote less than that, so the first big
    // batch already crosses it.
    assert!(
        size <= crate::segment::LOG_FIRST_CHUNK
            && size + big.len() as u64 > crate::segment::LOG_FIRST_CHUNK,
        "{size}"
    );
    for _ in 0..3 {
        assert!(log.append(&mut big, 0).unwrap_err().is_no_space());
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.failure(), None);
    }
    assert!(read_all(&log) == expected);
    log.flush().unwrap();
    assert_eq!(log.durable_offset(), end);

    faults.heal();
    let info = log.append(&mut big, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (end, end));
    expected.extend(&big);
    let next = append_simple(&mut log, 7, 2);
    assert_eq!(offsets(&next), vec![(end + 1, end + 2)]);
    expected.extend(next);
    assert!(read_all(&log) == expected);
    log.close().unwrap();
    let log = PartitionLog::open_with(
        dir.path(),
        cfg,
        OpenOptions::default().with_mode(OpenMode::AfterCleanShutdown),
    )
    .unwrap();
    assert!(read_all(&log) == expected);
    assert_eq!(log.log_end_offset(), end + 3);
}
