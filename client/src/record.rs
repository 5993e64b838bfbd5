//! Records as users see them, and their v2 record-batch encoding and decoding.
//!
//! The producer appends records to a [`BatchBuilder`] as they arrive (each encoded once,
//! into the batch's record section) and seals the batch with its producer id, epoch, base
//! sequence and compression when it leaves. The consumer turns fetched record sets back
//! into [`ConsumerRecord`]s with [`decode_records`], skipping control batches, and with
//! `read_committed` the batches of aborted transactions.

use bytes::Bytes;

pub use brook_protocol::batch::Compression;
use brook_protocol::batch::{BatchView, Batches};
use brook_protocol::records::Records;

use crate::ClientError;

/// A record header: a name and an optional value (Kafka allows duplicates; order is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// The partition; `None` lets the partitioner choose (by key, as Java's client does).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` is the time of the send.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record of `value` for `topic`, without a key.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// With `key` (records of one key go to one partition, in order).
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// To `partition`, whatever the key.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// With a timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Bytes the record takes in a batch at most (for batch-size accounting).
    pub(crate) fn size_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 30
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch: the producer's time, or the broker's for topics with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Size of a v2 batch header (offset through record count).
const HEADER_SIZE: usize = 61;
const ATTRIBUTES_OFFSET: usize = 21;
const CRC_OFFSET: usize = 17;
const TRANSACTIONAL: i16 = 0x10;

/// The records of one batch being gathered (see the module docs).
#[derive(Debug)]
pub(crate) struct BatchBuilder {
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    section: Vec<u8>,
}

impl BatchBuilder {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            base_timestamp: -1,
            max_timestamp: -1,
            count: 0,
            section: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn count(&self) -> i32 {
        self.count
    }

    /// Bytes of the record section so far (uncompressed).
    pub(crate) fn size(&self) -> usize {
        self.section.len()
    }

    /// Appends `record` with `timestamp`.
    pub(crate) fn push(&mut self, record: &ProducerRecord, timestamp: i64) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        brook_protocol::batch::encode_record(
            &mut self.section,
            timestamp - self.base_timestamp,
            i64::from(self.count),
            record.key.as_deref(),
            record.value.as_deref(),
            record
                .headers
                .iter()
                .map(|h| (h.key.as_bytes(), h.value.as_deref())),
        );
        self.count += 1;
    }

    /// The batch, ready to send: records compressed with `compression`, stamped with the
    /// producer's id, epoch and `base_sequence` (-1, -1, -1 when not idempotent).
    pub(crate) fn seal(
        &self,
        compression: Compression,
        producer: (i64, i16),
        base_sequence: i32,
        transactional: bool,
    ) -> Result<Bytes, ClientError> {
        let section = if compression == Compression::None {
            std::borrow::Cow::Borrowed(&self.section[..])
        } else {
            std::borrow::Cow::Owned(
                brook_protocol::compression::compress(compression, &self.section).map_err(|e| {
                    ClientError::Codec {
                        what: "a record batch",
                        message: format!("{compression:?} compression failed: {e}"),
                    }
                })?,
            )
        };
        let mut attributes = i16::from(compression.id());
        if transactional {
            attributes |= TRANSACTIONAL;
        }
        let mut b = Vec::with_capacity(HEADER_SIZE + section.len());
        b.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns
        let length = HEADER_SIZE - 12 + section.len();
        let length = i32::try_from(length).map_err(|_| ClientError::Codec {
            what: "a record batch",
            message: "larger than 2 GiB".into(),
        })?;
        b.extend_from_slice(&length.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&(self.count - 1).max(0).to_be_bytes()); // last offset delta
        b.extend_from_slice(&self.base_timestamp.to_be_bytes());
        b.extend_from_slice(&self.max_timestamp.to_be_bytes());
        b.extend_from_slice(&producer.0.to_be_bytes());
        b.extend_from_slice(&producer.1.to_be_bytes());
        b.extend_from_slice(&base_sequence.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(&section);
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(b))
    }
}

