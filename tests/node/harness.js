/**
 * What the kafkajs scripts in this folder share: named steps for failure messages, checks,
 * polling helpers, and a main() that bounds the run with a watchdog (BROOK_TEST_TIMEOUT_S)
 * and turns the outcome into "FAIL: ..." or a "passed" line and an exit code.
 */

const util = require('util')

// How long to wait for a single condition (records to arrive, a commit to show).
const WAIT_MS = 20000

let currentStep = 'start'
const step = name => {
  currentStep = name
}

class CheckFailed extends Error {}

const show = v => util.inspect(v, { depth: 6, breakLength: Infinity, maxArrayLength: 40 })
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function check(cond, what) {
  if (!cond) throw new CheckFailed(what)
}

function checkEq(actual, expected, what) {
  if (!util.isDeepStrictEqual(actual, expected)) {
    throw new CheckFailed(`${what}: expected ${show(expected)}, got ${show(actual)}`)
  }
}

function ok(what) {
  console.log(`ok: ${what}`)
}

/** Polls `cond` (sync or async) every 50 ms until it returns true; fails with `describe()` after `ms`. */
async function waitFor(what, cond, describe = () => '', ms = WAIT_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) {
      throw new CheckFailed(`timed out after ${ms} ms waiting for ${what}; ${describe()}`)
    }
    await sleep(50)
  }
}

/**
 * Polls `get()` until it returns `expected` (deep equality); fails like checkEq with the last
 * value after `ms`. For state that a commit makes visible: Kafka writes the transaction
 * markers after EndTxn has answered, so a client may look a moment before they land.
 */
async function eventuallyEq(get, expected, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    const actual = await get()
    if (util.isDeepStrictEqual(actual, expected)) return
    if (Date.now() > deadline) {
      throw new CheckFailed(`${what} (waited ${ms} ms): expected ${show(expected)}, got ${show(actual)}`)
    }
    await sleep(100)
  }
}

/**
 * Runs `run(BOOTSTRAP)` with the script's one argument under a watchdog of
 * BROOK_TEST_TIMEOUT_S (else `defaultTimeoutS`) seconds, and exits: 0 after printing
 * "kafkajs <version> <what>: passed in N s", 1 after "FAIL: during <step>: ...", 2 on bad
 * usage, 3 when the watchdog fires.
 */
function main(run, what, defaultTimeoutS = 60) {
  const started = Date.now()
  const timeoutS = Number(process.env.BROOK_TEST_TIMEOUT_S || defaultTimeoutS)
  const watchdog = setTimeout(() => {
    console.error(`FAIL: timed out after ${timeoutS} s (last step: ${currentStep})`)
    process.exit(3)
  }, timeoutS * 1000)
  const outcome = async () => {
    if (process.argv.length !== 3) {
      console.error(`usage: node ${process.argv[1]} BOOTSTRAP (host:port)`)
      return 2
    }
    try {
      await run(process.argv[2])
    } catch (e) {
      if (e instanceof CheckFailed) {
        console.error(`FAIL: during ${currentStep}: ${e.message}`)
      } else {
        const cause = e && e.cause ? ` (cause: ${e.cause.name || ''}: ${e.cause.message})` : ''
        const type = e && e.type ? ` [${e.type}]` : ''
        console.error(e && e.stack)
        console.error(`FAIL: during ${currentStep}: ${e && e.name}${type}: ${e && e.message}${cause}`)
      }
      return 1
    }
    const version = require('kafkajs/package.json').version
    console.log(`kafkajs ${version} ${what}: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    return 0
  }
  outcome().then(
    code => {
      clearTimeout(watchdog)
      process.exit(code)
    },
    e => {
      console.error(`FAIL: unexpected error: ${e && e.stack}`)
      process.exit(1)
    }
  )
}

module.exports = { WAIT_MS, step, CheckFailed, show, sleep, check, checkEq, ok, waitFor, eventuallyEq, main }
