//! The stream API over HTTP: an aggregate's events read through the key index (by revision,
//! backwards, as of a point in time, followed live as server-sent events), its head, atomic
//! conditional appends (plain JSON events or CloudEvents, stored in the Kafka protocol
//! binding's binary mode), and browsing any partition by offset or time.
//!
//! Which partition holds a key: the one the Java client's default partitioner picks
//! (murmur2 of the key), unless the stream already lives in another (a producer with another
//! partitioner wrote it there) or the request names one with `partition=`.
//!
//! Answers are JSON; errors are `{"error_code": <HTTP status>, "message": ...}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use brook_protocol::batch::{BatchView, Batches, Compression, NewRecord};
use brook_protocol::records::Records;
use brook_protocol::ErrorCode;
use brook_storage::key_index::{KeyEntry, NO_POSITION};
use serde_json::{json, Map, Value};

use crate::handlers::{append_stream, now_ms, StreamRefused};
use crate::state::BrokerState;
use crate::streams::{Expected, CONFLICT};
use crate::topics::{Partition, Topic};

type Shared = State<Arc<BrokerState>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, ApiError>;

/// Events returned by one read unless `limit` says otherwise, and the most it may ask for.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 10_000;
/// The most a compressed batch is decompressed to when read here.
const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;
/// How long an append waits to be durable.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn routes(max_body_bytes: usize) -> Router<Arc<BrokerState>> {
    Router::new()
        .route(
            "/v1/streams/{topic}/{key}",
            get(read_stream).post(append_events),
        )
        .route("/v1/streams/{topic}/{key}/head", get(stream_head))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(browse),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            extra: None,
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error_code": self.status.as_u16(), "message": self.message });
        if let Some((name, value)) = self.extra {
            body[name] = value;
        }
        json_response(self.status, &body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Locating streams

/// The partition the Java client's default partitioner sends `key` to.
pub(crate) fn default_partition(key: &[u8], partitions: i32) -> i32 {
    brook_client::partition_for_key(key, partitions)
}

/// An indexed topic, or why not.
fn indexed_topic(state: &BrokerState, name: &str) -> Result<Arc<Topic>, ApiError> {
    let topic = state
        .topics
        .get(name)
        .filter(|_| !crate::topics::is_internal(name))
        .ok_or_else(|| ApiError::not_found(format!("topic {name:?} does not exist")))?;
    if !topic.produce_policy().key_index {
        return Err(ApiError::bad(format!(
            "topic {name:?} has no key index: streams need the topic config brook.key.index=true"
        )));
    }
    Ok(topic)
}

/// The partition a request names (its number as text).
fn partition_of(topic: &Topic, text: &str) -> Result<Arc<Partition>, ApiError> {
    let index: i32 = text
        .parse()
        .map_err(|_| ApiError::bad(format!("partition must be a number, not {text:?}")))?;
    topic.partition(index).ok_or_else(|| {
        ApiError::not_found(format!("topic {:?} has no partition {index}", topic.name))
    })
}

/// The partition holding the key's stream and its head: `partition=` if given; else the
/// default partition if the stream is there, else any partition where it is, else the
/// default partition (with no head).
fn locate(
    topic: &Topic,
    key: &[u8],
    params: &HashMap<String, String>,
) -> Result<(Arc<Partition>, Option<KeyEntry>), ApiError> {
    let head = |p: &Partition| p.with_log(|log| log.key_index().and_then(|k| k.head(key)));
    if let Some(p) = params.get("partition") {
        let partition = partition_of(topic, p)?;
        let h = head(&partition);
        return Ok((partition, h));
    }
    let count = topic.partition_count();
    let preferred = default_partition(key, count);
    let order = std::iter::once(preferred).chain((0..count).filter(|p| *p != preferred));
    for index in order {
        if let Some(partition) = topic.partition(index) {
            if let Some(h) = head(&partition) {
                return Ok((partition, Some(h)));
            }
        }
    }
    let partition = topic
        .partition(preferred)
        .ok_or_else(|| ApiError::not_found("the topic has no partitions"))?;
    Ok((partition, None))
}

// ---------------------------------------------------------------------------------------
// Reading records

/// One record as read from the log.
#[derive(Debug, Clone)]
struct StoredRecord {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The records of a data batch (none of a control batch) at the offsets `wanted` (sorted,
/// with the records' positions in the section as the key index has them; `None`: every
/// record). Each wanted record is decoded at its position; without positions the batch is
/// walked by the records' length prefixes: reading one event must not cost decoding a batch
/// of thousands.
fn batch_records(view: &BatchView<'_>, wanted: Option<&[(i64, u32)]>) -> Vec<StoredRecord> {
    if view.is_control() {
        return Vec::new();
    }
    let append_time = view.is_log_append_time().then(|| view.max_timestamp());
    let decoded;
    let data = match view.compression() {
        Some(Compression::None) => view.records_data(),
        Some(codec) => {
            match brook_protocol::compression::decompress(
                codec,
                view.records_data(),
                MAX_DECOMPRESSED,
            ) {
                Ok(d) => {
                    decoded = d;
                    &decoded
                }
                Err(_) => return Vec::new(),
            }
        }
        None => return Vec::new(),
    };
    let decode = |r: brook_protocol::records::Record<'_>, offset: i64| StoredRecord {
        offset,
        timestamp: append_time.unwrap_or(view.base_timestamp() + r.timestamp_delta),
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.map(<[u8]>::to_vec),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect(),
    };
    let mut out = Vec::new();
    // With the index's positions, each wanted record is decoded where it starts.
    if let Some(wanted) = wanted.filter(|w| w.iter().all(|(_, p)| *p != NO_POSITION)) {
        for &(offset, position) in wanted {
            let record = data
                .get(position as usize..)
                .and_then(|rest| Records::new(rest, 1).next())
                .and_then(Result::ok)
                .filter(|r| view.base_offset() + i64::from(r.offset_delta) == offset);
            if let Some(r) = record {
                out.push(decode(r, offset));
            }
        }
        return out;
    }
    let mut records = Records::new(data, view.records_count());
    let mut next_wanted = wanted.map(|w| w.iter().map(|(o, _)| *o).peekable());
    // Produce checked that record i has offset delta i.
    for delta in 0..view.records_count() {
        let offset = view.base_offset() + i64::from(delta);
        if let Some(next) = next_wanted.as_mut() {
            while next.next_if(|o| *o < offset).is_some() {}
            if next.peek().is_none() {
                break;
            }
            if next.next_if(|o| *o == offset).is_none() {
                if !records.skip_record() {
                    break;
                }
                continue;
            }
        }
        let Some(Ok(r)) = records.next() else {
            break;
        };
        out.push(decode(r, offset));
    }
    out
}

/// The records at `wanted` (offset and position in its batch, sorted by offset) that still
/// exist, each batch read once. The log is locked only to take the batches' bytes
/// (zero-copy); decoding happens after.
fn records_at(partition: &Partition, wanted: &[(i64, u32)]) -> HashMap<i64, StoredRecord> {
    let mut chunks = Vec::new();
    partition.with_log(|log| {
        let mut covered_to = i64::MIN;
        for &(offset, _) in wanted {
            if offset < covered_to || offset < log.log_start_offset() {
                continue;
            }
            let Ok(read) = log.read(offset, 1) else {
                continue;
            };
            if let Some(view) = read.first().and_then(|first| Batches::new(first).next()) {
                covered_to = view.last_offset() + 1;
            }
            chunks.extend(read);
        }
    });
    let mut out = HashMap::new();
    for chunk in &chunks {
        for view in Batches::new(chunk) {
            let from = wanted.partition_point(|(o, _)| *o < view.base_offset());
            let to = wanted.partition_point(|(o, _)| *o <= view.last_offset());
            if from >= to {
                continue;
            }
            for r in batch_records(&view, wanted.get(from..to)) {
                out.insert(r.offset, r);
            }
        }
    }
    out
}

/// A record as JSON: the value as JSON when it is UTF-8 JSON, else base64
/// (`value_encoding` says which).
fn record_json(r: &StoredRecord, partition: i32) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        headers.insert(
            text(k),
            v.as_deref().map_or(Value::Null, |v| Value::String(text(v))),
        );
    }
    let (value, encoding) = match r.value.as_deref() {
        None => (Value::Null, "null"),
        Some(v) => match serde_json::from_slice::<Value>(v) {
            Ok(json) => (json, "json"),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
                "base64",
            ),
        },
    };
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": r.key.as_deref().map(text),
        "headers": headers,
        "value": value,
        "value_encoding": encoding,
    })
}

