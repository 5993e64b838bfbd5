//! Decode errors of the protocol layer. Kafka error codes themselves come from
//! [`kafka_protocol::error::ResponseError`] (re-exported as [`ErrorCode`]).

use thiserror::Error;

pub use kafka_protocol::error::ResponseError as ErrorCode;

/// Why a request could not be decoded. Every variant closes the connection at the broker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("frame size {0} is negative")]
    NegativeFrameSize(i32),
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },
    #[error("request header truncated: {have} bytes, need at least {need}")]
    HeaderTruncated { need: usize, have: usize },
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API key {api_key} version {version} is not supported")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl DecodeError {
    pub(crate) fn malformed(what: &'static str, source: anyhow::Error) -> Self {
        DecodeError::Malformed {
            what,
            source: source.into(),
        }
    }
}
