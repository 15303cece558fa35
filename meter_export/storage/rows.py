"""Turn Samples into rows the database will accept, or into quarantine reasons.

This runs once per sample on the hot path, so it is written for speed: one
pass, local lookups, no per-field function calls on the common case.
"""

import dataclasses
import datetime
import json
import math

import orjson

from meter_export.sources import Rejected
from meter_export.storage import schema

UTC = datetime.UTC
MAX_METADATA_BYTES = 65535
_OPTIONAL = frozenset((str, type(None)))

# (field index in Sample, name, max length, required)
_STRINGS = (
    (0, "message_id", schema.MESSAGE_ID_LENGTH, True),
    (1, "counter_name", schema.NAME_LENGTH, True),
    (2, "counter_type", schema.TYPE_LENGTH, True),
    (3, "counter_unit", schema.NAME_LENGTH, False),
    (5, "project_id", schema.NAME_LENGTH, False),
    (6, "user_id", schema.NAME_LENGTH, False),
    (7, "resource_id", schema.NAME_LENGTH, False),
    (8, "source", schema.NAME_LENGTH, False),
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


def _common(sample):
    """True when the sample is plainly fine: the shape sources produce.

    NOTE(sink): a pre-check made of C-level operations, a third of the cost of
    problem(). False only means "not the common case": problem() then decides
    and gives the reason, so it stays the one statement of the rules.
    Non-ASCII text, an int volume or a non-UTC timezone take that path.
    """
    mid, name, kind, unit, volume, project, user, resource, source, ts, recorded, _ = sample
    if not (type(mid) is str and type(name) is str and type(kind) is str and mid and name and kind):
        return False
    if not _OPTIONAL.issuperset((type(unit), type(project), type(user), type(resource), type(source))):
        return False
    # One string for the NUL and ASCII checks; if it fits a column, each of
    # its parts does too.
    text = "\x01".join((mid, name, kind, unit or "", project or "", user or "", resource or "", source or ""))
    return (
        len(mid) <= schema.MESSAGE_ID_LENGTH
        and len(kind) <= schema.TYPE_LENGTH
        and (len(text) <= schema.NAME_LENGTH or _each_fits(name, unit, project, user, resource, source))
        and text.isascii()
        and "\x00" not in text
        and type(volume) is float
        and math.isfinite(volume)
        and type(ts) is datetime.datetime
        and ts.tzinfo is UTC
        and (recorded is None or (type(recorded) is datetime.datetime and recorded.tzinfo is UTC))
    )


def _each_fits(*names):
    return max(len(n or "") for n in names) <= schema.NAME_LENGTH


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


def _row(sample, metadata):
    return sample[:11] + (metadata,)


@dataclasses.dataclass(frozen=True, slots=True)
class Rows:
    """Valid samples, one per message_id, and their metadata as JSON text.

    Iterating gives each row as a plain tuple in Sample's column order, built
    on the fly; slicing gives Rows (the sink writes and bisects in slices).

    NOTE(bench): two parallel lists, not one new tuple per row: the samples
    stay the source's own objects, so preparing a page allocates no container
    per row. 10,000 new tuples a page made CPython's collector walk each page
    many times: 15-30% of prepare's time, measured with the collector off.
    """

    samples: list
    metadata: list

    def __len__(self):
        return len(self.samples)

    def __iter__(self):
        return map(_row, self.samples, self.metadata)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Rows(self.samples[index], self.metadata[index])
        return _row(self.samples[index], self.metadata[index])


def prepare(items):
    """Split a page into (Rows, rejected).

    Rows hold one sample per message_id (the last one wins, so a re-read page
    resolves deterministically); rejected: Rejected values with their reason.
    """
    # The id() cache below needs every metadata dict alive until the end.
    items = items if isinstance(items, list) else list(items)
    samples, metadata, rejected = [], [], []
    position = {}  # message_id -> index in samples
    # NOTE(bench): a Gnocchi page shares one metadata dict per resource
    # across its (up to 288 a day) samples: encoding it once per dict keeps
    # one JSON string per resource in memory instead of one per row, and
    # saves the dumps (bench/backfill_rss.py). The items list keeps the
    # dicts alive for the whole call, so an id() is not reused meanwhile.
    texts = {}
    for item in items:
        if type(item) is Rejected:
            rejected.append(item)
            continue
        reason = None if _common(item) else problem(item)
        if reason is None:
            try:
                text = texts.get(id(item[11]), texts)
                if text is texts:
                    text = texts[id(item[11])] = _metadata_json(item[11])
            except ValueError as e:
                reason = str(e)
            else:
                at = position.setdefault(item[0], len(samples))
                if at == len(samples):
                    samples.append(item)
                    metadata.append(text)
                else:
                    samples[at] = item
                    metadata[at] = text
                continue
        # NOTE(sink): an earlier valid copy of this message_id is kept: the
        # malformed one goes to quarantine, nothing valid is dropped for it.
        rejected.append(Rejected(_payload(item), reason, item[0] if type(item[0]) is str else None))
    return Rows(samples, metadata), rejected
