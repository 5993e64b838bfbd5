//! librdkafka (through the `rdkafka` crate) against an in-process broker: topic creation,
//! 10,000 keyed records with duplicate header keys in every compression codec, read back by
//! partition with `assign`, offsets and timestamp lookups.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use brook_broker::EmbeddedBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const CODECS: [&str; 5] = ["gzip", "snappy", "lz4", "zstd", "none"];
const PER_CODEC: usize = 2_000;
const PARTITIONS: i32 = 3;
const BASE_TS: i64 = 1_700_000_000_000;

/// What the consumer read for one record.
#[derive(Debug)]
struct Received {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
    timestamp: i64,
    headers: Vec<(String, String)>,
}

/// What the producer was told for one record.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    value: String,
    timestamp: i64,
    partition: i32,
    offset: i64,
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = runtime()
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok(), "create_topics: {:?}", results[0]);
}

/// Produces `count` records per codec; returns what the delivery reports said.
fn produce_all(bootstrap: &str, topic: &str) -> Vec<Sent> {
    let rt = runtime();
    let mut sent = Vec::new();
    for (c, codec) in CODECS.iter().enumerate() {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("compression.type", *codec)
            .set("linger.ms", "5")
            .set("acks", "all")
            .create()
            .unwrap();
        let futures: Vec<_> = (0..PER_CODEC)
            .map(|i| {
                let n = c * PER_CODEC + i;
                let key = format!("key-{}", n % 97);
                let value = format!("value-{codec}-{n}-{}", "x".repeat(n % 50));
                let timestamp = BASE_TS + n as i64;
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "dup",
                        value: Some("first"),
                    })
                    .insert(Header {
                        key: "dup",
                        value: Some("second"),
                    })
                    .insert(Header {
                        key: "n",
                        value: Some(&n.to_string()),
                    });
                let record = FutureRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .timestamp(timestamp)
                    .headers(headers);
                let fut = producer.send_result(record).expect("queue has room");
                (key, value, timestamp, fut)
            })
            .collect();
        for (key, value, timestamp, fut) in futures {
            let delivery = rt
                .block_on(fut)
                .expect("delivery future completes")
                .expect("record delivered");
            sent.push(Sent {
                key,
                value,
                timestamp,
                partition: delivery.partition,
                offset: delivery.offset,
            });
        }
    }
    sent
}

/// A consumer reading `partitions` of `topic` from the beginning with `assign`.
pub(crate) fn assign_from_beginning(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    assign_from_beginning_with(bootstrap, topic, partitions, &[])
}

/// As [`assign_from_beginning`], with `settings` added to the consumer's configuration.
pub(crate) fn assign_from_beginning_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // assign() needs a group id; with auto-commit off, closing does not wait for a
        // group coordinator to commit to.
        .set("group.id", "assign-only")
        .set("enable.auto.commit", "false");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<Received> {
    let consumer = assign_from_beginning(bootstrap, topic, PARTITIONS);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {} of {expected} records",
            got.len()
        );
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = msg.expect("no consumer error");
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        got.push(Received {
            partition: msg.partition(),
            offset: msg.offset(),
            key: String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned(),
            value: String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned(),
            timestamp: msg.timestamp().to_millis().unwrap_or(-1),
            headers,
        });
    }
    got
}

#[test]
fn produce_and_read_back_every_codec() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let topic = "librdkafka-codecs";
    create_topic(&bootstrap, topic, PARTITIONS);

    let sent = produce_all(&bootstrap, topic);
    assert_eq!(sent.len(), CODECS.len() * PER_CODEC);
    let got = consume_all(&bootstrap, topic, sent.len());

    let by_position: HashMap<(i32, i64), &Sent> =
        sent.iter().map(|s| ((s.partition, s.offset), s)).collect();
    assert_eq!(
        by_position.len(),
        sent.len(),
        "two records acknowledged at one offset"
    );
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for Received {
        partition,
        offset,
        key,
        value,
        timestamp,
        headers,
    } in &got
    {
        let s = by_position
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("record at {partition}/{offset} was never acknowledged"));
        assert_eq!((key, value, timestamp), (&s.key, &s.value, &s.timestamp));
        let n = s.value.split('-').nth(2).unwrap();
        assert_eq!(
            headers,
            &vec![
                ("dup".to_string(), "first".to_string()),
                ("dup".to_string(), "second".to_string()),
                ("n".to_string(), n.to_string())
            ]
        );
        // Per partition, offsets arrive in order and without gaps.
        let expected = last_offset.get(partition).map_or(0, |o| o + 1);
        assert_eq!(*offset, expected, "partition {partition} out of order");
        last_offset.insert(*partition, *offset);
    }
    assert_eq!(got.len(), sent.len());

    // ListOffsets: earliest and latest per partition, and lookups by timestamp.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        let count = sent.iter().filter(|s| s.partition == p).count() as i64;
        assert!(count > 0, "partition {p} got no records");
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        assert_eq!((low, high), (0, count), "watermarks of partition {p}");
    }
    for target in [
        BASE_TS - 5,
        BASE_TS + 1234,
        BASE_TS + 7777,
        BASE_TS + 9_999,
        BASE_TS + 50_000,
    ] {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Offset(target))
                .unwrap();
        }
        let found = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap();
        for p in 0..PARTITIONS {
            let expected = sent
                .iter()
                .filter(|s| s.partition == p && s.timestamp >= target)
                .map(|s| s.offset)
                .min();
            let got = found.find_partition(topic, p).unwrap().offset();
            match expected {
                Some(o) => assert_eq!(got, Offset::Offset(o), "partition {p}, timestamp {target}"),
                // No record that late: Kafka answers offset -1, which librdkafka shows as End.
                None => assert_eq!(got, Offset::End, "partition {p}, timestamp {target}"),
            }
        }
    }
    broker.shutdown();
}
