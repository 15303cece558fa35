"""Rated usage: samples become hourly usage, usage meets the price list.

- ``documents``: YAML read with exact decimals (never through a float);
- ``mappings``: the mappings file (Distil's ``meter_mappings`` format);
- ``transformers``: pure functions, one resource's samples in one hour to
  Decimal quantities;
- ``pricelist``: the prices file and the overlap rule (pure);
- ``statements``: the set-based SQL of the transformers that have one;
- ``rater``: rates hours into the usage table (the thin I/O shell).
"""


class RatingError(Exception):
    """Rating input is wrong (mappings, prices) or an hour could not be rated."""