// ---------------------------------------------------------------------------------------
// GET /v1/streams/{topic}/{key}

/// What a stream read asks for.
#[derive(Debug, Clone, Copy)]
struct StreamQuery {
    from_revision: Option<i64>,
    to_revision: Option<i64>,
    as_of: Option<i64>,
    backward: bool,
    limit: usize,
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::bad(format!("{name} must be a number >= 0, not {v:?}")))
        })
        .transpose()
}

/// `limit`: 1 to [`MAX_LIMIT`], `default` when absent.
fn limit(params: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    match number(params, "limit")? {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= MAX_LIMIT => Ok(n as usize),
        Some(n) => Err(ApiError::bad(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

/// A time parameter: RFC 3339 or epoch milliseconds.
fn time(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            brook_client::parse_time(v).ok_or_else(|| {
                ApiError::bad(format!(
                    "{name} must be an RFC 3339 time (2026-12-07T14:01:00Z) or epoch milliseconds, not {v:?}"
                ))
            })
        })
        .transpose()
}

impl StreamQuery {
    fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let backward = match params.get("direction").map(String::as_str) {
            None | Some("forward") => false,
            Some("backward") => true,
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "direction must be forward or backward, not {other:?}"
                )))
            }
        };
        let limit = limit(params, DEFAULT_LIMIT)?;
        let as_of = time(params, "as_of")?;
        Ok(Self {
            from_revision: number(params, "from_revision")?,
            to_revision: number(params, "to_revision")?,
            as_of,
            backward,
            limit,
        })
    }

    /// The entries this query selects, in answer order.
    fn select(&self, mut entries: Vec<KeyEntry>) -> Vec<KeyEntry> {
        entries.retain(|e| {
            self.as_of.is_none_or(|t| e.timestamp <= t)
                && self.to_revision.is_none_or(|r| {
                    if self.backward {
                        e.revision >= r
                    } else {
                        e.revision <= r
                    }
                })
                && self.from_revision.is_none_or(|r| {
                    if self.backward {
                        e.revision <= r
                    } else {
                        e.revision >= r
                    }
                })
        });
        if self.backward {
            entries.reverse();
        }
        entries
    }
}

