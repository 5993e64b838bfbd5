//! Topic-level configuration with Kafka's names, defaults and validation.
//!
//! A topic stores only the entries set explicitly (its overrides); everything else falls back
//! to the broker default. CreateTopics validates names and values against [`TOPIC_CONFIGS`].

use std::collections::BTreeMap;

use brook_storage::LogConfig;

use crate::config::BrokerConfig;

/// The type and range of one config value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long {
        min: i64,
    },
    Int {
        min: i64,
    },
    Bool,
    Double {
        min: f64,
        max: f64,
    },
    OneOf(&'static [&'static str]),
    /// Comma-separated list, each item from the set (empty set: any item).
    ListOf(&'static [&'static str]),
}

/// One known topic config.
#[derive(Debug, Clone, Copy)]
struct Known {
    name: &'static str,
    kind: Kind,
    /// Default when the broker config does not supply one.
    default: &'static str,
}

const LONG0: Kind = Kind::Long { min: 0 };
const LONG_ANY: Kind = Kind::Long { min: -1 };

/// Every topic config Kafka 4.x accepts, in alphabetical order.
const TOPIC_CONFIGS: &[Known] = &[
    Known {
        name: "cleanup.policy",
        kind: Kind::ListOf(&["delete", "compact"]),
        default: "delete",
    },
    Known {
        name: "compression.gzip.level",
        kind: Kind::Int { min: 1 },
        default: "-1",
    },
    Known {
        name: "compression.lz4.level",
        kind: Kind::Int { min: 1 },
        default: "9",
    },
    Known {
        name: "compression.type",
        kind: Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        default: "producer",
    },
    Known {
        name: "compression.zstd.level",
        kind: Kind::Int { min: -131072 },
        default: "3",
    },
    // Brook's own: the per-key index of aggregate streams (docs/event-streams.md).
    Known {
        name: "brook.key.index",
        kind: Kind::Bool,
        default: "false",
    },
    Known {
        name: "brook.key.index.allow.partition.increase",
        kind: Kind::Bool,
        default: "false",
    },
    // Confluent Server's broker-side schema validation (Brook's schema registry).
    // Brook's own: `full` also checks each payload against its schema.
    Known {
        name: "brook.key.schema.validation",
        kind: Kind::OneOf(&["none", "id", "full"]),
        default: "none",
    },
    Known {
        name: "brook.value.schema.validation",
        kind: Kind::OneOf(&["none", "id", "full"]),
        default: "none",
    },
    Known {
        name: "confluent.key.schema.validation",
        kind: Kind::Bool,
        default: "false",
    },
    Known {
        name: "confluent.value.schema.validation",
        kind: Kind::Bool,
        default: "false",
    },
    Known {
        name: "delete.retention.ms",
        kind: LONG0,
        default: "86400000",
    },
    Known {
        name: "file.delete.delay.ms",
        kind: LONG0,
        default: "60000",
    },
    Known {
        name: "flush.messages",
        kind: Kind::Long { min: 1 },
        default: "9223372036854775807",
    },
    // Brook's default is its broker default `log.flush.interval.ms` (1000), not Kafka's
    // "never" (Kafka leaves durability to replication, which a single node does not have):
    // the topic default must be the broker's, or no topic would ever be flushed by time.
    Known {
        name: "flush.ms",
        kind: LONG0,
        default: "1000",
    },
    Known {
        name: "follower.replication.throttled.replicas",
        kind: Kind::ListOf(&[]),
        default: "",
    },
    Known {
        name: "index.interval.bytes",
        kind: Kind::Int { min: 0 },
        default: "4096",
    },
    Known {
        name: "leader.replication.throttled.replicas",
        kind: Kind::ListOf(&[]),
        default: "",
    },
    Known {
        name: "local.retention.bytes",
        kind: Kind::Long { min: -2 },
        default: "-2",
    },
    Known {
        name: "local.retention.ms",
        kind: Kind::Long { min: -2 },
        default: "-2",
    },
    Known {
        name: "max.compaction.lag.ms",
        kind: Kind::Long { min: 1 },
        default: "9223372036854775807",
    },
    Known {
        name: "max.message.bytes",
        kind: Kind::Int { min: 0 },
        default: "1048588",
    },
    Known {
        name: "message.timestamp.after.max.ms",
        kind: LONG0,
        default: "3600000",
    },
    Known {
        name: "message.timestamp.before.max.ms",
        kind: LONG0,
        default: "9223372036854775807",
    },
    // Deprecated in Kafka 3.6 and gone from 4.x; still accepted, as the fallback of the two
    // above when they are not set.
    Known {
        name: "message.timestamp.difference.max.ms",
        kind: LONG0,
        default: "9223372036854775807",
    },
    Known {
        name: "message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        default: "CreateTime",
    },
    Known {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double { min: 0.0, max: 1.0 },
        default: "0.5",
    },
    Known {
        name: "min.compaction.lag.ms",
        kind: LONG0,
        default: "0",
    },
    Known {
        name: "min.insync.replicas",
        kind: Kind::Int { min: 1 },
        default: "1",
    },
    Known {
        name: "preallocate",
        kind: Kind::Bool,
        default: "false",
    },
    Known {
        name: "remote.storage.enable",
        kind: Kind::Bool,
        default: "false",
    },
    Known {
        name: "retention.bytes",
        kind: LONG_ANY,
        default: "-1",
    },
    Known {
        name: "retention.ms",
        kind: LONG_ANY,
        default: "604800000",
    },
    Known {
        name: "segment.bytes",
        kind: Kind::Int { min: 14 },
        default: "1073741824",
    },
    Known {
        name: "segment.index.bytes",
        kind: Kind::Int { min: 4 },
        default: "10485760",
    },
    Known {
        name: "segment.jitter.ms",
        kind: LONG0,
        default: "0",
    },
    Known {
        name: "segment.ms",
        kind: Kind::Long { min: 1 },
        default: "604800000",
    },
    Known {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        default: "false",
    },
];

