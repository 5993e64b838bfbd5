//! Rewriting one batch with the records a cleaning pass keeps.
//!
//! Surviving records are copied verbatim (length prefix, deltas, key, value, every header,
//! duplicates included) from the batch's record section, decompressed first if the batch is
//! compressed and compressed again with the same codec. The new batch keeps the original's
//! base offset, last offset delta (so offsets never move; the removed ones become gaps),
//! attributes, base timestamp, producer id, epoch and base sequence; its record count, length,
//! max timestamp (CreateTime: the largest kept; LogAppendTime: unchanged) and CRC are
//! recomputed. Control batches (transaction markers) are never rewritten here.

use brook_protocol::batch::{BatchView, HEADER_SIZE};
use brook_protocol::compression::{self, DecompressError};
use brook_protocol::records::{Record, RecordError, Records};

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record survives: keep the batch's bytes as they are.
    Unchanged,
    /// Some records survive: these are the new batch's bytes.
    Rewritten(Vec<u8>),
    /// No record survives (an empty batch is written only if the caller asks; see
    /// [`retain`]).
    Dropped,
}

/// A batch that cannot be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("compressing the kept records failed: {0}")]
    Compress(std::io::Error),
}

const LOG_APPEND_TIME: i16 = 0x08;

/// Calls `f` with every record of `batch` and its offset (a control batch has none here).
/// Compressed sections are decompressed up to `limit` bytes.
pub fn for_each_record(
    batch: &BatchView<'_>,
    limit: usize,
    mut f: impl FnMut(&Record<'_>, i64),
) -> Result<(), FilterError> {
    if batch.is_control() {
        return Ok(());
    }
    let codec = batch
        .compression()
        .unwrap_or(brook_protocol::batch::Compression::None);
    let decompressed;
    // An uncompressed section is read in place: no copy of the batch.
    let section = if codec == brook_protocol::batch::Compression::None {
        batch.records_data()
    } else {
        decompressed = compression::decompress(codec, batch.records_data(), limit)?;
        &decompressed
    };
    for record in Records::new(section, batch.records_count()) {
        let record = record?;
        f(
            &record,
            batch.base_offset() + i64::from(record.offset_delta),
        );
    }
    Ok(())
}

/// Rewrites `batch` with the records `keep` accepts (given the record and its offset).
/// `keep_empty`: when nothing survives, write a batch without records that keeps the
/// header (Kafka does so for a producer's last batch, so its sequence state survives).
/// Compressed sections are decompressed up to `limit` bytes.
pub fn retain(
    batch: &BatchView<'_>,
    mut keep: impl FnMut(&Record<'_>, i64) -> bool,
    keep_empty: bool,
    limit: usize,
) -> Result<Retained, FilterError> {
    if batch.is_control() {
        return Ok(Retained::Unchanged);
    }
    let codec = batch
        .compression()
        .unwrap_or(brook_protocol::batch::Compression::None);
    let section = compression::decompress(codec, batch.records_data(), limit)?;
    let mut records = Records::new(&section, batch.records_count());
    let mut kept = Vec::with_capacity(section.len());
    let (mut total, mut count, mut max_delta) = (0i32, 0i32, None::<i64>);
    loop {
        let start = records.position();
        let Some(record) = records.next() else { break };
        let record = record?;
        total += 1;
        if keep(
            &record,
            batch.base_offset() + i64::from(record.offset_delta),
        ) {
            kept.extend_from_slice(&section[start..records.position()]);
            count += 1;
            max_delta =
                Some(max_delta.map_or(record.timestamp_delta, |m| m.max(record.timestamp_delta)));
        }
    }
    if count == total {
        return Ok(Retained::Unchanged);
    }
    if count == 0 && !keep_empty {
        return Ok(Retained::Dropped);
    }
    let body = compression::compress(codec, &kept).map_err(FilterError::Compress)?;
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&batch.bytes()[..HEADER_SIZE]);
    out.extend_from_slice(&body);
    let length = i32::try_from(out.len() - 12).unwrap_or(i32::MAX);
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    if batch.attributes() & LOG_APPEND_TIME == 0 {
        let max = max_delta.map_or(batch.base_timestamp(), |d| batch.base_timestamp() + d);
        out[35..43].copy_from_slice(&max.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Retained::Rewritten(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::testing::{build_batch, TestRecord};
    use brook_protocol::batch::{set_base_offset, Compression};

    fn record(key: &str, ts_delta: i64) -> TestRecord {
        TestRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(format!("value-of-{key}").into_bytes()),
            timestamp_delta: ts_delta,
            headers: vec![
                ("h".into(), Some(b"1".to_vec())),
                ("h".into(), Some(b"2".to_vec())),
            ],
        }
    }

    /// A batch of keys a, b, c, d at offsets 100..104, compressed with `codec`.
    fn batch(codec: Compression) -> Vec<u8> {
        let plain = build_batch(
            1_000,
            &["a", "b", "c", "d"]
                .map(|k| record(k, 0))
                .iter()
                .enumerate()
                .map(|(i, r)| TestRecord {
                    timestamp_delta: i as i64,
                    ..r.clone()
                })
                .collect::<Vec<_>>(),
        );
        let mut b = brook_protocol::batch::testing::compressed(&plain, codec);
        set_base_offset(&mut b, 100);
        b
    }

    fn keys(b: &[u8]) -> Vec<(i64, String, usize)> {
        let view = BatchView::parse_verified(b).unwrap();
        let section =
            compression::decompress(view.compression().unwrap(), view.records_data(), 1 << 20)
                .unwrap();
        Records::new(&section, view.records_count())
            .map(|r| {
                let r = r.unwrap();
                (
                    view.base_offset() + i64::from(r.offset_delta),
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    r.headers.len(),
                )
            })
            .collect()
    }

    #[test]
    fn kept_records_are_copied_whole_under_the_same_offsets_in_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(codec);
            let view = BatchView::parse_verified(&b).unwrap();
            let Retained::Rewritten(out) = retain(
                &view,
                |r, _| r.key != Some(b"b") && r.key != Some(b"d"),
                false,
                1 << 20,
            )
            .unwrap() else {
                panic!("{codec:?}")
            };
            let new = BatchView::parse_verified(&out).unwrap();
            assert_eq!(
                (new.base_offset(), new.last_offset(), new.records_count()),
                (100, 103, 2),
                "{codec:?}"
            );
            assert_eq!(new.compression(), Some(codec));
            assert_eq!(
                keys(&out),
                vec![(100, "a".into(), 2), (102, "c".into(), 2)],
                "{codec:?}"
            );
            // CreateTime: the max timestamp is the largest kept (c, delta 2).
            assert_eq!(new.max_timestamp(), 1_002);
        }
    }

    #[test]
    fn all_kept_none_kept_and_the_empty_batch_a_producer_keeps() {
        let b = batch(Compression::None);
        let view = BatchView::parse_verified(&b).unwrap();
        assert_eq!(
            retain(&view, |_, _| true, false, 1 << 20).unwrap(),
            Retained::Unchanged
        );
        assert_eq!(
            retain(&view, |_, _| false, false, 1 << 20).unwrap(),
            Retained::Dropped
        );
        let Retained::Rewritten(empty) = retain(&view, |_, _| false, true, 1 << 20).unwrap() else {
            panic!()
        };
        let e = BatchView::parse_verified(&empty).unwrap();
        assert_eq!(
            (e.base_offset(), e.last_offset(), e.records_count()),
            (100, 103, 0)
        );
        // Offsets passed to `keep` are absolute.
        let mut seen = Vec::new();
        retain(
            &view,
            |_, o| {
                seen.push(o);
                true
            },
            false,
            1 << 20,
        )
        .unwrap();
        assert_eq!(seen, vec![100, 101, 102, 103]);
    }

    #[test]
    fn markers_are_left_alone() {
        let marker = brook_protocol::control::encode_marker(
            1,
            0,
            brook_protocol::control::ControlType::Commit,
            0,
            5,
        );
        let view = BatchView::parse_verified(&marker).unwrap();
        assert_eq!(
            retain(&view, |_, _| false, false, 1 << 20).unwrap(),
            Retained::Unchanged
        );
    }
}
