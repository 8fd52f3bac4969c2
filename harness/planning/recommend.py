"""Hardware recommendation: the cheapest / fastest / leanest way to serve a load within an SLO.

``recommend(request, results_root=None) -> Recommendation`` evaluates every hardware profile:

1. **Evidence**, best first: *measured* cells in ``results_root`` for that profile id and model;
   an MLPerf *reference* result when the model is an MLPerf benchmark (``resnet50`` standard,
   ``bert-99``, ``llama2-70b``) and the profile maps to an MLPerf accelerator; else a
   *projection* (:mod:`harness.planning.projection`, calibrated on MLPerf per device kind).
2. **Sizing** per scenario (per-device figures; devices serve independent shares of the load):

   * ``offline``: devices = ceil(rate / throughput per device) at the largest batch whose
     batch latency meets the optional p99 SLO;
   * ``online``: a service curve t(b) (measured offline sweep, or projected) drives the
     discrete-event simulator (:mod:`harness.planning.simulate`) with a batcher suggested for the SLO;
     the per-device peak QPS under the p99 SLO sets the device count (random routing);
     an MLPerf Server result is used instead when the SLO is at least MLPerf's bound;
   * ``sensor-stream``: as online with constant-rate arrivals and the deadline as the p99 SLO;
   * ``token-stream``: decode throughput at the largest batch whose TPOT meets the SLO; TTFT
     must meet its SLO (decoders only).
3. **Conservative end**: every sizing uses the pessimistic end of the uncertainty range (the
   throughput's lower bound, the service curve scaled by 1 / ratio_low), so the device count,
   $/month and kW reported are the ones that meet the SLO even at that end; constraints
   (max $/month, max kW) are enforced on those figures. Predicted latency is reported as a point
   value with its range, and the SLO is checked on the range's upper end.
4. **Ranking** by the objective: ``cost`` ($/month), ``latency`` (conservative p99 / TTFT),
   ``energy`` (kW at TDP), or weights ``{"cost": w1, "latency": w2, "energy": w3}`` combined as
   ``sum(w * log(value))`` (scale-free, so adding options never worsens the best score).

Every profile not recommended is listed in ``excluded`` with its reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.metrics import Metric
from harness.planning.calibration import efficiency_for

ScenarioName = Literal["offline", "online", "token-stream", "sensor-stream"]
ObjectiveName = Literal["cost", "latency", "energy"]
SCENARIOS: tuple[str, ...] = ("offline", "online", "token-stream", "sensor-stream")
OBJECTIVES: tuple[str, ...] = ("cost", "latency", "energy")
SECONDS_PER_DAY = 86_400.0
#: a profile needing more devices than this is excluded (not a sensible deployment)
MAX_DEVICES = 100_000
MLPERF_MODELS = {
    ("resnet50", "standard"): "resnet50",
    ("bert-99", "mlperf"): "bert-99",
    ("llama2-70b", "mlperf"): "llama2-70b",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """A zoo model (``name`` + ``size`` + ``params``), an MLPerf benchmark (``bert-99``,
    ``llama2-70b``; size ``mlperf``), or a measured user model given by its counts."""

    name: str = Field(description="zoo name, 'bert-99' / 'llama2-70b', or a label for counts")
    size: str = Field("standard", description="standard | tiny | mlperf")
    params: dict[str, Any] = Field(default_factory=dict, description="zoo config overrides")
    counts: dict[str, Any] | None = Field(None, description="WorkloadInfo.to_dict() of a user model")
    output_tokens: int | None = Field(None, gt=0, description="decoders: tokens generated per request")


class SLO(_Strict):
    p99_ms: float | None = Field(None, gt=0, description="online/offline: p99 latency bound")
    ttft_ms: float | None = Field(None, gt=0, description="token streams: p99 time to first token")
    tpot_ms: float | None = Field(None, gt=0, description="token streams: time per output token")
    deadline_ms: float | None = Field(None, gt=0, description="sensor streams: per-item deadline")


class Load(_Strict):
    qps: float | None = Field(None, gt=0, description="requests (or items) per second")
    items_per_day: float | None = Field(None, gt=0, description="items per day (offline, sensor)")
    tokens_per_s: float | None = Field(None, gt=0, description="output tokens per second (token streams)")

    @model_validator(mode="after")
    def _one(self) -> Load:
        if sum(v is not None for v in (self.qps, self.items_per_day, self.tokens_per_s)) != 1:
            raise ValueError("give exactly one of load.qps, load.items_per_day, load.tokens_per_s")
        return self


class Constraints(_Strict):
    max_usd_per_month: float | None = Field(None, gt=0)
    max_kw: float | None = Field(None, gt=0)
    allowed_kinds: tuple[str, ...] | None = Field(None, description="cpu, gpu, tpu, fpga, asic")
    min_memory_gb: float | None = Field(None, gt=0, description="per device")
    measured_only: bool = Field(False, description="only profiles with measured results")


class RecommendRequest(_Strict):
    model: ModelSpec
    scenario: ScenarioName = "online"
    slo: SLO = Field(default_factory=SLO)
    load: Load
    constraints: Constraints = Field(default_factory=Constraints)
    objective: ObjectiveName | dict[str, float] = "cost"
    dtype: str = Field(
        "fp16",
        description="requested precision; a profile without it falls back (fp16<->bf16, int8<->fp8, fp32<->tf32)",
    )

    @model_validator(mode="after")
    def _check(self) -> RecommendRequest:
        from harness.core.hardware import KINDS

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
        return {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)


class RecommendationRow(BaseModel):
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


class Exclusion(BaseModel):
    profile_id: str
    reason: str


class Recommendation(BaseModel):
    request: RecommendRequest
    rows: list[RecommendationRow]
    excluded: list[Exclusion]
    enforced_end: str = (
        "conservative: devices, $/month and kW sized at the low end of the "
        "throughput range; SLOs checked at the high end of the latency range"
    )

    def to_frame(self) -> pd.DataFrame:
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
        return pd.DataFrame([e.model_dump() for e in self.excluded], columns=["profile_id", "reason"])

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def to_csv(self, path: str | Path | None = None) -> str:
        text = self.to_frame().to_csv(index=False)
        if path is not None:
            Path(path).write_text(text)
        return text


class _Excluded(Exception):
    pass


# --------------------------------------------------------------------------- evidence


def _cost_of(model: ModelSpec) -> Any:
    from harness.planning.workload_cost import cost_from_info, mlperf_cost, workload_cost

    if model.counts is not None:
        return cost_from_info(model.counts, output_tokens=model.output_tokens, source="user-supplied counts")
    if model.size == "mlperf" or model.name in ("bert-99", "llama2-70b"):
        c = mlperf_cost(model.name)
    else:
        c = workload_cost(model.name, model.size, model.params or None, output_tokens=model.output_tokens)
    if model.output_tokens is not None and c.is_decoder:
        from dataclasses import replace

        c = replace(c, output_tokens=model.output_tokens)
    return c


def _mlperf_name(model: ModelSpec) -> str | None:
    if model.counts is not None or model.params:
        return None
    if model.name in ("bert-99", "llama2-70b"):
        return model.name
    return MLPERF_MODELS.get((model.name, model.size))


def _measured_cells(results_root: Path | None, model: ModelSpec) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Successful cells per profile id for this model (zoo name and size, no params), and the
    hardware profiles the runs recorded (a host's generated ``local-*`` profile lives only there)."""
    if results_root is None or model.counts is not None:
        return {}, {}
    from pydantic import ValidationError

    from harness.core.hardware import HardwareProfile
    from harness.store.results import list_runs

    runs, _ = list_runs(Path(results_root))
    out: dict[str, list[Any]] = {}
    run_profiles: dict[str, Any] = {}
    for run in runs:
        pdata = run.environment.get("profile")
        if isinstance(pdata, dict) and pdata.get("id") not in run_profiles:
            try:
                run_profiles[pdata["id"]] = HardwareProfile.model_validate(pdata)
            except (ValidationError, KeyError):
                pass  # an older or edited record: its cells still match shipped profiles by id
        for c in run.cells:
            if (
                c.status == "ok"
                and c.profile_id
                and c.spec.model == model.name
                and c.spec.size == model.size
                and not c.spec.model_params
                and not model.params
            ):
                out.setdefault(c.profile_id, []).append(c)
    return out, {k: v for k, v in run_profiles.items() if k in out}


