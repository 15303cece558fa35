"""Nova and Cinder legacy notifications as value objects.

``parse(message, policy)`` takes one notification as oslo.messaging hands it
to a batch endpoint (a dict with ctxt, publisher_id, event_type, payload and
metadata) and returns:

- an ``Event`` of an instance or a volume,
- a ``VolumeType`` (``volume_type.create``),
- a ``Malformed`` with the reason it cannot be used (it goes to quarantine),
- or None: an event type this project does not follow.

The payload fields are those of the legacy (unversioned) notifications:
Nova's ``info_from_instance`` (tenant_id, instance_id, hostname,
display_name, instance_type, image_meta, metadata, state, created_at,
terminated_at, deleted_at...) and Cinder's ``_usage_from_volume``
(tenant_id, volume_id, display_name, volume_type, size, created_at,
volume_attachment...).
"""

import dataclasses
import datetime
import typing

from meter_export import utils

UTC = datetime.UTC

INSTANCE = "instance"
VOLUME = "volume"

# Actions, the verbs of storage/entities.py and listen/history.py.
CREATE, DELETE, RESIZE, REBUILD, POWER, ATTACH, DETACH, RENAME = (
    "create",
    "delete",
    "resize",
    "rebuild",
    "power",
    "attach",
    "detach",
    "rename",
)

RUNNING, PAUSED, SUSPENDED, STOPPED, SHELVED = "running", "paused", "suspended", "stopped", "shelved"

# event type -> (entity type, action, power state the event leaves behind)
EVENT_TYPES = {
    "compute.instance.create.end": (INSTANCE, CREATE, RUNNING),
    "compute.instance.delete.end": (INSTANCE, DELETE, None),
    "compute.instance.resize.confirm.end": (INSTANCE, RESIZE, None),
    "compute.instance.rebuild.end": (INSTANCE, REBUILD, None),
    "compute.instance.power_off.end": (INSTANCE, POWER, STOPPED),
    "compute.instance.power_on.end": (INSTANCE, POWER, RUNNING),
    "compute.instance.shelve.end": (INSTANCE, POWER, SHELVED),
    "compute.instance.shelve_offload.end": (INSTANCE, POWER, SHELVED),
    "compute.instance.unshelve.end": (INSTANCE, POWER, RUNNING),
    "compute.instance.suspend.end": (INSTANCE, POWER, SUSPENDED),
    "compute.instance.resume.end": (INSTANCE, POWER, RUNNING),
    "compute.instance.pause.end": (INSTANCE, POWER, PAUSED),
    "compute.instance.unpause.end": (INSTANCE, POWER, RUNNING),
    "volume.create.end": (VOLUME, CREATE, None),
    "volume.delete.end": (VOLUME, DELETE, None),
    "volume.resize.end": (VOLUME, RESIZE, None),
    "volume.attach.end": (VOLUME, ATTACH, None),
    "volume.detach.end": (VOLUME, DETACH, None),
    "volume.update.end": (VOLUME, RENAME, None),
    "volume.exists": (VOLUME, RENAME, None),
}
VOLUME_TYPE_CREATE = "volume_type.create"
HANDLED = frozenset(EVENT_TYPES) | {VOLUME_TYPE_CREATE}

