"""The loopml server: the domain over HTTP for a team (``loopml server``).

``app`` builds one Starlette application from route tables (the versioned REST API under
``/api/v1``, the MLflow-compatible subset under ``/api/2.0/mlflow``, the web UI) around one
embedded client (the configured metadata store and blob store); ``errors`` turns every
:class:`~loopml.errors.LoopmlError` into a JSON body with its status; ``roles`` says which
role each endpoint needs, and ``auth`` checks tokens against it. The server keeps no state of
its own: several processes behind one database and blob store behave as one.
"""
