#!/usr/bin/env python3
"""SASL/OAUTHBEARER with confluent-kafka-python (librdkafka's unsecured JWT) against Brook.

Usage: confluent_kafka_oauthbearer.py SASL_PLAINTEXT_BOOTSTRAP

librdkafka makes its own unsecured token (`enable.sasl.oauthbearer.unsecure.jwt`,
`sasl.oauthbearer.config=principal=carol`); Brook, without a JWKS, accepts it as
`User:carol`. A Producer sends 5 records, a Consumer in a group reads them back and commits,
and committed() shows offset 5. (Refused tokens, and signed ones, are checked by the Rust
test that runs this script: `security.rs`.)
"""

import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

RECORDS = 5


def run(bootstrap):
    config = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": "principal=carol lifeSeconds=600",
    }
    topic = "oauth-%s" % uuid.uuid4().hex[:6]
    step("produce with an unsecured token")
    errors = []
    producer = Producer(config)
    for i in range(RECORDS):
        producer.produce(topic, value=b"v%d" % i, on_delivery=lambda err, _m: err and errors.append(err))
    check_eq(producer.flush(30), 0, "records left unsent")
    check_eq(errors, [], "delivery errors")
    step("consume in a group and commit")
    consumer = Consumer(dict(config, **{"group.id": "oauth-group", "auto.offset.reset": "earliest",
                                        "enable.auto.commit": False}))
    consumer.subscribe([topic])
    got = []
    while len(got) < RECORDS and harness.remaining_s() > 5:
        m = consumer.poll(0.5)
        if m is None:
            continue
        check(m.error() is None, "consumer error: %s" % m.error())
        got.append(m.value())
    check_eq(got, [b"v%d" % i for i in range(RECORDS)], "records read back")
    consumer.commit(asynchronous=False)
    check_eq(consumer.committed([TopicPartition(topic, 0)], timeout=15)[0].offset, RECORDS, "committed")
    consumer.close()
    ok("unsecured token accepted")


if __name__ == "__main__":
    harness.main(run, lambda: "oauthbearer: passed")
