//! LeaveGroup (key 13): members leave; from v3 several at once (KIP-345), named by member id
//! or by group instance id.

use brook_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use brook_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;

use super::{Ctx, Operation, ResourceType};
use brook_protocol::ErrorCode;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

const BATCHED_FROM: i16 = 3;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let groups = &ctx.state.groups;
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
    }
    if ctx.version() < BATCHED_FROM {
        let members = [(req.member_id.to_string(), None)];
        let error = match groups.leave(&req.group_id, &members) {
            Ok(errors) => errors.into_iter().next().flatten(),
            Err(e) => Some(e),
        };
        return LeaveGroupResponse::default().with_error_code(error.map_or(0, |e| e.code()));
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    match groups.leave(&req.group_id, &members) {
        Ok(errors) => LeaveGroupResponse::default().with_members(
            req.members
                .into_iter()
                .zip(errors)
                .map(|(m, e)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(e.map_or(0, |e| e.code()))
                })
                .collect(),
        ),
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
    }
}
