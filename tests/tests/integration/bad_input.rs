//! Hostile and broken input, and the protocol edge cases clients depend on, checked byte by
//! byte with a raw client: the broker closes bad connections, answers with Kafka's error
//! codes, never crashes and never changes the log on a rejected write.

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::simple_batch;
use brook_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use brook_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use brook_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, FetchRequest, MetadataRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use bytes::Bytes;

use crate::wire::{create, fetch, latest, list_offset, name, produce, produce_request};

fn broker() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig {
        auto_create_topics_enable: false,
        ..BrokerConfig::ephemeral()
    })
    .unwrap()
}

/// ApiVersions v3 with the given client software name.
fn api_versions_v3(c: &mut RawClient, software: &'static str) -> ApiVersionsResponse {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str(software))
        .with_client_software_version(StrBytes::from_static_str("1"));
    c.call(3, &req).unwrap()
}

fn still_serving(bootstrap: &str) {
    let mut c = RawClient::connect(bootstrap).unwrap();
    let resp = api_versions_v3(&mut c, "brook-tests");
    assert_eq!(resp.error_code, 0);
}

#[test]
fn bad_frames_close_the_connection_and_the_broker_lives_on() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", i32::MAX.to_be_bytes().to_vec()),
        ("negative frame size", (-5i32).to_be_bytes().to_vec()),
        (
            "garbage frame",
            [
                &12i32.to_be_bytes()[..],
                &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8],
            ]
            .concat(),
        ),
        ("unknown API key", {
            let mut c = RawClient::connect(&bootstrap).unwrap();
            let mut f = c.encode(0, &ApiVersionsRequest::default());
            f[4..6].copy_from_slice(&9999i16.to_be_bytes());
            f
        }),
        ("metadata claiming 2^31 topics", {
            let body = [
                &3i16.to_be_bytes()[..],
                &4i16.to_be_bytes(),
                &1i32.to_be_bytes(),
                &(-1i16).to_be_bytes(),
                &i32::MAX.to_be_bytes(),
                &[0, 1],
            ]
            .concat();
            [&(body.len() as i32).to_be_bytes()[..], &body].concat()
        }),
        ("unsupported fetch version", {
            let mut c = RawClient::connect(&bootstrap).unwrap();
            let mut f = c.encode(4, &FetchRequest::default());
            f[6..8].copy_from_slice(&3i16.to_be_bytes());
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::connect(&bootstrap).unwrap();
        c.send_raw(&bytes).unwrap();
        assert!(c.is_closed_by_peer(), "{what}: connection not closed");
        still_serving(&bootstrap);
    }
    broker.shutdown();
}

#[test]
fn api_versions_fallback_and_legacy_produce() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    // A version from the future gets a v0 body with UNSUPPORTED_VERSION and our range.
    let mut frame = c.encode(0, &ApiVersionsRequest::default());
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&frame).unwrap();
    let payload = c.read_frame().unwrap();
    let expected = [
        &1i32.to_be_bytes()[..],
        &35i16.to_be_bytes(),
        &1i32.to_be_bytes(),
        &18i16.to_be_bytes(),
        &0i16.to_be_bytes(),
        &4i16.to_be_bytes(),
    ]
    .concat();
    assert_eq!(&payload[..], &expected[..]);

    // Produce is advertised from v0 for old librdkafka, and v0-2 are refused per partition.
    let resp = api_versions_v3(&mut c, "x");
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    let bad_name = api_versions_v3(&mut c, "-bad");
    assert_eq!(bad_name.error_code, ErrorCode::InvalidRequest.code());

    // Produce v2 body: acks, timeout, [topic, [partition, records]].
    let body = [
        &1i16.to_be_bytes()[..],
        &1000i32.to_be_bytes(),
        &1i32.to_be_bytes(),
        &1i16.to_be_bytes(),
        b"t",
        &1i32.to_be_bytes(),
        &0i32.to_be_bytes(),
        &0i32.to_be_bytes(),
    ]
    .concat();
    let header = [
        &0i16.to_be_bytes()[..],
        &2i16.to_be_bytes(),
        &77i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
    ]
    .concat();
    let frame = [
        &((header.len() + body.len()) as i32).to_be_bytes()[..],
        &header,
        &body,
    ]
    .concat();
    c.send_raw(&frame).unwrap();
    let payload = c.read_frame().unwrap();
    // correlation id, 1 topic "t", 1 partition: index 0, error 35, offset -1, append time -1, throttle.
    let expected = [
        &77i32.to_be_bytes()[..],
        &1i32.to_be_bytes(),
        &1i16.to_be_bytes(),
        b"t",
        &1i32.to_be_bytes(),
        &0i32.to_be_bytes(),
        &35i16.to_be_bytes(),
        &(-1i64).to_be_bytes(),
        &(-1i64).to_be_bytes(),
        &0i32.to_be_bytes(),
    ]
    .concat();
    assert_eq!(&payload[..], &expected[..]);
    broker.shutdown();
}

