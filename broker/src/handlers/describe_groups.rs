//! DescribeGroups (key 15): state, protocol and members of groups; member metadata and
//! assignments are shown once the group is Stable, as Kafka does.

use brook_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use brook_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let operations = if req.include_authorized_operations {
                ctx.authorized_operations(ResourceType::Group, &id)
            } else {
                i32::MIN
            };
            let group = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            if id.is_empty() {
                return group.with_error_code(ErrorCode::InvalidGroupId.code());
            }
            if !ctx.allowed(Operation::Describe, ResourceType::Group, &id) {
                return group.with_error_code(ErrorCode::GroupAuthorizationFailed.code());
            }
            match ctx.state.groups.describe(&id) {
                // Kafka answers an unknown group as Dead, without an error (before v6).
                None => group.with_group_state(StrBytes::from_static_str("Dead")),
                Some(d) => group
                    .with_group_state(StrBytes::from_static_str(d.state.name()))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(
                                        m.instance_id.map(StrBytes::from_string),
                                    )
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
