#!/usr/bin/env python3
"""Real-client round trip against a running Brook broker, using kafka-python.

Usage: kafka_python_roundtrip.py BOOTSTRAP        (e.g. 127.0.0.1:40123)

For each producer mode (acks=1 uncompressed, acks=1 gzip) it:
  * creates a fresh 2-partition topic with KafkaAdminClient,
  * produces 500 keyed records with headers (including a duplicated header key)
    and explicit timestamps (base + i) to explicit partitions, collecting the
    RecordMetadata of every send,
  * reads everything back with an assign()ed KafkaConsumer from the beginning
    and checks key, value, headers, timestamp, partition and offset of every
    record against what was sent / what the producer was told,
  * checks offsets are contiguous from 0 in each partition, beginning_offsets,
    end_offsets and offsets_for_times,
  * deletes the topic.

Exits 0 on success; on failure prints "FAIL: ..." naming what differed and
exits non-zero. The whole run is bounded by a watchdog (BROOK_TEST_TIMEOUT_S,
default 60 s) that prints "FAIL: timed out", dumps the stack of every thread
and exits 3 if anything hangs.
"""

import os
import time
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import CheckFailed, check, check_eq, remaining_s, step

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.errors import NoBrokersAvailable  # noqa: E402

NUM_RECORDS = 500
NUM_PARTITIONS = 2
PER_CALL_TIMEOUT_S = 15


def client_kwargs(bootstrap):
    return dict(
        bootstrap_servers=[bootstrap],
        client_id="brook-kafka-python-test",
        request_timeout_ms=PER_CALL_TIMEOUT_S * 1000,
        api_version_auto_timeout_ms=5000,
        reconnect_backoff_max_ms=1000,
    )


def expected_record(i, base_ts):
    """What record number i looks like when sent."""
    key = ("key-%04d" % i).encode()
    if i == 7:
        value = None  # a null value (tombstone) must survive
    elif i == 8:
        value = b""  # an empty value is not null
    else:
        value = ("value-%04d-" % i).encode() + os.urandom(4).hex().encode() * (i % 5)
    if i % 50 == 3:
        headers = []  # some records without headers
    else:
        headers = [
            ("h", b"1"),
            ("h", b"2"),  # duplicate key: order and both values must be kept
            ("idx", str(i).encode()),
            ("empty", b""),
        ]
    return {
        "key": key,
        "value": value,
        "headers": headers,
        "partition": i % NUM_PARTITIONS,
        "timestamp": base_ts + i,
    }


