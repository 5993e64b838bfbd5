//! Aggregate streams (`brook.key.index=true`): per-key revisions, conditional appends with
//! the `brook.expected.revision` header through the wire, the HTTP stream API (every
//! endpoint and error, CloudEvents read back by a Kafka consumer), and the index after a
//! SIGKILL, compaction and retention. The races of real clients are in
//! `external_clients.rs` (librdkafka and kafkajs scripts).

use std::time::{Duration, Instant};

use brook_broker::{BrokerConfig, EmbeddedBroker};
use brook_protocol::batch::testing::{build_batch, conditional_record, set_producer, TestRecord};
use brook_protocol::kafka_protocol::messages::{InitProducerIdRequest, ProduceResponse};
use brook_protocol::ErrorCode;
use brook_tests::{http, http_typed, RawClient};
use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

use crate::process::BrokerProcess;
use crate::wire::{create, produce_request};

const JSON: &str = "application/json";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn post(addr: &str, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http_typed(addr, "POST", path, content_type, Some(&body.to_string()));
    (status, parse(&text))
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let (status, text) = http(addr, "GET", path, None);
    (status, parse(&text))
}

/// The revisions of the events of a stream read.
fn revisions(read: &Value) -> Vec<i64> {
    read["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {read}"))
        .iter()
        .map(|e| e["revision"].as_i64().unwrap())
        .collect()
}

fn record(key: &str, value: &str, expected: Option<&str>) -> TestRecord {
    conditional_record(key, value.as_bytes(), expected)
}

