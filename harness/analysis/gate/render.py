"""Gate report outputs: summary-first text, a rich table, Markdown (e.g. a CI step summary),
CSV, JSON and JUnit XML.

Formats (:data:`FORMATS`): ``table`` (summary-first plain text: the PASS/FAIL line, then the
regressions and failed cells one per line, then one count line for the comparisons that
passed; ``verbose`` lists every comparison), ``markdown`` (the same order; every comparison
in a collapsed ``<details>`` block), ``csv`` (every comparison, one row each), ``json``
(:meth:`GateReport.to_dict`, non-finite numbers as null) and ``junit`` (one testcase per cell
x metric; regressions and failed cells are failures, inconclusive and not-applicable
comparisons are skipped with the reason).
"""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET

from rich.table import Table

from harness.analysis.gate.compare import METHOD_SUMMARY, GateReport
from harness.analysis.gate.rules import GateError
from harness.analysis.gate.verdicts import MetricVerdict

_VERDICT_MARK = {
    "regression": "REGRESSION",
    "failed": "FAILED",
    "improvement": "improvement",
    "no change": "no change",
    "inconclusive": "inconclusive",
    "not applicable": "n/a",
}


def _num(v: float | None, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}g}"


def _pct(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v * 100:+.1f}%"


def _ci_pct(v: MetricVerdict) -> str:
    if not (math.isfinite(v.ci_low) and math.isfinite(v.ci_high)):
        return "-"
    return f"[{_pct(v.ci_low - 1)}, {_pct(v.ci_high - 1)}]"


#: verdicts listed one by one in the summary; the others are folded into a count line
SHOWN = ("regression", "failed")


def shown_verdicts(report: GateReport, verbose: bool = False) -> list[MetricVerdict]:
    """The verdicts a summary lists: regressions and failed cells first (all verdicts, those
    first, when ``verbose``)."""
    first = [v for v in report.verdicts if v.verdict in SHOWN]
    return first + [v for v in report.verdicts if v.verdict not in SHOWN] if verbose else first


def folded_line(report: GateReport, verbose: bool = False) -> str:
    """One line counting the comparisons a summary does not list (empty when none are folded)."""
    if verbose:
        return ""
    c = {k: n for k, n in report.counts().items() if k not in SHOWN}
    if not c:
        return ""
    order = ("improvement", "no change", "inconclusive", "not applicable")
    parts = ", ".join(f"{c[k]} {_VERDICT_MARK[k]}" for k in order if k in c)
    cells = len({v.cell_id for v in report.verdicts if v.verdict not in SHOWN})
    return f"not listed: {parts} ({sum(c.values())} comparisons in {cells} cells; --verbose lists them)"


def verdict_rows(report: GateReport, verdicts: list[MetricVerdict] | None = None) -> list[list[str]]:
    """Displayed cells of :data:`HEADERS` for ``verdicts`` (default: all of the report's)."""
    return _rows(report, verdicts)


def _rows(report: GateReport, verdicts: list[MetricVerdict] | None = None) -> list[list[str]]:
    rows = []
    for v in report.verdicts if verdicts is None else verdicts:
        thr = ("+" if v.direction == "lower" else "-") + f"{v.threshold * 100:g}%"
        rows.append(
            [
                v.cell_id,
                v.metric,
                f"{_num(v.baseline_value)} {v.unit}".strip(),
                f"{_num(v.current_value)} {v.unit}".strip(),
                _pct(v.change),
                _ci_pct(v),
                thr,
                _num(v.p_adjusted, 2),
                "-" if not math.isfinite(v.mde) else f"{v.mde * 100:.1f}%",
                _VERDICT_MARK[v.verdict] + (f" ({v.note})" if v.note else ""),
            ]
        )
    return rows


HEADERS = ["cell", "metric", "baseline", "current", "change", "CI", "threshold", "p (Holm)", "mde", "verdict"]


def summary_line(report: GateReport) -> str:
    """``PASS:``/``FAIL:`` with the count of each verdict, alpha and the number of comparisons."""
    c = report.counts()
    parts = ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
    status = "FAIL" if report.exit_code else "PASS"
    return f"{status}: {parts} (alpha {report.alpha:g}, {len(report.verdicts)} comparisons, Holm-corrected)"


def to_rich_table(report: GateReport, verbose: bool = False) -> Table:
    """The verdicts of :func:`shown_verdicts` as a rich table; the caption is the PASS/FAIL line."""
    t = Table(title=f"gate: {report.current} vs {report.baseline}", caption=summary_line(report))
    for h in HEADERS:
        t.add_column(h, overflow="fold")
    style = {
        "regression": "bold red",
        "failed": "bold red",
        "improvement": "green",
        "no change": "",
        "inconclusive": "yellow",
        "not applicable": "dim",
    }
    chosen = shown_verdicts(report, verbose)
    for v, row in zip(chosen, _rows(report, chosen)):
        t.add_row(*row, style=style[v.verdict] or None)
    return t


def verdict_line(row: list[str]) -> str:
    """One comparison on one line: ``VERDICT cell metric: baseline -> current (change, CI ...)``."""
    return (
        f"{row[9]}  {row[0]}  {row[1]}: {row[2]} -> {row[3]} ({row[4]}, CI {row[5]}, "
        f"threshold {row[6]}, p(Holm) {row[7]}, mde {row[8]})"
    )


