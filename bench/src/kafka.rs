//! librdkafka plumbing shared by the workloads: client configurations, topic creation,
//! partitions and end offsets.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use crate::cli::Isolation;
use crate::error::BenchError;

/// Timeout of metadata, watermark and admin requests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first contact with a broker may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a consumer poll waits for a record.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// librdkafka properties given with `-X` (TLS, SASL, ...), applied to every client. Set
/// once from the command line before any workload runs; a process runs one command line.
static CLIENT_PROPERTIES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Sets the `-X` properties for every client made after (the first call wins).
pub fn set_client_properties(properties: Vec<(String, String)>) {
    let _ = CLIENT_PROPERTIES.set(properties);
}

/// The `-X` properties given on the command line.
pub fn client_properties() -> &'static [(String, String)] {
    CLIENT_PROPERTIES.get().map_or(&[], Vec::as_slice)
}

/// What every client of the tool sets.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "brook-bench")
        // A broker on loopback that went away should fail the run, not hang it.
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "1000");
    // librdkafka's own debug contexts (e.g. `eos,protocol`), to see what a client waits for.
    if let Ok(contexts) = std::env::var("BROOK_BENCH_RDKAFKA_DEBUG") {
        config.set("debug", contexts);
    }
    for (key, value) in CLIENT_PROPERTIES.get().into_iter().flatten() {
        config.set(key, value);
    }
    config
}

/// A consumer that reads assigned partitions only: a group id (librdkafka requires one for
/// `assign`) but no commits. Closing a group consumer with auto-commit on stalls for 45 s
/// against a broker without a group coordinator.
///
/// Fetch settings favour throughput: big fetches and a deep prefetch queue.
pub fn throughput_consumer(bootstrap: &str) -> Result<BaseConsumer, BenchError> {
    throughput_consumer_with(bootstrap, Isolation::ReadUncommitted)
}

/// [`throughput_consumer`] at `isolation`. It reports reaching the end of each partition
/// (`enable.partition.eof`): a partition that ends in transaction markers never returns
/// its last offsets.
pub fn throughput_consumer_with(
    bootstrap: &str,
    isolation: Isolation,
) -> Result<BaseConsumer, BenchError> {
    base_config(bootstrap)
        .set("group.id", "brook-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation.as_config())
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "16777216")
        .set("receive.message.max.bytes", "104857600")
        .set("queued.max.messages.kbytes", "262144")
        .set("queued.min.messages", "1000000")
        .set("fetch.wait.max.ms", "100")
        .set("check.crcs", "false")
        .create()
        .map_err(|e| BenchError::kafka("creating consumer", e))
}

/// A consumer tuned for latency: it asks again as soon as a fetch returns.
pub fn latency_consumer(bootstrap: &str) -> Result<BaseConsumer, BenchError> {
    base_config(bootstrap)
        .set("group.id", "brook-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set("fetch.error.backoff.ms", "10")
        .create()
        .map_err(|e| BenchError::kafka("creating consumer", e))
}

/// Creates `topic` with `partitions` partitions (replication 1) and `configs`; `Ok(false)`
/// if it existed.
pub fn ensure_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<bool, BenchError> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| BenchError::kafka("creating admin client", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| BenchError::io("starting a runtime for the admin client", e))?;
    let options = AdminOptions::new()
        .request_timeout(Some(CONNECT_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT));
    let new_topic = configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |t, (k, v)| t.set(k, v),
    );
    let results = runtime
        .block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| BenchError::kafka(format!("creating topic {topic}"), e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(BenchError::CreateTopic {
            topic: topic.into(),
            code,
        }),
        None => Err(BenchError::Failed(format!(
            "creating topic {topic}: no result"
        ))),
    }
}

/// The partitions of `topic`, ascending.
pub fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, BenchError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
        .map_err(|e| BenchError::kafka(format!("metadata of {topic}"), e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(BenchError::Failed(format!("topic {topic} not in metadata")));
    };
    if let Some(err) = t.error() {
        return Err(BenchError::Failed(format!(
            "topic {topic}: {}",
            RDKafkaErrorCode::from(err)
        )));
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(BenchError::Failed(format!(
            "topic {topic} has no partitions"
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// `(partition, low, high)` watermarks of every partition of `topic`.
pub fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<Vec<(i32, i64, i64)>, BenchError> {
    partitions(consumer, topic)?
        .into_iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .map_err(|e| BenchError::kafka(format!("end offsets of {topic}/{p}"), e))?;
            Ok((p, low, high))
        })
        .collect()
}
