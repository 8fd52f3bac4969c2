"""Recommendation: constraints never violated, budget monotonicity, every scenario answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.planning.recommend import SLO, Constraints, Load, ModelSpec, RecommendRequest, recommend

FRESH = Path("/nonexistent-results-root")

REQUESTS = {
    "offline": RecommendRequest(model=ModelSpec(name="resnet50"), scenario="offline", load=Load(items_per_day=5e8)),
    "online": RecommendRequest(
        model=ModelSpec(name="bert", size="tiny"), scenario="online", slo=SLO(p99_ms=20), load=Load(qps=2000)
    ),
    "token-stream": RecommendRequest(
        model=ModelSpec(name="llama2-70b", size="mlperf"),
        scenario="token-stream",
        slo=SLO(ttft_ms=3000, tpot_ms=100),
        load=Load(tokens_per_s=5000),
    ),
    "sensor-stream": RecommendRequest(
        model=ModelSpec(name="sensor_cnn_gru", size="tiny"),
        scenario="sensor-stream",
        slo=SLO(deadline_ms=5),
        load=Load(items_per_day=1e8),
    ),
}


@pytest.mark.parametrize("scenario", sorted(REQUESTS))
def test_ranked_table_on_fresh_clone(scenario: str) -> None:
    rec = recommend(REQUESTS[scenario], results_root=FRESH)
    assert rec.rows, rec.excluded
    assert [r.rank for r in rec.rows] == list(range(1, len(rec.rows) + 1))
    scores = [r.score for r in rec.rows]
    assert scores == sorted(scores)
    keys = [(r.profile_id, r.stack) for r in rec.rows]
    assert len(keys) == len(set(keys))  # one row per profile and stack
    ranked = {r.profile_id for r in rec.rows}
    left_out = [e.profile_id for e in rec.excluded if e.profile_id not in ranked]
    assert len(left_out) == len(set(left_out))  # a profile without a row is excluded once, with its reason
    assert all(e.reason for e in rec.excluded)
    for r in rec.rows:
        assert r.provenance in ("measured", "reference", "projected", "mixed")
        assert r.devices >= 1
        assert r.evidence  # every row names what it rests on
        if r.stack.startswith("your stack"):
            # the user's stack is shown beside the tuned one, both projected, each with its evidence
            assert (r.profile_id, "tuned stack (MLPerf)") in keys and r.provenance == "projected"
            assert "measured H200 cells" in r.evidence
    df = rec.to_frame()
    assert len(df) == len(rec.rows) and "provenance" in df.columns
    assert rec.to_csv().count("\n") == len(rec.rows) + 1
    assert '"rows"' in rec.to_json()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    budget=st.floats(300, 20_000),
    kw=st.floats(0.1, 5.0),
    kinds=st.sampled_from([None, ("gpu",), ("cpu", "tpu"), ("gpu", "asic")]),
    mem=st.sampled_from([None, 24.0, 80.0]),
)
def test_no_recommendation_violates_a_constraint(budget: float, kw: float, kinds, mem) -> None:
    req = RecommendRequest(
        model=ModelSpec(name="bert-99", size="mlperf"),
        scenario="offline",
        load=Load(qps=3000),
        constraints=Constraints(max_usd_per_month=budget, max_kw=kw, allowed_kinds=kinds, min_memory_gb=mem),
    )
    rec = recommend(req, results_root=FRESH)
    from harness.core.hardware import load_profiles

    profiles = load_profiles()
    for r in rec.rows:
        assert r.usd_per_month is not None and r.usd_per_month.value <= budget
        assert r.kw is not None and r.kw.value <= kw
        assert kinds is None or r.kind in kinds
        assert mem is None or profiles[r.profile_id].memory_gb >= mem
        # capacity at the conservative end covers the load
        cap = r.per_device_capacity.ci_low or r.per_device_capacity.value
        assert cap * r.devices >= 3000 * (1 - 1e-9)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b1=st.floats(200, 50_000), b2=st.floats(200, 50_000), objective=st.sampled_from(["cost", "latency", "energy"]))
def test_more_budget_never_worse(b1: float, b2: float, objective: str) -> None:
    lo, hi = sorted((b1, b2))

    def best(budget: float) -> float:
        req = RecommendRequest(
            model=ModelSpec(name="resnet50"),
            scenario="offline",
            load=Load(qps=20_000),
            objective=objective,
            constraints=Constraints(max_usd_per_month=budget),
        )
        rec = recommend(req, results_root=FRESH)
        return rec.rows[0].score if rec.rows else float("inf")

    assert best(hi) <= best(lo)


def test_online_slo_is_met_at_conservative_end() -> None:
    rec = recommend(REQUESTS["online"], results_root=FRESH)
    for r in rec.rows:
        assert r.predicted_p99_ms is not None
        assert (r.predicted_p99_ms.ci_high or r.predicted_p99_ms.value) <= 20


def test_bad_requests_name_the_problem() -> None:
    with pytest.raises(ValueError, match="p99_ms"):
        RecommendRequest(model=ModelSpec(name="bert"), scenario="online", load=Load(qps=1))
    with pytest.raises(ValueError, match="exactly one"):
        Load(qps=1, items_per_day=2)
    with pytest.raises(ValueError, match="decoder"):
        recommend(
            RecommendRequest(
                model=ModelSpec(name="bert"), scenario="token-stream", slo=SLO(ttft_ms=1, tpot_ms=1), load=Load(qps=1)
            )
        )


def test_cli_answers(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli.recommend import app

    out = CliRunner().invoke(
        app,
        [
            "recommend",
            "--model",
            "resnet50",
            "--scenario",
            "offline",
            "--items-per-day",
            "1e8",
            "--csv",
            str(tmp_path / "r.csv"),
        ],
        env={"COLUMNS": "200"},
    )
    assert out.exit_code == 0, out.output
    assert "provenance" in out.output and "excluded" in out.output
    assert (tmp_path / "r.csv").read_text().startswith("rank,")


def test_measured_host_results_rank_as_measured(tmp_path):
    """A run on this host (whose generated ``local-*`` profile ships nowhere) is used as
    measured evidence: the row's p99 is the measured p99 of an offline batch size."""
    from harness.core.records import CellSpec
    from harness.measure.runner import run_cells

    stop = {"min_duration_s": 0.2, "min_queries": 64, "max_duration_s": 5, "warmup_s": 0.05}
    cells = [
        CellSpec(
            model="tabular_mlp",
            size="tiny",
            backend="onnxruntime",
            scenario="offline",
            scenario_options={"batch_size": b, "stop": stop},
        )
        for b in (1, 8)
    ]
    rec_run = run_cells(cells, name="host", root=tmp_path, isolate=False)
    host_id = rec_run.environment["profile_id"]
    measured_p99 = {c.spec.scenario_options["batch_size"]: c.metric("latency_p99") for c in rec_run.cells}
    req = RecommendRequest(
        model=ModelSpec(name="tabular_mlp", size="tiny"),
        scenario="offline",
        slo=SLO(p99_ms=1000),
        load=Load(qps=1000),
        constraints=Constraints(measured_only=True),
    )
    rec = recommend(req, results_root=tmp_path)
    assert [r.profile_id for r in rec.rows] == [host_id]
    row = rec.rows[0]
    assert row.provenance == "measured"
    assert row.predicted_p99_ms.value in measured_p99.values()
    assert "p99" in row.predicted_p99_ms.method
    # every other profile is excluded for lack of measurements, with that reason
    assert all("measured" in e.reason for e in rec.excluded)


def test_your_stack_row_beside_the_tuned_one_for_a_pytorch_user() -> None:
    from harness.core.hardware import load_profiles

    h200 = {"nvidia-h200-sxm": load_profiles()["nvidia-h200-sxm"]}
    req = RecommendRequest(
        model=ModelSpec(name="bert", size="standard"), scenario="offline", slo=SLO(p99_ms=50), load=Load(qps=2000)
    )
    rec = recommend(req, results_root=FRESH, profiles=h200)
    by_stack = {r.stack: r for r in rec.rows}
    tuned, mine = by_stack["tuned stack (MLPerf)"], by_stack["your stack (torch-eager-fp16)"]
    # torch eager reaches less of the device than a tuned stack: lower capacity per device
    cap, tcap = mine.per_device_capacity, tuned.per_device_capacity
    assert cap.value is not None and tcap.value is not None and cap.ci_low is not None and cap.ci_high is not None
    assert cap.value < tcap.value
    assert cap.ci_low < cap.value < cap.ci_high
    assert "operators" in mine.evidence and "projection assumptions" in tuned.evidence