#[test]
fn rejected_batches_leave_the_log_unchanged() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        create(&mut c, "strict", 1, &[("max.message.bytes", "2000")]),
        0
    );
    assert_eq!(produce(&mut c, "strict", 0, simple_batch(1000, 5)), (0, 0));
    let (_, _, before) = fetch(&mut c, "strict", 0, 0, 0);

    let mut corrupt = simple_batch(2000, 3);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert_eq!(
        produce(&mut c, "strict", 0, corrupt).0,
        ErrorCode::CorruptMessage.code()
    );
    let mut truncated = simple_batch(2000, 3);
    truncated.truncate(40);
    assert_eq!(
        produce(&mut c, "strict", 0, truncated).0,
        ErrorCode::CorruptMessage.code()
    );
    assert_eq!(
        produce(&mut c, "strict", 0, simple_batch(2000, 200)).0,
        ErrorCode::MessageTooLarge.code()
    );
    let mut magic1 = simple_batch(2000, 1);
    magic1[16] = 1;
    assert_eq!(
        produce(&mut c, "strict", 0, magic1).0,
        ErrorCode::InvalidRecord.code()
    );
    assert_eq!(
        produce(&mut c, "strict", 7, simple_batch(1, 1)).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut c, "nope", 0, simple_batch(1, 1)).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    assert_eq!(latest(&mut c, "strict", 0), 5);
    let (code, hw, after) = fetch(&mut c, "strict", 0, 0, 0);
    assert_eq!((code, hw), (0, 5));
    assert_eq!(after, before);

    // A valid batch after the rejections gets the next offset.
    assert_eq!(produce(&mut c, "strict", 0, simple_batch(3000, 2)), (0, 5));
    broker.shutdown();
}

