"""Gate rules: which metrics the gate checks, and how much worse each may get.

The gated metrics are the record metrics of :data:`harness.core.metrics.METRICS` that have a
distribution in the raw per-query table: ``latency_pNN`` and ``latency_mean`` (per-query
latency, completed - scheduled, ms) and ``throughput`` (samples/s per window). Their name,
unit, direction and description come from that registry; the gate adds only the statistic it
compares and the samples it computes it on.

The names the gate used before (``p99_latency``, ``median_latency``, ...) are still accepted
with a :class:`DeprecationWarning` whose message names the new name (:data:`DEPRECATED_NAMES`).

Exit codes of the gate (:data:`EXIT_PASS`, :data:`EXIT_REGRESSION`, :data:`EXIT_ERROR`): 0 pass,
1 regression (or a cell that failed in the current run only), 2 usage or data error
(:class:`GateError`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from harness.core.metrics import METRICS, MetricDef
from harness.core.records import CLOSED_LOOP_SCENARIOS

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2

SampleKind = Literal["latency", "throughput"]


class GateError(ValueError):
    """Usage or data error (exit code 2). The message names the file, cell or field."""


@dataclass(frozen=True)
class GateMetric:
    """A gated metric: its samples, the statistic compared and which direction is better.

    ``samples`` = ``"latency"`` (ms, per query, completed - scheduled) or ``"throughput"``
    (samples/s per window). ``statistic`` is ``"median"``, ``"mean"`` or ``"pNN"``.
    """

    name: str
    unit: str
    direction: Literal["lower", "higher"]
    statistic: str
    samples: SampleKind = "latency"
    description: str = ""

    def applies_to(self, scenario: str) -> bool:
        """Throughput is gated in closed-loop scenarios only (in open-loop ones it follows the
        offered load); latency everywhere."""
        if self.samples == "throughput":
            return scenario in CLOSED_LOOP_SCENARIOS
        return True


_QUANTILE = re.compile(r"^p\d+(\.\d+)?$")


def _gated(d: MetricDef) -> GateMetric | None:
    """The gate's view of a registry metric, or None when the raw tables give it no distribution."""
    if d.direction == "none":
        return None
    if d.name == "throughput":
        return GateMetric(d.name, d.unit, d.direction, "median", "throughput", f"{d.description}, median over windows")
    kind, _, stat = d.name.partition("_")
    if kind != "latency" or not (stat == "mean" or _QUANTILE.match(stat)):
        return None
    # p50 keeps the gate's median (mean of the two middle values for an even count)
    statistic = "median" if stat == "p50" else stat
    return GateMetric(d.name, d.unit, d.direction, statistic, "latency", f"{d.description}, per query")


GATE_METRICS: dict[str, GateMetric] = {m.name: m for m in map(_gated, METRICS.values()) if m is not None}

#: names the gate used before it took the record metric names: old name -> record name
DEPRECATED_NAMES: dict[str, str] = {
    "median_latency": "latency_p50",
    "p50_latency": "latency_p50",
    "median": "latency_p50",
    "mean_latency": "latency_mean",
    "p90_latency": "latency_p90",
    "p95_latency": "latency_p95",
    "p99_latency": "latency_p99",
    "p99.9_latency": "latency_p99.9",
    "samples_per_s": "throughput",
}


def _lookup(name: str) -> GateMetric:
    if name not in GATE_METRICS:
        raise GateError(f"unknown gate metric {name!r}; allowed: {', '.join(GATE_METRICS)}")
    return GATE_METRICS[name]


def gate_metric(name: str) -> GateMetric:
    """Look up a gated metric by its record name (a deprecated old name warns and still
    resolves); unknown names raise :class:`GateError` listing the allowed ones."""
    new = DEPRECATED_NAMES.get(name)
    if new is not None:
        warnings.warn(f"gate metric {name!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=2)
        return _lookup(new)
    return _lookup(name)


@dataclass(frozen=True)
class Rule:
    """Fail when ``metric`` gets worse by more than ``threshold`` (a fraction, e.g. 0.05)."""

    metric: GateMetric
    threshold: float

    def __str__(self) -> str:
        sign = "+" if self.metric.direction == "lower" else "-"
        return f"{self.metric.name}:{sign}{self.threshold * 100:g}%"


_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:\s*([+-]?)\s*([0-9]*\.?[0-9]+)\s*%\s*$")

DEFAULT_RULES: tuple[str, ...] = ("latency_p50:+5%", "latency_p99:+10%", "throughput:-5%")


def parse_rule(text: str) -> Rule:
    """``"latency_p99:+5%"`` (fail if p99 latency rises more than 5 %) or
    ``"throughput:-3%"`` (fail if throughput falls more than 3 %). The sign may be omitted;
    a sign pointing in the metric's good direction is an error. A deprecated metric name
    warns (:class:`DeprecationWarning`, one line naming the rule to write instead)."""
    m = _RULE_RE.match(text)
    if not m:
        raise GateError(
            f"cannot parse rule {text!r}; expected METRIC:+N% or METRIC:-N%, e.g. "
            f"'latency_p99:+5%' or 'throughput:-3%'; metrics: {', '.join(GATE_METRICS)}"
        )
    name, sign, pct = m.group(1), m.group(2), float(m.group(3))
    new = DEPRECATED_NAMES.get(name)
    metric = _lookup(new or name)
    bad = "+" if metric.direction == "lower" else "-"
    if new is not None:
        warnings.warn(
            f"rule {text.strip()!r}: metric name {name!r} is deprecated; write {new}:{bad}{pct:g}%",
            DeprecationWarning,
            stacklevel=2,
        )
    if sign and sign != bad:
        raise GateError(
            f"rule {text!r}: {metric.name} is {metric.direction}-is-better, so a regression is a "
            f"{'rise' if bad == '+' else 'fall'}; write {metric.name}:{bad}{pct:g}%"
        )
    limit = 100.0 if metric.direction == "higher" else 10_000.0
    if not (0 <= pct < limit):
        raise GateError(f"rule {text!r}: threshold must be in [0, {limit:g}) %, got {pct:g}%")
    return Rule(metric, pct / 100.0)


def parse_rules(texts: Iterable[str] | None) -> list[Rule]:
    """Parse rules (``None`` or empty: :data:`DEFAULT_RULES`); two rules on one metric are an error."""
    rules = [parse_rule(t) for t in (texts or DEFAULT_RULES)]
    names = [r.metric.name for r in rules]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise GateError(f"more than one rule for {', '.join(sorted(dup))}")
    return rules
