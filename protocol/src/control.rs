//! Transaction markers: the control batches that end a transaction in each of its partitions.
//!
//! A marker is a v2 batch with the control and transactional attribute bits set, the
//! producer id and epoch of the transaction, base sequence -1, and one record:
//!
//! ```text
//! key   (4 bytes): version i16 = 0, type i16 (0 = ABORT, 1 = COMMIT)
//! value (6 bytes): version i16 = 0, coordinator_epoch i32
//! ```
//!
//! as Kafka's `EndTransactionMarker` writes it. Consumers skip control batches; the broker
//! reads them back to know where each transaction ended.

use crate::batch::{BatchView, HEADER_SIZE, MAGIC_V2};
use crate::records::Records;

/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit of a control batch.
pub const CONTROL_FLAG: i16 = 0x20;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// A marker read back from a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// Encodes a marker batch (base offset 0: the log assigns it).
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let mut record = Vec::with_capacity(20);
    record.push(0); // attributes
    record.push(0); // timestamp delta (varlong 0)
    record.push(0); // offset delta (varint 0)
    record.push(zigzag(4));
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&control.code().to_be_bytes());
    record.push(zigzag(6));
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    record.push(0); // no headers
    let body_len = record.len() as i8;

    let mut out = Vec::with_capacity(HEADER_SIZE + 1 + record.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = (HEADER_SIZE - 12 + 1 + record.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    out.extend_from_slice(&(TRANSACTIONAL_FLAG | CONTROL_FLAG).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // records count
    out.push(zigzag(body_len));
    out.extend_from_slice(&record);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The marker a control batch holds; `None` if `view` is not a control batch or its record
/// is not a marker Brook understands.
pub fn parse_marker(view: &BatchView<'_>) -> Option<Marker> {
    if !view.is_control() || view.compression().is_some_and(|c| c.id() != 0) {
        return None;
    }
    let record = Records::new(view.records_data(), view.records_count())
        .next()?
        .ok()?;
    let key = record.key?;
    let value = record.value?;
    let be_i16 =
        |b: &[u8], at: usize| Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?));
    if key.len() < 4 || be_i16(key, 0)? != 0 {
        return None;
    }
    let control = match be_i16(key, 2)? {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    let coordinator_epoch = i32::from_be_bytes(value.get(2..6)?.try_into().ok()?);
    Some(Marker {
        control,
        coordinator_epoch,
    })
}

/// A small non-negative varint (below 64), zigzag encoded in one byte.
fn zigzag(v: i8) -> u8 {
    (v as u8) << 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_control_batch_and_reads_back() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let bytes = encode_marker(42, 7, control, 3, 1_700_000_000_000);
            let view = BatchView::parse_verified(&bytes).unwrap();
            assert_eq!(view.size(), bytes.len());
            assert!(view.is_control() && view.is_transactional());
            assert_eq!((view.producer_id(), view.producer_epoch()), (42, 7));
            assert_eq!((view.base_sequence(), view.records_count()), (-1, 1));
            assert_eq!(view.last_offset_delta(), 0);
            assert_eq!(view.max_timestamp(), 1_700_000_000_000);
            assert_eq!(
                parse_marker(&view),
                Some(Marker {
                    control,
                    coordinator_epoch: 3
                })
            );
        }
    }

    #[test]
    fn marker_bytes_match_kafkas_layout() {
        let bytes = encode_marker(1, 0, ControlType::Commit, 0, 0);
        let view = BatchView::parse_verified(&bytes).unwrap();
        let record = Records::new(view.records_data(), 1)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(record.key, Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(record.value, Some(&[0u8, 0, 0, 0, 0, 0][..]));
        assert_eq!(view.attributes(), 0x30);
    }

    #[test]
    fn data_batches_are_not_markers() {
        let data = crate::batch::testing::simple_batch(0, 2);
        let view = BatchView::parse(&data).unwrap();
        assert_eq!(parse_marker(&view), None);
    }
}
