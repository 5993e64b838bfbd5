//! The group coordinator: every consumer group of this broker, their committed offsets, and
//! the internal `__consumer_offsets` topic that makes both durable.
//!
//! Brook is a single broker, so it coordinates every group. The state machine of one group is
//! in [`group`]; the records it is persisted as are in [`store`]. This module holds the groups
//! behind one lock, writes their changes to the offsets topic in the order they happen, waits
//! for commits to be durable, replays the topic on startup, and runs the timers (session and
//! rebalance timeouts, offset expiry).

pub(crate) mod group;
pub(crate) mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::control::ControlType;
use brook_protocol::ErrorCode;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::handlers::now_ms;
use crate::internal_log::{InternalLog, KeyValue, Replayed};
use crate::topics::{TopicError, TopicRegistry};
use group::{
    CommittedOffset, Group, GroupLimits, GroupState, JoinRequest, JoinResult, Reply, SyncRequest,
    SyncResult,
};
use store::StoreRecord;

/// Kafka's name for the internal topic of committed offsets and group metadata.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offset.metadata.max.bytes` default: longer commit metadata is refused.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// How often group timeouts are checked; sessions expire at most this late.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// A group as the metrics endpoint reports it.
#[derive(Debug, Clone)]
pub(crate) struct GroupOffsets {
    pub(crate) group: String,
    pub(crate) members: usize,
    /// (topic, partition, committed offset).
    pub(crate) offsets: Vec<(String, i32, i64)>,
}

/// One partition's commit as the coordinator receives it.
#[derive(Debug, Clone)]
pub(crate) struct OffsetCommit {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
}

/// The groups of this broker.
pub(crate) struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    limits: GroupLimits,
    /// Partition 0 of the offsets topic; created on the first FindCoordinator for a group.
    log: InternalLog,
    retention_ms: i64,
}

