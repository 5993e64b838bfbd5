//! Compaction end to end with librdkafka: 20 aggregates x 50 snapshots to a compacted topic
//! (`segment.ms=100`, `min.cleanable.dirty.ratio=0.01`, `min.compaction.lag.ms=0`) leave
//! exactly each aggregate's latest snapshot for a consumer reading from the beginning, and
//! tombstoned aggregates disappear after `delete.retention.ms`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::librdkafka::{assign_from_beginning_with, runtime};

const TOPIC: &str = "loan.snapshots";

/// Every (key, value) from the beginning of the topic, in offset order (None: tombstone).
fn read_all(bootstrap: &str) -> Vec<(String, Option<String>)> {
    let consumer =
        assign_from_beginning_with(bootstrap, TOPIC, 1, &[("enable.partition.eof", "true")]);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "did not reach the end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().map(|p| String::from_utf8_lossy(p).into_owned()),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
}

/// Waits until `read_all` returns exactly `want` (as a key -> value map, each key once).
fn wait_for(bootstrap: &str, want: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = read_all(bootstrap);
        let keys: BTreeMap<String, Option<String>> = got.iter().cloned().collect();
        if got.len() == want.len()
            && keys
                .iter()
                .all(|(k, v)| v.as_ref().is_some_and(|v| want.get(k) == Some(v)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "compaction did not converge: {} records, want {}",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_compacted_topic_keeps_each_aggregates_latest_snapshot_and_drops_tombstones() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        log_cleaner_backoff_ms: 100,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "1000");
    let created = runtime()
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let send = |key: &str, value: Option<&str>| {
        let mut record = BaseRecord::<str, str>::to(TOPIC).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer.send(record).unwrap();
    };
    let mut latest = BTreeMap::new();
    for snapshot in 0..50 {
        for aggregate in 0..20 {
            let (key, value) = (format!("loan-{aggregate}"), format!("snapshot-{snapshot}"));
            send(&key, Some(&value));
            latest.insert(key, value);
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        if snapshot % 10 == 9 {
            std::thread::sleep(Duration::from_millis(150)); // segments roll by age
        }
    }
    wait_for(&bootstrap, &latest);

    // Tombstones for five aggregates: kept at first (consumers must see the deletes), gone
    // once delete.retention.ms passed and the cleaner ran again.
    for aggregate in 0..5 {
        send(&format!("loan-{aggregate}"), None);
        latest.remove(&format!("loan-{aggregate}"));
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    // New data makes the log dirty again; the pass drops the expired tombstones.
    send("loan-19", Some("snapshot-50"));
    producer.flush(Duration::from_secs(10)).unwrap();
    latest.insert("loan-19".into(), "snapshot-50".into());
    wait_for(&bootstrap, &latest);
    broker.shutdown();
}