def _measured_curve(
    cells: list[Any], max_batch: int
) -> tuple[Any, float, float, dict[int, tuple[float, float]]] | None:
    """Service curve from measured offline cells (p50 batch latency per batch size, the service
    time the simulator needs), the best measured throughput and its batch size, and per batch
    size the measured (p99 batch latency ms, samples/s) that an offline SLO is checked against."""
    from harness.planning.simulate import ServiceCurve

    pts: dict[int, float] = {}
    p99s: dict[int, tuple[float, float]] = {}
    best = (0.0, 1)
    for c in cells:
        if c.spec.scenario != "offline":
            continue
        b = c.spec.batch_size
        lat = c.metric("latency_p50")
        thr = c.metric("throughput")
        p99 = c.metric("latency_p99")
        if lat:
            pts[b] = min(pts.get(b, math.inf), lat * 1e6)
        if p99 and thr and (b not in p99s or p99 < p99s[b][0]):
            p99s[b] = (p99, thr)
        if thr and thr > best[0]:
            best = (thr, b)
    if not pts:
        return None
    bs = sorted(pts)
    curve = ServiceCurve.from_points(bs, [pts[b] for b in bs], max(max_batch, bs[-1]), "measured")
    return curve, best[0], best[1], p99s


# --------------------------------------------------------------------------- sizing per scenario


