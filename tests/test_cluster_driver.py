"""The cluster driver's bookkeeping against a scripted stand-in for Ray (no cluster needed):
a cell lost with its node is submitted once more, then recorded crashed with each reason; a
cell no live node can run is not waited for; Ctrl-C cancels the cells in flight and records
them interrupted; a node's files land only where they belong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests_support import fast_cell

from harness.cluster import executor as ex
from harness.cluster.resources import CPU_DEVICE_RESOURCE
from harness.core.records import CellRecord, CellSpec
from harness.measure.host import host_profile
from harness.store.results import load_run


class RayError(Exception):
    pass


class RayTaskError(RayError):
    pass


class NodeDiedError(RayError):
    pass


def node(nid: str, **res: float) -> dict[str, Any]:
    return {"NodeID": nid, "Alive": True, "NodeManagerAddress": "10.0.0." + nid[-1], "Resources": res}


CPU_NODE = {"CPU": 1.0, CPU_DEVICE_RESOURCE: 1.0}


class Ref:
    def __init__(self, spec: CellSpec, outcome: Any) -> None:
        self.spec, self.outcome = spec, outcome


def finished(spec: CellSpec, nid: str, files: dict[str, bytes] | None = None) -> dict[str, Any]:
    """What a node returns for a measured cell."""
    cell = CellRecord(cell_id=spec.cell_id, spec=spec, status="ok", profile_id="p")
    if files is None:
        files = {f"raw/{spec.cell_id}.parquet": b"rows"}
    return {
        "cell": cell.model_dump_json(),
        "files": files,
        "environment": {"hostname": nid, "profile_id": "p"},
        "node_id": nid,
        "node_ip": "10.0.0." + nid[-1],
    }


class FakeRay:
    """Runs nothing: each submission's outcome comes from ``script(spec, attempt)`` (a node's
    reply, an exception raised by ``get``, or ``"wait"``: never finishes). ``on_idle`` is called
    when a wait finds nothing ready."""

    exceptions = SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)
    __version__ = "fake"

    def __init__(self, script: Callable[[CellSpec, int], Any], nodes: list[dict[str, Any]]) -> None:
        self.script, self.node_list = script, nodes
        self.attempts: dict[str, int] = {}
        self.cancelled: list[str] = []
        self.on_idle: Callable[[], None] = lambda: None

    def is_initialized(self) -> bool:
        return True

    def remote(self, **_: Any) -> Callable[[Any], Any]:
        fake = self

        class Task:
            def options(self, **opts: Any) -> Task:
                return self

            def remote(self, spec_json: str, *_: Any) -> Ref:
                spec = CellSpec.model_validate_json(spec_json)
                n = fake.attempts[spec.cell_id] = fake.attempts.get(spec.cell_id, 0) + 1
                return Ref(spec, fake.script(spec, n))

        return lambda fn: Task()

    def nodes(self) -> list[dict[str, Any]]:
        return self.node_list

    def wait(self, refs: list[Ref], num_returns: int, timeout: float) -> tuple[list[Ref], list[Ref]]:
        ready = [r for r in refs if not (isinstance(r.outcome, str) and r.outcome == "wait")][:num_returns]
        if not ready:
            self.on_idle()
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: Ref) -> Any:
        if isinstance(ref.outcome, BaseException):
            raise ref.outcome
        return ref.outcome

    def cancel(self, ref: Ref, force: bool) -> None:
        self.cancelled.append(ref.spec.cell_id)


@pytest.fixture(scope="module")
def profile() -> Any:
    return host_profile()


def run(fake: FakeRay, cells: list[CellSpec], root: Path, profile: Any) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ex, "import_ray", lambda: fake)
        return ex.ClusterExecutor("auto", poll_s=0)(cells, name="fake", root=root, profile=profile)


def test_a_lost_cell_is_submitted_once_more_then_recorded_crashed(tmp_path: Path, profile: Any) -> None:
    a, b, c = (fast_cell(batch_size=n) for n in (1, 2, 4))

    def script(spec: CellSpec, attempt: int) -> Any:
        if spec == a:
            return finished(spec, "n1")
        if spec == b and attempt == 2:
            return finished(spec, "n2")
        return NodeDiedError(f"node n{attempt} died")

    fake = FakeRay(script, [node("n1", **CPU_NODE), node("n2", **CPU_NODE)])
    rec = run(fake, [a, b, c], tmp_path, profile)
    cells = {x.cell_id: x for x in load_run(rec.run_id, tmp_path).cells}
    assert fake.attempts == {a.cell_id: 1, b.cell_id: 2, c.cell_id: 2}
    assert cells[a.cell_id].extra["cluster"]["attempts"] == 1
    retried = cells[b.cell_id]
    assert retried.status == "ok" and retried.extra["cluster"]["node_id"] == "n2"
    assert retried.extra["cluster"]["lost_attempts"] == ["NodeDiedError: node n1 died"]
    lost = cells[c.cell_id]
    assert lost.status == "crashed" and "2 time(s)" in (lost.error or "") and "node n2 died" in (lost.error or "")
    assert len(lost.extra["cluster"]["lost_attempts"]) == 2
    # raw files written into the run; each node's environment kept once
    assert (tmp_path / rec.run_id / f"raw/{b.cell_id}.parquet").read_bytes() == b"rows"
    nodes = rec.environment["cluster"]["nodes"]
    assert nodes["n1"]["environment"]["hostname"] == "n1" and nodes["n2"]["environment"]["hostname"] == "n2"


def test_cells_no_live_node_can_run_are_not_waited_for(tmp_path: Path, profile: Any) -> None:
    gpu, waiting = fast_cell(device="cuda"), fast_cell(batch_size=2)
    fake = FakeRay(lambda spec, attempt: "wait", [node("n1", **CPU_NODE)])

    def node_gone() -> None:
        fake.node_list = [node("n9", CPU=4.0)]  # the CPU node died; what is left has no CPU device slot

    fake.on_idle = node_gone
    rec = run(fake, [gpu, waiting], tmp_path, profile)
    by_id = {c.cell_id: c for c in rec.cells}
    assert by_id[gpu.cell_id].status == "skipped" and "GPU=1" in (by_id[gpu.cell_id].error or "")
    assert gpu.cell_id not in fake.attempts  # never submitted
    stranded = by_id[waiting.cell_id]
    assert stranded.status == "crashed" and CPU_DEVICE_RESOURCE in (stranded.error or "")
    assert fake.cancelled == [waiting.cell_id]
    assert load_run(rec.run_id, tmp_path).status == "complete"


def test_interrupt_cancels_cells_in_flight_and_records_them(tmp_path: Path, profile: Any) -> None:
    a, b = fast_cell(batch_size=1), fast_cell(batch_size=2)
    fake = FakeRay(lambda spec, attempt: finished(spec, "n1") if spec == a else "wait", [node("n1", **CPU_NODE)])

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    fake.on_idle = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        run(fake, [a, b], tmp_path, profile)
    (saved,) = [load_run(p.parent.name, tmp_path) for p in tmp_path.glob("*/run.json")]
    assert saved.status == "interrupted"
    assert [(c.cell_id, c.status) for c in saved.cells] == [(a.cell_id, "ok"), (b.cell_id, "interrupted")]
    assert fake.cancelled == [b.cell_id]


def test_a_node_cannot_write_outside_its_cells_raw_files(tmp_path: Path, profile: Any) -> None:
    a = fast_cell()
    fake = FakeRay(lambda spec, attempt: finished(spec, "n1", {"../../evil.txt": b"x"}), [node("n1", **CPU_NODE)])
    rec = run(fake, [a], tmp_path, profile)
    assert rec.cells[0].status == "failed" and "unexpected file" in (rec.cells[0].error or "")
    assert not (tmp_path.parent / "evil.txt").exists()


SCRIPT = """\
import multiprocessing, sys, time
from pathlib import Path
with Path(sys.argv[1]).open("a") as f:  # one line each time this script is run or imported
    f.write("run\\n")
if __name__ == "__main__":
    from contextlib import nullcontext
    from harness.cluster.node import plain_main
    with plain_main() if sys.argv[2] == "plain" else nullcontext():
        p = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
        p.start()
        p.join()
"""


@pytest.mark.parametrize("mode, runs", [("plain", 1), ("as-is", 2)])
def test_cell_workers_do_not_re_import_the_ray_worker_script(tmp_path: Path, mode: str, runs: int) -> None:
    """A Ray worker's __main__ is Ray's worker script; a spawned cell worker must not run it again."""
    import subprocess
    import sys

    script, marks = tmp_path / "main_script.py", tmp_path / "marks"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(marks), mode], check=True, timeout=120)
    assert marks.read_text().count("run") == runs
