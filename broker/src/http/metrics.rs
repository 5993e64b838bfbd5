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
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use brook_protocol::kafka_protocol::messages::{ApiKey, ResponseKind};
use brook_protocol::ErrorCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::handlers::now_ms;
use crate::state::BrokerState;

/// OpenMetrics' media type, which Prometheus scrapes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
/// The label of per-API families: the API's name, leaked once ([`api_name`]).
type ApiLabel = [(&'static str, &'static str); 1];

/// Latency buckets in seconds: 100 µs to 10 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ]
    .into_iter()
}

/// A new fsync latency histogram (one per broker, shared by its partitions).
pub(crate) fn fsync_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// What the request path, the cleaner and retention count; read at each scrape.
pub(crate) struct Metrics {
    requests: Family<ApiLabel, Counter>,
    request_seconds: Family<ApiLabel, Histogram>,
    request_errors: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
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
            request_errors: Family::default(),
            http_requests: Family::default(),
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
    /// One request of `key` answered with `response` after `elapsed`: counted, timed, and
    /// each error code in the answer (top-level or per partition) counted. Nothing is
    /// allocated unless the answer carries an error.
    pub(crate) fn request(&self, key: ApiKey, response: &ResponseKind, elapsed: Duration) {
        let api = api_name(key);
        let labels = [("api", api)];
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        error_codes(response, &mut |code| {
            if code == 0 {
                return;
            }
            let name = ErrorCode::try_from_code(code)
                .map_or_else(|| code.to_string(), |e| format!("{e:?}"));
            self.request_errors
                .get_or_create(&vec![("api", api.to_string()), ("error", name)])
                .inc();
        });
    }

