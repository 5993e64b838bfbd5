//! One consumer group's state machine (Kafka's classic group protocol).
//!
//! Pure logic: every operation takes the current time, and answers either at once or through
//! a oneshot channel that a later operation (another member's join, the leader's sync, a
//! timeout seen by [`Group::tick`]) completes. The coordinator owns the groups, calls
//! [`Group::tick`] periodically, and persists what [`Group::take_dirty`] reports.
//!
//! States and transitions follow Kafka's `ClassicGroup`:
//! - `Empty`: no members (offsets may still be stored). A join moves it to
//!   `PreparingRebalance` after `group.initial.rebalance.delay.ms`.
//! - `PreparingRebalance`: waiting for every known member to (re)join, up to the largest
//!   rebalance timeout; members that did not rejoin are removed when it ends.
//! - `CompletingRebalance`: a new generation is chosen; waiting for the leader's SyncGroup
//!   with the assignments.
//! - `Stable`: assignments handed out; members heartbeat.
//! - `Dead`: deleted (only seen by requests racing with DeleteGroups).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use brook_protocol::ErrorCode;
use bytes::Bytes;
use tokio::sync::oneshot;

/// A member awaiting its join result for more than this is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`) when it is new to the group.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Limits from the broker config that a join is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupLimits {
    pub(crate) initial_rebalance_delay: Duration,
    pub(crate) min_session_timeout_ms: i32,
    pub(crate) max_session_timeout_ms: i32,
    pub(crate) max_size: usize,
}

/// A JoinGroup request as the state machine sees it.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED and its new id.
    pub(crate) require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a rejoining static leader may be told to skip assigning.
    pub(crate) supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinResult {
    /// `None` on success.
    pub(crate) error: Option<ErrorCode>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) skip_assignment: bool,
    pub(crate) member_id: String,
    /// Only the leader gets the members (with their metadata for the chosen protocol).
    pub(crate) members: Vec<JoinedMember>,
}