/// Kafka's `ConfigType` ids, as DescribeConfigs v3+ reports them.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// The broker settings a topic config falls back to, most specific first (Kafka's
/// `TopicConfigSynonyms`): what DescribeConfigs lists as synonyms.
pub fn broker_synonyms(name: &str) -> &'static [&'static str] {
    match name {
        "cleanup.policy" => &["log.cleanup.policy"],
        "compression.type" => &["compression.type"],
        "delete.retention.ms" => &["log.cleaner.delete.retention.ms"],
        "file.delete.delay.ms" => &["log.segment.delete.delay.ms"],
        "flush.messages" => &["log.flush.interval.messages"],
        "flush.ms" => &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        "index.interval.bytes" => &["log.index.interval.bytes"],
        "max.compaction.lag.ms" => &["log.cleaner.max.compaction.lag.ms"],
        "max.message.bytes" => &["message.max.bytes"],
        "message.timestamp.after.max.ms" => &["log.message.timestamp.after.max.ms"],
        "message.timestamp.before.max.ms" => &["log.message.timestamp.before.max.ms"],
        "message.timestamp.difference.max.ms" => &["log.message.timestamp.difference.max.ms"],
        "message.timestamp.type" => &["log.message.timestamp.type"],
        "min.cleanable.dirty.ratio" => &["log.cleaner.min.cleanable.ratio"],
        "min.compaction.lag.ms" => &["log.cleaner.min.compaction.lag.ms"],
        "min.insync.replicas" => &["min.insync.replicas"],
        "preallocate" => &["log.preallocate"],
        "retention.bytes" => &["log.retention.bytes"],
        "retention.ms" => &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "segment.bytes" => &["log.segment.bytes"],
        "segment.index.bytes" => &["log.index.size.max.bytes"],
        "segment.jitter.ms" => &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        "segment.ms" => &["log.roll.ms", "log.roll.hours"],
        "unclean.leader.election.enable" => &["unclean.leader.election.enable"],
        _ => &[],
    }
}

