//! Response encoding: header (v0 or v1 as the API version demands) and body, in one frame.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use thiserror::Error;

use crate::frame::{begin_frame, finish_frame};

/// A response the codec could not encode (a field out of range for the version).
#[derive(Debug, Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Appends one framed response to `out`. On error nothing is appended.
pub fn encode_response(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<(), EncodeError> {
    let start = out.len();
    let err = |e: anyhow::Error| EncodeError {
        api_key,
        version,
        reason: e.to_string(),
    };
    let at = begin_frame(out);
    // The ApiVersions response header is v0 at every version (KIP-511); the codec knows this.
    let header_version = api_key.response_header_version(version);
    let result = ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version));
    if let Err(e) = result {
        out.truncate(start);
        return Err(err(e));
    }
    finish_frame(out, at);
    Ok(())
}

/// Appends a response whose body the caller already encoded (legacy versions the codec lacks).
pub fn encode_raw_response(out: &mut BytesMut, correlation_id: i32, body: &[u8]) {
    let at = begin_frame(out);
    out.put_i32(correlation_id);
    out.put_slice(body);
    finish_frame(out, at);
}
