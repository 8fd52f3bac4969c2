"""View models for the app: plain functions from run records to pandas tables.

Nothing here imports Streamlit. Runs are read only through :mod:`harness.store.results`
(``list_runs``, ``load_run``, ``cells_frame``, ``load_raw``). Every table that carries a number
also carries its provenance (``measured`` / ``estimated`` / ``projected`` / ``reference``, the
part before ``:`` of a :class:`harness.core.metrics.Metric` provenance).

This module holds what every page shares (the results root, cell keys, number formatting) and
the runs page's tables; :mod:`harness.app.compare_data`, :mod:`harness.app.history_data` and
:mod:`harness.app.recommend_data` hold those pages' tables, and uploads are ingested by
:mod:`harness.store.ingest`. A cell is addressed across runs by its *key*
``"<run_id>/<cell_id>"`` (:func:`cell_key`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.app.identity import cell_hardware, cell_name, is_accelerated, run_accelerators, run_hardware_label
from harness.core.metrics import Metric, metric_def
from harness.core.records import CellRecord, RunRecord
from harness.store.results import cells_frame

#: repository-relative path of the demo suite the empty state offers to run
DEMO_SUITE = Path(__file__).resolve().parents[2] / "workloads" / "suites" / "demo.yaml"
PROVENANCE_KINDS: tuple[str, ...] = ("measured", "estimated", "projected", "reference", "configured")
#: latency percentiles shown as bars on the compare page
PERCENTILES: tuple[str, ...] = ("latency_p50", "latency_p90", "latency_p99")
TOKEN_METRICS: tuple[str, ...] = (
    "ttft_p50",
    "ttft_p99",
    "tpot_p50",
    "tpot_p99",
    "itl_p50",
    "itl_p99",
    "output_tokens_per_s",
)
ENERGY_COST_METRICS: tuple[str, ...] = (
    "power_w",
    "energy_per_inference_j",
    "energy_per_token_j",
    "inferences_per_kwh",
    "usd_per_1m_inferences",
    "usd_per_1m_tokens",
)
#: columns of the runs page's cell table, in order (those present are shown)
CELL_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell_id",
    "status",
    "valid",
    "accelerator",
    "model",
    "size",
    "backend",
    "device",
    "scenario",
    "batch_size",
    "throughput",
    "throughput__prov",
    "latency_p50",
    "latency_p99",
    "latency_p99__prov",
    "power_w",
    "power_w__prov",
    "usd_per_1m_inferences",
    "usd_per_1m_inferences__prov",
    "device_memory_used_bytes",
    "device_memory_allocator_peak_bytes",
    "hardware",
    "error",
)
#: columns the runs page and the cell picker filter on
FILTER_COLUMNS: tuple[str, ...] = ("accelerator", "model", "backend", "scenario", "hardware")
#: the value of the ``accelerator`` column for a cell that ran on the CPU
NO_ACCELERATOR = "none (CPU)"
#: units of columns that are not registry metrics
EXTRA_UNITS: dict[str, str] = {
    "device_memory_used_bytes": "B",
    "device_memory_allocator_peak_bytes": "B",
    "batch_size": "samples",
}


# ----------------------------------------------------------------------------- store


def resolve_results_root(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Results directory of the app: ``--results DIR`` (or ``--results=DIR``) in ``argv``, else
    ``$HARNESS_RESULTS``, else ``results``."""
    argv = list(argv or [])
    env = os.environ if environ is None else environ
    for i, a in enumerate(argv):
        if a == "--results" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--results="):
            return Path(a.split("=", 1)[1])
    return Path(env.get("HARNESS_RESULTS") or "results")


