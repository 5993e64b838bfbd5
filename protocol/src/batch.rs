//! A read-only view of Kafka record batches (magic v2) that never decompresses.
//!
//! Layout of the batch header (all integers big-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset
//!      8     4  batch_length            (bytes after this field)
//!     12     4  partition_leader_epoch
//!     16     1  magic                   (2)
//!     17     4  crc                     (CRC32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  records_count
//!     61     -  records (possibly compressed)
//! ```
//!
//! Base offset and partition leader epoch lie outside the CRC, so a broker can rewrite them
//! with [`set_base_offset`] and [`set_partition_leader_epoch`] without recomputing it.

use thiserror::Error;

/// Size of the fixed v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batch_length` ends: base offset (8) + batch length (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only record batch format Brook stores.
pub const MAGIC_V2: i8 = 2;

const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

/// Why a byte range is not a valid record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("batch length {0} is below the v2 header size")]
    LengthTooSmall(i32),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid batch: {0}")]
    Invalid(&'static str),
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Decodes the codec id; `None` for ids Kafka does not define (5-7).
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            _ => return None,
        })
    }

    /// The id stored in the attributes.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// Length of the batch at the start of `buf`, header included, read from `batch_length`.
///
/// Returns `None` if fewer than [`LOG_OVERHEAD`] bytes are present or the length is negative.
pub fn total_size(buf: &[u8]) -> Option<usize> {
    let len = read_i32(buf, BATCH_LENGTH_OFFSET)?;
    usize::try_from(len).ok().map(|l| l + LOG_OVERHEAD)
}

/// A validated view of one v2 record batch, borrowing exactly its bytes.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Parses the batch at the start of `buf`: checks that the whole batch is present, its
    /// length covers a header and its magic is 2. Does not check the CRC (see
    /// [`BatchView::verify_crc`]). The view covers only this batch; trailing bytes are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                need: HEADER_SIZE,
                have: buf.len(),
            });
        }
        let len = read_i32(buf, BATCH_LENGTH_OFFSET).unwrap_or(-1);
        if len < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::LengthTooSmall(len));
        }
        let total = len as usize + LOG_OVERHEAD;
        if buf.len() < total {
            return Err(BatchError::Truncated {
                need: total,
                have: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(Self {
            bytes: &buf[..total],
        })
    }

    /// Parses and verifies the CRC in one step.
    pub fn parse_verified(buf: &'a [u8]) -> Result<Self, BatchError> {
        let view = Self::parse(buf)?;
        view.verify_crc()?;
        Ok(view)
    }

    /// The batch's bytes, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total size in bytes, header included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn base_offset(&self) -> i64 {
        self.i64_at(0)
    }
    pub fn batch_length(&self) -> i32 {
        self.i32_at(BATCH_LENGTH_OFFSET)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        self.i32_at(LEADER_EPOCH_OFFSET)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }
    pub fn crc(&self) -> u32 {
        self.i32_at(CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes([
            self.bytes[ATTRIBUTES_OFFSET],
            self.bytes[ATTRIBUTES_OFFSET + 1],
        ])
    }
    pub fn last_offset_delta(&self) -> i32 {
        self.i32_at(LAST_OFFSET_DELTA_OFFSET)
    }
    /// Offset of the last record: `base_offset + last_offset_delta`, saturating at the ends of
    /// the `i64` range (both fields are untrusted bytes; a corrupt or hostile batch must not
    /// make the sum overflow).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    pub fn base_timestamp(&self) -> i64 {
        self.i64_at(BASE_TIMESTAMP_OFFSET)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.i64_at(MAX_TIMESTAMP_OFFSET)
    }
    pub fn producer_id(&self) -> i64 {
        self.i64_at(PRODUCER_ID_OFFSET)
    }
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes([
            self.bytes[PRODUCER_EPOCH_OFFSET],
            self.bytes[PRODUCER_EPOCH_OFFSET + 1],
        ])
    }
    pub fn base_sequence(&self) -> i32 {
        self.i32_at(BASE_SEQUENCE_OFFSET)
    }
    pub fn records_count(&self) -> i32 {
        self.i32_at(RECORDS_COUNT_OFFSET)
    }
    /// The codec id from the attributes; `None` for undefined ids.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id((self.attributes() & 0x07) as u8)
    }
    /// True when timestamps are LogAppendTime rather than CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    /// The record section, still compressed if the batch is.
    pub fn records_data(&self) -> &'a [u8] {
        &self.bytes[HEADER_SIZE..]
    }

    /// The CRC32C over attributes..end, as it should be stored.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    /// Checks the stored CRC against the batch contents.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let stored = self.crc();
        let computed = self.compute_crc();
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { stored, computed })
        }
    }

    fn i32_at(&self, at: usize) -> i32 {
        read_i32(self.bytes, at).unwrap_or_default()
    }
    fn i64_at(&self, at: usize) -> i64 {
        read_i64(self.bytes, at).unwrap_or_default()
    }
}