class _Sized(BaseModel):
    devices: int
    dtype: str
    batch: int
    delay_ms: float | None
    capacity: Metric  # per device, conservative value in ci_low
    p99: Metric | None = None
    ttft: Metric | None = None
    tpot: Metric | None = None
    provenance: str
    rate_unit: str
    notes: str = ""


def _rate(req: RecommendRequest, cost: Any) -> tuple[float, str]:
    ld = req.load
    if req.scenario == "token-stream":
        if ld.tokens_per_s is not None:
            return ld.tokens_per_s, "tokens/s"
        per = cost.output_tokens or 1
        q = ld.qps if ld.qps is not None else ld.items_per_day / SECONDS_PER_DAY  # type: ignore[operator]
        return q * per, "tokens/s"
    if ld.tokens_per_s is not None:
        raise ValueError("load.tokens_per_s applies to scenario 'token-stream' only")
    return (ld.qps if ld.qps is not None else ld.items_per_day / SECONDS_PER_DAY), "queries/s"  # type: ignore[operator]


def _devices(rate: float, per_device_low: float) -> int:
    from harness.core.economics import devices_needed

    if per_device_low <= 0:
        raise _Excluded("no throughput at the conservative end")
    n = max(1, devices_needed(rate, per_device_low))
    if n > MAX_DEVICES:
        raise _Excluded(f"needs {n} devices (> {MAX_DEVICES})")
    return n


def _size_profile(
    req: RecommendRequest, cost: Any, profile: Any, rate: float, unit: str, measured: list[Any], mlperf: str | None
) -> _Sized:
    from harness.planning import projection as pj

    dtype = pj.choose_dtype(profile, req.dtype)
    if dtype is None and not measured:
        raise _Excluded(f"no peak for {req.dtype} (or its fallback) in the profile")
    dtype = dtype or req.dtype
    if req.scenario == "token-stream":
        return _size_tokens(req, cost, profile, rate, dtype, mlperf)
    eff = efficiency_for(profile, cost, dtype)
    measured_curve = None
    if measured:
        bmax_m = pj.max_batch(cost, profile, dtype) if profile.memory_gb else 256
        measured_curve = _measured_curve(measured, max(1, min(bmax_m, 256)))
        if measured_curve is None and req.constraints.measured_only:
            raise _Excluded("measured cells exist but none is an offline batch sweep")
    if req.scenario == "offline":
        return _size_offline(req, cost, profile, rate, dtype, eff, measured_curve, mlperf)
    return _size_online(req, cost, profile, rate, dtype, eff, measured_curve, mlperf)


