//! AddOffsetsToTxn (key 25): a transactional producer is about to commit a group's offsets in
//! its transaction (`sendOffsetsToTransaction`): the offsets topic's partition joins the
//! transaction, so that its marker ends the pending offsets too.

use brook_protocol::kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{fencing_error, Ctx, Operation, ResourceType};
use crate::groups::OFFSETS_TOPIC;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// From v2 clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_FROM: i16 = 2;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let state = ctx.state;
    let code = if req.transactional_id.is_empty() {
        ErrorCode::InvalidRequest.code()
    } else if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        ErrorCode::TransactionalIdAuthorizationFailed.code()
    } else if req.group_id.is_empty() {
        ErrorCode::InvalidGroupId.code()
    } else if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        ErrorCode::GroupAuthorizationFailed.code()
    } else if state.groups.ensure_offsets_topic(&state.topics).is_err() {
        ErrorCode::CoordinatorNotAvailable.code()
    } else {
        // Brook's offsets topic has one partition: every group's offsets are there.
        let partition = (OFFSETS_TOPIC.to_string(), 0);
        match state
            .txns
            .add_partitions(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                &[partition],
            )
            .await
        {
            Ok(()) => 0,
            Err(code) => fencing_error(code, ctx.version(), PRODUCER_FENCED_FROM).code(),
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
