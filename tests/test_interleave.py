"""Interleaved A/B measurement (harness.measure.interleave) and its paired gate (harness.analysis.gate.paired)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from tests_support import fast_cell
from typer.testing import CliRunner

from harness.analysis.gate import GateMetric, LoadedRun, compare_runs, gate_metric, noise_from_ab_reports, parse_rules
from harness.analysis.gate.paired import compare_paired, median_interval, sign_rank_k
from harness.core.records import CellSpec
from harness.measure.interleave import InterleaveError, InterleaveOptions, Variant, measure_interleaved, run_ab

SPIN = "fake_backends:SpinBackend"
FAST = InterleaveOptions(rounds=20, block_ms=10, workers=2, block_min_queries=3)


def spin_cell(service_us: float = 300, scenario: str = "single-stream") -> CellSpec:
    c = fast_cell(backend=SPIN, scenario=scenario)
    return c.model_copy(update={"backend_options": {"service_us": service_us}, "parity": False})


# ------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n", [9, 10, 20, 40, 41, 100])
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_sign_interval_index_is_the_binomial_quantile(n: int, alpha: float) -> None:
    k = sign_rank_k(n, alpha)
    assert k >= 1
    assert binom.cdf(k - 1, n, 0.5) <= alpha / 2 < binom.cdf(k, n, 0.5)


def test_too_few_blocks_give_an_unbounded_interval() -> None:
    assert sign_rank_k(7, 0.01) == 0  # 2 * 0.5**7 > 0.01
    est, lo, hi = median_interval(np.array([0.1] * 7), 0.01)
    assert est == pytest.approx(0.1) and lo == -math.inf and hi == math.inf


def _raw(values_by_block: list[np.ndarray]) -> pd.DataFrame:
    """A raw table of back-to-back queries with the given latencies (ms) per block."""
    rows, t = [], 0
    for k, lat in enumerate(values_by_block):
        for x in lat:
            d = int(x * 1e6)
            rows.append({"block": k, "batch_size": 1, "scheduled_ns": t, "issued_ns": t, "completed_ns": t + d})
            t += d
        t += 10_000_000  # the other side's turn
    return pd.DataFrame(rows)


def _drifting_pair(change: float, outliers: dict[int, float], rounds: int = 30, seed: int = 0):
    """Baseline and current blocks sharing a host drift of 0.6x-2x per round; ``outliers``
    slow single current blocks by a factor (a burst that hit one side only)."""
    rng = np.random.default_rng(seed)
    drift = rng.uniform(0.6, 2.0, rounds)
    b, c = [], []
    for k in range(rounds):
        base = 0.1 * drift[k] * rng.lognormal(0, 0.01, 200)
        b.append(base)
        c.append(0.1 * drift[k] * (1 + change) * outliers.get(k, 1.0) * rng.lognormal(0, 0.01, 200))
    return _raw(b), _raw(c)


def test_paired_comparison_cancels_drift_and_ignores_outlier_blocks() -> None:
    m = gate_metric("latency_p50")
    bursts = {3: 1.8, 11: 1.6, 20: 0.5, 27: 1.7}
    b, c = _drifting_pair(0.04, bursts)
    v = compare_paired(b, c, m, threshold=0.02)
    assert v.verdict == "regression"
    assert v.ratio == pytest.approx(1.04, abs=0.005)
    assert 1.02 < v.ci_low < 1.04 < v.ci_high < 1.06
    aa_b, aa_c = _drifting_pair(0.0, bursts, seed=1)
    assert compare_paired(aa_b, aa_c, m, threshold=0.02).verdict == "no change"


def test_median_latency_leaves_out_one_sided_bursts_but_not_real_changes() -> None:
    # 15 of 40 baseline blocks hit by a 1.8x burst: too many for the plain sign-test interval
    bursts_b = {k: 1.8 for k in range(0, 40, 3)} | {1: 1.8, 4: 1.8}
    rng = np.random.default_rng(3)
    b = _raw([0.1 * bursts_b.get(k, 1.0) * rng.lognormal(0, 0.01, 100) for k in range(40)])
    c = _raw([0.106 * rng.lognormal(0, 0.01, 100) for _ in range(40)])
    v = compare_paired(b, c, gate_metric("latency_p50"), threshold=0.03)
    assert v.verdict == "regression" and v.ratio == pytest.approx(1.06, abs=0.005)
    assert f"{len(bursts_b)} of 40 rounds left out as bursts" in v.note
    tail = compare_paired(b, c, gate_metric("latency_p99"), threshold=0.03)
    assert "left out" not in tail.note and tail.n_baseline == 40
    # a real +50 % change is centred, not cut away
    big = _raw([0.15 * rng.lognormal(0, 0.01, 100) for _ in range(40)])
    plain = _raw([0.1 * rng.lognormal(0, 0.01, 100) for _ in range(40)])
    v = compare_paired(plain, big, gate_metric("latency_p50"), threshold=0.03)
    assert v.verdict == "regression" and v.ratio == pytest.approx(1.5, rel=0.01) and "left out" not in v.note


def test_paired_throughput_counts_block_time_only() -> None:
    m = gate_metric("throughput")
    b, c = _drifting_pair(0.10, {})
    v = compare_paired(b, c, m, threshold=0.03)
    assert v.verdict == "regression"
    assert v.ratio == pytest.approx(1 / 1.10, rel=0.01)
    # pooled value: 200 queries per block over the blocks' own time, gaps excluded
    lat = (b["completed_ns"] - b["scheduled_ns"]).to_numpy()
    assert v.baseline_value == pytest.approx(len(b) / (lat.sum() / 1e9), rel=0.01)


def _stalled_pair(stall_every: int, rounds: int = 40, seed: int = 5):
    """Baseline and current with the same host drift; in every ``stall_every``-th round
    (0 = never) the current side's block has 5 % of its queries stalled at 4x."""
    rng = np.random.default_rng(seed)
    drift = rng.uniform(0.8, 1.5, rounds)
    b, c = [], []
    for k in range(rounds):
        b.append(0.1 * drift[k] * rng.lognormal(0, 0.05, 300))
        lat = 0.1 * drift[k] * rng.lognormal(0, 0.05, 300)
        if stall_every and k % stall_every == 0:
            lat[rng.choice(300, 15, replace=False)] *= 4
        c.append(lat)
    return _raw(b), _raw(c)


