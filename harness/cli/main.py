"""Command-line interface (typer + rich). Every command calls a library function that the
Python API exposes too; no logic lives here that the API lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli import gate as cli_gate
from harness.cli.app import app_command
from harness.cli.exit_codes import interrupt_exit, run_exit_code, save_error_exit
from harness.cli.profiles import profiles_app
from harness.cli.recommend import recommend_command
from harness.cli.render import FORMAT_HELP, Frame, check_format, emit, print_table
from harness.cli.run_tables import cell_frame, summary_frame
from harness.cli.serve import serve_command
from harness.cli.variants_view import front_frame
from harness.cluster.executor import ClusterError, ClusterExecutor
from harness.core import plugins
from harness.core.hardware import HardwareProfile, apply_overrides, get_profile, load_profile
from harness.core.records import CellRecord, CellSpec, RunRecord
from harness.core.spec import SpecError
from harness.measure.host import host_profile
from harness.measure.lifecycle import RunSaveError
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
err = Console(stderr=True, soft_wrap=True)  # one error, one line (logs, grep)


def summary_table(record: RunRecord, title: str | None = None) -> Frame:
    """The run's summary (one row per cell) as a :class:`harness.cli.render.Frame`."""
    return summary_frame(record, title)


@app.command()
def run(
    suite: Path = typer.Argument(..., help="suite YAML file", exists=False),
    results: Path = typer.Option(DEFAULT_ROOT, "--results", "-o", help="results directory"),
    only: str | None = typer.Option(None, "--only", help="run only cells whose id contains this text"),
    profile_id: str | None = typer.Option(None, "--profile", help="hardware profile id or YAML file for this host"),
    usd_per_hour: float | None = typer.Option(None, "--usd-per-hour", help="override the host's price"),
    tdp_w: float | None = typer.Option(None, "--tdp-w", help="override the host's TDP (W)"),
    idle_w: float | None = typer.Option(None, "--idle-w", help="override the host's idle power (W)"),
    cluster: str | None = typer.Option(
        None, "--cluster", help="run the cells as Ray tasks on this cluster: ray://HOST:PORT, HOST:PORT or auto"
    ),
) -> None:
    """Run a benchmark suite and print a summary table."""
    overrides = {
        k: v for k, v in {"usd_per_hour": usd_per_hour, "tdp_w": tdp_w, "idle_w": idle_w}.items() if v is not None
    }
    try:
        profile = _resolve_profile(profile_id, overrides) if profile_id else host_profile(overrides)
    except (ValueError, OSError, KeyError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc.args[0] if isinstance(exc, KeyError) else exc))}")
        raise typer.Exit(2) from None
    console.print(f"host profile: [bold]{profile.id}[/] ({profile.vendor} {profile.model})")
    # on a cluster each node records its own profile unless --profile names one (docs/cluster.md)
    executor = ClusterExecutor(cluster, profile if profile_id else None, overrides) if cluster else None
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
                executor=executor,
            )
        except (SpecError, ClusterError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except RunSaveError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(save_error_exit(exc)) from None
        except KeyboardInterrupt as exc:
            msg, code = interrupt_exit(exc)
            err.print(f"[yellow]{escape(msg)}[/]")
            raise typer.Exit(code) from None
    print_table(summary_frame(record), console)
    ok = sum(c.status == "ok" for c in record.cells)
    console.print(f"{ok}/{len(record.cells)} cells ok. Results: [bold]{results / record.run_id}[/]")
    if code := run_exit_code(record):
        raise typer.Exit(code)


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
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    front: bool = typer.Option(False, "--front", help="only the speed-accuracy front of the run's variant cells"),
) -> None:
    """Show a run's summary table (or one cell's metrics) as a table, CSV, JSON or Markdown; a run
    with variant cells also shows its speed-accuracy front (table and Markdown)."""
    if (bad := check_format(fmt)) is not None:
        err.print(f"[red]error:[/] {escape(bad)}")
        raise typer.Exit(2)
    try:
        record = load_run(run_id, results)
    except ResultsError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    variants = front_frame(record)
    if front:
        if variants is None:
            err.print(f"[red]error:[/] run {escape(record.run_id)} has no variant cells (no speed-accuracy front)")
            raise typer.Exit(2)
        emit(variants, fmt, console)
        return
    if cell is None:
        frame = summary_frame(record)
        env = record.environment
        frame.notes.append(
            f"{env.get('cpu_model')} · {env.get('cpu_logical_cores')} cores · "
            f"python {env.get('python')} · status {record.status}"
        )
        emit(frame, fmt, console)
        if variants is not None and fmt in ("table", "markdown"):  # csv/json: one table, use --front
            emit(variants, fmt, console)
        return
    try:
        c = record.cell(cell)
    except KeyError as exc:
        err.print(f"[red]error:[/] {escape(str(exc.args[0]))}")
        raise typer.Exit(2) from None
    emit(cell_frame(c), fmt, console)


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
    app.command("serve")(serve_command)


def main() -> None:
    """The ``harness`` command."""
    _mount_optional()
    app(prog_name="harness")


if __name__ == "__main__":  # pragma: no cover
    main()
