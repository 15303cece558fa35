"""listen/endpoint.py: HANDLED (acknowledge) only after the store returned;
REQUEUE when it could not write. The happy path runs on the real broker and
databases in tests/functional/test_listen.py; this injects the store's failure."""

import oslo_messaging

from meter_export.listen import endpoint
from meter_export.storage import entities
from tests import notifications as n

IID = "5e1f0c3a-9d47-4b8e-8a34-0b1c2d3e4f50"


class FailingStore:
    calls = 0

    def apply(self, parsed, before_commit=None):
        self.calls += 1
        raise entities.EntityStoreError("database unreachable for [database] retry_timeout")


class RecordingStore:
    def __init__(self):
        self.batches = []

    def apply(self, parsed, before_commit=None):
        self.batches.append(parsed)
        return entities.ApplyResult(events=len(parsed))


def test_a_batch_the_store_could_not_write_goes_back_to_the_queue():
    store = FailingStore()
    result = endpoint.EntityEndpoint(store).info([n.message(*n.instance_create(IID, "2026-03-01T10:00:00"))])
    assert (result, store.calls) == (oslo_messaging.NotificationResult.REQUEUE, 1)


def test_only_followed_events_reach_the_store():
    store = RecordingStore()
    ignored = n.message("compute.instance.update", n.instance_payload(IID), "2026-03-01T10:00:00")
    assert endpoint.EntityEndpoint(store).info([ignored]) == oslo_messaging.NotificationResult.HANDLED
    assert store.batches == []
    followed = n.message(*n.instance_create(IID, "2026-03-01T10:00:00"))
    assert endpoint.EntityEndpoint(store).info([ignored, followed]) == oslo_messaging.NotificationResult.HANDLED
    assert [[e.event_type for e in batch] for batch in store.batches] == [["compute.instance.create.end"]]
