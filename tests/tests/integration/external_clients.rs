//! Real clients outside Rust against an in-process broker: kafka-python, kafkajs 2.2.4 under
//! Node, confluent-kafka-python (its bundled librdkafka) and Debian's kcat (librdkafka 2.0.2).
//! `./test.sh` installs them; each test fails with a pointer to it when a toolchain is missing.
//!
//! kafkajs `describeConfigs` / `alterConfigs` of a topic and the broker
//! (`kafkajs_describes_and_alters_configs`).
//!
//! Transactions with each scripted client (`kafkajs_transactions`, `kafka_python_transactions`,
//! `confluent_kafka_transactions`): commit, abort and commit seen through read_committed and
//! read_uncommitted consumers, the last stable offset while a transaction is open, and
//! consume-transform-produce with offsets sent to the transaction, an aborted round leaving
//! the committed offsets where they were.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use brook_broker::EmbeddedBroker;
use brook_tests::{python, repo_root, require_tool};

use crate::librdkafka::create_topic;

/// Runs a command with optional stdin, failing the test after `timeout`.
pub(crate) fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} timed out after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn assert_success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn kafka_python_produces_and_reads_back() {
    python_script(
        "kafka_python_roundtrip.py",
        "kafka-python round trip",
        "kafka",
        "round trip: 2 cases passed",
    );
}

#[test]
fn kafkajs_admin_and_producer() {
    kafkajs_script(
        "kafkajs_admin_producer.js",
        "kafkajs admin and producer",
        "admin/producer: passed",
        60,
    );
}

#[test]
fn kcat_lists_produces_and_consumes() {
    let kcat = Path::new("/usr/bin/kcat");
    require_tool(kcat, "kcat (apt-get install kcat)");
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "kcat-events", 2);

    let mut list = Command::new(kcat);
    list.args(["-b", &bootstrap, "-L"]);
    let listing = assert_success(&run(list, None, Duration::from_secs(30)), "kcat -L");
    assert!(listing.contains("1 brokers:"), "{listing}");
    assert!(
        listing.contains(&format!("broker 1 at {bootstrap}")),
        "{listing}"
    );
    assert!(
        listing.contains("topic \"kcat-events\" with 2 partitions:"),
        "{listing}"
    );

    let input: String = (0..100).map(|i| format!("k{}:v{i}\n", i % 5)).collect();
    let mut produce = Command::new(kcat);
    produce.args([
        "-b",
        &bootstrap,
        "-t",
        "kcat-events",
        "-P",
        "-K:",
        "-z",
        "snappy",
    ]);
    assert_success(
        &run(produce, Some(&input), Duration::from_secs(30)),
        "kcat -P",
    );

    let mut consume = Command::new(kcat);
    consume.args([
        "-b",
        &bootstrap,
        "-t",
        "kcat-events",
        "-C",
        "-e",
        "-o",
        "beginning",
        "-f",
        "%p %o %k:%s\n",
    ]);
    let output = assert_success(&run(consume, None, Duration::from_secs(30)), "kcat -C");
    let mut got: Vec<(u32, String)> = output
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let _partition = parts.next().unwrap();
            let _offset = parts.next().unwrap();
            let kv = parts.next().unwrap().to_string();
            let n: u32 = kv.split(":v").nth(1).unwrap().parse().unwrap();
            (n, kv)
        })
        .collect();
    got.sort();
    let expected: Vec<(u32, String)> = (0..100).map(|i| (i, format!("k{}:v{i}", i % 5))).collect();
    assert_eq!(got, expected);
    broker.shutdown();
}

/// Runs `script` from `tests/python` (which needs the client library `module`) with the test
/// venv's python against an ephemeral broker, and checks it printed `passed`.
pub(crate) fn python_script(script: &str, what: &str, module: &str, passed: &str) {
    let python = python();
    require_tool(&python, "the test venv's python");
    let mut probe = Command::new(&python);
    probe.args(["-c", &format!("import {module}")]);
    let probed = run(probe, None, Duration::from_secs(30));
    assert!(
        probed.status.success(),
        "the test venv's python cannot import {module}: run ./test.sh, which installs \
         tests/python/requirements.txt\n{}",
        String::from_utf8_lossy(&probed.stderr)
    );
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut cmd = Command::new(&python);
    cmd.arg(repo_root().join("tests/python").join(script))
        .arg(broker.bootstrap())
        .env("BROOK_TEST_TIMEOUT_S", "60");
    if let Some(http) = broker.http_addr() {
        cmd.env("BROOK_HTTP", http.to_string());
    }
    let out = run(cmd, None, Duration::from_secs(75));
    let stdout = assert_success(&out, what);
    println!("{stdout}");
    assert!(stdout.contains(passed), "{stdout}");
    broker.shutdown();
}

#[test]
fn kafkajs_transactions() {
    kafkajs_script(
        "kafkajs_transactions.js",
        "kafkajs transactions",
        "transactions: passed",
        75,
    );
}

#[test]
fn kafka_python_transactions() {
    python_script(
        "kafka_python_transactions.py",
        "kafka-python transactions",
        "kafka",
        "transactions: passed",
    );
}

#[test]
fn confluent_kafka_transactions() {
    python_script(
        "confluent_kafka_transactions.py",
        "confluent-kafka transactions",
        "confluent_kafka",
        "transactions: passed",
    );
}

#[test]
fn confluent_kafka_incremental_alter_configs_on_topics_and_the_broker() {
    python_script(
        "confluent_kafka_configs.py",
        "confluent-kafka configs",
        "confluent_kafka",
        "configs: passed",
    );
}

