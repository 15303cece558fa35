"""Gnocchi source driver: aggregated measures of a filter's resources.

Read path of one stream (filter x meter) in a pass:

0. the census (``census``), once per pass and stream: one ``POST
   /v1/aggregates?groupby=id`` of ``(resample count <width> (metric <meter>
   <agg>))`` over the filter's search and the whole span to read, which
   counts each resource's points per bucket. When it is empty, that one
   request is the whole pass: no search, no read. The pipeline plans its
   windows from it (checkpoint.plan) and hands it back to ``fetch``;

then per window:

1. ``POST /v1/search/resource/<type>`` pages (id order, marker) of the
   resources matching the filter, once per pass per filter, for all the
   streams of the pass (``memo``, shared by a sources.DriverPool);
2. each resource's metric id for the meter; its unit and archive policy come
   from ``/v1/metric`` and are cached for the life of the driver (Gnocchi
   never changes a metric's unit or policy granularities);
3. ``POST /v1/aggregates`` with ``(metric (<id> <agg>) ...)`` for chunks of
   metrics sharing a granularity, sized by the points the census counted in
   the window: at most ``[gnocchi] points_per_request`` points and
   ``metrics_per_request`` metrics; a metric the census shows empty in the
   window is not asked for, and a window with none costs no request.  One
   page of Samples is yielded per request, so memory stays bounded by it.

NOTE(gnocchi): one aggregates call per chunk rather than one GET of measures
per metric: measured on the real server it is 3-6x faster (fewer requests,
no per-request auth and policy checks).  The body is decoded with orjson,
not gnocchiclient, whose per-point datetime conversion is thrown away here.

Mapping choices:

- ``message_id`` is ``uuid5(NAMESPACE, "<metric id>/<granularity s>/
  <aggregation>/<bucket start isoformat>")``: re-reading a bucket gives the
  same id, so a late-filled bucket overwrites its earlier value in the sink.
- ``resource_metadata`` is the resource as Gnocchi returns it NOW (its
  current revision, not the one at the sample's time) minus ``metrics``,
  ``revision_start``/``revision_end`` (they change on every PATCH and would
  make identical samples differ) and the ids already in their own columns
  (``id``, ``project_id``, ``user_id``).  It keeps ``type``, ``started_at``,
  ``ended_at``, ``original_resource_id``, ``creator``, ``created_by_*`` and
  the type's own attributes (flavor_id, display_name, ...).
"""

import datetime
import functools
import hashlib
import json
import logging
import math
import typing
import uuid

import orjson
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg

from meter_export import sources
from meter_export import utils
from meter_export.sources import http

LOG = logging.getLogger(__name__)

UTC = datetime.UTC

OPTS = [
    cfg.StrOpt(
        "endpoint_override",
        help="Gnocchi URL to use instead of the one found in the catalog "
        "([service_credentials] interface and region_name pick it otherwise).",
    ),
    cfg.IntOpt(
        "metrics_per_request",
        default=1000,
        min=1,
        max=10000,
        help="Most metrics read by one /v1/aggregates request (see points_per_request).",
    ),
    cfg.IntOpt(
        "points_per_request",
        default=10000,
        min=100,
        help="Most points one /v1/aggregates request is sized for, by the census taken at the "
        "start of the pass (or, without one, by the window's length): each request becomes "
        "one page of samples, written while the next one is read, so this bounds memory per "
        "stream read at once (measured with 10000 and 3 streams: peak RSS 108 MB for 518,400 "
        "points, 114 MB for twice that). Gnocchi's cost is mostly per metric (about 6.5 ms "
        "for 432 points here) and little per request (about 6 ms), and each metric is still "
        "read once per window: smaller pages cost few extra requests and let the first write "
        "start sooner.",
    ),
    cfg.IntOpt(
        "resources_per_page",
        default=1000,
        min=1,
        max=1000,
        help="Resources per search request (Gnocchi caps it at its api.max_limit, 1000 by default).",
    ),
]


