"""Model zoo: inputs, counts, KV cache, ONNX export and user-model workloads (tiny models)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads.registry import get_workload, list_workloads

BUILTINS = ["bert", "gpt2", "resnet50", "sensor_cnn_gru", "tabular_mlp"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "harness-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    return cache


def _torch_outputs(workload, inputs):
    import torch

    module = workload.build_torch()
    with torch.no_grad():
        out = module(*[torch.from_numpy(v) for v in inputs.values()])
    return out.numpy()


# ----------------------------------------------------------------------------- registry


def test_list_and_unknown_name() -> None:
    assert list_workloads() == BUILTINS
    with pytest.raises(ValueError, match="known: bert, gpt2, resnet50"):
        get_workload("resnet5")
    with pytest.raises(ValueError, match="unknown size"):
        get_workload("bert", "huge")
    with pytest.raises(ValueError, match="allowed: .*seq_len"):
        get_workload("bert", "tiny", seqlen=3)


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, workloads, workloads.registry as r\n"
        "w = r.get_workload('bert', 'tiny'); w.make_inputs(2)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("name", BUILTINS)
def test_inputs_deterministic_and_typed(name: str) -> None:
    w = get_workload(name, "tiny")
    a, b, c = w.make_inputs(3, seed=7), w.make_inputs(3, seed=7), w.make_inputs(3, seed=8)
    info = w.info()
    assert list(a) == list(info.input_shapes)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].shape == (3, *info.input_shapes[k])
        assert str(a[k].dtype) == info.input_dtypes[k]
        assert a[k].dtype in (np.float32, np.int64)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_token_ids_in_range(batch: int, seed: int) -> None:
    bert = get_workload("bert", "tiny")
    x = bert.make_inputs(batch, seed)
    assert x["input_ids"].min() >= 0 and x["input_ids"].max() < bert.config.vocab_size
    assert set(np.unique(x["attention_mask"])) <= {0, 1}
    assert (x["attention_mask"][:, 0] == 1).all()
    # padded positions carry the padding id
    assert (x["input_ids"][x["attention_mask"] == 0] == 0).all()
    gpt = get_workload("gpt2", "tiny")
    ids = gpt.make_inputs(batch, seed)["input_ids"]
    assert ids.shape == (batch, gpt.config.prompt_len)
    assert ids.min() >= 0 and ids.max() < gpt.config.vocab_size


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        get_workload("tabular_mlp", "tiny").make_inputs(0)


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("resnet50", 25.5e6, 25.6e6),  # torchvision resnet50: 25,557,032
        ("bert", 109e6, 110e6),  # BERT-base incl. embeddings and pooler: ~109.5M
        ("gpt2", 124e6, 125e6),  # GPT-2 small, tied embeddings: 124,439,808
    ],
)
def test_standard_param_counts(name: str, low: float, high: float) -> None:
    info = get_workload(name, "standard").info()
    assert low <= info.params <= high
    assert info.weight_bytes["fp32"] == 4 * info.params
    assert info.weight_bytes["fp16"] == info.weight_bytes["bf16"] == 2 * info.params
    assert info.weight_bytes["int8"] == info.params


def test_resnet50_flops_match_published_figure() -> None:
    # ~4.1 GMACs per 224x224 image = ~8.2 GFLOPs with a multiply-add counted as 2
    info = get_workload("resnet50", "standard").info()
    assert 8.0e9 <= info.flops_per_sample <= 8.4e9
    assert "FlopCounterMode" in info.flops_method


def test_gpt2_standard_decode_figures() -> None:
    info = get_workload("gpt2", "standard").info()
    assert info.kv_cache_bytes_per_token == 2 * 12 * 768 * 4
    # one decode step ~ 2 * (non-embedding params + lm head) plus attention over the cache
    non_embed = info.params - 50257 * 768 - 1024 * 768
    lower = 2 * (non_embed + 50257 * 768)
    assert lower <= info.flops_per_token_decode <= 1.1 * lower
    # a 128-token prompt costs far more than one decode step
    assert info.flops_per_sample > 50 * info.flops_per_token_decode


@pytest.mark.parametrize("name", BUILTINS)
def test_info_sane_and_cached(name: str, _isolated_cache: Path) -> None:
    tiny = get_workload(name, "tiny").info()
    assert tiny.params > 0 and tiny.flops_per_sample > 0
    assert tiny.activation_bytes_per_sample > 0
    assert tiny.output_names
    assert get_workload(name, "standard").info().flops_per_sample > tiny.flops_per_sample
    assert list((_isolated_cache / "info").glob(f"{name}-tiny-*.json"))
    # a fresh instance reads the same record back
    assert get_workload(name, "tiny").info() == tiny


def test_flops_scale_with_sequence_and_image_size() -> None:
    short = get_workload("bert", "tiny", seq_len=16).info().flops_per_sample
    long = get_workload("bert", "tiny", seq_len=32).info().flops_per_sample
    assert 1.9 * short <= long <= 2.3 * short  # linear layers dominate; attention is quadratic
    small = get_workload("resnet50", "tiny", image_size=32).info().flops_per_sample
    big = get_workload("resnet50", "tiny", image_size=64).info().flops_per_sample
    assert 3.5 * small <= big <= 4.5 * small


def test_info_cache_is_used_in_fresh_process(_isolated_cache: Path) -> None:
    get_workload("sensor_cnn_gru", "tiny").info()
    code = (
        "import sys, workloads.registry as r\n"
        "i = r.get_workload('sensor_cnn_gru', 'tiny').info()\n"
        "assert i.flops_per_sample > 0\n"
        "assert 'torch' not in sys.modules, 'info recomputed'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gru_flops_match_analytic() -> None:
    from workloads._counting import rnn_matmul_flops

    w = get_workload("sensor_cnn_gru", "tiny")
    info = w.info()
    module = w.build_torch()
    steps = w.config.steps // 2 ** len(w.config.conv_channels)
    gru = rnn_matmul_flops(module.gru, steps)
    c = w.config
    assert gru == 2 * 3 * c.gru_hidden * (c.conv_channels[-1] + c.gru_hidden) * steps
    # total = convolutions + GRU + head, each counted once
    conv = 0
    ch, t = c.channels, c.steps
    for out in c.conv_channels:
        conv += 2 * out * ch * c.kernel_size * t
        ch, t = out, t // 2
    head = 2 * c.gru_hidden * c.num_classes
    assert info.flops_per_sample == conv + gru + head
    assert "recurrent" in info.flops_method


# ----------------------------------------------------------------------------- KV cache


def test_gpt2_decode_reuses_cache_and_matches_full_forward() -> None:
    import torch

    w = get_workload("gpt2", "tiny")
    m = w.build_torch()
    ids = torch.from_numpy(w.make_inputs(2, seed=3)["input_ids"])
    with torch.no_grad():
        logits, cache = m.prefill(ids)
        assert len(cache) == w.config.layers
        assert cache[0][0].shape == (2, w.config.heads, ids.shape[1], w.config.hidden // w.config.heads)
        np.testing.assert_allclose(logits.numpy(), m(ids).numpy(), rtol=1e-5, atol=1e-5)
        seq = ids
        for _ in range(3):
            nxt = logits.argmax(-1, keepdim=True)
            logits, cache = m.decode(nxt, cache)
            seq = torch.cat([seq, nxt], dim=1)
            assert cache[0][0].shape[2] == seq.shape[1]
            np.testing.assert_allclose(logits.numpy(), m(seq).numpy(), rtol=1e-4, atol=1e-5)
        # the cache is really used: a zeroed cache changes the result
        zeroed = tuple((torch.zeros_like(k), torch.zeros_like(v)) for k, v in cache)
        other, _ = m.decode(nxt, zeroed)
        assert not torch.allclose(other, m.decode(nxt, cache)[0])
    with pytest.raises(ValueError, match=r"\[B, 1\]"):
        m.decode(seq[:, :2], cache)


def test_gpt2_info_generative_fields() -> None:
    w = get_workload("gpt2", "tiny")
    info = w.info()
    assert w.generative
    assert info.kv_cache_bytes_per_token == 2 * 2 * 64 * 4
    assert 0 < info.flops_per_token_decode < info.flops_per_sample


# ----------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("name", BUILTINS)
def test_onnx_export_cached_and_matches_torch(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    import workloads.onnx_export as ox

    w = get_workload(name, "tiny")
    path = ox.export_cached(w, tmp_path)
    assert path.is_file() and path.parent == tmp_path
    assert not list(tmp_path.glob("*.tmp"))

    def no_export(*args, **kwargs):
        raise AssertionError("re-exported on a cache hit")

    monkeypatch.setattr(ox, "_export", no_export)
    assert ox.export_cached(get_workload(name, "tiny"), tmp_path) == path

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == list(w.info().output_names)
    for batch in (1, 5):  # dynamic batch axis
        inputs = w.make_inputs(batch, seed=11)
        got = sess.run(None, inputs)[0]
        ref = _torch_outputs(w, inputs)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(ref).max()))


def test_onnx_export_default_dir_and_key_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads.onnx_export import export_cached

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    p1 = export_cached(get_workload("tabular_mlp", "tiny"))
    assert p1.parent == tmp_path / "onnx"
    p2 = export_cached(get_workload("tabular_mlp", "tiny", seed=1))
    assert p1 != p2
    with pytest.raises(ValueError, match="allowed: auto"):
        export_cached(get_workload("tabular_mlp", "tiny"), exporter="tvm")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- user models


def _write_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    emb = numpy_helper.from_array(rng.standard_normal((50, 8)).astype(np.float32), "emb")
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["h"]),
        helper.make_node("MatMul", ["h", "w"], ["y"]),
        helper.make_node("Add", ["y", "x"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "user",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq_len"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq_len", 4]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq_len", 4])],
        initializer=[emb, w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_onnx_file_workload(tmp_path: Path) -> None:
    import onnxruntime as ort

    from workloads.user import TorchModelUnavailable

    path = tmp_path / "m.onnx"
    _write_onnx(path)
    with pytest.raises(ValueError, match="seq_len=128"):
        get_workload(f"onnx:{path}").make_inputs(2)
    w = get_workload(f"onnx:{path}", seq_len=6)
    x = w.make_inputs(3, seed=1)
    assert x["ids"].shape == (3, 6) and x["ids"].dtype == np.int64
    assert x["ids"].max() < 50  # bounded by the embedding table it indexes
    assert x["x"].shape == (3, 6, 4) and x["x"].dtype == np.float32
    np.testing.assert_array_equal(x["x"], w.make_inputs(3, seed=1)["x"])
    out = ort.InferenceSession(str(w.onnx_path())).run(None, x)[0]
    assert out.shape == (3, 6, 4)
    info = w.info()
    assert info.params == 50 * 8 + 8 * 4
    assert info.flops_per_sample == 2 * 6 * 4 * 8  # one MatMul [6,8]x[8,4] per sample
    assert "MatMul" in info.flops_method
    assert w.onnx_path() == path.resolve()
    with pytest.raises(TorchModelUnavailable, match="torch backend needs a torch model"):
        w.build_torch()
    with pytest.raises(ValueError, match="file not found"):
        get_workload(f"onnx:{tmp_path / 'missing.onnx'}")


FACTORY = textwrap.dedent(
    """
    import numpy as np
    import torch


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, a, b):
            return self.fc(a) + b


    def make(rows=5):
        torch.manual_seed(0)
        a = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
        b = np.ones((rows, 3), dtype=np.float32)
        return Net(), {"a": a, "b": b}


    def make_tuple():
        net, ex = make()
        return net, (ex["a"], ex["b"])
    """
)


def test_module_factory_workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from workloads.onnx_export import export_cached

    pkg = tmp_path / "userpkg_wl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))

    w = get_workload("module:userpkg_wl.models:make")
    x7 = w.make_inputs(7, seed=0)
    assert x7["a"].shape == (7, 4)
    np.testing.assert_array_equal(x7["a"][5], x7["a"][0])  # tiled
    x2 = w.make_inputs(2, seed=3)
    np.testing.assert_array_equal(x2["a"], x7["a"][3:5])  # sliced, offset by seed
    info = w.info()
    assert info.params == 4 * 3 + 3
    assert info.flops_per_sample == 2 * 4 * 3
    assert info.input_shapes == {"a": (4,), "b": (3,)}

    path = export_cached(w, tmp_path / "onnx")
    got = ort.InferenceSession(str(path)).run(None, x7)[0]
    np.testing.assert_allclose(got, _torch_outputs(w, x7), rtol=1e-5, atol=1e-5)

    wt = get_workload("module:userpkg_wl.models:make_tuple")
    assert list(wt.make_inputs(2)) == ["input_0", "input_1"]
    with pytest.raises(ValueError, match="no callable"):
        get_workload("module:userpkg_wl.models:nothing").make_inputs(1)
    with pytest.raises(ValueError, match="package.module:factory"):
        get_workload("module:justaname")
