//! DescribeTransactions (key 65): the state of transactional ids (admin clients,
//! `kafka-transactions.sh describe`).

use brook_protocol::kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState,
};
use brook_protocol::kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let resp = TransactionState::default().with_transactional_id(id.clone());
            let described = if id.is_empty() {
                Err(ErrorCode::InvalidRequest)
            } else if !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, id) {
                Err(ErrorCode::TransactionalIdAuthorizationFailed)
            } else {
                ctx.state.txns.describe(id)
            };
            match described {
                Err(code) => resp.with_error_code(code.code()),
                Ok(d) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, p) in d.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.as_str() == topic => t.partitions.push(p),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(StrBytes::from_string(topic)))
                                    .with_partitions(vec![p]),
                            ),
                        }
                    }
                    resp.with_transaction_state(StrBytes::from_static_str(d.state.name()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
