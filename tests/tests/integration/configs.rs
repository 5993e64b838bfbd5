//! Topic and broker configs at runtime: librdkafka's `describe_configs` and `alter_configs`
//! (values, sources and Kafka's defaults; bad values and unknown topics refused; a change in
//! effect without a restart and kept across one), and IncrementalAlterConfigs SET, DELETE,
//! APPEND and SUBTRACT plus synonyms through the wire.

use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use brook_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use brook_protocol::kafka_protocol::messages::{
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, OwnedResourceSpecifier, ResourceSpecifier,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::librdkafka::{create_topic, runtime};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// The topic's configs as librdkafka describes them: name -> (value, source).
fn describe_topic(
    bootstrap: &str,
    topic: &str,
) -> Result<Vec<(String, String, ConfigSource)>, String> {
    let results = runtime()
        .block_on(
            admin(bootstrap)
                .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
        )
        .unwrap();
    let resource = results
        .into_iter()
        .next()
        .unwrap()
        .map_err(|e| e.to_string())?;
    assert_eq!(
        resource.specifier,
        OwnedResourceSpecifier::Topic(topic.to_string())
    );
    Ok(resource
        .entries
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default(), e.source))
        .collect())
}

fn entry<'a>(
    entries: &'a [(String, String, ConfigSource)],
    name: &str,
) -> &'a (String, String, ConfigSource) {
    entries
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

fn alter_topic(bootstrap: &str, topic: &str, pairs: &[(&str, &str)]) -> Result<(), String> {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in pairs {
        change = change.set(k, v);
    }
    let results = runtime()
        .block_on(admin(bootstrap).alter_configs(&[change], &AdminOptions::new()))
        .unwrap();
    results
        .into_iter()
        .next()
        .unwrap()
        .map(|_| ())
        .map_err(|(_, e)| e.to_string())
}

/// Sends three records stamped an hour ago to partition 0 of `topic`, 150 ms apart, so that
/// with a `segment.ms` of 100 each lands in a segment of its own (the next append rolls).
fn produce_hour_old(bootstrap: &str, topic: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    for i in 0..3 {
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .payload("old")
                    .timestamp(hour_ago + i),
            )
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "configs")
        .create()
        .unwrap()
}

/// The log start offset of partition 0 of `topic`.
fn low_watermark(consumer: &BaseConsumer, topic: &str) -> i64 {
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .unwrap()
        .0
}

