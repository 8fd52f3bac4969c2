"""Roofline projection of latency and throughput onto hardware that is not here.

Model (units: seconds, FLOPs, bytes; peaks from the profile in TFLOPS/TOPS and GB/s)::

    t(b) = max( flops(b) / (peak[dtype] * 1e12 * compute_eff),
                bytes(b) / (memory_bw_gbps * 1e9 * memory_eff) ) + overhead_s

``flops(b)`` and ``bytes(b)`` come from :mod:`harness.planning.workload_cost`. A batch is allowed only when
its footprint fits the device memory (``memory_gb``); :func:`max_batch` is the largest that fits.
Decoders are split into prefill (TTFT) and per-token decode (TPOT); a decoder instance may span
``devices`` devices (tensor parallel: peak, bandwidth and memory add up, the per-device share
of throughput is divided by ``devices``; each decode step pays the all-reduces over the profile's
interconnect, :func:`harness.planning.cost_model.comm_s`; no group without an interconnect or
wider than a node).

Efficiencies (:class:`Efficiency`) say how much of the datasheet peak a real stack reaches.
They come from, in order of preference:

1. a calibration on runs measured here (:func:`harness.planning.calibration.calibrate_from_cells`) for that profile;
2. a calibration on MLPerf Inference reference results per device kind and workload class
   (:func:`harness.planning.calibration.mlperf_calibration`; older rounds only);
3. the prior table :data:`DEFAULT_EFFICIENCY` (documented in docs/projection-and-recommendation.md).

Every projected number is a :class:`~harness.core.metrics.Metric` with provenance
``projected:roofline`` whose ``method`` states the efficiencies and their origin, and whose
``ci_low``/``ci_high`` carry the uncertainty range: the efficiency's ``ratio_low``/``ratio_high``
(observed spread of measured / predicted throughput in its calibration set) applied to the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.hardware import HardwareProfile
from harness.core.metrics import Metric
from harness.planning.cost_model import MAX_GROUP, comm_s
from harness.planning.workload_cost import WorkloadCost, largest_fitting_batch

PROVENANCE = "projected:roofline"
#: batches larger than this are never considered (diminishing returns, queueing latency)
MAX_BATCH_CAP = 1024
#: fraction of device memory usable for weights + activations + KV cache
USABLE_MEMORY_FRACTION = 0.9
#: workload classes: the calibration granularity below device kind
TASK_CLASS = {"vision": "vision", "encoder": "encoder", "decoder": "decoder"}
#: dtypes tried in order when the requested one has no peak on a profile
DTYPE_FALLBACK: dict[str, tuple[str, ...]] = {
    "fp32": ("fp32", "tf32"),
    "tf32": ("tf32", "fp32"),
    "fp16": ("fp16", "bf16"),
    "bf16": ("bf16", "fp16"),
    "int8": ("int8", "fp8"),
    "fp8": ("fp8", "int8"),
}


class ProjectionError(ValueError):
    """A projection that cannot be made (missing peak, model does not fit ...)."""


class Efficiency(BaseModel):
    """Fractions of peak reached, a fixed per-batch overhead, and the uncertainty range.

    ``ratio_low``/``ratio_high`` bound measured/predicted throughput seen where this
    efficiency was calibrated (or assumed, for priors); latency bounds are their inverses.
    """

    model_config = ConfigDict(frozen=True)

    compute: float = Field(gt=0, le=1, description="fraction of dense peak FLOP/s reached (at most 1)")
    memory: float = Field(gt=0, le=1, description="fraction of peak memory bandwidth reached (at most 1)")
    overhead_s: float = Field(ge=0, description="fixed cost per batch / step (launch, framework)")
    origin: str = Field(description="where the figures come from")
    ratio_low: float = Field(0.33, gt=0, description="lowest measured/predicted throughput ratio")
    ratio_high: float = Field(3.0, gt=0, description="highest measured/predicted throughput ratio")
    effective_tflops: float | None = Field(
        default=None, gt=0, description="measured compute roof (profiles without a peak)"
    )

    def describe(self) -> str:
        roof = f", roof {self.effective_tflops:.3g} TFLOP/s" if self.effective_tflops else ""
        return (
            f"compute_eff={self.compute:.3g}, memory_eff={self.memory:.3g}, "
            f"overhead={self.overhead_s * 1e6:.0f} us{roof} ({self.origin}); "
            f"range x[{self.ratio_low:.2g}, {self.ratio_high:.2g}]"
        )


#: Prior efficiencies per device kind and dtype: (compute_eff, memory_eff, overhead_s).
#: Round figures from what tuned stacks typically reach of dense peaks (tensor-core GEMMs
#: 50-70 %, CPUs with vendor libraries 30-40 %, streaming bandwidth 60-85 %); the ratio range
#: x[1/3, 3] says how little they are worth until calibrated.
DEFAULT_EFFICIENCY: dict[str, dict[str, tuple[float, float, float]]] = {
    "gpu": {
        "fp32": (0.6, 0.8, 50e-6),
        "tf32": (0.5, 0.8, 50e-6),
        "fp16": (0.5, 0.8, 50e-6),
        "bf16": (0.5, 0.8, 50e-6),
        "int8": (0.4, 0.8, 50e-6),
        "fp8": (0.4, 0.8, 50e-6),
    },
    "cpu": {
        "fp32": (0.4, 0.6, 100e-6),
        "fp16": (0.3, 0.6, 100e-6),
        "bf16": (0.3, 0.6, 100e-6),
        "int8": (0.3, 0.6, 100e-6),
        "fp8": (0.3, 0.6, 100e-6),
        "tf32": (0.3, 0.6, 100e-6),
    },
    "tpu": {d: (0.5, 0.8, 100e-6) for d in ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")},
    "asic": {d: (0.4, 0.7, 100e-6) for d in ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")},
    "fpga": {d: (0.3, 0.7, 100e-6) for d in ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")},
}


def default_efficiency(kind: str, dtype: str) -> Efficiency:
    """The prior for ``kind`` and ``dtype`` (see :data:`DEFAULT_EFFICIENCY`)."""
    if kind not in DEFAULT_EFFICIENCY:
        raise ProjectionError(f"unknown device kind {kind!r}; allowed: {', '.join(DEFAULT_EFFICIENCY)}")
    table = DEFAULT_EFFICIENCY[kind]
    if dtype not in table:
        raise ProjectionError(f"unknown dtype {dtype!r}; allowed: {', '.join(table)}")
    c, m, o = table[dtype]
    return Efficiency(
        compute=c, memory=m, overhead_s=o, origin=f"prior table ({kind}, {dtype})", ratio_low=1 / 3, ratio_high=3.0
    )


def workload_class(cost: WorkloadCost) -> str:
    return TASK_CLASS.get(cost.task, "other")


def choose_dtype(profile: HardwareProfile, requested: str) -> str | None:
    """First dtype of :data:`DTYPE_FALLBACK[requested]` with a peak on ``profile``; else None."""
    if requested not in DTYPE_FALLBACK:
        raise ProjectionError(f"unknown dtype {requested!r}; allowed: {', '.join(DTYPE_FALLBACK)}")
    for d in DTYPE_FALLBACK[requested]:
        if profile.peak(d) is not None:
            return d
    return None


# --------------------------------------------------------------------------- roofline core


def _roofs(profile: HardwareProfile, dtype: str, eff: Efficiency, devices: int) -> tuple[float, float]:
    """(FLOP/s, bytes/s) reachable by ``devices`` devices."""
    peak = profile.peak(dtype)
    if eff.effective_tflops is not None:
        flops_s = eff.effective_tflops * 1e12
    elif peak is None:
        raise ProjectionError(f"profile {profile.id!r} has no peak for dtype {dtype!r}")
    else:
        flops_s = peak * 1e12 * min(1.0, eff.compute)  # never above the datasheet peak
    if profile.memory_bw_gbps is None:
        raise ProjectionError(f"profile {profile.id!r} has no memory_bw_gbps")
    return flops_s * devices, profile.memory_bw_gbps * 1e9 * min(1.0, eff.memory) * devices


def usable_memory_bytes(profile: HardwareProfile, devices: int = 1) -> float:
    if profile.memory_gb is None:
        return math.inf
    return profile.memory_gb * 1e9 * USABLE_MEMORY_FRACTION * devices


def max_batch(
    cost: WorkloadCost, profile: HardwareProfile, dtype: str, devices: int = 1, cap: int = MAX_BATCH_CAP
) -> int:
    """Largest batch whose footprint fits ``devices`` devices (0: not even batch 1)."""
    mem = usable_memory_bytes(profile, devices)
    if math.isinf(mem):
        return cap
    return largest_fitting_batch(cost, dtype, mem, cap=cap)


def batch_latency_s(
    cost: WorkloadCost, profile: HardwareProfile, batch: int, dtype: str, eff: Efficiency, devices: int = 1
) -> float:
    """Roofline latency of one forward over ``batch`` samples (prefill for decoders)."""
    f, bw = _roofs(profile, dtype, eff, devices)
    return max(cost.flops(batch) / f, cost.bytes_moved(batch, dtype) / bw) + eff.overhead_s


def bound_of(
    cost: WorkloadCost, profile: HardwareProfile, batch: int, dtype: str, eff: Efficiency, devices: int = 1
) -> str:
    f, bw = _roofs(profile, dtype, eff, devices)
    return "compute" if cost.flops(batch) / f >= cost.bytes_moved(batch, dtype) / bw else "memory"


def decode_step_s(
    cost: WorkloadCost,
    profile: HardwareProfile,
    batch: int,
    dtype: str,
    eff: Efficiency,
    devices: int = 1,
    context_tokens: int | None = None,
) -> float:
    """Roofline time of one decode step for ``batch`` sequences (weights + KV cache read)."""
    f, bw = _roofs(profile, dtype, eff, devices)
    return max(cost.decode_flops(batch) / f, cost.decode_bytes(batch, dtype, context_tokens) / bw) + eff.overhead_s


def service_curve_ns(
    cost: WorkloadCost, profile: HardwareProfile, dtype: str, eff: Efficiency, max_batch_size: int, devices: int = 1
) -> np.ndarray:
    """``t(b)`` in ns for ``b = 1..max_batch_size`` (index ``b - 1``)."""
    return np.array(
        [
            int(round(batch_latency_s(cost, profile, b, dtype, eff, devices) * 1e9))
            for b in range(1, max_batch_size + 1)
        ],
        dtype=np.int64,
    )


# --------------------------------------------------------------------------- metrics


def projected(value: float, unit: str, eff: Efficiency, *, higher_is_better: bool, what: str) -> Metric:
    """A ``projected:roofline`` metric; the range maps the efficiency's ratio range onto it."""
    if higher_is_better:
        lo, hi = value * eff.ratio_low, value * eff.ratio_high
    else:
        lo, hi = value / eff.ratio_high, value / eff.ratio_low
    return Metric(
        value=value, unit=unit, provenance=PROVENANCE, ci_low=lo, ci_high=hi, method=f"{what}; {eff.describe()}"
    )


