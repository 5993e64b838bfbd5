//! Topics and partitions: the registry, topic ids, partition logs, and the metadata file.
//!
//! Topic metadata (names, ids, partition counts, config overrides) and the cluster id live in
//! `<data_dir>/brook-metadata.json`, replaced atomically (write to a temporary file, fsync,
//! rename, fsync the directory). Partition logs live in `<data_dir>/<topic>-<partition>/`, as in
//! Kafka. The registry owns both and keeps them consistent: a topic is in the file only once its
//! partition directories exist, and its directories are removed only after it left the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use brook_storage::{
    BulkSync, OpenMode, OpenOptions, OsFileSystem, PartitionLog, RecoveryReport, StorageError,
    SyncGroup,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::durability::{Durability, Unflushed};
use crate::files::Files;
use crate::producers::ProducerStates;
use crate::topic_config::{ProducePolicy, TopicConfig};

const METADATA_FILE: &str = "brook-metadata.json";
/// Written after every log was closed cleanly, removed when the broker starts: its presence
/// at startup means no partition needs recovery beyond cheap checks.
const CLEAN_SHUTDOWN_MARKER: &str = ".brook-clean-shutdown";
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
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    Collision { name: String, existing: String },
    #[error(
        "Topic '{0}' is an internal topic: only the broker creates, deletes or repartitions it."
    )]
    Internal(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidConfig(String),
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

/// Kafka's internal topics: written by the broker's coordinators only. Clients may read them but
/// not produce to, delete or repartition them.
pub const INTERNAL_TOPICS: [&str; 3] = ["__consumer_offsets", "__transaction_state", "_schemas"];

/// True for the names in [`INTERNAL_TOPICS`].
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The name with '.' and '_' unified: Kafka refuses a topic whose unified name equals another
/// topic's (`a.b` and `a_b` collide in metric names).
fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// One partition: its log behind a lock, and its durability state. Appends and reads are
/// short (memory copies and positioned writes), so a blocking lock is held only briefly;
/// fsyncs run outside it (see [`crate::durability`]).
pub struct Partition {
    pub index: i32,
    state: Mutex<PartitionState>,
    pub(crate) durability: Durability,
    /// The topic's `flush.ms` and `flush.messages`, for the periodic flush (changed by
    /// AlterConfigs).
    flush_ms: AtomicI64,
    flush_messages: AtomicI64,
    /// Compacted topics: where the dirty part of the log starts (-1: not cleaned since start).
    pub(crate) first_dirty: AtomicI64,
    /// The registry's list of partitions with unflushed data.
    pub(crate) unflushed: Arc<Unflushed>,
}

/// What one lock protects: the log and the producer state derived from it, which must change
/// together (a batch is checked against its producer's sequence and appended atomically).
struct PartitionState {
    log: PartitionLog,
    producers: ProducerStates,
}

impl Partition {
    /// The topic's `flush.ms`.
    pub(crate) fn flush_ms(&self) -> i64 {
        self.flush_ms.load(Ordering::Relaxed)
    }

    /// The topic's `flush.messages`.
    pub(crate) fn flush_messages(&self) -> i64 {
        self.flush_messages.load(Ordering::Relaxed)
    }

    /// Applies changed topic configs: flush settings now, segment settings from the next roll.
    fn apply(&self, config: &TopicConfig, broker: &BrokerConfig) {
        self.flush_ms
            .store(config.flush_ms(broker), Ordering::Relaxed);
        self.flush_messages
            .store(config.flush_messages(broker), Ordering::Relaxed);
        if let Err(e) = self.with_log(|log| log.set_config(config.log_config(broker))) {
            tracing::error!(partition = self.index, error = %e, "applying the topic's log settings failed");
        }
    }

    /// Runs `f` with the partition's log locked.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut PartitionLog) -> R) -> R {
        f(&mut self.state.lock().log)
    }

    /// Runs `f` with the log and its producer state locked together.
    pub(crate) fn with_log_and_producers<R>(
        &self,
        f: impl FnOnce(&mut PartitionLog, &mut ProducerStates) -> R,
    ) -> R {
        let mut state = self.state.lock();
        let PartitionState { log, producers } = &mut *state;
        f(log, producers)
    }
}

