//! Administration: topics (create, list, describe, configs, partitions, delete records,
//! delete), consumer groups (list, describe, committed offsets, seek, delete) and the
//! cluster.
//!
//! Topic and config requests go to any broker (KRaft brokers forward them to the
//! controller); group requests go to the group's coordinator; listing groups asks every
//! broker.

use std::time::Duration;

use brook_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest, TopicName,
};
use brook_protocol::kafka_protocol::protocol::StrBytes;

use crate::error::check;
use std::sync::Arc;

use brook_protocol::kafka_protocol::protocol::Request;

use crate::cluster::Cluster;
use crate::{ClientConfig, ClientError, Security};

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// The topic id (UUID text).
    pub id: String,
    pub internal: bool,
    /// Each partition's index and leader (-1: none).
    pub partitions: Vec<(i32, i32)>,
}

/// What Metadata says of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller: i32,
    /// Each broker's id, host and port.
    pub brokers: Vec<(i32, String, i32)>,
    /// Every topic (that this client may describe).
    pub topics: Vec<TopicInfo>,
}

impl ClusterInfo {
    /// Partitions without a leader, as (topic, partition).
    pub fn leaderless(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, leader)| *leader < 0)
                    .map(|(p, _)| (t.name.clone(), *p))
            })
            .collect()
    }
}

/// Where a config's value comes from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself.
    Topic,
    /// A broker setting changed at run time.
    DynamicBroker,
    /// The broker's config file.
    StaticBroker,
    /// The default.
    Default,
    /// Anything else Kafka names (dynamic default broker, controller, ...).
    Other(i8),
}

impl ConfigSource {
    fn from_code(code: i8) -> Self {
        match code {
            1 => Self::Topic,
            2 => Self::DynamicBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            other => Self::Other(other),
        }
    }

    /// Kafka's name of the source.
    pub fn name(self) -> &'static str {
        match self {
            Self::Topic => "DYNAMIC_TOPIC_CONFIG",
            Self::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            Self::StaticBroker => "STATIC_BROKER_CONFIG",
            Self::Default => "DEFAULT_CONFIG",
            Self::Other(_) => "OTHER",
        }
    }
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values the broker does not show.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

