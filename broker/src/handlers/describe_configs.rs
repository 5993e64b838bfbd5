//! DescribeConfigs (key 32): a topic's configs (every Kafka topic config with its effective
//! value and source) or the broker's settings with Kafka's names.
//!
//! Sources as Kafka reports them: DYNAMIC_TOPIC_CONFIG (1) for a topic's own setting,
//! DYNAMIC_BROKER_CONFIG (2) and DYNAMIC_DEFAULT_BROKER_CONFIG (3) for dynamic broker
//! configs of this broker and of the cluster (`crate::dynamic_config`), STATIC_BROKER_CONFIG
//! (4) for a value from the broker's config file, DEFAULT_CONFIG (5) otherwise. With
//! `include_synonyms` a config lists, most specific first, every layer that sets it: the
//! topic's own value, the broker settings it falls back to (`retention.ms` ->
//! `log.retention.ms`, ...) and the default. v3+ carry each config's type, and with
//! `include_documentation` a one-line documentation. Broker settings that cannot change at
//! runtime are `read_only`. The broker resource named "" (the cluster default) lists only the
//! dynamic cluster defaults, as in Kafka. Named keys are answered when known; unknown ones
//! are left out, as in Kafka; no keys (null or an empty list) means every config.

use brook_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use brook_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::alter_configs::broker_scope;
use super::{Ctx, Operation, ResourceType};
use crate::config::BrokerConfig;
use crate::dynamic_config::{documentation, Origin, Scope, DYNAMIC};
use crate::topic_config::{self, ConfigSource};

pub(crate) const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

/// Kafka's resource types.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
/// From v3 each config carries its type.
const TYPES_FROM: i16 = 3;

