//! Opening: the checkpoint file, the open modes, the recovery report, and the log start
//! offset across reopens.

use std::{fs as stdfs, io::Write, os::unix::fs::FileExt, sync::Arc};

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
            prefix: None,
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
    let written = read_checkpoint_file(dir.path());
    assert_eq!((written.log_start_offset, written.recovery_point), (0, 12));
    let prefix = written.prefix.expect("the whole active segment is durable");
    assert_eq!((prefix.segment_base, prefix.next_offset), (0, 12));
    let size = stdfs::metadata(seg_file(dir.path(), 0, "log"))
        .unwrap()
        .len();
    assert_eq!(prefix.position, size);
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
                recovery_point: 24,
                prefix: None,
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
            key_index: None,
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

/// Syncs everything appended so far, records it as durable and writes the checkpoint, as
/// the broker's flush and checkpoint ticks do.
fn flush_and_checkpoint(log: &mut PartitionLog) {
    let point = log.sync_point().unwrap();
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    log.write_checkpoint().unwrap();
}

#[test]
fn after_a_crash_only_the_bytes_after_the_durable_prefix_are_read() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cfg = LogConfig {
            segment_bytes: 3000 + rng.below(3000),
            segment_ms: 1 << 40,
            index_interval_bytes: rng.below(400) as u32,
            segment_index_bytes: 96 + rng.below(200) as u32,
            preallocate: seed % 2 == 1,
            cache_window_bytes: None,
            key_index: None,
        };
        let batches: Vec<Vec<u8>> = (0..60).map(|_| random_batch(&mut rng)).collect();
        // Batches before `durable_at` are durable when the checkpoint is written after
        // `checkpoint_at`; those from `checkpoint_at` on were appended after it (a crash
        // keeps them, as a killed process's writes stay in the page cache).
        let checkpoint_at = 1 + rng.below(59) as usize;
        let durable_at = 1 + rng.below(checkpoint_at as u64) as usize;
        let crash_at = checkpoint_at + rng.below((60 - checkpoint_at) as u64 / 2 + 1) as usize;
        let what = format!(
            "seed {seed}: durable {durable_at} checkpoint {checkpoint_at} crash {crash_at}"
        );
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut la = PartitionLog::open(a.path(), cfg).unwrap();
        let mut lb = PartitionLog::open(b.path(), cfg).unwrap();
        let mut point = None;
        for (i, batch) in batches.iter().enumerate() {
            if i == durable_at {
                point = Some(la.sync_point().unwrap());
            }
            if i == checkpoint_at {
                let point = point.take().unwrap();
                point.sync().unwrap();
                la.mark_durable(point.end_offset());
                la.write_checkpoint().unwrap();
            }
            if i == crash_at {
                let written = read_checkpoint_file(a.path()).prefix;
                let last_base = *base_offsets(a.path()).last().unwrap();
                let unflushed: u64 = batches[checkpoint_at..crash_at]
                    .iter()
                    .map(|b| b.len() as u64)
                    .sum();
                drop(la);
                la = PartitionLog::open(a.path(), cfg).unwrap();
                let r = la.recovery_report().clone();
                assert_eq!((r.corrupt_segments, r.bytes_truncated), (0, 0), "{what}");
                match written.filter(|p| p.segment_base == last_base) {
                    Some(p) => {
                        let used = la.active.size();
                        assert_eq!(r.bytes_scanned, used - p.position, "{what}");
                        assert_eq!(r.segments_scanned, usize::from(used > p.position), "{what}");
                        assert!(
                            r.bytes_scanned <= unflushed.max(used - p.position),
                            "{what}"
                        );
                    }
                    // The segment rolled since: the segments from the recovery point on
                    // are read whole.
                    None => assert!(r.segments_scanned >= 1, "{what}"),
                }
                assert!(read_all(&la) == read_all(&lb), "{what}: data differs");
            }
            la.append(&mut batch.clone(), 0).unwrap();
            lb.append(&mut batch.clone(), 0).unwrap();
        }
        // The recovered log continued exactly as one that never crashed.
        assert!(read_all(&la) == read_all(&lb), "{what}: data differs");
        for t in [-1, 0, 500, 10_000, i64::MAX] {
            assert_eq!(
                la.batch_for_timestamp(t).unwrap(),
                lb.batch_for_timestamp(t).unwrap(),
                "{what}: timestamp {t}"
            );
        }
        la.close().unwrap();
        lb.close().unwrap();
        let (mut fa, mut fb) = (snapshot(a.path()), snapshot(b.path()));
        fa.remove(CHECKPOINT_FILE);
        fb.remove(CHECKPOINT_FILE);
        assert_same_files(&fa, &fb, &what);
    }
}