/// The pause before an admin request goes again (doubled the second time).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// An admin client (see the module docs).
#[derive(Debug)]
pub struct Admin {
    pub(crate) cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// Connects to the cluster `config` names.
    pub async fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let timeout = config.timeout;
        Ok(Self {
            cluster: Cluster::connect(config).await?,
            timeout,
        })
    }

    /// An admin client on a producer's or consumer's view of the cluster.
    pub(crate) fn from_cluster(cluster: Arc<Cluster>) -> Self {
        let timeout = cluster.config.timeout;
        Self { cluster, timeout }
    }

    /// Connects to `bootstrap` (comma-separated `host:port`s).
    pub async fn connect(
        bootstrap: &str,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::new(ClientConfig {
            security: security.clone(),
            client_id: "brook-admin".into(),
            timeout,
            ..ClientConfig::new(bootstrap)
        })
        .await
    }

    /// Sends `request` to any broker; a connection that broke (before or while the answer
    /// came) is replaced and the request sent again, twice at most, with a backoff.
    async fn send<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        let mut attempt = 0;
        loop {
            let result = async { self.cluster.any().await?.send(request).await }.await;
            match result {
                Err(ClientError::Io { .. } | ClientError::Connect { .. }) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(RETRY_BACKOFF * attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Creates `name` with `partitions` (-1: the broker's default) and topic configs.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let response = self.send(&request).await?;
        let result = response.topics.first().ok_or(ClientError::Codec {
            what: "a CreateTopics response",
            message: "no topic result".into(),
        })?;
        check(
            result.error_code,
            result.error_message.as_deref(),
            &format!("creating topic {name}"),
        )
    }

    /// Every topic the broker lets this client describe, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        Ok(self.cluster().await?.topics)
    }

    /// The cluster: id, controller, brokers, topics.
    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        let response = self
            .send(&MetadataRequest::default().with_topics(None))
            .await?;
        let mut topics: Vec<TopicInfo> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(info)
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let mut brokers: Vec<(i32, String, i32)> = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect();
        brokers.sort();
        Ok(ClusterInfo {
            cluster_id: response.cluster_id.map(|c| c.to_string()),
            controller: response.controller_id.0,
            brokers,
            topics,
        })
    }

    /// One topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(name.to_string())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let response = self.send(&request).await?;
        let topic = response.topics.first().ok_or(ClientError::Codec {
            what: "a Metadata response",
            message: "no topic".into(),
        })?;
        check(topic.error_code, None, &format!("topic {name}"))?;
        Ok(info(topic))
    }

    /// Sets (`Some`) or removes (`None`) topic configs, leaving the others as they are
    /// (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), ClientError> {
        use brook_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use brook_protocol::kafka_protocol::messages::IncrementalAlterConfigsRequest;
        const TOPIC: i8 = 2;
        const SET: i8 = 0;
        const DELETE: i8 = 1;
        let configs = changes
            .iter()
            .map(|(key, value)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.clone()))
                    .with_config_operation(if value.is_some() { SET } else { DELETE })
                    .with_value(value.clone().map(StrBytes::from_string))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs),
        ]);
        let response = self.send(&request).await?;
        let result = response.responses.first().ok_or(ClientError::Codec {
            what: "an IncrementalAlterConfigs response",
            message: "no resource result".into(),
        })?;
        check(
            result.error_code,
            result.error_message.as_deref(),
            &format!("altering topic {name}"),
        )
    }

    /// Every config of topic `name` with its value and where it comes from
    /// (DescribeConfigs).
    pub async fn describe_topic_configs(
        &self,
        name: &str,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        use brook_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use brook_protocol::kafka_protocol::messages::DescribeConfigsRequest;
        const TOPIC: i8 = 2;
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let response = self.send(&request).await?;
        let result = response.results.first().ok_or(ClientError::Codec {
            what: "a DescribeConfigs response",
            message: "no resource result".into(),
        })?;
        check(
            result.error_code,
            result.error_message.as_deref(),
            &format!("describing the configs of {name}"),
        )?;
        Ok(result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: ConfigSource::from_code(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// The configs set on topic `name` itself (not defaults, not read-only ones): what a copy
    /// of the topic needs to behave the same.
    pub async fn topic_configs(&self, name: &str) -> Result<Vec<(String, String)>, ClientError> {
        Ok(self
            .describe_topic_configs(name)
            .await?
            .into_iter()
            .filter(|c| c.source == ConfigSource::Topic && !c.read_only)
            .filter_map(|c| Some((c.name, c.value?)))
            .collect())
    }

    /// Grows `name` to `count` partitions.
    pub async fn add_partitions(&self, name: &str, count: i32) -> Result<(), ClientError> {
        use brook_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        use brook_protocol::kafka_protocol::messages::CreatePartitionsRequest;
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let response = self.send(&request).await?;
        let result = response.results.first().ok_or(ClientError::Codec {
            what: "a CreatePartitions response",
            message: "no topic result".into(),
        })?;
        check(
            result.error_code,
            result.error_message.as_deref(),
            &format!("adding partitions to {name}"),
        )
    }

    /// Deletes the records of `partition` before `offset` (-1: all of them, the high
    /// watermark); the new log start offset.
    pub async fn delete_records(
        &self,
        name: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, ClientError> {
        use brook_protocol::kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        use brook_protocol::kafka_protocol::messages::DeleteRecordsRequest;
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let response = self.send(&request).await?;
        let result = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or(ClientError::Codec {
                what: "a DeleteRecords response",
                message: "no partition result".into(),
            })?;
        check(
            result.error_code,
            None,
            &format!("trimming {name} partition {partition}"),
        )?;
        Ok(result.low_watermark)
    }

    /// Deletes `name`.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let topic_name = TopicName(StrBytes::from_string(name.to_string()));
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name.clone()])
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name))])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let response = self.send(&request).await?;
        let result = response.responses.first().ok_or(ClientError::Codec {
            what: "a DeleteTopics response",
            message: "no topic result".into(),
        })?;
        check(
            result.error_code,
            result.error_message.as_deref(),
            &format!("deleting topic {name}"),
        )
    }
}

fn info(
    t: &brook_protocol::kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> TopicInfo {
    let mut partitions: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    partitions.sort_unstable();
    TopicInfo {
        name: t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
        id: t.topic_id.to_string(),
        internal: t.is_internal,
        partitions,
    }
}