/// The events `query` selects, as JSON, and the revision after the last one answered.
fn read_events(
    partition: &Partition,
    key: &[u8],
    query: &StreamQuery,
) -> (Vec<Value>, Option<i64>) {
    let entries =
        partition.with_log(|log| log.key_index().map(|k| k.entries(key)).unwrap_or_default());
    let selected = query.select(entries);
    let mut wanted: Vec<(i64, u32)> = selected.iter().map(|e| (e.offset, e.position)).collect();
    wanted.sort_unstable();
    let records = records_at(partition, &wanted);
    let mut events = Vec::new();
    let mut next = None;
    for entry in &selected {
        if events.len() == query.limit {
            break;
        }
        next = Some(entry.revision + 1);
        // Gone: removed by retention, DeleteRecords or compaction.
        let Some(record) = records.get(&entry.offset) else {
            continue;
        };
        let mut event = record_json(record, partition.index);
        event["revision"] = json!(entry.revision);
        events.push(event);
    }
    (events, next)
}

async fn read_stream(
    State(state): Shared,
    Path((topic, key)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let topic = indexed_topic(&state, &topic)?;
    let query = StreamQuery::parse(&params)?;
    let (partition, head) = locate(&topic, key.as_bytes(), &params)?;
    if params.get("follow").is_some_and(|v| v == "true") {
        if query.backward {
            return Err(ApiError::bad("follow=true reads forward only"));
        }
        return Ok(follow(state, partition, key.into_bytes(), query).into_response());
    }
    let (events, _) = read_events(&partition, key.as_bytes(), &query);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "topic": topic.name,
            "key": key,
            "partition": partition.index,
            "head_revision": head.map(|h| h.revision),
            "events": events,
        }),
    ))
}

