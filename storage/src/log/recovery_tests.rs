//! Opening: the checkpoint file, the open modes, the recovery report, and the log start
//! offset across reopens.

use std::{fs as stdfs, io::Write, sync::Arc};

use brook_protocol::batch::{testing::simple_batch, Batches};

use super::tests::{
    append_simple, assert_same_files, base_offsets, config, offsets, random_batch, read_all,
    seg_file, snapshot, Rng,
};
use super::*;
use crate::{
    checkpoint::{Checkpoint, CHECKPOINT_FILE},
    config::OpenMode,
    fs::OsFileSystem,
    recovery::CheckpointStatus,
};

fn open_mode(dir: &Path, cfg: LogConfig, mode: OpenMode) -> PartitionLog {
    PartitionLog::open_with(dir, cfg, OpenOptions::default().with_mode(mode)).unwrap()
}

fn write_checkpoint_file(dir: &Path, log_start_offset: i64, recovery_point: i64) {
    let fs: SharedFs = Arc::new(OsFileSystem);
    checkpoint::write(
        &fs,
        dir,
        &Checkpoint {
            log_start_offset,
            recovery_point,
        },
    )
    .unwrap();
}

fn read_checkpoint_file(dir: &Path) -> Checkpoint {
    Checkpoint::decode(&stdfs::read(dir.join(CHECKPOINT_FILE)).unwrap()).unwrap()
}

/// A log of 3-batch segments (2 records per batch): segments 0, 6, 12, 18.
fn four_segments(dir: &Path) -> (LogConfig, Vec<Vec<u8>>) {
    let size = simple_batch(0, 2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir, cfg).unwrap();
    let batches = (0..12).map(|i| append_simple(&mut log, i, 2)).collect();
    log.close().unwrap();
    assert_eq!(base_offsets(dir), vec![0, 6, 12, 18]);
    (cfg, batches)
}

#[test]
fn the_checkpoint_is_written_on_close_and_when_asked_and_read_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    // A new, empty log needs no checkpoint (a missing one means log start 0, nothing to
    // recover), so it writes none: an idle partition costs no disk.
    assert_eq!(log.recovery_report().checkpoint, CheckpointStatus::Missing);
    log.write_checkpoint().unwrap();
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
    for i in 0..5 {
        append_simple(&mut log, i, 2);
    }
    log.write_checkpoint().unwrap();
    assert_eq!(
        read_checkpoint_file(dir.path()).recovery_point,
        0,
        "nothing durable yet"
    );
    let point = log.sync_point().unwrap();
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    log.write_checkpoint().unwrap();
    assert_eq!(read_checkpoint_file(dir.path()).recovery_point, 10);
    append_simple(&mut log, 9, 2);
    log.close().unwrap();
    assert_eq!(
        read_checkpoint_file(dir.path()),
        Checkpoint {
            log_start_offset: 0,
            recovery_point: 12
        }
    );
    assert!(!dir.path().join("checkpoint.tmp").exists());
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    let report = log.recovery_report();
    assert_eq!(report.checkpoint, CheckpointStatus::Found);
    assert_eq!(report.verified_from, Some(12));
    assert_eq!(log.durable_offset(), 12);
}

#[test]
fn a_missing_or_corrupt_checkpoint_means_a_full_scan_from_the_first_segment() {
    type DamageFn = fn(&Path);
    let damages: [(&str, CheckpointStatus, DamageFn); 5] = [
        ("deleted", CheckpointStatus::Missing, |p| {
            stdfs::remove_file(p).unwrap()
        }),
        ("emptied", CheckpointStatus::Corrupt, |p| {
            stdfs::write(p, b"").unwrap()
        }),
        ("truncated", CheckpointStatus::Corrupt, |p| {
            let c = stdfs::read(p).unwrap();
            stdfs::write(p, &c[..20]).unwrap();
        }),
        ("bit flip", CheckpointStatus::Corrupt, |p| {
            let mut c = stdfs::read(p).unwrap();
            c[12] ^= 4;
            stdfs::write(p, c).unwrap();
        }),
        ("garbage appended", CheckpointStatus::Corrupt, |p| {
            let mut f = stdfs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"xyz").unwrap();
        }),
    ];
    for (what, status, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, batches) = four_segments(dir.path());
        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!(log.delete_records_before(9).unwrap(), 9);
        assert_eq!(base_offsets(dir.path()), vec![6, 12, 18]);
        log.close().unwrap();
        damage(&dir.path().join(CHECKPOINT_FILE));

        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        let report = log.recovery_report().clone();
        assert_eq!(report.checkpoint, status, "{what}");
        assert_eq!(report.verified_from, Some(0), "{what}");
        assert_eq!(report.segments_scanned, 3, "{what}");
        assert_eq!(
            log.log_start_offset(),
            6,
            "{what}: back to the first segment"
        );
        assert_eq!(read_all(&log), batches[3..].concat(), "{what}");
        drop(log);
        if status == CheckpointStatus::Missing {
            // A missing one waits for the next checkpoint (periodic or at close): reopening
            // thousands of partitions after a crash does not create a file for each.
            assert!(!dir.path().join(CHECKPOINT_FILE).exists(), "{what}");
            continue;
        }
        // A corrupt one was replaced at once, so the next open finds a valid one.
        assert_eq!(
            read_checkpoint_file(dir.path()),
            Checkpoint {
                log_start_offset: 6,
                recovery_point: 24
            },
            "{what}"
        );
    }
}