def test_stalls_in_some_blocks_fail_the_tail_and_throughput_rules() -> None:
    # stalls in 20 of 40 current blocks: the median of the per-block p99 ratios stays within
    # the null rounds' spread (its sign-test interval starts at 1.0), the pooled p99 and
    # throughput move, and the Wilcoxon ranks carry the stalled rounds' magnitude
    b, c = _stalled_pair(2)
    p99 = compare_paired(b, c, gate_metric("latency_p99"), threshold=0.10)
    assert p99.verdict == "regression", p99
    assert p99.ratio == pytest.approx(p99.current_value / p99.baseline_value)
    assert p99.ratio > 1.5 and "Wilcoxon" in p99.note
    thr = compare_paired(b, c, gate_metric("throughput"), threshold=0.03)
    assert thr.verdict == "regression" and thr.ratio < 0.97
    assert compare_paired(b, c, gate_metric("latency_p50"), threshold=0.03).verdict == "no change"


def test_one_sided_bursts_without_a_change_do_not_fail_the_tail() -> None:
    # 4 of 40 rounds: the current block slowed 1.7x as a whole by the host; otherwise A/A
    rng = np.random.default_rng(9)
    drift = rng.uniform(0.8, 1.5, 40)
    b = _raw([0.1 * drift[k] * rng.lognormal(0, 0.05, 300) for k in range(40)])
    c = _raw([0.1 * drift[k] * (1.7 if k in (2, 13, 25, 31) else 1.0) * rng.lognormal(0, 0.05, 300) for k in range(40)])
    for name in ("latency_p99", "throughput", "latency_mean"):
        v = compare_paired(b, c, gate_metric(name), threshold=0.05)
        assert v.verdict != "regression" and v.p_value > 0.01, v


