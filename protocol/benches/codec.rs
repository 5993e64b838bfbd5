//! Hot paths of the codec: splitting frames, validating produced batches (header + CRC32C),
//! decoding a Produce request, and assembling a Fetch response around stored batches.
//!
//! `cargo bench -p brook-protocol --bench codec`

// Benchmark setup panics on a broken fixture, which is the right way for it to fail.
#![allow(clippy::unwrap_used)]

use brook_protocol::batch::testing::{build_batch, TestRecord};
use brook_protocol::batch::BatchView;
use brook_protocol::frame::decode_frame;
use brook_protocol::kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, PartitionData,
};
use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::{
    ApiKey, FetchResponse, ProduceRequest, RequestHeader, ResponseKind, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{
    encode_request_header_into_buffer, Encodable, StrBytes,
};
use brook_protocol::request::{decode_body, decode_header};
use brook_protocol::response::encode_response;
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A batch of 64 records of 1 KiB, as a producer with 1 KiB records and linger sends.
fn batch_64k() -> Vec<u8> {
    let records: Vec<TestRecord> = (0..64)
        .map(|i| TestRecord {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(vec![b'v'; 1024]),
            timestamp_delta: i,
            headers: vec![("h".into(), Some(b"1".to_vec()))],
        })
        .collect();
    build_batch(1_700_000_000_000, &records)
}

fn produce_frame(batch: &[u8], partitions: i32) -> Bytes {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(
                (0..partitions)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(Bytes::copy_from_slice(batch)))
                    })
                    .collect(),
            )]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut body = BytesMut::new();
    encode_request_header_into_buffer(&mut body, &header).unwrap();
    req.encode(&mut body, 9).unwrap();
    let mut framed = BytesMut::with_capacity(body.len() + 4);
    framed.put_i32(body.len() as i32);
    framed.extend_from_slice(&body);
    framed.freeze()
}

fn frames(c: &mut Criterion) {
    let frame = produce_frame(&batch_64k(), 1);
    let mut stream = BytesMut::new();
    for _ in 0..16 {
        stream.extend_from_slice(&frame);
    }
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("split 16 produce frames", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut buf| {
                let mut n = 0;
                while let Some(f) = decode_frame(&mut buf, 100 << 20).unwrap() {
                    n += f.len();
                }
                n
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn batches(c: &mut Criterion) {
    let batch = batch_64k();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("parse header", |b| {
        b.iter(|| BatchView::parse(&batch).unwrap().records_count())
    });
    g.bench_function("parse + CRC32C", |b| {
        b.iter(|| BatchView::parse_verified(&batch).unwrap().records_count())
    });
    g.finish();
}

fn produce_request(c: &mut Criterion) {
    let frame = produce_frame(&batch_64k(), 4);
    let payload = frame.slice(4..);
    let mut g = c.benchmark_group("produce request");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("decode header + body, 4 partitions", |b| {
        b.iter(|| {
            let f = decode_header(payload.clone()).unwrap();
            decode_body(&f).unwrap()
        })
    });
    g.finish();
}

fn fetch_response(c: &mut Criterion) {
    // 16 batches per partition, 4 partitions: ~4 MiB of records, as a consumer's fetch.
    let batch = batch_64k();
    let records = Bytes::from(batch.repeat(16));
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(
            (0..4)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(1_000_000)
                        .with_records(Some(records.clone()))
                })
                .collect(),
        )]);
    let body = ResponseKind::Fetch(response);
    let mut g = c.benchmark_group("fetch response");
    g.throughput(Throughput::Bytes(4 * records.len() as u64));
    g.bench_function("encode, 4 partitions x 1 MiB", |b| {
        b.iter(|| {
            let mut out = BytesMut::new();
            encode_response(&mut out, ApiKey::Fetch, 12, 1, &body).unwrap();
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, frames, batches, produce_request, fetch_response);
criterion_main!(benches);
