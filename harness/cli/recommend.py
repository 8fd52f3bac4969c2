"""``harness recommend``: rank hardware for a model, scenario, SLO and load.

Mount on the main CLI with ``app.command("recommend")(recommend_command)``. Options mirror
:class:`harness.planning.recommend.RecommendRequest`; the logic lives in :func:`harness.planning.recommend.recommend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.core.metrics import Metric
from harness.planning.recommend import (
    SLO,
    Constraints,
    Load,
    ModelSpec,
    ObjectiveName,
    RecommendRequest,
    ScenarioName,
    recommend,
)

_PROV_STYLE = {"measured": "green", "mixed": "yellow", "projected": "magenta", "reference": "cyan"}


def _f(v: float | None, digits: int = 3) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}g}"


def _rng(m: Metric | None) -> str:
    if m is None:
        return "-"
    lo, hi, v = m.ci_low, m.ci_high, m.value
    if lo is None and hi is None:
        return _f(v)
    return f"{_f(v)} [{_f(lo)}..{_f(hi)}]"


def recommend_command(
    model: str = typer.Option(..., help="zoo model (resnet50, bert, gpt2, ...), or bert-99 / llama2-70b"),
    size: str = typer.Option("standard", help="standard | tiny | mlperf"),
    scenario: str = typer.Option("online", help="offline | online | token-stream | sensor-stream"),
    p99_ms: float | None = typer.Option(None, help="p99 latency SLO (online, offline)"),
    ttft_ms: float | None = typer.Option(None, help="TTFT SLO (token-stream)"),
    tpot_ms: float | None = typer.Option(None, help="TPOT SLO (token-stream)"),
    deadline_ms: float | None = typer.Option(None, help="per-item deadline (sensor-stream)"),
    qps: float | None = typer.Option(None, help="target load: queries/s"),
    items_per_day: float | None = typer.Option(None, help="target load: items/day"),
    tokens_per_s: float | None = typer.Option(None, help="target load: output tokens/s"),
    max_usd_per_month: float | None = typer.Option(None, help="budget"),
    max_kw: float | None = typer.Option(None, help="power cap (TDP of all devices)"),
    kinds: str | None = typer.Option(None, help="allowed device kinds, comma-separated"),
    min_memory_gb: float | None = typer.Option(None, help="minimum memory per device"),
    measured_only: bool = typer.Option(False, help="only profiles with measured results"),
    objective: str = typer.Option("cost", help="cost | latency | energy | weights 'cost=1,latency=0.5'"),
    dtype: str = typer.Option("fp16", help="precision: fp32 fp16 bf16 int8 fp8"),
    results: Path | None = typer.Option(None, help="results directory with measured runs"),
    top: int = typer.Option(10, help="rows to show"),
    json_out: Path | None = typer.Option(None, "--json", help="write the recommendation as JSON"),
    csv_out: Path | None = typer.Option(None, "--csv", help="write the ranked rows as CSV"),
) -> None:
    """Rank hardware profiles for a load within an SLO and constraints (with provenance)."""
    obj: ObjectiveName | dict[str, float] = cast(ObjectiveName, objective)  # validated by RecommendRequest
    if "=" in objective:
        try:
            obj = {k.strip(): float(v) for k, v in (p.split("=") for p in objective.split(","))}
        except ValueError:
            raise typer.BadParameter("objective weights look like 'cost=1,latency=0.5'") from None
    try:
        req = RecommendRequest(
            model=ModelSpec(name=model, size=size),
            scenario=cast(ScenarioName, scenario),  # validated by RecommendRequest
            slo=SLO(p99_ms=p99_ms, ttft_ms=ttft_ms, tpot_ms=tpot_ms, deadline_ms=deadline_ms),
            load=Load(qps=qps, items_per_day=items_per_day, tokens_per_s=tokens_per_s),
            constraints=Constraints(
                max_usd_per_month=max_usd_per_month,
                max_kw=max_kw,
                allowed_kinds=tuple(k.strip() for k in kinds.split(",")) if kinds else None,
                min_memory_gb=min_memory_gb,
                measured_only=measured_only,
            ),
            objective=obj,
            dtype=dtype,
        )
        rec = recommend(req, results_root=results)
    except (ValidationError, ValueError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console = Console()
    t = Table(title=f"{model}:{size} {scenario} - ranked by {objective}")
    for col in (
        "#",
        "profile",
        "devices",
        "dtype",
        "batch",
        "p99/TTFT ms [range]",
        "$/month",
        "kW",
        "$/1M",
        "provenance",
    ):
        t.add_column(col, overflow="fold")
    for r in rec.rows[:top]:
        lat = r.predicted_p99_ms or r.predicted_ttft_ms
        style = _PROV_STYLE.get(r.provenance, "white")
        t.add_row(
            str(r.rank),
            r.profile_id,
            str(r.devices),
            r.dtype,
            str(r.batch_size or "-"),
            _rng(lat),
            _f(r.usd_per_month.value if r.usd_per_month else None),
            _f(r.kw.value if r.kw else None),
            _f(r.usd_per_1m.value if r.usd_per_1m else None, 3),
            f"[{style}]{r.provenance}[/]",
        )
    console.print(t)
    if rec.excluded:
        ex = Table(title="excluded")
        ex.add_column("profile")
        ex.add_column("reason", overflow="fold")
        for e in rec.excluded:
            ex.add_row(e.profile_id, e.reason)
        console.print(ex)
    console.print(f"[dim]{rec.enforced_end}[/]")
    if json_out:
        json_out.write_text(rec.to_json())
    if csv_out:
        rec.to_csv(csv_out)


#: standalone app (``python -m``-style use and tests); the main CLI mounts the command itself
app = typer.Typer(add_completion=False, no_args_is_help=True)
app.command("recommend")(recommend_command)


@app.callback()
def _root() -> None:
    """Hardware recommendation."""
