"""The public Python API (``import harness``): a real null-backend run, compared with itself
and with a second run; recommendations from a request or keywords; roofline projections."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

import harness
from harness.analysis.gate import GateError, parse_rules
from harness.planning.projection import DecoderProjection, Projection
from harness.planning.recommend import SLO, Load, ModelSpec, RecommendRequest

SUITE = (
    "name: api\n"
    "defaults: {size: tiny, parity: false, stop: {min_duration_s: 0.05, min_queries: 50, warmup_s: 0}}\n"
    "matrix:\n"
    "  - models: [tabular_mlp]\n"
    "    backends: [null]\n"
    "    scenarios: [{name: offline, sweep: {batch_size: [1, 4]}}]\n"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("api-store")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    first = harness.run_suite(suite, root=root)
    second = harness.run_suite(suite, root=root)
    assert [c.status for c in first.cells + second.cells] == ["ok"] * 4, [c.error for c in first.cells]
    return root, first.run_id, second.run_id


def test_loaders_see_the_runs(runs: tuple[Path, str, str]) -> None:
    root, a, b = runs
    assert harness.load_run(a, root).run_id == a
    listed, errors = harness.list_runs(root)
    assert {r.run_id for r in listed} == {a, b} and errors == []
    df = harness.load_results(root)
    assert len(df) == 4 and set(df["run_id"]) == {a, b}
    assert set(df["throughput__prov"]) == {"measured"}


def test_compare_a_run_with_itself_by_id_finds_no_change(runs: tuple[Path, str, str]) -> None:
    root, a, _ = runs
    report = harness.compare(a, a, ["latency_p99:+10%"], results_root=root, n_draws=200)
    assert report.exit_code == 0
    assert len(report.verdicts) == 2  # one rule x two cells
    for v in report.verdicts:
        assert v.verdict == "no change", v
        assert v.ratio == pytest.approx(1.0)


def test_compare_accepts_directories_and_loaded_records(runs: tuple[Path, str, str]) -> None:
    root, a, b = runs
    by_dir = harness.compare(root / a, root / b, ["throughput:-50%"], n_draws=200)
    by_record = harness.compare(
        harness.load_run(a, root), harness.load_run(b, root), ["throughput:-50%"], results_root=root, n_draws=200
    )
    assert [v.cell_id for v in by_dir.verdicts] == [v.cell_id for v in by_record.verdicts]
    assert [v.ratio for v in by_dir.verdicts] == pytest.approx([v.ratio for v in by_record.verdicts])
    assert all(math.isfinite(v.ratio) and v.ratio > 0 for v in by_dir.verdicts)
    assert by_dir.to_dict()["rules"] == ["throughput:-50%"]


def test_compare_errors_name_the_problem(runs: tuple[Path, str, str]) -> None:
    root, a, _ = runs
    with pytest.raises(GateError, match="no run 'nope'"):
        harness.compare("nope", a, results_root=root)
    with pytest.raises(GateError):
        harness.compare(a, a, ["latency_p99:sideways"], results_root=root)
    with pytest.raises(GateError, match="no rules"):
        harness.compare(a, a, [], results_root=root)


def test_compare_takes_rule_objects_and_text_in_order(runs: tuple[Path, str, str]) -> None:
    root, a, _ = runs
    (thr,) = parse_rules(["throughput:-20%"])
    report = harness.compare(a, a, [thr, "latency_p99:+20%"], results_root=root, n_draws=200)
    assert report.rules == [str(thr), str(parse_rules(["latency_p99:+20%"])[0])]
    assert len(report.verdicts) == 4  # two rules x two cells


def test_recommend_from_keywords_equals_recommend_from_a_request() -> None:
    kw = harness.recommend(model="resnet50", scenario="offline", load={"qps": 500}, profiles=None)
    req = RecommendRequest(model=ModelSpec(name="resnet50"), scenario="offline", load=Load(qps=500), slo=SLO())
    direct = harness.recommend(req)
    assert kw.request == direct.request
    assert [r.profile_id for r in kw.rows] == [r.profile_id for r in direct.rows]
    assert kw.rows, "no profile ranked"
    for r in kw.rows:
        assert r.per_device_capacity.provenance.split(":")[0] in ("measured", "reference", "projected")
    assert [r.rank for r in kw.rows] == list(range(1, len(kw.rows) + 1))


def test_recommend_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="slo.p99_ms"):
        harness.recommend(model="resnet50", scenario="online", load={"qps": 10})
    with pytest.raises(TypeError, match="not both"):
        harness.recommend(
            RecommendRequest(model=ModelSpec(name="resnet50"), load=Load(qps=1), slo=SLO(p99_ms=5)), load={"qps": 2}
        )


def test_project_non_decoder_has_provenance_and_range() -> None:
    p = harness.project("bert", "nvidia-h100-sxm", batch_size=8, size="tiny")
    assert isinstance(p, Projection) and p.batch == 8 and p.profile_id == "nvidia-h100-sxm"
    lat, thr = p.metrics["latency_p50"], p.metrics["throughput"]
    assert lat.provenance == thr.provenance == "projected:roofline"
    assert lat.unit == "ms" and thr.unit == "samples/s"
    assert lat.ci_low <= lat.value <= lat.ci_high and thr.ci_low <= thr.value <= thr.ci_high
    assert thr.value == pytest.approx(8 / p.latency_s)  # one device: batch / batch latency
    assert lat.value == pytest.approx(p.latency_s * 1e3)
    bigger = harness.project("bert", "nvidia-h100-sxm", batch_size=64, size="tiny")
    assert bigger.throughput_per_s > p.throughput_per_s  # batching amortises the per-batch overhead


def test_project_decoder_and_errors() -> None:
    d = harness.project("gpt2", "nvidia-l4", size="tiny", batch_size=4)
    assert isinstance(d, DecoderProjection) and d.batch == 4
    assert d.metrics["tpot_p50"].provenance == "projected:roofline"
    assert d.metrics["tpot_p50"].value == pytest.approx(d.tpot_s * 1e3)
    with pytest.raises(KeyError, match="unknown hardware profile 'no-such-gpu'"):
        harness.project("bert", "no-such-gpu")


def test_compare_and_recommend_are_public_with_their_contracts() -> None:
    """``import harness`` exposes compare and recommend (imported on first use) with docstrings
    stating what they accept, return and raise."""
    import harness
    from harness import api

    assert {"compare", "recommend"} <= set(harness.__all__) and {"compare", "recommend"} <= set(dir(harness))
    assert harness.compare is api.compare and harness.recommend is api.recommend
    for fn, returns in ((harness.compare, "GateReport"), (harness.recommend, "Recommendation")):
        doc = fn.__doc__ or ""
        assert "Raises" in doc and returns in doc