/// Server-sent events: the stream from `from_revision`, then each new event as it is
/// appended (one SSE event per stream event, its id the revision).
fn follow(
    state: Arc<BrokerState>,
    partition: Arc<Partition>,
    key: Vec<u8>,
    query: StreamQuery,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let appends = state.subscribe_appends();
    let start = StreamQuery {
        to_revision: None,
        as_of: None,
        ..query
    };
    let stream = futures_util::stream::unfold(
        (start, appends, Vec::<Value>::new().into_iter()),
        move |(mut query, mut appends, mut queued)| {
            let (partition, key) = (partition.clone(), key.clone());
            async move {
                loop {
                    if let Some(event) = queued.next() {
                        let id = event["revision"].to_string();
                        let sse = SseEvent::default()
                            .event("event")
                            .id(id)
                            .data(event.to_string());
                        return Some((Ok(sse), (query, appends, queued)));
                    }
                    let (events, next) = read_events(&partition, &key, &query);
                    if let Some(next) = next {
                        query.from_revision = Some(next);
                    }
                    if events.is_empty() {
                        // Wait for the next append anywhere (woken at least every second, to
                        // notice the client going away through the failed keep-alive).
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), appends.changed()).await;
                    }
                    queued = events.into_iter();
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---------------------------------------------------------------------------------------
// GET /v1/streams/{topic}/{key}/head

async fn stream_head(
    State(state): Shared,
    Path((topic, key)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let topic = indexed_topic(&state, &topic)?;
    let (partition, head) = locate(&topic, key.as_bytes(), &params)?;
    let head = head.ok_or_else(|| ApiError::not_found(format!("stream {key:?} does not exist")))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "topic": topic.name,
            "key": key,
            "partition": partition.index,
            "revision": head.revision,
            "offset": head.offset,
            "timestamp": head.timestamp,
        }),
    ))
}

// ---------------------------------------------------------------------------------------
// POST /v1/streams/{topic}/{key}

/// One event to append: value bytes and headers.
struct NewEvent {
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

/// The header an event's `event_id` is stored in.
const EVENT_ID_HEADER: &str = "brook.event.id";

/// `{"expected_revision": ..., "events": [{"value", "headers", "event_id"}]}`.
fn parse_json_events(body: &[u8]) -> Result<(Expected, Vec<NewEvent>), ApiError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let expected = match doc.get("expected_revision") {
        None | Some(Value::Null) => Expected::Any,
        Some(Value::String(s)) => Expected::parse(s).map_err(ApiError::bad)?,
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|r| *r >= 0)
            .map(Expected::Revision)
            .ok_or_else(|| ApiError::bad(format!("expected_revision {n} is not a revision")))?,
        Some(other) => {
            return Err(ApiError::bad(format!(
            "expected_revision must be \"any\", \"no-stream\", \"exists\" or a number, not {other}"
        )))
        }
    };
    let Some(Value::Array(list)) = doc.get("events") else {
        return Err(ApiError::bad("the body needs an \"events\" array"));
    };
    let mut events = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let Value::Object(e) = e else {
            return Err(ApiError::bad(format!("event {i} is not an object")));
        };
        let value = match e.get("value") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.to_string().into_bytes()),
        };
        let mut headers = Vec::new();
        match e.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let Value::String(v) = v else {
                        return Err(ApiError::bad(format!(
                            "event {i}: header {k:?} must be a string"
                        )));
                    };
                    headers.push((k.clone(), v.clone().into_bytes()));
                }
            }
            Some(_) => {
                return Err(ApiError::bad(format!(
                    "event {i}: headers must be an object of strings"
                )))
            }
        }
        match e.get("event_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) => {
                headers.push((EVENT_ID_HEADER.into(), id.clone().into_bytes()))
            }
            Some(_) => {
                return Err(ApiError::bad(format!(
                    "event {i}: event_id must be a string"
                )))
            }
        }
        events.push(NewEvent { value, headers });
    }
    Ok((expected, events))
}

