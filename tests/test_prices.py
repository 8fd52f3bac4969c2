"""Prices: which listed price is used (--price-source), user prices (--price), and unpriced devices
kept in the ranking where cost does not count."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.cli.recommend import app, parse_prices
from harness.core import economics as ec
from harness.core.hardware import HardwareProfile, Price, apply_overrides, load_profiles
from harness.planning.recommend import Load, ModelSpec, RecommendRequest, recommend


def price(provider: str, usd: float, model: str = "on-demand") -> Price:
    return Price(
        provider=provider, instance="i", usd_per_device_hour=usd, pricing_model=model, date="2025-01", source="s"
    )


DEV = HardwareProfile(
    id="dev",
    kind="gpu",
    vendor="v",
    model="m",
    prices=[
        price("AWS", 10.0, "capacity-block"),
        price("AWS", 12.0),
        price("Lambda", 3.0),
        price("GCP", 6.0, "committed-use"),
        price("AWS", 4.0, "spot"),
    ],
)


@pytest.mark.parametrize(
    ("source", "usd", "fallback"),
    [
        ("on-demand", 12.0, False),  # the first on-demand price, not the first in the list
        ("spot", 4.0, False),
        ("committed", 6.0, False),
        ("capacity-block", 10.0, False),
        ("lambda", 3.0, False),  # a provider, case-insensitive
        ("GCP", 6.0, False),
        ("coreweave", 12.0, True),  # no price from that provider: the on-demand one, said so
    ],
)
def test_choose_price_by_source(source: str, usd: float, fallback: bool) -> None:
    got = ec.choose_price(DEV, source)
    assert got is not None and got.usd_per_hour == usd and got.provenance == "estimated:list-price"
    assert ("no coreweave price listed" in got.description) is fallback


def test_fallback_order_when_no_on_demand_price() -> None:
    only = DEV.model_copy(update={"prices": [price("AWS", 4.0, "spot"), price("AWS", 10.0, "capacity-block")]})
    got = ec.choose_price(only)
    assert got is not None and got.usd_per_hour == 10.0 and "no on-demand price listed" in got.description
    assert ec.choose_price(DEV.model_copy(update={"prices": []})) is None


def test_user_price_wins_over_every_source() -> None:
    user = apply_overrides(DEV, usd_per_hour=1.5, price_source="user price (--price)")
    for source in ("on-demand", "spot", "lambda"):
        got = ec.choose_price(user, source)
        assert got is not None and got.usd_per_hour == 1.5 and got.provenance == "estimated:user-price"
        assert "user price" in got.description


def test_unknown_price_source_names_the_allowed_ones() -> None:
    ec.check_price_source("aws", load_profiles().values())
    with pytest.raises(ValueError, match="allowed: on-demand, spot, committed, capacity-block or a provider"):
        ec.check_price_source("bitcoin", load_profiles().values())


def test_every_listed_price_is_dated_and_sourced() -> None:
    for p in load_profiles().values():
        for pr in p.prices:
            assert pr.date.strip() and pr.source.strip() and pr.provider.strip(), p.id
        if p.kind in ("gpu", "tpu") and p.prices:
            # every priced GPU/TPU has an on-demand price for the default source
            got = ec.choose_price(p)
            assert got is not None and "no on-demand price listed" not in got.description, p.id


REQ = RecommendRequest(model=ModelSpec(name="resnet50"), scenario="offline", load=Load(items_per_day=5e8))


def test_unpriced_device_is_ranked_under_latency_and_excluded_under_cost_unless_priced() -> None:
    unpriced = "intel-gaudi2"
    assert ec.choose_price(load_profiles()[unpriced]) is None
    by_latency = recommend(REQ.model_copy(update={"objective": "latency"}))
    row = next(r for r in by_latency.rows if r.profile_id == unpriced)
    assert row.usd_per_month is None and "no price" in row.notes
    by_cost = recommend(REQ)
    assert unpriced not in {r.profile_id for r in by_cost.rows}
    reason = next(e.reason for e in by_cost.excluded if e.profile_id == unpriced)
    assert "no price" in reason and "--price" in reason
    priced = recommend(REQ, user_prices={unpriced: 1.3})
    row = next(r for r in priced.rows if r.profile_id == unpriced)
    assert row.usd_per_month is not None and row.usd_per_month.provenance == "estimated:user-price"
    assert row.usd_per_month.value == pytest.approx(row.devices * 1.3 * ec.HOURS_PER_MONTH)
    assert "user price" in row.notes and row.price == "1.3 USD/h user"
    no_price = next(r for r in by_latency.rows if r.profile_id == unpriced)
    assert no_price.price.startswith("no price")


def test_price_source_changes_the_price_used_and_the_row_says_which() -> None:
    default = {r.profile_id: r for r in recommend(REQ).rows}
    committed = {r.profile_id: r for r in recommend(REQ, price_source="committed").rows}
    tpu = "google-tpu-v6e"
    a, b = default[tpu], committed[tpu]
    assert a.usd_per_month is not None and b.usd_per_month is not None
    assert b.usd_per_month.value / b.devices < a.usd_per_month.value / a.devices  # committed use is cheaper
    assert "committed-use" in b.notes and "committed-use" in b.usd_per_month.method
    assert "on-demand" in a.usd_per_month.method
    with pytest.raises(ValueError, match="unknown price source"):
        recommend(REQ, price_source="nope")
    with pytest.raises(ValueError, match="unknown profile"):
        recommend(REQ, user_prices={"no-such-device": 1.0})


def test_cli_price_options() -> None:
    assert parse_prices(["intel-gaudi2=1.3", "amd-alveo-u250=1.65"]) == {"intel-gaudi2": 1.3, "amd-alveo-u250": 1.65}
    for bad in ("intel-gaudi2", "intel-gaudi2=-1", "=2", "x=abc"):
        with pytest.raises(Exception, match="ID=USD/h"):
            parse_prices([bad])
    runner = CliRunner()
    args = ["recommend", "--model", "resnet50", "--scenario", "offline", "--items-per-day", "5e8"]
    res = runner.invoke(app, [*args, "--price", "intel-gaudi2=1.3", "--price-source", "committed"])
    assert res.exit_code == 0, res.output
    assert "intel-gaudi2" in res.output.split("excluded")[0]
    res = runner.invoke(app, [*args, "--price", "intel-gaudi2=1.3", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert "price" in res.output.splitlines()[0] and "1.3 USD/h user" in res.output
    res = runner.invoke(app, [*args, "--price-source", "bitcoin"])
    assert res.exit_code == 2 and "unknown price source" in res.output


def test_price_range_spans_the_listed_prices() -> None:
    got = ec.choose_price(DEV)
    assert got is not None and (got.low, got.high) == (3.0, 12.0)
    assert ec.choose_price(DEV.model_copy(update={"prices": [price("AWS", 2.0)]})) == (
        2.0,
        "estimated:list-price",
        "dev: AWS i on-demand, 2025-01",
        price("AWS", 2.0),
        None,
        None,
    )
    rows = {r.profile_id: r for r in recommend(REQ).rows}
    h100 = rows["nvidia-h100-sxm"].usd_per_month
    assert h100 is not None and h100.value is not None and h100.ci_low is not None and h100.ci_high is not None
    assert h100.ci_low < h100.value < h100.ci_high and "range over the listed prices" in h100.method
    listed = [p.usd_per_device_hour for p in load_profiles()["nvidia-h100-sxm"].prices]
    assert h100.ci_high / h100.ci_low == pytest.approx(max(listed) / min(listed))
