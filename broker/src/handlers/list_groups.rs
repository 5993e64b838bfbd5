//! ListGroups (key 16): every group, filtered by state (v4+) and type (v5+).

use brook_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use brook_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// Every Brook group uses the classic protocol (KIP-848 groups are "consumer").
const GROUP_TYPE: &str = "classic";

pub(crate) async fn handle(ctx: &Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let state_ok = |state: &str| {
        req.states_filter.is_empty()
            || req
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let type_ok = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(GROUP_TYPE));
    let all_groups = ctx.allowed_on_cluster(Operation::Describe);
    let groups = ctx
        .state
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state)| type_ok && state_ok(state.name()))
        // DESCRIBE on the cluster lists every group; otherwise the groups one may describe.
        .filter(|(id, _, _)| {
            all_groups || ctx.allowed(Operation::Describe, ResourceType::Group, id)
        })
        .map(|(id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state.name()))
                .with_group_type(StrBytes::from_static_str(GROUP_TYPE))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