@dataclass(frozen=True)
class Projection:
    """Projected offline figures of one (workload, profile, dtype, batch)."""

    profile_id: str
    dtype: str
    batch: int
    devices: int
    bound: str
    latency_s: float
    throughput_per_s: float
    efficiency: Efficiency
    metrics: dict[str, Metric] = field(default_factory=dict)


def project_offline(
    cost: WorkloadCost,
    profile: HardwareProfile,
    dtype: str,
    eff: Efficiency,
    batch: int | None = None,
    devices: int = 1,
) -> Projection:
    """Throughput and batch latency at ``batch`` (default: the largest batch that fits, capped
    at :data:`MAX_BATCH_CAP`)."""
    bmax = max_batch(cost, profile, dtype, devices)
    if bmax < 1:
        raise ProjectionError(
            f"{cost.name}: batch 1 needs {cost.memory_bytes(1, dtype) / 1e9:.3g} GB in {dtype}; "
            f"profile {profile.id!r} offers {usable_memory_bytes(profile, devices) / 1e9:.3g} GB "
            f"usable on {devices} device(s)"
        )
    b = bmax if batch is None else int(batch)
    if b > bmax:
        raise ProjectionError(f"batch {b} does not fit profile {profile.id!r} (largest: {bmax})")
    t = batch_latency_s(cost, profile, b, dtype, eff, devices)
    thr = b / t / devices
    bound = bound_of(cost, profile, b, dtype, eff, devices)
    what = f"roofline, batch {b}, {dtype}, {bound}-bound, {devices} device(s)"
    return Projection(
        profile_id=profile.id,
        dtype=dtype,
        batch=b,
        devices=devices,
        bound=bound,
        latency_s=t,
        throughput_per_s=thr,
        efficiency=eff,
        metrics={
            "latency_p50": projected(t * 1e3, "ms", eff, higher_is_better=False, what=what),
            "throughput": projected(thr, "samples/s", eff, higher_is_better=True, what=what + "; per device"),
        },
    )


