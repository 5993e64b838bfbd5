#!/usr/bin/env python3
"""Configs at runtime with confluent-kafka-python's AdminClient (librdkafka) against a running
Brook broker.

Usage: confluent_kafka_configs.py BOOTSTRAP        (e.g. 127.0.0.1:40123)

  * create_topics with segment.ms set; describe_configs shows it as DYNAMIC_TOPIC_CONFIG and
    Kafka's defaults (retention.ms 604800000, cleanup.policy delete) as DEFAULT_CONFIG;
  * incremental_alter_configs on the topic: SET retention.ms, APPEND compact to
    cleanup.policy ("delete,compact"), SUBTRACT delete ("compact"), DELETE retention.ms (back
    to its default); a bad value fails with INVALID_CONFIG and changes nothing; an unknown
    topic fails with UNKNOWN_TOPIC_OR_PARTITION;
  * incremental_alter_configs on the broker ("1"): SET log.retention.ms is described as
    DYNAMIC_BROKER_CONFIG, with the topic's retention.ms following it (same source); a
    read-only setting fails with INVALID_REQUEST; DELETE puts everything back. (The client
    refuses a resource with an empty name, so the cluster default is tested through the wire
    in configs.rs.)

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero. A watchdog
(BROOK_TEST_TIMEOUT_S, default 60 s) bounds the run.
"""

import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

import confluent_kafka  # noqa: E402
from confluent_kafka import KafkaError, KafkaException  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

TIMEOUT_S = 10


def describe(admin, restype, name):
    resource = ConfigResource(restype, name)
    return admin.describe_configs([resource])[resource].result(TIMEOUT_S)


def alter(admin, restype, name, *ops):
    """Runs IncrementalAlterConfigs with `ops` as (name, op, value); returns None or the
    KafkaError code of the failure."""
    entries = [ConfigEntry(n, v, incremental_operation=op) for n, op, v in ops]
    resource = ConfigResource(restype, name, incremental_configs=entries)
    try:
        admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
        return None
    except KafkaException as e:
        return e.args[0].code()


def value_and_source(configs, name):
    entry = configs[name]
    return entry.value, entry.source


def run(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = "cfg-" + uuid.uuid4().hex[:8]
    TOPIC, BROKER = ResourceType.TOPIC, ResourceType.BROKER

    step("create_topics with segment.ms")
    fs = admin.create_topics([NewTopic(topic, 1, 1, config={"segment.ms": "600000"})])
    fs[topic].result(TIMEOUT_S)
    configs = describe(admin, TOPIC, topic)
    check_eq(value_and_source(configs, "segment.ms"), ("600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
             "segment.ms set at creation")
    check_eq(value_and_source(configs, "retention.ms"), ("604800000", ConfigSource.DEFAULT_CONFIG.value),
             "retention.ms default")
    check_eq(configs["cleanup.policy"].value, "delete", "cleanup.policy default")
    ok("describe_configs: values and sources as Kafka reports them")

    step("incremental SET, APPEND, SUBTRACT, DELETE on the topic")
    check_eq(alter(admin, TOPIC, topic, ("retention.ms", AlterConfigOpType.SET, "3600000")), None, "SET")
    check_eq(describe(admin, TOPIC, topic)["retention.ms"].value, "3600000", "retention.ms after SET")
    check_eq(alter(admin, TOPIC, topic, ("cleanup.policy", AlterConfigOpType.APPEND, "compact")), None,
             "APPEND")
    check_eq(describe(admin, TOPIC, topic)["cleanup.policy"].value, "delete,compact", "after APPEND")
    check_eq(alter(admin, TOPIC, topic, ("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete")), None,
             "SUBTRACT")
    check_eq(describe(admin, TOPIC, topic)["cleanup.policy"].value, "compact", "after SUBTRACT")
    check_eq(alter(admin, TOPIC, topic, ("retention.ms", AlterConfigOpType.DELETE, None)), None, "DELETE")
    check_eq(value_and_source(describe(admin, TOPIC, topic), "retention.ms"),
             ("604800000", ConfigSource.DEFAULT_CONFIG.value), "retention.ms after DELETE")
    ok("incremental_alter_configs SET/APPEND/SUBTRACT/DELETE on a topic")

    step("refused topic changes")
    check_eq(alter(admin, TOPIC, topic, ("retention.ms", AlterConfigOpType.SET, "soon")),
             KafkaError.INVALID_CONFIG, "a bad value")
    check_eq(describe(admin, TOPIC, topic)["retention.ms"].value, "604800000", "unchanged after the bad value")
    check_eq(alter(admin, TOPIC, topic + "-missing", ("retention.ms", AlterConfigOpType.SET, "1")),
             KafkaError.UNKNOWN_TOPIC_OR_PART, "an unknown topic")
    ok("bad values are INVALID_CONFIG, unknown topics UNKNOWN_TOPIC_OR_PARTITION")

    step("dynamic broker configs")
    check_eq(alter(admin, BROKER, "1", ("log.retention.ms", AlterConfigOpType.SET, "3600000")), None,
             "SET on broker 1")
    broker = describe(admin, BROKER, "1")
    check_eq(value_and_source(broker, "log.retention.ms"),
             ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value), "broker log.retention.ms")
    check(not broker["log.retention.ms"].is_read_only, "log.retention.ms can change at runtime")
    check(broker["log.flush.offset.checkpoint.interval.ms"].is_read_only, "a static setting is read-only")
    check_eq(value_and_source(describe(admin, TOPIC, topic), "retention.ms"),
             ("3600000", ConfigSource.DYNAMIC_BROKER_CONFIG.value), "the topic follows the broker")
    check_eq(alter(admin, BROKER, "1", ("log.flush.offset.checkpoint.interval.ms", AlterConfigOpType.SET, "1")),
             KafkaError.INVALID_REQUEST, "a read-only broker setting")
    check_eq(alter(admin, BROKER, "1", ("log.retention.ms", AlterConfigOpType.DELETE, None)), None,
             "DELETE on broker 1")
    check_eq(value_and_source(describe(admin, TOPIC, topic), "retention.ms"),
             ("604800000", ConfigSource.DEFAULT_CONFIG.value), "back to Kafka's default")
    ok("incremental_alter_configs on the broker: a dynamic setting, read-only settings")


def main():
    harness.main(run, lambda: "confluent-kafka %s (librdkafka %s) configs: passed"
                 % (confluent_kafka.__version__, confluent_kafka.libversion()[0]))


if __name__ == "__main__":
    main()