/// Kafka's `ConfigType` of a topic config (0: unknown).
pub fn config_type(name: &str) -> i8 {
    match find(name).map(|k| k.kind) {
        Some(Kind::Long { .. }) => TYPE_LONG,
        Some(Kind::Int { .. }) => TYPE_INT,
        Some(Kind::Bool) => TYPE_BOOLEAN,
        Some(Kind::Double { .. }) => TYPE_DOUBLE,
        Some(Kind::OneOf(_)) => TYPE_STRING,
        Some(Kind::ListOf(_)) => TYPE_LIST,
        None => 0,
    }
}

/// One line on what a topic config does (DescribeConfigs v3+ with `include_documentation`),
/// in Brook's words and saying when Brook does not act on it.
pub fn documentation(name: &str) -> Option<&'static str> {
    Some(match name {
        "cleanup.policy" => "What happens to old data: delete (retention), compact (keep the latest record per key), or both.",
        "compression.gzip.level" => "Gzip level for broker-side recompression (stored; Brook keeps batches as produced).",
        "compression.lz4.level" => "LZ4 level for broker-side recompression (stored; Brook keeps batches as produced).",
        "compression.type" => "Codec of stored batches; producer keeps the producer's (Brook stores batches as produced).",
        "compression.zstd.level" => "Zstd level for broker-side recompression (stored; Brook keeps batches as produced).",
        "brook.key.index" => "Index every record's key: per-key revisions, conditional appends with the brook.expected.revision header, and per-aggregate reads over HTTP (docs/event-streams.md).",
        "brook.key.index.allow.partition.increase" => "Let CreatePartitions add partitions to a topic with brook.key.index=true (it moves keys to other partitions, so their streams' revisions start again there).",
        "brook.key.schema.validation" => "none, id (as confluent.key.schema.validation), or full: each key must also be valid data of its schema (an Avro datum, a JSON document the JSON Schema accepts, a Protobuf message).",
        "brook.value.schema.validation" => "none, id (as confluent.value.schema.validation), or full: each value must also be valid data of its schema (an Avro datum, a JSON document the JSON Schema accepts, a Protobuf message).",
        "confluent.key.schema.validation" => "Every record's key must carry (magic byte 0, 4-byte id) a schema id registered under <topic>-key; otherwise Produce refuses the batch (INVALID_RECORD).",
        "confluent.value.schema.validation" => "Every record's value must carry (magic byte 0, 4-byte id) a schema id registered under <topic>-value; otherwise Produce refuses the batch (INVALID_RECORD).",
        "delete.retention.ms" => "How long compaction keeps tombstones (and transaction markers) after it first sees them.",
        "file.delete.delay.ms" => "Delay before a deleted segment's files are removed (stored; Brook removes them at once).",
        "flush.messages" => "Unflushed records that trigger an fsync of the partition.",
        "flush.ms" => "Longest time acknowledged acks=1 data stays unflushed.",
        "follower.replication.throttled.replicas" => "Replication throttling (stored; Brook has no followers).",
        "index.interval.bytes" => "Bytes between two offset index entries.",
        "leader.replication.throttled.replicas" => "Replication throttling (stored; Brook has no followers).",
        "local.retention.bytes" => "Tiered storage: bytes kept locally (stored; Brook has no tiered storage).",
        "local.retention.ms" => "Tiered storage: time kept locally (stored; Brook has no tiered storage).",
        "max.compaction.lag.ms" => "Longest time a record may stay uncompacted.",
        "max.message.bytes" => "Largest record batch Produce accepts.",
        "message.timestamp.after.max.ms" => "How far in the future a record's timestamp may be.",
        "message.timestamp.before.max.ms" => "How far in the past a record's timestamp may be.",
        "message.timestamp.difference.max.ms" => "Deprecated: both timestamp windows at once when they are not set.",
        "message.timestamp.type" => "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's time.",
        "min.cleanable.dirty.ratio" => "Share of uncompacted data that makes a log eligible for compaction.",
        "min.compaction.lag.ms" => "Shortest time a record stays uncompacted.",
        "min.insync.replicas" => "Replicas that must acknowledge acks=all (stored; Brook is one fsynced replica).",
        "preallocate" => "Reserve the whole active segment on disk up front instead of chunk by chunk.",
        "remote.storage.enable" => "Tiered storage (stored; Brook has no tiered storage).",
        "retention.bytes" => "Partition size above which the oldest segments are deleted (-1: unlimited).",
        "retention.ms" => "Age after which whole segments are deleted (-1: forever).",
        "segment.bytes" => "Size at which the active segment rolls.",
        "segment.index.bytes" => "Size of a segment's offset and time indexes; the segment rolls when one is full.",
        "segment.jitter.ms" => "Random jitter subtracted from segment.ms (stored; Brook rolls at segment.ms).",
        "segment.ms" => "Age at which the active segment rolls, so a quiet partition's data becomes compactable.",
        "unclean.leader.election.enable" => "Leader election from out-of-sync replicas (stored; Brook has one replica).",
        _ => return None,
    })
}

