//! Behaviour tests of [`PartitionLog`]: appends, rolls, reads, timestamp lookups, recovery.

use std::{
    collections::BTreeMap,
    fs::{self as stdfs, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::Path,
};

use brook_protocol::batch::{
    testing::{build_batch, simple_batch, TestRecord},
    BatchView, Batches,
};

use super::*;
use crate::error::Corruption;

pub(super) const SEGMENT_MS: i64 = 1 << 40;

pub(super) fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_ms: SEGMENT_MS,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        preallocate: false,
        cache_window_bytes: None,
        key_index: None,
    }
}

/// Appends one `simple_batch(ts, n)`; returns the stored (patched) bytes.
pub(super) fn append_simple(log: &mut PartitionLog, ts: i64, n: usize) -> Vec<u8> {
    let mut b = simple_batch(ts, n);
    log.append(&mut b, 0).unwrap();
    b
}

pub(super) fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// (base offset, last offset) of every batch in `buf`.
pub(super) fn offsets(buf: &[u8]) -> Vec<(i64, i64)> {
    Batches::new(buf)
        .map(|b| (b.base_offset(), b.last_offset()))
        .collect()
}

pub(super) fn read_all(log: &PartitionLog) -> Vec<u8> {
    concat(&log.read(log.log_start_offset(), usize::MAX).unwrap())
}

/// All files in `dir` with their contents.
pub(super) fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    stdfs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                stdfs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Compares two snapshots, naming the first differing file (not dumping bytes).
pub(super) fn assert_same_files(
    a: &BTreeMap<String, Vec<u8>>,
    b: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, contents) in a {
        assert!(&b[name] == contents, "{what}: {name} differs");
    }
}

pub(super) fn seg_file(dir: &Path, base: i64, ext: &str) -> std::path::PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

pub(super) fn base_offsets(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = stdfs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").and_then(|d| d.parse().ok())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_log_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<StorageError>();
}

#[test]
fn empty_directory_gives_an_empty_log_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p-0");
    let log = PartitionLog::open(&path, config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.read(0, 100).unwrap().is_empty());
    assert!(matches!(
        log.read(1, 100),
        Err(StorageError::OffsetOutOfRange {
            requested: 1,
            start: 0,
            end: 0
        })
    ));
    assert_eq!(log.batch_for_timestamp(0).unwrap(), None);
    assert_eq!(log.batch_with_max_timestamp().unwrap(), None);
    assert!(seg_file(&path, 0, "log").exists());
    log.close().unwrap();
    let log = PartitionLog::open(&path, config()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn append_assigns_offsets_to_every_batch_and_patches_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let first = append_simple(&mut log, 10, 3);
    let mut buf = simple_batch(20, 2);
    buf.extend(simple_batch(30, 4));
    let info = log.append(&mut buf, 0).unwrap();
    assert_eq!(
        info,
        AppendInfo {
            base_offset: 3,
            last_offset: 8
        }
    );
    assert_eq!(offsets(&buf), vec![(3, 4), (5, 8)]);
    for b in Batches::new(&buf) {
        b.verify_crc().unwrap();
    }
    assert_eq!(log.log_end_offset(), 9);
    let mut expected = first;
    expected.extend(&buf);
    assert_eq!(read_all(&log), expected);
}

#[test]
fn malformed_or_empty_appends_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(matches!(
        log.append(&mut [], 0),
        Err(StorageError::EmptyAppend)
    ));
    let mut buf = simple_batch(1, 2);
    buf.extend_from_slice(&simple_batch(2, 2)[..30]);
    let before = buf.clone();
    assert!(matches!(
        log.append(&mut buf, 0),
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(buf, before, "nothing patched");
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(
        append_simple(&mut log, 1, 1).len(),
        simple_batch(1, 1).len()
    );
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn read_from_an_offset_inside_a_batch_returns_that_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..20).map(|i| append_simple(&mut log, i, 5)).collect();
    for offset in 0..100 {
        let got = concat(&log.read(offset, 1).unwrap());
        assert_eq!(got, batches[(offset / 5) as usize], "offset {offset}");
    }
}

#[test]
fn read_returns_an_oversized_first_batch_whole_kip_74() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let big = append_simple(&mut log, 0, 50);
    append_simple(&mut log, 0, 1);
    for max_bytes in [0, 1, big.len() - 1, big.len()] {
        let got = log.read(0, max_bytes).unwrap();
        assert_eq!(concat(&got), big, "max_bytes {max_bytes}");
    }
}

#[test]
fn read_stops_before_max_bytes_would_be_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let batches: Vec<Vec<u8>> = (0..10).map(|i| append_simple(&mut log, i, 2)).collect();
    let size = batches[0].len();
    assert!(batches.iter().all(|b| b.len() == size));
    let batches_for = |max| offsets(&concat(&log.read(4, max).unwrap())).len();
    assert_eq!(batches_for(size * 3), 3);
    assert_eq!(batches_for(size * 3 + size / 2), 3);
    assert_eq!(batches_for(size * 3 - 1), 2);
    assert_eq!(batches_for(usize::MAX), 8);
    let got = concat(&log.read(4, size * 2).unwrap());
    assert_eq!(got, [batches[2].clone(), batches[3].clone()].concat());
}

