"""Metric definitions, declared once and reused by reports, the gate and the recommender.

Each :class:`MetricDef` states its unit and direction (is lower or higher better). Values in
run records are :class:`Metric` objects that carry their provenance:

* ``measured`` -- what happened on this machine in this run;
* ``estimated`` -- a model applied to measurements (e.g. CPU watts from a TDP model);
* ``projected`` -- a model for hardware that is not present;
* ``reference`` -- a published result (e.g. MLPerf Inference), with its source;
* ``configured`` -- a setting the run was asked to use (e.g. the offered arrival rate), not an
  observation: shown beside measurements so they can be read against it;
* ``unavailable`` -- no value (``value`` is None); ``method`` says what was missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["lower", "higher", "none"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str
    direction: Direction
    description: str


class Metric(BaseModel):
    """A value with its unit, provenance and (where computed) a confidence interval."""

    model_config = ConfigDict(frozen=True)

    value: float | None
    unit: str
    provenance: str = "measured"
    ci_low: float | None = None
    ci_high: float | None = None
    method: str = ""

    @property
    def kind(self) -> str:
        return self.provenance.split(":", 1)[0]


Provenance = str  # "measured:<how>" | "estimated:<how>" | "projected:<how>" | "reference:<src>"


ProvenanceKind = Literal["measured", "estimated", "projected", "reference", "configured"]
PROVENANCE_KINDS: tuple[str, ...] = ("measured", "estimated", "projected", "reference", "configured")


def provenance_kind(provenance: str) -> ProvenanceKind:
    """The kind part of a provenance label (``measured:rapl`` -> ``measured``)."""
    kind = provenance.split(":", 1)[0]
    if kind not in PROVENANCE_KINDS:
        raise ValueError(f"unknown provenance {provenance!r}")
    return kind  # type: ignore[return-value]


class Reading(BaseModel):
    """One value a meter observed (or estimated) over the window.

    ``quantity`` names what is read (``energy``, ``power``, ``memory_peak``, ...);
    ``value`` is in ``unit`` (``J``, ``W``, ``B``); ``provenance`` says how it was obtained;
    ``scope`` what it covers (``package-0``, ``gpu:0``, ``process-tree``); ``period_s`` the
    sampling period where sampling was used; ``valid`` false with ``note`` when the reading
    cannot be trusted (e.g. a window shorter than the counter's update period).
    """

    model_config = ConfigDict(frozen=True)

    quantity: str
    value: float
    unit: str
    provenance: Provenance
    scope: str = "host"
    period_s: float | None = None
    window_s: float | None = None
    valid: bool = True
    note: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


#: weakest wins when values are combined; a configured setting combined with a measurement is
#: as good as the measurement
_KIND_ORDER = {"configured": -1, "measured": 0, "reference": 1, "estimated": 2, "projected": 3}


def combine_provenance(labels: list[str]) -> str:
    """One label for a value derived from parts: the weakest kind, methods joined by ``+``."""
    if not labels:
        raise ValueError("no provenance to combine")
    kinds = [provenance_kind(p) for p in labels]
    kind = max(kinds, key=_KIND_ORDER.__getitem__)
    methods: list[str] = []
    for p in labels:
        m = p.split(":", 1)[1] if ":" in p else ""
        if m and m not in methods:
            methods.append(m)
    return f"{kind}:{'+'.join(methods)}" if methods else kind


_DEFS = [
    MetricDef("throughput", "samples/s", "higher", "completed samples / measurement window"),
    MetricDef("queries_per_s", "queries/s", "higher", "completed queries / measurement window"),
    MetricDef("achieved_qps", "queries/s", "higher", "completed queries / window (online)"),
    MetricDef("offered_qps", "queries/s", "none", "target arrival rate of the schedule"),
    MetricDef("goodput", "queries/s", "higher", "completed queries/s that met every SLO"),
    MetricDef("output_tokens_per_s", "tokens/s", "higher", "generated tokens / window"),
    *[
        MetricDef(f"latency_{p}", "ms", "lower", f"{p} of completed - scheduled")
        for p in ("p50", "p90", "p95", "p99", "p99.9", "mean", "min", "max")
    ],
    MetricDef("latency_early_stop", "ms", "lower", "conservative percentile allowed by MLPerf early stopping"),
    MetricDef("issue_delay_p99", "ms", "lower", "p99 of issued - scheduled"),
    MetricDef("queue_time_p50", "ms", "lower", "median time queued before service"),
    MetricDef("service_time_p50", "ms", "lower", "median time in the backend"),
    MetricDef("ttft_p50", "ms", "lower", "time to first token from scheduled time, median"),
    MetricDef("ttft_p99", "ms", "lower", "time to first token from scheduled time, p99"),
    MetricDef("tpot_p50", "ms", "lower", "(e2e - ttft) / (output tokens - 1), median"),
    MetricDef("tpot_p99", "ms", "lower", "(e2e - ttft) / (output tokens - 1), p99"),
    MetricDef("itl_p50", "ms", "lower", "every gap between consecutive tokens, pooled, median"),
    MetricDef("itl_p99", "ms", "lower", "every gap between consecutive tokens, pooled, p99"),
    MetricDef("deadline_miss_rate", "fraction", "lower", "items completed after their deadline"),
    MetricDef("power_w", "W", "lower", "mean power over the measurement window"),
    MetricDef("energy_j", "J", "lower", "energy over the measurement window"),
    MetricDef("energy_per_inference_j", "J", "lower", "energy / completed samples"),
    MetricDef("energy_per_token_j", "J", "lower", "energy / generated tokens"),
    MetricDef("inferences_per_kwh", "1/kWh", "higher", "completed samples per kWh"),
    MetricDef("usd_per_1m_inferences", "USD", "lower", "price_per_hour / (throughput * 3600) * 1e6"),
    MetricDef("usd_per_1m_tokens", "USD", "lower", "price_per_hour / (tokens/s * 3600) * 1e6"),
    MetricDef("peak_rss_bytes", "B", "lower", "peak resident memory of the worker process tree"),
    MetricDef(
        "device_memory_bytes",
        "B",
        "lower",
        "peak device memory: the framework allocator's peak where known, else NVML's device-wide used",
    ),
    MetricDef("device_memory_allocator_peak_bytes", "B", "lower", "peak of the framework allocator (this process)"),
    MetricDef("device_memory_used_bytes", "B", "lower", "peak NVML used memory (whole device, all processes)"),
    MetricDef("load_time_ms", "ms", "lower", "time to load the model into the backend"),
    # accuracy cost of an optimisation variant against the fp32 eager reference on the same inputs
    MetricDef("top1_agreement", "fraction", "higher", "samples whose argmax output equals the reference's"),
    MetricDef("max_abs_err", "abs", "lower", "largest |output - reference| over every output element"),
    MetricDef("mean_abs_err", "abs", "lower", "mean |output - reference| over every output element"),
    MetricDef("max_rel_err", "fraction", "lower", "largest |output - reference| / max(|reference|, 1e-12)"),
    MetricDef("kl_divergence", "nats", "lower", "mean KL(softmax(reference) || softmax(output)) over samples"),
    MetricDef("token_agreement", "fraction", "higher", "greedy generated tokens equal to the reference's, by position"),
    # speculative decoding
    MetricDef("acceptance_rate", "fraction", "higher", "draft tokens accepted / draft tokens proposed"),
    MetricDef("tokens_per_target_step", "tokens", "higher", "tokens emitted per target forward (verify step)"),
]

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}


def metric_def(name: str) -> MetricDef:
    """Definition of ``name``; unknown metrics are direction ``none`` with no unit."""
    return METRICS.get(name, MetricDef(name, "", "none", ""))
