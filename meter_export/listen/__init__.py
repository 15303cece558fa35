"""The push side: OpenStack notifications become entity histories.

- ``events``: a notification (Nova and Cinder legacy payloads) becomes an
  Event, a VolumeType, a Malformed (quarantined with its reason) or nothing
  (an event type we do not follow); pure.
- ``history``: the versions (type 2 rows) of one entity from its events, in
  the event times' order; pure.
- ``endpoint``: the oslo.messaging batch endpoint that hands parsed
  notifications to storage/entities.py and acknowledges only after the commit.
- ``service``: ``meter-export listen``, the cotyledon service around it.
"""
