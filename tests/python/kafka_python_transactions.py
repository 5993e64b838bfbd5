#!/usr/bin/env python3
"""Transactions (exactly-once) with kafka-python against a running Brook broker.

Usage: kafka_python_transactions.py BOOTSTRAP        (e.g. 127.0.0.1:40123)

  * creates an input topic (2 partitions) and an output topic (1 partition);
  * a KafkaProducer(transactional_id=..., enable_idempotence=True) runs
    init_transactions(), then transaction 1 (3 records per partition,
    commit_transaction), transaction 2 (3 more, abort_transaction) and
    transaction 3 (3 more, commit_transaction). While transaction 2 is open (its
    records flushed), a read_committed consumer's end_offsets (the last stable
    offset) stays where transaction 1 ended, while read_uncommitted end_offsets
    have moved past transaction 2's records;
  * a KafkaConsumer(isolation_level='read_committed') reading from the beginning
    gets exactly the records of transactions 1 and 3 at the offsets their send
    futures reported, in order per partition, none of transaction 2's (they come
    before transaction 3's, so waiting for transaction 3's last record
    suffices); one with isolation_level='read_uncommitted' gets all 9 per
    partition;
  * consume-transform-produce: transaction 4 sends the transformed records to
    the output topic and calls send_offsets_to_transaction for a group (the
    offset of the last committed record on each input partition). Before the
    commit list_consumer_group_offsets shows -1; after it, those offsets.
    Transaction 5 sends more output and a higher offset (the end of each input
    partition), then aborts: the committed offsets do not move, also once
    transaction 6 has begun (added the output partition, so transaction 5 has
    completed). Transaction 6 sends one record with the higher offsets and
    commits: the offsets move. A read_committed consumer of the output topic
    reads transaction 4's and 6's records and none of transaction 5's.

kafka-python 2.3.3 cannot abort a transaction while a produce request is in flight
(its sender thread spins on a ValueError), so the script flushes before each
abort_transaction().

Exits 0 on success; on failure prints "FAIL: ..." and exits non-zero. A watchdog
(BROOK_TEST_TIMEOUT_S, default 60 s) bounds the run. BROOK_TEST_DEBUG=1 turns on
kafka-python's debug log (requests and responses) on stderr.
"""

import logging
import os
import sys
import time
import uuid

import harness  # first: importing arms the watchdog before the client library loads
from harness import WAIT_S, CheckFailed, check, check_eq, eventually_eq, ok, step

if os.environ.get("BROOK_TEST_DEBUG"):
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

NUM_PARTITIONS = 2
PER_PARTITION = 3
PER_CALL_TIMEOUT_S = 15


def client_kwargs(bootstrap):
    return dict(
        bootstrap_servers=[bootstrap],
        client_id="brook-kafka-python-transactions-test",
        request_timeout_ms=PER_CALL_TIMEOUT_S * 1000,
        api_version_auto_timeout_ms=5000,
        reconnect_backoff_max_ms=1000,
    )


def reader(bootstrap, isolation_level, partitions):
    """A consumer without a group, assigned `partitions` and positioned at the beginning."""
    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        fetch_max_wait_ms=100,
        **client_kwargs(bootstrap),
    )
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    return consumer


def read_until(consumer, last_values, tag):
    """Polls until every partition in `last_values` ({TopicPartition: value}) delivered that value.

    Returns {partition: [(offset, value)]} in delivery order.
    """
    got = {tp.partition: [] for tp in consumer.assignment()}
    deadline = time.monotonic() + WAIT_S

    def done():
        return all(any(v == value for _, v in got[tp.partition]) for tp, value in last_values.items())

    while not done():
        if time.monotonic() > deadline:
            raise CheckFailed("%s: the last expected records %r did not arrive in %d s; got %r"
                              % (tag, last_values, WAIT_S, got))
        for tp, records in consumer.poll(timeout_ms=200).items():
            for r in records:
                got[tp.partition].append((r.offset, r.value.decode()))
    return got


