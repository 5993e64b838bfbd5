//! AlterConfigs (key 33): replaces every config of a topic with the ones given (configs not
//! named return to their defaults), validated as a whole, written to the metadata file and in
//! effect without a restart. `validate_only` checks without changing anything. On the broker
//! resource it replaces the dynamic broker configs of this broker (its node id) or the
//! cluster default (empty name): see `crate::dynamic_config`; settings that cannot change at
//! runtime answer INVALID_REQUEST.

use std::collections::BTreeMap;

use brook_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use brook_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{Ctx, Operation, ResourceType};
use crate::dynamic_config::Scope;
use crate::topic_config::{AlterOp, TopicConfig};
use crate::topics::TopicError;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// What a request asks of a resource's configs.
pub(crate) enum Change<'a> {
    /// AlterConfigs: exactly these.
    Replace(Vec<(&'a str, Option<&'a str>)>),
    /// IncrementalAlterConfigs: these operations on the current ones.
    Incremental(&'a [(&'a str, AlterOp<'a>)]),
}

/// Validates `change` of one resource and, unless `validate_only`, applies it.
pub(crate) fn apply(
    ctx: &Ctx<'_>,
    resource_type: i8,
    name: &str,
    change: Change<'_>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let state = ctx.state;
    match resource_type {
        RESOURCE_TOPIC if !ctx.allowed(Operation::AlterConfigs, ResourceType::Topic, name) => {
            return Err((
                ErrorCode::TopicAuthorizationFailed,
                "Topic authorization failed.".into(),
            ))
        }
        RESOURCE_BROKER if !ctx.allowed_on_cluster(Operation::AlterConfigs) => {
            return Err((
                ErrorCode::ClusterAuthorizationFailed,
                "Cluster authorization failed.".into(),
            ))
        }
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => return alter_broker(ctx, name, change, validate_only),
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Unsupported resource type {other}"),
            ))
        }
    }
    let topic = state.topics.get(name).ok_or_else(|| {
        (
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic {name} does not exist"),
        )
    })?;
    let invalid =
        |e: crate::topic_config::ConfigValueError| (ErrorCode::InvalidConfig, e.to_string());
    let config = match change {
        Change::Replace(pairs) => TopicConfig::from_pairs(pairs).map_err(invalid)?,
        Change::Incremental(ops) => topic
            .config()
            .with_changes(&state.current(), ops)
            .map_err(invalid)?,
    };
    if validate_only {
        return Ok(());
    }
    state
        .topics
        .alter_config(name, config)
        .map_err(|e| match e {
            TopicError::Unknown(_) => (ErrorCode::UnknownTopicOrPartition, e.to_string()),
            other => {
                tracing::error!(topic = name, error = %other, "changing topic configs failed");
                (ErrorCode::UnknownServerError, other.to_string())
            }
        })
}

/// The layer a broker resource name stands for: the cluster default ("") or this broker.
pub(crate) fn broker_scope(ctx: &Ctx<'_>, name: &str) -> Result<Scope, (ErrorCode, String)> {
    let node = ctx.state.node_id();
    if name.is_empty() {
        Ok(Scope::ClusterDefault)
    } else if name == node.to_string() {
        Ok(Scope::Broker)
    } else {
        Err((
            ErrorCode::InvalidRequest,
            format!("Unexpected broker id, expected {node}"),
        ))
    }
}

/// A change of dynamic broker configs; in effect for every topic at once.
fn alter_broker(
    ctx: &Ctx<'_>,
    name: &str,
    change: Change<'_>,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    let state = ctx.state;
    let scope = broker_scope(ctx, name)?;
    let wanted: BTreeMap<String, String> = match change {
        Change::Replace(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
            .collect(),
        Change::Incremental(ops) => {
            let mut layer = state.dynamic.layer(scope);
            for (key, op) in ops {
                match op {
                    AlterOp::Set(value) => {
                        layer.insert(key.to_string(), value.to_string());
                    }
                    AlterOp::Delete => {
                        layer.remove(*key);
                    }
                    AlterOp::Append(_) | AlterOp::Subtract(_) => {
                        return Err((
                            ErrorCode::InvalidConfig,
                            format!("Config value append or subtract is not allowed for config key {key}: it is not a list"),
                        ))
                    }
                }
            }
            layer
        }
    };
    let effective = state.dynamic.replace(scope, wanted, validate_only)?;
    if !validate_only {
        state.topics.reconfigure(effective);
    }
    Ok(())
}

pub(crate) async fn handle(ctx: &Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .iter()
        .map(|r| {
            let pairs = r
                .configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref()))
                .collect();
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match apply(
                ctx,
                r.resource_type,
                &r.resource_name,
                Change::Replace(pairs),
                req.validate_only,
            ) {
                Ok(()) => resp.with_error_message(None),
                Err((code, message)) => resp
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
