"""Hardware recommendation: the cheapest / fastest / leanest way to serve a load within an SLO.

``recommend(request, results_root=None) -> Recommendation`` evaluates every hardware profile:

1. **Evidence**, best first: *measured* cells in ``results_root`` for that profile id and model;
   an MLPerf *reference* result when the model is an MLPerf benchmark (``resnet50`` standard,
   ``bert-99``, ``llama2-70b``) and the profile maps to an MLPerf accelerator; else a
   *projection* (:mod:`harness.planning.projection`, calibrated on MLPerf per device kind).
2. **Sizing** per scenario (per-device figures; devices serve independent shares of the load):

   * ``offline``: devices = ceil(rate / throughput per device) at the largest batch whose
     batch latency meets the optional p99 SLO;
   * ``online``: a service curve t(b) (measured offline sweep, or projected) drives the
     discrete-event simulator (:mod:`harness.planning.simulate`) with a batcher suggested for the SLO;
     the per-device peak QPS under the p99 SLO sets the device count (random routing);
     an MLPerf Server result is used instead when the SLO is at least MLPerf's bound;
   * ``sensor-stream``: as online with constant-rate arrivals and the deadline as the p99 SLO;
   * ``token-stream``: decode throughput at the largest batch whose TPOT meets the SLO; TTFT
     must meet its SLO (decoders only).
3. **Conservative end**: every sizing uses the pessimistic end of the uncertainty range (the
   throughput's lower bound, the service curve scaled by 1 / ratio_low), so the device count,
   $/month and kW reported are the ones that meet the SLO even at that end; constraints
   (max $/month, max kW) are enforced on those figures. Predicted latency is reported as a point
   value with its range, and the SLO is checked on the range's upper end.
4. **Ranking** by the objective: ``cost`` ($/month), ``latency`` (conservative p99 / TTFT),
   ``energy`` (kW at TDP), or weights ``{"cost": w1, "latency": w2, "energy": w3}`` combined as
   ``sum(w * log(value))`` (scale-free, so adding options never worsens the best score).

Every profile not recommended is listed in ``excluded`` with its reason.

**Price**: each profile's price is chosen by ``price_source`` (default ``on-demand``; ``spot``,
``committed``, ``capacity-block`` or a provider such as ``aws``), see
:func:`harness.core.economics.choose_price`; ``user_prices`` (profile id -> USD per device-hour)
wins over any listed price (provenance ``estimated:user-price``). The price used is named in
each row's notes and in the method of its ``usd_per_month``. A profile without a price is ranked
under latency and energy objectives (its cost blank, the notes say why) and is excluded, with
that reason, only where cost counts (a cost weight or a budget) and no user price is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from harness.core import economics as econ
from harness.core.hardware import HardwareProfile, apply_overrides, load_profiles
from harness.core.metrics import Metric
from harness.planning.evidence import MLPERF_MODELS, cost_of, measured_cells, mlperf_name
from harness.planning.request import (
    OBJECTIVES,
    SCENARIOS,
    SLO,
    Constraints,
    Exclusion,
    Load,
    ModelSpec,
    ObjectiveName,
    Recommendation,
    RecommendationRow,
    RecommendRequest,
    ScenarioName,
)
from harness.planning.sizing import MAX_DEVICES, SECONDS_PER_DAY, Excluded, rate_of, size_profile
from harness.planning.your_stack import size_your_stack

__all__ = [
    "MAX_DEVICES",
    "MLPERF_MODELS",
    "OBJECTIVES",
    "SCENARIOS",
    "SECONDS_PER_DAY",
    "SLO",
    "Constraints",
    "Exclusion",
    "Load",
    "ModelSpec",
    "ObjectiveName",
    "Recommendation",
    "RecommendRequest",
    "RecommendationRow",
    "ScenarioName",
    "recommend",
]


def recommend(
    request: RecommendRequest,
    results_root: str | Path | None = None,
    profiles: dict[str, HardwareProfile] | None = None,
    price_source: str = econ.DEFAULT_PRICE_SOURCE,
    user_prices: Mapping[str, float] | None = None,
) -> Recommendation:
    """Rank hardware profiles for ``request`` (see module docstring). ``results_root`` holds
    measured runs (None: projections and references only); ``profiles`` defaults to the
    shipped hardware profiles; ``price_source`` and ``user_prices`` (USD per device-hour by
    profile id) choose the prices. Raises ``ValueError`` when the scenario does not fit the model
    (token streams need a decoder), for an unknown price source or a user price for an unknown
    profile id."""
    if profiles is None:
        profiles = load_profiles()
    cost = cost_of(request.model)
    if request.scenario == "token-stream" and not cost.is_decoder:
        raise ValueError(
            f"scenario 'token-stream' needs a decoder model; {cost.name} is not one "
            "(zoo decoders: gpt2; MLPerf: llama2-70b)"
        )
    rate, unit = rate_of(request, cost)
    mlperf = mlperf_name(request.model)
    measured, run_profiles = measured_cells(Path(results_root) if results_root else None, request.model)
    profiles = {**run_profiles, **profiles}  # a host profile recorded by a run, unless shipped
    profiles = _with_user_prices(profiles, user_prices or {})
    econ.check_price_source(price_source, profiles.values())
    cons = request.constraints
    weights = request.weights()
    rows: list[RecommendationRow] = []
    excluded: list[Exclusion] = []
    for pid in sorted(profiles):
        p = profiles[pid]
        try:
            if cons.allowed_kinds and p.kind not in cons.allowed_kinds:
                raise Excluded(f"kind {p.kind!r} not in allowed kinds {list(cons.allowed_kinds)}")
            if cons.min_memory_gb is not None and (p.memory_gb or 0) < cons.min_memory_gb:
                raise Excluded(f"memory {p.memory_gb} GB < required {cons.min_memory_gb} GB")
            cells = measured.get(pid, [])
            if cons.measured_only and not cells:
                raise Excluded("no measured results for this model on this profile (measured-only)")
            price = econ.choose_price(p, price_source)
            if price is None and (weights.get("cost") or cons.max_usd_per_month is not None):
                raise Excluded(f"no price in the profile (rank it under cost with --price {pid}=USD/h)")
            if p.tdp_w is None and (weights.get("energy") or cons.max_kw is not None):
                raise Excluded("no TDP in the profile")
            sized = [size_profile(request, cost, p, rate, cells, mlperf)]
            if sized[0].provenance == "projected":
                try:  # the user's own stack beside the tuned one, where the stack model applies
                    mine = size_your_stack(request, cost, p, rate, sized[0].dtype)
                except Excluded as exc:
                    excluded.append(Exclusion(profile_id=pid, reason=str(exc)))
                    mine = None
                sized += [mine] if mine is not None else []
            for s in sized:
                usd = _with_price(econ.monthly_cost_usd(s.devices, price[0], price[1]), price) if price else None
                kw = econ.power_kw(s.devices, p.tdp_w, "estimated:tdp") if p.tdp_w else None
                if (
                    usd is not None
                    and cons.max_usd_per_month is not None
                    and (usd.value or 0.0) > cons.max_usd_per_month
                ):
                    raise Excluded(
                        f"${usd.value:,.0f}/month for {s.devices} device(s) exceeds the budget "
                        f"${cons.max_usd_per_month:,.0f}"
                    )
                if kw is not None and cons.max_kw is not None and (kw.value or 0.0) > cons.max_kw:
                    raise Excluded(f"{kw.value:.3g} kW for {s.devices} device(s) exceeds {cons.max_kw:g} kW")
                lat = s.p99 if s.p99 is not None else s.ttft
                slo_check = request.slo.p99_ms if request.scenario in ("online", "offline") else None
                if (
                    slo_check is not None
                    and lat is not None
                    and (lat.ci_high or lat.value or 0) > slo_check * (1 + 1e-9)
                ):
                    raise Excluded(f"predicted p99 {lat.ci_high:.3g} ms (conservative end) exceeds the SLO")
                per1m = None
                if price is not None:
                    fn = econ.usd_per_1m_tokens if unit == "tokens/s" else econ.usd_per_1m_inferences
                    per1m = _with_price(fn(price[0] * s.devices, rate, price[1]), price)
                score = _score(weights, usd, lat, kw)
                rows.append(
                    RecommendationRow(
                        rank=0,
                        profile_id=pid,
                        kind=p.kind,
                        devices=s.devices,
                        dtype=s.dtype,
                        batch_size=s.batch,
                        max_queue_delay_ms=s.delay_ms,
                        predicted_p99_ms=s.p99,
                        predicted_ttft_ms=s.ttft,
                        predicted_tpot_ms=s.tpot,
                        usd_per_month=usd,
                        kw=kw,
                        usd_per_1m=per1m,
                        per_device_capacity=s.capacity,
                        provenance=s.provenance,
                        score=score,
                        notes=_price_note(s.notes, price),
                        price=price.label if price is not None else "no price (--price ID=USD/h ranks it by cost)",
                        stack=s.stack,
                        evidence=s.evidence,
                    )
                )
        except Excluded as exc:
            excluded.append(Exclusion(profile_id=pid, reason=str(exc)))
    rows.sort(key=lambda r: (r.score, r.profile_id))
    rows = [r.model_copy(update={"rank": i + 1}) for i, r in enumerate(rows)]
    return Recommendation(request=request, rows=rows, excluded=excluded)


def _with_user_prices(profiles: dict[str, HardwareProfile], prices: Mapping[str, float]) -> dict[str, HardwareProfile]:
    """``profiles`` with each user price (USD per device-hour by profile id) as the profile's first price."""
    unknown = sorted(set(prices) - set(profiles))
    if unknown:
        raise ValueError(
            f"price given for unknown profile(s) {', '.join(unknown)}; known: {', '.join(sorted(profiles))}"
        )
    out = dict(profiles)
    for pid, usd in prices.items():
        out[pid] = apply_overrides(profiles[pid], usd_per_hour=usd, price_source="user price (--price)")
    return out


