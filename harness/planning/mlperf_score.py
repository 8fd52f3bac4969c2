"""Scoring the tuned-stack projection against published MLPerf, beside two naive baselines.

Every scored row is a published per-accelerator result of a validation round
(:data:`~harness.planning.reference.VALIDATION_ROUNDS`). Three predictions per row, all from the
same *anchor* (the reference device's median result in that round, benchmark and scenario; the
latest earlier round when that round has none):

* ``peak``: anchor x peak(target) / peak(reference) in the tuned stack's dtype;
* ``bandwidth``: anchor x memory_bw(target) / memory_bw(reference);
* ``projected``: anchor x cost-model ratio (:mod:`harness.planning.cost_model`, tuned-stack
  efficiencies) x the target's *device factor*: the geometric mean over the calibration
  rounds of (target's median / reference's median) / cost-model ratio, for that device,
  benchmark and scenario; 1 where the device has no calibration result (cost model alone).

Rows are left out only by these rules (docs/projection-and-recommendation.md):

1. the row maps to no hardware profile, or its notes mark another power envelope
   (:data:`~harness.planning.reference.EXCLUDE_NOTE_PATTERNS`);
2. its result path names the MLPerf *reference implementation* (``reference`` in the
   system folder): a different, untuned stack, not what the tuned-stack projection models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from harness.core.hardware import HardwareProfile, load_profiles
from harness.planning import cost_model as cm
from harness.planning.architecture import ARCHITECTURE
from harness.planning.reference import CALIBRATION_ROUNDS, VALIDATION_ROUNDS, load_mlperf
from harness.planning.workload_cost import mlperf_cost

REFERENCE_DEVICE = "nvidia-h100-sxm"
#: dtypes the tuned stacks run each benchmark in, most aggressive first (first with a peak wins)
TUNED_DTYPES: dict[str, tuple[str, ...]] = {
    "resnet50": ("int8", "fp8", "bf16", "fp16"),
    "bert-99": ("int8", "fp8", "bf16", "fp16"),
    "llama2-70b": ("fp4", "fp8", "int8", "bf16", "fp16"),
}
#: tuned-stack efficiencies (fraction of dense peak FLOP/s, of peak bandwidth)
TUNED_COMPUTE_EFF = 0.6
TUNED_MEMORY_EFF = 0.8
#: tuned stacks batch vision/encoder queries up to this size (MLPerf Offline)
TUNED_BATCH = 256
#: MLPerf Llama-2-70B Server TPOT bound (p99), seconds
LLAMA_TPOT_S = 0.2
#: MLPerf Llama-2-70B prompt tokens per query used for the prefill share (dataset mean, rounded)
LLAMA_PROMPT_TOKENS = 300
REFERENCE_IMPL_MARK = "reference"


def tuned_dtype(profile: HardwareProfile, family: str) -> str | None:
    for d in TUNED_DTYPES[family]:
        if profile.peak(d) is not None:
            return d
    return None


@lru_cache(maxsize=1)
def _profiles() -> dict[str, HardwareProfile]:
    return load_profiles()


#: candidate fusion factors of the tuned stack (share of counted activation traffic that is real)
ACT_SCALE_GRID: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
#: candidate decode compute efficiencies of the tuned stack (memory efficiency fixed)
DECODE_EFF_GRID: tuple[float, ...] = (0.2, 0.3, 0.45, 0.6, 0.8, 1.0)


@lru_cache(maxsize=8)
def act_scale(family: str) -> float:
    """The tuned stack's calibrated balance knob for ``family``: the fusion factor (share of the
    counted activation traffic that is real) for vision/encoder benchmarks, the decode compute
    efficiency for decoders. Fitted on the calibration rounds: the grid value whose cost-model
    device ratios (device / reference device, medians per round) have the least squared log error."""
    grid = DECODE_EFF_GRID if mlperf_cost(family).is_decoder else ACT_SCALE_GRID
    df = usable_rows()
    df = df[(df["family"] == family) & df["round"].isin(CALIBRATION_ROUNDS) & (df["scenario"] == "Offline")]
    obs = []
    for (pid, rnd), g in df.groupby(["profile_id", "round"]):
        a = anchor(df, family, "Offline", str(rnd))
        if pid == REFERENCE_DEVICE or a is None or a[1] != rnd:
            continue
        obs.append((str(pid), float(g["per_accelerator"].median()) / a[0]))
    best, best_err = 1.0 if grid is ACT_SCALE_GRID else TUNED_COMPUTE_EFF, math.inf
    for s in grid:
        ref = model_rate(REFERENCE_DEVICE, family, s)
        errs = [math.log(m / (model_rate(p, family, s) / ref)) ** 2 for p, m in obs]
        errs = [e for e in errs if math.isfinite(e)]
        if errs and sum(errs) < best_err:
            best, best_err = s, sum(errs)
    return best


@lru_cache(maxsize=1024)
def model_rate(profile_id: str, family: str, scale: float | None = None) -> float:
    """Cost-model per-device throughput of the tuned stack (samples/s, tokens/s); nan if none."""
    p = _profiles()[profile_id]
    d = tuned_dtype(p, family)
    if d is None or p.memory_bw_gbps is None:
        return math.nan
    cost = mlperf_cost(family)
    try:
        if cost.is_decoder:
            return cm.decoder_tokens_per_s(
                cost,
                p,
                d,
                act_scale(family) if scale is None else scale,
                TUNED_MEMORY_EFF,
                tpot_max_s=LLAMA_TPOT_S,
                prefill_tokens=LLAMA_PROMPT_TOKENS,
            )[0]
        b = TUNED_BATCH
        s = act_scale(family) if scale is None else scale
        return b / cm.forward_s(cost, p, b, d, TUNED_COMPUTE_EFF, TUNED_MEMORY_EFF, s)
    except cm.CostModelError:
        return math.nan


def rule_of(df: pd.DataFrame) -> pd.Series:
    """Per row: "" when usable, else the rule that leaves it out (``unmapped``,
    ``power-envelope``, ``reference-implementation``)."""
    ref_impl = df["source"].str.rsplit("/", n=3).str[-3].str.contains(REFERENCE_IMPL_MARK, case=False, na=False)
    rule = pd.Series("", index=df.index)
    rule[ref_impl] = "reference-implementation"
    rule[df["excluded"]] = "power-envelope"
    rule[df["profile_id"].isna() | df["family"].isna()] = "unmapped"
    return rule


@lru_cache(maxsize=1)
def usable_rows() -> pd.DataFrame:
    """Published rows after the exclusion rules (module docstring)."""
    df = load_mlperf()
    return df[rule_of(df) == ""].copy()


def _rk(r: str) -> tuple[int, ...]:
    return tuple(int(x) for x in r.split("."))


@lru_cache(maxsize=4096)
def _median(device: str, family: str, scenario: str, rnd: str) -> float:
    df = usable_rows()
    sel = df[(df["profile_id"] == device) & (df["family"] == family) & (df["scenario"] == scenario)]
    return float(sel[sel["round"] == rnd]["per_accelerator"].median())


def anchor(
    df: pd.DataFrame, family: str, scenario: str, rnd: str, device: str = REFERENCE_DEVICE
) -> tuple[float, str] | None:
    """``device``'s median result in ``rnd`` (else the latest earlier round): (value, round)."""
    sel = df[(df["profile_id"] == device) & (df["family"] == family) & (df["scenario"] == scenario)]
    rounds = sorted({r for r in sel["round"] if _rk(r) <= _rk(rnd)}, key=_rk)
    if not rounds:
        return None
    use = rnd if rnd in rounds else rounds[-1]
    return _median(device, family, scenario, use), use


