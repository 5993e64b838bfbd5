#!/usr/bin/env node
'use strict'
/*
 * Real-client test of Brook with kafkajs 2.2.4: admin API + producer.
 *
 * Usage: node kafkajs_admin_producer.js BOOTSTRAP      (e.g. 127.0.0.1:40123)
 *
 *  - admin.createTopics (3 partitions, waitForLeaders) returns true; creating it
 *    again returns false (TOPIC_ALREADY_EXISTS);
 *  - admin.listTopics contains it; admin.fetchTopicMetadata shows 3 partitions
 *    each with a leader that is a broker of admin.describeCluster;
 *  - the producer (acks -1, each send awaited) sends 300 messages with headers
 *    (a duplicated header key) and explicit timestamps base + i: keyed messages
 *    through the default partitioner, explicit partitions with some null keys,
 *    a gzip send, and a sendBatch; every RecordMetadata must have error code 0
 *    and a baseOffset equal to the number of messages sent to that partition
 *    before;
 *  - admin.fetchTopicOffsets: per partition low 0 and high == count sent;
 *  - admin.fetchTopicOffsetsByTimestamp: first offset with timestamp >= ts,
 *    and for a ts after the last message the high watermark (kafkajs turns the
 *    broker's -1 into the latest offset, see src/admin/index.js);
 *  - admin.deleteTopics removes it and listTopics no longer lists it.
 *
 * kafkajs' consumer needs consumer groups, which Brook does not implement yet,
 * so nothing is consumed here.
 *
 * Exits 0 on success; prints "FAIL: ..." naming what differed and exits
 * non-zero otherwise. A watchdog (BROOK_TEST_TIMEOUT_S, default 60 s) bounds
 * the whole run.
 */

const crypto = require('crypto')
const { Kafka, logLevel, Partitioners, CompressionTypes } = require('kafkajs')
const { step, show, check, checkEq, main } = require('./harness')

const NUM_PARTITIONS = 3
const NUM_MESSAGES = 300

// kafkajs logs every error response at ERROR level, including the
// TOPIC_ALREADY_EXISTS that the duplicate createTopics below provokes on
// purpose; only that one expected line is dropped, everything else is printed.
let expectTopicExistsLog = false
const logCreator = () => ({ namespace, label, log }) => {
  if (expectTopicExistsLog && log.error === 'Topic creation errors') return
  console.error(JSON.stringify({ level: label, logger: namespace, ...log }))
}