def to_text(report: GateReport, verbose: bool = False) -> str:
    """Summary-first plain text: the PASS/FAIL line, the listed comparisons one per line, the
    count line of the folded ones, then the notes."""
    chosen = shown_verdicts(report, verbose)
    lines = [f"gate: {report.current} vs {report.baseline}", summary_line(report)]
    if not verbose:
        lines.append(f"{len(report.regressions)} regression(s) or failed cell(s)" + (":" if report.regressions else ""))
    lines += ["  " + verdict_line(r) for r in _rows(report, chosen)]
    if fold := folded_line(report, verbose):
        lines.append(fold)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def to_markdown(report: GateReport, verbose: bool = False) -> str:
    """Summary first: status and rules, the regressions' table (every comparison when
    ``verbose``), the count line, notes; every comparison in a collapsed block."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    def table(rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        return out + ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]

    chosen = shown_verdicts(report, verbose)
    lines = [
        f"## Performance gate: {'FAIL' if report.exit_code else 'PASS'}",
        "",
        f"Current `{report.current}` vs baseline `{report.baseline}`. Rules: "
        + ", ".join(f"`{r}`" for r in report.rules)
        + ".",
        "",
        summary_line(report),
        "",
    ]
    if chosen:
        lines += [*table(_rows(report, chosen)), ""]
    if fold := folded_line(report, verbose):
        lines += [fold.replace("--verbose lists them", "all comparisons below"), ""]
    for n in report.notes:
        lines.append(f"- {esc(n)}")
    if not verbose and len(chosen) < len(report.verdicts):
        lines += [
            "",
            f"<details><summary>all {len(report.verdicts)} comparisons</summary>",
            "",
            *table(_rows(report)),
            "",
            "</details>",
        ]
    lines += ["", f"<sub>Method: {METHOD_SUMMARY}.</sub>", ""]
    return "\n".join(lines)


def to_csv(report: GateReport) -> str:
    """Every comparison as CSV: cell, metric, unit, raw baseline/current values, change and
    its CI as ratios - 1, threshold, direction, adjusted p, minimum detectable effect, verdict, note."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "cell_id",
            "metric",
            "unit",
            "baseline",
            "current",
            "change",
            "ci_low",
            "ci_high",
            "threshold",
            "direction",
            "p_adjusted",
            "mde",
            "verdict",
            "note",
        ]
    )

    def num(x: float | None) -> str:
        return "" if x is None or not math.isfinite(x) else repr(float(x))

    for v in report.verdicts:
        w.writerow(
            [
                v.cell_id,
                v.metric,
                v.unit,
                num(v.baseline_value),
                num(v.current_value),
                num(v.change),
                num(v.ci_low - 1),
                num(v.ci_high - 1),
                num(v.threshold),
                v.direction,
                num(v.p_adjusted),
                num(v.mde),
                v.verdict,
                v.note,
            ]
        )
    return buf.getvalue()


def to_json(report: GateReport) -> str:
    return json.dumps(report.to_dict(), indent=1)


def to_junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per cell x metric; regressions are failures, inconclusive and
    not-applicable comparisons are skipped with the reason."""
    n_fail = len(report.regressions)
    n_skip = sum(v.verdict in ("inconclusive", "not applicable") for v in report.verdicts)
    suite = ET.Element(
        "testsuite",
        name="harness-gate",
        tests=str(len(report.verdicts)),
        failures=str(n_fail),
        errors="0",
        skipped=str(n_skip),
    )
    props = ET.SubElement(suite, "properties")
    for k, val in (
        ("baseline", report.baseline),
        ("current", report.current),
        ("alpha", str(report.alpha)),
        ("rules", ", ".join(report.rules)),
    ):
        ET.SubElement(props, "property", name=k, value=val)
    for v, row in zip(report.verdicts, _rows(report)):
        tc = ET.SubElement(suite, "testcase", classname=v.cell_id or "cell", name=v.metric, time="0")
        text = (
            f"{v.metric}: {row[2]} -> {row[3]} ({row[4]}, CI {row[5]}, threshold {row[6]}, "
            f"p(Holm) {row[7]}, mde {row[8]}) {v.note}"
        ).strip()
        if v.verdict in ("regression", "failed"):
            ET.SubElement(tc, "failure", message=f"{v.verdict}: {v.metric} {row[4]}", type=v.verdict).text = text
        elif v.verdict in ("inconclusive", "not applicable"):
            ET.SubElement(tc, "skipped", message=f"{v.verdict}: {v.note or text}")
        ET.SubElement(tc, "system-out").text = text
    root = ET.Element(
        "testsuites", name="harness-gate", tests=suite.get("tests", "0"), failures=str(n_fail), errors="0"
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMATS = ("table", "csv", "json", "markdown", "junit")


def render(report: GateReport, fmt: str, verbose: bool = False) -> str:
    """Render as one of :data:`FORMATS` (``table``: :func:`to_text`); ``verbose`` lists every
    comparison in ``table`` and ``markdown``."""
    if fmt == "markdown":
        return to_markdown(report, verbose)
    if fmt == "json":
        return to_json(report)
    if fmt == "junit":
        return to_junit_xml(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "table":
        return to_text(report, verbose)
    raise GateError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
