"""Optimisation variants (``harness.variants`` plugins): the same workload made faster a known way
(lower precision, int8 quantisation, pruning, compilation, speculative decoding), each cell
measured for speed and for its accuracy cost against the fp32 eager reference.

See :mod:`harness.measure.variants.base` for the plugin contract and docs/variants.md.
"""
