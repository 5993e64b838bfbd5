//! The transaction APIs through the wire, for the answers clients cannot easily provoke:
//! epoch bumps and KIP-360 checks, the version-dependent fencing codes, AddPartitionsToTxn's
//! all-or-nothing errors, EndTxn from each state, KIP-890 part 1 verification on Produce,
//! DescribeTransactions, ListTransactions and DescribeProducers, and the versions ApiVersions
//! advertises.

use brook_broker::EmbeddedBroker;
use brook_protocol::batch::testing::{set_producer, simple_batch};
use brook_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use brook_protocol::kafka_protocol::messages::describe_producers_request::TopicRequest;
use brook_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiVersionsRequest, DescribeProducersRequest,
    DescribeTransactionsRequest, EndTxnRequest, InitProducerIdRequest, ListTransactionsRequest,
    ProducerId, TopicName, TransactionalId,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_storage::testing::PowerLossFileSystem;
use brook_tests::RawClient;

use crate::wire::{create, produce_request};

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// InitProducerId at `version`: (error, producer id, epoch).
fn init(
    c: &mut RawClient,
    version: i16,
    id: &str,
    timeout_ms: i32,
    expected: (i64, i16),
) -> (i16, i64, i16) {
    let r = c
        .call(
            version,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(expected.0))
                .with_producer_epoch(expected.1),
        )
        .unwrap();
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn v`version` (0-3): the error of each partition, in request order.
fn add(
    c: &mut RawClient,
    version: i16,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<i16> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in partitions {
        match topics.iter_mut().find(|x| x.name.as_str() == *t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let r = c
        .call(
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(producer.0))
                .with_v3_and_below_producer_epoch(producer.1)
                .with_v3_and_below_topics(topics),
        )
        .unwrap();
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

fn end(c: &mut RawClient, version: i16, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    c.call(
        version,
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    )
    .unwrap()
    .error_code
}

/// Produce at `version` of one transactional batch (or not) of `producer`.
fn produce_txn(
    c: &mut RawClient,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    producer: (i64, i16),
    sequence: i32,
) -> i16 {
    let mut batch = simple_batch(1_700_000_000_000, 2);
    set_producer(&mut batch, producer.0, producer.1, sequence, true);
    let req =
        produce_request(topic, 0, batch, -1).with_transactional_id(transactional_id.map(txn_id));
    c.call(version, &req).unwrap().responses[0].partition_responses[0].error_code
}

const FENCED: i16 = 90;
const INVALID_EPOCH: i16 = 47;

#[test]
fn init_producer_id_bumps_epochs_and_checks_kip_360_fields_with_versioned_fencing_codes() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let (e, pid, epoch) = init(&mut c, 4, "orders", 60_000, (-1, -1));
    assert_eq!((e, epoch), (0, 0));
    let (e, pid2, epoch) = init(&mut c, 4, "orders", 60_000, (-1, -1));
    assert_eq!(
        (e, pid2, epoch),
        (0, pid, 1),
        "same producer id, epoch bumped"
    );
    // KIP-360: the current id and epoch bump; a stale epoch is fenced (47 before v4).
    assert_eq!(init(&mut c, 4, "orders", 60_000, (pid, 1)), (0, pid, 2));
    assert_eq!(init(&mut c, 4, "orders", 60_000, (pid, 0)).0, FENCED);
    assert_eq!(init(&mut c, 3, "orders", 60_000, (pid, 0)).0, INVALID_EPOCH);
    // Only one of the two fields set is malformed.
    assert_eq!(
        init(&mut c, 4, "orders", 60_000, (pid, -1)).0,
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        init(&mut c, 4, "slow", 900_001, (-1, -1)).0,
        ErrorCode::InvalidTransactionTimeout.code()
    );
    assert_eq!(init(&mut c, 4, "slow", 900_000, (-1, -1)).0, 0);
    broker.shutdown();
}

#[test]
fn partitions_end_and_produce_follow_kafkas_transaction_rules() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "t", 2, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "saga", 60_000, (-1, -1));
    let me = (pid, epoch);

    // Unknown partitions: nothing is added, the known ones are not attempted.
    assert_eq!(
        add(&mut c, 3, "saga", me, &[("t", 0), ("t", 7)]),
        vec![
            ErrorCode::OperationNotAttempted.code(),
            ErrorCode::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(
        add(&mut c, 3, "nobody", me, &[("t", 0)]),
        vec![ErrorCode::InvalidProducerIdMapping.code()]
    );
    assert_eq!(
        add(&mut c, 1, "saga", (pid, epoch + 1), &[("t", 0)]),
        vec![INVALID_EPOCH]
    );
    assert_eq!(
        add(&mut c, 2, "saga", (pid, epoch + 1), &[("t", 0)]),
        vec![FENCED]
    );
    // Nothing is open yet: EndTxn has nothing to end.
    assert_eq!(
        end(&mut c, 3, "saga", me, true),
        ErrorCode::InvalidTxnState.code()
    );

    // KIP-890 part 1: writing to a partition not in the transaction is refused.
    assert_eq!(add(&mut c, 3, "saga", me, &[("t", 0)]), vec![0]);
    assert_eq!(
        produce_txn(&mut c, 9, Some("saga"), "t", me, 0),
        0,
        "partition 0 was added"
    );
    let mut other = produce_request("t", 1, simple_batch(0, 1), -1);
    let mut batch = simple_batch(1_700_000_000_000, 1);
    set_producer(&mut batch, pid, epoch, 0, true);
    other = other.with_transactional_id(Some(txn_id("saga")));
    other.topic_data[0].partition_data[0].records = Some(batch.into());
    let code = |c: &mut RawClient, v: i16| {
        c.call(v, &other).unwrap().responses[0].partition_responses[0].error_code
    };
    assert_eq!(code(&mut c, 9), ErrorCode::InvalidTxnState.code());
    assert_eq!(code(&mut c, 11), ErrorCode::TransactionAbortable.code());
    assert_eq!(
        produce_txn(&mut c, 9, None, "t", (pid + 100, 0), 0),
        ErrorCode::TransactionalIdAuthorizationFailed.code(),
        "a transactional batch needs the request's transactional id"
    );

    // DescribeProducers shows the open transaction's first offset.
    let r = c
        .call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0])]),
        )
        .unwrap();
    let producers = &r.topics[0].partitions[0].active_producers;
    assert_eq!(producers.len(), 1);
    assert_eq!(
        (
            producers[0].producer_id.0,
            producers[0].current_txn_start_offset,
            producers[0].last_sequence
        ),
        (pid, 0, 1)
    );

    // Commit; a retry is fine, the opposite decision is not.
    assert_eq!(end(&mut c, 3, "saga", me, true), 0);
    assert_eq!(end(&mut c, 3, "saga", me, true), 0);
    assert_eq!(
        end(&mut c, 3, "saga", me, false),
        ErrorCode::InvalidTxnState.code()
    );
    assert_eq!(
        end(&mut c, 1, "saga", (pid, epoch + 1), true),
        INVALID_EPOCH
    );

    // The admin views.
    let d = c
        .call(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id("saga"), txn_id("unknown")]),
        )
        .unwrap();
    let saga = &d.transaction_states[0];
    assert_eq!(
        (
            saga.error_code,
            saga.transaction_state.as_str(),
            saga.producer_id.0
        ),
        (0, "CompleteCommit", pid)
    );
    assert!(saga.topics.is_empty());
    assert_eq!(
        d.transaction_states[1].error_code,
        ErrorCode::TransactionalIdNotFound.code()
    );
    let l = c
        .call(
            1,
            &ListTransactionsRequest::default()
                .with_state_filters(vec![
                    StrBytes::from_static_str("CompleteCommit"),
                    StrBytes::from_static_str("Bogus"),
                ])
                .with_duration_filter(-1),
        )
        .unwrap();
    assert_eq!(l.transaction_states.len(), 1);
    assert_eq!(l.transaction_states[0].transactional_id.as_str(), "saga");
    assert_eq!(
        l.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    let none = c
        .call(
            1,
            &ListTransactionsRequest::default()
                .with_producer_id_filters(vec![ProducerId(pid + 1)])
                .with_duration_filter(-1),
        )
        .unwrap();
    assert!(none.transaction_states.is_empty());
    broker.shutdown();
}

