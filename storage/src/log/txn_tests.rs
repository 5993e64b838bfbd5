//! Aborted-transaction indexes: appended per segment, listed for read_committed fetches,
//! rebuilt to match the log, synced on seal, removed with their segment.

use brook_protocol::batch::testing::simple_batch;

use super::tests::{append_simple, base_offsets, config, seg_file};
use super::*;

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// A log of 3-batch segments (2 records per batch): segments 0, 6, 12, with an aborted
/// transaction recorded in each of the first two (markers at 5 and 11).
fn three_segments(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, segmented()).unwrap();
    for i in 0..7 {
        append_simple(&mut log, i, 2);
        match log.log_end_offset() {
            6 => log.append_aborted_txn(&aborted(1, 0, 5, 6)).unwrap(),
            12 => log.append_aborted_txn(&aborted(2, 8, 11, 12)).unwrap(),
            _ => {}
        }
    }
    assert_eq!(base_offsets(dir), vec![0, 6, 12]);
    log
}

#[test]
fn aborted_transactions_are_listed_from_the_fetch_offset_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_segments(dir.path());
    assert!(seg_file(dir.path(), 0, "txnindex").exists());
    assert!(seg_file(dir.path(), 6, "txnindex").exists());
    assert!(
        !seg_file(dir.path(), 12, "txnindex").exists(),
        "no abort, no file"
    );
    assert_eq!(
        log.aborted_txns(0, 14).unwrap(),
        vec![aborted(1, 0, 5, 6), aborted(2, 8, 11, 12)]
    );
    assert_eq!(
        log.aborted_txns(6, 14).unwrap(),
        vec![aborted(2, 8, 11, 12)]
    );
    assert_eq!(log.aborted_txns(0, 3).unwrap(), vec![aborted(1, 0, 5, 6)]);
    // Ended before the fetch offset, or started at or after the upper bound: not listed.
    assert_eq!(log.aborted_txns(12, 14).unwrap(), vec![]);
    assert_eq!(log.aborted_txns(6, 8).unwrap(), vec![]);
}

#[test]
fn rebuilding_makes_the_indexes_match_the_log_and_retention_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = three_segments(dir.path());
    // As after a crash: the active segment's index names a marker the log lost...
    log.append_aborted_txn(&aborted(9, 12, 13, 14)).unwrap();
    let truth = [aborted(1, 0, 5, 6), aborted(2, 8, 11, 12)];
    log.rebuild_txn_indexes(&truth).unwrap();
    assert_eq!(log.aborted_txns(0, 100).unwrap(), truth.to_vec());
    assert!(!seg_file(dir.path(), 12, "txnindex").exists());
    // ... or lacks one the log holds.
    let with_last = [truth[0], truth[1], aborted(3, 12, 13, 14)];
    log.rebuild_txn_indexes(&with_last).unwrap();
    assert_eq!(log.aborted_txns(12, 100).unwrap(), vec![with_last[2]]);
    log.rebuild_txn_indexes(&truth).unwrap();
    // The first segment goes, and its index with it.
    log.delete_records_before(6).unwrap();
    assert!(!seg_file(dir.path(), 0, "txnindex").exists());
    assert_eq!(log.aborted_txns(6, 100).unwrap(), vec![truth[1]]);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), segmented()).unwrap();
    assert_eq!(log.aborted_txns(6, 100).unwrap(), vec![truth[1]]);
}

/// Three batches of 2 records per segment.
fn segmented() -> LogConfig {
    let size = simple_batch(0, 2).len() as u64;
    LogConfig {
        segment_bytes: size * 3,
        ..config()
    }
}
