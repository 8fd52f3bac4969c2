"""Calibration: fitting the roofline's efficiencies to results that were really measured.

Three sources, in order of preference for a device (:func:`efficiency_for`):

1. runs measured on that very profile (:func:`calibrate_from_cells`);
2. published MLPerf Offline results per (device kind, workload class), fitted on the
   calibration rounds (:func:`mlperf_calibration`), with a Server/Offline factor;
3. the prior table of :mod:`harness.planning.projection`.

:func:`validate_projection` scores the MLPerf calibration on later rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from harness.core.hardware import HardwareProfile, load_profiles
from harness.core.records import CellRecord
from harness.planning.projection import (
    Efficiency,
    ProjectionError,
    batch_latency_s,
    choose_dtype,
    default_efficiency,
    project_decoder,
    project_offline,
    workload_class,
)
from harness.planning.ranges import ratio_range
from harness.planning.reference import (
    BENCHMARK_CLASS,
    BENCHMARK_DTYPE,
    CALIBRATION_ROUNDS,
    VALIDATION_ROUNDS,
    load_mlperf,
)
from harness.planning.workload_cost import WorkloadCost, mlperf_cost


def _predict(fam: str, profile: HardwareProfile, eff: Efficiency) -> tuple[float, str]:
    """Projected per-device Offline throughput (samples/s, or tokens/s for llama)."""
    cost = mlperf_cost(fam)
    dtype = choose_dtype(profile, BENCHMARK_DTYPE[fam]) or choose_dtype(profile, "bf16")
    if dtype is None:
        raise ValueError(f"profile {profile.id} has no usable peak")
    if cost.is_decoder:
        return project_decoder(cost, profile, dtype, eff).tokens_per_s, dtype
    return project_offline(cost, profile, dtype, eff).throughput_per_s, dtype


def _prior(profile: HardwareProfile, fam: str) -> Efficiency:
    dtype = choose_dtype(profile, BENCHMARK_DTYPE[fam]) or "bf16"
    return default_efficiency(profile.kind, dtype)


@dataclass(frozen=True)
class CalibrationPoint:
    """One MLPerf result against its projection: per-device throughput (samples/s or tokens/s)."""

    round: str
    profile_id: str
    benchmark: str
    scenario: str
    measured: float
    predicted: float
    source: str

    @property
    def ratio(self) -> float:
        return self.measured / self.predicted


def _points(
    rounds: tuple[str, ...],
    calibration: dict[tuple[str, str], Efficiency] | None,
    profiles: dict[str, HardwareProfile],
    server_factors: dict[tuple[str, str], float] | None = None,
) -> list[CalibrationPoint]:
    df = load_mlperf()
    sel = df[df["round"].isin(rounds) & df["profile_id"].notna() & ~df["excluded"] & df["family"].notna()]
    cache: dict[tuple[str, str, str], float] = {}
    out: list[CalibrationPoint] = []
    for _, row in sel.iterrows():
        p = profiles.get(row["profile_id"])
        if p is None:
            continue
        fam = row["family"]
        key = (p.id, fam, "x")
        if key not in cache:
            prior = _prior(p, fam)
            eff = prior
            if calibration is not None:
                cal = calibration.get((p.kind, BENCHMARK_CLASS[fam]))
                if cal is None:
                    cache[key] = math.nan
                    continue
                eff = cal.model_copy(update={"overhead_s": prior.overhead_s})
            try:
                cache[key] = _predict(fam, p, eff)[0]
            except (ProjectionError, ValueError):
                cache[key] = math.nan
        pred = cache[key]
        if not (pred > 0):
            continue
        scen = str(row["scenario"])
        factor = 1.0
        if calibration is not None and scen == "Server":
            factor = (server_factors or {}).get((p.kind, BENCHMARK_CLASS[fam]), math.nan)
            if not math.isfinite(factor):
                continue
        out.append(
            CalibrationPoint(
                row["round"], p.id, fam, scen, float(row["per_accelerator"]), pred * factor, str(row["source"])
            )
        )
    return out


@lru_cache(maxsize=4)
def _calibrate(rounds: tuple[str, ...]) -> tuple[dict[tuple[str, str], Efficiency], dict[tuple[str, str], float]]:
    profiles = load_profiles()
    pts = _points(rounds, None, profiles)
    out: dict[tuple[str, str], Efficiency] = {}
    groups: dict[tuple[str, str], list[CalibrationPoint]] = {}
    for pt in pts:
        groups.setdefault((profiles[pt.profile_id].kind, BENCHMARK_CLASS[pt.benchmark]), []).append(pt)
    for (kind, cls), g in groups.items():
        off = [pt for pt in g if pt.scenario == "Offline"]
        if not off:
            continue
        gm = float(np.exp(np.mean([math.log(pt.ratio) for pt in off])))
        prior = _prior(profiles[off[0].profile_id], off[0].benchmark)
        out[(kind, cls)] = prior.model_copy(
            update={
                # efficiencies stay at most 1: a projection never exceeds the datasheet peak
                "compute": min(1.0, prior.compute * gm),
                "memory": min(1.0, prior.memory * gm),
                "origin": (
                    f"MLPerf Offline v{'/v'.join(rounds)} calibration, {kind} x {cls} "
                    f"({len(off)} results, {len({pt.profile_id for pt in off})} device(s))"
                ),
            }
        )
    # re-predict with the calibrated efficiency: ratio spread and Server factor
    factors = {k: 1.0 for k in out}
    again = _points(rounds, out, profiles, factors)
    for key, eff in list(out.items()):
        kind, cls = key
        g = [pt for pt in again if profiles[pt.profile_id].kind == kind and BENCHMARK_CLASS[pt.benchmark] == cls]
        off_ratios = [pt.ratio for pt in g if pt.scenario == "Offline"]
        srv = [pt.ratio for pt in g if pt.scenario == "Server"]
        sf = float(np.exp(np.mean(np.log(srv)))) if srv else 1.0
        factors[key] = sf
        rr = ratio_range(off_ratios, "calibration")  # quantiles, widened for small n, never zero width
        out[key] = eff.model_copy(update={"ratio_low": rr.low, "ratio_high": rr.high})
    return out, factors


def mlperf_calibration(rounds: tuple[str, ...] = CALIBRATION_ROUNDS) -> dict[tuple[str, str], Efficiency]:
    """Efficiency per (device kind, workload class) fitted on MLPerf Offline results of
    ``rounds``: compute and memory efficiency = prior x geometric mean of measured / predicted
    (both roofs scale; capped at 1, never above peak); the ratio range is
    :func:`harness.planning.ranges.ratio_range` of measured / re-predicted over those results."""
    return _calibrate(tuple(rounds))[0]


def server_factor(kind: str, cls: str, rounds: tuple[str, ...] = CALIBRATION_ROUNDS) -> float | None:
    """Server/Offline per-device throughput factor for (kind, class): geometric mean of
    Server result / calibrated Offline prediction over the calibration rounds."""
    return _calibrate(tuple(rounds))[1].get((kind, cls))


def validate_projection(
    calibration_rounds: tuple[str, ...] = CALIBRATION_ROUNDS, validation_rounds: tuple[str, ...] = VALIDATION_ROUNDS
) -> pd.DataFrame:
    """One row per validation result: round, profile, benchmark, scenario, measured,
    predicted, ratio (measured / predicted), abs_ratio_error (max(r, 1/r)), source."""
    cal, factors = _calibrate(tuple(calibration_rounds))
    pts = _points(tuple(validation_rounds), cal, load_profiles(), factors)
    rows = [
        {
            "round": p.round,
            "profile_id": p.profile_id,
            "benchmark": p.benchmark,
            "scenario": p.scenario,
            "measured": p.measured,
            "predicted": p.predicted,
            "ratio": p.ratio,
            "abs_ratio_error": max(p.ratio, 1 / p.ratio),
            "source": p.source,
        }
        for p in pts
    ]
    return pd.DataFrame(rows)


def efficiency_for(
    profile: HardwareProfile,
    cost: WorkloadCost,
    dtype: str,
    calibration: dict[tuple[str, str], Efficiency] | None = None,
    measured: dict[str, Efficiency] | None = None,
) -> Efficiency:
    """Pick the efficiency for ``profile``: measured calibration of that profile id, else the
    MLPerf calibration for (kind, workload class), else the prior."""
    if measured and profile.id in measured:
        return measured[profile.id]
    if calibration is None:
        calibration = mlperf_calibration()
    cal = calibration.get((profile.kind, workload_class(cost)))
    if cal is not None:
        prior = default_efficiency(profile.kind, dtype)
        return cal.model_copy(update={"overhead_s": prior.overhead_s})
    return default_efficiency(profile.kind, dtype)


def calibrate_from_cells(
    cells: list[CellRecord], profile: HardwareProfile, cost: WorkloadCost, dtype: str = "fp32"
) -> Efficiency | None:
    """Effective efficiency of ``profile`` from measured offline cells (``CellRecord``s whose
    ``profile_id`` is ``profile.id`` and whose model is ``cost``'s).

    Per cell: achieved FLOP/s = throughput * flops_per_sample. With a datasheet peak the
    compute efficiency is achieved / peak (best batch); without one (a ``local`` profile) the
    best achieved rate becomes the compute roof (``effective_tflops``). The ratio range is the
    spread of measured / re-predicted throughput over the cells. None when no cell qualifies.
    """
    pts: list[tuple[int, float, float]] = []  # (batch, throughput, latency_s)
    for c in cells:
        if getattr(c, "status", "ok") != "ok" or c.profile_id != profile.id:
            continue
        if c.spec.scenario != "offline":
            continue
        thr = c.metric("throughput")
        lat = c.metric("latency_p50")
        if not thr or not lat:
            continue
        pts.append((c.spec.batch_size, float(thr), float(lat) / 1e3))
    if not pts:
        return None
    achieved = max(thr * cost.flops_per_sample for _, thr, _ in pts)
    prior = default_efficiency(profile.kind, dtype)
    # overhead: the batch-1 latency beyond its compute time, floored at 0
    b1 = [lat for b, _, lat in pts if b == min(p[0] for p in pts)]
    peak = profile.peak(dtype)
    if peak is not None:
        eff = prior.model_copy(update={"compute": min(1.0, achieved / (peak * 1e12)), "effective_tflops": None})
    else:
        eff = prior.model_copy(update={"effective_tflops": achieved / 1e12})
    compute_t = cost.flops(min(p[0] for p in pts)) / (achieved)
    overhead = max(0.0, min(b1) - compute_t)
    eff = eff.model_copy(update={"overhead_s": overhead})
    ratios = []
    for b, thr, _ in pts:
        try:
            pred = b / batch_latency_s(cost, profile, b, dtype, eff)
        except ProjectionError:
            continue
        ratios.append(thr / pred)
    lo = min(ratios) if ratios else 1.0
    hi = max(ratios) if ratios else 1.0
    return eff.model_copy(
        update={
            "origin": f"measured offline cells on {profile.id} ({len(pts)} batch sizes, {cost.name})",
            "ratio_low": min(lo, 1.0) * 0.9,
            "ratio_high": max(hi, 1.0) * 1.1,
        }
    )
