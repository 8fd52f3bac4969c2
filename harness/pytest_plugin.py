"""pytest plugin: the ``inference_benchmark`` fixture, pytest-benchmark output and the gate.

Registered under the ``pytest11`` entry point, so it is active wherever the package is
installed. It only adds options and a fixture; nothing runs unless a test uses the fixture.

``inference_benchmark(model, backend, scenario, **options)`` measures one cell inside the
test through the runner's Python API (:func:`harness.measure.worker.execute_cell`, in this process)
and returns its :class:`harness.core.records.CellRecord`. A failed cell fails the test, an
unavailable backend skips it; an *invalid* cell (a validity flag false, e.g. ``steady_state``
on a busy host) passes with a :class:`HarnessValidityWarning` naming the flags and what they
mean (``-W error::harness.pytest_plugin.HarnessValidityWarning`` makes it fail). All cells of
a session form one run under ``--harness-results`` (default ``.harness-bench/``), in the
harness schema; the run records the environment manifest and host profile like every run
(:mod:`harness.measure.lifecycle`); a session stopped by Ctrl-C is saved as ``interrupted``.

pytest-benchmark (a dependency of the ``pytest`` extra) does the benchmark bookkeeping: every
cell becomes a ``pytest_benchmark.stats.Metadata`` (one round per query, ``batch_size``
iterations per round, so its stats are seconds per sample and ``ops`` samples/s; see
:mod:`harness.store.export`) added to pytest-benchmark's session, so its table,
``--benchmark-json``, ``--benchmark-autosave`` and ``--benchmark-compare`` include the cells;
and ``RUN_DIR/pytest-benchmark.json`` is generated through pytest-benchmark's hooks (its
current format version, ``machine_info``, and ``commit_info`` of the project under test, i.e.
the git checkout pytest runs in).

Gates, exit status 1 on a regression and 4 (pytest's usage error) on a gate data error:

* ``--harness-gate BASELINE`` compares the session's run with a stored BASELINE (run dir, run
  id or baseline name) through :func:`harness.analysis.gate.compare_runs`. Runs measured at
  different times differ by the host's drift, so thresholds must absorb it. Baseline cells
  that this session did not run are listed, not errors (``-k`` selects subsets).
* ``--harness-ab PATH`` (repeatable) measures each closed-loop cell interleaved
  (:mod:`harness.measure.interleave`): a baseline side whose workers import with PATH first on
  ``sys.path`` (e.g. a worktree of the base commit) and the current side take turns in short
  blocks, and the session gates current against baseline block by block, so host drift
  cancels. ``--harness-ab-rounds``/``--harness-ab-block-ms``/``--harness-ab-workers`` set the
  schedule. The session writes two runs (``...-pytest-ab-baseline-...`` and
  ``...-pytest-ab-current-...``); the fixture returns the current side's cell.
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.core.records import CellRecord, CellSpec, RunRecord
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
        "--harness-ab",
        action="append",
        default=None,
        metavar="PATH",
        help="interleaved A/B gate: measure each closed-loop cell against a baseline whose workers import "
        "with PATH first on sys.path (e.g. a worktree of the base commit); repeatable",
    )
    g.addoption("--harness-ab-rounds", type=int, default=100, metavar="N", help="A/B rounds per cell (default 100)")
    g.addoption(
        "--harness-ab-block-ms", type=float, default=25.0, metavar="MS", help="A/B block length in ms (default 25)"
    )
    g.addoption(
        "--harness-ab-workers", type=int, default=3, metavar="N", help="A/B worker processes per side (default 3)"
    )
    g.addoption(
        "--harness-benchmark-json",
        default=None,
        metavar="PATH",
        help="where to write the cells' pytest-benchmark JSON (default: RUN_DIR/pytest-benchmark.json)",
    )


class HarnessValidityWarning(UserWarning):
    """A measured cell failed a validity check: its figures are recorded but not to be trusted."""


class _Session:
    """The session's run(s), started (through :class:`harness.measure.lifecycle.RunRecorder`,
    like every run) when the first cell is measured: one run, or with ``--harness-ab`` a
    baseline and a current run measured interleaved."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.root = Path(config.getoption("--harness-results") or DEFAULT_RESULTS)
        self.ab_paths: list[str] = list(config.getoption("--harness-ab") or [])
        self.recorder: RunRecorder | None = None
        self.baseline: RunRecorder | None = None
        self.ab_session = ""
        self.nodeids: dict[str, str] = {}
        self.benchmarks: list[Any] = []
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
            from harness.measure.lifecycle import RunRecorder, run_environment

            profile = host_profile()
            if not self.ab_paths:
                self.recorder = RunRecorder.start("pytest", self.root, profile)
                return self.recorder
            self.ab_session = secrets.token_hex(6)
            env = run_environment(profile)
            env["interleave_session"] = self.ab_session
            paths = [str(Path(x).resolve()) for x in self.ab_paths]
            self.baseline = RunRecorder.start(
                "pytest-ab-baseline",
                self.root,
                profile,
                environment=env,
                extra_environment={"ab_role": "baseline", "pythonpath": paths},
            )
            self.recorder = RunRecorder.start(
                "pytest-ab-current",
                self.root,
                profile,
                environment=env,
                extra_environment={"ab_role": "current", "pythonpath": []},
            )
        return self.recorder

    def measure(self, spec: CellSpec) -> CellRecord:
        """Measure ``spec``: in this process, or interleaved against the baseline paths."""
        rec = self.start()
        if self.baseline is None or not spec.closed_loop:
            # deferred: the plugin loads in every pytest session; the harness only when a test uses it
            from harness.measure.worker import execute_cell

            return execute_cell(spec, rec.run_dir, rec.profile)
        # deferred: the plugin loads in every pytest session; the harness only when a test uses it
        from harness.measure.interleave import InterleaveOptions, Variant, measure_interleaved

        opts = InterleaveOptions(
            rounds=self.config.getoption("--harness-ab-rounds"),
            block_ms=self.config.getoption("--harness-ab-block-ms"),
            workers=self.config.getoption("--harness-ab-workers"),
            seed=len(self.nodeids),
        )
        variants = [
            Variant("baseline", spec, tuple(str(Path(x).resolve()) for x in self.ab_paths)),
            Variant("current", spec),
        ]
        base, cur = measure_interleaved(variants, [self.baseline.run_dir, rec.run_dir], opts, session=self.ab_session)
        self.baseline.add(base)
        return cur

    def add(self, cell: CellRecord, nodeid: str) -> None:
        cell.extra["pytest_nodeid"] = nodeid
        self.start().add(cell)
        self.nodeids[cell.cell_id] = nodeid

    def finish(self, interrupted: bool) -> None:
        for r in (self.baseline, self.recorder):
            if r is not None:
                r.interrupt() if interrupted else r.complete()


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
        :class:`harness.core.stop.StopRule` mapping (e.g. ``{"min_duration_s": 1}``).
        Fails the test if the cell fails; skips it if the backend is unavailable here; warns
        (:class:`HarnessValidityWarning`) if the cell is invalid."""
        # deferred: the plugin loads in every pytest session; the harness (pydantic) only when a test uses it
        from harness.analysis.validity import explain, invalid_reasons

        # deferred: the plugin loads in every pytest session; the harness (pydantic) only when a test uses it
        from harness.core.records import CellSpec

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
        if spec.cell_id in s.nodeids:
            pytest.fail(
                f"cell {spec.cell_id} was already measured in this session by {s.nodeids[spec.cell_id]}; "
                "a cell id must be unique within a run",
                pytrace=False,
            )
        cell = s.measure(spec)
        if cell.status == "skipped":
            pytest.skip(f"{spec.cell_id}: {cell.error}")
        s.add(cell, self._nodeid)
        self.cells.append(cell)
        if cell.status != "ok":
            pytest.fail(f"cell {spec.cell_id} {cell.status}: {cell.error}", pytrace=False)
        if reasons := invalid_reasons(cell):
            warnings.warn(
                HarnessValidityWarning(
                    f"cell {spec.cell_id} is invalid ({', '.join(reasons)}): " + " ".join(explain(r) for r in reasons)
                ),
                stacklevel=2,
            )
        from harness.store.export import benchmark_metadata  # deferred: pandas only when a cell was measured

        s.benchmarks.append(benchmark_metadata(cell, s.run_dir, self._name, self._nodeid))
        bs = getattr(s.config, "_benchmarksession", None)
        if bs is not None:  # pytest-benchmark's own table, --benchmark-json/-save/-compare see the cell
            bs.benchmarks.append(s.benchmarks[-1])
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
    return write_benchmark_json(path, s.config, s.benchmarks, rec.record.run_id)


# ------------------------------------------------------------------ session end


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    s = config.stash.get(_STATE, None)
    if s is not None and s.recorder is not None:
        s.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)  # Ctrl-C: the cells measured so far stand
        if s.benchmarks:
            s.json_path = _write_benchmark_json(s, s.recorder)
    baseline = config.getoption("--harness-gate")
    ab = bool(config.getoption("--harness-ab"))
    if not (baseline or ab) or hasattr(config, "workerinput"):
        return
    s = _state(config)
    if s.record is None or not s.record.cells:
        s.gate_error = "no inference_benchmark cells ran in this session; nothing to gate"
        return
    # deferred: the plugin loads in every pytest session; the harness only when a test uses it
    from harness.analysis.gate import GateError, LoadedRun, compare_runs, load_run_ref, parse_rules

    try:
        rules = parse_rules(config.getoption("--harness-gate-rule"))
        if s.baseline is not None:
            b = s.baseline.record
            base = LoadedRun(b, s.baseline.run_dir, b.run_id)
        else:
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
        if s.baseline is not None:
            tr.write_line(f"interleaved baseline run {s.baseline.record.run_id} in {s.baseline.run_dir}")
        if s.json_path is not None:
            tr.write_line(f"pytest-benchmark JSON: {s.json_path}")
    if s.gate_error:
        tr.write_sep("-", "harness gate")
        tr.write_line(s.gate_error, red=True)
    elif s.gate_report is not None:
        # deferred: the plugin loads in every pytest session; the harness only when a test uses it
        from harness.analysis.gate import render

        tr.write_sep("-", "harness gate" + (" (interleaved A/B)" if s.baseline is not None else ""))
        tr.write(render(s.gate_report, "table"))
        if s.gate_report.exit_code:
            tr.write_line(f"performance regression: {len(s.gate_report.regressions)} comparison(s) failed", red=True)
