"""The human-in-the-loop page: one queued prediction at a time, confirmed or corrected with
the keyboard.

::

    GET  /ui/review                          endpoints with a queue, and their counts
    GET  /ui/review/{endpoint}[?item=ID]     the next pending item (least confident first)
    POST /ui/review/{endpoint}/items/{item}  action=confirm | label (with label=…) | skip
    POST /ui/review/{endpoint}/refresh       queue the least confident rows and a sample
    POST /ui/review/{endpoint}/commit        labelled items → a new dataset version

The item form sends ``action`` (confirm, label, skip), the typed ``label`` or the ``choice`` of
a class button. Keys on the item page (``ui.js``): Enter or ``y`` confirms, ``1``–``9`` picks
a class as the label, ``c`` moves to the label field (where Enter saves it), ``s`` skips.
Every POST answers 303 back to the page (with what was done) or the page again with the
error (status 4xx) and nothing changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from loopml.automation.review import (
    ReviewItem,
    ReviewQueue,
    get_review_item,
    review_endpoints,
)
from loopml.errors import InvalidArgument, LoopmlError, NotFound
from loopml.ui.forms import actor, read_form
from loopml.ui.render import client_of, page, render

__all__ = ["commit_items", "label_item", "queue_page", "refresh_queue", "review_page"]

_ACTIONS = ("confirm", "label", "skip")


def _queue(request: Request) -> ReviewQueue:
    return ReviewQueue(request.path_params["endpoint"], client=client_of(request))


def _page_url(endpoint: str, **query: str) -> str:
    return f"/ui/review/{quote(endpoint, safe='@')}" + (f"?{urlencode(query)}" if query else "")


@page
def review_page(request: Request) -> Response:
    from loopml.deployments.api import Deployments

    client = client_of(request)
    queues = review_endpoints(client=client)
    others = [d.name for d in Deployments(client.meta).list() if d.name not in queues]
    return render(request, "review_list.html", section="review", queues=queues,
                  others=others)


def _find(queue: ReviewQueue, item_id: str) -> ReviewItem:
    """A queued item of this endpoint (a page only reads: nothing is queued here)."""
    item = get_review_item(item_id, client=queue.stores)
    if item.endpoint != queue.endpoint:
        raise NotFound(f"review item {item_id} belongs to {item.endpoint!r}, not "
                       f"{queue.endpoint!r}")
    return item


def _item_context(queue: ReviewQueue, item_id: str | None) -> dict[str, Any]:
    item = _find(queue, item_id) if item_id else next(iter(queue.list(limit=1)), None)
    try:
        target = queue.target
        classes, label_column = list(target.classes or ()), target.target
    except LoopmlError:
        classes, label_column = [], ""
    return {"item": item, "counts": queue.counts(), "classes": classes[:9],
            "label_column": label_column}


@page
def queue_page(request: Request) -> Response:
    queue = _queue(request)
    params = request.query_params
    context = _item_context(queue, params.get("item"))
    return render(request, "review.html", section="review", endpoint=queue.endpoint,
                  done=params.get("done", ""), what=params.get("what", ""), error="",
                  message=params.get("message", ""), **context)


async def _failed(request: Request, queue: ReviewQueue, exc: LoopmlError,
                  item_id: str | None = None) -> Response:
    """The page again, with the error above the item (nothing was changed)."""
    try:
        context = await run_in_threadpool(_item_context, queue, item_id)
    except LoopmlError:
        context = await run_in_threadpool(_item_context, queue, None)
    return render(request, "review.html", status=exc.http_status, section="review",
                  endpoint=queue.endpoint, done="", what="", message="", error=str(exc),
                  **context)


@page
async def label_item(request: Request) -> Response:
    queue = _queue(request)
    item_id = request.path_params["item"]
    form = await read_form(request)
    label = (form.get("choice") or form.get("label") or "").strip()
    action = form.get("action") or ("label" if label else "")
    who = actor(request)
    try:
        if action not in _ACTIONS:
            raise InvalidArgument(f"unknown action {action!r}; use one of "
                                  f"{', '.join(_ACTIONS)}")
        if action == "confirm":
            done = await run_in_threadpool(queue.confirm, item_id, user=who)
        elif action == "skip":
            done = await run_in_threadpool(queue.skip, item_id, user=who)
        else:
            if not label:
                raise InvalidArgument("type the correct label (or press Enter to confirm "
                                      "the prediction)")
            done = await run_in_threadpool(queue.label, item_id, label, user=who)
    except LoopmlError as exc:
        return await _failed(request, queue, exc, item_id)
    what = "skipped" if action == "skip" else f"labelled {done.label!r}"
    return RedirectResponse(_page_url(queue.endpoint, done=done.id, what=what),
                            status_code=303)


@page
async def refresh_queue(request: Request) -> Response:
    queue = _queue(request)
    await read_form(request)
    try:
        result = await run_in_threadpool(queue.refresh)
    except LoopmlError as exc:
        return await _failed(request, queue, exc)
    message = (f"queued {result.uncertain} uncertain and {result.random} sampled rows; "
               f"{result.pending} pending")
    return RedirectResponse(_page_url(queue.endpoint, message=message), status_code=303)


@page
async def commit_items(request: Request) -> Response:
    queue = _queue(request)
    await read_form(request)
    try:
        result = await run_in_threadpool(queue.commit, user=actor(request))
    except LoopmlError as exc:
        return await _failed(request, queue, exc)
    message = (f"committed {result.rows} labelled rows ({result.corrected} corrected) as "
               f"{result.dataset_version}")
    return RedirectResponse(_page_url(queue.endpoint, message=message), status_code=303)
