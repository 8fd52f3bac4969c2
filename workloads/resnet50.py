"""ResNet-50 image classifier (bottleneck blocks ``[3, 4, 6, 3]``).

standard: 224x224x3 input, base width 64, 1000 classes (about 25.6 M parameters).
tiny: 32x32x3 input, base width 8, 10 classes, same depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads._torch_workload import TorchWorkload, check_batch, rng


@dataclass(frozen=True)
class ResNetConfig:
    image_size: int = 224
    width: int = 64
    layers: tuple[int, ...] = (3, 4, 6, 3)
    num_classes: int = 1000
    seed: int = 0


class ResNet50Workload(TorchWorkload):
    name = "resnet50"
    family = "cnn"
    task = "vision"
    config_cls = ResNetConfig
    presets: ClassVar[dict[str, Any]] = {
        "standard": ResNetConfig(),
        "tiny": ResNetConfig(image_size=32, width=8, num_classes=10),
    }
    output_names = ("logits",)
    net_module = "workloads.nets.resnet"

    def _build(self) -> Any:
        # the nets import torch, which importing the zoo never does
        from workloads.nets.resnet import ResNet

        c = self.config
        return ResNet(tuple(c.layers), c.width, c.num_classes)

    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        s = self.config.image_size
        return {"pixel_values": (3, s, s)}, {"pixel_values": "float32"}

    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Standard-normal pixels (as after mean/std normalisation), float32 NCHW."""
        check_batch(batch_size)
        s = self.config.image_size
        x = rng(seed).standard_normal((batch_size, 3, s, s), dtype=np.float32)
        return {"pixel_values": x}
