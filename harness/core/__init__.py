"""Core: the vocabulary every other stage shares.

Metrics and provenance, run and cell records (with their ids), the suite spec, hardware
profiles, the plugin registry, the clock, statistics, economics formulas, YAML error
locations and the error types. Pure data and pure functions: no process, thread, file
output or heavy library. ``harness.core`` imports nothing else from ``harness`` (and never
torch); every other stage may import it.
"""
