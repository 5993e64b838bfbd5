//! FindCoordinator (key 10): Brook coordinates every group (and transactional id) itself.

use brook_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator;
use brook_protocol::kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

/// Key types: consumer groups, transactional ids (KIP-98), share groups (KIP-932).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// From v4 several keys are looked up in one request (KIP-699).
const BATCHED_FROM: i16 = 4;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let state = ctx.state;
    let host = StrBytes::from_string(ctx.listener.host.clone());
    let node = BrokerId(state.node_id());
    let mut error = if req.key_type == KEY_TYPE_GROUP || req.key_type == KEY_TYPE_TRANSACTION {
        None
    } else {
        Some(ErrorCode::InvalidRequest)
    };
    // Like Kafka, an internal topic is created when its coordinator is first needed.
    let ensured = match req.key_type {
        KEY_TYPE_GROUP => state.groups.ensure_offsets_topic(&state.topics),
        KEY_TYPE_TRANSACTION => state.txns.ensure_topic(&state.topics),
        _ => Ok(()),
    };
    if let Err(e) = ensured {
        tracing::error!(error = %e, key_type = req.key_type, "creating the coordinator's internal topic failed");
        error = Some(ErrorCode::CoordinatorNotAvailable);
    }
    // DESCRIBE on the group or transactional id the key names.
    let refused = |key: &str| {
        let (resource, code) = match req.key_type {
            KEY_TYPE_TRANSACTION => (
                ResourceType::TransactionalId,
                ErrorCode::TransactionalIdAuthorizationFailed,
            ),
            _ => (ResourceType::Group, ErrorCode::GroupAuthorizationFailed),
        };
        (!ctx.allowed(Operation::Describe, resource, key)).then_some(code)
    };
    let message = |e: ErrorCode| match e {
        ErrorCode::GroupAuthorizationFailed => "Group authorization failed.",
        ErrorCode::TransactionalIdAuthorizationFailed => "Transactional Id authorization failed.",
        _ => "invalid coordinator key",
    };
    if ctx.version() < BATCHED_FROM {
        let resp = FindCoordinatorResponse::default();
        let key_error = req.key.is_empty().then_some(ErrorCode::InvalidRequest);
        return match error.or(key_error).or_else(|| refused(&req.key)) {
            Some(e) => resp
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_static_str(message(e))))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
            None => resp
                .with_node_id(node)
                .with_host(host)
                .with_port(ctx.listener.port),
        };
    }
    let coordinators = req
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let c = Coordinator::default().with_key(key.clone());
            let key_error = key.is_empty().then_some(ErrorCode::InvalidRequest);
            match error.or(key_error).or_else(|| refused(&key)) {
                Some(e) => c
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_static_str(message(e))))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
                None => c
                    .with_node_id(node)
                    .with_host(host.clone())
                    .with_port(ctx.listener.port),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
