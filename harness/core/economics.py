"""Energy and cost formulas, each returning a :class:`~harness.core.metrics.Metric` with provenance.

Units are in the names: ``_w`` watts, ``_j`` joules, ``_per_s`` per second, ``_usd`` US
dollars, ``usd_per_hour`` USD per device-hour, ``usd_per_kwh`` USD per kWh, ``g_per_kwh``
grams CO2-equivalent per kWh.

Provenance rule (see docs/energy-and-cost.md): a derived value takes the *weakest* kind of its
inputs (measured < reference < estimated < projected) and joins their methods with ``+``.
Throughput measured in the run is ``measured``; power keeps its meter's label
(``measured:nvml-energy``, ``estimated:tdp-model``, ...). Any dollar figure is at best
``estimated``: a dated list price is ``estimated:list-price`` (what one pays differs by
discount, region and date), a user-supplied price ``estimated:user-price``; an energy tariff is
``estimated:tariff``, a grid intensity ``estimated:grid-intensity``.

Which price: :func:`choose_price` picks one of a profile's dated prices by a *price source*
(``on-demand`` by default, ``spot``, ``committed``, ``capacity-block``, or a provider name); a
user price (``pricing_model: user``) always wins. :func:`basis_price` prices a cell from its
:class:`~harness.core.host_match.CostBasis`: the device's own price plus, for an accelerator
whose price is device-only (``includes_host: false``), its share of the host CPU's price
(host CPU price / number of accelerators). An instance price divided by its accelerators
already carries the host, so nothing is added to it (adding it would count the host twice).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from harness.core.hardware import HardwareProfile, Price
from harness.core.host_match import CostBasis
from harness.core.metrics import Metric, combine_provenance

HOURS_PER_MONTH = 730.0  #: 8760 h / 12, the convention cloud price lists use
J_PER_KWH = 3.6e6

__all__ = [
    "DEFAULT_PRICE_SOURCE",
    "HOURS_PER_MONTH",
    "J_PER_KWH",
    "PRICE_SOURCES",
    "PriceChoice",
    "basis_price",
    "check_price_source",
    "choose_price",
    "co2_grams",
    "cell_economics",
    "devices_needed",
    "energy_cost_usd",
    "inferences_per_kwh",
    "joules_per_inference",
    "joules_per_token",
    "monthly_cost_usd",
    "power_kw",
    "price_of",
    "usd_per_1m_inferences",
    "usd_per_1m_tokens",
]


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def joules_per_inference(power_w: float, throughput_per_s: float, provenance: str = "measured") -> Metric:
    """Energy per inference, J = W / (inferences/s). ``provenance`` is that of ``power_w``."""
    _positive("throughput_per_s", throughput_per_s)
    return Metric(
        value=power_w / throughput_per_s,
        unit="J",
        provenance=combine_provenance([provenance, "measured"]),
        method="power_w / throughput_per_s",
    )


def joules_per_token(power_w: float, tokens_per_s: float, provenance: str = "measured") -> Metric:
    """Energy per generated token, J = W / (tokens/s)."""
    _positive("tokens_per_s", tokens_per_s)
    return Metric(
        value=power_w / tokens_per_s,
        unit="J",
        provenance=combine_provenance([provenance, "measured"]),
        method="power_w / tokens_per_s",
    )


def inferences_per_kwh(power_w: float, throughput_per_s: float, provenance: str = "measured") -> Metric:
    """Inferences per kWh = 3.6e6 J/kWh / (J per inference) = throughput * 3.6e6 / W."""
    _positive("power_w", power_w)
    return Metric(
        value=throughput_per_s * J_PER_KWH / power_w,
        unit="1/kWh",
        provenance=combine_provenance([provenance, "measured"]),
        method="throughput_per_s * 3.6e6 / power_w",
    )


def usd_per_1m_inferences(usd_per_hour: float, throughput_per_s: float, price_provenance: str) -> Metric:
    """USD per million inferences = price_per_hour / (throughput_per_s * 3600) * 1e6."""
    _positive("throughput_per_s", throughput_per_s)
    return Metric(
        value=usd_per_hour / (throughput_per_s * 3600.0) * 1e6,
        unit="USD",
        provenance=combine_provenance([price_provenance, "measured"]),
        method="usd_per_hour / (throughput_per_s * 3600) * 1e6",
    )


def usd_per_1m_tokens(usd_per_hour: float, tokens_per_s: float, price_provenance: str) -> Metric:
    """USD per million tokens = price_per_hour / (tokens_per_s * 3600) * 1e6."""
    _positive("tokens_per_s", tokens_per_s)
    return Metric(
        value=usd_per_hour / (tokens_per_s * 3600.0) * 1e6,
        unit="USD",
        provenance=combine_provenance([price_provenance, "measured"]),
        method="usd_per_hour / (tokens_per_s * 3600) * 1e6",
    )


def devices_needed(target_per_s: float, throughput_per_device_s: float) -> int:
    """Devices for a target rate: ceil(target / throughput per device); 0 for a zero target."""
    _positive("throughput_per_device_s", throughput_per_device_s)
    if target_per_s < 0:
        raise ValueError(f"target_per_s must be >= 0, got {target_per_s}")
    ratio = target_per_s / throughput_per_device_s
    n = math.ceil(ratio)
    # a relative tolerance keeps a ratio like 3.0000000000000004 (float rounding) at 3 devices
    if n > 1 and ratio - (n - 1) <= 1e-9 * ratio:
        n -= 1
    # any positive target needs a device, even one so small that the ratio underflows to 0
    return max(n, 1) if target_per_s > 0 else n


def monthly_cost_usd(
    devices: int, usd_per_hour: float, price_provenance: str, hours_per_month: float = HOURS_PER_MONTH
) -> Metric:
    """USD per month = devices * price per device-hour * 730 h."""
    if devices < 0:
        raise ValueError(f"devices must be >= 0, got {devices}")
    return Metric(
        value=devices * usd_per_hour * hours_per_month,
        unit="USD/month",
        provenance=combine_provenance([price_provenance]),
        method=f"devices * usd_per_hour * {hours_per_month:g} h",
    )


def energy_cost_usd(
    energy_j: float,
    usd_per_kwh: float,
    pue: float = 1.0,
    provenance: str = "measured",
    tariff_provenance: str = "estimated:tariff",
) -> Metric:
    """Cost of energy = J / 3.6e6 * USD/kWh * PUE (PUE >= 1 scales IT energy to facility energy)."""
    if pue < 1.0:
        raise ValueError(f"pue must be >= 1.0, got {pue}")
    return Metric(
        value=energy_j / J_PER_KWH * usd_per_kwh * pue,
        unit="USD",
        provenance=combine_provenance([provenance, tariff_provenance]),
        method=f"energy_j / 3.6e6 * usd_per_kwh * pue (pue={pue:g})",
    )


def co2_grams(
    energy_j: float,
    grid_g_per_kwh: float,
    pue: float = 1.0,
    provenance: str = "measured",
    intensity_provenance: str = "estimated:grid-intensity",
) -> Metric:
    """CO2-equivalent grams = J / 3.6e6 * PUE * grid intensity (g/kWh)."""
    if pue < 1.0:
        raise ValueError(f"pue must be >= 1.0, got {pue}")
    return Metric(
        value=energy_j / J_PER_KWH * pue * grid_g_per_kwh,
        unit="g",
        provenance=combine_provenance([provenance, intensity_provenance]),
        method=f"energy_j / 3.6e6 * pue * grid_g_per_kwh (pue={pue:g})",
    )


def power_kw(devices: int, power_w: float, provenance: str = "measured") -> Metric:
    """Power of ``devices`` devices at ``power_w`` each, in kW."""
    return Metric(
        value=devices * power_w / 1e3,
        unit="kW",
        provenance=combine_provenance([provenance]),
        method="devices * power_w / 1000",
    )


#: price sources that select by pricing model (anything else names a provider)
PRICE_SOURCES: dict[str, str] = {
    "on-demand": "on-demand",
    "spot": "spot",
    "committed": "committed-use",
    "capacity-block": "capacity-block",
}
DEFAULT_PRICE_SOURCE = "on-demand"
#: order of pricing models when the requested source has no price in a profile
_FALLBACK_ORDER = ("on-demand", "capacity-block", "committed-use", "estimated", "spot")


class PriceChoice(NamedTuple):
    """The price used for a device: USD per device-hour, its provenance, a one-line description
    (provider, instance, pricing model, date, and why it was chosen if it is not the requested
    source), the :class:`~harness.core.hardware.Price` itself, and the range (``low``, ``high``,
    USD per device-hour) over all the prices the profile lists when they differ (None for a
    user price or a single listed price)."""

    usd_per_hour: float
    provenance: str
    description: str
    price: Price
    low: float | None = None
    high: float | None = None

    @property
    def label(self) -> str:
        """Short form for tables: ``6.31 USD/h CoreWeave on-demand`` (``user`` for a user price)."""
        who = "user" if self.price.pricing_model == "user" else f"{self.price.provider} {self.price.pricing_model}"
        return f"{self.usd_per_hour:.4g} USD/h {who}" + (" (uncertain)" if self.price.uncertain else "")


def _describe(profile_id: str, price: Price) -> str:
    if price.pricing_model == "user":
        return f"{profile_id}: user price ({price.source}), {price.date}"
    desc = f"{profile_id}: {price.provider} {price.instance} {price.pricing_model}, {price.date}".replace("  ", " ")
    return desc + (" (price uncertain in source)" if price.uncertain else "")


def _is_provider(source: str, provider: str) -> bool:
    s, p = source.lower(), provider.lower()
    return p == s or p.startswith(s + " ") or s in p.replace("(", " ").replace(")", " ").replace(",", " ").split()


def check_price_source(source: str, profiles: Iterable[HardwareProfile]) -> None:
    """Raise ``ValueError`` unless ``source`` is a pricing model or a provider some profile lists."""
    if source in PRICE_SOURCES:
        return
    providers = sorted({p.provider for prof in profiles for p in prof.prices if p.pricing_model != "user"})
    if not any(_is_provider(source, prov) for prov in providers):
        raise ValueError(
            f"unknown price source {source!r}; allowed: {', '.join(PRICE_SOURCES)} or a provider "
            f"({', '.join(providers)})"
        )


def choose_price(profile: HardwareProfile | None, source: str = DEFAULT_PRICE_SOURCE) -> PriceChoice | None:
    """The price of ``profile`` for ``source``; ``None`` when the profile lists no price.

    A user price (``pricing_model: user``) always wins. Otherwise the first price (list order is
    preference) whose pricing model is ``source`` (``committed`` = ``committed-use``), or whose
    provider is ``source`` (case-insensitive, e.g. ``aws``, ``lambda``). When none matches, the
    first price in the order on-demand, capacity-block, committed-use, estimated, spot is used and
    the description says that the requested source had none.
    """
    if profile is None or not profile.prices:
        return None
    prices = profile.prices
    user = [p for p in prices if p.pricing_model == "user"]
    note = ""
    if user:
        chosen = user[0]
    else:
        model = PRICE_SOURCES.get(source)
        match = [p for p in prices if (p.pricing_model == model if model else _is_provider(source, p.provider))]
        if match:
            chosen = match[0]
        else:
            chosen = min(prices, key=lambda p: _FALLBACK_ORDER.index(p.pricing_model))
            note = f"; no {source} price listed, used this {chosen.pricing_model} price"
    prov = "estimated:user-price" if chosen.pricing_model == "user" else "estimated:list-price"
    listed = sorted({p.usd_per_device_hour for p in prices if p.pricing_model != "user"})
    low, high = (listed[0], listed[-1]) if not user and len(listed) > 1 else (None, None)
    return PriceChoice(chosen.usd_per_device_hour, prov, _describe(profile.id, chosen) + note, chosen, low, high)


def price_of(profile: HardwareProfile | None, source: str = DEFAULT_PRICE_SOURCE) -> PriceChoice | None:
    """(USD per device-hour, provenance, description, price) for ``source``; see :func:`choose_price`."""
    return choose_price(profile, source)


def basis_price(basis: CostBasis, source: str = DEFAULT_PRICE_SOURCE) -> PriceChoice | None:
    """The hourly price of a cell on ``basis.device``; ``None`` when the device itself has no price
    (an accelerator is never priced as its host CPU).

    CPU cell: the CPU's price. Accelerator cell: its price; when that price is device-only
    (``includes_host`` false) plus ``host_share`` x the host CPU's price, the rule stated in the
    description; an instance price already includes the host and the description says so.
    """
    own = choose_price(basis.profile, source)
    if own is None or basis.host_cpu is None or basis.host_share <= 0:
        return own
    if own.price.includes_host:
        return own._replace(description=f"{own.description}; host CPU included in this instance price")
    cpu = choose_price(basis.host_cpu, source)
    if cpu is None:
        return own._replace(description=f"{own.description}; host CPU {basis.host_cpu.id} has no price, none added")
    return PriceChoice(
        own.usd_per_hour + basis.host_share * cpu.usd_per_hour,
        combine_provenance([own.provenance, cpu.provenance]),
        f"{own.description} + host CPU share ({basis.share_rule}: {basis.host_share:.3g} x "
        f"{cpu.usd_per_hour:.4g} USD/h, {cpu.description})",
        own.price,
    )


def cell_economics(
    throughput_per_s: float,
    power_w: float | None,
    power_provenance: str | None,
    profile: HardwareProfile | None,
    energy_usd_per_kwh: float | None = None,
    pue: float = 1.0,
    grid_g_per_kwh: float | None = None,
    tokens_per_s: float | None = None,
    basis: CostBasis | None = None,
) -> dict[str, Metric]:
    """Energy and cost metrics of one cell, keyed by metric name (see :mod:`harness.core.metrics`).

    ``throughput_per_s`` is the cell's measured samples/s, ``power_w`` the mean power over the
    same window with its provenance, ``profile`` the hardware profile whose price applies (one
    device), or ``basis`` the cell's device and host share (:func:`basis_price`; it wins over
    ``profile``). A metric whose input is missing is present with ``value=None`` and the reason in
    ``method``, so reports show why it is blank.
    """
    out: dict[str, Metric] = {}
    have_tp = throughput_per_s is not None and throughput_per_s > 0
    # the power reading and its provenance, or None when there is no usable reading
    reading = (power_w, power_provenance) if power_w is not None and power_provenance and power_w > 0 else None
    have_tokens = tokens_per_s is not None and tokens_per_s > 0

    def blank(unit: str, why: str) -> Metric:
        return Metric(value=None, unit=unit, provenance="unavailable", method=why)  # no number, no claim

    if reading is not None:
        out["power_w"] = Metric(value=reading[0], unit="W", provenance=reading[1], method="mean over window")
    else:
        out["power_w"] = blank("W", "no power reading")
    if reading is not None and have_tp:
        out["energy_per_inference_j"] = joules_per_inference(reading[0], throughput_per_s, reading[1])
        out["inferences_per_kwh"] = inferences_per_kwh(reading[0], throughput_per_s, reading[1])
    else:
        why = "no power reading" if reading is None else "no throughput"
        out["energy_per_inference_j"] = blank("J", why)
        out["inferences_per_kwh"] = blank("1/kWh", why)
    if tokens_per_s is not None:
        out["energy_per_token_j"] = (
            joules_per_token(reading[0], tokens_per_s, reading[1])
            if reading is not None and have_tokens
            else blank("J", "no power reading or tokens/s")
        )

    price = basis_price(basis) if basis is not None else price_of(profile)
    pid = basis.profile.id if basis is not None else getattr(profile, "id", "?")
    if price is not None and have_tp:
        usd_h, prov, desc = price.usd_per_hour, price.provenance, price.description
        m = usd_per_1m_inferences(usd_h, throughput_per_s, prov)
        out["usd_per_1m_inferences"] = m.model_copy(update={"method": f"{m.method}; price: {desc}"})
    else:
        out["usd_per_1m_inferences"] = blank(
            "USD", f"no price in profile {pid!r}" if price is None else "no throughput"
        )
    if tokens_per_s is not None:
        if price is not None and have_tokens:
            usd_h, prov, desc = price.usd_per_hour, price.provenance, price.description
            m = usd_per_1m_tokens(usd_h, tokens_per_s, prov)
            out["usd_per_1m_tokens"] = m.model_copy(update={"method": f"{m.method}; price: {desc}"})
        else:
            out["usd_per_1m_tokens"] = blank("USD", f"no price in profile {pid!r}" if price is None else "no tokens/s")

    if reading is not None and have_tp:
        j_per_1m = reading[0] / throughput_per_s * 1e6
        if energy_usd_per_kwh is not None:
            out["energy_usd_per_1m_inferences"] = energy_cost_usd(j_per_1m, energy_usd_per_kwh, pue, reading[1])
        if grid_g_per_kwh is not None:
            out["co2_g_per_1m_inferences"] = co2_grams(j_per_1m, grid_g_per_kwh, pue, reading[1])
    return out