#[test]
fn fetch_semantics_for_clients() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "f", 1, &[]), 0);
    // Empty partition: zero-length records, never null.
    let (code, hw, records) = fetch(&mut c, "f", 0, 0, 0);
    assert_eq!((code, hw), (0, 0));
    assert_eq!(records, Some(Bytes::new()));
    // Out of range offsets.
    assert_eq!(
        fetch(&mut c, "f", 0, 5, 0).0,
        ErrorCode::OffsetOutOfRange.code()
    );
    // acks=0 gets no response: the next response read belongs to the next request.
    let acks0 = c.encode(9, &produce_request("f", 0, simple_batch(10, 3), 0));
    c.send_raw(&acks0).unwrap();
    assert_eq!(latest(&mut c, "f", 0), 3);

    // Long poll: a waiting fetch returns as soon as data arrives.
    let bootstrap = broker.bootstrap();
    let waiter = std::thread::spawn(move || {
        let mut c = RawClient::connect(&bootstrap).unwrap();
        let started = std::time::Instant::now();
        let (code, _, records) = fetch(&mut c, "f", 0, 3, 8_000);
        (
            code,
            records.map(|r| r.len()).unwrap_or(0),
            started.elapsed(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(produce(&mut c, "f", 0, simple_batch(20, 2)), (0, 3));
    let (code, len, waited) = waiter.join().unwrap();
    assert_eq!(code, 0);
    assert!(len > 0, "woken fetch returned no data");
    assert!(
        waited < std::time::Duration::from_millis(7_000),
        "fetch waited for its timeout instead of waking on append"
    );
    broker.shutdown();
}

#[test]
fn pipelined_requests_are_answered_in_request_order() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "pipelined", 1, &[]), 0);
    // acks=all produces complete after their fsync; the requests between them are answered
    // at once by the broker, yet every response must come back in request order.
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let frame = if i % 2 == 0 {
            c.encode(9, &produce_request("pipelined", 0, simple_batch(i, 3), -1))
        } else {
            c.encode(3, &ApiVersionsRequest::default())
        };
        expected.push(i32::from_be_bytes(frame[8..12].try_into().unwrap()));
        frames.extend_from_slice(&frame);
    }
    c.send_raw(&frames).unwrap();
    let got: Vec<i32> = (0..20)
        .map(|_| {
            let mut payload = c.read_frame().unwrap();
            brook_tests::correlation_id(&mut payload)
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(latest(&mut c, "pipelined", 0), 30);
    broker.shutdown();
}

#[test]
fn list_offsets_special_and_exact_timestamps() {
    use brook_protocol::batch::testing::{build_batch, TestRecord};
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "times", 1, &[]), 0);
    // Empty log: latest and earliest are 0, max timestamp has no record.
    assert_eq!(list_offset(&mut c, "times", 0, -1), (0, -1));
    assert_eq!(list_offset(&mut c, "times", 0, -2), (0, -1));
    assert_eq!(list_offset(&mut c, "times", 0, -3), (-1, -1));
    // Timestamps out of order inside and across batches: 1000, 1050, 1020 | 1040, 1010.
    let batch = |base: i64, deltas: &[i64]| {
        let recs: Vec<_> = deltas
            .iter()
            .map(|d| TestRecord {
                timestamp_delta: *d,
                ..Default::default()
            })
            .collect();
        build_batch(base, &recs)
    };
    assert_eq!(
        produce(&mut c, "times", 0, batch(1000, &[0, 50, 20])),
        (0, 0)
    );
    assert_eq!(produce(&mut c, "times", 0, batch(1040, &[0, -30])), (0, 3));
    assert_eq!(list_offset(&mut c, "times", 0, -1), (5, -1));
    assert_eq!(list_offset(&mut c, "times", 0, -2), (0, -1));
    assert_eq!(
        list_offset(&mut c, "times", 0, -3),
        (1, 1050),
        "the record with the max timestamp"
    );
    assert_eq!(list_offset(&mut c, "times", 0, 999), (0, 1000));
    assert_eq!(
        list_offset(&mut c, "times", 0, 1001),
        (1, 1050),
        "first record at or after, not the batch"
    );
    assert_eq!(list_offset(&mut c, "times", 0, 1051), (-1, -1));
    broker.shutdown();
}

