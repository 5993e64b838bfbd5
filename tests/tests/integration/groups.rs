//! Consumer groups (the classic protocol) with real clients against an in-process broker:
//! kafkajs and kafka-python scripts, and librdkafka through the `rdkafka` crate: partitions
//! split among members with the `range` and `cooperative-sticky` assignors, a static member
//! restarting without a rebalance, synchronous and asynchronous commits with metadata, and
//! committed offsets and a live member across a broker restart.
//!
//! Group state is checked from the outside with DescribeGroups (v5, the raw client), which
//! shows each member's instance id and the assignment the coordinator handed out.
//!
//! Every test has its own topic and group, and a time limit: a test body runs on its own
//! thread and the test fails when it has not finished in time (a hung client cannot block
//! the run).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::{
    ConsumerProtocolAssignment, DescribeGroupsRequest, GroupId,
};
use brook_protocol::kafka_protocol::protocol::{Decodable, StrBytes};
use brook_tests::RawClient;
use bytes::Buf;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::external_clients::{kafkajs_script, python_script};
use crate::librdkafka::create_topic;

/// Session timeout of librdkafka members (the broker's minimum is 6000 ms).
const SESSION_TIMEOUT_MS: &str = "6000";
/// Session timeout of the static members, which must come back within it.
const STATIC_SESSION_TIMEOUT_MS: &str = "10000";
/// Heartbeats this often, so a member notices a rebalance quickly.
const HEARTBEAT_MS: &str = "500";
/// How long one wait for a group to settle or for records may take.
const SETTLE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Harness: time limits, external scripts
// ---------------------------------------------------------------------------------------------

/// Runs `test` on its own thread and fails if it has not finished within `limit`. A panic in
/// `test` fails the calling test with the original message.
fn with_time_limit(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("group-test-body".into())
        .spawn(move || {
            test();
            let _ = done_tx.send(());
        })
        .unwrap();
    match done_rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        // The body's thread is left behind: it holds a client or the broker that hangs.
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

#[test]
fn kafkajs_group_lifecycle() {
    kafkajs_script(
        "kafkajs_groups.js",
        "kafkajs consumer groups",
        "consumer groups: passed",
        75,
    );
}

#[test]
fn kafka_python_auto_commit_resume() {
    python_script(
        "kafka_python_groups.py",
        "kafka-python consumer groups",
        "kafka",
        "consumer groups: passed",
    );
}

// ---------------------------------------------------------------------------------------------
// librdkafka helpers
// ---------------------------------------------------------------------------------------------

/// Counts a consumer's rebalance callbacks.
#[derive(Default)]
struct Tracker {
    assigns: AtomicUsize,
    revokes: AtomicUsize,
    rebalance_errors: AtomicUsize,
}

impl ClientContext for Tracker {}

impl ConsumerContext for Tracker {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigns.fetch_add(1, Ordering::SeqCst),
            Rebalance::Revoke(_) => self.revokes.fetch_add(1, Ordering::SeqCst),
            Rebalance::Error(_) => self.rebalance_errors.fetch_add(1, Ordering::SeqCst),
        };
    }
}

type GroupConsumer = BaseConsumer<Tracker>;

/// Committed offsets by partition: (offset, metadata); -1 for none.
type Offsets = BTreeMap<i32, (i64, String)>;

/// One record as a consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    partition: i32,
    offset: i64,
    value: String,
}

/// A subscribed group member and what it has read.
struct Member {
    name: String,
    consumer: GroupConsumer,
    topic: String,
    got: Vec<Rec>,
    /// Commit the consumed positions asynchronously after each poll that returned records.
    commit_as_it_goes: bool,
}

impl Member {
    fn join(name: &str, config: &ClientConfig, topic: &str) -> Member {
        let consumer: GroupConsumer = config.create_with_context(Tracker::default()).unwrap();
        consumer.subscribe(&[topic]).unwrap();
        Member {
            name: name.to_string(),
            consumer,
            topic: topic.to_string(),
            got: Vec::new(),
            commit_as_it_goes: false,
        }
    }

