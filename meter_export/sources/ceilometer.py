"""Ceilometer v2 API source: every sample of a window, exactly once.

The v2 API has no pagination: ``GET /v2/samples`` is newest-first with a
limit and no tie-breaker, and many samples share one timestamp (a polling
cycle).  Two exact fetchers (see shared/reference/ceilometer-v2-api.md §9):

- ``keyset``: ``POST /v2/query/samples`` ordered by (timestamp, message_id)
  ascending, each page starting strictly after the last row of the previous
  one.  Needs the ``samples:query:complex`` capability (SQL, MongoDB).
- ``desc``: ``GET /v2/samples`` newest first; a full page proves complete
  every row newer than its oldest instant ``tmin``, so the next request
  re-reads ``[start, tmin]`` (``le``); a page that is one instant only
  doubles the limit.

Before a stream's windows are planned, ``census`` counts its samples with
one ``GET /v2/meters/<meter>/statistics`` (and counts them per period with a
second one only when they fill more than a window); a window outside what
it counted costs no request. Pages are de-duplicated one at a time (see
``fetch``), so memory is one page whatever the window.

Timestamps are sent as naive UTC with 6-digit microseconds (the API drops
offsets without converting).  Returned timestamps are naive UTC and become
timezone-aware UTC.  Bodies are parsed with orjson straight from the
client's keystoneauth adapter, skipping the client's Resource objects.

``Filter.raw_query`` extends the query: a list of simple-query items
``{"field", "op", "value"[, "type"]}`` (both strategies; for ``keyset`` they
are translated into complex-query leaves), or, for ``keyset`` only, one
complex-query filter dict such as ``{"=": {"metadata.flavor": "m1"}}``.
"""

import ast
import datetime
import json
import logging
import math
import urllib.parse

import orjson
from ceilometerclient.v2 import client as ceilometer_client
from ceilometerclient.v2 import options as ceilometer_options
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg
from oslo_utils import strutils

from meter_export import sources
from meter_export import utils
from meter_export.sources import http

LOG = logging.getLogger(__name__)

OPTS = [
    # NOTE(ceilometer): 10000 and not 1000: the API's cost is per request as
    # much as per sample; measured here, one day of 34,560 samples synced at
    # 0.45-0.55x a plain client read with 1000, 0.77-0.79x with 10000.
    cfg.IntOpt("page_size", default=10000, min=1, help="Samples asked for per request."),
    cfg.StrOpt(
        "strategy",
        default="auto",
        choices=[
            ("keyset", "POST /v2/query/samples ordered by (timestamp, message_id)"),
            ("desc", "GET /v2/samples newest first, re-reading the oldest instant"),
            ("auto", "keyset if GET /v2/capabilities has samples:query:complex, else desc"),
        ],
        help="How a window is paged through.",
    ),
]

# NOTE(ceilometer): a census (statistics) answer holds about this many periods.
CENSUS_BUCKETS = 100
GONE = "this Ceilometer sends its data to Gnocchi; use [source] driver = gnocchi"
KEYSET_ORDER = orjson.dumps([{"timestamp": "asc"}, {"message_id": "asc"}]).decode()
SIMPLE_TO_COMPLEX = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
SIMPLE_OPS = tuple(SIMPLE_TO_COMPLEX)
# NOTE(ceilometer): the fields the simple query (statistics, GET
# /v2/samples) takes, besides metadata; the complex query takes more
# (counter_unit, counter_volume...), which only the keyset read can send.
SIMPLE_FIELDS = frozenset(("user_id", "project_id", "resource_id", "user", "project", "resource", "meter", "source", "message_id"))
METADATA = ("metadata.", "resource_metadata.")
# The window sets these; an item of the filter would replace its bounds.
WINDOW_FIELDS = ("timestamp", "search_offset")
# NOTE(ceilometer): the API's converters of a typed metadata value, applied
# to the text the client sends. It also knows "datetime", which its SQL
# storage cannot match metadata by (HTTP 501), so it is refused here.
TYPES = {"integer": int, "float": float, "string": str, "boolean": lambda text: strutils.bool_from_string(text, strict=True)}


class _NoProbeClient(ceilometer_client.Client):
    # NOTE(ceilometer): the stock client sends a GET / to the "alarming" and
    # "event" endpoints at construction to detect Aodh and Panko; with a
    # fixed endpoint (auth_type none, admin_token) both probes hit Ceilometer.
    # We never use alarms or events.
    @staticmethod
    def _get_redirect_client(*args, **kwargs):
        return None