impl GroupCoordinator {
    /// Opens the coordinator and replays the offsets topic if it exists.
    pub(crate) fn open(topics: &TopicRegistry, config: &BrokerConfig) -> Result<Self, TopicError> {
        let limits = GroupLimits {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            max_size: config.group_max_size,
        };
        let coordinator = GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            limits,
            log: InternalLog::open(topics, OFFSETS_TOPIC, !config.unsafe_disable_fsync)?,
            retention_ms: i64::try_from(config.offsets_retention_minutes.saturating_mul(60_000))
                .unwrap_or(i64::MAX),
        };
        coordinator.replay();
        Ok(coordinator)
    }

    /// Creates the offsets topic unless it exists (FindCoordinator calls this).
    pub(crate) fn ensure_offsets_topic(&self, topics: &TopicRegistry) -> Result<(), TopicError> {
        self.log.ensure(topics)
    }

    /// Rebuilds groups and offsets from the offsets topic.
    fn replay(&self) {
        let started = Instant::now();
        let now = Instant::now();
        let now_ms = now_ms();
        let mut groups = self.groups.lock();
        let mut records = 0u64;
        let mut skipped = 0u64;
        let bad = self.log.replay(|replayed| match replayed {
            Replayed::Records {
                producer,
                records: batch,
            } => {
                for (key, value) in batch {
                    match store::decode(key, value) {
                        Ok(r) => {
                            records += 1;
                            apply(&mut groups, r, producer, self.limits, now, now_ms);
                        }
                        Err(_) => skipped += 1,
                    }
                }
            }
            Replayed::Marker {
                producer_id,
                control,
            } => {
                for group in groups.values_mut() {
                    group.complete_txn_offsets(producer_id, control == ControlType::Commit);
                }
            }
        });
        let bad = bad + skipped;
        if records > 0 || bad > 0 {
            tracing::info!(
                groups = groups.len(),
                records,
                skipped = bad,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "restored consumer groups from __consumer_offsets"
            );
        }
    }

    fn new_group(&self, id: &str) -> Group {
        Group::new(id, self.limits, now_ms())
    }

    // ------------------------------------------------------------ membership

    pub(crate) fn join(&self, group_id: &str, req: JoinRequest) -> Reply<JoinResult> {
        if group_id.is_empty() {
            return Reply::Now(JoinResult::error(ErrorCode::InvalidGroupId, &req.member_id));
        }
        let mut groups = self.groups.lock();
        if !req.member_id.is_empty() && !groups.contains_key(group_id) {
            return Reply::Now(JoinResult::error(
                ErrorCode::UnknownMemberId,
                &req.member_id,
            ));
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| self.new_group(group_id));
        let prefix = req
            .instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let reply = group.join(
            req,
            || format!("{prefix}-{}", uuid::Uuid::new_v4()),
            Instant::now(),
            now_ms(),
        );
        self.persist_if_dirty(group);
        reply
    }

    pub(crate) fn sync(&self, group_id: &str, req: SyncRequest) -> Reply<SyncResult> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId));
        };
        let reply = group.sync(req, Instant::now(), now_ms());
        self.persist_if_dirty(group);
        reply
    }

    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ErrorCode> {
        let mut groups = self.groups.lock();
        match groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation, Instant::now()),
            None => Some(ErrorCode::UnknownMemberId),
        }
    }

    /// LeaveGroup for several members; one error per member.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        let (now, ms) = (Instant::now(), now_ms());
        let errors = members
            .iter()
            .map(|(m, i)| group.leave(m, i.as_deref(), now, ms))
            .collect();
        self.persist_if_dirty(group);
        Ok(errors)
    }

    // ------------------------------------------------------------ offsets

    /// Validates and stores offset commits; waits until they are durable. Returns one error
    /// per commit, in order.
    pub(crate) async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: Vec<OffsetCommit>,
    ) -> Vec<Option<ErrorCode>> {
        let member = (member_id, instance_id, generation);
        self.store_commits(group_id, None, member, commits).await
    }

    /// TxnOffsetCommit: validates the commits and writes them to the offsets topic in the
    /// transaction of `producer` (id, epoch), where they stay pending until the transaction's
    /// marker; waits until they are durable. One error per commit, in order.
    pub(crate) async fn txn_commit(
        &self,
        group_id: &str,
        producer: (i64, i16),
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: Vec<OffsetCommit>,
    ) -> Vec<Option<ErrorCode>> {
        let member = (member_id, instance_id, generation);
        self.store_commits(group_id, Some(producer), member, commits)
            .await
    }

    /// The commit path of both: plain commits (no `producer`) become committed offsets at
    /// once, transactional ones pending offsets of their producer.
    async fn store_commits(
        &self,
        group_id: &str,
        producer: Option<(i64, i16)>,
        (member_id, instance_id, generation): (&str, Option<&str>, i32),
        commits: Vec<OffsetCommit>,
    ) -> Vec<Option<ErrorCode>> {
        if group_id.is_empty() {
            return vec![Some(ErrorCode::InvalidGroupId); commits.len()];
        }
        let (end, errors) = {
            let mut groups = self.groups.lock();
            let group = match groups.get_mut(group_id) {
                Some(g) => g,
                None if generation < 0 => groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| self.new_group(group_id)),
                None => return vec![Some(ErrorCode::IllegalGeneration); commits.len()],
            };
            let invalid = match producer {
                None => group.validate_commit(member_id, instance_id, generation, Instant::now()),
                Some(_) => group.validate_txn_commit(member_id, instance_id, generation),
            };
            if let Some(error) = invalid {
                return vec![Some(error); commits.len()];
            }
            let (records, accepted, errors) = commit_records(group_id, commits);
            let end = match self.log.append(records, producer) {
                Ok(end) => end,
                Err(code) => return fail_accepted(errors, code),
            };
            match producer {
                None => group.offsets.extend(accepted),
                Some((producer_id, _)) => group
                    .pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .extend(accepted),
            }
            (end, errors)
        };
        match self.wait_durable(end).await {
            Ok(()) => errors,
            Err(code) => fail_accepted(errors, code),
        }
    }

    /// The transaction of `producer_id` ends (the transaction coordinator writes its markers):
    /// if it wrote offsets, its marker is appended to the offsets topic and its pending offsets
    /// become committed (`Commit`) or are dropped. Returns the offset after the marker, to wait
    /// on with [`GroupCoordinator::wait_durable`]; `None` if the transaction wrote nothing here.
    pub(crate) fn complete_txn(
        &self,
        producer_id: i64,
        epoch: i16,
        control: ControlType,
    ) -> Result<Option<i64>, ErrorCode> {
        let mut groups = self.groups.lock();
        let pending = groups
            .values()
            .any(|g| g.pending_txn_offsets.contains_key(&producer_id));
        let in_log = self.log.partition().is_some_and(|p| {
            p.with_log_and_producers(|_, producers| producers.in_transaction(producer_id))
        });
        if !pending && !in_log {
            return Ok(None);
        }
        let end = self.log.append_marker(producer_id, epoch, control)?;
        for group in groups.values_mut() {
            group.complete_txn_offsets(producer_id, control == ControlType::Commit);
        }
        Ok(Some(end))
    }

    /// Whether a transaction has uncommitted offsets of `group_id` for any of `partitions`.
    pub(crate) fn has_pending_offsets(&self, group_id: &str, partitions: &[(String, i32)]) -> bool {
        let groups = self.groups.lock();
        groups
            .get(group_id)
            .is_some_and(|g| partitions.iter().any(|p| g.has_pending_offset(p)))
    }

    /// The committed offsets of a group: all of them, or those of the given partitions
    /// (partitions without a commit are absent). `None` when the group is unknown.
    pub(crate) fn committed(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Option<Vec<((String, i32), CommittedOffset)>> {
        let groups = self.groups.lock();
        let group = groups.get(group_id)?;
        Some(match partitions {
            None => group
                .offsets
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(wanted) => wanted
                .iter()
                .filter_map(|k| group.offsets.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        })
    }

    /// OffsetDelete: removes committed offsets of partitions the group is not subscribed to.
    pub(crate) fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        if group.state == GroupState::Dead {
            return Err(ErrorCode::GroupIdNotFound);
        }
        let subscribed = if group.is_empty() {
            None
        } else if group.protocol_type.as_deref() == Some("consumer") {
            match group.subscribed_topics() {
                Some(topics) => Some(topics),
                None => return Err(ErrorCode::NonEmptyGroup),
            }
        } else {
            return Err(ErrorCode::NonEmptyGroup);
        };
        let mut errors = Vec::new();
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                errors.push(Some(ErrorCode::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                records.push((store::offset_key(group_id, topic, *partition), None));
            }
            errors.push(None);
        }
        if !records.is_empty() {
            self.append(records)?;
        }
        Ok(errors)
    }

    // ------------------------------------------------------------ admin

    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let g = groups.get(group_id)?;
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable {
                g.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: g.describe_members(),
        })
    }

    /// Every live group with its member count and committed offsets (by topic, partition),
    /// for the metrics endpoint: one pass under the groups' lock, no copies of metadata.
    pub(crate) fn offsets_snapshot(&self) -> Vec<GroupOffsets> {
        let groups = self.groups.lock();
        groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| GroupOffsets {
                group: g.id.clone(),
                members: g.members.len(),
                offsets: g
                    .offsets
                    .iter()
                    .map(|((t, p), o)| (t.clone(), *p, o.offset))
                    .collect(),
            })
            .collect()
    }

    /// Every group with its protocol type and state.
    pub(crate) fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.groups.lock();
        let mut out: Vec<_> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DeleteGroups for one group.
    pub(crate) fn delete_group(&self, group_id: &str) -> Option<ErrorCode> {
        if group_id.is_empty() {
            return Some(ErrorCode::InvalidGroupId);
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Some(ErrorCode::GroupIdNotFound);
        };
        if let Some(error) = group.can_delete() {
            return Some(error);
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> = group
            .offsets
            .keys()
            .map(|(t, p)| (store::offset_key(group_id, t, *p), None))
            .collect();
        records.push((store::group_key(group_id), None));
        if let Err(code) = self.append(records) {
            return Some(code);
        }
        group.mark_dead(now_ms());
        groups.remove(group_id);
        None
    }

    // ------------------------------------------------------------ timers

    /// Applies timeouts in every group. (The offsets topic is compacted by the log cleaner,
    /// as every compacted topic: `crate::cleaner`.)
    fn tick(&self) {
        let (now, ms) = (Instant::now(), now_ms());
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            group.tick(now, ms);
            self.persist_if_dirty(group);
        }
    }

    /// Removes expired offsets, and groups left with neither members nor offsets.
    fn expire_offsets(&self) {
        let ms = now_ms();
        let mut groups = self.groups.lock();
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for group in groups.values_mut() {
            for (topic, partition) in group.expire_offsets(ms, self.retention_ms) {
                records.push((store::offset_key(&group.id, &topic, partition), None));
            }
            if group.is_empty() && group.offsets.is_empty() && group.members.is_empty() {
                records.push((store::group_key(&group.id), None));
                gone.push(group.id.clone());
            }
        }
        if records.is_empty() {
            return;
        }
        if self.append(records).is_ok() {
            for id in gone {
                groups.remove(&id);
            }
        }
    }

    // ------------------------------------------------------------ the offsets topic

    fn persist_if_dirty(&self, group: &mut Group) {
        if !group.take_dirty() {
            return;
        }
        let value = (group.state != GroupState::Dead).then(|| store::group_value(&group.stored()));
        // A failed write is logged by append; members keep working, and a restart before the
        // next successful write would rebalance the group.
        let _ = self.append(vec![(store::group_key(&group.id), value)]);
    }

    /// Appends records as one batch; returns the offset after it.
    /// COORDINATOR_NOT_AVAILABLE until the offsets topic exists (clients then look up the
    /// coordinator, which creates it).
    fn append(&self, records: Vec<KeyValue>) -> Result<i64, ErrorCode> {
        self.log.append(records, None)
    }

    pub(crate) async fn wait_durable(&self, end_offset: i64) -> Result<(), ErrorCode> {
        self.log.wait_durable(end_offset).await
    }
}

