"""Regressions page: one metric of one cell over the history of runs, with the gate's
verdict of each run against the one before it."""

import streamlit as st

from harness.analysis.gate import DEFAULT_RULES, GateError
from harness.app import charts, history_data, ui

st.session_state["page"] = "regressions"
st.title("Regressions")
loaded = ui.require_runs()
if loaded is not None:
    runs, _ = loaded
    ids = history_data.cell_history_ids(runs)
    hw = history_data.cell_hardware_names(runs)
    c1, c2 = st.columns([2, 1])
    ui.seed("reg-cell", next(iter(ui.url_values("cell", ids)), None))
    cell_id = c1.selectbox("cell", ids, format_func=lambda c: f"{c} · {hw.get(c, '')}", key="reg-cell")
    names = history_data.history_metrics(runs, cell_id)
    ui.seed("reg-metric", next(iter(ui.url_values("metric", names)), None))
    if names and st.session_state.get("reg-metric") not in names:
        st.session_state["reg-metric"] = names[history_data.default_metric(names)]
    metric = c2.selectbox("metric", names, key="reg-metric") if names else None
    ui.set_url(cell=cell_id, metric=metric)
    hist = history_data.metric_history(runs, cell_id, metric) if metric else None
    if metric is None or hist is None or hist["value"].notna().sum() == 0:
        st.info("This cell has no value for that metric in any run.")
    else:
        rules_text = st.text_input(
            "gate rules",
            ", ".join(DEFAULT_RULES),
            key="reg-rules",
            help="METRIC:+N% (latency) or METRIC:-N% (throughput); harness gate syntax",
        )
        g1, g2 = st.columns([2, 1])
        gate = g1.checkbox("gate each run against the previous one", value=True, key="reg-gate")
        x_axis = g2.radio("x axis", ["time", "commit"], horizontal=True, key="reg-x")
        verdicts = None
        if gate and len(hist) > 1:
            try:
                with st.spinner("running the gate ..."):
                    verdicts = history_data.gate_history(
                        ui.results_root(), hist, cell_id, history_data.split_rules(rules_text)
                    )
            except GateError as exc:
                st.error(f"gate rules: {exc}")
        shown = history_data.verdict_per_run(verdicts, metric) if verdicts is not None else None
        st.altair_chart(charts.history_chart(hist, metric, shown, x_axis), width="stretch")
        st.caption(
            f"{len(hist)} run(s) with cell `{cell_id}` on {hw.get(cell_id, 'unknown hardware')}; colour = gate verdict against the run before "
            f"(the rule on this metric where there is one, else the worst of the rules)."
        )
        st.dataframe(history_data.history_display(hist), hide_index=True, width="stretch")
        if verdicts is not None:
            st.subheader("Gate verdicts")
            st.dataframe(history_data.verdicts_display(verdicts), hide_index=True, width="stretch")
        elif len(hist) < 2:
            st.caption("One run only: the gate needs a baseline run with the same cell.")