#[test]
fn read_crosses_segments_with_one_slice_per_segment() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 3).len() as u64;
    let cfg = LogConfig {
        segment_bytes: size * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let batches: Vec<Vec<u8>> = (0..8).map(|i| append_simple(&mut log, i, 3)).collect();
    assert_eq!(log.segment_count(), 3);
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(concat(&all), batches.concat());
    // From offset 7 (third batch), four batches: crosses from segment 0 into segment 1.
    let part = log.read(7, size as usize * 4).unwrap();
    assert_eq!(part.len(), 2);
    assert_eq!(concat(&part), batches[2..6].concat());
    let part = log.read(7, size as usize * 5).unwrap();
    assert_eq!(part.len(), 3);
    assert_eq!(concat(&part), batches[2..7].concat());
    // Reads starting exactly at a segment base.
    assert_eq!(concat(&log.read(9, 1).unwrap()), batches[3]);
}

#[test]
fn read_at_log_end_is_empty_and_outside_the_log_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    append_simple(&mut log, 0, 4);
    assert!(log.read(4, 1000).unwrap().is_empty());
    for requested in [-1, 5, i64::MAX] {
        match log.read(requested, 1000) {
            Err(StorageError::OffsetOutOfRange {
                requested: r,
                start: 0,
                end: 4,
            }) => assert_eq!(r, requested),
            other => panic!("{requested}: {other:?}"),
        }
    }
}

#[test]
fn reads_are_zero_copy_slices_of_the_segment_map() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    append_simple(&mut log, 0, 4);
    append_simple(&mut log, 0, 4);
    let a = log.read(0, 1).unwrap();
    let b = log.read(0, usize::MAX).unwrap();
    assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "same mapped memory");
    // Slices outlive later appends, rolls and even deletion of the log.
    append_simple(&mut log, 0, 4);
    log.roll(0).unwrap();
    let before = a[0].to_vec();
    log.delete().unwrap();
    assert_eq!(a[0].to_vec(), before);
}

#[test]
fn segment_rolls_when_full_and_an_oversized_batch_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let small = simple_batch(0, 1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: small * 2,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    append_simple(&mut log, 0, 1); // segment 0: offsets 0, 1
    append_simple(&mut log, 0, 1);
    let big = append_simple(&mut log, 0, 20); // segment 2: offsets 2..=21 alone
    append_simple(&mut log, 0, 1); // segment 22
    assert_eq!(log.segment_count(), 3);
    assert_eq!(base_offsets(dir.path()), vec![0, 2, 22]);
    assert_eq!(concat(&log.read(2, 1).unwrap()), big);
    log.close().unwrap();
    let len = |base| {
        stdfs::metadata(seg_file(dir.path(), base, "log"))
            .unwrap()
            .len()
    };
    assert_eq!(len(0), small * 2);
    assert_eq!(len(2), big.len() as u64);
    assert_eq!(len(22), small);
    // A big batch as the very first append of an empty log.
    let dir2 = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir2.path(), cfg).unwrap();
    let big = append_simple(&mut log, 0, 20);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(read_all(&log), big);
}

#[test]
fn segment_rolls_after_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let append_at = |log: &mut PartitionLog, now: i64| {
        let mut b = simple_batch(now, 1);
        log.append(&mut b, now).unwrap();
    };
    append_at(&mut log, 5_000);
    append_at(&mut log, 5_500);
    append_at(&mut log, 6_000); // exactly segment_ms later: not yet
    assert_eq!(log.segment_count(), 1);
    append_at(&mut log, 6_001);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(base_offsets(dir.path()), vec![0, 3]);
    // The new segment's clock starts at its first batch.
    append_at(&mut log, 7_001);
    assert_eq!(log.segment_count(), 2);
    append_at(&mut log, 7_002);
    assert_eq!(log.segment_count(), 3);
    // An explicit roll; a roll of an empty active segment does nothing.
    log.roll(7_003).unwrap();
    log.roll(7_003).unwrap();
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn segment_rolls_when_an_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 3 offset entries and 2 time entries; an entry for every batch.
    let cfg = LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    // Equal timestamps: the time index holds one entry, the offset index fills first.
    for _ in 0..7 {
        append_simple(&mut log, 100, 1);
    }
    assert_eq!(base_offsets(dir.path()), vec![0, 3, 6]);
    // Increasing timestamps: the time index fills after two batches.
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for ts in 0..5 {
        append_simple(&mut log, ts * 10, 1);
    }
    assert_eq!(base_offsets(dir.path()), vec![0, 2, 4]);
    // Sealed index files hold exactly their entries (plus no seal entry: max recorded).
    assert_eq!(
        stdfs::metadata(seg_file(dir.path(), 0, "index"))
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        stdfs::metadata(seg_file(dir.path(), 0, "timeindex"))
            .unwrap()
            .len(),
        24
    );
}

