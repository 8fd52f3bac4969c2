"""The pytest plugin, run through pytester: fixture, schema + pytest-benchmark JSON, gate."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from harness.measure.host import host_profile
from harness.store.export import benchmark_stats
from harness.store.results import load_run

pytest_plugins = ["pytester"]

_REGISTERED = any(ep.value == "harness.pytest_plugin" for ep in entry_points(group="pytest11"))
PLUGIN = [] if _REGISTERED else ["-p", "harness.pytest_plugin"]

STOP = '{"min_duration_s": 0.05, "min_queries": 64, "max_duration_s": 5, "warmup_s": 0.01, "warmup_queries": 2}'

TEST_FILE = f"""
def test_single_stream(inference_benchmark):
    cell = inference_benchmark("tabular_mlp", backend="null", scenario="single-stream", stop={STOP})
    assert cell.status == "ok"
    assert cell.metrics["latency_p50"].value >= 0

def test_offline(inference_benchmark):
    cell = inference_benchmark("tabular_mlp", backend="null", scenario="offline", batch_size=4, stop={STOP})
    assert cell.metrics["throughput"].value > 0

def test_plain():
    assert True
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_bench=TEST_FILE)
    return pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", *args)


def _make_fast_baseline(run_dir: Path, dest: Path) -> None:
    """A copy of ``run_dir`` whose latencies are 100x smaller."""
    import shutil

    import pandas as pd

    shutil.copytree(run_dir, dest)
    for f in (dest / "raw").glob("*.parquet"):
        df = pd.read_parquet(f)
        lat = df["completed_ns"] - df["scheduled_ns"]
        df["completed_ns"] = df["scheduled_ns"] + (lat // 100).clip(lower=1)
        df.to_parquet(f)


def test_fixture_schema_benchmark_json_and_gate(pytester: pytest.Pytester) -> None:
    res_dir = pytester.path / "res"
    result = _run(pytester, "--harness-results", str(res_dir))
    result.assert_outcomes(passed=3)
    runs = [d for d in res_dir.iterdir() if (d / "run.json").exists()]
    assert len(runs) == 1
    rec = load_run(runs[0])
    assert rec.status == "complete" and len(rec.cells) == 2
    # recorded like a suite run: manifest, host profile, the profile id on every cell
    profile = host_profile()
    assert rec.environment["profile_id"] == profile.id
    assert rec.environment["profile"] == profile.model_dump(mode="json")
    assert rec.environment["cpu_logical_cores"] >= 1 and "numpy" in rec.environment["packages"]
    assert {c.profile_id for c in rec.cells} == {profile.id}
    assert {c.extra["pytest_nodeid"].split("::")[1] for c in rec.cells} == {"test_single_stream", "test_offline"}
    assert all((runs[0] / c.raw_file).exists() for c in rec.cells)
    doc = json.loads((runs[0] / "pytest-benchmark.json").read_text())
    assert {b["name"] for b in doc["benchmarks"]} == {"test_single_stream", "test_offline"}
    for b in doc["benchmarks"]:
        s = b["stats"]
        for key in ("min", "max", "mean", "stddev", "median", "iqr", "rounds", "ops", "data"):
            assert key in s
        assert s["rounds"] == len(s["data"]) >= 64
        assert s["min"] <= s["median"] <= s["max"]
    result.stdout.fnmatch_lines(["*inference benchmarks*", "*pytest-benchmark JSON*"])

    # the gate: a baseline 100x faster fails the session; a missing baseline is a usage error
    _make_fast_baseline(runs[0], res_dir / "baselines" / "fast")
    gated = pytester.runpytest_subprocess(
        *PLUGIN,
        "-p",
        "no:cacheprovider",
        "--harness-results",
        str(res_dir),
        "--harness-gate",
        "fast",
        "--harness-gate-rule",
        "latency_p50:+10%",
    )
    gated.assert_outcomes(passed=3)  # the tests pass; the session fails through the gate
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.stdout.fnmatch_lines(["*harness gate*", "*REGRESSION*", "*performance regression*"])
    missing = pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:cacheprovider", "--harness-results", str(res_dir), "--harness-gate", "no-such-baseline"
    )
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stdout.fnmatch_lines(["*harness gate error*no run*"])


def test_benchmark_stats_definitions() -> None:
    d = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    s = benchmark_stats(d)
    assert s["median"] == 3.0 and s["rounds"] == 5 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["q1"] == 2.0 and s["q3"] == 4.0 and s["iqr"] == 2.0
    assert s["iqr_outliers"] == 1 and s["hd15iqr"] == 4.0
    assert s["ops"] == pytest.approx(1 / 22.0)
    with pytest.raises(ValueError, match="at least one"):
        benchmark_stats([])


def test_a_session_stopped_by_ctrl_c_is_saved_as_interrupted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_stop=f"""
def test_measured(inference_benchmark):
    inference_benchmark("tabular_mlp", backend="null", scenario="offline", stop={STOP})

def test_ctrl_c():
    raise KeyboardInterrupt
"""
    )
    res_dir = pytester.path / "res"
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "--harness-results", str(res_dir))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (run_dir,) = [d for d in res_dir.iterdir() if (d / "run.json").exists()]
    rec = load_run(run_dir)
    assert rec.status == "interrupted"
    assert [c.status for c in rec.cells] == ["ok"]
    assert rec.environment["profile_id"] == rec.cells[0].profile_id
