//! Brook's integration tests, in one binary so the real clients are linked once.
//!
//! Each module drives a broker (in-process or as a process) with a real client:
//! librdkafka through the `rdkafka` crate, kafka-python, kafkajs, Debian's kcat, and a raw
//! protocol client for byte-level checks.

// Everything in this crate is test code: helpers panic to fail the test that called them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acls;
mod bad_input;
mod client;
mod compaction;
mod configs;
mod disk_full;
mod external_clients;
mod faults;
mod groups;
mod librdkafka;
mod limits;
mod metadata;
mod mirror;
mod multi_broker;
mod partitions;
mod power_loss;
mod process;
mod registry;
mod restart;
mod retention;
mod scram_users;
mod security;
mod streams;
mod tansu;
mod transactions;
mod transactions_wire;
mod validation;
mod wire;
