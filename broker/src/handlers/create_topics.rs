//! CreateTopics (key 19): validate every topic as Kafka does, then create it (unless
//! `validate_only`). Single node: the replication factor must be 1 (or -1 for the default).
//! A request that would create more than `max.partitions.per.request` partitions in all is
//! refused whole with POLICY_VIOLATION, as Kafka's controller refuses over 10,000. Internal
//! topics are the coordinators': `__consumer_offsets` is created as the group coordinator
//! creates it, `__transaction_state` not at all from here.

use brook_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use brook_protocol::kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use brook_protocol::kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{duplicate_names, Ctx, Operation, ResourceType};
use crate::groups::OFFSETS_TOPIC;
use crate::topic_config::TopicConfig;
use crate::topics::{is_internal, validate_topic_name, TopicError};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

/// A topic refused, with Kafka's code and a message for the client.
type Refusal = (ErrorCode, String);

/// The message Kafka's controller gives for too many partitions in one request.
pub(crate) const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Partitions the request asks for in all (what each topic would get if valid).
fn requested_partitions(req: &CreateTopicsRequest, default: i32) -> i64 {
    req.topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => i64::from(default),
            (0, n) => i64::from(n.max(0)),
            (n, _) => n as i64,
        })
        .sum()
}

pub(crate) async fn handle(ctx: &Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let duplicates = duplicate_names(req.topics.iter().map(|t| t.name.as_str()));
    let too_many = requested_partitions(&req, ctx.state.current().num_partitions)
        > ctx.state.config.max_partitions_per_request;
    // CREATE on the cluster covers every topic; otherwise CREATE on each topic.
    let create_any = ctx.allowed_on_cluster(Operation::Create);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let outcome =
                if !create_any && !ctx.allowed(Operation::Create, ResourceType::Topic, &t.name) {
                    Err((
                        ErrorCode::TopicAuthorizationFailed,
                        "Authorization failed.".to_string(),
                    ))
                } else if too_many {
                    Err((ErrorCode::PolicyViolation, TOO_MANY_PARTITIONS.to_string()))
                } else if duplicates.contains(t.name.as_str()) {
                    Err((
                        ErrorCode::InvalidRequest,
                        format!(
                            "Create topics request from client contains duplicate topic {}",
                            t.name.as_str()
                        ),
                    ))
                } else {
                    create_one(ctx, t, req.validate_only)
                };
            match outcome {
                // The created topic's configs only for those who may describe them.
                Ok(created)
                    if !ctx.allowed(Operation::DescribeConfigs, ResourceType::Topic, &t.name) =>
                {
                    result
                        .with_topic_id(created.id)
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(1)
                        .with_configs(None)
                        .with_topic_config_error_code(ErrorCode::TopicAuthorizationFailed.code())
                }
                Ok(created) => result
                    .with_topic_id(created.id)
                    .with_num_partitions(created.partitions)
                    .with_replication_factor(1)
                    .with_configs(Some(
                        created
                            .config
                            .entries(&ctx.state.current())
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(StrBytes::from_static_str(e.name))
                                    .with_value(Some(StrBytes::from_string(e.value)))
                                    .with_config_source(e.source.id())
                            })
                            .collect(),
                    )),
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

struct Created {
    id: uuid::Uuid,
    partitions: i32,
    config: TopicConfig,
}

fn create_one(ctx: &Ctx<'_>, t: &CreatableTopic, validate_only: bool) -> Result<Created, Refusal> {
    let state = ctx.state;
    let node = state.node_id();
    validate_topic_name(&t.name).map_err(|e| (ErrorCode::InvalidTopicException, e.to_string()))?;
    if state.topics.get(&t.name).is_some() {
        return Err((
            ErrorCode::TopicAlreadyExists,
            format!("Topic '{}' already exists.", t.name.as_str()),
        ));
    }
    if let Some(existing) = state.topics.colliding_topic(&t.name) {
        return Err((
            ErrorCode::InvalidTopicException,
            format!(
                "Topic '{}' collides with existing topic: {existing}",
                t.name.as_str()
            ),
        ));
    }
    if is_internal(&t.name) {
        return create_internal(ctx, &t.name, validate_only);
    }
    let partitions = if t.assignments.is_empty() {
        match t.num_partitions {
            -1 => state.current().num_partitions,
            n if n > 0 => n,
            _ => {
                return Err((
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ))
            }
        }
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((ErrorCode::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into()));
        }
        let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        let consecutive = indexes.iter().enumerate().all(|(i, p)| *p == i as i32);
        let on_this_node = t
            .assignments
            .iter()
            .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
        if !consecutive || !on_this_node {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Partitions must be numbered from 0 and each placed on broker {node} only."
                ),
            ));
        }
        t.assignments.len() as i32
    };
    match t.replication_factor {
        -1 | 1 => {}
        n if n < 1 => return Err((ErrorCode::InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.".into())),
        n => return Err((ErrorCode::InvalidReplicationFactor, format!("Unable to replicate the partition {n} time(s): The target replication factor of {n} cannot be reached because only 1 broker(s) are registered."))),
    }
    let config = TopicConfig::from_pairs(
        t.configs
            .iter()
            .map(|c| (c.name.as_str(), c.value.as_deref())),
    )
    .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
    if validate_only {
        return Ok(Created {
            id: uuid::Uuid::nil(),
            partitions,
            config,
        });
    }
    match state.topics.create(&t.name, partitions, config.clone()) {
        Ok(topic) => Ok(Created {
            id: topic.id,
            partitions,
            config,
        }),
        Err(TopicError::AlreadyExists(name)) => Err((
            ErrorCode::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        )),
        Err(e @ TopicError::Collision { .. }) => {
            Err((ErrorCode::InvalidTopicException, e.to_string()))
        }
        Err(e) => {
            tracing::error!(topic = %t.name.as_str(), error = %e, "creating topic failed");
            Err((ErrorCode::KafkaStorageError, e.to_string()))
        }
    }
}

/// An internal topic named in CreateTopics: `__consumer_offsets` is created as the group
/// coordinator creates it (its partition count and configs, not the request's), and the
/// response says what exists; the others belong to coordinators not reachable from here.
fn create_internal(ctx: &Ctx<'_>, name: &str, validate_only: bool) -> Result<Created, Refusal> {
    let state = ctx.state;
    if name != OFFSETS_TOPIC {
        return Err((
            ErrorCode::InvalidRequest,
            TopicError::Internal(name.to_string()).to_string(),
        ));
    }
    if validate_only {
        return Ok(Created {
            id: uuid::Uuid::nil(),
            partitions: 1,
            config: crate::internal_log::internal_topic_config()
                .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?,
        });
    }
    state
        .groups
        .ensure_offsets_topic(&state.topics)
        .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
    let topic = state.topics.get(name).ok_or_else(|| {
        (
            ErrorCode::KafkaStorageError,
            format!("Topic '{name}' was not created."),
        )
    })?;
    Ok(Created {
        id: topic.id,
        partitions: topic.partition_count(),
        config: crate::topic_config::TopicConfig::clone(&topic.config()),
    })
}