ID_LENGTH = 255
MESSAGE_ID_LENGTH = 128  # storage/schema.py MESSAGE_ID_LENGTH


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which image properties and instance metadata keys are kept (Almanach's
    instance_image_meta and instance_metadata whitelists)."""

    image_meta_keys: tuple = ("distro", "version", "os_type")
    metadata_keys: tuple = ()


DEFAULT_POLICY = Policy()


def expected_meters(conf):
    """{entity type: meters} of [listen] instance_meters and volume_meters."""
    return {INSTANCE: list(conf.listen.instance_meters), VOLUME: list(conf.listen.volume_meters)}


@dataclasses.dataclass(frozen=True)
class Event:
    """One change of one entity at one time; fields an action does not carry stay None.

    ``image_meta`` and ``metadata`` are sorted (key, value) pairs and
    ``attached_to`` a tuple of instance ids, so the object stays immutable.
    ``instance`` is the one instance of an attach or detach whose payload
    names only it (no volume_attachment list).
    """

    message_id: str
    event_type: str
    entity_type: str
    entity_id: str
    project_id: str
    time: datetime.datetime
    action: str
    name: typing.Optional[str] = None
    flavor: typing.Optional[str] = None
    image_meta: typing.Optional[tuple] = None
    metadata: typing.Optional[tuple] = None
    power_state: typing.Optional[str] = None
    volume_type: typing.Optional[str] = None
    size: typing.Optional[int] = None
    attached_to: typing.Optional[tuple] = None
    instance: typing.Optional[str] = None

    def to_json(self):
        """A JSON-ready dict (the entity_events table keeps it)."""
        # NOTE(listen): not dataclasses.asdict, which deep-copies every value
        # (a third of a batch's CPU in bench/listen.py); tuples serialise as lists.
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["time"] = self.time.isoformat()
        return data

    @classmethod
    def from_json(cls, data):
        data = dict(data, time=datetime.datetime.fromisoformat(data["time"]))
        for key in ("image_meta", "metadata"):
            if data.get(key) is not None:
                data[key] = tuple((k, v) for k, v in data[key])
        if data.get("attached_to") is not None:
            data["attached_to"] = tuple(data["attached_to"])
        return cls(**data)


_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


@dataclasses.dataclass(frozen=True)
class VolumeType:
    message_id: str
    volume_type_id: str
    volume_type_name: typing.Optional[str]


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A notification of a followed type that cannot be used, and why."""

    message_id: typing.Optional[str]
    event_type: typing.Optional[str]
    reason: str
    body: dict


class _Bad(Exception):
    """A field is missing or wrong; the message says which."""


def parse(message, policy=None):
    """Event | VolumeType | Malformed | None (not followed) of one notification."""
    policy = policy or DEFAULT_POLICY
    if not isinstance(message, dict):
        return Malformed(None, None, "the notification is a %s, not an object" % type(message).__name__, {"body": repr(message)})
    event_type = message.get("event_type")
    if event_type not in HANDLED:
        return None
    metadata = message.get("metadata") or {}
    message_id = metadata.get("message_id") if isinstance(metadata, dict) else None
    try:
        if not isinstance(message_id, str) or not message_id:
            raise _Bad("metadata.message_id is missing, so a redelivery could not be recognised")
        if len(message_id) > MESSAGE_ID_LENGTH:
            raise _Bad("metadata.message_id is %d characters, more than %d" % (len(message_id), MESSAGE_ID_LENGTH))
        payload = message.get("payload")
        if not isinstance(payload, dict):
            raise _Bad("payload is a %s, not an object" % type(payload).__name__)
        if event_type == VOLUME_TYPE_CREATE:
            return _volume_type(message_id, payload)
        return _event(message_id, event_type, message, payload, policy)
    except _Bad as e:
        message_id = message_id[:MESSAGE_ID_LENGTH] if isinstance(message_id, str) else None
        return Malformed(message_id, event_type, str(e), _jsonable(message))


def _volume_type(message_id, payload):
    types = payload.get("volume_types")
    if not isinstance(types, dict):
        raise _Bad("payload.volume_types is missing or not an object")
    return VolumeType(message_id, _text(types, "id", "payload.volume_types"), _optional_text(types, "name", "payload.volume_types"))


def _event(message_id, event_type, message, payload, policy):
    entity_type, action, power_state = EVENT_TYPES[event_type]
    id_key = "instance_id" if entity_type == INSTANCE else "volume_id"
    common = dict(
        message_id=message_id,
        event_type=event_type,
        entity_type=entity_type,
        entity_id=_text(payload, id_key),
        project_id=_text(payload, "tenant_id"),
        time=_event_time(entity_type, action, message, payload),
        action=action,
    )
    if entity_type == INSTANCE:
        return Event(power_state=power_state, **common, **_instance_fields(action, payload, policy))
    return Event(**common, **_volume_fields(action, payload))