#[test]
fn after_a_crash_a_fully_flushed_log_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..40).map(|i| append_simple(&mut log, i, 3)).collect();
    flush_and_checkpoint(&mut log);
    drop(log); // crash
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let r = log.recovery_report();
    assert_eq!(r.mode, OpenMode::Recover);
    assert_eq!(
        (r.segments_scanned, r.bytes_scanned, r.bytes_truncated),
        (0, 0, 0)
    );
    assert_eq!(read_all(&log), batches.concat());
    assert!(
        log.active.offset_index().len() > 3,
        "several index entries were trusted"
    );
    let more = append_simple(&mut log, 99, 2);
    assert_eq!(concat_read(&log, 120), more);
}

#[test]
fn a_durable_prefix_that_does_not_match_the_files_means_a_full_scan() {
    type DamageFn = fn(&Path) -> usize;
    // Each damage, and how many of the 20 batches the full scan keeps.
    let damages: [(&str, DamageFn); 4] = [
        ("offset index emptied", |dir| {
            stdfs::File::create(seg_file(dir, 0, "index")).unwrap();
            20
        }),
        ("time index out of order", |dir| {
            let f = stdfs::OpenOptions::new()
                .write(true)
                .open(seg_file(dir, 0, "timeindex"))
                .unwrap();
            f.write_all_at(&[0xff; 12], 12).unwrap();
            20
        }),
        ("log shorter than the prefix", |dir| {
            let one = simple_batch(0, 3).len() as u64;
            let f = stdfs::OpenOptions::new()
                .write(true)
                .open(seg_file(dir, 0, "log"))
                .unwrap();
            f.set_len(one * 15 + 5).unwrap();
            15
        }),
        // The cheap checks parse the batches from the last offset entry on (not their CRCs,
        // as after a clean shutdown: the prefix was synced, so a crash cannot tear it).
        ("last batch of the prefix with a wrong length", |dir| {
            let one = simple_batch(0, 3).len() as u64;
            let f = stdfs::OpenOptions::new()
                .write(true)
                .open(seg_file(dir, 0, "log"))
                .unwrap();
            f.write_all_at(&[0x7f, 0xff, 0xff, 0xff], one * 19 + 8)
                .unwrap();
            19
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        let batches: Vec<Vec<u8>> = (0..20).map(|i| append_simple(&mut log, i, 3)).collect();
        flush_and_checkpoint(&mut log);
        drop(log); // crash
        let kept = damage(dir.path());
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        let r = log.recovery_report().clone();
        assert_eq!(r.segments_scanned, 1, "{what}");
        assert!(r.bytes_scanned > 0, "{what}");
        assert_eq!(read_all(&log), batches[..kept].concat(), "{what}");
        // The rebuilt (not yet synced) index entries are named again, so synced again, by
        // the next checkpoint; the crash after it reads nothing.
        flush_and_checkpoint(&mut log);
        drop(log);
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        let r = log.recovery_report();
        assert_eq!((r.segments_scanned, r.bytes_scanned), (0, 0), "{what}");
        assert_eq!(read_all(&log), batches[..kept].concat(), "{what}");
    }
}

#[test]
fn the_durable_prefix_and_its_index_entries_survive_a_power_cut() {
    let root = tempfile::tempdir().unwrap();
    let model = Arc::new(crate::testing::PowerLossFileSystem::new(root.path()).unwrap());
    let dir = root.path().join("p");
    let options = OpenOptions::default().with_fs(model.clone());
    let mut log = PartitionLog::open_with(&dir, config(), options).unwrap();
    let batches: Vec<Vec<u8>> = (0..40).map(|i| append_simple(&mut log, i, 3)).collect();
    flush_and_checkpoint(&mut log);
    for i in 40..45 {
        append_simple(&mut log, i, 3); // not synced: lost at the cut
    }
    model.cut();
    drop(log);
    model.restore().unwrap();
    let log = PartitionLog::open(&dir, config()).unwrap();
    let r = log.recovery_report();
    // Had the checkpoint named index entries that were not synced, they would be gone and
    // the segment read whole.
    assert_eq!(
        (r.segments_scanned, r.bytes_scanned, r.corrupt_segments),
        (0, 0, 0)
    );
    assert_eq!(read_all(&log), batches.concat());
}

#[test]
fn a_staged_checkpoint_takes_effect_when_committed_after_a_file_system_sync() {
    let root = tempfile::tempdir().unwrap();
    let model = Arc::new(crate::testing::PowerLossFileSystem::new(root.path()).unwrap());
    let dirs = [root.path().join("a"), root.path().join("b")];
    let mut logs: Vec<PartitionLog> = dirs
        .iter()
        .map(|d| {
            PartitionLog::open_with(d, config(), OpenOptions::default().with_fs(model.clone()))
                .unwrap()
        })
        .collect();
    let mut batches = Vec::new();
    for log in &mut logs {
        batches.push(
            (0..30)
                .map(|i| append_simple(log, i, 3))
                .collect::<Vec<_>>(),
        );
        let point = log.sync_point().unwrap();
        point.sync().unwrap();
        log.mark_durable(point.end_offset());
    }
    let staged: Vec<StagedCheckpoint> = logs
        .iter_mut()
        .map(|log| {
            log.stage_checkpoint()
                .unwrap()
                .expect("a new checkpoint is due")
        })
        .collect();
    assert!(
        !dirs[0].join(CHECKPOINT_FILE).exists(),
        "nothing replaced before the commit"
    );
    let fs: SharedFs = model.clone();
    let root_dir = fs.open_dir(root.path()).unwrap();
    fs.sync_fs(&root_dir).unwrap();
    for (log, staged) in logs.iter_mut().zip(staged) {
        log.commit_checkpoint(staged).unwrap();
    }
    fs.sync_fs(&root_dir).unwrap();
    // Committed: nothing more is due, and a direct write finds nothing to do either.
    assert!(logs[0].stage_checkpoint().unwrap().is_none());
    model.cut();
    drop(logs);
    model.restore().unwrap();
    for (dir, batches) in dirs.iter().zip(&batches) {
        let log = PartitionLog::open(dir, config()).unwrap();
        let r = log.recovery_report();
        // One syncfs made the checkpoint and the index entries it names durable.
        assert_eq!(r.checkpoint, CheckpointStatus::Found);
        assert_eq!((r.segments_scanned, r.bytes_scanned), (0, 0));
        assert_eq!(read_all(&log), batches.concat());
    }
}

#[test]
fn a_direct_checkpoint_write_supersedes_a_staged_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    for i in 0..10 {
        append_simple(&mut log, i, 2);
    }
    flush_and_checkpoint(&mut log);
    append_simple(&mut log, 10, 2);
    let point = log.sync_point().unwrap();
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    let staged = log.stage_checkpoint().unwrap().unwrap();
    // DeleteRecords writes its checkpoint at once, taking the staged file.
    assert_eq!(log.delete_records_before(4).unwrap(), 4);
    log.commit_checkpoint(staged).unwrap();
    let on_disk = read_checkpoint_file(dir.path());
    assert_eq!((on_disk.log_start_offset, on_disk.recovery_point), (4, 22));
    assert!(log.stage_checkpoint().unwrap().is_none());
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
