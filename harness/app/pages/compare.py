"""Compare page: chosen cells side by side, every number with its provenance; invalid cells and
SLO misses marked; the chosen cells kept in the URL (``?cells=run/cell,...``); an HTML report."""

import streamlit as st

from harness.app import charts, compare_data, data, identity, report_html, ui

st.session_state["page"] = "compare"
st.title("Compare cells")
loaded = ui.require_runs()
if loaded is not None:
    runs, _ = loaded
    cells = data.all_cells(runs)
    all_keys = list(cells["key"])
    labels = dict(zip(cells["key"], cells["label"]))
    from_url = ui.url_values("cells", all_keys)
    ui.seed("compare-cells", from_url or data.default_selection(cells))

    # the picker: narrowed by accelerator, model, scenario and run, grouped by run (newest first)
    f1, f2, f3, f4 = st.columns(4)
    run_label = {r.run_id: f"{r.run_id} · {identity.run_hardware_label(r)}" for r in runs}
    narrow: dict[str, list[str]] = {
        "accelerator": f1.multiselect("accelerator", sorted(cells["accelerator"].unique()), key="compare-f-acc"),
        "model": f2.multiselect("model", sorted(cells["model"].unique()), key="compare-f-model"),
        "scenario": f3.multiselect("scenario", sorted(cells["scenario"].unique()), key="compare-f-scenario"),
        "run_id": f4.multiselect(
            "run", [r.run_id for r in runs], format_func=lambda r: run_label.get(r, r), key="compare-f-run"
        ),
    }
    offered = data.filter_cells(
        cells,
        accelerator=narrow["accelerator"],
        model=narrow["model"],
        scenario=narrow["scenario"],
        run_id=narrow["run_id"],
    ).sort_values(
        ["created_utc", "model", "scenario", "batch_size"], ascending=[False, True, True, True], kind="stable"
    )
    chosen_now = list(st.session_state.get("compare-cells", []))
    options = list(dict.fromkeys([*chosen_now, *offered["key"]]))  # a chosen cell stays while filtered out
    keys = st.multiselect(
        f"cells to compare ({len(offered)} of {len(cells)} offered by the filters)",
        options,
        format_func=lambda k: labels.get(k, k),
        key="compare-cells",
        help="Names: model-size backend@hardware scenario batch-size #options · run (the run id's last part).",
    )
    ui.set_url(cells=keys)
    ui.provenance_legend()
    if not keys:
        st.info("Pick one or more cells above.")
    else:
        chosen = cells.set_index("key").loc[keys].reset_index()
        st.dataframe(
            chosen[["label", "accelerator", "hardware", "run_id", "cell_id", "status", "valid"]].rename(
                columns={"label": "cell"}
            ),
            hide_index=True,
            width="stretch",
        )
        long = compare_data.metrics_long(runs, keys)
        validity = compare_data.validity_table(runs, keys)
        tabs = st.tabs(
            ["Latency", "Throughput vs batch", "Latency vs QPS", "Tokens", "Energy & cost", "Validity", "All metrics"]
        )
        with tabs[0]:
            cdf, notes = compare_data.latency_cdf(runs, keys, ui.results_root())
            st.subheader("Latency CDF (per query, from raw data)")
            if not cdf.empty:
                st.altair_chart(charts.latency_cdf_chart(cdf), width="stretch")
            if notes:
                st.warning(
                    f"No latency CDF for {len(notes)} of {len(keys)} cell(s): the CDF is drawn from each cell's raw "
                    "per-query Parquet file, and these are missing or unreadable (a run.json copied without its "
                    "raw/ folder). The percentiles below come from the run record."
                )
                st.text("\n".join(notes))
            pct = compare_data.only_metrics(long, data.PERCENTILES)
            st.subheader("Latency percentiles")
            if pct.empty:
                st.caption("No latency percentiles in these cells.")
            else:
                st.altair_chart(charts.percentile_bars(pct), width="stretch")
                st.dataframe(compare_data.metric_display(pct), hide_index=True, width="stretch")
        with tabs[1]:
            tp = compare_data.throughput_vs_batch(runs, keys)
            if tp.empty:
                st.caption("No closed-loop (offline / single-stream) cells with throughput among the chosen cells.")
            else:
                st.altair_chart(charts.throughput_chart(tp), width="stretch")
                st.dataframe(
                    data.with_units(tp).rename(
                        columns={"ci_low": "ci_low (samples/s)", "ci_high": "ci_high (samples/s)"}
                    ),
                    hide_index=True,
                    width="stretch",
                )
        with tabs[2]:
            pctl = st.selectbox("percentile", ["latency_p99", "latency_p90", "latency_p50"], key="compare-qps-pct")
            pts, slo, peaks = compare_data.latency_vs_qps(runs, keys, pctl)
            if pts.empty:
                st.caption("No open-loop (online / online-peak) cells among the chosen cells.")
            else:
                st.altair_chart(charts.latency_qps_chart(pts, slo, peaks, pctl), width="stretch")
                st.caption(
                    "Red dashed line: latency SLO of the cell; green line: peak QPS found under the SLO; "
                    "ringed points: invalid cell (red) or SLO missed (orange)."
                )
                st.dataframe(
                    pts.rename(columns={"offered_qps": "offered_qps (queries/s)", "latency_ms": f"{pctl} (ms)"}),
                    hide_index=True,
                    width="stretch",
                )
        for tab, names, title, empty in (
            (
                tabs[3],
                data.TOKEN_METRICS,
                "token metrics",
                "No token-stream cells (TTFT / TPOT) among the chosen cells.",
            ),
            (tabs[4], data.ENERGY_COST_METRICS, "energy and cost", "No energy or cost figures in these cells."),
        ):
            with tab:
                part = compare_data.only_metrics(long, names)
                if part.empty:
                    st.caption(empty)
                else:
                    st.altair_chart(charts.metric_bars(part, title), width="content")
                    st.dataframe(compare_data.metric_display(part), hide_index=True, width="stretch")
        with tabs[5]:
            st.dataframe(validity, hide_index=True, width="stretch")
            st.caption(
                "valid = every check of the scenario passed; an invalid cell's numbers are still "
                "what was measured, but they do not meet the scenario's rules. Charts outline invalid cells in red."
            )
        with tabs[6]:
            st.dataframe(compare_data.wide_with_provenance(long), hide_index=True, width="stretch")
            st.dataframe(compare_data.metric_display(long), hide_index=True, width="stretch")
        report = report_html.html_report(
            "Compare cells",
            [
                ("Cells", chosen[["label", "accelerator", "hardware", "run_id", "cell_id", "status", "valid"]]),
                ("Validity", validity),
                ("Metrics", compare_data.metric_display(long)),
            ],
            f"results store {ui.results_root()}",
        )
        st.download_button(
            "Download HTML report", report, file_name="compare-report.html", mime="text/html", key="compare-report"
        )
