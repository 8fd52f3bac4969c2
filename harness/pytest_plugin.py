"""pytest plugin: the ``inference_benchmark`` fixture and ``--harness-gate``.

Registered under the ``pytest11`` entry point, so it is active wherever the package is
installed. It only adds options and a fixture; nothing runs unless a test uses the fixture.

``inference_benchmark(model, backend, scenario, **options)`` measures one cell inside the
test through the runner's Python API (:func:`harness.measure.worker.execute_cell`, in this process)
and returns its :class:`harness.core.records.CellRecord`. All cells of a session form one run under
``--harness-results`` (default ``.harness-bench/``), in the harness schema, plus a
``pytest-benchmark.json`` in pytest-benchmark's format (``benchmarks[].stats`` in seconds with
``min``/``max``/``mean``/``stddev``/``median``/``iqr``/``rounds``/``ops`` and the raw
per-query latencies in ``data``), which ``pytest-benchmark compare``, Bencher and
github-action-benchmark read.

``--harness-gate BASELINE`` compares the session's run with BASELINE (run dir, run id or
baseline name) through :func:`harness.analysis.gate.compare_runs` and fails the session (exit status 1)
on a regression; a gate data error gives pytest's usage-error status (4). Baseline cells that
this session did not run are listed, not errors (``-k`` selects subsets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DEFAULT_RESULTS = ".harness-bench"
_STATE = pytest.StashKey["_Session"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "inference benchmarks (inference-harness)")
    g.addoption(
        "--harness-results",
        default=None,
        metavar="DIR",
        help=f"directory for run records of inference_benchmark cells (default: {DEFAULT_RESULTS})",
    )
    g.addoption(
        "--harness-gate",
        default=None,
        metavar="BASELINE",
        help="compare this session's cells with BASELINE (run dir, run id or baseline name); fail on regression",
    )
    g.addoption(
        "--harness-gate-rule",
        action="append",
        default=None,
        metavar="RULE",
        help="gate rule METRIC:+N%% or METRIC:-N%% (repeatable; default: the gate's default rules)",
    )
    g.addoption(
        "--harness-gate-alpha",
        type=float,
        default=0.01,
        metavar="ALPHA",
        help="family-wise significance level of the gate (default 0.01)",
    )
    g.addoption(
        "--harness-benchmark-json",
        default=None,
        metavar="PATH",
        help="where to write pytest-benchmark JSON (default: RUN_DIR/pytest-benchmark.json)",
    )


class _Session:
    """The session's run record, created when the first cell is measured."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.root = Path(config.getoption("--harness-results") or DEFAULT_RESULTS)
        self.record: Any = None
        self.profile: Any = None
        self.nodeids: dict[str, str] = {}
        self.benchmarks: list[dict[str, Any]] = []
        self.gate_report: Any = None
        self.gate_error: str | None = None
        self.json_path: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.root / self.record.run_id

    def start(self) -> None:
        if self.record is not None:
            return
        from harness.core.records import RunRecord
        from harness.measure.environment import manifest
        from harness.measure.runner import host_profile
        from harness.store.results import new_run_id, save_run

        self.profile = host_profile()
        self.record = RunRecord(run_id=new_run_id("pytest"), suite_name="pytest", environment=manifest(None))
        self.record.environment["profile_id"] = self.profile.id
        save_run(self.record, self.root)

    def add(self, cell: Any, nodeid: str) -> None:
        from harness.store.results import save_run

        cell.extra["pytest_nodeid"] = nodeid
        self.record.cells.append(cell)
        self.nodeids[cell.cell_id] = nodeid
        save_run(self.record, self.root)


def _state(config: pytest.Config) -> _Session:
    if _STATE not in config.stash:
        config.stash[_STATE] = _Session(config)
    return config.stash[_STATE]


