//! Transactions with librdkafka (the `rdkafka` crate) against an in-process broker: commit,
//! abort and commit seen through read_committed and read_uncommitted consumers;
//! consume-transform-produce with `send_offsets_to_transaction`, an aborted round included;
//! zombie fencing by a second producer with the same transactional id; and an abandoned
//! transaction aborted by its timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::librdkafka::{assign_from_beginning_with, create_topic};

const T: Duration = Duration::from_secs(20);

pub(crate) fn transactional_producer(bootstrap: &str, id: &str, timeout_ms: u32) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "1")
        .create()
        .unwrap();
    producer.init_transactions(T).unwrap();
    producer
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, values: &[String]) {
    for v in values {
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .key("k")
                    .payload(v)
                    .partition(partition),
            )
            .unwrap();
    }
    producer.flush(T).unwrap();
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every value in `topic` (partitions `0..partitions`), per partition in offset order, read
/// to the end with `isolation.level`.
fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let consumer = assign_from_beginning_with(
        bootstrap,
        topic,
        partitions,
        &[
            ("isolation.level", isolation),
            ("enable.partition.eof", "true"),
        ],
    );
    let mut out: BTreeMap<i32, Vec<String>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + T;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "did not reach the end of {topic}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out.entry(m.partition()).or_default().push(v);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

#[test]
fn read_committed_sees_committed_transactions_only_and_read_uncommitted_sees_all() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", 2);
    let producer = transactional_producer(&bootstrap, "orders-service", 60_000);

    let (first, aborted, last) = (
        values("first", 30),
        values("aborted", 20),
        values("last", 10),
    );
    producer.begin_transaction().unwrap();
    send(&producer, "events", 0, &first);
    send(&producer, "events", 1, &first);
    producer.commit_transaction(T).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "events", 0, &aborted);
    send(&producer, "events", 1, &aborted);
    producer.abort_transaction(T).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, "events", 0, &last);
    producer.commit_transaction(T).unwrap();

    let committed = read_all(&bootstrap, "events", 2, "read_committed");
    assert_eq!(committed[&0], [first.clone(), last.clone()].concat());
    assert_eq!(committed[&1], first);
    let all = read_all(&bootstrap, "events", 2, "read_uncommitted");
    assert_eq!(all[&0], [first.clone(), aborted.clone(), last].concat());
    assert_eq!(all[&1], [first, aborted].concat());
    broker.shutdown();
}

#[test]
fn an_open_transaction_holds_read_committed_consumers_back_until_it_commits() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "held", 1);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let txn = transactional_producer(&bootstrap, "holder", 60_000);
    txn.begin_transaction().unwrap();
    send(&txn, "held", 0, &values("in-txn", 3));
    // Written after the open transaction started: not stable until it ends.
    send(&plain, "held", 0, &values("plain", 2));
    assert_eq!(
        read_all(&bootstrap, "held", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    assert_eq!(
        read_all(&bootstrap, "held", 1, "read_uncommitted")[&0].len(),
        5
    );
    txn.commit_transaction(T).unwrap();
    assert_eq!(
        read_all(&bootstrap, "held", 1, "read_committed")[&0],
        [values("in-txn", 3), values("plain", 2)].concat()
    );
    broker.shutdown();
}

#[test]
fn consume_transform_produce_commits_offsets_with_the_output_and_an_abort_moves_nothing() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "input", 1);
    create_topic(&bootstrap, "output", 1);
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    send(&plain, "input", 0, &values("in", 10));

    let group = "projector";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["input"]).unwrap();
    let producer = transactional_producer(&bootstrap, "projector-0", 60_000);

    // One round per batch of 5 input records: the first commits, the second aborts, the
    // third (the same input again, after rewinding) commits.
    let mut consumed = Vec::new();
    let deadline = Instant::now() + T;
    while consumed.len() < 5 {
        assert!(Instant::now() < deadline, "input not consumed");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            consumed.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            ));
        }
    }
    let round = |consumed: &[(i64, String)], commit: bool| {
        producer.begin_transaction().unwrap();
        let out: Vec<String> = consumed
            .iter()
            .map(|(_, v)| format!("{v}-projected"))
            .collect();
        send(&producer, "output", 0, &out);
        let next = consumed.last().unwrap().0 + 1;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("input", 0, Offset::Offset(next))
            .unwrap();
        producer
            .send_offsets_to_transaction(&offsets, &consumer.group_metadata().unwrap(), T)
            .unwrap();
        if commit {
            producer.commit_transaction(T).unwrap();
        } else {
            producer.abort_transaction(T).unwrap();
        }
    };
    let committed_offset = || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("input", 0);
        let c = consumer.committed_offsets(tpl, T).unwrap();
        c.find_partition("input", 0).unwrap().offset()
    };
    round(&consumed, true);
    assert_eq!(committed_offset(), Offset::Offset(5));

    let mut second = Vec::new();
    while second.len() < 5 {
        assert!(Instant::now() < deadline, "input not consumed");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            second.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            ));
        }
    }
    round(&second, false);
    assert_eq!(
        committed_offset(),
        Offset::Offset(5),
        "an aborted round moves no offset"
    );
    let visible = read_all(&bootstrap, "output", 1, "read_committed");
    assert_eq!(
        visible[&0],
        consumed
            .iter()
            .map(|(_, v)| format!("{v}-projected"))
            .collect::<Vec<_>>()
    );
    round(&second, true);
    assert_eq!(committed_offset(), Offset::Offset(10));
    let visible = read_all(&bootstrap, "output", 1, "read_committed");
    assert_eq!(visible[&0].len(), 10);
    broker.shutdown();
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "fenced", 1);
    let zombie = transactional_producer(&bootstrap, "payments", 60_000);
    zombie.begin_transaction().unwrap();
    send(&zombie, "fenced", 0, &values("zombie", 3));

    let successor = transactional_producer(&bootstrap, "payments", 60_000);
    successor.begin_transaction().unwrap();
    send(&successor, "fenced", 0, &values("successor", 2));
    successor.commit_transaction(T).unwrap();

    // The zombie's transaction was aborted when the successor initialised; it is fenced.
    let err = zombie.commit_transaction(T).unwrap_err();
    assert!(
        err.rdkafka_error_code().is_some(),
        "the zombie's commit must fail: {err:?}"
    );
    let committed = read_all(&bootstrap, "fenced", 1, "read_committed");
    assert_eq!(committed[&0], values("successor", 2));
    broker.shutdown();
}

