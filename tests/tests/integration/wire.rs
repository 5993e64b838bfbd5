//! A raw Kafka client's view of the broker for byte-level tests: create a topic, produce one
//! batch, list offsets, fetch. Each helper asserts nothing beyond the call itself succeeding.

use brook_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_tests::RawClient;
use bytes::Bytes;

pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub(crate) fn create(
    client: &mut RawClient,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let resp = client
        .call(7, &CreateTopicsRequest::default().with_topics(vec![t]))
        .unwrap();
    resp.topics[0].error_code
}

pub(crate) fn produce_request(
    topic: &str,
    partition: i32,
    records: Vec<u8>,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

pub(crate) fn produce(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> (i16, i64) {
    let resp = client
        .call(9, &produce_request(topic, partition, records, -1))
        .unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// ListOffsets v7 for one timestamp (or special value): (offset, timestamp).
pub(crate) fn list_offset(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(brook_protocol::kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let resp = client.call(7, &req).unwrap();
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.offset, p.timestamp)
}

pub(crate) fn latest(client: &mut RawClient, topic: &str, partition: i32) -> i64 {
    list_offset(client, topic, partition, -1).0
}

pub(crate) fn fetch(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> (i16, i64, Option<Bytes>) {
    let req = FetchRequest::default()
        .with_replica_id(brook_protocol::kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = client.call(11, &req).unwrap();
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.high_watermark, p.records.clone())
}
