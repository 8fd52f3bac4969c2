"""Draft models for speculative decoding of the zoo's GPT-2 (:class:`workloads.nets.transformer.GPT2LM`).

* :func:`truncated_draft` -- the target's first ``layers`` blocks with its embeddings, final norm
  and tied head (shared, not copied): same tokenizer space, a fraction of the compute.
* :func:`all_logits` -- the verify forward: logits at *every* new position given a cache (the
  module's own ``prefill``/``decode`` return the last position only).

Both import torch lazily; importing this module never does.
"""

from __future__ import annotations

from typing import Any


def truncated_draft(target: Any, layers: int) -> Any:
    """A ``GPT2LM`` running the first ``layers`` blocks of ``target``, sharing its parameters."""
    # torch is optional: importing the zoo never imports it
    from torch import nn

    from workloads.nets.transformer import GPT2LM

    n = len(target.blocks)
    if not 1 <= layers < n:
        raise ValueError(f"draft layers must be in [1, {n - 1}] for a target of {n} layers, got {layers}")
    draft = GPT2LM.__new__(GPT2LM)
    nn.Module.__init__(draft)
    draft.n_positions = target.n_positions
    draft.wte = target.wte
    draft.wpe = target.wpe
    draft.blocks = nn.ModuleList(list(target.blocks)[:layers])
    draft.ln_f = target.ln_f
    return draft.eval()


def all_logits(module: Any, ids: Any, cache: Any) -> tuple[Any, Any]:
    """``ids [B, t]`` appended after ``cache`` (``None``: no past) -> (logits ``[B, t, vocab]``,
    the extended cache), token ``i`` attending causally to the cache and tokens ``0..i``."""
    # torch is optional: importing the zoo never imports it
    import torch
    import torch.nn.functional as F

    past = 0 if cache is None else int(cache[0][0].shape[2])
    t = ids.shape[1]
    if past + t > module.n_positions:
        raise ValueError(f"sequence length {past + t} exceeds the context of {module.n_positions}")
    pos = torch.arange(past, past + t, device=ids.device).unsqueeze(0)
    x = module.wte(ids) + module.wpe(pos)
    new_cache = []
    for i, block in enumerate(module.blocks):
        x, kv = block(x, None if cache is None else cache[i])
        new_cache.append(kv)
    return F.linear(module.ln_f(x), module.wte.weight), tuple(new_cache)


def truncate_cache(cache: Any, length: int) -> Any:
    """The first ``length`` positions of every layer's key/value cache."""
    return tuple((k[:, :, :length], v[:, :, :length]) for k, v in cache)
