//! Throughput of the partition log: appends (without and with an fsync per append), sequential
//! reads, and recovery of a large unflushed tail.
//!
//! `cargo bench -p brook-storage -- --warm-up-time 1 --measurement-time 3`. The recovery
//! size is `BROOK_BENCH_RECOVERY_MB` (default 256); run 1024 by hand for the 1 GiB figure:
//! `BROOK_BENCH_RECOVERY_MB=1024 cargo bench -p brook-storage -- recovery`.
//! Logs live in a temporary directory under `TMPDIR` (a real disk, not tmpfs, for the fsync
//! figures). Reads run with the data in the page cache. Recovery is measured three ways:
//! after `kill -9` with the tail still dirty in the page cache (recovery's fsync writes it
//! back), with the tail written back and cached (the scan alone), and cold (evicted from the
//! page cache first, as after a reboot).

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, path::Path, time::Duration, time::Instant};

use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_storage::{LogConfig, PartitionLog};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 64;
const MIB: u64 = 1 << 20;

/// A batch of 64 records of 1 KiB values: about 64 KiB.
fn batch() -> Vec<u8> {
    let records: Vec<TestRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| TestRecord {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![b'x'; RECORD]),
            timestamp_delta: i as i64,
            headers: Vec::new(),
        })
        .collect();
    build_batch(1_700_000_000_000, &records)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Appends `iters` batches to a fresh log, timing only the appends (and the flushes when
/// `fsync`). Retention keeps the disk use bounded, outside the timing.
fn time_appends(dir: &Path, template: &[u8], iters: u64, fsync: bool) -> Duration {
    let path = dir.join(format!("append-{}", rand_suffix()));
    let mut log = PartitionLog::open(&path, config(128 * MIB)).unwrap();
    let mut buf = template.to_vec();
    let mut elapsed = Duration::ZERO;
    for i in 0..iters {
        buf.copy_from_slice(template);
        let start = Instant::now();
        log.append(&mut buf, 0).unwrap();
        if fsync {
            log.flush().unwrap();
        }
        elapsed += start.elapsed();
        if i % 4096 == 4095 {
            log.apply_retention(0, -1, (512 * MIB) as i64).unwrap();
        }
    }
    log.delete().unwrap();
    elapsed
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let template = batch();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(template.len() as u64));
    group.bench_function("64KiB_batch_no_fsync", |b| {
        b.iter_custom(|iters| time_appends(dir.path(), &template, iters, false))
    });
    group.bench_function("64KiB_batch_fsync_each", |b| {
        b.iter_custom(|iters| time_appends(dir.path(), &template, iters, true))
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config(128 * MIB)).unwrap();
    let template = batch();
    let mut buf = template.clone();
    while log.size_in_bytes() < 256 * MIB {
        buf.copy_from_slice(&template);
        log.append(&mut buf, 0).unwrap();
    }
    let end = log.log_end_offset();
    let chunk = MIB as usize;
    let mut group = c.benchmark_group("read");
    // Whole batches only: a 1 MiB read returns somewhat less.
    let per_read: usize = log.read(0, chunk).unwrap().iter().map(|s| s.len()).sum();
    group.throughput(Throughput::Bytes(per_read as u64));
    // Whole batches up to 1 MiB from successive offsets, wrapping at the end.
    let mut offset = 0;
    group.bench_function("1MiB_sequential_zero_copy", |b| {
        b.iter(|| {
            let slices = log.read(offset, chunk).unwrap();
            let n: usize = slices.iter().map(|s| s.len()).sum();
            offset = next_offset(offset, n, template.len(), end);
            black_box(slices)
        })
    });
    // The same, copying the bytes out as a socket write would.
    let mut out = vec![0u8; 2 * chunk];
    let mut offset = 0;
    group.bench_function("1MiB_sequential_copied", |b| {
        b.iter(|| {
            let slices = log.read(offset, chunk).unwrap();
            let mut n = 0;
            for s in &slices {
                out[n..n + s.len()].copy_from_slice(s);
                n += s.len();
            }
            offset = next_offset(offset, n, template.len(), end);
            black_box(&out);
        })
    });
    group.finish();
}

fn next_offset(offset: i64, bytes: usize, batch_len: usize, end: i64) -> i64 {
    let next = offset + (bytes / batch_len * RECORDS_PER_BATCH) as i64;
    if next >= end {
        0
    } else {
        next
    }
}

/// Writes `mb` MiB of batches to a fresh log at `path` and drops it without flushing or
/// closing (a crash): one active segment, dirty in the page cache.
fn crashed_log(path: &Path, cfg: LogConfig, mb: u64) -> i64 {
    let mut log = PartitionLog::open(path, cfg).unwrap();
    let template = batch();
    let mut buf = template.clone();
    while log.size_in_bytes() < mb * MIB {
        buf.copy_from_slice(&template);
        log.append(&mut buf, 0).unwrap();
    }
    log.log_end_offset()
}

/// Opens (recovers) the log and checks it recovered everything with a full scan.
fn recover(path: &Path, cfg: LogConfig, end: i64) -> PartitionLog {
    let log = PartitionLog::open(path, cfg).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.recovery_report().segments_scanned, 1);
    log
}

/// Evicts the (clean) pages of every file in `dir` from the page cache.
fn evict(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }
}

fn recovery(c: &mut Criterion) {
    let mb: u64 = std::env::var("BROOK_BENCH_RECOVERY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    // One active segment holding the whole tail; every open scans all of it (it is the last
    // segment), truncates the preallocated space after it, rebuilds both indexes,
    // preallocates again and fsyncs.
    let cfg = config((mb + 64) * MIB);
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(mb * MIB));

    // After kill -9 of a broker that never fsynced the tail: the data is dirty in the page
    // cache and recovery's fsync writes it back. Setup (writing the tail) is not timed.
    group.bench_function(format!("{mb}MiB_dirty_after_kill"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let path = dir.path().join(format!("dirty-{}", rand_suffix()));
                let end = crashed_log(&path, cfg, mb);
                let start = Instant::now();
                let log = recover(&path, cfg, end);
                total += start.elapsed();
                log.delete().unwrap();
            }
            total
        })
    });

    let path = dir.path().join("tail-0");
    let end = crashed_log(&path, cfg, mb);
    drop(recover(&path, cfg, end)); // written back now; dropping is a crash again
                                    // The tail is on disk and in the page cache (a stale recovery point): the scan alone.
    group.bench_function(format!("{mb}MiB_cached"), |b| {
        b.iter(|| recover(&path, cfg, end))
    });
    // The same with the files evicted from the page cache first (as after a reboot): the
    // scan reads from the disk.
    group.bench_function(format!("{mb}MiB_cold"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                evict(&path);
                let start = Instant::now();
                let log = recover(&path, cfg, end);
                total += start.elapsed();
                drop(log);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
