//! Writes the small seed corpora under `fuzz/seeds/<target>/`, in each target's input format.
//!
//! cargo run --manifest-path fuzz/Cargo.toml --example gen-seeds
//!
//! The seeds are committed; rerun this after changing a target's input format. Files named
//! `regress-*` are inputs that once crashed a target (see the protocol crate's regression
//! tests); this program does not write them and leaves them in place.

use std::io::Write;
use std::path::{Path, PathBuf};

use brook_protocol::batch::testing::{build_batch, simple_batch, TestRecord};
use brook_protocol::batch::HEADER_SIZE;
use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest, RequestHeader, TopicName,
};
use brook_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use bytes::{BufMut, Bytes, BytesMut};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    frame(&root.join("frame"));
    request(&root.join("request"));
    batch(&root.join("batch"));
    validate(&root.join("validate"));
    decompress(&root.join("decompress"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create seed dir");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).expect("write seed");
}

/// Header (at the version the API uses) and body of one request: the frame payload.
fn payload(key: ApiKey, version: i16, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fz")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    buf.to_vec()
}

fn frame(dir: &Path) {
    let mut stream = Vec::new();
    for p in [&b"abc"[..], b"", &[0u8; 20]] {
        stream.extend_from_slice(&(p.len() as i32).to_be_bytes());
        stream.extend_from_slice(p);
    }
    // Whole stream at once, then in chunks of 3 bytes, then a torn last frame.
    write(dir, "three-frames", &[[0u8].as_slice(), &stream].concat());
    write(
        dir,
        "three-frames-chunked",
        &[[3u8].as_slice(), &stream].concat(),
    );
    write(
        dir,
        "torn",
        &[[0u8].as_slice(), &stream[..stream.len() - 5]].concat(),
    );
    let mut big = vec![1u8];
    big.extend_from_slice(&(1024 * 1024i32).to_be_bytes());
    big.extend_from_slice(b"partial");
    write(dir, "max-size-partial", &big);
    write(dir, "too-large", &[0, 0, 0x10, 0, 1]);
}

fn request(dir: &Path) {
    let raw = |name: &str, p: &[u8]| write(dir, name, &[[0xffu8].as_slice(), p].concat());
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("librdkafka"))
        .with_client_software_version(StrBytes::from_static_str("2.12.1"));
    raw(
        "api-versions-v3",
        &payload(ApiKey::ApiVersions, 3, &api_versions),
    );
    let mut fallback = payload(ApiKey::ApiVersions, 3, &api_versions);
    fallback[2..4].copy_from_slice(&127i16.to_be_bytes());
    raw("api-versions-v127", &fallback);
    let metadata = MetadataRequest::default().with_topics(None);
    raw("metadata-v12", &payload(ApiKey::Metadata, 12, &metadata));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(simple_batch(1, 1))))])]);
    raw("produce-v9", &payload(ApiKey::Produce, 9, &produce));
    // Produce v2: header v1, then acks, timeout, one topic with one partition's message set.
    let mut legacy = BytesMut::new();
    legacy.put_i16(1);
    legacy.put_i32(1000);
    legacy.put_i32(1);
    legacy.put_i16(1);
    legacy.put_slice(b"t");
    legacy.put_i32(1);
    legacy.put_i32(0);
    legacy.put_i32(4);
    legacy.put_slice(b"msgs");
    let mut p = payload(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    p[0..2].copy_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
    p[2..4].copy_from_slice(&2i16.to_be_bytes());
    p.extend_from_slice(&legacy);
    raw("produce-v2-legacy", &p);

    // Key-index mode: one seed per API key, at its highest version, with a valid header and a
    // short body of zeros; the target writes key and version from the first two bytes.
    for (i, key) in ApiKey::iter().enumerate() {
        let range = key.valid_versions();
        let version = range.max;
        let mut header = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("fz")))
            .encode(&mut header, key.request_header_version(version))
            .expect("encode header");
        let mut seed = vec![i as u8, (version - range.min + 1) as u8];
        seed.extend_from_slice(&header[4..]);
        seed.extend_from_slice(&[0u8; 8]);
        write(dir, &format!("key-{:02}", key as i16), &seed);
    }
}