#[test]
fn clean_close_and_reopen_keep_everything_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 100,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let mut expected = Vec::new();
    for i in 0..40 {
        expected.extend(append_simple(
            &mut log,
            1000 + (i * 37) % 500,
            1 + i as usize % 4,
        ));
    }
    let end = log.log_end_offset();
    let segments = log.segment_count();
    let max = log.batch_with_max_timestamp().unwrap();
    let at_1200 = log.batch_for_timestamp(1200).unwrap();
    assert_eq!(read_all(&log), expected);
    log.close().unwrap();
    let files = snapshot(dir.path());
    // Every file is trimmed: logs hold only batches, indexes only entries.
    let total_log: usize = files
        .iter()
        .filter(|(n, _)| n.ends_with(".log"))
        .map(|(_, c)| c.len())
        .sum();
    assert_eq!(total_log, expected.len());

    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.batch_with_max_timestamp().unwrap(), max);
    assert_eq!(log.batch_for_timestamp(1200).unwrap(), at_1200);
    for offset in 0..end {
        let got = concat(&log.read(offset, 1).unwrap());
        let (base, last) = offsets(&got)[0];
        assert!(base <= offset && offset <= last);
    }
    log.close().unwrap();
    assert_same_files(&snapshot(dir.path()), &files, "reopen + close");

    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let next = append_simple(&mut log, 5, 2);
    assert_eq!(offsets(&next), vec![(end, end + 1)]);
}

#[test]
fn data_survives_a_crash_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 3000,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let mut expected = Vec::new();
    for i in 0..30 {
        expected.extend(append_simple(&mut log, i, 3));
    }
    log.flush().unwrap();
    drop(log); // no close: preallocated files stay as they are
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(read_all(&log), expected);
}

/// Ways of damaging the tail of the last segment.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Crash without close: the preallocated zero tail stays.
    Crash,
    /// Zero bytes written after the last batch of a closed log.
    Zeros,
    Garbage,
    HalfBatch,
    FlippedBitInLastBatch,
    TruncatedLastBatch,
}

#[test]
fn torn_or_corrupt_tails_are_truncated_to_the_valid_prefix_on_reopen() {
    for damage in [
        Damage::Crash,
        Damage::Zeros,
        Damage::Garbage,
        Damage::HalfBatch,
        Damage::FlippedBitInLastBatch,
        Damage::TruncatedLastBatch,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 1500,
            index_interval_bytes: 100,
            ..config()
        };
        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        let batches: Vec<Vec<u8>> = (0..12).map(|i| append_simple(&mut log, i, 4)).collect();
        assert!(log.segment_count() > 1);
        let last_base = *base_offsets(dir.path()).last().unwrap();
        let path = seg_file(dir.path(), last_base, "log");
        let in_last: usize = (last_base / 4) as usize;
        let last_len: usize = batches[in_last..].iter().map(Vec::len).sum();
        let mut expected_batches = batches.len();
        match damage {
            // A flipped bit is torn data a crash left after the last checkpoint: bytes the
            // checkpoint vouches for (its durable prefix) get only the cheap checks.
            Damage::Crash | Damage::FlippedBitInLastBatch => {
                log.flush().unwrap();
                drop(log);
            }
            _ => log.close().unwrap(),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let end = last_len as u64;
        match damage {
            Damage::Crash => {}
            Damage::Zeros => file.write_all_at(&[0; 100], end).unwrap(),
            Damage::Garbage => file
                .write_all_at(
                    &(0..200u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>(),
                    end,
                )
                .unwrap(),
            Damage::HalfBatch => {
                let mut next = simple_batch(99, 4);
                brook_protocol::batch::set_base_offset(&mut next, 48);
                file.write_all_at(&next[..next.len() / 2], end).unwrap();
            }
            Damage::FlippedBitInLastBatch => {
                let last = batches.last().unwrap();
                let at = end - last.len() as u64 + 70;
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, at).unwrap();
                file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
                expected_batches -= 1;
            }
            Damage::TruncatedLastBatch => {
                file.set_len(end - 10).unwrap();
                expected_batches -= 1;
            }
        }
        drop(file);

        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        let expected_end = expected_batches as i64 * 4;
        assert_eq!(log.log_end_offset(), expected_end, "{damage:?}");
        assert_eq!(
            read_all(&log),
            batches[..expected_batches].concat(),
            "{damage:?}"
        );
        let next = append_simple(&mut log, 7, 2);
        assert_eq!(
            offsets(&next),
            vec![(expected_end, expected_end + 1)],
            "{damage:?}"
        );
        log.close().unwrap();
        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        let mut all = batches[..expected_batches].concat();
        all.extend(&next);
        assert_eq!(read_all(&log), all, "{damage:?}");
    }
}

