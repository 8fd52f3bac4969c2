"""Versioned run-record schema.

A run directory ``results/<run_id>/`` holds:

* ``run.json`` -- :class:`RunRecord` (spec, environment manifest, cell summaries), rewritten
  atomically after every cell so an interrupted run keeps everything it measured;
* ``raw/<cell_id>.parquet`` -- one row per query: ``query_id``, ``batch_size``,
  ``scheduled_ns``, ``issued_ns``, ``completed_ns`` (+ ``first_token_ns``, ``n_tokens`` for
  token streams, and scenario-specific columns such as ``deadline_ns``). Up to the cell's
  ``raw_rows_cap`` every query has its row; past it the file holds the rows kept exactly plus
  a seeded uniform reservoir (``row_weight`` = queries each row stands for), and
  ``CellRecord.extra["raw_rows"]`` says how many rows were not kept and the percentile error
  bound of the HDR histogram the metrics then come from;
* ``raw/<cell_id>.tokens.parquet`` -- for token streams, one row per token
  (``query_id``, ``index``, ``t_ns``).

All ``*_ns`` values come from ``time.perf_counter_ns`` in the worker process.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.core.metrics import Metric, Reading
from harness.core.stop import StopRule

SCHEMA_VERSION = 1

#: Closed-loop scenarios (the next query is issued when the previous one completes). Every
#: other scenario is open loop: its schedule is generated before the clock starts.
CLOSED_LOOP_SCENARIOS = frozenset({"offline", "single-stream"})

CellStatus = Literal["ok", "failed", "timeout", "crashed", "skipped", "interrupted"]


class CellSpec(BaseModel):
    """One fully expanded cell of a suite: a model x backend x scenario x options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    size: str = "tiny"
    model_params: dict[str, Any] = Field(default_factory=dict)
    backend: str
    backend_options: dict[str, Any] = Field(default_factory=dict)
    device: str = "cpu"
    scenario: str
    scenario_options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = 300.0
    seed: int = 0
    parity: bool = True
    #: optimisation variant (``harness.variants`` plugin: ``int8-dynamic``, ``pruned-50`` ...);
    #: ``None`` = the backend as configured, with no variant applied (and no accuracy cost measured)
    variant: str | None = None
    #: lowest accuracy agreement (fraction, 0..1) the variant must reach against the fp32 eager
    #: reference; a verdict on the measurement, so not part of the cell id
    min_agreement: float | None = None

    @property
    def cell_id(self) -> str:
        """Stable, human-readable id: the same spec always gives the same id."""
        return cell_id(self)

    @property
    def batch_size(self) -> int:
        """Samples per query (``scenario_options.batch_size``, 1 when not set)."""
        return int(self.scenario_options.get("batch_size", 1))

    @property
    def stop(self) -> StopRule:
        """The validated stop rule of this cell."""
        return StopRule.model_validate(self.scenario_options.get("stop", {}))

    @property
    def closed_loop(self) -> bool:
        """True for closed-loop scenarios (:data:`CLOSED_LOOP_SCENARIOS`)."""
        return self.scenario in CLOSED_LOOP_SCENARIOS


class Parity(BaseModel):
    """Output comparison with the PyTorch eager fp32 reference on the same inputs."""

    checked: bool
    passed: bool | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    atol: float | None = None
    rtol: float | None = None
    reference: str = "torch-eager-fp32"
    note: str = ""


class CellRecord(BaseModel):
    """Outcome of one cell. ``metrics`` names follow :mod:`harness.core.metrics`."""

    cell_id: str
    spec: CellSpec
    status: CellStatus
    error: str | None = None
    started_utc: str | None = None
    wall_s: float | None = None
    load_time_ns: int | None = None
    warmup: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    validity: dict[str, bool] = Field(default_factory=dict)
    valid: bool | None = None
    parity: Parity | None = None
    readings: list[Reading] = Field(default_factory=list)
    backend_info: dict[str, Any] = Field(default_factory=dict)
    workload_info: dict[str, Any] = Field(default_factory=dict)
    profile_id: str | None = None
    raw_file: str | None = None
    tokens_file: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        m = self.metrics.get(name)
        return None if m is None else m.value


