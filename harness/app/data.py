"""View models for the app: plain functions from run records to pandas tables.

Nothing here imports Streamlit. Runs are read only through :mod:`harness.store.results`
(``list_runs``, ``load_run``, ``cells_frame``, ``load_raw``, ``parse_run``). Every table that
carries a number also carries its provenance (``measured`` / ``estimated`` / ``projected`` /
``reference``, the part before ``:`` of a :class:`harness.core.metrics.Metric` provenance).

A cell is addressed across runs by its *key* ``"<run_id>/<cell_id>"`` (:func:`cell_key`).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from harness.core.metrics import metric_def
from harness.core.records import RunRecord
from harness.store.results import ResultsError, atomic_write_bytes, cells_frame, load_raw, parse_run

#: repository-relative path of the demo suite the empty state offers to run
DEMO_SUITE = Path(__file__).resolve().parents[2] / "workloads" / "suites" / "demo.yaml"
PROVENANCE_KINDS: tuple[str, ...] = ("measured", "estimated", "projected", "reference")
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
#: uploads larger than this are refused before they are parsed
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


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
    return f"{run_id}/{cell_id}"


def split_key(key: str) -> tuple[str, str]:
    run_id, _, cell_id = key.partition("/")
    return run_id, cell_id


def provenance_kind(provenance: str | None) -> str | None:
    return None if not provenance else provenance.split(":", 1)[0]


def _find(runs: Iterable[RunRecord], key: str) -> tuple[RunRecord, Any]:
    run_id, cell_id = split_key(key)
    for r in runs:
        if r.run_id == run_id:
            return r, r.cell(cell_id)
    raise KeyError(f"no run {run_id!r} in the results store")


# ----------------------------------------------------------------------------- runs page


def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: when, suite, status, cells (ok / all), host and commit."""
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
                "hardware": env.get("cpu_model"),
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
        "profile_id",
        "commit",
        "models",
        "backends",
    ]
    return pd.DataFrame(rows, columns=cols)


