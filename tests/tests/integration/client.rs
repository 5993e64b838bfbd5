//! brook-client (the Rust producer and consumer) against an in-process broker, and
//! cross-checked with librdkafka: round trips in every codec, the partition of 1,000 keys
//! equal to librdkafka's `murmur2_random`, records written by one read by the other, an
//! idempotent producer that loses its connection mid-flight without writing duplicates,
//! and read_committed skipping aborted transactions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_client::{
    partition_for_key, Acks, Admin, ClientConfig, ClientError, Compression, Consumer,
    ConsumerConfig, ConsumerRecord, IsolationLevel, Producer, ProducerConfig, ProducerRecord,
    StartAt,
};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// A two-worker runtime for the async clients of these tests.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(super) fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::new(bootstrap)
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::connect(bootstrap, &Default::default(), Duration::from_secs(10))
        .await
        .unwrap();
    admin.create_topic(topic, partitions, &[]).await.unwrap();
}

/// Reads `topic` from the start until `count` records came (or 20 s passed).
pub(super) async fn read_all(
    bootstrap: &str,
    topic: &str,
    count: usize,
    isolation: IsolationLevel,
) -> Vec<ConsumerRecord> {
    let mut consumer = Consumer::new(ConsumerConfig {
        isolation,
        max_wait: Duration::from_millis(100),
        ..ConsumerConfig::new(config(bootstrap))
    })
    .await
    .unwrap();
    consumer
        .assign(topic, None, StartAt::Beginning)
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < count && tokio::time::Instant::now() < deadline {
        out.extend(consumer.poll().await.unwrap());
    }
    out
}

#[test]
fn records_round_trip_in_every_codec_with_keys_headers_and_timestamps() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "codecs", 3).await;
        let mut sent = BTreeMap::new();
        let codecs = [
            (Compression::None, Acks::All, true),
            (Compression::Gzip, Acks::Leader, false),
            (Compression::Snappy, Acks::All, true),
            (Compression::Lz4, Acks::All, true),
            (Compression::Zstd, Acks::Leader, false),
        ];
        for (c, (compression, acks, idempotence)) in codecs.into_iter().enumerate() {
            let producer = Producer::new(ProducerConfig {
                compression,
                acks,
                idempotence,
                batch_size: 16_384,
                ..ProducerConfig::new(config(&bootstrap))
            })
            .await
            .unwrap();
            let mut deliveries = Vec::new();
            for i in 0..400 {
                let n = c * 1000 + i;
                let record = ProducerRecord::new("codecs", format!("value-{n}").repeat(3))
                    .key(format!("key-{}", n % 31))
                    .header("n", n.to_string())
                    .header("codec", format!("{compression:?}"))
                    .timestamp(1_700_000_000_000 + n as i64);
                deliveries.push((n, producer.send(record).await.unwrap()));
            }
            producer.flush().await;
            for (n, d) in deliveries {
                let meta = d.await.unwrap();
                assert_eq!(meta.timestamp, 1_700_000_000_000 + n as i64);
                sent.insert((meta.partition, meta.offset), n);
            }
            producer.close().await.unwrap();
        }
        assert_eq!(sent.len(), 2000, "every record got its own offset");
        let got = read_all(&bootstrap, "codecs", 2000, IsolationLevel::ReadUncommitted).await;
        assert_eq!(got.len(), 2000);
        for r in &got {
            let n = sent[&(r.partition, r.offset)];
            assert_eq!(
                r.value.as_deref(),
                Some(format!("value-{n}").repeat(3).as_bytes())
            );
            assert_eq!(r.key.as_deref(), Some(format!("key-{}", n % 31).as_bytes()));
            assert_eq!(r.timestamp, 1_700_000_000_000 + n as i64);
            assert_eq!(r.headers.len(), 2);
            assert_eq!(r.headers[0].key, "n");
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(n.to_string().as_bytes())
            );
            // The same key always went to the same partition.
            let key = format!("key-{}", n % 31);
            assert_eq!(r.partition, partition_for_key(key.as_bytes(), 3));
        }
    });
}