/// The largest record section a fetched batch may decompress to (a broken or hostile batch
/// must not make the client allocate without bound).
const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// An aborted transaction named by a Fetch response: its producer and first offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aborted {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// The records of a fetched record set at offsets >= `from`, in order, and the offset after
/// the last whole batch (where the next fetch starts: control batches and skipped ones
/// count). With `aborted` given (read_committed), records of those transactions are left out.
pub(crate) fn decode_records(
    topic: &str,
    partition: i32,
    set: &Bytes,
    from: i64,
    aborted: Option<&[Aborted]>,
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64, ClientError> {
    let corrupt = |message: String| ClientError::Codec {
        what: "fetched records",
        message: format!("{topic} partition {partition}: {message}"),
    };
    let mut next = from;
    // Producers whose current transaction is aborted (an aborted transaction starts at or
    // before this batch and its ABORT marker has not been passed yet).
    let mut aborting: Vec<i64> = Vec::new();
    let mut pending: Vec<Aborted> = aborted.map(<[Aborted]>::to_vec).unwrap_or_default();
    pending.sort_by_key(|a| a.first_offset);
    let mut batches = Batches::new(set);
    for batch in batches.by_ref() {
        if batch.magic() != 2 {
            return Err(corrupt(format!(
                "a batch of magic {} (only v2 is read)",
                batch.magic()
            )));
        }
        let last = batch.last_offset();
        if last < from {
            continue;
        }
        next = last + 1;
        if aborted.is_some() {
            while let Some(a) = pending.first().filter(|a| a.first_offset <= last) {
                aborting.push(a.producer_id);
                pending.remove(0);
            }
        }
        if batch.is_control() {
            // A marker ends its producer's transaction: an ABORT of an aborted one, or a
            // COMMIT.
            aborting.retain(|p| *p != batch.producer_id());
            continue;
        }
        if aborted.is_some() && batch.is_transactional() && aborting.contains(&batch.producer_id())
        {
            continue;
        }
        read_batch(topic, partition, &batch, from, out).map_err(corrupt)?;
    }
    Ok(next)
}

fn read_batch(
    topic: &str,
    partition: i32,
    batch: &BatchView<'_>,
    from: i64,
    out: &mut Vec<ConsumerRecord>,
) -> Result<(), String> {
    let codec = batch
        .compression()
        .ok_or_else(|| format!("unknown compression in attributes {}", batch.attributes()))?;
    let section = Bytes::from(
        brook_protocol::compression::decompress(codec, batch.records_data(), MAX_DECOMPRESSED)
            .map_err(|e| e.to_string())?,
    );
    let log_append = batch.is_log_append_time();
    for record in Records::new(&section, batch.records_count()) {
        let record = record.map_err(|e| e.to_string())?;
        let offset = batch.base_offset() + i64::from(record.offset_delta);
        if offset < from {
            continue;
        }
        let slice = |b: &[u8]| section.slice_ref(b);
        out.push(ConsumerRecord {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp: if log_append {
                batch.max_timestamp()
            } else {
                batch.base_timestamp() + record.timestamp_delta
            },
            key: record.key.map(slice),
            value: record.value.map(slice),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| Header {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: v.map(slice),
                })
                .collect(),
        });
    }
    Ok(())
}

/// A compression codec by its Kafka name (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
pub fn compression_by_name(name: &str) -> Option<Compression> {
    Some(match name.to_ascii_lowercase().as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> ProducerRecord {
        ProducerRecord::new("t", format!("value-{i}"))
            .key(format!("key-{i}"))
            .header("h", format!("{i}"))
    }

    fn batch(n: usize, compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(1024);
        for i in 0..n {
            b.push(&record(i), 1_000 + i as i64);
        }
        b.seal(compression, (-1, -1), -1, false).unwrap()
    }

    #[test]
    fn sealed_batches_are_valid_and_read_back_with_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = batch(5, codec);
            let view = BatchView::parse_verified(&bytes).unwrap();
            assert_eq!(view.records_count(), 5);
            assert_eq!(view.compression(), Some(codec));
            assert_eq!(view.max_timestamp(), 1_004);
            let mut out = Vec::new();
            let next = decode_records("t", 0, &bytes, 0, None, &mut out).unwrap();
            assert_eq!(next, 5);
            assert_eq!(out.len(), 5, "{codec:?}");
            assert_eq!(out[3].offset, 3);
            assert_eq!(out[3].timestamp, 1_003);
            assert_eq!(out[3].key.as_deref(), Some(&b"key-3"[..]));
            assert_eq!(out[3].value.as_deref(), Some(&b"value-3"[..]));
            assert_eq!(out[3].headers[0].key, "h");
            assert_eq!(out[3].headers[0].value.as_deref(), Some(&b"3"[..]));
        }
    }

    #[test]
    fn records_before_the_fetch_offset_are_skipped_and_a_truncated_tail_is_left() {
        let bytes = batch(5, Compression::None);
        let mut set = bytes.to_vec();
        set.extend_from_slice(&bytes[..30]); // a partial batch, as max_bytes cuts them
        let mut out = Vec::new();
        let next = decode_records("t", 0, &Bytes::from(set), 2, None, &mut out).unwrap();
        assert_eq!(next, 5);
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
    }

    #[test]
    fn aborted_transactions_are_left_out_under_read_committed() {
        // Producer 7's transactional batch at offsets 0..=1, then its ABORT marker at 2,
        // then producer 8's committed batch at 3..=4.
        let mut b = BatchBuilder::new(64);
        b.push(&record(0), 1);
        b.push(&record(1), 1);
        let aborted = b.seal(Compression::None, (7, 0), 0, true).unwrap().to_vec();
        let mut marker = brook_protocol::control::encode_marker(
            7,
            0,
            brook_protocol::control::ControlType::Abort,
            0,
            1,
        );
        brook_protocol::batch::set_base_offset(&mut marker, 2);
        let mut committed = batch(2, Compression::None).to_vec();
        brook_protocol::batch::set_base_offset(&mut committed, 3);
        let set = Bytes::from([aborted, marker, committed].concat());
        let list = [Aborted {
            producer_id: 7,
            first_offset: 0,
        }];
        let mut out = Vec::new();
        let next = decode_records("t", 0, &set, 0, Some(&list), &mut out).unwrap();
        assert_eq!(next, 5);
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4]);
        // read_uncommitted sees them all but the marker.
        out.clear();
        decode_records("t", 0, &set, 0, None, &mut out).unwrap();
        assert_eq!(out.len(), 4);
    }
}