    /// Serves callbacks and reads what is there (a short wait, then without waiting).
    fn poll(&mut self) {
        let mut wait = Duration::from_millis(10);
        let mut read_any = false;
        for _ in 0..200 {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    self.got.push(Rec {
                        partition: m.partition(),
                        offset: m.offset(),
                        value: String::from_utf8_lossy(m.payload().unwrap_or_default())
                            .into_owned(),
                    });
                    read_any = true;
                }
                // Transient: a broker restart, a rebalance. The tests check outcomes.
                Some(Err(e)) => eprintln!("{}: consumer error: {e}", self.name),
            }
            wait = Duration::ZERO;
        }
        if read_any && self.commit_as_it_goes {
            // Fails during rebalances (the next one covers it); nothing to check here.
            let _ = self.consumer.commit_consumer_state(CommitMode::Async);
        }
    }

    /// The partitions of the test topic currently assigned.
    fn assigned(&self) -> BTreeSet<i32> {
        self.consumer
            .assignment()
            .unwrap()
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    fn tracker(&self) -> &Tracker {
        self.consumer.context()
    }

    fn describe(&self) -> String {
        let t = self.tracker();
        format!(
            "{}: assigned {:?}, read {}, assign/revoke/error callbacks {}/{}/{}",
            self.name,
            self.assigned(),
            self.got.len(),
            t.assigns.load(Ordering::SeqCst),
            t.revokes.load(Ordering::SeqCst),
            t.rebalance_errors.load(Ordering::SeqCst)
        )
    }
}

/// Polls every member in turn until `done` holds, failing after `limit` with what `what` and
/// the members' state say.
fn poll_until(
    members: &mut [Member],
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&[Member]) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        for m in members.iter_mut() {
            m.poll();
        }
        if done(members) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; {}",
            members
                .iter()
                .map(Member::describe)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

/// Polls every member in turn for `time` (lets heartbeats, rebalances and fetches happen).
fn poll_for(members: &mut [Member], time: Duration) {
    let until = Instant::now() + time;
    while Instant::now() < until {
        for m in members.iter_mut() {
            m.poll();
        }
    }
}

/// True when every member holds a nonempty share of `0..partitions` and each partition is
/// held by exactly one member.
fn split_exactly(members: &[Member], partitions: i32) -> bool {
    let mut all = Vec::new();
    for m in members {
        let a = m.assigned();
        if a.is_empty() {
            return false;
        }
        all.extend(a);
    }
    all.sort_unstable();
    all == (0..partitions).collect::<Vec<_>>()
}

fn member_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", HEARTBEAT_MS)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("reconnect.backoff.max.ms", "500");
    config
}

/// Produces `count` records `"{prefix}-{i}"` with record `i` on partition `i % partitions`;
/// returns (partition, value) of each.
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    prefix: &str,
    count: usize,
) -> Vec<(i32, String)> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..count {
        let partition = (i % partitions as usize) as i32;
        let key = format!("key-{i}");
        let value = format!("{prefix}-{i}");
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .partition(partition),
            )
            .expect("queued");
        producer.poll(Duration::ZERO);
        sent.push((partition, value));
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all delivered");
    sent
}

/// (partition, value) of records, sorted, for comparing with what was produced.
fn values(recs: &[Rec]) -> Vec<(i32, String)> {
    let mut v: Vec<_> = recs
        .iter()
        .map(|r| (r.partition, r.value.clone()))
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(i32, String)>) -> Vec<(i32, String)> {
    v.sort();
    v
}

/// partition -> (offset, metadata) of a list's entries; an entry without offset is -1.
fn offsets_of(tpl: &TopicPartitionList) -> Offsets {
    tpl.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                Offset::Invalid => -1,
                other => panic!(
                    "unexpected offset {other:?} for partition {}",
                    e.partition()
                ),
            };
            (e.partition(), (offset, e.metadata().to_string()))
        })
        .collect()
}

/// A list with `offsets` (partition -> (offset, metadata)) for `topic`.
fn commit_list(topic: &str, offsets: &[(i32, i64, &str)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset, metadata) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
        tpl.find_partition(topic, partition)
            .unwrap()
            .set_metadata(metadata);
    }
    tpl
}

/// The group's committed offsets for partitions `0..partitions` of `topic` (OffsetFetch).
fn committed(consumer: &GroupConsumer, topic: &str, partitions: i32) -> Offsets {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    offsets_of(&got)
}

fn expected_offsets(offsets: &[(i32, i64, &str)]) -> Offsets {
    offsets
        .iter()
        .map(|&(p, o, m)| (p, (o, m.to_string())))
        .collect()
}

