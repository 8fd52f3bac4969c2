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
    """Takes exactly ``service_us`` per batch (any size) with the GIL released throughout.

    It blocks (timer slack 1 ns) until ``guard_us`` before the end, then spins in short numpy
    calls that release the GIL, so the service time is exact to about a microsecond and a
    Python thread of the harness never waits on it for the GIL. For queueing benchmarks.
    """

    name: ClassVar[str] = "fixed-service"
    capabilities = NullBackend.capabilities.__class__(
        devices=("cpu",),
        streaming=False,
        needs_model=False,
        options={"service_us": "service time per batch", "guard_us": "spin this long at the end"},
    )

    def infer(self, prepared: Any) -> None:
        end = now_ns() + int(float(self.options.get("service_us", 1000)) * 1000)
        spin_until_gil_free(end, int(float(self.options.get("guard_us", 100)) * 1000))


_spin = threading.local()


def spin_until_gil_free(end_ns: int, guard_ns: int = 100_000) -> int:
    """Return at ``end_ns`` (ns, ``perf_counter_ns``): block until ``guard_ns`` before, then spin
    in numpy calls that release the GIL (about 1 µs each). Returns the time of return."""
    if not getattr(_spin, "slack", False):
        _spin.slack = precise_timer_slack()
        _spin.buf = np.zeros(4096)
    sleep_until_ns(end_ns - guard_ns)
    buf = _spin.buf
    t = now_ns()
    while t < end_ns:
        np.add(buf, 1.0, out=buf)  # a ufunc over 4096 doubles releases the GIL
        t = now_ns()
    return t
