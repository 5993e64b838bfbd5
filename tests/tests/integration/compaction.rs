//! Compaction end to end with librdkafka: 20 aggregates x 50 snapshots to a compacted topic
//! (`segment.ms=100`, `min.cleanable.dirty.ratio=0.01`, `min.compaction.lag.ms=0`) leave
//! exactly each aggregate's latest snapshot for a consumer reading from the beginning, and
//! tombstoned aggregates disappear after `delete.retention.ms`; aborted transactions leave
//! nothing behind, even for read_uncommitted consumers; a fetch or a timestamp lookup at a
//! cleaned offset lands on the first surviving record; `__consumer_offsets` and
//! `__transaction_state` are compacted by the same cleaner, and what they hold (and the
//! cleaner's checkpoint) survives a restart; cleaner threads run at a lower priority and
//! follow `log.cleaner.threads` at runtime.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::librdkafka::{assign_from_beginning_with, runtime};
use super::transactions::transactional_producer;

const TOPIC: &str = "loan.snapshots";
const OFFSETS: &str = "__consumer_offsets";

/// Every (key, value) from the beginning of `topic`, in offset order (None: tombstone), as
/// a read_uncommitted consumer sees it.
fn read_all(bootstrap: &str, topic: &str) -> Vec<(String, Option<String>)> {
    let consumer = assign_from_beginning_with(
        bootstrap,
        topic,
        1,
        &[
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_uncommitted"),
        ],
    );
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
fn wait_for(bootstrap: &str, topic: &str, want: &BTreeMap<String, String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = read_all(bootstrap, topic);
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

/// Gives an existing topic (an internal one, say) the quick settings of [`create_compacted`]:
/// Kafka lets the internal topics' configs change like any other's.
fn make_quickly_cleanable(bootstrap: &str, topic: &str) {
    let quick = AlterConfig::new(ResourceSpecifier::Topic(topic))
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("min.compaction.lag.ms", "0");
    let altered = runtime()
        .block_on(admin(bootstrap).alter_configs(&[quick], &AdminOptions::new()))
        .unwrap();
    assert!(altered[0].is_ok(), "{altered:?}");
}

/// Waits until `topic` holds at most `n` records (the cleaner has run).
fn wait_until_at_most(bootstrap: &str, topic: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = read_all(bootstrap, topic).len();
        if records <= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} still holds {records} records"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A broker in `dir` whose cleaner looks for work every 100 ms (no fsync: restarts here are
/// clean ones).
fn quick_cleaner_config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        log_cleaner_backoff_ms: 100,
        unsafe_disable_fsync: true,
        ..BrokerConfig::with_data_dir(dir)
    }
}

/// An ephemeral broker whose cleaner looks for work every 100 ms.
fn quick_cleaner_broker() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig {
        log_cleaner_backoff_ms: 100,
        ..BrokerConfig::ephemeral()
    })
    .unwrap()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Creates `topic` compacted, quick to roll and to clean, tombstones kept for a second.
fn create_compacted(bootstrap: &str, topic: &str) {
    let topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "100")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "1000");
    let created = runtime()
        .block_on(admin(bootstrap).create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
}

#[test]
fn a_compacted_topic_keeps_each_aggregates_latest_snapshot_and_drops_tombstones() {
    let broker = quick_cleaner_broker();
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, TOPIC);

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
    wait_for(&bootstrap, TOPIC, &latest);

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
    wait_for(&bootstrap, TOPIC, &latest);
    broker.shutdown();
}

