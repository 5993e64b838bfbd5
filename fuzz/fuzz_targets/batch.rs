//! The record-batch header view: `BatchView::parse`, every accessor, `verify_crc`, the
//! `Batches` iterator and the in-place header rewrites (on a copy).
//!
//! Input: one or more concatenated batches, as a produce request or a segment carries them.
//! Checks: no panic (including arithmetic overflow: fuzz builds keep overflow checks on);
//! the iterator accounts for every byte it consumes; a rewrite of a parsed batch leaves a
//! batch that parses, verifies and reads back what was written.
#![no_main]

use brook_protocol::batch::{
    set_base_offset, set_log_append_time, set_max_timestamp, set_partition_leader_epoch,
    total_size, BatchError, BatchView, Batches, Compression, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match BatchView::parse(data) {
        Ok(view) => {
            let size = touch(&view);
            assert_eq!(total_size(data), Some(size));
            rewrites(&data[..size], &view);
        }
        Err(BatchError::Truncated { need, have }) => assert!(have < need && have == data.len()),
        Err(BatchError::LengthTooSmall(len)) => {
            assert!(len < (HEADER_SIZE - LOG_OVERHEAD) as i32)
        }
        Err(BatchError::UnsupportedMagic(m)) => assert_ne!(m, MAGIC_V2),
        Err(e) => panic!("parse returned {e:?}"),
    }
    // parse_verified is parse plus verify_crc.
    match (BatchView::parse(data), BatchView::parse_verified(data)) {
        (Ok(v), Ok(_)) => assert!(v.verify_crc().is_ok()),
        (Ok(v), Err(BatchError::CrcMismatch { .. })) => assert!(v.verify_crc().is_err()),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("parse {a:?} but parse_verified {b:?}"),
    }

    // The rewrites on whatever the input is: true only for a whole batch header.
    let mut raw = data.to_vec();
    let whole = total_size(data).is_some_and(|s| s >= HEADER_SIZE && s <= data.len());
    assert_eq!(set_log_append_time(&mut raw, 1), whole);
    assert_eq!(set_max_timestamp(&mut raw, 2), whole);
    set_base_offset(&mut raw, 3);
    set_partition_leader_epoch(&mut raw, 4);

    let mut batches = Batches::new(data);
    let mut pos = 0;
    for view in batches.by_ref() {
        assert_eq!(view.bytes().as_ptr(), data[pos..].as_ptr());
        pos += touch(&view);
    }
    assert_eq!(batches.position(), pos);
    assert!(pos <= data.len());
    // The iterator stops with a reason exactly when bytes are left over.
    assert_eq!(batches.error().is_some(), pos < data.len());
    assert!(batches.next().is_none());
});

/// Reads every accessor; returns the batch size.
fn touch(view: &BatchView<'_>) -> usize {
    let size = view.size();
    assert_eq!(view.bytes().len(), size);
    assert!(size >= HEADER_SIZE);
    assert_eq!(view.batch_length() as usize + LOG_OVERHEAD, size);
    assert_eq!(view.magic(), MAGIC_V2);
    assert_eq!(view.records_data().len(), size - HEADER_SIZE);
    let _ = (
        view.base_offset(),
        view.partition_leader_epoch(),
        view.crc(),
        view.last_offset_delta(),
        view.last_offset(),
        view.base_timestamp(),
        view.max_timestamp(),
        view.producer_id(),
        view.producer_epoch(),
        view.base_sequence(),
        view.records_count(),
        view.is_log_append_time(),
        view.is_transactional(),
        view.is_control(),
    );
    let codec_id = (view.attributes() & 0x07) as u8;
    match view.compression() {
        Some(c) => {
            assert_eq!(c.id(), codec_id);
            assert_eq!(Compression::from_id(c.id()), Some(c));
        }
        None => assert!(codec_id > 4),
    }
    assert_eq!(view.verify_crc().is_ok(), view.crc() == view.compute_crc());
    size
}

fn rewrites(bytes: &[u8], view: &BatchView<'_>) {
    let ts = view.base_timestamp() ^ 0x5a5a;

    let mut copy = bytes.to_vec();
    assert!(set_log_append_time(&mut copy, ts));
    let v = BatchView::parse_verified(&copy).expect("rewritten batch verifies");
    assert!(v.is_log_append_time());
    assert_eq!(v.max_timestamp(), ts);
    assert_eq!(v.attributes(), view.attributes() | 0x08);
    assert_eq!(v.records_data(), view.records_data());

    let mut copy = bytes.to_vec();
    assert!(set_max_timestamp(&mut copy, ts));
    let v = BatchView::parse_verified(&copy).expect("rewritten batch verifies");
    assert_eq!(v.max_timestamp(), ts);
    assert_eq!(v.attributes(), view.attributes());

    // Base offset and leader epoch lie outside the CRC.
    let mut copy = bytes.to_vec();
    set_base_offset(&mut copy, !view.base_offset());
    set_partition_leader_epoch(&mut copy, !view.partition_leader_epoch());
    let v = BatchView::parse(&copy).expect("rewritten batch parses");
    assert_eq!(v.base_offset(), !view.base_offset());
    assert_eq!(v.partition_leader_epoch(), !view.partition_leader_epoch());
    assert_eq!(v.compute_crc(), view.compute_crc());

    // Rewrites of a buffer too short for a batch are refused, not panics.
    let cut = bytes.len() / 2;
    let mut short = bytes[..cut].to_vec();
    let _ = set_log_append_time(&mut short, ts);
    let _ = set_max_timestamp(&mut short, ts);
    set_base_offset(&mut short, 1);
    set_partition_leader_epoch(&mut short, 1);
}
