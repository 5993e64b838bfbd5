//! Metadata (key 3): brokers, cluster id, topics with ids, partitions, leaders and epochs.
//!
//! Brook is a single node, so this broker leads every partition (leader epoch 0) and is the
//! controller. Unknown topics are created when the request allows it (always before v4) and
//! `auto.create.topics.enable` is on.

use brook_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;
use uuid::Uuid;

use super::Ctx;
use crate::topics::{validate_topic_name, Topic, TopicError};
use crate::topic_config::TopicConfig;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 13 };

/// Leader epoch of every partition: Brook never changes leaders.
pub(crate) const LEADER_EPOCH: i32 = 0;
/// "Not requested" for authorized operations fields.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let state = ctx.state;
    let version = ctx.version();
    let node = BrokerId(state.node_id());
    // Before v4 there is no flag and auto-creation is always allowed by the request.
    let allow_create = (version < 4 || req.allow_auto_topic_creation) && state.config.auto_create_topics_enable;

    let topics = match req.topics {
        // Null (v1+) or an empty list at v0 means every topic.
        None => all_topics(ctx),
        Some(t) if t.is_empty() && version == 0 => all_topics(ctx),
        Some(requested) => requested
            .into_iter()
            .map(|t| match t.name {
                Some(name) => by_name(ctx, name, allow_create),
                None => by_id(ctx, t.topic_id),
            })
            .collect(),
    };

    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(state.advertised_host.clone()))
            .with_port(state.advertised_port)])
        .with_cluster_id(Some(StrBytes::from_string(state.topics.cluster_id().to_string())))
        .with_controller_id(node)
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED)
        .with_topics(topics)
}

fn all_topics(ctx: &Ctx<'_>) -> Vec<MetadataResponseTopic> {
    ctx.state.topics.list().iter().map(|t| describe(ctx, t)).collect()
}

fn by_name(ctx: &Ctx<'_>, name: TopicName, allow_create: bool) -> MetadataResponseTopic {
    let topics = &ctx.state.topics;
    if let Some(t) = topics.get(&name) {
        return describe(ctx, &t);
    }
    let error = |code: ErrorCode| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
            .with_topic_authorized_operations(OPS_NOT_REQUESTED)
    };
    if validate_topic_name(&name).is_err() {
        return error(ErrorCode::InvalidTopicException);
    }
    if !allow_create {
        return error(ErrorCode::UnknownTopicOrPartition);
    }
    match topics.create(&name, ctx.state.config.num_partitions, TopicConfig::default()) {
        Ok(t) => describe(ctx, &t),
        // Another request created it meanwhile.
        Err(TopicError::AlreadyExists(_)) => match topics.get(&name) {
            Some(t) => describe(ctx, &t),
            None => error(ErrorCode::LeaderNotAvailable),
        },
        Err(e) => {
            tracing::warn!(topic = %name.as_str(), error = %e, "auto-creating topic failed");
            error(ErrorCode::KafkaStorageError)
        }
    }
}

fn by_id(ctx: &Ctx<'_>, id: Uuid) -> MetadataResponseTopic {
    match ctx.state.topics.get_by_id(id) {
        Some(t) => describe(ctx, &t),
        None => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ErrorCode::UnknownTopicId.code())
            .with_topic_authorized_operations(OPS_NOT_REQUESTED),
    }
}

fn describe(ctx: &Ctx<'_>, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.state.node_id());
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(matches!(topic.name.as_str(), "__consumer_offsets" | "__transaction_state"))
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
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
