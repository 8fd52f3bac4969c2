"""Streamlit entry point (page URLs follow the page file names: /compare, /diff, /recommend, ...): ``harness app`` or
``streamlit run app.py -- --results DIR`` (default ``$HARNESS_RESULTS`` or ``results/``).

A thin shell around ``st.navigation``: each page is a script in ``harness/app/pages/`` that
lays out widgets and calls :mod:`harness.app.data` / :mod:`harness.app.charts`.
"""

import streamlit as st

from harness.app.ui import page_icon, results_root

st.set_page_config(page_title="Inference harness", page_icon=page_icon(), layout="wide")

PAGES = [
    st.Page("harness/app/pages/runs.py", title="Runs", icon=":material/table_view:", default=True),
    st.Page("harness/app/pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("harness/app/pages/diff.py", title="Diff", icon=":material/difference:"),
    st.Page("harness/app/pages/recommend.py", title="Recommend", icon=":material/recommend:"),
    st.Page("harness/app/pages/regressions.py", title="Regressions", icon=":material/trending_up:"),
    st.Page("harness/app/pages/upload.py", title="Upload", icon=":material/upload_file:"),
]

page = st.navigation(PAGES)
st.sidebar.caption(f"results: `{results_root()}`")
page.run()
