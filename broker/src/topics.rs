//! Topics and partitions: the registry, topic ids, partition logs, and the metadata file.
//!
//! Topic metadata (names, ids, partition counts, config overrides) and the cluster id live in
//! `<data_dir>/brook-metadata.json`, replaced atomically (write to a temporary file, fsync,
//! rename, fsync the directory). Partition logs live in `<data_dir>/<topic>-<partition>/`, as in
//! Kafka. The registry owns both and keeps them consistent: a topic is in the file only once its
//! partition directories exist, and its directories are removed only after it left the file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_storage::{PartitionLog, StorageError};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::topic_config::TopicConfig;

const METADATA_FILE: &str = "brook-metadata.json";
const METADATA_VERSION: u32 = 1;
/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Errors of topic operations, mapped to Kafka error codes by the handlers.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("Topic '{0}' does not exist.")]
    Unknown(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("storage error on {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error("metadata file {path}: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks a topic name the way Kafka does: 1-249 characters from `[a-zA-Z0-9._-]`, not `.`
/// or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: String| Err(TopicError::InvalidName(why));
    if name.is_empty() {
        return bad("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return bad("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return bad(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// One partition: its log behind a lock. Appends and reads are short (memory copies and
/// positioned writes), so a blocking lock is held only briefly.
pub struct Partition {
    pub index: i32,
    log: Mutex<PartitionLog>,
}

impl Partition {
    /// Runs `f` with the partition's log locked.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut PartitionLog) -> R) -> R {
        f(&mut self.log.lock())
    }
}

/// A topic: name, stable id, partitions and config overrides.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    partitions: RwLock<Vec<Arc<Partition>>>,
    config: RwLock<TopicConfig>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let i = usize::try_from(index).ok()?;
        self.partitions.read().get(i).cloned()
    }
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }
    pub fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    #[serde(default)]
    configs: TopicConfig,
}

#[derive(Serialize, Deserialize)]
struct MetadataFile {
    version: u32,
    cluster_id: String,
    topics: Vec<TopicRecord>,
}

/// All topics of the broker.
pub struct TopicRegistry {
    data_dir: PathBuf,
    broker: BrokerConfig,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes changes (create, delete, add partitions) and their metadata writes.
    changes: Mutex<()>,
}

impl TopicRegistry {
    /// Opens the registry in `data_dir`: reads the metadata file (creating it with a new
    /// cluster id on first start) and opens every partition log.
    pub fn open(data_dir: &Path, broker: &BrokerConfig) -> Result<Self, TopicError> {
        let meta_err = |source| TopicError::Metadata {
            path: data_dir.join(METADATA_FILE),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(meta_err)?;
        let path = data_dir.join(METADATA_FILE);
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<MetadataFile>(&bytes)
                .map_err(|e| meta_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataFile {
                version: METADATA_VERSION,
                cluster_id: new_cluster_id(),
                topics: Vec::new(),
            },
            Err(e) => return Err(meta_err(e)),
        };
        if file.version != METADATA_VERSION {
            return Err(meta_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unsupported metadata version {}", file.version),
            )));
        }
        let registry = Self {
            data_dir: data_dir.to_owned(),
            broker: broker.clone(),
            cluster_id: file.cluster_id,
            topics: RwLock::new(BTreeMap::new()),
            changes: Mutex::new(()),
        };
        for t in file.topics {
            let partitions = (0..t.partitions)
                .map(|i| registry.open_partition(&t.name, i, &t.configs))
                .collect::<Result<Vec<_>, _>>()?;
            let topic = Topic {
                name: t.name.clone(),
                id: t.id,
                partitions: RwLock::new(partitions),
                config: RwLock::new(t.configs),
            };
            registry.topics.write().insert(t.name, Arc::new(topic));
        }
        registry.persist()?;
        Ok(registry)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, ordered by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Creates a topic with `partitions` partitions and the given config overrides.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        let _guard = self.changes.lock();
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let logs = (0..partitions)
            .map(|i| self.open_partition(name, i, &config))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: new_topic_id(),
            partitions: RwLock::new(logs),
            config: RwLock::new(config),
        });
        self.topics.write().insert(name.to_string(), topic.clone());
        if let Err(e) = self.persist() {
            self.topics.write().remove(name);
            return Err(e);
        }
        tracing::info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its partition directories.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock();
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        if let Err(e) = self.persist() {
            self.topics.write().insert(name.to_string(), topic);
            return Err(e);
        }
        for p in topic.partitions() {
            let dir = self.partition_dir(name, p.index);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory of deleted topic");
                }
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Raises a topic's partition count to `count`.
    pub fn create_partitions(&self, name: &str, count: i32) -> Result<(), TopicError> {
        let _guard = self.changes.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        let config = topic.config();
        let added = (current..count)
            .map(|i| self.open_partition(name, i, &config))
            .collect::<Result<Vec<_>, _>>()?;
        topic.partitions.write().extend(added);
        self.persist()?;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Closes every partition log cleanly.
    pub fn close(&self) {
        let topics = std::mem::take(&mut *self.topics.write());
        for topic in topics.into_values() {
            for p in topic.partitions.write().drain(..) {
                match Arc::try_unwrap(p) {
                    Ok(p) => {
                        if let Err(e) = p.log.into_inner().close() {
                            tracing::warn!(topic = %topic.name, error = %e, "closing partition log failed");
                        }
                    }
                    Err(p) => {
                        tracing::warn!(topic = %topic.name, partition = p.index, "partition still in use at shutdown; not closed cleanly")
                    }
                }
            }
        }
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: &TopicConfig,
    ) -> Result<Arc<Partition>, TopicError> {
        let dir = self.partition_dir(topic, index);
        let log = PartitionLog::open(&dir, config.log_config(&self.broker))
            .map_err(|source| TopicError::Storage { path: dir, source })?;
        Ok(Arc::new(Partition {
            index,
            log: Mutex::new(log),
        }))
    }

    fn persist(&self) -> Result<(), TopicError> {
        let file = MetadataFile {
            version: METADATA_VERSION,
            cluster_id: self.cluster_id.clone(),
            topics: self
                .list()
                .iter()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partition_count(),
                    configs: t.config(),
                })
                .collect(),
        };
        let path = self.data_dir.join(METADATA_FILE);
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| TopicError::Metadata {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&path, &bytes).map_err(|source| TopicError::Metadata { path, source })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A topic id: random, never the all-zero id (Kafka reserves it to mean "no id").
fn new_topic_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !id.is_nil() {
            return id;
        }
    }
}

