//! Cleaner throughput and memory, measured (not asserted): a log of 1 KiB records whose keys
//! are 10% live (each key written ten times on average), cleaned in one pass.
//!
//! ```sh
//! cargo test --release -p brook-storage --test cleaner_throughput -- --ignored --nocapture
//! ```
//! `BROOK_CLEANER_MIB=1024` sets the log size (default 1024 MiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_storage::{CleanOptions, LogConfig, PartitionLog};

/// The map size the pass is given (Kafka's default `log.cleaner.dedupe.buffer.size`).
const MAP_BYTES: usize = 128 << 20;

#[test]
#[ignore = "slow: writes and cleans a log of about a gibibyte"]
fn cleaner_throughput_on_a_log_with_ten_percent_live_keys() {
    let mib: u64 = std::env::var("BROOK_CLEANER_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 128 << 20,
        cache_window_bytes: None,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    let records = mib * 1024; // 1 KiB each
    let keys = records / 10;
    let value = vec![b'x'; 1000];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let started = Instant::now();
    // Batches of 16 records, keys drawn at random from `keys`.
    for _ in 0..records / 16 {
        let batch: Vec<TestRecord> = (0..16)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                TestRecord {
                    key: Some(format!("aggregate-{:08}", state % keys).into_bytes()),
                    value: Some(value.clone()),
                    ..TestRecord::default()
                }
            })
            .collect();
        let mut b = build_batch(1_700_000_000_000, &batch);
        log.append(&mut b, 1_700_000_000_000).unwrap();
    }
    log.roll(0).unwrap();
    log.flush().unwrap();
    let size = log.size_in_bytes();
    println!(
        "wrote {} MiB in {:.1} s",
        size >> 20,
        started.elapsed().as_secs_f64()
    );
    // Heap (anonymous) memory, sampled while the pass runs: the mapped log pages are the
    // page cache's, not the cleaner's.
    let anon_before = status("RssAnon:");
    let peak = Arc::new(AtomicU64::new(anon_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status("RssAnon:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let started = Instant::now();
    let upto = log.log_end_offset();
    let options = CleanOptions {
        map_bytes: MAP_BYTES,
        ..CleanOptions::default()
    };
    let outcome = log.clean(upto, &options).unwrap();
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(anon_before);
    println!(
        "cleaned {} MiB -> {} MiB in {secs:.2} s: {:.0} MB/s of log; heap grew by at most {} MiB \
         for a {} MiB map ({} MiB above it)",
        outcome.bytes_before >> 20,
        outcome.bytes_after >> 20,
        outcome.bytes_before as f64 / secs / 1e6,
        grew >> 10,
        MAP_BYTES >> 20,
        (grew >> 10).saturating_sub((MAP_BYTES >> 20) as u64),
    );
    assert!(outcome.bytes_after < outcome.bytes_before);
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
