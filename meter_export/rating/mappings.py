"""The mappings file: which meters become which usage, and how.

It takes Distil's ``meter_mappings`` format (shared/reference
distil-almanach.md §3): a YAML list of entries such as::

    - meter: vcpus
      service: compute.vcpus
      unit: vcpu
      type: Virtual Machine
      transformer: max
      metadata:
        name: {sources: [display_name, name]}
        flavor: {sources: [flavor_name, instance_type], template: "flavor %s"}
      filters: ["resource_metadata.status != 'deleted'"]   # JMESPath, all must hold
      volume: 1                                            # or {source: expr} / {sources: [...]}

Unknown keys are an error, never ignored; every error names the entry and
the field.
"""

import dataclasses
import decimal
import typing

import jmespath
import orjson
import voluptuous as vol

from meter_export.rating import RatingError
from meter_export.rating import documents
from meter_export.rating import transformers

MAX_FIELD_LENGTH = 255  # storage/schema.py NAME_LENGTH, as the SQL path casts


class MappingsError(RatingError):
    """The mappings file is unreadable or invalid; the message says where."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One metadata field: the first of ``sources`` present, through ``template``."""

    name: str
    sources: tuple
    template: typing.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Mapping:
    meter: str
    service: str
    unit: str
    transformer: str
    type: str
    config: transformers.Config
    metadata: tuple = ()
    res_id_template: typing.Optional[str] = None
    #: (text, compiled JMESPath) pairs; a sample counts only if all are truthy
    filters: tuple = ()
    #: None (the sample's), a fixed Decimal, or a tuple of JMESPath sources
    volume: typing.Any = None

    @property
    def in_sql(self):
        """Can the database rate it alone (no JMESPath, a set-based transformer)?"""
        return self.transformer in transformers.SET_BASED and not self.filters and not isinstance(self.volume, tuple)


def _text(minimum=1):
    return vol.All(str, vol.Length(min=minimum, max=255))


def _template(value):
    if not isinstance(value, str) or value.count("%s") != 1 or value.replace("%s", "").count("%") > 0:
        raise vol.Invalid("must be text with exactly one %s (and no other %)")
    return value


def _jmespath(value):
    if not isinstance(value, str):
        raise vol.Invalid("must be a JMESPath expression (text)")
    try:
        return value, jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as e:
        raise vol.Invalid("invalid JMESPath %r: %s" % (value, e))


def _fixed_volume(value):
    try:
        return documents.to_decimal(value)
    except ValueError as e:
        raise vol.Invalid(str(e))


_TRANSFORMER = vol.In(sorted(transformers.TRANSFORMERS), msg="must be one of " + ", ".join(sorted(transformers.TRANSFORMERS)))
_FIELD = vol.Schema({vol.Required("sources"): vol.All([_text()], vol.Length(min=1)), vol.Optional("template"): _template})
_VOLUME = vol.Any(
    vol.All(vol.Any(int, decimal.Decimal), _fixed_volume),
    vol.Schema({vol.Required("source"): _jmespath}),
    vol.Schema({vol.Required("sources"): vol.All([_jmespath], vol.Length(min=1))}),
    msg="must be a number, {source: expression} or {sources: [expression, ...]}",
)
_ENTRY = vol.Schema(
    {
        vol.Required("meter"): _text(),
        vol.Optional("service"): _text(),
        vol.Required("unit"): _text(),
        vol.Required("transformer"): _TRANSFORMER,
        vol.Optional("transformer_config", default={}): vol.Any(None, dict),
        vol.Required("type"): _text(),
        vol.Optional("res_id_template"): _template,
        vol.Optional("metadata", default={}): vol.Any(None, {str: _FIELD}),
        vol.Optional("filters", default=[]): vol.Any(None, [_jmespath]),
        vol.Optional("volume"): _VOLUME,
    }
)


def _describe(error):
    path = ".".join(str(p) for p in error.path)
    return "%s: %s" % (path, error.msg) if path else error.msg


def _where(index, entry):
    if isinstance(entry, dict) and isinstance(entry.get("meter"), str):
        return "mappings[%d] (meter %s)" % (index, entry["meter"])
    return "mappings[%d]" % index


def _volume(value):
    if isinstance(value, dict):
        return tuple(value.get("sources") or [value["source"]])
    return value


def _build(index, entry):
    try:
        checked = _ENTRY(entry)
    except vol.MultipleInvalid as e:
        raise MappingsError("%s: %s" % (_where(index, entry), "; ".join(_describe(err) for err in e.errors)))
    try:
        config = transformers.make_config(checked["transformer"], checked["transformer_config"] or {})
    except ValueError as e:
        raise MappingsError("%s: transformer_config.%s" % (_where(index, entry), e))
    fields = tuple(Field(name, tuple(f["sources"]), f.get("template")) for name, f in sorted((checked["metadata"] or {}).items()))
    return Mapping(
        meter=checked["meter"],
        service=checked.get("service") or checked["meter"],
        unit=checked["unit"],
        transformer=checked["transformer"],
        type=checked["type"],
        config=config,
        metadata=fields,
        res_id_template=checked.get("res_id_template"),
        filters=tuple(checked["filters"] or ()),
        volume=_volume(checked.get("volume")),
    )


def parse(document):
    """Mappings from a parsed YAML document; raises MappingsError."""
    if not isinstance(document, list) or not document:
        raise MappingsError("the file must be a YAML list of mappings (Distil's meter_mappings format), with at least one")
    mappings = [_build(i, entry) for i, entry in enumerate(document)]
    seen = {}
    for index, m in enumerate(mappings):
        key = (m.service, m.res_id_template)
        if key in seen and m.transformer != "uptime":
            raise MappingsError(
                "mappings[%d] (meter %s): service: %s is also produced by mappings[%d] for the same resources; "
                "give one a res_id_template" % (index, m.meter, m.service, seen[key])
            )
        seen.setdefault(key, index)
    return mappings


def load(path):
    """Read and check the mappings file; raises MappingsError."""
    return parse(documents.load(path, MappingsError))


def mapped_metadata(mapping, metadata):
    """Distil's resource info: the type, then each field's first source present.

    Values are text of at most 255 characters (before the template), as the
    SQL path's JSON extraction gives them; a field with no source present is null.
    """
    info = {"type": mapping.type}
    for field in mapping.metadata:
        value = next((metadata[k] for k in field.sources if metadata.get(k) is not None), None)
        if value is not None and not isinstance(value, str):
            value = orjson.dumps(value).decode()
        if value is not None:
            value = value[:MAX_FIELD_LENGTH]
        info[field.name] = value if value is None or not field.template else field.template % value
    return info


def mapped_resource_id(mapping, resource_id):
    return mapping.res_id_template % resource_id if mapping.res_id_template else resource_id
