"""Deployments: what serves which model versions, and the payload log servers write.

``tables`` (migration 0007) holds deployments, their audit timeline of events and the index
of the payload log. ``policy`` is a deployment's traffic policy (primary, canary, shadow,
rollback rule); ``records`` the functions over a connection that create, change and roll
them back; ``api`` the same for a caller holding a metadata store (one transaction each).
``payload`` records and reads the payload log; ``lookup`` answers which version an alias
points to, cheaply enough to poll every second.
"""
