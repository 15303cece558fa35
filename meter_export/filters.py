"""The filters file: which resources, which meters, with what settings.

Example::

    filters:
      - name: compute
        query: {project_id: 9f47..., resource_type: instance}
        meters:
          - cpu
          - {name: memory, counter_type: gauge, granularity: 300, aggregation: mean}

``query`` takes equality on project_id, user_id and resource_id on both
sources, resource_type on Gnocchi, and ``raw``: a Gnocchi search expression or
a list of Ceilometer simple-query items ({field, op, value}), AND-ed with the
rest.
"""

import voluptuous as vol
import yaml

from meter_export.sources import Filter
from meter_export.sources import MeterSpec
from meter_export.sources import SourceConfigError
from meter_export.sources import ceilometer


class FiltersError(ValueError):
    """The filters file is unreadable or invalid; the message says where."""


_NAME = vol.All(str, vol.Length(min=1, max=255))
_METER = vol.Any(
    _NAME,
    {
        vol.Required("name"): _NAME,
        vol.Optional("counter_type"): vol.In(["gauge", "delta", "cumulative"]),
        vol.Optional("granularity"): vol.All(int, vol.Range(min=1)),
        vol.Optional("aggregation"): _NAME,
    },
)
_QUERY = {
    vol.Optional("project_id"): _NAME,
    vol.Optional("user_id"): _NAME,
    vol.Optional("resource_id"): _NAME,
    vol.Optional("resource_type"): _NAME,
    vol.Optional("raw"): vol.Any(dict, list),
}
_FILTER = vol.Schema(
    {
        vol.Required("name"): vol.All(str, vol.Length(min=1, max=255)),
        vol.Required("meters"): vol.All([_METER], vol.Length(min=1)),
        vol.Optional("query", default={}): vol.Any(None, _QUERY),
    }
)


def _meter(item):
    if isinstance(item, str):
        return MeterSpec(item)
    return MeterSpec(**item)


def _build(entry):
    query = dict(entry.get("query") or {})
    meters = tuple(_meter(m) for m in entry["meters"])
    names = [m.name for m in meters]
    if len(set(names)) != len(names):
        raise FiltersError("filter %r: meters: a meter is listed twice" % entry["name"])
    raw = query.pop("raw", None)
    if isinstance(raw, list):
        # NOTE(filters): the list form is Ceilometer's simple query; checked
        # here so that a bad item stops the start, not every pass.
        try:
            ceilometer.simple_raw_items(raw)
        except SourceConfigError as e:
            raise FiltersError("filter %r: query.raw: %s" % (entry["name"], str(e).removeprefix("raw_query")))
    return Filter(name=entry["name"], meters=meters, raw_query=raw, **query)


def _check_entry(index, entry):
    name = entry.get("name") if isinstance(entry, dict) else None
    where = "filter %r" % name if name else "filters[%d]" % index
    try:
        return _FILTER(entry)
    except vol.MultipleInvalid as e:
        raise FiltersError("%s: %s" % (where, "; ".join(_describe(err) for err in e.errors)))


def _describe(error):
    path = ".".join(str(p) for p in error.path)
    return "%s: %s" % (path, error.msg) if path else error.msg


def parse(document):
    """Filters from a parsed YAML document; raises FiltersError."""
    if not isinstance(document, dict) or not isinstance(document.get("filters"), list) or not document["filters"]:
        raise FiltersError("the file must have a top-level 'filters:' list with at least one filter")
    filters = [_build(_check_entry(i, entry)) for i, entry in enumerate(document["filters"])]
    names = [f.name for f in filters]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FiltersError("filter names must be unique: %s" % ", ".join(duplicated))
    return filters


def load(path):
    """Read and check the filters file; raises FiltersError."""
    try:
        with open(path) as f:
            document = yaml.safe_load(f)
    except OSError as e:
        raise FiltersError("cannot read %s: %s" % (path, e.strerror))
    except yaml.YAMLError as e:
        raise FiltersError("%s is not valid YAML: %s" % (path, e))
    return parse(document)
