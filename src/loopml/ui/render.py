"""Rendering pages: one Jinja2 environment over the package's templates, HTML error pages.

::

    @page
    def run_page(request: Request) -> Response:
        run = client_of(request).get_run(request.path_params["run_id"])
        return render(request, "run.html", section="runs", run=run)

Every value a template shows is HTML-escaped (autoescape on); data handed to the charts goes
through :func:`json_script`, which makes JSON safe inside a ``<script>`` element. A
:class:`~loopml.errors.LoopmlError` raised by a page (an unknown run, a bad filter) becomes an
HTML page with the error's status and its message, not a traceback. Pages carry a
Content-Security-Policy that allows scripts from this server only (no inline script).
"""

from __future__ import annotations

import functools
import html
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from loopml.cli.output import format_duration, format_value
from loopml.errors import InvalidArgument, LoopmlError, MissingDependency

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

    from loopml.client import Client

__all__ = ["SECURITY_HEADERS", "client_of", "fmt_number", "fmt_time",
           "int_param", "json_script", "page", "render"]

#: Headers of every page. Plotly's WebGL charts (parallel coordinates) compile their shaders
#: with ``new Function``, hence ``'unsafe-eval'``; inline scripts stay forbidden.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

E = TypeVar("E", bound=Callable[..., Any])


def fmt_time(ms: int | float | None) -> str:
    """``2024-05-01 12:00:03`` (UTC) from ms since the epoch; ``-`` for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_number(value: Any) -> str:
    """Four significant digits for floats, thousands separators for integers."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    return format_value(value)  # the CLI's: the same figures in both places


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (a gap in a chart)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_script(value: Any) -> Markup:
    """JSON text safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&``
    are escaped as ``\\u003c`` etc., so data can never close the element."""
    text = orjson.dumps(_finite(value), default=str,
                        option=orjson.OPT_NON_STR_KEYS).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    from markupsafe import Markup

    return Markup(text)  # escaped above


@functools.cache
def environment() -> jinja2.Environment:
    try:
        import jinja2
    except ImportError:
        raise MissingDependency("the web UI", package="jinja2", extra="ui") from None

    env = jinja2.Environment(loader=jinja2.PackageLoader("loopml.ui", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, num=fmt_number, duration=format_duration,
                       json_script=json_script)
    return env


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """The whole number in query parameter ``name`` (``default`` when absent), checked."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}, got {value}")
    return value


def client_of(request: Request) -> Client:
    """The embedded client the server was built around."""
    return cast("Client", request.app.state.client)


def _auth_required(request: Request) -> bool:
    options = getattr(request.app.state, "options", None)
    return bool(getattr(options, "auth_required", False))


def render(request: Request, template: str, *, status: int = 200, section: str = "",
           **context: Any) -> HTMLResponse:
    """``template`` filled with ``context`` (plus the request and the nav section)."""
    text = environment().get_template(template).render(
        request=request, section=section, auth=_auth_required(request), **context)
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, exc: LoopmlError) -> HTMLResponse:
    try:
        return render(request, "error.html", status=exc.http_status, error=exc,
                      kind=type(exc).__name__)
    except MissingDependency as missing:  # no template engine: the message, plainly
        text = f"<!doctype html><title>loopml</title><p>{html.escape(str(missing))}</p>"
        if missing is not exc:
            text += f"<p>{html.escape(str(exc))}</p>"
        return HTMLResponse(text, status_code=exc.http_status, headers=SECURITY_HEADERS)


def page(endpoint: E) -> E:
    """A page endpoint (sync or async) whose LoopmlErrors become HTML error pages."""
    if inspect.iscoroutinefunction(endpoint):
        async_endpoint = cast("Callable[[Request], Awaitable[Response]]", endpoint)

        @functools.wraps(endpoint)
        async def run_async(request: Request) -> Response:
            try:
                return await async_endpoint(request)
            except LoopmlError as exc:
                return error_page(request, exc)
        return cast("E", run_async)

    @functools.wraps(endpoint)
    def run(request: Request) -> Response:
        try:
            return cast("Response", endpoint(request))
        except LoopmlError as exc:
            return error_page(request, exc)
    return cast("E", run)
