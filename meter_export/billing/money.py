"""The one rounding rule of a bill: each line once, to the minor unit, half-even.

``rated_usage`` stays unrounded. A line's cost is the exact sum of its rated
costs rounded once, to the currency's minor unit, half to even (banker's
rounding: 0.125 EUR -> 0.12, 0.135 EUR -> 0.14); an order's total is the sum
of its rounded lines, never rounded again, so a printed order adds up.
"""

import decimal
import re

# NOTE(billing): ISO 4217 currencies whose minor unit is not the cent; every
# other well-formed code has two decimals.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
}
_CODE = re.compile(r"^[A-Z]{3}$")


def exponent(currency):
    """Decimals of the currency's minor unit.

    :raises ValueError: not an ISO 4217 code (three capital letters).
    """
    if not isinstance(currency, str) or not _CODE.match(currency):
        raise ValueError("%r is not an ISO 4217 currency code such as EUR" % (currency,))
    return _EXPONENTS.get(currency, 2)


def minor_unit(currency):
    return decimal.Decimal(1).scaleb(-exponent(currency))


def round_cost(amount, currency):
    """``amount`` (a Decimal) rounded half-even to the currency's minor unit."""
    if not isinstance(amount, decimal.Decimal):
        raise TypeError("money must be a Decimal, not %s" % type(amount).__name__)
    return amount.quantize(minor_unit(currency), rounding=decimal.ROUND_HALF_EVEN)


def to_decimal(value):
    """A Decimal from a database value or text; never through a float's repr."""
    if value is None or isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, float):
        # NOTE(billing): SQLite may hand back a REAL; its shortest repr is the
        # value that was stored, which is what Decimal(str()) keeps.
        return decimal.Decimal(repr(value))
    return decimal.Decimal(str(value))
