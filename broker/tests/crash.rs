//! kill -9 under load: an idempotent librdkafka producer (acks=all) writes to several partitions while
//! the `brook` process is killed at random moments and restarted on the same directory.
//! Afterwards every acknowledged record is at its acknowledged offset, no offset holds a value
//! other than the one acknowledged for it, offsets are contiguous from 0, and no record is in
//! the log twice (retries after a restart are recognised from the producer state rebuilt
//! from the log).
//!
//! Runs in the default (fsync) mode and with `--unsafe-disable-fsync`: a process crash keeps
//! the page cache, so neither may lose anything. 20 cycles each by default;
//! `BROOK_CRASH_CYCLES=200 cargo test -p brook-broker --test crash` runs more. Transactions
//! are also checked across power cuts, on the storage crate's power-loss model with the
//! broker in this process.

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

use common::{free_port, start_until_listening, start_with_checkpoints, start_with_config, BROOK};

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 4;

/// A tiny deterministic generator, so a failing run can be repeated from its printed seed.
/// Kill cycles to run: `BROOK_CRASH_CYCLES`, else `default`.
fn cycles(default: usize) -> usize {
    std::env::var("BROOK_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    /// Seeded from the clock; prints the seed so that a failing run can be read back.
    fn seeded(cycles: usize) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("seed {seed}, {cycles} cycles");
        Self(seed)
    }
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
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir);
    if no_fsync {
        cmd.arg("--unsafe-disable-fsync");
    }
    start_until_listening(cmd, Duration::from_secs(30)).child
}

/// Creates the test topic with `partitions` partitions.
fn create_crash_topic(bootstrap: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
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
    let cycles = cycles(20);
    println!("no_fsync={no_fsync}");
    let mut rng = Rng::seeded(cycles);
    let seed = rng.0;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = start(dir.path(), port, no_fsync);

    create_crash_topic(&bootstrap, PARTITIONS);

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
    create_crash_topic(&bootstrap, 8);
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

/// How a transaction of the crash test ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnOutcome {
    /// commit_transaction succeeded: every record must be visible, once.
    Committed,
    /// The producer aborted it (by choice or after an error): no record may be visible.
    Aborted,
    /// Unknown (the broker died during the commit, or the producer had to be replaced):
    /// all of its records or none.
    Unknown,
}

/// Runs transactions of random size over the crash topic's partitions, committing or
/// aborting each at random, until `stop`; returns each transaction's records and outcome.
/// Transactions of the crash tests, and how each ended as its producer saw it.
type Transactions = Vec<(Vec<(i32, String)>, TxnOutcome)>;

/// Runs transactions until `stop`; record values are `txn-<tag>-<n>-<i>`, each call with its
/// own `tag`. A call to the broker gives up after `timeout`.
fn run_transactions(
    bootstrap: String,
    seed: u64,
    tag: u64,
    timeout: Duration,
    stop: Arc<AtomicBool>,
) -> Transactions {
    use rdkafka::producer::BaseProducer;
    let mut rng = Rng(seed);
    let new_producer = || -> Option<BaseProducer> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", "crash-txn")
            .set("transaction.timeout.ms", "5000")
            // librdkafka wants it no longer than the transaction timeout.
            .set(
                "message.timeout.ms",
                timeout.min(Duration::from_secs(5)).as_millis().to_string(),
            )
            .set("linger.ms", "1")
            .set("reconnect.backoff.ms", "10")
            .set("reconnect.backoff.max.ms", "100")
            .set("retry.backoff.ms", "10")
            .create()
            .ok()?;
        producer.init_transactions(timeout).ok()?;
        Some(producer)
    };
    let mut done = Vec::new();
    let mut producer = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(p) = producer.take().or_else(new_producer) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        n += 1;
        let size = rng.between(1, 20) as usize;
        let records: Vec<(i32, String)> = (0..size)
            .map(|i| {
                (
                    rng.between(0, PARTITIONS as u64) as i32,
                    format!("txn-{tag}-{n}-{i}"),
                )
            })
            .collect();
        let commit = rng.between(0, 3) > 0;
        let t = timeout;
        let written = p.begin_transaction().is_ok()
            && records.iter().all(|(partition, value)| {
                p.send(
                    BaseRecord::<str, str>::to(TOPIC)
                        .payload(value)
                        .partition(*partition),
                )
                .is_ok()
            })
            && p.flush(t).is_ok();
        let outcome = if written && commit {
            match p.commit_transaction(t) {
                Ok(()) => TxnOutcome::Committed,
                Err(_) => TxnOutcome::Unknown,
            }
        } else if p.abort_transaction(t).is_ok() {
            TxnOutcome::Aborted
        } else {
            TxnOutcome::Unknown
        };
        let keep = match outcome {
            TxnOutcome::Committed | TxnOutcome::Aborted => true,
            // A failed commit or abort leaves the producer in an unknown state: a new
            // incarnation fences this one and aborts whatever it left open.
            TxnOutcome::Unknown => false,
        };
        done.push((records, outcome));
        if keep {
            producer = Some(p);
        }
    }
    done
}