#[test]
fn missing_or_corrupt_index_files_are_rebuilt_equal_to_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 200,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..60 {
        append_simple(&mut log, 10_000 + (i * 53) % 1000, 1 + i as usize % 3);
    }
    let segments = base_offsets(dir.path());
    assert!(segments.len() >= 4, "{segments:?}");
    let expected_data = read_all(&log);
    log.close().unwrap();
    let original = snapshot(dir.path());
    for (name, contents) in &original {
        if name.ends_with("index") {
            assert!(!contents.is_empty(), "{name}");
        }
    }

    type DamageFn = fn(&Path);
    let damages: [(&str, DamageFn); 7] = [
        ("deleted", |p| stdfs::remove_file(p).unwrap()),
        ("emptied", |p| stdfs::write(p, b"").unwrap()),
        ("odd length", |p| {
            let mut f = OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(&[1, 2, 3]).unwrap();
        }),
        ("zero tail", |p| {
            let mut f = OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(&[0; 24]).unwrap();
        }),
        ("last entry cut", |p| {
            // A shorter time index can be consistent with the log (a known limit of the
            // cheap checks); a shorter offset index cannot.
            if p.extension().unwrap() != "index" {
                return;
            }
            let len = stdfs::metadata(p).unwrap().len();
            let entry = 8;
            OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - entry)
                .unwrap();
        }),
        ("entries swapped", |p| {
            let mut c = stdfs::read(p).unwrap();
            let entry = if p.extension().unwrap() == "index" {
                8
            } else {
                12
            };
            if c.len() >= 2 * entry {
                let (a, b) = c.split_at_mut(entry);
                a.swap_with_slice(&mut b[..entry]);
            } else {
                c.iter_mut().for_each(|b| *b = 0xff);
            }
            stdfs::write(p, c).unwrap();
        }),
        ("garbage", |p| {
            let len = stdfs::metadata(p).unwrap().len() as usize;
            stdfs::write(p, vec![0xab; len]).unwrap();
        }),
    ];
    for (what, damage) in damages {
        for &base in &segments {
            for ext in ["index", "timeindex"] {
                damage(&seg_file(dir.path(), base, ext));
            }
        }
        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!(read_all(&log), expected_data, "{what}");
        log.close().unwrap();
        assert_same_files(&snapshot(dir.path()), &original, what);
    }
}

#[test]
fn a_corrupt_sealed_segment_is_truncated_and_later_segments_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 2).len();
    let cfg = LogConfig {
        segment_bytes: size as u64 * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let batches: Vec<Vec<u8>> = (0..9).map(|i| append_simple(&mut log, i, 2)).collect();
    log.close().unwrap();
    assert_eq!(base_offsets(dir.path()), vec![0, 6, 12]);
    // Flip a bit in the second batch of segment 6 (offsets 8..=9).
    let path = seg_file(dir.path(), 6, "log");
    let mut c = stdfs::read(&path).unwrap();
    c[size + 80] ^= 1;
    stdfs::write(&path, c).unwrap();

    // The default policy only reads the last segment in full: the damage goes unnoticed.
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 18);
    drop(log);
    // Verifying from a checkpoint before it finds it, keeps the prefix, drops the rest.
    let mut log =
        PartitionLog::open_with_policy(dir.path(), cfg, RecoveryPolicy::FromOffset(0)).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(base_offsets(dir.path()), vec![0, 6]);
    assert_eq!(read_all(&log), batches[..4].concat());
    let next = append_simple(&mut log, 0, 1);
    assert_eq!(offsets(&next), vec![(8, 8)]);
}

#[test]
fn a_sealed_segment_whose_indexes_do_not_match_its_log_is_rescanned() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 2).len();
    let cfg = LogConfig {
        segment_bytes: size as u64 * 3,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let batches: Vec<Vec<u8>> = (0..9).map(|i| append_simple(&mut log, i, 2)).collect();
    log.close().unwrap();
    // A torn tail in a sealed segment (as if a roll had not trimmed it): the cheap check
    // sees the bytes after the last indexed batch do not end cleanly.
    let path = seg_file(dir.path(), 0, "log");
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0; 64]).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(base_offsets(dir.path()), vec![0]);
    assert_eq!(read_all(&log), batches[..3].concat());
}

#[test]
fn overlapping_segments_keep_the_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 2).len();
    let cfg = LogConfig {
        segment_bytes: size as u64 * 2,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let batches: Vec<Vec<u8>> = (0..6).map(|i| append_simple(&mut log, i, 2)).collect();
    log.close().unwrap();
    assert_eq!(base_offsets(dir.path()), vec![0, 4, 8]);
    // Rename segment 4 to 2: segment 0 (offsets 0..=3) now reaches past it.
    for ext in ["log", "index", "timeindex"] {
        stdfs::rename(seg_file(dir.path(), 4, ext), seg_file(dir.path(), 2, ext)).unwrap();
    }
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(base_offsets(dir.path()), vec![0]);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(read_all(&log), batches[..2].concat());
}

