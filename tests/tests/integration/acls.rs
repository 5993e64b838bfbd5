//! ACLs through the real protocol: principals (a super user, two users) by operations by
//! resources over SASL, with literal, prefixed and `*` patterns, DENY over ALLOW, hosts,
//! Metadata hiding what one may not describe, the ACL APIs themselves, and ACLs kept across
//! a restart.

use std::collections::BTreeSet;
use std::path::Path;

use brook_broker::auth::scram::Mechanism;
use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::{encode_batch, NewRecord};
use brook_protocol::kafka_protocol::messages::create_acls_request::AclCreation;
use brook_protocol::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use brook_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest, FindCoordinatorRequest,
    InitProducerIdRequest, JoinGroupRequest, MetadataRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use bytes::Bytes;

use crate::wire::{create, fetch, name, produce};

const TOPICS: [&str; 5] = ["orders", "pay-in", "pay-secret", "public", "other"];

fn start(data: &Path, authorizer: bool) -> EmbeddedBroker {
    let mut config = BrokerConfig::with_data_dir(data);
    config.listeners = Some("SASL_PLAINTEXT://127.0.0.1:0".into());
    config.sasl_enabled_mechanisms = "PLAIN".into();
    if authorizer {
        config.authorizer_class_name =
            Some("org.apache.kafka.metadata.authorizer.StandardAuthorizer".into());
    }
    config.super_users = Some("User:admin".into());
    EmbeddedBroker::start(config).unwrap()
}

fn login(broker: &EmbeddedBroker, user: &str) -> RawClient {
    let addr = broker.listener_addr("SASL_PLAINTEXT").unwrap().to_string();
    let mut c = RawClient::connect(&addr).unwrap();
    let hs = c
        .call(
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
    assert_eq!(hs.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let auth = c
        .call(
            2,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        )
        .unwrap();
    assert_eq!(auth.error_code, 0, "{user}: {:?}", auth.error_message);
    c
}

fn acl(
    resource_type: i8,
    resource: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(resource.into()))
        .with_resource_pattern_type(pattern)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_string(host.into()))
        .with_operation(operation)
        .with_permission_type(permission)
}

// Kafka's codes: resource types, pattern types, operations, permissions.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const MATCH: i8 = 2;
const ANY: i8 = 1;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const ALL: i8 = 2;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn create_acls(c: &mut RawClient, creations: Vec<AclCreation>) -> Vec<i16> {
    let resp = c
        .call(3, &CreateAclsRequest::default().with_creations(creations))
        .unwrap();
    resp.results.iter().map(|r| r.error_code).collect()
}

fn record() -> Vec<u8> {
    encode_batch(
        0,
        &[NewRecord {
            value: Some(b"v".to_vec()),
            ..Default::default()
        }],
    )
}

/// The topics Metadata (all topics) shows.
fn visible(c: &mut RawClient) -> BTreeSet<String> {
    let resp = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    resp.topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect()
}

fn join_error(c: &mut RawClient, group: &str) -> i16 {
    let req = JoinGroupRequest::default()
        .with_group_id(brook_protocol::kafka_protocol::messages::GroupId(
            StrBytes::from_string(group.into()),
        ))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::new())]);
    c.call(5, &req).unwrap().error_code
}

fn coordinator_error(c: &mut RawClient, group: &str) -> i16 {
    let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.into()));
    c.call(2, &req).unwrap().error_code
}

fn idempotent_init_error(c: &mut RawClient) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(brook_protocol::kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    c.call(4, &req).unwrap().error_code
}

fn describe_all(c: &mut RawClient, resource: i8, name: Option<&str>, pattern: i8) -> (i16, usize) {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(resource)
        .with_resource_name_filter(name.map(|n| StrBytes::from_string(n.into())))
        .with_pattern_type_filter(pattern)
        // Null filters match anything (the codec's defaults are empty strings).
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let resp = c.call(3, &req).unwrap();
    (
        resp.error_code,
        resp.resources.iter().map(|r| r.acls.len()).sum(),
    )
}

