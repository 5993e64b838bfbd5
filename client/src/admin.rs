//! Topic administration: create, list, describe, delete.
//!
//! For now every request goes to the one broker the [`Admin`] is connected to, which is
//! right for Brook (one node, its own controller); routing to a multi-broker cluster's
//! controller is to come with the rest of the client.

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
use brook_protocol::ErrorCode;

use crate::{ClientError, Connection, Security};

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

/// An admin client (see the module docs).
#[derive(Debug)]
pub struct Admin {
    connection: Connection,
    timeout: Duration,
}

/// `code` as an error (with the broker's message if it sent one), or nothing for 0.
fn check(code: i16, message: Option<&str>, what: &str) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    let name = match ErrorCode::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error {code}"),
    };
    Err(ClientError::Broker {
        code,
        message: match message.filter(|m| !m.is_empty()) {
            Some(m) => format!("{what}: {name}: {m}"),
            None => format!("{what}: {name}"),
        },
    })
}

impl Admin {
    /// Connects to `bootstrap`.
    pub async fn connect(
        bootstrap: &str,
        security: &Security,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connection = Connection::connect(bootstrap, security, "brook-admin", timeout).await?;
        Ok(Self {
            connection,
            timeout,
        })
    }

    /// Uses an established connection (its security already negotiated).
    pub fn from_connection(connection: Connection, timeout: Duration) -> Self {
        Self {
            connection,
            timeout,
        }
    }

    /// Creates `name` with `partitions` (-1: the broker's default) and topic configs.
    pub async fn create_topic(
        &mut self,
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
        let response = self.connection.send(&request).await?;
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
    pub async fn list_topics(&mut self) -> Result<Vec<TopicInfo>, ClientError> {
        Ok(self.cluster().await?.topics)
    }

    /// The cluster: id, controller, brokers, topics.
    pub async fn cluster(&mut self) -> Result<ClusterInfo, ClientError> {
        let response = self
            .connection
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
    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(name.to_string())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let response = self.connection.send(&request).await?;
        let topic = response.topics.first().ok_or(ClientError::Codec {
            what: "a Metadata response",
            message: "no topic".into(),
        })?;
        check(topic.error_code, None, &format!("topic {name}"))?;
        Ok(info(topic))
    }

    /// Deletes `name`.
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let topic_name = TopicName(StrBytes::from_string(name.to_string()));
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name.clone()])
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name))])
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX));
        let response = self.connection.send(&request).await?;
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
