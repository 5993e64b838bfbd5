//! DescribeProducers (key 61): the producers a partition knows (id, epoch, last sequence and
//! timestamp, and where their open transaction starts) — what `kafka-transactions.sh
//! find-hanging` and admin clients read.

use brook_protocol::kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use brook_protocol::kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

pub(crate) async fn handle(
    ctx: &Ctx<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = ctx.state.topics.get(&t.name);
            let refused = !ctx.allowed(Operation::Read, ResourceType::Topic, &t.name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|index| {
                    let resp = PartitionResponse::default().with_partition_index(*index);
                    if refused {
                        return resp.with_error_code(ErrorCode::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(*index)) else {
                        return resp.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let producers = partition.with_log_and_producers(|_, p| p.describe());
                    resp.with_active_producers(
                        producers
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(0)
                                    .with_current_txn_start_offset(p.txn_first_offset.unwrap_or(-1))
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
