//! The cluster as a client sees it: the bootstrap addresses it starts from, the brokers and
//! partition leaders Metadata names, and one pipelined connection per broker.
//!
//! Producers and consumers route each partition's requests to its leader and group
//! requests to the group's coordinator, so the client works against multi-broker Kafka
//! clusters as well as against Brook's single node. Metadata is cached and refreshed when a
//! broker answers that it no longer leads a partition (the caller calls
//! [`Cluster::forget`]) or a topic is not known yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::{
    FindCoordinatorRequest, MetadataRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;

use crate::error::check;
use crate::{ClientError, Connection, Pipeline, Security};

/// What every client (producer, consumer, admin) is configured with.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers to start from.
    pub bootstrap: Vec<String>,
    pub security: Security,
    /// Sent in every request header (the broker logs and quotas name clients by it).
    pub client_id: String,
    /// How long one network step (connect, a request's answer) may take.
    pub timeout: Duration,
    /// `metadata.max.age.ms`: how long a topic's partitions and leaders are trusted before
    /// they are asked for again (new partitions are seen after at most this long).
    pub metadata_max_age: Duration,
}

impl ClientConfig {
    /// Plaintext, no authentication, to the comma-separated `bootstrap` addresses.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            security: Security::default(),
            client_id: "brook-client".into(),
            timeout: Duration::from_secs(30),
            metadata_max_age: Duration::from_secs(300),
        }
    }
}

/// A topic's id and each partition's leader (index = partition; -1 = no leader now).
#[derive(Debug, Clone)]
pub(crate) struct TopicMeta {
    pub id: uuid::Uuid,
    pub leaders: Vec<i32>,
    /// When Metadata said so.
    pub fetched: std::time::Instant,
}

/// Brokers, topics and connections (see the module docs).
#[derive(Debug)]
pub(crate) struct Cluster {
    pub config: ClientConfig,
    state: Mutex<State>,
    connections: tokio::sync::Mutex<HashMap<String, Pipeline>>,
}

#[derive(Debug, Default)]
struct State {
    brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicMeta>,
    /// (key type, key) -> the address of its coordinator, as FindCoordinator last said.
    coordinators: HashMap<(i8, String), String>,
}

/// Coordinator key types of FindCoordinator.
pub(crate) const GROUP: i8 = 0;

impl Cluster {
    /// Starts from `config.bootstrap`: fails at once (within the timeout) when no bootstrap
    /// broker answers, so a wrong address is reported before any work starts.
    pub(crate) async fn connect(config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        let cluster = Arc::new(Self {
            config,
            state: Mutex::new(State::default()),
            connections: tokio::sync::Mutex::new(HashMap::new()),
        });
        cluster.any().await?;
        Ok(cluster)
    }

