//! Heartbeat (key 12): keeps a member's session alive and tells it about rebalances.

use brook_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;

use super::{Ctx, Operation, ResourceType};
use brook_protocol::ErrorCode;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
    }
    let error = ctx.state.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