#[test]
fn stray_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let b = append_simple(&mut log, 0, 3);
    log.close().unwrap();
    stdfs::write(dir.path().join("leader-epoch-checkpoint"), b"0\n").unwrap();
    stdfs::write(dir.path().join("123.log"), b"junk").unwrap();
    stdfs::write(seg_file(dir.path(), 500, "index"), b"junk").unwrap();
    stdfs::create_dir(dir.path().join("00000000000000000700.log.d")).unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert_eq!(read_all(&log), b);
    assert_eq!(log.segment_count(), 1);
}

/// Reference answer: first batch with max_timestamp >= ts (and >= 0).
pub(super) fn expected_for_timestamp(batches: &[Vec<u8>], ts: i64) -> Option<Vec<u8>> {
    batches
        .iter()
        .find(|b| {
            let m = BatchView::parse(b).unwrap().max_timestamp();
            m >= ts && m >= 0
        })
        .cloned()
}

pub(super) fn expected_max(batches: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut best: Option<(&Vec<u8>, i64)> = None;
    for b in batches {
        let m = BatchView::parse(b).unwrap().max_timestamp();
        if m >= 0 && best.is_none_or(|(_, bm)| m > bm) {
            best = Some((b, m));
        }
    }
    best.map(|(b, _)| b.clone())
}

#[test]
fn timestamp_lookups_find_the_first_batch_at_or_after_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 500,
        index_interval_bytes: 150,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    // Out-of-order timestamps, repeats, and batches without a timestamp.
    let times = [
        50, 10, -1, 70, 70, 20, 90, -1, 90, 85, 120, 30, 120, 200, 150, 160, -1, 199, 200, 10,
    ];
    let batches: Vec<Vec<u8>> = times
        .iter()
        .map(|&t| append_simple(&mut log, t, 1))
        .collect();
    assert!(log.segment_count() >= 3);
    let check = |log: &PartitionLog| {
        for ts in -2..=205 {
            let got = log.batch_for_timestamp(ts).unwrap().map(|b| b.to_vec());
            assert_eq!(got, expected_for_timestamp(&batches, ts), "ts {ts}");
        }
        let max = log.batch_with_max_timestamp().unwrap().unwrap();
        assert_eq!(Some(max.to_vec()), expected_max(&batches));
        assert_eq!(offsets(&max), vec![(13, 13)], "first of the tied 200s");
    };
    check(&log);
    log.close().unwrap();
    // After reopening, sealed segments answer from their time indexes.
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    check(&log);
    drop(log);
    for base in base_offsets(dir.path()) {
        stdfs::remove_file(seg_file(dir.path(), base, "timeindex")).unwrap();
    }
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    check(&log);
}

#[test]
fn batches_without_timestamps_are_never_the_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    append_simple(&mut log, -1, 1);
    assert_eq!(log.batch_with_max_timestamp().unwrap(), None);
    assert_eq!(log.batch_for_timestamp(-1).unwrap(), None);
    let b = append_simple(&mut log, 0, 1);
    assert_eq!(log.batch_with_max_timestamp().unwrap().unwrap(), b);
    assert_eq!(log.batch_for_timestamp(-5).unwrap().unwrap(), b);
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-1");
    let mut log = PartitionLog::open(&path, config()).unwrap();
    append_simple(&mut log, 0, 1);
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn corrupt_data_in_a_sealed_segment_is_reported_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let size = simple_batch(0, 1).len();
    let cfg = LogConfig {
        segment_bytes: size as u64 * 4,
        index_interval_bytes: 0,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..6 {
        append_simple(&mut log, i, 1);
    }
    log.close().unwrap();
    // Break the magic of the second of four batches: the cheap checks (first batch, tail
    // from the last index entry on) do not look there, a read does.
    let path = seg_file(dir.path(), 0, "log");
    let mut c = stdfs::read(&path).unwrap();
    c[size + 16] = 1;
    stdfs::write(&path, c).unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    match log.read(1, 100) {
        Err(StorageError::Corrupt {
            position,
            corruption: Corruption::Batch(_),
            ..
        }) => assert_eq!(position, size as u64),
        other => panic!("{other:?}"),
    }
}

/// Deterministic xorshift generator for the model test.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(super) fn random_batch(rng: &mut Rng) -> Vec<u8> {
    // One batch in ten has no timestamp (-1 everywhere, so max_timestamp is -1).
    let base_ts = if rng.below(10) == 0 {
        -1
    } else {
        rng.below(2000) as i64
    };
    let records: Vec<TestRecord> = (0..1 + rng.below(5))
        .map(|_| TestRecord {
            key: None,
            value: Some(vec![b'v'; rng.below(120) as usize]),
            timestamp_delta: if base_ts < 0 { 0 } else { rng.below(20) as i64 },
            headers: Vec::new(),
        })
        .collect();
    build_batch(base_ts, &records)
}

/// The reference model: every batch ever appended (stored bytes), the log start offset and
/// the durable offset. Batches below the log start stay in the list; lookups skip them.
struct Model {
    batches: Vec<Vec<u8>>,
    next_offset: i64,
    log_start: i64,
    durable: i64,
}

