"""Runner: isolation, failure recording, OOM sweeps, interruption, round trip to pandas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_support import fast_cell

from harness.measure.runner import run_cells
from harness.store.results import cells_frame, load_raw, load_results, load_run


def test_crash_hang_and_exception_fail_their_own_cells(tmp_path: Path):
    cells = [
        fast_cell(backend="fake_backends:CrashBackend"),
        fast_cell(backend="fake_backends:HangBackend", timeout_s=3),
        fast_cell(backend="fake_backends:RaiseBackend"),
        fast_cell(backend="null"),
    ]
    rec = run_cells(cells, name="failures", root=tmp_path)
    status = {c.spec.backend: c for c in rec.cells}
    assert status["fake_backends:CrashBackend"].status == "crashed"
    assert "SIGABRT" in status["fake_backends:CrashBackend"].error
    assert status["fake_backends:HangBackend"].status == "timeout"
    assert "timeout of 3 s" in status["fake_backends:HangBackend"].error
    assert status["fake_backends:RaiseBackend"].status == "failed"
    assert "model file is corrupt" in status["fake_backends:RaiseBackend"].error
    ok = status["null"]
    assert ok.status == "ok" and ok.metrics["throughput"].value > 0
    # the saved record holds the same four outcomes
    saved = load_run(rec.run_id, tmp_path)
    assert [c.status for c in saved.cells] == ["crashed", "timeout", "failed", "ok"]
    assert saved.status == "complete"


def test_oom_skips_larger_batches_of_the_same_sweep(tmp_path: Path):
    cells = [fast_cell(backend="fake_backends:OomBackend", batch_size=b) for b in (1, 2, 4, 8)]
    rec = run_cells(cells, name="oom", root=tmp_path, isolate=False)
    assert [c.status for c in rec.cells] == ["ok", "ok", "failed", "skipped"]
    assert "ran out of memory" in rec.cells[3].error


def test_record_round_trips_to_dataframe(tmp_path: Path):
    cells = [fast_cell(backend="null", batch_size=b) for b in (1, 4)] + [fast_cell(scenario="single-stream")]
    rec = run_cells(cells, name="rt", root=tmp_path, isolate=False)
    df = load_results(tmp_path)
    assert len(df) == 3
    assert set(df["cell_id"]) == {c.cell_id for c in rec.cells}
    assert (df["throughput"] > 0).all()
    assert set(df["batch_size"]) == {1, 4}
    raw = load_raw(rec, rec.cells[1].cell_id, tmp_path)
    assert {"scheduled_ns", "issued_ns", "completed_ns", "batch_size"} <= set(raw.columns)
    assert (raw["completed_ns"] >= raw["issued_ns"]).all()
    assert (raw["batch_size"] == 4).all()
    n = rec.cells[1].metrics["throughput"].value
    span = (raw["completed_ns"].max() - raw["issued_ns"].min()) / 1e9
    assert n == pytest.approx(len(raw) * 4 / span, rel=1e-6)
    # the frame of the in-memory record equals the frame of what was saved
    mem = cells_frame([rec]).sort_values("cell_id").reset_index(drop=True)
    saved = df.sort_values("cell_id").reset_index(drop=True)
    assert mem["cell_id"].tolist() == saved["cell_id"].tolist()
    assert mem["throughput"].tolist() == saved["throughput"].tolist()
    env = rec.environment
    assert env["cpu_logical_cores"] >= 1 and env["python"] and "numpy" in env["packages"]


def test_ctrl_c_keeps_what_was_measured(tmp_path: Path, write_suite):
    suite = write_suite(
        "name: interrupt\n"
        "defaults: {stop: {min_duration_s: 0.05, min_queries: 10, warmup_s: 0}}\n"
        "matrix:\n"
        "  - models: [tabular_mlp]\n"
        "    backends: [null]\n"
        "    scenarios: [{name: offline, sweep: {batch_size: [1, 2]}}]\n"
        "  - models: [tabular_mlp]\n"
        "    backends: ['fake_backends:HangBackend']\n"
        "    scenarios: [offline]\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "-o", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 120
    run_json = None
    while time.time() < deadline:
        found = list(tmp_path.glob("*/run.json"))
        if found:
            data = json.loads(found[0].read_text())
            if len(data["cells"]) >= 2:  # both null cells done; the hang cell is running
                run_json = found[0]
                break
        time.sleep(0.2)
    assert run_json is not None, proc.stdout.read().decode() if proc.poll() is not None else "no progress"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode()
    rec = load_run(run_json.parent)
    assert rec.status == "interrupted"
    assert [c.status for c in rec.cells] == ["ok", "ok", "interrupted"]
    assert rec.cells[0].metrics["throughput"].value > 0


def test_cells_run_in_separate_processes(tmp_path: Path):
    rec = run_cells([fast_cell(), fast_cell(batch_size=2)], name="pids", root=tmp_path)
    assert all(c.status == "ok" for c in rec.cells)
    assert rec.cells[0].backend_info["backend"] == "null"


def test_unavailable_backend_is_skipped_with_reason(tmp_path: Path):
    rec = run_cells([fast_cell(backend="tensorrt", device="cuda")], name="skip", root=tmp_path, isolate=False)
    c = rec.cells[0]
    assert c.status == "skipped" and "unavailable" in c.error


def test_unstable_attempts_are_repeated_and_recorded_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With max_attempts, a measurement that fails the steady-state check is repeated; the
    discarded attempt is recorded with the warm-up and its queries are not in the results."""
    import time as _time

    from harness.core import batch_means

    # thirds (about 0.1 s) of this short run may be judged
    monkeypatch.setattr(batch_means, "MIN_WINDOW_S", 0.05)

    from harness.measure.backends.null import NullBackend
    from harness.measure.scenarios.base import StopRule
    from harness.measure.scenarios.closed import OfflineScenario
    from harness.measure.worker import RunnerContext
    from workloads.registry import get_workload

    class FirstAttemptStalls(NullBackend):
        """100 us per query; 1 ms for queries 300-600 of the first measurement attempt."""

        calls = 0
        stalled_until_ns = 0  # perf_counter_ns (the harness clock) when the last stalled query ended

        def infer(self, prepared):
            FirstAttemptStalls.calls += 1
            stall = 5 + 300 < FirstAttemptStalls.calls <= 5 + 600  # after 5 warm-up queries
            end = _time.perf_counter_ns() + (1_000_000 if stall else 100_000)
            while _time.perf_counter_ns() < end:
                pass
            if stall:
                FirstAttemptStalls.stalled_until_ns = _time.perf_counter_ns()

    b = FirstAttemptStalls()
    w = get_workload("tabular_mlp", "tiny")
    b.load(w)
    # attempts to spare: on a shared host a later attempt can be unsteady too (then also discarded)
    stop = StopRule(min_duration_s=0, min_queries=600, max_queries=600, warmup_s=0, warmup_queries=5, max_attempts=5)
    opts = OfflineScenario.Options(batch_size=1, stop=stop)
    res = OfflineScenario(opts).run(RunnerContext(b, w, 0, []))
    discarded = res.warmup["discarded_unstable_attempts"]
    assert len(discarded) >= 1 and all(d["queries"] == 600 for d in discarded)
    assert discarded[0]["steady_state_ratio"] > 1.5  # the stalled attempt: its last third ran far slower
    # repeated until steady, or until the attempts ran out (a host too busy for a steady window)
    assert res.validity["steady_state"] is True or len(discarded) == stop.max_attempts - 1
    assert res.queries["completed_ns"].size == 600
    # the kept attempt began after the stalled one ended: its queries are not in the result
    assert res.queries["issued_ns"].min() > FirstAttemptStalls.stalled_until_ns > 0


