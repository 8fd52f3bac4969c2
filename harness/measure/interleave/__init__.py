"""Interleaved A/B measurement: variants of one closed-loop cell take turns in short blocks.

On a shared machine the speed of the host drifts by tens of per cent over seconds (other
tenants, frequency, steal time). Two runs measured one after the other differ by that drift,
so a gate comparing them must either tolerate it or cry wolf. Here each variant (e.g. base
and head of a change) is loaded in its *own* worker process, warmed up, and then the
variants take turns: in every round each variant measures one block of ``block_ms`` in a
seeded random order, while the others wait idle on a pipe. A drift then hits the blocks of
one round alike, and the gate compares the variants block by block
(:mod:`harness.analysis.gate.paired`), which cancels it.

Processes differ too: two processes of the *same* code run a few per cent apart for their
whole life (memory layout, placement). So each variant runs in ``workers`` processes (3 by
default) and every round picks one of them, each equally often (to within one block when
the rounds are not a multiple of the workers) in a seeded random order; the per-process
luck then varies from round to round and shrinks in the paired comparison. It does not
vanish (the rounds share only ``workers**2`` process pairs), so the gate's interval is
conditional on these processes and the threshold must absorb the rest: calibrate it with
A/A sessions.

Contract:

* closed-loop scenarios only (``offline``, ``single-stream``): the next query is issued when
  the previous one completes, so a block can start and stop anywhere. Other scenarios give
  :class:`InterleaveError`.
* a block first issues ``block_warmup_queries`` unrecorded queries (caches are cold after
  another process ran), then measures until ``block_ms`` and ``block_min_queries`` are both
  reached.
* raw rows carry ``block`` (the round), ``block_position`` (the turn within the round) and
  ``worker`` (which of the variant's processes measured it);
  latency = completed - issued, in integer ns from the monotonic clock.
* energy is not metered: the blocks of several processes share one wall-clock window, so no
  window belongs to one variant. The record says so in ``extra``.
* a variant that fails to load, crashes or hangs fails the cell for every variant, with the
  reason on the one that failed.

Modules: :mod:`.options` (options, variants, a cell's closed-loop plan), :mod:`.worker` (the
worker process and its messages), :mod:`.coordinator` (:func:`measure_interleaved`),
:mod:`.summary` (raw rows, metrics and records of one side), :mod:`.runs` (:func:`run_ab`).
"""

from harness.measure.interleave.coordinator import measure_interleaved
from harness.measure.interleave.options import (
    ENERGY_NOTE,
    POOL,
    ClosedLoopPlan,
    InterleaveError,
    InterleaveOptions,
    Variant,
    closed_loop_plan,
)
from harness.measure.interleave.runs import run_ab
from harness.measure.interleave.summary import interleaved_partners

__all__ = [
    "ENERGY_NOTE",
    "POOL",
    "ClosedLoopPlan",
    "InterleaveError",
    "InterleaveOptions",
    "Variant",
    "closed_loop_plan",
    "interleaved_partners",
    "measure_interleaved",
    "run_ab",
]
