//! AddPartitionsToTxn (key 24): a transactional producer names the partitions it is about to
//! write to, before it writes (KIP-890 part 1 checks this on Produce).
//!
//! v0-3 carry one transaction (what clients send); v4+ carry a batch of them (Kafka's brokers
//! send it to the coordinator, with `verify_only` to ask whether partitions are in a
//! transaction without adding them). If any partition is unknown, nothing is added: the
//! unknown ones get UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.

use brook_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use brook_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use brook_protocol::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{fencing_error, Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

/// From v2 clients understand PRODUCER_FENCED.
const PRODUCER_FENCED_FROM: i16 = 2;
/// From v4 a request carries a batch of transactions.
const BATCHED_FROM: i16 = 4;

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.version() < BATCHED_FROM {
        let results = add(
            ctx,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut by_transaction = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let results = add(
            ctx,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
        )
        .await;
        by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(by_transaction)
}

/// One transaction's partitions: added (or, `verify_only`, checked); one result each.
async fn add(
    ctx: &Ctx<'_>,
    transactional_id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let state = ctx.state;
    let id = transactional_id.as_str();
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let exists = |(topic, p): &(String, i32)| {
        state
            .topics
            .get(topic)
            .is_some_and(|t| t.partition(*p).is_some())
    };
    // Per partition: the error code (0: none).
    let writable =
        |(topic, _): &(String, i32)| ctx.allowed(Operation::Write, ResourceType::Topic, topic);
    let codes: Vec<i16> = if id.is_empty() {
        vec![ErrorCode::InvalidRequest.code(); partitions.len()]
    } else if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, id) {
        vec![ErrorCode::TransactionalIdAuthorizationFailed.code(); partitions.len()]
    } else if !partitions.iter().all(writable) {
        partitions
            .iter()
            .map(|p| {
                if writable(p) {
                    ErrorCode::OperationNotAttempted.code()
                } else {
                    ErrorCode::TopicAuthorizationFailed.code()
                }
            })
            .collect()
    } else if !partitions.iter().all(exists) {
        partitions
            .iter()
            .map(|p| {
                if exists(p) {
                    ErrorCode::OperationNotAttempted.code()
                } else {
                    ErrorCode::UnknownTopicOrPartition.code()
                }
            })
            .collect()
    } else if verify_only {
        partitions
            .iter()
            .map(
                |p| match state.txns.verify_partition(id, producer_id, epoch, p) {
                    Ok(()) => 0,
                    Err(code) => code.code(),
                },
            )
            .collect()
    } else {
        let code = match state
            .txns
            .add_partitions(id, producer_id, epoch, &partitions)
            .await
        {
            Ok(()) => 0,
            Err(code) => fencing_error(code, ctx.version(), PRODUCER_FENCED_FROM).code(),
        };
        vec![code; partitions.len()]
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::with_capacity(topics.len());
    let mut codes = codes.into_iter();
    for t in topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                AddPartitionsToTxnPartitionResult::default()
                    .with_partition_index(*p)
                    .with_partition_error_code(codes.next().unwrap_or(0))
            })
            .collect();
        results.push(
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(t.name.0.clone()))
                .with_results_by_partition(partitions),
        );
    }
    results
}
