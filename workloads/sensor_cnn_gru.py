"""1-D CNN + GRU classifier over multichannel sensor windows.

standard: 6 channels x 256 steps, conv blocks 32-64-64 (kernel 5, each halving time),
GRU(128), 8 classes. tiny: 6 x 64, conv 8-16, GRU(16), 8 classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads._torch_workload import TorchWorkload, check_batch, rng


@dataclass(frozen=True)
class SensorConfig:
    channels: int = 6
    steps: int = 256
    conv_channels: tuple[int, ...] = (32, 64, 64)
    kernel_size: int = 5
    gru_hidden: int = 128
    num_classes: int = 8
    seed: int = 0


class SensorCNNGRUWorkload(TorchWorkload):
    name = "sensor_cnn_gru"
    family = "cnn-rnn"
    task = "timeseries"
    config_cls = SensorConfig
    presets: ClassVar[dict[str, Any]] = {
        "standard": SensorConfig(),
        "tiny": SensorConfig(steps=64, conv_channels=(8, 16), gru_hidden=16),
    }
    output_names = ("logits",)
    net_module = "workloads.nets.cnn_gru"

    def __init__(self, size: str = "standard", **params: Any) -> None:
        super().__init__(size, **params)
        c = self.config
        if c.steps % (2 ** len(c.conv_channels)):
            raise ValueError(f"sensor_cnn_gru: steps ({c.steps}) must be divisible by 2**{len(c.conv_channels)}")

    def _build(self) -> Any:
        # the nets import torch, which importing the zoo never does
        from workloads.nets.cnn_gru import SensorCNNGRU

        c = self.config
        return SensorCNNGRU(c.channels, tuple(c.conv_channels), c.kernel_size, c.gru_hidden, c.num_classes)

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        c = self.config
        return {"signal": (c.channels, c.steps)}, {"signal": "float32"}

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Sinusoids with random frequency/phase per channel plus Gaussian noise, float32."""
        check_batch(batch_size)
        c = self.config
        g = rng(seed)
        t = np.arange(c.steps, dtype=np.float32)
        freq = g.uniform(0.01, 0.2, size=(batch_size, c.channels, 1)).astype(np.float32)
        phase = g.uniform(0, 2 * np.pi, size=(batch_size, c.channels, 1)).astype(np.float32)
        noise = g.standard_normal((batch_size, c.channels, c.steps), dtype=np.float32)
        signal = np.sin(2 * np.pi * freq * t + phase) + np.float32(0.1) * noise
        return {"signal": signal.astype(np.float32)}