#[test]
fn a_bit_flip_in_a_sealed_segment_is_found_when_recovering_from_an_early_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, batches) = four_segments(dir.path());
    let size = batches[0].len();
    // Flip a bit inside the second batch of segment 6 (offsets 8..=9), in its records.
    let path = seg_file(dir.path(), 6, "log");
    let mut c = stdfs::read(&path).unwrap();
    c[size + 80] ^= 1;
    stdfs::write(&path, c).unwrap();

    // The checkpoint written by close says everything up to 24 was durable: only the last
    // segment is scanned, the sealed one passes the cheap checks.
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.recovery_report().verified_from, Some(24));
    assert_eq!(log.log_end_offset(), 24);
    drop(log);

    // From an early recovery point, the damage is found: truncation there, later segments
    // deleted, offsets continue from the valid prefix.
    write_checkpoint_file(dir.path(), 0, 3);
    let mut log = open_mode(dir.path(), cfg, OpenMode::Recover);
    let report = log.recovery_report().clone();
    assert_eq!(report.verified_from, Some(3));
    assert_eq!(report.corrupt_segments, 1);
    assert_eq!(report.segments_deleted, 2);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(base_offsets(dir.path()), vec![0, 6]);
    assert_eq!(read_all(&log), batches[..4].concat());
    let next = append_simple(&mut log, 0, 1);
    assert_eq!(offsets(&next), vec![(8, 8)]);
}

/// Appends the same random batches to two logs, one closed and reopened after clean
/// shutdown at `split`, the other not: the files must end up identical, so the append state
/// reconstructed by the cheap checks (index planner, time maximum, roll clock) is exact.
#[test]
fn after_a_clean_shutdown_only_cheap_checks_run_and_appends_continue_identically() {
    for seed in 1..=6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let cfg = LogConfig {
            segment_bytes: 1500 + rng.below(2000),
            segment_ms: 1 << 40,
            index_interval_bytes: rng.below(400) as u32,
            segment_index_bytes: 48 + rng.below(100) as u32,
            preallocate: seed % 2 == 1,
            // Releasing cached pages never changes what reads return.
            cache_window_bytes: (seed % 3 != 0).then(|| rng.below(8000)),
        };
        let batches: Vec<Vec<u8>> = (0..60).map(|_| random_batch(&mut rng)).collect();
        let split = rng.below(60) as usize;
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut la = PartitionLog::open(a.path(), cfg).unwrap();
        let mut lb = PartitionLog::open(b.path(), cfg).unwrap();
        for (i, batch) in batches.iter().enumerate() {
            if i == split {
                la.close().unwrap();
                la = open_mode(a.path(), cfg, OpenMode::AfterCleanShutdown);
                let report = la.recovery_report();
                assert_eq!(report.segments_scanned, 0, "seed {seed}");
                assert_eq!(report.bytes_scanned, 0, "seed {seed}");
                assert_eq!(report.verified_from, None);
            }
            la.append(&mut batch.clone(), 0).unwrap();
            lb.append(&mut batch.clone(), 0).unwrap();
        }
        assert_eq!(read_all(&la), read_all(&lb), "seed {seed}");
        assert_eq!(
            la.batch_with_max_timestamp().unwrap(),
            lb.batch_with_max_timestamp().unwrap()
        );
        la.close().unwrap();
        lb.close().unwrap();
        assert_same_files(
            &snapshot(a.path()),
            &snapshot(b.path()),
            &format!("seed {seed} split {split}"),
        );
    }
}

