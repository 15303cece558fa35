"""Nova and Cinder legacy notifications, shaped from their documented fields.

Nova's payload is ``nova.compute.utils.info_from_instance`` (plus the
fields each event adds); Cinder's is ``cinder.volume.volume_utils.
_usage_from_volume``. The context is a serialised RequestContext (its
``timestamp`` dates most events, as in Almanach); the envelope is what
oslo.messaging's Notifier sends (message_id, timestamp, priority...).
``message(...)`` gives the dict a batch endpoint receives; ``send(...)``
the (ctxt, event_type, payload) a Notifier takes.
"""

import uuid

PROJECT = "7f3b8c1e2d4a4b6c9e0f1a2b3c4d5e6f"
USER = "2a1b0c9d8e7f4a5b8c6d4e2f0a1b3c5d"


def context(timestamp):
    return {
        "user_id": USER,
        "project_id": PROJECT,
        "tenant": PROJECT,
        "user": USER,
        "is_admin": False,
        "read_deleted": "no",
        "roles": ["member", "reader"],
        "remote_address": "10.0.0.5",
        "timestamp": timestamp,
        "request_id": "req-" + str(uuid.uuid4()),
        "global_request_id": None,
        "auth_token": None,
        "service_catalog": [],
    }


def instance_payload(instance_id, created_at="2026-03-01 10:00:00+00:00", flavor="m1.small", state="active", **extra):
    payload = {
        "tenant_id": PROJECT,
        "user_id": USER,
        "instance_id": instance_id,
        "display_name": "web-1",
        "hostname": "web-1.example.org",
        "display_description": "",
        "instance_type": flavor,
        "instance_type_id": 2,
        "instance_flavor_id": "2",
        "memory_mb": 2048,
        "vcpus": 1,
        "root_gb": 20,
        "ephemeral_gb": 0,
        "disk_gb": 20,
        "host": "compute-1",
        "node": "compute-1.example.org",
        "availability_zone": "nova",
        "cell_name": "",
        "kernel_id": "",
        "ramdisk_id": "",
        "image_ref_url": "http://glance:9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "image_meta": {"distro": "ubuntu", "version": "24.04", "os_type": "linux", "min_disk": "20", "base_image_ref": "155d900f"},
        "metadata": {"billing_code": "B-17", "role": "web"},
        "os_type": "linux",
        "architecture": "x86_64",
        "state": state,
        "state_description": "",
        "progress": "",
        "created_at": created_at,
        "launched_at": created_at,
        "terminated_at": "",
        "deleted_at": "",
        "access_ip_v4": None,
        "access_ip_v6": None,
    }
    payload.update(extra)
    return payload


def volume_payload(volume_id, created_at="2026-03-01 10:00:00+00:00", size=50, volume_type="8f1c6a9e-type-ssd", **extra):
    payload = {
        "tenant_id": PROJECT,
        "user_id": USER,
        "host": "cinder-volume@lvm#lvm",
        "availability_zone": "nova",
        "volume_id": volume_id,
        "volume_type": volume_type,
        "display_name": "data-1",
        "launched_at": created_at,
        "created_at": created_at,
        "status": "available",
        "snapshot_id": None,
        "size": size,
        "replication_status": None,
        "replication_extended_status": None,
        "replication_driver_data": None,
        "metadata": [],
        "volume_attachment": [],
    }
    payload.update(extra)
    return payload


def attachment(instance_id, volume_id):
    return {
        "id": str(uuid.uuid4()),
        "volume_id": volume_id,
        "instance_uuid": instance_id,
        "attached_host": None,
        "mountpoint": "/dev/vdb",
        "attach_time": "2026-03-01T11:00:00.000000",
        "detach_time": None,
        "attach_status": "attached",
        "attach_mode": "rw",
    }


def volume_type_payload(type_id, name):
    return {"volume_types": {"id": type_id, "name": name, "description": None, "is_public": True, "extra_specs": {}}}


def message(event_type, payload, timestamp, message_id=None, publisher_id=None):
    """What an oslo.messaging batch endpoint receives for one notification."""
    return {
        "ctxt": context(timestamp),
        "publisher_id": publisher_id or ("compute.compute-1" if event_type.startswith("compute.") else "volume.cinder-volume"),
        "event_type": event_type,
        "payload": payload,
        "metadata": {"message_id": message_id or str(uuid.uuid4()), "timestamp": timestamp.replace("T", " ")},
    }


# -- ready-made scenario steps: (event_type, payload builder, context time) ---


def instance_create(iid, at, flavor="m1.small"):
    return "compute.instance.create.end", instance_payload(iid, created_at=at.replace("T", " ") + "+00:00", flavor=flavor), at


def instance_event(event_type, iid, at, **extra):
    return event_type, instance_payload(iid, **extra), at


def instance_delete(iid, at):
    stamp = at.replace("T", " ") + "+00:00"
    return "compute.instance.delete.end", instance_payload(iid, state="deleted", terminated_at=stamp, deleted_at=stamp), at


def volume_create(vid, at, size=50, volume_type="8f1c6a9e-type-ssd"):
    return "volume.create.end", volume_payload(vid, created_at=at.replace("T", " ") + "+00:00", size=size, volume_type=volume_type), at


def volume_event(event_type, vid, at, **extra):
    return event_type, volume_payload(vid, **extra), at
