#!/usr/bin/env node
'use strict'
/*
 * Real-client test of Brook's transactions (exactly-once) with kafkajs 2.2.4.
 *
 * Usage: node kafkajs_transactions.js BOOTSTRAP      (e.g. 127.0.0.1:40123)
 *
 * An input topic (2 partitions), an output topic (1 partition), a
 * transactional id and groups, all with a random suffix. One producer
 * ({ transactionalId, idempotent: true, maxInFlightRequests: 1 }):
 *  1. Transaction 1 sends 3 records to each partition and commits;
 *     transaction 2 sends 3 more per partition and aborts; transaction 3
 *     sends 3 more per partition and commits. Each transaction is one batch
 *     per partition followed by its marker, so the records sit at offsets
 *     0-2 (committed), 4-6 (aborted) and 8-10 (committed), the markers at 3,
 *     7 and 11. While transaction 2 is open, the last stable offset
 *     (admin.fetchTopicOffsets, a READ_COMMITTED ListOffsets) stays at 4, the
 *     start of the open transaction; after transaction 3 it is 12.
 *  2. A consumer with readUncommitted: false (fromBeginning) reads exactly
 *     the committed records, in order per partition with their offsets, none
 *     of the aborted ones (they come before the last committed records, so
 *     waiting for those suffices). A consumer with readUncommitted: true
 *     reads all 9 records per partition, aborted ones included.
 *  3. Consume-transform-produce: transaction 4 sends transformed records to
 *     the output topic and calls transaction.sendOffsets for a group
 *     (offset 11 on both input partitions). Before the commit
 *     admin.fetchOffsets does not show the pending offsets (-1); after it,
 *     11. Transaction 5 sends more output and sendOffsets(12), then aborts:
 *     the committed offsets stay 11, also once transaction 6 has added the
 *     output partition (by then transaction 5 has certainly completed).
 *     Transaction 6 sends one more output record with sendOffsets(12) and
 *     commits: the offsets are 12. A
 *     read_committed consumer of the output topic reads transaction 4's and
 *     6's records and none of transaction 5's.
 *
 * Prints one "ok: ..." line per check. Exits 0 on success; prints
 * "FAIL: ..." naming what differed and exits non-zero otherwise. A watchdog
 * (BROOK_TEST_TIMEOUT_S, default 75 s) bounds the whole run. Set
 * BROOK_TEST_DEBUG=1 for kafkajs' debug log (requests and responses) on
 * stderr.
 */

const crypto = require('crypto')
const { Kafka, logLevel } = require('kafkajs')
const { step, show, check, checkEq, ok, waitFor, eventuallyEq, main } = require('./harness')

const NUM_PARTITIONS = 2
const PARTITIONS = [...Array(NUM_PARTITIONS).keys()]
const PER_PARTITION = 3

const DEBUG = Boolean(process.env.BROOK_TEST_DEBUG)

// Log lines go to stderr, which the harness shows only on failure.
const logCreator = () => ({ namespace, label, log }) => {
  const { message, ...rest } = log
  console.error(JSON.stringify({ level: label, logger: namespace, message, ...rest }))
}

