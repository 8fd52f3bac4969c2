"""Runs page: every run in the results store (labelled by accelerator where its cells ran on
one), filters (accelerator first; kept in the URL), and each run's environment manifest."""

import streamlit as st

from harness.app import data, ui

st.session_state["page"] = "runs"
st.title("Runs")
loaded = ui.require_runs()
if loaded is not None:
    runs, _ = loaded
    cells = data.all_cells(runs)
    opts = data.filter_options(cells)
    st.sidebar.header("Filters")
    chosen = {}
    for col in data.FILTER_COLUMNS:
        ui.seed(f"runs-f-{col}", ui.url_values(col, [str(v) for v in opts[col]]))
        chosen[col] = st.sidebar.multiselect(col, opts[col], key=f"runs-f-{col}")
    ui.set_url(**chosen)
    bounds = data.date_bounds(cells)
    date_range = st.sidebar.date_input("date (UTC)", value=bounds, key="runs-f-date") if bounds else ()
    d_from = date_range[0] if len(date_range) > 0 else None
    d_to = date_range[1] if len(date_range) > 1 else None
    shown = data.filter_cells(cells, date_from=d_from, date_to=d_to, **chosen)
    run_ids = list(dict.fromkeys(shown["run_id"]))
    table = data.runs_table([r for r in runs if r.run_id in run_ids])
    st.subheader(f"{len(table)} run(s), {len(shown)} cell(s)")
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        "hardware: the accelerators a run's cells ran on (device other than cpu), else the CPU model. "
        "Invalid cells (valid = False) failed a validity check of their scenario; see the Compare page's "
        "Validity tab."
    )

    st.subheader("Cells")
    st.dataframe(data.with_units(data.cell_view(shown)), hide_index=True, width="stretch")
    st.caption(
        "Device memory, never summed: device_memory_used = peak of NVML's device-wide 'used' (all processes "
        "on the device); device_memory_allocator_peak = the framework allocator's peak (this process's tensors)."
    )
    ui.provenance_legend()

    st.subheader("Environment manifest")
    if run_ids:
        rid = st.selectbox("run", run_ids, key="runs-env-run")
        run = next(r for r in runs if r.run_id == rid)
        st.caption(f"suite `{run.suite_name}` · status {run.status} · created {run.created_utc}")
        st.dataframe(data.environment_table(run), hide_index=True, width="stretch", height=360)
    else:
        st.info("No run matches the filters.")
