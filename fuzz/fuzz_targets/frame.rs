//! Length-prefixed framing: `peek_frame_size` and `decode_frame` on a byte stream that
//! arrives in chunks, checked against a reference parse of the whole stream.
//!
//! Input: one byte choosing the chunk size (0 = everything at once), then the stream.
//! Checks: no panic; frames come out in order with exactly the bytes the reference finds;
//! an error leaves the buffer untouched (no reservation from a rejected size); the buffer
//! never grows past what a frame of at most `MAX_FRAME` needs (allowing for amortized
//! doubling) plus what the stream itself put there.
#![no_main]

use brook_protocol::frame::{
    begin_frame, decode_frame, finish_frame, peek_frame_size, SIZE_PREFIX,
};
use brook_protocol::DecodeError;
use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 1024 * 1024;

/// What the reference parser expects at `at`: a whole frame, more bytes, or an error.
enum Expect {
    Frame(usize),
    More,
    Error,
}

fn reference(stream: &[u8], at: usize, available: usize) -> Expect {
    let have = &stream[at..available];
    if have.len() < SIZE_PREFIX {
        return Expect::More;
    }
    let size = i32::from_be_bytes([have[0], have[1], have[2], have[3]]);
    if size < 0 || size as usize > MAX_FRAME {
        return Expect::Error;
    }
    if have.len() < SIZE_PREFIX + size as usize {
        Expect::More
    } else {
        Expect::Frame(size as usize)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = if chunk == 0 {
        stream.len().max(1)
    } else {
        usize::from(chunk)
    };
    // Capacity the stream alone can cause (appends double), and what one legal frame can.
    let bound = 2 * stream.len() + 2 * (SIZE_PREFIX + MAX_FRAME) + 64;

    let mut buf = BytesMut::new();
    let mut fed = 0; // bytes of `stream` appended to `buf`
    let mut at = 0; // bytes of `stream` consumed as frames
    loop {
        loop {
            let cap_before = buf.capacity();
            let len_before = buf.len();
            let peeked = peek_frame_size(&buf, MAX_FRAME);
            if let Ok(Some(n)) = peeked {
                assert!(n <= MAX_FRAME);
            }
            let result = decode_frame(&mut buf, MAX_FRAME);
            match (reference(stream, at, fed), result) {
                (Expect::Frame(size), Ok(Some(frame))) => {
                    assert!(matches!(peeked, Ok(Some(n)) if n == size));
                    assert_eq!(
                        &frame[..],
                        &stream[at + SIZE_PREFIX..at + SIZE_PREFIX + size]
                    );
                    assert_eq!(buf.len(), len_before - SIZE_PREFIX - size);
                    at += SIZE_PREFIX + size;
                    // The same payload framed again decodes to itself.
                    let mut out = BytesMut::new();
                    let start = begin_frame(&mut out);
                    out.put_slice(&frame);
                    finish_frame(&mut out, start);
                    let again = decode_frame(&mut out, MAX_FRAME)
                        .expect("a re-framed payload is valid")
                        .expect("a re-framed payload is whole");
                    assert_eq!(again, frame);
                    assert!(out.is_empty());
                }
                (Expect::More, Ok(None)) => {
                    assert_eq!(buf.len(), len_before);
                    if let Ok(Some(n)) = peeked {
                        // Room for the whole frame was reserved, and no more than needed.
                        assert!(buf.capacity() >= SIZE_PREFIX + n);
                    } else {
                        assert_eq!(buf.capacity(), cap_before);
                    }
                    assert!(
                        buf.capacity() <= bound.max(cap_before),
                        "capacity {} after waiting for a frame (bound {bound})",
                        buf.capacity()
                    );
                    break;
                }
                (Expect::Error, Err(e)) => {
                    assert!(peeked.is_err());
                    assert!(matches!(
                        e,
                        DecodeError::NegativeFrameSize(_) | DecodeError::FrameTooLarge { .. }
                    ));
                    // Nothing was reserved or consumed for a rejected frame.
                    assert_eq!(buf.capacity(), cap_before);
                    assert_eq!(buf.len(), len_before);
                    return;
                }
                (_, result) => panic!("decode_frame disagrees with the reference: {result:?}"),
            }
        }
        if fed == stream.len() {
            break;
        }
        let next = (fed + chunk).min(stream.len());
        buf.extend_from_slice(&stream[fed..next]);
        fed = next;
        assert!(
            buf.capacity() <= bound,
            "capacity {} (bound {bound})",
            buf.capacity()
        );
    }
    assert_eq!(at + buf.len(), stream.len());
});
