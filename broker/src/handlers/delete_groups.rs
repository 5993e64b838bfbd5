//! DeleteGroups (key 42): removes empty groups and their committed offsets.

use brook_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use brook_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let error = if ctx.allowed(Operation::Delete, ResourceType::Group, &id) {
                ctx.state.groups.delete_group(&id)
            } else {
                Some(brook_protocol::ErrorCode::GroupAuthorizationFailed)
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error.map_or(0, |e| e.code()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
