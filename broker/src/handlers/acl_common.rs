//! What CreateAcls, DescribeAcls and DeleteAcls share: reading filters off the wire.

use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;

use super::Ctx;

use crate::auth::acl::{AclFilter, Operation, PatternType, Permission, ResourceType};

/// A filter's wire fields (DescribeAcls' request and DeleteAcls' filters have the same).
pub(crate) struct FilterFields<'a> {
    pub(crate) resource_type: i8,
    pub(crate) resource_name: &'a Option<StrBytes>,
    pub(crate) pattern_type: i8,
    pub(crate) principal: &'a Option<StrBytes>,
    pub(crate) host: &'a Option<StrBytes>,
    pub(crate) operation: i8,
    pub(crate) permission: i8,
}

/// The filter, or why it is invalid (INVALID_REQUEST).
pub(crate) fn filter(f: FilterFields<'_>) -> Result<AclFilter, String> {
    let text = |s: &Option<StrBytes>| s.as_ref().map(|s| s.to_string());
    Ok(AclFilter {
        resource_type: ResourceType::from_code(f.resource_type)
            .ok_or_else(|| format!("unknown resource type {}", f.resource_type))?,
        resource_name: text(f.resource_name),
        pattern_type: PatternType::from_code(f.pattern_type)
            .ok_or_else(|| format!("unknown pattern type {}", f.pattern_type))?,
        principal: text(f.principal),
        host: text(f.host),
        operation: Operation::from_code(f.operation)
            .ok_or_else(|| format!("unknown operation {}", f.operation))?,
        permission: Permission::from_code(f.permission)
            .ok_or_else(|| format!("unknown permission type {}", f.permission))?,
    })
}

/// Why an ACL API is refused before it is looked at: no authorizer (SECURITY_DISABLED, as
/// Kafka answers), or the client may not do `operation` on the cluster.
pub(crate) fn refused(ctx: &Ctx<'_>, operation: Operation) -> Option<(ErrorCode, &'static str)> {
    if !ctx.state.security.authorizer.enabled() {
        Some((ErrorCode::SecurityDisabled, "No Authorizer is configured."))
    } else if !ctx.allowed_on_cluster(operation) {
        Some((
            ErrorCode::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}
