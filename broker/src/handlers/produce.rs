//! Produce (key 0): validate each partition's batch, stamp it, append it.
//!
//! Batches stay bytes: the header and CRC32C are checked, every record is walked (in place,
//! or through a decompressor bounded by [`max_decompressed`] for compressed batches; see
//! `brook_protocol::validate`) and checked against the topic's timestamp and key rules as
//! Kafka's `LogValidator` does, the base offset (by the log) and the partition leader epoch
//! are patched (both outside the CRC), and the bytes are appended. A batch with any invalid
//! record is refused whole (INVALID_RECORD or INVALID_TIMESTAMP, with `record_errors` and an
//! `error_message` naming the record from v8). With acks=all the response waits until the batch is
//! fsynced, by a group-commit round shared with every other producer of the partition (see
//! [`crate::durability`]); acks=1 and 0 leave that to the background flush. A producer's
//! first transactional batch in a partition is accepted only if the transaction coordinator
//! has the partition in its ongoing transaction (KIP-890 part 1). Versions 0-2 are advertised for old librdkafka feature
//! detection and answered with UNSUPPORTED_VERSION by the connection (see
//! `brook_protocol::legacy_produce`).

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{self, BatchError, BatchView, Compression};
use brook_protocol::kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use brook_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::validate::{self, InvalidRecords};
use brook_protocol::ErrorCode;
use brook_storage::key_index::BatchKeys;
use bytes::Bytes;
use uuid::Uuid;

use super::metadata::LEADER_EPOCH;
use super::{now_ms, Ctx, Operation, ResourceType};
use crate::durability::{self, WaitError};
use crate::producers::{ProducerBatch, Verdict};
use crate::state::BrokerState;
use crate::streams;
use crate::topic_config::{ProducePolicy, SchemaValidation};
use crate::topics::{Partition, Topic};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 11 };

/// Compressed records may expand to this many times `max.message.bytes` (at least
/// [`MIN_DECOMPRESSED`]); a batch that expands further is refused as a compression bomb.
const DECOMPRESSION_RATIO: usize = 64;
const MIN_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// The decompressed size a compressed batch's records may reach for a topic.
pub(crate) fn max_decompressed(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(DECOMPRESSION_RATIO)
        .max(MIN_DECOMPRESSED)
}

/// Why a partition's records were refused.
#[derive(Debug)]
struct Rejection {
    code: ErrorCode,
    message: String,
    /// Per record (index in the batch, problem), as Produce v8+ reports them.
    record_errors: Vec<(i32, String)>,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }

    fn with_record_errors(self, record_errors: Vec<(i32, String)>) -> Self {
        Self {
            record_errors,
            ..self
        }
    }
}

pub(crate) async fn handle(ctx: &Ctx<'_>, req: ProduceRequest) -> ProduceResponse {
    let gate = transaction_gate(ctx.state, &req).await;
    begin(ctx, req, gate).finish().await
}

/// What must happen before a transactional producer's batches are appended: its previous
/// transaction's `Complete*` record durable
/// ([`crate::txn::TransactionCoordinator::wait_completion_durable`]). The error to answer
/// every partition with if that failed.
pub(crate) async fn transaction_gate(
    state: &BrokerState,
    req: &ProduceRequest,
) -> Option<ErrorCode> {
    let id = req.transactional_id.as_ref()?;
    state.txns.wait_completion_durable(id).await.err()
}

/// Per topic of a request: its name and id, and each partition's outcome.
type TopicOutcome = (TopicName, Uuid, Vec<(i32, Result<Appended, Rejection>)>);

/// A produce request whose batches are appended; what is left is waiting for durability
/// (acks=all) and building the response. The connection runs [`begin`] in request order and
/// lets [`PendingProduce::finish`] overlap with the requests that follow, so the next batch
/// is appended while this one's fsync runs.
pub(crate) struct PendingProduce {
    topics: Vec<TopicOutcome>,
    wait_for_fsync: bool,
    timeout: Duration,
}

