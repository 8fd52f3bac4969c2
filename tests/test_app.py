"""The Streamlit app driven with ``streamlit.testing.v1.AppTest`` on a real tiny run.

The store is produced once per session by :func:`demo_store`: the demo suite
(``workloads/suites/demo.yaml``) through :func:`harness.measure.runner.run_suite`, then a second run of
one of its cells so the regressions page has a history.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.app import compare_data, data, history_data, identity, recommend_data
from harness.store.ingest import ingest_upload
from harness.store.results import list_runs

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


def _history_cell(spec) -> bool:
    """The cell run twice (a small online cell: quick to run and to gate)."""
    return spec.backend == "null" and spec.scenario == "online" and spec.scenario_options.get("target_qps") == 100


def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results store holding a real run of the demo suite plus a second run of one cell
    (made once per test session, shared by the app tests)."""
    from harness.measure.runner import run_suite

    root = tmp_path_factory.getbasetemp() / "app-demo-store"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        first = run_suite(data.DEMO_SUITE, root=root)
        assert all(c.status == "ok" for c in first.cells), [(c.cell_id, c.error) for c in first.cells]
        second = run_suite(data.DEMO_SUITE, root=root, only=_history_cell)
        assert [c.status for c in second.cells] == ["ok"]
        done.touch()
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_store(tmp_path_factory)


