//! `brook_client::mirror` between two in-process brokers: topics with partition counts and
//! configs, 100,000 records with headers and timestamps copied in order, group offsets
//! translated exactly across aborted transactions, a resume after a stop between writing
//! and committing that writes nothing twice, and `follow` picking up new records.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_broker::EmbeddedBroker;

use super::client::config;
use brook_client::{
    mirror, Admin, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, MirrorConfig,
    Producer, ProducerConfig, ProducerRecord, StartAt,
};
use rdkafka::producer::Producer as _;

use crate::client::runtime;

/// Every committed record of `topic`/`partition`, in order.
async fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<ConsumerRecord> {
    let admin = Admin::new(config(bootstrap)).await.unwrap();
    let end = admin.end_offsets(topic).await.unwrap()[&partition];
    let mut consumer = Consumer::new(ConsumerConfig {
        isolation: IsolationLevel::ReadCommitted,
        max_wait: Duration::from_millis(50),
        ..ConsumerConfig::new(config(bootstrap))
    })
    .await
    .unwrap();
    consumer
        .assign(topic, Some(&[partition]), StartAt::Beginning)
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while consumer.position(topic, partition).unwrap() < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reading {topic}/{partition}"
        );
        out.extend(consumer.poll().await.unwrap());
    }
    out
}

/// A record's key, value, timestamp and headers.
type Content = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(String, Vec<u8>)>,
);

/// What a record is, without where it is.
fn content(r: &ConsumerRecord) -> Content {
    (
        r.key.as_ref().map(|k| k.to_vec()),
        r.value.as_ref().map(|v| v.to_vec()),
        r.timestamp,
        r.headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone().unwrap_or_default().to_vec()))
            .collect(),
    )
}

async fn assert_same_records(source: &str, target: &str, topic: &str, partitions: i32) -> usize {
    let mut total = 0;
    for p in 0..partitions {
        let a = read_partition(source, topic, p).await;
        let b = read_partition(target, topic, p).await;
        assert_eq!(a.len(), b.len(), "{topic}/{p}: record counts");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                content(x),
                content(y),
                "{topic}/{p} at source offset {}",
                x.offset
            );
        }
        total += a.len();
    }
    total
}

