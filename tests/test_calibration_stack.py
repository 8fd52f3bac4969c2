"""Stack-aware calibration on measured points: dispatch term, efficiencies, leave-one-out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.core.hardware import load_profiles
from harness.planning import cost_model as cm
from harness.planning.operator_counts import operator_count
from harness.planning.stack_model import (
    Point,
    StackCalibration,
    fit,
    leave_one_out,
    predict,
    shipped_points,
    stack_key,
)
from harness.planning.workload_cost import workload_cost

PROFILES = load_profiles()
H200 = PROFILES["nvidia-h200-sxm"]


def test_stack_key_names_the_options_that_matter() -> None:
    assert stack_key("torch", {"dtype": "fp16"}) == "torch-eager-fp16"
    assert stack_key("torch", {"dtype": "fp16", "compile": True}) == "torch-compile-fp16"
    assert stack_key("onnxruntime", {"execution_provider": "CUDAExecutionProvider"}) == "onnxruntime-cuda-fp32"


def test_shipped_points_carry_their_source() -> None:
    pts = shipped_points()
    assert len(pts) >= 8
    assert all(p.profile_id == "nvidia-h200-sxm" and p.source.startswith("measured: h200-") for p in pts)
    assert {p.batch for p in pts} >= {1, 32, 256}


def _synthetic(op_s: float, eff: float) -> tuple[Point, ...]:
    cal = StackCalibration(op_s={("torch-eager-fp16", "resnet50"): op_s}, compute_eff={})
    cal = replace(cal, compute_eff={("torch-eager-fp16", "hopper", "vision"): eff})
    out = []
    for b in (1, 8, 64, 256):
        pr = predict(cal, "resnet50", "standard", "torch-eager-fp16", H200, b)
        out.append(
            Point("resnet50", "standard", "torch-eager-fp16", H200.id, b, pr.latency_s, b / pr.latency_s, "synthetic")
        )
    return tuple(out)


@pytest.mark.parametrize(("op_s", "eff"), [(20e-6, 0.1), (5e-6, 0.4)])
def test_fit_recovers_the_parameters_that_made_the_points(op_s: float, eff: float) -> None:
    cal = fit(_synthetic(op_s, eff), PROFILES)
    assert cal.op_cost("torch-eager-fp16", "resnet50")[0] == pytest.approx(op_s, rel=0.05)
    assert cal.efficiency("torch-eager-fp16", "hopper", "vision")[0] == pytest.approx(eff, rel=0.05)


def test_batch_one_is_dispatch_bound_and_never_above_peak() -> None:
    cal = fit(shipped_points(), PROFILES)
    n_all, _ = operator_count("resnet50", "standard") or (0, 0)
    op_s = cal.op_cost("torch-eager-fp16", "resnet50")[0]
    cost = workload_cost("resnet50", "standard")
    for b in (1, 4, 64, 512):
        pr = predict(cal, "resnet50", "standard", "torch-eager-fp16", H200, b)
        assert pr.latency_s >= n_all * op_s * (1 - 1e-12)
        assert pr.latency_s >= cost.flops(b) / cm.peak_flops(H200, "fp16")
    assert predict(cal, "resnet50", "standard", "torch-eager-fp16", H200, 1).bound == "dispatch"
    assert predict(cal, "resnet50", "standard", "torch-eager-fp16", H200, 512).bound == "device"


def test_leave_one_out_never_sees_the_point_it_projects() -> None:
    pts = shipped_points()
    base = leave_one_out(pts, PROFILES)
    assert len(base) == len(pts)
    # changing a point's own measurement leaves its own projection unchanged
    moved = tuple(
        replace(p, latency_s=p.latency_s * 3, throughput_per_s=p.throughput_per_s / 3) if i == 0 else p
        for i, p in enumerate(pts)
    )
    again = leave_one_out(moved, PROFILES)
    assert again[0].predicted_latency_s == pytest.approx(base[0].predicted_latency_s)
    assert again[1].predicted_latency_s != pytest.approx(base[1].predicted_latency_s)
