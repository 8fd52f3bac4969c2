"""Export a run in pytest-benchmark's JSON format (read by ``pytest-benchmark compare``,
Bencher and github-action-benchmark).

One benchmark per cell: ``stats`` in **seconds** over the cell's raw per-query latencies
(:func:`harness.core.records.query_latency_ms`, completed - scheduled), one round per query,
``min``/``max``/``mean``/``stddev``/``median``/``iqr``/``rounds``/``ops`` and the raw
latencies in ``data``; the cell's measured metrics go in ``extra_info``. Only measured
metrics are exported: estimated and projected ones have no place in a benchmark history.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.core.records import CellRecord, RunRecord, query_latency_ms
from harness.store.results import atomic_write_text

#: pytest-benchmark's file format version written here.
FORMAT_VERSION = "4.0.0"


def benchmark_stats(latencies_s: npt.ArrayLike) -> dict[str, Any]:
    """pytest-benchmark ``stats`` of per-round times in seconds (quartiles: linear
    interpolation; outliers: beyond 1 standard deviation of the mean, and beyond 1.5 IQR of
    the quartiles). ``latencies_s`` must hold at least one value."""
    d = np.asarray(latencies_s, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("benchmark_stats needs at least one latency")
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    q1, med, q3 = (float(x) for x in np.quantile(d, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = d[(d >= lo_fence) & (d <= hi_fence)]
    sd_out = int(np.sum(np.abs(d - mean) > sd)) if n > 1 else 0
    iqr_out = int(n - inside.size)
    return {
        "min": float(d.min()),
        "max": float(d.max()),
        "mean": mean,
        "stddev": sd,
        "rounds": int(n),
        "median": med,
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_out,
        "stddev_outliers": sd_out,
        "outliers": f"{sd_out};{iqr_out}",
        "ld15iqr": float(inside.min()) if inside.size else float(d.min()),
        "hd15iqr": float(inside.max()) if inside.size else float(d.max()),
        "ops": 1.0 / mean if mean > 0 else 0.0,
        "total": float(d.sum()),
        "iterations": 1,
        "data": [float(x) for x in d],
    }


def benchmark_entry(cell: CellRecord, run_dir: Path, name: str, fullname: str) -> dict[str, Any]:
    """One pytest-benchmark ``benchmarks[]`` entry for ``cell`` of the run in ``run_dir``
    (its raw file is read); ``name``/``fullname`` are the test's name and node id."""
    if cell.raw_file is None:
        raise ValueError(f"cell {cell.cell_id} has no raw file to export")
    raw = pd.read_parquet(run_dir / cell.raw_file)
    lat_s = query_latency_ms(raw) / 1e3
    extra = {
        "cell_id": cell.cell_id,
        "harness_run": run_dir.name,
        "latency_definition": "completed - scheduled, seconds, one round per query",
        **{k: m.value for k, m in cell.metrics.items() if m.value is not None and m.provenance == "measured"},
    }
    return {
        "group": cell.spec.scenario,
        "name": name,
        "fullname": fullname,
        "params": None,
        "param": None,
        "extra_info": extra,
        "options": {
            "timer": "time.perf_counter_ns",
            "disable_gc": False,
            "min_rounds": None,
            "max_time": None,
            "min_time": None,
            "warmup": True,
        },
        "stats": benchmark_stats(lat_s),
    }


def benchmark_document(record: RunRecord, benchmarks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole pytest-benchmark file: machine and commit info from ``record.environment``
    (and this interpreter), ``benchmarks`` as given, the time of writing (UTC)."""
    env = record.environment
    git = env.get("project_git") or {}
    return {
        "machine_info": {
            "node": platform.node(),
            "processor": platform.processor(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "python_version": platform.python_version(),
            "system": platform.system(),
            "release": platform.release(),
            "cpu": {"brand_raw": env.get("cpu_model"), "count": env.get("cpu_logical_cores")},
        },
        "commit_info": {"id": git.get("commit"), "dirty": git.get("dirty"), "branch": git.get("branch")},
        "benchmarks": list(benchmarks),
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": FORMAT_VERSION,
        "harness": {"run_id": record.run_id, "note": "pytest-benchmark 4.0 file format; times in seconds"},
    }


def write_benchmark_json(path: Path, record: RunRecord, benchmarks: Sequence[dict[str, Any]]) -> Path:
    """Write :func:`benchmark_document` to ``path`` atomically; returns ``path``."""
    atomic_write_text(path, json.dumps(benchmark_document(record, benchmarks), indent=1))
    return path