def all_cells(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """:func:`harness.store.results.cells_frame` plus ``key``, ``date`` and a display ``label``."""
    df = cells_frame(list(runs))
    if df.empty:
        return pd.DataFrame(
            columns=["key", "label", "run_id", "cell_id", "model", "backend", "scenario", "hardware", "date", "status"]
        )
    df.insert(0, "key", [cell_key(r, c) for r, c in zip(df["run_id"], df["cell_id"])])
    df.insert(1, "label", [f"{c} · {r}" for r, c in zip(df["run_id"], df["cell_id"])])
    df["date"] = pd.to_datetime(df["created_utc"], utc=True, errors="coerce").dt.date
    return df


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
    """Distinct values of each filterable column (model, backend, scenario, hardware)."""
    out: dict[str, list[Any]] = {}
    for col in ("model", "backend", "scenario", "hardware"):
        out[col] = sorted({v for v in cells.get(col, pd.Series(dtype=object)).dropna()}, key=str)
    return out


def filter_cells(
    cells: pd.DataFrame,
    *,
    model: Sequence[str] = (),
    backend: Sequence[str] = (),
    scenario: Sequence[str] = (),
    hardware: Sequence[str] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> pd.DataFrame:
    """Rows of ``cells`` matching every non-empty filter (an empty list means "any")."""
    mask = pd.Series(True, index=cells.index)
    for col, allowed in (("model", model), ("backend", backend), ("scenario", scenario), ("hardware", hardware)):
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

    def walk(prefix: str, v: Any) -> None:
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


# ----------------------------------------------------------------------------- compare page


def metrics_long(runs: Sequence[RunRecord], keys: Sequence[str], names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (cell, metric): value, unit, CI, provenance and its kind."""
    wanted = None if names is None else set(names)
    rows = []
    for key in keys:
        run, cell = _find(runs, key)
        for name, m in sorted(cell.metrics.items()):
            if wanted is not None and name not in wanted:
                continue
            rows.append(
                {
                    "key": key,
                    "cell_id": cell.cell_id,
                    "run_id": run.run_id,
                    "metric": name,
                    "value": m.value,
                    "unit": m.unit or metric_def(name).unit,
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "provenance": m.provenance,
                    "kind": provenance_kind(m.provenance),
                    "direction": metric_def(name).direction,
                }
            )
    cols = [
        "key",
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
    ]
    return pd.DataFrame(rows, columns=cols)


def latency_cdf(
    runs: Sequence[RunRecord], keys: Sequence[str], root: Path, points: int = 200
) -> tuple[pd.DataFrame, list[str]]:
    """Empirical CDF of per-query latency (``completed_ns - scheduled_ns``, ms) of each cell,
    read from its raw Parquet file and reduced to ``points`` quantiles (plus min and max).
    Returns the table (``key``, ``latency_ms``, ``cdf``, ``provenance``) and a note per cell
    without raw data."""
    from harness.analysis.gate import latency_samples_ms

    frames, notes = [], []
    q = np.linspace(0.0, 1.0, points + 1)
    for key in keys:
        run, cell = _find(runs, key)
        try:
            raw = load_raw(run, cell.cell_id, root)
            lat = latency_samples_ms(raw)
        except (ResultsError, OSError, KeyError, ValueError) as exc:
            notes.append(f"{key}: no per-query latencies ({exc})")
            continue
        lat = lat[np.isfinite(lat) & (lat >= 0)]
        if lat.size == 0:
            notes.append(f"{key}: no completed queries")
            continue
        frames.append(
            pd.DataFrame(
                {
                    "key": key,
                    "latency_ms": np.quantile(lat, q),
                    "cdf": q,
                    "n_queries": lat.size,
                    "provenance": "measured",
                }
            )
        )
    df = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["key", "latency_ms", "cdf", "n_queries", "provenance"])
    )
    return df, notes


def _spec_rows(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        run, c = _find(runs, key)
        rows.append(
            {
                "key": key,
                "run_id": run.run_id,
                "cell_id": c.cell_id,
                "status": c.status,
                "scenario": c.spec.scenario,
                "series": f"{c.spec.model}-{c.spec.size}.{c.spec.backend}.{c.spec.device} · {run.run_id}",
                "batch_size": c.spec.batch_size,
                "slo_ms": c.spec.scenario_options.get("slo_ms"),
            }
        )
    return pd.DataFrame(
        rows, columns=["key", "run_id", "cell_id", "status", "scenario", "series", "batch_size", "slo_ms"]
    )


def _value(cell: Any, name: str) -> tuple[float | None, str | None]:
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
        _, cell = _find(runs, s["key"])
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
            }
        )
    return pd.DataFrame(
        rows, columns=["key", "series", "scenario", "batch_size", "throughput", "ci_low", "ci_high", "provenance"]
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
        _, cell = _find(runs, s["key"])
        if s["slo_ms"] is not None:
            slo.append({"series": s["series"], "slo_ms": float(s["slo_ms"])})
        qps, _ = _value(cell, "offered_qps")
        lat, prov = _value(cell, percentile)
        if qps is not None and lat is not None:
            slo_met = cell.validity.get("slo_met")
            pts.append(
                {
                    "key": s["key"],
                    "series": s["series"],
                    "offered_qps": qps,
                    "latency_ms": lat,
                    "source": "cell",
                    "passed": slo_met,
                    "provenance": prov,
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
                    }
                )
        pq, pprov = _value(cell, "peak_qps")
        if pq is not None:
            peaks.append({"key": s["key"], "series": s["series"], "peak_qps": pq, "provenance": pprov})
    points = pd.DataFrame(pts, columns=["key", "series", "offered_qps", "latency_ms", "source", "passed", "provenance"])
    slo_df = pd.DataFrame(slo, columns=["series", "slo_ms"]).drop_duplicates()
    return points, slo_df, pd.DataFrame(peaks, columns=["key", "series", "peak_qps", "provenance"])


def validity_table(runs: Sequence[RunRecord], keys: Sequence[str]) -> pd.DataFrame:
    """One row per cell: status, overall ``valid``, each validity flag (True/False, None where
    the scenario has no such check), failed flags spelled out, parity and the error."""
    rows, flags = [], set()
    for key in keys:
        _, c = _find(runs, key)
        flags.update(c.validity)
    for key in keys:
        _, c = _find(runs, key)
        row: dict[str, Any] = {"key": key, "status": c.status, "valid": c.valid}
        for f in sorted(flags):
            row[f] = c.validity.get(f)
        row["failed_checks"] = ", ".join(k for k, v in c.validity.items() if not v)
        row["parity"] = None if c.parity is None or not c.parity.checked else c.parity.passed
        row["error"] = c.error
        rows.append(row)
    return pd.DataFrame(rows)


def format_number(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, float, np.floating, np.integer)):
        v = float(v)
        return f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:.{digits}g}"
    return str(v)


def metric_display(long: pd.DataFrame) -> pd.DataFrame:
    """``metrics_long`` as a display table: value and CI as text, unit and provenance kept."""
    out = long.copy()
    out["CI"] = [
        "" if lo is None or hi is None or pd.isna(lo) or pd.isna(hi) else f"[{format_number(lo)}, {format_number(hi)}]"
        for lo, hi in zip(out["ci_low"], out["ci_high"])
    ]
    out["value"] = [format_number(v) for v in out["value"]]
    return out[["key", "metric", "value", "unit", "CI", "provenance"]]


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
    return txt.pivot_table(index="key", columns="metric", values="text", aggfunc="first").reset_index()


# ----------------------------------------------------------------------------- regressions


def cell_history_ids(runs: Sequence[RunRecord]) -> list[str]:
    """Cell ids that appear in at least one run, those in most runs first."""
    counts: dict[str, int] = {}
    for r in runs:
        for c in r.cells:
            counts[c.cell_id] = counts.get(c.cell_id, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def metric_history(runs: Sequence[RunRecord], cell_id: str, metric: str) -> pd.DataFrame:
    """``metric`` of ``cell_id`` in every run that has it, oldest first, with the run's
    commit (``environment.project_git.commit``), CI and provenance."""
    rows = []
    for r in runs:
        c = next((c for c in r.cells if c.cell_id == cell_id), None)
        if c is None:
            continue
        m = c.metrics.get(metric)
        git = r.environment.get("project_git") or {}
        rows.append(
            {
                "run_id": r.run_id,
                "created_utc": r.created_utc,
                "time": pd.to_datetime(r.created_utc, utc=True, errors="coerce"),
                "commit": (git.get("commit") or "")[:12] or None,
                "dirty": git.get("dirty"),
                "status": c.status,
                "value": None if m is None else m.value,
                "ci_low": None if m is None else m.ci_low,
                "ci_high": None if m is None else m.ci_high,
                "unit": metric_def(metric).unit if m is None else m.unit,
                "provenance": None if m is None else m.provenance,
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "created_utc",
            "time",
            "commit",
            "dirty",
            "status",
            "value",
            "ci_low",
            "ci_high",
            "unit",
            "provenance",
        ],
    )
    return df.sort_values("created_utc", kind="stable").reset_index(drop=True)


def history_metrics(runs: Sequence[RunRecord], cell_id: str) -> list[str]:
    names: set[str] = set()
    for r in runs:
        for c in r.cells:
            if c.cell_id == cell_id:
                names.update(c.metrics)
    return sorted(names)


def gate_history(
    root: Path,
    history: pd.DataFrame,
    cell_id: str,
    rules: Sequence[str] | None = None,
    alpha: float = 0.01,
    n_draws: int = 1000,
) -> pd.DataFrame:
    """Gate verdict (:func:`harness.analysis.gate.compare_runs`) of each run in ``history`` against the
    run before it, for ``cell_id`` only. A pair the gate cannot compare gets verdict
    ``error`` and the gate's message."""
    from harness.analysis.gate import GateError, compare_runs, load_run_ref, parse_rules

    parsed = parse_rules(rules)
    rows = []
    ids = list(history["run_id"])
    for prev, cur in zip(ids, ids[1:]):
        try:
            rep = compare_runs(
                load_run_ref(prev, root),
                load_run_ref(cur, root),
                parsed,
                alpha,
                allow_unmatched=True,
                cells=lambda c: c == cell_id,
                n_draws=n_draws,
            )
        except GateError as exc:
            rows.append(
                {
                    "baseline": prev,
                    "run_id": cur,
                    "metric": "",
                    "verdict": "error",
                    "change_pct": None,
                    "ci": "",
                    "p_adjusted": None,
                    "note": str(exc),
                }
            )
            continue
        for v in rep.verdicts:
            d = v.to_dict()
            ci = "" if d["ci_low"] is None else f"[{(d['ci_low'] - 1) * 100:+.1f} %, {(d['ci_high'] - 1) * 100:+.1f} %]"
            rows.append(
                {
                    "baseline": prev,
                    "run_id": cur,
                    "metric": v.metric,
                    "verdict": v.verdict,
                    "change_pct": None if d["ratio"] is None else (d["ratio"] - 1) * 100,
                    "ci": ci,
                    "p_adjusted": d["p_adjusted"],
                    "note": v.note,
                }
            )
    return pd.DataFrame(
        rows, columns=["baseline", "run_id", "metric", "verdict", "change_pct", "ci", "p_adjusted", "note"]
    )


_SEVERITY = ("failed", "regression", "error", "inconclusive", "improvement", "no change", "not applicable")


def verdict_per_run(verdicts: pd.DataFrame, metric: str) -> dict[str, str]:
    """Run id -> the gate verdict shown for ``metric``: the verdict of the gate rule on the
    same metric (``latency_p99`` is the gate's ``p99_latency``) where there is one, else the
    worst verdict of the pair."""
    from harness.analysis.gate import GateError, gate_metric

    try:
        gname: str | None = gate_metric(metric).name
    except GateError:
        gname = None
    out: dict[str, str] = {}
    for run_id, g in verdicts.groupby("run_id", sort=False):
        same = g[g["metric"] == gname] if gname else g.iloc[0:0]
        pool = list(same["verdict"]) if not same.empty else list(g["verdict"])
        out[str(run_id)] = next((v for v in _SEVERITY if v in pool), pool[0] if pool else "not gated")
    return out


# ----------------------------------------------------------------------------- recommend


def pareto_mask(x: Sequence[float], y: Sequence[float]) -> list[bool]:
    """True for points not dominated in (x, y), both lower-is-better: no other point is at
    least as good on both and strictly better on one."""
    pts = [(float(a), float(b)) for a, b in zip(x, y)]
    out = []
    for i, (a, b) in enumerate(pts):
        dominated = any((c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(pts) if j != i)
        out.append(not dominated)
    return out


def build_request(form: Mapping[str, Any]) -> Any:
    """A :class:`harness.planning.recommend.RecommendRequest` from the recommend form's values
    (blank / zero optional numbers mean "not set"). Raises ``ValueError`` with the
    validation message on bad input."""
    from pydantic import ValidationError

    from harness.planning.recommend import SLO, Constraints, Load, ModelSpec, RecommendRequest

    def opt(name: str) -> float | None:
        v = form.get(name)
        return None if v in (None, "", 0, 0.0) else float(v)

    load_kind = form.get("load_kind", "qps")
    objective: Any = form.get("objective", "cost")
    if objective == "weighted":
        objective = {k: float(form.get(f"w_{k}", 0.0)) for k in ("cost", "latency", "energy")}
        objective = {k: w for k, w in objective.items() if w > 0}
    kinds = tuple(form.get("kinds") or ()) or None
    try:
        return RecommendRequest(
            model=ModelSpec(name=form["model"], size=form.get("size", "standard")),
            scenario=form.get("scenario", "online"),
            slo=SLO(
                p99_ms=opt("p99_ms"), ttft_ms=opt("ttft_ms"), tpot_ms=opt("tpot_ms"), deadline_ms=opt("deadline_ms")
            ),
            load=Load(**{load_kind: opt("load_value")}),
            constraints=Constraints(
                max_usd_per_month=opt("max_usd_per_month"),
                max_kw=opt("max_kw"),
                allowed_kinds=kinds,
                min_memory_gb=opt("min_memory_gb"),
                measured_only=bool(form.get("measured_only", False)),
            ),
            objective=objective,
            dtype=form.get("dtype", "fp16"),
        )
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msgs.append(f"{loc}: {e['msg']}" if loc else e["msg"])
        raise ValueError("; ".join(msgs)) from None


def ranked_table(rec: Any) -> pd.DataFrame:
    """The recommendation's ranked rows for display: conservative figures with ranges and
    the provenance of each row."""
    df = rec.to_frame()
    if df.empty:
        return df
    lat_col = "predicted_p99_ms" if df["predicted_p99_ms"].notna().any() else "predicted_ttft_ms"

    def rng(name: str) -> list[str]:
        return [
            f"{format_number(v)} [{format_number(lo)}..{format_number(hi)}]"
            if lo is not None and not pd.isna(lo)
            else format_number(v)
            for v, lo, hi in zip(df[name], df[f"{name}_low"], df[f"{name}_high"])
        ]

    return pd.DataFrame(
        {
            "rank": df["rank"],
            "profile": df["profile_id"],
            "kind": df["kind"],
            "devices": df["devices"],
            "dtype": df["dtype"],
            "batch": df["batch_size"],
            f"{lat_col} [range]": rng(lat_col),
            "$/month": df["usd_per_month"],
            "kW": df["kw"],
            "$/1M": df["usd_per_1m"],
            "provenance": df["provenance"],
            "notes": df["notes"],
        }
    )


def pareto_frame(rec: Any) -> pd.DataFrame:
    """Profiles with a cost and a latency: ``usd_per_month``, ``latency_ms`` (conservative
    end), ``provenance`` and ``pareto`` (not dominated on cost and latency)."""
    df = rec.to_frame()
    if df.empty:
        return pd.DataFrame(columns=["profile_id", "usd_per_month", "latency_ms", "provenance", "pareto", "rank"])
    lat = df["predicted_p99_ms_high"].fillna(df["predicted_p99_ms"])
    if lat.isna().all():
        lat = df["predicted_ttft_ms_high"].fillna(df["predicted_ttft_ms"])
    out = pd.DataFrame(
        {
            "profile_id": df["profile_id"],
            "rank": df["rank"],
            "kind": df["kind"],
            "usd_per_month": df["usd_per_month"],
            "latency_ms": lat,
            "provenance": df["provenance"],
            "devices": df["devices"],
        }
    ).dropna(subset=["usd_per_month", "latency_ms"])
    out["pareto"] = pareto_mask(out["usd_per_month"], out["latency_ms"])
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------- upload


@dataclass(frozen=True)
class UploadResult:
    """Outcome of one uploaded file: ``ok`` with the saved ``run_id``, or a message saying
    what is wrong with which file."""

    name: str
    ok: bool
    message: str
    run_id: str | None = None


def _check_run_id(run: RunRecord, source: str) -> None:
    if not _RUN_ID_RE.match(run.run_id) or run.run_id in (".", ".."):
        raise ResultsError(
            f"{source}: field run_id: {run.run_id!r} is not a valid run id "
            "(letters, digits, '.', '_', '-'; at most 200 characters)"
        )


def _parse_json_bytes(data: bytes, source: str) -> RunRecord:
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ResultsError(f"{source}: not UTF-8 text; expected a run.json file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    run = parse_run(obj, source)
    _check_run_id(run, source)
    return run


def _safe_member(name: str) -> PurePosixPath | None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        return None
    return p


def _raw_files(run: RunRecord) -> list[str]:
    out = []
    for c in run.cells:
        for rel in (c.raw_file, c.tokens_file):
            if rel:
                out.append(rel)
    return out


def _check_raw_path(rel: str, source: str) -> PurePosixPath:
    p = _safe_member(rel)
    if p is None or not p.parts or p.parts[0] != "raw" or p.suffix != ".parquet":
        raise ResultsError(f"{source}: raw file path {rel!r} must be raw/<name>.parquet inside the run directory")
    return p


def ingest_upload(name: str, data: bytes, root: Path) -> UploadResult:
    """Validate an uploaded ``run.json`` (or a zip of a run directory) and save it under
    ``root/<run_id>/``. Never unpickles or evaluates anything: JSON is parsed and validated
    against :class:`harness.core.records.RunRecord`; Parquet members are checked by reading their
    schema. Refuses to overwrite an existing run. Errors come back as ``ok=False`` with a
    message naming the file and the field."""
    try:
        if len(data) > MAX_UPLOAD_BYTES:
            raise ResultsError(f"{name}: {len(data):,} bytes is over the {MAX_UPLOAD_BYTES:,}-byte upload limit")
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            run, files, notes = _read_zip(name, data)
        else:
            run, files, notes = _parse_json_bytes(data, name), {}, []
            if _raw_files(run):
                notes.append("per-query data not uploaded (upload a zip of the run directory to include it)")
        dest = Path(root) / run.run_id
        if dest.exists():
            raise ResultsError(f"{name}: run {run.run_id} is already in the results store ({dest})")
        for rel, blob in files.items():
            atomic_write_bytes(dest / rel, blob)
        atomic_write_bytes(dest / "run.json", run.model_dump_json(indent=1).encode())
        msg = f"saved run {run.run_id} ({len(run.cells)} cells)"
        if notes:
            msg += "; " + "; ".join(notes)
        return UploadResult(name, True, msg, run.run_id)
    except ResultsError as exc:
        return UploadResult(name, False, str(exc))


def _read_zip(name: str, data: bytes) -> tuple[RunRecord, dict[str, bytes], list[str]]:
    import pyarrow.parquet as pq

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ResultsError(f"{name}: not a readable zip file") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_UPLOAD_BYTES:
            raise ResultsError(f"{name}: unpacks to more than {MAX_UPLOAD_BYTES:,} bytes")
        members = {}
        for i in infos:
            p = _safe_member(i.filename)
            if p is None:
                raise ResultsError(f"{name}: member {i.filename!r} has an unsafe path")
            members[p] = i
        run_jsons = [p for p in members if p.name == "run.json" and len(p.parts) <= 2]
        if len(run_jsons) != 1:
            raise ResultsError(
                f"{name}: expected exactly one run.json (at the top or in one folder), found {len(run_jsons)}"
            )
        base = run_jsons[0].parent
        src = f"{name}:{run_jsons[0]}"
        run = _parse_json_bytes(zf.read(members[run_jsons[0]]), src)
        files, missing = {}, []
        for rel in _raw_files(run):
            p = _check_raw_path(rel, src)
            member = base / p
            if member not in members:
                missing.append(rel)
                continue
            blob = zf.read(members[member])
            try:
                pq.read_schema(io.BytesIO(blob))
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise ResultsError(f"{name}:{member}: not a readable Parquet file ({exc})") from None
            files[str(p)] = blob
    notes = [f"missing raw file(s): {', '.join(missing)}"] if missing else []
    return run, files, notes


def parse_date(v: Any) -> date | None:
    if v is None or isinstance(v, date):
        return v
    return datetime.fromisoformat(str(v)).date()
