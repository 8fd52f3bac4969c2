"""Gate report outputs: a rich table, Markdown (e.g. a CI step summary), JSON and JUnit XML.

Formats (:data:`FORMATS`): ``table`` (plain-text rendering of the rich table), ``markdown``,
``json`` (:meth:`GateReport.to_dict`, non-finite numbers as null) and ``junit`` (one testcase
per cell x metric; regressions and failed cells are failures, inconclusive and not-applicable
comparisons are skipped with the reason).
"""

from __future__ import annotations

import io
import json
import math
import xml.etree.ElementTree as ET

from rich.console import Console
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


def _rows(report: GateReport) -> list[list[str]]:
    rows = []
    for v in report.verdicts:
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


def _summary_line(report: GateReport) -> str:
    c = report.counts()
    parts = ", ".join(f"{n} {k}" for k, n in sorted(c.items()))
    status = "FAIL" if report.exit_code else "PASS"
    return f"{status}: {parts} (alpha {report.alpha:g}, {len(report.verdicts)} comparisons, Holm-corrected)"


def to_rich_table(report: GateReport) -> Table:
    t = Table(title=f"gate: {report.current} vs {report.baseline}", caption=_summary_line(report))
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
    for v, row in zip(report.verdicts, _rows(report)):
        t.add_row(*row, style=style[v.verdict] or None)
    return t


def to_markdown(report: GateReport) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [
        f"## Performance gate: {'FAIL' if report.exit_code else 'PASS'}",
        "",
        f"Current `{report.current}` vs baseline `{report.baseline}`. Rules: "
        + ", ".join(f"`{r}`" for r in report.rules)
        + ".",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for row in _rows(report):
        lines.append("| " + " | ".join(esc(x) for x in row) + " |")
    lines += ["", _summary_line(report), ""]
    for n in report.notes:
        lines.append(f"- {esc(n)}")
    lines += ["", f"<sub>Method: {METHOD_SUMMARY}.</sub>", ""]
    return "\n".join(lines)


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


FORMATS = ("table", "markdown", "json", "junit")


def render(report: GateReport, fmt: str) -> str:
    """Render as ``markdown``, ``json`` or ``junit`` text (``table`` is printed by rich)."""
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "junit":
        return to_junit_xml(report)
    if fmt == "table":
        buf = io.StringIO()
        Console(width=200, file=buf, color_system=None).print(to_rich_table(report))
        return buf.getvalue()
    raise GateError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