impl JoinResult {
    pub(crate) fn error(error: ErrorCode, member_id: &str) -> Self {
        JoinResult {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SyncRequest {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    /// Only the leader sends assignments.
    pub(crate) assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncResult {
    /// `None` on success.
    pub(crate) error: Option<ErrorCode>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncResult {
    pub(crate) fn error(error: ErrorCode) -> Self {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer now, or one that a later event delivers.
pub(crate) enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// One member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    /// Protocol names with their metadata, in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    /// Whether the member joined in the current rebalance (not yet part of a generation).
    is_new: bool,
    last_heartbeat: Instant,
}

impl Member {
    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `shouldKeepAlive`: members waiting on the coordinator are not expired by
    /// their session timeout.
    fn alive_at(&self, now: Instant) -> bool {
        if self.awaiting_join() {
            !self.is_new || now < self.last_heartbeat + NEW_MEMBER_JOIN_TIMEOUT
        } else {
            self.sync_waiter.is_some()
                || now < self.last_heartbeat + millis(self.session_timeout_ms)
        }
    }
}

/// Member state restored from the offsets topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) subscription: Bytes,
    pub(crate) assignment: Bytes,
}

/// A group's durable state (Kafka's GroupMetadata record).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredGroup {
    pub(crate) protocol_type: String,
    pub(crate) generation: i32,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) state_timestamp_ms: i64,
    pub(crate) members: Vec<StoredMember>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp_ms: i64,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they expire.
    pending: HashMap<String, Instant>,
    /// Static members: instance id to member id.
    static_members: HashMap<String, String>,
    /// Members that have not sent SyncGroup in this generation's CompletingRebalance.
    pending_sync: Vec<String>,
    /// PreparingRebalance: when it ends even if members are missing.
    rebalance_deadline: Option<Instant>,
    /// Initial rebalance of an empty group: the join completes no earlier than this.
    delay_until: Option<Instant>,
    /// CompletingRebalance: members that did not sync by then are removed.
    sync_deadline: Option<Instant>,
    /// Wall-clock time of the last state change (Kafka's currentStateTimestamp).
    pub(crate) state_timestamp_ms: i64,
    pub(crate) offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Offsets committed in a transaction (TxnOffsetCommit) that has not ended yet, by
    /// producer id: they replace `offsets` when the transaction commits and are dropped when
    /// it aborts.
    pub(crate) pending_txn_offsets: HashMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
    /// The durable group state changed and must be written.
    dirty: bool,
    limits: GroupLimits,
}

impl Group {
    pub(crate) fn new(id: &str, limits: GroupLimits, now_ms: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: Vec::new(),
            rebalance_deadline: None,
            delay_until: None,
            sync_deadline: None,
            state_timestamp_ms: now_ms,
            offsets: BTreeMap::new(),
            pending_txn_offsets: HashMap::new(),
            dirty: false,
            limits,
        }
    }

    /// The transaction of `producer_id` ended: its pending offsets become the committed
    /// ones (`commit`) or are dropped.
    pub(crate) fn complete_txn_offsets(&mut self, producer_id: i64, commit: bool) {
        if let Some(pending) = self.pending_txn_offsets.remove(&producer_id) {
            if commit {
                self.offsets.extend(pending);
            }
        }
    }

    /// Whether a transaction has uncommitted offsets for `partition` (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub(crate) fn has_pending_offset(&self, partition: &(String, i32)) -> bool {
        self.pending_txn_offsets
            .values()
            .any(|offsets| offsets.contains_key(partition))
    }

    /// Restores a group from its stored record: Stable with its members if it had any (each
    /// gets a fresh session), else Empty.
    pub(crate) fn restore(&mut self, stored: StoredGroup, now: Instant) {
        self.protocol_type = Some(stored.protocol_type.clone()).filter(|t| !t.is_empty());
        self.generation = stored.generation;
        self.protocol = stored.protocol.clone();
        self.leader = stored.leader;
        self.state_timestamp_ms = stored.state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        for m in stored.members {
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocols = stored
                .protocol
                .clone()
                .map(|p| vec![(p, m.subscription.clone())])
                .unwrap_or_default();
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    is_new: false,
                    last_heartbeat: now,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// The group's durable state, for the offsets topic.
    pub(crate) fn stored(&self) -> StoredGroup {
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: self
                        .protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Whether the durable state changed since the last call.
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// FENCED_INSTANCE_ID when `instance_id` belongs to another member id; UNKNOWN_MEMBER_ID
    /// when the member is not in the group.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<ErrorCode> {
        if let Some(instance) = instance_id {
            if let Some(current) = self.static_members.get(instance) {
                if current != member_id {
                    return Some(ErrorCode::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Some(ErrorCode::UnknownMemberId);
        }
        None
    }

    // ---------------------------------------------------------------- JoinGroup

    pub(crate) fn join(
        &mut self,
        req: JoinRequest,
        new_member_id: impl FnOnce() -> String,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let refuse = |error| Reply::Now(JoinResult::error(error, &req.member_id));
        if self.state == GroupState::Dead {
            return refuse(ErrorCode::CoordinatorNotAvailable);
        }
        if req.session_timeout_ms < self.limits.min_session_timeout_ms
            || req.session_timeout_ms > self.limits.max_session_timeout_ms
        {
            return refuse(ErrorCode::InvalidSessionTimeout);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() || !self.supports(&req) {
            return refuse(ErrorCode::InconsistentGroupProtocol);
        }
        let known = !req.member_id.is_empty();
        if !known || self.pending.contains_key(&req.member_id) {
            let static_rejoin = req
                .instance_id
                .as_ref()
                .is_some_and(|i| self.static_members.contains_key(i));
            if !static_rejoin && self.members.len() >= self.limits.max_size {
                return refuse(ErrorCode::GroupMaxSizeReached);
            }
        }
        if !known {
            self.join_unknown(req, new_member_id(), now, now_ms)
        } else {
            self.join_known(req, now, now_ms)
        }
    }

    /// Whether the request's protocols fit the group: same protocol type, and (once the group
    /// has members) at least one protocol every member supports.
    fn supports(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.member_id != req.member_id)
            .collect();
        req.protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn join_unknown(
        &mut self,
        req: JoinRequest,
        member_id: String,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(req, &old_id, member_id, now, now_ms);
            }
            // A new static member joins right away (no MEMBER_ID_REQUIRED round).
            return self.add_member_and_rebalance(req, member_id, now, now_ms);
        }
        if req.require_known_member_id {
            self.pending
                .insert(member_id.clone(), now + millis(req.session_timeout_ms));
            return Reply::Now(JoinResult::error(ErrorCode::MemberIdRequired, &member_id));
        }
        self.add_member_and_rebalance(req, member_id, now, now_ms)
    }

    fn join_known(&mut self, req: JoinRequest, now: Instant, now_ms: i64) -> Reply<JoinResult> {
        let member_id = req.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(req, member_id, now, now_ms);
        }
        if let Some(error) = self.validate_member(&member_id, req.instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(error, &member_id));
        }
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, now, now_ms),
            GroupState::CompletingRebalance => {
                let same = self
                    .members
                    .get(&member_id)
                    .is_some_and(|m| m.same_protocols(&req.protocols));
                if same {
                    // A retry of a join whose answer was lost: answer it again.
                    Reply::Now(self.join_result_for(&member_id))
                } else {
                    self.update_member_and_rebalance(req, now, now_ms)
                }
            }
            GroupState::Stable => {
                let is_leader = self.leader.as_deref() == Some(member_id.as_str());
                let same = self
                    .members
                    .get(&member_id)
                    .is_some_and(|m| m.same_protocols(&req.protocols));
                if is_leader || !same {
                    self.update_member_and_rebalance(req, now, now_ms)
                } else {
                    // A follower rejoining with unchanged metadata gets the current generation.
                    Reply::Now(self.join_result_for(&member_id))
                }
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(ErrorCode::UnknownMemberId, &member_id))
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        // As in Kafka, the first member to join leads until it leaves.
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                is_new: true,
                last_heartbeat: now,
            },
        );
        if self.state == GroupState::PreparingRebalance {
            // A new member during the initial delay extends it (up to the rebalance timeout).
            if let (Some(until), Some(deadline)) = (self.delay_until, self.rebalance_deadline) {
                let extended = now + self.limits.initial_rebalance_delay;
                self.delay_until = Some(extended.min(deadline).max(until));
            }
        }
        self.prepare_rebalance(now, now_ms);
        self.try_complete_join(now, now_ms);
        Reply::Later(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.last_heartbeat = now;
            m.join_waiter = Some(tx);
        }
        self.prepare_rebalance(now, now_ms);
        self.try_complete_join(now, now_ms);
        Reply::Later(rx)
    }

