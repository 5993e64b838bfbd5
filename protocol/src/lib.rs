//! `brook-protocol`: the Kafka wire protocol as a pure codec.
//!
//! This crate turns bytes into typed requests and typed responses into bytes. It owns
//! framing ([`frame`]), request headers and version negotiation ([`request`], [`api_versions`]),
//! the record-batch header view ([`batch`]), single records ([`records`]), transaction
//! markers ([`control`]), bounded
//! decompression ([`compression`]), record validation on produce ([`validate`]) and responses
//! ([`response`]).
//! It performs no I/O: no sockets, no files, no async runtime.

pub mod api_versions;
pub mod batch;
pub mod compression;
pub mod control;
pub mod error;
pub mod frame;
pub mod legacy_produce;
pub mod records;
pub mod request;
pub mod response;
pub mod validate;

pub use error::{DecodeError, ErrorCode};
pub use kafka_protocol;
