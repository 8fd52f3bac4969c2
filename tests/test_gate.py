"""The regression gate: verdicts, directions, cell matching, outputs, exit codes, symmetry."""

from __future__ import annotations

import json
import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.analysis import gate
from harness.cli.gate import gate_app
from harness.core.metrics import METRICS
from harness.core.records import CellRecord, RunRecord, legacy_cell_id
from harness.core.spec import load_suite
from harness.store.results import save_run, write_table

N = 2000


def _cell(scenario: str = "single-stream", bs: int = 1, model: str = "tabular_mlp"):
    return fast_cell(model=model, backend="null", scenario=scenario, batch_size=bs)


def make_run(
    root: Path,
    name: str,
    cells: list,
    *,
    seed: int = 0,
    schema: int | None = None,
    status: dict | None = None,
    steady: bool = True,
    spread: float | None = None,
    legacy_ids: bool = False,
) -> Path:
    """A run whose cells have closed-loop timestamps: ``cells`` is [(spec, latency factor)];
    ``legacy_ids``: cells carry the id of runs written before stop rules were part of it."""
    rng = np.random.default_rng(seed)
    rec = RunRecord(run_id=name, suite_name="t")
    if schema is not None:
        rec.schema_version = schema
    run_dir = root / name
    for spec, factor in cells:
        cid = legacy_cell_id(spec) if legacy_ids else spec.cell_id
        st_ = (status or {}).get(cid, "ok")
        if st_ != "ok":
            rec.cells.append(CellRecord(cell_id=cid, spec=spec, status=st_, error="boom"))
            continue
        lat = (rng.lognormal(np.log(1e6), 0.1, N) * factor).astype(np.int64)  # ~1 ms
        sched = np.concatenate([[0], np.cumsum(lat[:-1])]).astype(np.int64)
        raw = f"raw/{cid}.parquet"
        bs = spec.batch_size
        write_table(
            run_dir / raw,
            {
                "query_id": np.arange(N),
                "batch_size": np.full(N, bs),
                "scheduled_ns": sched,
                "issued_ns": sched,
                "completed_ns": sched + lat,
            },
        )
        rec.cells.append(
            CellRecord(
                cell_id=cid,
                spec=spec,
                status="ok",
                raw_file=raw,
                validity={"steady_state": steady},
                extra={"steady_state": {"ratio": spread}} if spread else {},
            )
        )
    save_run(rec, root)
    return run_dir


@pytest.fixture
def runs(tmp_path: Path):
    ss, off = _cell(), _cell("offline", 4)

    def _make(name: str, f_ss: float = 1.0, f_off: float = 1.0, seed: int = 0, **kw) -> gate.LoadedRun:
        d = make_run(tmp_path, name, [(ss, f_ss), (off, f_off)], seed=seed, **kw)
        return gate.load_run_ref(d)

    return _make


# ------------------------------------------------------------------ rules


def test_parse_rule_directions() -> None:
    r = gate.parse_rule("latency_p99:+5%")
    assert r.metric.direction == "lower" and r.threshold == pytest.approx(0.05)
    r = gate.parse_rule("throughput:-3%")
    assert r.metric.direction == "higher" and r.threshold == pytest.approx(0.03)
    assert str(gate.parse_rule("latency_p99:7.5%")) == "latency_p99:+7.5%"
    with pytest.raises(gate.GateError, match="higher-is-better"):
        gate.parse_rule("throughput:+3%")
    with pytest.raises(gate.GateError, match="lower-is-better"):
        gate.parse_rule("latency_p99:-3%")
    with pytest.raises(gate.GateError, match="allowed"):
        gate.parse_rule("speed:+3%")
    with pytest.raises(gate.GateError, match="cannot parse"):
        gate.parse_rule("latency_p99=5")
    with pytest.raises(gate.GateError, match="more than one rule"):
        gate.parse_rules(["latency_p99:+5%", "latency_p99:+6%"])
    with pytest.raises(gate.GateError, match="more than one rule"), pytest.warns(DeprecationWarning):
        gate.parse_rules(["latency_p99:+5%", "p99_latency:+6%"])


