"""Attach energy and cost metrics to a cell, keeping each number's provenance.

Energy comes from the meter readings of the measurement window (``measured:*`` counters or
``estimated:tdp-model``); cost from the hardware profile's dated price. The formulas live in
:mod:`harness.core.economics`; this module only maps a cell's measured rates onto them.

A cell on an accelerator (its :class:`~harness.core.host_match.CostBasis` has a ``host_cpu``) is
priced with the accelerator's profile (:func:`harness.core.economics.basis_price`), and its power
is the accelerator's counter plus ``host_share`` (1 / accelerators on the host) of any host CPU
energy reading in the window (RAPL, metered only where readable); the labels of both parts
combine by :func:`harness.core.metrics.combine_provenance`.
"""

from __future__ import annotations

from harness.core.economics import cell_economics
from harness.core.hardware import HardwareProfile
from harness.core.host_match import CostBasis
from harness.core.metrics import Metric, Reading
from harness.measure.meters.select import energy_summary


def attach_energy_and_cost(
    metrics: dict[str, Metric],
    readings: list[Reading],
    profile: HardwareProfile | None,
    basis: CostBasis | None = None,
) -> dict[str, Metric]:
    """Energy, power, J/inference, $/1M and memory metrics for one cell.

    Power is the meters' mean over the measurement window; J/inference divides it by the
    scenario's throughput over the same measurement (for open-loop scenarios the meter window
    also spans the issuer's start-up and the drain of the last queries, a few ms). ``basis``
    (the cell's device, its profile and host share) prices the cell; without it ``profile`` does."""

    out: dict[str, Metric] = {}
    es = energy_summary(_host_share_of(readings, basis))
    power_w, prov = es["power_w"], es["provenance"]
    note = "; ".join(es["notes"])
    if power_w is not None and es["valid"]:
        out["power_w"] = Metric(value=power_w, unit="W", provenance=prov, method=note)
        out["energy_j"] = Metric(value=es["energy_j"], unit="J", provenance=prov, method=note)
    elif power_w is not None:
        out["power_w"] = Metric(value=None, unit="W", provenance=prov, method=f"invalid reading: {note}")
    for r in readings:
        if r.quantity == "memory_peak":
            out["peak_rss_bytes"] = Metric(value=r.value, unit="B", provenance=r.provenance, method=r.scope)
        elif r.quantity == "device_memory_peak":
            # two different quantities, never added: the allocator's peak (this process's tensors)
            # and NVML's device-wide "used" (every process, the framework's reserve included)
            name = "device_memory_used_bytes" if "nvml" in r.provenance else "device_memory_allocator_peak_bytes"
            prev = out.get(name)
            total = r.value + (prev.value or 0.0 if prev else 0.0)  # several devices of one cell: summed
            out[name] = Metric(value=total, unit="B", provenance=r.provenance, method=r.note)
    # the headline figure: the allocator's peak where known (what the model needed), else NVML's
    headline = out.get("device_memory_allocator_peak_bytes") or out.get("device_memory_used_bytes")
    if headline is not None:
        out["device_memory_bytes"] = headline
    thr = metrics["throughput"].value if "throughput" in metrics else None
    tok = metrics["output_tokens_per_s"].value if "output_tokens_per_s" in metrics else None
    if (profile is None and basis is None) or (thr is None and tok is None):
        return out

    econ = cell_economics(
        throughput_per_s=thr if thr is not None else 0.0,  # no samples/s: 0 and None both mean "none measured"
        power_w=out["power_w"].value if "power_w" in out else None,
        power_provenance=prov,
        profile=profile,
        tokens_per_s=tok,
        basis=basis,
    )
    for name, m in econ.items():
        if name not in out:  # power_w (with its validity note) is set above, once
            out[name] = m
    return out


def _host_share_of(readings: list[Reading], basis: CostBasis | None) -> list[Reading]:
    """``readings`` with each host (non-``gpu:*``) energy reading of an accelerator cell scaled by
    the cell's host share, its note saying so; unchanged for a CPU cell or without a basis."""
    if basis is None or basis.host_cpu is None:
        return readings
    share = basis.host_share
    out = []
    for r in readings:
        if r.quantity == "energy" and not r.scope.startswith("gpu"):
            note = f"host CPU share {share:.3g} of {r.value:.6g} J ({basis.share_rule})"
            r = r.model_copy(update={"value": r.value * share, "note": f"{r.note}; {note}" if r.note else note})
        out.append(r)
    return out
