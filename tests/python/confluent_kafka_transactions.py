#!/usr/bin/env python3
"""Transactions (exactly-once) with confluent-kafka-python (librdkafka) against a running Brook broker.

Usage: confluent_kafka_transactions.py BOOTSTRAP        (e.g. 127.0.0.1:40123)

  * AdminClient.create_topics: an input topic (2 partitions), an output topic (1);
  * a Producer with transactional.id runs init_transactions, then transaction 1
    (3 records per partition, commit_transaction), transaction 2 (3 more, flushed,
    abort_transaction) and transaction 3 (3 more, commit_transaction); every
    record is delivered. While transaction 2 is open, AdminClient.list_offsets
    (latest) with READ_COMMITTED (the last stable offset) stays where
    transaction 1 ended, while READ_UNCOMMITTED (the high watermark) has moved on;
  * a Consumer with isolation.level=read_committed reading from the beginning
    gets exactly the records of transactions 1 and 3 at the offsets their
    delivery reports named, in order per partition, none of transaction 2's
    (they come before transaction 3's, so waiting for those suffices); one with
    isolation.level=read_uncommitted gets all of them;
  * consume-transform-produce: a read_committed Consumer in a group subscribes
    to the input topic and reads the committed records; transaction 4 produces
    them transformed to the output topic and calls send_offsets_to_transaction
    with the consumer's positions and consumer_group_metadata(). While it is
    open, committed() through a read_uncommitted consumer of the same group
    (OffsetFetch without require_stable) shows no offset; after the commit the
    group consumer's committed() (require_stable) shows the positions.
    Transaction 5 produces more output and sends higher offsets, then aborts:
    committed() does not move, also once transaction 6 has produced (so
    transaction 5 has completed). Transaction 6 sends the higher offsets and
    commits: committed() shows them. A read_committed consumer of the output
    topic gets transaction 4's and 6's records and none of transaction 5's.

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero. A watchdog
(BROOK_TEST_TIMEOUT_S, default 60 s) bounds the run. BROOK_TEST_DEBUG=1 turns on
librdkafka's debug log (eos, protocol, cgrp, fetch, msg) on stderr.
"""

import os
import sys
import time
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import WAIT_S, CheckFailed, check, check_eq, eventually_eq, ok, step

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, IsolationLevel, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # noqa: E402

NUM_PARTITIONS = 2
PER_PARTITION = 3
PER_CALL_TIMEOUT_S = 15
DEBUG = bool(os.environ.get("BROOK_TEST_DEBUG"))


def client_conf(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "brook-confluent-kafka-transactions-test",
        "socket.timeout.ms": PER_CALL_TIMEOUT_S * 1000,
        "reconnect.backoff.max.ms": 1000,
    }
    if DEBUG:
        conf["debug"] = "eos,protocol,cgrp,fetch,msg,broker"
    conf.update(extra)
    return conf


def consumer(bootstrap, group, isolation_level, **extra):
    return Consumer(client_conf(
        bootstrap,
        **{
            "group.id": group,
            "isolation.level": isolation_level,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
        },
        **extra,
    ))


def read_until(c, last_values, tag):
    """Polls until every partition in `last_values` ({partition: value}) delivered that value.

    Returns {partition: [(offset, value)]} in delivery order.
    """
    got = {p: [] for p in last_values}
    deadline = time.monotonic() + WAIT_S

    def done():
        return all(any(v == value for _, v in got[p]) for p, value in last_values.items())

    while not done():
        if time.monotonic() > deadline:
            raise CheckFailed("%s: the last expected records %r did not arrive in %d s; got %r (assignment %r)"
                              % (tag, last_values, WAIT_S, got, c.assignment()))
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            raise CheckFailed("%s: consumer error %s" % (tag, msg.error()))
        got.setdefault(msg.partition(), []).append((msg.offset(), msg.value().decode()))
    return got