/// What Produce appended to and Fetch returned from a topic since the broker started
/// (the metrics endpoint reports it).
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) records_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) records_out: AtomicU64,
}

impl Traffic {
    pub(crate) fn appended(&self, records: u64, bytes: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn fetched(&self, records: u64, bytes: u64) {
        self.records_out.fetch_add(records, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A topic: name, stable id, partitions and config overrides.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub(crate) traffic: Traffic,
    partitions: RwLock<Vec<Arc<Partition>>>,
    /// The topic's configs and what Produce checks, resolved from them; replaced together by
    /// AlterConfigs.
    settings: RwLock<Settings>,
}

struct Settings {
    /// Shared, because retention and the metadata file read it.
    config: Arc<TopicConfig>,
    /// What Produce checks, resolved from `config` once per change.
    produce: ProducePolicy,
}

impl Topic {
    fn new(
        name: String,
        id: Uuid,
        partitions: Vec<Arc<Partition>>,
        config: TopicConfig,
        broker: &BrokerConfig,
    ) -> Self {
        Self {
            name,
            id,
            traffic: Traffic::default(),
            partitions: RwLock::new(partitions),
            settings: RwLock::new(Settings {
                produce: config.produce_policy(broker),
                config: Arc::new(config),
            }),
        }
    }
    pub(crate) fn produce_policy(&self) -> ProducePolicy {
        self.settings.read().produce
    }
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
    pub fn config(&self) -> Arc<TopicConfig> {
        self.settings.read().config.clone()
    }

    /// Makes `config` the topic's configs, in effect for what follows (see
    /// [`TopicRegistry::alter_config`]).
    fn set_config(&self, config: TopicConfig, broker: &BrokerConfig) {
        for p in self.partitions() {
            p.apply(&config, broker);
        }
        *self.settings.write() = Settings {
            produce: config.produce_policy(broker),
            config: Arc::new(config),
        };
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
    /// Producer ids below this were (or may have been) handed out.
    #[serde(default)]
    producer_id_block_end: i64,
}

/// Producer ids are reserved in blocks, so the metadata file is written once per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug)]
struct ProducerIds {
    next: i64,
    block_end: i64,
}

/// All topics of the broker.
pub struct TopicRegistry {
    data_dir: PathBuf,
    /// The broker settings topics fall back to (replaced when dynamic broker configs change).
    broker: RwLock<Arc<BrokerConfig>>,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes changes (create, delete, add partitions) and their metadata writes.
    changes: Mutex<()>,
    /// The registry's own files (metadata, marker, directories).
    files: Files,
    /// Partitions with unflushed data (see [`Unflushed`]).
    unflushed: Arc<Unflushed>,
    /// Every partition log's syncs: batches of opens sharing one sync, and a clean close of
    /// all of them with one sync.
    syncs: SyncGroup,
    /// An exclusive lock on `<data_dir>/.lock` until the registry is closed: two brokers on
    /// one data directory would corrupt it.
    lock: Mutex<Option<std::fs::File>>,
    /// How partition logs are opened: after a clean shutdown only cheap checks run.
    open_mode: OpenMode,
    producer_ids: Mutex<ProducerIds>,
    /// Every partition's fsync latency, one histogram (the metrics endpoint reports it).
    pub(crate) fsync_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl TopicRegistry {
    /// Opens the registry in `data_dir`: reads the metadata file (creating it with a new
    /// cluster id on first start) and opens every partition log.
    pub fn open(data_dir: &Path, broker: &BrokerConfig) -> Result<Self, TopicError> {
        let meta_err = |source| TopicError::Metadata {
            path: data_dir.join(METADATA_FILE),
            source,
        };
        let files = Files::new(match &broker.file_system {
            Some(fs) => fs.clone(),
            None => Arc::new(OsFileSystem),
        });
        files.create_dir_durably(data_dir).map_err(meta_err)?;
        let path = data_dir.join(METADATA_FILE);
        let read = files.read(&path).map_err(meta_err)?;
        let had_metadata = read.is_some();
        let file = match read {
            Some(bytes) => serde_json::from_slice::<MetadataFile>(&bytes)
                .map_err(|e| meta_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
            None => MetadataFile {
                version: METADATA_VERSION,
                cluster_id: new_cluster_id(),
                topics: Vec::new(),
                producer_id_block_end: 0,
            },
        };
        if file.version != METADATA_VERSION {
            return Err(meta_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unsupported metadata version {}", file.version),
            )));
        }
        let lock = lock_data_dir(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
        // Read, not listed: the data directory may hold ten thousand entries.
        let clean = files.read(&marker).map_err(meta_err)?.is_some();
        let syncs = SyncGroup::new(files.fs());
        let registry = Self {
            data_dir: data_dir.to_owned(),
            broker: RwLock::new(Arc::new(broker.clone())),
            cluster_id: file.cluster_id,
            topics: RwLock::new(BTreeMap::new()),
            changes: Mutex::new(()),
            syncs,
            files,
            unflushed: Arc::default(),
            lock: Mutex::new(Some(lock)),
            open_mode: if clean {
                OpenMode::AfterCleanShutdown
            } else {
                OpenMode::Recover
            },
            // Ids of the last block may have been handed out before a crash: start after it.
            fsync_seconds: crate::http::metrics::fsync_histogram(),
            producer_ids: Mutex::new(ProducerIds {
                next: file.producer_id_block_end,
                block_end: file.producer_id_block_end,
            }),
        };
        let started = std::time::Instant::now();
        // One file-system sync for every partition instead of fsyncs per file.
        let bulk = registry.bulk_sync()?;
        let mut opened = Opened::default();
        for t in file.topics {
            let partitions = (0..t.partitions)
                .map(|i| registry.open_partition(&t.name, i, &t.configs, &bulk, &mut opened))
                .collect::<Result<Vec<_>, _>>()?;
            let topic = Topic::new(t.name.clone(), t.id, partitions, t.configs, broker);
            registry.topics.write().insert(t.name, Arc::new(topic));
        }
        registry.finish_bulk(bulk)?;
        let removed = if had_metadata {
            registry.remove_leftover_directories()
        } else {
            0
        };
        tracing::info!(
            partitions = opened.partitions,
            recovered = opened.recovered,
            bytes_scanned = opened.bytes_scanned,
            bytes_truncated = opened.bytes_truncated,
            leftover_directories_removed = removed,
            clean_shutdown = clean,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened partition logs"
        );
        registry.persist()?;
        // From here on, a crash is an unclean shutdown.
        if clean {
            registry
                .files
                .remove_durably(&marker)
                .map_err(|source| TopicError::Metadata {
                    path: marker,
                    source,
                })?;
        }
        Ok(registry)
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Starts the sync rounds that `flush.ms` / `flush.messages` make due.
    pub(crate) fn flush_due(&self) {
        self.unflushed.flush_due();
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, ordered by name.
    /// The data directory and the registry's file operations on it.
    pub(crate) fn files(&self) -> (&Path, &Files) {
        (&self.data_dir, &self.files)
    }

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
        if let Some(existing) = self.colliding_topic(name) {
            return Err(TopicError::Collision {
                name: name.to_string(),
                existing,
            });
        }
        let logs = self.create_partitions_of(name, 0..partitions, &config)?;
        let topic = Arc::new(Topic::new(
            name.to_string(),
            new_topic_id(),
            logs,
            config,
            &self.broker(),
        ));
        self.topics.write().insert(name.to_string(), topic.clone());
        if let Err(e) = self.persist() {
            self.topics.write().remove(name);
            drop(topic);
            self.remove_partition_dirs(name, 0..partitions);
            return Err(e);
        }
        tracing::info!(topic = name, partitions, id = %topic.id, "created topic");
        Ok(topic)
    }

    /// Another topic whose name differs from `name` only in '.' versus '_', if there is one.
    pub fn colliding_topic(&self, name: &str) -> Option<String> {
        if !name.contains(['.', '_']) {
            return None;
        }
        let unified = unify_collision_chars(name);
        self.topics
            .read()
            .keys()
            .find(|t| t.as_str() != name && unify_collision_chars(t) == unified)
            .cloned()
    }

    /// Deletes a topic and its partition directories. Internal topics are refused.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        if is_internal(name) {
            return Err(TopicError::Internal(name.to_string()));
        }
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
            self.unflushed.forget(&p);
            // A key index file still being written would land in the directory as it goes.
            if let Err(e) = p.with_log(|log| log.wait_for_background_writes()) {
                tracing::warn!(topic = name, partition = p.index, error = %e, "a key index file of a deleted topic was not written");
            }
            let dir = self.partition_dir(name, p.index);
            if let Err(e) = self.files.remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory of deleted topic");
            }
        }
        if let Err(e) = self.files.sync_dir(&self.data_dir) {
            tracing::warn!(error = %e, "could not sync the data directory");
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Raises a topic's partition count to `count`. Internal topics are refused.
    pub fn create_partitions(&self, name: &str, count: i32) -> Result<(), TopicError> {
        if is_internal(name) {
            return Err(TopicError::Internal(name.to_string()));
        }
        let _guard = self.changes.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if !topic.config().allows_partition_increase(&self.broker()) {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic '{name}' has brook.key.index=true: adding partitions sends keys to other partitions, so an aggregate's new events would start a second stream with revisions from 0 there. Set brook.key.index.allow.partition.increase=true on the topic to do it anyway."
            )));
        }
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        let config = topic.config();
        let added = self.create_partitions_of(name, current..count, &config)?;
        topic.partitions.write().extend(added);
        if let Err(e) = self.persist() {
            topic.partitions.write().truncate(current as usize);
            self.remove_partition_dirs(name, current..count);
            return Err(e);
        }
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's configs (AlterConfigs, IncrementalAlterConfigs): written to the
    /// metadata file first, then in effect without a restart: Produce's checks and flush
    /// settings at once, retention at its next pass, segment settings from the next roll.
    pub fn alter_config(&self, name: &str, config: TopicConfig) -> Result<(), TopicError> {
        let _guard = self.changes.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let previous = TopicConfig::clone(&topic.config());
        let broker = self.broker();
        topic.set_config(config, &broker);
        if let Err(e) = self.persist() {
            topic.set_config(previous, &broker);
            return Err(e);
        }
        tracing::info!(topic = name, "topic configs changed");
        Ok(())
    }

    fn broker(&self) -> Arc<BrokerConfig> {
        self.broker.read().clone()
    }

    /// Makes `broker` the settings topics fall back to, and re-resolves every topic's
    /// settings with it (dynamic broker configs): what Produce checks and the flush
    /// settings at once, segment settings from the next roll.
    pub(crate) fn reconfigure(&self, broker: Arc<BrokerConfig>) {
        let _guard = self.changes.lock();
        *self.broker.write() = broker.clone();
        for topic in self.list() {
            topic.set_config(TopicConfig::clone(&topic.config()), &broker);
        }
    }

    /// A producer id never handed out before, also across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let _guard = self.changes.lock();
        let (id, block_end) = {
            let ids = self.producer_ids.lock();
            (ids.next, ids.block_end)
        };
        if id >= block_end {
            self.producer_ids.lock().block_end = id + PRODUCER_ID_BLOCK;
            if let Err(e) = self.persist() {
                self.producer_ids.lock().block_end = block_end;
                return Err(e);
            }
        }
        self.producer_ids.lock().next = id + 1;
        Ok(id)
    }

    /// Writes the checkpoint of every partition whose durable state moved, with two `syncfs`
    /// in all rather than a few fsyncs per partition: every new checkpoint is staged, one
    /// sync makes them (and the index entries they name) durable, they are renamed into
    /// place, and a second sync makes the renames durable. Until then a crash finds the
    /// previous checkpoints, which stay valid.
    pub(crate) fn write_checkpoints(&self) {
        let mut staged = Vec::new();
        for topic in self.list() {
            for partition in topic.partitions() {
                match partition.with_log(|log| log.stage_checkpoint()) {
                    Ok(Some(checkpoint)) => {
                        staged.push((Arc::clone(&topic), partition, checkpoint))
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "writing the checkpoint failed")
                    }
                }
            }
        }
        if staged.is_empty() {
            return;
        }
        if let Err(e) = self.files.sync_file_system(&self.data_dir) {
            // The staged files are left for the next round to overwrite.
            tracing::warn!(error = %e, "syncing the staged checkpoints failed");
            return;
        }
        for (topic, partition, checkpoint) in staged {
            if let Err(e) = partition.with_log(|log| log.commit_checkpoint(checkpoint)) {
                tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "writing the checkpoint failed");
            }
        }
        if let Err(e) = self.files.sync_file_system(&self.data_dir) {
            tracing::warn!(error = %e, "syncing the renamed checkpoints failed");
        }
    }

    /// Closes every partition log cleanly; if all closed, records a clean shutdown so the
    /// next start skips recovery.
    pub fn close(&self) {
        self.unflushed.clear();
        let topics = std::mem::take(&mut *self.topics.write());
        // Nothing is acknowledged any more: every log's syncs wait for one syncfs below.
        let deferred = self.syncs.defer_all(&self.data_dir);
        let mut all_clean = deferred.is_ok();
        for topic in topics.into_values() {
            for p in topic.partitions.write().drain(..) {
                let closed = match unwrap_when_released(p) {
                    Ok(p) => p.state.into_inner().log.close().map_err(|e| e.to_string()),
                    Err(_) => Err("still in use at shutdown".to_string()),
                };
                if let Err(e) = closed {
                    all_clean = false;
                    tracing::warn!(topic = %topic.name, error = %e, "partition log not closed cleanly");
                }
            }
        }
        if let Ok(deferred) = deferred {
            if let Err(e) = deferred.finish() {
                all_clean = false;
                tracing::warn!(error = %e, "syncing the closed logs failed");
            }
        }
        if all_clean {
            let marker = self.data_dir.join(CLEAN_SHUTDOWN_MARKER);
            if let Err(e) = self.files.create_durably(&marker) {
                tracing::warn!(error = %e, "could not record the clean shutdown; the next start recovers every log");
            }
        }
        // Another broker (or this one, restarted in the same process) may open it now.
        self.lock.lock().take();
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    /// Starts opening or creating partitions with one sync at the end ([`BulkSync`]).
    fn bulk_sync(&self) -> Result<BulkSync, TopicError> {
        self.syncs
            .batch(&self.data_dir)
            .map_err(|source| TopicError::Storage {
                path: self.data_dir.clone(),
                source,
            })
    }

    fn finish_bulk(&self, bulk: BulkSync) -> Result<(), TopicError> {
        bulk.finish().map_err(|source| TopicError::Storage {
            path: self.data_dir.clone(),
            source,
        })
    }

    /// Creates the partitions `indexes` of `topic`: their directories and empty logs (no disk
    /// blocks until data arrives), made durable by one sync. If any fails, the directories
    /// created are removed again and nothing is left behind.
    fn create_partitions_of(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        config: &TopicConfig,
    ) -> Result<Vec<Arc<Partition>>, TopicError> {
        let created = self.bulk_sync().and_then(|bulk| {
            let mut opened = Opened::default();
            let logs = indexes
                .clone()
                .map(|i| self.open_partition(topic, i, config, &bulk, &mut opened))
                .collect::<Result<Vec<_>, _>>()?;
            self.finish_bulk(bulk)?;
            Ok(logs)
        });
        if created.is_err() {
            self.remove_partition_dirs(topic, indexes);
        }
        created
    }

    /// Removes partition directories (of a failed creation), best effort, and syncs the data
    /// directory so their removal is durable.
    fn remove_partition_dirs(&self, topic: &str, indexes: std::ops::Range<i32>) {
        for i in indexes {
            let dir = self.partition_dir(topic, i);
            if let Err(e) = self.files.remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove the directory of a partition not created");
            }
        }
        if let Err(e) = self.files.sync_dir(&self.data_dir) {
            tracing::warn!(error = %e, "could not sync the data directory");
        }
    }

    /// Removes partition directories that belong to no topic (left by a crash during a
    /// creation or deletion); returns how many.
    fn remove_leftover_directories(&self) -> usize {
        let Ok(entries) = self.files.list(&self.data_dir) else {
            return 0;
        };
        let topics = self.topics.read();
        let mut removed = 0;
        for name in entries {
            let Some((topic, index)) = name
                .rsplit_once('-')
                .and_then(|(t, i)| Some((t, i.parse::<i32>().ok()?)))
            else {
                continue;
            };
            if validate_topic_name(topic).is_err() {
                continue;
            }
            let known = topics
                .get(topic)
                .is_some_and(|t| index >= 0 && index < t.partition_count());
            if known {
                continue;
            }
            let path = self.data_dir.join(&name);
            match self.files.remove_dir(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(dir = %path.display(), error = %e, "could not remove a leftover partition directory")
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "removed partition directories that belong to no topic"
            );
            if let Err(e) = self.files.sync_dir(&self.data_dir) {
                tracing::warn!(error = %e, "could not sync the data directory");
            }
        }
        removed
    }

    fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: &TopicConfig,
        bulk: &BulkSync,
        opened: &mut Opened,
    ) -> Result<Arc<Partition>, TopicError> {
        let dir = self.partition_dir(topic, index);
        let storage_err = |source| TopicError::Storage {
            path: dir.clone(),
            source,
        };
        let options = OpenOptions::default()
            .with_mode(self.open_mode)
            .with_fs(bulk.fs());
        let broker = self.broker();
        let mut log = PartitionLog::open_with(&dir, config.log_config(&broker), options)
            .map_err(storage_err)?;
        opened.count(log.recovery_report());
        let durable_end = if broker.unsafe_disable_fsync {
            log.log_end_offset()
        } else {
            // What recovery kept may so far be only in the page cache (a process crash keeps
            // it there): make it durable before anything is acknowledged on top of it.
            if log.durable_offset() < log.log_end_offset() {
                log.flush().map_err(storage_err)?;
            }
            log.durable_offset()
        };
        let producers = rebuild_producers(&mut log).map_err(storage_err)?;
        if producers.len() > 0 {
            tracing::debug!(
                topic,
                partition = index,
                producers = producers.len(),
                "rebuilt producer state"
            );
        }
        Ok(Arc::new(Partition {
            index,
            state: Mutex::new(PartitionState { log, producers }),
            durability: Durability::new(durable_end, self.fsync_seconds.clone()),
            flush_ms: AtomicI64::new(config.flush_ms(&broker)),
            flush_messages: AtomicI64::new(config.flush_messages(&broker)),
            first_dirty: AtomicI64::new(-1),
            unflushed: self.unflushed.clone(),
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
                    configs: TopicConfig::clone(&t.config()),
                })
                .collect(),
            producer_id_block_end: self.producer_ids.lock().block_end,
        };
        let path = self.data_dir.join(METADATA_FILE);
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| TopicError::Metadata {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.files
            .write_atomically(&path, &bytes)
            .map_err(|source| TopicError::Metadata { path, source })
    }
}

