//! Produce (key 0): validate each partition's batch, stamp it, append it.
//!
//! Batches stay bytes: the header and CRC32C are checked, the base offset (by the log) and
//! the partition leader epoch are patched (both outside the CRC), and the bytes are appended.
//! Records are never decoded here. With acks=all the response waits until the batch is
//! fsynced, by a group-commit round shared with every other producer of the partition (see
//! [`crate::durability`]); acks=1 and 0 leave that to the background flush. Versions 0-2 are advertised for old librdkafka feature
//! detection and answered with UNSUPPORTED_VERSION by the connection (see
//! `brook_protocol::legacy_produce`).

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{self, BatchError, BatchView};
use brook_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use brook_protocol::kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;
use bytes::Bytes;
use uuid::Uuid;

use super::metadata::LEADER_EPOCH;
use super::{now_ms, Ctx};
use crate::durability::{self, WaitError};
use crate::producers::{ProducerBatch, Verdict};
use crate::state::BrokerState;
use crate::topics::{Partition, Topic};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 11 };

/// Why a partition's records were refused.
#[derive(Debug)]
struct Rejection {
    code: ErrorCode,
    message: String,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

pub(crate) async fn handle(ctx: &Ctx<'_>, req: ProduceRequest) -> ProduceResponse {
    begin(ctx, req).finish().await
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

/// Appends every batch of the request now and starts the fsync rounds acks=all needs.
pub(crate) fn begin(ctx: &Ctx<'_>, req: ProduceRequest) -> PendingProduce {
    let state = ctx.state;
    let acks_ok = matches!(req.acks, -1..=1);
    let wait_for_fsync = req.acks == -1 && !state.config.unsafe_disable_fsync;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));

    // Append everything first, so that one fsync round can cover all partitions' batches.
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = state.topics.get(&topic_data.name);
        let results: Vec<(i32, Result<Appended, Rejection>)> = topic_data
            .partition_data
            .into_iter()
            .map(|p| {
                let result = if acks_ok {
                    produce_partition(state, topic.as_deref(), p.index, p.records)
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
                            resp.with_error_code(r.code.code())
                                .with_base_offset(-1)
                                .with_log_start_offset(-1)
                                .with_error_message(Some(StrBytes::from_string(r.message)))
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
    base_offset: i64,
    /// One past the last offset written: durable once the log's durable offset reaches it.
    end_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

fn produce_partition(
    state: &BrokerState,
    topic: Option<&Topic>,
    index: i32,
    records: Option<Bytes>,
) -> Result<Appended, Rejection> {
    let unknown = || {
        Rejection::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    };
    let topic = topic.ok_or_else(unknown)?;
    if topic.name == crate::groups::OFFSETS_TOPIC {
        // Only the group coordinator writes there, as in Kafka.
        return Err(Rejection::new(
            ErrorCode::InvalidTopicException,
            "Cannot append to internal topic __consumer_offsets",
        ));
    }
    let partition = topic.partition(index).ok_or_else(unknown)?;
    let config = topic.config();
    let records = records.unwrap_or_default();
    let view = validate_single_batch(&records, config.max_message_bytes(&state.config))?;
    let record_count = i64::from(view.records_count());
    let producer = ProducerBatch::of(&view);

    let mut data = records.to_vec();
    batch::set_partition_leader_epoch(&mut data, LEADER_EPOCH);
    let now = now_ms();
    let log_append_time = if config.log_append_time(&state.config) {
        batch::set_log_append_time(&mut data, now);
        now
    } else {
        -1
    };
    let outcome = partition.with_log_and_producers(|log, producers| {
        if let Some(p) = &producer {
            match producers.check(p) {
                Err(e) => return Err(Rejection::new(e.code, e.message)),
                // A retry of a batch already written: answer with its original offset.
                Ok(Verdict::Duplicate {
                    first_offset,
                    last_offset,
                }) => {
                    return Ok((first_offset, last_offset + 1, log.log_start_offset(), true));
                }
                Ok(Verdict::Append) => {}
            }
        }
        let info = log.append(&mut data, now).map_err(|e| {
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
            false,
        ))
    });
    let (base_offset, end_offset, log_start_offset, duplicate) = outcome?;
    if duplicate {
        tracing::debug!(topic = %topic.name, partition = index, base_offset, "duplicate batch acknowledged with its original offset");
        return Ok(Appended {
            partition,
            base_offset,
            end_offset,
            log_append_time,
            log_start_offset,
        });
    }
    if !state.config.unsafe_disable_fsync {
        let (records, bytes) = partition
            .durability
            .note_append(record_count, records.len() as u64);
        if records >= config.flush_messages(&state.config)
            || bytes >= durability::flush_bytes(&state.config)
        {
            durability::request_sync(&partition);
        }
    }
    Ok(Appended {
        partition,
        base_offset,
        end_offset,
        log_append_time,
        log_start_offset,
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
