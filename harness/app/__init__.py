"""The Streamlit app's library side: view-model functions (:mod:`harness.app.data` for what
every page shares and the runs page, :mod:`harness.app.compare_data`,
:mod:`harness.app.history_data` and :mod:`harness.app.recommend_data` for the other pages),
chart builders (:mod:`harness.app.charts`) and small widgets shared by pages
(:mod:`harness.app.ui`). Uploads are validated and saved by :mod:`harness.store.ingest`.

The page scripts in ``harness/app/pages/`` only lay out widgets and call these functions;
``app.py`` at the repository root is the entry point (``harness app`` starts it). Importing
this package imports neither Streamlit nor torch.
"""