def test_gated_metrics_are_the_record_metrics() -> None:
    """One registry: every gated metric is a record metric with its unit and direction."""
    assert set(gate.GATE_METRICS) == {
        "throughput",
        "latency_p50",
        "latency_p90",
        "latency_p95",
        "latency_p99",
        "latency_p99.9",
        "latency_mean",
    }
    for name, m in gate.GATE_METRICS.items():
        assert (m.unit, m.direction) == (METRICS[name].unit, METRICS[name].direction)
    assert gate.GATE_METRICS["latency_p50"].statistic == "median"
    assert gate.GATE_METRICS["throughput"].samples == "throughput"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the record names and the default rules never warn
        assert [str(r) for r in gate.parse_rules(None)] == list(gate.DEFAULT_RULES)
        assert gate.gate_metric("latency_p99").name == "latency_p99"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("median_latency", "latency_p50"),
        ("p50_latency", "latency_p50"),
        ("mean_latency", "latency_mean"),
        ("p90_latency", "latency_p90"),
        ("p95_latency", "latency_p95"),
        ("p99_latency", "latency_p99"),
        ("p99.9_latency", "latency_p99.9"),
        ("samples_per_s", "throughput"),
    ],
)
def test_old_gate_metric_names_still_parse_with_a_deprecation_warning(old: str, new: str) -> None:
    sign = "-" if new == "throughput" else "+"
    with pytest.warns(DeprecationWarning) as caught:
        rule = gate.parse_rule(f"{old}:{sign}4%")
    assert rule.metric.name == new and rule.threshold == pytest.approx(0.04)
    (w,) = caught
    msg = str(w.message)
    assert "\n" not in msg and f"{new}:{sign}4%" in msg and old in msg
    with pytest.warns(DeprecationWarning, match=new):
        assert gate.gate_metric(old) is gate.GATE_METRICS[new]


# ------------------------------------------------------------------ holm


