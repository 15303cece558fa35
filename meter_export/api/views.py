"""The JSON the API returns (and the CLI prints): decimals as strings, ISO 8601 UTC."""

import datetime
import decimal

from meter_export.billing import money
from meter_export.billing import periods


def number(value):
    """An exact decimal's shortest plain text: 24.0000000000 -> "24"."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def amount(value, currency):
    """Money at the currency's minor unit: 1.1500 EUR -> "1.15"."""
    return str(money.round_cost(value, currency))


def line(item, currency):
    result = {
        "resource_id": item.resource_id,
        "service": item.service,
        "unit": item.unit,
        "quantity": number(item.quantity),
        "unit_price": number(item.unit_price),
        "cost": amount(item.cost, currency),
        "kind": item.kind,
    }
    if item.adjusts is not None:
        result["adjusts"] = item.adjusts
    return result


def order(value):
    return {
        "id": value.id,
        "project_id": value.project_id,
        "start": periods.iso(value.period.start),
        "end": periods.iso(value.period.end),
        "issued_at": periods.iso(value.issued_at) if value.issued_at else None,
        "currency": value.currency,
        "total": amount(value.total, value.currency),
        "lines": [line(x, value.currency) for x in value.lines],
    }


def draft(value, final_until):
    result = order(value)
    result["draft"] = True
    result["final_until"] = periods.iso(final_until) if final_until else None
    for item, shown in zip(value.lines, result["lines"], strict=True):
        shown["provisional"] = item.provisional
    return result


def historic(issued, regenerated, difference):
    return {
        "order": order(issued),
        "regenerated": order(regenerated),
        "difference": [line(x, issued.currency) for x in difference],
    }


def orders(values):
    return {"orders": [order(v) for v in values]}


def usage(project_id, period, group_by, rows, with_cost):
    shown = []
    for row in rows:
        item = {k: _plain(v) for k, v in row.items() if k not in ("quantity", "cost", "final")}
        item["quantity"] = number(row["quantity"])
        if with_cost:
            item["cost"] = number(row["cost"])
        item["final"] = row["final"]
        shown.append(item)
    return {
        "project_id": project_id,
        "start": periods.iso(period.start),
        "end": periods.iso(period.end),
        "group_by": group_by,
        "usage": shown,
    }


def _plain(value):
    if isinstance(value, datetime.datetime):
        return periods.iso(value)
    if isinstance(value, decimal.Decimal):
        return number(value)
    return value


def row(mapping):
    """Any database row as JSON values."""
    return {k: _plain(v) for k, v in mapping.items()}
