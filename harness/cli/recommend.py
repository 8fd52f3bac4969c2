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
from rich.markup import escape

from harness.cli.exit_codes import one_line
from harness.cli.render import FORMAT_HELP, Column, Frame, check_format, emit
from harness.core.metrics import Metric
from harness.planning.recommend import (
    SLO,
    Constraints,
    Load,
    ModelSpec,
    ObjectiveName,
    Recommendation,
    RecommendRequest,
    ScenarioName,
    recommend,
)

_PROV_STYLE = {"measured": "green", "mixed": "yellow", "projected": "magenta", "reference": "cyan"}


def _v(m: Metric | None) -> float | None:
    return None if m is None else m.value


def recommendation_frames(rec: Recommendation, title: str, top: int) -> list[Frame]:
    """The ranked rows (first ``top``) and, when any, the excluded profiles with the reason.
    Latency is the predicted p99 (or TTFT for token streams) in ms with its range; the
    enforced end of the range is stated in the notes."""
    ranked = Frame(
        title,
        [
            Column("rank", "#", str),
            Column("profile_id", "profile", str),
            Column("devices", "devices", str),
            Column("dtype", "dtype", str),
            Column("batch_size", "batch", lambda v: str(v or "-")),
            Column("latency_kind", "latency", str),
            Column("latency_ms", "latency ms"),
            Column("latency_low_ms", "ms low"),
            Column("latency_high_ms", "ms high"),
            Column("usd_per_month", "$/month"),
            Column("kw", "kW"),
            Column("usd_per_1m", "$/1M"),
            Column("price", "price used", str),
            Column("provenance", "provenance", str),
            Column("stack", "stack", str),
            Column("evidence", "evidence", str),
        ],
        key_columns=2,
    )
    for r in rec.rows[:top]:
        lat = r.predicted_p99_ms or r.predicted_ttft_ms
        ranked.add(
            {
                "rank": r.rank,
                "profile_id": r.profile_id,
                "devices": r.devices,
                "dtype": r.dtype,
                "batch_size": r.batch_size,
                "latency_kind": "p99" if r.predicted_p99_ms is not None else ("TTFT" if lat is not None else "-"),
                "latency_ms": _v(lat),
                "latency_low_ms": None if lat is None else lat.ci_low,
                "latency_high_ms": None if lat is None else lat.ci_high,
                "usd_per_month": _v(r.usd_per_month),
                "kw": _v(r.kw),
                "usd_per_1m": _v(r.usd_per_1m),
                "price": r.price,
                "provenance": r.provenance,
                "stack": r.stack,
                "evidence": r.evidence,
            },
            _PROV_STYLE.get(r.provenance),
        )
    if len(rec.rows) > top:
        ranked.notes.append(f"{len(rec.rows) - top} more ranked profile(s); --top N shows more")
    ranked.notes.append(rec.enforced_end)
    frames = [ranked]
    if rec.excluded:
        ex = Frame("excluded", [Column("profile_id", "profile", str), Column("reason", "reason", str)])
        for e in rec.excluded:
            ex.add({"profile_id": e.profile_id, "reason": e.reason})
        frames.append(ex)
    return frames


def parse_prices(items: list[str]) -> dict[str, float]:
    """``--price ID=USD/h`` values as {profile id: USD per device-hour}; a malformed one raises
    ``typer.BadParameter`` showing the expected form."""
    out: dict[str, float] = {}
    for item in items:
        pid, sep, usd = item.partition("=")
        try:
            value = float(usd)
        except ValueError:
            value = float("nan")
        if not sep or not pid.strip() or not value > 0 or value == float("inf"):
            raise typer.BadParameter(
                f"--price {item!r}: expected ID=USD/h with a positive price, e.g. amd-alveo-u250=1.65"
            )
        out[pid.strip()] = value
    return out


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
    price_source: str = typer.Option(
        "on-demand",
        "--price-source",
        help="which listed price: on-demand (default) | spot | committed | capacity-block | a provider (aws, gcp, "
        "lambda, ...); a profile without one uses its first on-demand, capacity-block, committed or spot price "
        "and says so",
    ),
    prices: list[str] | None = typer.Option(
        None, "--price", help="your price for a profile, ID=USD/h (repeatable); ranks a profile without one"
    ),
    top: int = typer.Option(10, help="rows to show"),
    json_out: Path | None = typer.Option(None, "--json", help="write the recommendation as JSON"),
    csv_out: Path | None = typer.Option(None, "--csv", help="write the ranked rows as CSV"),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP + " (csv/json: the ranked rows)"),
) -> None:
    """Rank hardware profiles for a load within an SLO and constraints (with provenance)."""
    if (bad := check_format(fmt)) is not None:
        Console(stderr=True).print(f"[red]error:[/] {bad}")
        raise typer.Exit(2)
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
        rec = recommend(req, results_root=results, price_source=price_source, user_prices=parse_prices(prices or []))
    except (ValidationError, ValueError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(one_line(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    frames = recommendation_frames(rec, f"{model}:{size} {scenario} - ranked by {objective}", top)
    console = Console()
    for i, frame in enumerate(frames if fmt in ("table", "markdown") else frames[:1]):
        if i:
            console.print()
        emit(frame, fmt, console)
    try:
        if json_out:
            json_out.write_text(rec.to_json())
        if csv_out:
            rec.to_csv(csv_out)
    except OSError as exc:
        where = json_out if json_out and not (csv_out and exc.filename == str(csv_out)) else csv_out
        Console(stderr=True).print(f"[red]error:[/] cannot write {where}: {exc.strerror or exc}", soft_wrap=True)
        raise typer.Exit(2) from None


#: standalone app (``python -m``-style use and tests); the main CLI mounts the command itself
app = typer.Typer(add_completion=False, no_args_is_help=True)
app.command("recommend")(recommend_command)


@app.callback()
def _root() -> None:
    """Hardware recommendation."""