#[test]
fn a_mirror_copies_topics_records_and_group_offsets_and_resumes_without_duplicates() {
    let source = EmbeddedBroker::ephemeral().unwrap();
    let target = EmbeddedBroker::ephemeral().unwrap();
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    // An aborted and a committed transaction in orders/0 first: source and target offsets
    // differ from then on (the target holds neither the aborted records nor the markers).
    let rt = runtime();
    rt.block_on(async {
        let admin = Admin::new(config(&src)).await.unwrap();
        let configs = [("retention.ms".to_string(), "123456789".to_string())];
        admin.create_topic("orders", 3, &configs).await.unwrap();
        admin.create_topic("loans.v1", 2, &[]).await.unwrap();
        admin.create_topic("_private", 1, &[]).await.unwrap();
    });
    let txn: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &src)
        .set("transactional.id", "mirror-test")
        .create()
        .unwrap();
    let t = Duration::from_secs(10);
    txn.init_transactions(t).unwrap();
    for commit in [false, true] {
        txn.begin_transaction().unwrap();
        for i in 0..5 {
            let v = format!("txn-{commit}-{i}");
            txn.send(
                rdkafka::producer::BaseRecord::<(), String>::to("orders")
                    .payload(&v)
                    .partition(0),
            )
            .unwrap();
        }
        txn.flush(t).unwrap();
        if commit {
            txn.commit_transaction(t).unwrap();
        } else {
            txn.abort_transaction(t).unwrap();
        }
    }
    rt.block_on(async {
        let producer = Producer::new(ProducerConfig::new(config(&src)))
            .await
            .unwrap();
        for i in 0..100_000u32 {
            let topic = if i % 4 == 0 { "loans.v1" } else { "orders" };
            let record = ProducerRecord::new(topic, format!("event-{i}"))
                .key(format!("aggregate-{}", i % 1000))
                .header("seq", i.to_string())
                .header("type", if i % 2 == 0 { "Created" } else { "Updated" })
                .timestamp(1_700_000_000_000 + i64::from(i));
            producer.send(record).await.unwrap();
        }
        producer.close().await.unwrap();

        // A group part-way through orders: its offsets must land on the same records.
        let source_admin = Admin::new(config(&src)).await.unwrap();
        let mut committed = BTreeMap::new();
        committed.insert(("orders".to_string(), 0), 5_000);
        committed.insert(("orders".to_string(), 1), 17);
        committed.insert(("loans.v1".to_string(), 1), 0);
        source_admin
            .commit_group_offsets("billing", &committed)
            .await
            .unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let mirror_config = MirrorConfig::new(config(&src), config(&dst));
        let report = mirror(&mirror_config, Arc::clone(&stop), |_| {})
            .await
            .unwrap();
        // 5 committed transactional records + 100,000.
        assert_eq!(report.records, 100_005);
        let mut topics: Vec<&str> = report.topics.iter().map(|(t, _)| t.as_str()).collect();
        topics.sort_unstable();
        assert_eq!(topics, ["loans.v1", "orders"], "internal topics stay");
        assert!(report.topics.iter().all(|(_, created)| *created));
        assert_eq!(report.groups, vec![("billing".to_string(), 3)]);

        let target_admin = Admin::new(config(&dst)).await.unwrap();
        assert_eq!(
            target_admin
                .describe_topic("orders")
                .await
                .unwrap()
                .partitions
                .len(),
            3
        );
        assert!(target_admin
            .topic_configs("orders")
            .await
            .unwrap()
            .contains(&("retention.ms".to_string(), "123456789".to_string())));
        let copied = assert_same_records(&src, &dst, "orders", 3).await
            + assert_same_records(&src, &dst, "loans.v1", 2).await;
        assert_eq!(copied, 100_005);

        // Translated offsets point at the same records.
        let translated = target_admin.group_offsets("billing").await.unwrap();
        for ((topic, p), source_offset) in &committed {
            let target_offset = translated[&(topic.clone(), *p)];
            let a = read_partition(&src, topic, *p).await;
            let b = read_partition(&dst, topic, *p).await;
            let at_source = a.iter().find(|r| r.offset >= *source_offset).map(content);
            let at_target = b.iter().find(|r| r.offset >= target_offset).map(content);
            assert_eq!(
                at_source, at_target,
                "{topic}/{p}: {source_offset} -> {target_offset}"
            );
        }
        assert_ne!(
            translated[&("orders".to_string(), 0)],
            5_000,
            "markers and aborted records are not in the target"
        );

        // A stop between writing and committing: 300 of 1,000 new records reached the
        // target but not the mirror's progress. The next run writes the other 700 only.
        let producer = Producer::new(ProducerConfig::new(config(&src)))
            .await
            .unwrap();
        for i in 0..1_000 {
            producer
                .send(ProducerRecord::new("loans.v1", format!("late-{i}")).partition(0))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
        let crashed = Producer::new(ProducerConfig::new(config(&dst)))
            .await
            .unwrap();
        for r in read_partition(&src, "loans.v1", 0)
            .await
            .iter()
            .rev()
            .take(1_000)
            .rev()
            .take(300)
        {
            let mut copy = ProducerRecord::new("loans.v1", r.value.clone().unwrap()).partition(0);
            copy.timestamp = Some(r.timestamp);
            crashed.send(copy).await.unwrap();
        }
        crashed.close().await.unwrap();
        let report = mirror(&mirror_config, Arc::clone(&stop), |_| {})
            .await
            .unwrap();
        assert_eq!(report.records, 700);
        assert_same_records(&src, &dst, "loans.v1", 2).await;
        // Nothing new: nothing written.
        let report = mirror(&mirror_config, Arc::clone(&stop), |_| {})
            .await
            .unwrap();
        assert_eq!(report.records, 0);

        // --follow picks up records written while it runs, until stopped.
        let following = {
            let config = MirrorConfig {
                follow: true,
                ..mirror_config.clone()
            };
            let stop = Arc::clone(&stop);
            tokio::spawn(async move { mirror(&config, stop, |_| {}).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let producer = Producer::new(ProducerConfig::new(config(&src)))
            .await
            .unwrap();
        for i in 0..500 {
            producer
                .send(ProducerRecord::new("orders", format!("live-{i}")).partition(2))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
        let source_end = source_admin.end_offsets("orders").await.unwrap()[&2];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let target_end = target_admin.end_offsets("orders").await.unwrap()[&2];
            let copied = read_partition(&dst, "orders", 2).await.len();
            if copied == read_partition(&src, "orders", 2).await.len() {
                assert!(target_end <= source_end);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "follow did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Release);
        let report = following.await.unwrap().unwrap();
        assert_eq!(report.records, 500);
        assert_same_records(&src, &dst, "orders", 3).await;

        // Another writer on a target topic: the mirror cannot tell its records from its
        // own, and says so instead of skipping or duplicating.
        let intruder = Producer::new(ProducerConfig::new(config(&dst)))
            .await
            .unwrap();
        intruder
            .send(ProducerRecord::new("loans.v1", "not mirrored").partition(1))
            .await
            .unwrap();
        intruder.close().await.unwrap();
        stop.store(false, Ordering::Release);
        let err = mirror(&mirror_config, Arc::clone(&stop), |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another client"), "{err}");
    });
    drop(rt);
    source.shutdown();
    target.shutdown();
}
