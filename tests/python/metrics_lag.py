#!/usr/bin/env python3
"""Consumer lag and broker metrics on Brook's /metrics, scraped and parsed with the Prometheus
client library's OpenMetrics parser, with confluent-kafka-python (librdkafka) as the client.

Usage: metrics_lag.py BOOTSTRAP        (BROOK_HTTP=host:port names the HTTP listener)

  * 5,000 records are produced to a one-partition topic, stamped ten minutes ago plus their
    index in milliseconds; a group commits offset 1,000 without joining;
  * kafka_consumergroup_lag (partition 0) and kafka_consumergroup_lag_sum are 4,000,
    kafka_consumergroup_current_offset is 1,000, kafka_topic_partition_current_offset 5,000
    and kafka_topic_partition_oldest_offset 0; kafka_consumergroup_lag_seconds is the age of
    record 1,000 (about 599 s); brook_topic_records_in_total is 5,000 and Produce requests
    were counted;
  * a CreateTopics for an existing topic is counted under brook_request_errors_total, acks=all
    produce under brook_fsync_duration_seconds, scrapes under brook_http_requests_total;
  * once the group commits 5,000, its lag and lag in seconds are 0.

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero.
"""

import os
import time
import urllib.request
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from prometheus_client.openmetrics.parser import text_string_to_metric_families  # noqa: E402

RECORDS = 5000
COMMITTED = 1000
AGE_MS = 600_000


def scrape():
    """Every sample of /metrics as {(name, frozenset(labels)): value}."""
    url = "http://%s/metrics" % os.environ["BROOK_HTTP"]
    with urllib.request.urlopen(url, timeout=10) as resp:
        check_eq(resp.status, 200, "/metrics status")
        check("openmetrics-text" in resp.headers["Content-Type"], "OpenMetrics media type")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def sample(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in samples, "%s%s is scraped" % (name, labels))
    return samples[key]


def run(bootstrap):
    topic = "metrics-" + uuid.uuid4().hex[:8]
    group = "projection"
    step("create the topic")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)

    step("produce 5,000 records stamped ten minutes ago")
    start_ms = int(time.time() * 1000) - AGE_MS
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, value=b"x" * 100, partition=0, timestamp=start_ms + i)
        if i % 1000 == 999:
            producer.poll(0)
    check_eq(producer.flush(10), 0, "records left unsent")

    step("commit 1,000")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, COMMITTED)], asynchronous=False)

    step("scrape")
    s = scrape()
    g = {"consumergroup": group, "topic": topic, "partition": "0"}
    check_eq(sample(s, "kafka_consumergroup_lag", **g), RECORDS - COMMITTED, "lag")
    check_eq(sample(s, "kafka_consumergroup_lag_sum", consumergroup=group, topic=topic),
             RECORDS - COMMITTED, "lag sum")
    check_eq(sample(s, "kafka_consumergroup_current_offset", **g), COMMITTED, "committed offset")
    check_eq(sample(s, "kafka_topic_partition_current_offset", topic=topic, partition="0"), RECORDS,
             "high watermark")
    check_eq(sample(s, "kafka_topic_partition_oldest_offset", topic=topic, partition="0"), 0, "log start")
    check_eq(sample(s, "kafka_topic_partitions", topic=topic), 1, "partitions")
    check_eq(sample(s, "kafka_brokers"), 1, "brokers")
    expected_age = time.time() - (start_ms + COMMITTED) / 1000.0
    age = sample(s, "kafka_consumergroup_lag_seconds", **g)
    check(abs(age - expected_age) < 5, "lag in seconds %.1f, expected about %.1f" % (age, expected_age))
    check_eq(sample(s, "brook_topic_records_in_total", topic=topic), RECORDS, "records in")
    check(sample(s, "brook_requests_total", api="Produce") > 0, "Produce requests counted")
    ok("lag 4,000, lag in seconds %.1f, offsets and traffic as produced" % age)

    step("errors, fsyncs and HTTP requests")
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].exception(10)  # exists already
    s = scrape()
    check_eq(sample(s, "brook_request_errors_total", api="CreateTopics", error="TopicAlreadyExists"), 1,
             "CreateTopics answered TOPIC_ALREADY_EXISTS once")
    check(sample(s, "brook_fsync_duration_seconds_count") > 0, "acks=all produce fsynced")
    check(sample(s, "brook_http_requests_total", area="metrics", status="200") >= 1, "scrapes counted")
    ok("error codes per API, fsync latency and HTTP requests are counted")

    step("caught up")
    consumer.commit(offsets=[TopicPartition(topic, 0, RECORDS)], asynchronous=False)
    s = scrape()
    check_eq(sample(s, "kafka_consumergroup_lag", **g), 0, "lag when caught up")
    check_eq(sample(s, "kafka_consumergroup_lag_seconds", **g), 0, "lag in seconds when caught up")
    ok("a caught-up group has no lag")
    consumer.close()


def main():
    harness.main(run, lambda: "confluent-kafka %s metrics: passed" % confluent_kafka.__version__)


if __name__ == "__main__":
    main()