class _FailsToLoad:
    """A backend whose load raises; counts its close() calls."""

    closed = 0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    def load(self, workload: object, device: str = "cpu") -> None:
        raise RuntimeError("weights missing")

    def close(self) -> None:
        type(self).closed += 1


class _Unavailable(_FailsToLoad):
    @classmethod
    def available(cls) -> tuple[bool, str]:
        return False, "needs libfoo"


def test_load_backend_times_the_load_and_closes_a_backend_that_fails_to_load() -> None:
    from harness.measure.worker import BackendUnavailable, load_backend, make_workload

    spec = fast_cell()
    loaded = load_backend(spec, make_workload(spec))
    assert loaded.backend.name == "null" and loaded.load_time_ns >= 0
    assert isinstance(loaded.load_time_ns, int)
    broken = fast_cell(backend=f"{__name__}:_FailsToLoad")
    with pytest.raises(RuntimeError, match="weights missing"):
        load_backend(broken, make_workload(broken))
    assert _FailsToLoad.closed == 1
    closed = _FailsToLoad.closed
    gone = fast_cell(backend=f"{__name__}:_Unavailable")
    with pytest.raises(BackendUnavailable, match="backend unavailable: needs libfoo"):
        load_backend(gone, make_workload(gone))
    assert _FailsToLoad.closed == closed  # never constructed
