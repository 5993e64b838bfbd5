//! DescribeAcls (key 29): the ACL bindings a filter selects, grouped by resource pattern.
//! Needs DESCRIBE on the cluster; without an authorizer the answer is SECURITY_DISABLED.

use brook_protocol::kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource,
};
use brook_protocol::kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::acl_common::{filter, refused, FilterFields};
use super::Ctx;
use crate::auth::acl::Operation;

/// v0 has no pattern type: its patterns and filters are LITERAL (the codec fills it in), as
/// in Kafka before 4.0 removed it (KIP-896); older clients that know only v0 still send it.
pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let refuse = |code: ErrorCode, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if let Some((code, message)) = refused(ctx, Operation::Describe) {
        return refuse(code, message.into());
    }
    let filter = match filter(FilterFields {
        resource_type: req.resource_type_filter,
        resource_name: &req.resource_name_filter,
        pattern_type: req.pattern_type_filter,
        principal: &req.principal_filter,
        host: &req.host_filter,
        operation: req.operation,
        permission: req.permission_type,
    }) {
        Ok(f) => f,
        Err(reason) => return refuse(ErrorCode::InvalidRequest, reason),
    };
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in ctx.state.security.authorizer.describe(&filter) {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(b.principal.clone()))
            .with_host(StrBytes::from_string(b.host.clone()))
            .with_operation(b.operation.code())
            .with_permission_type(b.permission.code());
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == b.resource_type.code()
                && r.resource_name.as_str() == b.resource_name
                && r.pattern_type == b.pattern_type.code()
        };
        match resources.iter_mut().find(same) {
            Some(r) => r.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                    .with_pattern_type(b.pattern_type.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(resources)
}
