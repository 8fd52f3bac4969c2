"""``pruned-50``: half of the weights of every ``nn.Linear`` and ``nn.Conv*`` set to zero by
magnitude (``torch.nn.utils.prune.l1_unstructured``, amount 0.5, per layer), made permanent with
``prune.remove``. Embeddings and norms are kept. The tensors stay dense, so on CPU the speed is
expected to be the fp32 speed: the variant measures what unstructured sparsity costs in accuracy
(speed needs a sparse kernel: see ``sparse-2-4``). onnxruntime runs an export of the pruned
module."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.measure.variants.base import Variant, VariantWorkload

AMOUNT = 0.5


def prune_l1(module: Any, amount: float = AMOUNT) -> Any:
    """``module`` with ``amount`` of each Linear/Conv weight zeroed by L1 magnitude (in place)."""
    # deferred: torch is an optional extra, loaded only by torch-built cells
    import torch
    from torch.nn.utils import prune

    for sub in module.modules():
        if isinstance(sub, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            prune.l1_unstructured(sub, name="weight", amount=amount)  # type: ignore[no-untyped-call]
            prune.remove(sub, "weight")  # type: ignore[no-untyped-call]
    return module


class Pruned50(Variant):
    """50 % L1 unstructured pruning of every Linear and Conv weight, made permanent."""

    name: ClassVar[str] = "pruned-50"
    backends: ClassVar[tuple[str, ...]] = ("torch", "onnxruntime")
    changes_weights: ClassVar[bool] = True

    def transform(self, workload: Any, backend: str) -> Any:
        return VariantWorkload(workload, self.name, torch_transform=prune_l1)
