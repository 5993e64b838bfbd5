//! Fetch (key 1): whole batches from the logs, with long polling.
//!
//! Sessionless only (session id 0 in every response, which KIP-227 allows): each request names
//! its partitions. Size limits follow KIP-74: the first partition that returns data returns at
//! least one whole batch even if it is larger than the limits; after that, a partition
//! contributes only batches that fit in what is left of `max_bytes`, itself capped by the
//! broker's `fetch.max.bytes`. A fetch that has fewer than `min_bytes` waits up to
//! `max_wait_ms` for appends and then reads again.
//!
//! read_committed (isolation level 1) reads stop at the last stable offset (the first offset of
//! the oldest transaction still open), and the response lists the aborted transactions that
//! overlap the records returned, so that the consumer drops theirs; read_uncommitted gets no
//! list. Both get the last stable offset. Control batches (transaction markers) are returned
//! like any batch: clients skip them.
//!
//! A partition named twice is read and answered once (Kafka keys a fetch by topic-partition;
//! the later entry's offset and limit win), so a small request cannot multiply its response.

use std::collections::HashMap;
use std::time::Duration;

use brook_protocol::batch;
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use brook_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;
use brook_storage::{AbortedTxn, StorageError};
use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::{Ctx, Operation, ResourceType};
use crate::topics::Topic;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 4, max: 17 };

/// From v13 topics are named by id instead of name.
const TOPIC_IDS_FROM: i16 = 13;
/// Isolation level READ_COMMITTED.
const READ_COMMITTED: i8 = 1;
/// Record bytes a response never exceeds, whatever batch KIP-74 would return whole: room is
/// left below the largest frame size a response can state (i32::MAX) for the rest of it.
const MAX_RESPONSE_RECORDS: usize = i32::MAX as usize - 64 * 1024 * 1024;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    let replica_id = if ctx.version() >= 15 {
        req.replica_state.replica_id
    } else {
        req.replica_id
    };
    if replica_id.0 >= 0 {
        // Only consumers fetch from Brook: there are no follower replicas.
        return read_all(ctx, &req, Some(ErrorCode::NotLeaderOrFollower)).0;
    }
    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let mut appends = ctx.state.subscribe_appends();
    loop {
        appends.borrow_and_update();
        let (response, outcome) = read_all(ctx, &req, None);
        if outcome.bytes >= min_bytes || outcome.has_error || Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            changed = appends.changed() => if changed.is_err() { return response },
        }
    }
}

#[derive(Default)]
struct Outcome {
    bytes: usize,
    has_error: bool,
}

/// One topic of a fetch, with each of its partitions once (the last entry for a partition
/// wins, in the place of its first).
struct Wanted<'a> {
    topic: &'a FetchTopic,
    partitions: Vec<&'a FetchPartition>,
}

/// The request's topics and partitions without repeats, in the order first named.
fn wanted(req: &FetchRequest, by_id: bool) -> Vec<Wanted<'_>> {
    let mut out: Vec<Wanted<'_>> = Vec::with_capacity(req.topics.len());
    let mut topic_at: HashMap<(uuid::Uuid, &str), usize> = HashMap::new();
    let mut partition_at: HashMap<(usize, i32), usize> = HashMap::new();
    for ft in &req.topics {
        let key = if by_id {
            (ft.topic_id, "")
        } else {
            (uuid::Uuid::nil(), ft.topic.as_str())
        };
        let t = *topic_at.entry(key).or_insert_with(|| {
            out.push(Wanted {
                topic: ft,
                partitions: Vec::new(),
            });
            out.len() - 1
        });
        for fp in &ft.partitions {
            let partitions = &mut out[t].partitions;
            match partition_at.get(&(t, fp.partition)) {
                Some(&at) => partitions[at] = fp,
                None => {
                    partition_at.insert((t, fp.partition), partitions.len());
                    partitions.push(fp);
                }
            }
        }
    }
    out
}

