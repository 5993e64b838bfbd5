#!/usr/bin/env python3
"""TLS and SASL with kafka-python against a Brook broker (same environment as
confluent_kafka_security.py).

For each of SASL_SSL with SCRAM-SHA-256, SASL_SSL with SCRAM-SHA-512, SASL_PLAINTEXT with
PLAIN and SSL with a client certificate: a KafkaProducer sends 5 records, a KafkaConsumer in
a group reads them back from the beginning and commits, and committed() shows offset 5. A
connection with a wrong password is refused with Kafka's SCRAM message (the right one is not).
"""

import logging
import os
import socket
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.conn import BrokerConnection  # noqa: E402

E = os.environ
RECORDS = 5


def cases():
    user = {"sasl_plain_username": E["BROOK_USER"], "sasl_plain_password": E["BROOK_PASSWORD"]}
    ca = {"ssl_cafile": E["BROOK_CA"]}
    return [
        ("sasl_ssl-scram-sha-256", dict(ca, **user, bootstrap_servers=E["BROOK_SASL_SSL"],
                                        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256")),
        ("sasl_ssl-scram-sha-512", dict(ca, **user, bootstrap_servers=E["BROOK_SASL_SSL"],
                                        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512")),
        ("sasl_plaintext-plain", dict(user, bootstrap_servers=E["BROOK_SASL_PLAINTEXT"],
                                      security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")),
        ("ssl-client-certificate", dict(ca, bootstrap_servers=E["BROOK_SSL"], security_protocol="SSL",
                                        ssl_certfile=E["BROOK_CLIENT_CERT"],
                                        ssl_keyfile=E["BROOK_CLIENT_KEY"])),
    ]


def roundtrip(name, config):
    topic = "kp-sec-%s" % name
    step("%s: produce" % name)
    producer = KafkaProducer(**config)
    futures = [producer.send(topic, key=b"k", value=b"v%d" % i) for i in range(RECORDS)]
    producer.flush(30)
    for f in futures:
        f.get(timeout=15)
    producer.close()
    step("%s: consume in a group and commit" % name)
    group = "kp-sec-group-%s-%s" % (name, uuid.uuid4().hex[:6])
    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **config)
    got = []
    while len(got) < RECORDS and harness.remaining_s() > 5:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    check_eq(got, [b"v%d" % i for i in range(RECORDS)], "records read back")
    consumer.commit()
    check_eq(consumer.committed(TopicPartition(topic, 0)), RECORDS, "committed offset")
    consumer.close()
    ok(name)


def run(_bootstrap):
    for name, config in cases():
        roundtrip(name, config)
    step("refused: wrong password")
    # kafka-python retries failed connections quietly; a connection of its own shows the
    # outcome, and kafka.conn's log carries the broker's message.
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logging.getLogger("kafka.conn").addHandler(Collect())
    config = dict(cases()[0][1])
    host, port = config.pop("bootstrap_servers").rsplit(":", 1)
    right = BrokerConnection(host, int(port), socket.AF_INET, **config)
    check(right.connect_blocking(timeout=10), "the right password was refused")
    right.close()
    config["sasl_plain_password"] = "wrong"
    wrong = BrokerConnection(host, int(port), socket.AF_INET, **config)
    check(not wrong.connect_blocking(timeout=10), "a wrong password was accepted")
    expected = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
    check(any(expected in m for m in messages), "no authentication error logged: %r" % messages)
    ok("refused: wrong password")


if __name__ == "__main__":
    harness.main(run, lambda: "security: passed")
