//! AlterConfigs (key 33): replaces every config of a topic with the ones given (configs not
//! named return to their defaults), validated as a whole, written to the metadata file and in
//! effect without a restart. `validate_only` checks without changing anything. Broker
//! settings are read-only here (INVALID_REQUEST): they change with the config file.

use brook_protocol::kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use brook_protocol::kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::Ctx;
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
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                ErrorCode::InvalidRequest,
                "Broker settings are read-only: they are set in the broker's config file"
                    .to_string(),
            ))
        }
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
            .with_changes(&state.config, ops)
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
