"""Load generation: when work is issued and how queued work becomes batches.

Seeded arrival processes, the server-side dynamic batcher and the peak-search profile. Pure
policy and timing helpers: no backend, scenario or record imports; ``harness.core`` only.
"""
