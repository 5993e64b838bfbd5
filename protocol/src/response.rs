//! Response encoding: header (v0 or v1 as the API version demands) and body, in one frame.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use thiserror::Error;

use crate::frame::{begin_frame, finish_frame, SIZE_PREFIX};

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

/// Record sets at least this large are sent from the log's own memory instead of being copied
/// into the response. Below it a copy is cheaper than one more piece to write.
pub const SHARE_AT_LEAST: usize = 4 * 1024;

/// One encoded response frame as pieces to write in order: small encoded parts, and record
/// sets that are slices of the log's memory map, written to the socket without a copy.
#[derive(Debug, Default)]
pub struct ResponseParts {
    parts: Vec<Bytes>,
    len: usize,
}

impl ResponseParts {
    /// The pieces, in order; together they are one whole frame (size prefix included).
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// Total size in bytes, the size prefix included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame as one contiguous buffer (copies; for tests and small frames).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => {
                let mut out = BytesMut::with_capacity(self.len);
                for p in parts {
                    out.put_slice(p);
                }
                out.freeze()
            }
        }
    }
}

impl From<BytesMut> for ResponseParts {
    fn from(frame: BytesMut) -> Self {
        let len = frame.len();
        let parts = if len == 0 {
            Vec::new()
        } else {
            vec![frame.freeze()]
        };
        ResponseParts { parts, len }
    }
}

/// Encodes one framed response like [`encode_response`], except that every field whose bytes
/// are exactly one of `shared` (at least [`SHARE_AT_LEAST`] long, in the order the response
/// carries them) becomes its own piece instead of a copy: Fetch record sets go from the
/// memory map to the socket.
pub fn encode_response_shared<B: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &B,
    shared: &[Bytes],
) -> Result<ResponseParts, EncodeError> {
    let mut buf = SharingBuf::new(shared);
    let at = begin_frame(&mut buf.current);
    let header_version = api_key.response_header_version(version);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|e| EncodeError {
            api_key,
            version,
            reason: e.to_string(),
        })?;
    Ok(buf.finish(at))
}

/// The buffer the codec encodes into for [`encode_response_shared`]: bytes go to `current`,
/// except a `put_slice` of one of the shared buffers, which closes `current` and takes a
/// reference to the shared buffer instead.
struct SharingBuf<'a> {
    shared: &'a [Bytes],
    /// Shared buffers before this index were used or skipped (they come in order).
    next_shared: usize,
    /// Finished pieces; the first is the one with the size prefix.
    done: Vec<Piece>,
    current: BytesMut,
    /// Bytes in `done`.
    done_len: usize,
}

enum Piece {
    Encoded(BytesMut),
    Shared(Bytes),
}

impl<'a> SharingBuf<'a> {
    fn new(shared: &'a [Bytes]) -> Self {
        SharingBuf {
            shared,
            next_shared: 0,
            done: Vec::new(),
            current: BytesMut::with_capacity(256),
            done_len: 0,
        }
    }

    /// The shared buffer `src` is exactly, if any (same memory, same length).
    fn find_shared(&mut self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARE_AT_LEAST {
            return None;
        }
        let found = self.shared[self.next_shared..]
            .iter()
            .position(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())?;
        let index = self.next_shared + found;
        self.next_shared = index + 1;
        Some(self.shared[index].clone())
    }

    fn finish(mut self, frame_at: usize) -> ResponseParts {
        let len = self.done_len + self.current.len();
        if !self.current.is_empty() {
            self.done.push(Piece::Encoded(self.current));
        }
        let mut parts = Vec::with_capacity(self.done.len());
        for (i, piece) in self.done.into_iter().enumerate() {
            match piece {
                Piece::Encoded(mut bytes) => {
                    if i > 0 && bytes.is_empty() {
                        continue;
                    }
                    if i == 0 {
                        // The frame began in the first piece; its size covers all the pieces.
                        let size = (len - frame_at - SIZE_PREFIX) as i32;
                        bytes[frame_at..frame_at + SIZE_PREFIX]
                            .copy_from_slice(&size.to_be_bytes());
                    }
                    parts.push(bytes.freeze());
                }
                Piece::Shared(bytes) => parts.push(bytes),
            }
        }
        ResponseParts { parts, len }
    }
}

