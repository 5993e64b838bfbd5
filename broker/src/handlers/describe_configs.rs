//! DescribeConfigs (key 32): a topic's configs (every Kafka topic config with its effective
//! value and source) or the broker's settings with Kafka's names.
//!
//! Sources as Kafka reports them: DYNAMIC_TOPIC_CONFIG (1) for a topic's own setting,
//! STATIC_BROKER_CONFIG (4) for a value from the broker's config file, DEFAULT_CONFIG (5)
//! otherwise. With `include_synonyms` a topic config lists, most specific first, itself (if
//! set on the topic), the broker settings it falls back to (`retention.ms` ->
//! `log.retention.ms`, ...) and the default. v3+ carry each config's type, and with
//! `include_documentation` a topic config's one-line documentation (broker settings have
//! none: null). Broker settings are read-only: they change with the config file.
//! Named keys are answered when known; unknown ones are left out, as in Kafka.

use brook_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use brook_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use brook_protocol::kafka_protocol::protocol::{StrBytes, VersionRange};
use brook_protocol::ErrorCode;

use super::Ctx;
use crate::config::BrokerConfig;
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
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let configs = match r.resource_type {
                RESOURCE_TOPIC => match ctx.state.topics.get(&r.resource_name) {
                    Some(topic) => Ok(topic_configs(
                        &topic.config(),
                        &ctx.state.config,
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
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if name.is_empty() || name == ctx.state.node_id().to_string() {
                        Ok(broker_configs(&ctx.state.config, &wanted))
                    } else {
                        Err((
                            ErrorCode::InvalidRequest,
                            format!("Unexpected broker id, expected {}", ctx.state.node_id()),
                        ))
                    }
                }
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

fn topic_configs(
    config: &topic_config::TopicConfig,
    broker: &BrokerConfig,
    wanted: &dyn Fn(&str) -> bool,
    include_synonyms: bool,
    with_types: bool,
    with_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let broker_settings = broker.kafka_settings();
    let broker_value = |name: &str| {
        broker_settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    config
        .entries(broker)
        .into_iter()
        .filter(|e| wanted(e.name))
        .map(|e| {
            let mut synonyms = Vec::new();
            if include_synonyms {
                let synonym = |name: &str, value: String, source: ConfigSource| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(name.to_string()))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_source(source.id())
                };
                if let Some(v) = config.overrides().get(e.name) {
                    synonyms.push(synonym(e.name, v.clone(), ConfigSource::Topic));
                }
                let names = topic_config::broker_synonyms(e.name);
                if e.source == ConfigSource::StaticBroker {
                    if let Some(first) = names.first() {
                        let value = broker_value(first).unwrap_or_else(|| e.value.clone());
                        synonyms.push(synonym(first, value, ConfigSource::StaticBroker));
                    }
                }
                let default = topic_config::builtin_default(e.name).unwrap_or_default();
                let default_name = names.first().copied().unwrap_or(e.name);
                synonyms.push(synonym(
                    default_name,
                    default.to_string(),
                    ConfigSource::Default,
                ));
            }
            let mut c = DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_config_source(e.source.id())
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

fn broker_configs(
    broker: &BrokerConfig,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let defaults = BrokerConfig::default().kafka_settings();
    broker
        .kafka_settings()
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, value)| {
            let default = defaults.iter().any(|(n, v)| *n == name && *v == value);
            let source = if default {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_string(name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(true)
                .with_config_source(source.id())
        })
        .collect()
}