@dataclass(frozen=True)
class DecoderProjection:
    """Projected token-stream figures: TTFT (prefill of one prompt), TPOT at ``batch``."""

    profile_id: str
    dtype: str
    batch: int
    devices: int
    ttft_s: float
    tpot_s: float
    tokens_per_s: float  # per device
    efficiency: Efficiency
    metrics: dict[str, Metric] = field(default_factory=dict)


def project_decoder(
    cost: WorkloadCost,
    profile: HardwareProfile,
    dtype: str,
    eff: Efficiency,
    *,
    tpot_slo_s: float | None = None,
    batch: int | None = None,
    devices: int | None = None,
    max_devices: int = 8,
) -> DecoderProjection:
    """Best per-device decode throughput over instance widths (1, 2, 4, 8 devices from the
    smallest that holds the weights) and batch sizes that fit and keep TPOT <= ``tpot_slo_s``.

    TTFT is the prefill of one prompt (``cost.flops_per_sample``) plus one decode step:
    continuous batching admits a new request at the next step; queueing for admission is not
    modelled (stated in ``method``).
    """
    if not cost.is_decoder:
        raise ProjectionError(f"{cost.name} is not a decoder")
    widths = [devices] if devices else [d for d in (1, 2, 4, 8, 16) if d <= max_devices]
    best: DecoderProjection | None = None
    for k in widths:
        if k > 1 and (profile.interconnect_gbps is None or k > MAX_GROUP):
            continue  # no tensor-parallel group without an interconnect, none wider than a node
        bmax = max_batch(cost, profile, dtype, k)
        if bmax < 1:
            continue
        cands = [batch] if batch else sorted({1, *[2**i for i in range(int(math.log2(bmax)) + 1)], bmax})
        for b in cands:
            if b > bmax:
                continue
            tpot = decode_step_s(cost, profile, b, dtype, eff, k) + comm_s(cost, profile, b, dtype, k)
            if tpot_slo_s is not None and tpot > tpot_slo_s:
                continue
            tps = b / tpot / k
            if best is None or tps > best.tokens_per_s:
                ttft = batch_latency_s(cost, profile, 1, dtype, eff, k) + tpot
                best = DecoderProjection(profile.id, dtype, b, k, ttft, tpot, tps, eff)
    if best is None:
        need = cost.memory_bytes(1, dtype) / 1e9
        raise ProjectionError(
            f"{cost.name} in {dtype} ({need:.3g} GB at batch 1) does not fit {max_devices} x "
            f"{profile.id!r}"
            + (f" with TPOT <= {tpot_slo_s * 1e3:g} ms" if tpot_slo_s else "")
            + ("" if profile.interconnect_gbps else " (no interconnect_gbps in the profile: one device per instance)")
        )
    link = f" over {profile.interconnect} (all-reduce cost included)" if best.devices > 1 else ""
    what = (
        f"roofline decode, batch {best.batch}, {dtype}, {best.devices} device(s) per instance{link}; "
        "TTFT = prefill + one step, admission queueing not modelled"
    )
    metrics = {
        "ttft_p50": projected(best.ttft_s * 1e3, "ms", eff, higher_is_better=False, what=what),
        "tpot_p50": projected(best.tpot_s * 1e3, "ms", eff, higher_is_better=False, what=what),
        "output_tokens_per_s": projected(
            best.tokens_per_s, "tokens/s", eff, higher_is_better=True, what=what + "; per device"
        ),
    }
    return DecoderProjection(
        best.profile_id, best.dtype, best.batch, best.devices, best.ttft_s, best.tpot_s, best.tokens_per_s, eff, metrics
    )


# --------------------------------------------------------------------------- measured calibration
