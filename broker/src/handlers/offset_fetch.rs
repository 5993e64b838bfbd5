//! OffsetFetch (key 9): a group's committed offsets; from v8 for several groups at once.
//!
//! Partitions without a commit (and unknown groups) answer offset -1 with no error, as Kafka
//! does. With the log end offset from ListOffsets this gives a group's lag per partition.
//!
//! Offsets committed in a transaction that has not ended are not returned (the last
//! committed ones are); with `require_stable` (v7+, read_committed consumers) such a
//! partition answers UNSTABLE_OFFSET_COMMIT instead, and the client retries.

use brook_protocol::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use brook_protocol::kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::{Ctx, Operation, ResourceType};
use crate::groups::group::CommittedOffset;

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };

/// From v8 the request names several groups.
const GROUPS_FROM: i16 = 8;

/// One partition's answer: its committed offset, or UNSTABLE_OFFSET_COMMIT.
type Answer = Result<Option<CommittedOffset>, ErrorCode>;
/// One group's answer: per topic, per partition.
type GroupOffsets = Vec<(TopicName, Vec<(i32, Answer)>)>;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version() >= GROUPS_FROM {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if !ctx.allowed(Operation::Describe, ResourceType::Group, &g.group_id) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect::<Vec<_>>()
                });
                let topics = lookup(ctx, &g.group_id, wanted, req.require_stable)
                    .into_iter()
                    .map(|(name, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(index, o)| {
                                        let (offset, epoch, metadata, error) = fields(o);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(index)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(metadata))
                                            .with_error_code(error)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if !ctx.allowed(Operation::Describe, ResourceType::Group, &req.group_id) {
        return OffsetFetchResponse::default()
            .with_error_code(ErrorCode::GroupAuthorizationFailed.code());
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let topics = lookup(ctx, &req.group_id, wanted, req.require_stable)
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(index, o)| {
                            let (offset, epoch, metadata, error) = fields(o);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// The committed offsets asked for (`None`: every partition the group has committed).
/// `require_stable`: partitions with offsets pending in a transaction answer
/// UNSTABLE_OFFSET_COMMIT.
fn lookup(
    ctx: &Ctx<'_>,
    group: &GroupId,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> GroupOffsets {
    let groups = &ctx.state.groups;
    let answer = |key: (String, i32), o: Option<CommittedOffset>| -> Answer {
        if require_stable && groups.has_pending_offsets(group, &[key]) {
            Err(ErrorCode::UnstableOffsetCommit)
        } else {
            Ok(o)
        }
    };
    match wanted {
        Some(topics) => {
            let keys: Vec<(String, i32)> = topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
                .collect();
            let found = groups.committed(group, Some(&keys)).unwrap_or_default();
            topics
                .into_iter()
                .map(|(name, parts)| {
                    let refused = !ctx.allowed(Operation::Describe, ResourceType::Topic, &name);
                    let parts = parts
                        .into_iter()
                        .map(|p| {
                            if refused {
                                return (p, Err(ErrorCode::TopicAuthorizationFailed));
                            }
                            let o = found
                                .iter()
                                .find(|((t, i), _)| *i == p && t.as_str() == name.as_str())
                                .map(|(_, o)| o.clone());
                            (p, answer((name.to_string(), p), o))
                        })
                        .collect();
                    (name, parts)
                })
                .collect()
        }
        None => {
            let mut out: GroupOffsets = Vec::new();
            for ((topic, partition), o) in groups.committed(group, None).unwrap_or_default() {
                // Every partition: only the topics the client may describe.
                if !ctx.allowed(Operation::Describe, ResourceType::Topic, &topic) {
                    continue;
                }
                let a = answer((topic.clone(), partition), Some(o));
                match out.iter_mut().find(|(n, _)| n.as_str() == topic) {
                    Some((_, parts)) => parts.push((partition, a)),
                    None => out.push((
                        TopicName(StrBytes::from_string(topic)),
                        vec![(partition, a)],
                    )),
                }
            }
            out
        }
    }
}

/// Offset, leader epoch, metadata and error code of one partition's answer.
fn fields(a: Answer) -> (i64, i32, StrBytes, i16) {
    match a {
        Ok(Some(o)) => (
            o.offset,
            o.leader_epoch,
            StrBytes::from_string(o.metadata),
            0,
        ),
        Ok(None) => (-1, -1, StrBytes::default(), 0),
        Err(code) => (-1, -1, StrBytes::default(), code.code()),
    }
}
