//! DeleteRecords (key 21): move a partition's log start offset forward. Records below it
//! are no longer readable (Fetch answers OFFSET_OUT_OF_RANGE, ListOffsets earliest returns the
//! new start), and the segments wholly below it are removed.

use brook_protocol::kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use brook_protocol::kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;
use brook_storage::StorageError;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// "Up to the high watermark", as Kafka's admin clients send it.
const HIGH_WATERMARK: i64 = -1;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.state.topics.get(&t.name);
            let refused = !ctx.allowed(Operation::Delete, ResourceType::Topic, &t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    if refused {
                        return result
                            .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                            .with_low_watermark(-1);
                    }
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return result
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            .with_low_watermark(-1);
                    };
                    match partition.with_log(|log| delete_before(log, p.offset)) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(code) => result.with_error_code(code.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Returns the new low watermark.
fn delete_before(log: &mut brook_storage::PartitionLog, offset: i64) -> Result<i64, ErrorCode> {
    let offset = if offset == HIGH_WATERMARK {
        log.log_end_offset()
    } else {
        offset
    };
    if offset < 0 || offset > log.log_end_offset() {
        return Err(ErrorCode::OffsetOutOfRange);
    }
    // Kafka never moves the start backwards: an offset below it changes nothing.
    if offset <= log.log_start_offset() {
        return Ok(log.log_start_offset());
    }
    log.delete_records_before(offset).map_err(|e| match e {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        other => {
            tracing::error!(error = %other, "DeleteRecords failed");
            ErrorCode::KafkaStorageError
        }
    })
}
