"""How the CLI prints an answer: table, json (exactly the API's object) or csv."""

import csv
import io
import json

import prettytable

FORMATS = ("table", "json", "csv")
LINE_COLUMNS = ("resource_id", "service", "unit", "quantity", "unit_price", "cost", "kind", "adjusts")
ORDER_COLUMNS = ("id", "project_id", "start", "end", "currency")


def render(answer, fmt):
    if fmt == "json":
        return json.dumps(answer, indent=2)
    rows, columns = _rows(answer)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    return _table(answer, rows, columns)


def _orders(answer):
    """[(section, order)] of any answer holding orders."""
    if "orders" in answer:
        return [("order", o) for o in answer["orders"]]
    if "regenerated" in answer:
        return [("issued", answer["order"]), ("regenerated", answer["regenerated"])]
    if "lines" in answer:
        return [("draft" if answer.get("draft") else "order", answer)]
    return []


def _rows(answer):
    if "usage" in answer:
        rows = answer["usage"]
        columns = list(rows[0]) if rows else ["quantity"]
        return rows, columns
    rows = []
    for section, order in _orders(answer):
        head = {c: order.get(c) for c in ORDER_COLUMNS}
        rows += [dict(head, section=section, **line) for line in order["lines"]]
        rows.append(dict(head, section=section, kind="total", cost=order["total"]))
    for line in answer.get("difference", []):
        rows.append(dict({c: answer["order"].get(c) for c in ORDER_COLUMNS}, section="difference", **line))
    return rows, ["section", *ORDER_COLUMNS, *LINE_COLUMNS]


def _table(answer, rows, columns):
    if "usage" in answer:
        return "%s usage of %s, [%s, %s)\n%s" % (
            answer["group_by"],
            answer["project_id"],
            answer["start"],
            answer["end"],
            _grid(rows, columns),
        )
    parts = []
    for section, order in _orders(answer):
        title = "%s %s of %s, [%s, %s), total %s %s" % (
            section,
            order["id"] if order["id"] is not None else "(not stored)",
            order["project_id"],
            order["start"],
            order["end"],
            order["total"],
            order["currency"],
        )
        parts.append(title + "\n" + _grid(order["lines"], LINE_COLUMNS))
    if "difference" in answer:
        parts.append("difference per line\n" + _grid(answer["difference"], LINE_COLUMNS))
    return "\n\n".join(parts) if parts else "no orders"


def _grid(rows, columns):
    table = prettytable.PrettyTable(list(columns))
    for column in columns:
        table.align[column] = "r" if column in ("quantity", "unit_price", "cost") else "l"
    for row in rows:
        table.add_row(["" if row.get(c) is None else row.get(c) for c in columns])
    return table.get_string()