async function run(bootstrap) {
  const suffix = crypto.randomBytes(5).toString('hex')
  const topic = `brook-kjs-txn-in-${suffix}`
  const outTopic = `brook-kjs-txn-out-${suffix}`
  const transactionalId = `brook-kjs-txn-${suffix}`
  const ctpGroup = `brook-kjs-txn-ctp-${suffix}`
  console.log(
    `[topic=${topic} out=${outTopic} transactionalId=${transactionalId} group=${ctpGroup}] ` +
      `starting against ${bootstrap}`
  )

  const kafka = new Kafka({
    clientId: 'brook-kafkajs-transactions-test',
    brokers: [bootstrap],
    logLevel: DEBUG ? logLevel.DEBUG : logLevel.ERROR,
    logCreator,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const admin = kafka.admin()
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    transactionTimeout: 30000,
  })
  const consumers = []

  // A consumer (its own group) that records everything it reads.
  const startReader = async (name, topics, readUncommitted) => {
    const consumer = kafka.consumer({
      groupId: `brook-kjs-txn-${name}-${suffix}`,
      readUncommitted,
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    })
    const r = { name, consumer, received: [], crash: null }
    consumer.on(consumer.events.CRASH, e => {
      r.crash = e.payload.error
    })
    consumers.push(r)
    await consumer.connect()
    await consumer.subscribe({ topics, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: t, partition, message }) => {
        r.received.push({
          topic: t,
          partition,
          offset: Number(message.offset),
          value: message.value && message.value.toString(),
        })
      },
    })
    return r
  }
  const stateOf = r =>
    `${r.name} received ${show(r.received.map(m => `${m.partition}@${m.offset}:${m.value}`))}` +
    (r.crash ? ` crashed: ${r.crash.name}: ${r.crash.message}` : '')
  const stop = async r => {
    await r.consumer.disconnect()
  }
  // What a reader got from one partition of `t`: [{ offset, value }] in delivery order.
  const readFrom = (r, t, p) =>
    r.received.filter(m => m.topic === t && m.partition === p).map(m => ({ offset: m.offset, value: m.value }))

  // The records of one transaction on the input topic: PER_PARTITION per partition.
  const txnRecords = prefix => {
    const messages = []
    for (const p of PARTITIONS) {
      for (let i = 0; i < PER_PARTITION; i++) {
        messages.push({ key: `key-${i}`, value: `${prefix}-p${p}-${i}`, partition: p })
      }
    }
    return messages
  }
  const sendIn = async (txn, prefix) => {
    const messages = txnRecords(prefix)
    const res = await txn.send({ topic, acks: -1, timeout: 10000, messages })
    for (const r of res) checkEq(r.errorCode, 0, `send ${prefix}: partition ${r.partition} error code`)
    return messages
  }
  const lastStableOffsets = async t =>
    (await admin.fetchTopicOffsets(t))
      .map(o => ({ partition: o.partition, offset: o.offset }))
      .sort((a, b) => a.partition - b.partition)
  const groupOffsets = async () => {
    const res = await admin.fetchOffsets({ groupId: ctpGroup, topics: [topic] })
    checkEq(res.map(t => t.topic), [topic], 'fetchOffsets topics')
    return res[0].partitions
      .map(p => ({ partition: p.partition, offset: p.offset }))
      .sort((a, b) => a.partition - b.partition)
  }
  const offsetsAll = offset => PARTITIONS.map(partition => ({ partition, offset: String(offset) }))
  const inputOffsets = offset => [
    { topic, partitions: PARTITIONS.map(partition => ({ partition, offset: String(offset) })) },
  ]

  step('admin.connect')
  await admin.connect()
  try {
    step('admin.createTopics')
    const created = await admin.createTopics({
      topics: [
        { topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 },
        { topic: outTopic, numPartitions: 1, replicationFactor: 1 },
      ],
      waitForLeaders: true,
      timeout: 10000,
    })
    checkEq(created, true, 'admin.createTopics result')
    ok(`topics created: input with ${NUM_PARTITIONS} partitions, output with 1`)

    step('producer.connect (InitProducerId with the transactional id)')
    await producer.connect()
    ok('transactional producer connected (InitProducerId)')

    // --- 1. commit, abort, commit -----------------------------------------
    step('transaction 1: send + commit')
    let txn = await producer.transaction()
    const committed1 = await sendIn(txn, 'c1')
    await txn.commit()
    ok(`transaction 1 (${PER_PARTITION} records per partition) committed`)

    step('transaction 2: send + abort')
    txn = await producer.transaction()
    const aborted2 = await sendIn(txn, 'a2')
    step('last stable offset while transaction 2 is open')
    checkEq(
      await lastStableOffsets(topic),
      offsetsAll(PER_PARTITION + 1),
      'last stable offset (READ_COMMITTED ListOffsets) while transaction 2 is open'
    )
    ok(`while transaction 2 is open the last stable offset stays at ${PER_PARTITION + 1} (its first offset)`)
    step('transaction 2: abort')
    await txn.abort()
    ok('transaction 2 aborted')

    step('transaction 3: send + commit')
    txn = await producer.transaction()
    const committed3 = await sendIn(txn, 'c3')
    await txn.commit()
    ok('transaction 3 committed after the abort')

    const end = 3 * (PER_PARTITION + 1) // three batches, three markers
    step('last stable offset after transaction 3')
    await eventuallyEq(() => lastStableOffsets(topic), offsetsAll(end), 'last stable offset after transaction 3')
    ok(`last stable offset is ${end} (records and markers of three transactions)`)

    // Offsets per partition: batch b (0-based) holds offsets b*(N+1) .. b*(N+1)+N-1, its marker b*(N+1)+N.
    const expectedFrom = (batches, p) =>
      batches.flatMap(([b, msgs]) =>
        msgs
          .filter(m => m.partition === p)
          .map((m, i) => ({ offset: b * (PER_PARTITION + 1) + i, value: m.value }))
      )

    // --- 2. read_committed and read_uncommitted consumers --------------------
    step('read_committed consumer')
    const rc = await startReader('committed', [topic], false)
    const lastOffset = end - 2 // the last record of transaction 3
    const gotThrough = (r, t, p, offset) => readFrom(r, t, p).some(m => m.offset >= offset)
    await waitFor(
      'the read_committed consumer to reach the last committed record on every partition',
      () => PARTITIONS.every(p => gotThrough(rc, topic, p, lastOffset)),
      () => stateOf(rc)
    )
    for (const p of PARTITIONS) {
      checkEq(
        readFrom(rc, topic, p),
        expectedFrom([[0, committed1], [2, committed3]], p),
        `records (offset, value) the read_committed consumer read from partition ${p}`
      )
    }
    ok('read_committed consumer read exactly the committed records, in order, none of the aborted ones')

    step('read_uncommitted consumer')
    const ru = await startReader('uncommitted', [topic], true)
    await waitFor(
      'the read_uncommitted consumer to reach the last record on every partition',
      () => PARTITIONS.every(p => gotThrough(ru, topic, p, lastOffset)),
      () => stateOf(ru)
    )
    for (const p of PARTITIONS) {
      checkEq(
        readFrom(ru, topic, p),
        expectedFrom([[0, committed1], [1, aborted2], [2, committed3]], p),
        `records (offset, value) the read_uncommitted consumer read from partition ${p}`
      )
    }
    ok('read_uncommitted consumer read all records, the aborted ones included')
    await stop(rc)
    await stop(ru)

    // --- 3. consume-transform-produce with sendOffsets --------------------------
    const transform = (msgs, tag) =>
      msgs.map(m => ({ key: m.key, value: `${tag}:${m.value.toUpperCase()}` }))
    const sendOut = async (t, messages, tag) => {
      const res = await t.send({ topic: outTopic, acks: -1, timeout: 10000, messages })
      for (const r of res) checkEq(r.errorCode, 0, `send ${tag} to the output topic: error code`)
    }

    step('transaction 4: send output + sendOffsets')
    txn = await producer.transaction()
    const out4 = transform([...committed1, ...committed3], 't4')
    await sendOut(txn, out4, 't4')
    await txn.sendOffsets({ consumerGroupId: ctpGroup, topics: inputOffsets(end - 1) })
    step('fetchOffsets while transaction 4 is open')
    checkEq(await groupOffsets(), offsetsAll(-1), 'admin.fetchOffsets while transaction 4 (with sendOffsets) is open')
    ok('offsets sent in an open transaction are not visible to fetchOffsets (-1)')
    step('transaction 4: commit')
    await txn.commit()
    step('fetchOffsets after transaction 4')
    await eventuallyEq(groupOffsets, offsetsAll(end - 1), 'admin.fetchOffsets after transaction 4 committed')
    ok(`transaction 4 (output records + sendOffsets) committed; fetchOffsets shows ${end - 1} per partition`)

    step('transaction 5: send output + sendOffsets + abort')
    txn = await producer.transaction()
    const out5 = transform(committed3, 't5')
    await sendOut(txn, out5, 't5')
    await txn.sendOffsets({ consumerGroupId: ctpGroup, topics: inputOffsets(end) })
    await txn.abort()
    step('fetchOffsets after transaction 5')
    checkEq(await groupOffsets(), offsetsAll(end - 1), 'admin.fetchOffsets after transaction 5 (sendOffsets) aborted')
    ok(`transaction 5 (sendOffsets ${end}) aborted; the committed offsets stay ${end - 1}`)

    step('transaction 6: send output + sendOffsets + commit')
    txn = await producer.transaction()
    const out6 = [{ key: 'done', value: 't6:done' }]
    await sendOut(txn, out6, 't6')
    // The output partition is in transaction 6 now, so transaction 5 has completed (its
    // markers are written): its offsets would show by now if the abort had not dropped them.
    step('fetchOffsets once transaction 6 has begun')
    checkEq(await groupOffsets(), offsetsAll(end - 1), 'admin.fetchOffsets after transaction 5 completed')
    ok(`once the next transaction has begun the committed offsets are still ${end - 1}`)
    await txn.sendOffsets({ consumerGroupId: ctpGroup, topics: inputOffsets(end) })
    await txn.commit()
    step('fetchOffsets after transaction 6')
    await eventuallyEq(groupOffsets, offsetsAll(end), 'admin.fetchOffsets after transaction 6 committed')
    ok(`transaction 6 (sendOffsets ${end}) committed after the aborted one; fetchOffsets shows ${end}`)

    step('read_committed consumer of the output topic')
    const ro = await startReader('output', [outTopic], false)
    await waitFor(
      "the read_committed consumer of the output topic to reach transaction 6's record",
      () => readFrom(ro, outTopic, 0).some(m => m.value === 't6:done'),
      () => stateOf(ro)
    )
    checkEq(
      readFrom(ro, outTopic, 0).map(m => m.value),
      [...out4, ...out6].map(m => m.value),
      'records the read_committed consumer read from the output topic'
    )
    ok('read_committed consumer of the output topic read the records of transactions 4 and 6, none of 5')
    await stop(ro)
  } finally {
    for (const r of consumers) {
      await r.consumer.disconnect().catch(() => {})
    }
    await producer.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
  }
}

main(run, 'transactions', 75)
