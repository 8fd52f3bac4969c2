"""Fraud-scoring style MLP over numeric features and categorical embeddings -> one logit.

standard: 64 numeric features, 4 categorical columns (cardinalities 1000/200/50/7, embedding
16), hidden 512-256-128. tiny: 16 numeric, 2 categorical (50/7, embedding 4), hidden 32-16-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads._torch_workload import TorchWorkload, check_batch, rng


@dataclass(frozen=True)
class TabularConfig:
    num_numeric: int = 64
    cardinalities: tuple[int, ...] = (1000, 200, 50, 7)
    embed_dim: int = 16
    hidden: tuple[int, ...] = (512, 256, 128)
    seed: int = 0


class TabularMLPWorkload(TorchWorkload):
    name = "tabular_mlp"
    family = "mlp"
    task = "tabular"
    config_cls = TabularConfig
    presets: ClassVar[dict[str, Any]] = {
        "standard": TabularConfig(),
        "tiny": TabularConfig(num_numeric=16, cardinalities=(50, 7), embed_dim=4, hidden=(32, 16, 8)),
    }
    output_names = ("logit",)
    net_module = "workloads.nets.mlp"

    def _build(self) -> Any:
        # the nets import torch, which importing the zoo never does
        from workloads.nets.mlp import TabularMLP

        c = self.config
        return TabularMLP(c.num_numeric, tuple(c.cardinalities), c.embed_dim, tuple(c.hidden))

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        c = self.config
        return (
            {"numeric": (c.num_numeric,), "categorical": (len(c.cardinalities),)},
            {"numeric": "float32", "categorical": "int64"},
        )

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Standard-normal numeric features; category codes uniform in ``[0, cardinality)``."""
        check_batch(batch_size)
        c = self.config
        g = rng(seed)
        numeric = g.standard_normal((batch_size, c.num_numeric), dtype=np.float32)
        cats = np.stack([g.integers(0, n, size=batch_size, dtype=np.int64) for n in c.cardinalities], axis=1)
        return {"numeric": numeric, "categorical": cats}
