//! The client's one error type, and the reading of Kafka error codes into it.

use std::time::Duration;

use brook_protocol::ErrorCode;

/// Why a connection, a request, a send or a poll failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("authentication failed: {0}")]
    Authentication(String),
    #[error("the broker does not serve {0}")]
    UnsupportedApi(&'static str),
    /// The broker answered with an error code.
    #[error("{message}")]
    Broker { code: i16, message: String },
    #[error("cannot encode or decode {what}: {message}")]
    Codec { what: &'static str, message: String },
    /// A setting or an argument the client cannot work with.
    #[error("{0}")]
    Config(String),
    /// The producer or consumer was closed.
    #[error("the client is closed")]
    Closed,
}

impl Clone for ClientError {
    /// A copy for each of the many records one failed batch carried (an I/O error keeps its
    /// kind and message).
    fn clone(&self) -> Self {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Self::Connect { addr, source } => Self::Connect {
                addr: addr.clone(),
                source: io(source),
            },
            Self::Timeout { addr, timeout } => Self::Timeout {
                addr: addr.clone(),
                timeout: *timeout,
            },
            Self::Io { addr, source } => Self::Io {
                addr: addr.clone(),
                source: io(source),
            },
            Self::Tls(m) => Self::Tls(m.clone()),
            Self::Authentication(m) => Self::Authentication(m.clone()),
            Self::UnsupportedApi(a) => Self::UnsupportedApi(a),
            Self::Broker { code, message } => Self::Broker {
                code: *code,
                message: message.clone(),
            },
            Self::Codec { what, message } => Self::Codec {
                what,
                message: message.clone(),
            },
            Self::Config(m) => Self::Config(m.clone()),
            Self::Closed => Self::Closed,
        }
    }
}

impl ClientError {
    /// Whether trying again (after refreshing metadata, on a new connection) may succeed:
    /// network failures and the error codes Kafka marks retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Io { .. } => true,
            Self::Broker { code, .. } => retriable(*code),
            _ => false,
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            Self::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The error codes Kafka's clients retry (its `RetriableException` subclasses).
pub(crate) fn retriable(code: i16) -> bool {
    matches!(
        code,
        2   // CORRUPT_MESSAGE (a bit flip on the way)
        | 3 // UNKNOWN_TOPIC_OR_PARTITION (metadata not there yet)
        | 5 // LEADER_NOT_AVAILABLE
        | 6 // NOT_LEADER_OR_FOLLOWER
        | 7 // REQUEST_TIMED_OUT
        | 13 // NETWORK_EXCEPTION
        | 14 // COORDINATOR_LOAD_IN_PROGRESS
        | 15 // COORDINATOR_NOT_AVAILABLE
        | 16 // NOT_COORDINATOR
        | 19 // NOT_ENOUGH_REPLICAS
        | 20 // NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | 51 // CONCURRENT_TRANSACTIONS
        | 56 // KAFKA_STORAGE_ERROR
        | 74 // FENCED_LEADER_EPOCH
        | 75 // UNKNOWN_LEADER_EPOCH
        | 78 // OFFSET_NOT_AVAILABLE
        | 88 // UNSTABLE_OFFSET_COMMIT
        | 89 // THROTTLING_QUOTA_EXCEEDED
    )
}

/// `code` as an error (named, with the broker's message if it sent one and `what` was being
/// done), or nothing for 0.
pub(crate) fn check(code: i16, message: Option<&str>, what: &str) -> Result<(), ClientError> {
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
