"""What a user sees: tables readable at 80 columns and through a pipe, --format on every
table command, a summary-first gate, and invalid cells explained."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.analysis.validity import VALIDITY_HELP
from harness.cli.main import _mount_optional, app
from harness.cli.render import fmt_num
from harness.core.metrics import Metric
from harness.core.records import CellRecord, RunRecord
from harness.store.results import save_run, write_table

N = 1000


def _metrics(rng: np.random.Generator) -> dict[str, Metric]:
    """Headline metrics with values of different magnitudes (0.0xxx to 10,000s)."""
    return {
        "throughput": Metric(value=float(rng.uniform(1e3, 2e4)), unit="samples/s"),
        "latency_p50": Metric(value=float(rng.uniform(0.1, 9)), unit="ms"),
        "latency_p99": Metric(value=float(rng.uniform(10, 99)), unit="ms"),
        "power_w": Metric(value=float(rng.uniform(50, 700)), unit="W", provenance="estimated:tdp-model"),
        "energy_per_inference_j": Metric(value=float(rng.uniform(0.001, 0.9)), unit="J", provenance="estimated"),
        "usd_per_1m_inferences": Metric(value=float(rng.uniform(0.01, 5)), unit="USD", provenance="estimated"),
    }


def make_run(root: Path, name: str, n_cells: int, *, slow: dict[int, float] | None = None, seed: int = 0) -> Path:
    """A saved run of ``n_cells`` closed-loop cells with raw timestamps (about 1 ms latency,
    cell ``i`` slowed by ``slow[i]``); every third cell fails the steady-state check."""
    rng = np.random.default_rng(seed)
    rec = RunRecord(run_id=name, suite_name="t")
    for i in range(n_cells):
        spec = fast_cell(batch_size=i + 1)
        lat = (rng.lognormal(np.log(1e6), 0.1, N) * (slow or {}).get(i, 1.0)).astype(np.int64)
        sched = np.concatenate([[0], np.cumsum(lat[:-1])]).astype(np.int64)
        raw = f"raw/{spec.cell_id}.parquet"
        write_table(
            root / name / raw,
            {
                "query_id": np.arange(N),
                "batch_size": np.full(N, spec.batch_size),
                "scheduled_ns": sched,
                "issued_ns": sched,
                "completed_ns": sched + lat,
            },
        )
        rec.cells.append(
            CellRecord(
                cell_id=spec.cell_id,
                spec=spec,
                status="ok",
                raw_file=raw,
                metrics=_metrics(rng),
                validity={"min_queries_met": True, "steady_state": i % 3 != 0},
                valid=i % 3 != 0,
            )
        )
    save_run(rec, root)
    return root / name


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    make_run(root, "base", 34, seed=1)
    make_run(root, "head", 34, slow={5: 1.5}, seed=2)
    return root


def _cli(*args: str) -> str:
    _mount_optional()
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code in (0, 1), res.output
    return res.output


def _numbers(rec: RunRecord) -> list[str]:
    return [fmt_num(m.value) for c in rec.cells for m in c.metrics.values()]


def test_show_piped_at_80_columns_prints_every_number(results: Path) -> None:
    """`harness show RUN | cat` (a pipe: rich falls back to 80 columns) shows every value."""
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None)
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "show", "head", "-o", str(results)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    rec = RunRecord.model_validate_json((results / "head" / "run.json").read_text())
    for c in rec.cells:
        assert c.cell_id in out
    missing = [v for v in _numbers(rec) if v not in out]
    assert not missing, f"values not shown: {missing[:5]}"
    assert "steady_state" in out and "valid: yes" in out
    # no column is folded into fragments: every line with a value is whole within 80 columns
    assert all(len(line) <= 80 for line in out.splitlines() if "· " in line)


def test_show_formats_carry_every_cell_and_value(results: Path) -> None:
    rec = RunRecord.model_validate_json((results / "head" / "run.json").read_text())
    rows = json.loads(_cli("show", "head", "-o", str(results), "--format", "json"))
    assert [r["cell_id"] for r in rows] == [c.cell_id for c in rec.cells]
    for r, c in zip(rows, rec.cells):
        assert r["throughput"] == c.metrics["throughput"].value
        assert r["latency_p99_ms"] == c.metrics["latency_p99"].value
        assert r["valid"] is True if c.valid else r["valid"] == "no: steady_state"
    table = list(csv.DictReader(io.StringIO(_cli("show", "head", "-o", str(results), "--format", "csv"))))
    assert len(table) == 34 and float(table[0]["power_w"]) == rec.cells[0].metrics["power_w"].value
    md = _cli("show", "head", "-o", str(results), "--format", "markdown")
    body = [line for line in md.splitlines() if line.startswith("| ") and "cell" not in line]
    assert len(body) == 34 and all(line.count("|") == md.splitlines()[2].count("|") for line in body)
    one = json.loads(_cli("show", "head", "-o", str(results), "--cell", rec.cells[0].cell_id, "-f", "json"))
    assert {r["metric"] for r in one} == set(rec.cells[0].metrics)
    _mount_optional()
    bad = CliRunner().invoke(app, ["show", "head", "-o", str(results), "--format", "xml"])
    assert bad.exit_code == 2 and "allowed: table, csv, json, markdown" in bad.output


def test_invalid_cells_are_explained(results: Path) -> None:
    out = _cli("show", "head", "-o", str(results))
    meaning, remedy = VALIDITY_HELP["steady_state"]
    assert "no: steady_state" in out
    assert meaning.split()[0] in out and "min_duration_s" in out
    # a flag that no cell failed is not in the legend
    assert "min_queries_met:" not in out


def test_gate_compare_is_summary_first(results: Path) -> None:
    out = _cli("gate", "compare", "base", "head", "-o", str(results), "--fail-on", "latency_p50:+10%")
    lines = out.splitlines()
    assert lines[0].startswith("FAIL")
    head = fast_cell(batch_size=6).cell_id
    assert head in out and "REGRESSION" in out
    assert "not listed:" in out and "--verbose" in out
    assert len(lines) < 30, f"{len(lines)} lines for 34 cells"
    # the regression comes before the count line of the rest
    assert out.index("REGRESSION") < out.index("not listed:")
    verbose = _cli("gate", "compare", "base", "head", "-o", str(results), "--fail-on", "latency_p50:+10%", "-v")
    assert all(fast_cell(batch_size=i + 1).cell_id in verbose for i in range(34))
    assert "not listed" not in verbose
    rows = list(
        csv.DictReader(
            io.StringIO(
                _cli(
                    "gate", "compare", "base", "head", "-o", str(results), "--fail-on", "latency_p50:+10%", "-f", "csv"
                )
            )
        )
    )
    assert len(rows) == 34 and [r["cell_id"] for r in rows if r["verdict"] == "regression"] == [head]
    md = _cli("gate", "compare", "base", "head", "-o", str(results), "--fail-on", "latency_p50:+10%", "-f", "markdown")
    assert md.index("REGRESSION") < md.index("<details>")


def test_recommend_and_profiles_formats() -> None:
    rows = json.loads(_cli("recommend", "--model", "resnet50", "--p99-ms", "10", "--qps", "1000", "-f", "json"))
    assert rows and rows[0]["rank"] == 1 and rows[0]["latency_kind"] == "p99" and rows[0]["latency_ms"] > 0
    text = _cli("recommend", "--model", "resnet50", "--p99-ms", "10", "--qps", "1000", "--top", "3")
    for r in rows[:3]:
        assert r["profile_id"] in text and fmt_num(r["usd_per_month"]) in text
    profiles = list(csv.DictReader(io.StringIO(_cli("profiles", "list", "--format", "csv"))))
    assert {"id", "kind", "memory_gb", "usd_per_hour", "uncertain"} <= set(profiles[0])
    listed = _cli("profiles", "list")
    assert all(p["id"] in listed for p in profiles)  # no id truncated at 80 columns
    md = _cli("profiles", "list", "--kind", "gpu", "-f", "markdown")
    assert "| id |" in md and "nvidia-h100-sxm" in md


def test_report_explains_invalid_cells(tmp_path: Path) -> None:
    from harness.analysis.report import write_report
    from harness.store.refs import load_run_ref

    run = load_run_ref(make_run(tmp_path / "r", "small", 2))
    files = write_report(run, tmp_path / "out")
    md, page = files.markdown.read_text(), files.html.read_text()
    meaning = VALIDITY_HELP["steady_state"][0]
    assert meaning in md and meaning in page
    assert VALIDITY_HELP["min_queries_met"][0] not in md  # only the flags that failed


def test_baseline_list_shows_whole_ids(results: Path) -> None:
    _cli("gate", "baseline", "save", "a-rather-long-baseline-name-for-main", "base", "-o", str(results))
    out = _cli("gate", "baseline", "list", "-o", str(results))
    assert "a-rather-long-baseline-name-for-main" in out and "cells: 34" in out
