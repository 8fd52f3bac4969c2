"""Planning: answers for hardware that is not (or not only) on this machine.

Workload cost (FLOPs, bytes, memory from the zoo's counts), roofline projection, its
calibration on published and measured results, the shipped reference data (MLPerf), the
discrete-event serving simulator and the recommender (request models in ``request``,
evidence in ``evidence``, per-scenario sizing in ``sizing``, ranking in ``recommend``). It may import ``harness.core``,
``harness.store`` and ``harness.measure.load`` (the batching policy the simulator shares
with the real online scenario); never analysis or a surface, never torch.
"""
