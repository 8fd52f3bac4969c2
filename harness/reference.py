"""MLPerf Inference reference results: a third provenance, ``reference:mlperf-v<round>``.

The shipped table (``harness/reference_data/mlperf_inference_results.csv``, 822 rows; see
``harness/reference_data/README.md`` for columns and provenance) holds published datacenter,
closed-division results for ResNet-50, BERT-99 and Llama-2-70B in the Offline and Server
scenarios, normalised per accelerator (per CPU socket for CPU-only systems). Every number taken
from it keeps its row's ``source`` link in :attr:`Metric.method`.

Accelerators map to our hardware profiles through :data:`ACCELERATOR_TO_PROFILE` (an explicit
table; only rows with ``in_device_list == yes`` map). :func:`mlperf_calibration` fits the
projection's efficiency per device kind and workload class on the older rounds
(:data:`CALIBRATION_ROUNDS`); :func:`validate_projection` compares the calibrated projection
with the newer rounds (:data:`VALIDATION_ROUNDS`).

MLPerf submissions use their vendors' tuned stacks (TensorRT, INT8/FP8): the figures are
ceilings for a device, not what an untuned PyTorch run reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import Metric

CSV_FILE = "mlperf_inference_results.csv"
COLUMNS: tuple[str, ...] = (
    "mlperf_version", "submitter", "system", "accelerator", "n_accelerators", "benchmark",
    "scenario", "result", "per_accelerator", "source", "units", "platform", "accelerator_raw",
    "nodes", "host_cpu", "in_device_list", "data_via", "notes",
)
CALIBRATION_ROUNDS: tuple[str, ...] = ("3.1", "4.0")
VALIDATION_ROUNDS: tuple[str, ...] = ("4.1", "5.0", "5.1")

#: ``accelerator`` column -> hardware profile id (explicit; unknown names do not map)
ACCELERATOR_TO_PROFILE: dict[str, str] = {
    "NVIDIA A100 80GB SXM": "nvidia-a100-80gb-sxm",
    "NVIDIA H100 PCIe": "nvidia-h100-pcie",
    "NVIDIA H100 SXM": "nvidia-h100-sxm",
    "NVIDIA H200 SXM": "nvidia-h200-sxm",
    "NVIDIA B200": "nvidia-b200",
    "NVIDIA L4": "nvidia-l4",
    "NVIDIA L40S": "nvidia-l40s",
    "NVIDIA T4": "nvidia-t4",
    "AMD Instinct MI300X": "amd-mi300x",
    "AMD Instinct MI325X": "amd-mi325x",
    "Intel Gaudi 2": "intel-gaudi2",
    "Intel Xeon Platinum 8480+ (SPR)": "intel-xeon-8480p",
    "Intel Xeon 6980P (GNR)": "intel-xeon-6980p",
}

#: benchmark column -> cost-model benchmark (accuracy variants share one model)
BENCHMARK_FAMILY: dict[str, str] = {
    "resnet50": "resnet50", "bert-99": "bert-99", "bert-99.9": "bert-99",
    "llama2-70b-99": "llama2-70b", "llama2-70b-99.9": "llama2-70b",
}
#: the precision MLPerf submissions run each benchmark in (requested; falls back per profile)
BENCHMARK_DTYPE: dict[str, str] = {"resnet50": "int8", "bert-99": "int8", "llama2-70b": "fp8"}
#: workload class of each benchmark (calibration key next to device kind)
BENCHMARK_CLASS: dict[str, str] = {"resnet50": "vision", "bert-99": "encoder", "llama2-70b": "decoder"}
#: MLPerf Server latency bounds (datacenter rules): p99 ms for resnet50/bert, TTFT/TPOT p99 ms
#: for llama2-70b. Source: MLPerf Inference rules, "Latency constraints" table,
#: https://github.com/mlcommons/inference_policies/blob/master/inference_rules.adoc
SERVER_BOUNDS_MS: dict[str, dict[str, float]] = {
    "resnet50": {"p99": 15.0},
    "bert-99": {"p99": 130.0},
    "llama2-70b": {"ttft_p99": 2000.0, "tpot_p99": 200.0},
}
#: rows left out of calibration and validation (different power envelope than the profile)
EXCLUDE_NOTE_PATTERNS: tuple[str, ...] = ("MaxQ", "H200-CTS")


class ReferenceError(ValueError):
    """The reference table is missing or malformed; the message names the file and column."""


@lru_cache(maxsize=1)
def load_mlperf() -> pd.DataFrame:
    """The shipped MLPerf table with added columns: ``round`` (e.g. ``"4.1"``), ``family``,
    ``profile_id`` (None where unmapped), ``provenance`` (``reference:mlperf-v<round>``) and
    ``excluded`` (MaxQ / non-standard thermal rows)."""
    ref = resources.files("harness").joinpath("reference_data", CSV_FILE)
    with resources.as_file(ref) as path:
        try:
            df = pd.read_csv(path, dtype={"mlperf_version": str})
        except FileNotFoundError as exc:
            raise ReferenceError(f"{path}: MLPerf reference table not found") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ReferenceError(f"{ref}: missing column(s) {missing}; expected {list(COLUMNS)}")
    df["round"] = df["mlperf_version"].astype(str)
    df["family"] = df["benchmark"].map(BENCHMARK_FAMILY)
    mapped = df["accelerator"].map(ACCELERATOR_TO_PROFILE)
    df["profile_id"] = mapped.where((df["in_device_list"] == "yes") & mapped.notna(), None)
    df["provenance"] = "reference:mlperf-v" + df["round"]
    notes = df["notes"].fillna("")
    df["excluded"] = notes.apply(lambda s: any(p in s for p in EXCLUDE_NOTE_PATTERNS))
    return df


def row_metric(row: Any) -> Metric:
    """One row's per-accelerator result as a ``reference`` metric with its source link."""
    unit = {"Samples/s": "samples/s", "Queries/s": "queries/s", "Tokens/s": "tokens/s"}.get(
        row["units"], str(row["units"]))
    return Metric(
        value=float(row["per_accelerator"]), unit=unit, provenance=str(row["provenance"]),
        method=(f"MLPerf Inference v{row['round']} {row['benchmark']} {row['scenario']}, "
                f"{row['submitter']} '{row['system']}', {row['n_accelerators']} accelerator(s), "
                f"per accelerator; source: {row['source']}"),
    )


