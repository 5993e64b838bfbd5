//! The key index inside the log: revisions at append, files at roll, the rebuild at open
//! (after a clean close, a lost file, a transaction open across segments), transactions
//! counted only when committed, and stream heads that survive retention and compaction.

use std::collections::HashMap;

use brook_protocol::batch::testing::{build_batch, set_producer, TestRecord};
use brook_protocol::control::{self, ControlType};

use super::tests::{base_offsets, config};
use super::*;
use crate::key_index::KeyEntry;
use crate::testing::{Fault, FaultyFileSystem};
use crate::{KeyIndexConfig, OpenOptions};
use std::path::Path;
use std::sync::Arc;

fn indexed() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        key_index: Some(KeyIndexConfig {
            cache_keys: 4,
            segment_entries: 1_000,
        }),
        ..config()
    }
}

fn batch_of(keys: &[&str], ts: i64) -> Vec<u8> {
    let records: Vec<TestRecord> = keys
        .iter()
        .map(|k| TestRecord {
            key: Some(k.as_bytes().to_vec()),
            value: Some(format!("v-{k}").into_bytes()),
            timestamp_delta: 0,
            headers: Vec::new(),
        })
        .collect();
    build_batch(ts, &records)
}

fn append_keys(log: &mut PartitionLog, keys: &[&str], ts: i64) -> AppendInfo {
    log.append(&mut batch_of(keys, ts), ts).unwrap()
}

fn append_txn(log: &mut PartitionLog, pid: i64, keys: &[&str]) {
    let mut b = batch_of(keys, 7);
    set_producer(&mut b, pid, 0, 0, true);
    log.append(&mut b, 7).unwrap();
}

fn append_marker(log: &mut PartitionLog, pid: i64, control: ControlType) {
    log.append(&mut control::encode_marker(pid, 0, control, 0, 8), 8)
        .unwrap();
}

fn head(log: &mut PartitionLog, key: &str) -> Option<i64> {
    log.key_index()
        .unwrap()
        .head(key.as_bytes())
        .map(|h| h.revision)
}

fn entries(log: &mut PartitionLog, key: &str) -> Vec<KeyEntry> {
    log.key_index().unwrap().entries(key.as_bytes())
}

/// A model: per key, the offsets of its records in revision order.
type Model = HashMap<String, Vec<i64>>;

fn check(log: &mut PartitionLog, model: &Model) {
    for (key, offsets) in model {
        let got = entries(log, key);
        let revisions: Vec<i64> = got.iter().map(|e| e.revision).collect();
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(revisions, expected, "revisions of {key}");
        assert_eq!(
            got.iter().map(|e| e.offset).collect::<Vec<_>>(),
            *offsets,
            "offsets of {key}"
        );
        assert_eq!(head(log, key), Some(offsets.len() as i64 - 1), "{key}");
    }
    assert_eq!(head(log, "never-written"), None);
}

/// Appends 40 batches of keys k0..k9 (several segments), returning the model.
fn fill(log: &mut PartitionLog) -> Model {
    let mut model = Model::new();
    for i in 0..40usize {
        let keys = [format!("k{}", i % 10), format!("k{}", (i * 3) % 10)];
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let info = append_keys(log, &refs, 1_000 + i as i64);
        for (n, k) in keys.iter().enumerate() {
            model
                .entry(k.clone())
                .or_default()
                .push(info.base_offset + n as i64);
        }
    }
    model
}

#[test]
fn revisions_count_each_keys_records_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    let model = fill(&mut log);
    assert!(log.segment_count() > 3, "{:?}", base_offsets(dir.path()));
    log.wait_for_background_writes().unwrap();
    for base in base_offsets(dir.path()).iter().rev().skip(1) {
        assert!(
            dir.path().join(format!("{base:020}.keyindex")).exists(),
            "sealed segment {base} has its key index"
        );
    }
    check(&mut log, &model);
    // The cache never holds more than its capacity, however many keys were asked for.
    assert!(log.key_index().unwrap().cached_heads() <= 8);
    let stamp = entries(&mut log, "k3")[0].timestamp;
    assert_eq!(stamp, 1_001, "the record's own timestamp");

    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    check(&mut log, &model);
}