    /// One HTTP request answered: by area (the first path segment) and status.
    pub(crate) fn http_request(&self, path: &str, status: u16) {
        let area = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let area = match area {
            "subjects" | "schemas" | "config" | "mode" | "compatibility" => "registry",
            "metrics" => "metrics",
            "health" => "health",
            _ => "other",
        };
        self.http_requests
            .get_or_create(&vec![
                ("area", area.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
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

/// The error codes an answer carries, top-level and per topic or partition, for the APIs
/// clients call most (others count as requests only).
fn error_codes(response: &ResponseKind, out: &mut impl FnMut(i16)) {
    match response {
        ResponseKind::Produce(r) => each(
            out,
            r.responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .map(|p| p.error_code),
        ),
        ResponseKind::Fetch(r) => {
            out(r.error_code);
            each(
                out,
                r.responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code),
            );
        }
        ResponseKind::ListOffsets(r) => each(
            out,
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code),
        ),
        ResponseKind::Metadata(r) => each(out, r.topics.iter().map(|t| t.error_code)),
        ResponseKind::OffsetCommit(r) => each(
            out,
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code),
        ),
        ResponseKind::OffsetFetch(r) => {
            out(r.error_code);
            each(out, r.groups.iter().map(|g| g.error_code));
        }
        ResponseKind::FindCoordinator(r) => {
            out(r.error_code);
            each(out, r.coordinators.iter().map(|c| c.error_code));
        }
        ResponseKind::JoinGroup(r) => out(r.error_code),
        ResponseKind::SyncGroup(r) => out(r.error_code),
        ResponseKind::Heartbeat(r) => out(r.error_code),
        ResponseKind::LeaveGroup(r) => out(r.error_code),
        ResponseKind::InitProducerId(r) => out(r.error_code),
        ResponseKind::EndTxn(r) => out(r.error_code),
        ResponseKind::AddOffsetsToTxn(r) => out(r.error_code),
        ResponseKind::CreateTopics(r) => each(out, r.topics.iter().map(|t| t.error_code)),
        ResponseKind::DeleteTopics(r) => each(out, r.responses.iter().map(|t| t.error_code)),
        _ => {}
    }
}

fn each(out: &mut impl FnMut(i16), codes: impl Iterator<Item = i16>) {
    codes.for_each(out);
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

/// OpenMetrics text written directly: a scrape of 10,000 partitions writes tens of
/// thousands of samples, which `prometheus-client`'s families (a map of label sets each)
/// would first have to build.
struct Text {
    out: String,
}

impl Text {
    /// Starts a family: its type (`gauge` or `counter`) and help line.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample; counters pass their name with `_total`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        self.sample(&sample, &[], value);
    }
}

/// One partition as a scrape sees it.
struct PartitionNow {
    start: i64,
    end: i64,
    size: u64,
}

/// A group's row for one partition.
struct GroupRow {
    group: String,
    topic: String,
    partition: String,
    offset: i64,
    lag: i64,
    seconds: f64,
}

/// The whole scrape, encoded.
fn render(state: &BrokerState) -> Result<String, std::fmt::Error> {
    let topics = state.topics.list();
    // (topic, partition) -> (the partition, what it holds now), in name order.
    let mut partitions = BTreeMap::new();
    for topic in &topics {
        for p in topic.partitions() {
            let now = p.with_log(|log| PartitionNow {
                start: log.log_start_offset(),
                end: log.log_end_offset(),
                size: log.size_in_bytes(),
            });
            partitions.insert((topic.name.as_str(), p.index), (p.clone(), now));
        }
    }
    let mut t = Text {
        out: String::with_capacity(256 * (partitions.len() + 16)),
    };
    t.single(
        "kafka_brokers",
        "gauge",
        "Number of brokers in the cluster",
        1,
    );
    t.family(
        "kafka_topic_partitions",
        "gauge",
        "Number of partitions of a topic",
    );
    for topic in &topics {
        let labels = [("topic", topic.name.as_str())];
        t.sample("kafka_topic_partitions", &labels, topic.partition_count());
    }
    let partition_names: HashMap<i32, String> = partitions
        .keys()
        .map(|(_, p)| (*p, p.to_string()))
        .collect();
    let each_partition = |t: &mut Text, name: &str, value: &dyn Fn(&PartitionNow) -> i64| {
        for ((topic, p), (_, now)) in &partitions {
            let labels = [
                ("topic", *topic),
                ("partition", partition_names[p].as_str()),
            ];
            t.sample(name, &labels, value(now));
        }
    };
    t.family(
        "kafka_topic_partition_current_offset",
        "gauge",
        "The next offset of a partition (its high watermark)",
    );
    each_partition(&mut t, "kafka_topic_partition_current_offset", &|n| n.end);
    t.family(
        "kafka_topic_partition_oldest_offset",
        "gauge",
        "The oldest offset of a partition (its log start)",
    );
    each_partition(&mut t, "kafka_topic_partition_oldest_offset", &|n| n.start);
    t.family(
        "brook_log_size_bytes",
        "gauge",
        "Bytes of a partition's log on disk",
    );
    each_partition(&mut t, "brook_log_size_bytes", &|n| {
        i64::try_from(n.size).unwrap_or(i64::MAX)
    });

    // Consumer groups.
    let now = now_ms();
    let mut rows = Vec::new();
    let mut members = Vec::new();
    for group in state.groups.offsets_snapshot() {
        members.push((group.group.clone(), group.members));
        for (topic, partition, offset) in group.offsets {
            let Some((p, now_p)) = partitions.get(&(topic.as_str(), partition)) else {
                continue; // a commit for a topic that is gone
            };
            let lag = (now_p.end - offset.max(now_p.start)).max(0);
            let seconds = if lag == 0 {
                0.0
            } else {
                p.with_log(|log| log.timestamp_at(offset))
                    .ok()
                    .flatten()
                    .map_or(0.0, |ts| (now - ts).max(0) as f64 / 1000.0)
            };
            rows.push(GroupRow {
                group: group.group.clone(),
                partition: partition.to_string(),
                topic,
                offset,
                lag,
                seconds,
            });
        }
    }
    let group_rows = |t: &mut Text, name: &str, value: &dyn Fn(&GroupRow) -> String| {
        for r in &rows {
            let labels = [
                ("consumergroup", r.group.as_str()),
                ("topic", r.topic.as_str()),
                ("partition", r.partition.as_str()),
            ];
            t.sample(name, &labels, value(r));
        }
    };
    t.family(
        "kafka_consumergroup_current_offset",
        "gauge",
        "The offset a group committed for a partition",
    );
    group_rows(&mut t, "kafka_consumergroup_current_offset", &|r| {
        r.offset.to_string()
    });
    t.family(
        "kafka_consumergroup_lag",
        "gauge",
        "Records a group has yet to consume in a partition (high watermark minus committed offset)",
    );
    group_rows(&mut t, "kafka_consumergroup_lag", &|r| r.lag.to_string());
    t.family(
        "kafka_consumergroup_lag_seconds",
        "gauge",
        "Seconds since the first record a group has not consumed was written (0 when caught up)",
    );
    group_rows(&mut t, "kafka_consumergroup_lag_seconds", &|r| {
        r.seconds.to_string()
    });
    let mut lag_sum: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in &rows {
        *lag_sum.entry((&r.group, &r.topic)).or_default() += r.lag;
    }
    t.family(
        "kafka_consumergroup_lag_sum",
        "gauge",
        "A group's lag summed over a topic's partitions",
    );
    for ((group, topic), sum) in lag_sum {
        let labels = [("consumergroup", group), ("topic", topic)];
        t.sample("kafka_consumergroup_lag_sum", &labels, sum);
    }
    t.family("kafka_consumergroup_members", "gauge", "Members of a group");
    for (group, n) in &members {
        t.sample(
            "kafka_consumergroup_members",
            &[("consumergroup", group.as_str())],
            n,
        );
    }

    // The broker's own.
    let m = &state.metrics;
    t.single(
        "brook_connections",
        "gauge",
        "Open Kafka client connections",
        m.connections.load(Ordering::Relaxed),
    );
    t.single(
        "brook_partitions",
        "gauge",
        "Partitions of all topics",
        partitions.len(),
    );
    type Pick = fn(&crate::topics::Traffic) -> &AtomicU64;
    let traffic: [(&str, &str, Pick); 4] = [
        (
            "brook_topic_bytes_in",
            "Record bytes appended by Produce",
            |t| &t.bytes_in,
        ),
        (
            "brook_topic_records_in",
            "Records appended by Produce",
            |t| &t.records_in,
        ),
        (
            "brook_topic_bytes_out",
            "Record bytes returned by Fetch",
            |t| &t.bytes_out,
        ),
        (
            "brook_topic_records_out",
            "Records returned by Fetch",
            |t| &t.records_out,
        ),
    ];
    for (name, help, pick) in traffic {
        t.family(name, "counter", help);
        let sample = format!("{name}_total");
        for topic in &topics {
            let value = pick(&topic.traffic).load(Ordering::Relaxed);
            t.sample(&sample, &[("topic", topic.name.as_str())], value);
        }
    }
    let counters = [
        (
            "brook_cleaner_passes",
            "Cleaning passes of compacted logs",
            &m.cleaner_passes,
        ),
        (
            "brook_cleaner_read_bytes",
            "Bytes of log the cleaner's passes read",
            &m.cleaner_bytes_before,
        ),
        (
            "brook_cleaner_kept_bytes",
            "Bytes of log the cleaner's passes kept",
            &m.cleaner_bytes_after,
        ),
        (
            "brook_retention_deleted_segments",
            "Segments deleted by retention",
            &m.retention_deleted_segments,
        ),
    ];
    for (name, help, value) in counters {
        t.single(name, "counter", help, value.load(Ordering::Relaxed));
    }

    // Requests: few families, kept by prometheus-client; its text ends the scrape.
    let mut registry = Registry::default();
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
        "brook_request_errors",
        "Error codes in answers (top-level and per partition), by API and error",
        m.request_errors.clone(),
    );
    registry.register(
        "brook_http_requests",
        "HTTP requests answered, by area (registry, metrics, health) and status",
        m.http_requests.clone(),
    );
    registry.register(
        "brook_fsync_duration_seconds",
        "Time of each fsync round of a partition (group commit)",
        state.topics.fsync_seconds.clone(),
    );
    encode(&mut t.out, &registry)?;
    Ok(t.out)
}