async function run(bootstrap) {
  const topic = `brook-kjs-${crypto.randomBytes(5).toString('hex')}`
  const tag = `[topic=${topic}]`
  console.log(`${tag} starting against ${bootstrap}`)

  const kafka = new Kafka({
    clientId: 'brook-kafkajs-test',
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    logCreator,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    // Few, short retries: a retry must not hide a broker error, and an absent
    // broker must fail fast.
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
  })
  const admin = kafka.admin()
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  })

  step('admin.connect')
  await admin.connect()
  try {
    // --- create -------------------------------------------------------------
    step('admin.createTopics')
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10000,
    })
    checkEq(created, true, `${tag} admin.createTopics result`)

    step('admin.createTopics (again)')
    expectTopicExistsLog = true
    const createdAgain = await admin
      .createTopics({
        topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
        waitForLeaders: true,
        timeout: 10000,
      })
      .finally(() => {
        expectTopicExistsLog = false
      })
    checkEq(createdAgain, false, `${tag} admin.createTopics of an existing topic (false = TOPIC_ALREADY_EXISTS)`)

    step('admin.listTopics')
    const topics = await admin.listTopics()
    check(topics.includes(topic), `${tag} admin.listTopics() does not contain the new topic: ${show(topics)}`)

    step('admin.describeCluster')
    const cluster = await admin.describeCluster()
    const brokerIds = cluster.brokers.map(b => b.nodeId)
    check(brokerIds.length > 0, `${tag} admin.describeCluster() lists no brokers: ${show(cluster)}`)

    step('admin.fetchTopicMetadata')
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    checkEq(md.topics.map(t => t.name), [topic], `${tag} fetchTopicMetadata topic names`)
    const partitionsMd = md.topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
    checkEq(
      partitionsMd.map(p => p.partitionId),
      [...Array(NUM_PARTITIONS).keys()],
      `${tag} fetchTopicMetadata partition ids`
    )
    for (const p of partitionsMd) {
      const what = `${tag} fetchTopicMetadata partition ${p.partitionId}`
      checkEq(p.partitionErrorCode, 0, `${what} partitionErrorCode`)
      check(
        brokerIds.includes(p.leader),
        `${what}: leader ${p.leader} is not one of the brokers ${show(brokerIds)}`
      )
      check(p.replicas.includes(p.leader), `${what}: replicas ${show(p.replicas)} lack the leader ${p.leader}`)
      check(p.isr.includes(p.leader), `${what}: isr ${show(p.isr)} lacks the leader ${p.leader}`)
    }

    // --- produce ------------------------------------------------------------
    const base = Date.now() - 3600 * 1000
    const messages = []
    for (let i = 0; i < NUM_MESSAGES; i++) {
      const explicit = i >= 100 && i < 150
      messages.push({
        key: explicit && i % 10 === 0 ? null : `key-${i}`,
        value: i === 42 ? null : `value-${i}-${'x'.repeat(i % 17)}`,
        headers: { h: ['1', '2'], idx: String(i) },
        timestamp: String(base + i),
        ...(explicit ? { partition: i % NUM_PARTITIONS } : {}),
      })
    }
    // Where each message should land: the same partitioner kafkajs uses (keys
    // are always set where no explicit partition is given, so it is a pure
    // function of the key).
    const partitioner = Partitioners.DefaultPartitioner()
    const expectedPartition = messages.map(message =>
      partitioner({ topic, partitionMetadata: partitionsMd, message })
    )

    const counts = Array(NUM_PARTITIONS).fill(0)
    const offsetOf = Array(NUM_MESSAGES)
    // Checks a RecordMetadata[] answer for messages [from, to) and assigns offsets.
    const account = (what, result, from, to) => {
      const perPartition = new Map()
      for (let i = from; i < to; i++) {
        const p = expectedPartition[i]
        if (!perPartition.has(p)) perPartition.set(p, [])
        perPartition.get(p).push(i)
      }
      const got = result
        .map(r => ({ topicName: r.topicName, partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset }))
        .sort((a, b) => a.partition - b.partition)
      const expected = [...perPartition.keys()]
        .sort((a, b) => a - b)
        .map(p => ({ topicName: topic, partition: p, errorCode: 0, baseOffset: String(counts[p]) }))
      checkEq(got, expected, `${tag} ${what} RecordMetadata (topicName, partition, errorCode, baseOffset)`)
      for (const [p, idxs] of perPartition) {
        idxs.forEach((i, k) => {
          offsetOf[i] = counts[p] + k
        })
        counts[p] += idxs.length
      }
    }

    step('producer.connect')
    await producer.connect()
    try {
      const sends = [
        { what: 'send #1 (keyed, default partitioner)', from: 0, to: 60, extra: {} },
        { what: 'send #2 (keyed, default partitioner)', from: 60, to: 100, extra: {} },
        { what: 'send #3 (explicit partitions, some null keys)', from: 100, to: 150, extra: {} },
        { what: 'send #4 (keyed, gzip)', from: 150, to: 200, extra: { compression: CompressionTypes.GZIP } },
      ]
      for (const s of sends) {
        step(`producer ${s.what}`)
        const result = await producer.send({
          topic,
          acks: -1,
          timeout: 10000,
          messages: messages.slice(s.from, s.to),
          ...s.extra,
        })
        account(s.what, result, s.from, s.to)
      }
      step('producer.sendBatch')
      const batchResult = await producer.sendBatch({
        acks: -1,
        timeout: 10000,
        // two entries for the same topic: kafkajs merges them in this order
        topicMessages: [
          { topic, messages: messages.slice(200, 250) },
          { topic, messages: messages.slice(250, 300) },
        ],
      })
      account('sendBatch', batchResult, 200, 300)
    } finally {
      await producer.disconnect()
    }
    checkEq(counts.reduce((a, b) => a + b, 0), NUM_MESSAGES, `${tag} total messages accounted`)

    // --- offsets --------------------------------------------------------------
    step('admin.fetchTopicOffsets')
    const offsets = (await admin.fetchTopicOffsets(topic)).slice().sort((a, b) => a.partition - b.partition)
    checkEq(
      offsets.map(o => ({ partition: o.partition, low: o.low, high: o.high, offset: o.offset })),
      counts.map((c, p) => ({ partition: p, low: '0', high: String(c), offset: String(c) })),
      `${tag} admin.fetchTopicOffsets`
    )

    const expectForTs = (p, ts) => {
      let best = null
      for (let i = 0; i < NUM_MESSAGES; i++) {
        if (expectedPartition[i] === p && base + i >= ts && (best === null || offsetOf[i] < best)) {
          best = offsetOf[i]
        }
      }
      // no such message: kafkajs replaces the broker's -1 with the high watermark
      return best === null ? String(counts[p]) : String(best)
    }
    const probes = [
      ['before first', base - 1000],
      ['first', base],
      ['middle', base + NUM_MESSAGES / 2 + 1],
      ['last', base + NUM_MESSAGES - 1],
      ['after last', base + NUM_MESSAGES + 1000],
    ]
    for (let i = 7; i < NUM_MESSAGES; i += 37) probes.push([`message ${i}`, base + i])
    for (const [name, ts] of probes) {
      step(`admin.fetchTopicOffsetsByTimestamp(${name})`)
      const res = (await admin.fetchTopicOffsetsByTimestamp(topic, ts))
        .slice()
        .sort((a, b) => a.partition - b.partition)
      checkEq(
        res.map(r => ({ partition: r.partition, offset: r.offset })),
        counts.map((_, p) => ({ partition: p, offset: expectForTs(p, ts) })),
        `${tag} admin.fetchTopicOffsetsByTimestamp(${name}: ts=${ts}, base=${base})`
      )
    }

    // --- delete -------------------------------------------------------------
    step('admin.deleteTopics')
    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    step('admin.listTopics after delete')
    const deadline = Date.now() + 10000
    for (;;) {
      const after = await admin.listTopics()
      if (!after.includes(topic)) break
      check(Date.now() < deadline, `${tag} admin.listTopics() still lists the topic 10 s after deleteTopics`)
      await new Promise(r => setTimeout(r, 200))
    }

    console.log(
      `${tag} ok: ${NUM_MESSAGES} messages, per-partition counts ${show(counts)}, ` +
        `${probes.length} timestamp probes ok, topic deleted`
    )
  } finally {
    await admin.disconnect()
  }
}

main(run, 'admin/producer')