def _with_price(m: Metric, price: econ.PriceChoice) -> Metric:
    """``m`` with the price it used named in its method and, where the profile lists prices that
    differ, the range ``m`` spans over them (``ci_low``/``ci_high``, the same sizing)."""
    method = f"{m.method}; price: {price.description}"
    if m.value is None or price.low is None or price.high is None:
        return m.model_copy(update={"method": method})
    scale = m.value / price.usd_per_hour
    method += f"; range over the listed prices {price.low:.4g}..{price.high:.4g} USD/device-h"
    return m.model_copy(update={"method": method, "ci_low": scale * price.low, "ci_high": scale * price.high})


def _price_note(notes: str, price: econ.PriceChoice | None) -> str:
    """The row's notes with the price used (USD per device-hour and where from), or why there is none."""
    what = (
        f"price {price.usd_per_hour:.4g} USD/device-h ({price.description})"
        if price is not None
        else "no price: the profile lists none (give one with --price ID=USD/h)"
    )
    return f"{notes}; {what}" if notes else what


def _score(weights: dict[str, float], usd: Metric | None, lat: Metric | None, kw: Metric | None) -> float:
    """sum(w * log(value)); values at the conservative end (latency's upper bound)."""
    total = 0.0
    vals = {
        "cost": usd.value if usd else None,
        "latency": (lat.ci_high or lat.value) if lat else None,
        "energy": kw.value if kw else None,
    }
    for k, w in weights.items():
        if not w:
            continue
        v = vals[k]
        if v is None or not v > 0:
            return math.inf
        total += w * math.log(v)
    return total
