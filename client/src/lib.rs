//! Brook's Rust client for Kafka-compatible brokers.
//!
//! For now it holds the transport the `brook` command line and the benchmarks share:
//! [`Connection`], one connection to a broker over TCP or TLS, authenticated with SASL
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) when asked, sending typed requests at the highest
//! version both sides speak; and [`Admin`], topic administration on it. The producer and
//! consumer, and the rest of the admin client, arrive in later issues and build on it.

mod admin;
mod connection;
mod scram;

pub use admin::{Admin, ClusterInfo, TopicInfo};
pub use connection::{ClientError, Connection, SaslConfig, SaslMechanism, Security, TlsConfig};