@pytest.mark.parametrize("scan", [False, True])
def test_pooled_statistics_with_round_weights_equal_repeated_blocks(scan: bool, monkeypatch) -> None:
    """A round drawn w times counts as its queries repeated w times (the bootstrap's
    definition); the quantile is the LoadGen order statistic. ``scan``: the memory-bounded
    path for long runs instead of the binary search."""
    import harness.analysis.gate.paired as gp
    from harness.core.stats import percentile

    if scan:
        monkeypatch.setattr(gp, "_CHUNK_ELEMENTS", 50)
    rng = np.random.default_rng(1)
    blocks = [0.1 * rng.uniform(0.8, 1.6) * rng.lognormal(0, 0.2, rng.integers(5, 60)) for _ in range(30)]
    raw = _raw(blocks)
    side = gp._RoundPool(raw, list(range(30)))
    lat = (raw["completed_ns"] - raw["scheduled_ns"]).to_numpy() / 1e6
    blk = raw["block"].to_numpy()
    w = np.vstack([np.ones(30), rng.multinomial(30, np.full(30, 1 / 30), size=60)])
    for stat, q in (("p99", 0.99), ("p90", 0.90), ("p50", 0.5), ("p99.9", 0.999), ("p100", 1.0)):
        got = gp._pooled(GateMetric(stat, "ms", "lower", stat), side, w)
        for j in range(w.shape[0]):
            x = np.concatenate([np.repeat(lat[blk == r], int(w[j, r])) for r in range(30)])
            assert got[j] == percentile(x, q), (stat, j)
    mean = gp._pooled(gate_metric("latency_mean"), side, w)
    x = np.concatenate([np.repeat(lat[blk == r], int(w[5, r])) for r in range(30)])
    assert mean[5] == pytest.approx(x.mean())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=9, max_size=40),
    st.sampled_from(["latency_p50", "latency_p99", "throughput"]),
)
def test_paired_comparison_is_symmetric(d: list[float], metric: str) -> None:
    blocks_b = [np.full(20, 0.1) for _ in d]
    blocks_c = [np.full(20, 0.1 * math.exp(x)) for x in d]
    b, c = _raw(blocks_b), _raw(blocks_c)
    m = gate_metric(metric)
    fwd, back = compare_paired(b, c, m, 0.05), compare_paired(c, b, m, 0.05)
    assert fwd.ratio * back.ratio == pytest.approx(1.0, rel=1e-9)
    assert fwd.ci_low * back.ci_high == pytest.approx(1.0, rel=1e-9)
    assert fwd.p_value == pytest.approx(back.p_value)
    mirror = {"regression": "improvement", "improvement": "regression"}
    assert back.verdict == mirror.get(fwd.verdict, fwd.verdict)


# ------------------------------------------------------------------------------- real workers


def _loaded(rec, root: Path) -> LoadedRun:
    return LoadedRun(rec, root / rec.run_id, rec.run_id)


def test_interleaved_session_records_blocks_workers_and_detects_a_slowdown(tmp_path: Path) -> None:
    b, c = run_ab([spin_cell()], tmp_path, inject_slowdown=0.25, options=FAST)
    bc, cc = b.cells[0], c.cells[0]
    assert bc.status == cc.status == "ok", (bc.error, cc.error)
    assert bc.cell_id == cc.cell_id
    assert bc.extra["interleave"]["session"] == cc.extra["interleave"]["session"]
    assert cc.extra["injected_slowdown"] == 0.25 and "injected_slowdown" not in bc.extra
    assert c.environment["injected_slowdown"] == 0.25
    assert "energy not metered" in bc.extra["energy"]
    raw = _loaded(b, tmp_path).raw(bc.cell_id)
    assert sorted(raw["block"].unique()) == list(range(FAST.rounds))
    per_worker = raw.groupby("worker")["block"].nunique()
    assert sorted(per_worker.index) == [0, 1] and set(per_worker) == {10}  # each process used equally
    lat_ms = (raw["completed_ns"] - raw["issued_ns"]) / 1e6
    assert lat_ms.median() == pytest.approx(bc.metrics["latency_p50"].value, rel=1e-3)
    assert lat_ms.min() >= 0.3  # the spin backend's service time
    report = compare_runs(_loaded(b, tmp_path), _loaded(c, tmp_path), parse_rules(["latency_p50:+10%"]))
    (v,) = report.verdicts
    assert "interleaved" in v.note
    assert v.verdict == "regression" and 1.15 < v.ratio < 1.40
    assert report.exit_code == 1


def test_identical_sides_pass(tmp_path: Path) -> None:
    b, c = run_ab([spin_cell()], tmp_path, options=FAST)
    report = compare_runs(_loaded(b, tmp_path), _loaded(c, tmp_path), parse_rules(["latency_p50:+10%"]))
    assert report.exit_code == 0
    assert abs(report.verdicts[0].ratio - 1) < 0.05


def test_runs_of_different_sessions_are_compared_unpaired(tmp_path: Path) -> None:
    b1, _ = run_ab([spin_cell()], tmp_path, options=FAST)
    _, c2 = run_ab([spin_cell()], tmp_path, options=FAST)
    report = compare_runs(_loaded(b1, tmp_path), _loaded(c2, tmp_path), parse_rules(["latency_p50:+10%"]))
    assert "interleaved" not in report.verdicts[0].note