    /// KIP-345: a static member restarting with a new member id takes the old id's place.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        new_id: String,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let Some(mut member) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(req, new_id, now, now_ms);
        };
        // Whoever waited under the old id is fenced.
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(ErrorCode::FencedInstanceId, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(ErrorCode::FencedInstanceId));
        }
        let old_leader = self.leader.clone();
        let was_leader = old_leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.pending_sync.retain(|m| m != old_id);
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let protocols_changed = !member.same_protocols(&req.protocols);
        member.member_id = new_id.clone();
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.last_heartbeat = now;
        self.members.insert(new_id.clone(), member);
        self.dirty = true;
        match self.state {
            GroupState::Stable if !protocols_changed => {
                // Same subscription: no rebalance. The old leader id is returned so that a
                // rejoining leader does not compute an assignment a stable group would not
                // hand out, unless it can be told to skip assigning (v9).
                let skip = was_leader && req.supports_skip_assignment;
                let mut result = self.join_result_for(&new_id);
                result.leader = old_leader.unwrap_or_default();
                if skip {
                    result.skip_assignment = true;
                    result.members = self.member_list();
                    result.leader = new_id.clone();
                } else {
                    result.members.clear();
                }
                Reply::Now(result)
            }
            GroupState::PreparingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.try_complete_join(now, now_ms);
                Reply::Later(rx)
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.prepare_rebalance(now, now_ms);
                self.try_complete_join(now, now_ms);
                Reply::Later(rx)
            }
        }
    }

    /// Moves to PreparingRebalance (from Empty, Stable or CompletingRebalance).
    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::PreparingRebalance | GroupState::Dead => return,
            GroupState::CompletingRebalance => {
                // The generation being synced is abandoned.
                for m in self.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncResult::error(ErrorCode::RebalanceInProgress));
                    }
                }
                self.pending_sync.clear();
                self.sync_deadline = None;
            }
            GroupState::Empty | GroupState::Stable => {}
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        let deadline = now + millis(timeout);
        self.rebalance_deadline = Some(deadline);
        self.delay_until = (self.state == GroupState::Empty
            && !self.limits.initial_rebalance_delay.is_zero())
        .then(|| (now + self.limits.initial_rebalance_delay).min(deadline));
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    /// Completes the join phase when every known member has rejoined (and no initial delay
    /// is running), or when the rebalance timeout has passed.
    fn try_complete_join(&mut self, now: Instant, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let timed_out = self.rebalance_deadline.is_some_and(|d| now >= d);
        let ready = match self.delay_until {
            Some(until) => now >= until,
            None => self.members.values().all(Member::awaiting_join) && self.pending.is_empty(),
        };
        if ready || timed_out {
            self.complete_join(now, now_ms);
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64) {
        // Members that did not rejoin in time leave the group.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.rebalance_deadline = None;
        self.delay_until = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            // Kafka keeps the protocol type of a group that became empty.
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            self.dirty = true;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let rebalance_timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.sync_deadline = Some(now + millis(rebalance_timeout));
        self.pending_sync = self.members.keys().cloned().collect();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.is_new = false;
                m.last_heartbeat = now;
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(result);
                }
            }
        }
    }

    /// Each member votes for its most preferred protocol among those all members support.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        // Ties go to the earlier candidate (the first member's preference order).
        let mut best: Option<(&String, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(n, _)| n.clone())
    }

    fn member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if is_leader {
                self.member_list()
            } else {
                Vec::new()
            },
        }
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(ErrorCode::UnknownMemberId, member_id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(ErrorCode::UnknownMemberId));
            }
        }
        self.pending_sync.retain(|m| m != member_id);
        if self.leader.as_deref() == Some(member_id) {
            // Prefer a member that is already rejoining, so a rebalance need not wait.
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join())
                .or_else(|| self.members.values().next())
                .map(|m| m.member_id.clone());
        }
        self.dirty = true;
    }

    /// A member left (LeaveGroup or session expiry): rebalance the others.
    fn member_gone(&mut self, member_id: &str, now: Instant, now_ms: i64) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms)
            }
            _ => {}
        }
        self.try_complete_join(now, now_ms);
    }

    // ---------------------------------------------------------------- SyncGroup

    pub(crate) fn sync(
        &mut self,
        req: SyncRequest,
        now: Instant,
        now_ms: i64,
    ) -> Reply<SyncResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(SyncResult::error(ErrorCode::CoordinatorNotAvailable));
        }
        if let Some(error) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            return Reply::Now(SyncResult::error(error));
        }
        if req.generation != self.generation {
            return Reply::Now(SyncResult::error(ErrorCode::IllegalGeneration));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return Reply::Now(SyncResult::error(ErrorCode::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResult::error(ErrorCode::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResult::error(ErrorCode::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.pending_sync.retain(|m| m != &req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                    m.last_heartbeat = now;
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    self.complete_sync(now_ms);
                }
                Reply::Later(rx)
            }
            GroupState::Stable => {
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.last_heartbeat = now;
                }
                let assignment = self
                    .members
                    .get(&req.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Reply::Now(self.sync_result(assignment))
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// The leader's assignments are in: the generation is stable.
    fn complete_sync(&mut self, now_ms: i64) {
        self.set_state(GroupState::Stable, now_ms);
        self.sync_deadline = None;
        self.pending_sync.clear();
        self.dirty = true;
        let results: Vec<(String, SyncResult)> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), self.sync_result(m.assignment.clone())))
            .collect();
        for (id, result) in results {
            if let Some(w) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                let _ = w.send(result);
            }
        }
    }

    // ---------------------------------------------------------------- Heartbeat, LeaveGroup

    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ErrorCode> {
        if self.state == GroupState::Dead {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        if let Some(error) = self.validate_member(member_id, instance_id) {
            return Some(error);
        }
        if generation != self.generation {
            return Some(ErrorCode::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Some(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.touch(member_id, now);
                Some(ErrorCode::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.touch(member_id, now);
                None
            }
        }
    }

    fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
    }

    /// One member leaving (LeaveGroup). `member_id` may be empty for a static member named
    /// by `instance_id` (LeaveGroup v3+ from admin tools).
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
    ) -> Option<ErrorCode> {
        if self.state == GroupState::Dead {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return Some(ErrorCode::FencedInstanceId),
                None => return Some(ErrorCode::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return None;
        }
        if !self.members.contains_key(&id) {
            return Some(ErrorCode::UnknownMemberId);
        }
        self.member_gone(&id, now, now_ms);
        None
    }

    // ---------------------------------------------------------------- time

    /// Applies every timeout that has passed: initial delay and rebalance timeout, sync
    /// timeout, session expiry, and expiry of MEMBER_ID_REQUIRED ids.
    pub(crate) fn tick(&mut self, now: Instant, now_ms: i64) {
        self.pending.retain(|_, expires| now < *expires);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.alive_at(now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.member_gone(&id, now, now_ms);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            // Members that never sent SyncGroup are dropped; the rest rebalance again.
            let missing = std::mem::take(&mut self.pending_sync);
            tracing::info!(group = %self.id, ?missing, "members did not sync in time");
            for id in &missing {
                self.remove_member(id);
            }
            self.prepare_rebalance(now, now_ms);
        }
        self.try_complete_join(now, now_ms);
    }

    // ---------------------------------------------------------------- offsets

    /// Checks whether a commit from this member/generation may be stored (Kafka's
    /// `validateOffsetCommit`): the transactional checks, and no commit while the group
    /// completes a rebalance. Generation -1 with no member id is an admin or standalone
    /// commit, allowed only while the group is empty.
    pub(crate) fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<ErrorCode> {
        if let Some(error) = self.validate_txn_commit(member_id, instance_id, generation) {
            return Some(error);
        }
        if names_member(member_id, instance_id, generation) {
            if self.state == GroupState::CompletingRebalance {
                return Some(ErrorCode::RebalanceInProgress);
            }
            self.touch(member_id, now);
            None
        } else if !self.is_empty() {
            Some(ErrorCode::UnknownMemberId)
        } else {
            None
        }
    }

    /// TxnOffsetCommit's checks (Kafka's `validateOffsetCommit` for transactional commits):
    /// as a plain commit when the request names a member or generation (v3+), but without
    /// the rebalance check, and a commit naming neither is accepted even for a group with
    /// members (producers of v0-2 know no member).
    pub(crate) fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ErrorCode> {
        if self.state == GroupState::Dead {
            return Some(ErrorCode::CoordinatorNotAvailable);
        }
        if names_member(member_id, instance_id, generation) {
            if let Some(error) = self.validate_member(member_id, instance_id) {
                return Some(error);
            }
            if generation != self.generation {
                return Some(ErrorCode::IllegalGeneration);
            }
        }
        None
    }

    /// Removes offsets that expired under `offsets.retention.minutes`; returns their keys.
    /// Only groups without members expire offsets: the retention runs from when the group
    /// became empty (or from the commit, for groups that never had members).
    pub(crate) fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if !self.is_empty() {
            return Vec::new();
        }
        let from_state = self.protocol_type.is_some();
        let state_ts = self.state_timestamp_ms;
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, o)| {
                let base = if from_state {
                    state_ts.max(o.commit_timestamp_ms)
                } else {
                    o.commit_timestamp_ms
                };
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.offsets.remove(k);
        }
        expired
    }

    /// DeleteGroups: only a group without members can be deleted.
    pub(crate) fn can_delete(&self) -> Option<ErrorCode> {
        match self.state {
            GroupState::Dead => Some(ErrorCode::GroupIdNotFound),
            GroupState::Empty => None,
            _ => Some(ErrorCode::NonEmptyGroup),
        }
    }

    pub(crate) fn mark_dead(&mut self, now_ms: i64) {
        for id in self.members.keys().cloned().collect::<Vec<_>>() {
            self.remove_member(&id);
        }
        self.offsets.clear();
        self.set_state(GroupState::Dead, now_ms);
    }

    /// Topics the members are subscribed to, if the group uses the consumer protocol and its
    /// subscriptions parse.
    pub(crate) fn subscribed_topics(&self) -> Option<std::collections::HashSet<String>> {
        use brook_protocol::kafka_protocol::messages::ConsumerProtocolSubscription;
        use brook_protocol::kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = std::collections::HashSet::new();
        for m in self.members.values() {
            let mut metadata = m.metadata_for(protocol);
            if metadata.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            bytes::Buf::advance(&mut metadata, 2);
            let sub =
                ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// Members as DescribeGroups shows them: metadata and assignment only when stable.
    pub(crate) fn describe_members(&self) -> Vec<DescribedMember> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DescribedMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: Bytes,
    pub(crate) assignment: Bytes,
}

/// Whether a commit names a member or generation (and so must come from the current one);
/// a commit naming neither is an admin or standalone commit.
fn names_member(member_id: &str, instance_id: Option<&str>, generation: i32) -> bool {
    generation >= 0 || !member_id.is_empty() || instance_id.is_some()
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION_MS: i32 = 10_000;
    const REBALANCE_MS: i32 = 30_000;
    /// Lets the first two members join the same generation.
    const DELAY_MS: u64 = 100;

    fn limits(delay_ms: u64) -> GroupLimits {
        GroupLimits {
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: 100,
        }
    }

    fn request(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn now_result<T>(reply: Reply<T>) -> T {
        match reply {
            Reply::Now(r) => r,
            Reply::Later(_) => panic!("expected an immediate answer"),
        }
    }

    fn later<T>(reply: Reply<T>) -> oneshot::Receiver<T> {
        match reply {
            Reply::Later(rx) => rx,
            Reply::Now(_) => panic!("expected to wait"),
        }
    }

    /// Joins a new dynamic member through the MEMBER_ID_REQUIRED round; returns its id and
    /// the pending join.
    fn join_new(
        g: &mut Group,
        id: &str,
        protocols: &[&str],
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let first = now_result(g.join(request("", protocols), || id.to_string(), now, 0));
        assert_eq!(first.error, Some(ErrorCode::MemberIdRequired));
        assert_eq!(first.member_id, id);
        later(g.join(request(id, protocols), || unreachable!(), now, 0))
    }

    fn sync(
        g: &mut Group,
        id: &str,
        generation: i32,
        assignments: &[(&str, &str)],
        now: Instant,
    ) -> Reply<SyncResult> {
        g.sync(
            SyncRequest {
                member_id: id.into(),
                instance_id: None,
                generation,
                protocol_type: None,
                protocol_name: None,
                assignments: assignments
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                    .collect(),
            },
            now,
            0,
        )
    }

    fn after_delay(t: Instant) -> Instant {
        t + Duration::from_millis(DELAY_MS)
    }

    /// Makes `g` a stable group of `a` (leader) and `b`; returns the generation.
    fn stable_pair(g: &mut Group, t: Instant) -> i32 {
        let mut ja = join_new(g, "a", &["range"], t);
        let mut jb = join_new(g, "b", &["range"], t);
        g.tick(after_delay(t), 0);
        let ra = ja.try_recv().unwrap();
        let rb = jb.try_recv().unwrap();
        assert_eq!(ra.leader, "a");
        assert_eq!(ra.members.len(), 2);
        assert!(rb.members.is_empty());
        let generation = ra.generation;
        let mut sb = later(sync(g, "b", generation, &[], t));
        let sa = later(sync(g, "a", generation, &[("a", "A"), ("b", "B")], t));
        drop(sa);
        assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from("B"));
        assert_eq!(g.state, GroupState::Stable);
        generation
    }

    #[test]
    fn member_id_required_then_join_completes_when_all_members_joined() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(0), 0);
        let mut ja = join_new(&mut g, "a", &["range"], t);
        let r = ja.try_recv().unwrap();
        assert_eq!(r.error, None);
        assert_eq!(r.generation, 1);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(g.state, GroupState::CompletingRebalance);
    }

    #[test]
    fn initial_delay_holds_the_first_rebalance_and_is_extended_by_joins() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(3_000), 0);
        let mut ja = join_new(&mut g, "a", &["range"], t);
        g.tick(t + Duration::from_millis(2_000), 0);
        assert!(ja.try_recv().is_err(), "still in the initial delay");
        let mut jb = join_new(&mut g, "b", &["range"], t + Duration::from_millis(2_000));
        g.tick(t + Duration::from_millis(3_500), 0);
        assert!(ja.try_recv().is_err(), "the second join extended the delay");
        g.tick(t + Duration::from_millis(5_001), 0);
        assert_eq!(ja.try_recv().unwrap().members.len(), 2);
        assert_eq!(jb.try_recv().unwrap().generation, 1);
    }

    #[test]
    fn join_during_rebalance_waits_for_the_members_that_must_rejoin() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let generation = stable_pair(&mut g, t);
        // A third member starts a rebalance: a and b must rejoin before it completes.
        let mut jc = join_new(&mut g, "c", &["range"], t);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat("a", None, generation, t),
            Some(ErrorCode::RebalanceInProgress)
        );
        let mut ja = later(g.join(request("a", &["range"]), || unreachable!(), t, 0));
        assert!(jc.try_recv().is_err(), "b has not rejoined yet");
        let mut jb = later(g.join(request("b", &["range"]), || unreachable!(), t, 0));
        let (ra, rb, rc) = (
            ja.try_recv().unwrap(),
            jb.try_recv().unwrap(),
            jc.try_recv().unwrap(),
        );
        assert_eq!(ra.generation, generation + 1);
        assert_eq!(rb.generation, generation + 1);
        assert_eq!(rc.generation, generation + 1);
        assert_eq!(ra.members.len(), 3, "a stays leader");
    }

    #[test]
    fn members_that_do_not_rejoin_are_removed_at_the_rebalance_timeout() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        stable_pair(&mut g, t);
        let mut ja = later(g.join(
            request("a", &["roundrobin", "range"]),
            || unreachable!(),
            t,
            0,
        ));
        g.tick(t + Duration::from_millis(5_000), 0);
        assert!(ja.try_recv().is_err());
        g.tick(t + Duration::from_millis(REBALANCE_MS as u64 + 1), 0);
        let r = ja.try_recv().unwrap();
        assert_eq!(r.members.len(), 1);
        assert!(!g.members.contains_key("b"));
        // With b gone, a's first preference wins the vote.
        assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    }

    #[test]
    fn heartbeat_with_a_stale_generation_or_unknown_member_is_refused() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let generation = stable_pair(&mut g, t);
        assert_eq!(g.heartbeat("a", None, generation, t), None);
        assert_eq!(
            g.heartbeat("a", None, generation - 1, t),
            Some(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("zz", None, generation, t),
            Some(ErrorCode::UnknownMemberId)
        );
        assert!(matches!(
            now_result(sync(&mut g, "a", generation + 5, &[], t)).error,
            Some(ErrorCode::IllegalGeneration)
        ));
    }

    #[test]
    fn session_expiry_removes_the_member_and_rebalances() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let generation = stable_pair(&mut g, t);
        let later_t = t + Duration::from_millis(SESSION_MS as u64 - 1);
        assert_eq!(g.heartbeat("a", None, generation, later_t), None);
        g.tick(t + Duration::from_millis(SESSION_MS as u64 + 1), 0);
        assert!(!g.members.contains_key("b"), "b sent no heartbeat");
        assert!(g.members.contains_key("a"));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat("b", None, generation, later_t),
            Some(ErrorCode::UnknownMemberId)
        );
    }

    #[test]
    fn leader_leaving_mid_sync_fails_the_waiting_followers_and_rebalances() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let mut ja = join_new(&mut g, "a", &["range"], t);
        let mut jb = join_new(&mut g, "b", &["range"], t);
        g.tick(after_delay(t), 0);
        let generation = ja.try_recv().unwrap().generation;
        jb.try_recv().unwrap();
        let mut sb = later(sync(&mut g, "b", generation, &[], t));
        assert_eq!(g.leave("a", None, t, 0), None);
        assert_eq!(
            sb.try_recv().unwrap().error,
            Some(ErrorCode::RebalanceInProgress)
        );
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let mut jb2 = later(g.join(request("b", &["range"]), || unreachable!(), t, 0));
        let r = jb2.try_recv().unwrap();
        assert_eq!(r.leader, "b", "the remaining member leads");
        assert_eq!(r.generation, generation + 1);
    }

    #[test]
    fn unknown_or_inconsistent_protocols_are_refused() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        stable_pair(&mut g, t);
        let mut other_type = request("", &["range"]);
        other_type.protocol_type = "connect".into();
        let r = now_result(g.join(other_type, || "x".into(), t, 0));
        assert_eq!(r.error, Some(ErrorCode::InconsistentGroupProtocol));
        let r = now_result(g.join(request("", &["sticky"]), || "x".into(), t, 0));
        assert_eq!(r.error, Some(ErrorCode::InconsistentGroupProtocol));
        let mut no_type = request("", &["range"]);
        no_type.protocol_type = String::new();
        let r = now_result(Group::new("h", limits(0), 0).join(no_type, || "x".into(), t, 0));
        assert_eq!(r.error, Some(ErrorCode::InconsistentGroupProtocol));
        let mut short = request("", &["range"]);
        short.session_timeout_ms = 100;
        let r = now_result(g.join(short, || "x".into(), t, 0));
        assert_eq!(r.error, Some(ErrorCode::InvalidSessionTimeout));
    }

    #[test]
    fn static_member_restart_gets_its_assignment_back_without_a_rebalance() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let mut req = request("", &["range"]);
        req.instance_id = Some("node-1".into());
        let mut ja = later(g.join(req.clone(), || "s-1".into(), t, 0));
        let mut jb = join_new(&mut g, "b", &["range"], t);
        g.tick(after_delay(t), 0);
        let generation = ja.try_recv().unwrap().generation;
        jb.try_recv().unwrap();
        drop(later(sync(&mut g, "b", generation, &[], t)));
        drop(later(sync(
            &mut g,
            "s-1",
            generation,
            &[("s-1", "S"), ("b", "B")],
            t,
        )));
        assert_eq!(g.state, GroupState::Stable);
        // Restart: the static member comes back with no member id and gets a new one.
        let r = now_result(g.join(req.clone(), || "s-2".into(), t, 0));
        assert_eq!(r.error, None);
        assert_eq!(r.member_id, "s-2");
        assert_eq!(r.generation, generation, "no new generation");
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            now_result(sync(&mut g, "s-2", generation, &[], t)).assignment,
            Bytes::from("S")
        );
        // The old member id is fenced; b was never disturbed.
        assert_eq!(
            g.heartbeat("s-1", Some("node-1"), generation, t),
            Some(ErrorCode::FencedInstanceId)
        );
        assert_eq!(g.heartbeat("b", None, generation, t), None);
    }

    #[test]
    fn commits_are_checked_against_membership_and_generation() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        // An empty group accepts admin commits (generation -1, no member).
        assert_eq!(g.validate_commit("", None, -1, t), None);
        let generation = stable_pair(&mut g, t);
        assert_eq!(g.validate_commit("a", None, generation, t), None);
        assert_eq!(
            g.validate_commit("a", None, generation - 1, t),
            Some(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.validate_commit("", None, -1, t),
            Some(ErrorCode::UnknownMemberId),
            "a group with members takes commits only from members"
        );
        assert_eq!(
            g.validate_commit("zz", None, generation, t),
            Some(ErrorCode::UnknownMemberId)
        );
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_retention() {
        let mut g = Group::new("g", limits(0), 1_000);
        g.offsets.insert(
            ("t".into(), 0),
            CommittedOffset {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1_000,
            },
        );
        assert!(g.expire_offsets(1_500, 1_000).is_empty());
        assert_eq!(g.expire_offsets(2_000, 1_000), vec![("t".to_string(), 0)]);
        assert!(g.offsets.is_empty());
    }

    #[test]
    fn restored_groups_are_stable_with_their_members_and_assignments() {
        let t = Instant::now();
        let mut g = Group::new("g", limits(DELAY_MS), 0);
        let generation = stable_pair(&mut g, t);
        let stored = g.stored();
        let mut restored = Group::new("g", limits(0), 0);
        restored.restore(stored, t);
        assert_eq!(restored.state, GroupState::Stable);
        assert_eq!(restored.generation, generation);
        assert_eq!(restored.heartbeat("b", None, generation, t), None);
        assert_eq!(
            now_result(sync(&mut restored, "b", generation, &[], t)).assignment,
            Bytes::from("B")
        );
    }
}
