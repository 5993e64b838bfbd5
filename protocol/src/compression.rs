//! Record-batch decompression with a bound on the output size, and compression (for batches
//! the broker rewrites, such as compacted ones).
//!
//! Batches stay compressed on the fetch path; produce validation streams through a batch's
//! records with [`reader`] (holding at most one snappy block, never the whole output), and
//! features that need individual records (exact timestamp lookups today; compaction and
//! per-key indexes later) [`decompress`] a batch. Every decoder stops at `limit` bytes of
//! output so a small "zip bomb" batch cannot make the broker allocate or work without bound.

use std::io::Read;

use thiserror::Error;

use crate::batch::Compression;

/// Why a batch's records could not be decompressed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecompressError {
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{codec:?} data is corrupt: {reason}")]
    Corrupt { codec: Compression, reason: String },
}

/// Xerial snappy stream header used by Java clients and librdkafka.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// The error a [`reader`] returns (inside an `io::Error`) once its output passes the limit.
#[derive(Debug, Error)]
#[error("decompressed size exceeds the limit of {limit} bytes")]
pub struct LimitExceeded {
    pub limit: usize,
}

/// Turns an error from a [`reader`] of `codec` into a [`DecompressError`].
pub fn classify(codec: Compression, e: &std::io::Error) -> DecompressError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
    {
        Some(l) => DecompressError::TooLarge { limit: l.limit },
        None => DecompressError::Corrupt {
            codec,
            reason: e.to_string(),
        },
    }
}

/// A reader of a batch's decompressed record section that fails (with [`LimitExceeded`])
/// rather than produce more than `limit` bytes. `Compression::None` reads `data` as it is.
pub fn reader<'a>(
    codec: Compression,
    data: &'a [u8],
    limit: usize,
) -> Result<Box<dyn Read + 'a>, DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt { codec, reason };
    let inner: Box<dyn Read + 'a> = match codec {
        Compression::None => Box::new(data),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
        Compression::Lz4 => Box::new(lz4::Decoder::new(data).map_err(|e| corrupt(e.to_string()))?),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(e.to_string()))?,
        ),
        Compression::Snappy => Box::new(SnappyReader::new(data, limit)),
    };
    Ok(Box::new(Limited {
        inner,
        left: limit,
        limit,
    }))
}

/// Decompresses a batch's record section. `Compression::None` returns the input unchanged.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    reader(codec, data, limit)?
        .read_to_end(&mut out)
        .map_err(|e| classify(codec, &e))?;
    Ok(out)
}

/// Size of the uncompressed blocks of a xerial snappy stream the broker writes (as the Java
/// client's `SnappyOutputStream`).
const XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses a record section with `codec`, in the framing Kafka clients read: gzip, the
/// xerial snappy stream, the LZ4 frame format and zstd. `Compression::None` copies.
pub fn compress(codec: Compression, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(data.len() / 2 + XERIAL_HEADER_LEN);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK) {
                let compressed = encoder.compress_vec(block).map_err(std::io::Error::other)?;
                let len = i32::try_from(compressed.len()).map_err(std::io::Error::other)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new())?;
            e.write_all(data)?;
            let (out, result) = e.finish();
            result.map(|()| out)
        }
        Compression::Zstd => zstd::encode_all(data, 3),
    }
}

/// Passes at most `limit` bytes through, then fails if the inner reader has more.
struct Limited<R> {
    inner: R,
    left: usize,
    limit: usize,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // Anything more is over the limit; nothing more is fine.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(LimitExceeded { limit: self.limit })),
            };
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}

/// Snappy as Kafka clients write it: xerial framing (blocks with a length prefix) or, from
/// some clients, one raw block. One block is decompressed at a time; a block that claims more
/// than the limit is refused before anything is allocated for it.
struct SnappyReader<'a> {
    rest: &'a [u8],
    /// None until the format is known.
    xerial: Option<bool>,
    block: Vec<u8>,
    at: usize,
    limit: usize,
    produced: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8], limit: usize) -> Self {
        Self {
            rest: data,
            xerial: None,
            block: Vec::new(),
            at: 0,
            limit,
            produced: 0,
        }
    }

    fn corrupt(reason: impl Into<String>) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into())
    }

    /// Decompresses the next block into `self.block`; false at the end of the data.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let xerial = match self.xerial {
            Some(x) => x,
            None => {
                let x = self.rest.starts_with(XERIAL_MAGIC);
                if x {
                    self.rest = self
                        .rest
                        .get(XERIAL_HEADER_LEN..)
                        .ok_or_else(|| Self::corrupt("truncated xerial header"))?;
                }
                self.xerial = Some(x);
                x
            }
        };
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if xerial {
            let len_bytes: [u8; 4] = self
                .rest
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| Self::corrupt("truncated xerial block length"))?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let block = self
                .rest
                .get(4..4 + len)
                .ok_or_else(|| Self::corrupt("truncated xerial block"))?;
            self.rest = &self.rest[4 + len..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let len =
            snap::raw::decompress_len(compressed).map_err(|e| Self::corrupt(e.to_string()))?;
        if self.produced.saturating_add(len) > self.limit {
            return Err(std::io::Error::other(LimitExceeded { limit: self.limit }));
        }
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| Self::corrupt(e.to_string()))?;
        self.produced += len;
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn compressed_sections_decompress_to_the_original_in_every_codec() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
        assert!(compress(Compression::Snappy, &data)
            .unwrap()
            .starts_with(XERIAL_MAGIC));
    }

    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..10_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    #[test]
    fn gzip_zstd_lz4_round_trip_and_bound() {
        let input = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&input).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&input[..], 1).unwrap();
        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&input).unwrap();
        let (lz, res) = lz.finish();
        res.unwrap();
        for (codec, data) in [
            (Compression::Gzip, gz),
            (Compression::Zstd, zs),
            (Compression::Lz4, lz),
        ] {
            assert_eq!(decompress(codec, &data, input.len()).unwrap(), input);
            assert!(matches!(
                decompress(codec, &data, input.len() - 1),
                Err(DecompressError::TooLarge { .. })
            ));
            assert!(
                decompress(codec, &data[..data.len() / 2], usize::MAX).is_err()
                    || decompress(codec, &data[..data.len() / 2], usize::MAX).unwrap() != input
            );
        }
    }

    #[test]
    fn snappy_xerial_and_raw() {
        let input = sample();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for chunk in input.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(
            decompress(Compression::Snappy, &framed, usize::MAX).unwrap(),
            input
        );
        assert!(matches!(
            decompress(Compression::Snappy, &framed, 100),
            Err(DecompressError::TooLarge { .. })
        ));
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, usize::MAX).unwrap(),
            input
        );
        assert!(decompress(Compression::Snappy, &framed[..40], usize::MAX).is_err());
    }
}