impl Model {
    fn live(&self) -> Vec<Vec<u8>> {
        self.batches
            .iter()
            .filter(|b| BatchView::parse(b).unwrap().last_offset() >= self.log_start)
            .cloned()
            .collect()
    }

    fn read(&self, offset: i64, max: usize) -> Vec<u8> {
        let mut want = Vec::new();
        for b in &self.batches {
            let v = BatchView::parse(b).unwrap();
            if v.last_offset() < offset {
                continue;
            }
            if !want.is_empty() && want.len() + b.len() > max {
                break;
            }
            want.extend(b);
        }
        want
    }

    /// After a crash that cut the active segment (base `active_base`) at byte `cut` and put
    /// `tail` after it: keeps the batches that lie wholly before the cut (garbage or zeros
    /// after it never form a valid batch). Returns the new log end.
    fn crash(&mut self, active_base: i64, cut: u64) -> i64 {
        let mut position = 0u64;
        let mut keep = 0;
        for (i, b) in self.batches.iter().enumerate() {
            let v = BatchView::parse(b).unwrap();
            if v.base_offset() < active_base {
                keep = i + 1;
                continue;
            }
            position += b.len() as u64;
            if position > cut {
                break;
            }
            keep = i + 1;
        }
        self.batches.truncate(keep);
        self.next_offset = self
            .batches
            .last()
            .map_or(active_base, |b| {
                BatchView::parse(b).unwrap().last_offset() + 1
            })
            .max(active_base);
        if self.next_offset < self.log_start {
            // Recovery cut below the log start: the log restarts empty there.
            self.batches.clear();
            self.next_offset = self.log_start;
        }
        self.durable = self.next_offset;
        self.next_offset
    }
}

