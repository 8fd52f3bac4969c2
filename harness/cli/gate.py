"""``harness gate ...``: compare runs, manage baselines, calibrate noise, write reports.

Mount with ``app.add_typer(gate_app, name="gate")``. Exit codes: 0 pass, 1 regression,
2 usage or data error. The commands that measure (``ab``, ``calibrate-noise``) live in
:mod:`harness.cli.gate_ab`, the pieces the commands share in :mod:`harness.cli.gate_common`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import typer

from harness.analysis.gate import GateError, compare_run_sets, compare_runs, load_run_ref
from harness.analysis.report import write_report
from harness.cli.gate_ab import ab, calibrate_noise
from harness.cli.gate_common import (
    FORMAT_HELP,
    RESULTS,
    RULES_HELP,
    VERBOSE,
    check_format,
    console,
    emit,
    fail,
    rules_or_exit,
)
from harness.cli.render import Column, Frame, print_table
from harness.store.refs import baselines_root
from harness.store.results import ResultsError, load_run

__all__ = ["ab", "baseline_app", "baseline_list", "baseline_save", "calibrate_noise", "compare", "gate_app", "report"]

gate_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Performance-regression gate, baselines, noise calibration and reports.",
)
baseline_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Named baselines under RESULTS/baselines/.")


def compare(
    baseline: str = typer.Argument(
        ..., help="baseline: run dir, run id, or baseline name; several, comma-separated, for a run-set comparison"
    ),
    current: str = typer.Argument(..., help="current: run dir or run id; several, comma-separated"),
    fail_on: list[str] | None = typer.Option(
        None,
        "--fail-on",
        help=RULES_HELP,
    ),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    verbose: bool = VERBOSE,
    alpha: float = typer.Option(0.01, "--alpha", help="family-wise significance level (Holm-corrected)"),
    results: Path = RESULTS,
    allow_unmatched: bool = typer.Option(False, "--allow-unmatched", help="compare common cells, list the rest"),
    only: str | None = typer.Option(None, "--only", help="compare only cells whose id contains this text"),
    markdown: Path | None = typer.Option(
        None, "--markdown", help="also write Markdown here (e.g. $GITHUB_STEP_SUMMARY)"
    ),
    junit: Path | None = typer.Option(None, "--junit", help="also write JUnit XML here"),
    json_out: Path | None = typer.Option(None, "--json", help="also write JSON here"),
) -> None:
    """Compare CURRENT with BASELINE cell by cell; exit 1 on a regression, 2 on bad input.

    With several runs on each side (``base1,base2,base3 head1,head2,head3``, e.g. measured
    alternately in one job) the runs' statistics are compared, so the noise between runs is
    in the interval."""
    check_format(fmt)
    rules = rules_or_exit(fail_on)
    try:
        bs = [load_run_ref(x, results) for x in baseline.split(",") if x]
        cs = [load_run_ref(x, results) for x in current.split(",") if x]
        if len(bs) == 1 and len(cs) == 1:
            report = compare_runs(
                bs[0],
                cs[0],
                rules,
                alpha,
                allow_unmatched=allow_unmatched,
                cells=(lambda cid: only in cid) if only else None,
            )
        else:
            report = compare_run_sets(bs, cs, rules, alpha)
    except GateError as exc:
        raise fail(str(exc)) from None
    emit(report, fmt, markdown, junit, json_out, verbose)
    raise typer.Exit(report.exit_code)


def baseline_save(
    name: str = typer.Argument(..., help="baseline name (letters, digits, . _ -)"),
    run_id: str = typer.Argument(..., help="run id or run directory to store"),
    results: Path = RESULTS,
    force: bool = typer.Option(False, "--force", help="replace an existing baseline of this name"),
) -> None:
    """Store a run as baseline NAME (a copy of its run.json and raw files)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
        raise fail(f"baseline name {name!r}: use letters, digits, '.', '_' or '-'")
    try:
        run = load_run_ref(run_id, results)
    except GateError as exc:
        raise fail(str(exc)) from None
    dest = baselines_root(results) / name
    if dest.exists():
        if not force:
            raise fail(f"baseline {name!r} exists at {dest}; use --force to replace it")
        shutil.rmtree(dest)
    tmp = dest.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run.path, tmp)
    tmp.rename(dest)
    console.print(f"baseline [bold]{name}[/] <- run {run.record.run_id} ({len(run.record.cells)} cells) at {dest}")


def baseline_list(results: Path = RESULTS) -> None:
    """List stored baselines."""
    root = baselines_root(results)
    t = Frame(
        f"baselines in {root}",
        [
            Column(k, h)
            for k, h in (
                ("name", "name"),
                ("run_id", "run id"),
                ("created_utc", "created (UTC)"),
                ("cells", "cells"),
                ("suite", "suite"),
                ("commit", "commit"),
            )
        ],
    )
    for d in sorted(root.iterdir()) if root.exists() else []:
        if not (d / "run.json").exists():
            continue
        try:
            r = load_run(d)
        except ResultsError as exc:
            t.add({"name": d.name, "run_id": f"unreadable: {exc}"}, "red")
            continue
        commit = (r.environment.get("project_git") or {}).get("commit") or "-"
        t.add(
            {
                "name": d.name,
                "run_id": r.run_id,
                "created_utc": r.created_utc,
                "cells": len(r.cells),
                "suite": r.suite_name,
                "commit": str(commit)[:10],
            }
        )
    print_table(t, console)


def report(
    run: str = typer.Argument(..., help="run id or run directory"),
    against: str | None = typer.Option(None, "--against", help="baseline (run id, dir or baseline name) to overlay"),
    out: Path | None = typer.Option(None, "--out", help="output directory (default: RUN_DIR/report)"),
    results: Path = RESULTS,
) -> None:
    """Write a self-contained HTML report (embedded PNG plots) and a Markdown version."""
    try:
        cur = load_run_ref(run, results)
        base = load_run_ref(against, results) if against else None
        files = write_report(cur, out or cur.path / "report", baseline=base)
    except (GateError, ResultsError) as exc:
        raise fail(str(exc)) from None
    console.print(f"HTML: [bold]{files.html}[/]\nMarkdown: [bold]{files.markdown}[/] ({len(files.images)} plots)")


# registered in this order, the order `harness gate --help` lists them
gate_app.command("compare")(compare)
gate_app.command("ab")(ab)
gate_app.add_typer(baseline_app, name="baseline")
baseline_app.command("save")(baseline_save)
baseline_app.command("list")(baseline_list)
gate_app.command("calibrate-noise")(calibrate_noise)
gate_app.command("report")(report)
