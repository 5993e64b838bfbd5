//! A consumer's membership in a group under the classic protocol: JoinGroup (with the
//! KIP-394 member id round), the leader's assignment, SyncGroup, heartbeats in the
//! background, offset commits with the generation, LeaveGroup.
//!
//! Rebalances are eager, as Kafka's `range` and `roundrobin` assignors are: when the
//! heartbeat learns of a rebalance the consumer commits, gives up every partition and joins
//! again; [`crate::Consumer::poll`] does that before its next fetch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_protocol::kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use brook_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use brook_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use brook_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use brook_protocol::kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::assignor::{assign, Assignor};
use crate::cluster::{Cluster, GROUP};
use crate::error::check;
use crate::{ClientError, Pipeline};

/// How a consumer takes part in a group (Kafka's consumer group settings).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `session.timeout.ms`: the coordinator drops a member it has not heard from for this
    /// long.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `partition.assignment.strategy`, preferred first.
    pub assignors: Vec<Assignor>,
    /// `enable.auto.commit`: commit positions every `auto_commit_interval`, before a
    /// rebalance and on close.
    pub auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
}

impl GroupConfig {
    /// Kafka's defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// The member's identity in the current generation.
#[derive(Debug, Clone, Default)]
struct Identity {
    member_id: String,
    generation: i32,
}

/// Membership of one consumer (see the module docs).
pub(crate) struct Membership {
    pub(crate) config: GroupConfig,
    topics: Vec<String>,
    cluster: Arc<Cluster>,
    coordinator: Option<Pipeline>,
    identity: Arc<Mutex<Identity>>,
    /// Set by the heartbeat when the group rebalances or forgot this member.
    rejoin: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

fn group_id(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `message` at `version`, behind the version prefix the consumer protocol's embedded
/// structures carry.
fn versioned(message: &impl Encodable, version: i16) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Codec {
            what: "a consumer protocol message",
            message: e.to_string(),
        })?;
    Ok(buf.freeze())
}

impl Membership {
    pub(crate) fn new(cluster: Arc<Cluster>, config: GroupConfig, topics: Vec<String>) -> Self {
        Self {
            config,
            topics,
            cluster,
            coordinator: None,
            identity: Arc::new(Mutex::new(Identity::default())),
            rejoin: Arc::new(AtomicBool::new(true)),
            heartbeat: None,
        }
    }

    /// Whether the member must (re)join before fetching.
    pub(crate) fn needs_join(&self) -> bool {
        self.rejoin.load(Ordering::Acquire)
    }

    fn identity(&self) -> Identity {
        self.identity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn coordinator(&mut self) -> Result<Pipeline, ClientError> {
        match &self.coordinator {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => {
                let c = self
                    .cluster
                    .coordinator(&self.config.group_id, GROUP)
                    .await?;
                self.coordinator = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// Joins (or rejoins) the group: the partitions this member now owns.
    pub(crate) async fn join(&mut self) -> Result<BTreeMap<String, Vec<i32>>, ClientError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_join().await {
                Ok(assigned) => {
                    self.rejoin.store(false, Ordering::Release);
                    self.start_heartbeat();
                    return Ok(assigned);
                }
                Err(e) if attempts < 10 && (e.is_retriable() || rejoinable(e.code())) => {
                    if matches!(e.code(), Some(15 | 16)) || !matches!(e, ClientError::Broker { .. })
                    {
                        self.coordinator = None;
                        self.cluster
                            .coordinator_failed(&self.config.group_id, GROUP, &e);
                    }
                    if e.code() == Some(25) {
                        // UNKNOWN_MEMBER_ID: join again as a new member.
                        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) =
                            Identity::default();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_join(&mut self) -> Result<BTreeMap<String, Vec<i32>>, ClientError> {
        let coordinator = self.coordinator().await?;
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| name(t)).collect())
            .with_user_data(None);
        let metadata = versioned(&subscription, 0)?;
        let protocols: Vec<JoinGroupRequestProtocol> = self
            .config
            .assignors
            .iter()
            .map(|a| {
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(a.name()))
                    .with_metadata(metadata.clone())
            })
            .collect();
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let mut member_id = self.identity().member_id;
        let response = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(group_id(&self.config.group_id))
                .with_session_timeout_ms(ms(self.config.session_timeout))
                .with_rebalance_timeout_ms(ms(self.config.rebalance_timeout))
                .with_member_id(name(&member_id))
                .with_group_instance_id(None)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(protocols.clone());
            let version = coordinator.version_for::<JoinGroupRequest>()?;
            // The coordinator holds a JoinGroup until every member has joined.
            let response = coordinator
                .submit(version, &request)
                .await?
                .wait_for(self.config.rebalance_timeout + Duration::from_secs(5))
                .await?;
            // KIP-394: a first join is answered with the member id to join with.
            if response.error_code == 79 && member_id.is_empty() {
                member_id = response.member_id.to_string();
                continue;
            }
            check(
                response.error_code,
                None,
                &format!("joining group {}", self.config.group_id),
            )?;
            break response;
        };
        let me = response.member_id.to_string();
        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) = Identity {
            member_id: me.clone(),
            generation: response.generation_id,
        };
        let assignments = if response.leader.as_str() == me {
            let protocol = response
                .protocol_name
                .as_ref()
                .and_then(|p| Assignor::from_name(p))
                .ok_or_else(|| ClientError::Codec {
                    what: "a JoinGroup response",
                    message: format!("unknown assignor {:?}", response.protocol_name),
                })?;
            self.lead(protocol, &response.members).await?
        } else {
            Vec::new()
        };
        let request = SyncGroupRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_generation_id(response.generation_id)
            .with_member_id(name(&me))
            .with_group_instance_id(None)
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(response.protocol_name.clone())
            .with_assignments(assignments);
        let version = coordinator.version_for::<SyncGroupRequest>()?;
        let sync = coordinator
            .submit(version, &request)
            .await?
            .wait_for(self.config.rebalance_timeout + Duration::from_secs(5))
            .await?;
        check(
            sync.error_code,
            None,
            &format!("syncing group {}", self.config.group_id),
        )?;
        let mut buf = sync.assignment.clone();
        if buf.remaining() < 2 {
            return Ok(BTreeMap::new());
        }
        let version = buf.get_i16();
        let assignment = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3))
            .map_err(|e| ClientError::Codec {
                what: "a consumer assignment",
                message: e.to_string(),
            })?;
        Ok(assignment
            .assigned_partitions
            .iter()
            .map(|t| (t.topic.to_string(), t.partitions.clone()))
            .collect())
    }

