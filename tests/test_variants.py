"""Variants as a suite axis: expansion, cell ids, skips with reasons, and measured accuracy cost."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core import plugins
from harness.core.records import CellSpec
from harness.core.spec import SpecError, load_suite

SUITE = """
name: v
defaults: {min_agreement: 0.99}
matrix:
  - models: [bert]
    backends: [torch, onnxruntime]
    scenarios: [offline]
    variants: [fp32, int8-dynamic, bf16]
  - models: [bert]
    backends: [torch]
    scenarios: [offline]
"""

STOP = {"min_duration_s": 0.05, "min_queries": 3, "max_duration_s": 0.5, "warmup_s": 0.0, "max_attempts": 1}


def test_builtin_variants_are_registered():
    want = {"fp32", "bf16", "fp16", "int8-dynamic", "int8-static", "pruned-50", "compiled", "fp8", "sparse-2-4"}
    assert want <= set(plugins.names("variant"))


def test_variants_expand_into_cells_and_ids_without_one_are_unchanged(write_suite):
    _, cells = load_suite(write_suite(SUITE))
    with_v = [c for c in cells if c.variant is not None]
    assert len(with_v) == 6 and all(c.min_agreement == 0.99 for c in with_v)
    ids = {c.cell_id for c in cells}
    assert "bert-tiny.torch+int8-dynamic.offline.bs1" in ids
    assert "bert-tiny.onnxruntime+bf16.offline.bs1" in ids
    plain = [c for c in cells if c.variant is None]
    assert [c.cell_id for c in plain] == ["bert-tiny.torch.offline.bs1"]
    assert plain[0].min_agreement is None
    # the same cell built without the new fields keeps its id
    assert CellSpec(model="bert", backend="torch", scenario="offline").cell_id == "bert-tiny.torch.offline.bs1"


def test_unknown_variant_names_the_registered_ones(write_suite):
    text = SUITE.replace("[fp32, int8-dynamic, bf16]", "[fp32, int4]")
    with pytest.raises(SpecError) as ei:
        load_suite(write_suite(text))
    assert "variants" in ei.value.field and "int4" in str(ei.value) and "int8-dynamic" in str(ei.value)


def test_min_agreement_out_of_range_is_an_error(write_suite):
    with pytest.raises(SpecError, match="min_agreement"):
        load_suite(write_suite(SUITE.replace("0.99", "1.5")))


@pytest.mark.parametrize(
    ("variant", "backend", "device", "scenario", "words"),
    [
        ("bf16", "onnxruntime", "cpu", "offline", "no bf16/fp16 kernels"),
        ("int8-static", "torch", "cpu", "offline", "PT2E"),
        ("fp8", "torch", "cpu", "offline", "needs a cuda device"),
        ("sparse-2-4", "onnxruntime", "cpu", "offline", "Ampere"),
        ("cuda-graphs", "torch", "cuda", "offline", "not implemented"),
        ("speculative-k4", "torch", "cpu", "offline", "token-stream"),
        ("compiled", "onnxruntime", "cpu", "offline", "graph_optimization_level"),
    ],
)
def test_unsupported_combinations_give_a_reason(variant, backend, device, scenario, words):
    why = plugins.load("variant", variant)().unsupported(backend, device, scenario)
    assert why is not None and words in why


def test_supported_combinations_give_none():
    assert plugins.load("variant", "int8-static")().unsupported("onnxruntime", "cpu", "offline") is None
    assert plugins.load("variant", "compiled")().unsupported("torch", "cpu", "offline") is None
    assert plugins.load("variant", "speculative-k4")().unsupported("torch", "cpu", "token-stream") is None


def test_an_unsupported_cell_is_skipped_with_the_reason(tmp_path):
    from harness.measure.worker import execute_cell

    spec = CellSpec(model="bert", backend="onnxruntime", scenario="offline", variant="bf16")
    rec = execute_cell(spec, tmp_path, meters=[])
    assert rec.status == "skipped" and "bf16" in (rec.error or "")


def test_speculative_on_a_non_generative_workload_is_skipped(tmp_path):
    from harness.measure.worker import execute_cell

    spec = CellSpec(model="bert", backend="torch", scenario="token-stream", variant="speculative-k4")
    rec = execute_cell(spec, tmp_path, meters=[])
    assert rec.status == "skipped" and "generative" in (rec.error or "")


def test_pruning_zeroes_half_of_each_weight():
    torch = pytest.importorskip("torch")
    from harness.measure.variants.prune import prune_l1

    m = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Conv1d(2, 4, 3))
    prune_l1(m)
    for layer in (m[0], m[2]):
        w = layer.weight.detach()
        assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=1 / w.numel())
        assert not hasattr(layer, "weight_orig")  # made permanent


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "variant"), [("torch", "int8-dynamic"), ("onnxruntime", "int8-static")])
def test_a_weight_changing_variant_records_its_accuracy_cost(tmp_path, backend, variant):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from harness.measure.worker import execute_cell

    spec = CellSpec(
        model="gpt2",
        backend=backend,
        scenario="offline",
        scenario_options={"stop": STOP},
        variant=variant,
        min_agreement=0.999999,
    )
    rec = execute_cell(spec, tmp_path, meters=[])
    assert rec.status == "ok", rec.error
    for name in ("top1_agreement", "token_agreement", "max_abs_err", "mean_abs_err", "max_rel_err", "kl_divergence"):
        assert rec.metrics[name].kind == "measured" and rec.metric(name) is not None
    assert 0.0 <= rec.metric("top1_agreement") <= 1.0
    assert rec.metric("max_abs_err") > 0  # int8 is not bit-exact
    assert rec.parity is not None and not rec.parity.checked  # judged by agreement, not a dtype tolerance
    agreement = rec.extra["accuracy"]["agreement"]
    assert rec.validity["accuracy_met"] == (agreement >= 0.999999)
    assert "outputs_matched" not in rec.validity


@pytest.mark.slow
def test_fp32_variant_agrees_exactly_and_speculative_keeps_greedy_output(tmp_path):
    pytest.importorskip("torch")
    from harness.measure.worker import execute_cell

    opts = {"mode": "closed", "concurrency": 1, "prompt_len": 16, "output_len": 8, "stop": STOP}
    rec = execute_cell(
        CellSpec(
            model="gpt2", backend="torch", scenario="token-stream", scenario_options=opts, variant="speculative-k4"
        ),
        tmp_path,
        meters=[],
    )
    assert rec.status == "ok", rec.error
    assert rec.metric("token_agreement") == 1.0  # through the speculative generate
    assert rec.metric("top1_agreement") == 1.0
    assert rec.parity is not None and rec.parity.passed
    spec_stats = rec.extra["speculative"]
    assert spec_stats["emitted"] > 0 and spec_stats["proposed"] >= spec_stats["accepted"]
    assert rec.metric("acceptance_rate") == pytest.approx(spec_stats["acceptance_rate"])
    assert np.isfinite(rec.metric("tokens_per_target_step"))
    assert rec.extra["engine_fallback"]  # batch-1 speculative generate: the naive engine, said why
