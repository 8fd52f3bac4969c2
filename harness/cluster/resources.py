"""What a cell asks of a cluster node, as Ray resources (pure: no Ray import).

Nodes are labelled when they start (``ray start --resources '{...}'``):

* :data:`CPU_DEVICE_RESOURCE` (``harness_device_cpu``) = 1 on every node that may measure CPU
  cells. A CPU cell takes all of it, so two CPU cells never measure on one node at once.
* ``profile:<hardware profile id>`` (:func:`profile_resource`) = the number of devices of that
  profile on the node, e.g. ``{"profile:nvidia-h200-sxm": 8}``. A cell of a run named to a
  profile (``harness run --profile ID --cluster ...``) runs only on nodes carrying it.

A ``cuda`` / ``cuda:N`` cell asks for ``N + 1`` whole GPUs (Ray's ``num_gpus``; Ray sets
``CUDA_VISIBLE_DEVICES`` to the GPUs it gave, so ``cuda:N`` exists in the task and no other cell
shares them). A CPU cell asks for one CPU slot plus :data:`CPU_DEVICE_RESOURCE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: custom resource each CPU-measuring node offers once: one CPU cell per node at a time
CPU_DEVICE_RESOURCE = "harness_device_cpu"


def profile_resource(profile_id: str) -> str:
    """The custom resource naming hardware profile ``profile_id`` (``profile:<id>``)."""
    return f"profile:{profile_id}"


@dataclass(frozen=True)
class Requirements:
    """Ray resources one cell needs: ``num_cpus``, ``num_gpus`` and custom ``resources``."""

    num_cpus: float
    num_gpus: float
    resources: dict[str, float] = field(default_factory=dict)

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for ``remote_function.options(...)``."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": dict(self.resources)}

    def as_totals(self) -> dict[str, float]:
        """The same needs keyed like ``ray.cluster_resources()`` (``CPU``, ``GPU``, custom)."""
        out = {k: v for k, v in self.resources.items() if v > 0}
        if self.num_cpus > 0:
            out["CPU"] = self.num_cpus
        if self.num_gpus > 0:
            out["GPU"] = self.num_gpus
        return out

    def describe(self) -> str:
        """``CPU=1, harness_device_cpu=1`` -- for error messages."""
        return ", ".join(f"{k}={v:g}" for k, v in sorted(self.as_totals().items()))


def gpu_count(device: str) -> int:
    """Whole GPUs a cell on ``device`` reserves: 0 for ``cpu``, ``N + 1`` for ``cuda:N``, 1 for
    ``cuda``. Raises ``ValueError`` naming the allowed forms for anything else."""
    if device == "cpu":
        return 0
    if device == "cuda":
        return 1
    head, _, index = device.partition(":")
    if head == "cuda" and index.isdigit():
        return int(index) + 1
    raise ValueError(f"device {device!r} cannot be placed on a cluster node; allowed: cpu, cuda, cuda:N")


def cell_requirements(device: str, profile_id: str | None = None, profile_kind: str | None = None) -> Requirements:
    """The resources of a cell on ``device``. ``profile_id`` (of kind ``profile_kind``: ``cpu``,
    ``gpu``, ...) is the hardware profile the run was named to: a cell whose device is of that
    kind also needs ``profile:<id>`` (one per device it reserves)."""
    gpus = gpu_count(device)
    if gpus == 0:
        res: dict[str, float] = {CPU_DEVICE_RESOURCE: 1.0}
        if profile_id is not None and profile_kind == "cpu":
            res[profile_resource(profile_id)] = 1.0
        return Requirements(num_cpus=1.0, num_gpus=0.0, resources=res)
    res = {}
    if profile_id is not None and profile_kind not in (None, "cpu"):
        res[profile_resource(profile_id)] = float(gpus)
    # the task's own process is light; the GPUs are what the cell holds exclusively
    return Requirements(num_cpus=0.0, num_gpus=float(gpus), resources=res)


def fits(needs: Requirements, node_totals: Mapping[str, float]) -> bool:
    """True when one node offering ``node_totals`` (its total resources) can ever run the cell."""
    return all(node_totals.get(k, 0.0) >= v for k, v in needs.as_totals().items())


def unplaceable_reason(needs: Requirements, nodes: list[Mapping[str, float]]) -> str | None:
    """Why no node of ``nodes`` (each its total resources) can run the cell, or None if one can."""
    if any(fits(needs, n) for n in nodes):
        return None
    have = sorted({k for n in nodes for k in n if not k.startswith(("node:", "memory", "object_store"))})
    return (
        f"no live cluster node offers {needs.describe()} (node resources seen: {', '.join(have) or 'none'}); "
        f"start a node with --resources '{{\"{CPU_DEVICE_RESOURCE}\": 1}}' for CPU cells "
        "or label GPU nodes with their profile (docs/cluster.md)"
    )
