#!/usr/bin/env node
'use strict'
/*
 * The built-in schema registry with @kafkajs/confluent-schema-registry 3.3.0 and kafkajs.
 *
 * Usage: node kafkajs_schema_registry.js BOOTSTRAP     (BROOK_HTTP=host:port names the registry)
 *
 *  1. registry.register an Avro schema under <topic>-value: an id; the same schema again:
 *     the same id; getLatestSchemaId and getSchema answer for it.
 *  2. registry.encode three events, a kafkajs producer sends them, a consumer reads them
 *     back and registry.decode gives the events that were sent.
 *  3. An incompatible change is refused (409); a compatible v2 (a field with a default)
 *     gets a new id, and v1-encoded data decodes.
 *  4. Protobuf: a .proto schema registers, encodes and decodes; changing a field's type
 *     from int32 to string is refused (409), adding a field is not.
 *
 * Prints "ok: ..." per check and "kafkajs <version> schema registry: passed" at the end.
 */

const crypto = require('crypto')
const { Kafka, logLevel } = require('kafkajs')
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')
const { check, checkEq, ok, step, waitFor, main } = require('./harness')

const event = fields => JSON.stringify({ type: 'record', name: 'CreditCheck', namespace: 'saga', fields })
const V1 = event([
  { name: 'id', type: 'string' },
  { name: 'passed', type: 'boolean' },
])
const V2 = event([
  { name: 'id', type: 'string' },
  { name: 'passed', type: 'boolean' },
  { name: 'score', type: 'int', default: 0 },
])
const BAD = event([
  { name: 'id', type: 'long' },
  { name: 'passed', type: 'boolean' },
])

async function run(bootstrap) {
  const registry = new SchemaRegistry({ host: `http://${process.env.BROOK_HTTP}` })
  const topic = `credit-checks-${crypto.randomBytes(4).toString('hex')}`
  const subject = `${topic}-value`
  const kafka = new Kafka({ clientId: 'brook-registry', brokers: [bootstrap], logLevel: logLevel.NOTHING })

  step('register')
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: V1 }, { subject })
  check(Number.isInteger(id), `an id (got ${id})`)
  const again = await registry.register({ type: SchemaType.AVRO, schema: V1 }, { subject })
  checkEq(again.id, id, 'the same schema registered again')
  checkEq(await registry.getLatestSchemaId(subject), id, 'getLatestSchemaId')
  const fetched = await registry.getSchema(id)
  checkEq(fetched.name, 'saga.CreditCheck', 'getSchema parses to the record')
  ok(`registered ${subject} as id ${id}`)

  step('produce and consume encoded events')
  const sent = [
    { id: 'c-1', passed: true },
    { id: 'c-2', passed: false },
    { id: 'c-3', passed: true },
  ]
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({
    topic,
    messages: await Promise.all(sent.map(async e => ({ key: e.id, value: await registry.encode(id, e) }))),
  })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `g-${topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push({ ...(await registry.decode(message.value)) })
    },
  })
  await waitFor('three events', () => got.length >= sent.length, () => `got ${got.length}`)
  await consumer.disconnect()
  checkEq(got, sent, 'decoded events')
  ok('encode, produce, consume, decode')

  step('compatibility')
  let refused = null
  try {
    await registry.register({ type: SchemaType.AVRO, schema: BAD }, { subject })
  } catch (e) {
    refused = e
  }
  check(refused && refused.status === 409, `an incompatible change is refused with 409 (got ${refused && refused.status})`)
  const v2 = await registry.register({ type: SchemaType.AVRO, schema: V2 }, { subject })
  check(v2.id !== id, 'v2 gets an id of its own')
  const old = await registry.encode(id, sent[0])
  checkEq({ ...(await registry.decode(old)) }, sent[0], 'v1 data decodes')
  ok('incompatible refused, compatible v2 registered')

  step('protobuf')
  const proto = fields => `syntax = "proto3";
package saga;
message Payment {
${fields}
}
`
  const protoSubject = `${topic}-proto-value`
  const P1 = proto('  string id = 1;\n  int32 cents = 2;')
  const p1 = await registry.register({ type: SchemaType.PROTOBUF, schema: P1 }, { subject: protoSubject })
  const encoded = await registry.encode(p1.id, { id: 'p-1', cents: 250 })
  const decoded = await registry.decode(encoded)
  checkEq({ id: decoded.id, cents: decoded.cents }, { id: 'p-1', cents: 250 }, 'protobuf round trip')
  let protoRefused = null
  try {
    await registry.register(
      { type: SchemaType.PROTOBUF, schema: proto('  string id = 1;\n  string cents = 2;') },
      { subject: protoSubject }
    )
  } catch (e) {
    protoRefused = e
  }
  check(protoRefused && protoRefused.status === 409, `int32 to string is refused (got ${protoRefused && protoRefused.status})`)
  const p2 = await registry.register(
    { type: SchemaType.PROTOBUF, schema: proto('  string id = 1;\n  int32 cents = 2;\n  string note = 3;') },
    { subject: protoSubject }
  )
  check(p2.id !== p1.id, 'adding a field registers a new version')
  ok('protobuf: register, encode, decode; breaking change refused')
}

main(run, 'schema registry')