def reference_for(profile_id: str, benchmark: str, scenario: str) -> Metric | None:
    """The median per-accelerator result (lower median: an actual row, with its link) of the
    latest round that has ``profile_id`` x ``benchmark`` family x ``scenario``; None if none."""
    df = load_mlperf()
    fam = BENCHMARK_FAMILY.get(benchmark, benchmark)
    sel = df[(df["profile_id"] == profile_id) & (df["family"] == fam)
             & (df["scenario"].str.lower() == scenario.lower()) & ~df["excluded"]]
    if sel.empty:
        return None
    latest = max(sel["round"], key=lambda r: tuple(int(x) for x in r.split(".")))
    rows = sel[sel["round"] == latest].sort_values("per_accelerator")
    row = rows.iloc[(len(rows) - 1) // 2]
    m = row_metric(row)
    return m.model_copy(update={
        "ci_low": float(rows["per_accelerator"].min()), "ci_high": float(rows["per_accelerator"].max()),
        "method": m.method + f" (median of {len(rows)} result(s) in v{latest}; range = min..max)",
    })


# --------------------------------------------------------------------------- calibration

def _predict(fam: str, profile: Any, eff: Any) -> tuple[float, str]:
    """Projected per-device Offline throughput (samples/s, or tokens/s for llama)."""
    from harness.costmodel import mlperf_cost
    from harness.projection import choose_dtype, project_decoder, project_offline

    cost = mlperf_cost(fam)
    dtype = choose_dtype(profile, BENCHMARK_DTYPE[fam]) or choose_dtype(profile, "bf16")
    if dtype is None:
        raise ValueError(f"profile {profile.id} has no usable peak")
    if cost.is_decoder:
        return project_decoder(cost, profile, dtype, eff).tokens_per_s, dtype
    return project_offline(cost, profile, dtype, eff).throughput_per_s, dtype


def _prior(profile: Any, fam: str) -> Any:
    from harness.projection import choose_dtype, default_efficiency

    dtype = choose_dtype(profile, BENCHMARK_DTYPE[fam]) or "bf16"
    return default_efficiency(profile.kind, dtype)


@dataclass(frozen=True)
class CalibrationPoint:
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


def _points(rounds: tuple[str, ...], calibration: dict[tuple[str, str], Any] | None,
            profiles: dict[str, Any],
            server_factors: dict[tuple[str, str], float] | None = None) -> list[CalibrationPoint]:
    from harness.projection import ProjectionError

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
        out.append(CalibrationPoint(row["round"], p.id, fam, scen, float(row["per_accelerator"]),
                                    pred * factor, str(row["source"])))
    return out


@lru_cache(maxsize=4)
def _calibrate(rounds: tuple[str, ...]) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], float]]:
    from harness.hardware import load_profiles

    profiles = load_profiles()
    pts = _points(rounds, None, profiles)
    out: dict[tuple[str, str], Any] = {}
    groups: dict[tuple[str, str], list[CalibrationPoint]] = {}
    for pt in pts:
        groups.setdefault((profiles[pt.profile_id].kind, BENCHMARK_CLASS[pt.benchmark]), []).append(pt)
    for (kind, cls), g in groups.items():
        off = [pt for pt in g if pt.scenario == "Offline"]
        if not off:
            continue
        gm = float(np.exp(np.mean([math.log(pt.ratio) for pt in off])))
        prior = _prior(profiles[off[0].profile_id], off[0].benchmark)
        out[(kind, cls)] = prior.model_copy(update={
            "compute": prior.compute * gm,
            "memory": prior.memory * gm,
            "origin": (f"MLPerf Offline v{'/v'.join(rounds)} calibration, {kind} x {cls} "
                       f"({len(off)} results, {len({pt.profile_id for pt in off})} device(s))"),
        })
    # re-predict with the calibrated efficiency: ratio spread and Server factor
    factors = {k: 1.0 for k in out}
    again = _points(rounds, out, profiles, factors)
    for key, eff in list(out.items()):
        kind, cls = key
        g = [pt for pt in again if profiles[pt.profile_id].kind == kind and BENCHMARK_CLASS[pt.benchmark] == cls]
        off = [pt.ratio for pt in g if pt.scenario == "Offline"]
        srv = [pt.ratio for pt in g if pt.scenario == "Server"]
        sf = float(np.exp(np.mean(np.log(srv)))) if srv else 1.0
        factors[key] = sf
        lo, hi = (min(off), max(off)) if off else (1 / 3, 3.0)
        out[key] = eff.model_copy(update={"ratio_low": min(lo, 1.0), "ratio_high": max(hi, 1.0)})
    return out, factors


