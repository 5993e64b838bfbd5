//! OffsetDelete (key 47): removes committed offsets of partitions a group no longer consumes
//! (KIP-496). Partitions of topics the group's members subscribe to are refused.

use brook_protocol::kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if !ctx.allowed(Operation::Delete, ResourceType::Group, &req.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
    }
    let mut keys = Vec::new();
    let mut unknown = Vec::new();
    let mut refused = Vec::new();
    for t in &req.topics {
        let topic = ctx.state.topics.get(&t.name);
        let readable = ctx.allowed(Operation::Read, ResourceType::Topic, &t.name);
        for p in &t.partitions {
            let exists = topic
                .as_ref()
                .is_some_and(|topic| topic.partition(p.partition_index).is_some());
            if !readable {
                refused.push((t.name.to_string(), p.partition_index));
            } else if exists {
                keys.push((t.name.to_string(), p.partition_index));
            } else {
                unknown.push((t.name.to_string(), p.partition_index));
            }
        }
    }
    let errors = match ctx.state.groups.delete_offsets(&req.group_id, &keys) {
        Ok(errors) => errors,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let key = (t.name.to_string(), p.partition_index);
                    let error = if refused.contains(&key) {
                        Some(ErrorCode::TopicAuthorizationFailed)
                    } else if unknown.contains(&key) {
                        Some(ErrorCode::UnknownTopicOrPartition)
                    } else {
                        keys.iter()
                            .position(|k| *k == key)
                            .and_then(|i| errors.get(i).copied().flatten())
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
