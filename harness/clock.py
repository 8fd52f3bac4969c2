"""The one clock: ``time.perf_counter_ns`` (monotonic, integer nanoseconds).

``wait_until_ns`` sleeps until shortly before the target and then spins, because a plain
``time.sleep`` wakes 60-70 µs late on typical Linux hosts.
"""

from __future__ import annotations

import time

now_ns = time.perf_counter_ns

#: spin for the last 200 µs before a scheduled time
SPIN_NS = 200_000


def wait_until_ns(target_ns: int, spin_ns: int = SPIN_NS) -> int:
    """Block until ``now_ns() >= target_ns``; return the time of return (ns).

    Sleeps while more than ``spin_ns`` remain, then busy-waits. Returns immediately when the
    target is already past (the caller records the lateness as issue delay).
    """
    t = now_ns()
    remaining = target_ns - t
    if remaining > spin_ns:
        time.sleep((remaining - spin_ns) / 1e9)
    t = now_ns()
    while t < target_ns:
        t = now_ns()
    return t
