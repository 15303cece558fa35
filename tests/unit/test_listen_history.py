"""listen/history.py: Almanach's rules, in event-time order whatever the arrival order."""

import datetime
import itertools
import random

from meter_export.listen import events as ev
from meter_export.listen import history

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
_ids = itertools.count()


def at(minutes):
    return T0 + datetime.timedelta(minutes=minutes)


def instance(action, minutes, **fields):
    defaults = dict(name="web-1", flavor="m1.small", image_meta=(("distro", "ubuntu"),), metadata=(), power_state="running")
    if action != ev.CREATE:
        defaults = {}
    return ev.Event(
        message_id="m%03d" % next(_ids),
        event_type="x",
        entity_type=ev.INSTANCE,
        entity_id="i-1",
        project_id="p",
        time=at(minutes),
        action=action,
        **dict(defaults, **fields),
    )


def volume(action, minutes, **fields):
    defaults = dict(name="data", volume_type="ssd", size=10, attached_to=()) if action == ev.CREATE else {}
    return ev.Event(
        message_id="v%03d" % next(_ids),
        event_type="x",
        entity_type=ev.VOLUME,
        entity_id="v-1",
        project_id="p",
        time=at(minutes),
        action=action,
        **dict(defaults, **fields),
    )


def spans(hist, field=None):
    """[(start minute, end minute or None, field value)] of each version."""
    out = []
    for v in hist.versions:
        end = None if v.end is None else int((v.end - T0).total_seconds() // 60)
        out.append((int((v.start - T0).total_seconds() // 60), end) + ((getattr(v, field),) if field else ()))
    return out


def test_create_then_delete_is_one_closed_version():
    h = history.build([instance(ev.CREATE, 0), instance(ev.DELETE, 90)])
    assert spans(h, "flavor") == [(0, 90, "m1.small")]
    assert h.versions[0].last_event == at(90)


def test_resize_closes_and_opens_at_the_event_time():
    h = history.build([instance(ev.CREATE, 0), instance(ev.RESIZE, 30, flavor="m1.large"), instance(ev.DELETE, 60)])
    assert spans(h, "flavor") == [(0, 30, "m1.small"), (30, 60, "m1.large")]
    assert [v.name for v in h.versions] == ["web-1", "web-1"]


def test_resize_to_the_same_flavor_changes_nothing():
    resize = instance(ev.RESIZE, 30, flavor="m1.small")
    h = history.build([instance(ev.CREATE, 0), resize])
    assert spans(h) == [(0, None)]
    assert h.outcomes[resize.message_id] == history.UNCHANGED
    assert h.versions[0].last_event == at(0)


def test_rebuild_opens_a_version_with_the_new_image_meta():
    h = history.build([instance(ev.CREATE, 0), instance(ev.REBUILD, 20, image_meta=(("distro", "debian"),))])
    assert spans(h, "image_meta") == [(0, 20, (("distro", "ubuntu"),)), (20, None, (("distro", "debian"),))]


def test_power_changes_give_uptime_versions():
    events = [
        instance(ev.CREATE, 0),
        instance(ev.POWER, 10, power_state="stopped"),
        instance(ev.POWER, 15, power_state="stopped"),
        instance(ev.POWER, 40, power_state="running"),
        instance(ev.POWER, 50, power_state="shelved"),
    ]
    h = history.build(events)
    assert spans(h, "power_state") == [(0, 10, "running"), (10, 40, "stopped"), (40, 50, "running"), (50, None, "shelved")]


def test_every_arrival_order_gives_the_same_history():
    events = [
        instance(ev.CREATE, 0),
        instance(ev.POWER, 10, power_state="stopped"),
        instance(ev.RESIZE, 20, flavor="m1.large"),
        instance(ev.POWER, 25, power_state="running"),
        instance(ev.DELETE, 60),
    ]
    expected = history.build(events)
    assert spans(expected, "flavor") == [(0, 10, "m1.small"), (10, 20, "m1.small"), (20, 25, "m1.large"), (25, 60, "m1.large")]
    for permutation in itertools.permutations(events):
        assert history.build(permutation) == expected


def test_events_outside_the_life_are_skipped_with_a_reason():
    early = instance(ev.RESIZE, -5, flavor="m1.large")
    late = instance(ev.POWER, 100, power_state="stopped")
    again = instance(ev.CREATE, 200)
    h = history.build([early, instance(ev.CREATE, 0), instance(ev.DELETE, 90), late, again])
    assert spans(h) == [(0, 90)]
    assert h.outcomes[early.message_id] == "skipped: no create event yet"
    assert h.outcomes[late.message_id].startswith("skipped: after its deletion at 2026-03-01T11:30")
    assert h.outcomes[again.message_id].startswith("skipped: created again after its deletion")


def test_a_delete_that_arrives_before_its_create_counts_once_the_create_is_there():
    delete = instance(ev.DELETE, 90)
    assert history.build([delete]).versions == ()
    assert spans(history.build([delete, instance(ev.CREATE, 0)])) == [(0, 90)]


def test_second_create_is_skipped():
    second = instance(ev.CREATE, 5, flavor="m1.large")
    h = history.build([instance(ev.CREATE, 0), second])
    assert spans(h, "flavor") == [(0, None, "m1.small")]
    assert h.outcomes[second.message_id].startswith("skipped: already exists")


def test_volume_resize_always_reopens():
    h = history.build([volume(ev.CREATE, 0), volume(ev.RESIZE, 30, size=20), volume(ev.RESIZE, 40, size=20)])
    assert spans(h, "size") == [(0, 30, 10), (30, 40, 20), (40, None, 20)]


def test_volume_attach_soon_after_start_is_in_place_later_reopens():
    h = history.build([volume(ev.CREATE, 0), volume(ev.ATTACH, 0.5 / 60 * 60, attached_to=("i-1",))])
    assert spans(h, "attached_to") == [(0, None, ("i-1",))]
    h = history.build([volume(ev.CREATE, 0), volume(ev.ATTACH, 5, attached_to=("i-1",)), volume(ev.ATTACH, 8, attached_to=("i-1", "i-2"))])
    assert spans(h, "attached_to") == [(0, 5, ()), (5, None, ("i-1", "i-2"))]
    assert h.versions[-1].last_event == at(8)


def test_volume_detach_reopens_only_when_nothing_is_left():
    events = [
        volume(ev.CREATE, 0),
        volume(ev.ATTACH, 5, instance="i-1"),
        volume(ev.ATTACH, 6, instance="i-2"),
        volume(ev.DETACH, 10, instance="i-1"),
        volume(ev.DETACH, 20, instance="i-2"),
    ]
    h = history.build(events)
    assert spans(h, "attached_to") == [(0, 5, ()), (5, 20, ("i-2",)), (20, None, ())]


def test_volume_delete_soon_after_a_new_version_drops_that_version():
    h = history.build([volume(ev.CREATE, 0), volume(ev.RESIZE, 30, size=20), volume(ev.DELETE, 30.5)])
    assert spans(h, "size") == [(0, 30, 10)]
    h = history.build([volume(ev.CREATE, 0), volume(ev.DELETE, 0.5)])
    assert len(h.versions) == 1 and h.versions[0].end == at(0.5)


def test_rename_in_place_keeps_last_event():
    rename = volume(ev.RENAME, 50, name="backup")
    same = volume(ev.RENAME, 60, name="backup")
    h = history.build([volume(ev.CREATE, 0), volume(ev.RESIZE, 30, size=20), rename, same])
    assert [(v.name, v.last_event) for v in h.versions] == [("data", at(30)), ("backup", at(30))]
    assert h.outcomes[same.message_id] == history.UNCHANGED


def test_shuffled_volume_life_matches_its_ordered_fold():
    rng = random.Random(11)
    events = [
        volume(ev.CREATE, 0),
        volume(ev.ATTACH, 5, attached_to=("i-1",)),
        volume(ev.RESIZE, 10, size=30),
        volume(ev.DETACH, 20, attached_to=()),
        volume(ev.RENAME, 25, name="archive"),
        volume(ev.DELETE, 90),
    ]
    expected = history.build(events)
    assert spans(expected, "size") == [(0, 5, 10), (5, 10, 10), (10, 20, 30), (20, 90, 30)]
    for _ in range(50):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert history.build(shuffled) == expected
