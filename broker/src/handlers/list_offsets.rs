//! ListOffsets (key 2): offsets by special timestamps (latest, earliest, max timestamp) and
//! exact timestamp lookups.
//!
//! A lookup by timestamp returns the first offset whose record timestamp is at or after the
//! target. The log finds the first batch whose max timestamp reaches the target; that batch's
//! records are then read (decompressed if needed) to find the exact record, as Kafka does.

use brook_protocol::batch::BatchView;
use brook_protocol::compression::decompress;
use brook_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use brook_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::records::Records;
use brook_protocol::ErrorCode;
use brook_storage::PartitionLog;

use super::metadata::LEADER_EPOCH;
use super::Ctx;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 10 };

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
const LATEST_TIERED: i64 = -6;

/// Upper bound on a batch's decompressed records when searching it.
const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// An offset and its record's timestamp, or (-1, -1) for "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    offset: i64,
    timestamp: i64,
}

const NOT_FOUND: Found = Found {
    offset: -1,
    timestamp: -1,
};

pub(crate) async fn handle(ctx: &Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.state.topics.get(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        return resp
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            .with_offset(-1)
                            .with_timestamp(-1);
                    };
                    if p.current_leader_epoch > LEADER_EPOCH {
                        return resp.with_error_code(ErrorCode::UnknownLeaderEpoch.code()).with_offset(-1).with_timestamp(-1);
                    }
                    match partition.with_log(|log| lookup(log, p.timestamp)) {
                        Ok(found) => resp
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            .with_leader_epoch(if found.offset >= 0 { LEADER_EPOCH } else { -1 }),
                        Err(e) => {
                            tracing::error!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "offset lookup failed");
                            resp.with_error_code(ErrorCode::KafkaStorageError.code()).with_offset(-1).with_timestamp(-1)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Why a lookup failed: the log could not be read or a stored batch does not decode.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Storage(#[from] brook_storage::StorageError),
    #[error("stored batch does not decode: {0}")]
    Batch(String),
}

fn lookup(log: &PartitionLog, timestamp: i64) -> Result<Found, LookupError> {
    let at = |offset| Found {
        offset,
        timestamp: -1,
    };
    Ok(match timestamp {
        LATEST => at(log.log_end_offset()),
        EARLIEST | EARLIEST_LOCAL => at(log.log_start_offset()),
        // No tiered storage: nothing is pending upload or tiered.
        EARLIEST_PENDING_UPLOAD | LATEST_TIERED => NOT_FOUND,
        MAX_TIMESTAMP => match log.batch_with_max_timestamp()? {
            Some(b) => max_record(&b)?,
            None => NOT_FOUND,
        },
        target => match log.batch_for_timestamp(target)? {
            Some(b) => first_record_at_or_after(&b, target)?,
            None => NOT_FOUND,
        },
    })
}

/// Visits `(offset, timestamp)` of each record in a stored batch.
fn for_each_record(bytes: &[u8], mut f: impl FnMut(i64, i64) -> bool) -> Result<(), LookupError> {
    let bad = |e: String| LookupError::Batch(e);
    let view = BatchView::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if view.is_log_append_time() {
        // Every record carries the batch's append time.
        f(view.base_offset(), view.max_timestamp());
        return Ok(());
    }
    let codec = view
        .compression()
        .ok_or_else(|| bad("unknown compression codec".into()))?;
    let data =
        decompress(codec, view.records_data(), MAX_DECOMPRESSED).map_err(|e| bad(e.to_string()))?;
    for record in Records::new(&data, view.records_count()) {
        let r = record.map_err(|e| bad(e.to_string()))?;
        let offset = view.base_offset() + i64::from(r.offset_delta);
        if !f(offset, view.base_timestamp() + r.timestamp_delta) {
            break;
        }
    }
    Ok(())
}

fn first_record_at_or_after(bytes: &[u8], target: i64) -> Result<Found, LookupError> {
    let mut found = NOT_FOUND;
    for_each_record(bytes, |offset, timestamp| {
        if timestamp >= target {
            found = Found { offset, timestamp };
            return false;
        }
        true
    })?;
    Ok(found)
}

fn max_record(bytes: &[u8]) -> Result<Found, LookupError> {
    let mut found = NOT_FOUND;
    for_each_record(bytes, |offset, timestamp| {
        if found.offset < 0 || timestamp > found.timestamp {
            found = Found { offset, timestamp };
        }
        true
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::set_base_offset;
    use brook_protocol::batch::testing::{build_batch, TestRecord};

    fn batch_with_deltas(base_offset: i64, base_ts: i64, deltas: &[i64]) -> Vec<u8> {
        let recs: Vec<_> = deltas
            .iter()
            .map(|d| TestRecord {
                timestamp_delta: *d,
                ..Default::default()
            })
            .collect();
        let mut b = build_batch(base_ts, &recs);
        set_base_offset(&mut b, base_offset);
        b
    }

    #[test]
    fn exact_lookup_inside_a_batch() {
        let b = batch_with_deltas(10, 1000, &[0, 5, 3, 9]);
        assert_eq!(
            first_record_at_or_after(&b, 1000).unwrap(),
            Found {
                offset: 10,
                timestamp: 1000
            }
        );
        assert_eq!(
            first_record_at_or_after(&b, 1004).unwrap(),
            Found {
                offset: 11,
                timestamp: 1005
            }
        );
        assert_eq!(
            first_record_at_or_after(&b, 1006).unwrap(),
            Found {
                offset: 13,
                timestamp: 1009
            }
        );
        assert_eq!(first_record_at_or_after(&b, 1010).unwrap(), NOT_FOUND);
        assert_eq!(
            max_record(&b).unwrap(),
            Found {
                offset: 13,
                timestamp: 1009
            }
        );
    }
}
