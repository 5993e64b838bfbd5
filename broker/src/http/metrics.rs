//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format (`prometheus-client`).
//!
//! Consumer groups and topics under the names kafka_exporter uses, so existing dashboards and
//! alert rules keep working: `kafka_brokers`, `kafka_topic_partitions`,
//! `kafka_topic_partition_current_offset`, `kafka_topic_partition_oldest_offset`,
//! `kafka_consumergroup_current_offset`, `kafka_consumergroup_lag`,
//! `kafka_consumergroup_lag_sum`, `kafka_consumergroup_members`; and lag in time,
//! `kafka_consumergroup_lag_seconds` = now minus the timestamp of the first record the group
//! has not consumed (0 when caught up). The broker's own under `brook_`: requests and their
//! latency per API, bytes and records in and out per topic, open connections, partitions,
//! log size per partition, cleaner and retention activity.
//!
//! A scrape reads in-memory state only: offsets and sizes the logs keep, committed offsets
//! the group coordinator keeps, counters the request path bumps; lag in time reads one batch
//! header per lagging group partition from the log's memory map.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use brook_protocol::kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::handlers::now_ms;
use crate::state::BrokerState;

/// OpenMetrics' media type, which Prometheus scrapes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// Latency buckets in seconds: 100 µs to 10 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ]
    .into_iter()
}

/// What the request path, the cleaner and retention count; read at each scrape.
pub(crate) struct Metrics {
    requests: Family<Labels, Counter>,
    request_seconds: Family<Labels, Histogram>,
    connections: AtomicI64,
    cleaner_passes: AtomicU64,
    cleaner_bytes_before: AtomicU64,
    cleaner_bytes_after: AtomicU64,
    retention_deleted_segments: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            connections: AtomicI64::new(0),
            cleaner_passes: AtomicU64::new(0),
            cleaner_bytes_before: AtomicU64::new(0),
            cleaner_bytes_after: AtomicU64::new(0),
            retention_deleted_segments: AtomicU64::new(0),
        }
    }
}

/// An API's name as the metrics label it (`Produce`, `Fetch`, ...).
fn api_name(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<HashMap<i16, &'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        // Leaked once: one short name per served API.
        crate::handlers::REGISTRY
            .iter()
            .map(|a| {
                (
                    a.key as i16,
                    &*Box::leak(format!("{:?}", a.key).into_boxed_str()),
                )
            })
            .collect()
    });
    names.get(&(key as i16)).copied().unwrap_or("Unknown")
}

