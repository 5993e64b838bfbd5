//! I/O faults injected under a running broker through the storage file-system trait: a failed
//! fsync stops the partition from accepting writes and acknowledges nothing written after it;
//! reads and other partitions carry on.

use std::sync::Arc;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::simple_batch;
use brook_protocol::ErrorCode;
use brook_storage::testing::FaultyFileSystem;
use brook_tests::RawClient;

use crate::wire::{create, fetch, latest, produce};

/// A broker whose logs live on a file system the test can make fail, and a client.
fn broker_on_faulty_fs() -> (Arc<FaultyFileSystem>, EmbeddedBroker, RawClient) {
    let fs = Arc::new(FaultyFileSystem::new());
    let config = BrokerConfig {
        auto_create_topics_enable: false,
        file_system: Some(fs.clone()),
        ..BrokerConfig::ephemeral()
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let client = RawClient::connect(&broker.bootstrap()).unwrap();
    (fs, broker, client)
}

#[test]
fn failed_fsync_stops_writes_to_that_partition_only() {
    let (fs, broker, mut c) = broker_on_faulty_fs();
    assert_eq!(create(&mut c, "victim", 1, &[]), 0);
    assert_eq!(create(&mut c, "bystander", 1, &[]), 0);

    // acks=all (produce() sends -1) is acknowledged after an fsync.
    let before = fs.sync_calls();
    assert_eq!(produce(&mut c, "victim", 0, simple_batch(1, 3)), (0, 0));
    assert!(
        fs.sync_calls() > before,
        "acks=all was acknowledged without an fsync"
    );

    // The next fsync fails: the batch written before it is not acknowledged...
    fs.fail_next_syncs(1);
    assert_eq!(
        produce(&mut c, "victim", 0, simple_batch(2, 3)).0,
        ErrorCode::KafkaStorageError.code()
    );
    assert_eq!(fs.failed_syncs(), 1);
    // ...and the partition refuses writes from then on, even with the disk healthy again.
    assert_eq!(
        produce(&mut c, "victim", 0, simple_batch(3, 3)).0,
        ErrorCode::KafkaStorageError.code()
    );
    // Reads are still served.
    let (code, _, records) = fetch(&mut c, "victim", 0, 0, 0);
    assert_eq!(code, 0);
    assert!(!records.unwrap().is_empty());
    assert!(latest(&mut c, "victim", 0) >= 3);

    // Other partitions are unaffected.
    assert_eq!(produce(&mut c, "bystander", 0, simple_batch(4, 2)), (0, 0));
    broker.shutdown();
}

/// Waits (bounded) until the file system has seen more than `than` syncs.
fn wait_for_syncs(fs: &FaultyFileSystem, than: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if fs.sync_calls() > than {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn acks_1_data_is_flushed_in_the_background() {
    let (fs, broker, mut c) = broker_on_faulty_fs();
    // flush.ms: an hour here, so only flush.messages can trigger the first flush.
    assert_eq!(
        create(
            &mut c,
            "by-count",
            1,
            &[("flush.ms", "3600000"), ("flush.messages", "5")]
        ),
        0
    );
    assert_eq!(create(&mut c, "by-time", 1, &[("flush.ms", "100")]), 0);

    let acks_1 = |c: &mut RawClient, topic: &str, n: usize| {
        let req = crate::wire::produce_request(topic, 0, simple_batch(1, n), 1);
        let resp = c.call(9, &req).unwrap();
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    };
    let before = fs.sync_calls();
    acks_1(&mut c, "by-count", 3);
    acks_1(&mut c, "by-count", 3);
    assert!(
        wait_for_syncs(&fs, before),
        "6 unflushed records with flush.messages=5 were never flushed"
    );

    let before = fs.sync_calls();
    acks_1(&mut c, "by-time", 1);
    assert!(
        wait_for_syncs(&fs, before),
        "acks=1 data was not flushed within flush.ms"
    );
    broker.shutdown();
}

#[test]
fn acks_1_data_is_flushed_once_half_the_cache_window_is_unflushed() {
    let fs = Arc::new(FaultyFileSystem::new());
    let config = BrokerConfig {
        file_system: Some(fs.clone()),
        log_cache_window_bytes: 64 * 1024,
        ..BrokerConfig::ephemeral()
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    // Neither flush.ms nor flush.messages will trigger a flush during the test.
    assert_eq!(create(&mut c, "window", 1, &[("flush.ms", "3600000")]), 0);
    let big = brook_protocol::batch::testing::build_batch(
        1,
        &[brook_protocol::batch::testing::TestRecord {
            value: Some(vec![7; 20_000]),
            ..Default::default()
        }],
    );
    let acks_1 = |c: &mut RawClient| {
        let req = crate::wire::produce_request("window", 0, big.clone(), 1);
        let resp = c.call(9, &req).unwrap();
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    };
    let before = fs.sync_calls();
    acks_1(&mut c);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(fs.sync_calls(), before, "20 KB is below half the window");
    acks_1(&mut c);
    assert!(
        wait_for_syncs(&fs, before),
        "40 KB unflushed with a 64 KiB window was never flushed"
    );
    broker.shutdown();
}
