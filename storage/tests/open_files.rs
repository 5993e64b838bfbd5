//! The descriptor budget (`set_max_open_files`), in a process of its own since the budget is
//! process-wide: many logs stay correct while their files are closed and reopened behind
//! them, and logs with unsynced writes keep their `.log` descriptors until synced.

#![allow(clippy::unwrap_used)]

use brook_protocol::batch::testing::simple_batch;
use brook_storage::{
    open_files, set_max_open_files, LogConfig, OpenMode, OpenOptions, PartitionLog,
};

const LOGS: usize = 40;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        segment_index_bytes: 4096,
        index_interval_bytes: 0,
        ..LogConfig::default()
    }
}

fn read_all(log: &PartitionLog) -> Vec<u8> {
    log.read(log.log_start_offset(), usize::MAX)
        .unwrap()
        .iter()
        .flat_map(|b| b.iter().copied())
        .collect()
}

#[test]
fn logs_stay_correct_under_a_small_descriptor_budget() {
    let dir = tempfile::tempdir().unwrap();
    set_max_open_files(32);
    let mut logs: Vec<PartitionLog> = (0..LOGS)
        .map(|i| PartitionLog::open(&dir.path().join(format!("p-{i}")), config()).unwrap())
        .collect();
    let mut expected: Vec<Vec<u8>> = vec![Vec::new(); LOGS];
    for round in 0..30 {
        for (i, log) in logs.iter_mut().enumerate() {
            let mut b = simple_batch(round, 20);
            log.append(&mut b, 0).unwrap();
            expected[i].extend_from_slice(&b);
        }
        if round % 3 == 0 {
            for log in &mut logs {
                log.flush().unwrap();
            }
        }
    }
    // Unsynced `.log` files keep their descriptors: 40 logs are over the budget now.
    assert!(open_files() > 32, "{} open", open_files());
    for log in &mut logs {
        log.flush().unwrap();
    }
    set_max_open_files(32);
    assert!(open_files() <= 32, "{} open after syncing", open_files());
    for (log, want) in logs.iter().zip(&expected) {
        assert_eq!(&read_all(log), want);
        assert!(log.batch_with_max_timestamp().unwrap().is_some());
    }
    // A clean close and reopen finds every index intact (no rebuild, nothing lost).
    for log in logs.drain(..) {
        log.close().unwrap();
    }
    for (i, want) in expected.iter().enumerate() {
        let log = PartitionLog::open_with(
            &dir.path().join(format!("p-{i}")),
            config(),
            OpenOptions::default().with_mode(OpenMode::AfterCleanShutdown),
        )
        .unwrap();
        assert_eq!(log.recovery_report().indexes_rebuilt, 0, "log {i}");
        assert_eq!(log.recovery_report().segments_scanned, 0, "log {i}");
        assert_eq!(&read_all(&log), want);
    }
}
