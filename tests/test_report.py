"""Reports render from a real run: HTML with embedded PNGs, Markdown with PNG files."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import typer
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.analysis.report import write_report
from harness.cli.gate import gate_app
from harness.measure.runner import run_cells
from harness.store.refs import load_run_ref

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("results")
    cells = [fast_cell(backend="null", scenario="offline", batch_size=b) for b in (1, 4)]
    cells.append(fast_cell(backend="null", scenario="single-stream"))
    a = run_cells(cells, name="a", root=root, isolate=False)
    b = run_cells(cells, name="b", root=root, isolate=False)
    assert all(c.status == "ok" for c in a.cells + b.cells), [c.error for c in a.cells + b.cells]
    return root, a.run_id, b.run_id


def test_report_renders_on_a_real_run(two_runs: tuple[Path, str, str], tmp_path: Path) -> None:
    root, a, b = two_runs
    files = write_report(load_run_ref(b, root), tmp_path / "rep", baseline=load_run_ref(a, root))
    assert files.html.exists() and files.markdown.exists()
    names = {p.name for p in files.images}
    assert {"latency_cdf_1.png", "throughput_vs_batch.png"} <= names
    for p in files.images:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    page = files.html.read_text()
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(embedded) == len(files.images)
    assert all(base64.b64decode(e).startswith(PNG_MAGIC) for e in embedded)
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    md = files.markdown.read_text()
    assert "Performance gate" in md  # the gate against the baseline is included
    for p in files.images:
        assert f"]({p.name})" in md
    for spec in (fast_cell(backend="null", scenario="offline"), fast_cell(backend="null", scenario="single-stream")):
        assert spec.cell_id in md and spec.cell_id in page


def test_report_cli(two_runs: tuple[Path, str, str], tmp_path: Path) -> None:
    root, a, b = two_runs
    app = typer.Typer()
    app.add_typer(gate_app, name="gate")
    out = tmp_path / "cli-rep"
    res = CliRunner().invoke(app, ["gate", "report", b, "--results", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").stat().st_size > 0
    res = CliRunner().invoke(app, ["gate", "report", "missing-run", "--results", str(root)])
    assert res.exit_code == 2
