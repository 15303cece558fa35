"""YAML documents whose numbers are exact decimals.

PyYAML turns ``0.1`` into a float before anyone sees its text; here a float
scalar becomes ``Decimal`` of its text instead, so ``price: 0.1`` and
``price: "0.1"`` are the same exact value.
"""

import decimal

import yaml


class _ExactLoader(yaml.SafeLoader):
    pass


def _exact_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        # NOTE(rating): .inf, .nan and 1:30 (sexagesimal) are no amounts.
        return text
    return value


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)


def load(path, error):
    """The parsed document of ``path``; ``error(message)`` is raised on failure."""
    try:
        with open(path) as f:
            return yaml.load(f, Loader=_ExactLoader)  # noqa: S506 (a SafeLoader subclass)
    except OSError as e:
        raise error("cannot read %s: %s" % (path, e.strerror))
    except yaml.YAMLError as e:
        raise error("%s is not valid YAML: %s" % (path, e))


def to_decimal(value):
    """An exact Decimal of a YAML value (int, Decimal or numeric text); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, decimal.Decimal, str)):
        raise ValueError("%r is not a number" % (value,))
    try:
        result = decimal.Decimal(value.strip() if isinstance(value, str) else value)
    except decimal.InvalidOperation:
        raise ValueError("%r is not a number" % (value,))
    if not result.is_finite():
        raise ValueError("%r is not a finite number" % (value,))
    return result
