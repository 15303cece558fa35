"""How the CLI prints an order: json as the API's object, a table, csv rows."""

import json

from meter_export import formats

ORDER = {
    "id": 3,
    "project_id": "p1",
    "start": "2026-10-01T00:00:00Z",
    "end": "2026-10-02T00:00:00Z",
    "issued_at": "2026-10-02T01:00:00Z",
    "currency": "EUR",
    "total": "1.20",
    "lines": [
        {
            "resource_id": "vm-1",
            "service": "m1.small",
            "unit": "hour",
            "quantity": "24",
            "unit_price": "0.048",
            "cost": "1.15",
            "kind": "usage",
        },
        {
            "resource_id": "vm-1",
            "service": "m1.small",
            "unit": "hour",
            "quantity": "1",
            "unit_price": "0.048",
            "cost": "0.05",
            "kind": "adjustment",
            "adjusts": 2,
        },
    ],
}


def test_json_is_the_object_itself():
    assert json.loads(formats.render(ORDER, "json")) == ORDER


def test_table_has_a_header_with_the_total_and_one_row_per_line():
    text = formats.render({"orders": [ORDER]}, "table")
    assert "order 3 of p1, [2026-10-01T00:00:00Z, 2026-10-02T00:00:00Z), total 1.20 EUR" in text
    assert text.count("vm-1") == 2 and "adjustment" in text


def test_csv_one_row_per_line_then_the_total():
    rows = formats.render(ORDER, "csv").splitlines()
    assert rows[0] == "section,id,project_id,start,end,currency,resource_id,service,unit,quantity,unit_price,cost,kind,adjusts"
    assert rows[2].endswith("1,0.048,0.05,adjustment,2") and rows[3].endswith(",1.20,total,")
    assert len(rows) == 4


def test_historic_shows_issued_regenerated_and_difference():
    answer = {"order": ORDER, "regenerated": dict(ORDER, id=3, total="1.25"), "difference": [dict(ORDER["lines"][1], kind="difference")]}
    text = formats.render(answer, "table")
    assert text.startswith("issued 3") and "regenerated 3" in text and "difference per line" in text
    assert [r.split(",")[0] for r in formats.render(answer, "csv").splitlines()[1:]] == ["issued"] * 3 + ["regenerated"] * 3 + [
        "difference"
    ]
