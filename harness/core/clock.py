"""The one clock: ``time.perf_counter_ns`` (monotonic, integer nanoseconds).

On Linux ``perf_counter_ns`` reads ``CLOCK_MONOTONIC``, which is system-wide: every thread and
process of the host reads the same clock, so timestamps taken anywhere compare directly.

Two ways to wait for a point in time:

* :func:`wait_until_ns` sleeps until shortly before the target and then spins (holding the
  GIL while it spins), because a plain ``time.sleep`` wakes 60-70 µs late on typical Linux
  hosts. Used by issuers that own their thread (token streams) and by the test backends.
* :func:`sleep_until_ns` blocks (GIL released, no spin) until the target. With the calling
  thread's timer slack lowered by :func:`precise_timer_slack` (Linux: 50 µs by default, which
  is most of the 60-70 µs), a blocked thread wakes about 10-20 µs after the target on an idle
  core instead. The online server's model-instance threads wait this way, so waiting for the
  next arrival never competes with a running model for the GIL or a core.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Callable

now_ns = time.perf_counter_ns

#: spin for the last 70 µs before a scheduled time. A sleep overshoots by ~60 µs, and on a
#: shared host a long spin (or ``sched_yield`` inside it) costs the issuer its CPU share exactly
#: when it needs it: 70 µs without yielding kept >99.5 % of queries within 1 ms at 5000 QPS on
#: a loaded 2-core host where 200 µs with ``sched_yield`` let 10-20 % slip
#: (benchmarks/bench_online_vs_loadgen.py)
SPIN_NS = 70_000

#: ``prctl`` option that sets the calling thread's timer slack (linux/prctl.h)
_PR_SET_TIMERSLACK = 29


def wait_until_ns(target_ns: int, spin_ns: int = SPIN_NS, clock: Callable[[], int] = now_ns) -> int:
    """Block until ``now_ns() >= target_ns``; return the time of return (ns).

    Sleeps while more than ``spin_ns`` remain, then busy-waits. Returns immediately when the
    target is already past (the caller records the lateness as issue delay).
    """
    t = clock()
    remaining = target_ns - t
    if remaining > spin_ns:
        time.sleep((remaining - spin_ns) / 1e9)
        t = clock()
    while t < target_ns:
        t = clock()
    return t


def sleep_until_ns(target_ns: int, clock: Callable[[], int] = now_ns) -> int:
    """Block, without spinning and with the GIL released, until ``clock() >= target_ns``.

    Returns the time of return (ns); returns at once when the target is already past. How late
    it returns depends on the thread's timer slack (see :func:`precise_timer_slack`) and on the
    scheduler; the caller records the lateness where it matters.
    """
    t = clock()
    while t < target_ns:
        time.sleep((target_ns - t) / 1e9)
        t = clock()
    return t


def precise_timer_slack(slack_ns: int = 1) -> bool:
    """Set the calling thread's timer slack to ``slack_ns`` (Linux ``PR_SET_TIMERSLACK``).

    Timer slack is per thread; call it in the thread that sleeps. Returns True when it was set,
    False where the platform has no such setting (the thread then keeps its default slack).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