#[test]
fn keys_land_on_the_partition_librdkafka_murmur2_random_chooses() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(create_topic(&bootstrap, "keys", 7));
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("aggregate-{i}-{}", i * 7919))
        .collect();
    let librdkafka: Vec<i32> = rt.block_on(async {
        let futures: Vec<_> = keys
            .iter()
            .map(|k| {
                producer
                    .send_result(FutureRecord::to("keys").key(k).payload("x"))
                    .unwrap()
            })
            .collect();
        let mut partitions = Vec::new();
        for f in futures {
            let partition = f.await.unwrap().unwrap().partition;
            partitions.push(partition);
        }
        partitions
    });
    let ours: Vec<i32> = rt.block_on(async {
        let producer = Producer::new(ProducerConfig::new(config(&bootstrap)))
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for k in &keys {
            deliveries.push(
                producer
                    .send(ProducerRecord::new("keys", "y").key(k.clone()))
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await;
        let mut partitions = Vec::new();
        for d in deliveries {
            partitions.push(d.await.unwrap().partition);
        }
        partitions
    });
    let computed: Vec<i32> = keys
        .iter()
        .map(|k| partition_for_key(k.as_bytes(), 7))
        .collect();
    assert_eq!(librdkafka, computed);
    assert_eq!(ours, computed);
    // The keys are spread, not piled on one partition.
    assert_eq!(computed.iter().collect::<HashSet<_>>().len(), 7);
}

#[test]
fn librdkafka_reads_what_brook_client_wrote_and_the_other_way() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "from-brook", 2).await;
        create_topic(&bootstrap, "from-librdkafka", 2).await;
        let producer = Producer::new(ProducerConfig {
            compression: Compression::Lz4,
            ..ProducerConfig::new(config(&bootstrap))
        })
        .await
        .unwrap();
        for i in 0..1000 {
            let record = ProducerRecord::new("from-brook", format!("b-{i}"))
                .key(format!("k-{i}"))
                .header("i", i.to_string());
            producer.send(record).await.unwrap();
        }
        producer.close().await.unwrap();
    });
    // librdkafka reads brook-client's records.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "unused")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("from-brook", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 1000 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            let header = m.headers().unwrap().get(0);
            assert_eq!(header.key, "i");
            seen.insert(key, (value, header.value.unwrap().to_vec()));
        }
    }
    assert_eq!(seen.len(), 1000);
    for i in 0..1000 {
        let (value, header) = &seen[&format!("k-{i}")];
        assert_eq!(value, &format!("b-{i}"));
        assert_eq!(header, i.to_string().as_bytes());
    }
    // brook-client reads librdkafka's (zstd) records.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("compression.type", "zstd")
        .create()
        .unwrap();
    rt.block_on(async {
        let futures: Vec<_> = (0..1000)
            .map(|i| {
                let key = format!("k-{i}");
                let value = format!("r-{i}");
                producer
                    .send_result(
                        FutureRecord::to("from-librdkafka")
                            .key(&key)
                            .payload(&value),
                    )
                    .unwrap()
            })
            .collect();
        for f in futures {
            f.await.unwrap().unwrap();
        }
        let got = read_all(
            &bootstrap,
            "from-librdkafka",
            1000,
            IsolationLevel::ReadUncommitted,
        )
        .await;
        let got: HashMap<Vec<u8>, Vec<u8>> = got
            .into_iter()
            .map(|r| (r.key.unwrap().to_vec(), r.value.unwrap().to_vec()))
            .collect();
        assert_eq!(got.len(), 1000);
        assert_eq!(got[&b"k-7"[..]], b"r-7");
    });
}

/// A TCP proxy in front of the broker that, once, passes the client's requests on but
/// drops the connection instead of passing the answers back: the broker has written
/// batches whose acknowledgements the producer never gets.
struct Dropper {
    addr: String,
    dropped: Arc<AtomicBool>,
}