/// A consumer with the group's id that never subscribes: for OffsetFetch and for commits as a
/// non-member.
fn outsider(bootstrap: &str, group: &str) -> GroupConsumer {
    member_config(bootstrap, group)
        .create_with_context(Tracker::default())
        .unwrap()
}

/// Commits the consumed positions synchronously; "nothing to commit" counts as success.
fn commit_positions(member: &Member) -> KafkaResult<()> {
    match member.consumer.commit_consumer_state(CommitMode::Sync) {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// DescribeGroups through the raw client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct DescribedMember {
    member_id: String,
    instance_id: Option<String>,
    partitions: BTreeSet<i32>,
}

#[derive(Debug)]
struct DescribedGroup {
    error_code: i16,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<DescribedMember>,
}

impl DescribedGroup {
    /// The members' assignments, sorted (to compare with the consumers' own view).
    fn assignments(&self) -> Vec<BTreeSet<i32>> {
        let mut v: Vec<_> = self.members.iter().map(|m| m.partitions.clone()).collect();
        v.sort();
        v
    }
}

/// DescribeGroups v5 for `group`; member assignments decoded for partitions of `topic`.
fn describe_group(bootstrap: &str, group: &str, topic: &str) -> DescribedGroup {
    let mut client = RawClient::connect(bootstrap).unwrap();
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = client.call(5, &request).unwrap();
    assert_eq!(response.groups.len(), 1, "{response:?}");
    let g = &response.groups[0];
    assert_eq!(g.group_id.as_str(), group);
    DescribedGroup {
        error_code: g.error_code,
        state: g.group_state.as_str().to_string(),
        protocol_type: g.protocol_type.as_str().to_string(),
        protocol: g.protocol_data.as_str().to_string(),
        members: g
            .members
            .iter()
            .map(|m| DescribedMember {
                member_id: m.member_id.as_str().to_string(),
                instance_id: m.group_instance_id.as_ref().map(|s| s.as_str().to_string()),
                partitions: decode_assignment(&m.member_assignment, topic),
            })
            .collect(),
    }
}

/// Decodes a ConsumerProtocolAssignment (version prefix, then the body).
fn decode_assignment(bytes: &bytes::Bytes, topic: &str) -> BTreeSet<i32> {
    if bytes.is_empty() {
        return BTreeSet::new();
    }
    let mut buf = bytes.clone();
    let version = buf.get_i16();
    // Newer versions only add fields at the end: read them as the newest known.
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3))
        .unwrap_or_else(|e| panic!("undecodable member assignment {bytes:?}: {e}"));
    assignment
        .assigned_partitions
        .iter()
        .filter(|tp| tp.topic.as_str() == topic)
        .flat_map(|tp| tp.partitions.iter().copied())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// librdkafka tests
// ---------------------------------------------------------------------------------------------