def _later(mode: str, after: int = 200) -> CellSpec:
    c = fast_cell(backend="fake_backends:FailLaterBackend", scenario="single-stream", timeout_s=60)
    return c.model_copy(update={"backend_options": {"service_us": 100, "after": after, "mode": mode}, "parity": False})


@pytest.mark.parametrize(
    ("current", "status", "reason"),
    [
        (fast_cell(backend="fake_backends:RaiseBackend"), "failed", "model file is corrupt"),
        (fast_cell(backend="fake_backends:CrashBackend"), "crashed", "SIGABRT"),  # during warm-up
        (_later("crash"), "crashed", "SIGABRT"),  # inside a block, after ready
        (_later("raise"), "failed", "infer broke after 200 queries"),
    ],
)
def test_a_failing_side_fails_the_cell_and_the_gate(
    tmp_path: Path, current: CellSpec, status: str, reason: str
) -> None:
    import time

    t0 = time.monotonic()
    recs = measure_interleaved(
        [Variant("baseline", spin_cell()), Variant("current", current)], [tmp_path / "b", tmp_path / "c"], FAST
    )
    assert recs[1].status == status and reason in recs[1].error
    assert recs[0].status == "skipped" and "partner 'current'" in recs[0].error
    assert recs[0].extra["partner_failed"] == "current"
    # idle workers are told to stop, not waited out: waiting would take at least the baseline
    # cell's timeout (60 s); a bound from the mechanism, not a performance figure
    assert time.monotonic() - t0 < spin_cell().timeout_s
    # the gate fails: a head that breaks the model is not a pass
    from harness.core.records import RunRecord
    from harness.store.results import save_run

    runs = []
    for name, rec in zip(("b", "c"), recs):
        run = RunRecord(run_id=name, status="complete", cells=[rec])
        save_run(run, tmp_path)
        runs.append(_loaded(run, tmp_path))
    report = compare_runs(runs[0], runs[1], parse_rules(["latency_p50:+10%"]))
    assert report.exit_code == 1 and report.verdicts[0].verdict == "failed"


def test_a_hanging_block_times_out(tmp_path: Path) -> None:
    opts = FAST.model_copy(update={"block_timeout_s": 2.0})
    recs = measure_interleaved(
        [Variant("baseline", spin_cell()), Variant("current", _later("hang"))], [tmp_path / "b", tmp_path / "c"], opts
    )
    assert recs[1].status == "timeout" and "time limit" in recs[1].error


def test_open_loop_cells_are_refused_or_skipped(tmp_path: Path) -> None:
    online = fast_cell(scenario="online", qps=100.0)
    with pytest.raises(InterleaveError, match="closed-loop"):
        measure_interleaved([Variant("a", online), Variant("b", online)], [tmp_path / "a", tmp_path / "b"], FAST)
    b, c = run_ab([online], tmp_path, options=FAST)
    assert b.cells[0].status == c.cells[0].status == "skipped"
    assert "cannot be interleaved" in b.cells[0].error
    assert b.status == c.status == "complete"


def test_noise_rows_from_aa_sessions(tmp_path: Path) -> None:
    rules = parse_rules(["latency_p50:+10%", "throughput:-10%"])
    reports = []
    for _ in range(2):
        b, c = run_ab([spin_cell()], tmp_path, options=FAST)
        reports.append(compare_runs(_loaded(b, tmp_path), _loaded(c, tmp_path), rules))
    rows = noise_from_ab_reports(reports)
    assert {r.metric for r in rows} == {"latency_p50", "throughput"}
    for r in rows:
        changes = [abs(v.ratio - 1) for rep in reports for v in rep.verdicts if v.metric == r.metric]
        assert r.n_runs == 2 and r.aa_max_change == pytest.approx(max(changes))
        assert r.suggested_threshold < 0.3


def test_too_few_rounds_for_the_number_of_comparisons_is_said(tmp_path: Path) -> None:
    b, c = run_ab([spin_cell()], tmp_path, options=FAST.model_copy(update={"rounds": 10}))
    six = parse_rules(
        [
            "latency_p50:+10%",
            "latency_mean:+10%",
            "latency_p90:+10%",
            "latency_p95:+10%",
            "latency_p99:+10%",
            "throughput:-10%",
        ]
    )
    report = compare_runs(_loaded(b, tmp_path), _loaded(c, tmp_path), six)
    assert any("smallest possible p-value" in n and "6 comparisons" in n for n in report.notes), report.notes
    one = compare_runs(_loaded(b, tmp_path), _loaded(c, tmp_path), parse_rules(["latency_p50:+10%"]))
    assert not any("smallest possible" in n for n in one.notes)


