//! `brook-broker`: a Kafka-wire-compatible event log broker.
//!
//! - [`config`]: the typed broker configuration (TOML file, CLI flags).
//! - [`server`]: starting, embedding and stopping a broker ([`Broker`], [`EmbeddedBroker`]).
//! - [`auth`]: authentication mechanisms (SCRAM so far), apart from the connections.
//! - [`http_client`]: the broker's own outgoing HTTP requests (a JWKS, a schema registry).
//! - [`listeners`]: the Kafka listeners (`listeners`, `advertised.listeners`,
//!   `listener.security.protocol.map`).
//! - `connection`: one client connection, requests in and responses out in order.
//! - `durability`: the fsync contract per partition (group commit, background flush).
//! - `groups`: the group coordinator (consumer groups, committed offsets, `__consumer_offsets`).
//! - `internal_log`: partition 0 of an internal topic a coordinator keeps its state in.
//! - `maintenance`: periodic flush, checkpoints and retention.
//! - `producers`: idempotent and transactional producer state per partition (sequences,
//!   ongoing and aborted transactions, the last stable offset).
//! - `txn`: the transaction coordinator (`__transaction_state`, markers, timeouts).
//! - `record_codec`: Kafka's encoding of internal-topic records.
//! - `handlers`: one module per Kafka API and the registry ApiVersions is derived from.
//! - `streams`: aggregate streams on indexed topics (the `brook.expected.revision` conditional
//!   append).
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

mod admission;
pub mod auth;
mod cleaner;
pub mod config;
mod connection;
mod durability;
mod dynamic_config;
mod files;
mod groups;
mod handlers;
mod http;
pub mod http_client;
mod internal_log;
pub mod listeners;
mod maintenance;
mod producers;
mod record_codec;
mod registry;
pub mod server;
mod state;
mod streams;
pub mod topic_config;
pub mod topics;
mod txn;

pub use config::BrokerConfig;
pub use server::{Broker, BrokerError, EmbeddedBroker};