/// Two, then three members of one group share a 6-partition topic with `strategy`: every
/// partition goes to exactly one member, each member gets its even share, DescribeGroups
/// agrees with the members, and with commits after each read no record is lost.
fn members_share_partitions(strategy: &'static str, name: &'static str) {
    const PARTITIONS: i32 = 6;
    const BEFORE: usize = 300;
    const AFTER: usize = 300;
    with_time_limit(Duration::from_secs(80), move || {
        let broker = EmbeddedBroker::ephemeral().unwrap();
        let bootstrap = broker.bootstrap();
        let topic = format!("groups-{name}");
        let group = format!("groups-{name}-group");
        create_topic(&bootstrap, &topic, PARTITIONS);
        let mut sent = produce(&bootstrap, &topic, PARTITIONS, "before", BEFORE);

        let mut config = member_config(&bootstrap, &group);
        config.set("partition.assignment.strategy", strategy);
        let new_member = |name: &str| {
            let mut m = Member::join(name, &config, &topic);
            m.commit_as_it_goes = true;
            m
        };
        let cooperative = strategy == "cooperative-sticky";

        let mut members = vec![new_member("c1"), new_member("c2")];
        let mut previous: Vec<BTreeSet<i32>> = Vec::new();
        for n in [2usize, 3] {
            if n == 3 {
                members.push(new_member("c3"));
            }
            poll_until(
                &mut members,
                SETTLE,
                &format!("{n} members to split {PARTITIONS} partitions"),
                |ms| split_exactly(ms, PARTITIONS),
            );
            // Settled, not passing through: the split holds while heartbeats go on.
            let settled: Vec<_> = members.iter().map(Member::assigned).collect();
            poll_for(&mut members, Duration::from_millis(1500));
            let now: Vec<_> = members.iter().map(Member::assigned).collect();
            assert_eq!(now, settled, "{n} members: the assignment kept changing");
            for (m, a) in members.iter().zip(&now) {
                assert_eq!(
                    a.len(),
                    PARTITIONS as usize / n,
                    "{strategy} with {n} members: uneven share; {}",
                    m.describe()
                );
                assert_eq!(
                    matches!(
                        m.consumer.rebalance_protocol(),
                        RebalanceProtocol::Cooperative
                    ),
                    cooperative,
                    "{}: rebalance protocol (cooperative?) for {strategy}",
                    m.name
                );
            }
            if cooperative && n == 3 {
                // Sticky: the old members only gave partitions away.
                for (i, before) in previous.iter().enumerate() {
                    assert!(
                        now[i].is_subset(before),
                        "{}: cooperative-sticky moved partitions it kept: {before:?} -> {:?}",
                        members[i].name,
                        now[i]
                    );
                }
            }
            let described = describe_group(&bootstrap, &group, &topic);
            assert_eq!(described.error_code, 0, "{described:?}");
            assert_eq!(described.state, "Stable", "{described:?}");
            assert_eq!(described.protocol_type, "consumer", "{described:?}");
            assert_eq!(described.protocol, strategy, "{described:?}");
            assert_eq!(described.members.len(), n, "{described:?}");
            let mut mine = now.clone();
            mine.sort();
            assert_eq!(
                described.assignments(),
                mine,
                "DescribeGroups' assignments differ from the members' own"
            );
            previous = now;
        }

        // Records produced while three members consume; all of them, and the earlier ones,
        // are read at least once.
        sent.extend(produce(&bootstrap, &topic, PARTITIONS, "after", AFTER));
        let per_partition = ((BEFORE + AFTER) / PARTITIONS as usize) as i64;
        poll_until(
            &mut members,
            SETTLE,
            "every record to be read and every member to reach the end of its partitions",
            |ms| {
                let read: BTreeSet<(i32, i64)> = ms
                    .iter()
                    .flat_map(|m| m.got.iter().map(|r| (r.partition, r.offset)))
                    .collect();
                read.len() == BEFORE + AFTER
                    && ms.iter().all(|m| {
                        m.consumer
                            .position()
                            .unwrap()
                            .elements()
                            .iter()
                            .all(|e| e.offset() == Offset::Offset(per_partition))
                    })
            },
        );
        let mut read: Vec<(i32, String)> = members.iter().flat_map(|m| values(&m.got)).collect();
        read.sort();
        read.dedup();
        assert_eq!(read, sorted(sent), "records read by the group");

        // The last commits of each member: the group's offsets are at the end everywhere.
        for m in &members {
            commit_positions(m).unwrap_or_else(|e| panic!("{}: final commit: {e}", m.name));
        }
        let offsets = committed(&members[0].consumer, &topic, PARTITIONS);
        let expected: Offsets = (0..PARTITIONS)
            .map(|p| (p, (per_partition, String::new())))
            .collect();
        assert_eq!(offsets, expected, "committed offsets of the group");

        drop(members);
        broker.shutdown();
    });
}

#[test]
fn librdkafka_cooperative_sticky_members_share_partitions() {
    members_share_partitions("cooperative-sticky", "coop");
}

#[test]
fn librdkafka_range_members_share_partitions() {
    members_share_partitions("range", "range");
}