fn records() -> Vec<TestRecord> {
    vec![
        TestRecord {
            key: Some(b"k".to_vec()),
            value: Some(b"value".to_vec()),
            timestamp_delta: 0,
            headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
        },
        TestRecord {
            key: None,
            value: Some(vec![b'x'; 40]),
            timestamp_delta: 3,
            headers: vec![],
        },
    ]
}

fn batch(dir: &Path) {
    write(dir, "simple-3", &simple_batch(1_000, 3));
    write(dir, "headers", &build_batch(5, &records()));
    let mut two = simple_batch(1, 1);
    two.extend(simple_batch(2, 2));
    two.extend(&simple_batch(3, 1)[..30]);
    write(dir, "two-and-torn", &two);
}

/// `plain`'s record section compressed with `codec`, in a batch with that codec's id.
fn compressed_batch(plain: &[u8], codec: u8) -> Vec<u8> {
    let section = &plain[HEADER_SIZE..];
    let data = compress(codec, section);
    let mut b = plain[..HEADER_SIZE].to_vec();
    b.extend_from_slice(&data);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[22] = (b[22] & !0x07) | codec;
    b
}

fn compress(codec: u8, data: &[u8]) -> Vec<u8> {
    match codec {
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).expect("gzip");
            gz.finish().expect("gzip")
        }
        2 => {
            // Xerial framing, as Java clients and librdkafka write it.
            let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
            let block = snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy");
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
            out
        }
        3 => {
            let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).expect("lz4");
            lz.write_all(data).expect("lz4");
            let (out, res) = lz.finish();
            res.expect("lz4");
            out
        }
        4 => zstd::encode_all(data, 1).expect("zstd"),
        _ => data.to_vec(),
    }
}

fn validate(dir: &Path) {
    let plain = build_batch(100, &records());
    write(dir, "none", &plain);
    for (codec, name) in [(1, "gzip"), (2, "snappy-xerial"), (3, "lz4"), (4, "zstd")] {
        write(dir, name, &compressed_batch(&plain, codec));
    }
    let mut raw_snappy = plain[..HEADER_SIZE].to_vec();
    raw_snappy.extend(
        snap::raw::Encoder::new()
            .compress_vec(&plain[HEADER_SIZE..])
            .expect("snappy"),
    );
    raw_snappy[22] |= 2;
    write(dir, "snappy-raw", &raw_snappy);
}

fn decompress(dir: &Path) {
    let data: Vec<u8> = b"the quick brown fox jumps over the lazy dog "
        .iter()
        .copied()
        .cycle()
        .take(300)
        .collect();
    // Byte 0: codec (low 3 bits), limit 1 MiB (bit 3 clear), read size (high bits); byte 1 unused.
    for (sel, name) in [
        (0x10u8, "none"),
        (0x21, "gzip"),
        (0x32, "snappy-raw"),
        (0x43, "lz4"),
        (0x54, "zstd"),
    ] {
        let codec = sel & 0x07;
        let body = if codec == 2 {
            snap::raw::Encoder::new()
                .compress_vec(&data)
                .expect("snappy")
        } else {
            compress(codec, &data)
        };
        write(dir, name, &[[sel, 0].as_slice(), &body].concat());
    }
    // Xerial: the target puts the 16-byte header in front; the data is length-prefixed blocks.
    let block = snap::raw::Encoder::new()
        .compress_vec(&data)
        .expect("snappy");
    let mut x = vec![0x65u8, 0];
    x.extend_from_slice(&(block.len() as u32).to_be_bytes());
    x.extend_from_slice(&block);
    write(dir, "snappy-xerial", &x);
    // Small limit (bit 3): 2 * 64 bytes, below the 300 bytes of output.
    write(
        dir,
        "zstd-over-limit",
        &[[0x0cu8, 2].as_slice(), &compress(4, &data)].concat(),
    );
}
