"""The regression gate: baseline vs current runs, statistics, verdicts, exit codes.

Modules, each with one job: :mod:`~harness.analysis.gate.rules` (gated metrics, rules,
errors and exit codes), :mod:`~harness.analysis.gate.samples` (samples from raw tables),
:mod:`~harness.analysis.gate.verdicts` (statistics of two samples, verdicts),
:mod:`~harness.analysis.gate.paired` (interleaved A/B runs, block by block),
:mod:`~harness.analysis.gate.matching` (which cells are compared),
:mod:`~harness.analysis.gate.compare` (runs and run sets),
:mod:`~harness.analysis.gate.noise` (A/A noise calibration) and
:mod:`~harness.analysis.gate.render` (table, Markdown, JSON, JUnit). Runs are loaded through
:mod:`harness.store.refs`.
"""

from harness.analysis.gate.compare import METHOD_SUMMARY, GateReport, compare_run_sets, compare_runs, load_run_ref
from harness.analysis.gate.matching import CellMatch, CellPair, match_cells
from harness.analysis.gate.noise import NoiseRow, noise_from_ab_reports, noise_from_runs
from harness.analysis.gate.render import (
    FORMATS,
    HEADERS,
    folded_line,
    render,
    shown_verdicts,
    summary_line,
    to_csv,
    to_json,
    to_junit_xml,
    to_markdown,
    to_rich_table,
    to_text,
    verdict_rows,
)
from harness.analysis.gate.rules import (
    DEFAULT_RULES,
    DEPRECATED_NAMES,
    EXIT_ERROR,
    EXIT_PASS,
    EXIT_REGRESSION,
    GATE_METRICS,
    GateError,
    GateMetric,
    Rule,
    SampleKind,
    gate_metric,
    parse_rule,
    parse_rules,
)
from harness.analysis.gate.samples import (
    MIN_THROUGHPUT_WINDOWS,
    THROUGHPUT_WINDOW_NS,
    cell_samples,
    latency_samples_ms,
    window_throughput_samples,
)
from harness.analysis.gate.verdicts import MetricVerdict, Verdict, compare_samples, decide, holm_correct
from harness.store.refs import LoadedRun, baselines_root

__all__ = [
    "DEFAULT_RULES",
    "DEPRECATED_NAMES",
    "EXIT_ERROR",
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "FORMATS",
    "GATE_METRICS",
    "HEADERS",
    "METHOD_SUMMARY",
    "MIN_THROUGHPUT_WINDOWS",
    "THROUGHPUT_WINDOW_NS",
    "CellMatch",
    "CellPair",
    "GateError",
    "GateMetric",
    "GateReport",
    "LoadedRun",
    "MetricVerdict",
    "NoiseRow",
    "Rule",
    "SampleKind",
    "Verdict",
    "baselines_root",
    "cell_samples",
    "compare_run_sets",
    "compare_runs",
    "compare_samples",
    "decide",
    "gate_metric",
    "holm_correct",
    "latency_samples_ms",
    "load_run_ref",
    "match_cells",
    "noise_from_ab_reports",
    "noise_from_runs",
    "parse_rule",
    "parse_rules",
    "render",
    "to_json",
    "to_junit_xml",
    "to_markdown",
    "to_rich_table",
    "to_text",
    "to_csv",
    "folded_line",
    "shown_verdicts",
    "summary_line",
    "verdict_rows",
    "window_throughput_samples",
]