#[test]
fn an_abandoned_transaction_is_aborted_by_its_timeout_and_its_producer_fenced() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        transaction_abort_timed_out_transaction_cleanup_interval_ms: 100,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "abandoned", 1);
    let producer = transactional_producer(&bootstrap, "slow-saga", 1_000);
    producer.begin_transaction().unwrap();
    send(&producer, "abandoned", 0, &values("never", 4));
    // Until the timeout, read_committed consumers see nothing past the open transaction.
    std::thread::sleep(Duration::from_millis(2_500));
    let all = read_all(&bootstrap, "abandoned", 1, "read_uncommitted");
    assert_eq!(all[&0].len(), 4, "the records stay in the log, aborted");
    assert_eq!(
        read_all(&bootstrap, "abandoned", 1, "read_committed")[&0],
        Vec::<String>::new()
    );
    // The zombie's next step fails: its epoch was bumped by the abort.
    assert!(producer.commit_transaction(T).is_err());
    broker.shutdown();
}

#[test]
fn aborted_and_open_transactions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        transaction_abort_timed_out_transaction_cleanup_interval_ms: 100,
        ..BrokerConfig::with_data_dir(dir.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ledger", 1);
    let producer = transactional_producer(&bootstrap, "ledger-writer", 3_000);
    producer.begin_transaction().unwrap();
    send(&producer, "ledger", 0, &values("kept", 3));
    producer.commit_transaction(T).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "ledger", 0, &values("dropped", 2));
    producer.abort_transaction(T).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "ledger", 0, &values("open", 2));
    drop(producer);
    broker.shutdown();

    // After the restart the aborted transaction is still filtered (its index was kept), and
    // the open one holds read_committed consumers back until its timeout aborts it.
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    assert_eq!(
        read_all(&bootstrap, "ledger", 1, "read_committed")[&0],
        values("kept", 3)
    );
    std::thread::sleep(Duration::from_millis(3_500));
    assert_eq!(
        read_all(&bootstrap, "ledger", 1, "read_committed")[&0],
        values("kept", 3)
    );
    let all = read_all(&bootstrap, "ledger", 1, "read_uncommitted");
    assert_eq!(
        all[&0],
        [values("kept", 3), values("dropped", 2), values("open", 2)].concat()
    );
    // The id lives on: a new producer with it starts cleanly.
    let successor = transactional_producer(&bootstrap, "ledger-writer", 3_000);
    successor.begin_transaction().unwrap();
    send(&successor, "ledger", 0, &values("after", 1));
    successor.commit_transaction(T).unwrap();
    assert_eq!(
        read_all(&bootstrap, "ledger", 1, "read_committed")[&0],
        [values("kept", 3), values("after", 1)].concat()
    );
    broker.shutdown();
}
