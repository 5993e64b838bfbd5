//! Request headers and bodies: from a frame's payload to a typed request.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::DecodeError;

/// A request whose header has been read; the body is still bytes.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Smallest header: api key, api version, correlation id, client id length.
const MIN_HEADER: usize = 10;

/// Reads the request header from a frame's payload.
///
/// Fails on an unknown API key or a truncated or malformed header; the broker closes the
/// connection then, as Kafka does.
pub fn decode_header(mut payload: Bytes) -> Result<RequestFrame, DecodeError> {
    if payload.len() < MIN_HEADER {
        return Err(DecodeError::HeaderTruncated {
            need: MIN_HEADER,
            have: payload.len(),
        });
    }
    let key = i16::from_be_bytes([payload[0], payload[1]]);
    let version = i16::from_be_bytes([payload[2], payload[3]]);
    let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut payload, header_version)
        .map_err(|e| DecodeError::malformed("request header", e))?;
    Ok(RequestFrame {
        api_key,
        header,
        body: payload,
    })
}

/// The fixed start of every request header: API key, version and correlation id.
///
/// Enough to answer an ApiVersions request at a version the broker does not know, whose
/// header layout may be newer than the codec's (KIP-511).
pub fn peek_fixed_header(payload: &[u8]) -> Option<(i16, i16, i32)> {
    let b = payload.get(..8)?;
    Some((
        i16::from_be_bytes([b[0], b[1]]),
        i16::from_be_bytes([b[2], b[3]]),
        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// Decodes a request body at the header's version. The caller checks the version against what
/// the broker supports first.
pub fn decode_body(frame: &RequestFrame) -> Result<RequestKind, DecodeError> {
    let mut body = frame.body.clone();
    RequestKind::decode(frame.api_key, &mut body, frame.header.request_api_version)
        .map_err(|e| DecodeError::malformed("request body", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};

    fn encode(key: ApiKey, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        encode_request_header_into_buffer(&mut buf, &header).unwrap();
        ApiVersionsRequest::default()
            .encode(&mut buf, version)
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_header_and_body() {
        let frame = decode_header(encode(ApiKey::ApiVersions, 3)).unwrap();
        assert_eq!(frame.api_key, ApiKey::ApiVersions);
        assert_eq!(frame.header.correlation_id, 7);
        assert_eq!(frame.header.client_id.as_deref(), Some("test"));
        assert!(matches!(
            decode_body(&frame).unwrap(),
            RequestKind::ApiVersions(_)
        ));
    }

    #[test]
    fn rejects_unknown_keys_and_short_headers() {
        let mut raw = encode(ApiKey::ApiVersions, 0).to_vec();
        raw[0..2].copy_from_slice(&999i16.to_be_bytes());
        assert!(matches!(
            decode_header(Bytes::from(raw)),
            Err(DecodeError::UnknownApiKey(999))
        ));
        assert!(matches!(
            decode_header(Bytes::from_static(&[0, 18, 0])),
            Err(DecodeError::HeaderTruncated { .. })
        ));
    }

    #[test]
    fn garbage_bodies_are_errors_not_panics() {
        let frame = RequestFrame {
            api_key: ApiKey::Metadata,
            header: RequestHeader::default().with_request_api_version(9),
            body: Bytes::from_static(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]),
        };
        assert!(decode_body(&frame).is_err());
        // A count of 2^31-1 elements in a tiny body must neither abort nor allocate wildly.
        let frame = RequestFrame {
            api_key: ApiKey::Metadata,
            header: RequestHeader::default().with_request_api_version(4),
            body: Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 1]),
        };
        assert!(decode_body(&frame).is_err());
    }
}
