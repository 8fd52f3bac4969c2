"""Load generation: when work is issued and how queued work becomes batches.

Seeded arrival processes, the server-side dynamic batcher, the open-loop serving engine (model
instance threads that read arrivals from the schedule and batch for themselves) and the
peak-search profile. No backend, scenario or record imports; ``harness.core`` only.
"""
