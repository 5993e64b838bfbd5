//! How the broker presents itself: Metadata and DescribeCluster agree on the broker, the
//! advertised address and the cluster id; topics are found by name and by id; auto-creation
//! follows `num.partitions`; Metadata v0's empty list means every topic.

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::{
    DescribeClusterRequest, MetadataRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;

fn by_name(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.into()))))
}

#[test]
fn metadata_and_describe_cluster_announce_the_same_broker() {
    let config = BrokerConfig {
        advertise: Some("events.example.internal:19093".into()),
        node_id: 7,
        num_partitions: 4,
        ..BrokerConfig::ephemeral()
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();

    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![by_name("auto-created")]));
    let meta = c.call(12, &req).unwrap();
    assert_eq!(meta.brokers.len(), 1);
    let b = &meta.brokers[0];
    assert_eq!(
        (b.node_id.0, b.host.as_str(), b.port),
        (7, "events.example.internal", 19093)
    );
    assert_eq!(meta.controller_id.0, 7);
    assert_eq!(meta.cluster_id.as_deref(), Some(broker.cluster_id()));
    let topic = &meta.topics[0];
    assert_eq!(topic.error_code, 0);
    assert!(!topic.topic_id.is_nil());
    assert_eq!(
        topic.partitions.len(),
        4,
        "auto-created with num.partitions"
    );
    for p in &topic.partitions {
        assert_eq!((p.leader_id.0, p.leader_epoch), (7, 0));
        assert_eq!(
            p.replica_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
            vec![7]
        );
    }

    let cluster = c.call(1, &DescribeClusterRequest::default()).unwrap();
    assert_eq!(cluster.error_code, 0);
    assert_eq!(cluster.cluster_id.as_str(), broker.cluster_id());
    assert_eq!(cluster.controller_id.0, 7);
    let b = &cluster.brokers[0];
    assert_eq!(
        (b.broker_id.0, b.host.as_str(), b.port),
        (7, "events.example.internal", 19093)
    );

    // By id (v10+), and an unknown id.
    let id = topic.topic_id;
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_topic_id(id)
    ]));
    let found = c.call(12, &by_id).unwrap();
    assert_eq!(
        found.topics[0].name.as_ref().map(|n| n.as_str()),
        Some("auto-created")
    );
    let unknown = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_topic_id(uuid::Uuid::from_u128(42)),
    ]));
    assert_eq!(
        c.call(12, &unknown).unwrap().topics[0].error_code,
        ErrorCode::UnknownTopicId.code()
    );

    // Invalid names are refused, not created; v0's empty list means all topics.
    let bad = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![by_name("no spaces")]));
    assert_eq!(
        c.call(12, &bad).unwrap().topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    let all = c
        .call(0, &MetadataRequest::default().with_topics(Some(vec![])))
        .unwrap();
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions.len(), 4);

    // Authorized operations: absent unless asked for, then every topic operation.
    let asked = MetadataRequest::default()
        .with_topics(None)
        .with_include_topic_authorized_operations(true);
    assert_eq!(
        c.call(8, &asked).unwrap().topics[0].topic_authorized_operations,
        3576
    );
    assert_eq!(
        c.call(8, &asked.with_include_topic_authorized_operations(false))
            .unwrap()
            .topics[0]
            .topic_authorized_operations,
        i32::MIN
    );
    broker.shutdown();
}

#[test]
fn each_listener_announces_its_own_advertised_address() {
    use brook_protocol::kafka_protocol::messages::FindCoordinatorRequest;
    let config = BrokerConfig {
        listeners: Some("INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0".into()),
        advertised_listeners: Some("EXTERNAL://events.example.com:19094".into()),
        listener_security_protocol_map: Some("INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT".into()),
        ..BrokerConfig::ephemeral()
    };
    let broker = EmbeddedBroker::start(config).unwrap();
    let internal = broker.listener_addr("INTERNAL").unwrap();
    let external = broker.listener_addr("external").unwrap();
    assert_ne!(internal, external);
    for (addr, host, port) in [
        (
            internal,
            "127.0.0.1".to_string(),
            i32::from(internal.port()),
        ),
        (external, "events.example.com".to_string(), 19094),
    ] {
        let mut c = RawClient::connect(&addr.to_string()).unwrap();
        let meta = c.call(12, &MetadataRequest::default()).unwrap();
        let b = &meta.brokers[0];
        assert_eq!((b.host.as_str(), b.port), (host.as_str(), port), "{addr}");
        let cluster = c.call(1, &DescribeClusterRequest::default()).unwrap();
        assert_eq!(
            (cluster.brokers[0].host.as_str(), cluster.brokers[0].port),
            (host.as_str(), port)
        );
        let coordinator = c
            .call(
                3,
                &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            )
            .unwrap();
        assert_eq!(
            (coordinator.host.as_str(), coordinator.port),
            (host.as_str(), port)
        );
    }
}

#[test]
fn tls_listeners_without_usable_keys_are_refused_at_start_naming_the_setting() {
    let config = BrokerConfig {
        listeners: Some("SASL_SSL://127.0.0.1:0".into()),
        ..BrokerConfig::ephemeral()
    };
    let err = EmbeddedBroker::start(config).err().unwrap().to_string();
    assert!(err.contains("ssl.keystore.location"), "{err}");
    let missing = std::path::PathBuf::from("/nonexistent/server.pem");
    let config = BrokerConfig {
        listeners: Some("SSL://127.0.0.1:0".into()),
        ssl_keystore_location: Some(missing),
        ..BrokerConfig::ephemeral()
    };
    let err = EmbeddedBroker::start(config).err().unwrap().to_string();
    assert!(
        err.contains("ssl.keystore.location") && err.contains("/nonexistent/server.pem"),
        "{err}"
    );
}
