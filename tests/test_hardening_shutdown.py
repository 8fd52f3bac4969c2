"""Nothing lost on the way out: SIGTERM and SIGINT end a run as ``interrupted`` with every
measured cell kept and no worker left; a failed save keeps the record and says where; run
directories are exclusive; files honour the umask; a SIGKILLed worker is marked out-of-memory."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.cli.main import _mount_optional, app
from harness.core.records import RunRecord
from harness.measure import lifecycle
from harness.measure.host import host_profile
from harness.measure.lifecycle import RunRecorder, RunSaveError
from harness.measure.runner import run_cells
from harness.store import results as store
from harness.store.results import load_run, save_run, write_table

HANG_SUITE = (
    "name: shutdown\n"
    "defaults: {stop: {min_duration_s: 0.05, min_queries: 10, warmup_s: 0}}\n"
    "matrix:\n"
    "  - models: [tabular_mlp]\n"
    "    backends: [null]\n"
    "    scenarios: [{name: offline, sweep: {batch_size: [1, 2]}}]\n"
    "  - models: [tabular_mlp]\n"
    "    backends: ['fake_backends:HangBackend']\n"
    "    scenarios: [offline]\n"
)


def _env() -> dict[str, str]:
    tests = str(Path(__file__).parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}


def _start_hanging_run(write_suite: Any, results: Path) -> tuple[subprocess.Popen[bytes], Path, int]:
    """A real ``harness run`` whose third cell hangs: returns the process, its run.json and the
    pid of the worker running the hanging cell."""
    suite = write_suite(HANG_SUITE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "-o", str(results)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(results.glob("*/run.json"))
        if found and len(json.loads(found[0].read_text())["cells"]) >= 2:
            workers = psutil.Process(proc.pid).children()
            if workers:
                return proc, found[0], workers[0].pid
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    out = proc.stdout.read().decode() if proc.stdout else ""
    pytest.fail(f"the run made no progress: {out}")


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether ``pid`` has exited (or is a zombie awaiting its reaper) within ``within_s``."""
    end = time.time() + within_s
    while time.time() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_ends_the_run_interrupted_keeps_cells_and_kills_the_worker(tmp_path: Path, write_suite: Any) -> None:
    proc, run_json, worker = _start_hanging_run(write_suite, tmp_path / "results")
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)  # the parent only, as `timeout` or a container stop does
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert proc.returncode == 143, text
    assert "Traceback" not in text and "terminated (SIGTERM)" in text
    rec = load_run(run_json.parent)
    assert rec.status == "interrupted"
    assert [c.status for c in rec.cells] == ["ok", "ok", "interrupted"]
    assert "SIGTERM" in (rec.cells[2].error or "")
    assert (rec.cells[0].metrics["throughput"].value or 0) > 0
    assert _gone(worker), "the hanging worker outlived the run"


def test_sigint_to_the_parent_alone_also_ends_interrupted(tmp_path: Path, write_suite: Any) -> None:
    proc, run_json, worker = _start_hanging_run(write_suite, tmp_path / "results")
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode()
    assert [c.status for c in load_run(run_json.parent).cells] == ["ok", "ok", "interrupted"]
    assert _gone(worker)


def test_a_worker_dies_with_its_parent_even_on_sigkill(tmp_path: Path, write_suite: Any) -> None:
    proc, _, worker = _start_hanging_run(write_suite, tmp_path / "results")
    os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the kernel can stop the worker
    proc.communicate(timeout=30)
    assert _gone(worker), "the worker outlived a SIGKILLed parent"


def test_sigkilled_worker_is_marked_oom_and_larger_batches_are_skipped(tmp_path: Path) -> None:
    cells = [fast_cell(backend="hardening_backends:SigkillBackend", batch_size=b) for b in (1, 2, 4, 8)]
    rec = run_cells(cells, name="sigkill", root=tmp_path)
    assert [c.status for c in rec.cells] == ["ok", "ok", "crashed", "skipped"]
    crashed = rec.cells[2]
    assert "SIGKILL" in (crashed.error or "") and "out of memory" in (crashed.error or "")
    assert crashed.extra["oom"] is True and crashed.extra["oom_evidence"] in ("oom_kill", "sigkill")
    assert crashed.extra["peak_rss_bytes"] > 0
    assert "batch size 4 of this sweep ran out of memory" in (rec.cells[3].error or "")


def _failing_after(n_ok: int, calls: list[int]) -> Any:
    """A ``save_run`` that works ``n_ok`` times, then fails as a full disk does."""

    def fake(record: RunRecord, root: Path) -> Path:
        calls.append(len(record.cells))
        if len(calls) > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_run(record, root)

    return fake