#[test]
fn principals_by_operations_by_resources_through_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for user in ["admin", "alice", "bob"] {
        brook_broker::auth::users::create_user(
            &data,
            user,
            &format!("{user}-secret"),
            &[Mechanism::Sha256],
            4096,
        )
        .unwrap();
    }
    let broker = start(&data, true);
    let mut admin = login(&broker, "admin");
    let mut alice = login(&broker, "alice");
    let mut bob = login(&broker, "bob");

    // Nothing is allowed before any ACL, but to the super user.
    assert_eq!(
        create(&mut alice, "alices-own", 1, &[]),
        ErrorCode::TopicAuthorizationFailed.code()
    );
    for t in TOPICS {
        assert_eq!(create(&mut admin, t, 1, &[]), 0, "{t}");
    }
    assert!(visible(&mut alice).is_empty());
    assert_eq!(
        create_acls(
            &mut alice,
            vec![acl(TOPIC, "x", LITERAL, "User:alice", "*", READ, ALLOW)]
        ),
        [ErrorCode::ClusterAuthorizationFailed.code()]
    );

    let codes = create_acls(
        &mut admin,
        vec![
            acl(TOPIC, "orders", LITERAL, "User:alice", "*", WRITE, ALLOW),
            acl(TOPIC, "pay", PREFIXED, "User:alice", "*", READ, ALLOW),
            acl(TOPIC, "pay-secret", LITERAL, "User:alice", "*", READ, DENY),
            acl(GROUP, "g1", LITERAL, "User:alice", "*", READ, ALLOW),
            acl(TOPIC, "public", LITERAL, "User:*", "*", DESCRIBE, ALLOW),
            acl(TOPIC, "other", LITERAL, "User:bob", "10.9.9.9", ALL, ALLOW),
            // Refused: the cluster resource has one name; MATCH is for filters only.
            acl(4, "my-cluster", LITERAL, "User:bob", "*", ALL, ALLOW),
            acl(TOPIC, "t", MATCH, "User:bob", "*", ALL, ALLOW),
        ],
    );
    let invalid = ErrorCode::InvalidRequest.code();
    assert_eq!(codes, [0, 0, 0, 0, 0, 0, invalid, invalid]);

    let denied = ErrorCode::TopicAuthorizationFailed.code();
    // Produce: WRITE on the topic.
    let client = |who: &str| -> RawClient { login(&broker, who) };
    for (who, topic, expected) in [
        ("admin", "orders", 0),
        ("alice", "orders", 0),
        ("alice", "pay-in", denied),
        ("bob", "orders", denied),
        // bob's ALL on "other" is for another host.
        ("bob", "other", denied),
    ] {
        let got = produce(&mut client(who), topic, 0, record()).0;
        assert_eq!(got, expected, "{who} produces to {topic}");
    }
    for t in ["pay-in", "pay-secret"] {
        assert_eq!(produce(&mut admin, t, 0, record()).0, 0);
    }
    // Fetch: READ on the topic; DENY wins; WRITE does not imply READ.
    for (who, topic, expected) in [
        ("alice", "pay-in", 0),
        ("alice", "pay-secret", denied),
        ("alice", "orders", denied),
        ("bob", "pay-in", denied),
        ("admin", "pay-secret", 0),
    ] {
        let got = fetch(&mut client(who), topic, 0, 0, 0).0;
        assert_eq!(got, expected, "{who} fetches {topic}");
    }
    // Metadata lists only what one may describe (READ and WRITE imply DESCRIBE; the DENY is
    // of READ only), and refuses a named topic one may not.
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(visible(&mut admin), set(&TOPICS));
    assert_eq!(
        visible(&mut alice),
        set(&["orders", "pay-in", "pay-secret", "public"])
    );
    assert_eq!(visible(&mut bob), set(&["public"]));
    let named = bob
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("other")))
            ])),
        )
        .unwrap();
    assert_eq!(named.topics[0].error_code, denied);
    // Groups: READ on the group (which implies DESCRIBE for FindCoordinator).
    let group_denied = ErrorCode::GroupAuthorizationFailed.code();
    assert_ne!(join_error(&mut alice, "g1"), group_denied);
    assert_eq!(join_error(&mut alice, "g2"), group_denied);
    assert_eq!(join_error(&mut bob, "g1"), group_denied);
    assert_eq!(coordinator_error(&mut alice, "g1"), 0);
    assert_eq!(coordinator_error(&mut bob, "g1"), group_denied);
    // Idempotent producers: WRITE on some topic is enough (KIP-679).
    assert_eq!(idempotent_init_error(&mut alice), 0);
    assert_eq!(
        idempotent_init_error(&mut bob),
        ErrorCode::ClusterAuthorizationFailed.code()
    );

    // DescribeAcls: the cluster's DESCRIBE; MATCH finds what applies to one topic.
    assert_eq!(describe_all(&mut admin, ANY, None, ANY), (0, 6));
    assert_eq!(
        describe_all(&mut admin, TOPIC, Some("pay-secret"), MATCH),
        (0, 2)
    );
    assert_eq!(
        describe_all(&mut alice, ANY, None, ANY).0,
        ErrorCode::ClusterAuthorizationFailed.code()
    );
    // DeleteAcls removes the DENY: alice reads pay-secret.
    let deleted = admin
        .call(
            3,
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(ANY)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(ANY)
                .with_host_filter(None)
                .with_principal_filter(Some(StrBytes::from_static_str("User:alice")))
                .with_operation(ANY)
                .with_permission_type(DENY)]),
        )
        .unwrap();
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(fetch(&mut alice, "pay-secret", 0, 0, 0).0, 0);

    // ACLs survive a restart.
    drop((admin, alice, bob));
    broker.shutdown();
    let broker = start(&data, true);
    let mut alice = login(&broker, "alice");
    let mut bob = login(&broker, "bob");
    assert_eq!(fetch(&mut alice, "pay-in", 0, 0, 0).0, 0);
    assert_eq!(fetch(&mut alice, "pay-secret", 0, 0, 0).0, 0);
    assert_eq!(fetch(&mut bob, "pay-in", 0, 0, 0).0, denied);
    broker.shutdown();

    // Without an authorizer everything is allowed and the ACL APIs say security is off.
    let broker = start(&data, false);
    let mut bob = login(&broker, "bob");
    assert_eq!(fetch(&mut bob, "pay-in", 0, 0, 0).0, 0);
    assert_eq!(
        create_acls(
            &mut bob,
            vec![acl(TOPIC, "x", LITERAL, "User:bob", "*", READ, ALLOW)]
        ),
        [ErrorCode::SecurityDisabled.code()]
    );
    assert_eq!(
        describe_all(&mut bob, ANY, None, ANY).0,
        ErrorCode::SecurityDisabled.code()
    );
    broker.shutdown();
}