impl Dropper {
    fn start(listener: tokio::net::TcpListener, upstream: String, after_bytes: usize) -> Self {
        let addr = listener.local_addr().unwrap().to_string();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let sent = Arc::new(AtomicUsize::new(0));
                    let cut = Arc::new(AtomicBool::new(false));
                    let (sent2, cut2, flag2) =
                        (Arc::clone(&sent), Arc::clone(&cut), Arc::clone(&flag));
                    let up = tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            let total = sent2.fetch_add(n, Ordering::SeqCst) + n;
                            if total > after_bytes && !flag2.swap(true, Ordering::SeqCst) {
                                cut2.store(true, Ordering::SeqCst);
                                // Let the broker write what it got, then hang up on both.
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                return;
                            }
                        }
                    });
                    let down = tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if cut.load(Ordering::SeqCst) {
                                return; // answers after the cut are lost
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    let _ = up.await;
                    down.abort();
                });
            }
        });
        Self { addr, dropped }
    }
}

/// A broker that advertises a proxy's address, so every connection goes through the
/// proxy: the broker, the proxy's (not yet accepting) listener and its address.
fn broker_behind_proxy() -> (EmbeddedBroker, std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let proxy = listener.local_addr().unwrap().to_string();
    let broker = EmbeddedBroker::start(BrokerConfig {
        advertise: Some(proxy.clone()),
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    (broker, listener, proxy)
}

#[test]
fn an_idempotent_producer_that_loses_its_connection_writes_no_duplicates() {
    let (broker, listener, proxy) = broker_behind_proxy();
    let upstream = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let dropper = Dropper::start(listener, upstream.clone(), 200_000);
        assert_eq!(dropper.addr, proxy);
        create_topic(&upstream, "exactly-once", 1).await;
        let producer = Producer::new(ProducerConfig {
            batch_size: 8_192,
            linger: Duration::from_millis(1),
            retry_backoff: Duration::from_millis(50),
            ..ProducerConfig::new(config(&proxy))
        })
        .await
        .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..5_000 {
            let record =
                ProducerRecord::new("exactly-once", format!("event-{i:05}-{}", "x".repeat(100)));
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.flush().await;
        let mut offsets = HashSet::new();
        for d in deliveries {
            let meta = d
                .await
                .expect("every record is acknowledged after the retry");
            assert!(offsets.insert(meta.offset), "offset {} twice", meta.offset);
        }
        assert!(
            dropper.dropped.load(Ordering::SeqCst),
            "the connection was dropped"
        );
        let got = read_all(
            &upstream,
            "exactly-once",
            5_000,
            IsolationLevel::ReadUncommitted,
        )
        .await;
        // Wait a moment for anything extra (a duplicate would come after the 5,000).
        let mut consumer = Consumer::new(ConsumerConfig::new(config(&upstream)))
            .await
            .unwrap();
        let end = consumer
            .list_offset("exactly-once", 0, StartAt::End)
            .await
            .unwrap();
        assert_eq!(end, 5_000, "no record written twice");
        let values: Vec<Vec<u8>> = got
            .iter()
            .map(|r| r.value.clone().unwrap().to_vec())
            .collect();
        let unique: HashSet<&Vec<u8>> = values.iter().collect();
        assert_eq!(unique.len(), 5_000);
        // In order, too.
        for (i, v) in values.iter().enumerate() {
            assert!(v.starts_with(format!("event-{i:05}").as_bytes()));
        }
        consumer.unassign_all();
    });
}

#[test]
fn read_committed_leaves_out_aborted_transactions() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(create_topic(&bootstrap, "txn", 1));
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "client-test")
        .create()
        .unwrap();
    let t = Duration::from_secs(10);
    producer.init_transactions(t).unwrap();
    for (round, commit) in [(0, true), (1, false), (2, true)] {
        producer.begin_transaction().unwrap();
        for i in 0..10 {
            let value = format!("{round}-{i}");
            producer
                .send(rdkafka::producer::BaseRecord::<(), String>::to("txn").payload(&value))
                .unwrap();
        }
        producer.flush(t).unwrap();
        if commit {
            producer.commit_transaction(t).unwrap();
        } else {
            producer.abort_transaction(t).unwrap();
        }
    }
    rt.block_on(async {
        let all = read_all(&bootstrap, "txn", 30, IsolationLevel::ReadUncommitted).await;
        assert_eq!(all.len(), 30);
        let committed = read_all(&bootstrap, "txn", 20, IsolationLevel::ReadCommitted).await;
        let values: Vec<String> = committed
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(values.len(), 20);
        assert!(values.iter().all(|v| !v.starts_with("1-")), "{values:?}");
    });
}

