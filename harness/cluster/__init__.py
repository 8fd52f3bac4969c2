"""Run a suite's cells across a Ray cluster into one run record.

Stage: beside :mod:`harness.analysis` and :mod:`harness.planning` (above
:mod:`harness.measure`, whose cell execution and run recorder it reuses; below the surfaces).
Ray is imported only inside the functions that talk to a cluster, so ``import harness`` never
needs it (install it with ``pip install 'inference-harness[cluster]'``).

* :mod:`harness.cluster.resources` -- what a cell asks of a node (pure, no Ray).
* :mod:`harness.cluster.node` -- what a node does with one cell (no Ray).
* :mod:`harness.cluster.executor` -- the driver: schedules cells as Ray tasks, retries a cell
  whose node died, and records every outcome in one run.
"""