#[test]
fn aborted_transactions_are_removed_and_committed_ones_compacted() {
    const TXN_TOPIC: &str = "credit.checks";
    let broker = quick_cleaner_broker();
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, TXN_TOPIC);
    let producer = transactional_producer(&bootstrap, "saga-1", 60_000);
    let mut latest = BTreeMap::new();
    for round in 0..12 {
        producer.begin_transaction().unwrap();
        for check in 0..5 {
            let key = format!("check-{check}");
            let value = format!("round-{round}");
            producer
                .send(
                    BaseRecord::<str, str>::to(TXN_TOPIC)
                        .key(&key)
                        .payload(&value),
                )
                .unwrap();
            if round % 3 != 2 {
                latest.insert(key, value);
            }
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        if round % 3 == 2 {
            producer.abort_transaction(Duration::from_secs(10)).unwrap();
        } else {
            producer
                .commit_transaction(Duration::from_secs(10))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(120)); // segments roll by age
    }
    // A read_uncommitted reader sees no aborted round once the cleaner has run: their
    // records are gone from the log, not only hidden by the aborted-transaction index.
    wait_for(&bootstrap, TXN_TOPIC, &latest);
    broker.shutdown();
}

#[test]
fn the_offsets_topic_is_compacted_and_its_commits_and_clean_point_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || quick_cleaner_config(dir.path());
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, TOPIC);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "projection")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let commit = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
    };
    for offset in 1..=200 {
        commit(offset);
    }
    make_quickly_cleanable(&bootstrap, OFFSETS);
    std::thread::sleep(Duration::from_millis(150));
    commit(201); // lands in a new segment once the old one rolled
    wait_until_at_most(&bootstrap, OFFSETS, 3);
    drop(consumer);
    broker.shutdown();

    let checkpoint = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
    let line = checkpoint
        .lines()
        .find(|l| l.starts_with(OFFSETS))
        .unwrap_or_else(|| panic!("no {OFFSETS} entry in {checkpoint:?}"));
    let clean_point: i64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    assert!(clean_point >= 200, "{checkpoint:?}");

    let broker = EmbeddedBroker::start(config()).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "projection")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        committed.find_partition(TOPIC, 0).unwrap().offset(),
        Offset::Offset(201)
    );
    drop(consumer);
    broker.shutdown();
}

/// Nice values of this process's threads named `log-cleaner-*`.
fn cleaner_thread_nice_values() -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("log-cleaner-") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after "(comm) ": state is the 3rd field of the line, nice the 19th.
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        if let Some(nice) = after.split(' ').nth(16).and_then(|n| n.parse().ok()) {
            out.push(nice);
        }
    }
    out
}