/// After the crashes: the log read with read_committed (once every transaction left open
/// has been aborted by its timeout) holds every committed transaction whole, no record of an
/// aborted one, all or nothing of one whose outcome the producer did not learn, and no
/// record twice.
fn check_transactions(bootstrap: &str, transactions: &Transactions, seed: u64) {
    let count = |o: TxnOutcome| transactions.iter().filter(|(_, x)| *x == o).count();
    println!(
        "{} transactions: {} committed, {} aborted, {} unknown",
        transactions.len(),
        count(TxnOutcome::Committed),
        count(TxnOutcome::Aborted),
        count(TxnOutcome::Unknown)
    );
    assert!(count(TxnOutcome::Committed) > 0, "no transaction committed");

    // Read everything committed, once no transaction is open any more (those the last
    // incarnations left open are aborted by their timeout): then the last stable offset, what
    // a read_committed consumer's watermark query answers, has caught up with the end.
    let reader = |isolation: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "txn-crash-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", isolation)
            .create()
            .unwrap()
    };
    let (committed, uncommitted) = (reader("read_committed"), reader("read_uncommitted"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let t = Duration::from_secs(10);
    while (0..PARTITIONS).any(|p| {
        committed.fetch_watermarks(TOPIC, p, t).unwrap()
            != uncommitted.fetch_watermarks(TOPIC, p, t).unwrap()
    }) {
        assert!(
            Instant::now() < deadline,
            "a transaction stayed open (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    committed.assign(&tpl).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut at_end = std::collections::HashSet::new();
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "reading did not reach the end (seed {seed})"
        );
        match committed.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                *seen.entry(value).or_default() += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    for (value, times) in &seen {
        assert_eq!(*times, 1, "{value} read {times} times (seed {seed})");
    }
    for (records, outcome) in transactions {
        let visible = records.iter().filter(|(_, v)| seen.contains_key(v)).count();
        match outcome {
            TxnOutcome::Committed => assert_eq!(
                visible,
                records.len(),
                "committed transaction {:?} not whole (seed {seed})",
                records.first()
            ),
            TxnOutcome::Aborted => assert_eq!(
                visible,
                0,
                "aborted transaction {:?} visible (seed {seed})",
                records.first()
            ),
            TxnOutcome::Unknown => assert!(
                visible == 0 || visible == records.len(),
                "transaction {:?} partly visible: {visible} of {} (seed {seed})",
                records.first(),
                records.len()
            ),
        }
    }
}

#[test]
fn kill_9_keeps_committed_transactions_whole_and_aborted_ones_invisible() {
    let cycles = cycles(12);
    let mut rng = Rng::seeded(cycles);
    let seed = rng.0;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    // Transactions a killed incarnation left open are aborted soon after their timeout.
    let start = || {
        let toml = "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n";
        start_with_config(dir.path(), port, toml, Duration::from_secs(30)).child
    };
    let mut broker = start();
    create_crash_topic(&bootstrap, PARTITIONS);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (bootstrap, stop) = (bootstrap.clone(), stop.clone());
        std::thread::spawn(move || {
            run_transactions(bootstrap, seed ^ 0x5555, 0, Duration::from_secs(10), stop)
        })
    };
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(rng.between(100, 600)));
        broker.kill().unwrap(); // SIGKILL
        broker.wait().unwrap();
        broker = start();
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let transactions = writer.join().unwrap();
    check_transactions(&bootstrap, &transactions, seed);
    broker.kill().unwrap();
    broker.wait().unwrap();
}

/// The same promises across power cuts instead of kill -9: the broker runs in this process
/// on the storage crate's power-loss model, so whatever was not fsynced when the power goes
/// is gone after the restart (a kill -9 leaves the page cache, which hides a missing fsync
/// or one made in the wrong order). 6 cuts by default (`BROOK_CRASH_CYCLES`).
#[test]
fn power_cuts_keep_committed_transactions_whole_and_aborted_ones_invisible() {
    use brook_broker::{BrokerConfig, EmbeddedBroker};
    use brook_storage::testing::PowerLossFileSystem;
    let cycles = cycles(6);
    let mut rng = Rng::seeded(cycles);
    let seed = rng.0;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let start = |model: &Arc<PowerLossFileSystem>| {
        EmbeddedBroker::start(BrokerConfig {
            listen: bootstrap.parse().unwrap(),
            file_system: Some(model.clone()),
            // Transactions a cut left open are aborted soon after their timeout.
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 200,
            ..BrokerConfig::with_data_dir(&data)
        })
        .unwrap()
    };
    let mut transactions = Vec::new();
    for cycle in 0..cycles as u64 {
        let model = Arc::new(PowerLossFileSystem::new(root.path()).unwrap());
        let broker = start(&model);
        if cycle == 0 {
            create_crash_topic(&bootstrap, PARTITIONS);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (bootstrap, stop) = (bootstrap.clone(), stop.clone());
            let timeout = Duration::from_secs(2);
            std::thread::spawn(move || {
                run_transactions(bootstrap, seed ^ cycle, cycle, timeout, stop)
            })
        };
        std::thread::sleep(Duration::from_millis(rng.between(200, 1_000)));
        model.cut();
        stop.store(true, Ordering::Relaxed);
        transactions.extend(writer.join().unwrap());
        broker.shutdown();
        model.restore().unwrap();
    }
    let model = Arc::new(PowerLossFileSystem::new(root.path()).unwrap());
    let broker = start(&model);
    check_transactions(&bootstrap, &transactions, seed);
    broker.shutdown();
}
