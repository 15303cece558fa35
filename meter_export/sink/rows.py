"""Turn Samples into rows the database will accept, or into quarantine reasons.

This runs once per sample on the hot path, so it is written for speed: one
pass, local lookups, no per-field function calls on the common case.
"""

import datetime
import json
import math

import orjson

from meter_export.sink import sql
from meter_export.sources import Rejected

UTC = datetime.timezone.utc
MAX_METADATA_BYTES = 65535

# (field index in Sample, name, max length, required)
_STRINGS = (
    (0, "message_id", sql.MESSAGE_ID_LENGTH, True),
    (1, "counter_name", sql.NAME_LENGTH, True),
    (2, "counter_type", sql.TYPE_LENGTH, True),
    (3, "counter_unit", sql.NAME_LENGTH, False),
    (5, "project_id", sql.NAME_LENGTH, False),
    (6, "user_id", sql.NAME_LENGTH, False),
    (7, "resource_id", sql.NAME_LENGTH, False),
    (8, "source", sql.NAME_LENGTH, False),
)


def _string_problem(value, name, limit, required):
    if value is None:
        return "%s is missing" % name if required else None
    if type(value) is not str:
        return "%s is a %s, not a string" % (name, type(value).__name__)
    if required and not value:
        return "%s is empty" % name
    if len(value) > limit:
        return "%s is %d characters, longer than its column (%d)" % (name, len(value), limit)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "%s is not valid UTF-8" % name
    if "\x00" in value:
        return "%s contains a NUL character" % name
    return None


def _timestamp_problem(value, name, required):
    if value is None:
        return "%s is missing" % name if required else None
    if not isinstance(value, datetime.datetime):
        return "%s is a %s, not a datetime" % (name, type(value).__name__)
    if value.tzinfo is None or value.utcoffset() is None:
        return "%s %s has no timezone, so it is ambiguous" % (name, value.isoformat())
    return None


def problem(sample):
    """Why this sample cannot be stored, or None when it can."""
    for index, name, limit, required in _STRINGS:
        reason = _string_problem(sample[index], name, limit, required)
        if reason:
            return reason
    volume = sample.counter_volume
    if type(volume) not in (float, int) or not math.isfinite(volume):
        return "counter_volume %r is not a finite number" % (volume,)
    return _timestamp_problem(sample.timestamp, "timestamp", True) or _timestamp_problem(sample.recorded_at, "recorded_at", False)


def _metadata_json(metadata):
    """JSON text of the metadata; raises ValueError with the reason."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValueError("resource_metadata is a %s, not an object" % type(metadata).__name__)
    try:
        text = orjson.dumps(metadata)
    except TypeError as e:
        raise ValueError("resource_metadata is not JSON-serialisable: %s" % e)
    if len(text) > MAX_METADATA_BYTES:
        raise ValueError("resource_metadata is %d bytes, more than %d" % (len(text), MAX_METADATA_BYTES))
    if b"\\u0000" in text:
        raise ValueError("resource_metadata contains a NUL character")
    return text.decode()


def _payload(sample):
    """The rejected sample as text for the quarantine table, whatever it holds.

    NOTE(sink): the stdlib json and not orjson: it writes NaN and Infinity
    as such (orjson turns them into null, hiding why the sample was refused)
    and escapes lone surrogates instead of failing. This path is rare.
    """
    return json.dumps(sample._asdict(), default=str)


def prepare(items):
    """Split a page into (rows, rejected).

    rows: Sample-shaped tuples, metadata as JSON text, one per message_id (the
    last one wins, so a re-read page resolves deterministically);
    rejected: Rejected values with their reason.
    """
    rows = {}
    rejected = []
    for item in items:
        if type(item) is Rejected:
            rejected.append(item)
            continue
        reason = problem(item)
        if reason is None:
            try:
                rows[item[0]] = item._replace(resource_metadata=_metadata_json(item[11]))
                continue
            except ValueError as e:
                reason = str(e)
        # NOTE(sink): an earlier valid copy of this message_id is kept: the
        # malformed one goes to quarantine, nothing valid is dropped for it.
        rejected.append(Rejected(_payload(item), reason, item[0] if type(item[0]) is str else None))
    return list(rows.values()), rejected
