"""Recommend page: the recommender's inputs as a form; ranked table, cost-vs-latency Pareto
chart, exclusions with reasons, downloads."""

from typing import Any

import streamlit as st

from harness.app import charts, recommend_data, ui
from harness.core.hardware import KINDS
from harness.planning.recommend import OBJECTIVES, SCENARIOS, recommend

st.session_state["page"] = "recommend"
st.title("Recommend hardware")
st.caption(
    "Ranks every hardware profile for a model, scenario, SLO and load. Evidence per profile, best first: "
    "measured cells in the results store, MLPerf reference results, else a roofline projection."
)
runs, errors = ui.load_store()
ui.show_store_errors(errors)
models = recommend_data.model_choices(runs)
# the model, size and scenario can come from the URL (?model=bert&size=standard&scenario=online)
ui.seed("rec-model", next(iter(ui.url_values("model", models)), "tabular_mlp"))
ui.seed("rec-size", next(iter(ui.url_values("size", ["tiny", "standard", "mlperf"])), None))
ui.seed("rec-scenario", next(iter(ui.url_values("scenario", list(SCENARIOS))), "online"))
with st.form("recommend-form"):
    c1, c2, c3 = st.columns(3)
    form: dict[str, Any] = {
        "model": c1.selectbox("model", models, key="rec-model"),
        "size": c2.selectbox("size", ["tiny", "standard", "mlperf"], key="rec-size"),
        "scenario": c3.selectbox("scenario", SCENARIOS, key="rec-scenario"),
    }
    st.markdown("**SLO** (leave 0 for none; the load below must be above 0)")
    s1, s2, s3, s4 = st.columns(4)
    form["p99_ms"] = s1.number_input("p99 latency (ms)", min_value=0.0, value=10.0, key="rec-p99")
    form["ttft_ms"] = s2.number_input("TTFT (ms)", min_value=0.0, value=0.0, key="rec-ttft")
    form["tpot_ms"] = s3.number_input("TPOT (ms)", min_value=0.0, value=0.0, key="rec-tpot")
    form["deadline_ms"] = s4.number_input("deadline (ms)", min_value=0.0, value=0.0, key="rec-deadline")
    st.markdown("**Load**")
    l1, l2 = st.columns(2)
    form["load_kind"] = l1.selectbox("load given as", ["qps", "items_per_day", "tokens_per_s"], key="rec-load-kind")
    form["load_value"] = l2.number_input("load (in the unit chosen left)", min_value=0.0, value=1000.0, key="rec-load")
    st.markdown("**Constraints and objective**")
    k1, k2, k3, k4 = st.columns(4)
    form["max_usd_per_month"] = k1.number_input("max $/month (0 = none)", min_value=0.0, value=0.0, key="rec-usd")
    form["max_kw"] = k2.number_input("max kW (0 = none)", min_value=0.0, value=0.0, key="rec-kw")
    form["min_memory_gb"] = k3.number_input("min memory GB/device", min_value=0.0, value=0.0, key="rec-mem")
    form["kinds"] = k4.multiselect("device kinds (none = all)", list(KINDS), key="rec-kinds")
    o1, o2, o3 = st.columns(3)
    form["objective"] = o1.selectbox("objective", [*OBJECTIVES, "weighted"], key="rec-objective")
    form["dtype"] = o2.selectbox("dtype", ["fp16", "bf16", "fp32", "int8", "fp8"], key="rec-dtype")
    form["measured_only"] = o3.checkbox("measured profiles only", key="rec-measured-only")
    w1, w2, w3 = st.columns(3)
    form["w_cost"] = w1.number_input("weight: cost", min_value=0.0, value=1.0, key="rec-w-cost")
    form["w_latency"] = w2.number_input("weight: latency", min_value=0.0, value=0.0, key="rec-w-latency")
    form["w_energy"] = w3.number_input("weight: energy", min_value=0.0, value=0.0, key="rec-w-energy")
    use_store = st.checkbox("use measured results from the store", value=True, key="rec-use-store")
    submitted = st.form_submit_button("Recommend", type="primary")

if submitted:
    ui.set_url(model=form["model"], size=form["size"], scenario=form["scenario"])
    try:
        req = recommend_data.build_request(form)
        st.session_state["rec-result"] = recommend(req, results_root=ui.results_root() if use_store else None)
        st.session_state.pop("rec-error", None)
    except ValueError as exc:
        st.session_state.pop("rec-result", None)
        st.session_state["rec-error"] = str(exc)

if "rec-error" in st.session_state:
    st.error(f"Cannot recommend: {st.session_state['rec-error']}")
rec = st.session_state.get("rec-result")
if rec is not None:
    st.subheader(f"Ranked: {len(rec.rows)} profile(s)")
    if rec.rows:
        st.dataframe(
            recommend_data.ranked_table(rec, runs),
            hide_index=True,
            width="stretch",
            column_config={
                "evidence link": st.column_config.LinkColumn(
                    "evidence link",
                    display_text="measured cells ↗",
                    help="the compare page with the cells behind the row",
                )
            },
        )
    else:
        st.warning("No profile meets the SLO and constraints; see the exclusions below.")
    st.caption(rec.enforced_end)
    summary = recommend_data.evidence_summary(rec, runs)
    if summary:
        st.markdown("**Measured evidence in the results store** (profile: cells, hardware they ran on)")
        st.text("\n".join(summary))
    st.caption(
        "provenance: measured = cells in the results store; reference = MLPerf Inference results; "
        "projected = roofline + serving simulation; mixed = more than one. $/month and kW are estimated "
        "from list prices and TDP. evidence: what each row rests on; the link opens the measured cells behind it."
    )
    pf = recommend_data.pareto_frame(rec)
    if not pf.empty:
        st.subheader("Cost vs latency (Pareto front)")
        st.altair_chart(charts.pareto_chart(pf), width="stretch")
    st.subheader(f"Excluded: {len(rec.excluded)} profile(s)")
    st.dataframe(rec.excluded_frame(), hide_index=True, width="stretch")
    d1, d2 = st.columns(2)
    d1.download_button("Download CSV", rec.to_csv(), file_name="recommendation.csv", mime="text/csv", key="rec-dl-csv")
    d2.download_button(
        "Download JSON", rec.to_json(), file_name="recommendation.json", mime="application/json", key="rec-dl-json"
    )
