//! InitProducerId (key 22): producer ids for idempotent producers.
//!
//! As in Kafka, a request without a transactional id always gets a new producer id with
//! epoch 0 (also when it names its previous id to bump the epoch, KIP-360): the new id starts
//! a fresh sequence. Transactions are not supported yet, so a transactional id is refused.

use brook_protocol::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::Ctx;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

pub(crate) async fn handle(ctx: &Ctx<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refuse = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.is_some() {
        return refuse(ErrorCode::InvalidRequest);
    }
    match ctx.state.topics.allocate_producer_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            // Retriable for clients: they try again.
            refuse(ErrorCode::CoordinatorNotAvailable)
        }
    }
}
