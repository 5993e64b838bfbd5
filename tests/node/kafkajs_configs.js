#!/usr/bin/env node
'use strict'
/*
 * Topic and broker configs with kafkajs 2.2.4 against Brook.
 *
 * Usage: node kafkajs_configs.js BOOTSTRAP
 *
 *  1. admin.describeConfigs of a new topic: Kafka's defaults (retention.ms
 *     604800000, cleanup.policy delete, retention.bytes -1), not set on the
 *     topic (isDefault / source 5).
 *  2. admin.alterConfigs sets retention.ms and cleanup.policy=compact,delete;
 *     describeConfigs shows them with source DYNAMIC_TOPIC_CONFIG (1).
 *  3. alterConfigs with a bad value fails with INVALID_CONFIG and changes
 *     nothing; an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION.
 *  4. describeConfigs of the broker (resource type 4, name "1"): its settings
 *     with Kafka's names, read-only.
 *
 * Prints "ok: ..." per check and "kafkajs <version> configs: passed" at the end; "FAIL: ..." and
 * a non-zero exit otherwise. A watchdog (BROOK_TEST_TIMEOUT_S, default 60 s)
 * bounds the run.
 */

const crypto = require('crypto')
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs')
const { check, ok, show, main } = require('./harness')

// Each check here is reported as it passes.
function checkOk(cond, what) {
  check(cond, what)
  ok(what)
}

function entry(result, name) {
  return result.resources[0].configEntries.find(e => e.configName === name)
}

async function run(bootstrap) {
  const topic = `brook-kjs-configs-${crypto.randomBytes(4).toString('hex')}`
  const kafka = new Kafka({
    clientId: 'brook-kafkajs-configs',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 },
  })
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] })
    const describe = () =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
      })

    let d = await describe()
    for (const [name, value] of [
      ['retention.ms', '604800000'],
      ['cleanup.policy', 'delete'],
      ['retention.bytes', '-1'],
    ]) {
      const e = entry(d, name)
      checkOk(e && e.configValue === value, `default ${name}=${value} (got ${show(e && e.configValue)})`)
      checkOk(e.configSource === 5 || e.isDefault === true, `${name} reported as a default`)
    }

    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [
            { name: 'retention.ms', value: '86400000' },
            { name: 'cleanup.policy', value: 'compact,delete' },
          ],
        },
      ],
    })
    d = await describe()
    checkOk(entry(d, 'retention.ms').configValue === '86400000', 'retention.ms changed')
    checkOk(entry(d, 'cleanup.policy').configValue === 'compact,delete', 'cleanup.policy changed')
    checkOk(entry(d, 'retention.ms').configSource === 1, 'retention.ms reported as set on the topic')

    let error = null
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: topic,
            configEntries: [{ name: 'retention.ms', value: 'soon' }],
          },
        ],
      })
    } catch (e) {
      error = e
    }
    checkOk(error && error.type === 'INVALID_CONFIG', `a bad value is INVALID_CONFIG (got ${error && error.type})`)
    d = await describe()
    checkOk(entry(d, 'retention.ms').configValue === '86400000', 'a refused change changes nothing')

    error = null
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: `${topic}-missing`,
            configEntries: [{ name: 'retention.ms', value: '1000' }],
          },
        ],
      })
    } catch (e) {
      error = e
    }
    checkOk(
      error && error.type === 'UNKNOWN_TOPIC_OR_PARTITION',
      `an unknown topic is UNKNOWN_TOPIC_OR_PARTITION (got ${error && error.type})`
    )

    const b = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: '1' }],
    })
    const partitions = b.resources[0].configEntries.find(e => e.configName === 'num.partitions')
    checkOk(partitions && partitions.configValue === '1', 'broker num.partitions described')
    checkOk(partitions.readOnly === false, 'num.partitions can change at runtime')
    const interval = b.resources[0].configEntries.find(
      e => e.configName === 'log.retention.check.interval.ms'
    )
    checkOk(interval && interval.readOnly === true, 'static broker settings are read-only')

    // A dynamic broker config, for this broker: in effect and described as such.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.BROKER,
          name: '1',
          configEntries: [{ name: 'num.partitions', value: '2' }],
        },
      ],
    })
    const b2 = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: '1' }],
    })
    const changed = b2.resources[0].configEntries.find(e => e.configName === 'num.partitions')
    checkOk(changed.configValue === '2', `num.partitions is now 2 (got ${changed.configValue})`)
    checkOk(changed.configSource === 2, `DYNAMIC_BROKER_CONFIG (got ${changed.configSource})`)
    error = null
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.BROKER,
            name: '1',
            configEntries: [{ name: 'log.retention.check.interval.ms', value: '1000' }],
          },
        ],
      })
    } catch (e) {
      error = e
    }
    checkOk(
      error && error.type === 'INVALID_REQUEST',
      `a read-only broker setting is INVALID_REQUEST (got ${error && error.type})`
    )
  } finally {
    await admin.disconnect()
  }
}

main(run, 'configs')