/// CloudEvents in structured JSON (one, or a batch), turned into the Kafka protocol
/// binding's binary mode: attributes as `ce_` headers, `datacontenttype` as `content-type`,
/// the data as the value.
fn parse_cloudevents(body: &[u8], batch: bool) -> Result<Vec<NewEvent>, ApiError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let list = match (batch, doc) {
        (true, Value::Array(list)) => list,
        (false, event @ Value::Object(_)) => vec![event],
        (true, _) => return Err(ApiError::bad("a CloudEvents batch is a JSON array")),
        (false, _) => return Err(ApiError::bad("a CloudEvent is a JSON object")),
    };
    let mut events = Vec::with_capacity(list.len());
    for (i, event) in list.into_iter().enumerate() {
        let Value::Object(attributes) = event else {
            return Err(ApiError::bad(format!("CloudEvent {i} is not an object")));
        };
        for required in ["specversion", "id", "source", "type"] {
            if !attributes.get(required).is_some_and(Value::is_string) {
                return Err(ApiError::bad(format!(
                    "CloudEvent {i} lacks the required attribute {required:?}"
                )));
            }
        }
        let content_type = attributes
            .get("datacontenttype")
            .and_then(Value::as_str)
            .unwrap_or("application/json")
            .to_string();
        let json_data = content_type.contains("json");
        let mut headers = Vec::new();
        let mut value = None;
        for (name, v) in attributes {
            match name.as_str() {
                "data" => {
                    value = Some(match v {
                        Value::String(s) if !json_data => s.into_bytes(),
                        other => other.to_string().into_bytes(),
                    })
                }
                "data_base64" => {
                    let text = v.as_str().unwrap_or_default();
                    value = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(|e| {
                                ApiError::bad(format!("CloudEvent {i}: data_base64: {e}"))
                            })?,
                    );
                }
                "datacontenttype" => {}
                _ => {
                    let text = match v {
                        Value::String(s) => s,
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    headers.push((format!("ce_{name}"), text.into_bytes()));
                }
            }
        }
        headers.push(("content-type".into(), content_type.into_bytes()));
        events.push(NewEvent { value, headers });
    }
    Ok(events)
}

/// The events as one uncompressed batch, all with `key`.
fn encode_batch(key: &[u8], events: Vec<NewEvent>, now: i64) -> Bytes {
    let records: Vec<NewRecord> = events
        .into_iter()
        .map(|e| NewRecord {
            key: Some(key.to_vec()),
            value: e.value,
            timestamp_delta: 0,
            headers: e.headers.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        })
        .collect();
    Bytes::from(brook_protocol::batch::encode_batch(now, &records))
}

async fn append_events(
    State(state): Shared,
    Path((topic, key)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let topic = indexed_topic(&state, &topic)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (expected, events) = match content_type.as_str() {
        "application/cloudevents+json" | "application/cloudevents-batch+json" => {
            let expected = match params.get("expected_revision") {
                Some(e) => Expected::parse(e).map_err(ApiError::bad)?,
                None => Expected::Any,
            };
            let batch = content_type == "application/cloudevents-batch+json";
            (expected, parse_cloudevents(&body, batch)?)
        }
        "application/json" | "" => parse_json_events(&body)?,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type {other:?} is not application/json, application/cloudevents+json or application/cloudevents-batch+json"),
            ))
        }
    };
    if events.is_empty() {
        return Err(ApiError::bad("no events to append"));
    }
    let (partition, _) = locate(&topic, key.as_bytes(), &params)?;
    let count = events.len();
    let batch = encode_batch(key.as_bytes(), events, now_ms());
    // The first event carries the condition; the others chain on it.
    let conditions: Vec<Option<Expected>> =
        (0..count).map(|i| (i == 0).then_some(expected)).collect();
    let appended = append_stream(
        &state,
        &topic,
        partition.index,
        batch,
        conditions,
        APPEND_TIMEOUT,
    )
    .await
    .map_err(|refused| refusal(refused, &partition, key.as_bytes()))?;
    let (first, last) = (
        appended.revisions.first().copied().unwrap_or(-1),
        appended.revisions.last().copied().unwrap_or(-1),
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "topic": topic.name,
            "key": key,
            "partition": partition.index,
            "first_revision": first,
            "last_revision": last,
            "first_offset": appended.base_offset,
            "last_offset": appended.base_offset + count as i64 - 1,
        }),
    ))
}

