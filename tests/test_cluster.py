"""A suite across a local two-node Ray cluster (head + worker on 127.0.0.1) into one run
record; the worker node is killed while it measures a cell, and every cell still ends up
measured or recorded with the reason it was not."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Ray swaps 127.0.0.1 for the host's outward address when it connects unless this is 0; the
# test cluster listens on loopback only. Set before Ray is imported (read at import).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'inference-harness[cluster]')")

from harness.cluster.resources import CPU_DEVICE_RESOURCE  # noqa: E402
from harness.core.spec import load_suite  # noqa: E402
from harness.store.results import load_raw, load_run  # noqa: E402

pytestmark = pytest.mark.slow

SUITE = """\
name: cluster-test
defaults:
  size: tiny
  timeout_s: 120
  stop: {min_duration_s: 1.5, min_queries: 32, max_duration_s: 6, warmup_s: 0.01, warmup_queries: 2}
matrix:
  - models: [tabular_mlp]
    backends: ["null"]
    scenarios:
      - {name: offline, sweep: {batch_size: [1, 2, 4, 8]}}
  # no node of the test cluster has a GPU: recorded skipped at once, saying what it needs
  - models: [tabular_mlp]
    backends: [{name: "null", device: cuda}]
    scenarios: [offline]
"""

NODE = {"num_cpus": 1, "resources": {CPU_DEVICE_RESOURCE: 1}, "node_ip_address": "127.0.0.1"}
# a killed node is declared dead after about 1.5 s instead of the default 30 s
FAST_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 3}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """A head and one worker node, each offering one CPU slot and one CPU device, and the
    worker's temporary directory (its TMPDIR: a cell in flight there has a ``harness-cell-*``
    directory in it); always shut down."""
    from ray.cluster_utils import Cluster

    c = None
    try:
        c = Cluster(
            initialize_head=True,
            head_node_args={
                **NODE,
                "include_dashboard": False,
                "object_store_memory": 100 * 2**20,
                "_system_config": FAST_DEATH,
            },
        )
        worker_tmp = tmp_path / "worker-tmp"
        worker_tmp.mkdir()
        c.add_node(**NODE, object_store_memory=100 * 2**20, env_vars={"TMPDIR": str(worker_tmp)})
        c.wait_for_nodes(timeout=120)
        yield c, worker_tmp
    finally:
        if c is not None:
            c.shutdown()


def _cells_on(results: Path, node_id: str) -> int:
    """Cells recorded so far (in the one run.json under ``results``) that ran on ``node_id``."""
    for p in results.glob("*/run.json"):
        try:
            cells = json.loads(p.read_text())["cells"]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(c.get("extra", {}).get("cluster", {}).get("node_id") == node_id for c in cells)
    return 0


def test_suite_across_two_nodes_survives_a_worker_killed_mid_cell(cluster: tuple[Any, Path], tmp_path: Path) -> None:
    cluster, worker_tmp = cluster
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    head_id = cluster.head_node.node_id
    worker = cluster.list_all_nodes()[1]
    cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--results", str(results)]
    proc = subprocess.Popen(
        [*cmd, "--cluster", cluster.address], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # the worker measures a cell, then Ray hands it another: kill the node while that one is in flight
        deadline = time.monotonic() + 240

        def wait_for(what: str, done: Any) -> None:
            while not done():
                assert proc.poll() is None, f"the run ended before {what}:\n{proc.stdout.read()}"  # type: ignore[union-attr]
                assert time.monotonic() < deadline, f"not {what} within 240 s"
                time.sleep(0.1)

        wait_for("the worker node finished a cell", lambda: _cells_on(results, worker.node_id) > 0)
        wait_for("the worker node started a second cell", lambda: any(worker_tmp.glob("harness-cell-*")))
        time.sleep(0.5)
        cluster.remove_node(worker, allow_graceful=False)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 1), out  # 1: a cell lost twice is recorded crashed

    (run_dir,) = [p.parent for p in results.glob("*/run.json")]
    run = load_run(run_dir.name, results)
    _, specs = load_suite(suite)
    assert run.status == "complete"
    assert sorted(c.cell_id for c in run.cells) == sorted(s.cell_id for s in specs)  # each cell once
    nodes_used = set()
    for c in run.cells:
        info = c.extra["cluster"]
        if c.status == "ok":
            nodes_used.add(info["node_id"])
            assert info["node_id"] in (head_id, worker.node_id)
            assert len(load_raw(run, c.cell_id, results)) >= 32  # its raw rows came back from the node
            assert c.metrics["throughput"].value > 0
        elif c.spec.device != "cpu":
            assert c.status == "skipped" and "no live cluster node offers GPU=1" in (c.error or ""), c
        else:
            assert c.status in ("crashed", "failed") and c.error, c
    assert nodes_used == {head_id, worker.node_id}, "cells ran on both nodes"
    # the cell in flight on the killed node was lost there and run again on the head (or recorded crashed)
    lost = [c for c in run.cells if c.extra["cluster"]["lost_attempts"]]
    assert lost, [c.extra["cluster"] for c in run.cells]
    for c in lost:
        if c.status == "ok":
            assert c.extra["cluster"] == {**c.extra["cluster"], "node_id": head_id, "attempts": 2}
    # each node recorded its own environment and host profile
    envs = run.environment["cluster"]["nodes"]
    for nid in (head_id, worker.node_id):
        assert envs[nid]["environment"]["profile_id"] and envs[nid]["environment"]["host"]

    # read like any other run: the CLI's show and the app's tables
    from typer.testing import CliRunner

    from harness.app.data import all_cells, runs_table
    from harness.cli.main import app

    shown = CliRunner().invoke(app, ["show", run.run_id, "--results", str(results), "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    assert all(c.cell_id in shown.output for c in run.cells)
    assert len(all_cells([run])) == len(run.cells) and len(runs_table([run])) == 1


def test_unreachable_or_malformed_address_is_a_clear_error_before_anything_is_written(
    tmp_path: Path, write_suite: Any
) -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app

    suite = write_suite(SUITE)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, why in ((f"127.0.0.1:{port}", "nothing answers at 127.0.0.1"), ("head-node", "is not one of")):
        res = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp_path / "r"), "--cluster", address])
        assert res.exit_code == 2, res.output
        assert why in " ".join(res.output.split())
    assert not any((tmp_path / "r").glob("*/run.json"))