class InferenceBenchmark:
    """Callable handed to tests by the ``inference_benchmark`` fixture."""

    def __init__(self, session: _Session, nodeid: str, name: str) -> None:
        self._session = session
        self._nodeid = nodeid
        self._name = name
        self.cells: list[Any] = []

    def __call__(
        self,
        model: str,
        backend: str = "torch",
        scenario: str = "single-stream",
        *,
        size: str = "tiny",
        batch_size: int = 1,
        device: str = "cpu",
        stop: dict[str, Any] | None = None,
        backend_options: dict[str, Any] | None = None,
        model_params: dict[str, Any] | None = None,
        parity: bool = True,
        seed: int = 0,
        **scenario_options: Any,
    ) -> Any:
        """Measure one cell and return its ``CellRecord``. ``stop`` is a
        :class:`harness.measure.scenarios.base.StopRule` mapping (e.g. ``{"min_duration_s": 1}``).
        Fails the test if the cell fails; skips it if the backend is unavailable here."""
        from harness.core.records import CellSpec
        from harness.measure.worker import execute_cell

        opts = {"batch_size": batch_size, **scenario_options}
        if stop is not None:
            opts["stop"] = dict(stop)
        spec = CellSpec(
            model=model,
            size=size,
            backend=backend,
            backend_options=backend_options or {},
            device=device,
            scenario=scenario,
            scenario_options=opts,
            model_params=model_params or {},
            parity=parity,
            seed=seed,
        )
        s = self._session
        s.start()
        if spec.cell_id in s.nodeids:
            pytest.fail(
                f"cell {spec.cell_id} was already measured in this session by {s.nodeids[spec.cell_id]}; "
                "a cell id must be unique within a run",
                pytrace=False,
            )
        cell = execute_cell(spec, s.run_dir, s.profile)
        if cell.status == "skipped":
            pytest.skip(f"{spec.cell_id}: {cell.error}")
        s.add(cell, self._nodeid)
        self.cells.append(cell)
        if cell.status != "ok":
            pytest.fail(f"cell {spec.cell_id} {cell.status}: {cell.error}", pytrace=False)
        s.benchmarks.append(_benchmark_entry(cell, s.run_dir, self._name, self._nodeid))
        return cell


@pytest.fixture
def inference_benchmark(request: pytest.FixtureRequest) -> InferenceBenchmark:
    """Measure backend x model x scenario cells inside a test; see :class:`InferenceBenchmark`."""
    return InferenceBenchmark(_state(request.config), request.node.nodeid, request.node.name)


# ------------------------------------------------------------------ pytest-benchmark JSON


