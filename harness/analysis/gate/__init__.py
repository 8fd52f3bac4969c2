"""The regression gate: baseline vs current runs, statistics, verdicts, exit codes."""

from harness.analysis.gate.compare import *  # noqa: F403
from harness.analysis.gate.compare import (  # noqa: F401
    DEFAULT_RULES,
    EXIT_ERROR,
    FORMATS,
    GateError,
    GateMetric,
    LoadedRun,
    MetricVerdict,
    NoiseRow,
    baselines_root,
    compare_run_sets,
    compare_runs,
    decide,
    gate_metric,
    latency_samples_ms,
    load_run_ref,
    noise_from_runs,
    parse_rules,
    render,
    to_markdown,
    to_rich_table,
)
