"""The Streamlit app's library side: view-model functions (:mod:`harness.app.data` for what
every page shares and the runs page, :mod:`harness.app.identity` for what a run or cell ran
on, :mod:`harness.app.compare_data`, :mod:`harness.app.diff_data`,
:mod:`harness.app.history_data` and :mod:`harness.app.recommend_data` for the other pages),
chart builders (:mod:`harness.app.charts`), the HTML report (:mod:`harness.app.report_html`)
and small widgets shared by pages (:mod:`harness.app.ui`). Uploads are checked for complete
records (:mod:`harness.app.upload_check`), then validated and saved by
:mod:`harness.store.ingest`.

The page scripts in ``harness/app/pages/`` only lay out widgets and call these functions;
``app.py`` at the repository root is the entry point (``harness app`` starts it). Importing
this package imports neither Streamlit nor torch.
"""