def _app(root: Path, page: str | None = None, query: dict[str, str] | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["results_root"] = str(root)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if page is not None:
        at.switch_page(f"harness/app/pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def _texts(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    for ex in at.expander:
        parts.append(str(ex.label))
    return "\n".join(parts)


# ------------------------------------------------------------------------------ pages


def test_runs_page_lists_runs_filters_and_shows_the_environment(store: Path) -> None:
    at = _app(store)
    runs_df, cells_df, env_df = _frames(at)
    assert len(runs_df) == 2 and set(runs_df["suite"]) == {"demo"}
    assert set(cells_df["backend"]) == {"null", "torch"}
    assert "cpu_model" in set(env_df["key"])
    assert any(str(p).startswith("estimated") for p in cells_df["power_w__prov"])

    at.sidebar.multiselect(key="runs-f-backend").set_value(["torch"]).run()
    torch_runs, filtered, _ = _frames(at)
    assert set(filtered["backend"]) == {"torch"} and 0 < len(filtered) < len(cells_df)
    assert len(torch_runs) == 1  # the second run has no torch cell

    at.sidebar.multiselect(key="runs-f-backend").set_value([]).run()
    at.sidebar.multiselect(key="runs-f-scenario").set_value(["online"]).run()
    runs_only, online, _ = _frames(at)
    assert set(online["scenario"]) == {"online"} and len(online) == 3 and len(runs_only) == 2


def test_compare_page_shows_charts_and_provenance_for_chosen_cells(store: Path) -> None:
    at = _app(store, "compare")
    ms = at.multiselect(key="compare-cells")
    assert ms.value, "the newest run's cells are preselected"
    runs, _ = list_runs(store)
    first = next(r for r in runs if len(r.cells) > 1)
    keys = {c.spec.scenario: data.cell_key(first.run_id, c.cell_id) for c in first.cells}
    offline = [data.cell_key(first.run_id, c.cell_id) for c in first.cells if c.spec.scenario == "offline"]
    online = [data.cell_key(first.run_id, c.cell_id) for c in first.cells if c.spec.scenario == "online"]

    ms.set_value(offline).run()
    assert not at.exception
    text = _texts(at)
    assert "No open-loop" in text  # the latency-vs-QPS tab says why it is empty
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3  # CDF, percentile bars, throughput vs batch, energy & cost
    provs = set().union(*(set(df["provenance"]) for df in _frames(at) if "provenance" in df))
    assert "measured" in provs and any(p.startswith("estimated") for p in provs)

    ms.set_value(online + [keys["single-stream"]]).run()
    assert not at.exception
    text = _texts(at)
    assert "No open-loop" not in text and "No closed-loop" not in text
    qps = next(df for df in _frames(at) if "offered_qps (queries/s)" in df)
    assert sorted(qps["offered_qps (queries/s)"]) == [100.0, 400.0]
    validity = next(df for df in _frames(at) if "failed_checks" in df and "valid" in df)
    assert "generator_kept_up" in validity.columns and len(validity) == 3


def test_recommend_page_returns_a_ranked_table_and_reports_bad_input(store: Path) -> None:
    at = _app(store, "recommend")
    at.selectbox(key="rec-scenario").set_value("online")
    at.number_input(key="rec-p99").set_value(10.0)
    at.number_input(key="rec-load").set_value(1000.0)
    at.button(key="FormSubmitter:recommend-form-Recommend").click().run()
    assert not at.exception
    ranked, excluded = _frames(at)[:2]
    assert len(ranked) > 0 and list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert set(ranked["provenance"]) <= {"measured", "reference", "projected", "mixed"}
    assert {"profile_id", "reason"} <= set(excluded.columns)
    assert len(at.get("download_button")) == 2
    assert at.get("vega_lite_chart"), "Pareto chart"

    # token-stream needs a decoder and TTFT/TPOT SLOs: a clear message, no traceback
    at.selectbox(key="rec-scenario").set_value("token-stream")
    at.button(key="FormSubmitter:recommend-form-Recommend").click().run()
    assert not at.exception
    assert any("Cannot recommend" in e.value and "ttft" in e.value.lower() for e in at.error)


def test_regressions_page_shows_history_and_gate_verdicts(store: Path) -> None:
    at = _app(store, "regressions")
    runs, _ = list_runs(store)
    history_cell = next(c.cell_id for c in runs[-1].cells if _history_cell(c.spec))
    assert at.selectbox(key="reg-cell").value == history_cell  # the cell in most runs comes first
    hist, verdicts = _frames(at)[:2]
    assert len(hist) == 2 and hist["provenance"].notna().all()
    assert set(verdicts["verdict"]) <= {
        "regression",
        "improvement",
        "no change",
        "inconclusive",
        "not applicable",
        "failed",
    }
    assert len(verdicts) == 3  # the three default rules, one pair of runs
    # closed-loop throughput is not gated for an open-loop cell
    assert verdicts.set_index("metric").loc["throughput", "verdict"] == "not applicable"

    at.radio(key="reg-x").set_value("commit").run()
    assert not at.exception
    at.selectbox(key="reg-metric").set_value("throughput").run()
    thr = _frames(at)[0]
    assert "value (samples/s)" in thr and "value (ms)" in hist  # the unit is in the header
    assert not thr["value (samples/s)"].equals(hist["value (ms)"])
    assert at.query_params["metric"] == "throughput"  # the selection is in the URL

    at.text_input(key="reg-rules").set_value("p99_latency:-5%").run()  # wrong direction
    assert not at.exception and any("gate rules" in e.value for e in at.error)


# ------------------------------------------------------------------------------ upload


def _run_json(store: Path) -> dict:
    runs, _ = list_runs(store)
    return json.loads((store / runs[0].run_id / "run.json").read_text())


def test_upload_page_saves_valid_runs_and_rejects_malformed_files(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "results"
    shutil.copytree(store, target)
    at = _app(target, "upload")
    good = _run_json(store)
    good["run_id"] = "uploaded-run"
    bad_field = dict(good, run_id="bad-run", cells="not a list")
    at.get("file_uploader")[0].set_value(
        [
            ("broken.json", b"{ this is not json", "application/json"),
            ("bad.json", json.dumps(bad_field).encode(), "application/json"),
            ("good.json", json.dumps(good).encode(), "application/json"),
        ]
    )
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("broken.json" in e and "not valid JSON" in e for e in errors)
    assert any("bad.json" in e and "field cells" in e for e in errors)
    assert any("good.json" in s.value and "saved run uploaded-run" in s.value for s in at.success)
    assert (target / "uploaded-run" / "run.json").exists()
    at.run()  # a rerun keeps the verdicts and does not ingest twice
    assert not any("already in the results store" in e.value for e in at.error)

    key = data.cell_key("uploaded-run", good["cells"][0]["cell_id"])
    at2 = _app(target, "compare", {"cells": key})  # the uploaded run is part of the store
    assert at2.multiselect(key="compare-cells").value == [key]


def _zip_run(run_dir: Path, run_id: str | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in run_dir.rglob("*"):
            if p.is_file():
                blob = p.read_bytes()
                if p.name == "run.json" and run_id:
                    d = json.loads(blob)
                    d["run_id"] = run_id
                    blob = json.dumps(d).encode()
                zf.writestr(f"{run_id or run_dir.name}/{p.relative_to(run_dir)}", blob)
        for name, blob in (extra or {}).items():
            zf.writestr(name, blob)
    return buf.getvalue()


def test_ingest_zip_extracts_raw_files_and_refuses_unsafe_archives(store: Path, tmp_path: Path) -> None:
    runs, _ = list_runs(store)
    src = store / runs[-1].run_id
    res = ingest_upload("run.zip", _zip_run(src, "zipped"), tmp_path)
    assert res.ok, res.message
    assert sorted(p.name for p in (tmp_path / "zipped" / "raw").iterdir()) == sorted(
        p.name for p in (src / "raw").iterdir()
    )
    again = ingest_upload("run.zip", _zip_run(src, "zipped"), tmp_path)
    assert not again.ok and "already in the results store" in again.message

    evil = _zip_run(src, "evil", {"../escape.txt": b"x"})
    res = ingest_upload("evil.zip", evil, tmp_path)
    assert not res.ok and "unsafe path" in res.message and not (tmp_path.parent / "escape.txt").exists()

    d = _run_json(store)
    d["run_id"] = "../outside"
    res = ingest_upload("x.json", json.dumps(d).encode(), tmp_path)
    assert not res.ok and "run_id" in res.message

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        d = _run_json(store)
        d["run_id"] = "badraw"
        zf.writestr("run.json", json.dumps(d))
        for c in d["cells"]:
            zf.writestr(c["raw_file"], b"not parquet")
    res = ingest_upload("badraw.zip", buf.getvalue(), tmp_path)
    assert not res.ok and "not a readable Parquet file" in res.message and not (tmp_path / "badraw").exists()
    assert not ingest_upload("junk.zip", b"PK\x03\x04junk", tmp_path).ok


# ------------------------------------------------------------------------------ bad stores


@pytest.mark.parametrize("page", [None, "compare", "diff", "recommend", "regressions", "upload"])
def test_a_corrupt_run_is_reported_and_the_rest_still_works(store: Path, tmp_path: Path, page: str | None) -> None:
    target = tmp_path / "results"
    shutil.copytree(store, target)
    (target / "20990101T000000Z-corrupt-0000").mkdir()
    (target / "20990101T000000Z-corrupt-0000" / "run.json").write_text('{"run_id": "x", "cells": 5}')
    at = _app(target, page)
    assert any("could not be read" in ex.label for ex in at.expander)
    assert any("corrupt" in w.value and "cells" in w.value for w in at.warning)
    if page in (None, "compare", "diff", "regressions"):
        assert _frames(at), "the readable runs are still shown"


@pytest.mark.parametrize("page", [None, "compare", "diff", "recommend", "regressions", "upload"])
def test_an_empty_store_says_how_to_produce_results(tmp_path: Path, page: str | None) -> None:
    at = _app(tmp_path / "nothing-here", page)
    if page in ("recommend", "upload"):  # these work without runs
        return
    text = _texts(at)
    assert "No benchmark results" in text and "harness run" in text and "make run" in text
    assert any("demo suite" in b.label for b in at.button)


def test_demo_button_runs_a_suite_with_progress_and_shows_the_run(tmp_path: Path, monkeypatch) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "name: tiny-demo\n"
        "defaults: {size: tiny, parity: false, stop: {min_duration_s: 0.1, min_queries: 8, warmup_s: 0}}\n"
        "matrix:\n  - {models: [tabular_mlp], backends: [null], scenarios: [offline]}\n"
    )
    monkeypatch.setattr(data, "DEMO_SUITE", suite)
    root = tmp_path / "results"
    at = _app(root)
    at.button(key="demo-runs-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    runs, errors = list_runs(root)
    assert not errors and len(runs) == 1 and runs[0].cells[0].status == "ok"
    runs_df = _frames(at)[0]
    assert list(runs_df["run_id"]) == [runs[0].run_id]


# ------------------------------------------------------------------------------ view models


def test_results_root_precedence() -> None:
    assert data.resolve_results_root(["--results", "a"], {"HARNESS_RESULTS": "b"}) == Path("a")
    assert data.resolve_results_root(["--results=c"], {}) == Path("c")
    assert data.resolve_results_root([], {"HARNESS_RESULTS": "b"}) == Path("b")
    assert data.resolve_results_root(None, {}) == Path("results")


def test_latency_cdf_is_monotone_and_notes_cells_without_raw_data(store: Path, tmp_path: Path) -> None:
    runs, _ = list_runs(store)
    keys = [data.cell_key(r.run_id, c.cell_id) for r in runs for c in r.cells]
    cdf, notes = compare_data.latency_cdf(runs, keys, store, points=50)
    assert not notes and set(cdf["key"]) == set(keys)
    for _, g in cdf.groupby("key"):
        assert g["latency_ms"].is_monotonic_increasing and g["cdf"].iloc[-1] == 1.0
    _, notes = compare_data.latency_cdf(runs, keys[:1], tmp_path)  # raw files not there
    run, cell = data.find_cell(runs, keys[0])
    assert notes == [f"{identity.cell_name(run, cell)}: its raw per-query file is not in the results store"]


def test_verdict_per_run_prefers_the_rule_on_the_shown_metric() -> None:
    from harness.analysis.gate import gate_metric

    # the metric names the gate writes into its verdicts
    median, p99, thr = (gate_metric(n).name for n in ("latency_p50", "latency_p99", "throughput"))
    v = pd.DataFrame(
        {
            "run_id": ["b", "b", "b", "c"],
            "metric": [median, p99, thr, thr],
            "verdict": ["no change", "improvement", "regression", "no change"],
        }
    )
    assert history_data.verdict_per_run(v, "latency_p99") == {"b": "improvement", "c": "no change"}
    assert history_data.verdict_per_run(v, "power_w") == {"b": "regression", "c": "no change"}  # worst of the pair


def test_latency_vs_qps_includes_peak_probes_slo_and_peak(store: Path) -> None:
    from harness.core.metrics import Metric

    runs, _ = list_runs(store)
    run = next(r for r in runs if len(r.cells) > 1)
    online = next(c for c in run.cells if c.spec.scenario == "online")
    peak_cell = online.model_copy(
        update={
            "cell_id": "peak-cell",
            "spec": online.spec.model_copy(update={"scenario": "online-peak"}),
            "metrics": {**online.metrics, "peak_qps": Metric(value=300.0, unit="queries/s")},
            "extra": {
                "peak": {
                    "probes": [
                        {"qps": 100.0, "latency_ms": 1.0, "passed": True},
                        {"qps": 600.0, "latency_ms": 9.0, "passed": False},
                    ]
                }
            },
        }
    )
    run2 = run.model_copy(update={"cells": [*run.cells, peak_cell]})
    pts, slo, peaks = compare_data.latency_vs_qps([run2], [data.cell_key(run.run_id, "peak-cell")])
    assert list(pts["source"]) == ["cell", "peak probe", "peak probe"]
    assert list(pts[pts["source"] == "peak probe"]["passed"]) == [True, False]
    assert list(slo["slo_ms"]) == [5.0] and list(peaks["peak_qps"]) == [300.0]


def test_build_request_maps_the_form_and_names_bad_fields() -> None:
    req = recommend_data.build_request(
        {
            "model": "resnet50",
            "size": "tiny",
            "scenario": "online",
            "p99_ms": 10.0,
            "load_kind": "qps",
            "load_value": 100.0,
            "objective": "weighted",
            "w_cost": 1.0,
            "w_latency": 0.5,
            "w_energy": 0.0,
            "kinds": ["gpu"],
        }
    )
    assert req.slo.p99_ms == 10.0 and req.load.qps == 100.0 and req.slo.ttft_ms is None
    assert req.objective == {"cost": 1.0, "latency": 0.5} and req.constraints.allowed_kinds == ("gpu",)
    with pytest.raises(ValueError, match="p99_ms"):
        recommend_data.build_request({"model": "resnet50", "scenario": "online", "load_kind": "qps", "load_value": 1.0})
    with pytest.raises(ValueError, match="load"):
        recommend_data.build_request({"model": "resnet50", "scenario": "offline", "load_kind": "qps", "load_value": 0})


@given(st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)), min_size=1, max_size=30))
def test_pareto_mask_keeps_exactly_the_non_dominated_points(pts: list[tuple[float, float]]) -> None:
    mask = recommend_data.pareto_mask([p[0] for p in pts], [p[1] for p in pts])
    front = [p for p, m in zip(pts, mask) if m]
    assert front, "a non-empty set has a non-empty front"

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] <= b[1] and a != b

    for p, m in zip(pts, mask):
        assert m == (not any(dominates(q, p) for q in pts))


def test_cli_app_command_serves_app_py_on_localhost() -> None:
    from typer.testing import CliRunner

    from harness.cli.app import APP_FILE, app, streamlit_command

    cmd = streamlit_command(Path("res"), 8999)
    assert cmd[cmd.index("run") + 1] == str(APP_FILE) and APP_FILE == APP
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8999"
    assert cmd[-3:] == ["--", "--results", "res"]
    out = CliRunner().invoke(app, ["app", "--help"])
    assert out.exit_code == 0 and "--results" in out.output
