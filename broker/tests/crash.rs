//! kill -9 under load: an idempotent librdkafka producer (acks=all) writes to several partitions while
//! the `brook` process is killed at random moments and restarted on the same directory.
//! Afterwards every acknowledged record is at its acknowledged offset, no offset holds a value
//! other than the one acknowledged for it, offsets are contiguous from 0, and no record is in
//! the log twice (retries after a restart are recognised from the producer state rebuilt
//! from the log).
//!
//! Runs in the default (fsync) mode and with `--unsafe-disable-fsync`: a process crash keeps
//! the page cache, so neither may lose anything. 20 cycles each by default;
//! `BROOK_CRASH_CYCLES=200 cargo test -p brook-broker --test crash` runs more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

use common::{free_port, start_until_listening, start_with_checkpoints, BROOK};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 4;

/// A tiny deterministic generator, so a failing run can be repeated from its printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Starts `brook` and waits for its startup line.
fn start(dir: &Path, port: u16, no_fsync: bool) -> Child {
    let mut cmd = Command::new(BROOK);
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir);
    if no_fsync {
        cmd.arg("--unsafe-disable-fsync");
    }
    start_until_listening(cmd, Duration::from_secs(30)).child
}

/// Delivery reports: (partition, offset, value) of every acknowledged record.
struct Acks(Arc<Mutex<Vec<(i32, i64, String)>>>);
impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            self.0
                .lock()
                .unwrap()
                .push((m.partition(), m.offset(), value));
        }
    }
}

fn run(no_fsync: bool) {
    let cycles: usize = std::env::var("BROOK_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}, {cycles} cycles, no_fsync={no_fsync}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = start(dir.path(), port, no_fsync);

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    drop(admin);

    let acks = Arc::new(Mutex::new(Vec::new()));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("retry.backoff.ms", "10")
        .create_with_context(Acks(acks.clone()))
        .unwrap();
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (producer, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seq: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("value-{seq}");
                let record = BaseRecord::to(TOPIC)
                    .payload(&value)
                    .key("k")
                    .partition((seq % PARTITIONS as u64) as i32);
                match producer.send(record) {
                    Ok(()) => seq += 1,
                    // Queue full while the broker is down: wait for deliveries to drain.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                if seq.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            seq
        })
    };

    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(rng.between(30, 250)));
        broker.kill().unwrap(); // SIGKILL
        broker.wait().unwrap();
        broker = start(dir.path(), port, no_fsync);
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().unwrap();
    producer
        .flush(Duration::from_secs(120))
        .expect("every record delivered or failed");
    let acked = acks.lock().unwrap().clone();
    println!("sent {sent}, acknowledged {}", acked.len());
    assert!(
        acked.len() as u64 >= sent / 2,
        "too few acknowledgements to prove anything"
    );

    // Read everything back.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(low, 0);
        ends.insert(p, high);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let total: i64 = ends.values().sum();
    let mut stored: HashMap<(i32, i64), String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (stored.len() as i64) < total {
        assert!(
            Instant::now() < deadline,
            "read {} of {total}",
            stored.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            assert!(
                stored.insert((m.partition(), m.offset()), value).is_none(),
                "offset read twice"
            );
        }
    }
    for (p, end) in &ends {
        for o in 0..*end {
            assert!(
                stored.contains_key(&(*p, o)),
                "gap at partition {p} offset {o}"
            );
        }
    }
    for (p, o, value) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(value),
            "acknowledged record lost or changed at {p}/{o} (seed {seed})"
        );
    }
    drop(consumer);
    broker.kill().unwrap();
    broker.wait().unwrap();
}

#[test]
fn kill_9_loses_no_acknowledged_record() {
    run(false);
}

#[test]
fn kill_9_loses_no_acknowledged_record_without_fsync() {
    run(true);
}

/// Starts `brook` with a checkpoint every `checkpoint_ms`; returns it with its summary of the
/// partitions it opened: (partitions recovered, bytes scanned).
fn start_summarised(dir: &Path, port: u16, checkpoint_ms: u64) -> (Child, u64, u64) {
    let started = start_with_checkpoints(dir, port, checkpoint_ms, Duration::from_secs(30));
    let summary = started
        .earlier
        .iter()
        .find(|l| l.contains("opened partition logs"))
        .expect("a summary of the opened partitions")
        .clone();
    let field = |name: &str| -> u64 {
        let at = summary.find(&format!("{name}=")).expect(name) + name.len() + 1;
        summary[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (started.child, field("recovered"), field("bytes_scanned"))
}

#[test]
fn after_kill_9_only_partitions_with_data_since_the_checkpoint_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let (mut broker, _, _) = start_summarised(dir.path(), port, 100);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, 8, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    drop(admin);
    let produce = |partitions: std::ops::Range<i32>| {
        let producer: ThreadedProducer<Acks> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .create_with_context(Acks(Arc::new(Mutex::new(Vec::new()))))
            .unwrap();
        for p in partitions {
            for i in 0..200 {
                let value = format!("value-{p}-{i}");
                producer
                    .send(BaseRecord::<(), _>::to(TOPIC).payload(&value).partition(p))
                    .unwrap();
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    };

    // Every partition holds data, all of it durable and checkpointed before the kill.
    produce(0..8);
    std::thread::sleep(Duration::from_millis(600));
    broker.kill().unwrap();
    broker.wait().unwrap();
    // No checkpoint in this run: what is produced now is not covered by one.
    let (mut broker, recovered, scanned) = start_summarised(dir.path(), port, 3_600_000);
    assert_eq!(
        (recovered, scanned),
        (0, 0),
        "nothing to read after the checkpoint"
    );

    // Two partitions get data that no checkpoint covers yet: only they are read.
    produce(0..2);
    broker.kill().unwrap();
    broker.wait().unwrap();
    let (mut broker, recovered, scanned) = start_summarised(dir.path(), port, 3_600_000);
    assert_eq!(recovered, 2);
    assert!(scanned > 0 && scanned < 64 * 1024, "read {scanned} bytes");
    broker.kill().unwrap();
    broker.wait().unwrap();
}
