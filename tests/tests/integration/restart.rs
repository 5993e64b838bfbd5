//! Restart: records, topic ids and the cluster id survive stopping and starting the broker on
//! the same data directory, and offsets continue where they were.

use std::time::Duration;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::{MetadataRequest, TopicName};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_tests::RawClient;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

use crate::librdkafka::{assign_from_beginning, create_topic};

const TOPIC: &str = "restart-orders";

fn produce(bootstrap: &str, from: usize, to: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    for i in from..to {
        let key = format!("order-{}", i % 7);
        let value = format!("event-{i}");
        let record = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .partition((i % 2) as i32);
        producer.send(record).expect("queued");
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all delivered");
}

fn read_values(bootstrap: &str, expected: usize) -> Vec<(i32, i64, String)> {
    let consumer = assign_from_beginning(bootstrap, TOPIC, 2);
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < expected && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            ));
        }
    }
    out.sort();
    out
}

fn topic_id(bootstrap: &str) -> uuid::Uuid {
    let mut client = RawClient::connect(bootstrap).unwrap();
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let resp = client.call(12, &req).unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    resp.topics[0].topic_id
}

#[test]
fn data_topic_ids_and_cluster_id_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start(BrokerConfig::with_data_dir(dir.path())).unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, TOPIC, 2);
    produce(&bootstrap, 0, 500);
    let before = read_values(&bootstrap, 500);
    assert_eq!(before.len(), 500);
    let id = topic_id(&bootstrap);
    assert!(!id.is_nil(), "topic id must be non-zero");
    let cluster = broker.cluster_id().to_string();
    broker.shutdown();

    let broker = EmbeddedBroker::start(BrokerConfig::with_data_dir(dir.path())).unwrap();
    let bootstrap = broker.bootstrap();
    assert_eq!(broker.cluster_id(), cluster);
    assert_eq!(topic_id(&bootstrap), id);
    assert_eq!(read_values(&bootstrap, 500), before);

    // Offsets continue after the restart.
    produce(&bootstrap, 500, 600);
    let after = read_values(&bootstrap, 600);
    assert_eq!(after.len(), 600);
    for p in 0..2 {
        let offsets: Vec<i64> = after.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(offsets, (0..300).collect::<Vec<i64>>(), "partition {p}");
    }
    broker.shutdown();
}
