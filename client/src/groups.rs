//! Consumer-group administration on [`Admin`]: list, describe (members and their
//! assignments), committed offsets, seek (commit new positions for a group with no active
//! members) and delete, each sent to the group's coordinator.

use std::collections::BTreeMap;

use brook_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use brook_protocol::kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{Decodable, Request, StrBytes};

use crate::cluster::GROUP;
use crate::error::check;
use crate::{Admin, ClientError};

/// A group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for Kafka consumers ("" for groups that only commit offsets).
    pub protocol_type: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, ...
    pub state: String,
}

/// A member of a group and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// Topic -> partitions (read from the consumer protocol's assignment).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// What DescribeGroups says of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (`range`, `roundrobin`, ...).
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

impl Admin {
    /// Sends `request` to `group`'s coordinator at the highest version both speak, at most
    /// `max_version`; a coordinator that cannot be found yet or whose connection broke is
    /// looked up and asked again, twice at most.
    async fn to_coordinator<R: Request>(
        &self,
        group: &str,
        request: &R,
        max_version: i16,
    ) -> Result<R::Response, ClientError> {
        let mut attempt = 0;
        loop {
            let result = async {
                let coordinator = self.cluster.coordinator(group, GROUP).await?;
                let version = coordinator.version_for::<R>()?.min(max_version);
                coordinator.send_at(version, request).await
            }
            .await;
            if let Err(e) = &result {
                self.cluster.coordinator_failed(group, GROUP, e);
            }
            match result {
                Err(e)
                    if attempt < 2
                        && e.is_retriable()
                        && !matches!(e, ClientError::Timeout { .. }) =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100) * attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Every group of every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        self.cluster.refresh(&[], false).await?;
        let mut groups = Vec::new();
        for node in self.cluster.broker_ids() {
            let response = self
                .cluster
                .broker(node)
                .await?
                .send(&ListGroupsRequest::default())
                .await?;
            check(response.error_code, None, "listing groups")?;
            groups.extend(response.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// `group`'s state, protocol and members with their assignments.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let response = self.to_coordinator(group, &request, i16::MAX).await?;
        let g = response.groups.first().ok_or(ClientError::Codec {
            what: "a DescribeGroups response",
            message: "no group".into(),
        })?;
        check(
            g.error_code,
            g.error_message.as_deref(),
            &format!("describing group {group}"),
        )?;
        let members = g
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if g.protocol_type.as_str() == "consumer" {
                    assignment(&m.member_assignment)
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// `group`'s committed offsets: (topic, partition) -> offset.
    pub async fn group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        Ok(self
            .group_offsets_with_metadata(group)
            .await?
            .into_iter()
            .map(|(k, (offset, _))| (k, offset))
            .collect())
    }

    /// `group`'s committed offsets with the metadata string committed beside each.
    pub async fn group_offsets_with_metadata(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), (i64, String)>, ClientError> {
        // v10 names topics by id; 9 is the last by name, and every broker since 3.3 has it.
        let version = self
            .cluster
            .coordinator(group, GROUP)
            .await?
            .version_for::<OffsetFetchRequest>()?
            .min(9);
        let request = if version >= 8 {
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(None)])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(group_id(group))
                .with_topics(None)
        };
        let response = self.to_coordinator(group, &request, version).await?;
        let what = format!("reading the offsets of group {group}");
        // v8+ answers per group, older versions for the one group asked.
        let mut rows = Vec::new();
        if version >= 8 {
            for g in &response.groups {
                check(g.error_code, None, &what)?;
                for t in &g.topics {
                    rows.extend(t.partitions.iter().map(|p| {
                        (
                            &t.name,
                            p.partition_index,
                            p.committed_offset,
                            &p.metadata,
                            p.error_code,
                        )
                    }));
                }
            }
        } else {
            check(response.error_code, None, &what)?;
            for t in &response.topics {
                rows.extend(t.partitions.iter().map(|p| {
                    (
                        &t.name,
                        p.partition_index,
                        p.committed_offset,
                        &p.metadata,
                        p.error_code,
                    )
                }));
            }
        }
        let out = rows
            .into_iter()
            .filter(|(_, _, offset, _, code)| *code == 0 && *offset >= 0)
            .map(|(topic, partition, offset, metadata, _)| {
                let metadata = metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                ((topic.to_string(), partition), (offset, metadata))
            })
            .collect();
        Ok(out)
    }

    /// Commits `offsets` for `group` as an admin does: the group must have no active
    /// members (Kafka answers UNKNOWN_MEMBER_ID or REBALANCE_IN_PROGRESS otherwise).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        let with_metadata = offsets
            .iter()
            .map(|(k, o)| (k.clone(), (*o, String::new())))
            .collect();
        self.commit_group_offsets_with_metadata(group, &with_metadata)
            .await
    }

    /// [`Admin::commit_group_offsets`] with a metadata string beside each offset.
    pub async fn commit_group_offsets_with_metadata(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), (i64, String)>,
    ) -> Result<(), ClientError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), (offset, metadata)) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.clone()))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_group_instance_id(None)
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        // v10 names topics by id; 9 is the last by name.
        let response = self.to_coordinator(group, &request, 9).await?;
        for t in &response.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    None,
                    &format!(
                        "committing {} partition {} for group {group}",
                        t.name.as_str(),
                        p.partition_index
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Deletes `group` (it must have no members) with its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let response = self.to_coordinator(group, &request, i16::MAX).await?;
        let result = response.results.first().ok_or(ClientError::Codec {
            what: "a DeleteGroups response",
            message: "no group result".into(),
        })?;
        check(result.error_code, None, &format!("deleting group {group}"))
    }

    /// The end offset (high watermark) of each of `topic`'s partitions.
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, ClientError> {
        self.list_offsets(topic, -1).await
    }

    /// The first offset at or after `timestamp` (-1: the end, -2: the start) of each of
    /// `topic`'s partitions (-1 where no record is that late).
    pub async fn list_offsets(
        &self,
        topic: &str,
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let meta = self.cluster.topic(topic, false).await?;
        let mut out = BTreeMap::new();
        for p in 0..i32::try_from(meta.leaders.len()).unwrap_or(i32::MAX) {
            let offset = self.cluster.list_offset(topic, p, timestamp, 0).await?;
            out.insert(p, offset);
        }
        Ok(out)
    }
}

/// The partitions a consumer-protocol assignment names (empty when it does not parse: a
/// group of another protocol type may put anything there).
fn assignment(bytes: &bytes::Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return BTreeMap::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    let Ok(decoded) = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) else {
        return BTreeMap::new();
    };
    decoded
        .assigned_partitions
        .iter()
        .map(|t| (t.topic.to_string(), t.partitions.clone()))
        .collect()
}