# ------------------------------------------------------------------------------- CLI


def _suite(tmp_path: Path) -> Path:
    p = tmp_path / "ab.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "name": "ab-test",
                "defaults": {"parity": False, "stop": {"warmup_s": 0.01, "warmup_queries": 2}},
                "matrix": [
                    {
                        "models": ["tabular_mlp"],
                        "backends": [{"name": SPIN, "options": {"service_us": 300}}],
                        "scenarios": ["single-stream", {"name": "online", "options": {"target_qps": 100}}],
                    }
                ],
            }
        )
    )
    return p


def test_cli_gate_ab_exit_codes(tmp_path: Path) -> None:
    import typer

    from harness.cli.gate import gate_app

    app = typer.Typer()
    app.add_typer(gate_app, name="gate")
    suite, res = _suite(tmp_path), tmp_path / "results"
    args = [
        "gate",
        "ab",
        str(suite),
        "--results",
        str(res),
        "--rounds",
        "20",
        "--block-ms",
        "10",
        "--workers",
        "2",
        "--fail-on",
        "latency_p50:+10%",
    ]
    cli = CliRunner()
    slow = cli.invoke(app, args + ["--inject-slowdown", "25%", "-f", "markdown"])
    assert slow.exit_code == 1, slow.output
    assert "REGRESSION" in slow.output and "interleaved" in slow.output
    same = cli.invoke(app, args)
    assert same.exit_code == 0, same.output
    bad = cli.invoke(app, args + ["--inject-slowdown", "lots"])
    assert bad.exit_code == 2 and "percentage" in bad.output
    for extra, text in (
        (["--workers", "100"], "--workers"),
        (["--block-ms", "100000"], "--block-ms"),
        (["--alpha", "0"], "--alpha"),
        (["--only", "online"], "no cell can be interleaved"),
    ):
        r = cli.invoke(app, args + extra)
        assert r.exit_code == 2 and text in " ".join(r.output.split()), (extra, r.output)
    few = cli.invoke(app, args + ["--rounds", "5"])  # too few rounds for a verdict
    assert few.exit_code == 2 and "--rounds" in few.output, few.output
    tight = cli.invoke(app, args + ["--block-ms", "1000", "--block-timeout", "2"])
    assert tight.exit_code == 2 and "quarter of block_timeout_s" in " ".join(tight.output.split()), tight.output
    runs = sorted(p.name for p in res.iterdir())
    assert sum("-ab-baseline-" in r for r in runs) == 2 and sum("-ab-current-" in r for r in runs) == 2
    # the saved slowed pair compares the same way through `gate compare`
    from harness.store.results import load_run

    recs = [load_run(res / r) for r in runs]
    slowed = next(r for r in recs if r.environment.get("injected_slowdown"))
    session = slowed.environment["interleave_session"]
    base = next(r for r in recs if r.environment["interleave_session"] == session and r is not slowed)
    again = cli.invoke(
        app,
        [
            "gate",
            "compare",
            base.run_id,
            slowed.run_id,
            "--results",
            str(res),
            "--fail-on",
            "latency_p50:+10%",
            "-f",
            "markdown",
        ],
    )
    assert again.exit_code == 1 and "interleaved" in again.output


# ------------------------------------------------------------------------------- code per side

_SIDE_BACKEND = """
from fake_backends import SpinBackend


class Backend(SpinBackend):
    {body}

    def load(self, workload, device):
        {load}
        return super().load(workload, device)

    def infer(self, prepared):
        self.options = {{**self.options, "service_us": {service_us}}}
        return super().infer(prepared)
"""


def _side_dir(root: Path, name: str, service_us: float, load: str = "pass", body: str = "pass") -> str:
    d = root / name
    d.mkdir()
    (d / "abside.py").write_text(_SIDE_BACKEND.format(service_us=service_us, load=load, body=body))
    return str(d)


def _side_suite(tmp_path: Path) -> Path:
    p = tmp_path / "sides.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "name": "sides",
                "defaults": {"parity": False, "stop": {"warmup_s": 0.01, "warmup_queries": 2}},
                "matrix": [{"models": ["tabular_mlp"], "backends": ["abside:Backend"], "scenarios": ["single-stream"]}],
            }
        )
    )
    return p


