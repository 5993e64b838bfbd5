//! Record-batch decompression with a bound on the output size.
//!
//! Batches stay compressed on the produce and fetch paths; only features that need individual
//! records (exact timestamp lookups today; compaction and per-key indexes later) decompress.
//! Every decoder stops at `limit` bytes of output so a small "zip bomb" batch cannot make the
//! broker allocate without bound.

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

/// Decompresses a batch's record section. `Compression::None` returns the input unchanged.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt { codec, reason };
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(DecompressError::TooLarge { limit });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), limit, codec),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| corrupt(e.to_string()))?;
            read_bounded(decoder, limit, codec)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(e.to_string()))?;
            read_bounded(decoder, limit, codec)
        }
        Compression::Snappy => decompress_snappy(data, limit),
    }
}

fn read_bounded(
    reader: impl Read,
    limit: usize,
    codec: Compression,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

fn decompress_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt {
        codec: Compression::Snappy,
        reason,
    };
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if out.len().saturating_add(len) > limit {
            return Err(DecompressError::TooLarge { limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw_block(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = data
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt("truncated xerial header".into()))?;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("truncated xerial block length".into()))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("truncated xerial block".into()))?;
        raw_block(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
