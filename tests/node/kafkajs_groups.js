#!/usr/bin/env node
'use strict'
/*
 * Real-client test of Brook's consumer group coordinator with kafkajs 2.2.4.
 *
 * Usage: node kafkajs_groups.js BOOTSTRAP      (e.g. 127.0.0.1:40123)
 *
 * One topic (4 partitions) and one group, both with a random suffix:
 *  1. 80 keyed messages (20 per partition) are read by consumer A
 *     (consumer.run + eachMessage, autoCommit off), which then commits
 *     explicitly (offset 20 and a metadata string per partition);
 *     admin.fetchOffsets shows exactly that. While A runs: describeGroups
 *     (Stable, protocol type "consumer", one member holding all 4 partitions),
 *     listGroups (the group, protocol type "consumer"), deleteGroups fails with
 *     GROUP_NOT_EMPTY and resetOffsets refuses a running group.
 *  2. Consumer B joins: A rejoins, and A and B each hold a nonempty share of
 *     the 4 partitions, together all of them, no partition twice (checked on
 *     the GROUP_JOIN events and on describeGroups' decoded member
 *     assignments). Neither gets an already committed message again.
 *  3. B disconnects (LeaveGroup): A gets all 4 partitions back.
 *  4. A disconnects: the group is Empty but still listed. 20 more messages
 *     are produced; a new consumer C (fromBeginning) in the group reads
 *     exactly those 20, none of the 80 old ones (it resumed from the committed
 *     offsets), and commits offset 25 per partition.
 *  5. admin.resetOffsets(earliest) on the empty group: fetchOffsets shows -2
 *     (Kafka stores the sentinel as committed); fetchOffsets(resolveOffsets)
 *     turns it into the low watermark 0, which fetchOffsets then shows.
 *  6. admin.deleteGroups: error code 0; listGroups no longer lists the group,
 *     describeGroups reports it Dead without members, and fetchOffsets
 *     finds no committed offsets (-1).
 *
 * Prints one "ok: ..." line per check. Exits 0 on success; prints
 * "FAIL: ..." naming what differed and exits non-zero otherwise. A watchdog
 * (BROOK_TEST_TIMEOUT_S, default 75 s) bounds the whole run.
 */

const crypto = require('crypto')
const util = require('util')
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs')
const { step, show, sleep, check, checkEq, ok, waitFor, main } = require('./harness')

const NUM_PARTITIONS = 4
const PARTITIONS = [...Array(NUM_PARTITIONS).keys()]
const OLD_MESSAGES = 80
const NEW_MESSAGES = 20

// kafkajs logs some expected conditions at ERROR level (rebalances, the
// provoked GROUP_NOT_EMPTY); they go to stderr, which the harness shows only
// on failure.
const logCreator = () => ({ namespace, label, log }) => {
  console.error(JSON.stringify({ level: label, logger: namespace, message: log.message, error: log.error }))
}