#[test]
fn librdkafka_describes_and_alters_topic_and_broker_configs() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        log_retention_check_interval_ms: 100,
        ..BrokerConfig::with_data_dir(dir.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ledger", 1);

    // Kafka's defaults and sources.
    let entries = describe_topic(&bootstrap, "ledger").unwrap();
    for (name, value) in [
        ("cleanup.policy", "delete"),
        ("retention.bytes", "-1"),
        ("retention.ms", "604800000"),
        ("segment.bytes", "1073741824"),
        ("max.message.bytes", "1048588"),
        ("message.timestamp.type", "CreateTime"),
    ] {
        let (_, v, source) = entry(&entries, name);
        assert_eq!(
            (v.as_str(), source),
            (value, &ConfigSource::Default),
            "{name}"
        );
    }

    // A change takes effect: old segments go without a restart.
    alter_topic(&bootstrap, "ledger", &[("segment.ms", "100")]).unwrap();
    produce_hour_old(&bootstrap, "ledger");
    let consumer = consumer(&bootstrap);
    let low = || low_watermark(&consumer, "ledger");
    assert_eq!(low(), 0);
    alter_topic(
        &bootstrap,
        "ledger",
        &[("segment.ms", "100"), ("retention.ms", "60000")],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while low() == 0 {
        assert!(
            Instant::now() < deadline,
            "retention.ms=60000 removed nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let entries = describe_topic(&bootstrap, "ledger").unwrap();
    let (_, v, source) = entry(&entries, "retention.ms");
    assert_eq!((v.as_str(), source), ("60000", &ConfigSource::DynamicTopic));
    // AlterConfigs replaces everything: segment.ms not named again is back to its default.
    alter_topic(&bootstrap, "ledger", &[("retention.ms", "7200000")]).unwrap();
    let entries = describe_topic(&bootstrap, "ledger").unwrap();
    assert_eq!(entry(&entries, "segment.ms").2, ConfigSource::Default);

    // Bad values change nothing (the `rdkafka` crate reports every AlterConfigs resource as
    // a success, so the error codes are checked through the wire below).
    let _ = alter_topic(&bootstrap, "ledger", &[("retention.ms", "soon")]);
    let _ = alter_topic(&bootstrap, "ledger", &[("no.such.config", "1")]);
    assert_eq!(
        entry(
            &describe_topic(&bootstrap, "ledger").unwrap(),
            "retention.ms"
        )
        .1,
        "7200000"
    );

    // The broker's settings, with Kafka's names.
    let results = runtime()
        .block_on(
            admin(&bootstrap)
                .describe_configs(&[ResourceSpecifier::Broker(1)], &AdminOptions::new()),
        )
        .unwrap();
    let broker_configs = results.into_iter().next().unwrap().unwrap();
    let retention = broker_configs
        .get("log.retention.check.interval.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("100"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    assert!(retention.is_read_only);
    assert_eq!(
        broker_configs.get("num.partitions").unwrap().source,
        ConfigSource::Default
    );
    drop(consumer);
    broker.shutdown();

    // Kept across a restart.
    let broker = EmbeddedBroker::start(config()).unwrap();
    let entries = describe_topic(&broker.bootstrap(), "ledger").unwrap();
    let (_, v, source) = entry(&entries, "retention.ms");
    assert_eq!(
        (v.as_str(), source),
        ("7200000", &ConfigSource::DynamicTopic)
    );
    broker.shutdown();
}

pub(crate) fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_config_operation(operation)
        .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
}

pub(crate) fn incremental(
    c: &mut RawClient,
    topic: &str,
    ops: Vec<AlterableConfig>,
    validate_only: bool,
) -> (i16, Option<String>) {
    incremental_on(c, 2, topic, ops, validate_only)
}

/// IncrementalAlterConfigs of one resource (2: a topic, 4: a broker): its error code and
/// message.
fn incremental_on(
    c: &mut RawClient,
    resource_type: i8,
    name: &str,
    ops: Vec<AlterableConfig>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let r = c
        .call(
            1,
            &IncrementalAlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configs(ops)]),
        )
        .unwrap();
    let resp = &r.responses[0];
    (
        resp.error_code,
        resp.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// DescribeConfigs v4 of one topic config: (value, source, synonyms as (name, source)).
fn describe_one(c: &mut RawClient, topic: &str, name: &str) -> (String, i8, Vec<(String, i8)>) {
    let r = c
        .call(
            4,
            &DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(topic.to_string()))
                    .with_configuration_keys(Some(vec![StrBytes::from_string(
                        name.to_string(),
                    )]))]),
        )
        .unwrap();
    let configs = &r.results[0].configs;
    assert_eq!(configs.len(), 1, "only the key asked for");
    let c = &configs[0];
    (
        c.value.as_ref().unwrap().to_string(),
        c.config_source,
        c.synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect(),
    )
}

