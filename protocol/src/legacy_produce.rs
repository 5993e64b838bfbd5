//! Produce v0-2, which the `kafka-protocol` crate cannot decode.
//!
//! Brook advertises Produce from v0 because librdkafka before 2.11.1 only enables compression
//! when the advertised range contains the old versions (as Kafka 4.x does), but it stores only
//! v2 record batches. These requests are answered with UNSUPPORTED_VERSION for every partition.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::DecodeError;

/// The topic and partition names of a v0-2 produce request, and its acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProduce {
    pub acks: i16,
    pub topics: Vec<(String, Vec<i32>)>,
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        return Err(DecodeError::HeaderTruncated {
            need: n,
            have: buf.remaining(),
        });
    }
    Ok(())
}

fn count(buf: &mut Bytes) -> Result<usize, DecodeError> {
    need(buf, 4)?;
    let n = buf.get_i32();
    // Each element takes at least four bytes; a larger count is a lie.
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= buf.remaining() / 4)
        .ok_or_else(|| DecodeError::malformed("legacy produce", anyhow::anyhow!("bad count {n}")))
}

/// Reads a v0-2 produce body (no transactional id field in these versions).
pub fn decode(mut buf: Bytes) -> Result<LegacyProduce, DecodeError> {
    need(&buf, 6)?;
    let acks = buf.get_i16();
    let _timeout_ms = buf.get_i32();
    let mut topics = Vec::new();
    for _ in 0..count(&mut buf)? {
        need(&buf, 2)?;
        let len = usize::try_from(buf.get_i16()).unwrap_or(0);
        need(&buf, len)?;
        // Strict UTF-8, as the typed codec reads v3+ names: a lossy decoding could grow the
        // name past what the response's i16 length prefix can say.
        let name = String::from_utf8(buf.split_to(len).to_vec()).map_err(|e| {
            DecodeError::malformed("legacy produce", anyhow::anyhow!("topic name: {e}"))
        })?;
        let mut partitions = Vec::new();
        for _ in 0..count(&mut buf)? {
            need(&buf, 8)?;
            partitions.push(buf.get_i32());
            let size = usize::try_from(buf.get_i32()).unwrap_or(0);
            need(&buf, size)?;
            buf.advance(size);
        }
        topics.push((name, partitions));
    }
    Ok(LegacyProduce { acks, topics })
}

/// Encodes a v0-2 response body giving `error_code` for every partition of the request.
pub fn encode_error_response(req: &LegacyProduce, version: i16, error_code: i16) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(req.topics.len() as i32);
    for (name, partitions) in &req.topics {
        out.put_i16(name.len() as i16);
        out.put_slice(name.as_bytes());
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
            out.put_i16(error_code);
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_topics_and_answers_each_partition() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(3);
        b.put_slice(b"abc");
        b.put_i32(2);
        for p in [0, 4] {
            b.put_i32(p);
            b.put_i32(2);
            b.put_slice(b"xx");
        }
        let req = decode(b.freeze()).unwrap();
        assert_eq!(req.acks, 1);
        assert_eq!(req.topics, vec![("abc".to_string(), vec![0, 4])]);
        let resp = encode_error_response(&req, 2, 35);
        // count, name, partition count, 2 x (index, error, offset, append time), throttle.
        assert_eq!(resp.len(), 4 + 5 + 4 + 2 * (4 + 2 + 8 + 8) + 4);
        assert_eq!(&resp[13..19], &[0, 0, 0, 0, 0, 35]);
    }

    #[test]
    fn names_that_are_not_utf8_are_errors() {
        // 11,000 bytes of 0xff became 33,000 bytes of U+FFFD, whose length the response wrote
        // as `33000 as i16` (negative): a malformed response.
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(11_000);
        b.put_slice(&[0xff; 11_000]);
        b.put_i32(1);
        b.put_i32(0);
        b.put_i32(0);
        match decode(b.freeze()) {
            Err(_) => {}
            Ok(req) => {
                let resp = encode_error_response(&req, 2, 35);
                let prefix = i16::from_be_bytes([resp[4], resp[5]]);
                panic!(
                    "decoded a {}-byte name; the response says {prefix}",
                    req.topics[0].0.len()
                );
            }
        }
    }

    #[test]
    fn lying_counts_are_errors() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(i32::MAX);
        assert!(decode(b.freeze()).is_err());
    }
}
