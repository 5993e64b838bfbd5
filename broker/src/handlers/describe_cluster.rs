//! DescribeCluster (key 60): this broker, as also announced in Metadata.

use brook_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use brook_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::metadata::OPS_NOT_REQUESTED;
use super::{Ctx, ResourceType};
use crate::auth::acl::CLUSTER_NAME;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

/// KIP-919 endpoint type for brokers; controllers (2) are not separate in Brook.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let state = ctx.state;
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(state.topics.cluster_id().to_string()))
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            OPS_NOT_REQUESTED
        });
    if req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return resp
            .with_error_code(ErrorCode::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Brook serves only broker endpoints",
            )));
    }
    resp.with_controller_id(BrokerId(state.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(state.node_id()))
            .with_host(StrBytes::from_string(ctx.listener.host.clone()))
            .with_port(ctx.listener.port)])
}
