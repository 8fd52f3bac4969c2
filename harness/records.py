"""Versioned run-record schema.

A run directory ``results/<run_id>/`` holds:

* ``run.json`` -- :class:`RunRecord` (spec, environment manifest, cell summaries), rewritten
  atomically after every cell so an interrupted run keeps everything it measured;
* ``raw/<cell_id>.parquet`` -- one row per query: ``query_id``, ``batch_size``,
  ``scheduled_ns``, ``issued_ns``, ``completed_ns`` (+ ``first_token_ns``, ``n_tokens`` for
  token streams, and scenario-specific columns such as ``deadline_ns``);
* ``raw/<cell_id>.tokens.parquet`` -- for token streams, one row per token
  (``query_id``, ``index``, ``t_ns``).

All ``*_ns`` values come from ``time.perf_counter_ns`` in the worker process.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.meters.base import Reading
from harness.metrics import Metric

SCHEMA_VERSION = 1

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

    @property
    def cell_id(self) -> str:
        """Stable, human-readable id: the same spec always gives the same id."""
        from harness.spec import cell_id

        return cell_id(self)


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
    """Outcome of one cell. ``metrics`` names follow :mod:`harness.metrics`."""

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