/// What opening partitions found, for one summary line instead of one per partition.
#[derive(Debug, Default)]
struct Opened {
    partitions: usize,
    /// Partitions whose data was scanned (not only checked).
    recovered: usize,
    bytes_scanned: u64,
    bytes_truncated: u64,
}

impl Opened {
    fn count(&mut self, report: &RecoveryReport) {
        self.partitions += 1;
        if report.segments_scanned > 0 && report.bytes_scanned > 0 {
            self.recovered += 1;
        }
        self.bytes_scanned += report.bytes_scanned;
        self.bytes_truncated += report.bytes_truncated;
    }
}

/// Takes sole ownership of a partition at shutdown. Connections and the maintenance task are
/// gone by then; only an fsync round that is finishing on the blocking pool can still hold
/// it, so wait a little for that.
fn unwrap_when_released(mut p: Arc<Partition>) -> Result<Partition, Arc<Partition>> {
    for _ in 0..250 {
        match Arc::try_unwrap(p) {
            Ok(p) => return Ok(p),
            Err(shared) => p = shared,
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(p)
}

/// Reads every batch header of the log to rebuild its producers' sequence and transaction
/// state, and makes the active segment's aborted-transaction index match what the log holds
/// (after a crash it may lack entries or name lost markers).
fn rebuild_producers(log: &mut PartitionLog) -> Result<ProducerStates, StorageError> {
    const CHUNK: usize = 1 << 20;
    let mut producers = ProducerStates::default();
    let mut aborted = Vec::new();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let mut next = offset;
        for chunk in log.read(offset, CHUNK)? {
            for view in brook_protocol::batch::Batches::new(&chunk) {
                aborted.extend(producers.replay(&view));
                next = next.max(view.last_offset() + 1);
            }
        }
        if next <= offset {
            // Cannot happen for a recovered log; never loop forever on one that lies.
            break;
        }
        offset = next;
    }
    log.rebuild_txn_indexes(&aborted)?;
    Ok(producers)
}

/// Takes the data directory's lock file, so a second broker on it fails to start.
pub(crate) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, TopicError> {
    let path = data_dir.join(".lock");
    let err = |source| TopicError::Metadata {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("the data directory is in use by another broker ({e})"),
            ))
        },
    )?;
    Ok(file)
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
    fn dot_and_underscore_names_collide_and_internal_topics_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = TopicRegistry::open(dir.path(), &BrokerConfig::default()).unwrap();
        r.create("dot.name", 1, TopicConfig::default()).unwrap();
        assert!(matches!(
            r.create("dot_name", 1, TopicConfig::default()),
            Err(TopicError::Collision { existing, .. }) if existing == "dot.name"
        ));
        assert!(matches!(
            r.create("dot.name", 1, TopicConfig::default()),
            Err(TopicError::AlreadyExists(_))
        ));
        assert_eq!(r.colliding_topic("dot_name").as_deref(), Some("dot.name"));
        assert_eq!(r.colliding_topic("dot.name"), None);
        r.create("__consumer_offsets", 1, TopicConfig::default())
            .unwrap();
        assert!(matches!(
            r.delete("__consumer_offsets"),
            Err(TopicError::Internal(_))
        ));
        assert!(matches!(
            r.create_partitions("__consumer_offsets", 3),
            Err(TopicError::Internal(_))
        ));
        assert!(r.get("__consumer_offsets").is_some());
    }

    #[test]
    fn the_data_directory_and_its_missing_parents_are_created() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/data");
        let r = TopicRegistry::open(&dir, &BrokerConfig::default()).unwrap();
        assert!(dir.join(METADATA_FILE).exists());
        r.close();
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

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig::default();
        let first: Vec<i64> = {
            let r = TopicRegistry::open(dir.path(), &cfg).unwrap();
            (0..3).map(|_| r.allocate_producer_id().unwrap()).collect()
        };
        assert_eq!(first, vec![0, 1, 2]);
        // Reopened without a clean close: the rest of the block is skipped, never reissued.
        let r = TopicRegistry::open(dir.path(), &cfg).unwrap();
        let next = r.allocate_producer_id().unwrap();
        assert!(next >= PRODUCER_ID_BLOCK, "{next}");
    }
}
