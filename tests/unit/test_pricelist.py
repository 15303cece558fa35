"""The prices file: exact decimals from their text, and no overlapping prices."""

import datetime
import decimal

import pytest

from meter_export.rating import documents
from meter_export.rating import pricelist

UTC = datetime.UTC


def parse(tmp_path, text):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return pricelist.load(str(path))


def test_a_float_and_a_string_load_the_same_exact_decimal(tmp_path):
    prices = parse(
        tmp_path,
        "currency: EUR\nprices:\n"
        "  - {service: a, unit: vcpu, per: hour, price: 0.1, valid_from: 2026-01-01, valid_to: 2027-01-01, region: nz-por-1}\n"
        "  - {service: b, unit: vcpu, per: hour, price: '0.1', valid_from: 2026-01-01}\n"
        "  - {service: c, unit: B, per: unit, price: 0.000000000000000001, valid_from: '2026-03-15T10:00:00Z', currency: NZD}\n",
    )
    assert prices[0].price == prices[1].price == decimal.Decimal("0.1")
    assert str(prices[0].price) == "0.1"  # not 0.1000000000000000055511151231257827
    assert prices[0].valid_from == datetime.datetime(2026, 1, 1, tzinfo=UTC) and prices[0].region == "nz-por-1"
    assert prices[1].valid_to is None and prices[1].region == "" and prices[1].currency == "EUR"
    assert prices[2].price == decimal.Decimal("1E-18") and prices[2].currency == "NZD"
    assert prices[2].valid_from == datetime.datetime(2026, 3, 15, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{service: a, unit: u, per: hour, price: abc, valid_from: 2026-01-01}", "prices[0] (a): price: 'abc' is not a number"),
        ("{service: a, unit: u, per: hour, price: .inf, valid_from: 2026-01-01}", "prices[0] (a): price:"),
        ("{service: a, unit: u, per: hour, price: -1, valid_from: 2026-01-01}", "price: -1 is negative"),
        ("{service: a, unit: u, per: day, price: 1, valid_from: 2026-01-01}", "per: must be hour or unit"),
        ("{service: a, unit: u, per: hour, price: 1, valid_from: '2026-01-01T10:30:00'}", "is not on an hour"),
        ("{service: a, unit: u, per: hour, price: 1, valid_from: 2026-02-01, valid_to: 2026-01-01}", "valid_to: must be after"),
        ("{service: a, unit: u, per: hour, price: 1, valid_from: 2026-01-01, colour: red}", "colour"),
        ("{service: a, unit: u, per: hour, price: 1, valid_from: 2026-01-01, currency: euro}", "currency: must be an ISO 4217"),
    ],
)
def test_bad_entries_are_named(tmp_path, entry, message):
    with pytest.raises(pricelist.PricesError) as info:
        parse(tmp_path, "currency: EUR\nprices:\n  - " + entry)
    assert message in str(info.value)


def test_currency_is_required_somewhere(tmp_path):
    with pytest.raises(pricelist.PricesError, match=r"prices\[0\] \(a\): currency: required"):
        parse(tmp_path, "prices:\n  - {service: a, unit: u, per: hour, price: 1, valid_from: 2026-01-01}")


def price(service="a", start=(2026, 1, 1), end=None, region="", amount="1"):
    valid_to = datetime.datetime(*end, tzinfo=UTC) if end else None
    return pricelist.Price(service, "u", "hour", decimal.Decimal(amount), "EUR", datetime.datetime(*start, tzinfo=UTC), valid_to, region)


def test_overlap_rule():
    jan = price(end=(2026, 2, 1))
    assert not pricelist.overlap(jan, price(start=(2026, 2, 1)))  # half-open: back to back is fine
    assert pricelist.overlap(jan, price(start=(2026, 1, 31)))
    assert pricelist.overlap(price(), price(start=(2030, 1, 1)))  # open end
    assert not pricelist.overlap(jan, price("b"))
    assert not pricelist.overlap(price(region="r1"), price(region="r2"))
    assert pricelist.overlap(price(region="r1"), price(region=""))  # no region: every region


def test_merge_refuses_an_overlap_naming_both():
    existing = [price(amount="0.01")]
    with pytest.raises(pricelist.PricesError) as info:
        pricelist.merge(existing, [price(start=(2026, 6, 1), amount="0.02")])
    message = str(info.value)
    assert "a from 2026-06-01T00:00 to open end (0.02 EUR per hour)" in message
    assert "a from 2026-01-01T00:00 to open end (0.01 EUR per hour)" in message


def test_a_price_change_mid_month_closes_the_old_one_by_its_key():
    existing = [price(amount="0.01")]
    changed, unchanged = pricelist.merge(existing, [price(end=(2026, 11, 15), amount="0.01"), price(start=(2026, 11, 15), amount="0.02")])
    assert len(changed) == 2 and unchanged == 0
    assert pricelist.merge(changed, changed) == ([], 2)  # loading the same file again changes nothing


def test_documents_keep_exact_numbers(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("a: 0.1\nb: 1.0e-3\nc: 3\nd: .nan\n")
    doc = documents.load(str(path), ValueError)
    assert doc == {"a": decimal.Decimal("0.1"), "b": decimal.Decimal("0.001"), "c": 3, "d": ".nan"}
