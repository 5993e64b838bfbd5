//! `brook-broker`: a Kafka-wire-compatible event log broker.
//!
//! - [`config`]: the typed broker configuration (TOML file, CLI flags).
//! - [`server`]: starting, embedding and stopping a broker ([`Broker`], [`EmbeddedBroker`]).
//! - `connection`: one client connection, requests in and responses out in order.
//! - `handlers`: one module per Kafka API and the registry ApiVersions is derived from.
//! - [`topics`]: topics, partitions, topic ids and the metadata file.
//! - [`topic_config`]: topic-level configs with Kafka's names.
//!
//! Embedding for tests:
//!
//! ```no_run
//! let broker = brook_broker::EmbeddedBroker::ephemeral().expect("start");
//! println!("bootstrap.servers={}", broker.bootstrap());
//! broker.shutdown();
//! ```

pub mod config;
mod connection;
mod handlers;
pub mod server;
mod state;
pub mod topic_config;
pub mod topics;

pub use config::BrokerConfig;
pub use server::{Broker, BrokerError, EmbeddedBroker};