#[test]
fn api_versions_stay_below_kip_890_part_2() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let r = c.call(2, &ApiVersionsRequest::default()).unwrap();
    let max = |key: i16| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key)
            .map(|k| k.max_version)
    };
    // Produce 11, EndTxn 4, TxnOffsetCommit 4: the versions before transaction version 2.
    assert_eq!((max(0), max(26), max(28)), (Some(11), Some(4), Some(4)));
    assert_eq!((max(24), max(25), max(22)), (Some(5), Some(4), Some(5)));
    // No finalized `transaction.version` either (Brook finalizes no feature).
    broker.shutdown();
}

/// OffsetFetch v7 of `group`'s offset for `topic` partition 0: (error, offset).
fn fetch_offset(c: &mut RawClient, group: &str, topic: &str, require_stable: bool) -> (i16, i64) {
    use brook_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use brook_protocol::kafka_protocol::messages::{GroupId, OffsetFetchRequest};
    let r = c
        .call(
            7,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0])]))
                .with_require_stable(require_stable),
        )
        .unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// TxnOffsetCommit v`version` of offset `offset` for `topic` partition 0: the error.
fn txn_commit(
    c: &mut RawClient,
    version: i16,
    id: &str,
    group: &str,
    producer: (i64, i16),
    topic: &str,
    offset: i64,
) -> i16 {
    use brook_protocol::kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use brook_protocol::kafka_protocol::messages::{GroupId, TxnOffsetCommitRequest};
    let r = c
        .call(
            version,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(id))
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)])]),
        )
        .unwrap();
    r.topics[0].partitions[0].error_code
}

