//! OffsetCommit (key 8): stores a group's consumed positions durably (acknowledged after
//! the `__consumer_offsets` write is fsynced).

use brook_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::Ctx;
use crate::groups::OffsetCommit;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };

/// The committed leader epoch is carried from v6.
const LEADER_EPOCH_FROM: i16 = 6;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let version = ctx.version();
    // Per partition: an error decided here, or an index into the commits sent on.
    let mut plan: Vec<Vec<(i32, Result<usize, ErrorCode>)>> = Vec::new();
    let mut commits = Vec::new();
    for topic in &req.topics {
        let known = ctx.state.topics.get(&topic.name);
        let mut parts = Vec::new();
        for p in &topic.partitions {
            let exists = known
                .as_ref()
                .is_some_and(|t| t.partition(p.partition_index).is_some());
            if !exists {
                parts.push((p.partition_index, Err(ErrorCode::UnknownTopicOrPartition)));
                continue;
            }
            parts.push((p.partition_index, Ok(commits.len())));
            commits.push(OffsetCommit {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= LEADER_EPOCH_FROM {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            });
        }
        plan.push(parts);
    }
    let results = if commits.is_empty() {
        Vec::new()
    } else {
        ctx.state
            .groups
            .commit(
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id_or_member_epoch,
                commits,
            )
            .await
    };
    let topics = req
        .topics
        .iter()
        .zip(plan)
        .map(|(topic, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(index, outcome)| {
                            let error = match outcome {
                                Err(e) => Some(e),
                                Ok(i) => results.get(i).copied().flatten(),
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error.map_or(0, |e| e.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
