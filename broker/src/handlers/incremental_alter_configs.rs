//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT (the last two for list
//! configs such as `cleanup.policy`) on a topic's configs, validated as a whole, written to
//! the metadata file and in effect without a restart (see `TopicRegistry::alter_config`).
//! `validate_only` checks without changing anything. On the broker resource: SET and DELETE
//! of dynamic broker configs (`crate::dynamic_config`).

use brook_protocol::kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use brook_protocol::kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::alter_configs::{apply, Change};
use super::Ctx;
use crate::topic_config::AlterOp;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .iter()
        .map(|r| {
            let ops: Result<Vec<(&str, AlterOp<'_>)>, String> = r
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_deref().unwrap_or("");
                    let op = match c.config_operation {
                        0 => AlterOp::Set(value),
                        1 => AlterOp::Delete,
                        2 => AlterOp::Append(value),
                        3 => AlterOp::Subtract(value),
                        other => return Err(format!("Unknown config operation {other}")),
                    };
                    Ok((c.name.as_str(), op))
                })
                .collect();
            let outcome = match ops {
                Ok(ops) => apply(
                    ctx,
                    r.resource_type,
                    &r.resource_name,
                    Change::Incremental(&ops),
                    req.validate_only,
                ),
                Err(message) => Err((ErrorCode::InvalidRequest, message)),
            };
            let resp = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => resp.with_error_message(None),
                Err((code, message)) => resp
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
