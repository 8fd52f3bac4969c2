"""Stack-aware projection calibrated on measured runs (any machine, imported records included).

A *stack* is the backend plus the options that change speed: ``torch-eager-fp16``,
``torch-compile-fp16``, ``onnxruntime-cuda-fp16`` ... (:func:`stack_key`). Its latency for one
batch of ``b`` samples on a device (units: seconds)::

    t(b) = max(n_light * op_s, M(b)) + max(n_flop * op_s, F(b))
    F(b) = flops(b) / (peak * compute_eff)          (matmul, convolution, attention operators)
    M(b) = dram_bytes(b) / (bw * MEMORY_EFF)        (every other operator moves activations)

An eager stack dispatches every operator from the host (``op_s`` each, the
dispatch/launch cost); an operator takes the longer of its dispatch and its device work. The
``n_flop`` operators that carry the FLOPs (:mod:`harness.planning.operator_counts`) share
``F``, the ``n_light`` others share the memory traffic ``M`` (cost model of
:mod:`harness.planning.cost_model`: every counted activation written unless it stays on
chip). Small batches are dispatch-bound (``t = operators x op_s``), large ones device-bound;
``t >= F`` and ``t >= M`` with efficiencies at most 1, so never above peak.

Calibration (:func:`fit`) from measured points:

* ``op_s`` per (stack, model): median over batch-1 points of latency / operators; else per
  stack, else that backend's other stacks, else :data:`PRIOR_OP_S`;
* ``compute_eff`` per (stack, device architecture, workload class) from points with ``b > 1``
  where ``F`` exceeds the dispatch of the FLOP operators (the points that say something about
  the device), median; falling back to the same backend and mode in another dtype, then the
  same backend, then the stack on another workload class, then :data:`PRIOR_COMPUTE_EFF`.

:func:`leave_one_out` projects each point from all the others: the measured score of the model
and the residuals behind the ranges of :mod:`harness.planning.ranges`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from harness.core.hardware import HardwareProfile
from harness.planning import cost_model as cm
from harness.planning.architecture import architecture
from harness.planning.operator_counts import operator_count
from harness.planning.workload_cost import WorkloadCost, workload_cost

MEASURED_FILE = "h200_torch_measured.json"
#: host dispatch per operator before any calibration (eager PyTorch on a server CPU), seconds
PRIOR_OP_S = 20e-6
#: fraction of peak FLOP/s an uncalibrated eager stack reaches on large batches
PRIOR_COMPUTE_EFF = 0.1
#: eager stacks stream activations at this fraction of peak bandwidth
MEMORY_EFF = 0.8
CLASS_OF_TASK = {"vision": "vision", "encoder": "encoder", "decoder": "decoder"}


def stack_key(backend: str, options: dict[str, Any] | None) -> str:
    """``<backend>-<mode>-<dtype>``: mode ``compile``/``graphs`` when those options are on, the
    execution provider for onnxruntime, else ``eager``."""
    o = options or {}
    dtype = str(o.get("dtype", "fp32"))
    if o.get("compile"):
        mode = "compile"
    elif o.get("cuda_graphs"):
        mode = "graphs"
    elif o.get("execution_provider") or o.get("provider"):
        mode = str(o.get("execution_provider") or o.get("provider")).lower().replace("executionprovider", "")
    else:
        mode = "eager"
    return f"{backend}-{mode}-{dtype}"


@dataclass(frozen=True)
class Point:
    """One measured batch: ``latency_s`` of a batch of ``batch`` samples; ``throughput_per_s``
    as measured (offline) or 1 / latency (single-stream)."""

    model: str
    size: str
    stack: str
    profile_id: str
    batch: int
    latency_s: float
    throughput_per_s: float
    source: str

    @property
    def dtype(self) -> str:
        return self.stack.rsplit("-", 1)[-1]

    @property
    def backend(self) -> str:
        return self.stack.split("-", 1)[0]


@lru_cache(maxsize=1)
def shipped_points() -> tuple[Point, ...]:
    """The measured H200 records shipped in ``reference_data`` (source noted in the file)."""
    text = resources.files("harness.planning").joinpath("reference_data", MEASURED_FILE).read_text()
    data = json.loads(text)
    out = []
    for c in data["cells"]:
        out.append(
            Point(
                model=c["model"],
                size=c["size"],
                stack=stack_key(c["backend"], c["backend_options"]),
                profile_id=data["profile_id"],
                batch=int(c["batch_size"]),
                latency_s=float(c["latency_p50_ms"]) / 1e3,
                throughput_per_s=float(c["throughput_per_s"]),
                source=f"measured: {c['file']} cell {c['cell_id']}",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class StackCalibration:
    """Fitted per-operator costs and compute efficiencies."""

    op_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (stack, model) -> s
    compute_eff: dict[tuple[str, str, str], float] = field(default_factory=dict)
    n_points: int = 0

    def op_cost(self, stack: str, model: str) -> tuple[float, str]:
        if (stack, model) in self.op_s:
            return self.op_s[(stack, model)], f"calibrated ({stack}, {model})"
        rules: tuple[tuple[Callable[[tuple[str, str]], bool], str], ...] = (
            (lambda k: k[0] == stack, f"calibrated ({stack}, other models)"),
            (lambda k: _backend(k[0]) == _backend(stack), f"calibrated on other {_backend(stack)} stacks"),
        )
        for pred, what in rules:
            vals = [v for k, v in self.op_s.items() if pred(k)]
            if vals:
                return statistics.median(vals), what
        return PRIOR_OP_S, "prior"

    def efficiency(self, stack: str, arch: str, cls: str) -> tuple[float, str]:
        if (stack, arch, cls) in self.compute_eff:
            return self.compute_eff[(stack, arch, cls)], f"calibrated ({stack}, {arch}, {cls})"
        erules: tuple[tuple[Callable[[tuple[str, str, str]], bool], str], ...] = (
            (lambda k: _mode(k[0]) == _mode(stack) and k[1] == arch and k[2] == cls, "same backend and mode"),
            (lambda k: _backend(k[0]) == _backend(stack) and k[1] == arch and k[2] == cls, "same backend"),
            (lambda k: k[0] == stack and k[1] == arch, "same stack, other workload class"),
        )
        for epred, what in erules:
            vals = [v for k, v in self.compute_eff.items() if epred(k)]
            if vals:
                return statistics.median(vals), f"calibrated ({what}, {arch})"
        return PRIOR_COMPUTE_EFF, "prior"


def _backend(stack: str) -> str:
    return stack.split("-", 1)[0]


def _mode(stack: str) -> str:
    return stack.rsplit("-", 1)[0]


@lru_cache(maxsize=64)
def _cost(model: str, size: str) -> WorkloadCost:
    return workload_cost(model, size)


def _ops(model: str, size: str) -> tuple[int, int]:
    n = operator_count(model, size)
    if n is None:
        raise cm.CostModelError(f"no operator count for {model}:{size} (run write_operator_snapshot)")
    return n


def _cls(cost: WorkloadCost) -> str:
    return CLASS_OF_TASK.get(cost.task, "other")


def fit(points: list[Point] | tuple[Point, ...], profiles: dict[str, HardwareProfile]) -> StackCalibration:
    """Calibrate per-operator costs and compute efficiencies from ``points`` (module docstring)."""
    per_op: dict[tuple[str, str], list[float]] = {}
    for p in points:
        if p.batch == 1:
            per_op.setdefault((p.stack, p.model), []).append(p.latency_s / _ops(p.model, p.size)[0])
    partial = StackCalibration(op_s={k: statistics.median(v) for k, v in per_op.items()})
    effs: dict[tuple[str, str, str], list[float]] = {}
    for p in points:
        if p.batch <= 1:
            continue
        prof = profiles[p.profile_id]
        cost = _cost(p.model, p.size)
        n_all, n_flop = _ops(p.model, p.size)
        op_s = partial.op_cost(p.stack, p.model)[0]
        mem = cm.dram_bytes(cost, prof, p.batch, p.dtype) / (cm.bandwidth(prof) * MEMORY_EFF)
        f = p.latency_s - max((n_all - n_flop) * op_s, mem)
        if f <= n_flop * op_s:
            continue  # dispatch-bound: says nothing about the device
        eff = cost.flops(p.batch) / (cm.peak_flops(prof, p.dtype) * f)
        effs.setdefault((p.stack, architecture(p.profile_id), _cls(cost)), []).append(min(1.0, eff))
    return StackCalibration(
        op_s=partial.op_s,
        compute_eff={k: statistics.median(v) for k, v in effs.items()},
        n_points=len(points),
    )


@dataclass(frozen=True)
class StackPrediction:
    latency_s: float
    throughput_per_s: float
    bound: str  # "dispatch" or "device"
    assumptions: str
    efficiency_origin: str = "prior"


def predict(
    cal: StackCalibration, model: str, size: str, stack: str, profile: HardwareProfile, batch: int
) -> StackPrediction:
    """Projected batch latency and throughput of ``model`` on ``profile`` with ``stack``."""
    cost = _cost(model, size)
    dtype = stack.rsplit("-", 1)[-1]
    op_s, op_why = cal.op_cost(stack, model)
    ce, ce_why = cal.efficiency(stack, architecture(profile.id), _cls(cost))
    n_all, n_flop = _ops(model, size)
    f = cost.flops(batch) / (cm.peak_flops(profile, dtype) * cm.clamp_eff(ce))
    m = cm.dram_bytes(cost, profile, batch, dtype) / (cm.bandwidth(profile) * MEMORY_EFF)
    t = max((n_all - n_flop) * op_s, m) + max(n_flop * op_s, f)
    bound = "dispatch" if n_all * op_s >= 0.5 * t else "device"
    why = (
        f"{n_all} operators ({n_flop} carrying FLOPs) x {op_s * 1e6:.1f} us dispatch ({op_why}); "
        f"compute_eff {ce:.3g} ({ce_why}); memory_eff {MEMORY_EFF}; "
        f"activations on chip up to {profile.onchip_mb or 0:g} MB"
    )
    return StackPrediction(t, batch / t, bound, why, ce_why)


@dataclass(frozen=True)
class LooRow:
    point: Point
    predicted_latency_s: float
    predicted_throughput_per_s: float
    bound: str

    @property
    def ratio(self) -> float:
        """measured / predicted throughput (latency for batch 1 is its inverse)."""
        return self.point.throughput_per_s / self.predicted_throughput_per_s

    @property
    def error(self) -> float:
        return max(self.ratio, 1 / self.ratio)


def leave_one_out(points: tuple[Point, ...], profiles: dict[str, HardwareProfile]) -> list[LooRow]:
    """Each point projected from a calibration on all the others."""
    out = []
    for i, p in enumerate(points):
        rest = points[:i] + points[i + 1 :]
        cal = fit(rest, profiles)
        pr = predict(cal, p.model, p.size, p.stack, profiles[p.profile_id], p.batch)
        out.append(LooRow(p, pr.latency_s, pr.throughput_per_s, pr.bound))
    return out


def with_profile(points: tuple[Point, ...], profile_id: str) -> tuple[Point, ...]:
    return tuple(replace(p, profile_id=profile_id) for p in points)