def run_case(bootstrap, label, producer_extra):
    topic = "brook-kpy-%s-%s" % (label, uuid.uuid4().hex[:10])
    tag = "[%s topic=%s]" % (label, topic)
    print("%s starting" % tag, flush=True)

    step("%s KafkaAdminClient()" % tag)
    admin = KafkaAdminClient(**client_kwargs(bootstrap))
    try:
        # --- create topic -------------------------------------------------
        step("%s admin.create_topics" % tag)
        resp = admin.create_topics(
            [NewTopic(name=topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
            timeout_ms=10000,
        )
        # kafka-python raises on a non-zero error code; double-check the body.
        errs = [tuple(e[:2]) for e in resp.topic_errors]
        check_eq(errs, [(topic, 0)], "%s CreateTopics topic_errors (topic, error_code)" % tag)
        step("%s admin.list_topics (Metadata request for all topics)" % tag)
        check(topic in admin.list_topics(), "%s created topic missing from admin.list_topics()" % tag)

        # --- produce ------------------------------------------------------
        base_ts = int(time.time() * 1000) - 3_600_000  # an hour ago, ms
        sent = [expected_record(i, base_ts) for i in range(NUM_RECORDS)]
        step("%s KafkaProducer() / send / flush" % tag)
        producer = KafkaProducer(
            acks=1,
            linger_ms=5,
            max_block_ms=PER_CALL_TIMEOUT_S * 1000,
            retries=0,  # a retry could hide a broker error; fail instead
            **client_kwargs(bootstrap),
            **producer_extra,
        )
        try:
            futures = []
            for rec in sent:
                futures.append(
                    producer.send(
                        topic,
                        key=rec["key"],
                        value=rec["value"],
                        headers=rec["headers"],
                        partition=rec["partition"],
                        timestamp_ms=rec["timestamp"],
                    )
                )
            producer.flush(timeout=PER_CALL_TIMEOUT_S)
            metas = []
            for i, fut in enumerate(futures):
                try:
                    metas.append(fut.get(timeout=PER_CALL_TIMEOUT_S))
                except Exception as e:  # noqa: BLE001 - report which send failed
                    raise CheckFailed(
                        "%s produce of record %d (partition %d) failed: %s: %s"
                        % (tag, i, sent[i]["partition"], type(e).__name__, e)
                    )
        finally:
            producer.close(timeout=5)

        for i, (rec, md) in enumerate(zip(sent, metas)):
            check_eq(md.topic, topic, "%s RecordMetadata.topic of record %d" % (tag, i))
            check_eq(md.partition, rec["partition"], "%s RecordMetadata.partition of record %d" % (tag, i))
            check_eq(md.timestamp, rec["timestamp"], "%s RecordMetadata.timestamp of record %d" % (tag, i))
            rec["offset"] = md.offset

        # offsets contiguous from 0 per partition
        counts = {}
        for p in range(NUM_PARTITIONS):
            offs = sorted(r["offset"] for r in sent if r["partition"] == p)
            check_eq(offs, list(range(len(offs))), "%s producer-reported offsets of partition %d" % (tag, p))
            counts[p] = len(offs)
        by_pos = {(r["partition"], r["offset"]): (i, r) for i, r in enumerate(sent)}

        # --- consume ------------------------------------------------------
        step("%s KafkaConsumer() / assign / seek_to_beginning / poll" % tag)
        consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=200,
            max_poll_records=200,
            **client_kwargs(bootstrap),
        )
        try:
            tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)

            got = {}
            deadline = time.monotonic() + min(30, max(5, remaining_s() - 15))
            while len(got) < NUM_RECORDS and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=500)
                for tp, records in batch.items():
                    check_eq(tp.topic, topic, "%s polled topic" % tag)
                    for cr in records:
                        pos = (cr.partition, cr.offset)
                        check(pos not in got, "%s record at partition %d offset %d delivered twice" % (tag, cr.partition, cr.offset))
                        got[pos] = cr
            if len(got) < NUM_RECORDS:
                per_p = {p: sum(1 for (pp, _) in got if pp == p) for p in range(NUM_PARTITIONS)}
                raise CheckFailed(
                    "%s consumer read only %d of %d records before the deadline (per partition read %r, expected %r)"
                    % (tag, len(got), NUM_RECORDS, per_p, counts)
                )
            check_eq(sorted(got), sorted(by_pos), "%s set of (partition, offset) consumed" % tag)

            for pos, cr in sorted(got.items()):
                i, rec = by_pos[pos]
                what = "%s record %d (partition %d offset %d)" % (tag, i, pos[0], pos[1])
                check_eq(cr.topic, topic, what + " topic")
                check_eq(cr.key, rec["key"], what + " key")
                check_eq(cr.value, rec["value"], what + " value")
                check_eq([(k, v) for k, v in cr.headers], rec["headers"], what + " headers")
                check_eq(cr.timestamp, rec["timestamp"], what + " timestamp")
                check_eq(cr.timestamp_type, 0, what + " timestamp_type (0=CreateTime)")

            # --- ListOffsets via the consumer ----------------------------
            step("%s consumer.beginning_offsets / end_offsets" % tag)
            begin = consumer.beginning_offsets(tps)
            end = consumer.end_offsets(tps)
            check_eq({tp.partition: o for tp, o in begin.items()}, {p: 0 for p in range(NUM_PARTITIONS)},
                     "%s consumer.beginning_offsets" % tag)
            check_eq({tp.partition: o for tp, o in end.items()}, counts, "%s consumer.end_offsets" % tag)

            def expect_for_ts(p, ts):
                cands = [r for r in sent if r["partition"] == p and r["timestamp"] >= ts]
                if not cands:
                    return None
                first = min(cands, key=lambda r: r["offset"])
                return (first["offset"], first["timestamp"])

            probes = {
                "middle": base_ts + NUM_RECORDS // 2 + 1,  # odd: first hit differs per partition
                "start": base_ts - 1000,
                "exact-first": base_ts,
                "after-last": base_ts + NUM_RECORDS + 1000,
            }
            for name, ts in probes.items():
                step("%s consumer.offsets_for_times(%s)" % (tag, name))
                res = consumer.offsets_for_times({tp: ts for tp in tps})
                actual = {
                    tp.partition: (None if oat is None else (oat.offset, oat.timestamp)) for tp, oat in res.items()
                }
                expected = {p: expect_for_ts(p, ts) for p in range(NUM_PARTITIONS)}
                check_eq(actual, expected,
                         "%s consumer.offsets_for_times(%s ts=%d) as {partition: (offset, timestamp)}"
                         % (tag, name, ts))
        finally:
            consumer.close()

        # --- delete topic -------------------------------------------------
        step("%s admin.delete_topics" % tag)
        resp = admin.delete_topics([topic], timeout_ms=10000)
        errs = [tuple(e[:2]) for e in resp.topic_error_codes]
        check_eq(errs, [(topic, 0)], "%s DeleteTopics topic_error_codes (topic, error_code)" % tag)
        deadline = time.monotonic() + 10
        step("%s admin.list_topics after delete" % tag)
        while topic in admin.list_topics():
            check(time.monotonic() < deadline, "%s deleted topic still in admin.list_topics() after 10 s" % tag)
            time.sleep(0.2)
    finally:
        admin.close()

    print("%s ok: %d records, per-partition counts %r, offsets_for_times ok, topic deleted"
          % (tag, NUM_RECORDS, counts), flush=True)


def run(bootstrap):
    run_case(bootstrap, "plain", {})
    run_case(bootstrap, "gzip", {"compression_type": "gzip"})


def main():
    harness.main(run, lambda: "kafka-python %s round trip: 2 cases passed" % __import__("kafka").__version__,
                 unreachable=(NoBrokersAvailable,))


if __name__ == "__main__":
    main()
