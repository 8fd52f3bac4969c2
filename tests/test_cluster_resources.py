"""What a cell asks of a cluster node (pure; no Ray needed)."""

from __future__ import annotations

import pytest

from harness.cluster.resources import (
    CPU_DEVICE_RESOURCE,
    cell_requirements,
    fits,
    gpu_count,
    profile_resource,
    unplaceable_reason,
)


def test_cpu_cell_takes_the_nodes_one_cpu_device_slot():
    needs = cell_requirements("cpu")
    assert needs.ray_options() == {"num_cpus": 1.0, "num_gpus": 0.0, "resources": {CPU_DEVICE_RESOURCE: 1.0}}
    # a node offering one slot runs one CPU cell at a time; a node without it never runs one
    assert fits(needs, {"CPU": 4, CPU_DEVICE_RESOURCE: 1})
    assert not fits(needs, {"CPU": 4})


def test_gpu_cells_reserve_whole_gpus_of_the_named_profile():
    assert [gpu_count(d) for d in ("cpu", "cuda", "cuda:0", "cuda:3")] == [0, 1, 1, 4]
    needs = cell_requirements("cuda:1", "nvidia-h200-sxm", "gpu")
    assert needs.as_totals() == {"GPU": 2.0, profile_resource("nvidia-h200-sxm"): 2.0}
    assert fits(needs, {"CPU": 8, "GPU": 8, "profile:nvidia-h200-sxm": 8})
    assert not fits(needs, {"CPU": 8, "GPU": 8, "profile:nvidia-h100-sxm": 8})
    # a GPU profile does not constrain CPU cells of the same run, and vice versa
    assert profile_resource("nvidia-h200-sxm") not in cell_requirements("cpu", "nvidia-h200-sxm", "gpu").resources
    assert cell_requirements("cuda", "intel-xeon-8480", "cpu").resources == {}
    assert cell_requirements("cpu", "intel-xeon-8480", "cpu").resources[profile_resource("intel-xeon-8480")] == 1


def test_unknown_device_and_unplaceable_cell_say_why():
    with pytest.raises(ValueError, match="allowed: cpu, cuda, cuda:N"):
        gpu_count("xpu:0")
    needs = cell_requirements("cuda", "nvidia-h200-sxm", "gpu")
    why = unplaceable_reason(needs, [{"CPU": 2, CPU_DEVICE_RESOURCE: 1, "node:10.0.0.1": 1}])
    assert why is not None
    assert "GPU=1" in why and "profile:nvidia-h200-sxm=1" in why and CPU_DEVICE_RESOURCE in why
    assert "node:10.0.0.1" not in why
    assert unplaceable_reason(cell_requirements("cpu"), [{"CPU": 1}, {"CPU": 1, CPU_DEVICE_RESOURCE: 1}]) is None