/// The log on a file system whose `.keyindex` files are created only when the test says.
fn indexed_on_a_slow_disk(dir: &Path) -> (PartitionLog, Arc<FaultyFileSystem>) {
    let faults = Arc::new(FaultyFileSystem::new());
    let options = OpenOptions::default().with_fs(faults.clone());
    let log = PartitionLog::open_with(dir, indexed(), options).unwrap();
    faults.hold_creates(KEY_INDEX_SUFFIX);
    (log, faults)
}

/// Appends batches of one key until the log rolls; returns the offsets written.
fn append_until_roll(log: &mut PartitionLog, key: &str) -> Vec<i64> {
    let segments = log.segment_count();
    let mut offsets = Vec::new();
    while log.segment_count() == segments {
        offsets.push(append_keys(log, &[key], 5).base_offset);
    }
    offsets
}

#[test]
fn a_rolled_segments_index_file_is_written_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = indexed_on_a_slow_disk(dir.path());
    let mut offsets = append_until_roll(&mut log, "loan-1");
    let rolled = base_offsets(dir.path())[0];
    let file = dir.path().join(format!("{rolled:020}{KEY_INDEX_SUFFIX}"));
    // The roll returned while the file still waits for the disk: the append did not.
    assert!(!file.exists(), "written inside the append that rolled");
    offsets.push(append_keys(&mut log, &["loan-1"], 6).base_offset);
    // Meanwhile the rolled segment's entries are read from memory.
    let got: Vec<(i64, i64)> = entries(&mut log, "loan-1")
        .iter()
        .map(|e| (e.revision, e.offset))
        .collect();
    let want: Vec<(i64, i64)> = offsets
        .iter()
        .enumerate()
        .map(|(r, o)| (r as i64, *o))
        .collect();
    assert_eq!(got, want);
    assert_eq!(head(&mut log, "loan-1"), Some(offsets.len() as i64 - 1));

    faults.release_creates();
    log.wait_for_background_writes().unwrap();
    assert!(file.exists());
    let got_after: Vec<(i64, i64)> = entries(&mut log, "loan-1")
        .iter()
        .map(|e| (e.revision, e.offset))
        .collect();
    assert_eq!(got_after, want, "the same from the file");
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    assert_eq!(head(&mut log, "loan-1"), Some(offsets.len() as i64 - 1));
}

#[test]
fn an_index_file_that_cannot_be_written_fails_the_log_as_a_failed_roll_does() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, faults) = indexed_on_a_slow_disk(dir.path());
    append_until_roll(&mut log, "loan-1");
    // The disk fails while the rolled segment's index is waiting to be written.
    faults.fail_writes(Fault::Eio);
    faults.release_creates();
    assert!(log.wait_for_background_writes().is_err());
    assert!(
        log.failure().unwrap().contains("key index"),
        "{:?}",
        log.failure()
    );
    faults.heal();
    assert!(
        log.append(&mut batch_of(&["loan-1"], 9), 9).is_err(),
        "writes refused"
    );
    // Reopened, the log rebuilds the missing file from the segment.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    assert!(head(&mut log, "loan-1").is_some());
}

#[test]
fn a_lost_or_damaged_index_file_is_rebuilt_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    let model = fill(&mut log);
    log.wait_for_background_writes().unwrap();
    drop(log);
    let bases = base_offsets(dir.path());
    let second = dir.path().join(format!("{:020}.keyindex", bases[1]));
    std::fs::remove_file(&second).unwrap();
    let third = dir.path().join(format!("{:020}.keyindex", bases[2]));
    let mut bytes = std::fs::read(&third).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&third, bytes).unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    check(&mut log, &model);
    assert!(second.exists() && third.exists());
}

