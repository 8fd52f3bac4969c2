"""The one clock: ``time.perf_counter_ns`` (monotonic, integer nanoseconds).

``wait_until_ns`` sleeps until shortly before the target and then spins, because a plain
``time.sleep`` wakes 60-70 µs late on typical Linux hosts. It is the one waiting rule of
every open-loop issuer (online, token streams) and of the test backends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

now_ns = time.perf_counter_ns

#: spin for the last 70 µs before a scheduled time. A sleep overshoots by ~60 µs, and on a
#: shared host a long spin (or ``sched_yield`` inside it) costs the issuer its CPU share exactly
#: when it needs it: 70 µs without yielding kept >99.5 % of queries within 1 ms at 5000 QPS on
#: a loaded 2-core host where 200 µs with ``sched_yield`` let 10-20 % slip
#: (benchmarks/bench_online_vs_loadgen.py)
SPIN_NS = 70_000


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