def _size_offline(
    req: RecommendRequest,
    cost: Any,
    profile: Any,
    rate: float,
    dtype: str,
    eff: Any,
    measured_curve: Any,
    mlperf: str | None,
) -> _Sized:
    from harness.planning import projection as pj
    from harness.planning.reference import reference_for

    slo = req.slo.p99_ms
    if measured_curve is not None:
        p99s = measured_curve[3]
        ok = {b: v for b, v in p99s.items() if slo is None or v[0] <= slo}
        if not ok:
            raise _Excluded(
                f"every measured batch size has p99 above the SLO (best {min(v[0] for v in p99s.values()):.3g} ms)"
                if p99s
                else "no measured p99 in the offline sweep"
            )
        b = max(ok, key=lambda k: ok[k][1])
        lat, thr = ok[b]
        cap = Metric(
            value=thr,
            unit="samples/s",
            provenance="measured",
            ci_low=thr,
            ci_high=thr,
            method=f"measured offline throughput at batch {b}",
        )
        p99 = Metric(
            value=lat,
            unit="ms",
            provenance="measured",
            ci_low=lat,
            ci_high=lat,
            method=f"measured p99 batch latency at batch {b} (offline sweep)",
        )
        return _Sized(
            devices=_devices(rate, thr),
            dtype=dtype,
            batch=b,
            delay_ms=None,
            capacity=cap,
            p99=p99,
            provenance="measured",
            rate_unit="samples/s",
        )
    if mlperf is not None and slo is None:
        ref = reference_for(profile.id, mlperf, "Offline")
        if ref is not None:
            return _Sized(
                devices=_devices(rate, ref.ci_low or ref.value),
                dtype="as-submitted",
                batch=0,
                delay_ms=None,
                capacity=ref,
                p99=None,
                provenance="reference",
                rate_unit=ref.unit,
                notes="MLPerf Offline result (vendor-tuned stack)",
            )
    bmax = pj.max_batch(cost, profile, dtype)
    if bmax < 1:
        raise _Excluded(f"model does not fit in {profile.memory_gb} GB ({dtype})")
    b = bmax
    if slo is not None:
        ok = [
            k
            for k in _batch_grid(bmax)
            if pj.batch_latency_s(cost, profile, k, dtype, eff) * 1e3 / eff.ratio_low <= slo
        ]
        if not ok:
            raise _Excluded("projected batch-1 latency (conservative end) exceeds the p99 SLO")
        b = ok[-1]
    p = pj.project_offline(cost, profile, dtype, eff, batch=b)
    thr = p.metrics["throughput"]
    return _Sized(
        devices=_devices(rate, thr.ci_low),
        dtype=dtype,
        batch=b,
        delay_ms=None,  # type: ignore[arg-type]
        capacity=thr,
        p99=p.metrics["latency_p50"],
        provenance="projected",
        rate_unit="samples/s",
    )


def _batch_grid(bmax: int) -> list[int]:
    return sorted({1, bmax, *[2**i for i in range(int(math.log2(max(bmax, 1))) + 1)]})


