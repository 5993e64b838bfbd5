//! ApiVersions negotiation pieces the `kafka-protocol` crate lacks.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::ErrorCode;

/// The answer to an ApiVersions request at a version the broker does not support (KIP-511):
/// error UNSUPPORTED_VERSION and only the ApiVersions range, so the client retries lower.
/// Encode it at version 0, which every client can read.
pub fn unsupported_version_response(supported: VersionRange) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(supported.min)
            .with_max_version(supported.max)])
}

/// Whether an ApiVersions v3+ client software name or version matches Kafka's pattern
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`. A mismatch is answered with INVALID_REQUEST.
pub fn is_valid_client_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let edge_ok = |c: &u8| c.is_ascii_alphanumeric();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            edge_ok(first)
                && edge_ok(last)
                && b.iter()
                    .skip(1)
                    .take(b.len().saturating_sub(2))
                    .all(inner_ok)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::encode_response;
    use bytes::BytesMut;
    use kafka_protocol::messages::ResponseKind;

    #[test]
    fn client_software_pattern() {
        for ok in [
            "a",
            "librdkafka",
            "apache-kafka-java",
            "2.12.1",
            "kafka.js-2",
        ] {
            assert!(is_valid_client_software_field(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", ".", "a_b"] {
            assert!(!is_valid_client_software_field(bad), "{bad}");
        }
    }

    #[test]
    fn fallback_is_a_v0_body_with_error_35_and_a_v0_header() {
        let body = unsupported_version_response(VersionRange { min: 0, max: 4 });
        let mut out = BytesMut::new();
        encode_response(
            &mut out,
            ApiKey::ApiVersions,
            0,
            9,
            &ResponseKind::ApiVersions(body),
        )
        .unwrap();
        // size, correlation id, error code 35, one api key entry (18, 0, 4), nothing else.
        let expected: Vec<u8> = [
            &16i32.to_be_bytes()[..],
            &9i32.to_be_bytes(),
            &35i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &18i16.to_be_bytes(),
            &0i16.to_be_bytes(),
            &4i16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn flexible_response_header_is_still_v0_and_omits_default_tagged_fields() {
        let body = ApiVersionsResponse::default();
        let mut out = BytesMut::new();
        encode_response(
            &mut out,
            ApiKey::ApiVersions,
            3,
            1,
            &ResponseKind::ApiVersions(body),
        )
        .unwrap();
        // size, correlation id (no header tagged fields), error code, empty compact array (1),
        // throttle time, empty tagged fields (0).
        let expected: Vec<u8> = [
            &12i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &0i16.to_be_bytes(),
            &[1u8],
            &0i32.to_be_bytes(),
            &[0u8],
        ]
        .concat();
        assert_eq!(&out[..], &expected[..]);
    }
}