/// The HTTP answer to a refused append: 409 with the stream's revision for a failed
/// condition, 413 for a batch over `max.message.bytes`, 400 for other invalid input, 503
/// for storage trouble.
fn refusal(refused: StreamRefused, partition: &Partition, key: &[u8]) -> ApiError {
    let message = refused
        .record_errors
        .first()
        .map_or(refused.message.clone(), |e| e.1.clone());
    if message.starts_with(CONFLICT) {
        let current = partition.with_log(|log| {
            log.key_index()
                .and_then(|k| k.head(key))
                .map(|h| h.revision)
        });
        return ApiError {
            status: StatusCode::CONFLICT,
            message,
            extra: Some(("current_revision", json!(current))),
        };
    }
    let status = match refused.code {
        ErrorCode::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidRecord | ErrorCode::InvalidTimestamp | ErrorCode::CorruptMessage => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::RequestTimedOut => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, message)
}

// ---------------------------------------------------------------------------------------
// GET /v1/topics/{topic}/partitions/{p}/records

async fn browse(
    State(state): Shared,
    Path((topic, partition)): Path<(String, String)>,
    Query(params): Params,
) -> Answer {
    let topic = state
        .topics
        .get(&topic)
        .ok_or_else(|| ApiError::not_found(format!("topic {topic:?} does not exist")))?;
    let partition = partition_of(&topic, &partition)?;
    let index = partition.index;
    let limit = limit(&params, 100)?;
    let timestamp = time(&params, "timestamp")?;
    let offset = number(&params, "offset")?;
    let (chunks, start, end) = partition.with_log(|log| {
        let (log_start, end) = (log.log_start_offset(), log.log_end_offset());
        let start = match (offset, timestamp) {
            (Some(o), _) => o,
            (None, Some(ts)) => match log.batch_for_timestamp(ts) {
                Ok(Some(batch)) => Batches::new(&batch).next().map_or(end, |v| v.base_offset()),
                _ => end,
            },
            (None, None) => log_start,
        };
        let from = start.clamp(log_start, end);
        let chunks = log.read(from, 1 << 20).unwrap_or_default();
        (chunks, start, end)
    });
    let mut records = Vec::new();
    let mut next = start.max(partition.with_log(|log| log.log_start_offset()));
    'read: for chunk in &chunks {
        for view in Batches::new(chunk) {
            for r in batch_records(&view, None) {
                if r.offset < start
                    || timestamp.is_some_and(|t| r.timestamp < t) && offset.is_none()
                {
                    continue;
                }
                if records.len() == limit {
                    break 'read;
                }
                next = r.offset + 1;
                records.push(record_json(&r, index));
            }
            next = next.max(view.last_offset() + 1).min(end);
            if records.len() == limit {
                break 'read;
            }
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "topic": topic.name,
            "partition": index,
            "records": records,
            "next_offset": next,
            "log_end_offset": end,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_select_by_revision_time_and_direction() {
        let entries: Vec<KeyEntry> = (0..10)
            .map(|r| KeyEntry {
                offset: 100 + r,
                revision: r,
                timestamp: 1_000 + r * 10,
                position: NO_POSITION,
            })
            .collect();
        let q = |p: &[(&str, &str)]| {
            let params: HashMap<String, String> = p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            StreamQuery::parse(&params)
        };
        let revs = |q: StreamQuery| -> Vec<i64> {
            q.select(entries.clone())
                .iter()
                .map(|e| e.revision)
                .collect()
        };
        assert_eq!(revs(q(&[]).unwrap()), (0..10).collect::<Vec<_>>());
        assert_eq!(revs(q(&[("from_revision", "7")]).unwrap()), vec![7, 8, 9]);
        assert_eq!(
            revs(q(&[("from_revision", "2"), ("to_revision", "4")]).unwrap()),
            vec![2, 3, 4]
        );
        assert_eq!(revs(q(&[("as_of", "1030")]).unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(
            revs(
                q(&[
                    ("direction", "backward"),
                    ("from_revision", "5"),
                    ("to_revision", "3")
                ])
                .unwrap()
            ),
            vec![5, 4, 3]
        );
        assert_eq!(revs(q(&[("direction", "backward")]).unwrap())[0], 9);
        for bad in [
            ("direction", "up"),
            ("limit", "0"),
            ("limit", "x"),
            ("from_revision", "-2"),
            ("as_of", "soon"),
        ] {
            assert!(q(&[bad]).is_err(), "{bad:?}");
        }
    }
}
