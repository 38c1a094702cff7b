"""Deployments: what serves which model versions, and the payload log servers write.

``tables`` (migration 0007) indexes the payload log: the Parquet segments that model servers
write to the blob store. ``payload`` records and reads them; ``lookup`` answers which version
an alias points to, cheaply enough to poll every second.
"""
