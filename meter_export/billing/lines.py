"""From rated sums to the lines of an order, and late usage to adjustments.

Pure: values in, values out. A *key* is what one line bills: a resource's
service, in a unit, at one unit price (an effective-dated price change inside
a period gives two lines).
"""

import dataclasses
import datetime
import decimal
import typing

from meter_export.billing import errors
from meter_export.billing import money
from meter_export.billing import periods

ZERO = decimal.Decimal(0)
USAGE = "usage"
ADJUSTMENT = "adjustment"


@dataclasses.dataclass(frozen=True, order=True)
class Key:
    resource_id: str
    service: str
    unit: str
    unit_price: decimal.Decimal


@dataclasses.dataclass(frozen=True)
class RatedSum:
    """The unrounded rated usage of one key over a period."""

    key: Key
    currency: str
    quantity: decimal.Decimal
    cost: decimal.Decimal
    final: bool = True


@dataclasses.dataclass(frozen=True)
class Line:
    resource_id: str
    service: str
    unit: str
    quantity: decimal.Decimal
    unit_price: decimal.Decimal
    cost: decimal.Decimal
    kind: str = USAGE
    adjusts: typing.Optional[int] = None
    provisional: bool = False

    @property
    def key(self):
        return Key(self.resource_id, self.service, self.unit, self.unit_price)


@dataclasses.dataclass(frozen=True)
class Order:
    """An issued order (with an id) or a draft (id None)."""

    project_id: str
    period: periods.Period
    currency: str
    lines: tuple
    id: typing.Optional[int] = None
    issued_at: typing.Optional[datetime.datetime] = None

    @property
    def total(self):
        # NOTE(billing): the sum of rounded lines, not rounded again.
        return sum((line.cost for line in self.lines), ZERO)


def currency_of(sums, default):
    """The one currency of a period's usage (``default`` when there is none).

    :raises errors.MixedCurrencies: usage priced in several currencies.
    """
    found = sorted({s.currency for s in sums})
    if len(found) > 1:
        raise errors.MixedCurrencies("rated usage of the period is priced in several currencies (%s): bill them apart" % ", ".join(found))
    return found[0] if found else default


def usage_lines(sums, currency):
    """One line per key, its cost rounded once; sorted by key."""
    return tuple(
        Line(
            resource_id=s.key.resource_id,
            service=s.key.service,
            unit=s.key.unit,
            quantity=s.quantity,
            unit_price=s.key.unit_price,
            cost=money.round_cost(s.cost, currency),
            provisional=not s.final,
        )
        for s in sorted(sums, key=lambda s: s.key)
    )


def adjustment_lines(current, billed, currency):
    """Lines that bring every issued order to what its period's usage is now.

    :param current: {order id: {Key: (quantity, unrounded cost)}} from today's
        rated usage of each issued order's period.
    :param billed: {order id: {Key: (quantity, rounded cost)}} of every line
        already billed for that period: its own usage lines plus the
        adjustments that later orders carried for it.
    :returns: adjustment lines naming the order each one corrects. What was
        billed plus them is exactly each key rounded once: nothing billed
        twice, nothing lost.
    """
    result = []
    for order_id in sorted(set(current) | set(billed)):
        now, then = current.get(order_id, {}), billed.get(order_id, {})
        for key in sorted(set(now) | set(then)):
            quantity, cost = now.get(key, (ZERO, ZERO))
            billed_quantity, billed_cost = then.get(key, (ZERO, ZERO))
            delta_quantity = quantity - billed_quantity
            delta_cost = money.round_cost(cost, currency) - billed_cost
            if delta_quantity or delta_cost:
                line = Line(key.resource_id, key.service, key.unit, delta_quantity, key.unit_price, delta_cost)
                result.append(dataclasses.replace(line, kind=ADJUSTMENT, adjusts=order_id))
    return tuple(result)


def difference(issued, regenerated):
    """Per key, what today's usage adds to (or takes from) an issued order's own lines."""
    then = {line.key: line for line in issued if line.kind == USAGE}
    now = {line.key: line for line in regenerated}
    result = []
    for key in sorted(set(then) | set(now)):
        a, b = then.get(key), now.get(key)
        quantity = (b.quantity if b else ZERO) - (a.quantity if a else ZERO)
        cost = (b.cost if b else ZERO) - (a.cost if a else ZERO)
        if quantity or cost:
            result.append(Line(key.resource_id, key.service, key.unit, quantity, key.unit_price, cost, kind="difference"))
    return tuple(result)
