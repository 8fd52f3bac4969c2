"""The zoo's model families in JAX, with the weights of the PyTorch modules.

:func:`to_jax` takes a built zoo module (:mod:`workloads.nets`) and returns its weights as a
flat dict of NumPy arrays (the module's ``state_dict`` names) and a pure function
``forward(params, *inputs)`` written with ``jax.numpy`` / ``jax.lax`` that computes what the
module's ``forward`` computes (eval mode: BatchNorm uses its running statistics). The same
seeded weights therefore give the same outputs up to floating-point rounding, which the
harness's parity check verifies. For decoders, :func:`decoder_steps` adds a greedy
prefill/decode pair over a fixed-shape KV cache.

Importing this module imports neither torch nor jax; :func:`to_jax` needs both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Params = dict[str, Any]
Forward = Callable[..., Any]


def _state(module: Any) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy() for k, v in module.state_dict().items() if "num_batches" not in k}


def to_jax(module: Any) -> tuple[dict[str, np.ndarray], Forward]:
    """``(params, forward)`` for a zoo module; ``TypeError`` names the supported classes."""
    from workloads.nets.cnn_gru import SensorCNNGRU
    from workloads.nets.mlp import TabularMLP
    from workloads.nets.resnet import ResNet
    from workloads.nets.transformer import GPT2LM, BertClassifier

    builders: dict[type, Callable[[Any], Forward]] = {
        TabularMLP: _mlp,
        ResNet: _resnet,
        SensorCNNGRU: _cnn_gru,
        BertClassifier: _bert,
        GPT2LM: _gpt2,
    }
    for cls, build in builders.items():
        if isinstance(module, cls):
            return _state(module), build(module)
    names = ", ".join(c.__name__ for c in builders)
    raise TypeError(f"no JAX version of {type(module).__name__}; supported: {names}")


# --------------------------------------------------------------------------- layers


def _linear(p: Params, name: str, x: Any) -> Any:
    y = x @ p[f"{name}.weight"].T
    b = p.get(f"{name}.bias")
    return y if b is None else y + b


def _layer_norm(p: Params, name: str, x: Any, eps: float) -> Any:
    import jax.numpy as jnp

    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _batch_norm(p: Params, name: str, x: Any, eps: float) -> Any:
    """Eval-mode BatchNorm over axis 1 (NC... layout)."""
    import jax.numpy as jnp

    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = p[f"{name}.weight"] / jnp.sqrt(p[f"{name}.running_var"] + eps)
    shift = p[f"{name}.bias"] - p[f"{name}.running_mean"] * scale
    return x * scale.reshape(shape) + shift.reshape(shape)


def _conv(p: Params, name: str, x: Any, stride: int, padding: int) -> Any:
    from jax import lax

    w = p[f"{name}.weight"]
    nd = w.ndim - 2
    dims = ("NCH", "OIH", "NCH") if nd == 1 else ("NCHW", "OIHW", "NCHW")
    y = lax.conv_general_dilated(x, w, (stride,) * nd, [(padding, padding)] * nd, dimension_numbers=dims)
    b = p.get(f"{name}.bias")
    return y if b is None else y + b.reshape((1, -1) + (1,) * nd)


def _max_pool(x: Any, window: int, stride: int, padding: int) -> Any:
    import jax.numpy as jnp
    from jax import lax

    nd = x.ndim - 2
    pads = [(0, 0), (0, 0)] + [(padding, padding)] * nd
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1) + (window,) * nd, (1, 1) + (stride,) * nd, pads)


def _attention(q: Any, k: Any, v: Any, additive_mask: Any | None) -> Any:
    """softmax(q k^T / sqrt(d) + mask) v, as ``scaled_dot_product_attention``."""
    import jax
    import jax.numpy as jnp

    scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if additive_mask is not None:
        scores = scores + additive_mask
    return jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(scores, axis=-1), v)


def _heads(x: Any, n: int) -> Any:
    b, t, h = x.shape
    return x.reshape(b, t, n, h // n).transpose(0, 2, 1, 3)


def _merge(x: Any) -> Any:
    b, n, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, n * d)


# --------------------------------------------------------------------------- families


def _mlp(m: Any) -> Forward:
    import jax.numpy as jnp

    n_emb = len(m.embeddings)
    eps = float(m.norm.eps)
    linears = [i for i, layer in enumerate(m.mlp) if type(layer).__name__ == "Linear"]

    def forward(p: Params, numeric: Any, categorical: Any) -> Any:
        parts = [_layer_norm(p, "norm", numeric, eps)]
        parts += [p[f"embeddings.{i}.weight"][categorical[:, i]] for i in range(n_emb)]
        x = jnp.concatenate(parts, axis=1)
        for j, idx in enumerate(linears):
            x = _linear(p, f"mlp.{idx}", x)
            if j < len(linears) - 1:
                x = jnp.maximum(x, 0.0)
        return x

    return forward


def _resnet(m: Any) -> Forward:
    import jax.numpy as jnp

    stem_conv = m.stem[0]
    eps = float(m.stem[1].eps)
    blocks = []
    for i, stage in enumerate(m.stages):
        for j, blk in enumerate(stage):
            blocks.append((f"stages.{i}.{j}", int(blk.conv2.stride[0]), blk.downsample is not None))

    def forward(p: Params, x: Any) -> Any:
        x = _conv(p, "stem.0", x, int(stem_conv.stride[0]), int(stem_conv.padding[0]))
        x = jnp.maximum(_batch_norm(p, "stem.1", x, eps), 0.0)
        x = _max_pool(x, 3, 2, 1)
        for name, stride, down in blocks:
            identity = x
            if down:
                identity = _batch_norm(p, f"{name}.downsample.1", _conv(p, f"{name}.downsample.0", x, stride, 0), eps)
            out = jnp.maximum(_batch_norm(p, f"{name}.bn1", _conv(p, f"{name}.conv1", x, 1, 0), eps), 0.0)
            out = jnp.maximum(_batch_norm(p, f"{name}.bn2", _conv(p, f"{name}.conv2", out, stride, 1), eps), 0.0)
            out = _batch_norm(p, f"{name}.bn3", _conv(p, f"{name}.conv3", out, 1, 0), eps)
            x = jnp.maximum(out + identity, 0.0)
        return _linear(p, "fc", jnp.mean(x, axis=(2, 3)))

    return forward


def _cnn_gru(m: Any) -> Forward:
    import jax
    import jax.numpy as jnp
    from jax import lax

    convs = []
    for i, layer in enumerate(m.features):
        if type(layer).__name__ == "Conv1d":
            bn = m.features[i + 1]
            convs.append((f"features.{i}", f"features.{i + 1}", int(layer.padding[0]), float(bn.eps)))
    hidden = int(m.gru.hidden_size)

    def forward(p: Params, signal: Any) -> Any:
        x = signal
        for conv, bn, pad, eps in convs:
            x = _max_pool(jnp.maximum(_batch_norm(p, bn, _conv(p, conv, x, 1, pad), eps), 0.0), 2, 2, 0)
        seq = x.transpose(2, 0, 1)  # [T', B, C]
        w_ih, w_hh = p["gru.weight_ih_l0"], p["gru.weight_hh_l0"]
        b_ih, b_hh = p["gru.bias_ih_l0"], p["gru.bias_hh_l0"]

        def step(h: Any, xt: Any) -> tuple[Any, None]:
            gi = xt @ w_ih.T + b_ih
            gh = h @ w_hh.T + b_hh
            r = jax.nn.sigmoid(gi[:, :hidden] + gh[:, :hidden])
            z = jax.nn.sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
            n = jnp.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
            return (1.0 - z) * n + z * h, None

        h0 = jnp.zeros((signal.shape[0], hidden), dtype=signal.dtype)
        h, _ = lax.scan(step, h0, seq)
        return _linear(p, "head", h)

    return forward


def _bert(m: Any) -> Forward:
    import jax
    import jax.numpy as jnp

    heads = int(m.layers[0].heads)
    n_layers = len(m.layers)
    eps = float(m.embed_norm.eps)

    def forward(p: Params, input_ids: Any, attention_mask: Any) -> Any:
        t = input_ids.shape[1]
        x = (
            p["word_embeddings.weight"][input_ids]
            + p["position_embeddings.weight"][jnp.arange(t)][None]
            + p["token_type_embeddings.weight"][0]
        )
        x = _layer_norm(p, "embed_norm", x, eps)
        additive = (1.0 - attention_mask[:, None, None, :].astype(x.dtype)) * jnp.finfo(x.dtype).min  # type: ignore[no-untyped-call]
        for i in range(n_layers):
            n = f"layers.{i}"
            q, k, v = (_heads(_linear(p, f"{n}.{w}", x), heads) for w in ("query", "key", "value"))
            ctx = _attention(q, k, v, additive)
            x = _layer_norm(p, f"{n}.attn_norm", x + _linear(p, f"{n}.attn_out", _merge(ctx)), eps)
            ffn = _linear(p, f"{n}.ffn_out", jax.nn.gelu(_linear(p, f"{n}.ffn_in", x), approximate=False))
            x = _layer_norm(p, f"{n}.ffn_norm", x + ffn, eps)
        pooled = jnp.tanh(_linear(p, "pooler", x[:, 0]))
        return _linear(p, "classifier", pooled)

    return forward


def _gpt2_block(p: Params, n: str, x: Any, heads: int, eps: float, keys: Any, values: Any, mask: Any) -> Any:
    """One pre-LN block over ``x [B, t, H]`` attending to ``keys``/``values`` with ``mask``."""
    import jax

    q = _heads(_linear(p, f"{n}.c_attn", _layer_norm(p, f"{n}.ln_1", x, eps))[..., : x.shape[-1]], heads)
    ctx = _attention(q, keys, values, mask)
    x = x + _linear(p, f"{n}.c_proj", _merge(ctx))
    h = _linear(p, f"{n}.mlp_fc", _layer_norm(p, f"{n}.ln_2", x, eps))
    return x + _linear(p, f"{n}.mlp_proj", jax.nn.gelu(h, approximate=True))


def _gpt2_kv(p: Params, n: str, x: Any, heads: int, eps: float) -> tuple[Any, Any]:
    hdim = x.shape[-1]
    qkv = _linear(p, f"{n}.c_attn", _layer_norm(p, f"{n}.ln_1", x, eps))
    return _heads(qkv[..., hdim : 2 * hdim], heads), _heads(qkv[..., 2 * hdim :], heads)


def _gpt2(m: Any) -> Forward:
    import jax.numpy as jnp

    heads = int(m.blocks[0].heads)
    n_layers = len(m.blocks)
    eps = float(m.ln_f.eps)

    def forward(p: Params, input_ids: Any) -> Any:
        t = input_ids.shape[1]
        x = p["wte.weight"][input_ids] + p["wpe.weight"][jnp.arange(t)][None]
        causal = jnp.where(jnp.tril(jnp.ones((t, t), dtype=bool)), 0.0, -jnp.inf).astype(x.dtype)
        for i in range(n_layers):
            k, v = _gpt2_kv(p, f"blocks.{i}", x, heads, eps)
            x = _gpt2_block(p, f"blocks.{i}", x, heads, eps, k, v, causal)
        return _layer_norm(p, "ln_f", x[:, -1], eps) @ p["wte.weight"].T

    return forward


def decoder_steps(module: Any) -> tuple[Callable[..., Any], Callable[..., Any], Callable[[Any], Any]]:
    """Greedy decoding for a :class:`~workloads.nets.transformer.GPT2LM` over a fixed-shape cache.

    Returns ``(prefill, decode, new_cache)``: ``new_cache(dtype)`` is the zeroed cache
    ``[layers, 2, 1, heads, n_positions, head_dim]``; ``prefill(params, cache, ids [1, T],
    length)`` runs a prompt padded to ``T`` whose first ``length`` tokens are real and returns
    ``(logits of token length-1, cache)``; ``decode(params, cache, token [1, 1], pos)`` runs one
    token at position ``pos`` (attending to positions ``<= pos``) and returns ``(logits,
    cache)``. Padded positions are written to the cache but never read: position ``p`` is
    rewritten by the decode step at ``p`` before any step reads it."""
    import jax.numpy as jnp
    from jax import lax

    heads = int(module.blocks[0].heads)
    n_layers = len(module.blocks)
    eps = float(module.ln_f.eps)
    n_pos = int(module.n_positions)
    hidden = int(module.wte.weight.shape[1])
    hd = hidden // heads

    def new_cache(dtype: Any) -> Any:
        return jnp.zeros((n_layers, 2, 1, heads, n_pos, hd), dtype=dtype)

    def prefill(p: Params, cache: Any, ids: Any, length: Any) -> tuple[Any, Any]:
        t = ids.shape[1]
        x = p["wte.weight"][ids] + p["wpe.weight"][jnp.arange(t)][None]
        causal = jnp.where(jnp.tril(jnp.ones((t, t), dtype=bool)), 0.0, -jnp.inf).astype(x.dtype)
        for i in range(n_layers):
            k, v = _gpt2_kv(p, f"blocks.{i}", x, heads, eps)
            cache = lax.dynamic_update_slice(cache, jnp.stack([k, v])[None], (i, 0, 0, 0, 0, 0))
            x = _gpt2_block(p, f"blocks.{i}", x, heads, eps, k, v, causal)
        last = lax.dynamic_slice_in_dim(x, length - 1, 1, axis=1)[:, 0]
        return _layer_norm(p, "ln_f", last, eps) @ p["wte.weight"].T, cache

    def decode(p: Params, cache: Any, token: Any, pos: Any) -> tuple[Any, Any]:
        x = p["wte.weight"][token] + lax.dynamic_slice_in_dim(p["wpe.weight"], pos, 1, axis=0)[None]
        seen = jnp.where(jnp.arange(n_pos) <= pos, 0.0, -jnp.inf).astype(x.dtype)[None, None, None, :]
        for i in range(n_layers):
            k, v = _gpt2_kv(p, f"blocks.{i}", x, heads, eps)
            cache = lax.dynamic_update_slice(cache, jnp.stack([k, v])[None], (i, 0, 0, 0, pos, 0))
            x = _gpt2_block(p, f"blocks.{i}", x, heads, eps, cache[i, 0], cache[i, 1], seen)
        return _layer_norm(p, "ln_f", x[:, -1], eps) @ p["wte.weight"].T, cache

    return prefill, decode, new_cache