#[test]
fn transactional_offsets_are_unstable_until_the_commit_and_need_add_offsets_first() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "in", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "projector", 60_000, (-1, -1));
    let me = (pid, epoch);
    // The offsets topic is not in a transaction yet (KIP-890 part 1).
    assert_eq!(add(&mut c, 3, "projector", me, &[("in", 0)]), vec![0]);
    assert_eq!(
        txn_commit(&mut c, 3, "projector", "g", me, "in", 5),
        ErrorCode::InvalidTxnState.code()
    );
    assert_eq!(
        txn_commit(&mut c, 4, "projector", "g", me, "in", 5),
        ErrorCode::TransactionAbortable.code()
    );
    add_offsets(&mut c, "projector", me, "g");
    assert_eq!(txn_commit(&mut c, 3, "projector", "g", me, "in", 5), 0);
    assert_eq!(
        txn_commit(&mut c, 3, "projector", "g", (pid, epoch + 1), "in", 6),
        INVALID_EPOCH
    );
    // Pending: not returned, and UNSTABLE_OFFSET_COMMIT for a client that requires stable.
    assert_eq!(fetch_offset(&mut c, "g", "in", false), (0, -1));
    assert_eq!(
        fetch_offset(&mut c, "g", "in", true),
        (ErrorCode::UnstableOffsetCommit.code(), -1)
    );
    assert_eq!(end(&mut c, 3, "projector", me, true), 0);
    assert_eq!(fetch_offset(&mut c, "g", "in", true), (0, 5));
    broker.shutdown();
}