/// CreateAcls, DescribeAcls and DeleteAcls v0, which carry no pattern type: their patterns
/// and filters are LITERAL, as in Kafka before 4.0 (older clients know only v0).
#[test]
fn the_acl_apis_speak_version_0_with_literal_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    brook_broker::auth::users::create_user(
        &data,
        "admin",
        "admin-secret",
        &[Mechanism::Sha256],
        4096,
    )
    .unwrap();
    let broker = start(&data, true);
    let mut admin = login(&broker, "admin");
    let versions = admin
        .call(
            3,
            &brook_protocol::kafka_protocol::messages::ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .unwrap();
    for key in [29, 30, 31] {
        let range = versions.api_keys.iter().find(|k| k.api_key == key).unwrap();
        assert_eq!((range.min_version, range.max_version), (0, 3), "api {key}");
    }
    // A prefixed binding made with v1 stays out of every v0 answer.
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(
                TOPIC,
                "orders",
                PREFIXED,
                "User:carol",
                "*",
                READ,
                ALLOW
            )]
        ),
        [0]
    );
    let created = admin
        .call(
            0,
            &CreateAclsRequest::default().with_creations(vec![acl(
                TOPIC,
                "orders",
                PREFIXED, // not on the wire at v0: the broker reads LITERAL
                "User:carol",
                "*",
                WRITE,
                ALLOW,
            )]),
        )
        .unwrap();
    assert_eq!(created.results[0].error_code, 0);
    // v1 shows what v0 made: a LITERAL binding.
    assert_eq!(
        describe_all(&mut admin, TOPIC, Some("orders"), LITERAL),
        (0, 1)
    );
    assert_eq!(
        describe_all(&mut admin, TOPIC, Some("orders"), PREFIXED),
        (0, 1)
    );
    let v0_filter = DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let described = admin.call(0, &v0_filter).unwrap();
    assert_eq!(described.error_code, 0);
    let bindings: Vec<(String, i8)> = described
        .resources
        .iter()
        .flat_map(|r| {
            r.acls
                .iter()
                .map(move |a| (r.resource_name.to_string(), a.operation))
        })
        .collect();
    assert_eq!(bindings, vec![("orders".to_string(), WRITE)]);
    let deleted = admin
        .call(
            0,
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(StrBytes::from_static_str("orders")))
                .with_host_filter(None)
                .with_principal_filter(None)
                .with_operation(ANY)
                .with_permission_type(ANY)]),
        )
        .unwrap();
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        deleted.filter_results[0].matching_acls[0].operation, WRITE,
        "only the literal binding matched"
    );
    assert_eq!(describe_all(&mut admin, ANY, None, ANY), (0, 1));
    broker.shutdown();
}
