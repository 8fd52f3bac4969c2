"""The recommender's evidence about a model: its cost (FLOPs, bytes, memory), whether it is an
MLPerf benchmark, and the cells measured for it in a results store.

Measured evidence ranks first: an offline batch sweep of the model on a profile gives a
measured service curve (per-batch p50 latency in ns) and the measured p99 batch latency (ms)
and throughput (samples/s) per batch size.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from harness.core.hardware import HardwareProfile, load_profiles
from harness.core.host_match import recorded_profile_id
from harness.core.records import CellRecord
from harness.planning.request import ModelSpec
from harness.planning.simulate import ServiceCurve
from harness.planning.workload_cost import WorkloadCost, cost_from_info, mlperf_cost, workload_cost
from harness.store.results import list_runs

#: (zoo name, size) -> MLPerf Inference benchmark whose reference results apply
MLPERF_MODELS = {
    ("resnet50", "standard"): "resnet50",
    ("bert-99", "mlperf"): "bert-99",
    ("llama2-70b", "mlperf"): "llama2-70b",
}


def cost_of(model: ModelSpec) -> WorkloadCost:
    """The workload cost of ``model``: from user-supplied counts, an MLPerf benchmark or the zoo."""
    if model.counts is not None:
        return cost_from_info(model.counts, output_tokens=model.output_tokens, source="user-supplied counts")
    if model.size == "mlperf" or model.name in ("bert-99", "llama2-70b"):
        c = mlperf_cost(model.name)
    else:
        c = workload_cost(model.name, model.size, model.params or None, output_tokens=model.output_tokens)
    if model.output_tokens is not None and c.is_decoder:
        c = replace(c, output_tokens=model.output_tokens)
    return c


def mlperf_name(model: ModelSpec) -> str | None:
    """The MLPerf benchmark ``model`` is (None for user counts, zoo overrides or other models)."""
    if model.counts is not None or model.params:
        return None
    if model.name in ("bert-99", "llama2-70b"):
        return model.name
    return MLPERF_MODELS.get((model.name, model.size))


def measured_cells(
    results_root: Path | None, model: ModelSpec
) -> tuple[dict[str, list[CellRecord]], dict[str, HardwareProfile]]:
    """Successful cells per profile id for this model (zoo name and size, no params), and the
    hardware profiles the runs recorded (a host's generated ``local-*`` profile lives only there)."""
    if results_root is None or model.counts is not None:
        return {}, {}
    runs, _ = list_runs(Path(results_root))
    shipped = load_profiles()
    out: dict[str, list[CellRecord]] = {}
    run_profiles: dict[str, HardwareProfile] = {}
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
                # a GPU cell of an older record may name the host CPU: count it as its GPU's
                pid = recorded_profile_id(run.environment, c.spec.device, c.profile_id, shipped) or c.profile_id
                out.setdefault(pid, []).append(c)
    return out, {k: v for k, v in run_profiles.items() if k in out}


class MeasuredCurve(NamedTuple):
    """What an offline batch sweep measured on one profile."""

    #: service time per batch size (p50 batch latency, ns), for the simulator
    curve: ServiceCurve
    #: best measured throughput (samples/s) and the batch size it was measured at
    best_throughput: float
    best_batch: int
    #: per batch size: (p99 batch latency ms, throughput samples/s), the offline SLO check
    p99_by_batch: dict[int, tuple[float, float]]


def measured_curve(cells: list[CellRecord], max_batch: int) -> MeasuredCurve | None:
    """The :class:`MeasuredCurve` of the offline cells among ``cells`` (None without any); the
    curve extends to ``max_batch`` (or the largest batch measured)."""
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
    return MeasuredCurve(curve, best[0], best[1], p99s)


def row_evidence(
    provenance: str, capacity_method: str, measured: list[CellRecord], assumptions: str, workload_source: str
) -> str:
    """What a recommendation row rests on: the runs' cell ids, the MLPerf row(s) with their links
    (``capacity_method`` of a reference row), or the projection's assumptions."""
    if provenance in ("measured", "mixed") and measured:
        ids = sorted({c.cell_id for c in measured})
        return f"runs: {len(ids)} measured cell(s): " + ", ".join(ids[:6]) + (" ..." if len(ids) > 6 else "")
    if provenance == "reference":
        return capacity_method
    return f"projection assumptions: {assumptions}; workload counts: {workload_source}"