/// A group as DescribeGroups reports it.
pub(crate) struct GroupDescription {
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    pub(crate) members: Vec<group::DescribedMember>,
}

/// The records of offset commits, the offsets they store, and one error per commit (too
/// long metadata is refused, the others are accepted).
#[allow(clippy::type_complexity)]
fn commit_records(
    group_id: &str,
    commits: Vec<OffsetCommit>,
) -> (
    Vec<KeyValue>,
    Vec<((String, i32), CommittedOffset)>,
    Vec<Option<ErrorCode>>,
) {
    let now = now_ms();
    let mut errors = Vec::with_capacity(commits.len());
    let mut records = Vec::new();
    let mut accepted = Vec::new();
    for c in commits {
        if c.metadata.len() > OFFSET_METADATA_MAX_BYTES {
            errors.push(Some(ErrorCode::OffsetMetadataTooLarge));
            continue;
        }
        let value = CommittedOffset {
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata,
            commit_timestamp_ms: now,
        };
        records.push((
            store::offset_key(group_id, &c.topic, c.partition),
            Some(store::offset_value(&value)),
        ));
        accepted.push(((c.topic, c.partition), value));
        errors.push(None);
    }
    (records, accepted, errors)
}

/// The commits that passed validation failed after all (their write or fsync): they get
/// `code`, the others keep their own error.
fn fail_accepted(errors: Vec<Option<ErrorCode>>, code: ErrorCode) -> Vec<Option<ErrorCode>> {
    errors.into_iter().map(|e| e.or(Some(code))).collect()
}