#[test]
fn consumers_start_at_a_time_or_the_end_and_errors_are_clear() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "times", 1).await;
        let producer = Producer::new(ProducerConfig::new(config(&bootstrap)))
            .await
            .unwrap();
        // A lone record goes once its linger has passed, without a flush.
        let lone = producer
            .send(ProducerRecord::new("lone", "x"))
            .await
            .unwrap();
        let written = tokio::time::timeout(Duration::from_secs(5), lone)
            .await
            .expect("delivered after linger.ms, not only on flush")
            .unwrap();
        assert_eq!((written.topic.as_str(), written.offset), ("lone", 0));
        for i in 0..10 {
            producer
                .send(ProducerRecord::new("times", format!("{i}")).timestamp(1_000 * i))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
        let mut consumer = Consumer::new(ConsumerConfig::new(config(&bootstrap)))
            .await
            .unwrap();
        consumer
            .assign("times", None, StartAt::Timestamp(4_500))
            .await
            .unwrap();
        assert_eq!(consumer.position("times", 0), Some(5));
        consumer.seek("times", 0, StartAt::End).await.unwrap();
        assert_eq!(consumer.position("times", 0), Some(10));
        consumer
            .seek("times", 0, StartAt::Timestamp(99_999))
            .await
            .unwrap();
        assert_eq!(
            consumer.position("times", 0),
            Some(10),
            "past the last record: the end"
        );

        let err = consumer
            .assign("no-such-topic", None, StartAt::Beginning)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(3), "{err}");
        assert!(err.to_string().contains("no-such-topic"), "{err}");
        let err = consumer
            .assign("times", Some(&[4]), StartAt::Beginning)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no partition 4"), "{err}");

        let bad = Producer::new(ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::new(config(&bootstrap))
        })
        .await
        .unwrap_err();
        assert!(matches!(bad, ClientError::Config(_)), "{bad}");
    });
    // Nothing listens: an error within the timeout, not a hang.
    let reserve = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserve.local_addr().unwrap().to_string();
    drop(reserve);
    let err = rt
        .block_on(Producer::new(ProducerConfig::new(config(&addr))))
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