# NOTE(gnocchi): fixed forever: changing it changes every message_id and
# therefore duplicates every sample already exported.
NAMESPACE = uuid.UUID("6f1d8f5e-4b8e-5a61-9d1c-3b7c2f0a9e41")

METADATA_EXCLUDED = frozenset({"id", "project_id", "user_id", "metrics", "revision_start", "revision_end"})

# NOTE(gnocchi): how a stream learns its metrics' units and policies, first
# pass only (they are cached). Measured on 4.7.1 (doc/benchmarks-e2e.rst): a
# GET of one metric costs about 20 ms, a page of the listing of every metric
# of a name about 300 ms when full, as much as 15 GETs. Above 15 unknown
# metrics the first page is worth it: in a cloud with fewer than
# METRIC_PAGE metrics of that name it finds them all in one request. Further
# pages only while more than LIST_BY_NAME_ABOVE are still unknown; the rest
# are fetched one GET each.
LIST_FIRST_PAGE_ABOVE = 15
LIST_BY_NAME_ABOVE = 50
METRIC_PAGE = 1000

# NOTE(gnocchi): a census answer holds at most about this many buckets per
# metric; the bucket is a whole number of hours.
CENSUS_BUCKETS = 100

_HEADERS = {"Accept": "application/json"}
MATCH_ALL = {">=": {"started_at": "1970-01-01T00:00:00"}}

_RETRYABLE = (http.TryAgain, ks_exc.ConnectionError, ks_exc.RetriableConnectionFailure, ks_exc.HttpServerError)


class MetricInfo(typing.NamedTuple):
    unit: typing.Optional[str]
    granularities: typing.Tuple[float, ...]  # seconds, finest first
    aggregation_methods: typing.FrozenSet[str]
    archive_policy: str


class Target(typing.NamedTuple):
    """Everything a point of one metric needs to become a Sample."""

    metric_id: str
    granularity: float
    aggregation: str
    counter_name: str
    counter_type: str
    counter_unit: typing.Optional[str]
    project_id: typing.Optional[str]
    user_id: typing.Optional[str]
    resource_id: str
    source: str
    resource_metadata: dict


# -- pure helpers -------------------------------------------------------------


