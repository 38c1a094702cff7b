"""The subset of MLflow's REST API that the ``mlflow`` client uses, over loopml's stores.

Point the stock client at ``loopml server`` and it runs unchanged::

    mlflow.set_tracking_uri("http://127.0.0.1:5000")
    with mlflow.start_run():
        mlflow.log_param("C", 0.5)
        mlflow.log_metric("auc", 0.91)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="churn")
    MlflowClient().set_registered_model_alias("churn", "production", 1)
    mlflow.sklearn.load_model("models:/churn@production")

Everything it writes is loopml's own data: the experiment, the run with its params, metrics
and artifacts, the model version (a loopml package: ``loopml.load_model`` reads it) and the
alias with its audit history. The modules, one per resource: :mod:`.experiments`,
:mod:`.runs`, :mod:`.logged_models` (MLflow 3), :mod:`.registry`, :mod:`.artifacts` (the
``mlflow-artifacts`` proxy), with :mod:`.translate` (ids, URIs, entities and search syntax),
:mod:`.messages` (the wire format) and :mod:`.packages` (an MLflow model as a loopml package).

Errors have MLflow's shape and statuses (the client branches on them: a 404
``RESOURCE_DOES_NOT_EXIST`` from ``experiments/get-by-name`` makes it create the
experiment); an endpoint outside the subset answers 404 ``ENDPOINT_NOT_FOUND``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from loopml.server.auth import public

from . import artifacts, experiments, logged_models, registry, runs
from .messages import answer

__all__ = ["routes"]


@public
async def server_info(request: Request) -> Response:
    """What the client asks before choosing how to move artifacts (no multipart here)."""
    return answer({"store_type": "loopml", "workspaces_enabled": False,
                   "trace_archival_enabled": False, "multipart_uploads_enabled": False,
                   "multipart_downloads_enabled": False})


def routes() -> list[BaseRoute]:
    """Every route of the MLflow-compatible API (for :data:`loopml.server.app.ROUTE_TABLES`)."""
    return [
        Route("/api/3.0/mlflow/server-info", server_info, methods=["GET"]),
        *experiments.routes(),
        *runs.routes(),
        *logged_models.routes(),
        *registry.routes(),
        *artifacts.routes(),
    ]