/// An ephemeral broker with topic `topic` (`partitions`, `brook.key.index=true` and
/// `configs`): the broker, its HTTP address and a raw client.
fn indexed_broker(
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (EmbeddedBroker, String, RawClient) {
    let broker = EmbeddedBroker::ephemeral().unwrap();
    let http = broker.http_addr().unwrap().to_string();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let configs = [&[("brook.key.index", "true")], configs].concat();
    assert_eq!(create(&mut c, topic, partitions, &configs), 0);
    (broker, http, c)
}

/// Produce v9 of one batch to partition 0: (error code, base offset, message, record errors).
fn produce(c: &mut RawClient, topic: &str, batch: Vec<u8>) -> (i16, i64, Option<String>, Vec<i32>) {
    let resp: ProduceResponse = c.call(9, &produce_request(topic, 0, batch, -1)).unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (
        p.error_code,
        p.base_offset,
        p.error_message.as_ref().map(|m| m.to_string()),
        p.record_errors.iter().map(|e| e.batch_index).collect(),
    )
}

#[test]
fn conditional_produce_is_all_or_nothing_and_idempotent_producers_go_on() {
    let (_broker, http_addr, mut c) = indexed_broker("loans", 1, &[]);
    assert_eq!(create(&mut c, "plain", 1, &[]), 0);

    // Without the index the header is refused, saying how to enable it.
    let (code, _, message, errors) = produce(
        &mut c,
        "plain",
        build_batch(
            now(),
            &[record("a", "1", None), record("a", "2", Some("0"))],
        ),
    );
    assert_eq!(code, ErrorCode::InvalidRecord.code());
    assert!(message.unwrap().contains("brook.key.index=true"));
    assert_eq!(errors, vec![1]);

    // A stream starts with no-stream; several records of a key chain in one batch.
    let first = build_batch(
        now(),
        &[
            record("loan-42", "opened", Some("no-stream")),
            record("loan-42", "paid", Some("0")),
            record("loan-7", "opened", None),
        ],
    );
    assert_eq!(produce(&mut c, "loans", first).0, 0);
    // One failed condition refuses the whole batch, naming the record.
    let (code, _, message, errors) = produce(
        &mut c,
        "loans",
        build_batch(
            now(),
            &[
                record("loan-7", "paid", Some("0")),
                record("loan-42", "late", Some("41")),
            ],
        ),
    );
    assert_eq!(code, ErrorCode::InvalidRecord.code());
    assert_eq!(
        message.as_deref(),
        Some("wrong expected revision for key \"loan-42\": expected 41, stream is at 1")
    );
    assert_eq!(errors, vec![1]);
    let (_, head) = get(&http_addr, "/v1/streams/loans/loan-7/head");
    assert_eq!(
        head["revision"], 0,
        "nothing of the refused batch was written"
    );
    for (expected, ok) in [
        ("exists", true),
        ("no-stream", false),
        ("2", true),
        ("soon", false),
    ] {
        let (code, ..) = produce(
            &mut c,
            "loans",
            build_batch(now(), &[record("loan-42", "x", Some(expected))]),
        );
        assert_eq!(code == 0, ok, "expected {expected}: code {code}");
    }

    // An idempotent producer whose batch was refused goes on, whichever way its client
    // recovers: reusing the refused sequence (kafkajs, librdkafka) or bumping its epoch and
    // starting again at 0 (the Java client's requestIdempotentEpochBumpForPartition).
    let init = c
        .call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id(brook_protocol::kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .unwrap();
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let idempotent = |records: &[TestRecord], epoch: i16, seq: i32| {
        let mut b = build_batch(now(), records);
        set_producer(&mut b, pid, epoch, seq, false);
        b
    };
    let ok = idempotent(&[record("loan-9", "a", Some("no-stream"))], epoch, 0);
    assert_eq!(produce(&mut c, "loans", ok.clone()).0, 0);
    let (code, ..) = produce(
        &mut c,
        "loans",
        idempotent(&[record("loan-9", "b", Some("5"))], epoch, 1),
    );
    assert_eq!(code, ErrorCode::InvalidRecord.code());
    let (code, reused, ..) = produce(
        &mut c,
        "loans",
        idempotent(&[record("loan-9", "b", Some("0"))], epoch, 1),
    );
    assert_eq!(code, 0, "the refused sequence is free again");
    let (code, ..) = produce(
        &mut c,
        "loans",
        idempotent(&[record("loan-9", "c", Some("0"))], epoch, 2),
    );
    assert_eq!(code, ErrorCode::InvalidRecord.code());
    let (code, ..) = produce(
        &mut c,
        "loans",
        idempotent(&[record("loan-9", "c", Some("1"))], epoch + 1, 0),
    );
    assert_eq!(code, 0, "a bumped epoch starts again at sequence 0");
    let (_, read) = get(&http_addr, "/v1/streams/loans/loan-9");
    assert_eq!(revisions(&read), vec![0, 1, 2]);
    assert_eq!(read["events"][1]["offset"], reused);
}

#[test]
fn a_retried_conditional_batch_gets_its_first_answer() {
    let (_broker, _, mut c) = indexed_broker("s", 1, &[]);
    let mut b = build_batch(now(), &[record("k", "1", Some("no-stream"))]);
    set_producer(&mut b, 77, 0, 0, false);
    let (code, offset, ..) = produce(&mut c, "s", b.clone());
    assert_eq!(code, 0);
    // The same batch again (a lost response): answered as a duplicate with its offset,
    // although its condition no longer holds.
    assert_eq!(produce(&mut c, "s", b).0, 0);
    let (_, _, _, errors) = produce(
        &mut c,
        "s",
        build_batch(now(), &[record("k", "2", Some("no-stream"))]),
    );
    assert_eq!(errors, vec![0]);
    assert_eq!(offset, 0);
}

#[test]
fn the_http_api_reads_appends_and_refuses_bad_input() {
    let (_broker, h, mut c) = indexed_broker("loans", 3, &[("max.message.bytes", "20000")]);
    assert_eq!(create(&mut c, "plain", 1, &[]), 0);

    // Appends: atomic, with the first and last revision and offset.
    let (status, appended) = post(
        &h,
        "/v1/streams/loans/loan-42",
        JSON,
        &json!({"expected_revision": "no-stream", "events": [
            {"value": {"type": "Opened", "amount": 100}, "event_id": "e-1"},
            {"value": {"type": "Paid", "amount": 40}, "headers": {"trace": "t-1"}},
        ]}),
    );
    assert_eq!(status, 200, "{appended}");
    assert_eq!(appended["first_revision"], 0);
    assert_eq!(appended["last_revision"], 1);
    assert_eq!(
        appended["last_offset"].as_i64().unwrap(),
        appended["first_offset"].as_i64().unwrap() + 1
    );
    let partition = appended["partition"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let between = now();
    std::thread::sleep(Duration::from_millis(20));
    let (status, third) = post(
        &h,
        "/v1/streams/loans/loan-42",
        JSON,
        &json!({"expected_revision": 1, "events": [{"value": {"type": "Paid", "amount": 60}}]}),
    );
    assert_eq!((status, third["first_revision"].clone()), (200, json!(2)));
    assert_eq!(third["partition"], partition, "the stream's partition");

    // A conflict: 409 with the current revision, nothing written.
    let (status, conflict) = post(
        &h,
        "/v1/streams/loans/loan-42",
        JSON,
        &json!({"expected_revision": 1, "events": [{"value": 1}, {"value": 2}]}),
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["current_revision"], 2);
    assert!(conflict["message"]
        .as_str()
        .unwrap()
        .contains("expected 1, stream is at 2"));
    let (status, _) = post(
        &h,
        "/v1/streams/loans/loan-42",
        JSON,
        &json!({"expected_revision": "no-stream", "events": [{"value": 1}]}),
    );
    assert_eq!(status, 409);

    // Reads: in revision order, with everything a consumer would see.
    let (status, read) = get(&h, "/v1/streams/loans/loan-42");
    assert_eq!(status, 200);
    assert_eq!(revisions(&read), vec![0, 1, 2]);
    let e0 = &read["events"][0];
    assert_eq!(e0["value"], json!({"type": "Opened", "amount": 100}));
    assert_eq!(e0["value_encoding"], "json");
    assert_eq!(e0["key"], "loan-42");
    assert_eq!(e0["partition"], partition);
    assert_eq!(e0["headers"]["brook.event.id"], "e-1");
    assert_eq!(read["events"][1]["headers"]["trace"], "t-1");
    let (_, r) = get(&h, "/v1/streams/loans/loan-42?from_revision=1&limit=1");
    assert_eq!(revisions(&r), vec![1]);
    let (_, r) = get(&h, "/v1/streams/loans/loan-42?direction=backward");
    assert_eq!(revisions(&r), vec![2, 1, 0]);
    let (_, r) = get(
        &h,
        "/v1/streams/loans/loan-42?direction=backward&from_revision=1",
    );
    assert_eq!(revisions(&r), vec![1, 0]);
    let (_, r) = get(&h, "/v1/streams/loans/loan-42?to_revision=1");
    assert_eq!(revisions(&r), vec![0, 1]);
    let (_, r) = get(&h, &format!("/v1/streams/loans/loan-42?as_of={between}"));
    assert_eq!(
        revisions(&r),
        vec![0, 1],
        "as of a time between the appends"
    );
    let (_, r) = get(&h, "/v1/streams/loans/loan-42?as_of=2000-01-01T00:00:00Z");
    assert_eq!(revisions(&r), Vec::<i64>::new());
    let (_, r) = get(
        &h,
        "/v1/streams/loans/loan-42?as_of=2999-01-01T00:00:00%2B01:00",
    );
    assert_eq!(revisions(&r), vec![0, 1, 2]);
    let (status, head) = get(&h, "/v1/streams/loans/loan-42/head");
    assert_eq!(status, 200);
    assert_eq!(head["revision"], 2);
    assert_eq!(head["offset"], third["first_offset"]);

    // A value that is not JSON reads back as base64, marked.
    let (status, _) = post(
        &h,
        "/v1/streams/loans/bin-1",
        "application/cloudevents+json",
        &json!({"specversion": "1.0", "id": "b1", "source": "/t", "type": "blob",
                "datacontenttype": "application/octet-stream", "data_base64": "AAEC/w=="}),
    );
    assert_eq!(status, 200);
    let (_, r) = get(&h, "/v1/streams/loans/bin-1");
    assert_eq!(r["events"][0]["value"], "AAEC/w==");
    assert_eq!(r["events"][0]["value_encoding"], "base64");
    assert_eq!(
        r["events"][0]["headers"]["content-type"],
        "application/octet-stream"
    );

    // Browsing any partition by offset or time.
    let (status, page) = get(
        &h,
        &format!("/v1/topics/loans/partitions/{partition}/records?limit=2"),
    );
    assert_eq!(status, 200);
    assert_eq!(page["records"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["next_offset"],
        page["records"][1]["offset"].as_i64().unwrap() + 1
    );
    let (_, page) = get(
        &h,
        &format!("/v1/topics/loans/partitions/{partition}/records?timestamp={between}"),
    );
    assert_eq!(page["records"][0]["offset"], third["first_offset"]);
    let (status, _) = get(&h, "/v1/topics/plain/partitions/0/records");
    assert_eq!(status, 200, "any topic, indexed or not");

    // Errors.
    for (path, want) in [
        ("/v1/streams/nope/k", 404),
        ("/v1/streams/plain/k", 400),
        ("/v1/streams/loans/never/head", 404),
        ("/v1/streams/loans/loan-42?limit=0", 400),
        ("/v1/streams/loans/loan-42?direction=sideways", 400),
        ("/v1/streams/loans/loan-42?as_of=yesterday", 400),
        ("/v1/streams/loans/loan-42?from_revision=-1", 400),
        ("/v1/streams/loans/loan-42?partition=9", 404),
        ("/v1/topics/loans/partitions/9/records", 404),
        ("/v1/topics/loans/partitions/x/records", 400),
        ("/v1/topics/nope/partitions/0/records", 404),
    ] {
        let (status, body) = get(&h, path);
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    let (_, r) = get(&h, "/v1/streams/loans/never");
    assert_eq!(
        revisions(&r),
        Vec::<i64>::new(),
        "a stream without events reads empty"
    );
    for (body, want) in [
        (json!({"events": []}), 400),
        (
            json!({"expected_revision": -3, "events": [{"value": 1}]}),
            400,
        ),
        (
            json!({"expected_revision": "maybe", "events": [{"value": 1}]}),
            400,
        ),
        (json!({"events": [{"value": 1, "headers": {"n": 5}}]}), 400),
        (json!({"events": "no"}), 400),
        (json!({"events": [{"value": "x".repeat(30_000)}]}), 413),
    ] {
        let (status, answer) = post(&h, "/v1/streams/loans/loan-42", JSON, &body);
        assert_eq!(status, want, "{body}: {answer}");
    }
    let (status, _) = http_typed(
        &h,
        "POST",
        "/v1/streams/loans/loan-42",
        JSON,
        Some(&"x".repeat(2_200_000)),
    );
    assert_eq!(
        status, 413,
        "a body past the limit (twice message.max.bytes)"
    );
    let (status, _) = http_typed(
        &h,
        "POST",
        "/v1/streams/loans/loan-42",
        "text/plain",
        Some("{}"),
    );
    assert_eq!(status, 415);
    let (status, _) = post(
        &h,
        "/v1/streams/loans/ce",
        "application/cloudevents+json",
        &json!({"id": "x"}),
    );
    assert_eq!(status, 400, "a CloudEvent without its required attributes");
    let (_, r) = get(&h, "/v1/streams/loans/loan-42");
    assert_eq!(revisions(&r), vec![0, 1, 2], "nothing half-written");
}

#[test]
fn cloudevents_are_stored_in_binary_mode_for_kafka_consumers() {
    let (broker, h, _) = indexed_broker("orders", 1, &[]);
    let (status, answer) = post(
        &h,
        "/v1/streams/orders/order-1?expected_revision=no-stream",
        "application/cloudevents-batch+json",
        &json!([
            {"specversion": "1.0", "id": "c-1", "source": "/shop", "type": "order.placed",
             "subject": "order-1", "time": "2026-12-07T14:01:00Z", "tenant": "acme",
             "data": {"total": 12}},
            {"specversion": "1.0", "id": "c-2", "source": "/shop", "type": "order.note",
             "datacontenttype": "text/plain", "data": "leave at the door"},
        ]),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["last_revision"], 1);

    let consumer = crate::librdkafka::assign_from_beginning(&broker.bootstrap(), "orders", 1);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers: std::collections::BTreeMap<String, String> = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            seen.push((key, headers, value));
        }
    }
    assert_eq!(seen.len(), 2);
    let (key, headers, value) = &seen[0];
    assert_eq!(key, "order-1");
    assert_eq!(parse(value), json!({"total": 12}));
    for (name, want) in [
        ("ce_specversion", "1.0"),
        ("ce_id", "c-1"),
        ("ce_source", "/shop"),
        ("ce_type", "order.placed"),
        ("ce_subject", "order-1"),
        ("ce_time", "2026-12-07T14:01:00Z"),
        ("ce_tenant", "acme"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(
            headers.get(name).map(String::as_str),
            Some(want),
            "{name}: {headers:?}"
        );
    }
    assert!(!headers.contains_key("ce_data"));
    let (_, headers, value) = &seen[1];
    assert_eq!(value, "leave at the door", "text data stays as it is");
    assert_eq!(headers["content-type"], "text/plain");
}

#[test]
fn follow_streams_existing_then_live_events_as_server_sent_events() {
    use std::io::{BufRead, BufReader, Write};
    let (_broker, h, _) = indexed_broker("s", 1, &[]);
    let events = json!({"events": [{"value": 0}, {"value": 1}]});
    assert_eq!(post(&h, "/v1/streams/s/k", JSON, &events).0, 200);
    let mut stream = std::net::TcpStream::connect(&h).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /v1/streams/s/k?follow=true&from_revision=1 HTTP/1.1\r\nHost: {h}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut data = Vec::new();
    let mut line = String::new();
    let mut appended = false;
    while data.len() < 3 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(parse(d.trim()));
            if !appended {
                // The live part: appended after the follow started.
                let more = json!({"events": [{"value": 2}, {"value": 3}]});
                assert_eq!(post(&h, "/v1/streams/s/k", JSON, &more).0, 200);
                appended = true;
            }
        }
    }
    let got: Vec<(i64, Value)> = data
        .iter()
        .map(|d| (d["revision"].as_i64().unwrap(), d["value"].clone()))
        .collect();
    assert_eq!(got, vec![(1, json!(1)), (2, json!(2)), (3, json!(3))]);
}

/// Appends `n` events to each of `keys` over HTTP, in rounds.
fn append_rounds(h: &str, topic: &str, keys: &[String], rounds: usize) {
    for round in 0..rounds {
        for key in keys {
            let body = json!({"expected_revision": if round == 0 { json!("no-stream") } else { json!(round - 1) },
                              "events": [{"value": {"round": round, "pad": "p".repeat(200)}}]});
            let (status, answer) = post(h, &format!("/v1/streams/{topic}/{key}"), JSON, &body);
            assert_eq!(status, 200, "{key} round {round}: {answer}");
        }
    }
}

#[test]
fn the_index_answers_the_same_after_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\"log.segment.bytes\" = 4096\n",
        dir.path().display()
    );
    let http_port = |toml: &str| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("{toml}http_listen = \"127.0.0.1:{port}\"\n")
    };
    let keys: Vec<String> = (0..20).map(|i| format!("agg-{i}")).collect();
    let mut broker = BrokerProcess::start(&http_port(&toml));
    let mut c = RawClient::connect(broker.bootstrap()).unwrap();
    assert_eq!(create(&mut c, "agg", 2, &[("brook.key.index", "true")]), 0);
    append_rounds(broker.http(), "agg", &keys, 6);
    let before: Vec<Value> = keys
        .iter()
        .map(|k| get(broker.http(), &format!("/v1/streams/agg/{k}")).1["events"].clone())
        .collect();
    broker.kill();
    let broker = BrokerProcess::start(&http_port(&toml));
    let after: Vec<Value> = keys
        .iter()
        .map(|k| get(broker.http(), &format!("/v1/streams/agg/{k}")).1["events"].clone())
        .collect();
    assert_eq!(before, after);
    assert_eq!(before[3].as_array().unwrap().len(), 6);
    // Revisions go on where they were.
    append_rounds_from(broker.http(), "agg", &keys[..1], 6);
}

