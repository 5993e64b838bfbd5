//! Record validation on produce, through the wire: batches whose CRC is valid but whose
//! contents lie are refused with Kafka's codes, with `record_errors` and an `error_message`
//! naming the record (Produce v8+), and nothing of them reaches the log.

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, simple_batch, varlong as zigzag, TestRecord};
use brook_protocol::batch::{self, BatchView, HEADER_SIZE};
use brook_protocol::kafka_protocol::messages::ProduceResponse;
use brook_protocol::ErrorCode;
use brook_tests::RawClient;

use crate::wire::{create, fetch, latest, list_offset, produce, produce_request};

/// A record from its encoded fields, with a length prefix that matches them.
fn record(fields: &[&[u8]]) -> Vec<u8> {
    let body = fields.concat();
    [zigzag(body.len() as i64), body].concat()
}

/// A plain record: no key, a one-byte value, no headers.
fn plain(offset_delta: i64) -> Vec<u8> {
    record(&[
        &[0],
        &zigzag(0),
        &zigzag(offset_delta),
        &zigzag(-1),
        &zigzag(1),
        b"v",
        &zigzag(0),
    ])
}

/// Recomputes the CRC after the header or records were patched.
fn reseal(b: &mut [u8]) {
    let max = BatchView::parse(b).unwrap().max_timestamp();
    assert!(batch::set_max_timestamp(b, max));
}

/// A batch with `section` as its (uncompressed or compressed) records, `count` declared
/// records and a matching last offset delta, and a valid CRC.
fn batch_of(count: i32, codec: i16, section: &[u8]) -> Vec<u8> {
    let mut b = simple_batch(now(), 1);
    b.truncate(HEADER_SIZE);
    b.extend_from_slice(section);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&codec.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    reseal(&mut b);
    b
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produce v9 (record errors and error messages): the partition's response.
fn produce_v9(c: &mut RawClient, topic: &str, records: Vec<u8>) -> ProduceResponse {
    c.call(9, &produce_request(topic, 0, records, -1)).unwrap()
}

#[test]
fn lying_batches_are_refused_and_the_log_is_unchanged() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        auto_create_topics_enable: false,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "lies", 1, &[]), 0);
    assert_eq!(produce(&mut c, "lies", 0, simple_batch(now(), 3)), (0, 0));
    let (_, _, before) = fetch(&mut c, "lies", 0, 0, 0);

    let three = [plain(0), plain(1), plain(2)].concat();
    let gzip_garbage = {
        let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        g.extend_from_slice(&[0xab; 64]);
        g
    };
    // 255 MiB of zeros in a few KB of zstd.
    let bomb = zstd::encode_all(&vec![0u8; 255 << 20][..], 19).unwrap();
    assert!(bomb.len() < 16 * 1024, "bomb is {} bytes", bomb.len());
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "record count 2^31-1 with 3 records",
            batch_of(i32::MAX, 0, &three),
            ErrorCode::InvalidRecord,
        ),
        (
            "fewer records than the count",
            batch_of(5, 0, &three),
            ErrorCode::InvalidRecord,
        ),
        (
            "more records than the count",
            batch_of(2, 0, &three),
            ErrorCode::InvalidRecord,
        ),
        (
            "key length -5",
            batch_of(
                1,
                0,
                &record(&[
                    &[0],
                    &zigzag(0),
                    &zigzag(0),
                    &zigzag(-5),
                    &zigzag(-1),
                    &zigzag(0),
                ]),
            ),
            ErrorCode::InvalidRecord,
        ),
        (
            "header count 2^31-1",
            batch_of(
                1,
                0,
                &record(&[
                    &[0],
                    &zigzag(0),
                    &zigzag(0),
                    &zigzag(-1),
                    &zigzag(-1),
                    &zigzag(i64::from(i32::MAX)),
                    &[0, 0],
                ]),
            ),
            ErrorCode::InvalidRecord,
        ),
        (
            "varint overflow",
            batch_of(
                1,
                0,
                &record(&[
                    &[0],
                    &zigzag(0),
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    &zigzag(-1),
                    &zigzag(-1),
                    &zigzag(0),
                ]),
            ),
            ErrorCode::InvalidRecord,
        ),
        (
            "wrong offset deltas",
            batch_of(3, 0, &[plain(0), plain(2), plain(1)].concat()),
            ErrorCode::InvalidRecord,
        ),
        (
            "record attributes set",
            batch_of(
                1,
                0,
                &record(&[
                    &[0x10],
                    &zigzag(0),
                    &zigzag(0),
                    &zigzag(-1),
                    &zigzag(-1),
                    &zigzag(0),
                ]),
            ),
            ErrorCode::InvalidRecord,
        ),
        (
            "timestamp far in the future",
            batch_of(
                1,
                0,
                &record(&[
                    &[0],
                    &zigzag(1 << 50),
                    &zigzag(0),
                    &zigzag(-1),
                    &zigzag(-1),
                    &zigzag(0),
                ]),
            ),
            ErrorCode::InvalidTimestamp,
        ),
        (
            "negative timestamp",
            {
                let mut b = build_batch(-50, &[TestRecord::default()]);
                reseal(&mut b);
                b
            },
            ErrorCode::InvalidTimestamp,
        ),
        (
            "garbage gzip",
            batch_of(1, 1, &gzip_garbage),
            ErrorCode::InvalidRecord,
        ),
        (
            "garbage zstd",
            batch_of(1, 4, &[0x28, 0xb5, 0x2f, 0xfd, 0xde, 0xad, 0xbe, 0xef]),
            ErrorCode::InvalidRecord,
        ),
        ("zstd bomb", batch_of(1, 4, &bomb), ErrorCode::InvalidRecord),
    ];
    for (what, bytes, code) in cases {
        let resp = produce_v9(&mut c, "lies", bytes);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, code.code(), "{what}: {:?}", p.error_message);
        assert!(
            p.error_message.as_ref().is_some_and(|m| !m.is_empty()),
            "{what}: no error message"
        );
        assert!(!p.record_errors.is_empty(), "{what}: no record errors");
    }
    // The log is as it was: no offset moved, no byte added, lookups by time still work.
    assert_eq!(latest(&mut c, "lies", 0), 3);
    let (code, hw, after) = fetch(&mut c, "lies", 0, 0, 0);
    assert_eq!((code, hw), (0, 3));
    assert_eq!(after, before);
    assert_eq!(list_offset(&mut c, "lies", 0, 0).0, 0);
    assert_eq!(produce(&mut c, "lies", 0, simple_batch(now(), 2)), (0, 3));
    broker.shutdown();
}

