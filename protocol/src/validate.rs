//! Record-level validation of a produced v2 batch, as Kafka's `LogValidator` checks it on
//! produce (and stricter where Kafka's laxness lets consumers skip data silently).
//!
//! Every record is walked: its length, attributes, timestamp and offset deltas, key and value
//! lengths, header count and header lengths, and the varints they are written in. The batch
//! must hold exactly `records_count` records and nothing after them. Compressed batches are
//! checked the same way while streaming through a bounded decompressor (see
//! [`crate::compression::reader`]): no record section is ever held in memory whole, and keys,
//! values and headers are skipped, not copied. Uncompressed batches are checked in place
//! without allocating.
//!
//! What counts as acceptable beyond structure (timestamps in range, keys on compacted topics)
//! is the caller's policy: each record's [`RecordMeta`] is handed to a callback.

use std::io::Read;

use thiserror::Error;

use crate::batch::{BatchView, Compression};
use crate::compression::{self, DecompressError};

/// What the policy callback sees of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Position in the batch (its offset delta).
    pub index: i32,
    /// The record's timestamp: base timestamp plus its delta.
    pub timestamp: i64,
    pub has_key: bool,
    /// How the key and the value start (schema validation reads their schema ids).
    pub key: Head,
    pub value: Head,
    /// Where the record starts in the (decompressed) records section.
    pub start: u64,
    /// Where the key's bytes start in the records section (meaningless without a key).
    pub key_at: u64,
    /// The value of the record's first header named [`EXPECTED_REVISION_HEADER`] (a
    /// conditional append), if it has one: where it starts in the records section and its
    /// length (-1: null).
    pub expected_revision: Option<(u64, i32)>,
}

/// The header that makes a record's append conditional on its key's stream revision.
pub const EXPECTED_REVISION_HEADER: &[u8] = b"brook.expected.revision";

/// The start of a record's key or value: its length (-1: null) and its first bytes, up to
/// five (Confluent's wire format puts a magic byte 0 and a 4-byte schema id there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    pub len: i32,
    pub bytes: [u8; 5],
}

impl Head {
    /// The schema id of a value in Confluent's wire format (magic byte 0, then the id).
    pub fn schema_id(&self) -> Option<i32> {
        let [magic, a, b, c, d] = self.bytes;
        (self.len >= 5 && magic == 0).then(|| i32::from_be_bytes([a, b, c, d]))
    }
}

/// What a valid batch's records add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The largest record timestamp (the batch header's max timestamp should say the same).
    pub max_timestamp: i64,
}

/// Why a batch's records are invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidRecords {
    /// Record `index` does not parse; nothing after it was read.
    #[error("record {index} is invalid: {reason}")]
    Record { index: i32, reason: String },
    /// The batch as a whole does not add up (count, trailing bytes).
    #[error("{0}")]
    Batch(String),
    #[error("the records decompress to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the compressed records are corrupt: {0}")]
    Corrupt(String),
}

/// Walks every record of `view`, handing each to `policy`. `max_decompressed` bounds the
/// decompressed size of a compressed batch's records.
pub fn check_records(
    view: &BatchView<'_>,
    max_decompressed: usize,
    policy: impl FnMut(RecordMeta),
) -> Result<Checked, InvalidRecords> {
    let codec = view.compression().ok_or_else(|| {
        InvalidRecords::Batch("unknown compression codec in the batch attributes".into())
    })?;
    let data = view.records_data();
    match codec {
        Compression::None => walk(view, &mut SliceSource { buf: data, pos: 0 }, policy),
        codec => {
            let reader =
                compression::reader(codec, data, max_decompressed).map_err(|e| match e {
                    DecompressError::TooLarge { limit } => InvalidRecords::TooLarge { limit },
                    other => InvalidRecords::Corrupt(other.to_string()),
                })?;
            let mut source = StreamSource::new(reader, codec);
            walk(view, &mut source, policy)
        }
    }
}

/// Why reading stopped.
enum Stop {
    /// The data ended.
    End,
    /// The decompressor failed or passed its limit.
    Failed(InvalidRecords),
}

/// Bytes to check, from a slice or a decompressing stream. Monomorphized, so the slice case
/// compiles to plain bounds-checked reads.
trait Source {
    fn byte(&mut self) -> Result<u8, Stop>;
    fn skip(&mut self, n: usize) -> Result<(), Stop>;
    /// Bytes consumed so far.
    fn consumed(&self) -> u64;
    fn at_end(&mut self) -> Result<bool, Stop>;
}

struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.buf.get(self.pos).ok_or(Stop::End)?;
        self.pos += 1;
        Ok(b)
    }
    #[inline]
    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        if self.buf.len() - self.pos < n {
            self.pos = self.buf.len();
            return Err(Stop::End);
        }
        self.pos += n;
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.pos as u64
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        Ok(self.pos == self.buf.len())
    }
}

/// Streams a decompressor through a small buffer.
struct StreamSource<R> {
    reader: R,
    codec: Compression,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    consumed: u64,
}

const STREAM_BUFFER: usize = 16 * 1024;

impl<R: Read> StreamSource<R> {
    fn new(reader: R, codec: Compression) -> Self {
        Self {
            reader,
            codec,
            buf: vec![0u8; STREAM_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            consumed: 0,
        }
    }

    /// Refills the buffer; `End` when the stream is exhausted.
    fn fill(&mut self) -> Result<(), Stop> {
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Err(Stop::End),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Stop::Failed(match compression::classify(self.codec, &e) {
                        DecompressError::TooLarge { limit } => InvalidRecords::TooLarge { limit },
                        other => InvalidRecords::Corrupt(other.to_string()),
                    }))
                }
            }
        }
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, Stop> {
        if self.start == self.end {
            self.fill()?;
        }
        let b = self.buf[self.start];
        self.start += 1;
        self.consumed += 1;
        Ok(b)
    }
    fn skip(&mut self, mut n: usize) -> Result<(), Stop> {
        while n > 0 {
            if self.start == self.end {
                self.fill()?;
            }
            let step = n.min(self.end - self.start);
            self.start += step;
            self.consumed += step as u64;
            n -= step;
        }
        Ok(())
    }
    fn consumed(&self) -> u64 {
        self.consumed
    }
    fn at_end(&mut self) -> Result<bool, Stop> {
        if self.start < self.end {
            return Ok(false);
        }
        match self.fill() {
            Ok(()) => Ok(false),
            Err(Stop::End) => Ok(true),
            Err(failed) => Err(failed),
        }
    }
}

/// A problem inside one record, before it is tied to the record's index.
enum Problem {
    Stop(Stop),
    Invalid(String),
}

impl From<Stop> for Problem {
    fn from(s: Stop) -> Self {
        Problem::Stop(s)
    }
}

fn invalid<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Invalid(reason.into()))
}

/// An unsigned varint of at most `bits` bits: 7 bits a byte, and the last byte may not carry
/// more than the bits left (so nothing overflows silently).
#[inline]
fn unsigned_varint(s: &mut impl Source, bits: u32, what: &str) -> Result<u64, Problem> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let b = s.byte()?;
        if bits - shift < 7 && u32::from(b) >> (bits - shift) != 0 {
            return invalid(format!("a {what} is longer than {bits} bits"));
        }
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift >= bits {
            return invalid(format!("a {what} is longer than {bits} bits"));
        }
    }
}

