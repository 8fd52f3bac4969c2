"""Diff page: two cells (any two, e.g. the same model on a CPU and on a GPU) or two runs side by
side: each metric's change with its confidence interval and a verdict
(:mod:`harness.app.diff_data`). The selection is kept in the URL; the table downloads as an
HTML report."""

import streamlit as st

from harness.app import charts, data, diff_data, identity, report_html, ui
from harness.core.metrics import METRICS

st.session_state["page"] = "diff"
st.title("Diff")
loaded = ui.require_runs()
if loaded is not None:
    runs, _ = loaded
    cells = data.all_cells(runs)
    keys = list(cells["key"])
    labels = dict(zip(cells["key"], cells["label"]))
    run_ids = [r.run_id for r in runs]
    run_label = {r.run_id: f"{r.run_id} · {identity.run_hardware_label(r)}" for r in runs}

    ui.seed("diff-mode", next(iter(ui.url_values("mode", ["cells", "runs"])), None))
    mode = st.radio("compare", ["cells", "runs"], horizontal=True, key="diff-mode", format_func=lambda m: f"two {m}")
    c1, c2 = st.columns(2)
    t1, t2 = st.columns(2)
    threshold = t1.number_input("change that counts (%)", min_value=0.1, max_value=100.0, value=5.0, key="diff-thr")
    alpha = t2.number_input("significance level alpha", min_value=0.0001, max_value=0.2, value=0.01, key="diff-alpha")
    root = ui.results_root()
    notes: list[str] = []
    if mode == "cells":
        pick_a = ui.url_values("a", keys)
        pick_b = ui.url_values("b", keys)
        ui.seed("diff-a", pick_a[0] if pick_a else keys[0])
        ui.seed("diff-b", pick_b[0] if pick_b else keys[min(1, len(keys) - 1)])
        a = c1.selectbox("A (baseline)", keys, format_func=lambda k: labels.get(k, k), key="diff-a")
        b = c2.selectbox("B (compared with A)", keys, format_func=lambda k: labels.get(k, k), key="diff-b")
        ui.set_url(mode=mode, a=a, b=b)
        with st.spinner("comparing ..."):
            table = diff_data.diff_cells(runs, a, b, root, threshold=threshold / 100, alpha=alpha)
        title = f"Diff: {labels[a]} vs {labels[b]}"
        heading = f"A = {labels[a]} ({data.split_key(a)[1]}), B = {labels[b]} ({data.split_key(b)[1]})"
    else:
        pick_a = ui.url_values("a", run_ids)
        pick_b = ui.url_values("b", run_ids)
        ui.seed("diff-run-a", pick_a[0] if pick_a else run_ids[-1])
        ui.seed("diff-run-b", pick_b[0] if pick_b else run_ids[0])
        a = c1.selectbox("run A (baseline)", run_ids, format_func=lambda r: run_label[r], key="diff-run-a")
        b = c2.selectbox("run B (compared with A)", run_ids, format_func=lambda r: run_label[r], key="diff-run-b")
        offered = sorted(set(cells.columns) & set(METRICS))
        names = st.multiselect(
            "metrics",
            offered,
            default=[m for m in diff_data.RUN_DIFF_METRICS if m in offered],
            key="diff-metrics",
        )
        ui.set_url(mode=mode, a=a, b=b)
        with st.spinner("comparing ..."):
            table, notes = diff_data.diff_runs(runs, a, b, root, names, threshold=threshold / 100, alpha=alpha)
        title = f"Diff: run {a} vs run {b}"
        heading = f"A = {run_label[a]}, B = {run_label[b]}; cells paired by id, else by model, size and scenario"
    st.caption(heading)
    if table.empty:
        st.info("Nothing to compare: these have no metric in common.")
    else:
        counts = table["verdict"].value_counts()
        st.markdown(" · ".join(f"**{v}**: {n}" for v, n in counts.items()))
        chart_rows = table.dropna(subset=["change_pct"])
        if not chart_rows.empty:
            st.altair_chart(charts.diff_chart(chart_rows), width="stretch")
        shown = diff_data.diff_display(table)
        st.dataframe(shown, hide_index=True, width="stretch")
        st.caption(
            "change = B / A - 1. Verdicts: regression / improvement = the whole interval lies beyond the change "
            "that counts in the bad / good direction (and, with raw samples, the Holm-corrected p < alpha); "
            "no change = the whole interval lies inside it; inconclusive = neither; untested = no interval "
            "(no raw samples and no recorded CI); not rated = the metric has no better direction. "
            "Method: raw samples = bootstrap interval and Mann-Whitney U on the per-query data; recorded CIs = "
            "conservative bounds from each cell's recorded interval."
        )
        st.download_button(
            "Download HTML report",
            report_html.html_report(
                title, [(heading, shown), *([("Unpaired cells", "; ".join(notes))] if notes else [])], str(root)
            ),
            file_name="diff-report.html",
            mime="text/html",
            key="diff-report",
        )
    if notes:
        with st.expander(f"{len(notes)} note(s) on unpaired cells"):
            st.text("\n".join(notes))
