//! The page-cache window: durable data further back than `cache_window_bytes` leaves the
//! page cache, newer or not-yet-durable data stays, and everything reads back the same.

use std::{fs::File, path::Path};

use super::tests::{big_batch, read_all, seg_file};
use super::*;

const MIB: u64 = 1 << 20;
const PAGE: usize = 4096;

/// A directory on the same file system as the build, not `/tmp`: on tmpfs the page cache
/// *is* the file, and nothing can be evicted from it.
fn disk_tempdir() -> tempfile::TempDir {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).unwrap();
    tempfile::tempdir_in(target).unwrap()
}

/// For each 4 KiB page of the first `len` bytes of `path`: is it in the page cache?
#[allow(unsafe_code)]
fn resident_pages(path: &Path, len: u64) -> Vec<bool> {
    let file = File::open(path).unwrap();
    let len = usize::try_from(len).unwrap();
    // SAFETY: a read-only map of a file nothing shortens while the test holds it; its bytes
    // are never read, only its address range is passed to mincore.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.unwrap();
    let mut status = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: `map` covers `len` bytes, and `status` has one byte per page of them.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, len, status.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    status.iter().map(|s| s & 1 == 1).collect()
}

fn all_resident(path: &Path, len: u64) -> bool {
    resident_pages(path, len).iter().all(|r| *r)
}

fn window_config(window: Option<u64>, segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        cache_window_bytes: window,
        ..LogConfig::default()
    }
}

/// Appends about `mib` MiB in 256 KiB batches; returns the bytes appended.
fn fill(log: &mut PartitionLog, mib: u64) -> Vec<u8> {
    let mut expected = Vec::new();
    for i in 0..mib * 4 {
        let mut b = big_batch(i as i64, 256 * 1024 - 100);
        log.append(&mut b, 0).unwrap();
        expected.extend(b);
    }
    expected
}

#[test]
fn durable_data_behind_the_window_leaves_the_page_cache_and_still_reads_back() {
    let dir = disk_tempdir();
    let mut log = PartitionLog::open(dir.path(), window_config(Some(4 * MIB), 1 << 30)).unwrap();
    let expected = fill(&mut log, 24);
    // Readers map pages too (a mapped page is never evicted): read everything once.
    assert!(read_all(&log) == expected);
    let path = seg_file(dir.path(), 0, "log");
    let size = expected.len() as u64;
    assert!(all_resident(&path, size), "written pages are cached");

    log.flush().unwrap();
    let resident = resident_pages(&path, size);
    // Released up to the window's start, rounded down to 2 MiB (whole folios).
    let window_start = (size - 4 * MIB) as usize / PAGE;
    let released_end = ((size - 4 * MIB) / (2 * MIB) * (2 * MIB)) as usize / PAGE;
    assert!(released_end * PAGE >= (size - 6 * MIB) as usize);
    assert!(
        resident[..released_end].iter().all(|r| !r),
        "durable pages behind the window were released"
    );
    assert!(
        resident[window_start..].iter().all(|r| *r),
        "the window stays cached"
    );
    assert!(
        read_all(&log) == expected,
        "released pages read back the same"
    );
}

#[test]
fn only_durable_data_is_released() {
    let dir = disk_tempdir();
    let mut log = PartitionLog::open(dir.path(), window_config(Some(MIB), 1 << 30)).unwrap();
    let first = fill(&mut log, 12);
    let point = log.sync_point().unwrap();
    let second = fill(&mut log, 12);
    // The fdatasync writes back both halves, but only the first is recorded as durable.
    point.sync().unwrap();
    log.mark_durable(point.end_offset());
    let path = seg_file(dir.path(), 0, "log");
    let resident = resident_pages(&path, (first.len() + second.len()) as u64);
    let released = resident.iter().filter(|r| !**r).count() * PAGE;
    // Everything durable but the window (and what the index rounds off), nothing after it.
    assert!(
        released as u64 >= first.len() as u64 - 2 * MIB,
        "{released}"
    );
    assert!(
        resident[first.len() / PAGE..].iter().all(|r| *r),
        "data not recorded as durable stays cached"
    );
}

#[test]
fn without_a_window_the_cache_is_left_alone() {
    let dir = disk_tempdir();
    let mut log = PartitionLog::open(dir.path(), window_config(None, 1 << 30)).unwrap();
    let expected = fill(&mut log, 16);
    log.flush().unwrap();
    let path = seg_file(dir.path(), 0, "log");
    assert!(all_resident(&path, expected.len() as u64));
}

#[test]
fn sealed_segments_behind_the_window_are_released() {
    let dir = disk_tempdir();
    let mut log = PartitionLog::open(dir.path(), window_config(Some(3 * MIB), 2 * MIB)).unwrap();
    let expected = fill(&mut log, 16);
    log.flush().unwrap();
    // 2 MiB segments of seven 256 KiB batches each; the window covers the newest 3 MiB.
    let summaries = log.segment_summaries().unwrap();
    assert!(summaries.len() >= 8, "{}", summaries.len());
    let mut cached = Vec::new();
    for s in &summaries {
        let path = seg_file(dir.path(), s.base_offset, "log");
        let size = std::fs::metadata(&path).unwrap().len();
        let pages = resident_pages(&path, size.min(s.size_bytes));
        cached.push(pages.iter().filter(|r| **r).count() * PAGE);
    }
    // The active segment is whole in the window and the one before it partly; that one
    // keeps its pages until a release step is worth it. Everything older is released.
    let n = cached.len();
    assert!(cached[..n - 2].iter().all(|c| *c == 0), "{cached:?}");
    assert!(
        cached[n - 1] as u64 >= 2 * MIB - 2 * PAGE as u64,
        "{cached:?}"
    );
    assert!(read_all(&log) == expected);
}

#[test]
fn reopening_releases_what_lies_behind_the_window() {
    let dir = disk_tempdir();
    let config = window_config(Some(MIB), 1 << 30);
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let expected = fill(&mut log, 16);
    log.flush().unwrap();
    let path = seg_file(dir.path(), 0, "log");
    drop(log); // a crash: the reopen scans the whole segment again
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let size = expected.len() as u64;
    let resident = resident_pages(&path, size);
    assert!(
        resident[..((size - 2 * MIB) as usize / PAGE)]
            .iter()
            .all(|r| !r),
        "the recovery scan's pages behind the window were released"
    );
    assert!(read_all(&log) == expected);
}
