"""The Streamlit app's library side: view-model functions (:mod:`harness.app.data`), chart
builders (:mod:`harness.app.charts`) and small widgets shared by pages (:mod:`harness.app.ui`).

The page scripts in ``harness/app/pages/`` only lay out widgets and call these functions;
``app.py`` at the repository root is the entry point (``harness app`` starts it). Importing
this package imports neither Streamlit nor torch.
"""