def test_a_save_failure_retries_then_keeps_every_cell_in_a_rescue_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(lifecycle, "save_run", _failing_after(2, calls))  # start + first cell
    monkeypatch.setattr(lifecycle, "SAVE_RETRY_DELAYS_S", (0.0, 0.0))
    cells = [fast_cell(batch_size=b) for b in (1, 2, 4)]
    with pytest.raises(RunSaveError) as ei:
        run_cells(cells, name="full", root=tmp_path, isolate=False)
    msg = str(ei.value)
    assert "\n" not in msg and "No space left on device" in msg and "tried 3 times" in msg
    assert str(ei.value.run_dir) in msg and "2 measured cell(s)" in msg
    assert calls[2:5] == [2, 2, 2]  # the failed save of the second cell, tried three times
    rescue = ei.value.rescue_path
    assert rescue is not None and str(rescue) in msg
    kept = store.parse_run(json.loads(rescue.read_text()))
    assert kept.status == "interrupted"
    assert [c.status for c in kept.cells] == ["ok", "ok"]
    assert all((c.metrics["throughput"].value or 0) > 0 for c in kept.cells)
    rescue.unlink()


def test_an_unwritable_results_dir_from_the_start_is_one_line_exit_2(tmp_path: Path, write_suite: Any) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the results directory should be")
    suite = write_suite(HANG_SUITE)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "-o", str(blocker / "results")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(blocker) in errors[0] and "nothing was measured" in errors[0]


def test_run_directories_are_created_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["20260101T000000Z-x-00000000", "20260101T000000Z-x-00000000", "20260101T000000Z-x-00000001"])
    monkeypatch.setattr(store, "new_run_id", lambda name="run": next(ids))
    profile = host_profile()
    a = RunRecorder.start("x", tmp_path, profile)
    b = RunRecorder.start("x", tmp_path, profile)  # drew a taken id: drawn again
    assert a.record.run_id != b.record.run_id
    assert b.record.run_id.endswith("00000001")
    assert len(store.new_run_id.__defaults__ or ()) == 1


def test_run_ids_carry_32_random_bits() -> None:
    ids = {store.new_run_id("n").rsplit("-", 1)[1] for _ in range(50)}
    assert all(len(i) == 8 for i in ids) and len(ids) == 50


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_honour_the_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        rec = RunRecord(run_id="r1", suite_name="s")
        path = save_run(rec, tmp_path)
        write_table(tmp_path / "r1" / "raw" / "c.parquet", {"x": __import__("numpy").arange(3)})
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    assert stat.S_IMODE(path.stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "r1" / "raw" / "c.parquet").stat().st_mode) == want


def test_run_exits_1_when_a_cell_failed_and_0_when_all_ran(tmp_path: Path, write_suite: Any) -> None:
    head = "name: codes\ndefaults: {parity: false, stop: {min_duration_s: 0.05, min_queries: 10, warmup_s: 0}}\n"
    entry = "matrix:\n  - models: [tabular_mlp]\n    backends: [{backends}]\n    scenarios: [offline]\n"
    codes = {}
    for label, backends in (("ok", "null"), ("failing", "null, 'fake_backends:RaiseBackend'")):
        suite = write_suite(head + entry.replace("{backends}", backends), name=f"{label}.yaml")
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(suite), "-o", str(tmp_path / label)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert "Traceback" not in proc.stdout + proc.stderr
        codes[label] = proc.returncode
        statuses = [c.status for c in load_run(next((tmp_path / label).iterdir())).cells]
        assert statuses == (["ok"] if label == "ok" else ["ok", "failed"])
    assert codes == {"ok": 0, "failing": 1}


def test_cli_save_failure_mid_run_is_one_line_naming_what_was_kept(
    tmp_path: Path, write_suite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(lifecycle, "save_run", _failing_after(2, calls))  # start + first cell saved
    monkeypatch.setattr(lifecycle, "SAVE_RETRY_DELAYS_S", (0.0, 0.0))
    suite = write_suite(HANG_SUITE.split("  - models: [tabular_mlp]\n    backends: ['fake_backends")[0])
    _mount_optional()
    res = CliRunner().invoke(app, ["run", str(suite), "-o", str(tmp_path / "results")], env={"COLUMNS": "80"})
    assert res.exit_code == 3, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    run_dir = next((tmp_path / "results").iterdir())
    assert str(run_dir) in errors[0] and "2 measured cell(s)" in errors[0]
    rescue = Path(errors[0].split("was written to ")[1].split(";")[0])
    kept = store.parse_run(json.loads(rescue.read_text()))
    assert [c.status for c in kept.cells] == ["ok", "ok"]
    assert len(list((run_dir / "raw").glob("*.parquet"))) == 2  # the raw files stay where they were
    rescue.unlink()
