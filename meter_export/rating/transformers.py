"""Transformers: one resource's samples in one hour to Decimal quantities.

Pure functions over values. Each takes the ``points`` of the period
``[start, end)`` in time order, the ``carried`` point (the last one before
``start``, or None) and the mapping's Config, and returns ``{key: Decimal}``:
key None is the mapping's own service, any other key a service name (the
uptime transformer's flavors). An empty dict means no usage at all.

Quantities are rounded once, half away from zero, to 12 decimal places (the
usage table's scale), as the databases do when the same transformer runs in
SQL (rating/statements.py).
"""

import dataclasses
import datetime
import decimal

SCALE = 12
QUANTUM = decimal.Decimal(1).scaleb(-SCALE)
HOUR_SECONDS = decimal.Decimal(3600)
TIME_WEIGHTED, DISTIL_2024 = "time-weighted", "distil-2024"


@dataclasses.dataclass(frozen=True)
class Point:
    timestamp: datetime.datetime
    volume: decimal.Decimal
    metadata: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Config:
    """transformer_config; only uptime has settings."""

    tracked_states: tuple = ()
    state_sources: tuple = ("status", "state")
    flavor_sources: tuple = ("flavor_name", "instance_type")
    prefix: str = ""
    split_by_flavor: bool = True
    mode: str = TIME_WEIGHTED


def quantize(value):
    return decimal.Decimal(value).quantize(QUANTUM, rounding=decimal.ROUND_HALF_UP)


def _volumes(points):
    return [p.volume for p in points]


def t_max(points, start, end, carried, config):
    return {None: quantize(max(_volumes(points)))}


def t_min(points, start, end, carried, config):
    return {None: quantize(min(_volumes(points)))}


def t_sum(points, start, end, carried, config):
    return {None: quantize(sum(_volumes(points)))}


def t_mean(points, start, end, carried, config):
    return {None: quantize(sum(_volumes(points)) / len(points))}


def t_last(points, start, end, carried, config):
    return {None: quantize(points[-1].volume)}


def t_numbool(points, start, end, carried, config):
    return {None: quantize(1 if any(v > 0 for v in _volumes(points)) else 0)}


def t_delta(points, start, end, carried, config):
    """Increase of a cumulative counter; a drop is a reset counted from zero.

    With no carried point the first sample only sets the base: the increase
    before it belongs to an hour that has no sample to measure it from.
    """
    previous = carried.volume if carried else None
    total = decimal.Decimal(0)
    for v in _volumes(points):
        if previous is not None:
            total += v - previous if v >= previous else v
        previous = v
    return {None: quantize(total)}


def _first(metadata, sources):
    for key in sources:
        if metadata.get(key) not in (None, ""):
            return str(metadata[key])
    return None


def _state(point, config):
    return (_first(point.metadata, config.state_sources) or "").upper()


def _flavor(point, config):
    flavor = _first(point.metadata, config.flavor_sources) if config.split_by_flavor else None
    return None if flavor is None else config.prefix + flavor


def _seconds(delta):
    return decimal.Decimal(delta.days * 86400 + delta.seconds) + decimal.Decimal(delta.microseconds).scaleb(-6)


def t_uptime(points, start, end, carried, config):
    if config.mode == DISTIL_2024:
        return _uptime_distil(points, start, end, config)
    tracked = {s.upper() for s in config.tracked_states}
    timeline = ([carried] if carried else []) + list(points)
    seconds = {}
    for point, following in zip(timeline, timeline[1:] + [None], strict=True):
        # NOTE(rating): a state holds from its sample until the next one (or
        # the end of the hour); the carried sample's state fills the start.
        held = min(following.timestamp if following else end, end) - max(point.timestamp, start)
        if held > datetime.timedelta(0) and _state(point, config) in tracked:
            key = _flavor(point, config)
            seconds[key] = seconds.get(key, decimal.Decimal(0)) + _seconds(held)
    return {k: quantize(s / HOUR_SECONDS) for k, s in seconds.items()}


def _uptime_distil(points, start, end, config):
    """Distil 2024: the whole period if any sample is tracked, split equally between flavors."""
    tracked = {s.upper() for s in config.tracked_states}
    flavors = {_flavor(p, config) for p in points if _state(p, config) in tracked}
    if config.split_by_flavor:
        flavors.discard(None)  # NOTE(rating): Distil ignores samples without a flavor
    if not flavors:
        return {}
    share = _seconds(end - start) / HOUR_SECONDS / len(flavors)
    return {f: quantize(share) for f in flavors}


TRANSFORMERS = {
    "max": t_max,
    "min": t_min,
    "sum": t_sum,
    "mean": t_mean,
    "last": t_last,
    "delta": t_delta,
    "numbool": t_numbool,
    "uptime": t_uptime,
}
# Those rating/statements.py runs in the database; delta needs the carried point.
SET_BASED = frozenset({"max", "min", "sum", "mean", "last", "delta", "numbool"})
NEEDS_CARRIED = frozenset({"delta", "uptime"})


def transform(name, points, start, end, carried=None, config=None):
    """Quantities of one resource in [start, end); {} without points in it."""
    if not points:
        return {}
    return TRANSFORMERS[name](points, start, end, carried, config or Config())


_UPTIME_KEYS = {
    "tracked_states": (list, tuple),
    "state_sources": (list, tuple),
    "flavor_sources": (list, tuple),
    "prefix": (str,),
    "split_by_flavor": (bool,),
    "mode": (str,),
}


def make_config(name, settings):
    """The Config of a transformer_config dict; ValueError names the bad key."""
    allowed = _UPTIME_KEYS if name == "uptime" else {}
    for key, value in settings.items():
        if key not in allowed:
            raise ValueError("%s: unknown for transformer %s (it takes: %s)" % (key, name, ", ".join(sorted(allowed)) or "nothing"))
        if not isinstance(value, allowed[key]) or (allowed[key] == (list, tuple) and not all(isinstance(v, str) for v in value)):
            raise ValueError("%s: must be %s" % (key, "a list of text" if allowed[key] == (list, tuple) else allowed[key][0].__name__))
    if name == "uptime" and not settings.get("tracked_states"):
        raise ValueError("tracked_states: required for transformer uptime (e.g. [active, paused])")
    if settings.get("mode", TIME_WEIGHTED) not in (TIME_WEIGHTED, DISTIL_2024):
        raise ValueError("mode: must be %s or %s" % (TIME_WEIGHTED, DISTIL_2024))
    typed = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return Config(**typed)