#[test]
fn after_a_clean_shutdown_the_roll_clock_continues_from_the_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let mut b = simple_batch(5_000, 1);
    log.append(&mut b, 5_000).unwrap();
    log.close().unwrap();
    let mut log = open_mode(dir.path(), cfg, OpenMode::AfterCleanShutdown);
    let mut b = simple_batch(5_900, 1);
    log.append(&mut b, 5_900).unwrap();
    assert_eq!(log.segment_count(), 1);
    let mut b = simple_batch(6_001, 1);
    log.append(&mut b, 6_001).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn after_a_clean_shutdown_damage_is_still_found_and_repaired() {
    // Garbage after the last batch, an untrimmed log from a crash (the broker's marker
    // lied), a missing index: each fails the cheap checks and gets a full scan.
    for case in ["garbage", "crash", "missing index"] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, batches) = four_segments(dir.path());
        let mut expected = batches.concat();
        match case {
            "garbage" => {
                let mut f = stdfs::OpenOptions::new()
                    .append(true)
                    .open(seg_file(dir.path(), 18, "log"))
                    .unwrap();
                f.write_all(&[0x5a; 100]).unwrap();
            }
            "crash" => {
                let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
                expected.extend(append_simple(&mut log, 0, 2)); // rolls to segment 24
                log.flush().unwrap();
                drop(log);
            }
            _ => stdfs::remove_file(seg_file(dir.path(), 18, "index")).unwrap(),
        }
        let mut log = open_mode(dir.path(), cfg, OpenMode::AfterCleanShutdown);
        assert_eq!(log.recovery_report().segments_scanned, 1, "{case}");
        assert_eq!(read_all(&log), expected, "{case}");
        let end = log.log_end_offset();
        let next = append_simple(&mut log, 0, 1);
        assert_eq!(offsets(&next), vec![(end, end)], "{case}");
        log.close().unwrap();
        let log = open_mode(dir.path(), cfg, OpenMode::AfterCleanShutdown);
        assert_eq!(
            log.recovery_report().segments_scanned,
            0,
            "{case}: repaired for good"
        );
    }
}

#[test]
fn the_recovery_report_tells_zero_fill_from_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..5).map(|i| append_simple(&mut log, i, 3)).collect();
    let valid: usize = batches.iter().map(Vec::len).sum();
    log.flush().unwrap();
    drop(log); // crash: the preallocated tail stays
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    let r = log.recovery_report().clone();
    assert_eq!(r.mode, OpenMode::Recover);
    assert_eq!(r.segments, 1);
    assert_eq!(r.segments_scanned, 1);
    assert_eq!(r.bytes_scanned, valid as u64);
    // The zeros after the last batch (the allocated, never written rest) are kept as the
    // active segment's free space, not cut and re-extended.
    assert_eq!(r.bytes_truncated, 0);
    assert_eq!(r.corrupt_segments, 0);
    log.close().unwrap();
    // A torn batch after the last one.
    let path = seg_file(dir.path(), 0, "log");
    let mut f = stdfs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut torn = simple_batch(9, 3);
    brook_protocol::batch::set_base_offset(&mut torn, 15);
    f.write_all(&torn[..torn.len() - 7]).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    let r = log.recovery_report();
    assert_eq!(r.corrupt_segments, 1);
    assert_eq!(r.bytes_truncated, torn.len() as u64 - 7);
    assert_eq!(read_all(&log), batches.concat());
}

#[test]
fn the_log_start_offset_survives_reopening_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, batches) = four_segments(dir.path());
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.delete_records_before(13).unwrap(), 13);
    drop(log); // crash right after: the checkpoint already holds it
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), 13);
    assert_eq!(base_offsets(dir.path()), vec![12, 18]);
    // Offset 13 lies inside the batch 12..=13, which is returned whole.
    assert_eq!(concat_read(&log, 13), batches[6]);
    assert!(matches!(
        log.read(12, 100),
        Err(StorageError::OffsetOutOfRange {
            requested: 12,
            start: 13,
            end: 24
        })
    ));
    log.close().unwrap();
    let log = open_mode(dir.path(), cfg, OpenMode::AfterCleanShutdown);
    assert_eq!(log.log_start_offset(), 13);
    log.close().unwrap();
    let log =
        PartitionLog::open_with_policy(dir.path(), cfg, RecoveryPolicy::FromOffset(0)).unwrap();
    assert_eq!(log.log_start_offset(), 13);
}

fn concat_read(log: &PartitionLog, offset: i64) -> Vec<u8> {
    log.read(offset, 1)
        .unwrap()
        .iter()
        .flat_map(|b| b.to_vec())
        .collect()
}

#[test]
fn the_log_restarts_empty_at_its_start_offset_when_recovery_cuts_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    for i in 0..6 {
        append_simple(&mut log, i, 2);
    }
    // Everything is deleted logically, but the data itself was never synced.
    assert_eq!(log.delete_records_before(12).unwrap(), 12);
    drop(log);
    // The crash loses the unsynced tail.
    let path = seg_file(dir.path(), 0, "log");
    stdfs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery_report().segments_deleted, 1);
    assert_eq!(base_offsets(dir.path()), vec![12]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 12));
    assert!(log.read(12, 100).unwrap().is_empty());
    let next = append_simple(&mut log, 0, 1);
    assert_eq!(offsets(&next), vec![(12, 12)]);
    assert_eq!(Batches::new(&read_all(&log)).count(), 1);
}
