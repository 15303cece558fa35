"""Seed a real Gnocchi with Ceilometer-like data whose points are known.

Runs in the caller's venv (gnocchiclient 7.2.0 is a project dependency)::

    client = seed.make_client(server.endpoint)
    seed.ensure_resource_types(client)
    seed.ensure_archive_policy(client, "mx-5min")
    seeded = seed.seed_project(client, project_id, meters={"cpu": "ns"}, resources=3,
                               start=t0, end=t0 + 6 h, archive_policy="mx-5min")
    seeded.points[(resource_id, "cpu")]  # [(aware datetime, value), ...] oldest first

Values are a pure function of (resource id, meter, timestamp), so a test can
recompute them, and one point per granularity bucket makes every
aggregation method (mean, min, max, sum, last) equal to the pushed value.
"""

import datetime
import hashlib
import logging
import typing
import uuid

from gnocchiclient import auth as g_auth
from gnocchiclient import exceptions as g_exc
from gnocchiclient.v1 import client as g_client
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3

LOG = logging.getLogger(__name__)

UTC = datetime.UTC

# NOTE(gnocchi): a subset of what ceilometer-upgrade creates; gnocchi-upgrade
# only creates "generic".  Mirror the production cloud when it matters.
RESOURCE_TYPES = {
    "instance": {
        "flavor_id": {"type": "string", "required": True},
        "host": {"type": "string", "required": True},
        "display_name": {"type": "string", "required": True},
        "image_ref": {"type": "string", "required": False},
        "flavor_name": {"type": "string", "required": False},
        "server_group": {"type": "string", "required": False},
    },
    "volume": {
        "display_name": {"type": "string", "required": False},
        "volume_type": {"type": "string", "required": False},
        "instance_id": {"type": "uuid", "required": False},
        "image_id": {"type": "uuid", "required": False},
    },
}

DEFAULT_ATTRIBUTES = {
    "instance": lambda i: {"flavor_id": "m1.small", "host": "compute-%d" % (i % 3), "display_name": "vm-%03d" % i},
    "volume": lambda i: {"display_name": "vol-%03d" % i, "volume_type": "ssd"},
}

PUSH_BATCH = 20000  # points per batch POST


class Seeded(typing.NamedTuple):
    resources: typing.List[dict]
    points: typing.Dict[typing.Tuple[str, str], typing.List[typing.Tuple[datetime.datetime, float]]]


def make_client(endpoint, user="admin", keystone=None):
    """A gnocchiclient as Gnocchi's admin: basic auth, or through ``keystone``.

    :param keystone: a KeystoneServer; the client then authenticates as its
        admin and is pointed at ``endpoint`` (not at the catalog).
    """
    if keystone is not None:
        auth = ks_v3.Password(
            auth_url=keystone.auth_url,
            username="admin",
            password=keystone.admin_password,
            project_name="admin",
            user_domain_id="default",
            project_domain_id="default",
        )
        return g_client.Client(session=ks_session.Session(auth=auth), adapter_options={"endpoint_override": endpoint})
    sess = ks_session.Session(auth=g_auth.GnocchiBasicPlugin(user=user, endpoint=endpoint))
    return g_client.Client(session=sess)


def ensure_resource_types(client, types=None):
    """Create the resource types that are missing (existing ones are kept)."""
    for name, attributes in (types or RESOURCE_TYPES).items():
        try:
            client.resource_type.create({"name": name, "attributes": attributes})
        except g_exc.ResourceTypeAlreadyExists:
            continue


def ensure_archive_policy(
    client,
    name,
    granularity=300,
    timespan=86400 * 30,
    aggregation_methods=("mean", "min", "max", "sum", "last", "count"),
    extra_granularities=(),
):
    """Create archive policy ``name`` unless it exists; return its JSON.

    ``extra_granularities`` adds coarser (granularity, timespan) pairs.
    NOTE(gnocchi): a new policy without aggregation_methods lacks ``last``,
    hence the explicit default list.
    """
    definition = [{"granularity": granularity, "timespan": timespan}]
    definition += [{"granularity": g, "timespan": t} for g, t in extra_granularities]
    policy = {"name": name, "back_window": 0, "definition": definition, "aggregation_methods": list(aggregation_methods)}
    try:
        return client.archive_policy.create(policy)
    except g_exc.ArchivePolicyAlreadyExists:
        return client.archive_policy.get(name)


def point_value(resource_id, meter, timestamp):
    """Deterministic value in [0, 1000) with two decimals."""
    digest = hashlib.sha256(("%s/%s/%s" % (resource_id, meter, timestamp.isoformat())).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100000 / 100.0


def timestamps(start, end, granularity=300):
    """Bucket starts in [start, end), oldest first; start is floored to the bucket."""
    step = datetime.timedelta(seconds=granularity)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    current = epoch + step * ((start - epoch) // step)
    current = current if current >= start else current + step
    while current < end:
        yield current
        current += step


def create_resources(client, project_id, count, meters, resource_type="instance", archive_policy="low", user_id=None, started_at=None):
    """Create ``count`` resources of ``project_id``, each with ``meters``.

    :param meters: {meter name: unit}.
    :returns: the resource dicts as Gnocchi returned them.
    """
    resources = []
    for i in range(count):
        body = dict(DEFAULT_ATTRIBUTES.get(resource_type, lambda _: {})(i))
        body.update(id=str(uuid.uuid4()), project_id=project_id, user_id=user_id or str(uuid.uuid4()))
        body["metrics"] = {name: {"archive_policy_name": archive_policy, "unit": unit} for name, unit in meters.items()}
        if started_at is not None:
            body["started_at"] = started_at.isoformat()
        resources.append(client.resource.create(resource_type, body))
    return resources


def push_points(client, resources, meters, start, end, granularity=300):
    """Push one point per ``granularity`` bucket in [start, end), oldest first.

    :returns: {(resource_id, meter): [(timestamp, value), ...]} of what was pushed.
    """
    expected = {}
    batch, size = {}, 0
    for stamp in timestamps(start, end, granularity):
        for resource in resources:
            for meter in meters:
                value = point_value(resource["id"], meter, stamp)
                expected.setdefault((resource["id"], meter), []).append((stamp, value))
                batch.setdefault(resource["id"], {}).setdefault(meter, []).append({"timestamp": stamp.isoformat(), "value": value})
                size += 1
        if size >= PUSH_BATCH:
            client.metric.batch_resources_metrics_measures(batch)
            batch, size = {}, 0
    if batch:
        client.metric.batch_resources_metrics_measures(batch)
    return expected


def seed_project(
    client,
    project_id,
    meters,
    resources=2,
    start=None,
    end=None,
    granularity=300,
    resource_type="instance",
    archive_policy="low",
    user_id=None,
):
    """Create resources for a project and push [start, end) of points.

    ``end`` defaults to the current bucket, ``start`` to a day before it.
    NOTE(gnocchi): pushed in time order, because with back_window=0 metricd
    drops points older than the newest bucket it has already aggregated.
    """
    end = end or datetime.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = start or end - datetime.timedelta(days=1)
    created = create_resources(client, project_id, resources, meters, resource_type, archive_policy, user_id, started_at=start)
    points = push_points(client, created, meters, start, end, granularity)
    LOG.info("Seeded %d resources x %d meters, %d points", len(created), len(meters), sum(map(len, points.values())))
    return Seeded(created, points)
