"""The CLI end to end on tiny models (real backends, real worker processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store.results import load_results, load_run

SUITE = """\
name: cli-e2e
defaults:
  size: tiny
  timeout_s: 120
  stop: {min_duration_s: 0.2, min_queries: 64, max_duration_s: 5, warmup_s: 0.05}
matrix:
  - models: [tabular_mlp, sensor_cnn_gru]
    backends: [torch, onnxruntime]
    scenarios:
      - {name: offline, sweep: {batch_size: [1, 4]}}
      - single-stream
"""


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    suite = d / "suite.yaml"
    suite.write_text(SUITE)
    res = harness("run", str(suite), "-o", str(d / "results"))
    return d, res


def test_run_measures_every_cell_and_prints_a_summary(cli_run):
    d, res = cli_run
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "12/12 cells ok" in out
    assert "estimated:tdp-model" in out  # no counter here: power is labelled as a model
    assert "Results:" in out
    df = load_results(d / "results")
    assert len(df) == 12
    assert set(df["backend"]) == {"torch", "onnxruntime"}
    assert set(df["scenario"]) == {"offline", "single-stream"}
    assert (df["status"] == "ok").all()
    assert df["parity_passed"].all()
    assert (df["throughput"] > 0).all()
    assert (df["power_w__prov"] == "estimated:tdp-model").all()
    assert df["usd_per_1m_inferences"].notna().all() and df["energy_per_inference_j"].notna().all()
    assert not df["usd_per_1m_inferences__prov"].str.startswith("measured").any()
    assert df.loc[df["scenario"] == "single-stream", "latency_early_stop"].notna().all()


def test_show_and_cell_detail(cli_run):
    d, _ = cli_run
    run_dir = next((d / "results").iterdir())
    res = harness("show", str(run_dir))
    assert res.returncode == 0, res.stderr
    assert "tabular_mlp-tiny.torch.offline.bs4" in res.stdout
    rec = load_run(run_dir)
    cid = rec.cells[0].cell_id
    res = harness("show", rec.run_id, "-o", str(d / "results"), "--cell", cid)
    assert res.returncode == 0, res.stderr
    assert "latency_p99" in res.stdout and "measured" in res.stdout
    data = json.loads((run_dir / "run.json").read_text())
    assert data["schema_version"] == 1 and data["status"] == "complete"


def test_list_commands():
    res = harness("list", "backends")
    assert res.returncode == 0 and "onnxruntime" in res.stdout and "tensorrt" in res.stdout
    res = harness("list", "models")
    assert "resnet50" in res.stdout and "gpt2" in res.stdout
    res = harness("list", "scenarios")
    assert "single-stream" in res.stdout and "offline" in res.stdout
    res = harness("list", "nonsense")
    assert res.returncode == 2 and "backends, models, scenarios" in res.stderr


def test_bad_suite_exits_2_with_location(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmatrix:\n  - models: [bert]\n    backends: [tensorflow]\n    scenarios: [offline]\n")
    res = harness("run", str(bad), "-o", str(tmp_path / "r"))
    assert res.returncode == 2
    assert "bad.yaml:4" in res.stderr and "unknown backend 'tensorflow'" in res.stderr


def test_show_unknown_run(tmp_path):
    res = harness("show", "no-such-run", "-o", str(tmp_path))
    assert res.returncode == 2 and "no run record" in res.stderr


def test_importing_harness_does_not_import_torch():
    code = (
        "import sys, harness, harness.cli, harness.core.stats, harness.core.economics, harness.core.hardware, "
        "harness.store.results, harness.core.spec, workloads.registry; "
        "print('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip() == "False", res.stderr
