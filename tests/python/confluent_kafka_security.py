#!/usr/bin/env python3
"""TLS and SASL with confluent-kafka-python (its bundled librdkafka) against a Brook broker.

Usage: confluent_kafka_security.py SASL_SSL_BOOTSTRAP, with the environment the Rust test
sets: BROOK_SASL_SSL, BROOK_SASL_PLAINTEXT, BROOK_SSL (listener addresses), BROOK_CA (the
CA certificate), BROOK_CLIENT_CERT / BROOK_CLIENT_KEY (a client certificate the broker
trusts), BROOK_USER / BROOK_PASSWORD (a SCRAM user).

For each of SASL_SSL with SCRAM-SHA-256, SASL_SSL with SCRAM-SHA-512, SASL_PLAINTEXT with
PLAIN and SSL with a client certificate: a Producer (idempotent) sends 5 records, a Consumer
in a group reads them back from the beginning and commits, and committed() shows offset 5.
A wrong password and an unknown user fail with librdkafka's authentication error, and a
client that skips SASL on a SASL listener gets nothing.
"""

import os
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import check, check_eq, ok, step

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

E = os.environ
RECORDS = 5


def cases():
    ca = {"ssl.ca.location": E["BROOK_CA"]}
    user = {"sasl.username": E["BROOK_USER"], "sasl.password": E["BROOK_PASSWORD"]}
    return [
        ("sasl_ssl-scram-sha-256", dict(ca, **user, **{"bootstrap.servers": E["BROOK_SASL_SSL"],
                                                      "security.protocol": "SASL_SSL",
                                                      "sasl.mechanism": "SCRAM-SHA-256"})),
        ("sasl_ssl-scram-sha-512", dict(ca, **user, **{"bootstrap.servers": E["BROOK_SASL_SSL"],
                                                      "security.protocol": "SASL_SSL",
                                                      "sasl.mechanism": "SCRAM-SHA-512"})),
        ("sasl_plaintext-plain", dict(user, **{"bootstrap.servers": E["BROOK_SASL_PLAINTEXT"],
                                               "security.protocol": "SASL_PLAINTEXT",
                                               "sasl.mechanism": "PLAIN"})),
        ("ssl-client-certificate", dict(ca, **{"bootstrap.servers": E["BROOK_SSL"],
                                              "security.protocol": "SSL",
                                              "ssl.certificate.location": E["BROOK_CLIENT_CERT"],
                                              "ssl.key.location": E["BROOK_CLIENT_KEY"]})),
    ]


def roundtrip(name, config):
    topic = "cf-sec-%s" % name
    step("%s: produce" % name)
    errors = []
    producer = Producer(dict(config, **{"enable.idempotence": True}))
    for i in range(RECORDS):
        producer.produce(topic, key=b"k", value=b"v%d" % i,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    check_eq(producer.flush(30), 0, "records left unsent")
    check_eq(errors, [], "delivery errors")
    step("%s: consume in a group and commit" % name)
    group = "cf-sec-group-%s-%s" % (name, uuid.uuid4().hex[:6])
    consumer = Consumer(dict(config, **{"group.id": group, "auto.offset.reset": "earliest",
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
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=15)
    check_eq(committed[0].offset, RECORDS, "committed offset")
    consumer.close()
    ok(name)


def refused(name, config):
    step("refused: %s" % name)
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=5)
    except KafkaException as e:
        error = e.args[0]
        check(error.code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT, KafkaError._TIMED_OUT),
              "%s: unexpected error %s" % (name, error))
        ok("refused: %s (%s)" % (name, error.name()))
        return
    raise harness.CheckFailed("%s: the broker served a client that should be refused" % name)


def run(_bootstrap):
    for name, config in cases():
        roundtrip(name, config)
    scram = dict(cases()[0][1])
    refused("wrong password", dict(scram, **{"sasl.password": "wrong"}))
    refused("unknown user", dict(scram, **{"sasl.username": "nobody"}))
    refused("no SASL on a SASL listener", {"bootstrap.servers": E["BROOK_SASL_PLAINTEXT"]})


if __name__ == "__main__":
    harness.main(run, lambda: "security: passed")
