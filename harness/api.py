"""The Python API's glue: compare runs, recommend hardware, project a model onto a profile.

``import harness`` exposes these lazily (``harness.compare``, ``harness.recommend``,
``harness.project``) next to ``run_suite`` / ``load_run`` / ``load_results``; the CLI and the
app call the same library functions. This module is a surface (like :mod:`harness.cli`): it
may import every stage below it and holds no logic of its own beyond resolving arguments.

Units: latencies in ms (``*_ms``), throughput in samples/s or tokens/s per device, energy in
J, power in W or kW, cost in USD; every figure is a :class:`harness.core.metrics.Metric`
whose ``provenance`` says whether it is measured, estimated, projected or a reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.analysis.gate import GateReport, LoadedRun, Rule, compare_runs, load_run_ref, parse_rules
from harness.core.hardware import get_profile
from harness.core.records import RunRecord
from harness.planning.calibration import efficiency_for
from harness.planning.projection import DecoderProjection, Projection, ProjectionError, choose_dtype
from harness.planning.projection import project_decoder as _project_decoder
from harness.planning.projection import project_offline as _project_offline
from harness.planning.recommend import ModelSpec, Recommendation, RecommendRequest
from harness.planning.recommend import recommend as _recommend
from harness.planning.workload_cost import mlperf_cost, workload_cost
from harness.store.results import DEFAULT_ROOT

__all__ = ["compare", "project", "recommend"]

#: what :func:`compare` accepts for either side
RunRef = str | Path | RunRecord | LoadedRun


def _loaded(ref: RunRef, root: Path) -> LoadedRun:
    if isinstance(ref, LoadedRun):
        return ref
    if isinstance(ref, RunRecord):
        # a record carries no directory: its raw files are looked for under root/<run_id>
        return LoadedRun(ref, root / ref.run_id, ref.run_id)
    return load_run_ref(ref, root)


def compare(
    baseline: RunRef,
    current: RunRef,
    rules: Sequence[str | Rule] | None = None,
    *,
    alpha: float = 0.01,
    results_root: str | Path | None = None,
    allow_unmatched: bool = False,
    n_draws: int = 2000,
    seed: int = 0,
) -> GateReport:
    """The regression gate's report of ``current`` against ``baseline``.

    Each side is a run directory, a ``run.json`` path, a run id under ``results_root``, a
    baseline name under ``results_root/baselines/``, a loaded
    :class:`~harness.core.records.RunRecord` (raw files read from ``results_root/<run_id>``)
    or a :class:`~harness.analysis.gate.LoadedRun`. ``rules`` are gate rules such as
    ``"latency_p99:+5%"`` (default: the gate's default rules); ``alpha`` is the family-wise
    error rate of the Holm-corrected tests. Returns a
    :class:`~harness.analysis.gate.GateReport`: its ``exit_code`` is 0 (pass) or 1
    (regression); ``report.verdicts`` holds one verdict per cell x rule (ratio current /
    baseline of the rule's statistic, its CI, Holm-adjusted p-value, verdict);
    ``report.to_dict()`` gives them as plain data and
    ``harness.analysis.gate.render(report, fmt)`` as text (``table``: regressions first).
    Two runs measured interleaved (``harness gate ab``, the pytest plugin's ``--harness-ab``)
    are compared block by block.

    Raises :class:`~harness.analysis.gate.GateError` on a run that cannot be found or read,
    on bad rules, or on cells present in only one run (unless ``allow_unmatched``).
    """
    root = Path(results_root) if results_root is not None else DEFAULT_ROOT
    parsed = None if rules is None else [r if isinstance(r, Rule) else parse_rules([r])[0] for r in rules]
    return compare_runs(
        _loaded(baseline, root),
        _loaded(current, root),
        parsed,
        alpha,
        allow_unmatched=allow_unmatched,
        n_draws=n_draws,
        seed=seed,
    )


def recommend(
    request: RecommendRequest | None = None,
    *,
    results_root: str | Path | None = None,
    profiles: dict[str, Any] | None = None,
    **fields: Any,
) -> Recommendation:
    """Rank hardware profiles for a load within an SLO (:func:`harness.planning.recommend.recommend`).

    Give a :class:`~harness.planning.recommend.RecommendRequest`, or its fields as keyword
    arguments, e.g. ``recommend(model="resnet50", scenario="online", slo={"p99_ms": 10},
    load={"qps": 1000})``; ``model`` may be a zoo name (then ``size=`` picks the size), a
    dict or a :class:`~harness.planning.recommend.ModelSpec`. SLOs are in ms, load in
    queries/s, items/day or tokens/s, budgets in USD/month and kW. ``results_root`` holds
    measured runs to use as evidence (None: projections and MLPerf references only).

    Returns a :class:`~harness.planning.recommend.Recommendation`: ``rows`` ranked best
    first (devices, batch size, predicted latency with its range, USD/month, kW, USD per 1M,
    provenance measured / reference / projected / mixed), ``excluded`` profiles with the
    reason, and ``enforced_end`` (which end of each range the sizing enforces).

    Raises ``pydantic.ValidationError`` on bad fields and ``ValueError`` when the scenario
    does not fit the model; ``TypeError`` when both a request and fields are given.
    """
    if request is not None and fields:
        raise TypeError(f"recommend: give a RecommendRequest or its fields, not both (got {sorted(fields)})")
    if request is None:
        model = fields.get("model")
        size = fields.pop("size", None)
        if isinstance(model, str):
            fields["model"] = ModelSpec(name=model, size=size or "standard")
        elif size is not None:
            raise TypeError("recommend: size= applies only when model is given by name")
        request = RecommendRequest.model_validate(fields)
    return _recommend(request, results_root=results_root, profiles=profiles)


def project(
    model: str,
    profile_id: str,
    *,
    batch_size: int | None = None,
    dtype: str = "fp16",
    size: str = "standard",
    devices: int | None = None,
) -> Projection | DecoderProjection:
    """Roofline projection of ``model`` (zoo name, or ``bert-99`` / ``llama2-70b``) on the
    hardware profile ``profile_id`` (:mod:`harness.planning.projection`).

    Non-decoders give a :class:`~harness.planning.projection.Projection`: batch latency
    ``latency_s`` (s) and per-device throughput ``throughput_per_s`` (samples/s) at
    ``batch_size`` (default: the largest batch that fits the device memory), and ``metrics``
    ``latency_p50`` (ms) and ``throughput`` (samples/s). Decoders give a
    :class:`~harness.planning.projection.DecoderProjection` with ``ttft_p50`` / ``tpot_p50``
    (ms) and ``output_tokens_per_s`` (tokens/s per device). Every metric has provenance
    ``projected:roofline``, a ``method`` naming the efficiencies and their origin, and a
    ``ci_low``/``ci_high`` range from the calibration's spread.

    ``dtype`` falls back to its sibling when the profile has no peak for it (fp16<->bf16,
    int8<->fp8, fp32<->tf32); ``devices`` is the tensor-parallel width (default 1; decoders:
    the best width). Raises ``KeyError`` naming the known ids for an unknown profile and :class:`~harness.planning.projection.ProjectionError` when the model does not
    fit or the profile has no peak for the dtype.
    """
    profile = get_profile(profile_id)
    cost = mlperf_cost(model) if size == "mlperf" or model in ("bert-99", "llama2-70b") else workload_cost(model, size)
    chosen = choose_dtype(profile, dtype)
    if chosen is None:
        raise ProjectionError(f"profile {profile_id!r} has no peak for dtype {dtype!r} (or its fallback)")
    eff = efficiency_for(profile, cost, chosen)
    if cost.is_decoder:
        return _project_decoder(cost, profile, chosen, eff, batch=batch_size, devices=devices)
    return _project_offline(cost, profile, chosen, eff, batch=batch_size, devices=devices or 1)
