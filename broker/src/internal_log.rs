//! Partition 0 of an internal topic that a coordinator keeps its state in
//! (`__consumer_offsets` for groups, `__transaction_state` for transactions): appending
//! key/value records (plain, or transactional for a producer), transaction markers, waiting
//! until they are durable, and reading everything back at start.
//!
//! The topic is created on first use (as Kafka creates it on the first FindCoordinator),
//! so a broker that never saw a group or a transaction lists no internal topic.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{BatchView, Batches};
use brook_protocol::control::{self, ControlType};
use brook_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use brook_protocol::records::Records;
use brook_protocol::ErrorCode;
use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;

use crate::durability::{self, WaitError};
use crate::handlers::now_ms;
use crate::topic_config::TopicConfig;
use crate::topics::{Partition, TopicError, TopicRegistry};

/// How long a coordinator waits for its write's fsync before failing with REQUEST_TIMED_OUT.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Replay reads the topic in chunks of this size.
const REPLAY_CHUNK: usize = 1024 * 1024;

/// The configs an internal topic is created with: compacted, kept forever (Kafka's
/// defaults for `__consumer_offsets` and `__transaction_state`).
pub(crate) fn internal_topic_config() -> Result<TopicConfig, TopicError> {
    TopicConfig::from_pairs([
        ("cleanup.policy", Some("compact")),
        ("retention.ms", Some("-1")),
        ("retention.bytes", Some("-1")),
        ("segment.bytes", Some("104857600")),
    ])
    .map_err(|e| TopicError::InvalidConfig(e.to_string()))
}

/// A key and its value (`None`: a tombstone).
pub(crate) type KeyValue = (Bytes, Option<Bytes>);

/// What replay hands the coordinator for each batch.
pub(crate) enum Replayed<'a> {
    /// The records of a data batch; `producer` is set for a transactional one.
    Records {
        producer: Option<i64>,
        records: Vec<(&'a [u8], Option<&'a [u8]>)>,
    },
    /// A transaction marker of `producer_id`.
    Marker {
        producer_id: i64,
        control: ControlType,
    },
}

pub(crate) struct InternalLog {
    name: &'static str,
    partition: RwLock<Option<Arc<Partition>>>,
    fsync: bool,
}

impl InternalLog {
    /// The log of topic `name` if it exists already.
    pub(crate) fn open(
        topics: &TopicRegistry,
        name: &'static str,
        fsync: bool,
    ) -> Result<Self, TopicError> {
        let partition = match topics.get(name) {
            Some(topic) => Some(topic.partition(0).ok_or_else(|| {
                TopicError::InvalidPartitions(format!("{name} has no partition 0"))
            })?),
            None => None,
        };
        Ok(Self {
            name,
            partition: RwLock::new(partition),
            fsync,
        })
    }

    /// Creates the topic with [`internal_topic_config`] unless it exists.
    pub(crate) fn ensure(&self, topics: &TopicRegistry) -> Result<(), TopicError> {
        if self.partition.read().is_some() {
            return Ok(());
        }
        let mut slot = self.partition.write();
        if slot.is_some() {
            return Ok(());
        }
        let topic = match topics.get(self.name) {
            Some(t) => t,
            None => topics.create(self.name, 1, internal_topic_config()?)?,
        };
        *slot = topic.partition(0);
        Ok(())
    }

    pub(crate) fn partition(&self) -> Option<Arc<Partition>> {
        self.partition.read().clone()
    }