/// One group member polling in its own task until told to stop: what it read and what it
/// owns after each poll.
async fn member(
    bootstrap: String,
    group: brook_client::GroupConfig,
    seen: Arc<std::sync::Mutex<HashSet<String>>>,
    owned: Arc<std::sync::Mutex<Vec<(String, i32)>>>,
    stop: Arc<AtomicBool>,
) -> Consumer {
    let mut consumer = Consumer::new(ConsumerConfig {
        max_wait: Duration::from_millis(100),
        reset: StartAt::Beginning,
        ..ConsumerConfig::new(config(&bootstrap))
    })
    .await
    .unwrap();
    consumer.subscribe(group, &["work"]).await.unwrap();
    while !stop.load(Ordering::SeqCst) {
        let records = consumer.poll().await.unwrap();
        let mut seen = seen.lock().unwrap();
        for r in records {
            seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        *owned.lock().unwrap() = consumer.assignment();
    }
    consumer
}

#[test]
fn a_group_of_two_splits_the_partitions_and_a_newcomer_resumes_from_the_commits() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "work", 4).await;
        let producer = Producer::new(ProducerConfig::new(config(&bootstrap)))
            .await
            .unwrap();
        for i in 0..400 {
            producer
                .send(ProducerRecord::new("work", format!("job-{i}")).partition(i % 4))
                .await
                .unwrap();
        }
        producer.flush().await;
        let group = brook_client::GroupConfig {
            heartbeat_interval: Duration::from_millis(100),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            auto_commit_interval: Duration::from_millis(200),
            ..brook_client::GroupConfig::new("workers")
        };
        let seen = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let owned_a = Arc::new(std::sync::Mutex::new(Vec::new()));
        let owned_b = Arc::new(std::sync::Mutex::new(Vec::new()));
        let a = tokio::spawn(member(
            bootstrap.clone(),
            group.clone(),
            Arc::clone(&seen),
            Arc::clone(&owned_a),
            Arc::clone(&stop),
        ));
        // A alone owns everything first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while owned_a.lock().unwrap().len() != 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "A never got the partitions"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let b = tokio::spawn(member(
            bootstrap.clone(),
            group.clone(),
            Arc::clone(&seen),
            Arc::clone(&owned_b),
            Arc::clone(&stop),
        ));
        // Then the two split them, and between them read everything.
        loop {
            let (oa, ob) = (
                owned_a.lock().unwrap().clone(),
                owned_b.lock().unwrap().clone(),
            );
            if oa.len() == 2 && ob.len() == 2 && seen.lock().unwrap().len() == 400 {
                let all: HashSet<_> = oa.iter().chain(&ob).collect();
                assert_eq!(all.len(), 4, "{oa:?} {ob:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no split: {oa:?} {ob:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        a.close().await.unwrap();
        b.close().await.unwrap();
        // Committed: a newcomer reads only what came after.
        for i in 400..440 {
            producer
                .send(ProducerRecord::new("work", format!("job-{i}")).partition(i % 4))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
        let mut c = Consumer::new(ConsumerConfig {
            max_wait: Duration::from_millis(100),
            reset: StartAt::Beginning,
            ..ConsumerConfig::new(config(&bootstrap))
        })
        .await
        .unwrap();
        c.subscribe(group, &["work"]).await.unwrap();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 40 && tokio::time::Instant::now() < deadline {
            got.extend(c.poll().await.unwrap());
        }
        // One more round shows nothing older arrives late.
        got.extend(c.poll().await.unwrap());
        let values: HashSet<String> = got
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        let expected: HashSet<String> = (400..440).map(|i| format!("job-{i}")).collect();
        assert_eq!(values, expected);
        assert_eq!(got.len(), 40);
        assert_eq!(c.assignment().len(), 4);
        c.close().await.unwrap();
    });
}

#[test]
fn producers_see_new_partitions_after_metadata_max_age() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "growing", 1).await;
        let producer = Producer::new(ProducerConfig::new(ClientConfig {
            metadata_max_age: Duration::from_millis(200),
            ..config(&bootstrap)
        }))
        .await
        .unwrap();
        // A key that the 4-partition topic puts elsewhere than partition 0.
        let key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| partition_for_key(k.as_bytes(), 4) != 0)
            .unwrap();
        let before = producer
            .send(ProducerRecord::new("growing", "a").key(key.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(before.partition, 0);
        let admin = Admin::connect(&bootstrap, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap();
        admin.add_partitions("growing", 4).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = producer
            .send(ProducerRecord::new("growing", "b").key(key.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(after.partition, partition_for_key(key.as_bytes(), 4));
        producer.close().await.unwrap();
    });
}

#[test]
fn admin_requests_go_again_on_a_new_connection_when_one_breaks() {
    let (broker, listener, proxy) = broker_behind_proxy();
    let upstream = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&upstream, "kept", 1).await;
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        // ApiVersions passes; the first request after it is answered into the void.
        let dropper = Dropper::start(listener, upstream.clone(), 45);
        let admin = Admin::connect(&proxy, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap();
        let topics = admin.list_topics().await.unwrap();
        assert!(
            dropper.dropped.load(Ordering::SeqCst),
            "the connection was cut"
        );
        assert_eq!(
            topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["kept"]
        );
    });
}

/// Mappings of files below `dir` that were deleted but are still mapped by this process
/// (their disk space is not given back while they are).
fn deleted_but_mapped(dir: &std::path::Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = dir.to_string_lossy().to_string();
    maps.lines()
        .filter(|l| l.contains(&dir) && l.ends_with("(deleted)"))
        .map(String::from)
        .collect()
}