pub(crate) async fn handle(ctx: &Ctx<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let with_types = ctx.version() >= TYPES_FROM;
    let results = req
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            // Null or empty: every config, as Kafka's ConfigHelper does.
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
            };
            let configs = match r.resource_type {
                RESOURCE_TOPIC
                    if !ctx.allowed(
                        Operation::DescribeConfigs,
                        ResourceType::Topic,
                        &r.resource_name,
                    ) =>
                {
                    Err((
                        ErrorCode::TopicAuthorizationFailed,
                        "Topic authorization failed.".to_string(),
                    ))
                }
                RESOURCE_BROKER if !ctx.allowed_on_cluster(Operation::DescribeConfigs) => Err((
                    ErrorCode::ClusterAuthorizationFailed,
                    "Cluster authorization failed.".to_string(),
                )),
                RESOURCE_TOPIC => match ctx.state.topics.get(&r.resource_name) {
                    Some(topic) => Ok(topic_configs(
                        ctx,
                        &topic.config(),
                        &wanted,
                        req.include_synonyms,
                        with_types,
                        with_types && req.include_documentation,
                    )),
                    None => Err((
                        ErrorCode::UnknownTopicOrPartition,
                        format!("Topic {} does not exist", r.resource_name.as_str()),
                    )),
                },
                RESOURCE_BROKER => broker_scope(ctx, &r.resource_name).map(|scope| {
                    broker_configs(
                        ctx,
                        scope,
                        &wanted,
                        req.include_synonyms,
                        with_types,
                        with_types && req.include_documentation,
                    )
                }),
                other => Err((
                    ErrorCode::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match configs {
                Ok(configs) => result.with_configs(configs),
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn synonym(name: &str, value: String, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value)))
        .with_source(source)
}

fn topic_configs(
    ctx: &Ctx<'_>,
    config: &topic_config::TopicConfig,
    wanted: &dyn Fn(&str) -> bool,
    include_synonyms: bool,
    with_types: bool,
    with_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = &ctx.state.dynamic;
    config
        .entries(&ctx.state.current())
        .into_iter()
        .filter(|e| wanted(e.name))
        .map(|e| {
            // The broker setting this config falls back to, and which layer sets it.
            let broker_name = topic_config::broker_synonyms(e.name).first().copied();
            let origins = broker_name.map(|n| dynamic.origins(n)).unwrap_or_default();
            let source = match e.source {
                ConfigSource::StaticBroker => origins
                    .first()
                    .map_or(ConfigSource::StaticBroker.id(), |o| o.0.id()),
                other => other.id(),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = config.overrides().get(e.name) {
                    synonyms.push(synonym(e.name, v.clone(), ConfigSource::Topic.id()));
                }
                for (origin, value) in origins.iter().filter(|o| o.0 != Origin::Default) {
                    synonyms.push(synonym(
                        broker_name.unwrap_or(e.name),
                        value.clone(),
                        origin.id(),
                    ));
                }
                let default = topic_config::builtin_default(e.name).unwrap_or_default();
                synonyms.push(synonym(
                    broker_name.unwrap_or(e.name),
                    default.to_string(),
                    ConfigSource::Default.id(),
                ));
            }
            let mut c = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_config_source(source)
                .with_synonyms(synonyms);
            if with_types {
                c = c.with_config_type(topic_config::config_type(e.name));
            }
            if with_documentation {
                c = c.with_documentation(
                    topic_config::documentation(e.name).map(StrBytes::from_static_str),
                );
            }
            c
        })
        .collect()
}

/// Kafka's INT settings among the broker's (the other numbers are LONG or DOUBLE).
const INT_SETTINGS: &[&str] = &[
    "node.id",
    "num.partitions",
    "log.segment.bytes",
    "message.max.bytes",
    "socket.request.max.bytes",
    "fetch.max.bytes",
    "max.connections",
    "max.connections.per.ip",
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offsets.retention.minutes",
    "log.cleaner.threads",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "log.flush.offset.checkpoint.interval.ms",
];

/// Kafka's `ConfigType` of a broker setting, from its default value.
fn broker_config_type(name: &str, default: &str) -> i8 {
    if default == "true" || default == "false" {
        1 // BOOLEAN
    } else if INT_SETTINGS.contains(&name) {
        3 // INT
    } else if default.parse::<i64>().is_ok() {
        5 // LONG
    } else if default.parse::<f64>().is_ok() {
        6 // DOUBLE
    } else {
        2 // STRING
    }
}

fn broker_configs(
    ctx: &Ctx<'_>,
    scope: Scope,
    wanted: &dyn Fn(&str) -> bool,
    include_synonyms: bool,
    with_types: bool,
    with_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let dynamic = &ctx.state.dynamic;
    let defaults = BrokerConfig::default().kafka_settings();
    let settings: Vec<(String, String)> = match scope {
        Scope::Broker => ctx.state.current().kafka_settings(),
        Scope::ClusterDefault => dynamic.layer(Scope::ClusterDefault).into_iter().collect(),
    };
    settings
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, value)| {
            let mut origins = dynamic.origins(&name);
            if scope == Scope::ClusterDefault {
                origins.retain(|o| o.0 != Origin::Broker);
            }
            let source = origins.first().map_or(Origin::Default, |o| o.0);
            let synonyms = if include_synonyms {
                origins
                    .iter()
                    .map(|(o, v)| synonym(&name, v.clone(), o.id()))
                    .collect()
            } else {
                Vec::new()
            };
            // Secrets are named, never shown (Kafka's password settings).
            let sensitive = BrokerConfig::is_sensitive(&name);
            let synonyms = if sensitive {
                synonyms.into_iter().map(|s| s.with_value(None)).collect()
            } else {
                synonyms
            };
            let mut c = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_value((!sensitive).then(|| StrBytes::from_string(value)))
                .with_is_sensitive(sensitive)
                .with_read_only(!DYNAMIC.contains(&name.as_str()))
                .with_config_source(source.id())
                .with_synonyms(synonyms);
            if with_types {
                let default = defaults
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, v)| v.as_str());
                c = c.with_config_type(broker_config_type(&name, default));
            }
            if with_documentation {
                c = c.with_documentation(documentation(&name).map(StrBytes::from_static_str));
            }
            c
        })
        .collect()
}
