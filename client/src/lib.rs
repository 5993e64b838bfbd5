//! Brook's Rust client for Kafka-compatible brokers.
//!
//! - [`Connection`]: one connection to a broker over TCP or TLS, authenticated with SASL
//!   (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when asked, sending typed requests at the highest
//!   version both sides speak; [`Pipeline`] is the same connection shared by tasks with many
//!   requests in flight.
//! - [`Admin`]: topics, configs, consumer groups and the cluster.
//! - [`Producer`]: batching, compression, acks, idempotence, transactions, Java's
//!   partitioner.
//! - [`mirror()`]: one cluster's topics, records and group offsets copied into another.
//! - [`Consumer`]: partitions read from an offset, a time, the start or the end, assigned
//!   by hand or by a consumer group (classic protocol, `range` and `roundrobin`).

mod admin;
mod assignor;
mod cluster;
mod connection;
mod consumer;
mod error;
mod groups;
mod membership;
mod mirror;
mod partitioner;
mod producer;
mod record;
mod scram;
mod time;
mod transaction;

pub use admin::{Admin, ClusterInfo, ConfigEntry, ConfigSource, TopicInfo};
pub use assignor::Assignor;
pub use cluster::ClientConfig;
pub use connection::{
    Answer, Connection, Pipeline, SaslConfig, SaslMechanism, Security, TlsConfig,
};
pub use consumer::{Consumer, ConsumerConfig, IsolationLevel, StartAt};
pub use error::ClientError;
pub use groups::{GroupDescription, GroupListing, GroupMember};
pub use membership::GroupConfig;
pub use mirror::{glob_match, mirror, MirrorConfig, MirrorProgress, MirrorReport};
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, RecordMetadata};
pub use record::{compression_by_name, Compression, ConsumerRecord, Header, ProducerRecord};
pub use time::parse_time;
