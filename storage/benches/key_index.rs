//! CPU cost of the per-key index's two hot steps, without I/O: appending entries to the
//! active segment's index, and sealing it into the sorted file image at a segment roll
//! (which runs with the partition locked).
//!
//! `cargo bench -p brook-storage --bench key_index -- --warm-up-time 1 --measurement-time 5`.
//! The workload is the one `brook-bench produce --keys 100000 --random-keys` drives: keys
//! `key-<n>` drawn at random from 100,000, and 500,000 entries per segment (the number a
//! 256 MiB segment of 1 KiB records holds, about).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use brook_storage::key_index::{key_hash, ActiveKeyIndex};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const KEYS: u64 = 100_000;
const ENTRIES: usize = 500_000;

/// The keys of `ENTRIES` records, drawn at random (xorshift, fixed seed) from `KEYS`.
fn keys() -> Vec<(Vec<u8>, u64)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..ENTRIES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("key-{}", state % KEYS).into_bytes();
            let hash = key_hash(&key);
            (key, hash)
        })
        .collect()
}

fn filled(keys: &[(Vec<u8>, u64)]) -> ActiveKeyIndex {
    let mut active = ActiveKeyIndex::default();
    for (offset, (key, hash)) in keys.iter().enumerate() {
        active.append(key, *hash, offset as i64, 0, 0, |last| {
            last.map_or(0, |r| r + 1)
        });
    }
    active
}

fn key_index(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("key_index");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.sample_size(20);
    group.bench_function("append_500k_of_100k_keys", |b| {
        b.iter(|| black_box(filled(&keys)).len())
    });
    group.bench_function("seal_500k_of_100k_keys", |b| {
        b.iter_batched(
            || filled(&keys),
            |mut active| {
                let mut bytes = 0usize;
                active
                    .seal(false, |chunk: &[u8]| {
                        bytes += black_box(chunk).len();
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, key_index);
criterion_main!(benches);