/// The default of a topic config when neither the topic nor the broker sets it.
pub fn builtin_default(name: &str) -> Option<&'static str> {
    find(name).map(|k| k.default)
}

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp<'a> {
    Set(&'a str),
    Delete,
    /// Add items to a list config (those not present yet).
    Append(&'a str),
    /// Remove items from a list config.
    Subtract(&'a str),
}

/// Why a config entry was refused (answered with INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigValueError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("Null value not supported for topic configs: {0}")]
    Null(String),
}

fn find(name: &str) -> Option<&'static Known> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

fn check_value(known: &Known, value: &str) -> Result<(), String> {
    let v = value.trim();
    match known.kind {
        Kind::Long { min } | Kind::Int { min } => {
            let n: i64 = v.parse().map_err(|_| "not a number".to_string())?;
            if matches!(known.kind, Kind::Int { .. }) && i32::try_from(n).is_err() {
                return Err("out of range for an int".into());
            }
            if n < min {
                return Err(format!("value must be at least {min}"));
            }
        }
        Kind::Bool => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err("expected true or false".into());
            }
        }
        Kind::Double { min, max } => {
            let d: f64 = v.parse().map_err(|_| "not a number".to_string())?;
            if !(min..=max).contains(&d) {
                return Err(format!("value must be between {min} and {max}"));
            }
        }
        Kind::OneOf(options) => {
            if !options.contains(&v) {
                return Err(format!("must be one of {}", options.join(", ")));
            }
        }
        Kind::ListOf(options) => {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !options.is_empty() && !options.contains(&item) {
                    return Err(format!("items must be among {}", options.join(", ")));
                }
            }
        }
    }
    Ok(())
}

/// Where a config value comes from, as DescribeConfigs/CreateTopics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (Kafka's DYNAMIC_TOPIC_CONFIG, 1).
    Topic,
    /// Broker-wide setting from the config file (STATIC_BROKER_CONFIG, 4).
    StaticBroker,
    /// Built-in default (DEFAULT_CONFIG, 5).
    Default,
}

impl ConfigSource {
    /// Kafka's numeric source id.
    pub fn id(self) -> i8 {
        match self {
            Self::Topic => 1,
            Self::StaticBroker => 4,
            Self::Default => 5,
        }
    }
}

