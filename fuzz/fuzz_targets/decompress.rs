//! Bounded decompression: `compression::decompress` and `compression::reader` for gzip, snappy
//! (raw blocks and xerial framing), lz4 and zstd.
//!
//! Input: byte 0 picks the codec (low 3 bits: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd, 5
//! snappy with a xerial header put in front of the data, 6-7 gzip/zstd again), the output
//! limit (bit 3: 1 MiB or a small limit from byte 1, to hit the limit's edge) and the read
//! sizes used with `reader` (bits 4-7); the rest is the compressed data.
//! Checks: no panic, hang or unbounded allocation; the output never exceeds the limit;
//! `reader` read in small pieces gives what `decompress` gives.
#![no_main]

use std::io::Read;

use brook_protocol::batch::Compression;
use brook_protocol::compression::{classify, decompress, reader, DecompressError};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024 * 1024;
const XERIAL_HEADER: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fuzz_target!(|data: &[u8]| {
    let [sel, small, rest @ ..] = data else {
        return;
    };
    let (codec, xerial) = match sel & 0x07 {
        0 => (Compression::None, false),
        1 | 6 => (Compression::Gzip, false),
        2 => (Compression::Snappy, false),
        3 => (Compression::Lz4, false),
        4 | 7 => (Compression::Zstd, false),
        _ => (Compression::Snappy, true),
    };
    let limit = if sel & 0x08 == 0 {
        LIMIT
    } else {
        usize::from(*small) * 64
    };
    let piece = 1 + usize::from(sel >> 4) * 97;
    let input: Vec<u8> = if xerial {
        [XERIAL_HEADER, rest].concat()
    } else {
        rest.to_vec()
    };

    let whole = decompress(codec, &input, limit);
    match &whole {
        Ok(out) => {
            assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            if codec == Compression::None {
                assert_eq!(out, &input);
            }
        }
        Err(DecompressError::TooLarge { limit: l }) => assert_eq!(*l, limit),
        Err(_) => {}
    }

    // The streaming reader, read in pieces of `piece` bytes.
    let streamed = reader(codec, &input, limit).and_then(|mut r| {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => {
                    assert!(n <= piece);
                    out.extend_from_slice(&buf[..n]);
                    assert!(
                        out.len() <= limit,
                        "{} bytes read, limit {limit}",
                        out.len()
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(codec, &e)),
            }
        }
    });
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "reader and decompress disagree"),
        (Err(DecompressError::TooLarge { .. }), Err(DecompressError::TooLarge { .. })) => {}
        (Err(DecompressError::Corrupt { .. }), Err(DecompressError::Corrupt { .. })) => {}
        (a, b) => panic!("decompress gave {a:?}, reader gave {b:?}"),
    }

    // Raw snappy against the snap crate itself, when the claimed length is within the limit.
    if codec == Compression::Snappy
        && !xerial
        && !input.is_empty()
        && !input.starts_with(&XERIAL_HEADER[..8])
    {
        if let Ok(n) = snap::raw::decompress_len(&input) {
            if n <= limit {
                let direct = snap::raw::Decoder::new().decompress_vec(&input);
                match (direct, &whole) {
                    (Ok(d), Ok(w)) => assert_eq!(&d, w),
                    (Err(_), Err(_)) => {}
                    (d, w) => panic!("snap gave {d:?}, decompress gave {w:?}"),
                }
            }
        }
    }
});
