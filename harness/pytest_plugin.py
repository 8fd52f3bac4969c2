"""pytest plugin: the ``inference_benchmark`` fixture and ``--harness-gate``.

Registered under the ``pytest11`` entry point, so it is active wherever the package is
installed. It only adds options and a fixture; nothing runs unless a test uses the fixture.

``inference_benchmark(model, backend, scenario, **options)`` measures one cell inside the
test through the runner's Python API (:func:`harness.measure.worker.execute_cell`, in this process)
and returns its :class:`harness.core.records.CellRecord`. All cells of a session form one run under
``--harness-results`` (default ``.harness-bench/``), in the harness schema, plus a
``pytest-benchmark.json`` in pytest-benchmark's format (``benchmarks[].stats`` in seconds with
``min``/``max``/``mean``/``stddev``/``median``/``iqr``/``rounds``/``ops`` and the raw
per-query latencies in ``data``; built by :mod:`harness.store.export`), which
``pytest-benchmark compare``, Bencher and github-action-benchmark read. The run records the
environment manifest and host profile like every run (:mod:`harness.measure.lifecycle`); a
session stopped by Ctrl-C is saved as ``interrupted``.

``--harness-gate BASELINE`` compares the session's run with BASELINE (run dir, run id or
baseline name) through :func:`harness.analysis.gate.compare_runs` and fails the session (exit status 1)
on a regression; a gate data error gives pytest's usage-error status (4). Baseline cells that
this session did not run are listed, not errors (``-k`` selects subsets).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.core.records import CellRecord, RunRecord
    from harness.measure.lifecycle import RunRecorder

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
    """The session's run, started (through :class:`harness.measure.lifecycle.RunRecorder`, like
    every run) when the first cell is measured."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.root = Path(config.getoption("--harness-results") or DEFAULT_RESULTS)
        self.recorder: RunRecorder | None = None
        self.nodeids: dict[str, str] = {}
        self.benchmarks: list[dict[str, Any]] = []
        self.gate_report: Any = None
        self.gate_error: str | None = None
        self.json_path: Path | None = None

    @property
    def record(self) -> RunRecord | None:
        return self.recorder.record if self.recorder is not None else None

    @property
    def run_dir(self) -> Path:
        return self.start().run_dir

    def start(self) -> RunRecorder:
        if self.recorder is None:
            # deferred: the plugin loads in every pytest session; the measure stage only when a cell runs
            from harness.measure.host import host_profile

            # deferred: the plugin loads in every pytest session; the harness only when a test uses it
            from harness.measure.lifecycle import RunRecorder

            self.recorder = RunRecorder.start("pytest", self.root, host_profile())
        return self.recorder

    def add(self, cell: CellRecord, nodeid: str) -> None:
        cell.extra["pytest_nodeid"] = nodeid
        self.start().add(cell)
        self.nodeids[cell.cell_id] = nodeid


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
        self.cells: list[CellRecord] = []

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
    ) -> CellRecord:
        """Measure one cell and return its ``CellRecord``. ``stop`` is a
        :class:`harness.measure.scenarios.base.StopRule` mapping (e.g. ``{"min_duration_s": 1}``).
        Fails the test if the cell fails; skips it if the backend is unavailable here."""
        # deferred: the plugin loads in every pytest session; the measure stage (pandas, scipy) only when used
        from harness.core.records import CellSpec

        # deferred: the plugin loads in every pytest session; the harness only when a test uses it
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
        rec = s.start()
        if spec.cell_id in s.nodeids:
            pytest.fail(
                f"cell {spec.cell_id} was already measured in this session by {s.nodeids[spec.cell_id]}; "
                "a cell id must be unique within a run",
                pytrace=False,
            )
        cell = execute_cell(spec, rec.run_dir, rec.profile)
        if cell.status == "skipped":
            pytest.skip(f"{spec.cell_id}: {cell.error}")
        s.add(cell, self._nodeid)
        self.cells.append(cell)
        if cell.status != "ok":
            pytest.fail(f"cell {spec.cell_id} {cell.status}: {cell.error}", pytrace=False)
        from harness.store.export import benchmark_entry  # deferred: pandas only when a cell was measured

        s.benchmarks.append(benchmark_entry(cell, rec.run_dir, self._name, self._nodeid))
        return cell


@pytest.fixture
def inference_benchmark(request: pytest.FixtureRequest) -> InferenceBenchmark:
    """Measure backend x model x scenario cells inside a test; see :class:`InferenceBenchmark`."""
    return InferenceBenchmark(_state(request.config), request.node.nodeid, request.node.name)


def _write_benchmark_json(s: _Session, rec: RunRecorder) -> Path:
    # deferred: the plugin loads in every pytest session; the harness only when a test uses it
    from harness.store.export import write_benchmark_json

    opt = s.config.getoption("--harness-benchmark-json")
    path = Path(opt) if opt else rec.run_dir / "pytest-benchmark.json"
    return write_benchmark_json(path, rec.record, s.benchmarks)


# ------------------------------------------------------------------ session end


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    s = config.stash.get(_STATE, None)
    if s is not None and s.recorder is not None:
        if exitstatus == pytest.ExitCode.INTERRUPTED:  # Ctrl-C: the cells measured so far stand
            s.recorder.interrupt()
        else:
            s.recorder.complete()
        s.json_path = _write_benchmark_json(s, s.recorder)
    baseline = config.getoption("--harness-gate")
    if not baseline or (hasattr(config, "workerinput")):
        return
    s = _state(config)
    if s.record is None or not s.record.cells:
        s.gate_error = "no inference_benchmark cells ran in this session; nothing to gate"
        return
    # deferred: the plugin loads in every pytest session; the harness only when a test uses it
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
        # deferred: the plugin loads in every pytest session; the harness only when a test uses it
        from harness.analysis.gate import render

        tr.write_sep("-", "harness gate")
        tr.write(render(s.gate_report, "table"))
        for n in s.gate_report.notes:
            tr.write_line(f"note: {n}")
        if s.gate_report.exit_code:
            tr.write_line(f"performance regression: {len(s.gate_report.regressions)} comparison(s) failed", red=True)
