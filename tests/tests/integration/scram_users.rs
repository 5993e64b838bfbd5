//! SCRAM users through Kafka's admin APIs (AlterUserScramCredentials and
//! DescribeUserScramCredentials, as `kafka-configs --alter --add-config SCRAM-SHA-256=[...]`
//! and the Java Admin send them): Kafka's per-user results and error codes, and the
//! credentials kept across a restart.

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use brook_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use brook_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use bytes::Bytes;

fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"0123456789abcdef"))
        .with_salted_password(Bytes::from_static(&[7; 32]))
}

/// A described user: its (mechanism, iterations) pairs, or its error code.
type Described = (String, Result<Vec<(i8, i32)>, i16>);

fn describe(c: &mut RawClient, users: Option<&[&str]>) -> Vec<Described> {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string((*n).into())))
            .collect()
    }));
    let resp = c.call(0, &req).unwrap();
    assert_eq!(resp.error_code, 0);
    resp.results
        .iter()
        .map(|r| {
            let infos = if r.error_code == 0 {
                Ok(r.credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect())
            } else {
                Err(r.error_code)
            };
            (r.user.to_string(), infos)
        })
        .collect()
}

#[test]
fn scram_users_are_altered_described_and_kept_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start(BrokerConfig::with_data_dir(dir.path())).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();

    let req = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![
            upsert("alice", 1, 4096),
            upsert("alice", 2, 8192),
            upsert("bob", 1, 1000),
            upsert("carol", 9, 4096),
        ])
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(StrBytes::from_static_str("dave"))
            .with_mechanism(1)]);
    let resp = c.call(0, &req).unwrap();
    let results: Vec<(&str, i16)> = resp
        .results
        .iter()
        .map(|r| (r.user.as_str(), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![
            ("dave", ErrorCode::ResourceNotFound.code()),
            ("alice", 0),
            ("bob", ErrorCode::UnacceptableCredential.code()),
            ("carol", ErrorCode::UnsupportedSaslMechanism.code()),
        ]
    );
    assert_eq!(
        describe(&mut c, None),
        vec![("alice".to_string(), Ok(vec![(1, 4096), (2, 8192)]))]
    );
    assert_eq!(
        describe(&mut c, Some(&["bob", "alice", "bob"])),
        vec![
            ("bob".to_string(), Err(ErrorCode::DuplicateResource.code())),
            ("alice".to_string(), Ok(vec![(1, 4096), (2, 8192)])),
        ]
    );
    assert_eq!(
        describe(&mut c, Some(&["erin"])),
        vec![("erin".to_string(), Err(ErrorCode::ResourceNotFound.code()))]
    );

    // Kept across a restart; a deletion then removes one mechanism.
    drop(c);
    broker.shutdown();
    let broker = EmbeddedBroker::start(BrokerConfig::with_data_dir(dir.path())).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        describe(&mut c, Some(&["alice"])),
        vec![("alice".to_string(), Ok(vec![(1, 4096), (2, 8192)]))]
    );
    let delete = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_static_str("alice"))
            .with_mechanism(2),
    ]);
    assert_eq!(c.call(0, &delete).unwrap().results[0].error_code, 0);
    assert_eq!(
        describe(&mut c, None),
        vec![("alice".to_string(), Ok(vec![(1, 4096)]))]
    );
}
