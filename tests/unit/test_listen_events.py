"""listen/events.py: legacy notifications become Events, or a quarantine reason."""

import datetime

import pytest

from meter_export.listen import events as ev
from tests import notifications as n

UTC = datetime.UTC
IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"
VID = "b7c6d5e4-f3a2-4b1c-9d8e-7f6a5b4c3d2e"


def _t(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_instance_create_is_dated_by_created_at_and_keeps_whitelisted_meta():
    msg = n.message(*n.instance_create(IID, "2026-03-01T10:00:00"), message_id="m1")
    msg["ctxt"]["timestamp"] = "2026-03-01T10:00:07.000000"
    event = ev.parse(msg)
    assert event == ev.Event(
        message_id="m1",
        event_type="compute.instance.create.end",
        entity_type="instance",
        entity_id=IID,
        project_id=n.PROJECT,
        time=_t("2026-03-01T10:00:00"),
        action="create",
        name="web-1.example.org",
        flavor="m1.small",
        image_meta=(("distro", "ubuntu"), ("os_type", "linux"), ("version", "24.04")),
        metadata=(),
        power_state="running",
    )


def test_policy_chooses_the_metadata_kept():
    msg = n.message(*n.instance_create(IID, "2026-03-01T10:00:00"))
    event = ev.parse(msg, ev.Policy(image_meta_keys=("distro",), metadata_keys=("billing_code", "absent")))
    assert event.image_meta == (("distro", "ubuntu"),)
    assert event.metadata == (("billing_code", "B-17"),)


def test_delete_is_dated_by_terminated_at():
    event = ev.parse(n.message(*n.instance_delete(IID, "2026-03-02T08:30:00")))
    assert (event.action, event.time) == ("delete", _t("2026-03-02T08:30:00"))


def test_delete_without_terminated_at_falls_back_to_the_context_time():
    msg = n.message(*n.instance_event("compute.instance.delete.end", IID, "2026-03-02T08:30:00.250000"))
    assert ev.parse(msg).time == _t("2026-03-02T08:30:00.250000")


def test_changes_are_dated_by_the_context_then_the_envelope():
    msg = n.message(*n.instance_event("compute.instance.resize.confirm.end", IID, "2026-03-01T12:00:00", flavor="m1.large"))
    assert (ev.parse(msg).time, ev.parse(msg).flavor) == (_t("2026-03-01T12:00:00"), "m1.large")
    del msg["ctxt"]["timestamp"]
    msg["metadata"]["timestamp"] = "2026-03-01 12:00:05.5"
    assert ev.parse(msg).time == _t("2026-03-01T12:00:05.500000")


@pytest.mark.parametrize(
    "event_type, state",
    [
        ("compute.instance.power_off.end", "stopped"),
        ("compute.instance.power_on.end", "running"),
        ("compute.instance.shelve.end", "shelved"),
        ("compute.instance.shelve_offload.end", "shelved"),
        ("compute.instance.unshelve.end", "running"),
        ("compute.instance.suspend.end", "suspended"),
        ("compute.instance.pause.end", "paused"),
    ],
)
def test_power_events_carry_the_state_they_leave(event_type, state):
    event = ev.parse(n.message(*n.instance_event(event_type, IID, "2026-03-01T12:00:00")))
    assert (event.action, event.power_state) == ("power", state)


def test_volume_create_keeps_size_type_and_name():
    event = ev.parse(n.message(*n.volume_create(VID, "2026-03-01T10:00:00", size=80), message_id="v1"))
    assert (event.entity_type, event.size, event.volume_type, event.name, event.attached_to) == (
        "volume",
        80,
        "8f1c6a9e-type-ssd",
        "data-1",
        (),
    )


def test_attach_takes_the_whole_attachment_list_when_cinder_sends_it():
    payload = n.volume_payload(VID, volume_attachment=[n.attachment("i-2", VID), n.attachment("i-1", VID)])
    event = ev.parse(n.message("volume.attach.end", payload, "2026-03-01T11:00:00"))
    assert (event.attached_to, event.instance) == (("i-1", "i-2"), None)


def test_attach_with_only_an_instance_uuid_names_that_instance():
    payload = n.volume_payload(VID, instance_uuid="i-9")
    del payload["volume_attachment"]
    event = ev.parse(n.message("volume.detach.end", payload, "2026-03-01T11:00:00"))
    assert (event.action, event.attached_to, event.instance) == ("detach", None, "i-9")


def test_volume_type_create():
    parsed = ev.parse(n.message("volume_type.create", n.volume_type_payload("t-1", "ssd"), "2026-03-01T09:00:00", message_id="t"))
    assert parsed == ev.VolumeType("t", "t-1", "ssd")


def test_event_types_not_followed_are_none():
    assert ev.parse(n.message("compute.instance.update", n.instance_payload(IID), "2026-03-01T09:00:00")) is None
    assert ev.parse(n.message("image.upload", {}, "2026-03-01T09:00:00")) is None


def _malformed(msg):
    parsed = ev.parse(msg)
    assert isinstance(parsed, ev.Malformed), parsed
    return parsed.reason


def test_malformed_messages_say_why():
    base = lambda *a, **k: n.message(*n.instance_create(IID, "2026-03-01T10:00:00"), *a, **k)  # noqa: E731
    msg = base()
    msg["payload"] = "not a dict"
    assert _malformed(msg) == "payload is a str, not an object"
    msg = base()
    del msg["payload"]["instance_id"]
    assert _malformed(msg) == "payload.instance_id is missing or not a string"
    msg = base()
    msg["payload"]["created_at"] = "yesterday"
    assert _malformed(msg) == "payload.created_at 'yesterday' is not an ISO 8601 time"
    msg = base()
    msg["metadata"] = {}
    assert "message_id is missing" in _malformed(msg)
    msg = base(message_id="m" * 129)
    assert _malformed(msg) == "metadata.message_id is 129 characters, more than 128"
    msg = base()
    msg["payload"]["image_meta"] = ["x"]
    assert _malformed(msg) == "payload.image_meta is a list, not an object"
    assert _malformed("garbage") == "the notification is a str, not an object"


@pytest.mark.parametrize("size", [None, "ten", -1, 1.5, True])
def test_bad_volume_size(size):
    msg = n.message(*n.volume_create(VID, "2026-03-01T10:00:00"))
    msg["payload"]["size"] = size
    assert "payload.size" in _malformed(msg)


def test_change_without_any_time_is_malformed():
    msg = n.message(*n.volume_event("volume.resize.end", VID, "2026-03-01T10:00:00", size=100))
    del msg["ctxt"]["timestamp"]
    del msg["metadata"]["timestamp"]
    assert _malformed(msg).startswith("no event time")


def test_rename_needs_a_display_name():
    msg = n.message(*n.volume_event("volume.update.end", VID, "2026-03-01T10:00:00"))
    del msg["payload"]["display_name"]
    assert _malformed(msg) == "payload.display_name is missing"


def test_event_json_round_trip():
    payload = n.volume_payload(VID, volume_attachment=[n.attachment("i-1", VID)])
    for msg in (n.message("volume.attach.end", payload, "2026-03-01T11:00:00"), n.message(*n.instance_create(IID, "2026-03-01T10:00:00"))):
        event = ev.parse(msg)
        assert ev.Event.from_json(event.to_json()) == event
