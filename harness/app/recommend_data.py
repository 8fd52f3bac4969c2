"""View models of the recommend page: the form's values as a request, the ranked table with
ranges, and the cost-vs-latency Pareto front (USD/month against p99 or TTFT in ms)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from pydantic import ValidationError

from harness.app.data import cell_key, format_number
from harness.app.identity import cell_hardware
from harness.core.hardware import load_profiles
from harness.core.host_match import recorded_profile_id
from harness.core.records import RunRecord
from harness.planning.recommend import Recommendation, RecommendRequest

#: models offered by the form besides those measured in the store
SUGGESTED_MODELS: tuple[str, ...] = (
    "resnet50",
    "bert",
    "gpt2",
    "tabular_mlp",
    "sensor_cnn_gru",
    "bert-99",
    "llama2-70b",
)


def model_choices(runs: Sequence[RunRecord]) -> list[str]:
    """Model names for the form: every model measured in ``runs`` plus :data:`SUGGESTED_MODELS`, sorted."""
    return sorted({c.spec.model for r in runs for c in r.cells} | set(SUGGESTED_MODELS))


def pareto_mask(x: Iterable[float], y: Iterable[float]) -> list[bool]:
    """True for points not dominated in (x, y), both lower-is-better: no other point is at
    least as good on both and strictly better on one."""
    pts = [(float(a), float(b)) for a, b in zip(x, y)]
    out = []
    for i, (a, b) in enumerate(pts):
        dominated = any((c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(pts) if j != i)
        out.append(not dominated)
    return out


def build_request(form: Mapping[str, Any]) -> RecommendRequest:
    """A :class:`harness.planning.recommend.RecommendRequest` from the recommend form's values
    (blank / zero SLOs and constraints mean "not set"; the load is passed as given, so a load of
    0 is refused as a load of 0, not as a missing one). Raises ``ValueError`` with the
    validation message on bad input."""

    def opt(name: str) -> float | None:
        v = form.get(name)
        return None if v in (None, "", 0, 0.0) else float(v)

    def given(name: str) -> float | None:
        v = form.get(name)
        return None if v in (None, "") else float(v)

    load_kind = form.get("load_kind", "qps")
    objective = form.get("objective", "cost")
    if objective == "weighted":
        weights = {k: float(form.get(f"w_{k}", 0.0)) for k in ("cost", "latency", "energy")}
        objective = {k: w for k, w in weights.items() if w > 0}
    kinds = tuple(form.get("kinds") or ()) or None
    try:
        # nested as plain mappings, so a validation error's location names the whole path (load.qps)
        return RecommendRequest.model_validate(
            {
                "model": {"name": form["model"], "size": form.get("size", "standard")},
                "scenario": form.get("scenario", "online"),
                "slo": {k: opt(k) for k in ("p99_ms", "ttft_ms", "tpot_ms", "deadline_ms")},
                "load": {load_kind: given("load_value")},
                "constraints": {
                    "max_usd_per_month": opt("max_usd_per_month"),
                    "max_kw": opt("max_kw"),
                    "allowed_kinds": kinds,
                    "min_memory_gb": opt("min_memory_gb"),
                    "measured_only": bool(form.get("measured_only", False)),
                },
                "objective": objective,
                "dtype": form.get("dtype", "fp16"),
            }
        )
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msgs.append(f"{loc}: {e['msg']}" if loc else e["msg"])
        raise ValueError("; ".join(msgs)) from None


def evidence_cells(rec: Recommendation, runs: Sequence[RunRecord]) -> dict[str, list[str]]:
    """Profile id -> keys (:func:`harness.app.data.cell_key`) of the measured cells behind its
    row: the selection :func:`harness.planning.evidence.measured_cells` makes (ok cells of the
    requested model and size, no model parameters), each counted under the profile it ran on
    (:func:`harness.core.host_match.recorded_profile_id`: a GPU cell of an older record that
    names the host CPU counts as its GPU's)."""
    model = rec.request.model
    out: dict[str, list[str]] = {}
    if model.counts is not None or model.params:
        return out
    shipped = load_profiles()
    for run in runs:
        for c in run.cells:
            if (
                c.status == "ok"
                and c.profile_id
                and c.spec.model == model.name
                and c.spec.size == model.size
                and not c.spec.model_params
            ):
                pid = recorded_profile_id(run.environment, c.spec.device, c.profile_id, shipped) or c.profile_id
                out.setdefault(pid, []).append(cell_key(run.run_id, c.cell_id))
    return out


def evidence_summary(rec: Recommendation, runs: Sequence[RunRecord]) -> list[str]:
    """One line per profile with measured cells behind it: the profile, how many cells and the
    hardware they ran on (``local-xeon: 12 measured cell(s), run on NVIDIA H200``), so a cell
    recorded under a profile other than the hardware it ran on shows."""
    hardware = {cell_key(r.run_id, c.cell_id): cell_hardware(r, c) for r in runs for c in r.cells}
    out = []
    for pid, keys in sorted(evidence_cells(rec, runs).items()):
        hw = sorted({hardware.get(k, "unknown") for k in keys})
        out.append(f"{pid}: {len(keys)} measured cell(s), run on {', '.join(hw)}")
    return out


def compare_link(keys: Sequence[str]) -> str:
    """Relative URL of the compare page with ``keys`` chosen (``compare?cells=k1,k2``)."""
    return "compare?" + urlencode({"cells": ",".join(keys)})


def _evidence_text(row: Any, keys: Sequence[str], hardware: Mapping[str, str]) -> str:
    """What a ranked row rests on, in words: measured cells (how many, on what hardware, in which
    runs), or the method of its predicted latency (which names the MLPerf result or the
    projection)."""
    parts = []
    if keys:
        runs = sorted({k.split("/", 1)[0] for k in keys})
        hw = sorted({hardware.get(k, "unknown") for k in keys})
        parts.append(f"measured: {len(keys)} cell(s) on {', '.join(hw)} in run(s) {', '.join(runs)}")
    m = row.predicted_p99_ms or row.predicted_ttft_ms
    if m is not None and not (keys and row.provenance == "measured"):
        parts.append(f"{m.provenance}: {m.method}" if m.method else str(m.provenance))
    return "; ".join(parts)


def ranked_table(rec: Recommendation, runs: Sequence[RunRecord] = ()) -> pd.DataFrame:
    """The recommendation's ranked rows for display: conservative figures with ranges (units
    in the headers), the provenance of each row and its evidence: ``evidence`` in words and
    ``evidence link`` to the compare page with the measured cells behind the row (empty for a
    row with no measured cells in ``runs``)."""
    df = rec.to_frame()
    if df.empty:
        return df
    ev = evidence_cells(rec, runs)
    hardware = {cell_key(r.run_id, c.cell_id): cell_hardware(r, c) for r in runs for c in r.cells}
    keys = [ev.get(r.profile_id, []) if r.provenance in ("measured", "mixed") else [] for r in rec.rows]
    lat_col = "predicted_p99_ms" if df["predicted_p99_ms"].notna().any() else "predicted_ttft_ms"

    def rng(name: str) -> list[str]:
        return [
            f"{format_number(v)} [{format_number(lo)}..{format_number(hi)}]"
            if lo is not None and not pd.isna(lo)
            else format_number(v)
            for v, lo, hi in zip(df[name], df[f"{name}_low"], df[f"{name}_high"])
        ]

    per1m_unit = next((r.usd_per_1m.unit for r in rec.rows if r.usd_per_1m is not None and r.usd_per_1m.unit), "USD")
    return pd.DataFrame(
        {
            "rank": df["rank"],
            "profile": df["profile_id"],
            "kind": df["kind"],
            "provenance": df["provenance"],
            "evidence link": [compare_link(k) if k else None for k in keys],
            "devices": df["devices"],
            "dtype": df["dtype"],
            "batch (samples)": df["batch_size"],
            f"{lat_col.removesuffix('_ms')} (ms) [range]": rng(lat_col),
            "cost (USD/month)": df["usd_per_month"],
            "power (kW)": df["kw"],
            f"cost per 1M ({per1m_unit})": df["usd_per_1m"],
            "evidence": [_evidence_text(r, k, hardware) for r, k in zip(rec.rows, keys)],
            "notes": df["notes"],
        }
    )


def pareto_frame(rec: Recommendation) -> pd.DataFrame:
    """Profiles with a cost and a latency: ``usd_per_month``, ``latency_ms`` (conservative
    end), ``provenance``, ``pareto`` (not dominated on cost and latency) and
    ``latency_metric`` (what ``latency_ms`` is: ``p99 latency``, or ``TTFT p99`` where the
    recommendation predicts no p99, as for token streams)."""
    df = rec.to_frame()
    if df.empty:
        return pd.DataFrame(columns=["profile_id", "usd_per_month", "latency_ms", "provenance", "pareto", "rank"])
    lat = df["predicted_p99_ms_high"].fillna(df["predicted_p99_ms"])
    what = "p99 latency"
    if lat.isna().all():
        lat = df["predicted_ttft_ms_high"].fillna(df["predicted_ttft_ms"])
        what = "TTFT p99"
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
    out["latency_metric"] = what
    return out.reset_index(drop=True)