/// A static member (group.instance.id) that is closed (librdkafka sends no LeaveGroup for a
/// static member) and restarted within its session timeout gets its partitions back without
/// a rebalance: the other member sees no rebalance callback, keeps its member id, partitions
/// and generation (its commits are accepted), and DescribeGroups shows the same split.
#[test]
fn librdkafka_static_member_restart_keeps_assignment() {
    const PARTITIONS: i32 = 4;
    with_time_limit(Duration::from_secs(80), || {
        let broker = EmbeddedBroker::ephemeral().unwrap();
        let bootstrap = broker.bootstrap();
        let topic = "groups-static";
        let group = "groups-static-group";
        create_topic(&bootstrap, topic, PARTITIONS);
        let first = produce(&bootstrap, topic, PARTITIONS, "first", 40);

        let mut config = member_config(&bootstrap, group);
        config
            .set("session.timeout.ms", STATIC_SESSION_TIMEOUT_MS)
            .set("partition.assignment.strategy", "range");
        let mut static_config = config.clone();
        static_config.set("group.instance.id", "groups-static-instance");

        // The static member alone reads everything and commits it.
        let mut members = vec![Member::join("static", &static_config, topic)];
        poll_until(
            &mut members,
            SETTLE,
            "the static member to read all",
            |ms| ms[0].assigned().len() == PARTITIONS as usize && ms[0].got.len() == first.len(),
        );
        assert_eq!(values(&members[0].got), sorted(first.clone()));
        commit_positions(&members[0]).unwrap();

        // A dynamic member joins: the two split the partitions.
        members.push(Member::join("dynamic", &config, topic));
        poll_until(&mut members, SETTLE, "the two members to split", |ms| {
            split_exactly(ms, PARTITIONS)
        });
        poll_for(&mut members, Duration::from_secs(1));
        assert!(
            split_exactly(&members, PARTITIONS),
            "split did not hold: {}",
            members[1].describe()
        );
        assert!(
            members[1].got.is_empty(),
            "the dynamic member read committed records again: {:?}",
            members[1].got
        );
        let static_parts = members[0].assigned();
        let dynamic_parts = members[1].assigned();
        let dynamic_assigns = members[1].tracker().assigns.load(Ordering::SeqCst);
        let dynamic_revokes = members[1].tracker().revokes.load(Ordering::SeqCst);
        let before = describe_group(&bootstrap, group, topic);
        assert_eq!(before.state, "Stable", "{before:?}");
        assert_eq!(before.members.len(), 2, "{before:?}");
        let static_before = before
            .members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some("groups-static-instance"))
            .unwrap_or_else(|| panic!("no member with the instance id: {before:?}"));
        assert_eq!(static_before.partitions, static_parts, "{before:?}");
        let dynamic_before = before
            .members
            .iter()
            .find(|m| m.instance_id.is_none())
            .unwrap_or_else(|| panic!("no dynamic member: {before:?}"));
        assert_eq!(dynamic_before.partitions, dynamic_parts, "{before:?}");
        let dynamic_member_id = dynamic_before.member_id.clone();

        // Close the static member and start it again with the same instance id.
        let closed_at = Instant::now();
        drop(members.remove(0));
        members.insert(0, Member::join("static-again", &static_config, topic));
        poll_until(
            &mut members,
            Duration::from_secs(8),
            "the restarted static member to get its partitions back",
            |ms| ms[0].assigned() == static_parts,
        );
        assert!(
            closed_at.elapsed() < Duration::from_secs(10),
            "the static member came back only after its session timeout"
        );
        // Several heartbeat intervals: a rebalance would show by now.
        poll_for(&mut members, Duration::from_secs(2));
        assert_eq!(members[0].assigned(), static_parts);
        assert_eq!(members[1].assigned(), dynamic_parts);
        assert_eq!(
            (
                members[1].tracker().assigns.load(Ordering::SeqCst),
                members[1].tracker().revokes.load(Ordering::SeqCst)
            ),
            (dynamic_assigns, dynamic_revokes),
            "the static member's restart rebalanced the group (callbacks on the other member)"
        );
        assert!(
            members[0].got.is_empty(),
            "the restarted static member read committed records again: {:?}",
            members[0].got
        );

        let after = describe_group(&bootstrap, group, topic);
        assert_eq!(after.state, "Stable", "{after:?}");
        assert_eq!(after.members.len(), 2, "{after:?}");
        let static_after = after
            .members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some("groups-static-instance"))
            .unwrap_or_else(|| panic!("no member with the instance id: {after:?}"));
        assert_eq!(static_after.partitions, static_parts, "{after:?}");
        let dynamic_after = after
            .members
            .iter()
            .find(|m| m.instance_id.is_none())
            .unwrap_or_else(|| panic!("no dynamic member: {after:?}"));
        assert_eq!(dynamic_after.member_id, dynamic_member_id, "{after:?}");
        assert_eq!(dynamic_after.partitions, dynamic_parts, "{after:?}");

        // Both members still consume, each its own partitions, and their commits (carrying
        // the generation the dynamic member joined with) are accepted.
        let second = produce(&bootstrap, topic, PARTITIONS, "second", 40);
        poll_until(&mut members, SETTLE, "the new records", |ms| {
            ms[0].got.len() + ms[1].got.len() >= second.len()
        });
        poll_for(&mut members, Duration::from_millis(500));
        for (m, parts) in members.iter().zip([&static_parts, &dynamic_parts]) {
            let expected: Vec<_> = second
                .iter()
                .filter(|(p, _)| parts.contains(p))
                .cloned()
                .collect();
            assert_eq!(values(&m.got), sorted(expected), "{} read", m.name);
            commit_positions(m).unwrap_or_else(|e| {
                panic!("{}: commit after the static restart failed: {e}", m.name)
            });
        }
        let offsets = committed(&members[1].consumer, topic, PARTITIONS);
        let expected: Offsets = (0..PARTITIONS).map(|p| (p, (20, String::new()))).collect();
        assert_eq!(offsets, expected, "committed offsets");

        drop(members);
        broker.shutdown();
    });
}

