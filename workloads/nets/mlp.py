"""Tabular scoring MLP: numeric features plus categorical embeddings -> one logit."""

from __future__ import annotations

import torch
from torch import nn


class TabularMLP(nn.Module):
    """Inputs ``numeric [B, F]`` float32 and ``categorical [B, C]`` int64 -> ``[B, 1]`` logit."""

    def __init__(
        self,
        num_numeric: int,
        cardinalities: tuple[int, ...],
        embed_dim: int,
        hidden: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in cardinalities)
        self.norm = nn.LayerNorm(num_numeric)
        layers: list[nn.Module] = []
        width = num_numeric + embed_dim * len(cardinalities)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [self.norm(numeric)]
        parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        logits: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return logits
