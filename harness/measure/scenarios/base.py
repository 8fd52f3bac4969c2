"""Scenario (load pattern) contract: *when* work is issued.

A scenario receives a :class:`CellContext` (a loaded backend, staged samples, the stop rule
and the measurement window) and returns a :class:`ScenarioResult` with one row of raw
timestamps per query plus its summary metrics.

Rules every scenario follows
----------------------------
* Warm-up runs before ``ctx.window()`` and is recorded apart (count and duration only).
* Inside ``with ctx.window():`` only issuing/completing work and appending timestamps happens;
  meters (power, memory) cover exactly that window.
* Latency = ``completed_ns - scheduled_ns``. For closed-loop scenarios the scheduled time is
  the issue time; open-loop scenarios pre-generate their schedule.
* Samples are staged with ``ctx.batch(n)`` *before* the clock starts (never timed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.metrics import Metric
from harness.core.stop import StopRule
from harness.measure.load.recorder import DEFAULT_RAW_ROWS_CAP, RowRecorder


class ScenarioOptions(BaseModel):
    """Base of every scenario's options model (``extra='forbid'`` so typos are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(1, ge=1, description="samples per query")
    stop: StopRule = Field(default_factory=StopRule)  # type: ignore[arg-type]


class BoundedRowsOptions(ScenarioOptions):
    """Options of the scenarios whose raw per-query rows are bounded (closed loop, online, sensor)."""

    raw_rows_cap: int = Field(
        DEFAULT_RAW_ROWS_CAP,
        ge=1,
        description="raw per-query rows written exactly; past it the first rows plus a seeded uniform "
        "reservoir (closed loop: metrics from an HDR histogram; open loop: metrics use every row)",
    )


@dataclass
class ScenarioResult:
    """Raw per-query timestamps and summary metrics of one measurement.

    ``queries`` maps column name -> 1-D array (all the same length). Required columns:
    ``scheduled_ns``, ``issued_ns``, ``completed_ns`` (int64) and ``batch_size``. Optional
    token-level rows go in ``tokens`` (``query_id``, ``index``, ``t_ns``).
    """

    queries: dict[str, np.ndarray]
    metrics: dict[str, Metric]
    validity: dict[str, bool] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    window_ns: tuple[int, int] | None = None  # (start, end) of the measurement window


class CellContext(ABC):
    """What the runner gives a scenario. Implemented by the runner; tests may subclass."""

    backend: Any
    workload: Any
    seed: int

    @abstractmethod
    def batch(self, batch_size: int, index: int = 0) -> Any:
        """A staged batch (``backend.prepare`` already applied). Distinct ``index`` values give
        distinct deterministic samples; a small pool is staged and reused cyclically."""

    @abstractmethod
    def window(self) -> AbstractContextManager[None]:
        """Context manager that marks the measurement window (meters run inside it). A scenario
        that repeats its measurement enters it once per attempt; the last window is recorded."""

    def progress(self, fraction: float) -> None:  # noqa: B027 - optional hook
        """Report progress in [0, 1] (optional)."""


class Scenario(ABC):
    """A load pattern. Register under the ``harness.scenarios`` entry point."""

    name: ClassVar[str]
    Options: ClassVar[type[ScenarioOptions]] = ScenarioOptions
    #: headline metric name, used by summary tables
    headline: ClassVar[str] = "throughput"

    def __init__(self, options: ScenarioOptions) -> None:
        self.options = options

    @classmethod
    def parse_options(cls, raw: dict[str, Any]) -> ScenarioOptions:
        return cls.Options.model_validate(raw)

    @abstractmethod
    def run(self, ctx: CellContext) -> ScenarioResult:
        """Warm up, measure inside ``ctx.window()``, and summarise."""


def _loop_limits(stop: StopRule) -> tuple[int, int, int, int]:
    """``(min_queries, max_queries, min_duration_ns, max_duration_ns)`` of ``stop`` as plain ints
    for the closed loops' stop test (no maximum: a count no run reaches)."""
    max_q = stop.max_queries if stop.max_queries is not None else 1 << 62
    return stop.min_queries, max_q, int(stop.min_duration_s * 1e9), int(stop.max_duration_s * 1e9)


def closed_loop(
    infer: Callable[[Any], Any],
    batches: Iterator[Any],
    stop: StopRule,
    clock: Callable[[], int],
) -> tuple[list[int], list[int]]:
    """Issue batches back to back until ``stop`` allows stopping.

    Returns (issued_ns, completed_ns). The loop is kept minimal: it is the harness's own
    per-query overhead, measured by the ``null`` backend.
    """
    starts: list[int] = []
    ends: list[int] = []
    append_s = starts.append
    append_e = ends.append
    min_q, max_q, min_ns, max_ns = _loop_limits(stop)
    n = 0
    t0 = 0
    for b in batches:
        s = clock()
        infer(b)
        e = clock()
        append_s(s)
        append_e(e)
        n += 1
        if n == 1:
            t0 = s  # elapsed time counts from the first query's issue
        el = e - t0
        if n >= max_q or el >= max_ns or (n >= min_q and el >= min_ns):
            break
    return starts, ends


def closed_loop_recorded(
    infer: Callable[[Any], Any],
    batches: Iterator[Any],
    stop: StopRule,
    clock: Callable[[], int],
    recorder: RowRecorder,
) -> int:
    """:func:`closed_loop` writing ``(issued_ns, completed_ns)`` rows into ``recorder`` (columns
    ``issued_ns``, ``completed_ns``), which bounds memory for long runs; returns the number of queries.

    Per query the loop writes two int64 slots of a preallocated array (no list growth); a full
    block is handed to the recorder between queries, outside every timed interval.
    """
    (vs, ve), lim = recorder.begin()
    i = 0
    min_q, max_q, min_ns, max_ns = _loop_limits(stop)
    n = 0
    t0 = 0
    for b in batches:
        s = clock()
        infer(b)
        e = clock()
        vs[i] = s
        ve[i] = e
        i += 1
        n += 1
        if n == 1:
            t0 = s  # elapsed time counts from the first query's issue
        if i == lim:
            (vs, ve), lim = recorder.spill(i)
            i = 0
        el = e - t0
        if n >= max_q or el >= max_ns or (n >= min_q and el >= min_ns):
            break
    recorder.finish(i)
    return n