def _size_online(
    req: RecommendRequest,
    cost: Any,
    profile: Any,
    rate: float,
    dtype: str,
    eff: Any,
    measured_curve: Any,
    mlperf: str | None,
) -> _Sized:
    from harness.planning import projection as pj
    from harness.planning.reference import SERVER_BOUNDS_MS, reference_for
    from harness.planning.simulate import ServiceCurve, max_qps_under_slo, simulate_online, suggest_batcher

    sensor = req.scenario == "sensor-stream"
    slo = (req.slo.deadline_ms or req.slo.p99_ms) if sensor else req.slo.p99_ms
    assert slo is not None
    arrival = "constant" if sensor else "poisson"
    if measured_curve is None and mlperf is not None and not sensor:
        bound = SERVER_BOUNDS_MS.get(mlperf, {}).get("p99")
        ref = reference_for(profile.id, mlperf, "Server")
        if ref is not None and bound is not None and slo >= bound:
            return _Sized(
                devices=_devices(rate, ref.ci_low or ref.value),
                dtype="as-submitted",
                batch=0,
                delay_ms=None,
                capacity=ref,
                p99=Metric(
                    value=bound,
                    unit="ms",
                    provenance=ref.provenance,
                    ci_low=None,
                    ci_high=bound,
                    method=f"MLPerf Server bound (p99 <= {bound} ms) met by the result",
                ),
                provenance="reference",
                rate_unit="queries/s",
                notes=f"MLPerf Server result at p99 <= {bound:g} ms (SLO {slo:g} ms is looser)",
            )
    if measured_curve is not None:
        curve, low = measured_curve[0], 1.0
        prov, ratio_low, ratio_high = "mixed", 0.9, 1.1  # measured curve, simulated queueing
        curve_note = "service curve measured (offline sweep); queueing simulated"
    else:
        bmax = min(pj.max_batch(cost, profile, dtype), 256)
        if bmax < 1:
            raise _Excluded(f"model does not fit in {profile.memory_gb} GB ({dtype})")
        curve = ServiceCurve(pj.service_curve_ns(cost, profile, dtype, eff, bmax))
        prov, ratio_low, ratio_high = "projected", eff.ratio_low, eff.ratio_high
        curve_note = f"service curve projected ({eff.describe()}); queueing simulated"
        low = ratio_low
    pess = curve.scaled(1.0 / min(low, ratio_low))
    if 2 * pess(1) > slo * 1e6 and pess(1) > slo * 1e6 * 0.9:
        raise _Excluded(
            f"batch-1 service time {pess(1) / 1e6:.3g} ms (conservative end) leaves no room for the {slo:g} ms SLO"
        )
    policy = suggest_batcher(pess, slo)
    peak = max_qps_under_slo(pess, slo, policy, arrival=arrival, n_queries=3000, max_probes=10, rel_tol=0.03)
    if peak.qps <= 0 or peak.summary is None:
        raise _Excluded(f"no load meets p99 <= {slo:g} ms at the conservative end")
    devices = _devices(rate, peak.qps)
    per = rate / devices
    point = simulate_online(curve, per, policy, arrival=arrival, n_queries=3000)
    cons = simulate_online(pess, per, policy, arrival=arrival, n_queries=3000)
    opt = simulate_online(curve.scaled(1.0 / ratio_high), per, policy, arrival=arrival, n_queries=3000)
    pe = "projected:roofline+simulation" if prov == "projected" else "estimated:measured-curve+simulation"
    p99 = Metric(
        value=point.p99_ms,
        unit="ms",
        provenance=pe,
        ci_low=opt.p99_ms,
        ci_high=cons.p99_ms,
        method=f"simulated p99 at {per:.4g} QPS per device; {curve_note}",
    )
    cap = Metric(
        value=peak.qps * (1.0 / min(low, ratio_low)) if prov == "projected" else peak.qps,
        unit="queries/s",
        provenance=pe,
        ci_low=peak.qps,
        ci_high=None,
        method=f"peak QPS per device with p99 <= {slo:g} ms at the conservative end "
        f"({policy.max_batch_size=}, delay {policy.max_queue_delay_ns / 1e6:.3g} ms); value = scaled",
    )
    return _Sized(
        devices=devices,
        dtype=dtype,
        batch=policy.max_batch_size,
        delay_ms=policy.max_queue_delay_ns / 1e6,
        capacity=cap,
        p99=p99,
        provenance=prov,
        rate_unit="queries/s",
        notes=curve_note,
    )


