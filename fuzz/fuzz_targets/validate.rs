//! Record validation on produce (`validate::check_records`) for every compression codec, and
//! the single-record parser (`records::Records`) as a differential check.
//!
//! Input: a v2 batch. Its length field is set to cover the input and its magic to 2 (the
//! `batch` target fuzzes those), then each codec id 0-7 is forced into the attributes of a
//! copy, so every input reaches every decompressor. The CRC is left as it is: check_records
//! does not read it.
//! Checks: no panic, hang or unbounded allocation (the decompressed size is capped at 1 MiB);
//! the policy sees records in order; a batch that passes has exactly `records_count` records,
//! decompresses within the limit, and `Records` reads the same records from it.
#![no_main]

use std::borrow::Cow;

use brook_protocol::batch::{BatchView, Compression, HEADER_SIZE, LOG_OVERHEAD};
use brook_protocol::compression::decompress;
use brook_protocol::records::Records;
use brook_protocol::validate::{check_records, InvalidRecords, RecordMeta};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1024 * 1024;
const ATTRIBUTES_LOW: usize = 22;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_SIZE {
        // Too short for a batch: the record parser alone, on the bytes as a section.
        let count = data.first().map_or(0, |&c| i32::from(c));
        for r in Records::new(data, count) {
            let _ = r;
        }
        return;
    }
    let mut batch = data.to_vec();
    let Ok(len) = i32::try_from(batch.len() - LOG_OVERHEAD) else {
        return;
    };
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    batch[16] = 2;
    for codec in 0..8u8 {
        batch[ATTRIBUTES_LOW] = (batch[ATTRIBUTES_LOW] & !0x07) | codec;
        let view = BatchView::parse(&batch).expect("a patched header parses");
        one_codec(&view, codec);
    }
});

fn one_codec(view: &BatchView<'_>, codec: u8) {
    let mut metas: Vec<RecordMeta> = Vec::new();
    let result = check_records(view, LIMIT, |m| metas.push(m));
    for (i, m) in metas.iter().enumerate() {
        assert_eq!(m.index as usize, i, "policy sees records in order");
    }
    assert!(metas.len() <= view.records_count().max(0) as usize);

    let compression = Compression::from_id(codec);
    // The whole record section, when the codec can produce it within the limit.
    let section: Option<Cow<'_, [u8]>> = match compression {
        None => None,
        Some(Compression::None) => Some(Cow::Borrowed(view.records_data())),
        Some(c) => decompress(c, view.records_data(), LIMIT)
            .ok()
            .map(Cow::Owned),
    };
    if let Some(section) = &section {
        assert!(section.len() <= LIMIT.max(view.records_data().len()));
        // The laxer record parser never panics on what the codec produced.
        for r in Records::new(section, view.records_count()) {
            let _ = r;
        }
    }

    let checked = match result {
        Ok(checked) => checked,
        Err(InvalidRecords::Batch(_)) if compression.is_none() => return,
        Err(InvalidRecords::TooLarge { limit }) => {
            assert_eq!(limit, LIMIT);
            assert!(!matches!(compression, Some(Compression::None) | None));
            return;
        }
        Err(_) => {
            assert!(compression.is_some());
            return;
        }
    };
    let compression = compression.expect("only known codecs pass");
    assert_eq!(metas.len(), view.records_count().max(0) as usize);
    let max = metas.iter().map(|m| m.timestamp).fold(-1, i64::max);
    assert_eq!(checked.max_timestamp, max);

    let section = section.unwrap_or_else(|| {
        panic!("{compression:?} records passed check_records but do not decompress")
    });
    let records: Vec<_> = Records::new(&section, view.records_count())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("check_records passed, Records failed: {e}"));
    assert_eq!(records.len(), metas.len());
    for (r, m) in records.iter().zip(&metas) {
        assert_eq!(r.attributes, 0);
        assert_eq!(r.offset_delta, m.index);
        assert_eq!(
            view.base_timestamp().checked_add(r.timestamp_delta),
            Some(m.timestamp)
        );
        assert_eq!(r.key.is_some(), m.has_key);
    }
}