#[test]
fn transactions_count_when_committed_and_never_when_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    append_keys(&mut log, &["a"], 1);
    append_txn(&mut log, 5, &["a", "b"]);
    append_txn(&mut log, 6, &["a"]);
    assert_eq!(head(&mut log, "a"), Some(0), "ongoing: not counted yet");
    assert_eq!(head(&mut log, "b"), None);
    append_marker(&mut log, 6, ControlType::Abort);
    append_keys(&mut log, &["a"], 2);
    assert_eq!(head(&mut log, "a"), Some(1));
    // A transaction open across several rolls, committed in a later segment.
    for _ in 0..12 {
        append_keys(&mut log, &["filler"], 3);
    }
    append_marker(&mut log, 5, ControlType::Commit);
    assert_eq!(head(&mut log, "a"), Some(2));
    assert_eq!(head(&mut log, "b"), Some(0));
    let a: Vec<(i64, i64)> = entries(&mut log, "a")
        .iter()
        .map(|e| (e.revision, e.offset))
        .collect();
    assert_eq!(
        a,
        vec![(0, 0), (1, 5), (2, 1)],
        "revision order, not offset order"
    );

    // Another transaction open across a roll when the broker stops: its batch is before the
    // active segment, and its commit after the restart must still count it.
    append_txn(&mut log, 9, &["c"]);
    log.roll(10).unwrap();
    append_keys(&mut log, &["c"], 4);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    assert_eq!(head(&mut log, "a"), Some(2));
    assert_eq!(head(&mut log, "c"), Some(0));
    append_marker(&mut log, 9, ControlType::Commit);
    assert_eq!(head(&mut log, "c"), Some(1));
    assert_eq!(log.key_index().unwrap().pending_records(), 0);
}

#[test]
fn retention_keeps_stream_heads_so_revisions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    append_keys(&mut log, &["old", "old"], 1);
    let model = fill(&mut log);
    let end = log.log_end_offset();
    let removed = log.apply_retention(i64::MAX, -1, 700).unwrap();
    assert!(removed.deleted_segments > 0);
    assert!(dir.path().join("retired.keyindex").exists());
    assert_eq!(head(&mut log, "old"), Some(1), "only in removed segments");
    assert!(entries(&mut log, "old").is_empty(), "its records are gone");
    for key in model.keys() {
        assert_eq!(head(&mut log, key), Some(model[key].len() as i64 - 1));
    }
    let info = append_keys(&mut log, &["old"], 5);
    assert_eq!(info.base_offset, end);
    assert_eq!(head(&mut log, "old"), Some(2), "revisions go on");
    drop(log);
    let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
    assert_eq!(head(&mut log, "old"), Some(2));
}

#[test]
fn turning_the_index_on_indexes_the_whole_log_and_off_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let plain = LogConfig {
        key_index: None,
        ..indexed()
    };
    let mut log = PartitionLog::open(dir.path(), plain).unwrap();
    let model = fill(&mut log);
    assert!(log.key_index().is_none());
    log.set_config(indexed()).unwrap();
    check(&mut log, &model);
    log.set_config(plain).unwrap();
    assert!(log.key_index().is_none());
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("keyindex"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_full_key_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        key_index: Some(KeyIndexConfig {
            cache_keys: 4,
            segment_entries: 5,
        }),
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..6 {
        append_keys(&mut log, &["a", "b"], i);
    }
    // Two entries a batch, five at most: a roll every two batches.
    assert_eq!(base_offsets(dir.path()), vec![0, 4, 8]);
    assert!(log.key_index().unwrap().active_entries() <= 5);
    assert_eq!(head(&mut log, "a"), Some(5));
}