    /// The connection to `addr`, made if there is none or the last one broke.
    pub(crate) async fn to_addr(&self, addr: &str) -> Result<Pipeline, ClientError> {
        let mut connections = self.connections.lock().await;
        if let Some(p) = connections.get(addr).filter(|p| !p.is_closed()) {
            return Ok(p.clone());
        }
        let c = &self.config;
        let pipeline = Connection::connect(addr, &c.security, &c.client_id, c.timeout)
            .await?
            .into_pipeline();
        connections.insert(addr.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// A connection to any broker: a known one, else the first bootstrap address that
    /// answers.
    pub(crate) async fn any(&self) -> Result<Pipeline, ClientError> {
        let known: Vec<String> = {
            let state = self.lock();
            let mut addrs: Vec<String> = state.brokers.values().cloned().collect();
            addrs.sort();
            addrs
        };
        let mut last = None;
        for addr in known.iter().chain(&self.config.bootstrap) {
            match self.to_addr(addr).await {
                Ok(p) => return Ok(p),
                // Another broker would refuse the same credentials.
                Err(e @ ClientError::Authentication(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no bootstrap broker given".into())))
    }

    /// The connection to broker `node`.
    pub(crate) async fn broker(&self, node: i32) -> Result<Pipeline, ClientError> {
        let addr = self.lock().brokers.get(&node).cloned();
        let addr =
            match addr {
                Some(a) => a,
                None => {
                    self.refresh(&[], false).await?;
                    self.lock().brokers.get(&node).cloned().ok_or_else(|| {
                        ClientError::Config(format!("no broker {node} in metadata"))
                    })?
                }
            };
        self.to_addr(&addr).await
    }

    /// Asks any broker for `topics`' metadata (all topics when empty, `auto_create` as
    /// producers ask) and caches it.
    pub(crate) async fn refresh(
        &self,
        topics: &[String],
        auto_create: bool,
    ) -> Result<(), ClientError> {
        let request = MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                        })
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(auto_create);
        let response = self.any().await?.send(&request).await?;
        let mut state = self.lock();
        for b in &response.brokers {
            state
                .brokers
                .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
        }
        for t in &response.topics {
            let Some(name) = &t.name else { continue };
            if t.error_code != 0 {
                state.topics.remove(name.as_str());
                continue;
            }
            let size = t
                .partitions
                .iter()
                .map(|p| p.partition_index + 1)
                .max()
                .unwrap_or(0);
            let mut leaders = vec![-1; usize::try_from(size).unwrap_or(0)];
            for p in &t.partitions {
                if let Some(slot) = usize::try_from(p.partition_index)
                    .ok()
                    .and_then(|i| leaders.get_mut(i))
                {
                    *slot = if p.error_code == 0 { p.leader_id.0 } else { -1 };
                }
            }
            state.topics.insert(
                name.to_string(),
                TopicMeta {
                    id: t.topic_id,
                    leaders,
                    fetched: std::time::Instant::now(),
                },
            );
        }
        // Answer the first asked topic's own error, so "unknown topic" is reported as such.
        for t in &response.topics {
            if topics.len() == 1 && t.error_code != 0 {
                let name = t.name.as_ref().map_or("?", |n| n.as_str());
                check(t.error_code, None, &format!("topic {name}"))?;
            }
        }
        Ok(())
    }

    /// `name`'s metadata, from the cache or asked for.
    pub(crate) async fn topic(
        &self,
        name: &str,
        auto_create: bool,
    ) -> Result<TopicMeta, ClientError> {
        let cached = self.lock().topics.get(name).cloned();
        if let Some(t) = &cached {
            if t.fetched.elapsed() < self.config.metadata_max_age {
                return Ok(t.clone());
            }
        }
        if let Err(e) = self.refresh(&[name.to_string()], auto_create).await {
            // Stale metadata beats none while the cluster is unreachable; a topic that is
            // gone is reported.
            match cached {
                Some(t) if e.is_retriable() && e.code() != Some(3) => return Ok(t),
                _ => return Err(e),
            }
        }
        self.lock()
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::Broker {
                code: 3,
                message: format!("topic {name}: UnknownTopicOrPartition"),
            })
    }

    /// The ids of the brokers metadata named.
    pub(crate) fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.lock().brokers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Drops what is cached of `topic` (its leaders moved or it changed).
    pub(crate) fn forget(&self, topic: &str) {
        self.lock().topics.remove(topic);
    }

    /// The leader of `topic`'s `partition`, or an error when it has none now.
    pub(crate) async fn leader(&self, topic: &str, partition: i32) -> Result<i32, ClientError> {
        let meta = self.topic(topic, false).await?;
        let leader = usize::try_from(partition)
            .ok()
            .and_then(|p| meta.leaders.get(p).copied());
        match leader {
            Some(l) if l >= 0 => Ok(l),
            Some(_) => {
                self.forget(topic);
                Err(ClientError::Broker {
                    code: 5,
                    message: format!("{topic} partition {partition}: LeaderNotAvailable"),
                })
            }
            None => Err(ClientError::Broker {
                code: 3,
                message: format!("{topic} has no partition {partition}"),
            }),
        }
    }

    /// The offset ListOffsets names in `topic`/`partition` for `timestamp` (-1: the end,
    /// -2: the start, else the first record at or after it; -1 when none is that late),
    /// asked of the partition's leader at `isolation` (0 uncommitted, 1 committed).
    pub(crate) async fn list_offset(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        isolation: i8,
    ) -> Result<i64, ClientError> {
        use brook_protocol::kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use brook_protocol::kafka_protocol::messages::ListOffsetsRequest;
        let leader = self.leader(topic, partition).await?;
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let response = self.broker(leader).await?.send(&request).await?;
        let result = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or(ClientError::Codec {
                what: "a ListOffsets response",
                message: "no partition result".into(),
            })?;
        check(
            result.error_code,
            None,
            &format!("listing offsets of {topic} partition {partition}"),
        )?;
        Ok(result.offset)
    }

    /// The connection to the coordinator of `key` (a group id for [`GROUP`]). The answer
    /// of FindCoordinator is kept until [`Cluster::coordinator_failed`] forgets it, so a
    /// transaction or a group member does not look its coordinator up before every request.
    pub(crate) async fn coordinator(
        &self,
        key: &str,
        key_type: i8,
    ) -> Result<Pipeline, ClientError> {
        let cached = self
            .lock()
            .coordinators
            .get(&(key_type, key.to_string()))
            .cloned();
        if let Some(addr) = cached {
            return self.to_addr(&addr).await;
        }
        let any = self.any().await?;
        let version = any.version_for::<FindCoordinatorRequest>()?;
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type)
            .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())]);
        let response = any.send_at(version, &request).await?;
        let (code, message, node, host, port) = match response.coordinators.first() {
            Some(c) if version >= 4 => (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.clone(),
                c.port,
            ),
            _ => (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.clone(),
                response.port,
            ),
        };
        check(
            code,
            message.as_deref(),
            &format!("finding the coordinator of {key}"),
        )?;
        let addr = format!("{host}:{port}");
        {
            let mut state = self.lock();
            state.brokers.insert(node, addr.clone());
            state
                .coordinators
                .insert((key_type, key.to_string()), addr.clone());
        }
        self.to_addr(&addr).await
    }

    /// Forgets the coordinator of `key` when `error` says it is not (or no longer) there:
    /// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, or a connection that failed. The next
    /// [`Cluster::coordinator`] asks FindCoordinator again.
    pub(crate) fn coordinator_failed(&self, key: &str, key_type: i8, error: &ClientError) {
        let moved = match error {
            ClientError::Broker { code, .. } => matches!(code, 15 | 16),
            ClientError::Connect { .. } | ClientError::Io { .. } | ClientError::Timeout { .. } => {
                true
            }
            _ => false,
        };
        if moved {
            self.lock()
                .coordinators
                .remove(&(key_type, key.to_string()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
