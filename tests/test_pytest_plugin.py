"""The pytest plugin, run through pytester: fixture, schema + pytest-benchmark JSON (written by
pytest-benchmark itself), validity warnings, the gate against a stored baseline and the
interleaved A/B gate."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest
import pytest_benchmark

from harness.core.records import query_latency_ms
from harness.measure.host import host_profile
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

def test_invalid_cell_warns(inference_benchmark):
    import pytest
    from harness.pytest_plugin import HarnessValidityWarning

    stop = {{"min_queries": 10**7, "max_duration_s": 0.2, "min_duration_s": 0.05, "warmup_s": 0}}
    with pytest.warns(HarnessValidityWarning, match="min_queries_met: fewer queries completed"):
        cell = inference_benchmark("tabular_mlp", backend="null", scenario="single-stream", stop=stop)
    assert cell.status == "ok" and cell.valid is False
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


def _git_commit(path: Path) -> str:
    """Make ``path`` a git checkout with one commit (the project under test); its commit id."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "project under test")
    return git("rev-parse", "HEAD")


def test_fixture_schema_benchmark_json_and_gate(pytester: pytest.Pytester) -> None:
    res_dir = pytester.path / "res"
    pytester.makepyfile(test_bench=TEST_FILE)
    commit = _git_commit(pytester.path)
    own_json = pytester.path / "own.json"
    result = _run(pytester, "--harness-results", str(res_dir), f"--benchmark-json={own_json}")
    result.assert_outcomes(passed=4)
    runs = [d for d in res_dir.iterdir() if (d / "run.json").exists()]
    assert len(runs) == 1
    rec = load_run(runs[0])
    assert rec.status == "complete" and len(rec.cells) == 3
    # recorded like a suite run: manifest, host profile, the profile id on every cell
    profile = host_profile()
    assert rec.environment["profile_id"] == profile.id
    assert rec.environment["profile"] == profile.model_dump(mode="json")
    assert rec.environment["cpu_logical_cores"] >= 1 and "numpy" in rec.environment["packages"]
    assert {c.profile_id for c in rec.cells} == {profile.id}
    assert {c.extra["pytest_nodeid"].split("::")[1] for c in rec.cells} == {
        "test_single_stream",
        "test_offline",
        "test_invalid_cell_warns",
    }
    assert all((runs[0] / c.raw_file).exists() for c in rec.cells)
    doc = json.loads((runs[0] / "pytest-benchmark.json").read_text())
    # written by pytest-benchmark's own hooks: its current format, the project under test's commit
    assert doc["version"] == pytest_benchmark.__version__
    assert doc["commit_info"]["id"] == commit and doc["commit_info"]["project"] == pytester.path.name
    assert {b["name"] for b in doc["benchmarks"]} == {"test_single_stream", "test_offline", "test_invalid_cell_warns"}
    by_cell = {c.cell_id: c for c in rec.cells}
    for b in doc["benchmarks"]:
        s = b["stats"]
        for key in ("min", "max", "mean", "stddev", "median", "iqr", "rounds", "ops", "data", "iterations"):
            assert key in s
        assert s["rounds"] == len(s["data"])
        assert s["min"] <= s["median"] <= s["max"]
        # one round per query, seconds per sample; ops in samples/s
        cell = by_cell[b["extra_info"]["cell_id"]]
        lat_s = query_latency_ms(pd.read_parquet(runs[0] / cell.raw_file)) / 1e3
        bs = cell.spec.batch_size
        assert s["iterations"] == bs and s["rounds"] == len(lat_s)
        assert s["mean"] == pytest.approx(lat_s.mean() / bs)
        assert s["ops"] == pytest.approx(bs / lat_s.mean())
    assert {b["extra_info"]["cell_id"] for b in json.loads(own_json.read_text())["benchmarks"]} == set(by_cell)
    # pytest-benchmark's own table lists the cells
    result.stdout.fnmatch_lines(["*benchmark 'offline': 1 tests*", "*test_offline*"])
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
    gated.assert_outcomes(passed=4)  # the tests pass; the session fails through the gate
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.stdout.fnmatch_lines(["*harness gate*", "*REGRESSION*", "*performance regression*"])
    missing = pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:cacheprovider", "--harness-results", str(res_dir), "--harness-gate", "no-such-baseline"
    )
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stdout.fnmatch_lines(["*harness gate error*no run*"])


def test_interleaved_ab_gate_passes_identical_code(pytester: pytest.Pytester) -> None:
    """--harness-ab: each closed-loop cell measured against a baseline (here the same code on a
    path with nothing in it) in alternating blocks, gated block by block."""
    pytester.makepyfile(
        test_ab=f"""
def test_single_stream(inference_benchmark):
    cell = inference_benchmark("tabular_mlp", backend="null", scenario="single-stream", stop={STOP})
    assert cell.extra["interleave"]["variant"] == "current"
"""
    )
    base_code = pytester.mkdir("base_checkout")
    res_dir = pytester.path / "res"
    result = pytester.runpytest_subprocess(
        *PLUGIN,
        "-p",
        "no:cacheprovider",
        "--harness-results",
        str(res_dir),
        "--harness-ab",
        str(base_code),
        "--harness-ab-rounds",
        "10",
        "--harness-ab-block-ms",
        "2",
        "--harness-ab-workers",
        "1",
        "--harness-gate-rule",
        "latency_p50:+50%",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*interleaved baseline run*", "*harness gate (interleaved A/B)*", "PASS*"])
    assert result.ret == pytest.ExitCode.OK
    runs = {load_run(d).environment["ab_role"]: load_run(d) for d in res_dir.iterdir() if (d / "run.json").exists()}
    assert set(runs) == {"baseline", "current"}
    assert runs["baseline"].environment["pythonpath"] == [str(base_code.resolve())]
    assert runs["baseline"].cells[0].cell_id == runs["current"].cells[0].cell_id


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
