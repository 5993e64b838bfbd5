//! EndTxn (key 26): commits or aborts the producer's ongoing transaction; answered once every
//! partition has its marker (see [`crate::txn`]).
//!
//! Versions 0-4: v5 belongs to KIP-890 part 2 (an epoch bump per transaction), which Brook
//! does not implement, so `transaction.version` is not advertised either.

use brook_protocol::kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{fencing_error, Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// From v2 clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_FROM: i16 = 2;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let code = if req.transactional_id.is_empty() {
        ErrorCode::InvalidRequest.code()
    } else if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        ErrorCode::TransactionalIdAuthorizationFailed.code()
    } else {
        match ctx
            .state
            .txns
            .end_txn(
                ctx.state,
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
            )
            .await
        {
            Ok(()) => 0,
            Err(code) => fencing_error(code, ctx.version(), PRODUCER_FENCED_FROM).code(),
        }
    };
    EndTxnResponse::default().with_error_code(code)
}
