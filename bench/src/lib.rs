//! `brook-bench`: an end-to-end load tool that drives any Kafka-compatible broker by its
//! bootstrap address with librdkafka (through the `rdkafka` crate), so Brook and its peers
//! are measured by the same client.
//!
//! Workloads: [`produce`], [`consume`], [`e2e`] (produce-to-consume latency), [`startup`]
//! (spawn to first answered ApiVersions, idle RSS) and [`connect`] (new authenticated
//! connections per second, through `brook-client`). [`compare`] runs one against two
//! brokers in alternation. The logic that does not need a broker is pure and unit-tested:
//! [`cli`], [`latency`], [`procfs`], [`pace`], [`report`], [`compare`]'s table.
//!
//! Criterion micro-benchmarks of the hot paths are separate from this tool.

pub mod app;
pub mod cli;
pub mod compare;
pub mod connect;
pub mod consume;
pub mod e2e;
pub mod error;
pub mod kafka;
pub mod latency;
mod native;
pub mod pace;
pub mod procfs;
pub mod produce;
pub mod report;
pub mod startup;
pub mod stream_read;

pub use error::BenchError;
