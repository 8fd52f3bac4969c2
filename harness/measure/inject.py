"""Known slowdowns, injected on purpose, to check that a gate can see a change of a given size.

``harness gate ab --inject-slowdown 5%`` wraps the current side's backend in
:class:`SlowdownBackend`: every ``infer`` busy-waits for that fraction of its own measured
duration after the inner call returns, so service time grows by the fraction whatever the
model, and the harness's own per-query path is untouched. A run measured this way records
the injection (``extra.injected_slowdown``) so it is never mistaken for the plain backend.
"""

from __future__ import annotations

from typing import Any

from harness.core.clock import now_ns


class SlowdownBackend:
    """A loaded backend whose ``infer`` takes ``1 + fraction`` times as long.

    Every other attribute (``prepare``, ``describe``, ``close``, ``generate``...) is the
    inner backend's."""

    def __init__(self, inner: Any, fraction: float) -> None:
        if not 0 <= fraction < 10:
            raise ValueError(f"slowdown fraction must be in [0, 10), got {fraction}")
        self._inner = inner
        self._fraction = fraction

    def infer(self, prepared: Any) -> Any:
        t0 = now_ns()
        out = self._inner.infer(prepared)
        t1 = now_ns()
        end = t1 + int((t1 - t0) * self._fraction)
        while now_ns() < end:
            pass
        return out

    def describe(self) -> dict[str, Any]:
        info = dict(self._inner.describe())
        info["injected_slowdown"] = self._fraction
        return info

    def __getattr__(self, name: str) -> Any:
        if name == "_inner":  # not set yet (copy, unpickling): no inner backend to ask
            raise AttributeError(name)
        return getattr(self._inner, name)
