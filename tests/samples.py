"""Sample factories shared by the tests."""

import datetime
import uuid

from meter_export.sources import Sample

UTC = datetime.UTC
T0 = datetime.datetime(2026, 11, 1, tzinfo=UTC)


def make_sample(i=0, **overrides):
    values = dict(
        message_id=str(uuid.UUID(int=i + 1)),
        counter_name="cpu",
        counter_type="cumulative",
        counter_unit="ns",
        counter_volume=float(i),
        project_id="p%d" % (i % 3),
        user_id="u1",
        resource_id="r%d" % (i % 7),
        source="openstack",
        timestamp=T0 + datetime.timedelta(seconds=i),
        recorded_at=T0 + datetime.timedelta(seconds=i, microseconds=123456),
        resource_metadata={"flavor": {"name": "m1.small"}, "i": i},
    )
    values.update(overrides)
    return Sample(**values)