#[test]
fn idle_transactional_ids_expire() {
    let broker = EmbeddedBroker::start(brook_broker::BrokerConfig {
        transactional_id_expiration_ms: 300,
        transaction_remove_expired_transaction_cleanup_interval_ms: 100,
        ..brook_broker::BrokerConfig::ephemeral()
    })
    .unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let (e, pid, _) = init(&mut c, 4, "short-lived", 60_000, (-1, -1));
    assert_eq!(e, 0);
    let describe = |c: &mut RawClient| {
        c.call(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id("short-lived")]),
        )
        .unwrap()
        .transaction_states[0]
            .error_code
    };
    assert_eq!(describe(&mut c), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while describe(&mut c) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the id did not expire"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(describe(&mut c), ErrorCode::TransactionalIdNotFound.code());
    // Its old producer id is unknown now; a new InitProducerId starts it again.
    assert_eq!(create(&mut c, "e", 1, &[]), 0);
    assert_eq!(
        add(&mut c, 3, "short-lived", (pid, 0), &[("e", 0)]),
        vec![ErrorCode::InvalidProducerIdMapping.code()]
    );
    assert_eq!(init(&mut c, 4, "short-lived", 60_000, (-1, -1)).0, 0);
    broker.shutdown();
}

/// ListOffsets latest under read_committed: the last stable offset.
fn stable_end(c: &mut RawClient, topic: &str) -> i64 {
    use brook_protocol::kafka_protocol::messages::list_offsets_request::{
        ListOffsetsPartition, ListOffsetsTopic,
    };
    use brook_protocol::kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(1)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    c.call(7, &req).unwrap().topics[0].partitions[0].offset
}

#[test]
fn a_transaction_left_in_prepare_commit_is_completed_after_a_restart() {
    use brook_protocol::batch::testing::{build_batch, TestRecord};
    let dir = tempfile::tempdir().unwrap();
    let config = || brook_broker::BrokerConfig::with_data_dir(dir.path());
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "pc", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "pc-writer", 60_000, (-1, -1));
    assert_eq!(
        add(&mut c, 3, "pc-writer", (pid, epoch), &[("pc", 0)]),
        vec![0]
    );
    assert_eq!(
        produce_txn(&mut c, 9, Some("pc-writer"), "pc", (pid, epoch), 0),
        0
    );
    assert_eq!(
        stable_end(&mut c, "pc"),
        0,
        "the open transaction holds the LSO"
    );
    drop(c);
    broker.shutdown();

    // As if the broker had died right after making PrepareCommit durable: append that record
    // (Kafka's TransactionLogValue v0, as docs/storage-format.md lays it out) to the log.
    let mut key = vec![0, 0];
    key.extend_from_slice(&(9i16).to_be_bytes());
    key.extend_from_slice(b"pc-writer");
    let mut value = vec![0, 0];
    value.extend_from_slice(&pid.to_be_bytes());
    value.extend_from_slice(&epoch.to_be_bytes());
    value.extend_from_slice(&60_000i32.to_be_bytes());
    value.push(2); // PrepareCommit
    value.extend_from_slice(&1i32.to_be_bytes());
    value.extend_from_slice(&2i16.to_be_bytes());
    value.extend_from_slice(b"pc");
    value.extend_from_slice(&1i32.to_be_bytes());
    value.extend_from_slice(&0i32.to_be_bytes());
    value.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    value.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    let mut batch = build_batch(
        1_700_000_000_000,
        &[TestRecord {
            key: Some(key),
            value: Some(value),
            ..TestRecord::default()
        }],
    );
    let mut log = brook_storage::PartitionLog::open(
        &dir.path().join("__transaction_state-0"),
        brook_storage::LogConfig::default(),
    )
    .unwrap();
    log.append(&mut batch, 1_700_000_000_000).unwrap();
    log.close().unwrap();

    // The restarted coordinator finds it and writes the COMMIT marker.
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stable_end(&mut c, "pc") != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transaction was not completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The Complete record follows the markers without being awaited, as in Kafka.
    loop {
        let d = c
            .call(
                0,
                &DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![txn_id("pc-writer")]),
            )
            .unwrap();
        let state = d.transaction_states[0].transaction_state.to_string();
        if state == "CompleteCommit" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {state} after the markers"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    broker.shutdown();
}

