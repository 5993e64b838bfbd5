//! The consumer: reads assigned partitions from their leaders, from an offset, a time, the
//! start or the end, with `read_uncommitted` or `read_committed`.
//!
//! [`Consumer::poll`] sends one Fetch per leader for all the partitions it leads, and as
//! soon as an answer arrives sends the next one (the next offsets are read from the batch
//! headers, without decompressing), so the broker prepares the next records while the
//! client decodes these: one fetch is always ahead, as librdkafka's prefetching does.
//!
//! Partitions are assigned by hand ([`Consumer::assign`]) or by a group
//! ([`Consumer::subscribe`], the classic protocol in [`crate::membership`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use brook_protocol::batch::Batches;
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use bytes::Bytes;

use crate::cluster::Cluster;
use crate::connection::Answer;
use crate::error::check;
use crate::membership::{GroupConfig, Membership};
use crate::record::{decode_records, Aborted};
use crate::{ClientConfig, ClientError, ConsumerRecord};

/// Where reading a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset (the oldest record kept).
    Beginning,
    /// The end: only records written from now on.
    End,
    /// This offset.
    Offset(i64),
    /// The first record with a timestamp at or after this time (milliseconds since the
    /// epoch); the end if there is none.
    Timestamp(i64),
}

/// Which records a consumer sees (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record, transactional ones as soon as they are written.
    #[default]
    ReadUncommitted,
    /// Records of committed transactions only, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    fn code(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }
}

/// Consumer settings, named after Kafka's consumer configs.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    /// `isolation.level`.
    pub isolation: IsolationLevel,
    /// `fetch.max.wait.ms`: how long the broker may hold a fetch that has no records.
    pub max_wait: Duration,
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
    /// `fetch.max.bytes`.
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_max_bytes: i32,
    /// `auto.offset.reset`: where to go when the position is out of range.
    pub reset: StartAt,
}

impl ConsumerConfig {
    /// Kafka's consumer defaults.
    pub fn new(client: ClientConfig) -> Self {
        Self {
            client,
            isolation: IsolationLevel::ReadUncommitted,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 52_428_800,
            partition_max_bytes: 1_048_576,
            reset: StartAt::End,
        }
    }
}

/// A partition being read: the next offset, and what the last fetch said of its end.
#[derive(Debug, Clone, Copy)]
struct Position {
    offset: i64,
    /// The high watermark (or, read_committed, the last stable offset) last seen; -1 before
    /// the first fetch.
    end: i64,
}

/// A fetch on its way to one broker, for the positions it was asked at.
struct InFlight {
    answer: Answer<FetchRequest>,
    version: i16,
    asked: Vec<(String, i32, i64)>,
}

