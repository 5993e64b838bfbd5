//! ListOffsets (key 2): offsets by special timestamps (latest, earliest, max timestamp) and
//! exact timestamp lookups.
//!
//! A lookup by timestamp returns the first offset whose record timestamp is at or after the
//! target. The log finds the first batch whose max timestamp reaches the target; that batch's
//! records are then read (decompressed if needed) to find the exact record, as Kafka does.
//! The batch is taken from the log under the partition lock (a zero-copy slice), and its
//! records are walked after the lock is released; a compressed batch is walked on the
//! blocking pool, through a bounded, streaming decompressor, so it never holds up the async
//! workers or other clients of the partition.

use brook_protocol::batch::{BatchView, Compression};
use brook_protocol::kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use brook_protocol::kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::validate::check_records;
use brook_protocol::ErrorCode;
use brook_storage::PartitionLog;
use bytes::Bytes;

use super::metadata::LEADER_EPOCH;
use super::{Ctx, Operation, ResourceType};

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
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = ctx.state.topics.get(&t.name);
        let refused = !ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let failed = |code: ErrorCode| {
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code.code())
                    .with_offset(-1)
                    .with_timestamp(-1)
            };
            if refused {
                partitions.push(failed(ErrorCode::TopicAuthorizationFailed));
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                partitions.push(failed(ErrorCode::UnknownTopicOrPartition));
                continue;
            };
            if p.current_leader_epoch > LEADER_EPOCH {
                partitions.push(failed(ErrorCode::UnknownLeaderEpoch));
                continue;
            }
            let located = partition.with_log_and_producers(|log, producers| {
                // read_committed consumers may read only up to the last stable offset.
                let latest = if read_committed {
                    producers.last_stable_offset(log.log_end_offset())
                } else {
                    log.log_end_offset()
                };
                locate(log, p.timestamp, latest)
            });
            match search(located).await {
                Ok(found) => partitions.push(
                    resp.with_offset(found.offset)
                        .with_timestamp(found.timestamp)
                        .with_leader_epoch(if found.offset >= 0 { LEADER_EPOCH } else { -1 }),
                ),
                Err(e) => {
                    tracing::error!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "offset lookup failed");
                    partitions.push(failed(ErrorCode::KafkaStorageError));
                }
            }
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// What the log says under its lock: an answer, or a batch whose records hold it.
enum Located {
    Found(Found),
    /// The first record at or after the target timestamp, in this batch.
    AtOrAfter(Bytes, i64),
    /// The record with the largest timestamp, in this batch.
    Max(Bytes),
}

/// Finishes a lookup outside the partition lock; compressed batches on the blocking pool.
async fn search(located: Result<Located, LookupError>) -> Result<Found, LookupError> {
    let located = located?;
    let compressed = match &located {
        Located::Found(found) => return Ok(*found),
        Located::AtOrAfter(b, _) | Located::Max(b) => BatchView::parse(b)
            .map(|v| v.compression() != Some(Compression::None))
            .unwrap_or(false),
    };
    let run = move || match located {
        Located::Found(found) => Ok(found),
        Located::AtOrAfter(b, target) => first_record_at_or_after(&b, target),
        Located::Max(b) => max_record(&b),
    };
    if compressed {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| LookupError::Batch(e.to_string()))?
    } else {
        run()
    }
}

/// Why a lookup failed: the log could not be read or a stored batch does not decode.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Storage(#[from] brook_storage::StorageError),
    #[error("stored batch does not decode: {0}")]
    Batch(String),
}

/// `latest`: what LATEST answers (the log end, or the last stable offset for read_committed).
fn locate(log: &PartitionLog, timestamp: i64, latest: i64) -> Result<Located, LookupError> {
    let at = |offset| {
        Located::Found(Found {
            offset,
            timestamp: -1,
        })
    };
    Ok(match timestamp {
        LATEST => at(latest),
        EARLIEST | EARLIEST_LOCAL => at(log.log_start_offset()),
        // No tiered storage: nothing is pending upload or tiered.
        EARLIEST_PENDING_UPLOAD | LATEST_TIERED => Located::Found(NOT_FOUND),
        MAX_TIMESTAMP => match log.batch_with_max_timestamp()? {
            Some(b) => Located::Max(b),
            None => Located::Found(NOT_FOUND),
        },
        target => match log.batch_for_timestamp(target)? {
            Some(b) => Located::AtOrAfter(b, target),
            None => Located::Found(NOT_FOUND),
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
    // Streams through the records (decompressing with a bound), holding none of them.
    let mut going = true;
    check_records(&view, MAX_DECOMPRESSED, |r| {
        if going {
            going = f(view.base_offset() + i64::from(r.index), r.timestamp);
        }
    })
    .map_err(|e| bad(e.to_string()))?;
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