// SAFETY: every method forwards to `current`, a `BytesMut`, whose own `BufMut` implementation
// upholds the trait's contract; `put_slice` only adds whole pieces beside it.
#[allow(unsafe_code)]
unsafe impl BufMut for SharingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `current.chunk_mut()`, the only chunk
        // this buffer hands out.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.find_shared(src) {
            Some(shared) => {
                let encoded = std::mem::take(&mut self.current);
                self.done_len += encoded.len() + shared.len();
                self.done.push(Piece::Encoded(encoded));
                self.done.push(Piece::Shared(shared));
            }
            None => self.current.put_slice(src),
        }
    }
}

/// Offsets are positions in the whole frame. Gaps (patched later) are only supported inside
/// the piece being encoded; the response encoders do not use them.
impl ByteBufMut for SharingBuf<'_> {
    fn offset(&self) -> usize {
        self.done_len + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.done_len);
        self.current.resize(local, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.done_len);
        let end = r.end.saturating_sub(self.done_len);
        self.current.get_mut(start..end).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn fetch_body(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(partitions)])
    }

    #[test]
    fn shared_encoding_equals_copied_encoding_and_shares_record_sets() {
        let big = Bytes::from(vec![7u8; 20_000]);
        let small = Bytes::from(vec![1u8; 100]);
        let other = Bytes::from(vec![9u8; SHARE_AT_LEAST]);
        let records = [big.clone(), small.clone(), Bytes::new(), other.clone()];
        for version in 4..=17 {
            let body = fetch_body(&records);
            let mut copied = BytesMut::new();
            encode_response(
                &mut copied,
                ApiKey::Fetch,
                version,
                42,
                &ResponseKind::Fetch(body.clone()),
            )
            .unwrap();
            let parts =
                encode_response_shared(ApiKey::Fetch, version, 42, &body, &records).unwrap();
            assert_eq!(parts.len(), copied.len(), "v{version}");
            assert_eq!(parts.to_bytes(), copied.freeze(), "v{version}");
            let pieces = parts.into_parts();
            // Big record sets are the log's own memory; the small one was copied.
            assert!(
                pieces.iter().any(|p| p.as_ptr() == big.as_ptr()),
                "v{version}"
            );
            assert!(
                pieces.iter().any(|p| p.as_ptr() == other.as_ptr()),
                "v{version}"
            );
            assert!(
                !pieces.iter().any(|p| p.as_ptr() == small.as_ptr()),
                "v{version}"
            );
            // Encoded, big, encoded, other, and from v12 the trailing tagged fields.
            let expected = if version >= 12 { 5 } else { 4 };
            assert_eq!(pieces.len(), expected, "v{version}");
        }
    }

    #[test]
    fn equal_bytes_elsewhere_are_copied_not_shared() {
        let log = Bytes::from(vec![5u8; 10_000]);
        let lookalike = Bytes::from(vec![5u8; 10_000]);
        let body = fetch_body(std::slice::from_ref(&lookalike));
        let parts = encode_response_shared(ApiKey::Fetch, 12, 1, &body, &[log]).unwrap();
        assert_eq!(parts.into_parts().len(), 1);
    }

    #[test]
    fn without_shared_buffers_a_response_is_one_piece() {
        let body = fetch_body(&[Bytes::from(vec![3u8; 50_000])]);
        let mut copied = BytesMut::new();
        encode_response(
            &mut copied,
            ApiKey::Fetch,
            11,
            5,
            &ResponseKind::Fetch(body.clone()),
        )
        .unwrap();
        let parts = encode_response_shared(ApiKey::Fetch, 11, 5, &body, &[]).unwrap();
        assert_eq!(parts.to_bytes(), copied.freeze());
        assert_eq!(parts.into_parts().len(), 1);
    }
}