#[test]
fn incremental_alter_configs_set_delete_append_subtract_and_synonyms() {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(crate::wire::create(&mut c, "snapshots", 1, &[]), 0);
    let r = c
        .call(
            4,
            &DescribeConfigsRequest::default()
                .with_include_documentation(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("snapshots"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                        "cleanup.policy",
                    )]))]),
        )
        .unwrap();
    let cleanup = &r.results[0].configs[0];
    assert_eq!(cleanup.config_type, 7, "LIST");
    assert!(cleanup
        .documentation
        .as_ref()
        .is_some_and(|d| d.contains("compact")));
    let (value, source, synonyms) = describe_one(&mut c, "snapshots", "retention.ms");
    assert_eq!((value.as_str(), source), ("604800000", 5));
    assert_eq!(synonyms, vec![("log.retention.ms".to_string(), 5)]);

    assert_eq!(
        incremental(
            &mut c,
            "snapshots",
            vec![
                op("cleanup.policy", 2, Some("compact")),
                op("retention.ms", 0, Some("1000"))
            ],
            false
        ),
        (0, None)
    );
    assert_eq!(
        describe_one(&mut c, "snapshots", "cleanup.policy").0,
        "delete,compact"
    );
    let (value, source, synonyms) = describe_one(&mut c, "snapshots", "retention.ms");
    assert_eq!((value.as_str(), source), ("1000", 1));
    assert_eq!(
        synonyms,
        vec![
            ("retention.ms".to_string(), 1),
            ("log.retention.ms".to_string(), 5)
        ]
    );
    assert_eq!(
        incremental(
            &mut c,
            "snapshots",
            vec![
                op("cleanup.policy", 3, Some("delete")),
                op("retention.ms", 1, None)
            ],
            false
        ),
        (0, None)
    );
    assert_eq!(
        describe_one(&mut c, "snapshots", "cleanup.policy").0,
        "compact"
    );
    assert_eq!(describe_one(&mut c, "snapshots", "retention.ms").1, 5);

    // validate_only changes nothing; bad input names the key.
    assert_eq!(
        incremental(
            &mut c,
            "snapshots",
            vec![op("segment.ms", 0, Some("5"))],
            true
        ),
        (0, None)
    );
    assert_eq!(describe_one(&mut c, "snapshots", "segment.ms").1, 5);
    let (code, message) = incremental(
        &mut c,
        "snapshots",
        vec![op("segment.bytes", 0, Some("10"))],
        false,
    );
    assert_eq!(code, ErrorCode::InvalidConfig.code());
    assert!(message.unwrap().contains("segment.bytes"));
    let (code, _) = incremental(
        &mut c,
        "snapshots",
        vec![op("retention.ms", 2, Some("5"))],
        false,
    );
    assert_eq!(
        code,
        ErrorCode::InvalidConfig.code(),
        "APPEND on a non-list config"
    );
    let (code, _) = incremental(
        &mut c,
        "nope",
        vec![op("retention.ms", 0, Some("5"))],
        false,
    );
    assert_eq!(code, ErrorCode::UnknownTopicOrPartition.code());
    let r = c
        .call(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("nope")),
            ]),
        )
        .unwrap();
    assert_eq!(
        r.results[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    broker.shutdown();
}

#[test]
fn alter_configs_replaces_everything_and_refuses_bad_values_with_invalid_config() {
    use brook_protocol::kafka_protocol::messages::alter_configs_request::{
        AlterConfigsResource as Resource, AlterableConfig as Config,
    };
    use brook_protocol::kafka_protocol::messages::AlterConfigsRequest;
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        crate::wire::create(&mut c, "t", 1, &[("segment.ms", "1000")]),
        0
    );
    let alter = |c: &mut RawClient, resource_type: i8, name: &str, pairs: &[(&str, &str)]| {
        let r = c
            .call(
                2,
                &AlterConfigsRequest::default().with_resources(vec![Resource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configs(
                        pairs
                            .iter()
                            .map(|(k, v)| {
                                Config::default()
                                    .with_name(StrBytes::from_string(k.to_string()))
                                    .with_value(Some(StrBytes::from_string(v.to_string())))
                            })
                            .collect(),
                    )]),
            )
            .unwrap();
        (
            r.responses[0].error_code,
            r.responses[0].error_message.clone(),
        )
    };
    let (code, message) = alter(&mut c, 2, "t", &[("retention.ms", "soon")]);
    assert_eq!(code, ErrorCode::InvalidConfig.code());
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(
        alter(&mut c, 2, "missing", &[("retention.ms", "1")]).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        alter(&mut c, 4, "1", &[("log.cleaner.enable", "false")]).0,
        ErrorCode::InvalidRequest.code(),
        "not a dynamic broker config"
    );
    assert_eq!(
        alter(&mut c, 2, "t", &[("retention.ms", "5000")]),
        (0, None)
    );
    // segment.ms was not named: back to its default.
    assert_eq!(describe_one(&mut c, "t", "segment.ms").1, 5);
    assert_eq!(describe_one(&mut c, "t", "retention.ms").0, "5000");
    broker.shutdown();
}

/// IncrementalAlterConfigs of the broker resource `name` ("" = cluster default).
pub(crate) fn broker_incremental(
    c: &mut RawClient,
    name: &str,
    ops: Vec<AlterableConfig>,
    validate_only: bool,
) -> i16 {
    incremental_on(c, 4, name, ops, validate_only).0
}

/// A broker setting described through the wire: (value, source, read_only, synonym
/// sources, type, documented).
fn describe_broker(
    c: &mut RawClient,
    name: &str,
    key: &str,
) -> Option<(String, i8, bool, Vec<i8>, i8, bool)> {
    let r = c
        .call(
            4,
            &DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_include_documentation(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_string(name.to_string()))]),
        )
        .unwrap();
    assert_eq!(r.results[0].error_code, 0);
    r.results[0]
        .configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .map(|e| {
            (
                e.value.as_ref().unwrap().to_string(),
                e.config_source,
                e.read_only,
                e.synonyms.iter().map(|s| s.source).collect(),
                e.config_type,
                e.documentation.is_some(),
            )
        })
}

