//! Request decoding as the broker does it for one frame payload: the fixed header peek and the
//! KIP-511 ApiVersions fallback, the header, then the body (the typed codec for Produce v3+
//! and every other API, the legacy decoder for Produce v0-2).
//!
//! Input: byte 0 picks the API key (`ApiKey::iter()`, modulo its length; 0xff = the payload is
//! the rest of the input as it is), byte 1 picks the version (from one below the codec's range
//! to one above it), and the rest follows the key and version in the payload: correlation id,
//! client id, tagged fields, body. So every API is reached without guessing valid keys.
//! Checks: no panic or abort; decoded header fields match the payload; the fallback response
//! encodes; a version outside the codec's range is an error, never a panic.
#![no_main]

use brook_protocol::api_versions::{is_valid_client_software_field, unsupported_version_response};
use brook_protocol::frame::decode_frame;
use brook_protocol::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use brook_protocol::legacy_produce;
use brook_protocol::request::{decode_body, decode_header, peek_fixed_header};
use brook_protocol::response::encode_response;
use bytes::{Buf, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = match data {
        [0xff, rest @ ..] => rest.to_vec(),
        [k, v, rest @ ..] => {
            let keys: Vec<ApiKey> = ApiKey::iter().collect();
            let key = keys[usize::from(*k) % keys.len()];
            let range = key.valid_versions();
            let span = i32::from(range.max) - i32::from(range.min) + 3;
            let version = (i32::from(range.min) - 1 + i32::from(*v) % span) as i16;
            let mut p = Vec::with_capacity(4 + rest.len());
            p.extend_from_slice(&(key as i16).to_be_bytes());
            p.extend_from_slice(&version.to_be_bytes());
            p.extend_from_slice(rest);
            p
        }
        _ => data.to_vec(),
    };
    // The legacy decoder on arbitrary bodies, whatever the header says.
    if let Some(body) = payload.get(4..) {
        legacy(Bytes::copy_from_slice(body), 2);
    }
    one_request(Bytes::from(payload));
});

fn one_request(payload: Bytes) {
    let fixed = peek_fixed_header(&payload);
    assert_eq!(fixed.is_some(), payload.len() >= 8);
    if let Some((key, version, correlation_id)) = fixed {
        let range = ApiKey::ApiVersions.valid_versions();
        if key == ApiKey::ApiVersions as i16 && !(range.min..=range.max).contains(&version) {
            // KIP-511: answered from the fixed header alone, at v0.
            let mut out = BytesMut::new();
            let body = unsupported_version_response(range);
            encode_response(
                &mut out,
                ApiKey::ApiVersions,
                0,
                correlation_id,
                &ResponseKind::ApiVersions(body),
            )
            .expect("the ApiVersions fallback encodes");
            let mut frame = decode_frame(&mut out, 1024)
                .expect("the fallback is one valid frame")
                .expect("the fallback is one whole frame");
            assert!(out.is_empty());
            assert_eq!(frame.get_i32(), correlation_id);
            assert_eq!(frame.get_i16(), 35);
        }
    }

    let Ok(frame) = decode_header(payload.clone()) else {
        return;
    };
    let (key, version, correlation_id) = fixed.expect("a decoded header has its fixed part");
    assert_eq!(frame.api_key as i16, key);
    assert_eq!(frame.header.request_api_key, key);
    assert_eq!(frame.header.request_api_version, version);
    assert_eq!(frame.header.correlation_id, correlation_id);
    assert!(frame.body.len() <= payload.len() - 8);

    if frame.api_key == ApiKey::Produce && (0..3).contains(&version) {
        legacy(frame.body.clone(), version);
    }
    let range = frame.api_key.valid_versions();
    let in_range = (range.min..=range.max).contains(&version);
    match decode_body(&frame) {
        Ok(RequestKind::ApiVersions(req)) => {
            assert!(in_range);
            is_valid_client_software_field(&req.client_software_name);
            is_valid_client_software_field(&req.client_software_version);
        }
        Ok(_) => assert!(
            in_range,
            "{:?} v{version} decoded outside the codec's range",
            frame.api_key
        ),
        Err(_) => {}
    }
}

/// The Produce v0-2 decoder and, when it succeeds, the error response built from it.
fn legacy(body: Bytes, version: i16) {
    let len = body.len();
    let Ok(req) = legacy_produce::decode(body) else {
        return;
    };
    // Each topic takes at least 2 + 4 bytes and each partition 8: nothing was invented.
    let partitions: usize = req.topics.iter().map(|(_, p)| p.len()).sum();
    assert!(6 + 4 + req.topics.len() * 6 + partitions * 8 <= len);
    let resp = legacy_produce::encode_error_response(&req, version, 35);
    let per_partition = if version >= 2 { 22 } else { 14 };
    let names: usize = req.topics.iter().map(|(n, _)| 2 + n.len() + 4).sum();
    let throttle = if version >= 1 { 4 } else { 0 };
    assert_eq!(
        resp.len(),
        4 + names + partitions * per_partition + throttle
    );
    // A client reads back exactly the topics and partitions of the request.
    let mut r = resp;
    assert_eq!(r.get_i32() as usize, req.topics.len());
    for (name, parts) in &req.topics {
        let n = r.get_i16();
        assert_eq!(
            usize::try_from(n).ok(),
            Some(name.len()),
            "topic name length prefix"
        );
        assert_eq!(&r.split_to(name.len())[..], name.as_bytes());
        assert_eq!(r.get_i32() as usize, parts.len());
        for p in parts {
            assert_eq!(r.get_i32(), *p);
            assert_eq!(r.get_i16(), 35);
            r.advance(per_partition - 6);
        }
    }
    assert_eq!(r.len(), throttle);
}
