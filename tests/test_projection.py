"""Cost model, roofline projection and the MLPerf reference loader."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.hardware import HardwareProfile
from harness.planning.calibration import validate_projection
from harness.planning.projection import (
    PROVENANCE,
    ProjectionError,
    batch_latency_s,
    default_efficiency,
    max_batch,
    project_decoder,
    project_offline,
)
from harness.planning.reference import ACCELERATOR_TO_PROFILE, load_mlperf, reference_for
from harness.planning.workload_cost import mlperf_cost, workload_cost


def _profile(peak: float = 100.0, bw: float = 1000.0, mem: float = 16.0) -> HardwareProfile:
    return HardwareProfile(
        id="test-gpu",
        kind="gpu",
        vendor="x",
        model="x",
        peak_tflops={"fp16": peak, "fp32": peak / 4},
        memory_gb=mem,
        memory_bw_gbps=bw,
        interconnect="NVLink-like test link",
        interconnect_gbps=450.0,
        interconnect_latency_us=5.0,
    )


def test_cost_model_is_derived_from_counts() -> None:
    c = workload_cost("resnet50", "standard")
    assert c.flops(4) == 4 * c.flops_per_sample
    assert c.bytes_moved(1, "fp16") == pytest.approx(c.params * 2 + 2 * c.activation_bytes_per_sample_fp32 / 2)
    assert c.memory_bytes(8, "fp32") > c.memory_bytes(1, "fp32") > c.weight_bytes("fp32")
    bert99 = mlperf_cost("bert-99")
    base = workload_cost("bert", "standard")
    # BERT-large at seq 384 is much larger than BERT-base at 128: ~3x params, >9x FLOPs
    assert 2.5 < bert99.params / base.params < 3.5
    assert bert99.flops_per_sample / base.flops_per_sample > 9


def test_llama_cost_from_published_config() -> None:
    c = mlperf_cost("llama2-70b")
    assert c.decode_flops(1) == 2 * 70e9
    assert c.kv_bytes_per_token("fp16") == 2 * 80 * 8 * 128 * 2
    assert c.decode_bytes(4, "fp8", 100) == 70e9 + 4 * 100 * 2 * 80 * 8 * 128


@settings(max_examples=60, deadline=None)
@given(b1=st.integers(1, 512), b2=st.integers(1, 512), scale=st.floats(1.0, 10.0))
def test_latency_monotone_in_batch_and_peak(b1: int, b2: int, scale: float) -> None:
    c = workload_cost("bert", "standard")
    eff = default_efficiency("gpu", "fp16")
    p = _profile(mem=1e6)
    lo, hi = sorted((b1, b2))
    assert batch_latency_s(c, p, lo, "fp16", eff) <= batch_latency_s(c, p, hi, "fp16", eff)
    faster = _profile(peak=100.0 * scale, bw=1000.0 * scale, mem=1e6)
    more_peak = _profile(peak=100.0 * scale, mem=1e6)
    more_bw = _profile(bw=1000.0 * scale, mem=1e6)
    base = batch_latency_s(c, p, hi, "fp16", eff)
    for q in (faster, more_peak, more_bw):
        assert batch_latency_s(c, q, hi, "fp16", eff) <= base


def test_projection_metrics_are_labelled_with_range() -> None:
    c = workload_cost("resnet50", "standard")
    eff = default_efficiency("gpu", "fp16")
    proj = project_offline(c, _profile(), "fp16", eff)
    for m in proj.metrics.values():
        assert m.provenance == PROVENANCE
        assert m.ci_low is not None and m.ci_high is not None and m.ci_low <= m.value <= m.ci_high
        assert "compute_eff" in m.method and "prior table" in m.method
    assert proj.batch == max_batch(c, _profile(), "fp16")


def test_memory_limit_and_decoder_split() -> None:
    c = mlperf_cost("llama2-70b")
    small = _profile(mem=16.0)
    eff = default_efficiency("gpu", "fp16")
    with pytest.raises(ProjectionError):
        project_offline(c, small, "fp16", eff)
    d = project_decoder(c, _profile(mem=80.0), "fp16", eff)
    assert d.devices >= 2  # 140 GB of fp16 weights need more than one 80 GB device
    assert d.ttft_s > d.tpot_s > 0
    assert {"ttft_p50", "tpot_p50", "output_tokens_per_s"} <= set(d.metrics)


def test_reference_loader_parses_all_rows_with_provenance() -> None:
    df = load_mlperf()
    assert len(df) == 822
    assert df["provenance"].str.fullmatch(r"reference:mlperf-v\d\.\d").all()
    assert df["source"].str.startswith("http").all()
    mapped = df[df["profile_id"].notna()]
    assert set(mapped["accelerator"]) <= set(ACCELERATOR_TO_PROFILE)
    assert (df.loc[df["profile_id"].notna(), "in_device_list"] == "yes").all()
    m = reference_for("nvidia-h100-sxm", "resnet50", "Offline")
    assert m is not None and m.provenance.startswith("reference:mlperf-v")
    assert "github.com/mlcommons" in m.method and m.ci_low <= m.value <= m.ci_high
    assert reference_for("google-tpu-v4", "resnet50", "Offline") is None


def test_validation_uses_only_newer_rounds() -> None:
    v = validate_projection()
    assert len(v) > 100
    assert set(v["round"]) <= {"4.1", "5.0", "5.1"}
    assert (v["abs_ratio_error"] >= 1).all()
