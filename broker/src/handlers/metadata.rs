//! Metadata (key 3): brokers, cluster id, topics with ids, partitions, leaders and epochs.
//!
//! Brook is a single node, so this broker leads every partition (leader epoch 0) and is the
//! controller. Unknown topics are created when the request allows it (always before v4) and
//! `auto.create.topics.enable` is on, at most `auto.create.topics.max.per.request` topics and
//! `max.partitions.per.request` partitions per request; `__consumer_offsets` is created as
//! the group coordinator creates it, other internal topics never.

use brook_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;
use uuid::Uuid;

use super::{Ctx, Operation, ResourceType};
use crate::auth::acl::CLUSTER_NAME;
use crate::groups::OFFSETS_TOPIC;
use crate::topic_config::TopicConfig;
use crate::topics::{is_internal, validate_topic_name, Topic, TopicError};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 13 };

/// Leader epoch of every partition: Brook never changes leaders.
pub(crate) const LEADER_EPOCH: i32 = 0;
/// "Not requested" for authorized operations fields.
pub(crate) const OPS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let state = ctx.state;
    let version = ctx.version();
    let node = BrokerId(state.node_id());
    // Before v4 there is no flag and auto-creation is always allowed by the request.
    let allow_create =
        (version < 4 || req.allow_auto_topic_creation) && state.config.auto_create_topics_enable;
    let ops = Ops {
        topic: req.include_topic_authorized_operations,
    };
    let cluster_ops = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        OPS_NOT_REQUESTED
    };

    let topics = match req.topics {
        // Null (v1+) or an empty list at v0 means every topic.
        None => all_topics(ctx, ops),
        Some(t) if t.is_empty() && version == 0 => all_topics(ctx, ops),
        Some(requested) => {
            let mut budget = allow_create.then(|| CreateBudget {
                topics: state.config.auto_create_topics_max_per_request,
                partitions: state.config.max_partitions_per_request,
            });
            requested
                .into_iter()
                // A non-zero topic id names the topic (v10+); the name is then null or empty.
                .map(|t| match t.name {
                    Some(name) if t.topic_id.is_nil() => by_name(ctx, ops, name, &mut budget),
                    _ => by_id(ctx, ops, t.topic_id),
                })
                .collect()
        }
    };

    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(ctx.listener.host.clone()))
            .with_port(ctx.listener.port)])
        .with_cluster_id(Some(StrBytes::from_string(
            state.topics.cluster_id().to_string(),
        )))
        .with_controller_id(node)
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics)
}

/// What one request may still auto-create.
struct CreateBudget {
    topics: usize,
    partitions: i64,
}

/// Whether topics' authorized operations are reported in this response.
#[derive(Clone, Copy)]
struct Ops {
    topic: bool,
}

/// Every topic the client may describe.
fn all_topics(ctx: &Ctx<'_>, ops: Ops) -> Vec<MetadataResponseTopic> {
    ctx.state
        .topics
        .list()
        .iter()
        .filter(|t| ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name))
        .map(|t| describe(ctx, ops, t))
        .collect()
}

/// A topic by name, auto-created if `budget` allows (None: creation not allowed at all).
fn by_name(
    ctx: &Ctx<'_>,
    ops: Ops,
    name: TopicName,
    budget: &mut Option<CreateBudget>,
) -> MetadataResponseTopic {
    let state = ctx.state;
    let topics = &state.topics;
    let error = |code: ErrorCode| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
            .with_topic_authorized_operations(OPS_NOT_REQUESTED)
    };
    // A topic the client may not describe is refused whether or not it exists.
    if !ctx.allowed(Operation::Describe, ResourceType::Topic, &name) {
        return error(ErrorCode::TopicAuthorizationFailed);
    }
    if let Some(t) = topics.get(&name) {
        return describe(ctx, ops, &t);
    }
    if validate_topic_name(&name).is_err() {
        return error(ErrorCode::InvalidTopicException);
    }
    let partitions = state.current().num_partitions;
    let Some(left) = budget
        .as_mut()
        .filter(|b| b.topics > 0 && b.partitions >= i64::from(partitions))
    else {
        return error(ErrorCode::UnknownTopicOrPartition);
    };
    if is_internal(&name) && name.as_str() != OFFSETS_TOPIC {
        return error(ErrorCode::UnknownTopicOrPartition);
    }
    if !ctx.allowed_on_cluster(Operation::Create)
        && !ctx.allowed(Operation::Create, ResourceType::Topic, &name)
    {
        return error(ErrorCode::TopicAuthorizationFailed);
    }
    left.topics -= 1;
    left.partitions -= i64::from(partitions);
    let created = if name.as_str() == OFFSETS_TOPIC {
        state.groups.ensure_offsets_topic(topics).and_then(|()| {
            topics
                .get(OFFSETS_TOPIC)
                .ok_or_else(|| TopicError::Unknown(OFFSETS_TOPIC.to_string()))
        })
    } else {
        topics.create(&name, partitions, TopicConfig::default())
    };
    match created {
        Ok(t) => describe(ctx, ops, &t),
        // Another request created it meanwhile.
        Err(TopicError::AlreadyExists(_)) => match topics.get(&name) {
            Some(t) => describe(ctx, ops, &t),
            None => error(ErrorCode::LeaderNotAvailable),
        },
        Err(TopicError::Collision { .. }) => error(ErrorCode::InvalidTopicException),
        Err(e) => {
            tracing::warn!(topic = %name.as_str(), error = %e, "auto-creating topic failed");
            error(ErrorCode::KafkaStorageError)
        }
    }
}

fn by_id(ctx: &Ctx<'_>, ops: Ops, id: Uuid) -> MetadataResponseTopic {
    match ctx.state.topics.get_by_id(id) {
        Some(t) if !ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name) => {
            MetadataResponseTopic::default()
                .with_topic_id(id)
                .with_error_code(ErrorCode::TopicAuthorizationFailed.code())
                .with_topic_authorized_operations(OPS_NOT_REQUESTED)
        }
        Some(t) => describe(ctx, ops, &t),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ErrorCode::UnknownTopicId.code())
            .with_topic_authorized_operations(OPS_NOT_REQUESTED),
    }
}

fn describe(ctx: &Ctx<'_>, ops: Ops, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.state.node_id());
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal(&topic.name))
        .with_topic_authorized_operations(if ops.topic {
            ctx.authorized_operations(ResourceType::Topic, &topic.name)
        } else {
            OPS_NOT_REQUESTED
        })
        .with_partitions(
            (0..topic.partition_count())
                .map(|i| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i)
                        .with_leader_id(node)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
