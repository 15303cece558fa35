"""The versions of one entity, from all its events: a pure fold.

The history is always rebuilt from the entity's whole event set, taken in the
order of the events' times. So an event that arrives late lands where it
belongs, a redelivered one (same message_id, kept once by the writer)
changes nothing, and no arrival order can let an older event overwrite a
newer state. The rules per event are Almanach's (distil-almanach.md §9):

- create opens the first version; a second create is skipped;
- instance resize (new flavor), rebuild (new image metadata) and, beyond
  Almanach, a power change (new power state) close the open version and open
  the next one at the event's time; the same value again changes nothing;
- volume resize always closes and reopens (Almanach does not compare sizes);
- volume attach or detach updates the open version in place while it still
  has attachments or began less than ``volume_threshold`` ago, else closes
  and reopens;
- volume delete closes the open version, except that a volume with more than
  one version whose open one began less than ``volume_threshold`` ago loses
  that version instead;
- a rename updates the open version's name in place and leaves last_event;
- an event with no open version at its time (before the create arrives, or
  after the delete) is skipped; it is kept, so a create arriving later makes
  it count.
"""

import dataclasses
import datetime
import typing

from meter_export.listen import events as ev

APPLIED = "applied"
UNCHANGED = "unchanged"
VOLUME_THRESHOLD = datetime.timedelta(seconds=60)
_RANK = {ev.CREATE: 0, ev.DELETE: 2}


@dataclasses.dataclass(frozen=True)
class Version:
    """One row of the entities table: the entity as it was in [start, end)."""

    entity_id: str
    entity_type: str
    project_id: str
    name: typing.Optional[str]
    start: datetime.datetime
    end: typing.Optional[datetime.datetime]
    last_event: datetime.datetime
    flavor: typing.Optional[str] = None
    image_meta: typing.Optional[tuple] = None
    metadata: typing.Optional[tuple] = None
    power_state: typing.Optional[str] = None
    volume_type: typing.Optional[str] = None
    size: typing.Optional[int] = None
    attached_to: typing.Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class History:
    versions: tuple
    #: message_id -> APPLIED, UNCHANGED or "skipped: <why>"
    outcomes: dict


def order(event):
    """Time first; at one instant a create before any change, a delete after."""
    return (event.time, _RANK.get(event.action, 1), event.message_id)


def build(events, volume_threshold=VOLUME_THRESHOLD):
    """The History of one entity from its events, in any order."""
    versions, outcomes = [], {}
    for event in sorted(events, key=order):
        versions, outcomes[event.message_id] = _apply(versions, event, volume_threshold)
    return History(tuple(versions), outcomes)


def _apply(versions, event, threshold):
    current = versions[-1] if versions and versions[-1].end is None else None
    if event.action == ev.CREATE:
        if current is not None:
            return versions, "skipped: already exists since %s" % current.start.isoformat()
        if versions:
            return versions, "skipped: created again after its deletion at %s" % versions[-1].end.isoformat()
        return [_first(event)], APPLIED
    if current is None:
        if versions:
            return versions, "skipped: after its deletion at %s" % versions[-1].end.isoformat()
        return versions, "skipped: no create event yet"
    return _CHANGES[(event.entity_type, event.action)](versions[:-1], current, event, threshold)


def _first(event):
    return Version(
        entity_id=event.entity_id,
        entity_type=event.entity_type,
        project_id=event.project_id,
        name=event.name,
        start=event.time,
        end=None,
        last_event=event.time,
        flavor=event.flavor,
        image_meta=event.image_meta,
        metadata=event.metadata,
        power_state=event.power_state,
        volume_type=event.volume_type,
        size=event.size,
        attached_to=event.attached_to,
    )


def _reopen(done, current, event, **changes):
    closed = dataclasses.replace(current, end=event.time, last_event=event.time)
    return done + [closed, dataclasses.replace(current, start=event.time, end=None, last_event=event.time, **changes)], APPLIED


def _reopen_if_changed(field):
    def change(done, current, event, _threshold):
        value = getattr(event, field)
        if getattr(current, field) == value:
            return done + [current], UNCHANGED
        return _reopen(done, current, event, **{field: value})

    return change


def _instance_delete(done, current, event, _threshold):
    return done + [dataclasses.replace(current, end=event.time, last_event=event.time)], APPLIED


def _volume_delete(done, current, event, threshold):
    # NOTE(listen): Almanach's volume_existence_threshold: a version opened
    # moments before the delete (an attach or resize right before it) is
    # dropped rather than kept as a sliver.
    if done and event.time - current.start < threshold:
        return done, APPLIED
    return _instance_delete(done, current, event, threshold)


def _volume_resize(done, current, event, _threshold):
    return _reopen(done, current, event, size=event.size)


def _attachments(current, event):
    if event.attached_to is not None:
        return event.attached_to
    now = set(current.attached_to or ())
    if event.action == ev.ATTACH:
        now.add(event.instance)
    else:
        now.discard(event.instance)
    return tuple(sorted(now))


def _volume_attach(done, current, event, threshold):
    attached = _attachments(current, event)
    if current.attached_to or event.time - current.start < threshold:
        return done + [dataclasses.replace(current, attached_to=attached, last_event=event.time)], APPLIED
    return _reopen(done, current, event, attached_to=attached)


def _volume_detach(done, current, event, threshold):
    attached = _attachments(current, event)
    if attached or event.time - current.start < threshold:
        return done + [dataclasses.replace(current, attached_to=attached, last_event=event.time)], APPLIED
    return _reopen(done, current, event, attached_to=())


def _rename(done, current, event, _threshold):
    if current.name == event.name:
        return done + [current], UNCHANGED
    return done + [dataclasses.replace(current, name=event.name)], APPLIED


_CHANGES = {
    (ev.INSTANCE, ev.DELETE): _instance_delete,
    (ev.INSTANCE, ev.RESIZE): _reopen_if_changed("flavor"),
    (ev.INSTANCE, ev.REBUILD): _reopen_if_changed("image_meta"),
    (ev.INSTANCE, ev.POWER): _reopen_if_changed("power_state"),
    (ev.VOLUME, ev.DELETE): _volume_delete,
    (ev.VOLUME, ev.RESIZE): _volume_resize,
    (ev.VOLUME, ev.ATTACH): _volume_attach,
    (ev.VOLUME, ev.DETACH): _volume_detach,
    (ev.VOLUME, ev.RENAME): _rename,
}