def mlperf_calibration(rounds: tuple[str, ...] = CALIBRATION_ROUNDS) -> dict[tuple[str, str], Any]:
    """Efficiency per (device kind, workload class) fitted on MLPerf Offline results of
    ``rounds``: compute and memory efficiency = prior x geometric mean of measured / predicted
    (both roofs scale, so an effective efficiency above 1 means the stack moves fewer bytes or
    FLOPs than counted, e.g. fused layers keep activations on chip); the ratio
    range is the min..max of measured / re-predicted over those results (widened to include 1)."""
    return _calibrate(tuple(rounds))[0]


def server_factor(kind: str, cls: str, rounds: tuple[str, ...] = CALIBRATION_ROUNDS) -> float | None:
    """Server/Offline per-device throughput factor for (kind, class): geometric mean of
    Server result / calibrated Offline prediction over the calibration rounds."""
    return _calibrate(tuple(rounds))[1].get((kind, cls))


def validate_projection(calibration_rounds: tuple[str, ...] = CALIBRATION_ROUNDS,
                        validation_rounds: tuple[str, ...] = VALIDATION_ROUNDS) -> pd.DataFrame:
    """One row per validation result: round, profile, benchmark, scenario, measured,
    predicted, ratio (measured / predicted), abs_ratio_error (max(r, 1/r)), source."""
    from harness.hardware import load_profiles

    cal, factors = _calibrate(tuple(calibration_rounds))
    pts = _points(tuple(validation_rounds), cal, load_profiles(), factors)
    rows = [{"round": p.round, "profile_id": p.profile_id, "benchmark": p.benchmark,
             "scenario": p.scenario, "measured": p.measured, "predicted": p.predicted,
             "ratio": p.ratio, "abs_ratio_error": max(p.ratio, 1 / p.ratio), "source": p.source}
            for p in pts]
    return pd.DataFrame(rows)
