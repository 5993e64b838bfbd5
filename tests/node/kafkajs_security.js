#!/usr/bin/env node
'use strict'
/*
 * TLS and SASL with kafkajs 2.2.4 against a Brook broker.
 *
 * Usage: node kafkajs_security.js SASL_SSL_BOOTSTRAP, with the environment the Rust test
 * sets: BROOK_SASL_SSL, BROOK_SASL_PLAINTEXT, BROOK_SSL (listener addresses), BROOK_CA,
 * BROOK_CLIENT_CERT, BROOK_CLIENT_KEY, BROOK_USER, BROOK_PASSWORD.
 *
 * For each of `ssl: { ca }` with `sasl: { mechanism: 'scram-sha-256' }` and
 * 'scram-sha-512', `sasl: { mechanism: 'plain' }` without TLS, and `ssl: { ca, cert, key }`
 * (mutual TLS): an idempotent producer sends 5 records, a consumer in a group reads them back
 * from the beginning and commits, and admin.fetchOffsets shows offset 5. A wrong password
 * fails with KafkaJSSASLAuthenticationError and Kafka's message.
 */

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const { step, check, checkEq, ok, waitFor, main } = require('./harness')

const E = process.env
const RECORDS = 5

function cases() {
  const ssl = { ca: [fs.readFileSync(E.BROOK_CA, 'utf-8')] }
  const user = { username: E.BROOK_USER, password: E.BROOK_PASSWORD }
  return [
    ['sasl_ssl-scram-sha-256', { brokers: [E.BROOK_SASL_SSL], ssl, sasl: { mechanism: 'scram-sha-256', ...user } }],
    ['sasl_ssl-scram-sha-512', { brokers: [E.BROOK_SASL_SSL], ssl, sasl: { mechanism: 'scram-sha-512', ...user } }],
    ['sasl_plaintext-plain', { brokers: [E.BROOK_SASL_PLAINTEXT], sasl: { mechanism: 'plain', ...user } }],
    [
      'ssl-client-certificate',
      {
        brokers: [E.BROOK_SSL],
        ssl: { ...ssl, cert: fs.readFileSync(E.BROOK_CLIENT_CERT, 'utf-8'), key: fs.readFileSync(E.BROOK_CLIENT_KEY, 'utf-8') },
      },
    ],
  ]
}

async function roundtrip(name, config) {
  const kafka = new Kafka({ clientId: 'kafkajs-security', logLevel: logLevel.NOTHING, ...config })
  const topic = `kjs-sec-${name}`
  step(`${name}: produce`)
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  await producer.send({ topic, messages: [...Array(RECORDS).keys()].map(i => ({ key: 'k', value: `v${i}` })) })
  await producer.disconnect()
  step(`${name}: consume in a group and commit`)
  const groupId = `kjs-sec-group-${name}-${Date.now()}`
  const consumer = kafka.consumer({ groupId })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await consumer.run({ autoCommit: true, autoCommitThreshold: 1, eachMessage: async ({ message }) => got.push(message.value.toString()) })
  await waitFor('the records', () => got.length >= RECORDS, () => `got ${got.length}`)
  checkEq(got, [...Array(RECORDS).keys()].map(i => `v${i}`), 'records read back')
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  checkEq(offsets[0].partitions[0].offset, String(RECORDS), 'committed offset')
  await admin.disconnect()
  ok(name)
}

async function run() {
  for (const [name, config] of cases()) {
    await roundtrip(name, config)
  }
  step('refused: wrong password')
  const [, scram] = cases()[0]
  const kafka = new Kafka({
    clientId: 'kafkajs-security',
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    ...scram,
    sasl: { ...scram.sasl, password: 'wrong' },
  })
  const admin = kafka.admin()
  try {
    await admin.connect()
  } catch (e) {
    check(e.name === 'KafkaJSSASLAuthenticationError', `unexpected error ${e.name}: ${e.message}`)
    check(
      e.message.includes('Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256'),
      `unexpected message: ${e.message}`
    )
    ok(`refused: wrong password (${e.name})`)
    return
  }
  throw new Error('a wrong password was accepted')
}

main(run, 'security', 90)
