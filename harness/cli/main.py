"""Command-line interface (typer + rich). Every command calls a library function that the
Python API exposes too; no logic lives here that the API lacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli import gate as cli_gate
from harness.cli.app import app_command
from harness.cli.profiles import profiles_app
from harness.cli.recommend import recommend_command
from harness.core import plugins
from harness.core.hardware import HardwareProfile, apply_overrides, get_profile, load_profile
from harness.core.metrics import Metric
from harness.core.records import CellRecord, CellSpec, RunRecord
from harness.core.spec import SpecError
from harness.measure.host import host_profile
from harness.measure.runner import run_suite
from harness.store.results import DEFAULT_ROOT, ResultsError, load_run
from workloads.registry import list_workloads

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Inference benchmarking and hardware selection.",
)
console = Console()
err = Console(stderr=True)


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


_PROV_STYLE = {"measured": "green", "estimated": "yellow", "projected": "magenta", "reference": "cyan"}


def _prov(p: str | None) -> str:
    if not p:
        return "-"
    kind = p.split(":", 1)[0]
    return f"[{_PROV_STYLE.get(kind, 'white')}]{p}[/]"


def summary_table(record: RunRecord, title: str | None = None) -> Table:
    """Rich table with one row per cell: headline numbers, energy, cost and provenance."""
    t = Table(title=title or f"run {record.run_id}", show_lines=False)
    t.add_column("cell", no_wrap=True)
    for col in ("status", "thr/s", "p50 ms", "p99 ms", "headline", "W", "J/inf", "$/1M", "power source", "valid"):
        t.add_column(col, overflow="fold")
    for c in record.cells:
        m = c.metrics

        def val(name: str) -> float | None:
            return m[name].value if name in m else None

        headline = _headline(m)
        thr = val("throughput") or val("output_tokens_per_s")
        status = {"ok": "[green]ok[/]"}.get(c.status, f"[red]{c.status}[/]")
        if c.status != "ok" and c.error:
            status += f"\n[dim]{escape(c.error[:120])}[/]"
        valid = (
            "-"
            if c.valid is None
            else ("yes" if c.valid else "[yellow]no: " + ", ".join(k for k, v in c.validity.items() if not v) + "[/]")
        )
        t.add_row(
            c.cell_id,
            status,
            _fmt(thr),
            _fmt(val("latency_p50")),
            _fmt(val("latency_p99")),
            headline,
            _fmt(val("power_w")),
            *_per_unit(m),
            _prov(m["power_w"].provenance if "power_w" in m else None),
            valid,
        )
    return t


def _headline(m: dict[str, Metric]) -> str:
    """The scenario's headline figure, named."""

    def v(name: str) -> str:
        return _fmt(m[name].value) if name in m else "-"

    es = ""
    if "latency_early_stop" in m:
        q = re.search(r"p\d+(?:\.\d+)?", m["latency_early_stop"].method or "")
        es = f"{q.group(0) if q else 'pXX'} (early stop) {v('latency_early_stop')} ms"
    if "peak_qps" in m:
        return f"peak {v('peak_qps')} qps" + (f"; {es}" if es else "")
    if "ttft_p50" in m:
        return f"TTFT {v('ttft_p50')} / TPOT {v('tpot_p50')} ms"
    if "deadline_miss_rate" in m:
        return f"deadline miss {v('deadline_miss_rate')}"
    if "achieved_qps" in m:
        return f"{v('achieved_qps')} of {v('offered_qps')} qps" + (f"; {es}" if es else "")
    return es or "-"


def _per_unit(m: dict[str, Metric]) -> tuple[str, str]:
    """J and $/1M per inference, or per generated token for token streams."""

    def v(name: str) -> float | None:
        return m[name].value if name in m else None

    if (
        v("energy_per_inference_j") is None
        and v("usd_per_1m_inferences") is None
        and (v("energy_per_token_j") is not None or v("usd_per_1m_tokens") is not None)
    ):
        return f"{_fmt(v('energy_per_token_j'))}/tok", f"{_fmt(v('usd_per_1m_tokens'))}/tok"
    return _fmt(v("energy_per_inference_j")), _fmt(v("usd_per_1m_inferences"))


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML file", exists=False),
    results: Path = typer.Option(DEFAULT_ROOT, "--results", "-o", help="results directory"),
    only: str | None = typer.Option(None, "--only", help="run only cells whose id contains this text"),
    profile_id: str | None = typer.Option(None, "--profile", help="hardware profile id or YAML file for this host"),
    usd_per_hour: float | None = typer.Option(None, "--usd-per-hour", help="override the host's price"),
    tdp_w: float | None = typer.Option(None, "--tdp-w", help="override the host's TDP (W)"),
    idle_w: float | None = typer.Option(None, "--idle-w", help="override the host's idle power (W)"),
) -> None:
    """Run a benchmark suite and print a summary table."""
    overrides = {
        k: v for k, v in {"usd_per_hour": usd_per_hour, "tdp_w": tdp_w, "idle_w": idle_w}.items() if v is not None
    }
    try:
        profile = _resolve_profile(profile_id, overrides) if profile_id else host_profile(overrides)
    except (ValueError, OSError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"host profile: [bold]{profile.id}[/] ({profile.vendor} {profile.model})")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as prog:
        task = prog.add_task("cells", total=None)

        def progress(i: int, n: int, spec: CellSpec, cell: CellRecord | None) -> None:
            prog.update(task, total=n, completed=i, description=f"[bold]{spec.cell_id}[/]")
            if cell is not None and cell.status != "ok":
                prog.console.print(f"[red]{cell.status}[/] {spec.cell_id}: {escape(cell.error or '')}")

        try:
            record = run_suite(
                suite,
                root=results,
                profile=profile,
                progress=progress,
                only=(lambda c: only in c.cell_id) if only else None,
            )
        except SpecError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/] cells measured so far are saved")
            raise typer.Exit(130) from None
    console.print(summary_table(record))
    ok = sum(c.status == "ok" for c in record.cells)
    console.print(f"{ok}/{len(record.cells)} cells ok. Results: [bold]{results / record.run_id}[/]")
    console.print("[dim]power source: measured = read from a counter; estimated = a model (e.g. TDP x utilisation)[/]")


