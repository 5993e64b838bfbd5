//! DeleteAcls (key 31): removes the bindings each filter selects and reports them, durable
//! before the answer. Needs ALTER on the cluster; without an authorizer every filter answers
//! SECURITY_DISABLED.

use brook_protocol::kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use brook_protocol::kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::acl_common::{filter, refused, FilterFields};
use super::Ctx;
use crate::auth::acl::Operation;

/// v0 has no pattern type: its patterns and filters are LITERAL (the codec fills it in), as
/// in Kafka before 4.0 removed it (KIP-896); older clients that know only v0 still send it.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let failed = |code: ErrorCode, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let refuse_all = |code: ErrorCode, message: &str| {
        DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| failed(code, message.to_string()))
                .collect(),
        )
    };
    if let Some((code, message)) = refused(ctx, Operation::Alter) {
        return refuse_all(code, message);
    }
    let parsed: Vec<Result<_, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(FilterFields {
                resource_type: f.resource_type_filter,
                resource_name: &f.resource_name_filter,
                pattern_type: f.pattern_type_filter,
                principal: &f.principal_filter,
                host: &f.host_filter,
                operation: f.operation,
                permission: f.permission_type,
            })
        })
        .collect();
    let valid: Vec<_> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let removed = match ctx.state.security.authorizer.delete(&valid) {
        Ok(removed) => removed,
        Err(e) => {
            tracing::error!(error = %e, "writing ACLs failed");
            return refuse_all(ErrorCode::UnknownServerError, "ACLs not stored");
        }
    };
    let mut removed = removed.into_iter();
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(reason) => failed(ErrorCode::InvalidRequest, reason),
            Ok(_) => {
                let matching = removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_error_message(None)
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(StrBytes::from_string(b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(StrBytes::from_string(b.principal))
                            .with_host(StrBytes::from_string(b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default()
                    .with_error_message(None)
                    .with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
