"""Device cost model: time of one forward or one decode step from counted work and a profile.

Units: seconds, FLOPs, bytes; peaks from the profile (TFLOPS/TOPS, GB/s, MB).

Forward of ``b`` samples (vision, encoder, decoder prefill)::

    t(b) = flops(b) / (peak * compute_eff) + dram_bytes(b) / (bw * memory_eff)

The two terms add (a layer's GEMMs and its memory traffic overlap only partly on a real
stack), so ``t(b) >= max(compute time at peak, memory time at peak)`` whenever both
efficiencies are at most 1: a projection can never exceed the datasheet peak.
:func:`clamp_eff` enforces the bound on every efficiency this module is given.

``dram_bytes(b) = weights + spill(b) * ACT_TRAFFIC * b * activation_bytes_per_sample``:
activations travel to DRAM only when one layer's live set (:data:`LIVE_SET_SHARE` of the
counted per-sample activation bytes, times the batch) exceeds the on-chip cache/SRAM
(``onchip_mb`` in the profile); ``spill = max(0, 1 - onchip / live_set)``. Profiles without
``onchip_mb`` spill everything (the old behaviour).

Decode step of ``b`` sequences on a tensor-parallel group of ``k`` devices::

    t = decode_flops(b) / (k * peak * ce) + decode_bytes(b) / (k * bw * me) + comm(b, k)
    comm(b, k) = 2 * layers * (latency + 2 (k - 1) / k * b * hidden * bytes(dtype) / link_bw)

(two all-reduces per layer, ring algorithm; ``interconnect_gbps`` and
``interconnect_latency_us`` from the profile). A profile without an interconnect cannot
form a group (``k > 1`` raises :class:`CostModelError`), and groups wider than
:data:`MAX_GROUP` devices (one node) are never formed, so a model that needs more devices
than a node holds is not offered.
"""

from __future__ import annotations

import math

from harness.core.hardware import HardwareProfile
from harness.planning.workload_cost import ACT_TRAFFIC, WorkloadCost, dtype_bytes

#: share of the per-sample activation bytes live at one layer boundary (input + output of
#: the largest layer); ResNet-50 stem: conv1+bn1+relu outputs are 9.6 of 128 MB (7.5 %)
LIVE_SET_SHARE = 0.1
#: widest tensor-parallel group (devices of one node)
MAX_GROUP = 8
#: most sequences one group decodes at once
MAX_SEQUENCES = 2048
#: fraction of device memory usable for weights, activations and KV cache
USABLE_MEMORY_FRACTION = 0.9


class CostModelError(ValueError):
    """The cost model cannot answer (no peak, no bandwidth, no interconnect ...)."""


def clamp_eff(x: float) -> float:
    """An efficiency in (0, 1]: a projection never exceeds the datasheet peak."""
    if not x > 0:
        raise CostModelError(f"efficiency must be > 0, got {x!r}")
    return min(1.0, float(x))


def peak_flops(profile: HardwareProfile, dtype: str) -> float:
    peak = profile.peak(dtype)
    if peak is None or peak <= 0:
        raise CostModelError(f"profile {profile.id!r} has no peak for dtype {dtype!r}")
    return peak * 1e12


def bandwidth(profile: HardwareProfile) -> float:
    if profile.memory_bw_gbps is None:
        raise CostModelError(f"profile {profile.id!r} has no memory_bw_gbps")
    return profile.memory_bw_gbps * 1e9


def elem_bytes(dtype: str) -> float:
    return 0.5 if dtype == "fp4" else float(dtype_bytes(dtype))


def kv_elem_bytes(dtype: str) -> float:
    """KV-cache element size: the weights' dtype, but never below one byte (no FP4 KV caches)."""
    return max(1.0, elem_bytes(dtype))


def spill_fraction(cost: WorkloadCost, profile: HardwareProfile, batch: int, dtype: str) -> float:
    """Share of activation traffic that goes to DRAM at ``batch`` (0 when it stays on chip)."""
    live = LIVE_SET_SHARE * batch * cost.activation_bytes_per_sample_fp32 * elem_bytes(dtype) / 4.0
    if profile.onchip_mb is None or live <= 0:
        return 1.0
    return max(0.0, 1.0 - profile.onchip_mb * 1e6 / live)


def dram_bytes(cost: WorkloadCost, profile: HardwareProfile, batch: int, dtype: str, act_scale: float = 1.0) -> float:
    """Weights once plus the spilled share of activation traffic; ``act_scale`` (a stack's
    calibrated fusion factor, 0..1) scales the counted activation bytes."""
    act = act_scale * batch * ACT_TRAFFIC * cost.activation_bytes_per_sample_fp32 * elem_bytes(dtype) / 4.0
    weights = cost.params * elem_bytes(dtype)
    return weights + spill_fraction(cost, profile, batch, dtype) * act


def forward_s(
    cost: WorkloadCost,
    profile: HardwareProfile,
    batch: int,
    dtype: str,
    compute_eff: float,
    memory_eff: float,
    act_scale: float = 1.0,
) -> float:
    """Device time of one forward over ``batch`` samples (no dispatch term)."""
    f = cost.flops(batch) / (peak_flops(profile, dtype) * clamp_eff(compute_eff))
    m = dram_bytes(cost, profile, batch, dtype, act_scale) / (bandwidth(profile) * clamp_eff(memory_eff))
    return f + m


