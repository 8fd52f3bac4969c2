"""The speed–accuracy front of a variants run, and ``harness show`` of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.analysis.variants import front
from harness.core.metrics import Metric
from harness.core.records import CellRecord, CellSpec, RunRecord
from harness.store.results import save_run


def _cell(backend: str, variant: str | None, speed: float | None, agreement: float | None, status: str = "ok"):
    spec = CellSpec(model="bert", backend=backend, scenario="offline", variant=variant)
    metrics = {}
    if speed is not None:
        metrics["throughput"] = Metric(value=speed, unit="samples/s")
    if agreement is not None:
        metrics["top1_agreement"] = Metric(value=agreement, unit="fraction")
    extra = {"accuracy": {"agreement": agreement}} if agreement is not None else {}
    return CellRecord(
        cell_id=spec.cell_id,
        spec=spec,
        status=status,
        metrics=metrics,
        extra=extra,
        error=None if status == "ok" else "variant 'bf16' is not supported on backend 'onnxruntime'",
    )


def _run() -> RunRecord:
    return RunRecord(
        run_id="r1",
        cells=[
            _cell("torch", "fp32", 100.0, 1.0),
            _cell("torch", "int8-dynamic", 150.0, 0.97),
            _cell("torch", "pruned-50", 90.0, 0.5),  # slower and less accurate than fp32
            _cell("onnxruntime", "int8-static", 150.0, 0.90),  # as fast as int8-dynamic, less accurate
            _cell("onnxruntime", "bf16", None, None, status="skipped"),
            _cell("torch", None, 120.0, None),  # no variant: not a point
        ],
    )


def test_front_marks_the_undominated_points():
    points = {f"{p.backend}+{p.variant}": p for p in front(_run())}
    assert set(points) == {
        "torch+fp32",
        "torch+int8-dynamic",
        "torch+pruned-50",
        "onnxruntime+int8-static",
        "onnxruntime+bf16",
    }
    assert points["torch+fp32"].on_front and points["torch+int8-dynamic"].on_front
    assert not points["torch+pruned-50"].on_front
    assert not points["onnxruntime+int8-static"].on_front
    skipped = points["onnxruntime+bf16"]
    assert not skipped.on_front and "not supported" in skipped.note


def test_front_is_empty_without_variant_cells():
    assert front(RunRecord(run_id="r0", cells=[_cell("torch", None, 1.0, None)])) == []


def test_show_prints_the_front(tmp_path):
    save_run(_run(), tmp_path)
    env = {**os.environ, "COLUMNS": "240"}
    cmd = [sys.executable, "-m", "harness.cli", "show", "r1", "-o", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "speed–accuracy front" in res.stdout and "torch+int8-dynamic" in res.stdout
    res = subprocess.run([*cmd, "--front", "-f", "json"], capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(res.stdout)
    on = {r["variant"] for r in rows if r["front"]}
    assert on == {"torch+fp32", "torch+int8-dynamic"}


def test_token_stream_points_use_tokens_per_s_and_tpot():
    spec = CellSpec(model="gpt2", backend="torch", scenario="token-stream", variant="speculative-k4")
    metrics = {
        "output_tokens_per_s": Metric(value=1500.0, unit="tokens/s"),
        "latency_p50": Metric(value=20.0, unit="ms"),
        "tpot_p50": Metric(value=0.5, unit="ms"),
        "acceptance_rate": Metric(value=0.8, unit="fraction"),
    }
    rec = CellRecord(
        cell_id=spec.cell_id, spec=spec, status="ok", metrics=metrics, extra={"accuracy": {"agreement": 1.0}}
    )
    (p,) = front(RunRecord(run_id="r2", cells=[rec]))
    assert (p.speed, p.speed_metric) == (1500.0, "output_tokens_per_s")
    assert (p.latency_ms, p.latency_metric) == (0.5, "tpot_p50")
    assert p.on_front and p.extra["acceptance_rate"] == 0.8