fn read_all(
    ctx: &Ctx<'_>,
    req: &FetchRequest,
    forced_error: Option<ErrorCode>,
) -> (FetchResponse, Outcome) {
    let version = ctx.version();
    let by_id = version >= TOPIC_IDS_FROM;
    let mut outcome = Outcome::default();
    let max_bytes =
        usize::try_from(req.max_bytes.min(ctx.state.config.fetch_max_bytes)).unwrap_or(0);
    let read_committed = req.isolation_level == READ_COMMITTED;
    let responses = wanted(req, by_id)
        .into_iter()
        .map(
            |Wanted {
                 topic: ft,
                 partitions,
             }| {
                let topic = if by_id {
                    ctx.state.topics.get_by_id(ft.topic_id)
                } else {
                    ctx.state.topics.get(&ft.topic)
                };
                let missing_topic = if by_id {
                    ErrorCode::UnknownTopicId
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                // READ on the topic (checked before whether it exists, when named).
                let name = topic
                    .as_deref()
                    .map_or(ft.topic.as_str(), |t| t.name.as_str());
                let refused = (topic.is_some() || !by_id)
                    && !ctx.allowed(Operation::Read, ResourceType::Topic, name);
                let partitions = partitions
                    .into_iter()
                    .map(|fp| {
                        let mut data = PartitionData::default()
                            .with_partition_index(fp.partition)
                            .with_preferred_read_replica(BrokerId(-1))
                            .with_aborted_transactions(read_committed.then(Vec::new))
                            // Never null: librdkafka fails on a null record set.
                            .with_records(Some(Bytes::new()));
                        let result = match (forced_error, topic.as_deref()) {
                            (Some(code), _) => Err((code, -1, -1)),
                            (None, _) if refused => {
                                Err((ErrorCode::TopicAuthorizationFailed, -1, -1))
                            }
                            (None, None) => Err((missing_topic, -1, -1)),
                            (None, Some(t)) => {
                                let remaining = max_bytes.saturating_sub(outcome.bytes);
                                let limit = remaining
                                    .min(usize::try_from(fp.partition_max_bytes).unwrap_or(0));
                                read_partition(
                                    t,
                                    fp.partition,
                                    fp.fetch_offset,
                                    limit,
                                    outcome.bytes == 0,
                                    read_committed,
                                )
                            }
                        };
                        match result {
                            Ok(read) => {
                                outcome.bytes += read.records.len();
                                if read_committed {
                                    data = data.with_aborted_transactions(Some(
                                        read.aborted
                                            .iter()
                                            .map(|a| {
                                                AbortedTransaction::default()
                                                    .with_producer_id(ProducerId(a.producer_id))
                                                    .with_first_offset(a.first_offset)
                                            })
                                            .collect(),
                                    ));
                                }
                                data = data
                                    .with_high_watermark(read.high_watermark)
                                    .with_last_stable_offset(read.last_stable_offset)
                                    .with_log_start_offset(read.log_start_offset)
                                    .with_records(Some(read.records));
                            }
                            Err((code, hw, start)) => {
                                outcome.has_error = true;
                                data = data
                                    .with_error_code(code.code())
                                    .with_high_watermark(hw)
                                    .with_last_stable_offset(hw)
                                    .with_log_start_offset(start);
                            }
                        }
                        data
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(ft.topic.clone())
                    .with_topic_id(ft.topic_id)
                    .with_partitions(partitions)
            },
        )
        .collect();
    (FetchResponse::default().with_responses(responses), outcome)
}

struct PartitionRead {
    records: Bytes,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed: the aborted transactions overlapping the records returned.
    aborted: Vec<AbortedTxn>,
}

/// Reads one partition. `min_one`: return the first batch even if it exceeds `limit` (KIP-74).
/// `read_committed`: only below the last stable offset, with the aborted transactions the
/// consumer must drop.
fn read_partition(
    topic: &Topic,
    index: i32,
    offset: i64,
    limit: usize,
    min_one: bool,
    read_committed: bool,
) -> Result<PartitionRead, (ErrorCode, i64, i64)> {
    let partition = topic
        .partition(index)
        .ok_or((ErrorCode::UnknownTopicOrPartition, -1, -1))?;
    partition.with_log_and_producers(|log, producers| {
        let hw = log.log_end_offset();
        let lso = producers.last_stable_offset(hw);
        let start = log.log_start_offset();
        let mut chunks = log.read(offset, limit).map_err(|e| match e {
            StorageError::OffsetOutOfRange { .. } => (ErrorCode::OffsetOutOfRange, hw, start),
            other => {
                tracing::error!(topic = %topic.name, partition = index, error = %other, "read failed");
                (ErrorCode::KafkaStorageError, hw, start)
            }
        })?;
        if read_committed {
            chunks = below(chunks, lso);
        }
        let first = first_batch_size(&chunks);
        let records = if first > limit && (!min_one || first > MAX_RESPONSE_RECORDS) {
            Bytes::new()
        } else {
            concat(chunks)
        };
        let mut aborted = match (read_committed, batch::Batches::new(&records).last()) {
            (true, Some(last)) => log
                .aborted_txns(offset, last.last_offset() + 1)
                .map_err(|e| {
                    tracing::error!(topic = %topic.name, partition = index, error = %e, "reading the aborted-transaction index failed");
                    (ErrorCode::KafkaStorageError, hw, start)
                })?,
            _ => Vec::new(),
        };
        // In first-offset order: kafkajs relies on it.
        aborted.sort_by_key(|a| a.first_offset);
        Ok(PartitionRead {
            records,
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: start,
            aborted,
        })
    })
}

/// The batches of `chunks` that start below `end` (the last stable offset): a transaction
/// still open there is not read_committed data yet.
fn below(chunks: Vec<Bytes>, end: i64) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let mut keep = 0;
        for view in batch::Batches::new(&chunk) {
            if view.base_offset() >= end {
                break;
            }
            keep += view.size();
        }
        let whole = keep == chunk.len();
        if keep > 0 {
            out.push(chunk.slice(..keep));
        }
        if !whole {
            break;
        }
    }
    out
}

fn first_batch_size(chunks: &[Bytes]) -> usize {
    chunks
        .first()
        .and_then(|c| batch::total_size(c))
        .unwrap_or(0)
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                out.extend_from_slice(&c);
            }
            out.freeze()
        }
    }
}
