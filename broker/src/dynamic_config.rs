//! Broker settings changed at runtime (Kafka's dynamic broker configs): AlterConfigs and
//! IncrementalAlterConfigs on the broker resource set them for this broker (resource name =
//! its node id; DYNAMIC_BROKER_CONFIG) or as the cluster default (empty name;
//! DYNAMIC_DEFAULT_BROKER_CONFIG). The value in effect is the most specific of: this broker's
//! dynamic value, the dynamic cluster default, the config file (STATIC_BROKER_CONFIG), the
//! built-in default (DEFAULT_CONFIG).
//!
//! Only [`DYNAMIC`] settings may change this way (the others answer INVALID_REQUEST, as in
//! Kafka); values are checked as the config file's are (INVALID_CONFIG). Both layers are kept
//! in `<data-dir>/dynamic-broker-configs.json` (replaced atomically before a change takes
//! effect), so they survive a restart. In effect at once: topic fallbacks
//! (`log.retention.*`, `log.segment.bytes`, `log.roll.ms`, `log.flush.interval.ms`,
//! `message.max.bytes`) for every topic without its own value, the cleaner's settings at its
//! next pass, `num.partitions` for the next topic created.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use brook_protocol::ErrorCode;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::config::BrokerConfig;
use crate::files::Files;

/// The file both layers live in.
pub(crate) const FILE: &str = "dynamic-broker-configs.json";

/// The broker settings that may change at runtime (Kafka's reconfigurable log, cleaner and
/// partition defaults).
pub(crate) const DYNAMIC: &[&str] = &[
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.threads",
    "log.flush.interval.ms",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "message.max.bytes",
    "num.partitions",
];

/// Which layer a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The cluster-wide default (resource name "").
    ClusterDefault,
    /// This broker (resource name = its node id).
    Broker,
}

/// Where a broker setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Broker,
    ClusterDefault,
    Static,
    Default,
}