#[test]
fn deleting_a_topic_releases_its_files() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let dir = broker.data_dir().to_path_buf();
    let rt = runtime();
    rt.block_on(async {
        let admin = Admin::connect(&bootstrap, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap();
        // Small segments: rolled (sealed) segments are part of what must go.
        let small = [("segment.bytes".to_string(), "1048576".to_string())];
        for (topic, produce, read) in [
            ("empty", false, false),
            ("written", true, false),
            ("read", true, true),
        ] {
            admin.create_topic(topic, 2, &small).await.unwrap();
            let value = "x".repeat(1000);
            if produce {
                let producer = Producer::new(ProducerConfig {
                    acks: Acks::Leader,
                    idempotence: false,
                    ..ProducerConfig::new(config(&bootstrap))
                })
                .await
                .unwrap();
                for _ in 0..50_000 {
                    producer
                        .send(ProducerRecord::new(topic, value.clone()))
                        .await
                        .unwrap();
                }
                producer.close().await.unwrap();
            }
            if read {
                let got =
                    read_all(&bootstrap, topic, 50_000, IsolationLevel::ReadUncommitted).await;
                assert_eq!(got.len(), 50_000);
            }
            admin.delete_topic(topic).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let left = deleted_but_mapped(&dir);
            assert!(left.is_empty(), "{topic}: {left:#?}");
        }
    });
}

#[test]
fn transactions_commit_or_abort_records_and_offsets_together_and_fence_zombies() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    let rt = runtime();
    rt.block_on(async {
        create_topic(&bootstrap, "txn-out", 2).await;
        create_topic(&bootstrap, "txn-in", 1).await;
        let transactional = |id: &str| ProducerConfig {
            transactional_id: Some(id.to_string()),
            ..ProducerConfig::new(config(&bootstrap))
        };
        let producer = Producer::new(transactional("outbox-1")).await.unwrap();
        // Outside a transaction a transactional producer refuses to send.
        let err = producer
            .send(ProducerRecord::new("txn-out", "stray"))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
        let mut offsets = BTreeMap::new();
        offsets.insert(("txn-in".to_string(), 0), 42);
        for (round, commit, n) in [(0, true, 10), (1, false, 10), (2, true, 5)] {
            producer.begin_transaction().await.unwrap();
            for i in 0..n {
                producer
                    .send(
                        ProducerRecord::new("txn-out", format!("{round}-{i}")).key(format!("k{i}")),
                    )
                    .await
                    .unwrap();
            }
            if round == 0 {
                producer
                    .send_offsets_to_transaction(&offsets, "projector")
                    .await
                    .unwrap();
            }
            if commit {
                producer.commit_transaction().await.unwrap();
            } else {
                producer.abort_transaction().await.unwrap();
            }
        }
        let committed = read_all(&bootstrap, "txn-out", 15, IsolationLevel::ReadCommitted).await;
        let mut values: Vec<String> = committed
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        values.sort();
        assert_eq!(values.len(), 15, "{values:?}");
        assert!(values.iter().all(|v| !v.starts_with("1-")), "{values:?}");
        let everything = read_all(&bootstrap, "txn-out", 25, IsolationLevel::ReadUncommitted).await;
        assert_eq!(everything.len(), 25);
        let admin = Admin::connect(&bootstrap, &Default::default(), Duration::from_secs(10))
            .await
            .unwrap();
        let group = admin.group_offsets("projector").await.unwrap();
        assert_eq!(group.get(&("txn-in".to_string(), 0)), Some(&42));

        // A record the broker refuses leaves the transaction only to be aborted.
        let admin_small = [("max.message.bytes".to_string(), "1024".to_string())];
        admin
            .create_topic("txn-small", 1, &admin_small)
            .await
            .unwrap();
        producer.begin_transaction().await.unwrap();
        let too_big = producer
            .send(ProducerRecord::new("txn-small", "x".repeat(5_000)))
            .await
            .unwrap();
        assert!(too_big.await.is_err());
        let refused = producer.commit_transaction().await.unwrap_err();
        assert!(
            refused.to_string().contains("abort the transaction"),
            "{refused}"
        );
        producer.abort_transaction().await.unwrap();

        // A second producer with the same id fences the first.
        let successor = Producer::new(transactional("outbox-1")).await.unwrap();
        assert!(successor.producer_id().1 > producer.producer_id().1);
        producer.begin_transaction().await.unwrap();
        let fenced = producer
            .send(ProducerRecord::new("txn-out", "zombie").partition(1))
            .await
            .unwrap_err();
        assert!(matches!(fenced.code(), Some(47 | 90)), "{fenced}");
    });
}
