"""The app on a store that mixes CPU runs with GPU records: accelerator identity, the diff of
two cells or runs, evidence links, validity and SLO marks, units, the selection in the URL,
the HTML report and the upload checks. GPU records: ``tests/ui/fixtures/h200/`` (run records
measured on an NVIDIA H200; their raw Parquet files were not kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from harness.app import charts, compare_data, data, diff_data, history_data, identity, recommend_data, report_html
from harness.app.upload_check import precheck_upload
from harness.core.metrics import Metric
from harness.store.results import list_runs

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CPU run (raw files kept) plus the H200 records (:mod:`ui.mixed_store`)."""
    from ui.mixed_store import mixed_store

    return mixed_store(tmp_path_factory.mktemp("mixed") / "results")[0]


def _app(root: Path, page: str | None = None, query: dict[str, str] | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state["results_root"] = str(root)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if page is not None:
        at.switch_page(f"harness/app/pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _gpu_cpu(runs) -> tuple:
    gpu_run = next(r for r in runs if r.suite_name == "h200")
    cpu_run = next(r for r in runs if r.suite_name == "tiny-cpu")
    return gpu_run, cpu_run


# ------------------------------------------------------------------------------ identity


def test_gpu_cells_are_named_by_their_accelerator_and_cpu_cells_by_the_cpu(mixed: Path) -> None:
    runs, errors = list_runs(mixed)
    assert not errors
    gpu_run, cpu_run = _gpu_cpu(runs)
    cells = data.all_cells(runs)
    gpu = cells[cells["run_id"] == gpu_run.run_id]
    cpu = cells[cells["run_id"] == cpu_run.run_id]
    assert set(gpu["accelerator"]) == {"NVIDIA H200"} and set(gpu["hardware"]) == {"NVIDIA H200"}
    assert set(cpu["accelerator"]) == {data.NO_ACCELERATOR}
    assert set(cpu["hardware"]) == {cpu_run.environment["cpu_model"]}
    assert all("@H200" in lbl for lbl in gpu["label"]) and all("@CPU" in lbl for lbl in cpu["label"])
    assert cells["label"].is_unique  # a picker can tell every cell apart
    table = data.runs_table(runs).set_index("run_id")
    assert table.loc[gpu_run.run_id, "hardware"] == "NVIDIA H200"
    assert table.loc[gpu_run.run_id, "cpu"] == "Intel(R) Xeon(R) Processor"
    assert table.loc[cpu_run.run_id, "accelerators"] == data.NO_ACCELERATOR
    only_gpu = data.filter_cells(cells, accelerator=["NVIDIA H200"])
    assert set(only_gpu["run_id"]) == {r.run_id for r in runs if r.suite_name.startswith("h200")}


def test_the_recorded_host_identity_names_the_accelerator_first(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, _ = _gpu_cpu(runs)
    accs = [
        {"device": "cuda:0", "index": 0, "name": "NVIDIA H200 SXM", "profile_id": "nvidia-h200-sxm"},
        {"device": "cuda:1", "index": 1, "name": "NVIDIA L4", "profile_id": "nvidia-l4"},
    ]
    env = {**gpu_run.environment, "host": {"cpu_model": "x", "accelerators": accs}}
    named = gpu_run.model_copy(update={"environment": env})
    assert identity.cell_hardware(named, named.cells[0]) == "NVIDIA H200 SXM"
    second = named.cells[0].model_copy(update={"spec": named.cells[0].spec.model_copy(update={"device": "cuda:1"})})
    assert identity.cell_hardware(named, second) == "NVIDIA L4"
    bare = gpu_run.model_copy(update={"environment": {**gpu_run.environment, "gpus": []}})
    cell = bare.cells[0].model_copy(update={"backend_info": {}})
    assert identity.cell_hardware(bare, cell) == "cuda (unknown)"  # said, not guessed


def test_device_memory_is_split_by_source_never_summed(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, _ = _gpu_cpu(runs)
    cell = gpu_run.cells[0]
    mem = data.device_memory_metrics(cell)
    used, alloc = mem["device_memory_used_bytes"], mem["device_memory_allocator_peak_bytes"]
    assert used.provenance.startswith("measured:nvml") and alloc.provenance == "measured:torch-cuda-allocator"
    assert used.value + alloc.value == cell.metrics["device_memory_bytes"].value  # what the old record summed
    long = compare_data.metrics_long(runs, [data.cell_key(gpu_run.run_id, cell.cell_id)])
    assert "device_memory_bytes" not in set(long["metric"])
    assert {"device_memory_used_bytes", "device_memory_allocator_peak_bytes"} <= set(long["metric"])


# ------------------------------------------------------------------------------ diff


def test_a_cell_against_itself_is_no_change_from_raw_samples(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    _, cpu_run = _gpu_cpu(runs)
    key = data.cell_key(cpu_run.run_id, next(c for c in cpu_run.cells if c.spec.scenario == "offline").cell_id)
    d = diff_data.diff_cells(runs, key, key, mixed, ["latency_p50", "latency_p99", "throughput"])
    assert list(d["metric"]) == ["latency_p50", "latency_p99", "throughput"]
    assert all(m.startswith("raw samples") for m in d["method"])
    # identical samples: no change at all, never a regression or an improvement
    assert (d["change_pct"] == 0).all() and set(d["verdict"]) <= {"no change", "inconclusive"}
    lat = d[d["metric"] != "throughput"]
    # per-query latencies: p = 1 and an interval around 0 (its width depends on the sample size,
    # so a short run may leave it wider than the threshold: inconclusive)
    assert (lat["p_adjusted"] == 1).all() and "no change" in set(lat["verdict"])
    assert ((lat["ci_low_pct"] <= 0) & (lat["ci_high_pct"] >= 0)).all()


def test_a_cpu_cell_and_a_gpu_cell_compare_across_cell_ids(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, cpu_run = _gpu_cpu(runs)
    g = next(c for c in gpu_run.cells if c.spec.scenario == "offline" and c.spec.batch_size == 1)
    c = next(c for c in cpu_run.cells if c.spec.scenario == "offline")
    kg, kc = data.cell_key(gpu_run.run_id, g.cell_id), data.cell_key(cpu_run.run_id, c.cell_id)
    d = diff_data.diff_cells(runs, kc, kg, mixed).set_index("metric")
    a, b = c.metrics["latency_p99"].value, g.metrics["latency_p99"].value
    assert d.loc["latency_p99", "change_pct"] == pytest.approx((b / a - 1) * 100)
    # the GPU record has no raw file: the recorded intervals decide, never a raw-sample test
    assert d.loc["latency_p99", "method"].startswith("recorded CIs")
    assert d.loc["latency_p99", "verdict"] in {"regression", "improvement", "inconclusive", "no change"}
    shown = diff_data.diff_display(d.reset_index())
    assert shown["change (B/A - 1)"].str.endswith("%").all()


def test_recorded_intervals_give_a_verdict_only_when_they_clear_the_threshold() -> None:
    def m(v: float, lo: float, hi: float) -> Metric:
        return Metric(value=v, unit="ms", provenance="measured", ci_low=lo, ci_high=hi)

    def run(a: Metric, b: Metric) -> dict:
        return diff_data.compare_metric("latency_p99", a, b, (None, None), ("offline", "offline"), 0.05, 0.01, 100).row

    worse = run(m(10, 9.8, 10.2), m(20, 19.5, 20.5))
    assert worse["verdict"] == "regression" and worse["ci_low_pct"] == pytest.approx((19.5 / 10.2 - 1) * 100)
    assert run(m(20, 19.5, 20.5), m(10, 9.8, 10.2))["verdict"] == "improvement"
    assert run(m(10, 9.9, 10.1), m(10.1, 10.0, 10.2))["verdict"] == "no change"
    assert run(m(10, 5, 15), m(12, 6, 18))["verdict"] == "inconclusive"
    bare = run(Metric(value=10.0, unit="ms"), Metric(value=12.0, unit="ms"))
    assert bare["verdict"] == "untested" and bare["change_pct"] == pytest.approx(20.0)


def test_runs_of_the_same_suite_on_cpu_and_gpu_pair_by_model_and_scenario(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    _, cpu_run = _gpu_cpu(runs)
    on_gpu = cpu_run.model_copy(
        update={
            "run_id": "gpu-copy",
            "cells": [
                c.model_copy(
                    update={"cell_id": c.cell_id + "-gpu", "spec": c.spec.model_copy(update={"device": "cuda"})}
                )
                for c in cpu_run.cells
            ],
        }
    )
    pairs, notes = diff_data.pair_runs(cpu_run, on_gpu)
    assert len(pairs) == len(cpu_run.cells) and not notes
    assert all(a.spec.scenario == b.spec.scenario and a.spec.device != b.spec.device for a, b in pairs)
    table, notes = diff_data.diff_runs([*runs, on_gpu], cpu_run.run_id, "gpu-copy", mixed)
    assert set(table["metric"]) <= set(diff_data.RUN_DIFF_METRICS) and len(table) > 0
    with pytest.raises(KeyError, match="no run"):
        diff_data.diff_runs(runs, cpu_run.run_id, "nosuch", mixed)


def test_diff_page_from_the_url_compares_a_cpu_and_a_gpu_cell(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, cpu_run = _gpu_cpu(runs)
    kg = data.cell_key(gpu_run.run_id, gpu_run.cells[0].cell_id)
    kc = data.cell_key(cpu_run.run_id, cpu_run.cells[0].cell_id)
    at = _app(mixed, "diff", {"mode": "cells", "a": kc, "b": kg})
    assert at.selectbox(key="diff-a").value == kc and at.selectbox(key="diff-b").value == kg
    table = at.dataframe[0].value
    assert {"change (B/A - 1)", "CI of change", "verdict", "method"} <= set(table.columns)
    assert len(at.get("download_button")) == 1
    at.radio(key="diff-mode").set_value("runs").run()
    assert not at.exception and at.query_params["mode"] == "runs"


# ------------------------------------------------------------------------------ pages and marks


def test_compare_page_takes_its_cells_from_the_url_and_explains_missing_raw_files(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, cpu_run = _gpu_cpu(runs)
    keys = [
        data.cell_key(gpu_run.run_id, gpu_run.cells[0].cell_id),
        data.cell_key(cpu_run.run_id, cpu_run.cells[0].cell_id),
    ]
    at = _app(mixed, "compare", {"cells": ",".join(keys)})
    assert at.multiselect(key="compare-cells").value == keys
    assert any("raw per-query Parquet file" in w.value for w in at.warning)
    notes = "\n".join(t.value for t in at.text)
    assert "@H200" in notes and "not in the results store" in notes
    assert not any("mailto" in str(m.value) for m in at.markdown)
    chosen = at.dataframe[0].value
    assert set(chosen["accelerator"]) == {"NVIDIA H200", data.NO_ACCELERATOR}
    assert len(at.get("download_button")) == 1  # the HTML report
    at.multiselect(key="compare-f-acc").set_value(["NVIDIA H200"]).run()
    offered = at.multiselect(key="compare-cells").options
    assert all("@H200" in o or o in [at.multiselect(key="compare-cells").format_func(k) for k in keys] for o in offered)


def test_invalid_cells_and_slo_misses_are_flagged_for_the_charts(mixed: Path) -> None:
    runs, _ = list_runs(mixed)
    gpu_run, _ = _gpu_cpu(runs)
    invalid = next(c for c in gpu_run.cells if c.valid is False)
    key = data.cell_key(gpu_run.run_id, invalid.cell_id)
    long = compare_data.metrics_long(runs, [key], data.PERCENTILES)
    assert set(long["flag"]) == {compare_data.FLAG_INVALID}
    spec = charts.percentile_bars(long).to_dict()
    assert "invalid cell" in json.dumps(spec)  # the stroke scale's domain
    online = next(c for c in gpu_run.cells if c.spec.scenario == "online")
    pts, _, _ = compare_data.latency_vs_qps(runs, [data.cell_key(gpu_run.run_id, online.cell_id)])
    p99 = online.metrics["latency_p99"].value
    slo = online.spec.scenario_options["slo_ms"]
    assert p99 > slo and pts["flag"].iloc[0] in (compare_data.FLAG_SLO, compare_data.FLAG_INVALID)


def test_axes_name_units_and_the_pareto_axis_names_the_metric_plotted() -> None:
    df = pd.DataFrame(
        {
            "usd_per_month": [100.0, 200.0],
            "latency_ms": [5.0, 3.0],
            "provenance": ["projected", "measured"],
            "pareto": [True, True],
            "rank": [1, 2],
            "profile_id": ["a", "b"],
            "kind": ["gpu", "gpu"],
            "devices": [1, 1],
            "latency_metric": ["TTFT p99", "TTFT p99"],
        }
    )
    spec = json.dumps(charts.pareto_chart(df).to_dict())
    assert "TTFT p99 (ms" in spec and "p99 latency" not in spec and "USD/month" in spec
    long = pd.DataFrame(
        {"metric": ["power_w"], "unit": ["W"], "value": [3.0], "cell": ["x"], "kind": ["estimated"], "flag": [""]}
    ).assign(key="k", provenance="estimated:tdp")
    assert "power_w (W)" in json.dumps(charts.metric_bars(long, "energy").to_dict())
    assert list(data.with_units(pd.DataFrame(columns=["latency_p99", "model"])).columns) == [
        "latency_p99 (ms)",
        "model",
    ]


def test_history_values_are_shown_in_full_with_their_unit() -> None:
    hist = pd.DataFrame(
        {
            "run_id": ["a"],
            "created_utc": ["2026-11-30T00:00:00+00:00"],
            "commit": [None],
            "dirty": [False],
            "status": ["ok"],
            "hardware": ["NVIDIA H200"],
            "value": [2993.1056],
            "ci_low": [2990.0],
            "ci_high": [2996.5],
            "unit": ["samples/s"],
            "provenance": ["measured"],
        }
    )
    shown = history_data.history_display(hist)
    assert shown["value (samples/s)"].iloc[0] == "2993.11" and shown["hardware"].iloc[0] == "NVIDIA H200"


# ------------------------------------------------------------------------------ recommend, report, upload


def test_recommendation_rows_link_to_the_measured_cells_behind_them(mixed: Path) -> None:
    from harness.planning.recommend import recommend

    runs, _ = list_runs(mixed)
    req = recommend_data.build_request(
        {"model": "bert", "size": "standard", "scenario": "online", "p99_ms": 50, "load_kind": "qps", "load_value": 500}
    )
    rec = recommend(req, results_root=mixed)
    assert rec.rows, rec.excluded_frame().to_string()
    table = recommend_data.ranked_table(rec, runs)
    linked = table.dropna(subset=["evidence link"])
    assert len(linked) >= 1
    keys = parse_qs(urlparse(linked["evidence link"].iloc[0]).query)["cells"][0].split(",")
    known = {data.cell_key(r.run_id, c.cell_id) for r in runs for c in r.cells}
    assert keys and set(keys) <= known
    assert "NVIDIA H200" in linked["evidence"].iloc[0]
    assert any("NVIDIA H200" in line for line in recommend_data.evidence_summary(rec, runs))
    assert any(c.endswith("(ms) [range]") for c in table.columns) and "cost (USD/month)" in table.columns


def test_a_load_of_zero_is_refused_as_zero_not_as_missing() -> None:
    with pytest.raises(ValueError) as exc:
        recommend_data.build_request({"model": "resnet50", "scenario": "offline", "load_kind": "qps", "load_value": 0})
    assert "load.qps" in str(exc.value) and "greater than 0" in str(exc.value)


def test_html_report_is_self_contained_and_escaped() -> None:
    doc = report_html.html_report(
        "T <1>", [("cells", pd.DataFrame({"a": ["<b>x</b>"], "v": [1.5]})), ("n", "a & b")], "s"
    )
    assert doc.startswith("<!doctype html>") and "&lt;b&gt;x&lt;/b&gt;" in doc and "a &amp; b" in doc
    assert "<script" not in doc and "http" not in doc and "<link" not in doc


def test_a_stub_run_json_is_refused_naming_the_missing_fields(tmp_path: Path) -> None:
    msg = precheck_upload("stub.json", b'{"run_id": "stub-1"}')
    assert msg is not None and "field created_utc: missing" in msg and "cells" in msg
    assert precheck_upload("deep.json", b"[" * 100_000 + b"]" * 100_000) is not None
    assert precheck_upload("junk.zip", b"PK\x03\x04junk") == "junk.zip: not a readable zip archive"
    at = _app(tmp_path / "results", "upload")
    at.get("file_uploader")[0].set_value([("stub.json", b'{"run_id": "stub-1"}', "application/json")])
    at.run()
    assert not at.exception
    assert any("stub.json was not saved" in e.value and "created_utc" in e.value for e in at.error)
    assert not (tmp_path / "results" / "stub-1").exists()


def test_the_page_icon_is_drawn_locally() -> None:
    assert ":material/" not in APP.read_text().split("set_page_config", 1)[1].split("\n", 1)[0]