    /// Appends `records` as one batch (transactional for `producer`: id and epoch); returns
    /// the offset after it. COORDINATOR_NOT_AVAILABLE until the topic exists.
    pub(crate) fn append(
        &self,
        records: Vec<KeyValue>,
        producer: Option<(i64, i16)>,
    ) -> Result<i64, ErrorCode> {
        let Some(partition) = self.partition() else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        if records.is_empty() {
            return Ok(partition.with_log(|log| log.log_end_offset()));
        }
        let now = now_ms();
        let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
        let batch: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(key),
                value,
                headers: Default::default(),
            })
            .collect();
        let count = batch.len() as i64;
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        if let Err(e) = RecordBatchEncoder::encode(&mut buf, &batch, &options) {
            tracing::error!(topic = self.name, error = %e, "encoding a batch failed");
            return Err(ErrorCode::UnknownServerError);
        }
        let result = partition.with_log_and_producers(|log, producers| {
            let info = log.append(&mut buf, now)?;
            if let Some(view) = Batches::new(&buf).next() {
                producers.replay(&view);
            }
            Ok::<_, brook_storage::StorageError>(info)
        });
        self.appended(&partition, result, count, buf.len())
    }

    /// Appends a transaction marker for `producer_id` at `epoch`; returns the offset after it.
    pub(crate) fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        control: ControlType,
    ) -> Result<i64, ErrorCode> {
        let Some(partition) = self.partition() else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        let now = now_ms();
        let mut buf = control::encode_marker(producer_id, epoch, control, 0, now);
        let result = partition.with_log_and_producers(|log, producers| {
            let info = log.append(&mut buf, now)?;
            if let Some(aborted) =
                producers.record_marker(producer_id, epoch, control, info.base_offset)
            {
                log.append_aborted_txn(&aborted)?;
            }
            Ok::<_, brook_storage::StorageError>(info)
        });
        self.appended(&partition, result, 1, buf.len())
    }

    fn appended(
        &self,
        partition: &Arc<Partition>,
        result: Result<brook_storage::AppendInfo, brook_storage::StorageError>,
        records: i64,
        bytes: usize,
    ) -> Result<i64, ErrorCode> {
        match result {
            Ok(info) => {
                if self.fsync {
                    durability::note_append(partition, records, bytes as u64);
                }
                Ok(info.last_offset + 1)
            }
            Err(e) => {
                tracing::error!(topic = self.name, error = %e, "appending failed");
                Err(ErrorCode::KafkaStorageError)
            }
        }
    }

    /// Starts an fsync of what is appended, without waiting for it (a later
    /// [`InternalLog::wait_durable`] then finds it done or under way).
    pub(crate) fn start_sync(&self) {
        if let Some(partition) = self.partition().filter(|_| self.fsync) {
            durability::request_sync(&partition);
        }
    }

    /// Waits until everything below `end_offset` is durable.
    pub(crate) async fn wait_durable(&self, end_offset: i64) -> Result<(), ErrorCode> {
        if !self.fsync {
            return Ok(());
        }
        let Some(partition) = self.partition() else {
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        durability::request_sync(&partition);
        partition
            .durability
            .wait_durable(end_offset, DURABLE_TIMEOUT)
            .await
            .map_err(|e| match e {
                WaitError::Failed => ErrorCode::KafkaStorageError,
                WaitError::TimedOut => ErrorCode::RequestTimedOut,
            })
    }

    /// Reads every batch from the log start, in order. Returns how many batches did not
    /// decode (skipped, logged by the caller).
    pub(crate) fn replay(&self, mut apply: impl FnMut(Replayed<'_>)) -> u64 {
        let Some(partition) = self.partition() else {
            return 0;
        };
        let mut bad = 0u64;
        partition.with_log(|log| {
            let mut offset = log.log_start_offset();
            let end = log.log_end_offset();
            while offset < end {
                let chunks = match log.read(offset, REPLAY_CHUNK) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(topic = self.name, error = %e, offset, "reading failed; state after this offset is not restored");
                        return;
                    }
                };
                let mut next = offset;
                for chunk in &chunks {
                    for view in Batches::new(chunk) {
                        next = next.max(view.last_offset() + 1);
                        if view.last_offset() >= offset && !replay_batch(&view, &mut apply) {
                            bad += 1;
                        }
                    }
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
        });
        bad
    }
}

/// Hands one batch to `apply`; `false` if it does not decode.
fn replay_batch(view: &BatchView<'_>, apply: &mut impl FnMut(Replayed<'_>)) -> bool {
    if view.is_control() {
        return match control::parse_marker(view) {
            Some(marker) => {
                apply(Replayed::Marker {
                    producer_id: view.producer_id(),
                    control: marker.control,
                });
                true
            }
            None => false,
        };
    }
    if view.compression().is_some_and(|c| c.id() != 0) {
        return false;
    }
    let mut records = Vec::new();
    for record in Records::new(view.records_data(), view.records_count()) {
        let Ok(record) = record else {
            return false;
        };
        if let Some(key) = record.key {
            records.push((key, record.value));
        }
    }
    apply(Replayed::Records {
        producer: view.is_transactional().then(|| view.producer_id()),
        records,
    });
    true
}