def test_each_side_runs_its_own_code(tmp_path: Path) -> None:
    """--baseline-path / --current-path: the same suite, a different module on each side."""
    import typer

    from harness.cli.gate import gate_app

    app = typer.Typer()
    app.add_typer(gate_app, name="gate")
    base, head = _side_dir(tmp_path, "base", 300), _side_dir(tmp_path, "head", 450)
    res = tmp_path / "results"
    args = [
        "gate",
        "ab",
        str(_side_suite(tmp_path)),
        "--results",
        str(res),
        "--rounds",
        "20",
        "--block-ms",
        "10",
        "--workers",
        "2",
        "--fail-on",
        "latency_p50:+10%",
        "-f",
        "json",
    ]
    cli = CliRunner()
    r = cli.invoke(app, args + ["--baseline-path", base, "--current-path", head])
    assert r.exit_code == 1, r.output
    assert '"verdict": "regression"' in r.output
    # the base side cannot be measured (e.g. a wrong --baseline-path): not a pass, a data error
    broken = _side_dir(tmp_path, "broken", 300, load='raise RuntimeError("base checkout is broken")')
    r = cli.invoke(app, args + ["--baseline-path", broken, "--current-path", head])
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert "baseline side could not be measured" in out and "failed" in out and "base checkout is broken" in out


def test_the_late_side_is_blamed_for_a_start_timeout(tmp_path: Path) -> None:
    slow = _side_dir(tmp_path, "slow", 300, load="import time; time.sleep(90)")
    cell = spin_cell().model_copy(update={"backend": "abside:Backend"})
    # room for the punctual side to start on a busy host (spawn + imports take seconds there)
    opts = FAST.model_copy(update={"start_timeout_s": 30.0})
    recs = measure_interleaved(
        [Variant("baseline", cell, (_side_dir(tmp_path, "ok", 300),)), Variant("current", cell, (slow,))],
        [tmp_path / "b", tmp_path / "c"],
        opts,
    )
    assert recs[1].status == "timeout" and "current" in recs[1].error and "start_timeout_s" in recs[1].error
    assert recs[0].status == "skipped" and recs[0].extra["partner_failed"] == "current"


def test_no_worker_outlives_a_session(tmp_path: Path) -> None:
    import psutil

    def ours() -> set[int]:  # live or unreaped; multiprocessing's resource tracker outlives sessions
        out = set()
        for p in psutil.Process().children(recursive=True):
            try:
                if p.status() == psutil.STATUS_ZOMBIE or "resource_tracker" not in " ".join(p.cmdline()):
                    out.add(p.pid)
            except psutil.NoSuchProcess:  # exited and reaped meanwhile
                pass
        return out

    before = ours()
    opts = FAST.model_copy(update={"block_timeout_s": 2.0})
    recs = measure_interleaved(
        [Variant("baseline", spin_cell()), Variant("current", _later("hang"))], [tmp_path / "b", tmp_path / "c"], opts
    )
    assert recs[1].status == "timeout"
    assert ours() - before == set()


def test_run_directories_must_differ(tmp_path: Path) -> None:
    with pytest.raises(InterleaveError, match="must differ"):
        measure_interleaved(
            [Variant("a", spin_cell()), Variant("b", spin_cell())], [tmp_path / "x", tmp_path / "x"], FAST
        )


_UNAVAILABLE = 'available = classmethod(lambda cls: (False, "needs libfoo"))'


def test_a_side_whose_backend_alone_is_unavailable_has_failed(tmp_path: Path) -> None:
    cell = spin_cell().model_copy(update={"backend": "abside:Backend"})
    ok, gone = _side_dir(tmp_path, "ok", 300), _side_dir(tmp_path, "gone", 300, body=_UNAVAILABLE)
    recs = measure_interleaved(
        [Variant("baseline", cell, (ok,)), Variant("current", cell, (gone,))], [tmp_path / "b", tmp_path / "c"], FAST
    )
    assert recs[1].status == "failed" and "needs libfoo" in recs[1].error
    assert recs[0].status == "skipped" and recs[0].extra["partner_failed"] == "current"
    # unavailable on both sides (e.g. a GPU backend on a CPU runner): skipped, nobody to blame
    both = measure_interleaved(
        [Variant("baseline", cell, (gone,)), Variant("current", cell, (gone,))],
        [tmp_path / "b2", tmp_path / "c2"],
        FAST,
    )
    assert [r.status for r in both] == ["skipped", "skipped"]
    assert all("partner_failed" not in r.extra for r in both)