def benchmark_stats(latencies_s: Any) -> dict[str, Any]:
    """pytest-benchmark ``stats`` of per-round times in seconds (quartiles: linear)."""
    import numpy as np

    d = np.asarray(latencies_s, dtype=float)
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    q1, med, q3 = (float(x) for x in np.quantile(d, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    inside = d[(d >= lo_fence) & (d <= hi_fence)]
    sd_out = int(np.sum(np.abs(d - mean) > sd)) if n > 1 else 0
    iqr_out = int(n - inside.size)
    return {
        "min": float(d.min()),
        "max": float(d.max()),
        "mean": mean,
        "stddev": sd,
        "rounds": int(n),
        "median": med,
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_out,
        "stddev_outliers": sd_out,
        "outliers": f"{sd_out};{iqr_out}",
        "ld15iqr": float(inside.min()) if inside.size else float(d.min()),
        "hd15iqr": float(inside.max()) if inside.size else float(d.max()),
        "ops": 1.0 / mean if mean > 0 else 0.0,
        "total": float(d.sum()),
        "iterations": 1,
        "data": [float(x) for x in d],
    }


def _benchmark_entry(cell: Any, run_dir: Path, name: str, nodeid: str) -> dict[str, Any]:
    # deferred: the plugin loads in every pytest session; pandas only when a cell was measured
    import pandas as pd

    from harness.core.records import query_latency_ms

    raw = pd.read_parquet(run_dir / cell.raw_file)
    lat_s = query_latency_ms(raw) / 1e3
    extra = {
        "cell_id": cell.cell_id,
        "harness_run": run_dir.name,
        "latency_definition": "completed - scheduled, seconds, one round per query",
        **{k: m.value for k, m in cell.metrics.items() if m.value is not None and m.provenance == "measured"},
    }
    return {
        "group": cell.spec.scenario,
        "name": name,
        "fullname": nodeid,
        "params": None,
        "param": None,
        "extra_info": extra,
        "options": {
            "timer": "time.perf_counter_ns",
            "disable_gc": False,
            "min_rounds": None,
            "max_time": None,
            "min_time": None,
            "warmup": True,
        },
        "stats": benchmark_stats(lat_s),
    }


def _write_benchmark_json(s: _Session) -> Path:
    import json
    import platform
    from datetime import datetime, timezone

    from harness.store.results import atomic_write_text

    env = s.record.environment
    git = env.get("project_git") or {}
    doc = {
        "machine_info": {
            "node": platform.node(),
            "processor": platform.processor(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "python_version": platform.python_version(),
            "system": platform.system(),
            "release": platform.release(),
            "cpu": {"brand_raw": env.get("cpu_model"), "count": env.get("cpu_logical_cores")},
        },
        "commit_info": {"id": git.get("commit"), "dirty": git.get("dirty"), "branch": git.get("branch")},
        "benchmarks": s.benchmarks,
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": "4.0.0",
        "harness": {"run_id": s.record.run_id, "note": "pytest-benchmark 4.0 file format; times in seconds"},
    }
    opt = s.config.getoption("--harness-benchmark-json")
    path = Path(opt) if opt else s.run_dir / "pytest-benchmark.json"
    atomic_write_text(path, json.dumps(doc, indent=1))
    return path


# ------------------------------------------------------------------ session end


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    s = config.stash.get(_STATE, None)
    if s is not None and s.record is not None:
        from harness.store.results import save_run

        s.record.status = "complete"
        save_run(s.record, s.root)
        s.json_path = _write_benchmark_json(s)
    baseline = config.getoption("--harness-gate")
    if not baseline or (hasattr(config, "workerinput")):
        return
    s = _state(config)
    if s.record is None or not s.record.cells:
        s.gate_error = "no inference_benchmark cells ran in this session; nothing to gate"
        return
    from harness.analysis.gate import GateError, LoadedRun, compare_runs, load_run_ref, parse_rules

    try:
        rules = parse_rules(config.getoption("--harness-gate-rule"))
        base = load_run_ref(baseline, s.root)
        cur = LoadedRun(s.record, s.run_dir, s.record.run_id)
        s.gate_report = compare_runs(base, cur, rules, config.getoption("--harness-gate-alpha"), allow_unmatched=True)
    except GateError as exc:
        s.gate_error = f"harness gate error: {exc}"
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if s.gate_report.exit_code and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _STATE not in config.stash:
        return
    s = config.stash[_STATE]
    tr = terminalreporter
    if s.record is not None:
        tr.write_sep("-", "inference benchmarks")
        tr.write_line(f"run {s.record.run_id}: {len(s.record.cells)} cell(s) in {s.run_dir}")
        if s.json_path is not None:
            tr.write_line(f"pytest-benchmark JSON: {s.json_path}")
    if s.gate_error:
        tr.write_sep("-", "harness gate")
        tr.write_line(s.gate_error, red=True)
    elif s.gate_report is not None:
        from harness.analysis.gate import render

        tr.write_sep("-", "harness gate")
        tr.write(render(s.gate_report, "table"))
        for n in s.gate_report.notes:
            tr.write_line(f"note: {n}")
        if s.gate_report.exit_code:
            tr.write_line(f"performance regression: {len(s.gate_report.regressions)} comparison(s) failed", red=True)
