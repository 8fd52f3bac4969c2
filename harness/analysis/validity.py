"""What each validity flag of a cell means and what to do when it is false.

A cell's ``validity`` maps flag names to booleans; the cell is valid when all are true
(:attr:`harness.core.records.CellRecord.valid`). The flags are set by the scenarios
(see docs/scenarios.md, "Validity"); :data:`VALIDITY_HELP` explains each in one sentence with
the usual remedy, and :func:`legend` turns the flags that failed in a set of cells into
footnote lines for tables (CLI, reports, app).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.core.records import CellRecord

#: flag -> (what a false value means, what to do about it)
VALIDITY_HELP: dict[str, tuple[str, str]] = {
    "steady_state": (
        "throughput (closed loop) or lateness (open loop) changed significantly between the start "
        "and the end of the measurement, so its figures mix two regimes",
        "measure longer (stop.min_duration_s, more warm-up) on a quieter host; a rising latency at "
        "a fixed offered load means the load is above capacity",
    ),
    "min_duration_met": (
        "the measurement stopped before stop.min_duration_s",
        "raise stop.max_duration_s / stop.max_queries, or lower min_duration_s",
    ),
    "min_queries_met": (
        "fewer queries completed than stop.min_queries",
        "raise stop.max_duration_s, or lower min_queries",
    ),
    "early_stopping_met": (
        "too few queries to bound the headline percentile at the stated confidence (MLPerf early stopping)",
        "measure more queries (stop.min_queries / min_duration_s)",
    ),
    "all_completed": (
        "some queries had not completed when the window ended (they count as +inf latency)",
        "lower the offered load or lengthen the window",
    ),
    "generator_kept_up": (
        "the load generator issued many queries late, so the offered load was not the one asked for",
        "lower the offered QPS, or run on a host with free cores",
    ),
    "achieved_rate_met": (
        "fewer queries completed than the offered rate allows for (beyond Poisson spread): the system "
        "could not keep up",
        "lower the offered QPS or use faster hardware / a larger batch",
    ),
    "slo_met": (
        "the latency SLO was missed at the stated percentile and confidence",
        "lower the load, or choose faster hardware or a smaller batch",
    ),
    "peak_found": (
        "the peak-QPS search found no load that met the SLO",
        "relax the SLO or lower the search's starting QPS",
    ),
    "backlog_stable": (
        "the sensor backlog grew during the run: the stream arrives faster than it is processed",
        "fewer streams, a lower rate or faster hardware",
    ),
    "outputs_matched": (
        "the backend's outputs differ from the reference beyond tolerance (parity check)",
        "check the backend options (dtype, graph optimisations) against the reference",
    ),
    "accuracy_met": (
        "the variant's agreement with the fp32 eager reference fell under the suite's min_agreement",
        "see extra.accuracy.verdict; choose a milder variant (static -> dynamic int8, less pruning) or lower the bar",
    ),
    "loadgen_valid": ("MLPerf LoadGen marked the run INVALID", "see mlperf_log_summary.txt in the cell's files"),
    "perf_constraints_met": (
        "LoadGen's latency constraint was not met",
        "lower the target QPS or latency percentile",
    ),
    "all_blocks_measured": (
        "an interleaved A/B session measured fewer blocks than --rounds",
        "raise --block-timeout or check the failing side's error",
    ),
    "block_min_queries_met": (
        "some interleaved blocks hit their time cap before their minimum query count",
        "raise --block-ms or --block-timeout",
    ),
}


def invalid_reasons(cell: CellRecord) -> list[str]:
    """The names of ``cell``'s validity flags that are false, in record order."""
    return [k for k, ok in cell.validity.items() if not ok]


def explain(flag: str) -> str:
    """One line: what a false ``flag`` means and what to do (a generic line for unknown flags)."""
    meaning, remedy = VALIDITY_HELP.get(flag, ("this check of the scenario failed", "see docs/scenarios.md"))
    return f"{flag}: {meaning}; {remedy}."


def legend(flags: Iterable[str]) -> list[str]:
    """Footnote lines explaining each distinct flag in ``flags`` (first-seen order)."""
    return [explain(f) for f in dict.fromkeys(flags)]
