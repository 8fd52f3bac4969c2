"""View models of the compare page: chosen cells side by side, every number with its provenance.

Latencies in ms, throughput in samples/s (or queries/s for offered load). Cells are addressed
by key (:func:`harness.app.data.cell_key`) and shown by a short name (``cell`` column,
:func:`harness.app.identity.cell_name`). Every chart table has a ``flag`` column: ``""``,
``"invalid cell"`` (a validity check of the scenario failed) or ``"SLO missed"`` (an open-loop
point above its latency SLO), so charts mark them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.gate import latency_samples_ms
from harness.app.data import device_memory_metrics, find_cell, format_number, provenance_kind, unit_of
from harness.app.identity import cell_name
from harness.core.metrics import metric_def
from harness.core.records import CellRecord, RunRecord
from harness.store.results import ResultsError, load_raw

#: flag values of chart rows (see module doc)
FLAG_INVALID = "invalid cell"
FLAG_SLO = "SLO missed"


def validity_flag(cell: CellRecord) -> str:
    """:data:`FLAG_INVALID` when the cell has a failed validity check, else ``""``."""
    return FLAG_INVALID if cell.valid is False else ""


def failed_checks(cell: CellRecord) -> str:
    """The validity checks the cell failed, comma-separated (``""`` when none)."""
    return ", ".join(k for k, v in cell.validity.items() if not v)


def metrics_long(runs: Sequence[RunRecord], keys: Sequence[str], names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (cell, metric): value, unit, CI, provenance and its kind, the cell's short
    name and validity flag. Device memory is split by source (never summed; see
    :func:`harness.app.data.device_memory_metrics`)."""
    wanted = None if names is None else set(names)
    rows = []
    for key in keys:
        run, cell = find_cell(runs, key)
        metrics = {k: v for k, v in cell.metrics.items() if k != "device_memory_bytes"}
        metrics.update(device_memory_metrics(cell))
        for name, m in sorted(metrics.items()):
            if wanted is not None and name not in wanted:
                continue
            rows.append(
                {
                    "key": key,
                    "cell": cell_name(run, cell),
                    "cell_id": cell.cell_id,
                    "run_id": run.run_id,
                    "metric": name,
                    "value": m.value,
                    "unit": m.unit or unit_of(name),
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "provenance": m.provenance,
                    "kind": provenance_kind(m.provenance),
                    "direction": metric_def(name).direction,
                    "flag": validity_flag(cell),
                }
            )
    cols = [
        "key",
        "cell",
        "cell_id",
        "run_id",
        "metric",
        "value",
        "unit",
        "ci_low",
        "ci_high",
        "provenance",
        "kind",
        "direction",
        "flag",
    ]
    return pd.DataFrame(rows, columns=cols)


def latency_cdf(
    runs: Sequence[RunRecord], keys: Sequence[str], root: Path, points: int = 200
) -> tuple[pd.DataFrame, list[str]]:
    """Empirical CDF of per-query latency (``completed_ns - scheduled_ns``, ms) of each cell,
    read from its raw Parquet file and reduced to ``points`` quantiles (plus min and max).
    Returns the table (``key``, ``cell``, ``latency_ms``, ``cdf``, ``provenance``, ``flag``) and
    a note per cell without raw data (plain text: the cell's name and why)."""
    frames, notes = [], []
    q = np.linspace(0.0, 1.0, points + 1)
    for key in keys:
        run, cell = find_cell(runs, key)
        name = cell_name(run, cell)
        try:
            raw = load_raw(run, cell.cell_id, root)
            lat = latency_samples_ms(raw)
        except FileNotFoundError:
            notes.append(f"{name}: its raw per-query file is not in the results store")
            continue
        except (ResultsError, OSError, KeyError, ValueError) as exc:
            notes.append(f"{name}: its raw per-query file cannot be read ({type(exc).__name__})")
            continue
        lat = lat[np.isfinite(lat) & (lat >= 0)]
        if lat.size == 0:
            notes.append(f"{name}: no completed queries")
            continue
        frames.append(
            pd.DataFrame(
                {
                    "key": key,
                    "cell": name,
                    "latency_ms": np.quantile(lat, q),
                    "cdf": q,
                    "n_queries": lat.size,
                    "provenance": "measured",
                    "flag": validity_flag(cell),
                }
            )
        )
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["key", "cell", "latency_ms", "cdf", "n_queries", "provenance", "flag"])
    )
    return df, notes


