"""BERT encoder with a sequence-classification head (pooled [CLS] -> logits).

standard: BERT-base (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522, seq 128),
about 109.5 M parameters including embeddings and pooler.
tiny: 2 layers, hidden 64, 4 heads, FFN 256, vocab 1024, seq 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads._torch_workload import TorchWorkload, check_batch, rng


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    max_positions: int = 512
    type_vocab_size: int = 2
    seq_len: int = 128
    num_labels: int = 2
    #: padded fraction: each sample keeps between ``min_fill * seq_len`` and ``seq_len`` tokens
    min_fill: float = 0.5
    seed: int = 0


class BertWorkload(TorchWorkload):
    name = "bert"
    family = "transformer-encoder"
    task = "encoder"
    config_cls = BertConfig
    presets: ClassVar[dict[str, Any]] = {
        "standard": BertConfig(),
        "tiny": BertConfig(vocab_size=1024, hidden=64, layers=2, heads=4, ffn=256, max_positions=64, seq_len=32),
    }
    output_names = ("logits",)
    net_module = "workloads.nets.transformer"

    def __init__(self, size: str = "standard", **params: Any) -> None:
        super().__init__(size, **params)
        c = self.config
        if c.hidden % c.heads:
            raise ValueError(f"bert: hidden ({c.hidden}) must be divisible by heads ({c.heads})")
        if c.seq_len > c.max_positions:
            raise ValueError(f"bert: seq_len ({c.seq_len}) exceeds max_positions ({c.max_positions})")

    def _build(self) -> Any:
        # the nets import torch, which importing the zoo never does
        from workloads.nets.transformer import BertClassifier

        c = self.config
        return BertClassifier(
            c.vocab_size,
            c.hidden,
            c.layers,
            c.heads,
            c.ffn,
            c.max_positions,
            c.type_vocab_size,
            c.num_labels,
        )

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        t = self.config.seq_len
        return (
            {"input_ids": (t,), "attention_mask": (t,)},
            {"input_ids": "int64", "attention_mask": "int64"},
        )

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Token ids uniform in ``[1, vocab)`` with position 0 as [CLS]-like first token;
        each sample has a random length in ``[min_fill*seq_len, seq_len]``, the rest padded
        with id 0 and mask 0."""
        check_batch(batch_size)
        c = self.config
        g = rng(seed)
        ids = g.integers(1, c.vocab_size, size=(batch_size, c.seq_len), dtype=np.int64)
        low = max(1, int(np.ceil(c.min_fill * c.seq_len)))
        lengths = g.integers(low, c.seq_len + 1, size=batch_size)
        mask = (np.arange(c.seq_len)[None, :] < lengths[:, None]).astype(np.int64)
        ids = ids * mask
        return {"input_ids": ids, "attention_mask": mask}
