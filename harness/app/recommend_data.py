"""View models of the recommend page: the form's values as a request, the ranked table with
ranges, and the cost-vs-latency Pareto front (USD/month against p99 or TTFT in ms)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.app.data import format_number
from harness.core.records import RunRecord
from harness.planning.recommend import SLO, Constraints, Load, ModelSpec, Recommendation, RecommendRequest

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
    (blank / zero optional numbers mean "not set"). Raises ``ValueError`` with the
    validation message on bad input."""

    def opt(name: str) -> float | None:
        v = form.get(name)
        return None if v in (None, "", 0, 0.0) else float(v)

    load_kind = form.get("load_kind", "qps")
    objective = form.get("objective", "cost")
    if objective == "weighted":
        weights = {k: float(form.get(f"w_{k}", 0.0)) for k in ("cost", "latency", "energy")}
        objective = {k: w for k, w in weights.items() if w > 0}
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


def ranked_table(rec: Recommendation) -> pd.DataFrame:
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


def pareto_frame(rec: Recommendation) -> pd.DataFrame:
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
