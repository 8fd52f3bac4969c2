"""A results store that mixes a CPU run with GPU records, for the app's tests: a tiny CPU suite
run here (null backend, so it takes seconds; raw per-query files kept) plus the run records
measured on an NVIDIA H200 in ``fixtures/h200/`` (copies of ``shared/reference/measured/``;
their raw Parquet files were not kept, as in the originals)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "h200"
TINY_SUITE = """\
name: tiny-cpu
defaults: {size: tiny, parity: false, stop: {min_duration_s: 0.3, min_queries: 16, warmup_s: 0}}
matrix:
  - {models: [tabular_mlp], backends: [null], scenarios: [{name: offline, options: {batch_size: 4}}]}
  - models: [tabular_mlp]
    backends: [null]
    scenarios: [{name: online, options: {target_qps: 200, slo_ms: 5}}]
"""


def copy_h200(root: Path) -> list[dict]:
    """Copy the H200 records into ``root`` as ``<run_id>/run.json``; returns them as parsed."""
    out = []
    for f in sorted(FIXTURES.glob("*.run.json")):
        rec = json.loads(f.read_text())
        (root / rec["run_id"]).mkdir(parents=True)
        shutil.copy(f, root / rec["run_id"] / "run.json")
        out.append(rec)
    return out


def mixed_store(root: Path) -> tuple[Path, dict[str, str]]:
    """Make the store in ``root`` (which must not exist); returns it and some keys: ``cpu`` /
    ``gpu`` (a cell key of an offline cell of each), ``gpu_cell`` (that GPU cell's id),
    ``cpu_run`` / ``gpu_run`` (run ids; the GPU run is the torch-eager suite ``h200``)."""
    from harness.measure.runner import run_suite

    root.mkdir(parents=True)
    suite = root.parent / "tiny-cpu.yaml"
    suite.write_text(TINY_SUITE)
    cpu = run_suite(suite, root=root)
    assert all(c.status == "ok" for c in cpu.cells), [(c.cell_id, c.error) for c in cpu.cells]
    eager = next(r for r in copy_h200(root) if r["suite_name"] == "h200")
    gpu_cell = next(c["cell_id"] for c in eager["cells"] if c["spec"]["scenario"] == "offline")
    return root, {
        "cpu": f"{cpu.run_id}/{cpu.cells[0].cell_id}",
        "gpu": f"{eager['run_id']}/{gpu_cell}",
        "gpu_cell": gpu_cell,
        "cpu_run": cpu.run_id,
        "gpu_run": eager["run_id"],
    }