#[test]
fn cleaner_threads_yield_the_cpu_to_produce_and_fetch() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        log_cleaner_threads: 2,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Other tests' brokers run in this process too: every cleaner thread counts.
        let nice = cleaner_thread_nice_values();
        if nice.len() >= 2 && nice.iter().all(|n| *n == 10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cleaner threads at nice {nice:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.shutdown();
}

/// Whether a thread named `name` runs in this process.
fn thread_named(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

#[test]
fn log_cleaner_threads_changes_at_runtime() {
    use super::configs::{broker_incremental, op};
    let broker = EmbeddedBroker::start(BrokerConfig::ephemeral()).unwrap();
    let mut c = brook_tests::RawClient::connect(&broker.bootstrap()).unwrap();
    // Only this test asks for a third thread: "log-cleaner-2" is its own.
    assert!(!thread_named("log-cleaner-2"));
    let set = |c: &mut brook_tests::RawClient, n: &str| {
        broker_incremental(c, "1", vec![op("log.cleaner.threads", 0, Some(n))], false)
    };
    assert_eq!(set(&mut c, "3"), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !thread_named("log-cleaner-2") {
        assert!(Instant::now() < deadline, "no third cleaner thread");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(set(&mut c, "1"), 0);
    while thread_named("log-cleaner-2") {
        assert!(
            Instant::now() < deadline,
            "the third cleaner thread did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.shutdown();
}

#[test]
fn fetch_and_list_offsets_skip_to_the_first_surviving_record() {
    const T: &str = "member.state";
    let broker = quick_cleaner_broker();
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, T);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    // Five members, ten states each, at timestamps 1_000_000 + offset.
    let mut latest = BTreeMap::new();
    for offset in 0..50i64 {
        let (key, value) = (format!("member-{}", offset % 5), format!("state-{offset}"));
        producer
            .send(
                BaseRecord::<str, str>::to(T)
                    .key(&key)
                    .payload(&value)
                    .timestamp(1_000_000 + offset),
            )
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        latest.insert(key, value);
    }
    std::thread::sleep(Duration::from_millis(150));
    producer
        .send(
            BaseRecord::<str, str>::to(T)
                .key("member-4")
                .payload("state-50"),
        )
        .unwrap(); // rolls the aged segment
    producer.flush(Duration::from_secs(10)).unwrap();
    latest.insert("member-4".into(), "state-50".into());
    wait_for(&bootstrap, T, &latest);

    // Offsets 0..44 are gone; 45..48 survive (member-4's 49 was superseded by 50).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(T, 0, Offset::Offset(3)).unwrap();
    consumer.assign(&tpl).unwrap();
    let first = match consumer.poll(Duration::from_secs(5)) {
        Some(Ok(m)) => m.offset(),
        Some(Err(e)) => panic!("fetch: {e}"),
        None => panic!("nothing fetched from offset 3"),
    };
    assert_eq!(
        first, 45,
        "a fetch at a cleaned offset returns the next batch"
    );
    let mut times = TopicPartitionList::new();
    times
        .add_partition_offset(T, 0, Offset::Offset(1_000_000 + 3))
        .unwrap();
    let found = consumer
        .offsets_for_times(times, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        found.find_partition(T, 0).unwrap().offset(),
        Offset::Offset(45),
        "ListOffsets by timestamp finds the first surviving record"
    );
    drop(consumer);
    broker.shutdown();
}

#[test]
fn the_transaction_state_topic_is_compacted_and_ids_survive_a_restart() {
    const STATE: &str = "__transaction_state";
    let dir = tempfile::tempdir().unwrap();
    let config = || quick_cleaner_config(dir.path());
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    create_compacted(&bootstrap, TOPIC);
    let producer = transactional_producer(&bootstrap, "outbox", 60_000);
    make_quickly_cleanable(&bootstrap, STATE);
    // Each transaction writes several state records of the one key "outbox".
    for i in 0..20 {
        producer.begin_transaction().unwrap();
        producer
            .send(
                BaseRecord::<str, str>::to(TOPIC)
                    .key("k")
                    .payload(&format!("v{i}")),
            )
            .unwrap();
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::<str, str>::to(TOPIC).key("k").payload("last"))
        .unwrap();
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();
    wait_until_at_most(&bootstrap, STATE, 6);
    let (pid, epoch) = describe_txn(&bootstrap, "outbox");
    drop(producer);
    broker.shutdown();

    // The compacted state still knows the id after a restart: a new incarnation keeps its
    // producer id with the next epoch.
    let broker = EmbeddedBroker::start(config()).unwrap();
    let producer = transactional_producer(&broker.bootstrap(), "outbox", 60_000);
    assert_eq!(
        describe_txn(&broker.bootstrap(), "outbox"),
        (pid, epoch + 1)
    );
    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::<str, str>::to(TOPIC).key("k").payload("after"))
        .unwrap();
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();
    drop(producer);
    broker.shutdown();
}

/// (producer id, epoch) of a transactional id, from DescribeTransactions.
fn describe_txn(bootstrap: &str, id: &str) -> (i64, i16) {
    use brook_protocol::kafka_protocol::messages::{DescribeTransactionsRequest, TransactionalId};
    use brook_protocol::kafka_protocol::protocol::StrBytes;
    let mut c = brook_tests::RawClient::connect(bootstrap).unwrap();
    let r = c
        .call(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
                StrBytes::from_string(id.to_string()),
            )]),
        )
        .unwrap();
    let state = &r.transaction_states[0];
    assert_eq!(state.error_code, 0);
    (state.producer_id.0, state.producer_epoch)
}
