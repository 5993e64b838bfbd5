//! Connection limits and hostile clients: memory per connection stays bounded when a client
//! never reads, idle connections close, connections over the limits (or past the process's
//! file-descriptor limit) are refused at once, and large frames need a handshake first.

use std::io::Write;
use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use brook_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use brook_protocol::kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, DescribeGroupsRequest, FetchRequest, GroupId, JoinGroupRequest,
    SyncGroupRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use bytes::Bytes;

use crate::process::BrokerProcess;
use crate::wire::{create, produce_request};

fn api_versions(c: &mut RawClient) {
    let resp = c.call(2, &ApiVersionsRequest::default()).unwrap();
    assert_eq!(resp.error_code, 0);
}

fn broker_with(config: BrokerConfig) -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig {
        auto_create_topics_enable: false,
        ..config
    })
    .unwrap()
}

/// A client that pipelines requests with large responses and never reads them: the broker
/// stops handling its requests once a bounded amount is queued, instead of buffering every
/// response (each 8 MiB here: 150 of them would be 1.2 GB).
#[test]
fn a_client_that_never_reads_holds_bounded_memory() {
    let broker = BrokerProcess::start(
        "listen = \"127.0.0.1:0\"\nephemeral = true\n\"group.initial.rebalance.delay.ms\" = 0\n",
    );
    let mut c = RawClient::connect(broker.bootstrap()).unwrap();
    api_versions(&mut c);
    let group = GroupId(StrBytes::from_static_str("big"));
    let big = Bytes::from(vec![7u8; 4 << 20]);
    let join = c
        .call(
            2,
            &JoinGroupRequest::default()
                .with_group_id(group.clone())
                .with_session_timeout_ms(30_000)
                .with_rebalance_timeout_ms(30_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(big.clone())]),
        )
        .unwrap();
    assert_eq!(join.error_code, 0);
    let sync = c
        .call(
            1,
            &SyncGroupRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(join.generation_id)
                .with_member_id(join.member_id.clone())
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(join.member_id.clone())
                    .with_assignment(big)]),
        )
        .unwrap();
    assert_eq!(sync.error_code, 0);
    let describe = DescribeGroupsRequest::default().with_groups(vec![group]);
    let described = c.call(1, &describe).unwrap();
    let member = &described.groups[0].members[0];
    assert_eq!(
        (member.member_metadata.len(), member.member_assignment.len()),
        (4 << 20, 4 << 20)
    );

    let before = broker.peak_rss();
    let frame = c.encode(1, &describe);
    let mut writer = c.try_clone_stream();
    let pump = std::thread::spawn(move || {
        for _ in 0..150 {
            // Blocks once the broker stops reading; fails once the socket is shut down.
            if writer.write_all(&frame).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(4));
    let grown = broker.peak_rss().saturating_sub(before);
    c.shutdown();
    let _ = pump.join();
    assert!(
        grown < 64 << 20,
        "a never-reading client made the broker grow by {} MiB",
        grown >> 20
    );
    // The broker still serves others.
    api_versions(&mut RawClient::connect(broker.bootstrap()).unwrap());
}

#[test]
fn idle_connections_are_closed_and_busy_ones_are_not() {
    let broker = broker_with(BrokerConfig {
        connections_max_idle_ms: 1000,
        ..BrokerConfig::ephemeral()
    });
    let mut busy = RawClient::connect(&broker.bootstrap()).unwrap();
    let mut idle = RawClient::connect(&broker.bootstrap()).unwrap();
    let started = Instant::now();
    // Requests every 100 ms, ten times more often than the idle limit (a loaded CI machine
    // must not stretch a gap past it).
    while started.elapsed() < Duration::from_millis(2500) {
        api_versions(&mut busy);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(idle.is_closed_by_peer(), "idle connection left open");
    api_versions(&mut busy);
    broker.shutdown();
}

/// Opens a connection and tells whether the broker serves it (true) or closed it at once.
fn served(bootstrap: &str) -> bool {
    let mut c = RawClient::connect(bootstrap).unwrap();
    match c.call(2, &ApiVersionsRequest::default()) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a refused connection must be closed, not left hanging"
            );
            false
        }
    }
}

