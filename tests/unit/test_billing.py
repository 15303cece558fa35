"""The pure billing core: periods, the rounding rule, adjustments (money by hand)."""

import datetime
from decimal import Decimal as D

import pytest

from meter_export.billing import errors
from meter_export.billing import lines
from meter_export.billing import money
from meter_export.billing import periods

UTC = datetime.UTC
T0 = datetime.datetime(2026, 11, 1, tzinfo=UTC)
H = datetime.timedelta(hours=1)


def key(resource="vm-1", service="m1.small", unit="hour", price="0.048"):
    return lines.Key(resource, service, unit, D(price))


def rated(quantity, cost, k=None, currency="EUR", final=True):
    return lines.RatedSum(k or key(), currency, D(quantity), D(cost), final)


@pytest.mark.parametrize(
    "amount,currency,expected",
    [
        ("0.125", "EUR", "0.12"),  # half to even: down to the even cent
        ("0.135", "EUR", "0.14"),  # half to even: up to the even cent
        ("0.1250001", "EUR", "0.13"),  # just over the half goes up
        ("-0.125", "EUR", "-0.12"),
        ("2.5", "JPY", "2"),
        ("3.5", "JPY", "4"),
        ("1.0005", "KWD", "1.000"),
        ("1.0015", "KWD", "1.002"),
    ],
)
def test_round_cost_half_even_to_the_minor_unit(amount, currency, expected):
    result = money.round_cost(D(amount), currency)
    assert result == D(expected) and str(result) == expected


def test_round_cost_refuses_a_float():
    with pytest.raises(TypeError):
        money.round_cost(0.125, "EUR")


@pytest.mark.parametrize("code", ["eur", "EURO", "", None, "E1R"])
def test_currency_code_must_be_iso_4217(code):
    with pytest.raises(ValueError, match="ISO 4217"):
        money.exponent(code)


def test_to_decimal_never_goes_through_binary_noise():
    assert money.to_decimal(0.1) == D("0.1")
    assert money.to_decimal("0.30000000000000004") == D("0.30000000000000004")
    assert money.to_decimal(7) == D(7)


def test_each_line_rounded_once_and_total_is_the_sum_of_rounded_lines():
    # 3 lines of 0.125 EUR each: rounded once per line half-even -> 0.12 each,
    # total 0.36 (rounding the exact sum 0.375 would give 0.38: not what prints).
    sums = [rated("1", "0.125", key("vm-%d" % i)) for i in range(3)]
    result = lines.usage_lines(sums, "EUR")
    assert [line.cost for line in result] == [D("0.12")] * 3
    order = lines.Order("p", periods.Period(T0, T0 + H), "EUR", result)
    assert order.total == D("0.36")


def test_distil_test_vector_two_resources_two_services():
    # Distil test_add_cost_to_tenant: 2 x 2 services, 1 hour each at 0.25/h.
    sums = [rated("1", "0.25", key("r%d" % r, "s%d" % s, price="0.25")) for r in (1, 2) for s in (1, 2)]
    order = lines.Order("p", periods.Period(T0, T0 + H), "EUR", lines.usage_lines(sums, "EUR"))
    assert order.total == D("1.00")


def test_the_unrounded_sum_is_rounded_not_the_hours():
    # 24 hours at 0.048/h = 1.152 exactly -> 1.15; rounding each hour first
    # (0.05 x 24 = 1.20) would bill 5 cents more.
    (line,) = lines.usage_lines([rated("24", "1.152")], "EUR")
    assert line.cost == D("1.15") and line.quantity == D("24") and line.unit_price == D("0.048")


def test_lines_sorted_by_key_and_provisional_when_not_final():
    result = lines.usage_lines([rated("1", "1", key("b")), rated("1", "1", key("a"), final=False)], "EUR")
    assert [(x.resource_id, x.provisional) for x in result] == [("a", True), ("b", False)]


def test_one_currency_per_order():
    assert lines.currency_of([], "CHF") == "CHF"
    assert lines.currency_of([rated("1", "1", currency="USD")], "EUR") == "USD"
    with pytest.raises(errors.MixedCurrencies, match="EUR, USD"):
        lines.currency_of([rated("1", "1", currency="USD"), rated("1", "1", key("b"), currency="EUR")], "EUR")


