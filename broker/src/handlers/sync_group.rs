//! SyncGroup (key 14): the leader hands in the assignments; every member gets its own.

use brook_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};
use crate::groups::group::{Reply, SyncRequest, SyncResult};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
    }
    let sync = SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let result = match ctx.state.groups.sync(&req.group_id, sync) {
        Reply::Now(r) => r,
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| SyncResult::error(ErrorCode::RebalanceInProgress)),
    };
    SyncGroupResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(result.protocol_name.map(StrBytes::from_string))
        .with_assignment(result.assignment)
}