/// A zigzag-encoded 64-bit varint.
#[inline]
fn varlong(s: &mut impl Source) -> Result<i64, Problem> {
    let v = unsigned_varint(s, 64, "varlong")?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// A zigzag-encoded 32-bit varint.
#[inline]
fn varint(s: &mut impl Source) -> Result<i32, Problem> {
    let v = unsigned_varint(s, 32, "varint")? as u32;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Skips a nullable length (-1 is null) and the bytes it covers; where they start and the
/// length.
#[inline]
fn skip_bytes(s: &mut impl Source, what: &str) -> Result<(u64, i32), Problem> {
    let len = varint(s)?;
    if len < -1 {
        return invalid(format!("{what} length {len} is below -1"));
    }
    let at = s.consumed();
    if len >= 0 {
        s.skip(len as usize)?;
    }
    Ok((at, len))
}

/// Reads a key or value's length and first bytes ([`Head`]), skipping the rest; and where
/// its bytes start.
fn head(s: &mut impl Source, what: &str) -> Result<(Head, u64), Problem> {
    let len = varint(s)?;
    if len < -1 {
        return invalid(format!("{what} length {len} is below -1"));
    }
    let at = s.consumed();
    let mut head = Head { len, bytes: [0; 5] };
    let len = usize::try_from(len).unwrap_or(0);
    let first = len.min(head.bytes.len());
    for b in head.bytes.iter_mut().take(first) {
        *b = s.byte()?;
    }
    s.skip(len - first)?;
    Ok((head, at))
}

/// One record, from its length varint to its last header.
#[inline]
fn record(s: &mut impl Source, index: i32, base_timestamp: i64) -> Result<RecordMeta, Problem> {
    let record_at = s.consumed();
    let len = varint(s)?;
    if len < 0 {
        return invalid(format!("record length {len} is negative"));
    }
    let start = s.consumed();
    let attributes = s.byte()?;
    if attributes != 0 {
        return invalid(format!(
            "record attributes are {attributes:#04x}; v2 records define none"
        ));
    }
    let timestamp_delta = varlong(s)?;
    let timestamp = base_timestamp
        .checked_add(timestamp_delta)
        .ok_or(())
        .or_else(|()| invalid(format!("timestamp delta {timestamp_delta} overflows")))?;
    let offset_delta = varint(s)?;
    if offset_delta != index {
        return invalid(format!(
            "offset delta {offset_delta}, but it is record {index} of the batch"
        ));
    }
    let (key, key_at) = head(s, "key")?;
    let (value, _) = head(s, "value")?;
    let headers = varint(s)?;
    if headers < 0 {
        return invalid(format!("header count {headers} is negative"));
    }
    let len = u64::from(len.unsigned_abs());
    let mut expected_revision = None;
    for _ in 0..headers {
        let key = varint(s)?;
        if key < 0 {
            return invalid(format!("header key length {key} is negative"));
        }
        let mut same = false;
        if key as usize == EXPECTED_REVISION_HEADER.len() {
            same = true;
            for expected in EXPECTED_REVISION_HEADER {
                same &= s.byte()? == *expected;
            }
        } else {
            s.skip(key as usize)?;
        }
        let value = skip_bytes(s, "header value")?;
        if same && expected_revision.is_none() {
            expected_revision = Some(value);
        }
        // Each header takes at least two bytes: a lying count ends here, not after 2^31 turns.
        if s.consumed() - start > len {
            break;
        }
    }
    let read = s.consumed() - start;
    if read != len {
        return invalid(format!(
            "record length {len} does not match its fields ({read} bytes)"
        ));
    }
    Ok(RecordMeta {
        index,
        timestamp,
        has_key: key.len >= 0,
        key,
        value,
        start: record_at,
        key_at,
        expected_revision,
    })
}

fn walk(
    view: &BatchView<'_>,
    s: &mut impl Source,
    mut policy: impl FnMut(RecordMeta),
) -> Result<Checked, InvalidRecords> {
    let count = view.records_count();
    let base_timestamp = view.base_timestamp();
    let mut max_timestamp = -1;
    for index in 0..count {
        let before = s.consumed();
        match record(s, index, base_timestamp) {
            Ok(meta) => {
                max_timestamp = max_timestamp.max(meta.timestamp);
                policy(meta);
            }
            Err(Problem::Invalid(reason)) => return Err(InvalidRecords::Record { index, reason }),
            Err(Problem::Stop(Stop::Failed(e))) => return Err(e),
            Err(Problem::Stop(Stop::End)) if s.consumed() > before => {
                return Err(InvalidRecords::Record {
                    index,
                    reason: "the batch's data ends inside this record".into(),
                })
            }
            Err(Problem::Stop(Stop::End)) => {
                return Err(InvalidRecords::Batch(format!(
                    "the batch declares {count} records but holds {index}"
                )))
            }
        }
    }
    match s.at_end() {
        Ok(true) => Ok(Checked { max_timestamp }),
        Ok(false) => Err(InvalidRecords::Batch(format!(
            "bytes follow the last of the {count} declared records"
        ))),
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::End) => Ok(Checked { max_timestamp }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{build_batch, simple_batch, varlong as zigzag, TestRecord};
    use crate::batch::{BatchView, HEADER_SIZE};

    fn check(bytes: &[u8]) -> Result<Checked, InvalidRecords> {
        let view = BatchView::parse(bytes).unwrap();
        check_records(&view, 1 << 20, |_| {})
    }

    /// Replaces the record section (and the count) of a batch built by the test builder.
    fn with_records(count: i32, section: &[u8]) -> Vec<u8> {
        let mut b = build_batch(0, &[]);
        b.truncate(HEADER_SIZE);
        b.extend_from_slice(section);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b
    }

    /// A record from raw fields: attributes, ts delta, offset delta, key len, value len,
    /// header count; the length prefix is computed unless `len` is given.
    fn raw_record(fields: &[&[u8]], len: Option<i64>) -> Vec<u8> {
        let body: Vec<u8> = fields.concat();
        let mut out = zigzag(len.unwrap_or(body.len() as i64));
        out.extend(body);
        out
    }

    #[test]
    fn well_formed_batches_pass_and_report_timestamps() {
        let b = simple_batch(1_000, 5);
        let mut seen = Vec::new();
        let view = BatchView::parse(&b).unwrap();
        let c = check_records(&view, 1 << 20, |m| seen.push(m)).unwrap();
        assert_eq!(c.max_timestamp, 1_004);
        assert_eq!(seen.len(), 5);
        assert_eq!(
            seen[2],
            RecordMeta {
                index: 2,
                timestamp: 1_002,
                has_key: true,
                key: Head {
                    len: 5,
                    bytes: *b"key-2",
                },
                value: Head {
                    len: 7,
                    bytes: *b"value",
                },
                start: seen[2].start,
                // Length, attributes, timestamp delta, offset delta, key length: a byte each.
                key_at: seen[2].start + 5,
                expected_revision: None,
            }
        );
        // Positions are into the records section: each record's key is where it says.
        let section = view.records_data();
        for m in &seen {
            let key = &section[m.key_at as usize..m.key_at as usize + m.key.len as usize];
            assert_eq!(key, format!("key-{}", m.index).as_bytes());
        }
        // The conditional-append header is spotted whatever else the record carries; a
        // header of the same length but another name is not it.
        let conditional = build_batch(
            0,
            &[
                TestRecord {
                    key: Some(b"loan-1".to_vec()),
                    headers: vec![
                        ("a".into(), None),
                        ("brook.expected.revision".into(), Some(b"3".to_vec())),
                    ],
                    ..TestRecord::default()
                },
                TestRecord {
                    key: Some(b"loan-1".to_vec()),
                    headers: vec![("brook.expected.revisioN".into(), Some(b"3".to_vec()))],
                    ..TestRecord::default()
                },
            ],
        );
        let mut flags = Vec::new();
        let view = BatchView::parse(&conditional).unwrap();
        check_records(&view, 1 << 20, |m| flags.push(m.expected_revision)).unwrap();
        let (at, len) = flags[0].unwrap();
        assert_eq!(&view.records_data()[at as usize..][..len as usize], b"3");
        assert_eq!(flags[1], None);
        // Confluent's wire format: magic byte 0, a big-endian schema id, the payload.
        let framed = build_batch(
            0,
            &[TestRecord {
                key: Some(vec![1]),
                value: Some(vec![0, 0, 0, 1, 2, 42, 42]),
                ..TestRecord::default()
            }],
        );
        let mut heads = Vec::new();
        let view = BatchView::parse(&framed).unwrap();
        check_records(&view, 1 << 20, |m| heads.push((m.key, m.value))).unwrap();
        assert_eq!(heads[0].1.schema_id(), Some(258));
        assert_eq!(heads[0].0.schema_id(), None, "one byte is not a framed key");
        let headers = build_batch(
            7,
            &[TestRecord {
                key: None,
                value: None,
                timestamp_delta: -3,
                headers: vec![("h".into(), None), ("h".into(), Some(vec![1; 300]))],
            }],
        );
        assert_eq!(check(&headers).unwrap().max_timestamp, 4);
    }

    #[test]
    fn key_positions_hold_for_overlong_length_varints() {
        // Key length 3 written in two bytes (0x86 0x00): legal, and the key starts after both.
        let record = raw_record(
            &[
                &[0],
                &zigzag(0),
                &zigzag(0),
                &[0x86, 0x00],
                b"abc",
                &zigzag(-1),
                &zigzag(0),
            ],
            None,
        );
        let b = with_records(1, &record);
        let view = BatchView::parse(&b).unwrap();
        let mut seen = Vec::new();
        check_records(&view, 1 << 20, |m| seen.push(m)).unwrap();
        let at = seen[0].key_at as usize;
        assert_eq!(seen[0].start, 0);
        assert_eq!(&view.records_data()[at..at + 3], b"abc");
    }

    #[test]
    fn lying_records_are_refused() {
        let ok = |offset: i64| -> Vec<u8> {
            raw_record(
                &[
                    &[0],
                    &zigzag(0),
                    &zigzag(offset),
                    &zigzag(-1),
                    &zigzag(1),
                    b"v",
                    &zigzag(0),
                ],
                None,
            )
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "key length -5",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-5),
                        &zigzag(-1),
                        &zigzag(0),
                    ],
                    None,
                ),
            ),
            (
                "header count -1",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(-1),
                    ],
                    None,
                ),
            ),
            (
                "header count 2^31-1",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(i64::from(i32::MAX)),
                        &[0, 0, 0, 0],
                    ],
                    None,
                ),
            ),
            (
                "attributes",
                raw_record(
                    &[
                        &[1],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(0),
                    ],
                    None,
                ),
            ),
            ("offset delta 5", ok(5)),
            (
                "varint overflow",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &[0xff, 0xff, 0xff, 0xff, 0x7f],
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(0),
                    ],
                    None,
                ),
            ),
            (
                "length too long",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(0),
                        &[0],
                    ],
                    Some(5),
                ),
            ),
            (
                "negative length",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(0),
                    ],
                    Some(-3),
                ),
            ),
            (
                "value past the end",
                raw_record(
                    &[
                        &[0],
                        &zigzag(0),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(50),
                        b"abc",
                        &zigzag(0),
                    ],
                    None,
                ),
            ),
            (
                "timestamp overflow",
                raw_record(
                    &[
                        &[0],
                        &zigzag(i64::MAX),
                        &zigzag(0),
                        &zigzag(-1),
                        &zigzag(-1),
                        &zigzag(0),
                    ],
                    None,
                ),
            ),
        ];
        for (what, rec) in cases {
            let mut b = with_records(1, &rec);
            if what == "timestamp overflow" {
                b[27..35].copy_from_slice(&10i64.to_be_bytes());
            }
            assert!(
                matches!(check(&b), Err(InvalidRecords::Record { index: 0, .. })),
                "{what}: {:?}",
                check(&b)
            );
        }
        // Count larger than the records present, and bytes after the last record.
        let two = [ok(0), ok(1)].concat();
        assert!(check(&with_records(2, &two)).is_ok());
        assert!(matches!(
            check(&with_records(3, &two)),
            Err(InvalidRecords::Batch(_))
        ));
        assert!(check(&with_records(i32::MAX, &two)).is_err());
        assert!(matches!(
            check(&with_records(1, &two)),
            Err(InvalidRecords::Batch(_))
        ));
    }

    #[test]
    fn varints_decode_their_full_range_and_refuse_overflow() {
        let read32 = |bytes: &[u8]| varint(&mut SliceSource { buf: bytes, pos: 0 }).ok();
        let read64 = |bytes: &[u8]| varlong(&mut SliceSource { buf: bytes, pos: 0 }).ok();
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ] {
            assert_eq!(read32(&zigzag(v)), Some(v as i32), "{v}");
        }
        for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(read64(&zigzag(v)), Some(v), "{v}");
        }
        // Too wide for 32 bits, and a continuation bit on the last possible byte.
        assert_eq!(read32(&zigzag(i64::from(i32::MAX) + 1)), None);
        assert_eq!(read32(&[0xff, 0xff, 0xff, 0xff, 0x10]), None);
        assert_eq!(read32(&[0xff, 0xff, 0xff, 0xff, 0x8f, 0x01]), None);
        assert_eq!(read64(&[0xff; 10]), None);
        assert_eq!(
            read64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(read32(&[0x80]), None, "truncated");
    }

    #[test]
    fn compressed_batches_are_checked_and_bounded() {
        let plain = simple_batch(10, 50);
        let view = BatchView::parse(&plain).unwrap();
        let section = view.records_data();
        let zstd = zstd::encode_all(section, 1).unwrap();
        let mut b = plain[..HEADER_SIZE].to_vec();
        b.extend_from_slice(&zstd);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&4i16.to_be_bytes());
        let v = BatchView::parse(&b).unwrap();
        assert_eq!(
            check_records(&v, 1 << 20, |_| {}).unwrap().max_timestamp,
            59
        );
        assert!(matches!(
            check_records(&v, 100, |_| {}),
            Err(InvalidRecords::TooLarge { limit: 100 })
        ));
        // A bomb: 64 MiB of zeros in a few KB; refused at the limit, never held in memory.
        let bomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
        assert!(bomb.len() < 16 * 1024);
        let mut bb = plain[..HEADER_SIZE].to_vec();
        bb.extend_from_slice(&bomb);
        let len = (bb.len() - 12) as i32;
        bb[8..12].copy_from_slice(&len.to_be_bytes());
        bb[21..23].copy_from_slice(&4i16.to_be_bytes());
        let v = BatchView::parse(&bb).unwrap();
        assert!(check_records(&v, 1 << 20, |_| {}).is_err());
        // Garbage that is not zstd at all.
        let mut garbage = plain[..HEADER_SIZE].to_vec();
        garbage.extend_from_slice(&[0xde; 100]);
        let len = (garbage.len() - 12) as i32;
        garbage[8..12].copy_from_slice(&len.to_be_bytes());
        for codec in 1..=4i16 {
            garbage[21..23].copy_from_slice(&codec.to_be_bytes());
            let v = BatchView::parse(&garbage).unwrap();
            assert!(check_records(&v, 1 << 20, |_| {}).is_err(), "codec {codec}");
        }
    }
}