def run(bootstrap):
    suffix = uuid.uuid4().hex[:10]
    topic = "brook-kpy-txn-in-%s" % suffix
    out_topic = "brook-kpy-txn-out-%s" % suffix
    transactional_id = "brook-kpy-txn-%s" % suffix
    group = "brook-kpy-txn-ctp-%s" % suffix
    print("[topic=%s out=%s transactional_id=%s group=%s] starting against %s"
          % (topic, out_topic, transactional_id, group, bootstrap), flush=True)
    tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
    out_tp = TopicPartition(out_topic, 0)
    closing = []

    try:
        step("KafkaAdminClient / create_topics")
        admin = KafkaAdminClient(**client_kwargs(bootstrap))
        closing.append(admin)
        admin.create_topics([NewTopic(name=topic, num_partitions=NUM_PARTITIONS, replication_factor=1),
                             NewTopic(name=out_topic, num_partitions=1, replication_factor=1)],
                            timeout_ms=10000)
        ok("topics created: input with %d partitions, output with 1" % NUM_PARTITIONS)

        step("KafkaProducer(transactional_id) / init_transactions")
        producer = KafkaProducer(
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=20,
            max_block_ms=PER_CALL_TIMEOUT_S * 1000,
            transaction_timeout_ms=30000,
            **client_kwargs(bootstrap),
        )
        closing.append(producer)
        producer.init_transactions()
        ok("init_transactions")

        # End offsets through ListOffsets with either isolation level (no group, no position).
        step("end offset consumers")
        committed_view = KafkaConsumer(group_id=None, isolation_level="read_committed", **client_kwargs(bootstrap))
        uncommitted_view = KafkaConsumer(group_id=None, isolation_level="read_uncommitted",
                                         **client_kwargs(bootstrap))
        closing += [committed_view, uncommitted_view]

        def stable_ends():
            return {tp.partition: o for tp, o in committed_view.end_offsets(tps).items()}

        def high_watermarks():
            return {tp.partition: o for tp, o in uncommitted_view.end_offsets(tps).items()}

        # (partition, value) -> offset of the input records, from their send futures.
        delivered = {}

        def send_in(prefix):
            """Sends PER_PARTITION records to each input partition; returns ({partition: [values]}, futures)."""
            values = {p: [] for p in range(NUM_PARTITIONS)}
            futures = []
            for p in range(NUM_PARTITIONS):
                for i in range(PER_PARTITION):
                    v = "%s-p%d-%d" % (prefix, p, i)
                    futures.append((p, v, producer.send(topic, key=b"key-%d" % i, value=v.encode(), partition=p)))
                    values[p].append(v)
            return values, futures

        def wait_sent(futures):
            for p, v, f in futures:
                delivered[(p, v)] = f.get(timeout=PER_CALL_TIMEOUT_S).offset

        def with_offsets(p, values):
            return [(delivered[(p, v)], v) for v in values]

        # --- commit, abort, commit -------------------------------------------------------
        step("transaction 1: send + commit_transaction")
        producer.begin_transaction()
        c1, futures = send_in("c1")
        producer.commit_transaction()
        wait_sent(futures)
        ok("transaction 1 (%d records per partition) committed" % PER_PARTITION)
        eventually_eq(stable_ends, high_watermarks(), "last stable offset after transaction 1 (= high watermark)")
        after1 = high_watermarks()

        step("transaction 2: send + flush")
        producer.begin_transaction()
        a2, futures = send_in("a2")
        # Also needed before abort_transaction with kafka-python 2.3.3 (see transaction 5).
        producer.flush(timeout=PER_CALL_TIMEOUT_S)
        wait_sent(futures)
        step("end offsets while transaction 2 is open")
        hw2 = high_watermarks()
        check(all(hw2[p] >= after1[p] + PER_PARTITION for p in range(NUM_PARTITIONS)),
              "high watermarks %r with transaction 2 written do not cover its records (after transaction 1: %r)"
              % (hw2, after1))
        check_eq(stable_ends(), after1, "read_committed end offsets (last stable offset) while transaction 2 is open")
        ok("while transaction 2 is open the last stable offset stays at %r (high watermarks %r)" % (after1, hw2))
        step("transaction 2: abort_transaction")
        producer.abort_transaction()
        ok("transaction 2 aborted")

        step("transaction 3: send + commit_transaction")
        producer.begin_transaction()
        c3, futures = send_in("c3")
        producer.commit_transaction()
        wait_sent(futures)
        ok("transaction 3 committed after the abort")
        eventually_eq(stable_ends, high_watermarks(), "last stable offset after transaction 3 (= high watermark)")
        end3 = high_watermarks()
        ok("after transaction 3 the last stable offset is the high watermark %r" % end3)

        last_values = {tp: c3[tp.partition][-1] for tp in tps}

        # --- read_committed / read_uncommitted --------------------------------------------
        step("read_committed consumer")
        consumer = reader(bootstrap, "read_committed", tps)
        closing.append(consumer)
        got = read_until(consumer, last_values, "read_committed consumer")
        consumer.close()
        for p in range(NUM_PARTITIONS):
            check_eq(got[p], with_offsets(p, c1[p] + c3[p]),
                     "(offset, value) the read_committed consumer read from partition %d" % p)
        ok("read_committed consumer read exactly the committed records at their sent offsets, "
           "none of the aborted ones")
        last_committed_offset = {p: got[p][-1][0] for p in range(NUM_PARTITIONS)}

        step("read_uncommitted consumer")
        consumer = reader(bootstrap, "read_uncommitted", tps)
        closing.append(consumer)
        got = read_until(consumer, last_values, "read_uncommitted consumer")
        consumer.close()
        for p in range(NUM_PARTITIONS):
            check_eq(got[p], with_offsets(p, c1[p] + a2[p] + c3[p]),
                     "(offset, value) the read_uncommitted consumer read from partition %d" % p)
        ok("read_uncommitted consumer read all records, the aborted ones included")

        # --- consume-transform-produce -------------------------------------------------------
        def group_offsets():
            res = admin.list_consumer_group_offsets(group, partitions=tps)
            return {tp.partition: om.offset for tp, om in res.items() if tp.topic == topic}

        def offsets_for(per_partition):
            return {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in per_partition.items()}

        def send_out(values):
            return [producer.send(out_topic, value=v.encode(), partition=0) for v in values]

        step("transaction 4: send output + send_offsets_to_transaction")
        producer.begin_transaction()
        out4 = ["t4:%s" % v.upper() for p in range(NUM_PARTITIONS) for v in c1[p] + c3[p]]
        futures = send_out(out4)
        producer.send_offsets_to_transaction(offsets_for(last_committed_offset), group)
        step("list_consumer_group_offsets while transaction 4 is open")
        check_eq(group_offsets(), {p: -1 for p in range(NUM_PARTITIONS)},
                 "list_consumer_group_offsets while transaction 4 (with offsets) is open")
        ok("offsets sent in an open transaction are not visible (-1)")
        step("transaction 4: commit_transaction")
        producer.commit_transaction()
        for f in futures:
            f.get(timeout=PER_CALL_TIMEOUT_S)
        ok("transaction 4 (output records + send_offsets_to_transaction) committed")
        eventually_eq(group_offsets, last_committed_offset, "list_consumer_group_offsets after transaction 4")
        ok("list_consumer_group_offsets shows %r after the commit" % last_committed_offset)

        step("transaction 5: send output + send_offsets_to_transaction + abort")
        producer.begin_transaction()
        futures = send_out(["t5:%s" % v for p in range(NUM_PARTITIONS) for v in c3[p]])
        # kafka-python 2.3.3 cannot abort while a produce request is in flight: the sender's
        # abort_undrained_batches raises ValueError for the drained batch and its I/O thread
        # spins forever (fixed upstream by dpkp/kafka-python#3010). So flush before aborting.
        producer.flush(timeout=PER_CALL_TIMEOUT_S)
        for f in futures:
            f.get(timeout=PER_CALL_TIMEOUT_S)
        producer.send_offsets_to_transaction(offsets_for(end3), group)
        producer.abort_transaction()
        check_eq(group_offsets(), last_committed_offset, "list_consumer_group_offsets after transaction 5 aborted")
        ok("transaction 5 (offsets %r) aborted; the committed offsets did not move" % end3)

        step("transaction 6: send output + send_offsets_to_transaction + commit")
        producer.begin_transaction()
        futures = send_out(["t6:done"])
        producer.flush(timeout=PER_CALL_TIMEOUT_S)
        for f in futures:
            f.get(timeout=PER_CALL_TIMEOUT_S)
        # The output partition is in transaction 6 now, so transaction 5 has completed.
        check_eq(group_offsets(), last_committed_offset,
                 "list_consumer_group_offsets once transaction 6 has begun (transaction 5 completed)")
        ok("once the next transaction has begun the committed offsets are still %r" % last_committed_offset)
        producer.send_offsets_to_transaction(offsets_for(end3), group)
        producer.commit_transaction()
        eventually_eq(group_offsets, end3, "list_consumer_group_offsets after transaction 6")
        ok("transaction 6 (offsets %r) committed after the aborted one" % end3)

        step("read_committed consumer of the output topic")
        consumer = reader(bootstrap, "read_committed", [out_tp])
        closing.append(consumer)
        got = read_until(consumer, {out_tp: "t6:done"}, "read_committed consumer of the output topic")
        consumer.close()
        check_eq([v for _, v in got[0]], out4 + ["t6:done"],
                 "values the read_committed consumer read from the output topic")
        ok("read_committed consumer of the output topic read the records of transactions 4 and 6, none of 5")
    finally:
        for c in reversed(closing):
            try:
                c.close(timeout=5) if isinstance(c, KafkaProducer) else c.close()
            except Exception as e:  # noqa: BLE001 - closing is best effort
                print("warning: closing %s: %s" % (type(c).__name__, e), file=sys.stderr)


def main():
    harness.main(run, lambda: "kafka-python %s transactions: passed" % __import__("kafka").__version__)


if __name__ == "__main__":
    main()