/// Appends every batch of the request now and starts the fsync rounds acks=all needs;
/// `gate` is what [`transaction_gate`] answered.
pub(crate) fn begin(ctx: &Ctx<'_>, req: ProduceRequest, gate: Option<ErrorCode>) -> PendingProduce {
    let state = ctx.state;
    let acks_ok = matches!(req.acks, -1..=1);
    let wait_for_fsync = req.acks == -1 && !state.config.unsafe_disable_fsync;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));

    let txn = TxnContext {
        transactional_id: req.transactional_id.as_ref().map(|t| t.to_string()),
        version: ctx.version(),
    };
    // A transactional producer needs WRITE on its transactional id (Kafka refuses the whole
    // request otherwise), and every producer WRITE on each topic.
    let txn_refused = txn
        .transactional_id
        .as_deref()
        .is_some_and(|id| !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id));
    // Append everything first, so that one fsync round can cover all partitions' batches.
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic_refused = !ctx.allowed(Operation::Write, ResourceType::Topic, &topic_data.name);
        let topic = state.topics.get(&topic_data.name);
        let results: Vec<(i32, Result<Appended, Rejection>)> = topic_data
            .partition_data
            .into_iter()
            .map(|p| {
                let result = if txn_refused {
                    Err(Rejection::new(
                        ErrorCode::TransactionalIdAuthorizationFailed,
                        "Transactional Id authorization failed.",
                    ))
                } else if let Some(code) = gate {
                    Err(Rejection::new(
                        code,
                        "The producer's previous transaction could not be made durable.",
                    ))
                } else if topic_refused {
                    Err(Rejection::new(
                        ErrorCode::TopicAuthorizationFailed,
                        "Topic authorization failed.",
                    ))
                } else if acks_ok {
                    produce_partition(state, &txn, topic.as_deref(), p.index, p.records, None)
                } else {
                    Err(Rejection::new(
                        ErrorCode::InvalidRequiredAcks,
                        format!("acks must be -1, 0 or 1, not {}", req.acks),
                    ))
                };
                (p.index, result)
            })
            .collect();
        topics.push((topic_data.name, topic_data.topic_id, results));
    }
    if topics.iter().flat_map(|t| &t.2).any(|(_, r)| r.is_ok()) {
        state.notify_appended();
    }
    if wait_for_fsync {
        for (_, _, results) in &topics {
            for (_, r) in results.iter() {
                if let Ok(a) = r {
                    durability::request_sync(&a.partition);
                }
            }
        }
    }
    PendingProduce {
        topics,
        wait_for_fsync,
        timeout,
    }
}

impl PendingProduce {
    /// Waits until the appended batches are durable (acks=all) and builds the response.
    pub(crate) async fn finish(self) -> ProduceResponse {
        let PendingProduce {
            mut topics,
            wait_for_fsync,
            timeout,
        } = self;
        if wait_for_fsync {
            for (_, _, results) in &mut topics {
                for (_, r) in results.iter_mut() {
                    if let Ok(a) = r {
                        if let Err(e) = a
                            .partition
                            .durability
                            .wait_durable(a.end_offset, timeout)
                            .await
                        {
                            *r = Err(match e {
                                WaitError::Failed => Rejection::new(ErrorCode::KafkaStorageError, "fsync failed: the partition accepts no writes until the broker restarts"),
                                WaitError::TimedOut => Rejection::new(ErrorCode::RequestTimedOut, "the batch was not durable within the request timeout"),
                            });
                        }
                    }
                }
            }
        }
        build_response(topics)
    }
}

