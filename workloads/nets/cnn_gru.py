"""1-D CNN feature extractor followed by a GRU, for fixed-length multichannel sensor windows."""

from __future__ import annotations

import torch
from torch import nn


class SensorCNNGRU(nn.Module):
    """Input ``[B, channels, steps]`` float32 -> logits ``[B, num_classes]``.

    Each conv block: Conv1d(k, same padding) -> BatchNorm1d -> ReLU -> MaxPool1d(2). The GRU
    runs over the pooled time axis; its final hidden state feeds the classifier."""

    def __init__(
        self,
        channels: int,
        conv_channels: tuple[int, ...],
        kernel_size: int,
        gru_hidden: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        ch = channels
        for out in conv_channels:
            blocks += [
                nn.Conv1d(ch, out, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm1d(out),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            ch = out
        self.features = nn.Sequential(*blocks)
        self.gru = nn.GRU(ch, gru_hidden, batch_first=True)
        self.head = nn.Linear(gru_hidden, num_classes)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        feats = self.features(signal).transpose(1, 2)  # [B, T', C]
        _, h_n = self.gru(feats)
        logits: torch.Tensor = self.head(h_n[-1])
        return logits