def test_late_usage_becomes_an_adjustment_naming_the_order():
    k = key()
    # order 7 billed 10 h = 0.48; a late hour makes it 11 h = 0.528 -> 0.53.
    current = {7: {k: (D("11"), D("0.528"))}}
    billed = {7: {k: (D("10"), D("0.48"))}}
    (adj,) = lines.adjustment_lines(current, billed, "EUR")
    assert (adj.kind, adj.adjusts, adj.quantity, adj.cost) == ("adjustment", 7, D("1"), D("0.05"))
    # once carried, the next order adds nothing more: never billed twice.
    billed[7][k] = (D("11"), D("0.53"))
    assert lines.adjustment_lines(current, billed, "EUR") == ()


def test_adjustments_for_a_new_key_a_removed_key_and_rounding_alone():
    a, b, c = key("a"), key("b"), key("c", price="0.005")
    current = {
        3: {a: (D("2"), D("0.096")), c: (D("1"), D("0.005"))},  # a is new; c unchanged in quantity
        4: {},
    }
    billed = {3: {c: (D("1"), D("0.00"))}, 4: {b: (D("5"), D("0.24"))}}  # b corrected away
    result = lines.adjustment_lines(current, billed, "EUR")
    assert [(x.adjusts, x.resource_id, x.quantity, x.cost) for x in result] == [
        (3, "a", D("2"), D("0.10")),
        (4, "b", D("-5"), D("-0.24")),
    ]  # c: round(0.005) = 0.00 half-even, as billed: no line


def test_difference_between_issued_and_regenerated():
    issued = lines.usage_lines([rated("10", "0.48")], "EUR") + (
        lines.Line("x", "s", "hour", D(1), D(1), D(1), kind="adjustment", adjusts=1),
    )
    regenerated = lines.usage_lines([rated("11", "0.528"), rated("1", "0.5", key("b"))], "EUR")
    result = lines.difference(issued, regenerated)
    assert [(x.resource_id, x.quantity, x.cost) for x in result] == [("b", D("1"), D("0.50")), ("vm-1", D("1"), D("0.05"))]


def test_next_period_starts_at_the_last_order_end():
    assert periods.next_period(T0, T0 - 100 * H, T0 + 24 * H) == periods.Period(T0, T0 + 24 * H)


def test_first_period_starts_at_the_first_usage():
    assert periods.next_period(None, T0, T0 + H).start == T0


@pytest.mark.parametrize("end", [T0, T0 - H])
def test_empty_period_is_refused(end):
    with pytest.raises(errors.EmptyPeriod, match="must be after the end of its last order, 2026-11-01T00:00:00Z"):
        periods.next_period(T0, None, end)


def test_no_usage_and_no_order_is_empty():
    with pytest.raises(errors.EmptyPeriod, match="nothing to bill"):
        periods.next_period(None, None, T0)


def test_half_open_periods_share_an_edge_without_overlap():
    a, b = periods.Period(T0, T0 + H), periods.Period(T0 + H, T0 + 2 * H)
    assert not a.overlaps(b) and not b.overlaps(a)
    assert periods.Period(T0, T0 + 2 * H).overlaps(b)
    assert a.contains(T0) and not a.contains(T0 + H)


def test_completeness_mark_refuses_an_end_past_it():
    period = periods.Period(T0, T0 + 24 * H)
    periods.check_final(period, T0 + 24 * H)
    with pytest.raises(errors.NotFinal, match="final up to 2026-11-01T23:00:00Z"):
        periods.check_final(period, T0 + 23 * H)
    with pytest.raises(errors.NotFinal, match="no rated usage is final"):
        periods.check_final(period, None)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-11-01", T0),
        ("2026-11-01T00:00:00Z", T0),
        ("2026-11-01T01:00:00+01:00", T0),
        ("2026-11-01T00:00:00", T0),
    ],
)
def test_parse_instant(text, expected):
    assert periods.parse_instant(text, "end") == expected


@pytest.mark.parametrize("text", ["yesterday", "", None, "2026-13-01", 5])
def test_parse_instant_names_the_parameter(text):
    with pytest.raises(errors.BadParameter) as info:
        periods.parse_instant(text, "end")
    assert info.value.parameter == "end" and str(info.value).startswith("end: ")


def test_order_end_must_be_a_whole_hour():
    periods.require_whole_hour(T0 + H, "end")
    with pytest.raises(errors.BadParameter, match="end: .* whole hour"):
        periods.require_whole_hour(T0 + datetime.timedelta(minutes=30), "end")


def test_midnight_and_iso():
    assert periods.midnight(T0 + 13.5 * H) == T0
    assert periods.iso(T0) == "2026-11-01T00:00:00Z"
