"""Backends with scripted misbehaviour, referenced from suites as ``fake_backends:Name``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, ClassVar

import numpy as np

from harness.core.clock import now_ns, precise_timer_slack, sleep_until_ns
from harness.measure.backends.null import NullBackend


class CrashBackend(NullBackend):
    """Kills its own process on the first query, as a segfaulting native library would."""

    name: ClassVar[str] = "crash"

    def infer(self, prepared: Any) -> None:
        os.abort()


class HangBackend(NullBackend):
    """Never returns from the first query."""

    name: ClassVar[str] = "hang"

    def infer(self, prepared: Any) -> None:
        while True:
            time.sleep(1)


class RaiseBackend(NullBackend):
    """Raises while loading."""

    name: ClassVar[str] = "raise"

    def load(self, workload: Any, device: str = "cpu") -> None:
        raise RuntimeError("model file is corrupt")


class OomBackend(NullBackend):
    """Runs out of memory for batches larger than 2."""

    name: ClassVar[str] = "oom"

    def infer(self, prepared: Any) -> None:
        n = len(next(iter(prepared.values())))
        if n > 2:
            raise MemoryError(f"cannot allocate activations for batch {n}")


class SpinBackend(NullBackend):
    """Busy-waits a fixed service time (``service_us`` option) per query."""

    name: ClassVar[str] = "spin"
    capabilities = NullBackend.capabilities.__class__(
        devices=("cpu",), streaming=False, needs_model=False, options={"service_us": "service time"}
    )

    def infer(self, prepared: Any) -> None:
        end = time.perf_counter_ns() + int(self.options.get("service_us", 100) * 1000)
        while time.perf_counter_ns() < end:
            pass


class FailLaterBackend(SpinBackend):
    """Spins like :class:`SpinBackend`, then after ``after`` queries aborts its process
    (``mode: crash``), raises (``mode: raise``) or hangs (``mode: hang``)."""

    name: ClassVar[str] = "fail-later"
    capabilities = NullBackend.capabilities.__class__(
        devices=("cpu",),
        streaming=False,
        needs_model=False,
        options={"service_us": "service time", "after": "queries before failing", "mode": "crash|raise|hang"},
    )

    def infer(self, prepared: Any) -> None:
        self._n = getattr(self, "_n", 0) + 1
        if self._n > int(self.options.get("after", 100)):
            mode = self.options.get("mode", "crash")
            if mode == "crash":
                os.abort()
            if mode == "hang":
                while True:
                    time.sleep(1)
            raise RuntimeError(f"infer broke after {self._n - 1} queries")
        super().infer(prepared)


class FixedServiceBackend(NullBackend):
    """Takes exactly ``service_us`` per batch (any size) with the GIL released nearly throughout.

    It busy-waits in numpy calls that release the GIL (:func:`spin_until_gil_free`), so the
    service time is exact to about a microsecond, the core stays busy as under a real model, and
    a Python thread of the harness rarely waits on it for the GIL. ``guard_us`` (default: the
    whole service) is how long before the end it stops blocking and starts spinning: blocking
    lets a virtual CPU halt, and waking it again costs tens of µs. For queueing benchmarks.
    """

    name: ClassVar[str] = "fixed-service"
    capabilities = NullBackend.capabilities.__class__(
        devices=("cpu",),
        streaming=False,
        needs_model=False,
        options={"service_us": "service time per batch", "guard_us": "spin this long at the end (default: all)"},
    )

    def infer(self, prepared: Any) -> None:
        t0 = now_ns()
        times = getattr(self, "_times", None)
        if times is None:
            service_ns = int(float(self.options.get("service_us", 1000)) * 1000)
            times = self._times = (service_ns, int(float(self.options.get("guard_us", service_ns / 1000)) * 1000))
        spin_until_gil_free(t0 + times[0], times[1])


_spin = threading.local()
#: numpy elements per GIL-free call at most (a call over all of them takes some tens of µs)
_SPIN_ELEMS = 1 << 16
#: the last stretch (ns) is spun in Python, holding the GIL: shorter than one numpy call's overhead
_SPIN_TAIL_NS = 3_000


def spin_until_gil_free(end_ns: int, guard_ns: int) -> int:
    """Return at ``end_ns`` (ns, ``perf_counter_ns``): block until ``guard_ns`` before, then spin.

    The spin runs numpy calls that release the GIL, each sized to about 70 % of the time left
    (from a per-thread calibration of ns per element), so a 1 ms spin takes the GIL back a few
    dozen times and ends within about a microsecond. Returns the time of return."""
    st = _spin.__dict__
    if "per_elem_ns" not in st:
        st["slack"] = precise_timer_slack()
        st["buf"] = np.ones(_SPIN_ELEMS)
        t = now_ns()
        for _ in range(20):
            np.multiply(st["buf"], 1.0, out=st["buf"])
        st["per_elem_ns"] = max((now_ns() - t) / (20 * _SPIN_ELEMS), 0.01)
    if guard_ns < end_ns - now_ns():
        sleep_until_ns(end_ns - guard_ns)
    buf, per_elem = st["buf"], st["per_elem_ns"]
    t = now_ns()
    while end_ns - t > _SPIN_TAIL_NS:
        k = min(_SPIN_ELEMS, int((end_ns - t) * 0.7 / per_elem))
        np.multiply(buf[:k], 1.0, out=buf[:k])  # releases the GIL for the call
        t = now_ns()
    while t < end_ns:
        t = now_ns()
    return t