/// EndTxn is answered once its markers are appended; their fsync and the `Complete*` record
/// follow. A producer's next AddPartitionsToTxn, sent right behind EndTxn on the same
/// connection, waits for that completion instead of meeting CONCURRENT_TRANSACTIONS (which
/// would cost the client a retry backoff per transaction). With fsync on, so the completion
/// takes real time.
#[test]
fn the_next_transaction_starts_right_behind_end_txn() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        EmbeddedBroker::start(brook_broker::BrokerConfig::with_data_dir(dir.path())).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "behind", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "behind-writer", 60_000, (-1, -1));
    let producer = (pid, epoch);
    assert_eq!(
        add(&mut c, 3, "behind-writer", producer, &[("behind", 0)]),
        vec![0]
    );
    for round in 0..20 {
        assert_eq!(
            produce_txn(
                &mut c,
                9,
                Some("behind-writer"),
                "behind",
                producer,
                round * 2
            ),
            0
        );
        let commit = c.encode(
            3,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id("behind-writer"))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(round % 4 != 3),
        );
        let next = c.encode(
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id("behind-writer"))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name("behind"))
                    .with_partitions(vec![0])]),
        );
        c.send_raw(&[commit, next].concat()).unwrap();
        assert_eq!(c.read_response::<EndTxnRequest>(3).unwrap().error_code, 0);
        let added = c.read_response::<AddPartitionsToTxnRequest>(3).unwrap();
        let code =
            added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        assert_eq!(
            code, 0,
            "round {round}: the next transaction could not start"
        );
    }
    // Every transaction ended whole: 20 markers after 20 batches of 2, the last one open.
    assert_eq!(end(&mut c, 3, "behind-writer", producer, true), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stable_end(&mut c, "behind") != 20 * 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the last transaction did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    broker.shutdown();
}

/// AddOffsetsToTxn v3 of `group` for `producer`'s transaction of `id`: must succeed.
fn add_offsets(c: &mut RawClient, id: &str, producer: (i64, i16), group: &str) {
    use brook_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, GroupId};
    let added = c
        .call(
            3,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_group_id(GroupId(StrBytes::from_string(group.to_string()))),
        )
        .unwrap();
    assert_eq!(added.error_code, 0);
}

