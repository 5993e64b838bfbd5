//! CreateAcls (key 30): adds ACL bindings, durable before the answer. Needs ALTER on the
//! cluster; without an authorizer every creation answers SECURITY_DISABLED, as Kafka does.

use brook_protocol::kafka_protocol::messages::create_acls_response::AclCreationResult;
use brook_protocol::kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::acl_common::refused;
use super::Ctx;
use crate::auth::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};

/// v0 has no pattern type: its patterns and filters are LITERAL (the codec fills it in), as
/// in Kafka before 4.0 removed it (KIP-896); older clients that know only v0 still send it.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let refuse_all = |code: ErrorCode, message: &str| {
        CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| failed(code, message.to_string()))
                .collect(),
        )
    };
    if let Some((code, message)) = refused(ctx, Operation::Alter) {
        return refuse_all(code, message);
    }
    let outcomes: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or_else(|| format!("Invalid resource type {}", c.resource_type))?,
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or_else(|| format!("Invalid pattern type {}", c.resource_pattern_type))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: Operation::from_code(c.operation)
                    .ok_or_else(|| format!("Invalid operation {}", c.operation))?,
                permission: Permission::from_code(c.permission_type)
                    .ok_or_else(|| format!("Invalid permission type {}", c.permission_type))?,
            };
            binding.validate().map(|()| binding)
        })
        .collect();
    let valid: Vec<AclBinding> = outcomes.iter().filter_map(|o| o.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        ctx.state.security.authorizer.create(valid)
    };
    let results = outcomes
        .into_iter()
        .map(|o| match (o, &stored) {
            (Err(reason), _) => failed(ErrorCode::InvalidRequest, reason),
            (Ok(_), Err(e)) => {
                tracing::error!(error = %e, "writing ACLs failed");
                failed(
                    ErrorCode::UnknownServerError,
                    format!("ACLs not stored: {e}"),
                )
            }
            (Ok(_), Ok(())) => AclCreationResult::default().with_error_message(None),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn failed(code: ErrorCode, message: String) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}
