"""Tuned-stack cost model and its MLPerf scoring: bounds, exclusion rules, baselines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.hardware import load_profiles
from harness.planning import cost_model as cm
from harness.planning.mlperf_score import REFERENCE_DEVICE, rule_of, score, usable_rows
from harness.planning.reference import load_mlperf
from harness.planning.workload_cost import mlperf_cost, workload_cost

PROFILES = load_profiles()
GPUS = sorted(p for p, v in PROFILES.items() if v.kind == "gpu" and v.memory_bw_gbps)


@settings(max_examples=60, deadline=None)
@given(
    pid=st.sampled_from(GPUS),
    batch=st.integers(1, 512),
    ce=st.floats(0.01, 5.0),
    me=st.floats(0.01, 5.0),
    model=st.sampled_from(["resnet50", "bert"]),
)
def test_forward_never_faster_than_datasheet_peak(pid: str, batch: int, ce: float, me: float, model: str) -> None:
    p = PROFILES[pid]
    cost = workload_cost(model, "standard")
    t = cm.forward_s(cost, p, batch, "fp16", ce, me)
    assert t >= cost.flops(batch) / cm.peak_flops(p, "fp16") * (1 - 1e-12)
    assert t >= cost.params * 2 / cm.bandwidth(p) * (1 - 1e-12)


def test_activations_stay_on_chip_when_they_fit() -> None:
    cost = workload_cost("resnet50", "standard")
    h100 = PROFILES["nvidia-h100-sxm"]
    assert cm.spill_fraction(cost, h100, 1, "int8") == 0.0
    assert 0.0 < cm.spill_fraction(cost, h100, 256, "int8") < 1.0
    no_cache = h100.model_copy(update={"onchip_mb": None})
    assert cm.spill_fraction(cost, no_cache, 1, "int8") == 1.0
    assert cm.dram_bytes(cost, h100, 1, "int8") < cm.dram_bytes(cost, no_cache, 1, "int8")


def test_tensor_parallel_needs_an_interconnect_and_pays_for_it() -> None:
    llama = mlperf_cost("llama2-70b")
    t4 = PROFILES["nvidia-t4"]
    # 70B in fp16 needs 16 T4s: wider than one node, never formed
    with pytest.raises(cm.CostModelError):
        cm.decoder_tokens_per_s(llama, t4, "fp16", 0.6, 0.8)
    h100 = PROFILES["nvidia-h100-sxm"]
    assert cm.comm_s(llama, h100, 64, "fp8", 1) == 0.0
    assert cm.comm_s(llama, h100, 64, "fp8", 8) > cm.comm_s(llama, h100, 64, "fp8", 2) > 0
    with pytest.raises(cm.CostModelError):
        cm.comm_s(llama, h100.model_copy(update={"interconnect_gbps": None}), 64, "fp8", 2)


def test_fp4_peak_is_used_where_published() -> None:
    assert PROFILES["nvidia-b200"].peak("fp4") is not None
    assert cm.elem_bytes("fp4") == 0.5 and cm.kv_elem_bytes("fp4") == 1.0


def test_scoring_rules_and_baselines() -> None:
    df = load_mlperf()
    rules = rule_of(df)
    ref_impl = df[rules == "reference-implementation"]
    assert len(ref_impl) >= 1 and ref_impl["source"].str.contains("reference").all()
    assert not usable_rows()["source"].isin(ref_impl["source"]).any()
    r = score()
    assert set(r["round"]) <= {"4.1", "5.0", "5.1"}
    # the reference device is its own anchor: all three predictions coincide there
    own = r[r["profile_id"] == REFERENCE_DEVICE]
    assert not own.empty
    assert (abs(own["projected"] - own["peak"]) <= 1e-9 * own["peak"]).all()
    assert (abs(own["peak"] - own["bandwidth"]) <= 1e-9 * own["peak"]).all()
    for col in ("err_projected", "err_peak", "err_bandwidth"):
        assert (r[col] >= 1.0).all() and r[col].map(math.isfinite).all()


@settings(max_examples=60, deadline=None)
@given(
    pid=st.sampled_from(GPUS),
    ce=st.floats(0.01, 1.0),
    me=st.floats(0.01, 1.0),
    batch=st.integers(1, 256),
)
def test_roofline_projection_never_above_peak(pid: str, ce: float, me: float, batch: int) -> None:
    from pydantic import ValidationError

    from harness.planning.projection import Efficiency, project_offline

    p = PROFILES[pid]
    cost = workload_cost("bert", "standard")
    eff = Efficiency(compute=ce, memory=me, overhead_s=0.0, origin="test", ratio_low=0.5, ratio_high=2.0)
    try:
        proj = project_offline(cost, p, "fp16", eff, batch=min(batch, 64))
    except ValueError:
        return  # does not fit: nothing projected
    assert proj.throughput_per_s * cost.flops_per_sample <= cm.peak_flops(p, "fp16") * (1 + 1e-9)
    with pytest.raises(ValidationError):
        Efficiency(compute=1.5, memory=me, overhead_s=0.0, origin="above peak", ratio_low=0.5, ratio_high=2.0)


def test_decoder_projection_pays_for_tensor_parallel_links() -> None:
    from harness.planning.projection import ProjectionError, default_efficiency, project_decoder

    llama = mlperf_cost("llama2-70b")
    eff = default_efficiency("gpu", "fp8")
    h100 = PROFILES["nvidia-h100-sxm"]
    fast = project_decoder(llama, h100, "fp8", eff, devices=2, batch=64)
    slow_link = h100.model_copy(update={"interconnect_gbps": 1.0, "interconnect_latency_us": 100.0})
    slow = project_decoder(llama, slow_link, "fp8", eff, devices=2, batch=64)
    assert slow.tpot_s > fast.tpot_s
    with pytest.raises(ProjectionError, match="interconnect"):
        project_decoder(llama, h100.model_copy(update={"interconnect_gbps": None}), "fp16", eff)
