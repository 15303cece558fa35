"""The prices file and the rule that no two prices overlap (pure).

Example::

    currency: EUR                # default for the entries below
    prices:
      - service: compute.vcpus   # a service of the mappings file
        unit: vcpu
        per: hour                # hour: per unit per hour; unit: per unit of quantity
        price: 0.01              # an exact decimal, from its text
        valid_from: 2026-01-01   # UTC, inclusive, on an hour
        valid_to: 2027-01-01     # optional, exclusive
        region: nz-por-1         # optional; none: every region

A price is known by (service, region, valid_from): loading an entry with the
same key again replaces it (to close its validity, say).
"""

import dataclasses
import datetime
import decimal
import typing

import voluptuous as vol

from meter_export import utils
from meter_export.rating import RatingError
from meter_export.rating import documents

UTC = datetime.UTC
PER = ("hour", "unit")


class PricesError(RatingError):
    """The prices file is invalid, or a price overlaps another; the message names them."""


@dataclasses.dataclass(frozen=True)
class Price:
    service: str
    unit: str
    per: str
    price: decimal.Decimal
    currency: str
    valid_from: datetime.datetime
    valid_to: typing.Optional[datetime.datetime] = None
    region: str = ""

    @property
    def key(self):
        return (self.service, self.region, self.valid_from)

    def describe(self):
        until = utils.isoformat(self.valid_to)[:16] if self.valid_to else "open end"
        where = " in %s" % self.region if self.region else ""
        return "%s%s from %s to %s (%s %s per %s)" % (
            self.service, where, utils.isoformat(self.valid_from)[:16], until, self.price, self.currency, self.per
        )


def _instant(value):
    if isinstance(value, datetime.datetime):
        result = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    elif isinstance(value, datetime.date):
        result = datetime.datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            result = utils.parse_utc(value)
        except ValueError:
            raise vol.Invalid("%r is not an ISO 8601 date or timestamp" % value)
    else:
        raise vol.Invalid("%r is not a date" % (value,))
    if result != result.replace(minute=0, second=0, microsecond=0):
        raise vol.Invalid("%s is not on an hour (usage is hourly)" % value)
    return result


def _amount(value):
    try:
        result = documents.to_decimal(value)
    except ValueError as e:
        raise vol.Invalid(str(e))
    if result < 0:
        raise vol.Invalid("%s is negative" % result)
    return result


_TEXT = vol.All(str, vol.Length(min=1, max=255))
_CURRENCY = vol.All(str, vol.Match(r"^[A-Z]{3}$", msg="must be an ISO 4217 code such as EUR"))
_ENTRY = vol.Schema(
    {
        vol.Required("service"): _TEXT,
        vol.Required("unit"): _TEXT,
        vol.Required("per"): vol.In(PER, msg="must be hour or unit"),
        vol.Required("price"): _amount,
        vol.Required("valid_from"): _instant,
        vol.Optional("valid_to"): vol.Any(None, _instant),
        vol.Optional("region", default=None): vol.Any(None, _TEXT),
        vol.Optional("currency"): _CURRENCY,
    }
)
_FILE = vol.Schema({vol.Optional("currency"): _CURRENCY, vol.Required("prices"): vol.All(list, vol.Length(min=1))})


def _describe(errors):
    return "; ".join("%s: %s" % (".".join(str(p) for p in e.path), e.msg) if e.path else e.msg for e in errors)


def _where(index, entry):
    service = entry.get("service") if isinstance(entry, dict) else None
    return "prices[%d]%s" % (index, " (%s)" % service if isinstance(service, str) else "")


def _build(index, entry, currency):
    try:
        e = _ENTRY(entry)
    except vol.MultipleInvalid as error:
        raise PricesError("%s: %s" % (_where(index, entry), _describe(error.errors)))
    if not (e.get("currency") or currency):
        raise PricesError("%s: currency: required here or at the top of the file" % _where(index, entry))
    if e.get("valid_to") and e["valid_to"] <= e["valid_from"]:
        raise PricesError("%s: valid_to: must be after valid_from" % _where(index, entry))
    return Price(
        e["service"], e["unit"], e["per"], e["price"], e.get("currency") or currency, e["valid_from"], e.get("valid_to"), e["region"] or ""
    )


def parse(document):
    """The Prices of a parsed document (rating/documents.py); raises PricesError."""
    if not isinstance(document, dict):
        raise PricesError("the file must be a mapping with a 'prices:' list")
    try:
        top = _FILE(document)
    except vol.MultipleInvalid as error:
        raise PricesError(_describe(error.errors))
    prices = [_build(i, entry, top.get("currency")) for i, entry in enumerate(top["prices"])]
    names = {p.key: i for i, p in enumerate(prices)}
    for i, p in enumerate(prices):
        if names[p.key] != i:
            raise PricesError("prices[%d] and prices[%d] are both %s" % (i, names[p.key], p.describe()))
    return prices


def load(path):
    return parse(documents.load(path, PricesError))


def overlap(a, b):
    """Do two prices apply to the same usage hour?"""
    same_place = a.service == b.service and (a.region == b.region or "" in (a.region, b.region))
    return same_place and (b.valid_to is None or a.valid_from < b.valid_to) and (a.valid_to is None or b.valid_from < a.valid_to)


def merge(existing, loaded):
    """The price list once ``loaded`` replaces entries of the same key.

    :returns: (new or changed Prices, unchanged count)
    :raises PricesError: naming both prices of the first overlap found.
    """
    by_key = {p.key: p for p in existing}
    changed = [p for p in loaded if by_key.get(p.key) != p]
    result = {**by_key, **{p.key: p for p in loaded}}
    for i, p in enumerate(loaded):
        for other in result.values():
            if other.key != p.key and overlap(p, other):
                origin = "prices[%d] of the file" % loaded.index(other) if other in loaded else "the loaded price"
                raise PricesError("prices[%d]: %s overlaps %s: %s" % (i, p.describe(), origin, other.describe()))
    return changed, len(loaded) - len(changed)
