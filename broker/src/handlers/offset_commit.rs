//! OffsetCommit (key 8): stores a group's consumed positions durably (acknowledged after
//! the `__consumer_offsets` write is fsynced).

use brook_protocol::kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use brook_protocol::kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use brook_protocol::kafka_protocol::protocol::VersionRange;
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};
use crate::groups::OffsetCommit;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };

/// The committed leader epoch is carried from v6.
const LEADER_EPOCH_FROM: i16 = 6;

/// Per topic of a commit request, per partition: an error decided before committing, or the
/// index of its commit among those sent on.
pub(crate) type Plan = Vec<Vec<(i32, Result<usize, ErrorCode>)>>;

/// One partition of a commit request.
pub(crate) struct Requested<'a> {
    pub(crate) index: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<&'a str>,
}

/// Splits a commit request (topics, each with its partitions) into what is refused at once
/// (`refused`, no READ on the group or the topic, an unknown topic or partition) and the
/// commits to send on.
pub(crate) fn plan<'a>(
    ctx: &Ctx<'_>,
    group: &str,
    topics: impl Iterator<Item = (&'a str, Vec<Requested<'a>>)>,
    refused: Option<ErrorCode>,
) -> (Plan, Vec<OffsetCommit>) {
    let refused = refused.or_else(|| {
        (!ctx.allowed(Operation::Read, ResourceType::Group, group))
            .then_some(ErrorCode::GroupAuthorizationFailed)
    });
    let mut plan = Vec::new();
    let mut commits = Vec::new();
    for (name, partitions) in topics {
        let known = ctx.state.topics.get(name);
        let topic_refused = !ctx.allowed(Operation::Read, ResourceType::Topic, name);
        let mut parts = Vec::new();
        for p in partitions {
            let exists = known
                .as_ref()
                .is_some_and(|t| t.partition(p.index).is_some());
            let outcome = match refused {
                Some(code) => Err(code),
                None if topic_refused => Err(ErrorCode::TopicAuthorizationFailed),
                None if !exists => Err(ErrorCode::UnknownTopicOrPartition),
                None => {
                    commits.push(OffsetCommit {
                        topic: name.to_string(),
                        partition: p.index,
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata: p.metadata.unwrap_or_default().to_string(),
                    });
                    Ok(commits.len() - 1)
                }
            };
            parts.push((p.index, outcome));
        }
        plan.push(parts);
    }
    (plan, commits)
}

/// The error code of one planned partition, given the commits' results.
pub(crate) fn outcome(planned: Result<usize, ErrorCode>, results: &[Option<ErrorCode>]) -> i16 {
    let error = match planned {
        Err(e) => Some(e),
        Ok(i) => results.get(i).copied().flatten(),
    };
    error.map_or(0, |e| e.code())
}

pub(crate) async fn handle(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let version = ctx.version();
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
        None,
    );
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
                        .map(|(index, planned)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(outcome(planned, &results))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
