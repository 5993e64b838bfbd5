//! Retention and DeleteRecords through the wire: old segments go by `retention.ms` and
//! `retention.bytes`, the active segment never does, the log start offset moves and is what
//! ListOffsets earliest and Fetch (OFFSET_OUT_OF_RANGE below it) follow, across a restart.

use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use brook_protocol::kafka_protocol::messages::DeleteRecordsRequest;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;

use crate::wire::{create, fetch, list_offset, name, produce};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A batch of `n` records of about 100 bytes each at `timestamp`.
fn batch(timestamp: i64, n: usize) -> Vec<u8> {
    let recs: Vec<_> = (0..n)
        .map(|_| TestRecord {
            value: Some(vec![b'x'; 100]),
            ..Default::default()
        })
        .collect();
    build_batch(timestamp, &recs)
}

fn earliest(c: &mut RawClient, topic: &str) -> i64 {
    list_offset(c, topic, 0, -2).0
}

/// Polls until the log start offset of `topic` moves past 0 (retention runs every 50 ms here).
fn wait_for_start_to_move(c: &mut RawClient, topic: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let start = earliest(c, topic);
        if start > 0 {
            return start;
        }
        assert!(
            Instant::now() < deadline,
            "retention never deleted a segment of {topic}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fast_retention() -> BrokerConfig {
    BrokerConfig {
        log_retention_check_interval_ms: 50,
        auto_create_topics_enable: false,
        ..BrokerConfig::ephemeral()
    }
}

#[test]
fn retention_by_time_and_size_deletes_whole_old_segments_only() {
    let broker = EmbeddedBroker::start(fast_retention()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let small_segments = [("segment.bytes", "2048"), ("retention.ms", "3600000")];

    // Only the active segment, and it is old: it stays.
    assert_eq!(create(&mut c, "only-active", 1, &small_segments), 0);
    assert_eq!(
        produce(&mut c, "only-active", 0, batch(now_ms() - 48 * HOUR_MS, 3)).0,
        0
    );

    // Old segments first, then recent ones: the old ones go, the recent ones stay.
    assert_eq!(create(&mut c, "by-time", 1, &small_segments), 0);
    for _ in 0..10 {
        assert_eq!(
            produce(&mut c, "by-time", 0, batch(now_ms() - 48 * HOUR_MS, 5)).0,
            0
        );
    }
    let first_recent = crate::wire::latest(&mut c, "by-time", 0);
    for _ in 0..10 {
        assert_eq!(produce(&mut c, "by-time", 0, batch(now_ms(), 5)).0, 0);
    }
    let start = wait_for_start_to_move(&mut c, "by-time");
    assert!(
        start <= first_recent,
        "a recent record was deleted: start {start}, first recent {first_recent}"
    );
    assert_eq!(
        fetch(&mut c, "by-time", 0, 0, 0).0,
        ErrorCode::OffsetOutOfRange.code()
    );
    let (code, _, records) = fetch(&mut c, "by-time", 0, start, 0);
    assert_eq!(code, 0);
    assert!(!records.unwrap().is_empty());
    // The same retention pass saw the single, active, old segment and kept it.
    assert_eq!(earliest(&mut c, "only-active"), 0);

    // By size: keep at most ~4 KiB.
    assert_eq!(
        create(
            &mut c,
            "by-size",
            1,
            &[("segment.bytes", "2048"), ("retention.bytes", "4096")]
        ),
        0
    );
    for _ in 0..30 {
        assert_eq!(produce(&mut c, "by-size", 0, batch(now_ms(), 5)).0, 0);
    }
    let end = crate::wire::latest(&mut c, "by-size", 0);
    // A pass that ran while the batches were still arriving may have moved the start only
    // part of the way: wait (bounded) for one that saw them all.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut start = wait_for_start_to_move(&mut c, "by-size");
    while end - start > 70 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        start = earliest(&mut c, "by-size");
    }
    // About 600 bytes a batch of 5: ~4 KiB kept is at most ~7 batches plus the active segment.
    assert!(
        end - start <= 70,
        "kept {} records, more than retention.bytes allows",
        end - start
    );
    assert!(end - start >= 5, "kept only {} records", end - start);
    broker.shutdown();
}

#[test]
fn delete_records_moves_the_log_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        auto_create_topics_enable: false,
        ..BrokerConfig::with_data_dir(dir.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "dr", 1, &[]), 0);
    for i in 0..3 {
        assert_eq!(produce(&mut c, "dr", 0, batch(now_ms(), 5)), (0, i * 5));
    }
    let delete = |c: &mut RawClient, offset: i64| {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("dr"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])]);
        let resp = c.call(2, &req).unwrap();
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(delete(&mut c, 7), (0, 7));
    assert_eq!(earliest(&mut c, "dr"), 7);
    assert_eq!(
        fetch(&mut c, "dr", 0, 3, 0).0,
        ErrorCode::OffsetOutOfRange.code()
    );
    assert_eq!(fetch(&mut c, "dr", 0, 7, 0).0, 0);
    assert_eq!(delete(&mut c, 2), (0, 7), "never backwards");
    assert_eq!(delete(&mut c, 100).0, ErrorCode::OffsetOutOfRange.code());
    assert_eq!(delete(&mut c, -1), (0, 15), "-1 means the high watermark");
    broker.shutdown();

    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(earliest(&mut c, "dr"), 15);
    assert_eq!(produce(&mut c, "dr", 0, batch(now_ms(), 1)), (0, 15));
    broker.shutdown();
}