#[test]
fn dynamic_broker_configs_change_topic_defaults_at_runtime_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || BrokerConfig {
        log_retention_check_interval_ms: 100,
        ..BrokerConfig::with_data_dir(dir.path())
    };
    let broker = EmbeddedBroker::start(config()).unwrap();
    let bootstrap = broker.bootstrap();
    let mut c = RawClient::connect(&bootstrap).unwrap();
    create_topic(&bootstrap, "ledger", 1);

    // Cluster default: segments roll after 100 ms, for every topic without its own value.
    assert_eq!(
        broker_incremental(&mut c, "", vec![op("log.roll.ms", 0, Some("100"))], false),
        0
    );
    produce_hour_old(&bootstrap, "ledger");
    let consumer = consumer(&bootstrap);
    let low = || low_watermark(&consumer, "ledger");
    assert_eq!(low(), 0);
    // Retention of a minute, as the cluster default: the hour-old segments go, no restart.
    assert_eq!(
        broker_incremental(
            &mut c,
            "",
            vec![op("log.retention.ms", 0, Some("60000"))],
            false
        ),
        0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while low() == 0 {
        assert!(
            Instant::now() < deadline,
            "log.retention.ms=60000 removed nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (value, source, synonyms) = describe_one(&mut c, "ledger", "retention.ms");
    assert_eq!(
        (value.as_str(), source),
        ("60000", 3),
        "DYNAMIC_DEFAULT_BROKER_CONFIG"
    );
    assert_eq!(
        synonyms,
        vec![
            ("log.retention.ms".to_string(), 3),
            ("log.retention.ms".to_string(), 5)
        ]
    );

    // This broker's own value wins over the cluster default.
    assert_eq!(
        broker_incremental(
            &mut c,
            "1",
            vec![op("log.retention.ms", 0, Some("7200000"))],
            false
        ),
        0
    );
    let (value, source, _) = describe_one(&mut c, "ledger", "retention.ms");
    assert_eq!(
        (value.as_str(), source),
        ("7200000", 2),
        "DYNAMIC_BROKER_CONFIG"
    );
    let (value, source, read_only, synonyms, kind, documented) =
        describe_broker(&mut c, "1", "log.retention.ms").unwrap();
    assert_eq!((value.as_str(), source, read_only), ("7200000", 2, false));
    assert_eq!(synonyms, vec![2, 3, 5]);
    assert_eq!(kind, 5, "LONG");
    assert!(documented);
    let static_one = describe_broker(&mut c, "1", "log.retention.check.interval.ms").unwrap();
    assert_eq!(
        (static_one.1, static_one.2),
        (4, true),
        "static and read-only"
    );
    // The cluster-default resource lists only what is set there.
    assert_eq!(
        describe_broker(&mut c, "", "log.retention.ms").unwrap().0,
        "60000"
    );
    assert!(describe_broker(&mut c, "", "num.partitions").is_none());

    // Refusals change nothing.
    for (ops, code) in [
        (
            vec![op("log.cleaner.enable", 0, Some("false"))],
            ErrorCode::InvalidRequest,
        ),
        (
            vec![op("num.partitions", 0, Some("0"))],
            ErrorCode::InvalidConfig,
        ),
        (
            vec![op("num.partitions", 0, Some("several"))],
            ErrorCode::InvalidConfig,
        ),
        (
            vec![op("num.partitions", 2, Some("3"))],
            ErrorCode::InvalidConfig,
        ),
    ] {
        assert_eq!(broker_incremental(&mut c, "1", ops, false), code.code());
    }
    assert_eq!(
        broker_incremental(&mut c, "7", vec![op("num.partitions", 0, Some("3"))], false),
        ErrorCode::InvalidRequest.code(),
        "another broker's id"
    );
    assert_eq!(
        broker_incremental(&mut c, "", vec![op("num.partitions", 0, Some("3"))], true),
        0
    );
    assert_eq!(
        describe_broker(&mut c, "1", "num.partitions").unwrap().0,
        "1"
    );

    // num.partitions for the next topic created without a count.
    assert_eq!(
        broker_incremental(&mut c, "", vec![op("num.partitions", 0, Some("3"))], false),
        0
    );
    assert_eq!(crate::wire::create(&mut c, "projections", -1, &[]), 0);
    let metadata = consumer
        .fetch_metadata(Some("projections"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    drop(consumer);
    broker.shutdown();

    // Both layers are kept across a restart; DELETE returns to the next layer.
    let broker = EmbeddedBroker::start(config()).unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(describe_one(&mut c, "ledger", "retention.ms").0, "7200000");
    assert_eq!(
        describe_broker(&mut c, "1", "num.partitions").unwrap().0,
        "3"
    );
    assert_eq!(
        broker_incremental(&mut c, "1", vec![op("log.retention.ms", 1, None)], false),
        0
    );
    let (value, source, _) = describe_one(&mut c, "ledger", "retention.ms");
    assert_eq!((value.as_str(), source), ("60000", 3));
    broker.shutdown();
}