/// Commits with `CommitMode::Sync` and `CommitMode::Async` (with metadata strings) from a
/// member, `commit_message`, and what `committed` and `committed_offsets` return for them; a
/// consumer outside the group sees the same offsets but may not commit to the live group.
#[test]
fn librdkafka_commit_sync_async_with_metadata() {
    const PARTITIONS: i32 = 3;
    with_time_limit(Duration::from_secs(60), || {
        let broker = EmbeddedBroker::ephemeral().unwrap();
        let bootstrap = broker.bootstrap();
        let topic = "groups-commit";
        let group = "groups-commit-group";
        create_topic(&bootstrap, topic, PARTITIONS);
        produce(&bootstrap, topic, PARTITIONS, "rec", 30);

        let config = member_config(&bootstrap, group);
        let mut members = vec![Member::join("member", &config, topic)];
        poll_until(&mut members, SETTLE, "the member to be assigned", |ms| {
            ms[0].assigned().len() == PARTITIONS as usize && !ms[0].got.is_empty()
        });
        let member = &members[0];
        let c = &member.consumer;
        // Nothing committed yet: OffsetFetch answers -1 (no offset) for every partition.
        assert_eq!(
            committed(c, topic, PARTITIONS),
            expected_offsets(&[(0, -1, ""), (1, -1, ""), (2, -1, "")])
        );

        c.commit(
            &commit_list(topic, &[(0, 5, "sync-0"), (1, 7, "sync-1")]),
            CommitMode::Sync,
        )
        .unwrap();
        let got = offsets_of(&c.committed(Duration::from_secs(10)).unwrap());
        assert_eq!(
            got,
            expected_offsets(&[(0, 5, "sync-0"), (1, 7, "sync-1"), (2, -1, "")]),
            "committed() after a synchronous commit"
        );

        // An asynchronous commit returns before the broker answers; rdkafka 0.39 never calls
        // ConsumerContext::commit_callback (it does not register librdkafka's
        // offset_commit_cb), so watch OffsetFetch until the commit shows.
        c.commit(
            &commit_list(topic, &[(2, 9, "async-2"), (0, 6, "")]),
            CommitMode::Async,
        )
        .unwrap();
        let mut expected = expected_offsets(&[(0, 6, ""), (1, 7, "sync-1"), (2, 9, "async-2")]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            c.poll(Duration::from_millis(50));
            let now = committed(c, topic, PARTITIONS);
            if now == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "committed_offsets() 10 s after the asynchronous commit: {now:?}, expected {expected:?}"
            );
        }

        // commit_message commits the message's offset + 1.
        let first = member.got[0].clone();
        // Rewind the partition of the first record read, and read from it again.
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, first.partition, Offset::Offset(first.offset))
            .unwrap();
        c.seek_partitions(tpl, Duration::from_secs(10)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let message = loop {
            assert!(Instant::now() < deadline, "no record after the seek");
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                if m.partition() == first.partition {
                    break m;
                }
            }
        };
        c.commit_message(&message, CommitMode::Sync).unwrap();
        expected.insert(message.partition(), (message.offset() + 1, String::new()));
        drop(message);
        assert_eq!(
            committed(c, topic, PARTITIONS),
            expected,
            "committed offsets after commit_message"
        );

        // The offsets belong to the group: a consumer outside it reads the same.
        let other = outsider(&bootstrap, group);
        assert_eq!(
            committed(&other, topic, PARTITIONS),
            expected,
            "committed offsets seen by a non-member"
        );
        // A non-member (generation -1, no member id) cannot commit for a group with members.
        let fenced = other.commit(&commit_list(topic, &[(1, 1, "intruder")]), CommitMode::Sync);
        assert!(fenced.is_err(), "a non-member committed to a Stable group");
        assert_eq!(
            committed(c, topic, PARTITIONS),
            expected,
            "committed offsets after the refused commit"
        );

        drop(other);
        drop(members);
        broker.shutdown();
    });
}

