#!/usr/bin/env python3
"""Consumer groups with kafka-python against a running Brook broker: auto-commit and resume.

Usage: kafka_python_groups.py BOOTSTRAP        (e.g. 127.0.0.1:40123)

  * creates a 3-partition topic and produces 60 keyed records (20 per partition);
  * a KafkaConsumer subscribed in a group (enable_auto_commit=True,
    auto_commit_interval_ms=200, auto_offset_reset='earliest') reads all 60, each
    once, and closes (close() commits the consumed positions and leaves the group);
  * KafkaAdminClient.list_consumer_group_offsets shows offset 20 per partition,
    and the group is listed by list_consumer_groups;
  * 30 more records are produced; a new consumer in the same group reads exactly
    those 30 (it resumes at the committed offsets: none of the first 60 again)
    and closes; the committed offsets are then 30 per partition.

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero. A watchdog
(BROOK_TEST_TIMEOUT_S, default 60 s) bounds the run.
"""

import time
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import WAIT_S, CheckFailed, check, check_eq, ok, step

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

NUM_PARTITIONS = 3
FIRST = 60
SECOND = 30
PER_CALL_TIMEOUT_S = 15


def client_kwargs(bootstrap):
    return dict(
        bootstrap_servers=[bootstrap],
        client_id="brook-kafka-python-groups-test",
        request_timeout_ms=PER_CALL_TIMEOUT_S * 1000,
        api_version_auto_timeout_ms=5000,
        reconnect_backoff_max_ms=1000,
    )


def produce(bootstrap, topic, prefix, count):
    """Sends `count` keyed records round-robin over the partitions; returns {(partition, value)}."""
    producer = KafkaProducer(acks="all", linger_ms=5, max_block_ms=PER_CALL_TIMEOUT_S * 1000,
                             **client_kwargs(bootstrap))
    try:
        futures = []
        sent = set()
        for i in range(count):
            p = i % NUM_PARTITIONS
            value = ("%s-%d" % (prefix, i)).encode()
            futures.append(producer.send(topic, key=("key-%d" % i).encode(), value=value, partition=p))
            sent.add((p, value))
        producer.flush(timeout=PER_CALL_TIMEOUT_S)
        for f in futures:
            f.get(timeout=PER_CALL_TIMEOUT_S)
    finally:
        producer.close(timeout=5)
    return sent


def group_consumer(bootstrap, topic, group):
    return KafkaConsumer(
        topic,
        group_id=group,
        enable_auto_commit=True,
        auto_commit_interval_ms=200,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
        **client_kwargs(bootstrap),
    )


def read(consumer, expected_count, tag):
    """Polls until `expected_count` records arrived, then a little longer to catch extras.

    Returns [(partition, offset, value)]; fails on a record delivered twice.
    """
    got = []
    seen = set()
    deadline = time.monotonic() + WAIT_S
    while len(got) < expected_count:
        if time.monotonic() > deadline:
            raise CheckFailed("%s: read only %d of %d records in %d s (assignment %r)"
                              % (tag, len(got), expected_count, WAIT_S, consumer.assignment()))
        for tp, records in consumer.poll(timeout_ms=200).items():
            for r in records:
                check((tp.partition, r.offset) not in seen,
                      "%s: partition %d offset %d delivered twice" % (tag, tp.partition, r.offset))
                seen.add((tp.partition, r.offset))
                got.append((tp.partition, r.offset, r.value))
    # Anything that should not be there (older records) would come before the
    # expected ones; poll a little longer so surplus records show up.
    extra_until = time.monotonic() + 1.0
    while time.monotonic() < extra_until:
        for tp, records in consumer.poll(timeout_ms=200).items():
            for r in records:
                got.append((tp.partition, r.offset, r.value))
    return got


def committed_offsets(admin, group, topic):
    res = admin.list_consumer_group_offsets(group)
    return {tp.partition: om.offset for tp, om in res.items() if tp.topic == topic}


def run(bootstrap):
    suffix = uuid.uuid4().hex[:10]
    topic = "brook-kpy-groups-%s" % suffix
    group = "brook-kpy-group-%s" % suffix
    print("[topic=%s group=%s] starting against %s" % (topic, group, bootstrap), flush=True)

    step("KafkaAdminClient / create_topics")
    admin = KafkaAdminClient(**client_kwargs(bootstrap))
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
                            timeout_ms=10000)

        step("produce the first records")
        first = produce(bootstrap, topic, "first", FIRST)
        per_partition_first = FIRST // NUM_PARTITIONS

        step("first consumer reads everything")
        consumer = group_consumer(bootstrap, topic, group)
        try:
            got = read(consumer, FIRST, "first consumer")
            check_eq(len(got), FIRST, "number of records the first consumer read")
            check_eq({(p, v) for p, _, v in got}, first, "records the first consumer read")
            check_eq(consumer.assignment(), {TopicPartition(topic, p) for p in range(NUM_PARTITIONS)},
                     "assignment of the only member")
            ok("a group member (auto-commit every 200 ms) read all %d records once" % FIRST)
        finally:
            step("first consumer close (commits)")
            consumer.close()

        step("list_consumer_group_offsets after the first consumer")
        check_eq(committed_offsets(admin, group, topic), {p: per_partition_first for p in range(NUM_PARTITIONS)},
                 "committed offsets after the first consumer closed")
        ok("committed offsets are %d per partition after close" % per_partition_first)

        step("list_consumer_groups")
        groups = {g[0]: g[1] for g in admin.list_consumer_groups()}
        check_eq(groups.get(group), "consumer", "list_consumer_groups entry (group id -> protocol type)")
        ok("list_consumer_groups lists the group with protocol type consumer")

        step("produce the second records")
        second = produce(bootstrap, topic, "second", SECOND)
        per_partition_second = SECOND // NUM_PARTITIONS

        step("second consumer resumes")
        consumer = group_consumer(bootstrap, topic, group)
        try:
            got = read(consumer, SECOND, "second consumer")
            old = sorted((p, o) for p, o, v in got if (p, v) in first)
            check_eq(old, [], "already committed records the second consumer read again (partition, offset)")
            check_eq(len(got), SECOND, "number of records the second consumer read")
            check_eq({(p, v) for p, _, v in got}, second, "records the second consumer read")
            for p in range(NUM_PARTITIONS):
                offsets = sorted(o for pp, o, _ in got if pp == p)
                check_eq(offsets, list(range(per_partition_first, per_partition_first + per_partition_second)),
                         "offsets the second consumer read from partition %d" % p)
            ok("a new member resumed at the committed offsets: read the %d new records and none of the old"
               % SECOND)
        finally:
            step("second consumer close (commits)")
            consumer.close()

        step("list_consumer_group_offsets after the second consumer")
        total = per_partition_first + per_partition_second
        check_eq(committed_offsets(admin, group, topic), {p: total for p in range(NUM_PARTITIONS)},
                 "committed offsets after the second consumer closed")
        ok("committed offsets are %d per partition after the second close" % total)
    finally:
        admin.close()


def main():
    harness.main(run, lambda: "kafka-python %s consumer groups: passed" % __import__("kafka").__version__)


if __name__ == "__main__":
    main()
