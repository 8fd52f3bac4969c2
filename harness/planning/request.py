"""The recommender's request and answer: what to serve, within which SLO and constraints,
and the ranked profiles with the reason each excluded one was left out.

Units: SLOs in ms, load in queries/s, items/day or output tokens/s, budgets in USD/month and
kW, memory in GB per device. Every figure of an answer is a :class:`~harness.core.metrics.Metric`
with its provenance (measured, reference, projected, estimated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.hardware import KINDS
from harness.core.metrics import Metric

ScenarioName = Literal["offline", "online", "token-stream", "sensor-stream"]
ObjectiveName = Literal["cost", "latency", "energy"]
SCENARIOS: tuple[str, ...] = ("offline", "online", "token-stream", "sensor-stream")
OBJECTIVES: tuple[str, ...] = ("cost", "latency", "energy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # a load of inf or NaN is no load


class ModelSpec(_Strict):
    """A zoo model (``name`` + ``size`` + ``params``), an MLPerf benchmark (``bert-99``,
    ``llama2-70b``; size ``mlperf``), or a measured user model given by its counts."""

    name: str = Field(description="zoo name, 'bert-99' / 'llama2-70b', or a label for counts")
    size: str = Field(default="standard", description="standard | tiny | mlperf")
    params: dict[str, Any] = Field(default_factory=dict, description="zoo config overrides")
    counts: dict[str, Any] | None = Field(default=None, description="WorkloadInfo.to_dict() of a user model")
    output_tokens: int | None = Field(default=None, gt=0, description="decoders: tokens generated per request")


class SLO(_Strict):
    """Latency bounds in ms; ``None`` means no bound."""

    p99_ms: float | None = Field(default=None, gt=0, description="online/offline: p99 latency bound")
    ttft_ms: float | None = Field(default=None, gt=0, description="token streams: p99 time to first token")
    tpot_ms: float | None = Field(default=None, gt=0, description="token streams: time per output token")
    deadline_ms: float | None = Field(default=None, gt=0, description="sensor streams: per-item deadline")


class Load(_Strict):
    """The load to serve: exactly one of queries/s, items/day or output tokens/s."""

    qps: float | None = Field(default=None, gt=0, description="requests (or items) per second")
    items_per_day: float | None = Field(default=None, gt=0, description="items per day (offline, sensor)")
    tokens_per_s: float | None = Field(default=None, gt=0, description="output tokens per second (token streams)")

    @model_validator(mode="after")
    def _one(self) -> Load:
        if sum(v is not None for v in (self.qps, self.items_per_day, self.tokens_per_s)) != 1:
            raise ValueError("give exactly one of load.qps, load.items_per_day, load.tokens_per_s")
        return self


class Constraints(_Strict):
    """Limits on a deployment: budget (USD/month), power (kW at TDP), device kinds, memory (GB)."""

    max_usd_per_month: float | None = Field(default=None, gt=0)
    max_kw: float | None = Field(default=None, gt=0)
    allowed_kinds: tuple[str, ...] | None = Field(default=None, description="cpu, gpu, tpu, fpga, asic")
    min_memory_gb: float | None = Field(default=None, gt=0, description="per device")
    measured_only: bool = Field(default=False, description="only profiles with measured results")


class RecommendRequest(_Strict):
    """Everything :func:`harness.planning.recommend.recommend` needs; validated on construction
    (the scenario's SLOs present, objective weights known and non-negative, kinds known)."""

    model: ModelSpec
    scenario: ScenarioName = "online"
    slo: SLO = Field(default_factory=SLO)
    load: Load
    constraints: Constraints = Field(default_factory=Constraints)
    objective: ObjectiveName | dict[str, float] = "cost"
    dtype: str = Field(
        default="fp16",
        description="requested precision; a profile without it falls back (fp16<->bf16, int8<->fp8, fp32<->tf32)",
    )
    stack: str | None = Field(
        default=None,
        description="your software stack as <backend>-<mode>-<dtype> (e.g. torch-eager-fp16, torch-compile-fp16); "
        "default: torch eager in the requested dtype. Projected GPU rows are given for it and for the tuned "
        "(MLPerf-calibrated) stack",
    )

    @model_validator(mode="after")
    def _check(self) -> RecommendRequest:
        if isinstance(self.objective, dict):
            bad = set(self.objective) - set(OBJECTIVES)
            if bad or not self.objective or any(w < 0 for w in self.objective.values()):
                raise ValueError(f"objective weights: keys from {OBJECTIVES}, non-negative; got {self.objective}")
        if self.constraints.allowed_kinds:
            bad = set(self.constraints.allowed_kinds) - set(KINDS)
            if bad:
                raise ValueError(f"constraints.allowed_kinds: unknown {sorted(bad)}; allowed: {', '.join(KINDS)}")
        s = self.slo
        if self.scenario == "online" and s.p99_ms is None:
            raise ValueError("scenario 'online' needs slo.p99_ms")
        if self.scenario == "sensor-stream" and s.deadline_ms is None and s.p99_ms is None:
            raise ValueError("scenario 'sensor-stream' needs slo.deadline_ms")
        if self.scenario == "token-stream" and (s.tpot_ms is None or s.ttft_ms is None):
            raise ValueError("scenario 'token-stream' needs slo.ttft_ms and slo.tpot_ms")
        return self

    def weights(self) -> dict[str, float]:
        """The objective as weights: a single objective is weight 1 on it."""
        return {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)


class RecommendationRow(BaseModel):
    """One ranked profile: devices, batching, predicted latency (ms) with its range, cost
    (USD/month, USD per 1M inferences or tokens), power (kW) and per-device capacity."""

    rank: int
    profile_id: str
    kind: str
    devices: int
    dtype: str
    batch_size: int
    max_queue_delay_ms: float | None
    predicted_p99_ms: Metric | None
    predicted_ttft_ms: Metric | None = None
    predicted_tpot_ms: Metric | None = None
    usd_per_month: Metric | None
    kw: Metric | None
    usd_per_1m: Metric | None
    per_device_capacity: Metric
    provenance: str  # measured | reference | projected | mixed
    score: float
    notes: str = ""
    price: str = Field(default="", description="the price used per device-hour and where from, or why there is none")
    stack: str = Field(default="tuned stack (MLPerf)", description="the software stack the row is for")
    evidence: str = Field(default="", description="runs, MLPerf rows or the projection's assumptions behind the row")


class Exclusion(BaseModel):
    """A profile left out, and why."""

    profile_id: str
    reason: str


class Recommendation(BaseModel):
    """The answer: ranked ``rows`` (best first), ``excluded`` profiles with reasons, and the
    statement of which end of the uncertainty range the sizing enforces."""

    request: RecommendRequest
    rows: list[RecommendationRow]
    excluded: list[Exclusion]
    enforced_end: str = (
        "conservative: devices, $/month and kW sized at the low end of the "
        "throughput range; SLOs checked at the high end of the latency range"
    )

    def to_frame(self) -> pd.DataFrame:
        """One row per ranked profile; each metric as value, ``_low``, ``_high`` and ``__prov`` columns."""
        recs = []
        for r in self.rows:
            d: dict[str, Any] = {
                k: getattr(r, k)
                for k in (
                    "rank",
                    "profile_id",
                    "kind",
                    "devices",
                    "dtype",
                    "batch_size",
                    "max_queue_delay_ms",
                    "provenance",
                    "score",
                    "notes",
                    "price",
                    "stack",
                    "evidence",
                )
            }
            for name in (
                "predicted_p99_ms",
                "predicted_ttft_ms",
                "predicted_tpot_ms",
                "usd_per_month",
                "kw",
                "usd_per_1m",
                "per_device_capacity",
            ):
                m = getattr(r, name)
                d[name] = None if m is None else m.value
                d[f"{name}_low"] = None if m is None else m.ci_low
                d[f"{name}_high"] = None if m is None else m.ci_high
                d[f"{name}__prov"] = None if m is None else m.provenance
            recs.append(d)
        return pd.DataFrame(recs)

    def excluded_frame(self) -> pd.DataFrame:
        """One row per excluded profile with the reason."""
        return pd.DataFrame([e.model_dump() for e in self.excluded], columns=["profile_id", "reason"])

    def to_json(self) -> str:
        """The whole recommendation (request, rows, exclusions) as JSON."""
        return self.model_dump_json(indent=1)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The ranked rows (:meth:`to_frame`) as CSV text, also written to ``path`` if given."""
        text = self.to_frame().to_csv(index=False)
        if path is not None:
            Path(path).write_text(text)
        return text