def _instance_fields(action, payload, policy):
    if action == CREATE:
        return dict(
            name=_optional_text(payload, "hostname") or _optional_text(payload, "display_name"),
            flavor=_optional_text(payload, "instance_type"),
            image_meta=_filtered(payload, "image_meta", policy.image_meta_keys),
            metadata=_filtered(payload, "metadata", policy.metadata_keys),
        )
    if action == RESIZE:
        return dict(flavor=_text(payload, "instance_type"))
    if action == REBUILD:
        return dict(image_meta=_filtered(payload, "image_meta", policy.image_meta_keys))
    return {}


def _volume_fields(action, payload):
    if action == CREATE:
        return dict(
            name=_optional_text(payload, "display_name"),
            volume_type=_optional_text(payload, "volume_type"),
            size=_size(payload),
            attached_to=(),
        )
    if action == RESIZE:
        return dict(size=_size(payload))
    if action in (ATTACH, DETACH):
        return _attachments(payload)
    if action == RENAME:
        if "display_name" not in payload:
            raise _Bad("payload.display_name is missing")
        return dict(name=_optional_text(payload, "display_name"))
    return {}


def _attachments(payload):
    """The full list when Cinder sends it, else the one instance it names."""
    attachments = payload.get("volume_attachment")
    if isinstance(attachments, list):
        ids = []
        for item in attachments:
            if not isinstance(item, dict) or not isinstance(item.get("instance_uuid"), str):
                raise _Bad("payload.volume_attachment holds an entry without an instance_uuid")
            if item.get("attach_status", "attached") != "detached" and item["instance_uuid"] not in ids:
                ids.append(item["instance_uuid"])
        return dict(attached_to=tuple(sorted(ids)))
    if attachments is not None:
        raise _Bad("payload.volume_attachment is a %s, not a list" % type(attachments).__name__)
    return dict(instance=_text(payload, "instance_uuid"))


def _event_time(entity_type, action, message, payload):
    """When the change happened, as Almanach dates it.

    NOTE(listen): creations are dated by the payload's created_at and
    instance deletions by terminated_at (both facts about the resource);
    every other change by the request context's timestamp, then the
    notification envelope's timestamp.
    """
    if action == CREATE:
        return _time(payload, "created_at", "payload")
    if entity_type == INSTANCE and action == DELETE:
        for key in ("terminated_at", "deleted_at"):
            if payload.get(key):
                return _time(payload, key, "payload")
    ctxt = message.get("ctxt") if isinstance(message.get("ctxt"), dict) else {}
    if ctxt.get("timestamp"):
        return _time(ctxt, "timestamp", "ctxt")
    metadata = message.get("metadata") or {}
    if metadata.get("timestamp"):
        return _time(metadata, "timestamp", "metadata")
    raise _Bad("no event time: neither ctxt.timestamp nor metadata.timestamp is set")


def _time(source, key, where):
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise _Bad("%s.%s is missing" % (where, key))
    try:
        return utils.parse_utc(value)
    except ValueError:
        raise _Bad("%s.%s %r is not an ISO 8601 time" % (where, key, value))


def _text(source, key, where="payload"):
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise _Bad("%s.%s is missing or not a string" % (where, key))
    if len(value) > ID_LENGTH:
        raise _Bad("%s.%s is %d characters, more than %d" % (where, key, len(value), ID_LENGTH))
    return value


def _optional_text(source, key, where="payload"):
    value = source.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Bad("%s.%s is a %s, not a string" % (where, key, type(value).__name__))
    return value[:ID_LENGTH]


def _size(payload):
    value = payload.get("size")
    if isinstance(value, bool):
        raise _Bad("payload.size %r is not a whole number of GiB" % (value,))
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise _Bad("payload.size %r is not a whole number of GiB" % (value,))
    if size < 0 or str(size) != str(value).strip():
        raise _Bad("payload.size %r is not a whole number of GiB" % (value,))
    return size


def _filtered(payload, key, keep):
    value = payload.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _Bad("payload.%s is a %s, not an object" % (key, type(value).__name__))
    return tuple(sorted((k, value[k]) for k in keep if k in value))


def _jsonable(message):
    """The notification as the quarantine keeps it (contexts may hold objects)."""
    return {k: message.get(k) for k in ("event_type", "publisher_id", "metadata", "payload", "ctxt") if k in message}