    /// The leader's work: every member's partitions, encoded for SyncGroup.
    async fn lead(
        &self,
        assignor: Assignor,
        members: &[brook_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let mut buf = m.metadata.clone();
            let topics = if buf.remaining() >= 2 {
                let version = buf.get_i16();
                ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3))
                    .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            subscriptions.insert(m.member_id.to_string(), topics);
        }
        let mut wanted: Vec<String> = subscriptions.values().flatten().cloned().collect();
        wanted.sort();
        wanted.dedup();
        self.cluster.refresh(&wanted, false).await.ok();
        let mut counts = BTreeMap::new();
        for topic in wanted {
            if let Ok(meta) = self.cluster.topic(&topic, false).await {
                counts.insert(topic, i32::try_from(meta.leaders.len()).unwrap_or(0));
            }
        }
        let plan = assign(assignor, &subscriptions, &counts);
        plan.into_iter()
            .map(|(member, topics)| {
                let assignment = ConsumerProtocolAssignment::default()
                    .with_assigned_partitions(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                AssignedTopic::default()
                                    .with_topic(TopicName(name(&t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
                    .with_user_data(None);
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(name(&member))
                    .with_assignment(versioned(&assignment, 0)?))
            })
            .collect()
    }

    fn start_heartbeat(&mut self) {
        let Some(coordinator) = self.coordinator.clone() else {
            return;
        };
        let identity = Arc::clone(&self.identity);
        let rejoin = Arc::clone(&self.rejoin);
        let group = self.config.group_id.clone();
        let interval = self.config.heartbeat_interval;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Identity {
                    member_id,
                    generation,
                } = identity.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let request = HeartbeatRequest::default()
                    .with_group_id(group_id(&group))
                    .with_generation_id(generation)
                    .with_member_id(name(&member_id))
                    .with_group_instance_id(None);
                match coordinator.send(&request).await {
                    Ok(r) if r.error_code == 0 => {}
                    Ok(r) => {
                        if r.error_code == 25 {
                            *identity.lock().unwrap_or_else(|e| e.into_inner()) =
                                Identity::default();
                        }
                        rejoin.store(true, Ordering::Release);
                        return;
                    }
                    Err(_) => {
                        rejoin.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        }));
    }

    /// Commits `offsets` in the current generation.
    pub(crate) async fn commit(
        &mut self,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator().await?;
        let me = self.identity();
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_generation_id_or_member_epoch(me.generation)
            .with_member_id(name(&me.member_id))
            .with_group_instance_id(None)
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(name(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        // v10 names topics by id; 9 is the last by name.
        let version = coordinator.version_for::<OffsetCommitRequest>()?.min(9);
        let response = coordinator.send_at(version, &request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                if rejoinable(Some(p.error_code)) {
                    self.rejoin.store(true, Ordering::Release);
                }
                if matches!(p.error_code, 15 | 16) {
                    // The group moved: find its coordinator again before the next request.
                    self.coordinator = None;
                    let moved = ClientError::Broker {
                        code: p.error_code,
                        message: String::new(),
                    };
                    self.cluster
                        .coordinator_failed(&self.config.group_id, GROUP, &moved);
                }
                check(
                    p.error_code,
                    None,
                    &format!(
                        "committing {} partition {} for group {}",
                        t.name.as_str(),
                        p.partition_index,
                        self.config.group_id
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Leaves the group, so the others get its partitions at once.
    pub(crate) async fn leave(&mut self) -> Result<(), ClientError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let me = self.identity();
        if me.member_id.is_empty() {
            return Ok(());
        }
        let coordinator = self.coordinator().await?;
        let request = LeaveGroupRequest::default()
            .with_group_id(group_id(&self.config.group_id))
            .with_member_id(name(&me.member_id))
            .with_members(vec![MemberIdentity::default()
                .with_member_id(name(&me.member_id))
                .with_group_instance_id(None)]);
        let response = coordinator.send(&request).await?;
        self.rejoin.store(true, Ordering::Release);
        check(
            response.error_code,
            None,
            &format!("leaving group {}", self.config.group_id),
        )
    }
}

/// Error codes after which a member joins again: REBALANCE_IN_PROGRESS,
/// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID.
fn rejoinable(code: Option<i16>) -> bool {
    matches!(code, Some(27 | 22 | 25))
}