impl Origin {
    /// Kafka's `ConfigSource` id.
    pub(crate) fn id(self) -> i8 {
        match self {
            Self::Broker => 2,
            Self::ClusterDefault => 3,
            Self::Static => 4,
            Self::Default => 5,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Layers {
    #[serde(default)]
    cluster_default: BTreeMap<String, String>,
    #[serde(default)]
    broker: BTreeMap<String, String>,
}

impl Layers {
    fn get(&self, scope: Scope) -> &BTreeMap<String, String> {
        match scope {
            Scope::ClusterDefault => &self.cluster_default,
            Scope::Broker => &self.broker,
        }
    }

    fn get_mut(&mut self, scope: Scope) -> &mut BTreeMap<String, String> {
        match scope {
            Scope::ClusterDefault => &mut self.cluster_default,
            Scope::Broker => &mut self.broker,
        }
    }
}

/// A change refused: the error code and Kafka's kind of message.
pub(crate) type Refusal = (ErrorCode, String);

/// The dynamic layers and the configuration in effect.
pub(crate) struct DynamicConfigs {
    static_config: BrokerConfig,
    layers: RwLock<Layers>,
    effective: RwLock<Arc<BrokerConfig>>,
    path: PathBuf,
    files: Files,
    /// Serialises changes and their file writes.
    changes: Mutex<()>,
}

impl DynamicConfigs {
    /// Reads the layers from the data directory (none if the file is missing). A layer that
    /// no longer applies (a setting this version does not allow to change, a bad value) is
    /// logged and left out.
    pub(crate) fn open(
        static_config: BrokerConfig,
        data_dir: &std::path::Path,
        files: Files,
    ) -> std::io::Result<Self> {
        let path = data_dir.join(FILE);
        let mut layers: Layers = match files.read(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            None => Layers::default(),
        };
        let mut effective = static_config.clone();
        for scope in [Scope::ClusterDefault, Scope::Broker] {
            let layer = layers.get_mut(scope);
            layer.retain(|name, value| match apply(&effective, [(name.as_str(), value.as_str())]) {
                Ok(next) => {
                    effective = next;
                    true
                }
                Err((_, reason)) => {
                    tracing::warn!(setting = %name, %reason, "a dynamic broker setting is ignored");
                    false
                }
            });
        }
        Ok(Self {
            static_config,
            layers: RwLock::new(layers),
            effective: RwLock::new(Arc::new(effective)),
            path,
            files,
            changes: Mutex::new(()),
        })
    }

    /// The configuration in effect now.
    pub(crate) fn effective(&self) -> Arc<BrokerConfig> {
        self.effective.read().clone()
    }

    /// The settings of one layer.
    pub(crate) fn layer(&self, scope: Scope) -> BTreeMap<String, String> {
        self.layers.read().get(scope).clone()
    }

    /// Where the value in effect of `name` comes from, and each layer's value of it (most
    /// specific first): what DescribeConfigs reports as source and synonyms.
    pub(crate) fn origins(&self, name: &str) -> Vec<(Origin, String)> {
        let layers = self.layers.read();
        let mut out = Vec::new();
        if let Some(v) = layers.broker.get(name) {
            out.push((Origin::Broker, v.clone()));
        }
        if let Some(v) = layers.cluster_default.get(name) {
            out.push((Origin::ClusterDefault, v.clone()));
        }
        let value_in = |config: &BrokerConfig| {
            config
                .kafka_settings()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
        };
        let default = value_in(&BrokerConfig::default());
        let configured = value_in(&self.static_config);
        if configured.is_some() && configured != default {
            out.push((Origin::Static, configured.unwrap_or_default()));
        }
        if let Some(d) = default {
            out.push((Origin::Default, d));
        }
        out
    }

    /// Makes `wanted` the settings of `scope` (after checking them all), unless
    /// `validate_only`; returns the configuration then in effect.
    pub(crate) fn replace(
        &self,
        scope: Scope,
        wanted: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<BrokerConfig>, Refusal> {
        let _guard = self.changes.lock();
        let not_dynamic: Vec<&str> = wanted
            .keys()
            .map(String::as_str)
            .filter(|n| !DYNAMIC.contains(n))
            .collect();
        if !not_dynamic.is_empty() {
            return Err((
                ErrorCode::InvalidRequest,
                format!(
                    "Cannot update these configs dynamically: {}",
                    not_dynamic.join(", ")
                ),
            ));
        }
        let mut layers = self.layers.read().clone();
        *layers.get_mut(scope) = wanted;
        let effective = resolve(&self.static_config, &layers)?;
        if validate_only {
            return Ok(Arc::new(effective));
        }
        let bytes = serde_json::to_vec_pretty(&layers)
            .map_err(|e| (ErrorCode::UnknownServerError, e.to_string()))?;
        self.files
            .write_atomically(&self.path, &bytes)
            .map_err(|e| {
                tracing::error!(error = %e, "writing the dynamic broker configs failed");
                (ErrorCode::UnknownServerError, e.to_string())
            })?;
        let effective = Arc::new(effective);
        *self.layers.write() = layers;
        *self.effective.write() = effective.clone();
        tracing::info!(?scope, "dynamic broker configs changed");
        Ok(effective)
    }
}

/// The static configuration with both layers applied, the cluster default first.
fn resolve(static_config: &BrokerConfig, layers: &Layers) -> Result<BrokerConfig, Refusal> {
    let with_default = apply(
        static_config,
        layers
            .cluster_default
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    apply(
        &with_default,
        layers.broker.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// `config` with the settings `pairs` (Kafka names, values as text), checked by type and by
/// the config file's rules.
fn apply<'a>(
    config: &BrokerConfig,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BrokerConfig, Refusal> {
    let invalid = |name: &str, value: &str, reason: &str| {
        (
            ErrorCode::InvalidConfig,
            format!("Invalid value {value} for configuration {name}: {reason}"),
        )
    };
    let serde_json::Value::Object(mut map) =
        serde_json::to_value(config).map_err(|e| (ErrorCode::UnknownServerError, e.to_string()))?
    else {
        return Err((ErrorCode::UnknownServerError, "not an object".into()));
    };
    for (name, value) in pairs {
        let Some(current) = map.get(name) else {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Unknown broker config {name}"),
            ));
        };
        let parsed = match current {
            serde_json::Value::Bool(_) => match value.to_ascii_lowercase().as_str() {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => return Err(invalid(name, value, "expected true or false")),
            },
            serde_json::Value::Number(n) if n.is_f64() => value
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
                .ok_or_else(|| invalid(name, value, "expected a number"))?,
            serde_json::Value::Number(_) => value
                .trim()
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| invalid(name, value, "expected an integer"))?,
            _ => serde_json::Value::String(value.to_string()),
        };
        map.insert(name.to_string(), parsed);
    }
    let mut next: BrokerConfig = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| (ErrorCode::InvalidConfig, format!("Invalid value: {e}")))?;
    next.file_system = config.file_system.clone();
    next.validate()
        .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
    Ok(next)
}

/// One line on each broker setting with Kafka's name, for DescribeConfigs'
/// `include_documentation`.
pub(crate) fn documentation(name: &str) -> Option<&'static str> {
    Some(match name {
        "node.id" => "The id of this broker.",
        "auto.create.topics.enable" => {
            "Create a topic when a client asks for one that does not exist."
        }
        "num.partitions" => {
            "The number of partitions of a topic created without a partition count."
        }
        "log.segment.bytes" => "The largest size of one log segment file.",
        "log.roll.ms" => "The longest time before a new log segment is rolled out.",
        "message.max.bytes" => {
            "The largest record batch size allowed (a topic's max.message.bytes default)."
        }
        "socket.request.max.bytes" => "The largest request a client may send.",
        "fetch.max.bytes" => "The most bytes one fetch response returns.",
        "queued.max.request.bytes" => {
            "The most request bytes read but not yet handled, broker-wide (-1: unlimited)."
        }
        "connections.max.idle.ms" => "Idle connections are closed after this long.",
        "max.connections" => "The most client connections the broker accepts.",
        "max.connections.per.ip" => "The most client connections from one address.",
        "max.partitions.per.request" => "The most partitions one request may name.",
        "auto.create.topics.max.per.request" => {
            "The most topics one request may create by auto-creation."
        }
        "log.flush.interval.ms" => {
            "The longest time acknowledged data stays unflushed (a topic's flush.ms default)."
        }
        "log.flush.offset.checkpoint.interval.ms" => {
            "How often each log's recovery point is written."
        }
        "log.retention.ms" => {
            "How long a log segment is kept (a topic's retention.ms default; -1: forever)."
        }
        "log.retention.bytes" => {
            "The most bytes a partition keeps (a topic's retention.bytes default; -1: no limit)."
        }
        "log.cache.window.bytes" => "Bytes of recent data per partition kept in the page cache.",
        "log.retention.check.interval.ms" => "How often logs are checked for segments to delete.",
        "group.initial.rebalance.delay.ms" => {
            "How long a new group waits for more members before its first rebalance."
        }
        "group.min.session.timeout.ms" => {
            "The shortest session timeout a group member may ask for."
        }
        "group.max.session.timeout.ms" => "The longest session timeout a group member may ask for.",
        "group.max.size" => "The most members one group may have.",
        "offsets.retention.minutes" => {
            "Committed offsets of an empty group are removed this long after it became empty."
        }
        "offsets.retention.check.interval.ms" => "How often expired committed offsets are removed.",
        "log.cleaner.enable" => "Run the log cleaner on compacted topics.",
        "log.cleaner.backoff.ms" => "How long the cleaner sleeps when no log needs cleaning.",
        "log.cleaner.dedupe.buffer.size" => "The memory of a cleaning pass's key map, in bytes.",
        "log.cleaner.threads" => "The number of cleaner threads.",
        "log.cleaner.io.max.bytes.per.second" => {
            "The bytes the cleaner threads together read and write per second."
        }
        "transaction.max.timeout.ms" => "The longest transaction timeout a producer may ask for.",
        "transactional.id.expiration.ms" => {
            "A transactional id without a transaction expires after this long."
        }
        "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
            "How often timed-out transactions are aborted."
        }
        "transaction.remove.expired.transaction.cleanup.interval.ms" => {
            "How often expired transactional ids are removed."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(dir: &std::path::Path) -> DynamicConfigs {
        let files = Files::new(Arc::new(brook_storage::OsFileSystem));
        DynamicConfigs::open(BrokerConfig::with_data_dir(dir), dir, files).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_most_specific_layer_wins_and_both_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = configs(dir.path());
        d.replace(
            Scope::ClusterDefault,
            set(&[("log.retention.ms", "1000")]),
            false,
        )
        .unwrap();
        assert_eq!(d.effective().log_retention_ms, 1000);
        d.replace(Scope::Broker, set(&[("log.retention.ms", "2000")]), false)
            .unwrap();
        assert_eq!(d.effective().log_retention_ms, 2000);
        let origins: Vec<Origin> = d.origins("log.retention.ms").iter().map(|o| o.0).collect();
        assert_eq!(
            origins,
            vec![Origin::Broker, Origin::ClusterDefault, Origin::Default]
        );
        drop(d);
        let d = configs(dir.path());
        assert_eq!(d.effective().log_retention_ms, 2000);
        d.replace(Scope::Broker, BTreeMap::new(), false).unwrap();
        assert_eq!(
            d.effective().log_retention_ms,
            1000,
            "back to the default layer"
        );
    }

    #[test]
    fn only_dynamic_settings_with_valid_values_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = configs(dir.path());
        let code = |r: Result<Arc<BrokerConfig>, Refusal>| r.err().map(|e| e.0);
        let refused = d.replace(
            Scope::Broker,
            set(&[("log.cleaner.enable", "false")]),
            false,
        );
        assert_eq!(code(refused), Some(ErrorCode::InvalidRequest));
        for (name, value) in [
            ("num.partitions", "0"),
            ("num.partitions", "many"),
            ("log.cleaner.threads", "-1"),
            ("log.cleaner.io.max.bytes.per.second", "fast"),
        ] {
            let r = d.replace(Scope::Broker, set(&[(name, value)]), false);
            assert_eq!(code(r), Some(ErrorCode::InvalidConfig), "{name}={value}");
        }
        let checked = d.replace(Scope::Broker, set(&[("num.partitions", "4")]), true);
        assert_eq!(checked.unwrap().num_partitions, 4);
        assert_eq!(
            d.effective().num_partitions,
            1,
            "validate_only changes nothing"
        );
        assert!(!dir.path().join(FILE).exists());
        let rate = d.replace(
            Scope::Broker,
            set(&[("log.cleaner.io.max.bytes.per.second", "1e7")]),
            false,
        );
        assert_eq!(rate.unwrap().log_cleaner_io_max_bytes_per_second, 1e7);
    }
}