/// One resolved config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// The configs Produce applies to every batch, resolved from a topic's configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducePolicy {
    /// `max.message.bytes`.
    pub(crate) max_message_bytes: usize,
    /// `message.timestamp.type` is LogAppendTime.
    pub(crate) log_append_time: bool,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub(crate) compacted: bool,
    /// `message.timestamp.before.max.ms` (or the deprecated `difference.max.ms`).
    pub(crate) timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (or the deprecated `difference.max.ms`).
    pub(crate) timestamp_after_max_ms: i64,
    /// `flush.messages`.
    pub(crate) flush_messages: i64,
    /// `confluent.key.schema.validation` / `brook.key.schema.validation`, and the same for
    /// values.
    pub(crate) key_schema_validation: SchemaValidation,
    pub(crate) value_schema_validation: SchemaValidation,
    /// `brook.key.index`: conditional appends (`brook.expected.revision`) are possible.
    pub(crate) key_index: bool,
}

/// How Produce checks keys or values against the schema registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SchemaValidation {
    Off,
    /// A schema id registered under the topic's subject.
    Id,
    /// That, and the payload is valid data of the schema.
    Full,
}

/// A topic's explicitly set configs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Validates and collects `(name, value)` pairs from a request.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, ConfigValueError> {
        let mut overrides = BTreeMap::new();
        for (name, value) in pairs {
            let known = find(name).ok_or_else(|| ConfigValueError::Unknown(name.to_string()))?;
            let value = value.ok_or_else(|| ConfigValueError::Null(name.to_string()))?;
            check_value(known, value).map_err(|reason| ConfigValueError::BadValue {
                name: name.to_string(),
                value: value.to_string(),
                reason,
            })?;
            overrides.insert(name.to_string(), value.trim().to_string());
        }
        Ok(Self { overrides })
    }

    /// The explicitly set configs, by name.
    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// These configs with `changes` applied in order (IncrementalAlterConfigs), validated as
    /// a whole. APPEND and SUBTRACT work on list configs (such as `cleanup.policy`) and start
    /// from the effective value; on another config they are refused.
    pub fn with_changes(
        &self,
        broker: &BrokerConfig,
        changes: &[(&str, AlterOp<'_>)],
    ) -> Result<Self, ConfigValueError> {
        let mut overrides = self.overrides.clone();
        for (name, op) in changes {
            let known = find(name).ok_or_else(|| ConfigValueError::Unknown(name.to_string()))?;
            let is_list = matches!(known.kind, Kind::ListOf(_));
            let current = || {
                overrides
                    .get(*name)
                    .cloned()
                    .or_else(|| broker_default(broker, name))
                    .unwrap_or_else(|| known.default.to_string())
            };
            let items = |v: &str| -> Vec<String> {
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let not_a_list = || ConfigValueError::BadValue {
                name: name.to_string(),
                value: String::new(),
                reason: "APPEND and SUBTRACT apply to list configs only".into(),
            };
            match op {
                AlterOp::Set(v) => {
                    overrides.insert(name.to_string(), v.to_string());
                }
                AlterOp::Delete => {
                    overrides.remove(*name);
                }
                AlterOp::Append(v) => {
                    if !is_list {
                        return Err(not_a_list());
                    }
                    let mut list = items(&current());
                    for item in items(v) {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                    overrides.insert(name.to_string(), list.join(","));
                }
                AlterOp::Subtract(v) => {
                    if !is_list {
                        return Err(not_a_list());
                    }
                    let remove = items(v);
                    let list: Vec<String> = items(&current())
                        .into_iter()
                        .filter(|x| !remove.contains(x))
                        .collect();
                    overrides.insert(name.to_string(), list.join(","));
                }
            }
        }
        Self::from_pairs(
            overrides
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
        )
    }

    /// All known configs with their effective values and sources.
    pub fn entries(&self, broker: &BrokerConfig) -> Vec<ConfigEntry> {
        TOPIC_CONFIGS
            .iter()
            .map(|k| {
                if let Some(v) = self.overrides.get(k.name) {
                    return ConfigEntry {
                        name: k.name,
                        value: v.clone(),
                        source: ConfigSource::Topic,
                    };
                }
                match broker_default(broker, k.name) {
                    Some(v) => ConfigEntry {
                        name: k.name,
                        value: v,
                        source: ConfigSource::StaticBroker,
                    },
                    None => ConfigEntry {
                        name: k.name,
                        value: k.default.to_string(),
                        source: ConfigSource::Default,
                    },
                }
            })
            .collect()
    }

    /// The effective value of a known config.
    fn get(&self, broker: &BrokerConfig, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| broker_default(broker, name))
            .or_else(|| find(name).map(|k| k.default.to_string()))
    }

    fn get_i64(&self, broker: &BrokerConfig, name: &str, fallback: i64) -> i64 {
        self.get(broker, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(fallback)
    }

    /// `max.message.bytes`: the largest batch accepted by Produce.
    pub fn max_message_bytes(&self, broker: &BrokerConfig) -> usize {
        usize::try_from(self.get_i64(broker, "max.message.bytes", broker.message_max_bytes))
            .unwrap_or(0)
    }

    /// `flush.ms`: the longest acknowledged data stays unflushed.
    pub fn flush_ms(&self, broker: &BrokerConfig) -> i64 {
        self.get_i64(broker, "flush.ms", broker.log_flush_interval_ms)
    }

    /// `flush.messages`: unflushed records that trigger a flush.
    pub fn flush_messages(&self, broker: &BrokerConfig) -> i64 {
        self.get_i64(broker, "flush.messages", i64::MAX)
    }

    /// `retention.ms` (-1: unlimited).
    pub fn retention_ms(&self, broker: &BrokerConfig) -> i64 {
        self.get_i64(broker, "retention.ms", broker.log_retention_ms)
    }

    /// `retention.bytes` (-1: unlimited).
    pub fn retention_bytes(&self, broker: &BrokerConfig) -> i64 {
        self.get_i64(broker, "retention.bytes", broker.log_retention_bytes)
    }

    /// What the cleaner needs: `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`,
    /// `max.compaction.lag.ms`, `delete.retention.ms`.
    pub fn compaction(&self, broker: &BrokerConfig) -> (f64, i64, i64, i64) {
        let ratio = self
            .get(broker, "min.cleanable.dirty.ratio")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.5);
        (
            ratio,
            self.get_i64(broker, "min.compaction.lag.ms", 0),
            self.get_i64(broker, "max.compaction.lag.ms", i64::MAX),
            self.get_i64(broker, "delete.retention.ms", 86_400_000),
        )
    }

    /// True when `message.timestamp.type` is LogAppendTime.
    pub fn log_append_time(&self, broker: &BrokerConfig) -> bool {
        self.get(broker, "message.timestamp.type").as_deref() == Some("LogAppendTime")
    }

    /// What Produce checks against, resolved once (Produce reads it for every batch).
    pub(crate) fn produce_policy(&self, broker: &BrokerConfig) -> ProducePolicy {
        let explicit = |name: &str| self.overrides.get(name).and_then(|v| v.parse::<i64>().ok());
        let difference = explicit("message.timestamp.difference.max.ms");
        let window = |name: &str, default: i64| explicit(name).or(difference).unwrap_or(default);
        ProducePolicy {
            max_message_bytes: self.max_message_bytes(broker),
            log_append_time: self.log_append_time(broker),
            compacted: self
                .get(broker, "cleanup.policy")
                .is_some_and(|p| p.split(',').any(|x| x.trim() == "compact")),
            timestamp_before_max_ms: window("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: window("message.timestamp.after.max.ms", 3_600_000),
            flush_messages: self.flush_messages(broker),
            key_schema_validation: self.validation(broker, "key"),
            value_schema_validation: self.validation(broker, "value"),
            key_index: self.key_index(broker),
        }
    }

    /// The stricter of `confluent.<what>.schema.validation` and
    /// `brook.<what>.schema.validation`.
    fn validation(&self, broker: &BrokerConfig, what: &str) -> SchemaValidation {
        let confluent = self
            .get(broker, &format!("confluent.{what}.schema.validation"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let brook = match self
            .get(broker, &format!("brook.{what}.schema.validation"))
            .as_deref()
        {
            Some("full") => SchemaValidation::Full,
            Some("id") => SchemaValidation::Id,
            _ => SchemaValidation::Off,
        };
        let confluent = if confluent {
            SchemaValidation::Id
        } else {
            SchemaValidation::Off
        };
        confluent.max(brook)
    }

    /// The storage settings derived from this topic's configs.
    pub fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        let d = LogConfig::default();
        LogConfig {
            segment_bytes: u64::try_from(self.get_i64(
                broker,
                "segment.bytes",
                broker.log_segment_bytes,
            ))
            .unwrap_or(d.segment_bytes),
            segment_ms: self.get_i64(broker, "segment.ms", broker.log_roll_ms),
            index_interval_bytes: u32::try_from(self.get_i64(broker, "index.interval.bytes", 4096))
                .unwrap_or(d.index_interval_bytes),
            segment_index_bytes: u32::try_from(self.get_i64(
                broker,
                "segment.index.bytes",
                10 * 1024 * 1024,
            ))
            .unwrap_or(d.segment_index_bytes),
            preallocate: self
                .get(broker, "preallocate")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            cache_window_bytes: u64::try_from(broker.log_cache_window_bytes).ok(),
            key_index: self
                .key_index(broker)
                .then_some(brook_storage::KeyIndexConfig {
                    cache_keys: broker.brook_key_index_cache_keys,
                    segment_entries: broker.brook_key_index_segment_entries.max(1),
                }),
        }
    }

    /// `brook.key.index`: the topic's partitions index their records' keys.
    pub fn key_index(&self, broker: &BrokerConfig) -> bool {
        self.get(broker, "brook.key.index")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `brook.key.index.allow.partition.increase`.
    pub fn allows_partition_increase(&self, broker: &BrokerConfig) -> bool {
        !self.key_index(broker)
            || self
                .get(broker, "brook.key.index.allow.partition.increase")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Topic defaults that come from broker-wide settings.
fn broker_default(broker: &BrokerConfig, name: &str) -> Option<String> {
    if name == "brook.key.index" {
        return broker.brook_key_index.then(|| "true".to_string());
    }
    let defaults = BrokerConfig::default();
    let (value, default) = match name {
        "flush.ms" => (broker.log_flush_interval_ms, defaults.log_flush_interval_ms),
        "retention.ms" => (broker.log_retention_ms, defaults.log_retention_ms),
        "retention.bytes" => (broker.log_retention_bytes, defaults.log_retention_bytes),
        "segment.bytes" => (broker.log_segment_bytes, defaults.log_segment_bytes),
        "segment.ms" => (broker.log_roll_ms, defaults.log_roll_ms),
        "max.message.bytes" => (broker.message_max_bytes, defaults.message_max_bytes),
        _ => return None,
    };
    (value != default).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_flushed_after_the_brokers_flush_interval_by_default() {
        let broker = BrokerConfig::default();
        assert_eq!(TopicConfig::default().flush_ms(&broker), 1000);
        // Other configs on the topic change nothing about it.
        let other = TopicConfig::from_pairs([("segment.bytes", Some("1048576"))]).unwrap();
        assert_eq!(other.flush_ms(&broker), 1000);
        let slower = BrokerConfig {
            log_flush_interval_ms: 5000,
            ..BrokerConfig::default()
        };
        assert_eq!(TopicConfig::default().flush_ms(&slower), 5000);
        let own = TopicConfig::from_pairs([("flush.ms", Some("200"))]).unwrap();
        assert_eq!(own.flush_ms(&slower), 200);
    }

    #[test]
    fn validates_names_and_values() {
        let ok = TopicConfig::from_pairs([
            ("retention.ms", Some("1000")),
            ("cleanup.policy", Some("compact,delete")),
        ])
        .unwrap();
        assert_eq!(ok.overrides.len(), 2);
        assert_eq!(
            TopicConfig::from_pairs([("no.such", Some("1"))]),
            Err(ConfigValueError::Unknown("no.such".into()))
        );
        for (n, v) in [
            ("segment.bytes", "10"),
            ("segment.bytes", "x"),
            ("max.message.bytes", "99999999999"),
            ("cleanup.policy", "keep"),
            ("message.timestamp.type", "Now"),
            ("preallocate", "yes"),
            ("min.cleanable.dirty.ratio", "2"),
        ] {
            assert!(
                matches!(
                    TopicConfig::from_pairs([(n, Some(v))]),
                    Err(ConfigValueError::BadValue { .. })
                ),
                "{n}={v}"
            );
        }
        assert!(matches!(
            TopicConfig::from_pairs([("retention.ms", None)]),
            Err(ConfigValueError::Null(_))
        ));
    }

    #[test]
    fn incremental_changes_set_delete_append_and_subtract() {
        let broker = BrokerConfig::default();
        let c = TopicConfig::from_pairs([("retention.ms", Some("1000"))]).unwrap();
        let changed = c
            .with_changes(
                &broker,
                &[
                    ("retention.ms", AlterOp::Delete),
                    ("segment.ms", AlterOp::Set("100")),
                    ("cleanup.policy", AlterOp::Append("compact")),
                ],
            )
            .unwrap();
        assert_eq!(changed.overrides.get("retention.ms"), None);
        assert_eq!(changed.overrides["segment.ms"], "100");
        // Appended to the default, "delete".
        assert_eq!(changed.overrides["cleanup.policy"], "delete,compact");
        let again = changed
            .with_changes(
                &broker,
                &[
                    ("cleanup.policy", AlterOp::Append("compact")),
                    ("cleanup.policy", AlterOp::Subtract("delete")),
                ],
            )
            .unwrap();
        assert_eq!(again.overrides["cleanup.policy"], "compact");
        assert!(matches!(
            c.with_changes(&broker, &[("retention.ms", AlterOp::Append("5"))]),
            Err(ConfigValueError::BadValue { .. })
        ));
        assert!(matches!(
            c.with_changes(&broker, &[("segment.bytes", AlterOp::Set("10"))]),
            Err(ConfigValueError::BadValue { .. })
        ));
        assert_eq!(
            c.with_changes(&broker, &[("no.such", AlterOp::Delete)]),
            Err(ConfigValueError::Unknown("no.such".into()))
        );
        assert_eq!(config_type("retention.ms"), TYPE_LONG);
        assert_eq!(config_type("cleanup.policy"), TYPE_LIST);
        assert_eq!(broker_synonyms("retention.ms")[0], "log.retention.ms");
        // Every known config is documented.
        for k in TOPIC_CONFIGS {
            assert!(documentation(k.name).is_some(), "{} undocumented", k.name);
        }
    }

    #[test]
    fn effective_values_and_sources() {
        let broker = BrokerConfig {
            message_max_bytes: 2000,
            ..BrokerConfig::default()
        };
        let c = TopicConfig::from_pairs([("segment.bytes", Some("4096"))]).unwrap();
        let entries = c.entries(&broker);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(get("segment.bytes").source, ConfigSource::Topic);
        assert_eq!(get("max.message.bytes").value, "2000");
        assert_eq!(get("max.message.bytes").source, ConfigSource::StaticBroker);
        assert_eq!(get("retention.ms").source, ConfigSource::Default);
        assert_eq!(c.max_message_bytes(&broker), 2000);
        assert_eq!(c.log_config(&broker).segment_bytes, 4096);
        assert!(!c.log_append_time(&broker));
        assert!(!c.log_config(&broker).preallocate);
        let pre = TopicConfig::from_pairs([("preallocate", Some("TRUE"))]).unwrap();
        assert!(pre.log_config(&broker).preallocate);
    }
}