def store_signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime_ns, size) of every ``run.json`` under ``root``: changes when a run is
    added, rewritten or removed, so a cache keyed on it is never stale."""
    root = Path(root)
    if not root.is_dir():
        return ()
    out = []
    for d in sorted(root.iterdir()):
        p = d / "run.json"
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((d.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


def cell_key(run_id: str, cell_id: str) -> str:
    """The key addressing a cell across runs: ``"<run_id>/<cell_id>"``."""
    return f"{run_id}/{cell_id}"


def split_key(key: str) -> tuple[str, str]:
    """``(run_id, cell_id)`` of a :func:`cell_key`."""
    run_id, _, cell_id = key.partition("/")
    return run_id, cell_id


def provenance_kind(provenance: str | None) -> str | None:
    """The kind of a provenance label (the part before ``:``); None for no label."""
    return None if not provenance else provenance.split(":", 1)[0]


def find_cell(runs: Iterable[RunRecord], key: str) -> tuple[RunRecord, CellRecord]:
    """The run and cell addressed by ``key`` (:func:`cell_key`); ``KeyError`` if absent."""
    run_id, cell_id = split_key(key)
    for r in runs:
        if r.run_id == run_id:
            return r, r.cell(cell_id)
    raise KeyError(f"no run {run_id!r} in the results store")


def format_number(v: object, digits: int = 4) -> str:
    """A number for display: ``-`` for None / NaN / inf, thousands separators from 10,000 on,
    else ``digits`` significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, float, np.floating, np.integer)):
        v = float(v)
        return f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:.{digits}g}"
    return str(v)


# ----------------------------------------------------------------------------- runs page


def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: when, suite, status, cells (ok / all), what it ran on (``hardware``:
    the accelerators, else the CPU model; ``accelerators``; ``cpu``), profile and commit."""
    rows = []
    for r in runs:
        env = r.environment
        rows.append(
            {
                "run_id": r.run_id,
                "created_utc": r.created_utc,
                "suite": r.suite_name,
                "status": r.status,
                "cells_ok": sum(c.status == "ok" for c in r.cells),
                "cells": len(r.cells),
                "hardware": run_hardware_label(r),
                "accelerators": ", ".join(run_accelerators(r)) or NO_ACCELERATOR,
                "cpu": env.get("cpu_model"),
                "profile_id": env.get("profile_id"),
                "commit": ((env.get("project_git") or {}).get("commit") or "")[:12] or None,
                "models": ", ".join(sorted({c.spec.model for c in r.cells})),
                "backends": ", ".join(sorted({c.spec.backend for c in r.cells})),
            }
        )
    cols = [
        "run_id",
        "created_utc",
        "suite",
        "status",
        "cells_ok",
        "cells",
        "hardware",
        "accelerators",
        "cpu",
        "profile_id",
        "commit",
        "models",
        "backends",
    ]
    return pd.DataFrame(rows, columns=cols)


def all_cells(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """:func:`harness.store.results.cells_frame` plus ``key``, a short display ``label``
    (:func:`harness.app.identity.cell_name`), ``date``, ``accelerator`` (its name, or
    :data:`NO_ACCELERATOR`), ``hardware`` (the accelerator, else the CPU model) and device
    memory split by source (:func:`device_memory_metrics`)."""
    df = cells_frame(list(runs))
    if df.empty:
        return pd.DataFrame(
            columns=[
                "key",
                "label",
                "run_id",
                "cell_id",
                "model",
                "backend",
                "scenario",
                "accelerator",
                "hardware",
                "date",
                "status",
            ]
        )
    by_run = {r.run_id: r for r in runs}
    recs = [(by_run[r], by_run[r].cell(c)) for r, c in zip(df["run_id"], df["cell_id"])]
    df.insert(0, "key", [cell_key(r, c) for r, c in zip(df["run_id"], df["cell_id"])])
    df.insert(1, "label", [cell_name(r, c) for r, c in recs])
    df["accelerator"] = [cell_hardware(r, c) if is_accelerated(c) else NO_ACCELERATOR for r, c in recs]
    df["hardware"] = [cell_hardware(r, c) for r, c in recs]
    for name in ("device_memory_used_bytes", "device_memory_allocator_peak_bytes"):
        df[name] = [getattr(device_memory_metrics(c).get(name), "value", None) for _, c in recs]
    df["date"] = pd.to_datetime(df["created_utc"], utc=True, errors="coerce").dt.date
    return df


def device_memory_metrics(cell: CellRecord) -> dict[str, Metric]:
    """Device memory of a cell, one figure per source, never summed: ``device_memory_used_bytes``
    = peak of NVML's device-wide "used" (every process on the device), and
    ``device_memory_allocator_peak_bytes`` = the framework allocator's peak (this process's
    tensors). Read from the cell's readings; a record without them keeps its
    ``device_memory_bytes`` metric under its own provenance (bytes)."""
    out: dict[str, Metric] = {}
    for r in cell.readings:
        if r.quantity != "device_memory_peak":
            continue
        kind = "device_memory_used_bytes" if "nvml" in (r.provenance or "") else "device_memory_allocator_peak_bytes"
        prev = out.get(kind)
        if prev is None or prev.value is None or r.value > prev.value:
            out[kind] = Metric(value=float(r.value), unit="B", provenance=r.provenance, method=r.note)
    if not out and "device_memory_bytes" in cell.metrics:
        out["device_memory_bytes"] = cell.metrics["device_memory_bytes"]
    return out


def unit_of(name: str) -> str:
    """Unit of a metric or column name ("" when it has none)."""
    return EXTRA_UNITS.get(name) or metric_def(name).unit


def with_units(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column that has a unit renamed ``"name (unit)"`` (for display)."""
    return df.rename(columns={c: f"{c} ({unit_of(c)})" for c in df.columns if isinstance(c, str) and unit_of(c)})


