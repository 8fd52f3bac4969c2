"""Run-record lifecycle (harness.measure.lifecycle): every kind of run records the environment
and host profile the same way, saves after every cell and ends complete or interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests_support import fast_cell

from harness.core.records import CellRecord
from harness.measure.host import host_profile
from harness.measure.interleave import InterleaveOptions, run_ab
from harness.measure.lifecycle import RunRecorder
from harness.measure.runner import run_cells
from harness.store.results import load_run

SMALL = InterleaveOptions(rounds=10, block_ms=5, workers=1, block_min_queries=3)


def spin_cell() -> object:
    c = fast_cell(backend="fake_backends:SpinBackend", scenario="single-stream")
    return c.model_copy(update={"backend_options": {"service_us": 200}, "parity": False})


def test_ab_runs_record_environment_and_host_profile_like_a_suite_run(tmp_path: Path) -> None:
    profile = host_profile()
    suite_run = run_cells([fast_cell()], name="plain", root=tmp_path / "suite", isolate=False)
    runs = run_ab([spin_cell()], tmp_path / "ab", options=SMALL)
    plain_env = load_run(suite_run.run_id, tmp_path / "suite").environment
    assert plain_env["profile_id"] == profile.id and plain_env["profile"] == profile.model_dump(mode="json")
    for run in runs:
        saved = load_run(run.run_id, tmp_path / "ab")
        assert saved.status == "complete"
        env = saved.environment
        assert set(plain_env) - {"suite_file"} <= set(env)  # every manifest key, and the profile
        assert env["profile_id"] == plain_env["profile_id"] and env["profile"] == plain_env["profile"]
        assert env["cpu_model"] == plain_env["cpu_model"] and env["packages"] == plain_env["packages"]
        assert env["ab_role"] in ("baseline", "current") and env["interleave_session"]
        (cell,) = saved.cells
        assert cell.status == "ok", cell.error
        assert cell.profile_id == suite_run.cells[0].profile_id == profile.id
    assert runs[0].environment["interleave_session"] == runs[1].environment["interleave_session"]


def test_ab_runs_interrupted_before_a_cell_keep_it_as_interrupted(tmp_path: Path) -> None:
    def stop_at_second(k: int, n: int, spec: object, recs: object) -> None:
        if k == 1 and recs is None:
            raise KeyboardInterrupt

    cells = [fast_cell(scenario="online", qps=10.0), fast_cell(scenario="online", qps=20.0)]
    with pytest.raises(KeyboardInterrupt):
        run_ab(cells, tmp_path, options=SMALL, on_cell=stop_at_second)
    runs = [load_run(d) for d in sorted(tmp_path.iterdir())]
    assert len(runs) == 2
    for run in runs:
        assert run.status == "interrupted"
        assert [c.status for c in run.cells] == ["skipped", "interrupted"]  # open loop: not interleavable
        assert run.cells[1].error == "run interrupted before this cell finished"
        assert run.environment["profile_id"] == host_profile().id


def _cell(i: int, profile_id: str | None = None) -> CellRecord:
    spec = fast_cell(batch_size=i + 1)
    return CellRecord(cell_id=spec.cell_id, spec=spec, status="ok", profile_id=profile_id)


def test_recorder_saves_every_cell_stamps_the_profile_and_owns_the_status(tmp_path: Path) -> None:
    profile = host_profile()
    rec = RunRecorder.start("unit", tmp_path, profile, extra_environment={"note": "x"})
    assert load_run(rec.run_dir).status == "running"
    rec.add(_cell(0))
    rec.add(_cell(1, "other-profile"))
    saved = load_run(rec.run_dir)
    assert [c.profile_id for c in saved.cells] == [profile.id, "other-profile"]
    assert saved.environment["note"] == "x" and saved.environment["profile_id"] == profile.id
    with rec:
        rec.add(_cell(2))
    assert load_run(rec.run_dir).status == "complete" and len(load_run(rec.run_dir).cells) == 3


def test_recorder_interrupt_records_the_cell_in_progress_and_survives_a_failed_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = RunRecorder.start("unit", tmp_path, host_profile())
    rec.add(_cell(0))
    pending = fast_cell(batch_size=9)
    with pytest.raises(RuntimeError, match="disk on fire"), rec:
        rec.begin(pending)
        raise RuntimeError("disk on fire")
    saved = load_run(rec.run_dir)
    assert saved.status == "interrupted"
    assert [c.status for c in saved.cells] == ["ok", "interrupted"]
    assert saved.cells[1].cell_id == pending.cell_id
    assert saved.cells[1].error == "runner failed: RuntimeError: disk on fire"

    # a save that fails while interrupting does not hide the error that stopped the run
    rec2 = RunRecorder.start("unit2", tmp_path, host_profile())

    def full_disk() -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(rec2, "save", full_disk)
    with pytest.raises(KeyboardInterrupt):
        with rec2:
            raise KeyboardInterrupt
    assert rec2.record.status == "interrupted"
    assert load_run(rec2.run_dir).status == "running"  # what was saved before stands
