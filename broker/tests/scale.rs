//! Scale: a topic with 10,000 partitions is created, produced to and consumed from with
//! librdkafka; the `brook` process is then killed with SIGKILL and restarted, and stopped
//! cleanly and restarted, and every partition still holds what was acknowledged.
//!
//! Slow (minutes in a debug build), so it is ignored by default; the figures it prints are
//! quoted in docs/performance.md:
//!
//! ```sh
//! cargo test --release -p brook-broker --test scale -- --ignored --nocapture
//! ```
//! `BROOK_SCALE_PARTITIONS=2000` runs it smaller.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use common::{free_port, start_with_checkpoints};

const TOPIC: &str = "scale";
/// Records produced to each partition.
const PER_PARTITION: i64 = 2;

fn partitions() -> i32 {
    std::env::var("BROOK_SCALE_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// How often the broker checkpoints (Kafka's default is a minute): often enough that the
/// SIGKILL below finds every partition checkpointed.
const CHECKPOINT_MS: u64 = 5_000;

/// Starts `brook` and returns it with the time to its "listening" line.
fn start(dir: &Path, port: u16) -> (Child, Duration) {
    let started = start_with_checkpoints(dir, port, CHECKPOINT_MS, Duration::from_secs(300));
    for line in started
        .earlier
        .iter()
        .filter(|l| l.contains("opened partition logs"))
    {
        println!("{line}");
    }
    (started.child, started.took)
}

fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_default()
        .to_string()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn disk_used(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        bytes += meta.blocks() * 512;
        if meta.is_dir() {
            bytes += disk_used(&entry.path());
        }
    }
    bytes
}

/// High watermark of every partition, through a consumer.
fn watermarks(bootstrap: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "scale-watermarks")
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(30))
                .unwrap()
                .1
        })
        .collect()
}

#[test]
#[ignore = "slow: creates, fills and restarts 10,000 partitions (see the module docs)"]
fn ten_thousand_partitions_survive_sigkill_and_restart() {
    let partitions = partitions();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let (mut broker, _) = start(dir.path(), port);
    let pid = broker.id();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(300))),
        ))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    println!(
        "create {partitions} partitions: {:?}; empty topic uses {} KiB of disk; broker RSS {}, {} fds",
        t.elapsed(),
        disk_used(&dir.path().join("data")) / 1024,
        proc_status(pid, "VmRSS:"),
        open_fds(pid)
    );
    drop(admin);

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .create()
        .unwrap();
    let t = Instant::now();
    for round in 0..PER_PARTITION {
        for p in 0..partitions {
            let value = format!("{p}-{round}");
            let key = format!("k{p}");
            let mut record = BaseRecord::to(TOPIC).partition(p).key(&key).payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300)).unwrap();
    println!(
        "produce {} records to {partitions} partitions (acks=all): {:?}",
        i64::from(partitions) * PER_PARTITION,
        t.elapsed()
    );
    drop(producer);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "scale")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let t = Instant::now();
    let want = i64::from(partitions) * PER_PARTITION;
    let mut got = 0i64;
    while got < want {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "consumed {got} of {want}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            m.unwrap();
            got += 1;
        }
    }
    println!(
        "consume {want} records: {:?}; broker RSS {}, peak {}, {} fds",
        t.elapsed(),
        proc_status(pid, "VmRSS:"),
        proc_status(pid, "VmHWM:"),
        open_fds(pid)
    );
    drop(consumer);

    // Every partition's data is durable (acks=all) and, after a checkpoint round, covered by
    // its checkpoint's durable prefix: the restart reads none of it.
    std::thread::sleep(Duration::from_millis(CHECKPOINT_MS + 2_000));
    broker.kill().unwrap();
    broker.wait().unwrap();
    let (mut broker, took) = start(dir.path(), port);
    println!("restart after SIGKILL: {took:?} to listening");
    let marks = watermarks(&bootstrap, partitions);
    assert!(
        marks.iter().all(|m| *m == PER_PARTITION),
        "partitions with other high watermarks: {}",
        marks.iter().filter(|m| **m != PER_PARTITION).count()
    );

    let t = Instant::now();
    // SIGTERM: a clean stop.
    Command::new("kill")
        .arg(broker.id().to_string())
        .status()
        .unwrap();
    broker.wait().unwrap();
    println!("clean stop: {:?}", t.elapsed());
    let (mut broker, took) = start(dir.path(), port);
    println!(
        "restart after a clean stop: {took:?} to listening; RSS {}",
        proc_status(broker.id(), "VmRSS:")
    );
    let marks = watermarks(&bootstrap, partitions);
    assert!(marks.iter().all(|m| *m == PER_PARTITION));
    broker.kill().unwrap();
    broker.wait().unwrap();
}