def run(bootstrap):
    suffix = uuid.uuid4().hex[:10]
    topic = "brook-ck-txn-in-%s" % suffix
    out_topic = "brook-ck-txn-out-%s" % suffix
    transactional_id = "brook-ck-txn-%s" % suffix
    group = "brook-ck-txn-ctp-%s" % suffix
    print("[topic=%s out=%s transactional_id=%s group=%s] starting against %s"
          % (topic, out_topic, transactional_id, group, bootstrap), flush=True)
    tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
    closing = []

    try:
        step("AdminClient.create_topics")
        admin = AdminClient(client_conf(bootstrap))
        futures = admin.create_topics([NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1),
                                       NewTopic(out_topic, num_partitions=1, replication_factor=1)],
                                      operation_timeout=10, request_timeout=PER_CALL_TIMEOUT_S)
        for f in futures.values():
            f.result(timeout=PER_CALL_TIMEOUT_S)
        ok("topics created: input with %d partitions, output with 1" % NUM_PARTITIONS)

        def end_offsets(isolation_level):
            futs = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, isolation_level=isolation_level,
                                      request_timeout=PER_CALL_TIMEOUT_S)
            return {tp.partition: f.result(timeout=PER_CALL_TIMEOUT_S).offset for tp, f in futs.items()}

        def stable_ends():
            return end_offsets(IsolationLevel.READ_COMMITTED)

        def high_watermarks():
            return end_offsets(IsolationLevel.READ_UNCOMMITTED)

        step("Producer(transactional.id) / init_transactions")
        producer = Producer(client_conf(
            bootstrap,
            **{
                "transactional.id": transactional_id,
                "enable.idempotence": True,
                "transaction.timeout.ms": 30000,
                "linger.ms": 5,
            },
        ))
        producer.init_transactions(PER_CALL_TIMEOUT_S)
        ok("init_transactions")

        # Delivery reports: (topic, partition, value) -> offset, and any errors.
        delivered = {}
        delivery_errors = []

        def on_delivery(err, msg):
            if err is not None:
                delivery_errors.append((msg.topic(), msg.partition(), msg.value(), err))
            else:
                delivered[(msg.topic(), msg.partition(), msg.value().decode())] = msg.offset()

        def produce(t, p, value):
            producer.produce(t, value=value.encode(), key=b"k", partition=p, on_delivery=on_delivery)

        def produce_in(prefix):
            values = {p: [] for p in range(NUM_PARTITIONS)}
            for p in range(NUM_PARTITIONS):
                for i in range(PER_PARTITION):
                    v = "%s-p%d-%d" % (prefix, p, i)
                    produce(topic, p, v)
                    values[p].append(v)
            return values

        def flush(what):
            remaining = producer.flush(PER_CALL_TIMEOUT_S)
            check_eq(remaining, 0, "messages still undelivered after flush (%s)" % what)
            check_eq(delivery_errors, [], "delivery errors (%s)" % what)

        def with_offsets(t, p, values):
            return [(delivered[(t, p, v)], v) for v in values]

        # --- commit, abort, commit -------------------------------------------------------
        step("transaction 1: produce + commit_transaction")
        producer.begin_transaction()
        c1 = produce_in("c1")
        producer.commit_transaction(PER_CALL_TIMEOUT_S)
        flush("transaction 1")
        check_eq(len(delivered), NUM_PARTITIONS * PER_PARTITION, "records delivered in transaction 1")
        ok("transaction 1 (%d records per partition) committed, all delivered" % PER_PARTITION)
        eventually_eq(stable_ends, high_watermarks(), "last stable offset after transaction 1 (= high watermark)")
        after1 = high_watermarks()

        step("transaction 2: produce + flush")
        producer.begin_transaction()
        a2 = produce_in("a2")
        flush("transaction 2")
        step("end offsets while transaction 2 is open")
        hw2 = high_watermarks()
        check(all(hw2[p] >= after1[p] + PER_PARTITION for p in range(NUM_PARTITIONS)),
              "high watermarks %r with transaction 2 written do not cover its records (after transaction 1: %r)"
              % (hw2, after1))
        check_eq(stable_ends(), after1, "READ_COMMITTED list_offsets (last stable offset) while transaction 2 is open")
        ok("while transaction 2 is open the last stable offset stays at %r (high watermarks %r)" % (after1, hw2))
        step("transaction 2: abort_transaction")
        producer.abort_transaction(PER_CALL_TIMEOUT_S)
        ok("transaction 2 aborted")

        step("transaction 3: produce + commit_transaction")
        producer.begin_transaction()
        c3 = produce_in("c3")
        producer.commit_transaction(PER_CALL_TIMEOUT_S)
        flush("transaction 3")
        check_eq(len(delivered), 3 * NUM_PARTITIONS * PER_PARTITION, "records delivered in transactions 1-3")
        ok("transaction 3 committed after the abort")
        eventually_eq(stable_ends, high_watermarks(), "last stable offset after transaction 3 (= high watermark)")
        end3 = high_watermarks()
        ok("after transaction 3 the last stable offset is the high watermark %r" % end3)

        last_values = {p: c3[p][-1] for p in range(NUM_PARTITIONS)}

        # --- read_committed / read_uncommitted --------------------------------------------
        def assigned_reader(isolation_level, partitions, name):
            c = consumer(bootstrap, "brook-ck-txn-%s-%s" % (name, suffix), isolation_level)
            closing.append(c)
            c.assign([TopicPartition(tp.topic, tp.partition, confluent_kafka.OFFSET_BEGINNING) for tp in partitions])
            return c

        step("read_committed consumer")
        c = assigned_reader("read_committed", tps, "committed")
        got = read_until(c, last_values, "read_committed consumer")
        c.close()
        for p in range(NUM_PARTITIONS):
            check_eq(got[p], with_offsets(topic, p, c1[p] + c3[p]),
                     "(offset, value) the read_committed consumer read from partition %d" % p)
        ok("read_committed consumer read exactly the committed records at their delivered offsets, "
           "none of the aborted ones")

        step("read_uncommitted consumer")
        c = assigned_reader("read_uncommitted", tps, "uncommitted")
        got = read_until(c, last_values, "read_uncommitted consumer")
        c.close()
        for p in range(NUM_PARTITIONS):
            check_eq(got[p], with_offsets(topic, p, c1[p] + a2[p] + c3[p]),
                     "(offset, value) the read_uncommitted consumer read from partition %d" % p)
        ok("read_uncommitted consumer read all records, the aborted ones included")

        # --- consume-transform-produce -------------------------------------------------------
        step("group consumer subscribes and reads the input")
        ctp = consumer(bootstrap, group, "read_committed")
        closing.append(ctp)
        ctp.subscribe([topic])
        got = read_until(ctp, last_values, "group consumer (read_committed) of the input topic")
        for p in range(NUM_PARTITIONS):
            check_eq([v for _, v in got[p]], c1[p] + c3[p], "values the group consumer read from partition %d" % p)
        positions = {tp.partition: tp.offset for tp in ctp.position(tps)}
        # Past the last committed record; librdkafka also moves past the commit marker behind
        # it once it has fetched that (control records take an offset but are not delivered).
        for p in range(NUM_PARTITIONS):
            after_last = delivered[(topic, p, c3[p][-1])] + 1
            check(positions[p] in (after_last, after_last + 1) and positions[p] <= end3[p],
                  "group consumer position on partition %d: %r, expected %d (after the last committed record) "
                  "or %d (after its marker)" % (p, positions[p], after_last, after_last + 1))
        ok("group consumer (subscribed, read_committed) read the committed input; positions %r" % positions)

        # committed() of the group consumer uses OffsetFetch with require_stable (read_committed);
        # a read_uncommitted consumer of the same group (never subscribed) asks without it.
        viewer = consumer(bootstrap, group, "read_uncommitted")
        closing.append(viewer)

        def committed(c):
            res = c.committed(tps, timeout=PER_CALL_TIMEOUT_S)
            for tp in res:
                check(tp.error is None, "committed(): error for partition %d: %s" % (tp.partition, tp.error))
            return {tp.partition: tp.offset for tp in res}

        def send_offsets(per_partition):
            producer.send_offsets_to_transaction(
                [TopicPartition(topic, p, o) for p, o in per_partition.items()],
                ctp.consumer_group_metadata(), PER_CALL_TIMEOUT_S)

        step("transaction 4: produce output + send_offsets_to_transaction")
        producer.begin_transaction()
        out4 = ["t4:%s" % v.upper() for p in range(NUM_PARTITIONS) for _, v in got[p]]
        for v in out4:
            produce(out_topic, 0, v)
        send_offsets(positions)
        step("committed() while transaction 4 is open")
        check_eq(committed(viewer), {p: confluent_kafka.OFFSET_INVALID for p in range(NUM_PARTITIONS)},
                 "committed() (without require_stable) while transaction 4 with offsets is open")
        ok("offsets sent in an open transaction are not visible to committed() (OFFSET_INVALID)")
        step("transaction 4: commit_transaction")
        producer.commit_transaction(PER_CALL_TIMEOUT_S)
        flush("transaction 4")
        step("committed() after transaction 4")
        eventually_eq(lambda: committed(ctp), positions, "group consumer committed() after transaction 4")
        check_eq(committed(viewer), positions, "committed() without require_stable after transaction 4")
        ok("transaction 4 (output + send_offsets_to_transaction) committed; committed() shows %r" % positions)

        higher = {p: o + 1 for p, o in positions.items()}
        step("transaction 5: produce output + send_offsets_to_transaction + abort_transaction")
        producer.begin_transaction()
        for p in range(NUM_PARTITIONS):
            for v in c3[p]:
                produce(out_topic, 0, "t5:%s" % v)
        flush("transaction 5")
        send_offsets(higher)
        producer.abort_transaction(PER_CALL_TIMEOUT_S)
        check_eq(committed(ctp), positions, "group consumer committed() after transaction 5 aborted")
        ok("transaction 5 (offsets %r) aborted; committed() did not move" % higher)

        step("transaction 6: produce output + send_offsets_to_transaction + commit_transaction")
        producer.begin_transaction()
        produce(out_topic, 0, "t6:done")
        flush("transaction 6")
        # The output partition is in transaction 6 now, so transaction 5 has completed.
        check_eq(committed(viewer), positions, "committed() once transaction 6 has produced (transaction 5 completed)")
        ok("once the next transaction has produced, committed() still shows %r" % positions)
        send_offsets(higher)
        producer.commit_transaction(PER_CALL_TIMEOUT_S)
        eventually_eq(lambda: committed(ctp), higher, "group consumer committed() after transaction 6")
        ok("transaction 6 (offsets %r) committed after the aborted one" % higher)

        step("read_committed consumer of the output topic")
        c = assigned_reader("read_committed", [TopicPartition(out_topic, 0)], "output")
        got = read_until(c, {0: "t6:done"}, "read_committed consumer of the output topic")
        c.close()
        check_eq([v for _, v in got[0]], out4 + ["t6:done"],
                 "values the read_committed consumer read from the output topic")
        ok("read_committed consumer of the output topic read the records of transactions 4 and 6, none of 5")
    finally:
        for c in reversed(closing):
            try:
                c.close()
            except Exception as e:  # noqa: BLE001 - closing is best effort
                if not (isinstance(e, RuntimeError) and "closed" in str(e)):
                    print("warning: closing %s: %s" % (type(c).__name__, e), file=sys.stderr)


def main():
    harness.main(run, lambda: "confluent-kafka %s (librdkafka %s) transactions: passed"
                 % (confluent_kafka.__version__, confluent_kafka.libversion()[0]))


if __name__ == "__main__":
    main()