#[test]
fn kafkajs_confluent_schema_registry_encodes_and_decodes() {
    kafkajs_script(
        "kafkajs_schema_registry.js",
        "kafkajs schema registry",
        "schema registry: passed",
        60,
    );
}

#[test]
fn confluent_kafka_schema_registry_client_with_avro_serdes() {
    python_script(
        "confluent_kafka_registry.py",
        "confluent-kafka schema registry",
        "confluent_kafka.schema_registry.avro",
        "schema registry: passed",
    );
}

#[test]
fn metrics_report_consumer_lag_like_kafka_exporter() {
    python_script(
        "metrics_lag.py",
        "metrics scraped with the Prometheus parser",
        "prometheus_client",
        "metrics: passed",
    );
}

#[test]
fn kafkajs_describes_and_alters_configs() {
    kafkajs_script(
        "kafkajs_configs.js",
        "kafkajs configs",
        "configs: passed",
        60,
    );
}

/// Runs `script` from `tests/node` against an ephemeral broker, with `timeout_s` for its
/// own watchdog (and 15 s more for the process), and checks it printed `passed`.
pub(crate) fn kafkajs_script(script: &str, what: &str, passed: &str, timeout_s: u64) {
    let node_dir = repo_root().join("tests/node");
    require_tool(
        &node_dir.join("node_modules/kafkajs"),
        "kafkajs (npm ci in tests/node)",
    );
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(&node_dir)
        .arg(script)
        .arg(broker.bootstrap())
        .env("BROOK_TEST_TIMEOUT_S", timeout_s.to_string());
    if let Some(http) = broker.http_addr() {
        cmd.env("BROOK_HTTP", http.to_string());
    }
    let out = run(cmd, None, Duration::from_secs(timeout_s + 15));
    let stdout = assert_success(&out, what);
    println!("{stdout}");
    assert!(stdout.contains(passed), "{stdout}");
    broker.shutdown();
}

#[test]
fn confluent_kafka_streams_go_on_after_a_refused_conditional_append() {
    python_script(
        "confluent_kafka_streams.py",
        "confluent-kafka streams",
        "confluent_kafka",
        "confluent-kafka streams: passed",
    );
}

#[test]
fn kafkajs_streams_go_on_after_a_refused_conditional_append() {
    kafkajs_script(
        "kafkajs_streams.js",
        "kafkajs streams",
        "streams: passed",
        90,
    );
}

/// Eight writers (four librdkafka producers in Python, four kafkajs producers), half of them
/// idempotent, race to append to the same 100 aggregates with expected revisions, retrying
/// on conflict. Afterwards every aggregate's revisions are 0..n-1 without gap or duplicate,
/// and the events are exactly the successful appends.
#[test]
fn eight_writers_race_on_one_hundred_aggregates() {
    use serde_json::Value;
    let python = python();
    require_tool(&python, "the test venv's python");
    let node_dir = repo_root().join("tests/node");
    require_tool(
        &node_dir.join("node_modules/kafkajs"),
        "kafkajs (npm ci in tests/node)",
    );
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let http = broker.http_addr().unwrap().to_string();
    let mut c = brook_tests::RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        crate::wire::create(&mut c, "race", 3, &[("brook.key.index", "true")]),
        0
    );
    let mut py = Command::new(&python);
    py.arg(repo_root().join("tests/python/confluent_kafka_streams.py"))
        .arg(broker.bootstrap())
        .env("BROOK_HTTP", &http)
        .env("BROOK_STREAMS_RACE", "race")
        .env("BROOK_TEST_TIMEOUT_S", "150");
    let mut js = Command::new("node");
    js.current_dir(&node_dir)
        .arg("kafkajs_streams.js")
        .arg(broker.bootstrap())
        .env("BROOK_HTTP", &http)
        .env("BROOK_STREAMS_RACE", "race")
        .env("BROOK_TEST_TIMEOUT_S", "150");
    let (py_out, js_out) = std::thread::scope(|s| {
        let py = s.spawn(|| run(py, None, Duration::from_secs(170)));
        let js = s.spawn(|| run(js, None, Duration::from_secs(170)));
        (py.join().unwrap(), js.join().unwrap())
    });
    let appended = |out: &Output, what: &str| -> i64 {
        let stdout = assert_success(out, what);
        println!("{what}: {stdout}");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("appended="))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what} printed no count: {stdout}"))
    };
    let total = appended(&py_out, "librdkafka writers") + appended(&js_out, "kafkajs writers");
    assert_eq!(total, 320);
    let mut events = 0;
    let mut seen = std::collections::HashSet::new();
    for a in 0..100 {
        let (status, body) =
            brook_tests::http(&http, "GET", &format!("/v1/streams/race/agg-{a}"), None);
        assert_eq!(status, 200, "{body}");
        let read: Value = serde_json::from_str(&body).unwrap();
        let list = read["events"].as_array().unwrap();
        let revisions: Vec<i64> = list
            .iter()
            .map(|e| e["revision"].as_i64().unwrap())
            .collect();
        assert_eq!(
            revisions,
            (0..list.len() as i64).collect::<Vec<_>>(),
            "agg-{a}"
        );
        for e in list {
            assert!(seen.insert(e["value"].to_string()), "appended twice: {e}");
        }
        events += list.len() as i64;
    }
    assert_eq!(
        events, total,
        "every successful append is an event, and nothing else"
    );
    broker.shutdown();
}