/// Random appends, reads, rolls, lookups, syncs, DeleteRecords, retention, clean and
/// unclean reopens, and crashes that cut the active segment at a random byte at or after
/// the durable position (leaving zeros or garbage after the cut), checked against a plain
/// list of batches: after each crash the recovered log is the longest valid prefix of the
/// reference and keeps everything below the durable offset.
#[test]
fn model_random_operations_match_a_list_of_batches() {
    for seed in 1..=8u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 3000 + rng.below(6000),
            segment_ms: 3000,
            index_interval_bytes: rng.below(600) as u32,
            segment_index_bytes: 60 + rng.below(200) as u32,
            preallocate: seed % 2 == 0,
            // Releasing cached pages never changes what reads return.
            cache_window_bytes: (seed % 3 != 0).then(|| rng.below(8000)),
            key_index: None,
        };
        let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
        let mut m = Model {
            batches: Vec::new(),
            next_offset: 0,
            log_start: 0,
            durable: 0,
        };
        let mut now = 0i64;
        let mut crashes = 0;
        for step in 0..400 {
            let what = format!("seed {seed} step {step}");
            now += rng.below(50) as i64;
            match rng.below(26) {
                0..=8 => {
                    let mut buf = Vec::new();
                    let n = 1 + rng.below(3);
                    for _ in 0..n {
                        buf.extend(random_batch(&mut rng));
                    }
                    let info = log.append(&mut buf, now).unwrap();
                    assert_eq!(info.base_offset, m.next_offset, "{what}");
                    for b in Batches::new(&buf) {
                        m.batches.push(b.bytes().to_vec());
                        m.next_offset = b.last_offset() + 1;
                    }
                    assert_eq!(info.last_offset, m.next_offset - 1, "{what}");
                }
                9..=13 => {
                    let span = (m.next_offset - m.log_start) as u64;
                    let offset = m.log_start + rng.below(span + 1) as i64;
                    let max = rng.below(3000) as usize;
                    let got = concat(&log.read(offset, max).unwrap());
                    assert_eq!(got, m.read(offset, max), "{what}: read {offset} {max}");
                    if m.log_start > 0 {
                        assert!(log.read(m.log_start - 1, max).is_err(), "{what}");
                    }
                }
                14 => {
                    let ts = rng.below(2100) as i64;
                    let live = m.live();
                    let got = log.batch_for_timestamp(ts).unwrap().map(|b| b.to_vec());
                    assert_eq!(got, expected_for_timestamp(&live, ts), "{what}: ts {ts}");
                    let got = log.batch_with_max_timestamp().unwrap().map(|b| b.to_vec());
                    assert_eq!(got, expected_max(&live), "{what}");
                }
                15 => log.roll(now).unwrap(),
                16 => {
                    log.close().unwrap();
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                }
                17 => {
                    log.close().unwrap();
                    let options = crate::OpenOptions::default()
                        .with_mode(crate::config::OpenMode::AfterCleanShutdown);
                    log = PartitionLog::open_with(dir.path(), cfg, options).unwrap();
                    assert_eq!(log.recovery_report().segments_scanned, 0, "{what}");
                }
                18 => {
                    log.flush().unwrap();
                    m.durable = m.next_offset;
                    drop(log);
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                }
                19 => {
                    let point = log.sync_point().unwrap();
                    point.sync().unwrap();
                    log.mark_durable(point.end_offset());
                    m.durable = m.durable.max(point.end_offset());
                    if rng.below(2) == 0 {
                        log.write_checkpoint().unwrap();
                    }
                }
                20 => {
                    let span = (m.next_offset - m.log_start) as u64;
                    let offset = m.log_start + rng.below(span / 4 + 2).min(span) as i64;
                    assert_eq!(log.delete_records_before(offset).unwrap(), offset, "{what}");
                    m.log_start = offset;
                }
                21 => {
                    let keep = rng.below(8000) as i64;
                    let outcome = log.apply_retention(now, -1, keep).unwrap();
                    assert!(outcome.log_start_offset >= m.log_start, "{what}");
                    let first = base_offsets(dir.path())[0];
                    assert_eq!(outcome.log_start_offset, m.log_start.max(first), "{what}");
                    assert!(log.size_in_bytes() as i64 >= keep.min(log.size_in_bytes() as i64));
                    m.log_start = outcome.log_start_offset;
                }
                22 | 23 => {
                    // Crash, losing a random part of what was not yet durable.
                    crashes += 1;
                    assert!(log.durable_offset() >= m.durable, "{what}");
                    m.durable = log.durable_offset();
                    drop(log);
                    let active_base = *base_offsets(dir.path()).last().unwrap();
                    let path = seg_file(dir.path(), active_base, "log");
                    let (mut durable_pos, mut committed) = (0u64, 0u64);
                    for b in &m.batches {
                        let v = BatchView::parse(b).unwrap();
                        if v.base_offset() >= active_base {
                            committed += b.len() as u64;
                            if v.last_offset() < m.durable {
                                durable_pos = committed;
                            }
                        }
                    }
                    let cut = durable_pos + rng.below(committed - durable_pos + 200);
                    let file = stdfs::OpenOptions::new().write(true).open(&path).unwrap();
                    file.set_len(cut).unwrap();
                    match rng.below(3) {
                        0 => {}
                        1 => file.write_all_at(&[0; 300], cut).unwrap(),
                        _ => {
                            let garbage: Vec<u8> =
                                (0..1 + rng.below(300)).map(|_| rng.next() as u8).collect();
                            file.write_all_at(&garbage, cut).unwrap();
                        }
                    }
                    drop(file);
                    let durable_before = m.durable;
                    let end = m.crash(active_base, cut);
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                    assert_eq!(
                        log.log_end_offset(),
                        end,
                        "{what}: cut {cut} of {committed}"
                    );
                    assert!(end >= durable_before, "{what}: lost durable data");
                    assert_eq!(log.log_start_offset(), m.log_start, "{what}");
                }
                _ => {
                    // Rebuilding every index gives the same files.
                    log.close().unwrap();
                    let before = snapshot(dir.path());
                    for base in base_offsets(dir.path()) {
                        stdfs::remove_file(seg_file(dir.path(), base, "index")).unwrap();
                        stdfs::remove_file(seg_file(dir.path(), base, "timeindex")).unwrap();
                    }
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                    log.close().unwrap();
                    assert_same_files(&snapshot(dir.path()), &before, &what);
                    log = PartitionLog::open(dir.path(), cfg).unwrap();
                }
            }
            assert_eq!(log.log_end_offset(), m.next_offset, "{what}");
            assert_eq!(log.log_start_offset(), m.log_start, "{what}");
            assert!(log.durable_offset() >= m.durable, "{what}");
        }
        assert!(crashes > 10, "seed {seed}: {crashes} crashes");
        assert_eq!(read_all(&log), m.live().concat(), "seed {seed}");
    }
}

/// Bytes of real disk blocks a file occupies (`st_blocks` * 512).
pub(super) fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    stdfs::metadata(path).unwrap().blocks() * 512
}

/// A batch of one record whose value is `len` bytes of a pattern that depends on `ts`.
pub(super) fn big_batch(ts: i64, len: usize) -> Vec<u8> {
    let value = (0..len).map(|i| (i as i64 * 31 + ts) as u8).collect();
    build_batch(
        ts,
        &[TestRecord {
            value: Some(value),
            ..TestRecord::default()
        }],
    )
}

const MIB: u64 = 1 << 20;

