//! JoinGroup (key 11): a member joins (or rejoins) a group and waits for the rebalance.

use brook_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use brook_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};
use crate::groups::group::{JoinRequest, JoinResult, Reply};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

/// From v4 an unknown member first gets MEMBER_ID_REQUIRED (KIP-394).
const REQUIRE_MEMBER_ID_FROM: i16 = 4;
/// From v9 a rejoining static leader may be told to skip the assignment (KIP-814).
const SKIP_ASSIGNMENT_FROM: i16 = 9;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version();
    let member_id = req.member_id.to_string();
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        return response(JoinResult::error(
            ErrorCode::GroupAuthorizationFailed,
            &member_id,
        ));
    }
    // v0 has no rebalance timeout: it is the session timeout.
    let rebalance_timeout_ms = if version == 0 {
        req.session_timeout_ms
    } else {
        req.rebalance_timeout_ms
    };
    let join = JoinRequest {
        member_id: member_id.clone(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: ctx.client_id().to_string(),
        client_host: ctx.client_host(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= REQUIRE_MEMBER_ID_FROM,
        supports_skip_assignment: version >= SKIP_ASSIGNMENT_FROM,
    };
    let result = match ctx.state.groups.join(&req.group_id, join) {
        Reply::Now(r) => r,
        // The sender is dropped only if the group went away while waiting.
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| JoinResult::error(ErrorCode::UnknownMemberId, &member_id)),
    };
    response(result)
}

fn response(r: JoinResult) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(Some(StrBytes::from_string(
            r.protocol_name.unwrap_or_default(),
        )))
        .with_leader(StrBytes::from_string(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