/// A cluster id in Kafka's format: a random UUID as 22 characters of URL-safe base64.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| {
            let shift = 128i32 - 6 * (i + 1);
            let v = if shift >= 0 {
                bits >> shift
            } else {
                bits << -shift
            };
            ALPHABET[(v & 0x3f) as usize] as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "orders.v1", "A_b-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_cluster_id() {
        assert!(!new_topic_id().is_nil());
        let c = new_cluster_id();
        assert_eq!(c.len(), 22);
        assert_ne!(c, new_cluster_id());
    }

    #[test]
    fn topics_survive_reopen_with_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig::default();
        let (cluster, id) = {
            let r = TopicRegistry::open(dir.path(), &cfg).unwrap();
            let t = r.create("orders", 3, TopicConfig::default()).unwrap();
            r.create("gone", 1, TopicConfig::default()).unwrap();
            r.delete("gone").unwrap();
            r.create_partitions("orders", 5).unwrap();
            assert!(matches!(
                r.create("orders", 1, TopicConfig::default()),
                Err(TopicError::AlreadyExists(_))
            ));
            assert!(matches!(
                r.create_partitions("orders", 2),
                Err(TopicError::InvalidPartitions(_))
            ));
            r.close();
            (r.cluster_id().to_string(), t.id)
        };
        assert!(!dir.path().join("gone-0").exists());
        let r = TopicRegistry::open(dir.path(), &cfg).unwrap();
        assert_eq!(r.cluster_id(), cluster);
        let t = r.get("orders").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partition_count(), 5);
        assert!(r.get("gone").is_none());
        assert!(r.get_by_id(id).is_some());
    }
}
