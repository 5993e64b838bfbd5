"""What the client scripts in this folder share: a watchdog that bounds the run, named steps
for failure messages, checks, and a main() that turns the outcome into "FAIL: ..." or a
"passed" line and an exit code.

Import it before any client library: importing arms the watchdogs (a Python timer thread with
a clear message, and faulthandler as a backstop in case the interpreter itself is stuck), so
that an import or connection that blocks is bounded too. BROOK_TEST_TIMEOUT_S (default 60 s)
sets the bound.
"""

import faulthandler
import os
import sys
import threading
import time
import traceback

TOTAL_TIMEOUT_S = float(os.environ.get("BROOK_TEST_TIMEOUT_S", "60"))
START = time.monotonic()
# How long eventually_eq waits by default.
WAIT_S = 20

# What the script is doing now, named in failure messages.
_current_step = "start"


def _watchdog_fired():
    print("FAIL: timed out after %.0f s during %s (stacks follow)" % (TOTAL_TIMEOUT_S, _current_step),
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(3)


_watchdog = threading.Timer(TOTAL_TIMEOUT_S, _watchdog_fired)
_watchdog.daemon = True
_watchdog.start()
faulthandler.dump_traceback_later(TOTAL_TIMEOUT_S + 5, exit=True)


class CheckFailed(Exception):
    pass


def step(name):
    global _current_step
    _current_step = name


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def check_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed("%s: expected %r, got %r" % (what, expected, actual))


def eventually_eq(get, expected, what, wait_s=WAIT_S):
    """Polls get() until it returns `expected`; fails like check_eq with the last value.

    For state a commit makes visible: Kafka writes the transaction markers after EndTxn has
    answered, so a client may look a moment before they land.
    """
    deadline = time.monotonic() + wait_s
    while True:
        actual = get()
        if actual == expected:
            return
        if time.monotonic() > deadline:
            raise CheckFailed("%s (waited %d s): expected %r, got %r" % (what, wait_s, expected, actual))
        time.sleep(0.1)


def ok(what):
    print("ok: %s" % what, flush=True)


def remaining_s():
    return TOTAL_TIMEOUT_S - (time.monotonic() - START)


def main(run, passed, unreachable=()):
    """Runs `run(BOOTSTRAP)` with the script's one argument and exits: 0 after printing
    "<passed()> in N s", 1 after "FAIL: during <step>: ..." (`unreachable` are the client's
    exception types for "no broker at that address"), 2 on bad usage."""
    rc = _outcome(run, passed, unreachable)
    _watchdog.cancel()
    faulthandler.cancel_dump_traceback_later()
    sys.exit(rc)


def _outcome(run, passed, unreachable):
    if len(sys.argv) != 2:
        print("usage: %s BOOTSTRAP (host:port)" % sys.argv[0], file=sys.stderr)
        return 2
    bootstrap = sys.argv[1]
    try:
        run(bootstrap)
    except CheckFailed as e:
        print("FAIL: during %s: %s" % (_current_step, e), file=sys.stderr, flush=True)
        return 1
    except unreachable as e:
        print("FAIL: during %s: cannot reach a broker at %s (%s)" % (_current_step, bootstrap, e),
              file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - any client error is a failure, say which
        traceback.print_exc()
        print("FAIL: during %s: %s: %s" % (_current_step, type(e).__name__, e), file=sys.stderr, flush=True)
        return 1
    print("%s in %.1f s" % (passed(), time.monotonic() - START), flush=True)
    return 0
