"""Upload page: run.json files (or zips of run directories), validated against the schema,
saved into the results store."""

import zipfile

import streamlit as st

from harness.app import data, ui
from harness.app.upload_check import precheck_upload
from harness.store.ingest import UploadResult, ingest_upload

st.session_state["page"] = "upload"
st.title("Upload results")
root = ui.results_root()
st.markdown(
    f"Upload a `run.json` or a `.zip` of a run directory (`run.json` + `raw/*.parquet`). Files are parsed "
    f"as JSON and validated against the run-record schema; nothing is unpickled or executed. Valid runs "
    f"are saved in `{root}`."
)
files = st.file_uploader("run files", type=["json", "zip"], accept_multiple_files=True, key="upload-files")
done = st.session_state.setdefault("upload-done", {})
for f in files or []:
    if f.file_id not in done:  # the uploader keeps its files across reruns: ingest each once
        blob = f.getvalue()
        problem = precheck_upload(f.name, blob)
        if problem is not None:
            done[f.file_id] = UploadResult(f.name, False, problem)
        else:
            try:
                done[f.file_id] = ingest_upload(f.name, blob, root)
            except (RecursionError, zipfile.BadZipFile) as exc:
                done[f.file_id] = UploadResult(f.name, False, f"{f.name}: cannot be read ({type(exc).__name__})")
    res = done[f.file_id]
    if res.ok:
        st.success(f"{f.name}: {res.message}")
    else:
        st.error(f"{f.name} was not saved: {res.message}")
runs, errors = ui.load_store()
ui.show_store_errors(errors)
st.subheader(f"{len(runs)} run(s) in the store")
if runs:
    table = data.runs_table(runs)
    st.dataframe(
        table[["run_id", "created_utc", "suite", "status", "hardware", "cells"]], hide_index=True, width="stretch"
    )
