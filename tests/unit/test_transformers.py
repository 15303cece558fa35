"""Transformers, with expectations worked out by hand in each test."""

import datetime
from decimal import Decimal as D

from meter_export.rating import transformers as t

UTC = datetime.UTC
H = datetime.datetime(2026, 11, 1, 10, tzinfo=UTC)
END = H + datetime.timedelta(hours=1)
TRACKED = t.Config(tracked_states=("active", "paused"))


def at(minutes, volume="0", **metadata):
    return t.Point(H + datetime.timedelta(minutes=minutes), D(volume), metadata)


def run(name, points, carried=None, config=None):
    return t.transform(name, points, H, END, carried, config)


def test_aggregates_of_the_hour():
    points = [at(0, "12"), at(10, "3"), at(20, "7.5"), at(30, "25"), at(59, "2")]
    assert run("max", points) == {None: D("25")}
    assert run("min", points) == {None: D("2")}
    assert run("sum", points) == {None: D("49.5")}  # 12+3+7.5+25+2
    assert run("mean", points) == {None: D("9.9")}  # 49.5/5
    assert run("last", points) == {None: D("2")}


def test_mean_is_rounded_half_away_from_zero_at_12_places():
    assert run("mean", [at(0, "1"), at(1, "1"), at(2, "2")]) == {None: D("1.333333333333")}
    assert run("mean", [at(0, "2"), at(1, "2"), at(2, "1")]) == {None: D("1.666666666667")}


def test_no_points_no_usage():
    for name in t.TRANSFORMERS:
        assert run(name, [], carried=at(-5, "1", status="active")) == {}


def test_numbool():
    assert run("numbool", [at(0, "-1")]) == {None: D(0)}
    assert run("numbool", [at(0, "0")]) == {None: D(0)}
    assert run("numbool", [at(0, "0"), at(5, "25")]) == {None: D(1)}
    assert run("numbool", [at(0, "-1"), at(5, "25")]) == {None: D(1)}


def test_delta_counts_a_reset_from_zero():
    # carried 100; 100->150 (+50), 150->30 reset (+30), 30->70 (+40) = 120
    points = [at(10, "150"), at(20, "30"), at(40, "70")]
    assert run("delta", points, carried=at(-10, "100")) == {None: D("120")}


def test_delta_without_carried_point_starts_at_the_first_sample():
    assert run("delta", [at(10, "150"), at(20, "160")]) == {None: D("10")}
    assert run("delta", [at(10, "150")]) == {None: D("0")}


def test_delta_is_never_negative():
    assert run("delta", [at(10, "5")], carried=at(-1, "900")) == {None: D("5")}


def test_uptime_time_weighted_with_carried_state():
    # active carried in from 09:50; shutoff at 10:30; active again at 10:45:
    # [10:00, 10:30) + [10:45, 11:00) = 45 min = 0.75 h
    points = [at(30, status="shutoff", flavor_name="m1"), at(45, status="ACTIVE", flavor_name="m1")]
    carried = at(-10, status="active", flavor_name="m1")
    assert run("uptime", points, carried, TRACKED) == {"m1": D("0.75")}


def test_uptime_without_carried_state_starts_at_the_first_sample():
    # first seen at 10:10: 50 minutes = 0.833333333333 h (rounded half up)
    assert run("uptime", [at(10, status="active")], None, TRACKED) == {None: D("0.833333333333")}


def test_uptime_flavor_change_mid_hour_splits_by_time():
    # m1 active 10:00-10:10 (carried), m2 (resized) from 10:10: 1/6 h and 5/6 h
    carried = at(-30, status="active", flavor_name="m1")
    points = [at(10, status="active", flavor_name="m2"), at(40, status="paused", flavor_name="m2")]
    config = t.Config(tracked_states=("active", "paused"), prefix="compute.")
    assert run("uptime", points, carried, config) == {"compute.m1": D("0.166666666667"), "compute.m2": D("0.833333333333")}


def test_uptime_state_from_fallback_source_and_untracked():
    assert run("uptime", [at(0, state="stopped")], None, TRACKED) == {}
    assert run("uptime", [at(0, state="active")], None, TRACKED) == {None: D("1")}
    assert run("uptime", [at(0)], None, TRACKED) == {}


def test_uptime_sample_on_the_hour_end_is_not_in_this_hour():
    # The caller never passes a point at END; the carried point is at START.
    assert run("uptime", [at(0, status="active")], None, TRACKED) == {None: D("1")}


def test_uptime_distil_2024_mode():
    config = t.Config(tracked_states=("active",), mode=t.DISTIL_2024)
    # active at 10:00, stopped at 10:30: the whole hour (Distil test vector)
    assert run("uptime", [at(0, status="active", instance_type="a"), at(30, status="stopped", instance_type="a")], None, config) == {
        "a": D("1")
    }
    # flavors A then B: split equally, whatever the durations (10 min / 50 min)
    both = run("uptime", [at(0, status="active", instance_type="A"), at(10, status="active", instance_type="B")], None, config)
    assert both == {"A": D("0.5"), "B": D("0.5")}
    # samples only at 10:10 and 10:30: still the whole hour
    assert run("uptime", [at(10, status="active", instance_type="a"), at(30, status="active", instance_type="a")], None, config) == {
        "a": D("1")
    }
    # no flavor: Distil returns nothing
    assert run("uptime", [at(0, status="active")], None, config) == {}
    # the carried state is not used in this mode
    assert run("uptime", [at(0, status="stopped", instance_type="a")], at(-5, status="active", instance_type="a"), config) == {}


def test_make_config_names_the_bad_key():
    import pytest

    with pytest.raises(ValueError, match="tracked_states: required"):
        t.make_config("uptime", {})
    with pytest.raises(ValueError, match="tracked_sates: unknown for transformer uptime"):
        t.make_config("uptime", {"tracked_states": ["active"], "tracked_sates": []})
    with pytest.raises(ValueError, match="prefix: unknown for transformer max"):
        t.make_config("max", {"prefix": "x"})
    with pytest.raises(ValueError, match="mode: must be"):
        t.make_config("uptime", {"tracked_states": ["active"], "mode": "hourly"})
    assert t.make_config("uptime", {"tracked_states": ["active"]}).tracked_states == ("active",)
