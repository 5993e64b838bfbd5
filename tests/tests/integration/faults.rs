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

#[test]
fn failed_fsync_stops_writes_to_that_partition_only() {
    let fs = Arc::new(FaultyFileSystem::new());
    let config = BrokerConfig {
        auto_create_topics_enable: false,
        file_system: Some(fs.clone()),
        ..BrokerConfig::ephemeral()
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
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