/// Rewrites the base offset of the batch at the start of `buf` (outside the CRC).
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    if let Some(dst) = buf.get_mut(0..8) {
        dst.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites the partition leader epoch of the batch at the start of `buf` (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    if let Some(dst) = buf.get_mut(LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4) {
        dst.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Marks the batch at the start of `buf` as LogAppendTime with `timestamp` as its max timestamp,
/// and recomputes the CRC (both fields are inside it). Returns false if `buf` holds no whole
/// batch header.
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) -> bool {
    rewrite_max_timestamp(buf, timestamp, 0x08)
}

/// Sets the max timestamp of the batch at the start of `buf` (for a batch whose header does
/// not match its records) and recomputes the CRC. Returns false if `buf` holds no whole batch.
pub fn set_max_timestamp(buf: &mut [u8], timestamp: i64) -> bool {
    rewrite_max_timestamp(buf, timestamp, 0)
}

/// Writes the max timestamp, ORs `attribute_bits` into the attributes, and reseals the CRC.
fn rewrite_max_timestamp(buf: &mut [u8], timestamp: i64, attribute_bits: i16) -> bool {
    let Some(size) = total_size(buf).filter(|s| *s >= HEADER_SIZE && *s <= buf.len()) else {
        return false;
    };
    let attributes =
        i16::from_be_bytes([buf[ATTRIBUTES_OFFSET], buf[ATTRIBUTES_OFFSET + 1]]) | attribute_bits;
    buf[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..size]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    true
}

/// Iterates over the whole, structurally valid batches in `buf`, in order.
///
/// Stops (without error) at the first position where no complete batch can be parsed; use
/// [`Batches::position`] to learn how many bytes were consumed. CRCs are not checked.
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    error: Option<BatchError>,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            error: None,
        }
    }
    /// Bytes consumed by the batches returned so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Why iteration stopped early, if it did (none when `buf` ended exactly on a batch).
    pub fn error(&self) -> Option<&BatchError> {
        self.error.as_ref()
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = BatchView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() || self.error.is_some() {
            return None;
        }
        match BatchView::parse(rest) {
            Ok(view) => {
                self.pos += view.size();
                Some(view)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// One record to encode with [`encode_batch`].
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_delta: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Encodes an uncompressed v2 batch with base offset 0 and a correct CRC.
pub fn encode_batch(base_timestamp: i64, records: &[NewRecord]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        encode_record(
            &mut body,
            r.timestamp_delta,
            i as i64,
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())),
        );
    }
    let max_ts = records
        .iter()
        .map(|r| base_timestamp + r.timestamp_delta)
        .max()
        .unwrap_or(base_timestamp);
    let mut b = Vec::with_capacity(HEADER_SIZE + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(records.len().saturating_sub(1) as i32).to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends one v2 record (its length prefix first) to a record section.
pub fn encode_record<'a>(
    out: &mut Vec<u8>,
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) {
    let mut rec =
        Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
    rec.push(0u8); // attributes (unused in v2)
    put_varlong(&mut rec, timestamp_delta);
    put_varlong(&mut rec, offset_delta);
    put_bytes(&mut rec, key);
    put_bytes(&mut rec, value);
    put_varlong(&mut rec, headers.len() as i64);
    for (k, v) in headers {
        put_bytes(&mut rec, Some(k));
        put_bytes(&mut rec, v);
    }
    put_varlong(out, rec.len() as i64);
    out.extend_from_slice(&rec);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Builders for well-formed batches, used by tests across the workspace.
pub mod testing {
    use super::*;

    pub use super::{encode_batch as build_batch, NewRecord as TestRecord};

    /// A record with `key` and `value`, and the `brook.expected.revision` header when
    /// `expected` is given (a conditional append).
    pub fn conditional_record(key: &str, value: &[u8], expected: Option<&str>) -> TestRecord {
        TestRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.to_vec()),
            timestamp_delta: 0,
            headers: expected
                .map(|e| {
                    let name = String::from_utf8_lossy(crate::validate::EXPECTED_REVISION_HEADER);
                    vec![(name.into_owned(), Some(e.as_bytes().to_vec()))]
                })
                .unwrap_or_default(),
        }
    }

    /// `plain` (an uncompressed batch) with its records section compressed with `codec`, the
    /// attributes and the CRC set to match.
    pub fn compressed(plain: &[u8], codec: Compression) -> Vec<u8> {
        let Ok(view) = BatchView::parse(plain) else {
            panic!("not a well-formed test batch");
        };
        let Ok(section) = crate::compression::compress(codec, view.records_data()) else {
            panic!("test records do not compress with {codec:?}");
        };
        let mut b = plain[..HEADER_SIZE].to_vec();
        b.extend_from_slice(&section);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&i16::from(codec.id()).to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch of `n` records with values `value-<i>` and timestamps `base_timestamp + i`.
    pub fn simple_batch(base_timestamp: i64, n: usize) -> Vec<u8> {
        let records: Vec<TestRecord> = (0..n)
            .map(|i| TestRecord {
                key: Some(format!("key-{i}").into_bytes()),
                value: Some(format!("value-{i}").into_bytes()),
                timestamp_delta: i as i64,
                headers: Vec::new(),
            })
            .collect();
        build_batch(base_timestamp, &records)
    }

    /// Makes a test batch one of `producer_id` at `epoch` starting at `base_sequence`,
    /// transactional or not, with its CRC recomputed.
    pub fn set_producer(
        batch: &mut [u8],
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) {
        let attributes =
            i16::from_be_bytes([batch[ATTRIBUTES_OFFSET], batch[ATTRIBUTES_OFFSET + 1]]);
        let attributes = if transactional {
            attributes | 0x10
        } else {
            attributes & !0x10
        };
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8]
            .copy_from_slice(&producer_id.to_be_bytes());
        batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
            .copy_from_slice(&epoch.to_be_bytes());
        batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
            .copy_from_slice(&base_sequence.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// `v` as a zigzag varint, the way records encode lengths and deltas (for tests that
    /// build malformed records by hand).
    pub fn varlong(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn parses_header_fields() {
        let b = simple_batch(1_000, 3);
        let v = BatchView::parse_verified(&b).unwrap();
        assert_eq!(v.base_offset(), 0);
        assert_eq!(v.size(), b.len());
        assert_eq!(v.magic(), 2);
        assert_eq!(v.last_offset_delta(), 2);
        assert_eq!(v.records_count(), 3);
        assert_eq!(v.base_timestamp(), 1_000);
        assert_eq!(v.max_timestamp(), 1_002);
        assert_eq!(v.producer_id(), -1);
        assert_eq!(v.producer_epoch(), -1);
        assert_eq!(v.base_sequence(), -1);
        assert_eq!(v.compression(), Some(Compression::None));
        assert!(!v.is_transactional() && !v.is_control() && !v.is_log_append_time());
    }

    #[test]
    fn base_offset_and_epoch_are_outside_the_crc() {
        let mut b = simple_batch(5, 2);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let v = BatchView::parse_verified(&b).unwrap();
        assert_eq!(v.base_offset(), 42);
        assert_eq!(v.last_offset(), 43);
        assert_eq!(v.partition_leader_epoch(), 7);
    }

    #[test]
    fn last_offset_saturates_instead_of_overflowing() {
        // Found by the `batch` fuzz target: base offset near i64::MAX plus a positive delta.
        let mut b = simple_batch(5, 2);
        set_base_offset(&mut b, i64::MAX - 1);
        assert_eq!(BatchView::parse(&b).unwrap().last_offset(), i64::MAX);
        set_base_offset(&mut b, i64::MIN);
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(BatchView::parse(&b).unwrap().last_offset(), i64::MIN);
    }

    #[test]
    fn log_append_time_rewrites_and_reseals() {
        let mut b = simple_batch(5, 2);
        assert!(set_log_append_time(&mut b, 99));
        let v = BatchView::parse_verified(&b).unwrap();
        assert!(v.is_log_append_time());
        assert_eq!(v.max_timestamp(), 99);
        assert!(!set_log_append_time(&mut b[..20], 1));
        let mut c = simple_batch(5, 2);
        assert!(set_max_timestamp(&mut c, 77));
        let v = BatchView::parse_verified(&c).unwrap();
        assert!(!v.is_log_append_time());
        assert_eq!(v.max_timestamp(), 77);
    }

    #[test]
    fn detects_corruption() {
        let mut b = simple_batch(5, 2);
        let last = b.len() - 1;
        b[last] ^= 0x01;
        assert!(matches!(
            BatchView::parse_verified(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn rejects_truncated_short_and_wrong_magic() {
        let b = simple_batch(5, 2);
        assert!(matches!(
            BatchView::parse(&b[..30]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            BatchView::parse(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut short = b.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            BatchView::parse(&short).unwrap_err(),
            BatchError::LengthTooSmall(10)
        );
        let mut magic = b.clone();
        magic[16] = 1;
        assert_eq!(
            BatchView::parse(&magic).unwrap_err(),
            BatchError::UnsupportedMagic(1)
        );
    }

    #[test]
    fn iterates_batches_and_stops_at_a_torn_tail() {
        let mut buf = simple_batch(1, 1);
        let first = buf.len();
        buf.extend(simple_batch(2, 4));
        let whole = buf.len();
        buf.extend(&simple_batch(3, 2)[..20]);
        let mut it = Batches::new(&buf);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.position(), whole);
        assert!(matches!(it.error(), Some(BatchError::Truncated { .. })));
        assert_eq!(total_size(&buf), Some(first));
    }
}
