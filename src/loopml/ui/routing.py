"""The UI's route table: ``routes()`` is listed in :data:`loopml.server.app.ROUTE_TABLES`.

Every page is a GET (role ``viewer``); the review page's forms POST (role ``editor``). The
redirect from ``/`` and the static files (loopml's CSS and script, Plotly from its installed
package) hold no data and need no token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loopml.server.auth import public
from loopml.ui import assets, automation, datasets, deployments, models, pipelines, review, tracking

__all__ = ["HOME", "routes"]

HOME = "/ui/experiments"


@public
async def home(request: Request) -> Response:
    return RedirectResponse(HOME, status_code=307)


def routes() -> list[BaseRoute]:
    """The pages under ``/ui`` and the redirect from ``/``."""
    get = ["GET"]
    return [
        Route("/", home, methods=get),
        Route("/ui", home, methods=get),
        Route("/ui/", home, methods=get),
        Route("/ui/static/plotly.min.js", public(assets.plotly_script), methods=get),
        Route("/ui/static/{name}", public(assets.static_file), methods=get),
        Route("/ui/experiments", tracking.experiments_page, methods=get),
        Route("/ui/runs", tracking.runs_page, methods=get),
        Route("/ui/runs/{run_id}", tracking.run_page, methods=get),
        Route("/ui/compare", tracking.compare_page, methods=get),
        Route("/ui/datasets", datasets.datasets_page, methods=get),
        Route("/ui/datasets/{name}", datasets.dataset_page, methods=get),
        Route("/ui/datasets/{name}/diff", datasets.diff_page, methods=get),
        Route("/ui/datasets/{name}/{version}", datasets.version_page, methods=get),
        Route("/ui/models", models.models_page, methods=get),
        Route("/ui/models/{name}", models.model_page, methods=get),
        Route("/ui/pipelines", pipelines.pipelines_page, methods=get),
        Route("/ui/pipelines/{run_id}", pipelines.pipeline_run_page, methods=get),
        Route("/ui/deployments", deployments.deployments_page, methods=get),
        Route("/ui/deployments/{name}", deployments.deployment_page, methods=get),
        Route("/ui/review", review.review_page, methods=get),
        Route("/ui/review/{endpoint}", review.queue_page, methods=get),
        Route("/ui/review/{endpoint}/items/{item}", review.label_item, methods=["POST"]),
        Route("/ui/review/{endpoint}/refresh", review.refresh_queue, methods=["POST"]),
        Route("/ui/review/{endpoint}/commit", review.commit_items, methods=["POST"]),
        Route("/ui/automation", automation.automation_page, methods=get),
    ]
