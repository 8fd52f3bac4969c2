"""One conformance suite for every registered backend (unavailable ones skip with their reason)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core import plugins
from harness.measure.backends.base import Backend, Capabilities
from harness.measure.parity import check
from workloads.registry import get_workload

BACKENDS = plugins.names("backend")


def _load_or_skip(name: str, workload, device: str = "cpu") -> Backend:
    cls = plugins.load("backend", name)
    if getattr(cls, "remote", False):
        pytest.skip(f"backend {name!r} measures a running server: tests/test_remote_serve.py")
    ok, why = cls.available()
    if not ok:
        pytest.skip(f"backend {name!r} unavailable here: {why}")
    if device not in cls.capabilities.devices:
        pytest.skip(f"backend {name!r} has no {device!r} device (devices: {cls.capabilities.devices})")
    b = cls()
    b.load(workload, device)
    return b


def test_builtins_registered():
    assert {"null", "torch", "onnxruntime", "tensorrt"} <= set(BACKENDS)


@pytest.mark.parametrize("name", BACKENDS)
def test_declares_contract(name):
    cls = plugins.load("backend", name)
    assert issubclass(cls, Backend)
    assert cls.name == name
    assert isinstance(cls.capabilities, Capabilities) and cls.capabilities.devices
    ok, why = cls.available()
    assert isinstance(ok, bool) and isinstance(why, str)
    assert ok or why, "an unavailable backend must say why"
    with pytest.raises(ValueError, match="unknown option"):
        cls(definitely_not_an_option=1)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("model", ["tabular_mlp", "bert"])
def test_infer_outputs_and_parity(name, model):
    w = get_workload(model, "tiny")
    b = _load_or_skip(name, w)
    try:
        for bs in (1, 3):
            out = b.to_numpy(b.infer(b.prepare(w.make_inputs(bs, seed=1))))
            if b.capabilities.needs_model:
                assert out and out[0].shape[0] == bs
                assert all(np.isfinite(o).all() for o in out)
            else:
                assert out == []
        p = check(b, w)
        if b.capabilities.needs_model:
            assert p.checked and p.passed, p
            assert p.max_abs_err is not None and p.max_abs_err < 1e-3
        else:
            assert not p.checked and p.note
        d = b.describe()
        assert d["backend"] == name and d["device"] == "cpu"
        assert isinstance(d.get("timing_scope"), str) and d["timing_scope"]  # what the timed interval covers
        if b.capabilities.needs_model:
            assert "->" in d["timing_scope"]
    finally:
        b.close()
        b.close()  # idempotent


@pytest.mark.parametrize("name", BACKENDS)
def test_streaming_capability_is_honest(name):
    w = get_workload("gpt2", "tiny")
    cls = plugins.load("backend", name)
    if not cls.capabilities.streaming:
        b = cls()
        with pytest.raises(NotImplementedError):
            next(iter(b.generate(np.zeros(4, dtype=np.int64), 3)))
        return
    b = _load_or_skip(name, w)
    prompt = w.make_inputs(1, seed=3)["input_ids"][0][:8]
    toks = list(b.generate(prompt, 5))
    assert len(toks) == 5 and all(isinstance(t, int) for t in toks)
    b.close()


def test_torch_generate_matches_full_forward_greedy():
    """Tokens from the KV-cache path equal greedy decoding by full forwards."""
    import torch

    w = get_workload("gpt2", "tiny")
    b = _load_or_skip("torch", w)
    prompt = w.make_inputs(1, seed=5)["input_ids"][0][:6]
    toks = list(b.generate(prompt, 4))
    m = w.build_torch().eval()
    ids = torch.from_numpy(prompt.reshape(1, -1).copy())
    ref = []
    with torch.inference_mode():
        for _ in range(4):
            nxt = int(m(ids)[0].argmax())
            ref.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert toks == ref


def test_parity_flags_a_wrong_backend():
    """A backend whose outputs drift by 1 % fails parity."""
    from harness.measure.backends.torch_backend import TorchBackend

    class Drifting(TorchBackend):
        def infer(self, prepared):
            return self._module(*prepared) * 1.01

    w = get_workload("tabular_mlp", "tiny")
    b = Drifting()
    b.load(w)
    p = check(b, w)
    assert p.checked and p.passed is False and p.max_rel_err > 5e-3


def test_ort_provider_choice():
    from harness.measure.backends.base import BackendUnavailable
    from harness.measure.backends.ort_backend import choose_providers

    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(cpu_only, "cpu", None) == ["CPUExecutionProvider"]
    assert choose_providers(gpu, "cuda", None) == gpu
    assert choose_providers(["OpenVINOExecutionProvider", *cpu_only], "cpu", None)[0] == "OpenVINOExecutionProvider"
    with pytest.raises(BackendUnavailable, match="no GPU provider"):
        choose_providers(cpu_only, "cuda", None)
    with pytest.raises(BackendUnavailable, match="not in this build"):
        choose_providers(cpu_only, "cpu", ["CUDAExecutionProvider"])
