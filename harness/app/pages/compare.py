"""Compare page: chosen cells side by side, every number with its provenance."""

import streamlit as st

from harness.app import charts, compare_data, data, ui

st.session_state["page"] = "compare"
st.title("Compare cells")
loaded = ui.require_runs()
if loaded is not None:
    runs, _ = loaded
    cells = data.all_cells(runs)
    default = data.default_selection(cells)
    labels = dict(zip(cells["key"], cells["label"]))
    keys = st.multiselect(
        "cells to compare",
        list(cells["key"]),
        default=default,
        format_func=lambda k: labels.get(k, k),
        key="compare-cells",
    )
    ui.provenance_legend()
    if not keys:
        st.info("Pick one or more cells above.")
    else:
        long = compare_data.metrics_long(runs, keys)
        tabs = st.tabs(
            ["Latency", "Throughput vs batch", "Latency vs QPS", "Tokens", "Energy & cost", "Validity", "All metrics"]
        )
        with tabs[0]:
            cdf, notes = compare_data.latency_cdf(runs, keys, ui.results_root())
            st.subheader("Latency CDF (per query, from raw data)")
            if not cdf.empty:
                st.altair_chart(charts.latency_cdf_chart(cdf), width="stretch")
            for n in notes:
                st.caption(n)
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
                st.dataframe(tp, hide_index=True, width="stretch")
        with tabs[2]:
            pctl = st.selectbox("percentile", ["latency_p99", "latency_p90", "latency_p50"], key="compare-qps-pct")
            pts, slo, peaks = compare_data.latency_vs_qps(runs, keys, pctl)
            if pts.empty:
                st.caption("No open-loop (online / online-peak) cells among the chosen cells.")
            else:
                st.altair_chart(charts.latency_qps_chart(pts, slo, peaks, pctl), width="stretch")
                st.caption("Red dashed line: latency SLO of the cell; green line: peak QPS found under the SLO.")
                st.dataframe(pts, hide_index=True, width="stretch")
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
            st.dataframe(compare_data.validity_table(runs, keys), hide_index=True, width="stretch")
            st.caption(
                "valid = every check of the scenario passed; an invalid cell's numbers are still "
                "what was measured, but they do not meet the scenario's rules."
            )
        with tabs[6]:
            st.dataframe(compare_data.wide_with_provenance(long), hide_index=True, width="stretch")
            st.dataframe(compare_data.metric_display(long), hide_index=True, width="stretch")