fn append_rounds_from(h: &str, topic: &str, keys: &[String], next: usize) {
    for key in keys {
        let body = json!({"expected_revision": next - 1, "events": [{"value": next}]});
        let (status, answer) = post(h, &format!("/v1/streams/{topic}/{key}"), JSON, &body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["first_revision"], next);
    }
}

#[test]
fn revisions_survive_compaction_and_retention() {
    let broker = EmbeddedBroker::start(BrokerConfig {
        log_cleaner_backoff_ms: 100,
        log_retention_check_interval_ms: 100,
        ..BrokerConfig::ephemeral()
    })
    .unwrap();
    let h = broker.http_addr().unwrap().to_string();
    let mut c = RawClient::connect(&broker.bootstrap()).unwrap();
    let quick = [
        ("brook.key.index", "true"),
        ("segment.bytes", "2048"),
        ("segment.ms", "100"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
    ];
    assert_eq!(
        create(
            &mut c,
            "snapshots",
            1,
            &[&quick[..], &[("cleanup.policy", "compact")]].concat()
        ),
        0
    );
    assert_eq!(
        create(
            &mut c,
            "events",
            1,
            &[&quick[..], &[("retention.bytes", "3000")]].concat()
        ),
        0
    );
    let keys: Vec<String> = (0..4).map(|i| format!("s-{i}")).collect();
    for topic in ["snapshots", "events"] {
        append_rounds(&h, topic, &keys, 8);
    }
    // Compaction keeps each key's last record, with the revision it got at append.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = get(&h, "/v1/streams/snapshots/s-1");
        if revisions(&r) == vec![7] {
            assert_eq!(r["events"][0]["value"]["round"], 7);
            break;
        }
        assert!(Instant::now() < deadline, "not compacted: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Retention removes the oldest segments; the survivors keep their revisions.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = get(&h, "/v1/streams/events/s-0");
        let revs = revisions(&r);
        if !revs.is_empty() && revs[0] > 0 {
            assert_eq!(revs, (revs[0]..8).collect::<Vec<_>>(), "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "retention did not run: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for topic in ["snapshots", "events"] {
        let (_, head) = get(&h, &format!("/v1/streams/{topic}/s-2/head"));
        assert_eq!(head["revision"], 7, "{topic}");
        append_rounds_from(&h, topic, &keys[2..3], 8);
    }
}

#[test]
fn an_indexed_topic_refuses_more_partitions_unless_allowed() {
    let (_broker, _, mut c) = indexed_broker("idx", 1, &[]);
    let add = |c: &mut RawClient| {
        use brook_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        use brook_protocol::kafka_protocol::messages::CreatePartitionsRequest;
        let r = c
            .call(
                3,
                &CreatePartitionsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![CreatePartitionsTopic::default()
                        .with_name(crate::wire::name("idx"))
                        .with_count(2)]),
            )
            .unwrap();
        (
            r.results[0].error_code,
            r.results[0].error_message.as_ref().map(|m| m.to_string()),
        )
    };
    let (code, message) = add(&mut c);
    assert_eq!(code, ErrorCode::InvalidPartitions.code());
    let message = message.unwrap();
    assert!(
        message.contains("brook.key.index.allow.partition.increase=true"),
        "{message}"
    );
    let allow = crate::configs::op("brook.key.index.allow.partition.increase", 0, Some("true"));
    assert_eq!(
        crate::configs::incremental(&mut c, "idx", vec![allow], false).0,
        0
    );
    assert_eq!(add(&mut c).0, 0);
}
