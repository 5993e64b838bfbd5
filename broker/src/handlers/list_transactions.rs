//! ListTransactions (key 66): transactional ids with their producer and state, filtered by
//! state names, producer ids and (v1) how long the transaction has been running. Unknown
//! state names are reported back in `unknown_state_filters`. v2's id pattern (a regular
//! expression) is not served.

use brook_protocol::kafka_protocol::messages::list_transactions_response::TransactionState;
use brook_protocol::kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{Ctx, Operation, ResourceType};
use crate::txn::state::TxnState;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    if !unknown.is_empty() && states.is_empty() {
        // Only unknown states asked for: nothing can match.
        return ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    }
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let listed = ctx
        .state
        .txns
        .list(&states, &producer_ids, req.duration_filter)
        .into_iter()
        .filter(|(id, _, _)| ctx.allowed(Operation::Describe, ResourceType::TransactionalId, id))
        .map(|(id, pid, state)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(pid))
                .with_transaction_state(StrBytes::from_static_str(state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