#[test]
fn connections_over_the_limits_are_closed_at_once() {
    for (total, per_ip) in [(3, 100), (100, 3)] {
        let broker = broker_with(BrokerConfig {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..BrokerConfig::ephemeral()
        });
        let bootstrap = broker.bootstrap();
        let mut open: Vec<RawClient> = (0..3)
            .map(|_| {
                let mut c = RawClient::connect(&bootstrap).unwrap();
                api_versions(&mut c);
                c
            })
            .collect();
        assert!(!served(&bootstrap), "limit {total}/{per_ip}: 4th served");
        for c in &mut open {
            api_versions(c);
        }
        // A closed connection frees its place.
        drop(open.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !served(&bootstrap) {
            assert!(Instant::now() < deadline, "the freed place was not reused");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker.shutdown();
    }
}

/// With the process's descriptors used up, new connections are closed at once (not left in the
/// listen backlog), and the broker serves again once connections close.
#[test]
fn connections_past_the_fd_limit_are_closed_not_left_hanging() {
    let broker =
        BrokerProcess::start_with_fd_limit("listen = \"127.0.0.1:0\"\nephemeral = true\n", 64);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut c = RawClient::connect(broker.bootstrap()).unwrap();
        match c.call(2, &ApiVersionsRequest::default()) {
            Ok(_) => held.push(c),
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "connection left hanging at the fd limit"
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0 && !held.is_empty(),
        "{} held, {refused} refused",
        held.len()
    );
    held.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served(broker.bootstrap()) {
        assert!(
            Instant::now() < deadline,
            "not served after connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Before ApiVersions a frame is capped near `message.max.bytes`; after it, frames up to
/// `socket.request.max.bytes` are read (and a too-large batch is refused by Produce).
#[test]
fn large_frames_need_a_handshake_first() {
    let broker = broker_with(BrokerConfig::ephemeral());
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "big", 1, &[]), 0);
    let records = build_batch(
        0,
        &[TestRecord {
            value: Some(vec![1; 3 << 20]),
            ..Default::default()
        }],
    );
    let request = produce_request("big", 0, records, 1);

    let mut fresh = RawClient::connect(&broker.bootstrap()).unwrap();
    let frame = fresh.encode(9, &request);
    let _ = fresh.send_raw(&frame);
    assert!(fresh.is_closed_by_peer(), "3 MiB frame before ApiVersions");

    let mut shook = RawClient::connect(&broker.bootstrap()).unwrap();
    api_versions(&mut shook);
    let resp = shook.call(9, &request).unwrap();
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ErrorCode::MessageTooLarge.code()
    );
    broker.shutdown();
}

/// A fetch that names one partition 20,000 times is answered once (as Kafka keys a fetch by
/// topic-partition), and `fetch.max.bytes` bounds a response whatever `max_bytes` asks for.
#[test]
fn fetch_answers_each_partition_once_within_fetch_max_bytes() {
    let broker = broker_with(BrokerConfig {
        fetch_max_bytes: 64 * 1024,
        ..BrokerConfig::ephemeral()
    });
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "dup", 2, &[]), 0);
    for partition in 0..2 {
        for _ in 0..10 {
            let batch = build_batch(
                0,
                &[TestRecord {
                    value: Some(vec![9; 20_000]),
                    ..Default::default()
                }],
            );
            let resp = c
                .call(9, &produce_request("dup", partition, batch, 1))
                .unwrap();
            assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        }
    }
    let partition = |p: i32| {
        FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(0)
            .with_partition_max_bytes(i32::MAX)
    };
    let many: Vec<FetchPartition> = (0..20_000).map(|i| partition(i % 2)).collect();
    // The topic is named twice too; its partitions are merged into one entry.
    let topic = |partitions| {
        FetchTopic::default()
            .with_topic(crate::wire::name("dup"))
            .with_partitions(partitions)
    };
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(vec![topic(many), topic(vec![partition(1)])]);
    let resp = c.call(11, &req).unwrap();
    assert_eq!(resp.responses.len(), 1, "the topic is answered once");
    let partitions = &resp.responses[0].partitions;
    let indexes: Vec<i32> = partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, vec![0, 1], "each partition is answered once");
    let total: usize = partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .sum();
    // fetch.max.bytes (64 KiB) rather than max_bytes (2 GiB): three 20 KB batches fit, and
    // the first batch of a response may exceed the limit by itself (KIP-74).
    assert!(total > 0 && total <= 64 * 1024, "{total} record bytes");
    broker.shutdown();
}

/// `queued.max.request.bytes` bounds request bytes read from all connections together; a
/// frame larger than the whole budget still goes through (alone), and no connection waits
/// for ever.
#[test]
fn queued_request_bytes_bound_reads_without_deadlock() {
    let broker = broker_with(BrokerConfig {
        queued_max_request_bytes: 4096,
        ..BrokerConfig::ephemeral()
    });
    let mut admin = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut admin, "q", 1, &[]), 0);
    let producers: Vec<_> = (0..4)
        .map(|i| {
            let bootstrap = broker.bootstrap();
            std::thread::spawn(move || {
                let mut c = RawClient::connect(&bootstrap).unwrap();
                api_versions(&mut c);
                for _ in 0..5 {
                    let records = build_batch(
                        i,
                        &[TestRecord {
                            value: Some(vec![7; 20_000]),
                            ..Default::default()
                        }],
                    );
                    let resp = c.call(9, &produce_request("q", 0, records, 1)).unwrap();
                    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(crate::wire::latest(&mut admin, "q", 0), 20);
    broker.shutdown();
}