impl Metrics {
    /// One request of `key` answered after `elapsed`.
    pub(crate) fn request(&self, key: ApiKey, elapsed: Duration) {
        let labels = vec![("api", api_name(key).to_string())];
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A Kafka connection opened; the guard counts it closed when dropped.
    pub(crate) fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// A cleaning pass over `before` bytes that left `after`.
    pub(crate) fn cleaned(&self, before: u64, after: u64) {
        self.cleaner_passes.fetch_add(1, Ordering::Relaxed);
        self.cleaner_bytes_before
            .fetch_add(before, Ordering::Relaxed);
        self.cleaner_bytes_after.fetch_add(after, Ordering::Relaxed);
    }

    pub(crate) fn retention_deleted(&self, segments: u64) {
        self.retention_deleted_segments
            .fetch_add(segments, Ordering::Relaxed);
    }
}

pub(crate) struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn routes() -> Router<Arc<BrokerState>> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<Arc<BrokerState>>) -> impl IntoResponse {
    match tokio::task::spawn_blocking(move || render(&state)).await {
        Ok(Ok(text)) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// A gauge family filled now.
fn gauges<V>(rows: impl IntoIterator<Item = (Labels, V)>) -> Family<Labels, Gauge<V, V::Atomic>>
where
    V: GaugeValue,
{
    let family = Family::<Labels, Gauge<V, V::Atomic>>::default();
    for (labels, value) in rows {
        family.get_or_create(&labels).set(value);
    }
    family
}

/// The value types gauges here hold.
pub(crate) trait GaugeValue: Sized {
    type Atomic: prometheus_client::metrics::gauge::Atomic<Self> + Default + std::fmt::Debug;
}
impl GaugeValue for i64 {
    type Atomic = AtomicI64;
}
impl GaugeValue for f64 {
    type Atomic = AtomicU64;
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

/// One partition as a scrape sees it.
struct PartitionNow {
    start: i64,
    end: i64,
    size: u64,
}

/// The whole scrape: every family, encoded.
fn render(state: &BrokerState) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let topics = state.topics.list();
    let mut partitions: BTreeMap<(String, i32), PartitionNow> = BTreeMap::new();
    let mut by_partition = HashMap::new();
    for topic in &topics {
        for p in topic.partitions() {
            let now = p.with_log(|log| PartitionNow {
                start: log.log_start_offset(),
                end: log.log_end_offset(),
                size: log.size_in_bytes(),
            });
            by_partition.insert((topic.name.clone(), p.index), p.clone());
            partitions.insert((topic.name.clone(), p.index), now);
        }
    }
    let tp = |t: &str, p: i32| vec![("topic", t.to_string()), ("partition", p.to_string())];

    registry.register(
        "kafka_brokers",
        "Number of brokers in the cluster",
        gauges([(Vec::new(), 1i64)]),
    );
    registry.register(
        "kafka_topic_partitions",
        "Number of partitions of a topic",
        gauges(topics.iter().map(|t| {
            (
                vec![("topic", t.name.clone())],
                i64::from(t.partition_count()),
            )
        })),
    );
    registry.register(
        "kafka_topic_partition_current_offset",
        "The next offset of a partition (its high watermark)",
        gauges(partitions.iter().map(|((t, p), n)| (tp(t, *p), n.end))),
    );
    registry.register(
        "kafka_topic_partition_oldest_offset",
        "The oldest offset of a partition (its log start)",
        gauges(partitions.iter().map(|((t, p), n)| (tp(t, *p), n.start))),
    );
    registry.register(
        "brook_log_size_bytes",
        "Bytes of a partition's log on disk",
        gauges(
            partitions
                .iter()
                .map(|((t, p), n)| (tp(t, *p), i64::try_from(n.size).unwrap_or(i64::MAX))),
        ),
    );

    // Consumer groups.
    let now = now_ms();
    let (mut current, mut lag, mut lag_seconds, mut members) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut lag_sum: BTreeMap<(String, String), i64> = BTreeMap::new();
    for group in state.groups.offsets_snapshot() {
        members.push((
            vec![("consumergroup", group.group.clone())],
            i64::try_from(group.members).unwrap_or(i64::MAX),
        ));
        for (topic, partition, offset) in group.offsets {
            let Some(now_p) = partitions.get(&(topic.clone(), partition)) else {
                continue; // a commit for a topic that is gone
            };
            let labels = vec![
                ("consumergroup", group.group.clone()),
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ];
            let behind = (now_p.end - offset.max(now_p.start)).max(0);
            let seconds = if behind == 0 {
                0.0
            } else {
                by_partition
                    .get(&(topic.clone(), partition))
                    .and_then(|p| p.with_log(|log| log.timestamp_at(offset)).ok().flatten())
                    .map_or(0.0, |ts| (now - ts).max(0) as f64 / 1000.0)
            };
            current.push((labels.clone(), offset));
            lag.push((labels.clone(), behind));
            lag_seconds.push((labels, seconds));
            *lag_sum.entry((group.group.clone(), topic)).or_default() += behind;
        }
    }
    registry.register(
        "kafka_consumergroup_current_offset",
        "The offset a group committed for a partition",
        gauges(current),
    );
    registry.register(
        "kafka_consumergroup_lag",
        "Records a group has yet to consume in a partition (high watermark minus committed offset)",
        gauges(lag),
    );
    registry.register(
        "kafka_consumergroup_lag_sum",
        "A group's lag summed over a topic's partitions",
        gauges(
            lag_sum
                .into_iter()
                .map(|((g, t), v)| (vec![("consumergroup", g), ("topic", t)], v)),
        ),
    );
    registry.register(
        "kafka_consumergroup_lag_seconds",
        "Seconds since the first record a group has not consumed was written (0 when caught up)",
        gauges(lag_seconds),
    );
    registry.register(
        "kafka_consumergroup_members",
        "Members of a group",
        gauges(members),
    );

    // The broker's own.
    let m = &state.metrics;
    registry.register(
        "brook_requests",
        "Requests answered, by API",
        m.requests.clone(),
    );
    registry.register(
        "brook_request_duration_seconds",
        "Time from a request's arrival to its answer, by API",
        m.request_seconds.clone(),
    );
    registry.register(
        "brook_connections",
        "Open Kafka client connections",
        gauges([(Vec::new(), m.connections.load(Ordering::Relaxed))]),
    );
    registry.register(
        "brook_partitions",
        "Partitions of all topics",
        gauges([(Vec::new(), partitions.len() as i64)]),
    );
    let traffic = |pick: fn(&crate::topics::Traffic) -> u64| {
        let family = Family::<Labels, Counter>::default();
        for t in &topics {
            family
                .get_or_create(&vec![("topic", t.name.clone())])
                .inc_by(pick(&t.traffic));
        }
        family
    };
    registry.register(
        "brook_topic_bytes_in",
        "Record bytes appended by Produce",
        traffic(|t| t.bytes_in.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_topic_records_in",
        "Records appended by Produce",
        traffic(|t| t.records_in.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_topic_bytes_out",
        "Record bytes returned by Fetch",
        traffic(|t| t.bytes_out.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_topic_records_out",
        "Records returned by Fetch",
        traffic(|t| t.records_out.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_cleaner_passes",
        "Cleaning passes of compacted logs",
        counter(m.cleaner_passes.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_cleaner_read_bytes",
        "Bytes of log the cleaner's passes read",
        counter(m.cleaner_bytes_before.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_cleaner_kept_bytes",
        "Bytes of log the cleaner's passes kept",
        counter(m.cleaner_bytes_after.load(Ordering::Relaxed)),
    );
    registry.register(
        "brook_retention_deleted_segments",
        "Segments deleted by retention",
        counter(m.retention_deleted_segments.load(Ordering::Relaxed)),
    );
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
