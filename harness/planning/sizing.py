"""Sizing one hardware profile for a recommendation: devices, batch and predicted latency per
scenario, always at the conservative end of the uncertainty range.

* ``offline``: devices = ceil(rate / throughput per device) at the largest batch whose batch
  latency meets the optional p99 SLO (measured sweep, MLPerf Offline result, or roofline);
* ``online`` / ``sensor-stream``: a service curve t(b) (measured offline sweep, or projected)
  drives the discrete-event simulator with a batcher suggested for the SLO; the per-device
  peak QPS under the p99 SLO (the deadline for sensor streams, constant-rate arrivals) sets
  the device count; an MLPerf Server result is used instead when the SLO is at least MLPerf's;
* ``token-stream``: decode throughput (tokens/s) at the largest batch whose TPOT meets the SLO;
  TTFT must meet its SLO (decoders only).

Units: rates in queries/s, samples/s or tokens/s per device; latencies in ms (service curves
in ns). A profile that cannot serve the request raises :class:`Excluded` with the reason.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from harness.core.economics import devices_needed
from harness.core.hardware import HardwareProfile
from harness.core.metrics import Metric
from harness.core.records import CellRecord
from harness.planning import projection as pj
from harness.planning.calibration import efficiency_for
from harness.planning.evidence import MeasuredCurve, measured_curve, row_evidence
from harness.planning.projection import Efficiency
from harness.planning.reference import SERVER_BOUNDS_MS, reference_for
from harness.planning.request import RecommendRequest
from harness.planning.simulate import ServiceCurve, max_qps_under_slo, simulate_online, suggest_batcher
from harness.planning.workload_cost import WorkloadCost

SECONDS_PER_DAY = 86_400.0
SIM_QUERIES, PROBE_QUERIES = 1200, 1000  # simulated queries: final p99 (12 beyond it), each peak-QPS probe
#: a profile needing more devices than this is excluded (not a sensible deployment)
MAX_DEVICES = 100_000


class Excluded(Exception):
    """The profile cannot serve the request; the message says why."""


class Sized(BaseModel):
    """One profile sized for the request: device count, precision, batching (``delay_ms``: the
    batcher's max queue delay), per-device capacity (conservative value in ``ci_low``) and the
    predicted latencies (ms) with ranges."""

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
    evidence: str = ""
    stack: str = "tuned stack (MLPerf)"


def rate_of(req: RecommendRequest, cost: WorkloadCost) -> tuple[float, str]:
    """The load as a rate and its unit: output tokens/s for token streams, else queries/s."""
    ld = req.load
    if ld.qps is not None:
        q = ld.qps
    elif ld.items_per_day is not None:
        q = ld.items_per_day / SECONDS_PER_DAY
    else:
        q = math.nan  # only tokens_per_s given (Load holds exactly one)
    if req.scenario == "token-stream":
        if ld.tokens_per_s is not None:
            return ld.tokens_per_s, "tokens/s"
        return q * (cost.output_tokens or 1), "tokens/s"
    if ld.tokens_per_s is not None:
        raise ValueError("load.tokens_per_s applies to scenario 'token-stream' only")
    return q, "queries/s"


def devices_for(rate: float, per_device_low: float | None) -> int:
    """Devices needed to serve ``rate`` when each serves ``per_device_low`` (same unit) at the
    conservative end; :class:`Excluded` without throughput or beyond :data:`MAX_DEVICES`."""
    if per_device_low is None or per_device_low <= 0:
        raise Excluded("no throughput at the conservative end")
    n = max(1, devices_needed(rate, per_device_low))
    if n > MAX_DEVICES:
        raise Excluded(f"needs {n} devices (> {MAX_DEVICES})")
    return n


def size_profile(
    req: RecommendRequest,
    cost: WorkloadCost,
    profile: HardwareProfile,
    rate: float,
    measured: list[CellRecord],
    mlperf: str | None,
) -> Sized:
    """Size ``profile`` for ``req`` at ``rate`` (:func:`rate_of`'s unit) from the best evidence:
    ``measured`` cells of the model on this profile, the MLPerf benchmark ``mlperf``'s
    reference results, else a roofline projection. Raises :class:`Excluded` with the reason."""
    dtype = pj.choose_dtype(profile, req.dtype)
    if dtype is None and not measured:
        raise Excluded(f"no peak for {req.dtype} (or its fallback) in the profile")
    dtype = dtype or req.dtype
    if req.scenario == "token-stream":
        return _size_tokens(req, cost, profile, rate, dtype, mlperf)
    eff = efficiency_for(profile, cost, dtype)
    curve: MeasuredCurve | None = None
    if measured:
        bmax_m = pj.max_batch(cost, profile, dtype) if profile.memory_gb else 256
        curve = measured_curve(measured, max(1, min(bmax_m, 256)))
        if curve is None and req.constraints.measured_only:
            raise Excluded("measured cells exist but none is an offline batch sweep")
    if req.scenario == "offline":
        sized = _size_offline(req, cost, profile, rate, dtype, eff, curve, mlperf)
    else:
        sized = _size_online(req, cost, profile, rate, dtype, eff, curve, mlperf)
    ev = row_evidence(sized.provenance, sized.capacity.method, measured, eff.describe(), cost.source)
    return sized.model_copy(update={"evidence": ev})


def _size_offline(
    req: RecommendRequest,
    cost: WorkloadCost,
    profile: HardwareProfile,
    rate: float,
    dtype: str,
    eff: Efficiency,
    measured: MeasuredCurve | None,
    mlperf: str | None,
) -> Sized:
    """Offline: the batch with the best throughput whose p99 batch latency meets the SLO."""
    slo = req.slo.p99_ms
    if measured is not None:
        p99s = measured.p99_by_batch
        ok = {b: v for b, v in p99s.items() if slo is None or v[0] <= slo}
        if not ok:
            raise Excluded(
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
        return Sized(
            devices=devices_for(rate, thr),
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
            return Sized(
                devices=devices_for(rate, ref.ci_low or ref.value),
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
        raise Excluded(f"model does not fit in {profile.memory_gb} GB ({dtype})")
    b = bmax
    if slo is not None:
        fitting = [
            k
            for k in _batch_grid(bmax)
            if pj.batch_latency_s(cost, profile, k, dtype, eff) * 1e3 / eff.ratio_low <= slo
        ]
        if not fitting:
            raise Excluded("projected batch-1 latency (conservative end) exceeds the p99 SLO")
        b = fitting[-1]
    p = pj.project_offline(cost, profile, dtype, eff, batch=b)
    capacity = p.metrics["throughput"]
    return Sized(
        devices=devices_for(rate, capacity.ci_low),
        dtype=dtype,
        batch=b,
        delay_ms=None,
        capacity=capacity,
        p99=p.metrics["latency_p50"],
        provenance="projected",
        rate_unit="samples/s",
    )


def _batch_grid(bmax: int) -> list[int]:
    return sorted({1, bmax, *[2**i for i in range(int(math.log2(max(bmax, 1))) + 1)]})


def _size_online(
    req: RecommendRequest,
    cost: WorkloadCost,
    profile: HardwareProfile,
    rate: float,
    dtype: str,
    eff: Efficiency,
    measured: MeasuredCurve | None,
    mlperf: str | None,
) -> Sized:
    """Online and sensor streams: peak QPS per device under the SLO, simulated on the
    (measured or projected) service curve scaled to the conservative end, or MLPerf Server."""
    sensor = req.scenario == "sensor-stream"
    slo = (req.slo.deadline_ms or req.slo.p99_ms) if sensor else req.slo.p99_ms
    assert slo is not None
    if measured is None and mlperf is not None and not sensor:
        bound = SERVER_BOUNDS_MS.get(mlperf, {}).get("p99")
        ref = reference_for(profile.id, mlperf, "Server")
        if ref is not None and bound is not None and slo >= bound:
            return Sized(
                devices=devices_for(rate, ref.ci_low or ref.value),
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
    if measured is not None:
        curve, low = measured.curve, 1.0
        prov, ratio_low, ratio_high = "mixed", 0.9, 1.1  # measured curve, simulated queueing
        curve_note = "service curve measured (offline sweep); queueing simulated"
    else:
        bmax = min(pj.max_batch(cost, profile, dtype), 256)
        if bmax < 1:
            raise Excluded(f"model does not fit in {profile.memory_gb} GB ({dtype})")
        curve = ServiceCurve(pj.service_curve_ns(cost, profile, dtype, eff, bmax))
        prov, ratio_low, ratio_high = "projected", eff.ratio_low, eff.ratio_high
        curve_note = f"service curve projected ({eff.describe()}); queueing simulated"
        low = ratio_low
    return online_from_curve(req, rate, dtype, curve, low, ratio_low, ratio_high, prov, curve_note)


def online_from_curve(
    req: RecommendRequest,
    rate: float,
    dtype: str,
    curve: ServiceCurve,
    low: float,
    ratio_low: float,
    ratio_high: float,
    prov: str,
    curve_note: str,
) -> Sized:
    """Online / sensor-stream sizing on a service curve: simulated peak QPS per device under the SLO
    at the conservative end (``curve / min(low, ratio_low)``), p99 with its range at that load."""
    sensor = req.scenario == "sensor-stream"
    slo = (req.slo.deadline_ms or req.slo.p99_ms) if sensor else req.slo.p99_ms
    assert slo is not None
    arrival = "constant" if sensor else "poisson"
    pess = curve.scaled(1.0 / min(low, ratio_low))
    if 2 * pess(1) > slo * 1e6 and pess(1) > slo * 1e6 * 0.9:
        raise Excluded(
            f"batch-1 service time {pess(1) / 1e6:.3g} ms (conservative end) leaves no room for the {slo:g} ms SLO"
        )
    policy = suggest_batcher(pess, slo)
    peak = max_qps_under_slo(pess, slo, policy, arrival=arrival, n_queries=PROBE_QUERIES, max_probes=6, rel_tol=0.03)
    if peak.qps <= 0 or peak.summary is None:
        raise Excluded(f"no load meets p99 <= {slo:g} ms at the conservative end")
    devices = devices_for(rate, peak.qps)
    per = rate / devices
    point = simulate_online(curve, per, policy, arrival=arrival, n_queries=SIM_QUERIES)
    cons = simulate_online(pess, per, policy, arrival=arrival, n_queries=SIM_QUERIES)
    opt = simulate_online(curve.scaled(1.0 / ratio_high), per, policy, arrival=arrival, n_queries=SIM_QUERIES)
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
    return Sized(
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


def _size_tokens(
    req: RecommendRequest, cost: WorkloadCost, profile: HardwareProfile, rate: float, dtype: str, mlperf: str | None
) -> Sized:
    """Token streams: decode tokens/s per device at the largest batch whose conservative TPOT
    meets the SLO, TTFT checked at its upper end; or an MLPerf Server result."""
    if not cost.is_decoder:
        raise ValueError(f"scenario 'token-stream' needs a decoder; {cost.name} is not one")
    tpot_slo, ttft_slo = req.slo.tpot_ms, req.slo.ttft_ms
    assert tpot_slo is not None and ttft_slo is not None
    if mlperf == "llama2-70b":
        b = SERVER_BOUNDS_MS["llama2-70b"]
        ref = reference_for(profile.id, mlperf, "Server")
        if ref is not None and tpot_slo >= b["tpot_p99"] and ttft_slo >= b["ttft_p99"]:
            return Sized(
                devices=devices_for(rate, ref.ci_low or ref.value),
                dtype="as-submitted",
                batch=0,
                delay_ms=None,
                capacity=ref,
                provenance="reference",
                evidence=ref.method,
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
        raise Excluded(str(exc)) from None
    ttft = d.metrics["ttft_p50"]
    if ttft.ci_high is not None and ttft.ci_high > ttft_slo:
        raise Excluded(f"TTFT {ttft.ci_high:.3g} ms (conservative end) exceeds {ttft_slo:g} ms")
    tps = d.metrics["output_tokens_per_s"]
    n = devices_for(rate, tps.ci_low)
    n = int(math.ceil(n / d.devices) * d.devices)  # whole instances
    return Sized(
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
        evidence=f"projection assumptions: {eff.describe()}; {tps.method}; workload: {cost.source}",
    )


# --------------------------------------------------------------------------- main entry