def test_holm_matches_definition() -> None:
    adj = gate.holm_correct([0.01, 0.04, 0.03, 0.005])
    assert np.allclose(adj, [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(gate.holm_correct([0.1, float("nan")])[1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_holm_is_at_least_raw_and_order_preserving(ps: list[float]) -> None:
    adj = gate.holm_correct(ps)
    p = np.asarray(ps)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)


# ------------------------------------------------------------------ compare_samples


def _lat(seed: int, n: int = 3000, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(0.0, 0.2, n) * scale


@pytest.mark.parametrize("name", ["latency_p50", "latency_p99", "latency_mean"])
def test_latency_direction(name: str) -> None:
    m = gate.gate_metric(name)
    assert gate.compare_samples(_lat(1), _lat(2, scale=1.3), m, 0.05).verdict == "regression"
    assert gate.compare_samples(_lat(1), _lat(2, scale=0.7), m, 0.05).verdict == "improvement"
    assert gate.compare_samples(_lat(1), _lat(2), m, 0.10).verdict == "no change"


def test_throughput_direction() -> None:
    m = gate.gate_metric("throughput")
    base = _lat(1, 40) * 1000
    assert gate.compare_samples(base, base * 0.7, m, 0.05).verdict == "regression"
    assert gate.compare_samples(base, base * 1.3, m, 0.05).verdict == "improvement"


def test_inconclusive_with_few_samples_and_mde() -> None:
    m = gate.gate_metric("latency_p99")
    v = gate.compare_samples(_lat(1, 30), _lat(2, 30, scale=1.06), m, 0.05)
    assert v.verdict == "inconclusive"
    assert v.mde > 0.05  # 30 samples cannot resolve a 5 % change of the p99
    big = gate.compare_samples(_lat(1, 20000), _lat(2, 20000), m, 0.05)
    assert big.mde < v.mde


def test_small_real_change_below_threshold_is_not_a_regression() -> None:
    m = gate.gate_metric("latency_p50")
    v = gate.compare_samples(_lat(1, 20000), _lat(2, 20000, scale=1.02), m, 0.05)
    assert v.p_value < 1e-6 and v.verdict == "no change"


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.floats(0.6, 1.6),
    st.integers(20, 400),
    st.sampled_from(["latency_p50", "latency_p99", "latency_p90", "throughput"]),
    st.sampled_from([0.02, 0.05, 0.1]),
)
def test_comparison_is_symmetric(s1: int, s2: int, scale: float, n: int, name: str, thr: float) -> None:
    m = gate.gate_metric(name)
    a, b = _lat(s1, n), _lat(s2, n, scale)
    ab = gate.compare_samples(a, b, m, thr)
    ba = gate.compare_samples(b, a, m, thr)
    mirror = {
        "regression": "improvement",
        "improvement": "regression",
        "no change": "no change",
        "inconclusive": "inconclusive",
    }
    assert ba.verdict == mirror[ab.verdict]
    assert ab.ratio * ba.ratio == pytest.approx(1.0)
    assert ab.ci_low * ba.ci_high == pytest.approx(1.0)
    assert ab.ci_high * ba.ci_low == pytest.approx(1.0)
    assert ab.p_value == pytest.approx(ba.p_value)


def test_window_throughput_samples() -> None:
    t = np.arange(0, 2_000_000_000, 1_000_000)  # one completion per ms for 2 s
    s = gate.window_throughput_samples(t, np.full(t.size, 2))
    assert s.size == 19 and np.allclose(s, 2000.0)


# ------------------------------------------------------------------ compare_runs


def test_compare_runs_pass_and_regression(runs) -> None:
    a = runs("a", seed=1)
    rep = gate.compare_runs(a, runs("b", seed=2), gate.parse_rules(None))
    assert rep.exit_code == gate.EXIT_PASS
    assert {v.verdict for v in rep.verdicts} <= {"no change", "inconclusive"}
    slow = gate.compare_runs(a, runs("c", f_ss=1.25, seed=3), gate.parse_rules(["latency_p50:+5%"]))
    assert slow.exit_code == gate.EXIT_REGRESSION
    by = {v.cell_id: v.verdict for v in slow.verdicts}
    assert by[_cell().cell_id] == "regression"
    assert by[_cell("offline", 4).cell_id] == "no change"


def test_unmatched_cells_and_schema(tmp_path: Path, runs) -> None:
    a = runs("a")
    other = gate.load_run_ref(make_run(tmp_path, "x", [(_cell(), 1.0), (_cell(model="bert"), 1.0)]))
    with pytest.raises(gate.GateError, match="only in current.*bert"):
        gate.compare_runs(a, other)
    rep = gate.compare_runs(a, other, allow_unmatched=True)
    assert any("bert" in n for n in rep.notes)
    assert {v.cell_id for v in rep.verdicts} == {_cell().cell_id}
    with pytest.raises(gate.GateError, match="schema"):
        gate.compare_runs(a, runs("s", schema=99))


def test_failed_current_cell_fails_the_gate(runs) -> None:
    a = runs("a")
    b = runs("b", seed=2, status={_cell().cell_id: "crashed"})
    rep = gate.compare_runs(a, b)
    assert rep.exit_code == gate.EXIT_REGRESSION
    assert any(v.verdict == "failed" and "crashed" in v.note for v in rep.verdicts)


def test_unstable_current_cannot_prove_a_regression(runs) -> None:
    rules = gate.parse_rules(["latency_p50:+5%"])
    rep = gate.compare_runs(runs("a"), runs("u", f_ss=1.3, seed=3, steady=False), rules)
    assert rep.exit_code == gate.EXIT_PASS
    assert all("unstable" in v.note for v in rep.verdicts)
    assert any(v.verdict == "inconclusive" for v in rep.verdicts)
    # ... unless the slowdown exceeds the threshold times the run's own spread between windows
    rep = gate.compare_runs(runs("a2"), runs("u2", f_ss=1.3, seed=3, steady=False, spread=1.1), rules)
    assert rep.exit_code == gate.EXIT_REGRESSION
    rep = gate.compare_runs(runs("a3"), runs("u3", f_ss=1.3, seed=3, steady=False, spread=1.3), rules)
    assert rep.exit_code == gate.EXIT_PASS
    # an unstable baseline does not hide a regression of a stable current run
    rep = gate.compare_runs(runs("ub", seed=4, steady=False), runs("c", f_ss=1.3, seed=3), rules)
    assert rep.exit_code == gate.EXIT_REGRESSION


def test_throughput_not_gated_for_open_loop() -> None:
    m = gate.gate_metric("throughput")
    assert m.applies_to("offline") and not m.applies_to("online")


# ------------------------------------------------------------------ cell ids

STOP_SWEEP = """\
name: stops
defaults: {size: tiny, stop: {min_duration_s: 0.1}}
matrix:
  - models: [tabular_mlp]
    backends: [null]
    scenarios:
      - {name: single-stream, sweep: {stop: [{min_queries: 64}, {min_queries: 128}]}}
      - {name: offline, options: {stop: {min_duration_s: 2.0}}}
"""


def test_a_sweep_over_stop_rules_gives_one_cell_per_rule(write_suite) -> None:
    _, cells = load_suite(write_suite(STOP_SWEEP))
    ss = [c for c in cells if c.scenario == "single-stream"]
    assert [c.stop.min_queries for c in ss] == [64, 128]
    assert len({c.cell_id for c in ss}) == 2  # the stop rule is part of the id
    assert len({legacy_cell_id(c) for c in ss}) == 1  # ... and was not before
    (off,) = [c for c in cells if c.scenario == "offline"]
    assert off.cell_id == legacy_cell_id(off)  # a default stop rule leaves the id as it was


def test_a_baseline_with_legacy_cell_ids_still_compares(tmp_path: Path) -> None:
    ss, off = _cell(), _cell("offline", 4)
    assert ss.cell_id != legacy_cell_id(ss)
    old = gate.load_run_ref(make_run(tmp_path, "old", [(ss, 1.0), (off, 1.0)], seed=1, legacy_ids=True))
    cur = gate.load_run_ref(make_run(tmp_path, "cur", [(ss, 1.3), (off, 1.0)], seed=2))
    rules = gate.parse_rules(["latency_p50:+5%"])
    rep = gate.compare_runs(old, cur, rules)
    by = {v.cell_id: v.verdict for v in rep.verdicts}
    assert by == {ss.cell_id: "regression", off.cell_id: "no change"}
    assert sum("matched by the id without the stop rule" in n for n in rep.notes) == 2
    # the other way round (a new baseline, a current run written before the change) as well
    back = gate.compare_runs(cur, old, rules)
    assert {v.cell_id: v.verdict for v in back.verdicts} == {
        legacy_cell_id(ss): "improvement",
        legacy_cell_id(off): "no change",
    }
    # two current cells that differ only in the stop rule: the one measured like the old
    # baseline cell is compared with it, the other has no baseline
    other_stop = ss.model_copy(update={"scenario_options": {**ss.scenario_options, "stop": {"min_queries": 99}}})
    two = gate.load_run_ref(make_run(tmp_path, "two", [(ss, 1.0), (other_stop, 1.0), (off, 1.0)], seed=3))
    with pytest.raises(gate.GateError, match=f"only in current.*{other_stop.cell_id}"):
        gate.compare_runs(old, two, rules)
    rep = gate.compare_runs(old, two, rules, allow_unmatched=True)
    assert {v.cell_id for v in rep.verdicts} == {ss.cell_id, off.cell_id}


# ------------------------------------------------------------------ outputs


def test_markdown_json_junit(runs) -> None:
    a, c = runs("a", seed=1), runs("c", f_ss=1.3, seed=3)
    rep = gate.compare_runs(a, c, gate.parse_rules(["latency_p50:+5%", "throughput:-5%"]))
    md = gate.to_markdown(rep)
    assert md.startswith("## Performance gate: FAIL")
    assert "| cell | metric |" in md and "REGRESSION" in md
    data = json.loads(gate.to_json(rep))
    assert data["exit_code"] == 1 and len(data["verdicts"]) == 4
    root = ET.fromstring(gate.to_junit_xml(rep))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4"
    failures = root.findall(".//failure")
    assert len(failures) == int(suite.get("failures", "0")) >= 1
    assert all(tc.get("classname") for tc in root.iter("testcase"))
    assert "REGRESSION" in gate.render(rep, "table")
    with pytest.raises(gate.GateError, match="allowed"):
        gate.render(rep, "pdf")


# ------------------------------------------------------------------ CLI


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(gate_app, name="gate")
    return app


def test_cli_exit_codes(tmp_path: Path, runs) -> None:
    runs("a", seed=1)
    runs("b", seed=2)
    runs("c", f_ss=1.3, seed=3)
    cli = CliRunner()
    r = tmp_path
    ok = cli.invoke(_app(), ["gate", "compare", "a", "b", "--results", str(r)])
    assert ok.exit_code == 0, ok.output
    bad = cli.invoke(
        _app(), ["gate", "compare", "a", "c", "--results", str(r), "-f", "markdown", "--junit", str(r / "j.xml")]
    )
    assert bad.exit_code == 1 and "REGRESSION" in bad.output
    assert (r / "j.xml").read_text().startswith("<?xml")
    missing = cli.invoke(_app(), ["gate", "compare", "a", "nope", "--results", str(r)])
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output
    rule = cli.invoke(_app(), ["gate", "compare", "a", "b", "--results", str(r), "--fail-on", "throughput:+2%"])
    assert rule.exit_code == 2


def test_cli_accepts_an_old_metric_name_with_a_one_line_warning(tmp_path: Path, runs) -> None:
    runs("a", seed=1)
    runs("c", f_ss=1.3, seed=3)
    args = ["gate", "compare", "a", "c", "--results", str(tmp_path), "-f", "json"]
    res = CliRunner().invoke(_app(), [*args, "--fail-on", "median_latency:+5%"])
    assert res.exit_code == 1, res.output
    (line,) = [x for x in res.output.splitlines() if "deprecated" in x]
    assert "median_latency" in line and "latency_p50:+5%" in line
    new = CliRunner().invoke(_app(), [*args, "--fail-on", "latency_p50:+5%"])
    assert new.exit_code == 1 and "deprecated" not in new.output
    assert json.loads(new.output)["rules"] == ["latency_p50:+5%"]


def test_cli_baselines(tmp_path: Path, runs) -> None:
    runs("a", seed=1)
    runs("c", f_ss=1.3, seed=3)
    cli = CliRunner()
    r = str(tmp_path)
    assert cli.invoke(_app(), ["gate", "baseline", "save", "main", "a", "--results", r]).exit_code == 0
    assert (tmp_path / "baselines" / "main" / "run.json").exists()
    again = cli.invoke(_app(), ["gate", "baseline", "save", "main", "a", "--results", r])
    assert again.exit_code == 2 and "--force" in again.output
    assert cli.invoke(_app(), ["gate", "baseline", "save", "../x", "a", "--results", r]).exit_code == 2
    lst = cli.invoke(_app(), ["gate", "baseline", "list", "--results", r])
    assert "main" in lst.output
    res = cli.invoke(_app(), ["gate", "compare", "main", "c", "--results", r, "-f", "json"])
    assert res.exit_code == 1 and json.loads(res.output)["baseline"] == "main"


def test_noise_from_runs(runs) -> None:
    rs = [runs(f"r{i}", seed=i) for i in range(3)]
    rows = gate.noise_from_runs(rs, [gate.gate_metric("latency_p50"), gate.gate_metric("latency_p99")])
    assert {r.metric for r in rows} == {"latency_p50", "latency_p99"}
    for row in rows:
        assert row.n_runs == 3 and row.pairs == 6
        assert row.suggested_threshold >= row.aa_max_change
        assert row.false_alarms == 0
        assert math.isfinite(row.cv)


def test_cli_calibrate_noise_runs_the_suite(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: noise\n"
        "defaults:\n  size: tiny\n  timeout_s: 60\n"
        "  stop: {min_duration_s: 0.05, min_queries: 64, max_duration_s: 5, warmup_s: 0.01, warmup_queries: 2}\n"
        "matrix:\n  - models: [tabular_mlp]\n    backends: [null]\n    scenarios: [single-stream]\n"
    )
    res = CliRunner().invoke(
        _app(),
        [
            "gate",
            "calibrate-noise",
            str(suite),
            "--repeats",
            "2",
            "--results",
            str(tmp_path / "r"),
            "--metric",
            "latency_p50:+5%",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "suggested rules" in res.output and "--fail-on latency_p50:+" in res.output
    assert len([d for d in (tmp_path / "r").iterdir() if (d / "run.json").exists()]) == 2


def test_run_sets_put_between_run_noise_in_the_interval(tmp_path: Path) -> None:
    """Single runs whose levels drift between runs give a false alarm; the same runs compared
    as sets (between-run variance in the interval) do not, while a real slowdown is found."""
    cell = _cell()
    drift = [1.0, 1.12, 0.97, 1.08, 1.0, 1.15]  # run-level shifts, as on a shared host
    base = [make_run(tmp_path, f"b{i}", [(cell, f)], seed=i) for i, f in enumerate(drift[:3])]
    same = [make_run(tmp_path, f"c{i}", [(cell, f)], seed=10 + i) for i, f in enumerate(drift[3:])]
    slow = [make_run(tmp_path, f"s{i}", [(cell, 1.5 * f)], seed=20 + i) for i, f in enumerate(drift[3:])]
    load = lambda ps: [gate.load_run_ref(str(p), tmp_path) for p in ps]  # noqa: E731
    rules = gate.parse_rules(["latency_p50:+5%"])
    # one run each: the 15 % shift of a single run reads as a regression
    assert gate.compare_runs(load(base)[0], load(same)[2], rules).exit_code == gate.EXIT_REGRESSION
    rep = gate.compare_run_sets(load(base), load(same), rules)
    assert rep.exit_code == gate.EXIT_PASS and rep.verdicts[0].n_baseline == 3
    rep = gate.compare_run_sets(load(base), load(slow), rules)
    assert rep.exit_code == gate.EXIT_REGRESSION and rep.verdicts[0].ratio > 1.3
    # symmetric: B vs A mirrors A vs B
    back = gate.compare_run_sets(load(slow), load(base), rules).verdicts[0]
    assert back.verdict == "improvement" and back.ratio == pytest.approx(1 / rep.verdicts[0].ratio)
    with pytest.raises(gate.GateError, match="at least 2"):
        gate.compare_run_sets(load(base)[:1], load(same), rules)


def test_run_sets_pair_cells_of_older_runs_by_legacy_id(tmp_path: Path) -> None:
    cell = _cell()
    old = [make_run(tmp_path, f"o{i}", [(cell, 1.0)], seed=i, legacy_ids=True) for i in range(2)]
    new = [make_run(tmp_path, f"n{i}", [(cell, 1.5)], seed=10 + i) for i in range(2)]
    rep = gate.compare_run_sets(
        [gate.load_run_ref(p) for p in old], [gate.load_run_ref(p) for p in new], gate.parse_rules(["latency_p50:+5%"])
    )
    (v,) = rep.verdicts
    assert v.cell_id == cell.cell_id and v.verdict == "regression" and v.n_baseline == 2
    other = make_run(tmp_path, "x", [(_cell(model="bert"), 1.0)], seed=20)
    with pytest.raises(gate.GateError, match="cells differ"):
        gate.compare_run_sets([gate.load_run_ref(p) for p in (*old, other)], [gate.load_run_ref(p) for p in new])


def test_top_level_aliases_match_the_gate_group(tmp_path: Path, runs) -> None:
    """`harness compare`, `harness baseline`, `harness report` are the gate's commands."""
    import importlib

    cli = importlib.import_module("harness.cli.main")  # the module, not the `main` function the package exports
    cli._mount_optional()
    runs("a", seed=1)
    runs("c", f_ss=1.3, seed=3)
    r = str(tmp_path)
    invoke = CliRunner().invoke
    grouped = invoke(cli.app, ["gate", "compare", "a", "c", "--results", r, "-f", "json"])
    top = invoke(cli.app, ["compare", "a", "c", "--results", r, "-f", "json"])
    assert grouped.exit_code == top.exit_code == 1
    assert json.loads(grouped.output)["verdicts"] == json.loads(top.output)["verdicts"]
    assert invoke(cli.app, ["baseline", "save", "main", "a", "--results", r]).exit_code == 0
    assert (tmp_path / "baselines" / "main" / "run.json").exists()
    for name in ("ab", "calibrate-noise", "report"):
        assert invoke(cli.app, [name, "--help"]).exit_code == 0


def test_gate_samples_a_long_run_uniformly_past_the_exact_rows() -> None:
    """A run past its raw-row cap: 1 000 exact rows (1 ms) then a 100-row reservoir standing
    for 9 000 queries (3 ms). The gate must see the run as 90 % 3 ms queries."""
    import pandas as pd

    from harness.analysis.gate.rules import gate_metric
    from harness.analysis.gate.samples import cell_samples, uniform_rows

    n_ex, n_res, w = 1000, 100, 90.0
    sched = np.arange(n_ex + n_res, dtype=np.int64) * 1_000_000
    lat = np.r_[np.full(n_ex, 1_000_000), np.full(n_res, 3_000_000)]
    raw = pd.DataFrame(
        {
            "scheduled_ns": sched,
            "completed_ns": sched + lat,
            "batch_size": np.ones(n_ex + n_res, dtype=np.int64),
            "row_weight": np.r_[np.ones(n_ex), np.full(n_res, w)].astype(np.float32),
        }
    )
    u = uniform_rows(raw)
    assert len(u) == n_res + round(n_ex / w) and set(u["row_weight"]) == {w}
    lat_ms = cell_samples(u, gate_metric("latency_p50"))
    assert np.median(lat_ms) == pytest.approx(3.0)
    assert np.median(cell_samples(raw, gate_metric("latency_p50"))) == pytest.approx(1.0)  # unweighted: wrong
    # without a reservoir the table is used as it is
    assert uniform_rows(raw.iloc[:n_ex]) is not None and len(uniform_rows(raw.iloc[:n_ex])) == n_ex
