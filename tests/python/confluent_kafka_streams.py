#!/usr/bin/env python3
"""Aggregate streams with confluent-kafka-python (librdkafka) against a running Brook broker.

Usage: confluent_kafka_streams.py BOOTSTRAP      (BROOK_HTTP=host:port names the HTTP listener)
       with BROOK_STREAMS_RACE=TOPIC: only the race below, on that existing indexed topic

  * continue: for idempotence on and off, a producer whose conditional append is refused
    (INVALID_RECORD, a wrong brook.expected.revision) produces again with the same instance,
    and the stream holds exactly the accepted events with revisions 0..n-1;
  * race (BROOK_STREAMS_RACE): WRITERS producers (half of them idempotent) append
    APPENDS_PER_WRITER events each to random aggregates of AGGREGATES: each reads the head over
    HTTP, appends with brook.expected.revision, and on a conflict reads again and retries.
    Prints "appended=N conflicts=M" for the test to check against the streams.

librdkafka's default partitioner hashes keys with CRC32; Java, kafkajs and Brook's HTTP API
use murmur2, so the producers here set partitioner=murmur2_random (what a librdkafka
application that shares topics with Java services sets).
"""

import json
import os
import random
import threading
import urllib.error
import urllib.request
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

from confluent_kafka import KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

HTTP = os.environ.get("BROOK_HTTP", "")
WRITERS = 4
APPENDS_PER_WRITER = 40
AGGREGATES = 100


def http_get(path):
    """(status, JSON body) of a GET on the HTTP listener."""
    try:
        with urllib.request.urlopen("http://%s%s" % (HTTP, path), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def head(topic, key):
    """The stream's last revision, or None if it has no events."""
    status, body = http_get("/v1/streams/%s/%s/head" % (topic, key))
    if status == 404:
        return None
    check_eq(status, 200, "head of %s" % key)
    return body["revision"]


def expected_of(revision):
    return b"no-stream" if revision is None else str(revision).encode()


def producer(bootstrap, idempotent):
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": idempotent,
        "partitioner": "murmur2_random",
        "linger.ms": 0,
    })


def append(p, topic, key, value, expected):
    """Produces one conditional record and waits: None on success, else the KafkaError."""
    outcome = []
    p.produce(topic, key=key, value=value, headers=[("brook.expected.revision", expected)],
              on_delivery=lambda err, msg: outcome.append(err))
    p.flush(15)
    check(outcome, "no delivery report for %s" % key)
    return outcome[0]


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, config={"brook.key.index": "true"})]).values():
        f.result(15)


def go_on_after_a_refusal(bootstrap):
    topic = "streams-py-%s" % uuid.uuid4().hex[:8]
    create(bootstrap, topic, 3)
    for idempotent in (True, False):
        step("a refused conditional append, idempotence=%s" % idempotent)
        p = producer(bootstrap, idempotent)
        key = "loan-%s" % idempotent
        check_eq(append(p, topic, key, b'{"n":0}', b"no-stream"), None, "first append")
        err = append(p, topic, key, b'{"n":1}', b"7")
        check(err is not None and err.code() == KafkaError.INVALID_RECORD,
              "a wrong expected revision is INVALID_RECORD, got %r" % (err,))
        for n in (1, 2):
            check_eq(append(p, topic, key, b'{"n":%d}' % n, str(n - 1).encode()), None,
                     "append %d after the refusal" % n)
        status, read = http_get("/v1/streams/%s/%s" % (topic, key))
        check_eq(status, 200, "read")
        check_eq([(e["revision"], e["value"]["n"]) for e in read["events"]], [(0, 0), (1, 1), (2, 2)],
                 "the stream")
        ok("idempotence=%s: the producer goes on after a refused batch" % idempotent)


def race(bootstrap, topic):
    counts = {"appended": 0, "conflicts": 0}
    lock = threading.Lock()
    failures = []

    def writer(n):
        try:
            p = producer(bootstrap, n % 2 == 0)
            rng = random.Random(n)
            for i in range(APPENDS_PER_WRITER):
                key = "agg-%d" % rng.randrange(AGGREGATES)
                value = json.dumps({"writer": "py-%d" % n, "i": i}).encode()
                while True:
                    err = append(p, topic, key, value, expected_of(head(topic, key)))
                    if err is None:
                        with lock:
                            counts["appended"] += 1
                        break
                    check(err.code() == KafkaError.INVALID_RECORD, "unexpected error %r" % (err,))
                    with lock:
                        counts["conflicts"] += 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)

    step("%d writers racing" % WRITERS)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    check_eq(counts["appended"], WRITERS * APPENDS_PER_WRITER, "appends")
    print("appended=%d conflicts=%d" % (counts["appended"], counts["conflicts"]), flush=True)


def run(bootstrap):
    check(HTTP, "BROOK_HTTP must name the HTTP listener")
    race_topic = os.environ.get("BROOK_STREAMS_RACE")
    if race_topic:
        race(bootstrap, race_topic)
    else:
        go_on_after_a_refusal(bootstrap)


if __name__ == "__main__":
    harness.main(run, lambda: "confluent-kafka streams: passed")