/// Copies directory `from` to `to` (files only, one level: a partition's directory).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// AddPartitionsToTxn is answered before its record is fsynced. As if a crash lost those
/// records while the transactions' produced batches survived (`__transaction_state` is put
/// back to a copy taken before them): at the restart, the id whose transaction it still is
/// gets the partition back (its producer commits normally), and a transaction no id accounts
/// for is aborted, so no partition stays blocked.
#[test]
fn transactions_whose_add_partitions_a_crash_lost_are_adopted_or_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let config = || brook_broker::BrokerConfig::with_data_dir(dir.path());
    let state_dir = dir.path().join("__transaction_state-0");
    let snapshot = dir.path().join("snapshot");

    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "kept", 1, &[]), 0);
    assert_eq!(create(&mut c, "orphaned", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "kept-writer", 60_000, (-1, -1));
    drop(c);
    broker.shutdown();
    copy_dir(&state_dir, &snapshot);

    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        add(&mut c, 3, "kept-writer", (pid, epoch), &[("kept", 0)]),
        vec![0]
    );
    assert_eq!(
        produce_txn(&mut c, 9, Some("kept-writer"), "kept", (pid, epoch), 0),
        0
    );
    add_offsets(&mut c, "kept-writer", (pid, epoch), "kept-group");
    let kept = (pid, epoch);
    assert_eq!(
        txn_commit(&mut c, 3, "kept-writer", "kept-group", kept, "kept", 7),
        0
    );
    let (_, other, other_epoch) = init(&mut c, 4, "lost-writer", 60_000, (-1, -1));
    assert_eq!(
        add(
            &mut c,
            3,
            "lost-writer",
            (other, other_epoch),
            &[("orphaned", 0)]
        ),
        vec![0]
    );
    assert_eq!(
        produce_txn(
            &mut c,
            9,
            Some("lost-writer"),
            "orphaned",
            (other, other_epoch),
            0
        ),
        0
    );
    let lost = (other, other_epoch);
    add_offsets(&mut c, "lost-writer", lost, "lost-group");
    assert_eq!(
        txn_commit(&mut c, 3, "lost-writer", "lost-group", lost, "orphaned", 9),
        0
    );
    drop(c);
    broker.shutdown();
    std::fs::remove_dir_all(&state_dir).unwrap();
    copy_dir(&snapshot, &state_dir);
    std::fs::remove_dir_all(&snapshot).unwrap();

    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    // "kept-writer" is ongoing again with its partition; its producer commits as it meant to.
    let d = c
        .call(
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id("kept-writer")]),
        )
        .unwrap();
    let t = &d.transaction_states[0];
    assert_eq!(t.transaction_state.as_str(), "Ongoing");
    let topics: Vec<&str> = t.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics, ["__consumer_offsets", "kept"]);
    assert_eq!(
        fetch_offset(&mut c, "kept-group", "kept", true),
        (ErrorCode::UnstableOffsetCommit.code(), -1)
    );
    assert_eq!(stable_end(&mut c, "kept"), 0, "still open until its commit");
    assert_eq!(end(&mut c, 3, "kept-writer", (pid, epoch), true), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stable_end(&mut c, "kept") != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit did not end it"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(fetch_offset(&mut c, "kept-group", "kept", true), (0, 7));
    // "lost-writer" is unknown after the restart: its transaction was aborted at start,
    // its records and its offsets with it.
    assert_eq!(stable_end(&mut c, "orphaned"), 3);
    assert_eq!(
        fetch_offset(&mut c, "lost-group", "orphaned", true),
        (0, -1)
    );
    broker.shutdown();
}

/// A broker on a fresh power-loss model of `root` (what is on disk now counts as durable),
/// with its data directory in `root/data`.
fn start_on_power_model(
    root: &std::path::Path,
) -> (EmbeddedBroker, std::sync::Arc<PowerLossFileSystem>) {
    let model = std::sync::Arc::new(PowerLossFileSystem::new(root).unwrap());
    let broker = EmbeddedBroker::start(brook_broker::BrokerConfig {
        file_system: Some(model.clone()),
        ..brook_broker::BrokerConfig::with_data_dir(root.join("data"))
    })
    .unwrap();
    (broker, model)
}

