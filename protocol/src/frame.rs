//! Length-prefixed frames: a 4-byte big-endian size, then that many bytes.
//!
//! The size is checked against the maximum before anything is allocated for the frame, so a
//! hostile or broken peer cannot make the broker reserve memory by claiming a large frame.

use bytes::{Buf, BufMut, BytesMut};

use crate::DecodeError;

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// Bytes of the size prefix.
pub const SIZE_PREFIX: usize = 4;

/// Reads the size prefix at the start of `buf` without consuming it.
///
/// `Ok(None)` when fewer than four bytes are buffered. Errors on a negative size or one above
/// `max_frame_size`.
pub fn peek_frame_size(buf: &[u8], max_frame_size: usize) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buf.get(..SIZE_PREFIX) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let size = usize::try_from(size).map_err(|_| DecodeError::NegativeFrameSize(size))?;
    if size > max_frame_size {
        return Err(DecodeError::FrameTooLarge {
            size,
            max: max_frame_size,
        });
    }
    Ok(Some(size))
}

/// Splits one whole frame's payload (without its prefix) off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` is then reserved to hold the whole frame, which
/// is safe because the size was checked first.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_size: usize,
) -> Result<Option<BytesMut>, DecodeError> {
    let Some(size) = peek_frame_size(buf, max_frame_size)? else {
        return Ok(None);
    };
    if buf.len() < SIZE_PREFIX + size {
        buf.reserve(SIZE_PREFIX + size - buf.len());
        return Ok(None);
    }
    buf.advance(SIZE_PREFIX);
    Ok(Some(buf.split_to(size)))
}

/// Starts a frame in `out`: writes a placeholder size and returns where it is, for
/// [`finish_frame`].
pub fn begin_frame(out: &mut BytesMut) -> usize {
    let at = out.len();
    out.put_i32(0);
    at
}

/// Patches the size of the frame started at `at` to cover everything written since.
pub fn finish_frame(out: &mut BytesMut, at: usize) {
    let size = (out.len() - at - SIZE_PREFIX) as i32;
    out[at..at + SIZE_PREFIX].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_frames_and_waits_for_partial_ones() {
        let mut buf = BytesMut::new();
        buf.put_i32(3);
        buf.put_slice(b"abc");
        buf.put_i32(2);
        buf.put_slice(b"d");
        assert_eq!(&decode_frame(&mut buf, 10).unwrap().unwrap()[..], b"abc");
        assert!(decode_frame(&mut buf, 10).unwrap().is_none());
        buf.put_slice(b"e");
        assert_eq!(&decode_frame(&mut buf, 10).unwrap().unwrap()[..], b"de");
        assert!(buf.is_empty());
        assert!(decode_frame(&mut buf, 10).unwrap().is_none());
    }

    #[test]
    fn rejects_negative_and_oversized_frames_before_allocating() {
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert!(matches!(
            decode_frame(&mut buf, 10),
            Err(DecodeError::NegativeFrameSize(-1))
        ));
        let mut buf = BytesMut::from(&(i32::MAX).to_be_bytes()[..]);
        let before = buf.capacity();
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn begin_and_finish_write_the_size() {
        let mut out = BytesMut::new();
        let at = begin_frame(&mut out);
        out.put_slice(b"hello");
        finish_frame(&mut out, at);
        assert_eq!(&out[..4], &5i32.to_be_bytes());
        let payload = decode_frame(&mut out, 100).unwrap().unwrap();
        assert_eq!(&payload[..], b"hello");
    }
}
