//! InitProducerId (key 22): producer ids for idempotent and transactional producers.
//!
//! Without a transactional id, a request always gets a new producer id with epoch 0 (also
//! when it names its previous id to bump the epoch, KIP-360): the new id starts a fresh
//! sequence, as in Kafka. With one, the transaction coordinator answers (see
//! [`crate::txn`]): the id's producer id with its epoch bumped, which fences the previous
//! incarnation (its open transaction is aborted first).

use brook_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{fencing_error, Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// From v4 clients understand PRODUCER_FENCED (older ones get INVALID_PRODUCER_EPOCH).
const PRODUCER_FENCED_FROM: i16 = 4;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refuse = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(fencing_error(code, ctx.version(), PRODUCER_FENCED_FROM).code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let answer = |(id, epoch): (i64, i16)| {
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch)
    };
    let Some(transactional_id) = req.transactional_id.as_ref() else {
        // Idempotence: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
        if !ctx.allowed_on_cluster(Operation::IdempotentWrite)
            && !ctx.allowed_on_any(Operation::Write, ResourceType::Topic)
        {
            return refuse(ErrorCode::ClusterAuthorizationFailed);
        }
        return match ctx.state.topics.allocate_producer_id() {
            Ok(id) => answer((id, 0)),
            Err(e) => {
                tracing::error!(error = %e, "cannot reserve producer ids");
                // Retriable for clients: they try again.
                refuse(ErrorCode::CoordinatorNotAvailable)
            }
        };
    };
    if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    ) {
        return refuse(ErrorCode::TransactionalIdAuthorizationFailed);
    }
    // KIP-360: (-1, -1) means "no current producer"; exactly one of them -1 is malformed.
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (-1, _) | (_, -1) => return refuse(ErrorCode::InvalidRequest),
        (pid, epoch) => Some((pid, epoch)),
    };
    match ctx
        .state
        .txns
        .init_producer_id(
            ctx.state,
            transactional_id.as_str(),
            req.transaction_timeout_ms,
            expected,
        )
        .await
    {
        Ok(ids) => answer(ids),
        Err(code) => refuse(code),
    }
}