fn build_response(topics: Vec<TopicOutcome>) -> ProduceResponse {
    let responses = topics
        .into_iter()
        .map(|(name, topic_id, results)| {
            let partition_responses = results
                .into_iter()
                .map(|(index, result)| {
                    let resp = PartitionProduceResponse::default().with_index(index);
                    match result {
                        Ok(ok) => resp
                            .with_base_offset(ok.base_offset)
                            .with_log_append_time_ms(ok.log_append_time)
                            .with_log_start_offset(ok.log_start_offset),
                        Err(r) => {
                            tracing::debug!(topic = %name.as_str(), partition = index, error = ?r.code, message = %r.message, "produce rejected");
                            let record_errors = r
                                .record_errors
                                .into_iter()
                                .map(|(i, m)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(i)
                                        .with_batch_index_error_message(Some(
                                            StrBytes::from_string(m),
                                        ))
                                })
                                .collect();
                            resp.with_error_code(r.code.code())
                                .with_base_offset(-1)
                                .with_log_start_offset(-1)
                                .with_error_message(Some(StrBytes::from_string(r.message)))
                                .with_record_errors(record_errors)
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

struct Appended {
    partition: Arc<Partition>,
    /// A conditional batch's records' revisions (-1 for a record without a key); empty
    /// otherwise.
    revisions: Vec<i64>,
    base_offset: i64,
    /// One past the last offset written: durable once the log's durable offset reaches it.
    end_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

/// What a transactional batch is checked with: the request's transactional id and version.
struct TxnContext {
    transactional_id: Option<String>,
    version: i16,
}

/// From v11 producers understand TRANSACTION_ABORTABLE (KIP-890).
const ABORTABLE_FROM: i16 = 11;

/// KIP-890 part 1: the first transactional batch of a producer in a partition is accepted
/// only if the coordinator has the partition in the producer's ongoing transaction. Errors
/// as Kafka's partition leader answers them.
fn verify_transactional(
    state: &BrokerState,
    txn: &TxnContext,
    producer: &ProducerBatch,
    topic: &str,
    index: i32,
) -> Result<(), Rejection> {
    let Some(id) = txn.transactional_id.as_deref() else {
        return Err(Rejection::new(
            ErrorCode::TransactionalIdAuthorizationFailed,
            "A transactional batch needs the request's transactional id.",
        ));
    };
    let partition = (topic.to_string(), index);
    state
        .txns
        .verify_partition(id, producer.producer_id, producer.epoch, &partition)
        .map_err(|code| {
            let code = match code {
                ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
                ErrorCode::TransactionAbortable if txn.version < ABORTABLE_FROM => {
                    ErrorCode::InvalidTxnState
                }
                ErrorCode::InvalidProducerIdMapping | ErrorCode::TransactionAbortable => code,
                // Retriable for every client, without a metadata refresh.
                _ => ErrorCode::NotEnoughReplicas,
            };
            Rejection::new(code, "Partition was not added to the transaction")
        })
}

fn produce_partition(
    state: &BrokerState,
    txn: &TxnContext,
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
    given: Option<Vec<Option<streams::Expected>>>,
) -> Result<Appended, Rejection> {
    let unknown = || {
        Rejection::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    };
    let topic = topic.ok_or_else(unknown)?;
    if crate::topics::is_internal(&topic.name) {
        // Only the coordinators write there, as in Kafka.
        return Err(Rejection::new(
            ErrorCode::InvalidTopicException,
            format!("Cannot append to internal topic {}", topic.name),
        ));
    }
    let partition = topic.partition(index).ok_or_else(unknown)?;
    let policy = topic.produce_policy();
    let records = records.unwrap_or_default();
    let view = validate_single_batch(&records, policy.max_message_bytes)?;
    let now = now_ms();
    let schemas = SchemaIds::for_topic(state, &topic.name, &policy);
    let checked = check_records(&view, &policy, &schemas, now, &topic.name, index)?;
    let max_timestamp = checked.max_timestamp;
    check_payloads(state, &view, &policy)?;
    // The key index's work that needs no lock is done here: keys found and hashed (by the
    // validation walk above, or read now from a compressed batch).
    let keys = checked.keys.or_else(|| {
        policy
            .key_index
            .then(|| BatchKeys::read(&view).ok())
            .flatten()
    });
    let conditions = match given {
        Some(given) => Some(given),
        None if !checked.conditions.is_empty() => Some(read_conditions(
            &view,
            keys.as_ref(),
            &checked.conditions,
            &policy,
            &topic.name,
        )?),
        None => None,
    };
    let record_count = i64::from(view.records_count());
    let producer = ProducerBatch::of(&view);

    let mut data = records.to_vec();
    batch::set_partition_leader_epoch(&mut data, LEADER_EPOCH);
    let log_append_time = if policy.log_append_time {
        batch::set_log_append_time(&mut data, now);
        now
    } else {
        // Kafka sets a CreateTime batch's max timestamp from its records: the time index and
        // timestamp lookups rely on it.
        if view.max_timestamp() != max_timestamp {
            batch::set_max_timestamp(&mut data, max_timestamp);
        }
        -1
    };
    if let Some(p) = producer.as_ref().filter(|p| p.transactional) {
        let open = partition
            .with_log_and_producers(|_, producers| producers.in_transaction(p.producer_id));
        if !open {
            verify_transactional(state, txn, p, &topic.name, index)?;
        }
    }
    let outcome = partition.with_log_and_producers(|log, producers| {
        if let Some(p) = &producer {
            match producers.check(p) {
                Err(e) => return Err(Rejection::new(e.code, e.message)),
                // A retry of a batch already written: answer with its original offset.
                Ok(Verdict::Duplicate {
                    first_offset,
                    last_offset,
                }) => {
                    return Ok((first_offset, last_offset + 1, log.log_start_offset(), None));
                }
                Ok(Verdict::Append) => {}
            }
        }
        let revisions = match &conditions {
            Some(expected) => check_conditions(log, &view, keys.as_ref(), expected, &topic.name)?,
            None => Vec::new(),
        };
        let info = log.append_keyed(&mut data, now, keys.as_ref()).map_err(|e| {
            tracing::error!(topic = %topic.name, partition = index, error = %e, "append failed");
            Rejection::new(ErrorCode::KafkaStorageError, format!("append failed: {e}"))
        })?;
        if let Some(p) = &producer {
            producers.record(p, info.base_offset);
        }
        Ok((
            info.base_offset,
            info.last_offset + 1,
            log.log_start_offset(),
            Some(revisions),
        ))
    });
    let (base_offset, end_offset, log_start_offset, revisions) = outcome?;
    let Some(revisions) = revisions else {
        tracing::debug!(topic = %topic.name, partition = index, base_offset, "duplicate batch acknowledged with its original offset");
        return Ok(Appended {
            partition,
            base_offset,
            end_offset,
            log_append_time,
            log_start_offset,
            revisions: Vec::new(),
        });
    };
    topic
        .traffic
        .appended(record_count.unsigned_abs(), records.len() as u64);
    if !state.config.unsafe_disable_fsync {
        let (records, bytes) =
            durability::note_append(&partition, record_count, records.len() as u64);
        if records >= policy.flush_messages || bytes >= durability::flush_bytes(&state.config) {
            durability::request_sync(&partition);
        }
    }
    Ok(Appended {
        partition,
        base_offset,
        end_offset,
        log_append_time,
        log_start_offset,
        revisions,
    })
}

/// A conditional append of the HTTP stream API: one batch of `topic`'s partition `index`,
/// whose records' conditions are `conditions` (not headers), checked like a Produce batch's
/// and durable before this returns.
pub(crate) async fn append_stream(
    state: &BrokerState,
    topic: &Topic,
    index: i32,
    batch: Bytes,
    conditions: Vec<Option<streams::Expected>>,
    timeout: Duration,
) -> Result<StreamAppended, StreamRefused> {
    let txn = TxnContext {
        transactional_id: None,
        version: VERSIONS.max,
    };
    let appended = produce_partition(
        state,
        &txn,
        Some(topic),
        index,
        Some(batch),
        Some(conditions),
    )
    .map_err(|r| StreamRefused {
        code: r.code,
        message: r.message,
        record_errors: r.record_errors,
    })?;
    state.notify_appended();
    if !state.config.unsafe_disable_fsync {
        durability::request_sync(&appended.partition);
        appended
            .partition
            .durability
            .wait_durable(appended.end_offset, timeout)
            .await
            .map_err(|e| StreamRefused {
                code: match e {
                    WaitError::Failed => ErrorCode::KafkaStorageError,
                    WaitError::TimedOut => ErrorCode::RequestTimedOut,
                },
                message: "the events were appended but not made durable in time".into(),
                record_errors: Vec::new(),
            })?;
    }
    Ok(StreamAppended {
        base_offset: appended.base_offset,
        revisions: appended.revisions,
    })
}

/// What [`append_stream`] appended: the first offset and each record's revision.
pub(crate) struct StreamAppended {
    pub(crate) base_offset: i64,
    pub(crate) revisions: Vec<i64>,
}

/// Why [`append_stream`] appended nothing (or, for a timeout, nothing durable yet).
#[derive(Debug)]
pub(crate) struct StreamRefused {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) record_errors: Vec<(i32, String)>,
}

/// The conditions of a batch with `brook.expected.revision` headers (`headers`: record
/// index, where the value is, its length), refused whole where they cannot apply: on a topic
/// without the key index, in a transaction, or malformed.
fn read_conditions(
    view: &BatchView<'_>,
    keys: Option<&BatchKeys>,
    headers: &[(i32, u64, i32)],
    policy: &ProducePolicy,
    topic: &str,
) -> Result<Vec<Option<streams::Expected>>, Rejection> {
    let refuse = |errors: Vec<(i32, String)>| {
        let message = errors.first().map(|e| e.1.clone()).unwrap_or_default();
        Rejection::new(ErrorCode::InvalidRecord, message).with_record_errors(errors)
    };
    let reason = match keys {
        _ if !policy.key_index => format!("the brook.expected.revision header needs the key index: set the topic config brook.key.index=true on {topic} (for example kafka-configs --alter --entity-type topics --entity-name {topic} --add-config brook.key.index=true)"),
        _ if view.is_transactional() => "the brook.expected.revision header is not supported in transactional batches: a transaction's records get their revisions only when it commits".to_string(),
        Some(keys) => return streams::read_conditions(keys, keys.section(view), headers).map_err(refuse),
        None => "the batch's records cannot be read".to_string(),
    };
    Err(refuse(
        headers.iter().map(|h| (h.0, reason.clone())).collect(),
    ))
}

/// Checks a conditional batch against the stream heads (the partition is locked); the
/// revision each record will get (-1 for a record without a key).
fn check_conditions(
    log: &mut brook_storage::PartitionLog,
    view: &BatchView<'_>,
    keys: Option<&BatchKeys>,
    expected: &[Option<streams::Expected>],
    topic: &str,
) -> Result<Vec<i64>, Rejection> {
    let (Some(index), Some(keys)) = (log.key_index(), keys) else {
        return Err(Rejection::new(
            ErrorCode::InvalidRecord,
            format!("{topic} has no key index: set its topic config brook.key.index=true"),
        ));
    };
    streams::check(index, keys, keys.section(view), expected).map_err(|errors| {
        let message = errors.first().map(|e| e.1.clone()).unwrap_or_default();
        Rejection::new(ErrorCode::InvalidRecord, message).with_record_errors(errors)
    })
}

/// Walks every record of the batch and applies the topic's rules; returns the largest record
/// timestamp. The whole batch is refused if any record fails.
/// The schema ids a topic's records may carry, for the keys and the values, when its
/// `confluent.*.schema.validation` asks: the live versions of `<topic>-key` and
/// `<topic>-value` (Confluent's TopicNameStrategy).
struct SchemaIds {
    key: Option<std::collections::HashSet<i32>>,
    value: Option<std::collections::HashSet<i32>>,
}

impl SchemaIds {
    fn for_topic(state: &BrokerState, topic: &str, policy: &ProducePolicy) -> Self {
        let ids = |on: SchemaValidation, suffix: &str| {
            (on != SchemaValidation::Off).then(|| {
                state
                    .registry
                    .read(|r| r.subject_ids(&format!("{topic}-{suffix}")))
            })
        };
        Self {
            key: ids(policy.key_schema_validation, "key"),
            value: ids(policy.value_schema_validation, "value"),
        }
    }

    /// Why a key or value fails validation, if it does (a null one passes: a tombstone).
    fn check(
        allowed: Option<&std::collections::HashSet<i32>>,
        head: &validate::Head,
        what: &str,
        topic: &str,
    ) -> Option<String> {
        let allowed = allowed?;
        if head.len < 0 {
            return None;
        }
        match head.schema_id() {
            Some(id) if allowed.contains(&id) => None,
            Some(id) => Some(format!(
                "the {what}'s schema id {id} is not registered under subject {topic}-{what}"
            )),
            None => Some(format!(
                "the {what} does not start with a schema id (magic byte 0 and a 4-byte id) for subject {topic}-{what}"
            )),
        }
    }
}

/// `brook.*.schema.validation=full`: every framed key or value must be valid data of the
/// schema its id names (the ids were checked by [`check_records`]).
fn check_payloads(
    state: &BrokerState,
    view: &BatchView<'_>,
    policy: &ProducePolicy,
) -> Result<(), Rejection> {
    let (keys, values) = (
        policy.key_schema_validation == SchemaValidation::Full,
        policy.value_schema_validation == SchemaValidation::Full,
    );
    if !keys && !values {
        return Ok(());
    }
    let mut errors: Vec<(i32, String)> = Vec::new();
    let limit = max_decompressed(policy.max_message_bytes);
    brook_storage::cleaner::filter::for_each_record(view, limit, |r, _| {
        for (on, data, what) in [(keys, r.key, "key"), (values, r.value, "value")] {
            let Some(data) = data.filter(|_| on) else {
                continue;
            };
            let Some((head, payload)) = data.split_at_checked(5) else {
                continue;
            };
            let id = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
            if let Err(reason) = state.registry.check_payload(id, payload) {
                errors.push((
                    r.offset_delta,
                    format!(
                        "Log record {what} failed schema validation: schema id {id}: {reason}."
                    ),
                ));
            }
        }
    })
    .map_err(|e| {
        Rejection::new(
            ErrorCode::InvalidRecord,
            format!("The record batch is invalid: {e}."),
        )
    })?;
    if errors.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} records failed schema validation; the first: {}",
        errors.len(),
        errors[0].1
    );
    Err(Rejection::new(ErrorCode::InvalidRecord, message).with_record_errors(errors))
}

/// What [`check_records`] learned of a valid batch.
struct CheckedRecords {
    max_timestamp: i64,
    /// The records with a `brook.expected.revision` header: index, where its value is in
    /// the records section, its length.
    conditions: Vec<(i32, u64, i32)>,
    /// For the key index of an uncompressed batch: its keys, found by the same walk.
    keys: Option<BatchKeys>,
}

fn check_records(
    view: &BatchView<'_>,
    policy: &ProducePolicy,
    schemas: &SchemaIds,
    now: i64,
    topic: &str,
    partition: i32,
) -> Result<CheckedRecords, Rejection> {
    let create_time = !policy.log_append_time;
    if create_time && view.is_log_append_time() {
        return Err(Rejection {
            record_errors: vec![(0, "Producer should not set timestamp type to LogAppendTime.".into())],
            ..Rejection::new(ErrorCode::InvalidTimestamp, "Invalid timestamp type in the record batch: producers should not set timestamp type to LogAppendTime.")
        });
    }
    let earliest = now.saturating_sub(policy.timestamp_before_max_ms);
    let latest = now.saturating_add(policy.timestamp_after_max_ms);
    let mut errors: Vec<(i32, String)> = Vec::new();
    let mut bad_timestamp = false;
    let mut conditions = Vec::new();
    let section = view.records_data();
    let mut keys = (policy.key_index && view.compression() == Some(Compression::None))
        .then(|| BatchKeys::with_capacity(usize::try_from(view.records_count()).unwrap_or(0)));
    let checked = validate::check_records(
        view,
        max_decompressed(policy.max_message_bytes),
        |r| {
            if let Some((at, len)) = r.expected_revision {
                conditions.push((r.index, at, len));
            }
            if let Some(keys) = keys.as_mut() {
                let key = usize::try_from(r.key.len).ok().and_then(|len| Some((usize::try_from(r.key_at).ok()?, len)));
                let start = usize::try_from(r.start).unwrap_or(usize::MAX);
                keys.push(section, r.index, start, key, r.timestamp);
            }
            for (allowed, head, what) in [
                (schemas.key.as_ref(), &r.key, "key"),
                (schemas.value.as_ref(), &r.value, "value"),
            ] {
                if let Some(reason) = SchemaIds::check(allowed, head, what, topic) {
                    errors.push((r.index, format!("Log record {what} failed schema validation: {reason}.")));
                }
            }
            if policy.compacted && !r.has_key {
                errors.push((r.index, format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}.")));
            }
            if create_time && r.timestamp != -1 && (r.timestamp < -1 || r.timestamp < earliest || r.timestamp > latest) {
                bad_timestamp = true;
                errors.push((r.index, format!("Timestamp {} of message {} of the batch is out of range. The timestamp should be within [{earliest}, {latest}]", r.timestamp, r.index)));
            }
        },
    )
    .map_err(|e| {
        let (index, message) = match &e {
            InvalidRecords::Record { index, reason } => (*index, reason.clone()),
            other => (0, other.to_string()),
        };
        Rejection {
            record_errors: vec![(index, message)],
            ..Rejection::new(ErrorCode::InvalidRecord, format!("The record batch is invalid: {e}."))
        }
    })?;
    if errors.is_empty() {
        return Ok(CheckedRecords {
            max_timestamp: checked.max_timestamp,
            conditions,
            keys,
        });
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(i, m)| format!("{i}: {m}"))
        .collect();
    let (code, message) = if bad_timestamp {
        (
            ErrorCode::InvalidTimestamp,
            "One or more records have been rejected due to invalid timestamp".to_string(),
        )
    } else {
        (
            ErrorCode::InvalidRecord,
            format!("One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]", errors.len(), shown.join(", ")),
        )
    };
    Err(Rejection {
        record_errors: errors,
        ..Rejection::new(code, message)
    })
}

/// Produce v3+ carries exactly one v2 batch per partition (as Kafka requires). Checks its
/// framing, size, CRC and the header fields a client may not set, and returns its view.
fn validate_single_batch(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<BatchView<'_>, Rejection> {
    use ErrorCode::{CorruptMessage, InvalidRecord, MessageTooLarge};
    if records.is_empty() {
        return Err(Rejection::new(
            InvalidRecord,
            "Produce requests must contain exactly one record batch per partition.",
        ));
    }
    let view = BatchView::parse(records).map_err(|e| match e {
        BatchError::UnsupportedMagic(m) => Rejection::new(InvalidRecord, format!("Produce requests are only allowed to contain record batches with magic version 2, not {m}.")),
        other => Rejection::new(CorruptMessage, format!("Record batch is corrupt: {other}")),
    })?;
    if view.size() > max_message_bytes {
        return Err(Rejection::new(
            MessageTooLarge,
            format!(
            "The record batch is {} bytes, larger than max.message.bytes ({max_message_bytes}).",
            view.size()
        ),
        ));
    }
    if view.size() != records.len() {
        return Err(Rejection::new(
            InvalidRecord,
            "Produce requests must contain exactly one record batch per partition.",
        ));
    }
    view.verify_crc()
        .map_err(|e| Rejection::new(CorruptMessage, format!("Record batch is corrupt: {e}")))?;
    if view.base_offset() != 0 {
        return Err(Rejection::new(
            InvalidRecord,
            "The base offset of a produced record batch must be 0.",
        ));
    }
    if view.compression().is_none() {
        return Err(Rejection::new(
            InvalidRecord,
            "Unknown compression codec in record batch attributes.",
        ));
    }
    if view.is_control() {
        return Err(Rejection::new(
            InvalidRecord,
            "Clients may not write control batches.",
        ));
    }
    let count = view.records_count();
    if count < 1 || i64::from(count) != i64::from(view.last_offset_delta()) + 1 {
        return Err(Rejection::new(
            InvalidRecord,
            format!(
                "Record count {count} does not match last offset delta {}.",
                view.last_offset_delta()
            ),
        ));
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::testing::simple_batch;

    #[test]
    fn schema_validation_wants_a_registered_id_and_lets_tombstones_pass() {
        let allowed: std::collections::HashSet<i32> = [7].into();
        let head = |len: i32, bytes: [u8; 5]| validate::Head { len, bytes };
        let check = |h: validate::Head| SchemaIds::check(Some(&allowed), &h, "value", "loans");
        assert_eq!(check(head(9, [0, 0, 0, 0, 7])), None, "registered");
        assert!(check(head(9, [0, 0, 0, 0, 8]))
            .unwrap()
            .contains("schema id 8 is not registered under subject loans-value"));
        assert!(
            check(head(9, [1, 0, 0, 0, 7])).is_some(),
            "wrong magic byte"
        );
        assert!(
            check(head(3, [0, 0, 0, 0, 0])).is_some(),
            "too short for an id"
        );
        assert_eq!(check(head(-1, [0; 5])), None, "a tombstone");
        assert_eq!(
            SchemaIds::check(None, &head(3, [9; 5]), "value", "loans"),
            None,
            "validation off"
        );
    }

    fn code(r: Result<BatchView<'_>, Rejection>) -> Option<ErrorCode> {
        r.err().map(|r| r.code)
    }

    #[test]
    fn batch_validation_maps_to_kafka_errors() {
        let good = simple_batch(1, 3);
        assert!(validate_single_batch(&good, 1 << 20).is_ok());
        assert_eq!(
            code(validate_single_batch(&good, good.len() - 1)),
            Some(ErrorCode::MessageTooLarge)
        );
        assert_eq!(
            code(validate_single_batch(&[], 100)),
            Some(ErrorCode::InvalidRecord)
        );
        assert_eq!(
            code(validate_single_batch(&good[..good.len() - 2], 1 << 20)),
            Some(ErrorCode::CorruptMessage)
        );

        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            code(validate_single_batch(&flipped, 1 << 20)),
            Some(ErrorCode::CorruptMessage)
        );

        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert_eq!(
            code(validate_single_batch(&two, 1 << 20)),
            Some(ErrorCode::InvalidRecord)
        );

        let mut offset = good.clone();
        batch::set_base_offset(&mut offset, 5);
        assert_eq!(
            code(validate_single_batch(&offset, 1 << 20)),
            Some(ErrorCode::InvalidRecord)
        );

        let mut magic = good.clone();
        magic[16] = 1;
        assert_eq!(
            code(validate_single_batch(&magic, 1 << 20)),
            Some(ErrorCode::InvalidRecord)
        );
    }
}
