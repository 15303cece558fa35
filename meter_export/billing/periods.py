"""Billing periods: half-open ``[start, end)`` intervals of UTC instants.

Back-to-back orders share an edge and do not overlap (Distil's half-open
rule, 1e8fc34). A rated hour belongs to the period that contains its start.
"""

import dataclasses
import datetime

from meter_export.billing import errors

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Period:
    start: datetime.datetime
    end: datetime.datetime

    def __post_init__(self):
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError("naive %s %s is ambiguous" % (name, value))
        if self.end <= self.start:
            raise errors.EmptyPeriod("the period [%s, %s) is empty: its end must be after its start" % (iso(self.start), iso(self.end)))

    def contains(self, instant):
        return self.start <= instant < self.end

    def overlaps(self, other):
        return self.start < other.end and other.start < self.end


def iso(instant):
    """ISO 8601 UTC with a Z, seconds precision unless there are microseconds."""
    text = instant.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_instant(text, parameter):
    """A date (``2026-11-01``, midnight UTC) or an ISO 8601 datetime.

    A naive datetime is UTC; an offset is converted to UTC.

    :raises errors.BadParameter: naming ``parameter``.
    """
    if not isinstance(text, str) or not text:
        raise errors.BadParameter(parameter, "expected an ISO 8601 UTC date or datetime such as 2026-11-01 or 2026-11-01T00:00:00Z")
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise errors.BadParameter(parameter, "%r is not an ISO 8601 UTC date or datetime such as 2026-11-01T00:00:00Z" % text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def midnight(now):
    """Today 00:00 UTC: where an order ends by default."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def require_whole_hour(instant, parameter):
    """Orders end on a whole hour, so no rated hour is split between two orders."""
    if instant.minute or instant.second or instant.microsecond:
        raise errors.BadParameter(parameter, "%s is not on a whole hour (rated usage is hourly)" % iso(instant))
    return instant


def next_period(last_end, first_usage, end):
    """The period after the project's last order, up to ``end``.

    It starts at the end of the last order or, for a project never billed,
    at its first rated hour.

    :raises errors.EmptyPeriod: there is nothing to bill up to ``end``.
    """
    start = last_end if last_end is not None else first_usage
    if start is None:
        raise errors.EmptyPeriod("the project has no order and no rated usage: nothing to bill")
    if end <= start:
        since = "the end of its last order" if last_end is not None else "its first rated usage"
        raise errors.EmptyPeriod("end %s must be after %s, %s" % (iso(end), since, iso(start)))
    return Period(start, end)


def check_final(period, final_until):
    """An order bills final hours only.

    :raises errors.NotFinal: saying up to when the data is final.
    """
    if final_until is None:
        raise errors.NotFinal("no rated usage is final yet: no order can be issued")
    if period.end > final_until:
        raise errors.NotFinal("end %s is past the completeness mark: rated usage is final up to %s" % (iso(period.end), iso(final_until)))


def check_not_future(instant, now, parameter):
    if instant > now:
        raise errors.BadParameter(parameter, "%s is in the future (now is %s)" % (iso(instant), iso(now)))
    return instant
