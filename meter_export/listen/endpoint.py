"""The oslo.messaging batch endpoint: parse, store, and only then acknowledge.

oslo.messaging acknowledges every message of a batch once ``info`` returns
HANDLED, and requeues them all on REQUEUE. So ``info`` returns HANDLED only
after the batch's transaction committed, and a crash before that leaves the
messages unacknowledged: the broker delivers them again, and their
message_ids make the second delivery harmless.
"""

import logging

import oslo_messaging

from meter_export.listen import events
from meter_export.storage import entities

LOG = logging.getLogger(__name__)


class EntityEndpoint:
    """Receives the ``info`` notifications (Nova and Cinder send .end events at INFO)."""

    def __init__(self, store, policy=events.DEFAULT_POLICY, before_commit=None):
        self.store = store
        self.policy = policy
        self.before_commit = before_commit

    def info(self, messages):
        parsed = [p for p in (events.parse(m, self.policy) for m in messages) if p is not None]
        if not parsed:
            return oslo_messaging.NotificationResult.HANDLED
        try:
            result = self.store.apply(parsed, self.before_commit)
        except entities.EntityStoreError:
            LOG.error("Could not store %d notifications; they go back to the queue", len(parsed), exc_info=True)
            return oslo_messaging.NotificationResult.REQUEUE
        LOG.debug(
            "Stored %d of %d notifications: %d events, %d duplicates, %d kept but skipped, %d quarantined, %d volume types",
            len(parsed),
            len(messages),
            result.events,
            result.duplicates,
            result.skipped,
            result.quarantined,
            result.volume_types,
        )
        if result.quarantined:
            LOG.warning("Quarantined %d malformed notifications (table quarantine, stream listen)", result.quarantined)
        return oslo_messaging.NotificationResult.HANDLED
