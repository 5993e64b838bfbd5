//! TxnOffsetCommit (key 28): a transactional producer commits a group's offsets inside its
//! transaction (consume-transform-produce). The offsets are written to `__consumer_offsets`
//! in the transaction and stay pending, invisible to OffsetFetch, until the transaction's
//! COMMIT marker applies them (an ABORT drops them).
//!
//! The offsets topic's partition must be in the transaction (AddOffsetsToTxn first; KIP-890
//! part 1): otherwise INVALID_TXN_STATE (v0-3) or TRANSACTION_ABORTABLE (v4). v3+ requests
//! carry the consumer's member id and generation, checked as Kafka checks them. Versions 0-4:
//! v5 belongs to KIP-890 part 2.

use brook_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::offset_commit::{outcome, plan, Requested};
use super::{Ctx, Operation, ResourceType};
use crate::groups::OFFSETS_TOPIC;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// The committed leader epoch is carried from v2; member and generation from v3.
const LEADER_EPOCH_FROM: i16 = 2;
const MEMBER_FROM: i16 = 3;
/// From v4 clients understand TRANSACTION_ABORTABLE.
const ABORTABLE_FROM: i16 = 4;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let version = ctx.version();
    let state = ctx.state;
    let pid = req.producer_id.0;
    let verified = if req.transactional_id.is_empty() {
        Err(ErrorCode::InvalidRequest)
    } else if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else if let Err(code) = state
        .txns
        .wait_completion_durable(&req.transactional_id)
        .await
    {
        Err(code)
    } else {
        let partition = (OFFSETS_TOPIC.to_string(), 0);
        state
            .txns
            .verify_partition(&req.transactional_id, pid, req.producer_epoch, &partition)
            .map_err(|code| match code {
                ErrorCode::TransactionAbortable if version < ABORTABLE_FROM => {
                    ErrorCode::InvalidTxnState
                }
                // As from the log append in Kafka: a stale epoch is INVALID_PRODUCER_EPOCH.
                ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
                // Retriable for every client (the transaction is completing).
                ErrorCode::ConcurrentTransactions => ErrorCode::CoordinatorLoadInProgress,
                other => other,
            })
    };
    let (plan, commits) = plan(
        ctx,
        &req.group_id,
        req.topics.iter().map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| Requested {
                    index: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= LEADER_EPOCH_FROM {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_deref(),
                })
                .collect();
            (t.name.as_str(), partitions)
        }),
        verified.err(),
    );
    let (member_id, instance_id, generation) = if version >= MEMBER_FROM {
        (
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
            req.generation_id,
        )
    } else {
        ("", None, -1)
    };
    let results = if commits.is_empty() {
        Vec::new()
    } else {
        state
            .groups
            .txn_commit(
                &req.group_id,
                (pid, req.producer_epoch),
                member_id,
                instance_id,
                generation,
                commits,
            )
            .await
    };
    let topics = req
        .topics
        .iter()
        .zip(plan)
        .map(|(topic, parts)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(index, planned)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(outcome(planned, &results))
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
