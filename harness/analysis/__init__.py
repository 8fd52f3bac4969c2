"""Analysis: judging measured runs.

The regression gate (``gate/``: metric rules, samples, statistics, verdicts, paired A/B,
noise calibration, rendering) and the HTML/Markdown report. It may import ``harness.core``,
``harness.store`` and ``harness.measure`` (for constants of the scenarios it judges); never
planning or a surface, never torch.
"""