#[test]
fn keys_carried_across_rolls_keep_their_revisions() {
    // A cache larger than the key count: the active table carries every key into the next
    // segment instead of the cache taking their heads.
    let carried = LogConfig {
        key_index: Some(KeyIndexConfig {
            cache_keys: 100,
            segment_entries: 7,
        }),
        ..indexed()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), carried).unwrap();
    let model = fill(&mut log);
    assert!(log.segment_count() > 5);
    check(&mut log, &model);
    // A head asked for between rolls, then the key written again: never stale.
    assert_eq!(head(&mut log, "k1"), Some(model["k1"].len() as i64 - 1));
    append_keys(&mut log, &["k1"], 9);
    log.roll(10).unwrap();
    assert_eq!(head(&mut log, "k1"), Some(model["k1"].len() as i64));
    drop(log);
    let mut log = PartitionLog::open(dir.path(), carried).unwrap();
    assert_eq!(head(&mut log, "k1"), Some(model["k1"].len() as i64));
}

#[test]
fn heads_stay_right_when_the_table_stops_carrying_its_keys() {
    // Cache of 3 keys: with up to 3 keys the table carries them over each roll; a fourth
    // makes the next roll let them all go to the cache and the files.
    let small = LogConfig {
        key_index: Some(KeyIndexConfig {
            cache_keys: 3,
            segment_entries: 1_000,
        }),
        segment_bytes: 1 << 20,
        ..indexed()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small).unwrap();
    // "a" is looked up before its first record: the cache learns "no stream".
    assert_eq!(head(&mut log, "a"), None);
    append_keys(&mut log, &["a", "b"], 1);
    log.roll(2).unwrap(); // carried: 2 keys
    append_keys(&mut log, &["c"], 3);
    log.roll(4).unwrap(); // carried: 3 keys, "a" without records in this segment
    append_keys(&mut log, &["d", "b"], 5);
    log.roll(6).unwrap(); // 4 keys: let go; "a" must not come back as "no stream"
    append_keys(&mut log, &["a", "b", "c", "d"], 7);
    let revisions: Vec<Option<i64>> = ["a", "b", "c", "d"]
        .iter()
        .map(|k| head(&mut log, k))
        .collect();
    assert_eq!(revisions, vec![Some(1), Some(2), Some(1), Some(1)]);
    assert_eq!(entries(&mut log, "a").len(), 2);
}

#[test]
fn keys_with_the_same_hash_keep_their_own_streams() {
    let [ka, kb] = crate::key_index::COLLIDING_KEYS;
    assert_eq!(
        crate::key_index::key_hash(ka),
        crate::key_index::key_hash(kb)
    );
    let raw = |keys: &[&[u8]]| {
        let records: Vec<TestRecord> = keys
            .iter()
            .map(|k| TestRecord {
                key: Some(k.to_vec()),
                ..TestRecord::default()
            })
            .collect();
        build_batch(1, &records)
    };
    let small = LogConfig {
        key_index: Some(KeyIndexConfig {
            cache_keys: 1,
            segment_entries: 3,
        }),
        ..indexed()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small).unwrap();
    let mut expected: HashMap<&[u8], Vec<i64>> = HashMap::new();
    for keys in [&[ka, kb, ka][..], &[kb], &[ka, ka], &[kb, ka]] {
        let info = log.append(&mut raw(keys), 1).unwrap();
        for (n, k) in keys.iter().enumerate() {
            expected
                .entry(k)
                .or_default()
                .push(info.base_offset + n as i64);
        }
    }
    assert!(log.segment_count() > 2, "sealed files hold both keys");
    for reopen in [false, true] {
        if reopen {
            log.close().unwrap();
            log = PartitionLog::open(dir.path(), small).unwrap();
        }
        for k in [ka, kb] {
            let got = log.key_index().unwrap().entries(k);
            let offsets: Vec<i64> = got.iter().map(|e| e.offset).collect();
            let revisions: Vec<i64> = got.iter().map(|e| e.revision).collect();
            assert_eq!(offsets, expected[k], "reopened: {reopen}");
            assert_eq!(revisions, (0..expected[k].len() as i64).collect::<Vec<_>>());
            let head = log.key_index().unwrap().head_revision(k);
            assert_eq!(head, Some(expected[k].len() as i64 - 1));
        }
    }
}
