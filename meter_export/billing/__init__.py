"""Sales orders: period arithmetic and money (pure), then the operations.

- ``errors``: the refusals an operation can answer with;
- ``periods``: half-open billing periods, parsing of dates, the next period;
- ``money``: the currency's minor unit and the one rounding rule;
- ``lines``: rated sums become order lines, late usage becomes adjustments;
- ``usage``: the one place that reads ``rated_usage`` and the completeness mark;
- ``operations``: order, draft, historic and range over a database.
"""