def _resolve_profile(ref: str, overrides: dict[str, Any]) -> HardwareProfile:
    """The profile named by id or YAML file ``ref``, with the command line's overrides."""
    profile = load_profile(Path(ref)) if ref.endswith((".yaml", ".yml")) else get_profile(ref)
    return apply_overrides(profile, **overrides) if overrides else profile


@app.command("list")
def list_(what: str = typer.Argument(..., help="backends | models | scenarios")) -> None:
    """List registered backends (with availability), models or scenarios."""
    if what == "backends":
        t = Table("backend", "available", "reason")
        for name, ok, why in plugins.backend_status():
            t.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", escape(why))
        console.print(t)
    elif what == "models":
        for n in list_workloads():
            console.print(n)
        console.print("[dim]user models: onnx:PATH.onnx, module:package.module:factory[/]")
    elif what == "scenarios":
        t = Table("scenario", "headline", "description")
        for n in plugins.names("scenario"):
            try:
                cls = plugins.load("scenario", n)
            except Exception as exc:  # a broken plugin is listed with its error, not hidden
                t.add_row(n, "", f"[red]failed to import: {escape(str(exc))}[/]")
                continue
            t.add_row(n, getattr(cls, "headline", ""), (cls.__doc__ or "").strip().split("\n")[0])
        console.print(t)
    else:
        err.print(f"[red]error:[/] unknown list {what!r}; choose one of: backends, models, scenarios")
        raise typer.Exit(2)


@app.command()
def show(
    run_id: str = typer.Argument(..., help="run id, run directory or run.json"),
    results: Path = typer.Option(DEFAULT_ROOT, "--results", "-o"),
    cell: str | None = typer.Option(None, "--cell", help="print every metric of this cell"),
) -> None:
    """Show a run's summary table (or one cell's metrics)."""
    try:
        record = load_run(run_id, results)
    except ResultsError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if cell is None:
        console.print(summary_table(record))
        env = record.environment
        console.print(
            f"[dim]{env.get('cpu_model')} · {env.get('cpu_logical_cores')} cores · "
            f"python {env.get('python')} · status {record.status}[/]"
        )
        return
    c = record.cell(cell)
    t = Table("metric", "value", "unit", "provenance", "CI")
    for name, m in sorted(c.metrics.items()):
        ci = f"[{_fmt(m.ci_low)}, {_fmt(m.ci_high)}]" if m.ci_low is not None else ""
        t.add_row(name, _fmt(m.value, 5), m.unit, _prov(m.provenance), ci)
    console.print(t)
    console.print({"validity": c.validity, "parity": c.parity.model_dump() if c.parity else None})


_MOUNTED = False


def _mount_optional() -> None:
    """Sub-apps living in their own modules (idempotent)."""
    global _MOUNTED
    if _MOUNTED:
        return
    _MOUNTED = True
    app.add_typer(profiles_app, name="profiles", help="hardware profiles: list, show, validate")
    app.add_typer(
        cli_gate.gate_app, name="gate", help="regression gate: compare, ab, baselines, noise calibration, reports"
    )
    # the gate's everyday commands also at the top level: harness compare / ab / baseline /
    # calibrate-noise / report
    app.command("compare")(cli_gate.compare)
    app.command("ab")(cli_gate.ab)
    app.command("calibrate-noise")(cli_gate.calibrate_noise)
    app.command("report")(cli_gate.report)
    app.add_typer(cli_gate.baseline_app, name="baseline", help="named baselines under RESULTS/baselines/")
    app.command("app")(app_command)
    app.command("recommend")(recommend_command)


def main() -> None:
    """The ``harness`` command."""
    _mount_optional()
    app(prog_name="harness")


if __name__ == "__main__":  # pragma: no cover
    main()