/// The consumer (see the module docs).
pub struct Consumer {
    cluster: std::sync::Arc<Cluster>,
    config: ConsumerConfig,
    positions: BTreeMap<(String, i32), Position>,
    in_flight: HashMap<i32, InFlight>,
    /// Set by [`Consumer::subscribe`]: the group this consumer is a member of.
    group: Option<Membership>,
    last_commit: std::time::Instant,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assigned", &self.positions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects to the cluster.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), brook_client::ClientError> {
    /// use brook_client::{ClientConfig, Consumer, ConsumerConfig, StartAt};
    /// let mut consumer = Consumer::new(ConsumerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
    /// consumer.assign("loans", None, StartAt::Beginning).await?;
    /// for record in consumer.poll().await? {
    ///     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn new(config: ConsumerConfig) -> Result<Self, ClientError> {
        let cluster = Cluster::connect(config.client.clone()).await?;
        Ok(Self {
            cluster,
            config,
            positions: BTreeMap::new(),
            in_flight: HashMap::new(),
            group: None,
            last_commit: std::time::Instant::now(),
        })
    }

    /// Joins `group` subscribed to `topics`: from the next [`Consumer::poll`] on, the
    /// consumer reads the partitions the group assigns it, from the group's committed
    /// offsets (or `reset` where it has none), and follows rebalances.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), brook_client::ClientError> {
    /// use brook_client::{ClientConfig, Consumer, ConsumerConfig, GroupConfig};
    /// let mut consumer = Consumer::new(ConsumerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
    /// consumer.subscribe(GroupConfig::new("loan-projection"), &["loans"]).await?;
    /// loop {
    ///     for record in consumer.poll().await? {
    ///         // apply the event to the read model
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn subscribe(
        &mut self,
        group: GroupConfig,
        topics: &[&str],
    ) -> Result<(), ClientError> {
        self.unassign_all();
        let topics = topics.iter().map(|t| t.to_string()).collect();
        self.group = Some(Membership::new(
            std::sync::Arc::clone(&self.cluster),
            group,
            topics,
        ));
        self.join().await
    }

    /// Commits the position of every assigned partition for the group (the offsets of the
    /// next records to read).
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let offsets: BTreeMap<(String, i32), i64> = self
            .positions
            .iter()
            .map(|(k, p)| (k.clone(), p.offset))
            .collect();
        self.last_commit = std::time::Instant::now();
        match &mut self.group {
            Some(group) => group.commit(&offsets).await,
            None => Err(ClientError::Config(
                "commit needs a group: call subscribe first".into(),
            )),
        }
    }

    /// Leaves the group (committing first with auto-commit), so its partitions go to the
    /// other members at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.group.as_ref().is_some_and(|g| g.config.auto_commit) {
            self.commit().await?;
        }
        if let Some(group) = &mut self.group {
            group.leave().await?;
        }
        Ok(())
    }

    /// (Re)joins the group and reads from its committed offsets.
    async fn join(&mut self) -> Result<(), ClientError> {
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        let assigned = group.join().await?;
        let group_id = group.config.group_id.clone();
        self.unassign_all();
        let admin = crate::Admin::from_cluster(std::sync::Arc::clone(&self.cluster));
        let committed = admin.group_offsets(&group_id).await?;
        for (topic, partitions) in assigned {
            for p in partitions {
                let start = match committed.get(&(topic.clone(), p)) {
                    Some(o) => StartAt::Offset(*o),
                    None => self.config.reset,
                };
                self.seek(&topic, p, start).await?;
            }
        }
        self.last_commit = std::time::Instant::now();
        Ok(())
    }

    /// Group duties before a fetch: auto-commit when due, rejoin after a rebalance.
    async fn group_duties(&mut self) -> Result<(), ClientError> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let (auto, interval, rejoin) = (
            group.config.auto_commit,
            group.config.auto_commit_interval,
            group.needs_join(),
        );
        if auto && (rejoin || self.last_commit.elapsed() >= interval) && !self.positions.is_empty()
        {
            // A commit refused because the group moved on is no error here: the rejoin
            // below reads the offsets the group has.
            if let Err(e) = self.commit().await {
                if !matches!(e.code(), Some(22 | 25 | 27)) {
                    return Err(e);
                }
            }
        }
        if self.group.as_ref().is_some_and(Membership::needs_join) {
            self.join().await?;
        }
        Ok(())
    }

    /// Reads `partitions` of `topic` (all of them when `None`) from `start`; adds to what is
    /// assigned already.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: Option<&[i32]>,
        start: StartAt,
    ) -> Result<(), ClientError> {
        let meta = self.cluster.topic(topic, false).await?;
        let count = i32::try_from(meta.leaders.len()).unwrap_or(i32::MAX);
        let chosen: Vec<i32> = match partitions {
            None => (0..count).collect(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|p| !(0..count).contains(*p)) {
                    return Err(ClientError::Broker {
                        code: 3,
                        message: format!("{topic} has no partition {bad} (it has {count})"),
                    });
                }
                list.to_vec()
            }
        };
        for p in chosen {
            self.seek(topic, p, start).await?;
        }
        Ok(())
    }

    /// The partitions being read.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// Stops reading every partition.
    pub fn unassign_all(&mut self) {
        self.positions.clear();
        self.in_flight.clear();
    }

    /// Moves `topic`/`partition` to `start` (assigning it if it was not).
    pub async fn seek(
        &mut self,
        topic: &str,
        partition: i32,
        start: StartAt,
    ) -> Result<(), ClientError> {
        let offset = match start {
            StartAt::Offset(o) => o,
            other => self.list_offset(topic, partition, other).await?,
        };
        // A fetch already asked at the old position answers for nothing now.
        self.in_flight.clear();
        self.positions
            .insert((topic.to_string(), partition), Position { offset, end: -1 });
        Ok(())
    }

    /// The next offset to be read of `topic`/`partition`, if assigned.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .get(&(topic.to_string(), partition))
            .map(|p| p.offset)
    }

    /// The end (high watermark, or last stable offset under read_committed) the last fetch
    /// of `topic`/`partition` reported; `None` before the first fetch or if not assigned.
    pub fn fetched_end(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .get(&(topic.to_string(), partition))
            .map(|p| p.end)
            .filter(|e| *e >= 0)
    }

    /// Whether every assigned partition has been read to the end its last fetch reported.
    pub fn at_end(&self) -> bool {
        self.positions
            .values()
            .all(|p| p.end >= 0 && p.offset >= p.end)
    }

    /// The offset `start` names in `topic`/`partition` (ListOffsets to its leader): the log
    /// start, the end, or the first offset at or after a time.
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        start: StartAt,
    ) -> Result<i64, ClientError> {
        let timestamp = match start {
            StartAt::Offset(o) => return Ok(o),
            StartAt::Beginning => -2,
            StartAt::End => -1,
            StartAt::Timestamp(t) => t,
        };
        let offset = self
            .cluster
            .list_offset(topic, partition, timestamp, self.config.isolation.code())
            .await?;
        if offset >= 0 {
            return Ok(offset);
        }
        // No record at or after the time: the end, as Kafka's consumers go.
        Box::pin(self.list_offset(topic, partition, StartAt::End)).await
    }

    /// The next records of the assigned partitions: whatever one round of fetches brings,
    /// possibly none after `max_wait`.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>, ClientError> {
        self.group_duties().await?;
        if self.positions.is_empty() {
            // A group member with no partitions waits as a fetch would.
            if self.group.is_some() {
                tokio::time::sleep(self.config.max_wait).await;
            }
            return Ok(Vec::new());
        }
        self.start_fetches().await?;
        let mut out = Vec::new();
        let leaders: Vec<i32> = self.in_flight.keys().copied().collect();
        let mut answers = Vec::new();
        for leader in leaders {
            let Some(flight) = self.in_flight.remove(&leader) else {
                continue;
            };
            match flight.answer.wait().await {
                Ok(response) => answers.push((response, flight.version, flight.asked)),
                Err(e) if e.is_retriable() => {
                    for (topic, _, _) in &flight.asked {
                        self.cluster.forget(topic);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // Advance every position first, so the next fetches go out before decoding.
        let mut sets = Vec::new();
        for (response, version, asked) in answers {
            self.take_answer(response, version, &asked, &mut sets)
                .await?;
        }
        self.start_fetches().await?;
        for set in sets {
            decode_records(
                &set.topic,
                set.partition,
                &set.records,
                set.from,
                set.aborted.as_deref(),
                &mut out,
            )?;
        }
        Ok(out)
    }

    /// Sends a Fetch to every leader of assigned partitions that has none on its way.
    async fn start_fetches(&mut self) -> Result<(), ClientError> {
        let mut per_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
        let keys: Vec<((String, i32), i64)> = self
            .positions
            .iter()
            .map(|(k, p)| (k.clone(), p.offset))
            .collect();
        for ((topic, partition), offset) in keys {
            let leader = match self.cluster.leader(&topic, partition).await {
                Ok(l) => l,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            if self.in_flight.contains_key(&leader) {
                continue;
            }
            per_leader
                .entry(leader)
                .or_default()
                .push((topic, partition, offset));
        }
        for (leader, asked) in per_leader {
            let connection = match self.cluster.broker(leader).await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            let version = connection.version_for::<FetchRequest>()?;
            let mut topics: Vec<FetchTopic> = Vec::new();
            for (topic, partition, offset) in &asked {
                let partition = FetchPartition::default()
                    .with_partition(*partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(*offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(self.config.partition_max_bytes);
                match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                    Some(t) => t.partitions.push(partition),
                    None => {
                        let id = if version >= 13 {
                            self.cluster.topic(topic, false).await?.id
                        } else {
                            uuid::Uuid::nil()
                        };
                        topics.push(
                            FetchTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                .with_topic_id(id)
                                .with_partitions(vec![partition]),
                        );
                    }
                }
            }
            let request = FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(i32::try_from(self.config.max_wait.as_millis()).unwrap_or(500))
                .with_min_bytes(self.config.min_bytes)
                .with_max_bytes(self.config.max_bytes)
                .with_isolation_level(self.config.isolation.code())
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(topics);
            match connection.submit(version, &request).await {
                Ok(answer) => {
                    self.in_flight.insert(
                        leader,
                        InFlight {
                            answer,
                            version,
                            asked,
                        },
                    );
                }
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads one Fetch answer: advances positions past its whole batches and keeps each
    /// partition's record set for decoding.
    async fn take_answer(
        &mut self,
        response: FetchResponse,
        version: i16,
        asked: &[(String, i32, i64)],
        sets: &mut Vec<FetchedSet>,
    ) -> Result<(), ClientError> {
        check(response.error_code, None, "fetching")?;
        // v13+ names topics by id only.
        let mut names: HashMap<uuid::Uuid, String> = HashMap::new();
        if version >= 13 {
            for (topic, _, _) in asked {
                if let Ok(meta) = self.cluster.topic(topic, false).await {
                    names.insert(meta.id, topic.clone());
                }
            }
        }
        for t in response.responses {
            let topic = if version >= 13 {
                match names.get(&t.topic_id) {
                    Some(n) => n.clone(),
                    None => continue,
                }
            } else {
                t.topic.0.to_string()
            };
            for p in t.partitions {
                let key = (topic.clone(), p.partition_index);
                let Some(asked_at) = asked
                    .iter()
                    .find(|(t, q, _)| *t == topic && *q == p.partition_index)
                    .map(|(_, _, o)| *o)
                else {
                    continue;
                };
                // A seek since the fetch left makes its answer stale.
                let Some(position) = self.positions.get_mut(&key) else {
                    continue;
                };
                if position.offset != asked_at {
                    continue;
                }
                match p.error_code {
                    0 => {}
                    1 => {
                        // OFFSET_OUT_OF_RANGE: the records were deleted, or the offset is
                        // past the end; go where auto.offset.reset says.
                        let reset = self.config.reset;
                        let offset = self.list_offset(&topic, p.partition_index, reset).await?;
                        if let Some(position) = self.positions.get_mut(&key) {
                            position.offset = offset;
                        }
                        continue;
                    }
                    code if crate::error::retriable(code) => {
                        self.cluster.forget(&topic);
                        continue;
                    }
                    code => {
                        check(
                            code,
                            None,
                            &format!("fetching {topic} partition {}", p.partition_index),
                        )?;
                    }
                }
                position.end = if self.config.isolation == IsolationLevel::ReadCommitted
                    && p.last_stable_offset >= 0
                {
                    p.last_stable_offset
                } else {
                    p.high_watermark
                };
                let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                    continue;
                };
                let mut next = asked_at;
                for batch in Batches::new(&records) {
                    next = next.max(batch.last_offset() + 1);
                }
                if next == asked_at && !records.is_empty() {
                    // Not even one whole batch fit: the batch is larger than
                    // max.partition.fetch.bytes, which brokers since KIP-74 always send
                    // whole; nothing to do but report it.
                    return Err(ClientError::Codec {
                        what: "fetched records",
                        message: format!(
                            "{topic} partition {}: a batch at offset {asked_at} does not fit in {} bytes",
                            p.partition_index, self.config.partition_max_bytes
                        ),
                    });
                }
                position.offset = next;
                let aborted = (self.config.isolation == IsolationLevel::ReadCommitted).then(|| {
                    p.aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| Aborted {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect::<Vec<_>>()
                });
                sets.push(FetchedSet {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    records,
                    from: asked_at,
                    aborted,
                });
            }
        }
        Ok(())
    }
}

/// One partition's records from a fetch, to decode.
struct FetchedSet {
    topic: String,
    partition: i32,
    records: Bytes,
    from: i64,
    aborted: Option<Vec<Aborted>>,
}