def _spec_rows(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        run, c = find_cell(runs, key)
        rows.append(
            {
                "key": key,
                "run_id": run.run_id,
                "cell_id": c.cell_id,
                "status": c.status,
                "scenario": c.spec.scenario,
                "series": series_name(run, c),
                "batch_size": c.spec.batch_size,
                "slo_ms": c.spec.scenario_options.get("slo_ms"),
            }
        )
    return pd.DataFrame(
        rows, columns=["key", "run_id", "cell_id", "status", "scenario", "series", "batch_size", "slo_ms"]
    )


def series_name(run: RunRecord, cell: CellRecord) -> str:
    """A chart series: the cell's name without its batch size (a sweep is one series)."""
    s = cell.spec
    return cell_name(run, cell).replace(f" {s.scenario} bs{s.batch_size}", f" {s.scenario}")


def _value(cell: CellRecord, name: str) -> tuple[float | None, str | None]:
    m = cell.metrics.get(name)
    return (None, None) if m is None else (m.value, m.provenance)


def throughput_vs_batch(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """Closed-loop cells (offline, single-stream): throughput (samples/s) against batch size,
    one ``series`` per model x backend x device x run."""
    spec = _spec_rows(runs, keys)
    rows = []
    for _, s in spec.iterrows():
        if s["scenario"] not in ("offline", "single-stream") or s["status"] != "ok":
            continue
        _, cell = find_cell(runs, s["key"])
        v, prov = _value(cell, "throughput")
        if v is None:
            continue
        m = cell.metrics["throughput"]
        rows.append(
            {
                "key": s["key"],
                "series": s["series"],
                "scenario": s["scenario"],
                "batch_size": s["batch_size"],
                "throughput": v,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "provenance": prov,
                "flag": validity_flag(cell),
                "failed_checks": failed_checks(cell),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "key",
            "series",
            "scenario",
            "batch_size",
            "throughput",
            "ci_low",
            "ci_high",
            "provenance",
            "flag",
            "failed_checks",
        ],
    )


def latency_vs_qps(
    runs: Sequence[RunRecord], keys: Sequence[str], percentile: str = "latency_p99"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Open-loop cells: latency percentile (ms) against offered load (queries/s).

    Returns ``points`` (``online`` cells and the probes of ``online-peak`` searches, with
    ``source`` = ``cell`` / ``peak probe``), ``slo`` (one row per series with an SLO) and
    ``peaks`` (``peak_qps`` of online-peak cells)."""
    spec = _spec_rows(runs, keys)
    pts, slo, peaks = [], [], []
    for _, s in spec.iterrows():
        if s["status"] != "ok" or not str(s["scenario"]).startswith("online"):
            continue
        _, cell = find_cell(runs, s["key"])
        if s["slo_ms"] is not None:
            slo.append({"series": s["series"], "slo_ms": float(s["slo_ms"])})
        qps, _ = _value(cell, "offered_qps")
        lat, prov = _value(cell, percentile)
        if qps is not None and lat is not None:
            slo_met = cell.validity.get("slo_met")
            slo_ms = s["slo_ms"]
            missed = slo_met is False or (slo_ms is not None and lat > float(slo_ms))
            pts.append(
                {
                    "key": s["key"],
                    "series": s["series"],
                    "offered_qps": qps,
                    "latency_ms": lat,
                    "source": "cell",
                    "passed": slo_met,
                    "provenance": prov,
                    "flag": validity_flag(cell) or (FLAG_SLO if missed else ""),
                }
            )
        peak = (cell.extra or {}).get("peak") or {}
        for p in peak.get("probes", []):
            if p.get("qps") is not None and p.get("latency_ms") is not None:
                pts.append(
                    {
                        "key": s["key"],
                        "series": s["series"],
                        "offered_qps": p["qps"],
                        "latency_ms": p["latency_ms"],
                        "source": "peak probe",
                        "passed": p.get("passed"),
                        "provenance": "measured",
                        "flag": FLAG_SLO if p.get("passed") is False else "",
                    }
                )
        pq, pprov = _value(cell, "peak_qps")
        if pq is not None:
            peaks.append({"key": s["key"], "series": s["series"], "peak_qps": pq, "provenance": pprov})
    points = pd.DataFrame(
        pts, columns=["key", "series", "offered_qps", "latency_ms", "source", "passed", "provenance", "flag"]
    )
    slo_df = pd.DataFrame(slo, columns=["series", "slo_ms"]).drop_duplicates()
    return points, slo_df, pd.DataFrame(peaks, columns=["key", "series", "peak_qps", "provenance"])


def validity_table(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """One row per cell: status, overall ``valid``, each validity flag (True/False, None where
    the scenario has no such check), failed flags spelled out, parity and the error."""
    rows: list[dict[str, Any]] = []
    flags: set[str] = set()
    for key in keys:
        _, c = find_cell(runs, key)
        flags.update(c.validity)
    for key in keys:
        run, c = find_cell(runs, key)
        row: dict[str, Any] = {"cell": cell_name(run, c), "key": key, "status": c.status, "valid": c.valid}
        for f in sorted(flags):
            row[f] = c.validity.get(f)
        row["failed_checks"] = failed_checks(c)
        row["parity"] = None if c.parity is None or not c.parity.checked else c.parity.passed
        row["error"] = c.error
        rows.append(row)
    return pd.DataFrame(rows)


def only_metrics(long: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """The rows of :func:`metrics_long` whose metric is one of ``names``."""
    return long[long["metric"].isin(list(names))]


def metric_display(long: pd.DataFrame) -> pd.DataFrame:
    """``metrics_long`` as a display table: value and CI as text, unit and provenance kept,
    ``note`` = the cell's flag (``invalid cell`` or empty)."""
    out = long.copy()
    out["CI"] = [
        "" if lo is None or hi is None or pd.isna(lo) or pd.isna(hi) else f"[{format_number(lo)}, {format_number(hi)}]"
        for lo, hi in zip(out["ci_low"], out["ci_high"])
    ]
    out["value"] = [format_number(v) for v in out["value"]]
    out["note"] = out["flag"]
    return out[["cell", "metric", "value", "unit", "CI", "provenance", "note"]]


def wide_with_provenance(long: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, one column per metric as ``"value (provenance)"`` text."""
    if long.empty:
        return pd.DataFrame()
    txt = long.assign(
        text=[
            f"{format_number(v)} {u} ({p})".replace("  ", " ")
            for v, u, p in zip(long["value"], long["unit"], long["provenance"])
        ]
    )
    return txt.pivot_table(index="cell", columns="metric", values="text", aggfunc="first").reset_index()
