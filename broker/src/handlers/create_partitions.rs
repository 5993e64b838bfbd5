//! CreatePartitions (key 37): raise a topic's partition count. Internal topics are refused
//! (INVALID_TOPIC_EXCEPTION); a request adding more than `max.partitions.per.request`
//! partitions in all is refused whole (POLICY_VIOLATION).

use brook_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use brook_protocol::kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use brook_protocol::kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{duplicate_names, Ctx, Operation, ResourceType};
use crate::topics::TopicError;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.as_str()));
    let added: i64 = req
        .topics
        .iter()
        .map(|t| {
            let current = ctx
                .state
                .topics
                .get(&t.name)
                .map_or(0, |topic| topic.partition_count());
            i64::from(t.count.saturating_sub(current).max(0))
        })
        .sum();
    let too_many = added > ctx.state.config.max_partitions_per_request;
    let results = req
        .topics
        .iter()
        .map(|t| {
            let outcome = if !ctx.allowed(Operation::Alter, ResourceType::Topic, &t.name) {
                Err((
                    ErrorCode::TopicAuthorizationFailed,
                    "The topic authorization is failed.".to_string(),
                ))
            } else if too_many {
                Err((
                    ErrorCode::PolicyViolation,
                    super::create_topics::TOO_MANY_PARTITIONS.to_string(),
                ))
            } else if duplicates.contains(t.name.as_str()) {
                Err((
                    ErrorCode::InvalidRequest,
                    "Duplicate topic in request.".to_string(),
                ))
            } else {
                add_partitions(ctx, t, req.validate_only)
            };
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

fn add_partitions(
    ctx: &Ctx<'_>,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let topics = &ctx.state.topics;
    let node = ctx.state.node_id();
    let topic = topics.get(&t.name).ok_or_else(|| {
        (
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{}' does not exist.", t.name.as_str()),
        )
    })?;
    if crate::topics::is_internal(&topic.name) {
        return Err((
            ErrorCode::InvalidTopicException,
            TopicError::Internal(topic.name.clone()).to_string(),
        ));
    }
    let current = topic.partition_count();
    if t.count <= current {
        let message = if t.count == current {
            format!("Topic already has {current} partitions.")
        } else {
            format!(
                "Topic currently has {current} partitions, which is higher than the requested {}.",
                t.count
            )
        };
        return Err((ErrorCode::InvalidPartitions, message));
    }
    if let Some(assignments) = t.assignments.as_ref().filter(|a| !a.is_empty()) {
        let expected = (t.count - current) as usize;
        if assignments.len() != expected
            || !assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node)
        {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!("Expected {expected} assignments, each on broker {node} only."),
            ));
        }
    }
    if validate_only {
        return Ok(());
    }
    topics.create_partitions(&t.name, t.count).map_err(|e| match e {
        TopicError::InvalidPartitions(m) => (ErrorCode::InvalidPartitions, m),
        TopicError::Unknown(_) => (ErrorCode::UnknownTopicOrPartition, e.to_string()),
        TopicError::Internal(_) => (ErrorCode::InvalidTopicException, e.to_string()),
        other => {
            tracing::error!(topic = %t.name.as_str(), error = %other, "adding partitions failed");
            (ErrorCode::KafkaStorageError, other.to_string())
        }
    })
}