/// Sends `request` on a connection of its own, cuts the power 300 ms later (whether it was
/// answered or not), and starts the broker again; returns a client of the new one, after
/// giving its coordinator time to complete what it found in `Prepare*`.
fn cut_during(
    root: &std::path::Path,
    broker: EmbeddedBroker,
    model: &PowerLossFileSystem,
    request: impl FnOnce(&mut RawClient) + Send + 'static,
) -> (EmbeddedBroker, RawClient) {
    let writer = {
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || {
            let mut c = RawClient::connect(&bootstrap).unwrap();
            // Answered with an error once the power is gone, or not at all.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| request(&mut c)));
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    model.cut();
    writer.join().unwrap();
    broker.shutdown();
    model.restore().unwrap();
    let (broker, _) = start_on_power_model(root);
    let c = RawClient::connect(&broker.bootstrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    (broker, c)
}

/// A power cut while a transaction's `CompleteCommit` is not durable yet, with its
/// producer's next transaction already begun in the same partition. `__transaction_state`
/// then ends in `PrepareCommit`, which a restart completes again: had the next transaction's
/// records been appended (and made durable by their partition's own fsync), that COMMIT
/// marker would close them too, committing what the producer never committed. They are
/// appended only once the completion is durable, so the cut finds none: the restart
/// completes the first transaction and nothing else.
#[test]
fn a_power_cut_does_not_commit_the_next_transaction_with_the_previous_one() {
    use brook_protocol::batch::Batches;
    use brook_protocol::control::{self, ControlType};
    let root = tempfile::tempdir().unwrap();
    let (broker, model) = start_on_power_model(root.path());
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "cut", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "cut-writer", 60_000, (-1, -1));
    let producer = (pid, epoch);
    assert_eq!(
        add(&mut c, 3, "cut-writer", producer, &[("cut", 0)]),
        vec![0]
    );
    assert_eq!(
        produce_txn(&mut c, 9, Some("cut-writer"), "cut", producer, 0),
        0
    );
    // The transaction log's disk makes `PrepareCommit` durable, then stalls.
    model.stall_syncs("__transaction_state", 1);
    assert_eq!(end(&mut c, 3, "cut-writer", producer, true), 0);
    // The next transaction, in the same partition, as soon as the first is complete.
    assert_eq!(
        add(&mut c, 3, "cut-writer", producer, &[("cut", 0)]),
        vec![0]
    );
    assert_eq!(
        stable_end(&mut c, "cut"),
        3,
        "the first: 2 records and its marker"
    );
    drop(c);
    let (broker, mut c) = cut_during(root.path(), broker, &model, move |c| {
        produce_txn(c, 9, Some("cut-writer"), "cut", producer, 2);
    });
    assert_eq!(
        stable_end(&mut c, "cut"),
        3,
        "nothing after the first transaction"
    );
    let (code, _, records) = crate::wire::fetch(&mut c, "cut", 0, 0, 0);
    assert_eq!(code, 0);
    let records = records.unwrap_or_default();
    let batches: Vec<(i64, Option<ControlType>)> = Batches::new(&records)
        .map(|view| {
            let marker = control::parse_marker(&view).map(|m| m.control);
            (view.base_offset(), marker)
        })
        .collect();
    assert_eq!(batches, vec![(0, None), (2, Some(ControlType::Commit))]);
    drop(c);
    broker.shutdown();
}

/// The same cut with the next transaction's first step a TxnOffsetCommit: had its pending
/// offset been appended, the repeated completion of the first transaction would commit it.
#[test]
fn a_power_cut_does_not_commit_the_next_transactions_offsets_with_the_previous_one() {
    let root = tempfile::tempdir().unwrap();
    let (broker, model) = start_on_power_model(root.path());
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "cut-in", 1, &[]), 0);
    let (_, pid, epoch) = init(&mut c, 4, "cut-committer", 60_000, (-1, -1));
    let producer = (pid, epoch);
    add_offsets(&mut c, "cut-committer", producer, "cut-group");
    assert_eq!(
        txn_commit(
            &mut c,
            3,
            "cut-committer",
            "cut-group",
            producer,
            "cut-in",
            5
        ),
        0
    );
    model.stall_syncs("__transaction_state", 1);
    assert_eq!(end(&mut c, 3, "cut-committer", producer, true), 0);
    add_offsets(&mut c, "cut-committer", producer, "cut-group");
    assert_eq!(fetch_offset(&mut c, "cut-group", "cut-in", true), (0, 5));
    drop(c);
    let (broker, mut c) = cut_during(root.path(), broker, &model, move |c| {
        txn_commit(c, 3, "cut-committer", "cut-group", producer, "cut-in", 9);
    });
    assert_eq!(
        fetch_offset(&mut c, "cut-group", "cut-in", true),
        (0, 5),
        "the first transaction's offset, not the next one's"
    );
    drop(c);
    broker.shutdown();
}
