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
    GateError,
    GateReport,
    Rule,
    parse_rules,
    render,
    to_rich_table,
)
from harness.store.results import DEFAULT_ROOT

console = Console()
err = Console(stderr=True)

RESULTS = typer.Option(DEFAULT_ROOT, "--results", "-o", help="results directory (runs and baselines/)")
RULES_HELP = "rule METRIC:+N% / METRIC:-N% (repeatable); default: " + " ".join(DEFAULT_RULES)
FORMAT_HELP = "stdout format: " + ", ".join(FORMATS)


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


def emit(report: GateReport, fmt: str, markdown: Path | None, junit: Path | None, json_out: Path | None) -> None:
    """Print ``report`` in ``fmt``; also write Markdown (appended), JUnit and JSON where paths are given."""
    if fmt == "table":
        console.print(to_rich_table(report))
        for n in report.notes:
            console.print(f"[dim]note: {n}[/]")
    else:
        typer.echo(render(report, fmt))
    for path, f in ((markdown, "markdown"), (junit, "junit"), (json_out, "json")):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if f == "markdown" and path.exists() else "w") as fh:
                fh.write(render(report, f))
