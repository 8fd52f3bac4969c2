"""``harness gate ab`` and ``harness gate calibrate-noise``: the gate commands that measure.

``ab`` measures baseline and current interleaved (:mod:`harness.measure.interleave`) and gates
them block by block; ``calibrate-noise`` runs a suite repeatedly (or A/A interleaved
sessions) and suggests thresholds (:mod:`harness.analysis.gate.noise`). Exit codes: 0 pass,
1 regression, 2 usage or data error, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.progress import Progress

from harness.analysis.gate import GateError, compare_runs, noise_from_ab_reports, noise_from_runs
from harness.cli.gate_common import (
    FORMAT_HELP,
    RESULTS,
    RULES_HELP,
    VERBOSE,
    check_alpha,
    check_format,
    console,
    emit,
    err,
    fail,
    rules_or_exit,
)
from harness.cli.render import Column, Frame, print_table
from harness.core.records import CLOSED_LOOP_SCENARIOS, CellSpec, RunRecord
from harness.core.spec import SpecError, Suite, load_suite
from harness.measure.interleave import InterleaveError, InterleaveOptions, run_ab
from harness.measure.runner import run_suite
from harness.store.refs import LoadedRun


def _parse_pct(text: str, what: str) -> float:
    t = text.strip().rstrip("%").strip()
    try:
        v = float(t) / 100.0
    except ValueError:
        raise fail(f"{what}: expected a percentage such as 5%, got {text!r}") from None
    if not 0 <= v < 10:
        raise fail(f"{what}: must be in [0, 1000) %, got {text!r}")
    if "%" not in text:
        err.print(f"[dim]{what} {text}: read as {v * 100:g} %[/]")
    return v


def _ab_cells(suite: Path, only: str | None, paths: Sequence[str] = ()) -> tuple[Suite, list[CellSpec]]:
    """The suite's cells; ``paths`` (the sides' --current-path / --baseline-path) are on
    ``sys.path`` while it is validated, so backends and models named by import path that
    live in a checkout resolve as they will in the workers."""
    saved = list(sys.path)
    sys.path[:0] = [str(Path(x).resolve()) for x in paths]
    try:
        s, cells = load_suite(suite)
    except SpecError as exc:
        raise fail(str(exc)) from None
    finally:
        sys.path[:] = saved
    cells = [c for c in cells if not only or only in c.cell_id]
    if not cells:
        raise fail(f"{suite}: no cells" + (f" whose id contains {only!r}" if only else ""))
    if not any(c.scenario in CLOSED_LOOP_SCENARIOS for c in cells):
        raise fail(
            f"{suite}: no cell can be interleaved (scenarios {sorted({c.scenario for c in cells})}); "
            f"allowed: {', '.join(sorted(CLOSED_LOOP_SCENARIOS))}"
        )
    return s, cells


def _ab_options(**kw: Any) -> InterleaveOptions:
    try:
        return InterleaveOptions(**kw)
    except ValidationError as exc:
        e = exc.errors()[0]
        if not e["loc"]:  # a rule across options (e.g. the block against its timeout)
            raise fail(str(e["msg"]).removeprefix("Value error, ")) from None
        name = {"start_timeout_s": "start-timeout", "block_timeout_s": "block-timeout"}.get(
            str(e["loc"][0]), str(e["loc"][0]).replace("_", "-")
        )
        raise fail(f"--{name}: {e['msg']} (got {e.get('input')!r})") from None


def _run_ab(
    suite: Path, cells: list[CellSpec], results: Path, name: str, opts: InterleaveOptions, **kw: Any
) -> tuple[RunRecord, RunRecord]:
    with Progress(console=err, transient=True) as prog:
        task = prog.add_task("interleaved A/B", total=len(cells))

        def on_cell(k: int, n: int, spec: Any, recs: Any) -> None:
            prog.update(task, completed=k, description=f"{spec.cell_id}" if recs is None else "interleaved A/B")

        try:
            return run_ab(cells, results, options=opts, suite_name=name, suite_path=suite, on_cell=on_cell, **kw)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/] the cells measured so far are saved (runs marked interrupted)")
            raise typer.Exit(130) from None
        except InterleaveError:
            raise
        except Exception as exc:  # e.g. a full disk or a cell whose options do not parse
            err.print(
                f"[red]error:[/] {type(exc).__name__}: {exc}; the cells measured before it are saved "
                f"under {results} (runs marked interrupted)"
            )
            raise typer.Exit(2) from None


_AB_ROUNDS = typer.Option(100, "--rounds", min=10, help="rounds (>= 10); each side measures one block per round")
_AB_BLOCK = typer.Option(25.0, "--block-ms", min=0.001, help="minimum measured time of one block (ms)")
_AB_WORKERS = typer.Option(3, "--workers", min=1, help="worker processes per side (each loads the model)")
_AB_START_TIMEOUT = typer.Option(
    300.0, "--start-timeout", min=0.001, help="seconds a worker may take to load and warm up"
)
_AB_BLOCK_TIMEOUT = typer.Option(
    120.0, "--block-timeout", min=0.001, help="seconds one block may take (it stops measuring at half of it)"
)


def ab(
    suite: Path = typer.Argument(..., help="suite YAML; its closed-loop cells (offline, single-stream) are measured"),
    baseline_path: list[str] | None = typer.Option(
        None,
        "--baseline-path",
        help="directory put first on sys.path of the baseline workers, e.g. a checkout "
        "of the base commit holding your model code (repeatable)",
    ),
    current_path: list[str] | None = typer.Option(
        None, "--current-path", help="likewise for the current workers (default: as installed)"
    ),
    inject_slowdown: str | None = typer.Option(
        None,
        "--inject-slowdown",
        help="slow the current side's backend by this much, e.g. 5%: shows which "
        "change the gate can see on this machine (recorded in the run)",
    ),
    rounds: int = _AB_ROUNDS,
    block_ms: float = _AB_BLOCK,
    workers: int = _AB_WORKERS,
    start_timeout: float = _AB_START_TIMEOUT,
    block_timeout: float = _AB_BLOCK_TIMEOUT,
    seed: int = typer.Option(0, "--seed", help="seed of the order of turns"),
    fail_on: list[str] | None = typer.Option(
        None,
        "--fail-on",
        help=RULES_HELP,
    ),
    alpha: float = typer.Option(0.01, "--alpha", help="family-wise significance level (Holm-corrected)"),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    verbose: bool = VERBOSE,
    only: str | None = typer.Option(None, "--only", help="measure only cells whose id contains this text"),
    results: Path = RESULTS,
    markdown: Path | None = typer.Option(
        None, "--markdown", help="also write Markdown here (e.g. $GITHUB_STEP_SUMMARY)"
    ),
    junit: Path | None = typer.Option(None, "--junit", help="also write JUnit XML here"),
    json_out: Path | None = typer.Option(None, "--json", help="also write JSON here"),
) -> None:
    """Measure baseline and current interleaved (each side in its own processes, taking turns
    in short blocks) and gate current against baseline block by block; exit 1 on a
    regression, 2 on bad input.

    Host drift hits both sides alike, so small thresholds hold on a noisy machine. Both runs
    are saved (ids ...-ab-baseline-... and ...-ab-current-...); `harness gate compare` on
    them gives the same paired comparison."""
    check_format(fmt)
    check_alpha(alpha)
    rules = rules_or_exit(fail_on)
    slow = _parse_pct(inject_slowdown, "--inject-slowdown") if inject_slowdown else 0.0
    opts = _ab_options(
        rounds=rounds,
        block_ms=block_ms,
        workers=workers,
        seed=seed,
        start_timeout_s=start_timeout,
        block_timeout_s=block_timeout,
    )
    for opt, paths in (("--baseline-path", baseline_path), ("--current-path", current_path)):
        for x in paths or ():
            if not Path(x).is_dir():
                raise fail(f"{opt} {x}: no such directory")
    s, cells = _ab_cells(suite, only, [*(current_path or ()), *(baseline_path or ())])
    try:
        b, c = _run_ab(
            suite,
            cells,
            results,
            s.name,
            opts,
            baseline_path=baseline_path or (),
            current_path=current_path or (),
            inject_slowdown=slow,
        )
    except InterleaveError as exc:
        raise fail(str(exc)) from None
    err.print(
        f"baseline run {b.run_id}, current run {c.run_id} in {results}"
        + (f"; current slowed by {slow:.1%} on purpose" if slow else "")
    )
    try:
        report = compare_runs(
            LoadedRun(b, Path(results) / b.run_id, b.run_id),
            LoadedRun(c, Path(results) / c.run_id, c.run_id),
            rules,
            alpha,
        )
    except GateError as exc:
        raise fail(str(exc)) from None
    emit(report, fmt, markdown, junit, json_out, verbose)
    broken = [x for x in b.cells if x.status not in ("ok", "skipped")]
    if broken:  # the base could not be measured: the gate has nothing to judge against
        err.print(
            f"[red]error:[/] the baseline side could not be measured in {len(broken)} cell(s): "
            + "; ".join(f"{x.cell_id}: {x.status}: {x.error}" for x in broken)
            + " (check --baseline-path and the baseline run's errors)"
        )
        raise typer.Exit(2)
    raise typer.Exit(report.exit_code)


def calibrate_noise(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    repeats: int = typer.Option(5, "--repeats", "-n", min=2, help="identical runs of the suite"),
    false_alarm_rate: float = typer.Option(
        0.01, "--false-alarm-rate", help="target A/A false-alarm rate per comparison"
    ),
    fail_on: list[str] | None = typer.Option(None, "--metric", help="rules whose metrics to calibrate (default rules)"),
    results: Path = RESULTS,
    only: str | None = typer.Option(None, "--only", help="run only cells whose id contains this text"),
    interleaved: bool = typer.Option(
        False,
        "--interleaved",
        help="calibrate `gate ab`: REPEATS interleaved sessions of identical sides (closed-loop cells)",
    ),
    rounds: int = _AB_ROUNDS,
    block_ms: float = _AB_BLOCK,
    workers: int = _AB_WORKERS,
) -> None:
    """Run SUITE REPEATS times and report run-to-run noise and a threshold per metric
    (with --interleaved: the noise of `gate ab` between identical sides)."""
    rules = rules_or_exit(fail_on)
    metrics = [r.metric for r in rules]
    if interleaved:
        opts = _ab_options(rounds=rounds, block_ms=block_ms, workers=workers)
        s, cells = _ab_cells(suite, only)
        reports = []
        try:
            for i in range(repeats):
                console.print(f"A/A session {i + 1}/{repeats} of {suite}")
                # distinct seeds per session (run_ab adds the cell index)
                b, c = _run_ab(suite, cells, results, s.name, opts.model_copy(update={"seed": i * 100_003}))
                reports.append(
                    compare_runs(
                        LoadedRun(b, Path(results) / b.run_id, b.run_id),
                        LoadedRun(c, Path(results) / c.run_id, c.run_id),
                        rules,
                    )
                )
            rows = noise_from_ab_reports(reports, false_alarm_rate)
        except (GateError, InterleaveError) as exc:
            raise fail(str(exc)) from None
        what = f"interleaved A/A noise over {repeats} sessions"
    else:
        runs = []
        for i in range(repeats):
            console.print(f"run {i + 1}/{repeats} of {suite}")
            try:
                rec = run_suite(suite, root=results, only=(lambda c: only in c.cell_id) if only else None)
            except SpecError as exc:
                raise fail(str(exc)) from None
            runs.append(LoadedRun(rec, Path(results) / rec.run_id, rec.run_id))
        try:
            rows = noise_from_runs(runs, metrics, false_alarm_rate)
        except GateError as exc:
            raise fail(str(exc)) from None
        what = f"run-to-run noise over {repeats} runs"
    t = Frame(
        f"{what} (target false-alarm rate {false_alarm_rate:g})",
        [
            Column("cell_id", "cell", str),
            Column("metric", "metric", str),
            Column("n", "runs" if not interleaved else "sessions", str),
            Column("mean", "mean", lambda v: f"{v:.4g}"),
            Column("cv", "CV", lambda v: f"{v * 100:.2f}%"),
            Column("aa_max_change", "A/A max change", lambda v: f"{v * 100:.2f}%"),
            Column("suggested_threshold", "suggested threshold", lambda v: f"{v * 100:.1f}%"),
            Column("false_alarms", "A/A false alarms", str),
        ],
        key_columns=2,
    )
    for r in rows:
        t.add(
            {
                "cell_id": r.cell_id,
                "metric": r.metric,
                "n": r.n_runs,
                "mean": r.mean_statistic,
                "cv": r.cv,
                "aa_max_change": r.aa_max_change,
                "suggested_threshold": r.suggested_threshold,
                "false_alarms": f"{r.false_alarms}/{r.pairs}",
            }
        )
    print_table(t, console)
    by_metric: dict[str, float] = {}
    for r in rows:
        by_metric[r.metric] = max(by_metric.get(r.metric, 0.0), r.suggested_threshold)
    sign = {m.name: ("+" if m.direction == "lower" else "-") for m in metrics}
    flags = " ".join(f"--fail-on {m}:{sign[m]}{v * 100:g}%" for m, v in by_metric.items())
    console.print(f"suggested rules (worst cell per metric): [bold]{flags}[/]")
    console.print("[dim]runs of the same machine and job; noise between machines is usually larger[/]")
