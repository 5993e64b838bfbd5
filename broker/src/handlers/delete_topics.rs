//! DeleteTopics (key 20): remove topics by name (v1-5) or by name or id (v6), files included.
//! Internal topics are refused with INVALID_TOPIC_EXCEPTION: deleting `__consumer_offsets`
//! would lose every committed offset.

use brook_protocol::kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use brook_protocol::kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;
use uuid::Uuid;

use super::{Ctx, Operation, ResourceType};
use crate::topics::TopicError;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.version() >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| delete_one(ctx, name, id))
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_one(ctx: &Ctx<'_>, name: Option<TopicName>, id: Uuid) -> DeletableTopicResult {
    let topics = &ctx.state.topics;
    let result = DeletableTopicResult::default()
        .with_name(name.clone())
        .with_topic_id(id);
    // A non-zero topic id names the topic (v6); the name is then null or empty.
    let (topic, missing) = match &name {
        Some(n) if id.is_nil() => (topics.get(n), ErrorCode::UnknownTopicOrPartition),
        _ => (topics.get_by_id(id), ErrorCode::UnknownTopicId),
    };
    // DELETE on the topic; a name is checked before whether it exists, as Kafka does.
    let refused = |name: &str| !ctx.allowed(Operation::Delete, ResourceType::Topic, name);
    let denied = |result: DeletableTopicResult| {
        result
            .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
    };
    if let Some(n) = name.as_ref().filter(|_| id.is_nil()) {
        if refused(n) {
            return denied(result);
        }
    }
    let Some(topic) = topic else {
        return result
            .with_error_code(missing.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "This server does not host this topic.",
            )));
    };
    let result = result
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id);
    if refused(&topic.name) {
        return denied(result);
    }
    match topics.delete(&topic.name) {
        Ok(_) => result,
        Err(TopicError::Unknown(_)) => result.with_error_code(missing.code()),
        Err(e @ TopicError::Internal(_)) => result
            .with_error_code(ErrorCode::InvalidTopicException.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        Err(e) => {
            tracing::error!(topic = %topic.name, error = %e, "deleting topic failed");
            result
                .with_error_code(ErrorCode::KafkaStorageError.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string())))
        }
    }
}