def sibling_anchor(df: pd.DataFrame, profile_id: str, family: str, scenario: str, rnd: str) -> str | None:
    """Another device of ``profile_id``'s architecture with a result in ``rnd`` (most results
    first), for a device whose architecture is not the reference device's; else None."""
    arch = ARCHITECTURE.get(profile_id)
    if arch is None or arch == ARCHITECTURE[REFERENCE_DEVICE]:
        return None
    sel = df[(df["family"] == family) & (df["scenario"] == scenario) & (df["round"] == rnd)]
    sel = sel[(sel["profile_id"] != profile_id) & (sel["profile_id"].map(ARCHITECTURE) == arch)]
    if sel.empty:
        return None
    return str(sel["profile_id"].value_counts().index[0])


def device_factor(df: pd.DataFrame, profile_id: str, family: str, scenario: str) -> tuple[float, int]:
    """(factor, number of calibration rounds it rests on); (1.0, 0) without calibration data."""
    logs = []
    ratio = model_rate(profile_id, family) / model_rate(REFERENCE_DEVICE, family)
    for rnd in CALIBRATION_ROUNDS:
        sel = df[(df["profile_id"] == profile_id) & (df["family"] == family) & (df["scenario"] == scenario)]
        sel = sel[sel["round"] == rnd]
        a = anchor(df, family, scenario, rnd)
        if sel.empty or a is None or a[1] != rnd or not math.isfinite(ratio):
            continue
        logs.append(math.log(float(sel["per_accelerator"].median()) / a[0] / ratio))
    return (float(math.exp(np.mean(logs))), len(logs)) if logs else (1.0, 0)