def default_selection(cells: pd.DataFrame, limit: int = 4) -> list[str]:
    """Keys preselected on the compare page: up to ``limit`` ok cells of the newest run that
    has more than one ok cell (else of the newest run). ``cells`` is :func:`all_cells`."""
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        return []
    order = ok.sort_values("created_utc", ascending=False, kind="stable")
    counts = order.groupby("run_id", sort=False).size()
    several = [r for r in order["run_id"].drop_duplicates() if counts[r] > 1]
    run_id = several[0] if several else order["run_id"].iloc[0]
    return list(ok[ok["run_id"] == run_id]["key"])[:limit]


def filter_options(cells: pd.DataFrame) -> dict[str, list[Any]]:
    """Distinct values of each filterable column (:data:`FILTER_COLUMNS`)."""
    out: dict[str, list[Any]] = {}
    for col in FILTER_COLUMNS:
        out[col] = sorted({v for v in cells.get(col, pd.Series(dtype=object)).dropna()}, key=str)
    return out


def filter_cells(
    cells: pd.DataFrame,
    *,
    model: Sequence[str] = (),
    backend: Sequence[str] = (),
    scenario: Sequence[str] = (),
    hardware: Sequence[str] = (),
    accelerator: Sequence[str] = (),
    run_id: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> pd.DataFrame:
    """Rows of ``cells`` matching every non-empty filter (an empty list means "any")."""
    mask = pd.Series(True, index=cells.index)
    chosen = {
        "model": model,
        "backend": backend,
        "scenario": scenario,
        "hardware": hardware,
        "accelerator": accelerator,
        "run_id": run_id,
    }
    for col, allowed in chosen.items():
        if allowed:
            mask &= cells[col].isin(list(allowed))
    if date_from is not None:
        mask &= cells["date"] >= date_from
    if date_to is not None:
        mask &= cells["date"] <= date_to
    return cells[mask]


def environment_table(run: RunRecord) -> pd.DataFrame:
    """The run's environment manifest as (key, value) rows; nested fields flattened with
    dots, package versions as ``packages.<name>``."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, v: object) -> None:
        if isinstance(v, Mapping) and v:
            for k in sorted(v, key=str):
                walk(f"{prefix}.{k}" if prefix else str(k), v[k])
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            for i, x in enumerate(v):
                walk(f"{prefix}[{i}]", x)
        else:
            rows.append((prefix, "" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))))

    walk("", run.environment)
    return pd.DataFrame(rows, columns=["key", "value"])


def date_bounds(cells: pd.DataFrame) -> tuple[date, date] | None:
    """Earliest and latest run date (UTC) among ``cells`` (:func:`all_cells`); None if none."""
    dates = cells["date"].dropna()
    return None if dates.empty else (dates.min(), dates.max())


def cell_view(cells: pd.DataFrame) -> pd.DataFrame:
    """The runs page's cell table: the :data:`CELL_COLUMNS` that ``cells`` has, in that order."""
    return cells[[c for c in CELL_COLUMNS if c in cells.columns]]