/// Applies one replayed record; `producer`: it was written in that producer's transaction.
fn apply(
    groups: &mut HashMap<String, Group>,
    record: StoreRecord,
    producer: Option<i64>,
    limits: GroupLimits,
    now: Instant,
    now_ms: i64,
) {
    match record {
        StoreRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, limits, now_ms));
            match (value, producer) {
                (Some(v), Some(pid)) => {
                    g.pending_txn_offsets
                        .entry(pid)
                        .or_default()
                        .insert((topic, partition), v);
                }
                (Some(v), None) => {
                    g.offsets.insert((topic, partition), v);
                }
                (None, _) => {
                    g.offsets.remove(&(topic, partition));
                }
            }
        }
        StoreRecord::Group { group, value } => match value {
            Some(stored) => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, limits, now_ms));
                g.restore(stored, now);
            }
            None => {
                groups.remove(&group);
            }
        },
    }
}

/// Runs the group timers until `shutdown` changes.
pub(crate) async fn run_timers(
    state: Arc<crate::state::BrokerState>,
    retention_check: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(GROUP_TICK);
    let mut expiry = tokio::time::interval(retention_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => state.groups.tick(),
            _ = expiry.tick() => state.groups.expire_offsets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(partition: i32, offset: i64) -> OffsetCommit {
        OffsetCommit {
            topic: "orders".into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: format!("at {offset}"),
        }
    }

    #[tokio::test]
    async fn commits_survive_compaction_of_the_offsets_topic_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            unsafe_disable_fsync: true,
            ..BrokerConfig::with_data_dir(dir.path())
        };
        let topics = TopicRegistry::open(dir.path(), &config).unwrap();
        let coordinator = GroupCoordinator::open(&topics, &config).unwrap();
        coordinator.ensure_offsets_topic(&topics).unwrap();
        for offset in 0..60 {
            let errors = coordinator
                .commit("g", "", None, -1, vec![commit((offset % 3) as i32, offset)])
                .await;
            assert_eq!(errors, vec![None]);
        }
        // A pass of the log cleaner (`crate::cleaner`) over the sealed log.
        let partition = coordinator.log.partition().unwrap();
        let records = partition.with_log(|log| {
            log.roll(0).unwrap();
            let options = brook_storage::CleanOptions {
                map_bytes: 1 << 20,
                ..brook_storage::CleanOptions::default()
            };
            log.clean(log.log_end_offset(), &options).unwrap();
            let mut records = 0;
            for chunk in log.read(log.log_start_offset(), usize::MAX).unwrap() {
                for view in brook_protocol::batch::Batches::new(&chunk) {
                    records += view.records_count();
                }
            }
            records
        });
        // The latest commit of each of the three partitions (a group that never joined has
        // no metadata record).
        assert_eq!(records, 3);
        drop(coordinator);
        topics.close();

        let topics = TopicRegistry::open(dir.path(), &config).unwrap();
        let coordinator = GroupCoordinator::open(&topics, &config).unwrap();
        let committed = coordinator.committed("g", None).unwrap();
        let got: Vec<(i32, i64, String)> = committed
            .into_iter()
            .map(|((_, p), o)| (p, o.offset, o.metadata))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 57, "at 57".to_string()),
                (1, 58, "at 58".to_string()),
                (2, 59, "at 59".to_string())
            ]
        );
        topics.close();
    }

    #[tokio::test]
    async fn deleted_groups_stay_deleted_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            unsafe_disable_fsync: true,
            ..BrokerConfig::with_data_dir(dir.path())
        };
        let topics = TopicRegistry::open(dir.path(), &config).unwrap();
        let coordinator = GroupCoordinator::open(&topics, &config).unwrap();
        assert_eq!(
            coordinator
                .commit("keep", "", None, -1, vec![commit(0, 1)])
                .await,
            vec![Some(ErrorCode::CoordinatorNotAvailable)],
            "no offsets topic before the first FindCoordinator"
        );
        assert!(topics.get(OFFSETS_TOPIC).is_none());
        coordinator.ensure_offsets_topic(&topics).unwrap();
        coordinator
            .commit("keep", "", None, -1, vec![commit(0, 5)])
            .await;
        coordinator
            .commit("drop", "", None, -1, vec![commit(0, 7)])
            .await;
        assert_eq!(coordinator.delete_group("drop"), None);
        assert_eq!(
            coordinator.delete_group("drop"),
            Some(ErrorCode::GroupIdNotFound)
        );
        drop(coordinator);
        topics.close();
        let topics = TopicRegistry::open(dir.path(), &config).unwrap();
        let coordinator = GroupCoordinator::open(&topics, &config).unwrap();
        assert!(coordinator.committed("drop", None).is_none());
        assert_eq!(coordinator.committed("keep", None).unwrap().len(), 1);
        assert_eq!(
            coordinator
                .list()
                .into_iter()
                .map(|g| g.0)
                .collect::<Vec<_>>(),
            vec!["keep".to_string()]
        );
        topics.close();
    }
}