@dataclass(frozen=True)
class ScoredRow:
    round: str
    profile_id: str
    benchmark: str
    scenario: str
    measured: float
    projected: float
    peak: float
    bandwidth: float
    anchor_device: str
    anchor_round: str
    factor_rounds: int
    source: str


def score(validation_rounds: tuple[str, ...] = VALIDATION_ROUNDS) -> pd.DataFrame:
    """One row per scored result: measured, projected, peak and bandwidth predictions and the
    error of each (``err_*`` = max(m/p, p/m))."""
    df = usable_rows()
    profiles = _profiles()
    ref = profiles[REFERENCE_DEVICE]
    out = []
    val = df[df["round"].isin(validation_rounds)]
    for (pid, fam, scen, rnd), grp in val.groupby(["profile_id", "family", "scenario", "round"]):
        pid, fam, scen, rnd = str(pid), str(fam), str(scen), str(rnd)
        p = profiles.get(pid)
        a = anchor(df, fam, scen, rnd)
        if p is None or a is None:
            continue
        d = tuned_dtype(p, fam)
        rd = tuned_dtype(ref, fam)
        if d is None or rd is None or p.memory_bw_gbps is None:
            continue
        own = sibling_anchor(df, pid, fam, scen, rnd)
        own_a = anchor(df, fam, scen, rnd, own) if own else None
        adev, aval, around = (own, own_a[0], own_a[1]) if own and own_a else (REFERENCE_DEVICE, a[0], a[1])
        ratio = model_rate(pid, fam) / model_rate(adev, fam)
        if not math.isfinite(ratio):
            continue
        fac, n = device_factor(df, pid, fam, scen)
        fac /= device_factor(df, adev, fam, scen)[0]
        pk = (p.peak(d) or math.nan) / (ref.peak(rd) or math.nan)
        bw = p.memory_bw_gbps / (ref.memory_bw_gbps or math.nan)
        for _, row in grp.iterrows():
            out.append(
                ScoredRow(
                    rnd,
                    pid,
                    fam,
                    scen,
                    float(row["per_accelerator"]),
                    aval * ratio * fac,
                    a[0] * pk,
                    a[0] * bw,
                    adev,
                    around,
                    n,
                    str(row["source"]),
                )
            )
    res = pd.DataFrame([r.__dict__ for r in out])
    for col in ("projected", "peak", "bandwidth"):
        r = res["measured"] / res[col]
        res[f"err_{col}"] = np.maximum(r, 1 / r)
    return res
