"""The JAX/XLA backend: every zoo family against the PyTorch reference, greedy decoding, devices."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.backends.base import BackendUnavailable
from harness.measure.parity import check
from workloads.registry import get_workload

jax = pytest.importorskip("jax", reason="jax is not installed (extra [jax])")

from harness.measure.backends.jax_backend import JaxBackend  # noqa: E402


@pytest.mark.parametrize("model", ["tabular_mlp", "resnet50", "sensor_cnn_gru", "bert", "gpt2"])
def test_every_family_matches_the_torch_reference(model: str) -> None:
    w = get_workload(model, "tiny")
    b = JaxBackend()
    b.load(w, "cpu")
    try:
        p = check(b, w)
        assert p.checked and p.passed, p
        assert p.max_abs_err is not None and p.max_abs_err < 1e-4
        assert b.describe()["platform"] == "cpu"
    finally:
        b.close()


def test_bf16_runs_and_passes_at_bf16_tolerance() -> None:
    w = get_workload("bert", "tiny")
    b = JaxBackend(dtype="bf16")
    b.load(w, "cpu")
    out = b.to_numpy(b.infer(b.prepare(w.make_inputs(2, seed=0))))
    assert out[0].dtype == np.float32 and out[0].shape[0] == 2
    p = check(b, w, dtype="bf16")
    assert p.checked and p.passed, p


def test_greedy_tokens_equal_the_torch_decoder() -> None:
    import torch

    w = get_workload("gpt2", "tiny")
    b = JaxBackend()
    b.load(w, "cpu")
    m = w.build_torch().eval()
    prompt = np.random.default_rng(3).integers(0, m.wte.weight.shape[0], 11)
    got = list(b.generate(prompt, 12))
    with torch.no_grad():
        logits, cache = m.prefill(torch.from_numpy(prompt[None].astype(np.int64)))
        want = [int(logits.argmax(-1))]
        for _ in range(11):
            logits, cache = m.decode(torch.tensor([[want[-1]]]), cache)
            want.append(int(logits.argmax(-1)))
    assert got == want
    with pytest.raises(ValueError, match="exceeds the context"):
        list(b.generate(prompt, m.n_positions))


def test_devices_not_present_are_unavailable_with_the_reason() -> None:
    w = get_workload("tabular_mlp", "tiny")
    with pytest.raises(BackendUnavailable, match="gpu|cuda"):
        JaxBackend().load(w, "cuda:0")
    with pytest.raises(BackendUnavailable, match="allowed: cpu"):
        JaxBackend().load(w, "fpga:0")
    with pytest.raises(ValueError, match="allowed: fp32, bf16, fp16"):
        JaxBackend(dtype="int4")


def test_threads_option_says_when_it_could_not_be_applied() -> None:
    b = JaxBackend(threads=1)
    b.load(get_workload("tabular_mlp", "tiny"), "cpu")  # JAX is already imported in this process
    assert "not applied" in b.describe()["threads_note"]