def _layers_hidden(cost: WorkloadCost) -> tuple[int, int]:
    cfg = cost.extra.get("config", {}) if cost.extra else {}
    layers = int(cfg.get("layers") or cfg.get("n_layer") or 0)
    hidden = int(cfg.get("hidden") or cfg.get("n_embd") or cfg.get("d_model") or 0)
    if layers and hidden:
        return layers, hidden
    # dense transformer estimate: params ~ 12 * layers * hidden^2 with 32 layers
    layers = layers or 32
    return layers, max(1, int(math.sqrt(cost.params / (12 * layers))))


def comm_s(cost: WorkloadCost, profile: HardwareProfile, batch: int, dtype: str, devices: int) -> float:
    """Tensor-parallel all-reduce time of one decode step (0 for one device)."""
    if devices <= 1:
        return 0.0
    if devices > MAX_GROUP:
        raise CostModelError(f"groups wider than {MAX_GROUP} devices are not formed (asked {devices})")
    if profile.interconnect_gbps is None:
        raise CostModelError(f"profile {profile.id!r} has no interconnect_gbps: no tensor-parallel group")
    layers, hidden = _layers_hidden(cost)
    lat = (profile.interconnect_latency_us or 10.0) * 1e-6
    vol = 2.0 * (devices - 1) / devices * batch * hidden * elem_bytes(dtype)
    return 2 * layers * (lat + vol / (profile.interconnect_gbps * 1e9))


def decode_step_s(
    cost: WorkloadCost,
    profile: HardwareProfile,
    batch: int,
    dtype: str,
    compute_eff: float,
    memory_eff: float,
    devices: int = 1,
    context_tokens: int | None = None,
) -> float:
    """Time of one decode step of ``batch`` sequences on a group of ``devices`` devices."""
    f = cost.decode_flops(batch) / (devices * peak_flops(profile, dtype) * clamp_eff(compute_eff))
    kv = cost.kv_bytes_per_token_fp32 or 0.0
    ctx = context_tokens if context_tokens is not None else (cost.context_tokens or 0) + (cost.output_tokens or 0)
    by = cost.params * elem_bytes(dtype) + batch * ctx * kv * kv_elem_bytes(dtype) / 4.0
    m = by / (devices * bandwidth(profile) * clamp_eff(memory_eff))
    return f + m + comm_s(cost, profile, batch, dtype, devices)


def kv_capacity(
    cost: WorkloadCost, profile: HardwareProfile, dtype: str, devices: int = 1, context_tokens: int | None = None
) -> int:
    """Sequences whose KV cache (``context_tokens`` each) fits next to the weights on ``devices``
    devices, at most :data:`MAX_SEQUENCES` (0: none)."""
    if profile.memory_gb is None:
        return MAX_SEQUENCES
    free = profile.memory_gb * 1e9 * USABLE_MEMORY_FRACTION * devices - cost.params * elem_bytes(dtype)
    ctx = context_tokens if context_tokens is not None else (cost.context_tokens or 0) + (cost.output_tokens or 0)
    per = ctx * (cost.kv_bytes_per_token_fp32 or 0.0) * kv_elem_bytes(dtype) / 4.0
    if free <= 0:
        return 0
    return MAX_SEQUENCES if per <= 0 else int(min(MAX_SEQUENCES, free // per))


def decoder_tokens_per_s(
    cost: WorkloadCost,
    profile: HardwareProfile,
    dtype: str,
    compute_eff: float,
    memory_eff: float,
    *,
    tpot_max_s: float | None = None,
    prefill_tokens: int | None = None,
) -> tuple[float, int, int]:
    """Best output tokens/s per device over group widths 1, 2, 4, 8 and batches that fit the
    KV cache (and keep TPOT <= ``tpot_max_s``): ``(tokens_per_s, devices, batch)``.

    Each output token also pays its share of the prompt's prefill: ``prefill_tokens /
    output_tokens`` tokens at ``2 * params`` FLOPs (continuous batching: prefill and decode share
    the device). Raises :class:`CostModelError` when no group of at most :data:`MAX_GROUP` holds
    the model."""
    prompt = prefill_tokens if prefill_tokens is not None else (cost.context_tokens or 0)
    out_tok = max(1, cost.output_tokens or 1)
    ctx = prompt + out_tok
    best: tuple[float, int, int] | None = None
    for k in (1, 2, 4, 8):
        cap = kv_capacity(cost, profile, dtype, k, ctx)
        if cap < 1:
            continue
        if k > 1 and profile.interconnect_gbps is None:
            break
        b = cap
        while b >= 1:
            step = decode_step_s(cost, profile, b, dtype, compute_eff, memory_eff, k, ctx)
            if tpot_max_s is None or step <= tpot_max_s:
                break
            b //= 2
        if b < 1:
            continue
        pre = b * prompt / out_tok * 2.0 * cost.params / (k * peak_flops(profile, dtype) * clamp_eff(compute_eff))
        tps = b / (step + pre) / k
        if best is None or tps > best[0]:
            best = (tps, k, b)
    if best is None:
        raise CostModelError(
            f"{cost.name} in {dtype} does not fit {MAX_GROUP} x {profile.id!r}"
            + (" (no interconnect for a group)" if profile.interconnect_gbps is None else "")
        )
    return best