class RunRecord(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_utc: str = Field(default_factory=lambda: utc_now())
    status: Literal["running", "complete", "interrupted"] = "running"
    suite_name: str = ""
    suite_path: str | None = None
    suite: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    cells: list[CellRecord] = Field(default_factory=list)

    def cell(self, cell_id: str) -> CellRecord:
        for c in self.cells:
            if c.cell_id == cell_id:
                return c
        known = ", ".join(c.cell_id for c in self.cells)
        raise KeyError(f"no cell {cell_id!r} in run {self.run_id}; cells: {known}")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(v)).strip("-")


def _stop_key(stop: Any) -> dict[str, Any]:
    """The stop rule as it changes a measurement: the fields set to other than their default
    (an empty dict when the rule is the default one or not set)."""
    if not stop:
        return {}
    try:
        return StopRule.model_validate(stop).model_dump(exclude_defaults=True)
    except ValidationError:  # an invalid rule never runs; its id still tells it apart
        return dict(stop) if isinstance(stop, dict) else {"stop": str(stop)}


def _cell_id(cell: CellSpec, *, with_stop: bool) -> str:
    name = cell.model
    if name.startswith(("onnx:", "module:")):
        name = name.split(":", 1)[0] + "-" + Path(name.split(":", 1)[1]).stem.split(":")[-1]
    parts = [f"{_slug(name)}-{_slug(cell.size)}", _slug(cell.backend)]
    if cell.device != "cpu":
        parts[-1] += f"@{_slug(cell.device)}"
    if cell.variant is not None:  # no variant: the id it always had
        parts[-1] += f"+{_slug(cell.variant)}"
    opts = {k: v for k, v in cell.scenario_options.items() if k not in ("stop", "batch_size")}
    parts.append(_slug(cell.scenario))
    parts.append(f"bs{cell.scenario_options.get('batch_size', 1)}")
    rest: dict[str, Any] = {"m": cell.model_params, "b": cell.backend_options, "s": opts}
    stop = _stop_key(cell.scenario_options.get("stop")) if with_stop else {}
    if stop:
        rest["stop"] = stop
    if any(rest.values()):
        digest = hashlib.sha1(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:8]
        parts.append(digest)
    return ".".join(parts)


def cell_id(cell: CellSpec) -> str:
    """Readable, stable id: ``model-size.backend[@device][+variant].scenario.bsN`` plus a short hash of every other
    option that changes the measurement (model parameters, backend options, scenario options
    and the stop rule's non-default fields), so that the same spec always maps to the same id
    (used to match baselines) and cells that measure differently never share one."""
    return _cell_id(cell, with_stop=True)


def legacy_cell_id(cell: CellSpec) -> str:
    """The id :func:`cell_id` gave before the stop rule was part of it (the same id for
    cells that differ only in their stop rule); the gate matches baselines written then by it."""
    return _cell_id(cell, with_stop=False)


def latency_ns(completed_ns: Any, scheduled_ns: Any) -> np.ndarray:
    """Per-query latency in ns: **completed - scheduled**, the one definition every stage uses.

    Lag in the load generator is charged to latency (MLPerf LoadGen's rule), so a slow system
    cannot throttle its own offered load. Closed-loop scenarios schedule a query when they
    issue it.
    """
    return np.asarray(completed_ns, dtype=np.int64) - np.asarray(scheduled_ns, dtype=np.int64)


def query_latency_ms(raw: Any) -> np.ndarray:
    """:func:`latency_ns` of a raw per-query table (columns ``completed_ns``, ``scheduled_ns``), in ms."""
    return latency_ns(raw["completed_ns"], raw["scheduled_ns"]) / 1e6
