"""Shared pieces of the ``harness gate`` commands: consoles, the results option, rule parsing
with deprecation warnings as one stderr line, usage errors (exit 2) and report output."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from harness.analysis.gate import (
    DEFAULT_RULES,
    EXIT_ERROR,
    FORMATS,
    HEADERS,
    GateError,
    GateReport,
    Rule,
    folded_line,
    parse_rules,
    render,
    shown_verdicts,
    summary_line,
    verdict_rows,
)
from harness.cli.render import Column, Frame, print_table
from harness.store.results import DEFAULT_ROOT

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line (logs, grep)

RESULTS = typer.Option(DEFAULT_ROOT, "--results", "-o", help="results directory (runs and baselines/)")
RULES_HELP = "rule METRIC:+N% / METRIC:-N% (repeatable); default: " + " ".join(DEFAULT_RULES)
FORMAT_HELP = "stdout format: " + ", ".join(FORMATS)
VERBOSE = typer.Option(False, "--verbose", "-v", help="list every comparison, not only the regressions")


def fail(msg: str) -> typer.Exit:
    """Print ``msg`` as an error and return the exit (code 2) to raise."""
    err.print(f"[red]error:[/] {msg}")
    return typer.Exit(EXIT_ERROR)


def rules_or_exit(texts: Iterable[str] | None) -> list[Rule]:
    """Parse --fail-on rules; a deprecated metric name prints one warning line naming the new
    rule (and still counts); a bad rule is a usage error (exit 2)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            rules = parse_rules(texts)
        except GateError as exc:
            raise fail(str(exc)) from None
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            err.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return rules


def check_format(fmt: str) -> None:
    """Exit 2 unless ``fmt`` is one of :data:`harness.analysis.gate.FORMATS`."""
    if fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; allowed: {', '.join(FORMATS)}")


def check_alpha(alpha: float) -> None:
    """Exit 2 unless ``alpha`` lies in (0, 1)."""
    if not 0 < alpha < 1:
        raise fail(f"--alpha must be in (0, 1), got {alpha}")


def verdict_frame(report: GateReport, verbose: bool = False) -> Frame:
    """The comparisons a summary lists (regressions and failed cells; all when ``verbose``) as a
    :class:`harness.cli.render.Frame` of displayed strings."""
    chosen = shown_verdicts(report, verbose)
    keys = ["cell_id", "metric", "baseline", "current", "change", "ci", "threshold", "p_holm", "mde", "verdict"]
    f = Frame(
        f"gate: {report.current} vs {report.baseline}",
        [Column(k, h, str) for k, h in zip(keys, HEADERS)],
        key_columns=2,
    )
    style = {"regression": "bold red", "failed": "bold red", "improvement": "green", "inconclusive": "yellow"}
    for v, row in zip(chosen, verdict_rows(report, chosen)):
        f.add(dict(zip(keys, row)), style.get(v.verdict))
    return f


def emit(
    report: GateReport,
    fmt: str,
    markdown: Path | None,
    junit: Path | None,
    json_out: Path | None,
    verbose: bool = False,
) -> None:
    """Print ``report`` in ``fmt``; also write Markdown (appended), JUnit and JSON where paths are given.

    ``table`` is summary-first: the PASS/FAIL line, the regressions and failed cells (a table,
    or one block each when the console is too narrow), one count line for the comparisons that
    passed (every comparison with ``verbose``), then the notes."""
    if fmt == "table":
        console.print(
            summary_line(report), style="bold red" if report.exit_code else "bold green", markup=False, soft_wrap=True
        )
        frame = verdict_frame(report, verbose)
        if frame.rows:
            print_table(frame, console)
        elif not verbose:
            console.print("no regressions", markup=False)
        if fold := folded_line(report, verbose):
            console.print(fold, markup=False, highlight=False, soft_wrap=True)
        for n in report.notes:
            console.print(f"note: {n}", style="dim", markup=False, highlight=False, soft_wrap=True)
    else:
        typer.echo(render(report, fmt, verbose))
    for path, f in ((markdown, "markdown"), (junit, "junit"), (json_out, "json")):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a" if f == "markdown" and path.exists() else "w") as fh:
                    fh.write(render(report, f))
            except OSError as exc:  # a directory, a read-only place: bad input, not a regression
                raise fail(f"--{'json' if f == 'json' else f}: cannot write {path}: {exc.strerror or exc}") from None
