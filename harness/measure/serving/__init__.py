"""Serving engines: one thread drives a backend for many concurrent token streams.

:mod:`~harness.measure.serving.scheduler` holds the iteration-level scheduling rules (pure,
no threads, no clock); :mod:`~harness.measure.serving.engine` runs them against a backend's
batched-stepping contract (:class:`harness.measure.backends.base.Backend`) in one thread and
timestamps every token with :func:`harness.core.clock.now_ns`.
"""