async function run(bootstrap) {
  const suffix = crypto.randomBytes(5).toString('hex')
  const topic = `brook-kjs-groups-${suffix}`
  const groupId = `brook-kjs-group-${suffix}`
  console.log(`[topic=${topic} group=${groupId}] starting against ${bootstrap}`)

  const kafka = new Kafka({
    clientId: 'brook-kafkajs-groups-test',
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    logCreator,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  const consumers = []

  // A group member with what it has seen: its latest assignment (from the
  // GROUP_JOIN instrumentation event), how often it joined, what it read.
  const newMember = name => {
    const consumer = kafka.consumer({
      groupId,
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 300,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    })
    const m = { name, consumer, assignment: null, memberId: null, joins: 0, received: [], crash: null }
    consumer.on(consumer.events.GROUP_JOIN, e => {
      m.assignment = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
      m.memberId = e.payload.memberId
      m.joins += 1
      console.log(`  ${name} joined (member ${e.payload.memberId}, leader ${e.payload.isLeader}): partitions ${show(m.assignment)}`)
    })
    consumer.on(consumer.events.CRASH, e => {
      m.crash = e.payload.error
    })
    consumers.push(m)
    return m
  }
  const start = async m => {
    await m.consumer.connect()
    await m.consumer.subscribe({ topics: [topic], fromBeginning: true })
    await m.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        m.received.push({
          partition,
          offset: Number(message.offset),
          key: message.key && message.key.toString(),
          value: message.value && message.value.toString(),
        })
      },
    })
  }
  const stateOf = m =>
    `${m.name}: joins=${m.joins} assignment=${show(m.assignment)} received=${m.received.length}` +
    (m.crash ? ` crashed: ${m.crash.name}: ${m.crash.message}` : '')
  const states = () => consumers.map(stateOf).join('; ')

  const describe = async () => {
    const { groups } = await admin.describeGroups([groupId])
    checkEq(groups.length, 1, 'describeGroups: number of groups returned')
    const g = groups[0]
    return {
      groupId: g.groupId,
      errorCode: g.errorCode,
      state: g.state,
      protocolType: g.protocolType,
      protocol: g.protocol,
      members: g.members
        .map(mem => {
          const decoded =
            mem.memberAssignment && mem.memberAssignment.length > 0
              ? AssignerProtocol.MemberAssignment.decode(mem.memberAssignment)
              : null
          const partitions = decoded && decoded.assignment[topic] ? decoded.assignment[topic] : []
          return { memberId: mem.memberId, partitions: partitions.slice().sort((a, b) => a - b) }
        })
        .sort((a, b) => (a.memberId < b.memberId ? -1 : 1)),
    }
  }
  const listed = async () => (await admin.listGroups()).groups.filter(g => g.groupId === groupId)
  const fetchOffsets = async (opts = {}) => {
    const res = await admin.fetchOffsets({ groupId, topics: [topic], ...opts })
    checkEq(res.map(t => t.topic), [topic], 'fetchOffsets topics')
    return res[0].partitions.slice().sort((a, b) => a.partition - b.partition)
  }
  const produce = async (prefix, count) => {
    const messages = []
    for (let i = 0; i < count; i++) {
      messages.push({ key: `key-${i}`, value: `${prefix}-${i}`, partition: i % NUM_PARTITIONS })
    }
    const res = await producer.send({ topic, acks: -1, timeout: 10000, messages })
    for (const r of res) checkEq(r.errorCode, 0, `produce ${prefix}: partition ${r.partition} error code`)
    return messages.map(m => ({ partition: m.partition, key: m.key, value: m.value }))
  }
  const sortMsgs = msgs =>
    msgs
      .map(m => ({ partition: m.partition, key: m.key, value: m.value }))
      .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))

  step('admin.connect')
  await admin.connect()
  step('producer.connect')
  await producer.connect()
  try {
    step('admin.createTopics')
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10000,
    })
    checkEq(created, true, 'admin.createTopics result')
    ok(`topic created with ${NUM_PARTITIONS} partitions`)

    // --- 1. one consumer reads everything and commits ----------------------
    step('produce old messages')
    const oldSent = await produce('old', OLD_MESSAGES)
    const perPartitionOld = OLD_MESSAGES / NUM_PARTITIONS

    step('consumer A joins and reads')
    const a = newMember('A')
    await start(a)
    await waitFor(
      `A to read all ${OLD_MESSAGES} messages`,
      () => a.received.length >= OLD_MESSAGES,
      states
    )
    checkEq(a.assignment, PARTITIONS, 'A (alone in the group) assignment')
    checkEq(sortMsgs(a.received), sortMsgs(oldSent), 'messages A read')
    for (const p of PARTITIONS) {
      const offsets = a.received.filter(m => m.partition === p).map(m => m.offset)
      checkEq(offsets, [...Array(perPartitionOld).keys()], `offsets A read from partition ${p}`)
    }
    ok(`consumer A alone got all ${NUM_PARTITIONS} partitions and read all ${OLD_MESSAGES} messages once`)

    step('A commitOffsets')
    await a.consumer.commitOffsets(
      PARTITIONS.map(p => ({ topic, partition: p, offset: String(perPartitionOld), metadata: `kjs-${p}` }))
    )
    step('admin.fetchOffsets after commit')
    checkEq(
      await fetchOffsets(),
      PARTITIONS.map(p => ({ partition: p, offset: String(perPartitionOld), metadata: `kjs-${p}` })),
      'admin.fetchOffsets after A committed'
    )
    ok(`explicit commit of offset ${perPartitionOld} with metadata per partition; fetchOffsets returns it`)

    step('describeGroups with A')
    const d1 = await describe()
    checkEq(
      { state: d1.state, protocolType: d1.protocolType, protocol: d1.protocol, errorCode: d1.errorCode },
      { state: 'Stable', protocolType: 'consumer', protocol: 'RoundRobinAssigner', errorCode: 0 },
      'describeGroups with A: state, protocol type, protocol'
    )
    checkEq(d1.members, [{ memberId: a.memberId, partitions: PARTITIONS }], 'describeGroups with A: members')
    ok('describeGroups: Stable, protocol type consumer, protocol RoundRobinAssigner, A holds all partitions')

    step('listGroups with A')
    checkEq(await listed(), [{ groupId, protocolType: 'consumer' }], 'listGroups entry for the group')
    ok('listGroups lists the group with protocol type consumer')

    step('deleteGroups of a non-empty group')
    let deleteError = null
    await admin.deleteGroups([groupId]).catch(e => {
      deleteError = e
    })
    check(deleteError !== null, 'deleteGroups of a group with a member succeeded; Kafka answers GROUP_NOT_EMPTY')
    checkEq(
      (deleteError.groups || []).map(g => ({ groupId: g.groupId, errorCode: g.errorCode })),
      [{ groupId, errorCode: 68 }],
      `deleteGroups of a non-empty group (68 = GROUP_NOT_EMPTY), error ${deleteError.name}: ${deleteError.message}`
    )
    ok('deleteGroups of a group with a member fails with GROUP_NOT_EMPTY')

    step('resetOffsets of a running group')
    let resetError = null
    await admin.resetOffsets({ groupId, topic, earliest: true }).catch(e => {
      resetError = e
    })
    check(resetError !== null, 'resetOffsets of a running group succeeded; kafkajs refuses unless it is Empty')
    check(
      /current state: Stable/.test(resetError.message),
      `resetOffsets of a running group: unexpected error ${resetError.name}: ${resetError.message}`
    )
    ok('resetOffsets refuses the running group (state Stable)')

    // --- 2. a second member: the partitions are split ---------------------
    step('consumer B joins')
    const joinsBeforeB = a.joins
    const b = newMember('B')
    await start(b)
    const split = () => {
      if (!a.assignment || !b.assignment) return false
      const all = [...a.assignment, ...b.assignment].sort((x, y) => x - y)
      return a.assignment.length > 0 && b.assignment.length > 0 && util.isDeepStrictEqual(all, PARTITIONS)
    }
    await waitFor('A and B to split the partitions', split, states)
    check(a.joins > joinsBeforeB, `A did not rejoin when B joined; ${states()}`)
    step('describeGroups with A and B')
    await waitFor(
      'describeGroups to show A and B with their assignments',
      async () => {
        const d = await describe()
        const expected = [
          { memberId: a.memberId, partitions: a.assignment },
          { memberId: b.memberId, partitions: b.assignment },
        ].sort((x, y) => (x.memberId < y.memberId ? -1 : 1))
        return d.state === 'Stable' && util.isDeepStrictEqual(d.members, expected)
      },
      () => states()
    )
    ok(`A ${show(a.assignment)} and B ${show(b.assignment)} split all ${NUM_PARTITIONS} partitions; describeGroups agrees`)

    // Both now start at the committed offsets: nothing to read.
    await sleep(1000)
    checkEq(a.received.length, OLD_MESSAGES, 'messages A has read after the rebalance (no redelivery)')
    checkEq(b.received.length, 0, 'messages B read from partitions whose messages were all committed')
    ok('after the rebalance neither member got a committed message again')

    // --- 3. B leaves: A takes over ------------------------------------------
    step('consumer B disconnects')
    const joinsBeforeLeave = a.joins
    await b.consumer.disconnect()
    await waitFor(
      'A to get all partitions back after B left',
      () => a.joins > joinsBeforeLeave && util.isDeepStrictEqual(a.assignment, PARTITIONS),
      states
    )
    step('describeGroups after B left')
    const d3 = await describe()
    checkEq(
      { state: d3.state, members: d3.members },
      { state: 'Stable', members: [{ memberId: a.memberId, partitions: PARTITIONS }] },
      'describeGroups after B left'
    )
    ok('B left the group; A holds all partitions again')

    // --- 4. the group empties; a new member resumes from the commits ---------
    step('consumer A disconnects')
    await a.consumer.disconnect()
    step('describeGroups of the empty group')
    const d4 = await describe()
    checkEq(
      { state: d4.state, protocolType: d4.protocolType, members: d4.members },
      { state: 'Empty', protocolType: 'consumer', members: [] },
      'describeGroups after every member left'
    )
    checkEq(await listed(), [{ groupId, protocolType: 'consumer' }], 'listGroups entry for the empty group')
    ok('after A left the group is Empty (protocol type consumer) and still listed')

    step('produce new messages')
    const newSent = await produce('new', NEW_MESSAGES)
    const perPartitionNew = NEW_MESSAGES / NUM_PARTITIONS
    step('consumer C resumes')
    const c = newMember('C')
    await start(c)
    await waitFor(`C to read ${NEW_MESSAGES} messages`, () => c.received.length >= NEW_MESSAGES, states)
    await sleep(1000) // anything older would arrive first; give duplicates a chance to show
    checkEq(c.assignment, PARTITIONS, 'C (alone in the group) assignment')
    checkEq(sortMsgs(c.received), sortMsgs(newSent), 'messages C read (only the new ones)')
    for (const p of PARTITIONS) {
      const offsets = c.received.filter(m => m.partition === p).map(m => m.offset)
      checkEq(
        offsets,
        [...Array(perPartitionNew).keys()].map(i => perPartitionOld + i),
        `offsets C read from partition ${p}`
      )
    }
    ok(`a new member resumed at the committed offsets: read the ${NEW_MESSAGES} new messages and none of the old`)

    step('C commitOffsets')
    const total = perPartitionOld + perPartitionNew
    await c.consumer.commitOffsets(PARTITIONS.map(p => ({ topic, partition: p, offset: String(total) })))
    await c.consumer.disconnect()
    step('fetchOffsets after C')
    checkEq(
      await fetchOffsets(),
      PARTITIONS.map(p => ({ partition: p, offset: String(total), metadata: null })),
      'admin.fetchOffsets after C committed (no metadata)'
    )
    ok(`fetchOffsets shows offset ${total} per partition after C committed`)

    // --- 5. reset on the empty group -------------------------------------------
    step('resetOffsets earliest')
    checkEq((await describe()).state, 'Empty', 'group state before resetOffsets')
    await admin.resetOffsets({ groupId, topic, earliest: true })
    checkEq(
      await fetchOffsets(),
      PARTITIONS.map(p => ({ partition: p, offset: '-2', metadata: null })),
      'admin.fetchOffsets after resetOffsets(earliest) (kafkajs commits the sentinel -2, Kafka stores it)'
    )
    ok('resetOffsets(earliest) on the empty group; fetchOffsets shows -2 (earliest)')

    step('fetchOffsets resolveOffsets')
    checkEq(
      await fetchOffsets({ resolveOffsets: true }),
      PARTITIONS.map(p => ({ partition: p, offset: '0', metadata: null })),
      'admin.fetchOffsets({ resolveOffsets: true }) after the reset'
    )
    checkEq(
      await fetchOffsets(),
      PARTITIONS.map(p => ({ partition: p, offset: '0', metadata: null })),
      'admin.fetchOffsets after resolveOffsets committed the low watermarks'
    )
    ok('fetchOffsets(resolveOffsets) committed the earliest offsets (0)')

    // --- 6. delete ------------------------------------------------------------
    step('deleteGroups')
    checkEq((await describe()).state, 'Empty', 'group state before deleteGroups')
    const deleted = await admin.deleteGroups([groupId])
    checkEq(
      deleted.map(r => ({ groupId: r.groupId, errorCode: r.errorCode })),
      [{ groupId, errorCode: 0 }],
      'admin.deleteGroups result'
    )
    checkEq(await listed(), [], 'listGroups entries for the deleted group')
    const d6 = await describe()
    checkEq({ state: d6.state, members: d6.members }, { state: 'Dead', members: [] }, 'describeGroups of the deleted group')
    checkEq(
      await fetchOffsets(),
      PARTITIONS.map(p => ({ partition: p, offset: '-1', metadata: null })),
      'admin.fetchOffsets of the deleted group (no committed offsets)'
    )
    ok('deleteGroups removed the group: not listed, described as Dead, no committed offsets')
  } finally {
    for (const m of consumers) {
      await m.consumer.disconnect().catch(() => {})
    }
    await producer.disconnect().catch(() => {})
    await admin.disconnect().catch(() => {})
  }
}

main(run, 'consumer groups', 75)