# -- mapping (pure) ---------------------------------------------------------


def parse_timestamp(text):
    """The API's naive UTC ISO 8601 (optional microseconds) -> aware UTC.

    :raises ValueError: not a timestamp.
    """
    if not isinstance(text, str):
        raise ValueError("timestamp %r is not a string" % (text,))
    value = utils.parse_utc(text)
    if len(text) <= 10:
        # NOTE(bad-input): fromisoformat reads a date ("2017-01-01",
        # "20170101") as midnight, and every form with a time is longer; a
        # sample without a time of day is quarantined, not moved up to a day.
        raise ValueError("timestamp %r has no time of day" % text)
    return value


def _volume(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("volume %r is not a number" % (value,))
    if not math.isfinite(value):
        raise ValueError("volume %r is not finite" % (value,))
    return float(value)


def to_item(raw):
    """One /v2/samples (or /v2/query/samples) object -> Sample or Rejected."""
    message_id = raw.get("id") if isinstance(raw, dict) else None
    try:
        if not isinstance(raw, dict):
            raise ValueError("sample is a %s, not an object" % type(raw).__name__)
        if not message_id:
            raise ValueError("no message_id")
        return _to_sample(raw, message_id)
    except KeyError as e:
        return _rejected(raw, "%s is missing" % e.args[0], message_id)
    except (ValueError, TypeError) as e:
        return _rejected(raw, str(e), message_id)


def _rejected(raw, reason, message_id=None):
    # NOTE(bad-input): the stdlib json, as sink.rows does: it keeps NaN and
    # Infinity visible and escapes the lone surrogates of invalid UTF-8,
    # where orjson would hide the one and fail on the other.
    payload = json.dumps(raw, default=str)
    return sources.Rejected(payload=payload, reason=reason, message_id=message_id if isinstance(message_id, str) and message_id else None)


def _metadata(value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("metadata is a %s, not an object" % type(value).__name__)
    return dict(value)


def _to_sample(raw, message_id):
    recorded_at = raw.get("recorded_at")
    return sources.Sample(
        message_id=message_id,
        counter_name=raw["meter"],
        counter_type=raw.get("type"),
        counter_unit=raw.get("unit"),
        counter_volume=_volume(raw.get("volume")),
        project_id=raw.get("project_id"),
        user_id=raw.get("user_id"),
        resource_id=raw.get("resource_id"),
        source=raw.get("source"),
        timestamp=parse_timestamp(raw.get("timestamp")),
        recorded_at=parse_timestamp(recorded_at) if recorded_at else None,
        resource_metadata=_metadata(raw.get("metadata")),
    )


def dedupe(items):
    """Drop repeated message_ids; the last one read wins.

    A copy that differs from the one kept is quarantined, not dropped.
    """
    by_id = {}
    anonymous = []
    for item in items:
        if item.message_id:
            earlier = by_id.pop(item.message_id, None)
            if earlier is not None and not _same(earlier, item):
                anonymous.append(_superseded(earlier))
            by_id[item.message_id] = item
        else:
            anonymous.append(item)
    return list(by_id.values()) + anonymous


def _same(a, b):
    """Two reads of one message_id that agree (recorded_at aside).

    NOTE(bad-input): a sample the collector stored twice differs only by
    recorded_at, the time of storage; that is a re-read, not a conflict.
    """
    if type(a) is not type(b):
        return False
    if type(a) is sources.Rejected:
        return a.reason == b.reason
    return a._replace(recorded_at=None) == b._replace(recorded_at=None)


def _superseded(item):
    payload = item.payload if type(item) is sources.Rejected else json.dumps(item._asdict(), default=str)
    reason = "message_id %s was read twice with different content; the later copy was kept" % item.message_id
    return sources.Rejected(payload, reason, item.message_id)


def in_window(item, start, end):
    """The item, or a Rejected when its timestamp is outside [start, end).

    NOTE(bad-input): the server chose the row by its stored timestamp; one
    rendered outside the window asked for (a clock in the future, an offset
    the server never sends) cannot be trusted to belong to any window.
    """
    if type(item) is sources.Rejected or start <= item.timestamp < end:
        return item
    where = "in the future" if item.timestamp > utils.utcnow() else "outside the requested window"
    reason = "timestamp %s is %s [%s, %s)" % (item.timestamp.isoformat(), where, start.isoformat(), end.isoformat())
    return sources.Rejected(json.dumps(item._asdict(), default=str), reason, item.message_id)


# -- query building (pure) --------------------------------------------------


def q_item(field, op, value, type_=""):
    """A simple-query item with every component (the server zips them)."""
    return {"field": field, "op": op, "type": type_, "value": value}


def equality_items(stream):
    items = [q_item("meter", "eq", stream.meter.name)]
    for field in ("project_id", "user_id", "resource_id"):
        value = getattr(stream.filter, field)
        if value is not None:
            items.append(q_item(field, "eq", value))
    return items


def simple_raw_items(raw_query):
    """Filter.raw_query as simple-query items, every component filled in.

    :raises SourceConfigError: an item Ceilometer cannot read as the
        filter means it (see check_raw_item).
    """
    if raw_query is None:
        return []
    if isinstance(raw_query, dict):
        raise sources.SourceConfigError("a complex-query raw_query needs [ceilometer] strategy = keyset")
    if not isinstance(raw_query, list):
        raise sources.SourceConfigError("raw_query must be a list of {field, op, value, type}")
    items = []
    for index, raw in enumerate(raw_query):
        try:
            items.append(check_raw_item(raw))
        except ValueError as e:
            raise sources.SourceConfigError("raw_query[%d]: %s" % (index, e))
    return items


def check_raw_item(raw):
    """One raw_query item as a complete simple-query item.

    :raises ValueError: the message says what is wrong with it.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("field"), str) or "value" not in raw:
        raise ValueError("an item is a mapping of field, op (default eq), value and type (optional)")
    unknown = sorted(set(raw) - {"field", "op", "value", "type"})
    if unknown:
        raise ValueError("unknown key(s) %s" % ", ".join(unknown))
    item = q_item(raw["field"], raw.get("op") or "eq", raw["value"], raw.get("type") or "")
    if item["field"] in WINDOW_FIELDS:
        raise ValueError("field %s: the windows set it; a filter cannot" % item["field"])
    if item["op"] not in SIMPLE_OPS:
        raise ValueError("op %r: one of %s" % (item["op"], ", ".join(SIMPLE_OPS)))
    if item["type"] and item["type"] not in TYPES:
        # NOTE(ceilometer): its SQL storage cannot match metadata by datetime.
        raise ValueError("type %r: one of %s" % (item["type"], ", ".join(TYPES)))
    if not isinstance(item["value"], str | int | float):
        raise ValueError("value %r: a string or a number" % (item["value"],))
    value = simple_value(item)
    if not isinstance(value, str | int | float) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError("value %r reads as %r; give it a type (integer, float, string, boolean)" % (item["value"], value))
    return item


def simple_query_takes(raw_query):
    """Whether the API's simple query takes ``raw_query``.

    NOTE(ceilometer): it takes equalities on SIMPLE_FIELDS and metadata
    only; any other operator or field is an HTTP 400 ("unimplemented
    operator", "unknown argument").
    """
    return not isinstance(raw_query, dict) and _simple_takes(simple_raw_items(raw_query))


def _simple_takes(items):
    return all(i["op"] == "eq" and (i["field"] in SIMPLE_FIELDS or i["field"].startswith(METADATA)) for i in items)


def desc_query(stream, start, upper, upper_op):
    """The q list of one desc page (or of the statistics): [start, upper) or [start, upper].

    :raises SourceConfigError: a raw_query only the complex query takes.
    """
    raw = simple_raw_items(stream.filter.raw_query)
    if not _simple_takes(raw):
        raise sources.SourceConfigError("this raw_query needs [ceilometer] strategy = keyset: the simple query takes equalities only")
    bounds = [q_item("timestamp", "ge", start), q_item("timestamp", upper_op, upper)]
    return bounds + equality_items(stream) + raw


def simple_value(item):
    """The value a simple-query item means, as the API reads it.

    NOTE(ceilometer): the API reads the text the client sends, and only a
    metadata field's by its type. It guesses the type of an untyped metadata
    value (``ast.literal_eval``: "1" is the integer 1, "m1" stays a string)
    and matches it against metadata stored with that type. A complex query
    takes the JSON value as it is, so a keyset read of ``"1"`` would find
    none of the samples the statistics count for it.

    :raises ValueError: the text does not convert to the type.
    """
    text = str(item["value"])
    if not item["field"].startswith(METADATA):
        return text
    if item["type"]:
        return TYPES[item["type"]](text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _complex_leaf(item):
    return {SIMPLE_TO_COMPLEX[item["op"]]: {item["field"].replace("resource_metadata.", "metadata.", 1): simple_value(item)}}


def keyset_filter(stream, start, end, cursor=None):
    """The complex-query filter of one keyset page.

    :param cursor: (timestamp text as the server rendered it, message_id)
        of the last row already read, or None for the first page.
    """
    leaves = [{">=": {"timestamp": start}}, {"<": {"timestamp": end}}]
    leaves += [_complex_leaf(i) for i in equality_items(stream)]
    raw = stream.filter.raw_query
    leaves += [raw] if isinstance(raw, dict) else [_complex_leaf(i) for i in simple_raw_items(raw)]
    if cursor:
        ts, message_id = cursor
        after = {"and": [{"=": {"timestamp": ts}}, {">": {"message_id": message_id}}]}
        leaves.append({"or": [{">": {"timestamp": ts}}, after]})
    return {"and": leaves}


# -- HTTP -------------------------------------------------------------------


def _describe(resp):
    """The message of a non-2xx answer (sources.http picks the error)."""
    status = resp.status_code
    if status == 410:
        return GONE
    if status >= 500 or status in http.TRANSIENT_STATUS:
        return "HTTP %d" % status
    if status in (401, 403):
        return "Ceilometer refused the credentials (HTTP %d: %s); exporting every project needs a token with the admin role" % (
            status,
            _fault(resp),
        )
    return "Ceilometer rejected the query (HTTP %d: %s)" % (status, _fault(resp))


def _check_status(resp):
    """Translate an HTTP status into our errors; 2xx passes."""
    http.check(resp, _describe)


def _fault(resp):
    try:
        error = orjson.loads(resp.content).get("error_message")
    except (orjson.JSONDecodeError, AttributeError):
        return resp.text[:200]
    if isinstance(error, dict):
        return error.get("faultstring") or error.get("description") or str(error)
    return str(error)[:200]


def _expect(body, kind):
    """``body`` when it is a ``kind`` (or kind is None); else TryAgain."""
    if kind is not None and not isinstance(body, kind):
        raise http.TryAgain("the answer is a JSON %s, not a %s" % (type(body).__name__, kind.__name__))
    return body


def held_back(items, boundary):
    """(items to write now, samples at the page's boundary instant to keep).

    NOTE(ceilometer): only the boundary instant can come again on the next
    page (desc re-reads it; keyset may split its tie group), so only its
    samples need remembering to de-duplicate: memory is one page.
    """
    if boundary is None:
        return items, []
    keep = [i for i in items if type(i) is sources.Sample and i.timestamp == boundary]
    return ([i for i in items if type(i) is not sources.Sample or i.timestamp != boundary], keep) if keep else (items, [])


def census_span(rows, start, end):
    """The one bucket of a statistics answer without a period, or none.

    It runs from the first sample to one second past the last (the answer
    gives their instants; the second is a margin for a timestamp rendered
    coarser than it is stored). NOTE(ceilometer): the drivers group by unit
    even without groupby: a meter stored with two units answers two rows,
    in no order, and the bucket spans them all.
    """
    rows = [r for r in rows if r["count"]]
    if not rows:
        return ()
    first = min(parse_timestamp(r["duration_start"]) for r in rows)
    last = max(parse_timestamp(r["duration_end"]) for r in rows)
    return ((max(start, first), min(end, last + datetime.timedelta(seconds=1)), sum(int(r["count"]) for r in rows)),)


def census_periods(rows):
    """The buckets (start, end, count) of a statistics answer per period, in time order."""
    return tuple(sorted((parse_timestamp(r["period_start"]), parse_timestamp(r["period_end"]), int(r["count"])) for r in rows))


class CeilometerSource(sources.SourceDriver):
    """Reads one meter's samples of a window from the Ceilometer v2 API."""

    def __init__(self, conf, shutdown=None):
        super().__init__(conf, shutdown)
        self._client = None
        self._strategy = None
        self._sleep = None  # tests replace the backoff's wait

    # -- connection ---------------------------------------------------------

    @property
    def client(self):
        """python-ceilometerclient over a keystoneauth session, built lazily."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self):
        creds = self.conf[sources.CREDENTIALS_GROUP]
        session = sources.keystone_session(self.conf)
        return _NoProbeClient(session=session, interface=creds.interface, region_name=creds.region_name)

    def close(self):
        self._client = None

    def _request(self, method, url, body=None, expect=None):
        """One request with retries; returns the decoded JSON body."""
        try:
            for attempt in http.retrying(http.TryAgain, self.conf.source.max_retries, self.shutdown, self._sleep):
                with attempt:
                    return _expect(self._request_once(method, url, body), expect)
        except http.TryAgain as e:
            raise sources.SourceUnavailable(
                "%s %s failed after %d retries: %s" % (method, url.split("?")[0], self.conf.source.max_retries, e)
            )

    def _request_once(self, method, url, body):
        kwargs = {"headers": {"Accept": "application/json"}, "raise_exc": False}
        if body is not None:
            kwargs["json"] = body
        try:
            # NOTE(ceilometer): the client's adapter is a LegacyJsonAdapter,
            # which would decode every body with the stdlib json; calling the
            # plain Adapter.request on it keeps its session, endpoint and
            # headers and leaves the body to orjson.
            self.requests += 1
            resp = ks_adapter.Adapter.request(self.client.http_client, url, method, **kwargs)
        except ks_exc.SSLError as e:
            raise sources.SourceConfigError("TLS failure talking to Ceilometer: %s" % e)
        except ks_exc.ConnectionError as e:
            raise http.TryAgain(str(e))
        except ks_exc.HttpError as e:
            # NOTE(ceilometer): raised by the auth plugin (keystone answering).
            if (e.http_status or 0) >= 500:
                raise http.TryAgain(str(e))
            raise sources.SourceConfigError("keystone refused the credentials: %s" % e)
        except (ks_exc.EndpointNotFound, ks_exc.AuthorizationFailure, ks_exc.MissingAuthPlugin, ks_exc.DiscoveryFailure) as e:
            raise sources.SourceConfigError("cannot find or authenticate to Ceilometer: %s" % e)
        _check_status(resp)
        return http.decode(resp.content)

    # -- strategy -----------------------------------------------------------

    def strategy(self):
        """The configured strategy, or for auto what the capabilities allow."""
        if self._strategy is None:
            wanted = self.conf.ceilometer.strategy
            if wanted == "auto":
                caps = self._request("GET", "/v2/capabilities") or {}
                complex_ok = bool((caps.get("api") or {}).get("samples:query:complex"))
                wanted = "keyset" if complex_ok else "desc"
                LOG.info("Ceilometer complex query %s: using the %s strategy", "available" if complex_ok else "unavailable", wanted)
            self._strategy = wanted
        return self._strategy

    # -- fetching -----------------------------------------------------------

    def fetch(self, stream, start, end, census=None):
        """Yield pages of every sample with start <= timestamp < end.

        NOTE(ceilometer): page by page: a message_id read twice within a
        page, or at the instant two pages share (re-read tie groups, samples
        stored twice), comes out once, the last read winning; the samples of
        that instant are held back until the next page. Memory is one page,
        whatever the window.
        """
        if census is not None and census.start <= start and end <= census.end:
            if not any(b_start < end and b_end > start for b_start, b_end, _ in census.buckets):
                return  # NOTE(ceilometer): empty when counted: no request
        pages = {"keyset": self._keyset_pages, "desc": self._desc_pages}[self.strategy()]
        held = []
        for rows, boundary in pages(stream, utils.isoformat(start), utils.isoformat(end)):
            items, held = held_back(dedupe(held + [in_window(to_item(raw), start, end) for raw in rows]), boundary)
            LOG.debug("%s [%s, %s): a page of %d rows, %d items held back", stream, start, end, len(rows), len(held))
            if items:
                yield items

    def census(self, stream, start, end):
        """Where the stream's samples lie in [start, end): one request, or two.

        First ``GET /v2/meters/<meter>/statistics`` without a period: the
        count and the first and last instants, one bucket. Only when that is
        more than ``[sync] window_samples`` are the samples counted again per
        period of whole hours, between those instants, in as few periods as
        the windows need. None when the filter's raw_query is beyond the
        statistics' simple query (a complex query, or an item other than an
        equality, which only the keyset read takes): every window is read.

        NOTE(ceilometer): 9.0.7's SQL driver runs one query per period (it
        cannot group by time portably), each as costly as a read of an empty
        window, data or not: on the bench's 259,200 samples, 90 periods cost
        the server 3.1 CPU-seconds per meter, and no period 0.13
        (doc/benchmarks-e2e.rst). So a span without data inside the bucket
        costs one request per window that falls in it, fewer than the periods
        that would have shown it empty.
        """
        if not simple_query_takes(stream.filter.raw_query):
            return None
        try:
            buckets = census_span(self._statistics(stream, start, end), start, end)
            count = sum(c for _, _, c in buckets)
            most = self.conf.sync.window_samples
            if count > most:
                ((first, last, _),) = buckets
                periods = min(CENSUS_BUCKETS, 4 * math.ceil(count / most))
                width = 3600 * max(1, math.ceil((last - first).total_seconds() / periods / 3600))
                buckets = census_periods(self._statistics(stream, first, last, width))
        except (ValueError, TypeError, KeyError) as e:
            LOG.warning("%s: the statistics answer has an unknown shape (%s); every window is read", stream, e)
            return None
        return sources.Census(start, end, buckets)

    def _statistics(self, stream, start, end, period=None):
        """The rows of one ``GET /v2/meters/<meter>/statistics`` in [start, end)."""
        q = [i for i in desc_query(stream, utils.isoformat(start), utils.isoformat(end), "lt") if i["field"] != "meter"]
        path = "/v2/meters/%s/statistics" % urllib.parse.quote(stream.meter.name, safe="")
        return self._request("GET", ceilometer_options.build_url(path, q, ["period=%d" % period] if period else []), expect=list)

    def _keyset_pages(self, stream, start, end):
        size = self.conf.ceilometer.page_size
        cursor = None
        while True:
            body = {"filter": orjson.dumps(keyset_filter(stream, start, end, cursor)).decode(), "orderby": KEYSET_ORDER, "limit": size}
            rows = self._request("POST", "/v2/query/samples", body, expect=list)
            if len(rows) < size:
                yield rows, None
                return
            cursor = keyset_cursor(rows[-1], start, end)
            yield rows, utils.parse_utc(cursor[0])

    def _desc_pages(self, stream, start, end):
        size = limit = self.conf.ceilometer.page_size
        upper, upper_op = end, "lt"
        while True:
            url = ceilometer_options.build_url("/v2/samples", desc_query(stream, start, upper, upper_op), ["limit=%d" % limit])
            rows = self._request("GET", url, expect=list)
            if len(rows) < limit:
                yield rows, None
                return
            instants = {_sort_key(r) for r in rows}
            oldest = min(instants)
            yield rows, oldest
            one_instant = len(instants) == 1
            # NOTE(ceilometer): every row newer than the page's oldest instant
            # was read; re-read that instant and what is older (le).  A page
            # that is one instant only must grow to hold the whole group.
            limit = limit * 2 if one_instant else size
            upper, upper_op = utils.isoformat(oldest), "le"


def keyset_cursor(last, start, end):
    """(timestamp, message_id) after which the next keyset page starts.

    NOTE(ceilometer): the server re-parses the timestamp it rendered into the
    same microsecond, so equality on it is exact.
    :param start, end: the window, as utils.isoformat text.
    :raises SourceUnavailable: the row cannot bound a page (no timestamp, or
        one outside the window); paging past it could skip the rest of the
        window, so the window fails instead.
    """
    try:
        timestamp = utils.isoformat(parse_timestamp(last["timestamp"]))
        if not start <= timestamp < end:
            raise ValueError("timestamp %s is outside the window" % timestamp)
        return timestamp, last.get("id") or ""
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise sources.SourceUnavailable("cannot page past the last row of a full page (%s): %.300r" % (e, last))


def _sort_key(raw):
    try:
        return parse_timestamp(raw.get("timestamp"))
    except (ValueError, AttributeError):
        # NOTE(ceilometer): an unparseable timestamp cannot bound a page; it
        # sorts last so it never becomes the re-read bound (it is Rejected).
        return utils.parse_utc("9999-12-31T00:00:00")