#[test]
fn admin_errors_match_kafka() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "admin-a", 2, &[]), 0);
    assert_eq!(
        create(&mut c, "admin-a", 2, &[]),
        ErrorCode::TopicAlreadyExists.code()
    );
    assert_eq!(
        create(&mut c, "bad/name", 1, &[]),
        ErrorCode::InvalidTopicException.code()
    );
    assert_eq!(
        create(&mut c, "admin-b", 0, &[]),
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(
        create(&mut c, "admin-b", 1, &[("no.such.config", "1")]),
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        create(&mut c, "admin-b", 1, &[("retention.ms", "soon")]),
        ErrorCode::InvalidConfig.code()
    );
    let rf3 = CreatableTopic::default()
        .with_name(name("admin-rf"))
        .with_num_partitions(1)
        .with_replication_factor(3);
    let resp = c
        .call(7, &CreateTopicsRequest::default().with_topics(vec![rf3]))
        .unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ErrorCode::InvalidReplicationFactor.code()
    );
    // validate_only creates nothing.
    let v = CreatableTopic::default()
        .with_name(name("admin-v"))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let resp = c
        .call(
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![v])
                .with_validate_only(true),
        )
        .unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    let meta = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    let names: Vec<_> = meta
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["admin-a".to_string()]);
    // Auto-creation is off here: an unknown topic is reported, not created.
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![
        brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name("ghost"))),
    ]));
    assert_eq!(
        c.call(12, &req).unwrap().topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let grow = |count| {
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("admin-a"))
            .with_count(count)])
    };
    assert_eq!(
        c.call(3, &grow(1)).unwrap().results[0].error_code,
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(c.call(3, &grow(4)).unwrap().results[0].error_code, 0);
    assert_eq!(produce(&mut c, "admin-a", 3, simple_batch(1, 1)), (0, 0));

    // DeleteTopics v6 by topic id.
    assert_eq!(create(&mut c, "admin-by-id", 1, &[]), 0);
    let meta = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    let id = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("admin-by-id"))
        .unwrap()
        .topic_id;
    let by_id = DeleteTopicsRequest::default().with_topics(vec![
        brook_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState::default(
        )
        .with_name(None)
        .with_topic_id(id),
    ]);
    let resp = c.call(6, &by_id).unwrap();
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        resp.responses[0].name.as_ref().map(|n| n.as_str()),
        Some("admin-by-id")
    );
    assert_eq!(
        c.call(6, &by_id).unwrap().responses[0].error_code,
        ErrorCode::UnknownTopicId.code()
    );

    let del = |t: &str| DeleteTopicsRequest::default().with_topic_names(vec![name(t)]);
    assert_eq!(
        c.call(4, &del("admin-a")).unwrap().responses[0].error_code,
        0
    );
    assert_eq!(
        c.call(4, &del("admin-a")).unwrap().responses[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert!(
        !broker.data_dir().join("admin-a-0").exists(),
        "partition files not removed"
    );
    broker.shutdown();
}

/// Internal topics are the broker's: clients cannot delete, repartition or write them, and
/// CreateTopics reports the real topic (created as the coordinator creates it).
#[test]
fn internal_topics_refuse_deletion_produce_and_partition_changes() {
    let broker = broker();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let offsets = "__consumer_offsets";
    let create_req = |partitions| {
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(offsets))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)])
    };
    let created = c.call(7, &create_req(50)).unwrap();
    let t = &created.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.num_partitions, 1, "the coordinator's partition count");
    assert!(!t.topic_id.is_nil());
    assert_eq!(
        c.call(7, &create_req(1)).unwrap().topics[0].error_code,
        ErrorCode::TopicAlreadyExists.code()
    );
    let del = DeleteTopicsRequest::default().with_topic_names(vec![name(offsets)]);
    assert_eq!(
        c.call(4, &del).unwrap().responses[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    let grow =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name(offsets))
            .with_count(3)]);
    assert_eq!(
        c.call(3, &grow).unwrap().results[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    assert_eq!(
        produce(&mut c, offsets, 0, simple_batch(1, 1)).0,
        ErrorCode::InvalidTopicException.code()
    );
    let meta = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    let t = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(offsets))
        .expect("__consumer_offsets still exists");
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 1);
    let other = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("__transaction_state"))
        .with_num_partitions(1)
        .with_replication_factor(-1)]);
    assert_ne!(c.call(7, &other).unwrap().topics[0].error_code, 0);
    broker.shutdown();
}

#[test]
fn colliding_names_and_oversized_creations_are_refused() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        auto_create_topics_max_per_request: 5,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "dot.name", 1, &[]), 0);
    assert_eq!(
        create(&mut c, "dot_name", 1, &[]),
        ErrorCode::InvalidTopicException.code()
    );
    assert_eq!(
        create(&mut c, "dot.name", 1, &[]),
        ErrorCode::TopicAlreadyExists.code()
    );
    // 3 x 5,000 partitions pass max.partitions.per.request (10,000): refused whole.
    let big = |n: &str| {
        CreatableTopic::default()
            .with_name(name(n))
            .with_num_partitions(5000)
            .with_replication_factor(-1)
    };
    let resp = c
        .call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![big("b1"), big("b2"), big("b3")]),
        )
        .unwrap();
    assert!(resp
        .topics
        .iter()
        .all(|t| t.error_code == ErrorCode::PolicyViolation.code()));
    assert_eq!(
        create(&mut c, "huge", 100_000, &[]),
        ErrorCode::PolicyViolation.code()
    );
    let grow =
        CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
            .with_name(name("dot.name"))
            .with_count(100_000)]);
    assert_eq!(
        c.call(3, &grow).unwrap().results[0].error_code,
        ErrorCode::PolicyViolation.code()
    );
    // One Metadata request auto-creates at most 5 topics.
    let wanted: Vec<_> = (0..20)
        .map(|i| {
            brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(name(&format!("auto-{i}"))))
        })
        .collect();
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(wanted));
    let resp = c.call(12, &req).unwrap();
    let created = resp.topics.iter().filter(|t| t.error_code == 0).count();
    assert_eq!(created, 5);
    assert!(resp.topics[5..]
        .iter()
        .all(|t| t.error_code == ErrorCode::UnknownTopicOrPartition.code()));
    let all = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    assert_eq!(all.topics.len(), 6, "dot.name and five auto-created topics");
    broker.shutdown();
}
