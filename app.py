"""Streamlit entry point: ``harness app`` or
``streamlit run app.py -- --results DIR`` (default ``$HARNESS_RESULTS`` or ``results/``).

A thin shell around ``st.navigation``: each page is a script in ``harness/app/pages/`` that
lays out widgets and calls :mod:`harness.app.data` / :mod:`harness.app.charts`.
"""

import streamlit as st

from harness.app.ui import results_root

st.set_page_config(page_title="Inference harness", page_icon="⏱️", layout="wide")

PAGES = [
    st.Page("harness/app/pages/runs.py", title="Runs", icon="📋", url_path="runs", default=True),
    st.Page("harness/app/pages/compare.py", title="Compare", icon="📊", url_path="compare"),
    st.Page("harness/app/pages/recommend.py", title="Recommend", icon="🧭", url_path="recommend"),
    st.Page("harness/app/pages/regressions.py", title="Regressions", icon="📈", url_path="regressions"),
    st.Page("harness/app/pages/upload.py", title="Upload", icon="⬆️", url_path="upload"),
]

page = st.navigation(PAGES)
st.sidebar.caption(f"results: `{results_root()}`")
page.run()