def duration_seconds(value):
    """Seconds of a Gnocchi timedelta ("0:05:00", "1 day, 0:00:00") or number."""
    if isinstance(value, (int, float)):
        return float(value)
    days, _, clock = value.rpartition(",") if "day" in value else ("", "", value)
    hours, minutes, seconds = clock.strip().split(":")
    whole_days = int(days.split()[0]) if days else 0
    return whole_days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def format_granularity(seconds):
    """300.0 -> "300", 0.5 -> "0.5": the form used in message ids and queries."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def message_id(metric_id, granularity, aggregation, timestamp):
    """``str(uuid.uuid5(NAMESPACE, "<metric>/<granularity>/<aggregation>/<iso>"))``."""
    return _finish_id(_id_prefix(metric_id, granularity, aggregation), timestamp.astimezone(UTC).isoformat())


def _id_prefix(metric_id, granularity, aggregation):
    key = "%s/%s/%s/" % (metric_id, format_granularity(granularity), aggregation)
    return hashlib.sha1(NAMESPACE.bytes + key.encode(), usedforsecurity=False)


def _finish_id(prefix, iso):
    # NOTE(gnocchi): uuid.uuid5() + str() cost 20 us a point, most of the
    # mapping time; hashing the per-metric prefix once and formatting the
    # hex by hand gives the same text (checked by a unit test) 4x faster.
    digest = prefix.copy()
    digest.update(iso.encode())
    x = digest.hexdigest()
    return "%s-%s-5%s-%s%s-%s" % (x[:8], x[8:12], x[13:16], "89ab"[int(x[16], 16) & 3], x[17:20], x[20:32])


@functools.lru_cache(maxsize=8192)
def parse_timestamp(text):
    """(aware UTC datetime, its isoformat) of a Gnocchi timestamp.

    Cached: the metrics of a page share their bucket timestamps.

    :raises ValueError, TypeError, AttributeError: not an ISO 8601 string,
        or a date without a time of day.
    """
    value = utils.parse_utc(text)
    if len(text) <= 10:
        raise ValueError("no time of day")  # NOTE(bad-input): a date, not midnight
    return value, value.isoformat()


def resource_metadata(resource):
    return {k: v for k, v in resource.items() if k not in METADATA_EXCLUDED}


def metric_info(metric):
    """MetricInfo of a /v1/metric item (archive policy embedded)."""
    policy = metric["archive_policy"]
    granularities = sorted(duration_seconds(d["granularity"]) for d in policy["definition"])
    return MetricInfo(metric.get("unit"), tuple(granularities), frozenset(policy["aggregation_methods"]), policy["name"])


def search_query(flt):
    """Gnocchi search body of a Filter: equalities AND-ed with raw_query."""
    conditions = [
        {"=": {attr: value}}
        for attr, value in (("project_id", flt.project_id), ("user_id", flt.user_id), ("id", flt.resource_id))
        if value is not None
    ]
    if flt.raw_query:
        conditions.append(flt.raw_query)
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"and": conditions}


def pick_granularity(meter, info, metric_id):
    """The granularity to read, checked against the metric's archive policy.

    :raises SourceConfigError: the policy lacks it or the aggregation method.
    """
    method = meter.aggregation.rpartition(":")[2]  # "rate:mean" is computed from "mean"
    if method not in info.aggregation_methods:
        raise sources.SourceConfigError(
            "meter %s: aggregation %r is not kept by archive policy %r of metric %s (it keeps %s)"
            % (meter.name, meter.aggregation, info.archive_policy, metric_id, ", ".join(sorted(info.aggregation_methods)))
        )
    if meter.granularity is None:
        return info.granularities[0]
    if float(meter.granularity) not in info.granularities:
        raise sources.SourceConfigError(
            "meter %s: granularity %ss is not in archive policy %r of metric %s"
            % (meter.name, meter.granularity, info.archive_policy, metric_id)
        )
    return float(meter.granularity)


def _rejected(point, target, reason, mid=None):
    payload = {
        "point": point,
        "metric_id": target.metric_id,
        "resource_id": target.resource_id,
        "meter": target.counter_name,
        "granularity": target.granularity,
        "aggregation": target.aggregation,
    }
    return sources.Rejected(orjson.dumps(payload, default=str).decode(), reason, mid)


def _value(raw):
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    return float(raw) if math.isfinite(raw) else None


# NOTE(bench): a NamedTuple's __new__ is Python code around tuple.__new__;
# calling the latter directly builds the same Sample in a third of the
# time (12% of the process's busy time in a profiled catch-up).
_new_sample = functools.partial(tuple.__new__, sources.Sample)


def to_item(point, target, prefix=None):
    """Sample (or Rejected) of one ``[timestamp, granularity, value]`` point.

    ``prefix`` is the target's message id prefix, when the caller has it.
    """
    try:
        timestamp, iso = parse_timestamp(point[0])
    except (ValueError, TypeError, IndexError, AttributeError, KeyError):
        return _rejected(point, target, "unparsable timestamp")
    t = target
    mid = _finish_id(prefix or _id_prefix(t.metric_id, t.granularity, t.aggregation), iso)
    value = _value(point[2]) if isinstance(point, (list, tuple)) and len(point) == 3 else None
    if value is None:
        return _rejected(point, target, "value is not a finite number", mid)
    return _new_sample(
        (
            mid,
            t.counter_name,
            t.counter_type,
            t.counter_unit,
            value,
            t.project_id,
            t.user_id,
            t.resource_id,
            t.source,
            timestamp,
            None,
            t.resource_metadata,
        )
    )


def page_items(body, targets, start, end):
    """Items of one /v1/aggregates answer, keeping only start <= ts < end."""
    measures = (body.get("measures") or {}) if isinstance(body, dict) else {}
    items = []
    for target in targets:
        prefix = _id_prefix(target.metric_id, target.granularity, target.aggregation)
        for point in (measures.get(target.metric_id) or {}).get(target.aggregation) or ():
            item = to_item(point, target, prefix)
            if type(item) is sources.Rejected or start <= item.timestamp < end:
                items.append(item)
    return items


def census_width(seconds, granularity=None):
    """Bucket width (s) of a census over ``seconds``: whole hours (or
    granularities, when coarser), about CENSUS_BUCKETS of them."""
    unit = max(3600, granularity or 0)
    return unit * max(1, math.ceil(seconds / CENSUS_BUCKETS / unit))


def census_of(groups, meter, width, start, end):
    """Census of a ``groupby=id`` answer: (buckets summed, {resource id: buckets}).

    :raises ValueError, TypeError, KeyError, AttributeError: not the shape
        of such an answer.
    """
    step = datetime.timedelta(seconds=width)
    detail, totals = {}, {}
    for group in groups:
        resource_id = group["group"]["id"]
        series = group["measures"]["measures"][resource_id][meter.name]
        buckets = []
        for points in series.values():
            for point in points:
                bucket, _ = parse_timestamp(point[0])
                count = int(point[2])
                buckets.append((bucket, bucket + step, count))
                totals[bucket] = totals.get(bucket, 0) + count
        detail[resource_id] = tuple(buckets)
    summed = tuple((b, b + step, totals[b]) for b in sorted(totals))
    return sources.Census(start, end, summed, detail)


def expected_points(target, start, end, detail):
    """Points of ``target`` in [start, end): the census count, or the most the window can hold."""
    most = math.ceil((end - start).total_seconds() / target.granularity)
    if detail is None or target.resource_id not in detail:
        # NOTE(gnocchi): a resource the census did not see (created since):
        # read it as if full, never skip it.
        return most
    return min(most, sum(count for b_start, b_end, count in detail[target.resource_id] if b_start < end and b_end > start))


def plan_requests(targets, start, end, detail, points_per_request, metrics_per_request):
    """(granularity, chunk) of the aggregates requests of one window.

    Chunks share a granularity and hold at most ``metrics_per_request``
    targets and, by the census, ``points_per_request`` points (a single
    target fuller than that gets a request of its own). Targets with no
    point in the window are left out.
    """
    by_granularity = {}
    for target in targets:
        points = expected_points(target, start, end, detail)
        if points:
            by_granularity.setdefault(target.granularity, []).append((target, points))
    for granularity in sorted(by_granularity):
        chunk, held = [], 0
        for target, points in by_granularity[granularity]:
            if chunk and (held + points > points_per_request or len(chunk) >= metrics_per_request):
                yield granularity, chunk
                chunk, held = [], 0
            chunk.append(target)
            held += points
        if chunk:
            yield granularity, chunk


def _error_reason(resp):
    try:
        description = json.loads(resp.text).get("description")
    except (ValueError, AttributeError):
        return "HTTP %d" % resp.status_code
    if isinstance(description, dict):
        description = "%s %s" % (description.get("cause", ""), description.get("detail", ""))
    return "HTTP %d: %s" % (resp.status_code, str(description)[:500])


# -- the driver ---------------------------------------------------------------


class GnocchiSource(sources.SourceDriver):
    """Reads aggregated Gnocchi measures; see the module docstring."""

    def __init__(self, conf, shutdown=None):
        super().__init__(conf, shutdown)
        self._adapter = None
        self._metrics = {}  # metric id -> MetricInfo
        self._sleep = None  # NOTE(gnocchi): tests replace the backoff's wait

    def close(self):
        if self._adapter is not None:
            self._adapter.session.session.close()
            self._adapter = None

    def fetch(self, stream, start, end, census=None):
        meter, opts = stream.meter, self.conf.gnocchi
        detail = census.detail if census is not None and census.start <= start and end <= census.end else None
        if detail is not None and not any(b_start < end and b_end > start for b_start, b_end, _ in census.buckets):
            # NOTE(gnocchi): no resource had a point in the window when the
            # census was taken: no search, no read. A resource created since
            # then has its points near now, inside the next pass's lookback.
            return
        targets = self._targets(self._filter_resources(stream.filter), meter)
        for granularity, chunk in plan_requests(targets, start, end, detail, opts.points_per_request, opts.metrics_per_request):
            items = self._read(chunk, granularity, meter.aggregation, start, end)
            LOG.debug("%s: %d items from %d metrics at %ss", stream, len(items), len(chunk), granularity)
            if items:
                yield items

    def census(self, stream, start, end):
        """Points per resource and bucket in [start, end), in one request.

        None (read everything) when Gnocchi cannot answer it: no resource
        holds the meter or the type is unknown (404: the read then says
        which), or the policy cannot be resampled so (400).
        """
        meter, flt = stream.meter, stream.filter
        width = census_width((end - start).total_seconds(), meter.granularity)
        params = {"start": utils.isoformat(start), "stop": utils.isoformat(end), "groupby": "id"}
        if meter.granularity:
            params["granularity"] = format_granularity(meter.granularity)
        method = meter.aggregation.rpartition(":")[2]
        operations = ["resample", "count", format_granularity(width), ["metric", meter.name, method]]
        body = {"operations": operations, "resource_type": flt.resource_type}
        # NOTE(gnocchi): 4.7.1 answers 500 (KeyError 'search') to a groupby
        # without a search; a filter with no query gets one matching every
        # resource, since every resource has a started_at.
        body["search"] = search_query(flt) or MATCH_ALL
        try:
            groups = self._call("POST", "/v1/aggregates", params, body)
            return census_of(groups, meter, width, start, end)
        except sources.SourceConfigError as e:
            LOG.debug("%s: no census (%s); every window is read", stream, e)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            LOG.warning("%s: the census answer has an unknown shape (%s); every window is read", stream, e)
        return None

    # -- requests ---------------------------------------------------------

    def _client(self):
        if self._adapter is None:
            self._adapter = self._connect()
        return self._adapter

    def _connect(self):
        creds = self.conf[sources.CREDENTIALS_GROUP]
        return ks_adapter.Adapter(
            sources.keystone_session(self.conf),
            service_type="metric",
            interface=creds.interface,
            region_name=creds.region_name,
            endpoint_override=self.conf.gnocchi.endpoint_override,
        )

    def _retrying(self):
        return http.retrying(_RETRYABLE, self.conf.source.max_retries, self.shutdown, self._sleep)

    def _call(self, method, path, params=None, body=None):
        """JSON answer of one request, retried while the failure is transient.

        :raises SourceUnavailable: still failing after [source] max_retries.
        """
        try:
            return self._retrying()(self._attempt, method, path, params, body)
        except _RETRYABLE as e:
            raise sources.SourceUnavailable("%s %s kept failing: %s" % (method, path, e)) from e

    def _attempt(self, method, path, params, body):
        try:
            # NOTE(gnocchi): log=False: keystoneauth would otherwise format
            # whole response bodies (megabytes of measures) for DEBUG logs.
            self.requests += 1
            resp = self._client().request(path, method, params=params, json=body, headers=_HEADERS, raise_exc=False, log=False)
        except _RETRYABLE:
            raise
        except ks_exc.ClientException as e:
            raise sources.SourceConfigError("cannot authenticate or find the Gnocchi endpoint: %s" % e)
        http.check(resp, _error_reason)
        return http.decode(resp.content)

    # -- resources and metrics --------------------------------------------

    def _filter_resources(self, flt):
        """Every resource of the filter, searched once per pass for all its
        meters (the streams of a pass share the memo)."""
        key = ("gnocchi resources", flt.resource_type, orjson.dumps(search_query(flt), option=orjson.OPT_SORT_KEYS))
        return self.memo.get(key, lambda: [r for page in self._search(flt) for r in page])

    def _search(self, flt):
        """Pages of resources matching the filter, in id order."""
        limit = self.conf.gnocchi.resources_per_page
        path = "/v1/search/resource/%s" % flt.resource_type
        query, marker = search_query(flt), None
        while True:
            params = {"limit": limit, "sort": "id:asc"}
            if marker:
                params["marker"] = marker
            try:
                page = self._call("POST", path, params, query)
            except http.NotFound as e:
                raise sources.SourceConfigError("resource type %r: %s" % (flt.resource_type, e))
            if not isinstance(page, list) or not all(isinstance(r, dict) and r.get("id") for r in page):
                raise sources.SourceUnavailable("POST %s: the answer is not a list of resources: %.300r" % (path, page))
            if page:
                yield page
            if len(page) < limit:
                return
            marker = page[-1]["id"]

    def _targets(self, resources, meter):
        owned = [(r, r["metrics"][meter.name]) for r in resources if meter.name in (r.get("metrics") or {})]
        self._load_metric_infos([metric_id for _, metric_id in owned], meter.name)
        return [self._target(r, metric_id, meter) for r, metric_id in owned if metric_id in self._metrics]

    def _target(self, resource, metric_id, meter):
        info = self._metrics[metric_id]
        return Target(
            metric_id,
            pick_granularity(meter, info, metric_id),
            meter.aggregation,
            meter.name,
            meter.counter_type,
            info.unit,
            resource.get("project_id"),
            resource.get("user_id"),
            resource["id"],
            self.conf.source.name,
            resource_metadata(resource),
        )

    def _load_metric_infos(self, metric_ids, name):
        missing = [m for m in metric_ids if m not in self._metrics]
        if len(missing) > LIST_FIRST_PAGE_ABOVE:
            self._load_metrics_named(name, missing)
        for metric_id in missing:
            if metric_id not in self._metrics:
                self._load_metric(metric_id)

    def _load_metric(self, metric_id):
        try:
            self._metrics[metric_id] = metric_info(self._call("GET", "/v1/metric/%s" % metric_id))
        except http.NotFound:
            LOG.info("Metric %s was deleted while being read; skipped", metric_id)

    def _load_metrics_named(self, name, wanted):
        """List the metrics called ``name`` while it pays (LIST_FIRST_PAGE_ABOVE)."""
        params = {"name": name, "limit": METRIC_PAGE, "sort": "id:asc"}
        while True:
            page = self._call("GET", "/v1/metric", params)
            self._metrics.update((m["id"], metric_info(m)) for m in page)
            unknown = sum(1 for m in wanted if m not in self._metrics)
            if len(page) < METRIC_PAGE or unknown <= LIST_BY_NAME_ABOVE:
                return
            params["marker"] = page[-1]["id"]

    # -- measures ---------------------------------------------------------

    def _read(self, targets, granularity, aggregation, start, end):
        params = {"start": utils.isoformat(start), "stop": utils.isoformat(end), "granularity": format_granularity(granularity)}
        operations = ["metric"] + [[t.metric_id, aggregation] for t in targets]
        body = self._call("POST", "/v1/aggregates", params, {"operations": operations})
        # NOTE(bad-input): an answer of another shape must fail the window,
        # never read as "no measures" (that would move the checkpoint).
        if not isinstance(body, dict) or not isinstance(body.get("measures"), dict):
            raise sources.SourceUnavailable("POST /v1/aggregates: the answer has no measures object: %.300r" % (body,))
        return page_items(body, targets, start, end)
