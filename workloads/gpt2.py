"""GPT-2 causal language model with a key/value cache.

standard: GPT-2 small (12 layers, hidden 768, 12 heads, vocab 50257, context 1024, tied
embeddings; about 124.4 M parameters), reference prompt length 128.
tiny: 2 layers, hidden 64, 4 heads, vocab 512, context 128, prompt 16.

The module offers ``forward(input_ids) -> last-position logits``, ``prefill`` and ``decode``
(batch 1 or equal lengths, one growing cache), and per-sequence slot caches for continuous
batching: ``new_slot_cache``, ``prefill_slots`` (prompt chunks) and ``decode_slots`` (one token
for each of several sequences of different lengths; see :class:`workloads.nets.transformer.GPT2LM`). ``flops_per_sample`` is the forward over one
prompt; ``flops_per_token_decode`` one decode step with ``prompt_len`` tokens cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads._counting import count_module
from workloads._torch_workload import TorchWorkload, check_batch, rng


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    n_positions: int = 1024
    prompt_len: int = 128
    seed: int = 0


class GPT2Workload(TorchWorkload):
    name = "gpt2"
    family = "transformer-decoder"
    task = "decoder"
    generative = True
    config_cls = GPT2Config
    presets: ClassVar[dict[str, Any]] = {
        "standard": GPT2Config(),
        "tiny": GPT2Config(vocab_size=512, hidden=64, layers=2, heads=4, n_positions=128, prompt_len=16),
    }
    output_names = ("logits",)
    net_module = "workloads.nets.transformer"

    def __init__(self, size: str = "standard", **params: Any) -> None:
        super().__init__(size, **params)
        c = self.config
        if c.hidden % c.heads:
            raise ValueError(f"gpt2: hidden ({c.hidden}) must be divisible by heads ({c.heads})")
        if not 1 <= c.prompt_len < c.n_positions:
            raise ValueError(f"gpt2: prompt_len ({c.prompt_len}) must be in [1, n_positions={c.n_positions})")

    def _build(self) -> Any:
        # the nets import torch, which importing the zoo never does
        from workloads.nets.transformer import GPT2LM

        c = self.config
        return GPT2LM(c.vocab_size, c.hidden, c.layers, c.heads, c.n_positions)

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        return {"input_ids": (self.config.prompt_len,)}, {"input_ids": "int64"}

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Prompt token ids uniform in ``[0, vocab)``, shape ``[B, prompt_len]`` int64."""
        check_batch(batch_size)
        c = self.config
        ids = rng(seed).integers(0, c.vocab_size, size=(batch_size, c.prompt_len), dtype=np.int64)
        return {"input_ids": ids}

    def kv_cache_bytes_per_token(self, dtype_bytes: int = 4) -> int:
        """Cache growth per token per sequence: key + value, every layer, ``hidden`` wide."""
        c = self.config
        return int(2 * c.layers * c.hidden * dtype_bytes)

    def _extra_info(self, module: Any, device: str) -> dict[str, Any]:
        # torch is optional: importing the zoo never imports it
        import torch

        (ids,) = self.example_args(1, device)
        with torch.no_grad():
            _, cache = module.prefill(ids)
        next_ids = torch.zeros((1, 1), dtype=torch.int64, device=device)
        decode = count_module(module, (next_ids, cache), call=module.decode)
        return {
            "flops_per_token_decode": decode.flops,
            "kv_cache_bytes_per_token": self.kv_cache_bytes_per_token(),
            "extra": {
                "decode_context_tokens": self.config.prompt_len,
                "decode_flops_method": decode.flops_method
                + f"; one decode step with {self.config.prompt_len} cached tokens",
                "kv_cache_dtype": "fp32",
            },
        }