/// A free port on 127.0.0.1 (bound and released), so a restarted broker can use the address
/// clients already know.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn persistent_config(dir: &Path, port: u16) -> BrokerConfig {
    BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::with_data_dir(dir)
    }
}

/// Committed offsets (with metadata) survive a broker restart, and a member that was
/// consuming when the broker stopped carries on after it comes back on the same address:
/// it reads what is produced after the restart, from where it was, and commits again.
#[test]
fn librdkafka_offsets_and_member_survive_broker_restart() {
    const PARTITIONS: i32 = 2;
    with_time_limit(Duration::from_secs(80), || {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let broker = EmbeddedBroker::start(persistent_config(dir.path(), port)).unwrap();
        let bootstrap = broker.bootstrap();
        let topic = "groups-restart";
        let committer_group = "groups-restart-commits";
        let member_group = "groups-restart-member";
        create_topic(&bootstrap, topic, PARTITIONS);
        let before = produce(&bootstrap, topic, PARTITIONS, "before", 100);

        // Offsets with metadata committed for a group without members.
        let offsets = [(0, 17, "restart-0"), (1, 33, "restart-1")];
        {
            let committer = outsider(&bootstrap, committer_group);
            committer
                .commit(&commit_list(topic, &offsets), CommitMode::Sync)
                .unwrap();
            assert_eq!(
                committed(&committer, topic, PARTITIONS),
                expected_offsets(&offsets)
            );
        }

        // A member reads everything and commits; it stays open across the restart.
        let config = member_config(&bootstrap, member_group);
        let mut members = vec![Member::join("member", &config, topic)];
        poll_until(&mut members, SETTLE, "the member to read all", |ms| {
            ms[0].got.len() == before.len()
        });
        assert_eq!(values(&members[0].got), sorted(before.clone()));
        commit_positions(&members[0]).unwrap();
        assert_eq!(
            committed(&members[0].consumer, topic, PARTITIONS),
            expected_offsets(&[(0, 50, ""), (1, 50, "")])
        );

        broker.shutdown();
        let broker = EmbeddedBroker::start(persistent_config(dir.path(), port)).unwrap();
        assert_eq!(broker.bootstrap(), bootstrap);

        // The offsets committed before are there, with their metadata.
        {
            let reader = outsider(&bootstrap, committer_group);
            assert_eq!(
                committed(&reader, topic, PARTITIONS),
                expected_offsets(&offsets),
                "committed offsets after the restart"
            );
        }

        // The member goes on: records produced after the restart, and none from before.
        let read_before = members[0].got.len();
        let after = produce(&bootstrap, topic, PARTITIONS, "after", 40);
        poll_until(
            &mut members,
            SETTLE,
            "the member to read the records produced after the restart",
            |ms| ms[0].got.len() >= read_before + after.len(),
        );
        poll_for(&mut members, Duration::from_secs(1));
        let new = &members[0].got[read_before..];
        assert_eq!(
            values(new),
            sorted(after.clone()),
            "records the member read after the restart"
        );
        for p in 0..PARTITIONS {
            let offsets: Vec<i64> = new
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.offset)
                .collect();
            assert_eq!(
                offsets,
                (50..70).collect::<Vec<i64>>(),
                "offsets read from partition {p}"
            );
        }

        // It commits again (after rejoining, if the restart cost it its membership).
        let deadline = Instant::now() + SETTLE;
        loop {
            match commit_positions(&members[0]) {
                Ok(()) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "commit after the restart: {e}");
                    poll_for(&mut members, Duration::from_millis(200));
                }
            }
        }
        assert_eq!(
            committed(&members[0].consumer, topic, PARTITIONS),
            expected_offsets(&[(0, 70, ""), (1, 70, "")]),
            "the member's committed offsets after the restart"
        );
        let described = describe_group(&bootstrap, member_group, topic);
        assert_eq!(described.state, "Stable", "{described:?}");
        assert_eq!(
            described.assignments(),
            vec![(0..PARTITIONS).collect::<BTreeSet<_>>()],
            "{described:?}"
        );

        drop(members);
        broker.shutdown();
    });
}
