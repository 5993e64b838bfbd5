//! Individual records inside a (decompressed) v2 batch record section.
//!
//! Used only where a feature needs single records; the produce and fetch paths never decode
//! records.

use thiserror::Error;

/// A record section that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed record at byte {at}: {reason}")]
pub struct RecordError {
    pub at: usize,
    pub reason: &'static str,
}

/// One record, borrowing from the record section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Headers in wire order; duplicate keys are legal and kept.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Iterates over `count` records in an uncompressed record section.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    remaining: i32,
}

impl<'a> Records<'a> {
    pub fn new(buf: &'a [u8], count: i32) -> Self {
        Self {
            buf,
            pos: 0,
            remaining: count.max(0),
        }
    }

    /// Where the next record starts in the section: the bytes between two positions are a
    /// whole record as stored (length prefix included), which a rewriter can copy verbatim.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Skips the next record by its length prefix, without decoding it (to reach one
    /// record of a large batch). False when no record is left or the section is too short.
    pub fn skip_record(&mut self) -> bool {
        if self.remaining == 0 {
            return false;
        }
        // The length varint, decoded in a tight loop: a reader may skip thousands of records
        // to reach one.
        let mut value: u64 = 0;
        let mut shift = 0;
        let mut pos = self.pos;
        let len = loop {
            let Some(&b) = self.buf.get(pos) else {
                self.remaining = 0;
                return false;
            };
            pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break ((value >> 1) as i64) ^ -((value & 1) as i64);
            }
            shift += 7;
            if shift > 28 {
                self.remaining = 0;
                return false;
            }
        };
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                self.pos = end;
                self.remaining -= 1;
                true
            }
            None => {
                self.remaining = 0;
                false
            }
        }
    }

    fn err(&self, reason: &'static str) -> RecordError {
        RecordError {
            at: self.pos,
            reason,
        }
    }

    fn varlong(&mut self) -> Result<i64, RecordError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.err("varint too long"));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(self.err("varint too long"))
    }

    fn varint(&mut self) -> Result<i32, RecordError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| self.err("varint out of range"))
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        let end = self.pos + len as usize;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("field runs past the end of its record"))?;
        self.pos = end;
        Ok(Some(b))
    }

    fn record(&mut self) -> Result<Record<'a>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return Err(self.err("negative record length"));
        }
        let end = self.pos + len as usize;
        if end > self.buf.len() {
            return Err(self.err("record runs past the record section"));
        }
        // The record's fields are read from its own bytes only: a field that claims more than
        // the record length is an error here, not a read into the next record.
        let section = self.buf;
        self.buf = &section[..end];
        let record = self.fields(end);
        self.buf = section;
        record
    }

    /// The fields of a record ending at `end` (`self.buf` ends there too).
    fn fields(&mut self, end: usize) -> Result<Record<'a>, RecordError> {
        let attributes = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.err("empty record"))? as i8;
        self.pos += 1;
        let timestamp_delta = self.varlong()?;
        let offset_delta = self.varint()?;
        let key = self.bytes()?;
        let value = self.bytes()?;
        let count = self.varint()?;
        if count < 0 {
            return Err(self.err("negative header count"));
        }
        // Each header takes at least two bytes: do not reserve from an untrusted count.
        let mut headers = Vec::with_capacity((count as usize).min((end - self.pos) / 2));
        for _ in 0..count {
            let key = self.bytes()?.ok_or_else(|| self.err("null header key"))?;
            let value = self.bytes()?;
            headers.push((key, value));
        }
        if self.pos != end {
            return Err(self.err("record length does not match its fields"));
        }
        Ok(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let r = self.record();
        if r.is_err() {
            self.remaining = 0;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{build_batch, TestRecord};
    use crate::batch::BatchView;

    #[test]
    fn skipping_lands_on_the_next_record() {
        let recs: Vec<TestRecord> = (0..5u8)
            .map(|i| TestRecord {
                key: Some(vec![i]),
                ..TestRecord::default()
            })
            .collect();
        let batch = build_batch(0, &recs);
        let view = BatchView::parse(&batch).unwrap();
        let mut records = Records::new(view.records_data(), view.records_count());
        assert!(records.skip_record() && records.skip_record() && records.skip_record());
        let fourth = records.next().unwrap().unwrap();
        assert_eq!((fourth.offset_delta, fourth.key), (3, Some(&[3u8][..])));
        assert!(records.skip_record());
        assert!(!records.skip_record(), "no record left");
        assert!(records.next().is_none());
    }

    #[test]
    fn decodes_records_with_duplicate_headers() {
        let recs = vec![
            TestRecord {
                key: Some(b"k".to_vec()),
                value: None,
                timestamp_delta: 5,
                headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
            },
            TestRecord {
                key: None,
                value: Some(vec![7; 300]),
                timestamp_delta: -2,
                headers: vec![],
            },
        ];
        let b = build_batch(100, &recs);
        let v = BatchView::parse_verified(&b).unwrap();
        let out: Vec<_> = Records::new(v.records_data(), v.records_count())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key, Some(&b"k"[..]));
        assert_eq!(out[0].value, None);
        assert_eq!(out[0].timestamp_delta, 5);
        assert_eq!(
            out[0].headers,
            vec![(&b"h"[..], Some(&b"1"[..])), (&b"h"[..], None)]
        );
        assert_eq!(out[1].offset_delta, 1);
        assert_eq!(out[1].timestamp_delta, -2);
        assert_eq!(out[1].value.map(|v| v.len()), Some(300));
    }

    #[test]
    fn truncated_sections_are_errors() {
        let b = build_batch(
            0,
            &[TestRecord {
                value: Some(vec![1; 50]),
                ..Default::default()
            }],
        );
        let v = BatchView::parse_verified(&b).unwrap();
        let data = &v.records_data()[..20];
        let r: Vec<_> = Records::new(data, 1).collect();
        assert!(r[0].is_err());
        // A claimed count larger than the data ends in an error, not a panic.
        let r: Vec<_> = Records::new(v.records_data(), 1000).collect();
        assert!(r.last().unwrap().is_err());
    }

    #[test]
    fn fields_longer_than_their_record_are_errors() {
        // Found by the `validate` fuzz target: a record whose length (1) is shorter than its
        // fields, followed by a large header count. Reading past the record's end made
        // `end - pos` underflow (a panic with overflow checks, a reservation of up to 2^31
        // headers without them).
        // Length 1, attributes, timestamp delta 0, offset delta 0, null key, null value, then
        // a header count of i32::MAX.
        let mut section = vec![2u8, 0, 0, 0, 1, 1];
        section.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        section.extend_from_slice(&[0; 16]);
        let r: Vec<_> = Records::new(&section, 1).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
        // A value that runs into the next record is refused too.
        let mut b = build_batch(
            0,
            &[
                TestRecord {
                    value: Some(vec![1; 4]),
                    ..Default::default()
                },
                TestRecord {
                    value: Some(vec![2; 4]),
                    ..Default::default()
                },
            ],
        );
        let v = BatchView::parse(&b).unwrap();
        let at = b.len() - v.records_data().len();
        // First record: len, attrs, ts delta, offset delta, key (-1), value len 4 -> claim 12.
        assert_eq!(b[at + 5], 8);
        b[at + 5] = 24;
        let v = BatchView::parse(&b).unwrap();
        let r: Vec<_> = Records::new(v.records_data(), 2).collect();
        assert!(r[0].is_err(), "{r:?}");
    }
}