#[test]
fn topic_rules_apply_per_record() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        auto_create_topics_enable: false,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    assert_eq!(
        create(&mut c, "snapshots", 1, &[("cleanup.policy", "compact")]),
        0
    );
    let keyless = build_batch(
        now(),
        &[
            TestRecord {
                key: Some(b"k".to_vec()),
                ..Default::default()
            },
            TestRecord::default(),
        ],
    );
    let resp = produce_v9(&mut c, "snapshots", keyless);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::InvalidRecord.code());
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 1);
    assert_eq!(latest(&mut c, "snapshots", 0), 0);

    // A day-old timestamp passes by default and fails under message.timestamp.before.max.ms.
    assert_eq!(
        create(
            &mut c,
            "recent",
            1,
            &[("message.timestamp.before.max.ms", "60000")]
        ),
        0
    );
    let old = now() - 86_400_000;
    let resp = produce_v9(&mut c, "recent", simple_batch(old, 2));
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::InvalidTimestamp.code());
    assert_eq!(p.record_errors.len(), 2);
    assert_eq!(create(&mut c, "any-age", 1, &[]), 0);
    assert_eq!(produce(&mut c, "any-age", 0, simple_batch(old, 2)), (0, 0));

    // A header that lies about the max timestamp is corrected from the records, as Kafka does.
    let mut lying = simple_batch(old, 3);
    assert!(batch::set_max_timestamp(&mut lying, old + 1_000_000));
    assert_eq!(produce(&mut c, "any-age", 0, lying), (0, 2));
    assert_eq!(list_offset(&mut c, "any-age", 0, -3), (4, old + 2));
    broker.shutdown();
}