def _size_tokens(req: RecommendRequest, cost: Any, profile: Any, rate: float, dtype: str, mlperf: str | None) -> _Sized:
    from harness.planning import projection as pj
    from harness.planning.reference import SERVER_BOUNDS_MS, reference_for

    if not cost.is_decoder:
        raise ValueError(f"scenario 'token-stream' needs a decoder; {cost.name} is not one")
    tpot_slo, ttft_slo = req.slo.tpot_ms, req.slo.ttft_ms
    assert tpot_slo is not None and ttft_slo is not None
    if mlperf == "llama2-70b":
        b = SERVER_BOUNDS_MS["llama2-70b"]
        ref = reference_for(profile.id, mlperf, "Server")
        if ref is not None and tpot_slo >= b["tpot_p99"] and ttft_slo >= b["ttft_p99"]:
            return _Sized(
                devices=_devices(rate, ref.ci_low or ref.value),
                dtype="as-submitted",
                batch=0,
                delay_ms=None,
                capacity=ref,
                provenance="reference",
                rate_unit="tokens/s",
                ttft=Metric(
                    value=b["ttft_p99"],
                    unit="ms",
                    provenance=ref.provenance,
                    ci_high=b["ttft_p99"],
                    method="MLPerf Server TTFT bound",
                ),
                tpot=Metric(
                    value=b["tpot_p99"],
                    unit="ms",
                    provenance=ref.provenance,
                    ci_high=b["tpot_p99"],
                    method="MLPerf Server TPOT bound",
                ),
                notes="MLPerf Server result within looser TTFT/TPOT SLOs",
            )
    eff = efficiency_for(profile, cost, dtype)
    try:
        # conservative: the TPOT bound applies to the pessimistic step time
        d = pj.project_decoder(cost, profile, dtype, eff, tpot_slo_s=tpot_slo / 1e3 * eff.ratio_low)
    except pj.ProjectionError as exc:
        raise _Excluded(str(exc)) from None
    ttft = d.metrics["ttft_p50"]
    if ttft.ci_high is not None and ttft.ci_high > ttft_slo:
        raise _Excluded(f"TTFT {ttft.ci_high:.3g} ms (conservative end) exceeds {ttft_slo:g} ms")
    tps = d.metrics["output_tokens_per_s"]
    n = _devices(rate, tps.ci_low)  # type: ignore[arg-type]
    n = int(math.ceil(n / d.devices) * d.devices)  # whole instances
    return _Sized(
        devices=n,
        dtype=dtype,
        batch=d.batch,
        delay_ms=None,
        capacity=tps,
        ttft=ttft,
        tpot=d.metrics["tpot_p50"],
        provenance="projected",
        rate_unit="tokens/s",
        notes=f"{d.devices} device(s) per instance (tensor parallel)",
    )


# --------------------------------------------------------------------------- main entry


