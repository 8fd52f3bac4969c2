"""Sizing for the user's own software stack (e.g. torch eager fp16), beside the tuned-stack row.

The tuned-stack projection (MLPerf-calibrated roofline) says what a device can do with a
vendor-tuned stack; a PyTorch user on the same device is slower, by several times at small
batches (dispatch-bound). :func:`size_your_stack` sizes a GPU profile with the stack model of
:mod:`harness.planning.stack_model`, calibrated on the shipped measured records (and their
leave-one-out residuals for the range, :mod:`harness.planning.ranges`). It applies to zoo
models with an operator count, on GPUs, for offline, online and sensor-stream loads; elsewhere
it returns None (no second row).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from harness.core.hardware import HardwareProfile, load_profiles
from harness.core.metrics import Metric
from harness.planning import projection as pj
from harness.planning.operator_counts import operator_count
from harness.planning.ranges import PRIOR, RatioRange, ratio_range
from harness.planning.request import RecommendRequest
from harness.planning.simulate import ServiceCurve
from harness.planning.sizing import Excluded, Sized, devices_for, online_from_curve
from harness.planning.stack_model import StackCalibration, fit, leave_one_out, predict, shipped_points
from harness.planning.workload_cost import WorkloadCost

PROVENANCE = "projected:stack-model"
MAX_BATCH = 256


@lru_cache(maxsize=1)
def calibration() -> tuple[StackCalibration, RatioRange]:
    """The stack model fitted on the shipped measured records, and its leave-one-out range."""
    profiles = load_profiles()
    pts = shipped_points()
    return fit(pts, profiles), ratio_range([r.ratio for r in leave_one_out(pts, profiles)])


def stack_of(req: RecommendRequest, dtype: str) -> str:
    return req.stack or f"torch-eager-{dtype}"


def size_your_stack(
    req: RecommendRequest, cost: WorkloadCost, profile: HardwareProfile, rate: float, dtype: str
) -> Sized | None:
    """The profile sized for the user's stack (None where the stack model does not apply);
    raises :class:`~harness.planning.sizing.Excluded` when that stack cannot meet the SLO."""
    if profile.kind != "gpu" or req.scenario == "token-stream" or operator_count(cost.name, cost.size) is None:
        return None
    stack = stack_of(req, dtype)
    sdtype = stack.rsplit("-", 1)[-1]
    if profile.peak(sdtype) is None or profile.memory_bw_gbps is None:
        return None
    cal, rr = calibration()
    pred1 = predict(cal, cost.name, cost.size, stack, profile, 1)
    if pred1.efficiency_origin == "prior":
        rr = RatioRange(PRIOR[0], PRIOR[1], 0, "prior x[1/3, 3] (no calibration for this architecture)")
    bmax = min(pj.max_batch(cost, profile, sdtype), MAX_BATCH)
    if bmax < 1:
        raise Excluded(f"your stack: model does not fit in {profile.memory_gb} GB ({sdtype})")
    lat_s = [predict(cal, cost.name, cost.size, stack, profile, b).latency_s for b in range(1, bmax + 1)]
    evidence = (
        f"stack model for {stack}: {pred1.assumptions}; calibrated on {cal.n_points} measured H200 cells "
        f"(harness/planning/reference_data/h200_torch_measured.json); range: {rr.method}"
    )
    label = f"your stack ({stack})"
    if req.scenario == "offline":
        slo = req.slo.p99_ms
        ok = [b for b in range(1, bmax + 1) if slo is None or lat_s[b - 1] * 1e3 / rr.low <= slo]
        if not ok:
            raise Excluded(f"your stack ({stack}): batch-1 latency {lat_s[0] * 1e3:.3g} ms exceeds the p99 SLO")
        b = max(ok, key=lambda k: k / lat_s[k - 1])
        thr = b / lat_s[b - 1]
        lo, hi = rr.apply_rate(thr)
        llo, lhi = rr.apply_latency(lat_s[b - 1] * 1e3)
        what = f"stack model, batch {b}, {stack}"
        return Sized(
            devices=devices_for(rate, lo),
            dtype=sdtype,
            batch=b,
            delay_ms=None,
            capacity=Metric(value=thr, unit="samples/s", provenance=PROVENANCE, ci_low=lo, ci_high=hi, method=what),
            p99=Metric(
                value=lat_s[b - 1] * 1e3, unit="ms", provenance=PROVENANCE, ci_low=llo, ci_high=lhi, method=what
            ),
            provenance="projected",
            rate_unit="samples/s",
            notes=f"{label}: {pred1.bound}-bound at batch 1",
            evidence=evidence,
            stack=label,
        )
    curve = ServiceCurve(np.array([int(round(t * 1e9)) for t in lat_s], dtype=np.int64))
    note = f"service curve from the stack model ({stack}); queueing simulated"
    s = online_from_curve(req, rate, sdtype, curve, rr.low, rr.low, rr.high, "projected", note)
    return s.model_copy(update={"evidence": evidence, "stack": label, "notes": f"{label}; {s.notes}"})