#[test]
fn without_preallocate_a_gigabyte_segment_allocates_only_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1 << 30,
        ..LogConfig::default()
    };
    assert!(!cfg.preallocate, "Kafka's default");
    let check = |what: &str| {
        let log_file = seg_file(dir.path(), 0, "log");
        assert!(
            allocated_bytes(&log_file) < 16 * MIB,
            "{what}: .log has {} bytes allocated",
            allocated_bytes(&log_file)
        );
        for ext in ["index", "timeindex"] {
            let f = seg_file(dir.path(), 0, ext);
            assert!(
                allocated_bytes(&f) < MIB,
                "{what}: .{ext} has {} bytes allocated",
                allocated_bytes(&f)
            );
        }
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    check("created");
    // Sized (sparsely) for the whole segment, so it is mapped once.
    assert_eq!(
        stdfs::metadata(seg_file(dir.path(), 0, "log"))
            .unwrap()
            .len(),
        1 << 30
    );
    let mut expected = Vec::new();
    for i in 0..20 {
        expected.extend(append_simple(&mut log, i, 3));
    }
    let mut big = big_batch(99, 100_000);
    log.append(&mut big, 0).unwrap();
    expected.extend(big);
    log.flush().unwrap();
    check("after appends");
    assert_eq!(read_all(&log), expected);
    drop(log); // crash: the allocated chunk (zeros) and the sparse rest stay
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(read_all(&log), expected);
    // The zero tail is kept as it is (the active segment's free space), nothing cut.
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    check("recovered");
    let next = append_simple(&mut log, 5, 1);
    assert_eq!(offsets(&next), vec![(61, 61)]);
    expected.extend(next);
    log.close().unwrap();
    let len = stdfs::metadata(seg_file(dir.path(), 0, "log"))
        .unwrap()
        .len();
    assert_eq!(len, expected.len() as u64, "trimmed on close");
    let log = PartitionLog::open_with(
        dir.path(),
        cfg,
        crate::OpenOptions::default().with_mode(crate::config::OpenMode::AfterCleanShutdown),
    )
    .unwrap();
    check("reactivated");
    assert_eq!(read_all(&log), expected);
}

#[test]
fn with_preallocate_the_whole_segment_and_indexes_are_allocated_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 * MIB,
        segment_index_bytes: 1 << 20,
        preallocate: true,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let check = |what: &str| {
        let got = allocated_bytes(&seg_file(dir.path(), 0, "log"));
        assert!(got >= 64 * MIB, "{what}: .log has {got} bytes allocated");
        for ext in ["index", "timeindex"] {
            let got = allocated_bytes(&seg_file(dir.path(), 0, ext));
            assert!(got >= MIB, "{what}: .{ext} has {got} bytes allocated");
        }
    };
    check("created");
    let expected = append_simple(&mut log, 1, 2);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    check("reopened");
    assert_eq!(read_all(&log), expected);
}

#[test]
fn appends_across_many_allocation_chunks_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 * MIB,
        index_interval_bytes: 0, // an index entry per batch: index chunks are crossed too
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let mut expected = Vec::new();
    // Batch sizes that do not divide the chunk, so batches straddle chunk boundaries.
    for i in 0..90 {
        let mut b = big_batch(i, 300_000 + (i as usize * 7919) % 50_000);
        log.append(&mut b, 0).unwrap();
        expected.extend(b);
    }
    // > 8192 offset entries and > 5461 time entries: several index chunks.
    for i in 0..9000 {
        expected.extend(append_simple(&mut log, 1000 + i, 1));
    }
    assert!(expected.len() as u64 > 3 * 8 * MIB);
    assert_eq!(log.segment_count(), 1);
    assert!(read_all(&log) == expected);
    let end = log.log_end_offset();
    assert_eq!(end, 90 + 9000);
    for offset in [0, 45, 89, 90, 5000, end - 1] {
        let got = concat(&log.read(offset, 1).unwrap());
        let (base, last) = offsets(&got)[0];
        assert!(base <= offset && offset <= last);
    }
    let found = log.batch_for_timestamp(5000).unwrap().unwrap();
    assert_eq!(offsets(&found), vec![(90 + 4000, 90 + 4000)]);
    // Allocated only a chunk ahead of the data.
    let used = expected.len() as u64;
    assert!(allocated_bytes(&seg_file(dir.path(), 0, "log")) < used + 9 * MIB);
    drop(log); // crash
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(read_all(&log) == expected);
    assert_eq!(log.log_end_offset(), end);
    let next = append_simple(&mut log, 1, 1);
    assert_eq!(offsets(&next), vec![(end, end)]);
    expected.extend(next);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(read_all(&log) == expected);
}

/// Disk blocks used by the files of `dir`.
fn blocks_in(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    stdfs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks())
        .sum()
}

#[test]
fn an_empty_log_takes_no_disk_blocks_until_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 64 << 20,
        segment_index_bytes: 1 << 20,
        ..config()
    };
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(blocks_in(dir.path()), 0, "a new log");
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(blocks_in(dir.path()), 0, "reopened empty");
    let b = append_simple(&mut log, 1, 3);
    assert!(blocks_in(dir.path()) > 0, "the first batch allocates");
    assert_eq!(concat(&log.read(0, 1 << 20).unwrap()), b);
    // A roll still allocates the new segment's first chunk before switching to it.
    log.roll(0).unwrap();
    let rolled = stdfs::metadata(dir.path().join(format!("{:020}.log", 3))).unwrap();
    assert!(std::os::unix::fs::MetadataExt::blocks(&rolled) > 0);
}
