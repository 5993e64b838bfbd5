//! Partitions are cheap: an empty one holds no disk blocks and, once idle, no file descriptor;
//! a topic whose creation fails leaves nothing behind; directories that belong to no topic
//! are removed at start; two brokers cannot share a data directory.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::simple_batch;
use brook_protocol::kafka_protocol::messages::MetadataRequest;
use brook_protocol::ErrorCode;
use brook_storage::testing::FaultyFileSystem;
use brook_tests::RawClient;

use crate::process::BrokerProcess;
use crate::wire::{create, produce};

/// Disk blocks of every file under `dir`.
fn blocks_under(dir: &Path) -> u64 {
    let mut blocks = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            blocks += blocks_under(&entry.path());
        } else {
            blocks += meta.blocks();
        }
    }
    blocks
}

fn topic_names(c: &mut RawClient) -> Vec<String> {
    c.call(12, &MetadataRequest::default().with_topics(None))
        .unwrap()
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect()
}

#[test]
fn empty_partitions_hold_no_blocks_and_idle_ones_no_descriptors() {
    let data = tempfile::tempdir().unwrap();
    // 128 descriptors in all: 64 for partition files, yet 600 partitions (1,800 files) work.
    let broker = BrokerProcess::start_with_fd_limit(
        &format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            data.path().display()
        ),
        128,
    );
    let mut c = RawClient::connect(broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "wide", 600, &[]), 0);
    let files: Vec<_> = (0..600)
        .map(|p| data.path().join(format!("wide-{p}")))
        .collect();
    assert_eq!(
        files.iter().map(|d| blocks_under(d)).sum::<u64>(),
        0,
        "empty partitions hold disk blocks"
    );
    for p in (0..600).step_by(7) {
        assert_eq!(produce(&mut c, "wide", p, simple_batch(1, 2)).0, 0);
    }
    assert!(blocks_under(&data.path().join("wide-0")) > 0);
    assert_eq!(blocks_under(&data.path().join("wide-1")), 0);
    assert!(
        broker.open_fds() <= 128,
        "{} descriptors open",
        broker.open_fds()
    );
    // Every partition still reads back (files reopen on use).
    for p in (0..600).step_by(7) {
        let (code, hw, _) = crate::wire::fetch(&mut c, "wide", p, 0, 0);
        assert_eq!((code, hw), (0, 2), "partition {p}");
    }
}

#[test]
fn a_failed_creation_leaves_nothing_behind_and_leftovers_go_at_start() {
    let data = tempfile::tempdir().unwrap();
    let faults = Arc::new(FaultyFileSystem::new());
    let config = || BrokerConfig {
        file_system: Some(faults.clone()),
        auto_create_topics_enable: false,
        ..BrokerConfig::with_data_dir(data.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    // The one sync that makes the new partitions durable fails: the creation fails whole.
    faults.fail_next_syncs(1);
    assert_eq!(
        create(&mut c, "doomed", 50, &[]),
        ErrorCode::KafkaStorageError.code()
    );
    faults.heal();
    assert!(!topic_names(&mut c).contains(&"doomed".to_string()));
    let left: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("doomed-"))
        .collect();
    assert!(left.is_empty(), "{} directories left", left.len());
    assert_eq!(create(&mut c, "doomed", 50, &[]), 0, "created on retry");
    broker.shutdown();

    // A directory of no topic (a crash between creating it and the metadata write) is removed
    // at the next start; the topic's own directories stay.
    std::fs::create_dir(data.path().join("ghost-0")).unwrap();
    std::fs::create_dir(data.path().join("doomed-50")).unwrap();
    let broker = EmbeddedBroker::start(config()).unwrap();
    assert!(!data.path().join("ghost-0").exists());
    assert!(!data.path().join("doomed-50").exists());
    assert!(data.path().join("doomed-49").exists());

    // A second broker on the same data directory refuses to start.
    let second = EmbeddedBroker::start(config());
    assert!(second.is_err(), "two brokers on one data directory");
    broker.shutdown();
}

/// A clean stop is recorded (so the next start skips recovery) even with a consumer group's
/// offsets partition open and data not yet flushed.
#[test]
fn a_clean_stop_is_recorded_with_groups_and_unflushed_data() {
    use brook_protocol::kafka_protocol::messages::FindCoordinatorRequest;
    use brook_protocol::kafka_protocol::protocol::StrBytes;
    let data = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        // Nothing is flushed by time during the test.
        log_flush_interval_ms: 3_600_000,
        ..BrokerConfig::with_data_dir(data.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let found = c
        .call(
            3,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        )
        .unwrap();
    assert_eq!(found.error_code, 0);
    assert_eq!(create(&mut c, "t", 2, &[]), 0);
    let mut produce_acks1 = crate::wire::produce_request("t", 1, simple_batch(1, 3), 1);
    produce_acks1.timeout_ms = 1000;
    c.call(9, &produce_acks1).unwrap();
    broker.shutdown();
    assert!(
        data.path().join(".brook-clean-shutdown").exists(),
        "the clean stop was not recorded"
    );
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(crate::wire::latest(&mut c, "t", 1), 3);
    broker.shutdown();
}