def recommend(
    request: RecommendRequest, results_root: str | Path | None = None, profiles: dict[str, Any] | None = None
) -> Recommendation:
    """Rank hardware profiles for ``request`` (see module docstring). ``results_root`` holds
    measured runs (None: projections and references only); ``profiles`` defaults to the
    shipped hardware profiles."""
    from harness.core import economics as econ
    from harness.core.hardware import load_profiles

    if profiles is None:
        profiles = load_profiles()
    cost = _cost_of(request.model)
    if request.scenario == "token-stream" and not cost.is_decoder:
        raise ValueError(
            f"scenario 'token-stream' needs a decoder model; {cost.name} is not one "
            "(zoo decoders: gpt2; MLPerf: llama2-70b)"
        )
    rate, unit = _rate(request, cost)
    mlperf = _mlperf_name(request.model)
    measured, run_profiles = _measured_cells(Path(results_root) if results_root else None, request.model)
    profiles = {**run_profiles, **profiles}  # a host profile recorded by a run, unless shipped
    cons = request.constraints
    weights = request.weights()
    rows: list[RecommendationRow] = []
    excluded: list[Exclusion] = []
    for pid in sorted(profiles):
        p = profiles[pid]
        try:
            if cons.allowed_kinds and p.kind not in cons.allowed_kinds:
                raise _Excluded(f"kind {p.kind!r} not in allowed kinds {list(cons.allowed_kinds)}")
            if cons.min_memory_gb is not None and (p.memory_gb or 0) < cons.min_memory_gb:
                raise _Excluded(f"memory {p.memory_gb} GB < required {cons.min_memory_gb} GB")
            cells = measured.get(pid, [])
            if cons.measured_only and not cells:
                raise _Excluded("no measured results for this model on this profile (measured-only)")
            price = econ.price_of(p)
            if price is None and (weights.get("cost") or cons.max_usd_per_month is not None):
                raise _Excluded("no price in the profile")
            if p.tdp_w is None and (weights.get("energy") or cons.max_kw is not None):
                raise _Excluded("no TDP in the profile")
            s = _size_profile(request, cost, p, rate, unit, cells, mlperf)
            usd = econ.monthly_cost_usd(s.devices, price[0], price[1]) if price else None
            kw = econ.power_kw(s.devices, p.tdp_w, "estimated:tdp") if p.tdp_w else None
            if usd is not None and cons.max_usd_per_month is not None and usd.value > cons.max_usd_per_month:  # type: ignore[operator]
                raise _Excluded(
                    f"${usd.value:,.0f}/month for {s.devices} device(s) exceeds the budget "
                    f"${cons.max_usd_per_month:,.0f}"
                )
            if kw is not None and cons.max_kw is not None and kw.value > cons.max_kw:  # type: ignore[operator]
                raise _Excluded(f"{kw.value:.3g} kW for {s.devices} device(s) exceeds {cons.max_kw:g} kW")
            lat = s.p99 if s.p99 is not None else s.ttft
            slo_check = request.slo.p99_ms if request.scenario in ("online", "offline") else None
            if slo_check is not None and lat is not None and (lat.ci_high or lat.value or 0) > slo_check * (1 + 1e-9):
                raise _Excluded(f"predicted p99 {lat.ci_high:.3g} ms (conservative end) exceeds the SLO")
            per1m = None
            if price is not None:
                fn = econ.usd_per_1m_tokens if unit == "tokens/s" else econ.usd_per_1m_inferences
                per1m = fn(price[0] * s.devices, rate, price[1])
            score = _score(weights, usd, lat, kw)
            rows.append(
                RecommendationRow(
                    rank=0,
                    profile_id=pid,
                    kind=p.kind,
                    devices=s.devices,
                    dtype=s.dtype,
                    batch_size=s.batch,
                    max_queue_delay_ms=s.delay_ms,
                    predicted_p99_ms=s.p99,
                    predicted_ttft_ms=s.ttft,
                    predicted_tpot_ms=s.tpot,
                    usd_per_month=usd,
                    kw=kw,
                    usd_per_1m=per1m,
                    per_device_capacity=s.capacity,
                    provenance=s.provenance,
                    score=score,
                    notes=s.notes,
                )
            )
        except _Excluded as exc:
            excluded.append(Exclusion(profile_id=pid, reason=str(exc)))
    rows.sort(key=lambda r: (r.score, r.profile_id))
    rows = [r.model_copy(update={"rank": i + 1}) for i, r in enumerate(rows)]
    return Recommendation(request=request, rows=rows, excluded=excluded)


def _score(weights: dict[str, float], usd: Metric | None, lat: Metric | None, kw: Metric | None) -> float:
    """sum(w * log(value)); values at the conservative end (latency's upper bound)."""
    total = 0.0
    vals = {
        "cost": usd.value if usd else None,
        "latency": (lat.ci_high or lat.value) if lat else None,
        "energy": kw.value if kw else None,
    }
    for k, w in weights.items():
        if not w:
            continue
        v = vals[k]
        if v is None or not v > 0:
            return math.inf
        total += w * math.log(v)
    return total


def as_array(rec: Recommendation) -> np.ndarray:  # pragma: no cover - convenience
    return rec.to_frame().to_numpy()
