#!/usr/bin/env node
'use strict'
/*
 * Aggregate streams with kafkajs: the command handler of docs/event-streams.md.
 *
 * Usage: node kafkajs_streams.js BOOTSTRAP    (BROOK_HTTP=host:port names the HTTP listener)
 *        with BROOK_STREAMS_RACE=TOPIC: only the race below, on that existing indexed topic
 *
 *  - continue: for idempotence on and off, a producer whose conditional append is refused
 *    (INVALID_RECORD) sends again with the same instance; the stream holds the accepted
 *    events with revisions 0..n-1.
 *  - race: WRITERS producers (half idempotent) append APPENDS_PER_WRITER events each to random
 *    aggregates of AGGREGATES, loading the head over HTTP and appending with
 *    brook.expected.revision, retrying on conflict. Prints "appended=N conflicts=M".
 */

const http = require('http')
const { Kafka, logLevel } = require('kafkajs')
const { check, checkEq, ok, step, main } = require('./harness')

const HTTP = process.env.BROOK_HTTP || ''
const WRITERS = 4
const APPENDS_PER_WRITER = 40
const AGGREGATES = 100

function httpGet(path) {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${HTTP}${path}`, res => {
        let body = ''
        res.on('data', chunk => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }))
      })
      .on('error', reject)
  })
}

/** The stream's last revision, or null when it has no events. */
async function head(topic, key) {
  const { status, body } = await httpGet(`/v1/streams/${topic}/${encodeURIComponent(key)}/head`)
  if (status === 404) return null
  checkEq(status, 200, `head of ${key}`)
  return body.revision
}

/** Appends one event conditionally: true, or false on a conflict (INVALID_RECORD). */
async function append(producer, topic, key, value, revision) {
  const expected = revision === null ? 'no-stream' : String(revision)
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key, value: JSON.stringify(value), headers: { 'brook.expected.revision': expected } }],
    })
    return true
  } catch (e) {
    if (e.type === 'INVALID_RECORD') return false
    throw e
  }
}

function newProducer(kafka, idempotent) {
  return kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : 5, retry: { retries: 3 } })
}

async function goOnAfterARefusal(kafka, topic) {
  for (const idempotent of [true, false]) {
    step(`a refused conditional append, idempotent=${idempotent}`)
    const producer = newProducer(kafka, idempotent)
    await producer.connect()
    const key = `loan-${idempotent}`
    check(await append(producer, topic, key, { n: 0 }, null), 'first append')
    check(!(await append(producer, topic, key, { n: 1 }, 7)), 'a wrong expected revision is refused')
    for (const n of [1, 2]) check(await append(producer, topic, key, { n }, n - 1), `append ${n} after the refusal`)
    const { body } = await httpGet(`/v1/streams/${topic}/${key}`)
    checkEq(body.events.map(e => [e.revision, e.value.n]), [[0, 0], [1, 1], [2, 2]], 'the stream')
    await producer.disconnect()
    ok(`idempotent=${idempotent}: the producer goes on after a refused batch`)
  }
}

async function race(kafka, topic) {
  step(`${WRITERS} writers racing`)
  let appended = 0
  let conflicts = 0
  const writer = async n => {
    const producer = newProducer(kafka, n % 2 === 0)
    await producer.connect()
    for (let i = 0; i < APPENDS_PER_WRITER; i++) {
      const key = `agg-${Math.floor(Math.random() * AGGREGATES)}`
      for (;;) {
        if (await append(producer, topic, key, { writer: `js-${n}`, i }, await head(topic, key))) {
          appended++
          break
        }
        conflicts++
      }
    }
    await producer.disconnect()
  }
  await Promise.all([...Array(WRITERS).keys()].map(writer))
  checkEq(appended, WRITERS * APPENDS_PER_WRITER, 'appends')
  console.log(`appended=${appended} conflicts=${conflicts}`)
}

async function run(bootstrap) {
  check(HTTP, 'BROOK_HTTP must name the HTTP listener')
  const kafka = new Kafka({ clientId: 'streams', brokers: [bootstrap], logLevel: logLevel.NOTHING })
  const raceTopic = process.env.BROOK_STREAMS_RACE
  if (raceTopic) return race(kafka, raceTopic)
  const topic = `streams-js-${Date.now()}`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'brook.key.index', value: 'true' }] }] })
  await admin.disconnect()
  await goOnAfterARefusal(kafka, topic)
}

main(run, 'streams', 90)
