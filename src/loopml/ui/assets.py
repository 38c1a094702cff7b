"""The pages' static files: loopml's own CSS and script, and Plotly from its installed package.

No third-party file is copied into loopml: ``/ui/static/plotly.min.js`` is the file the
``plotly`` distribution ships in its ``package_data`` directory, found without importing
plotly's Python package. Without it the pages still load and show their tables; the script
route answers 404 with the command that installs it.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from loopml.errors import MissingDependency, NotFound

__all__ = ["STATIC_DIR", "plotly_script", "static_file"]

STATIC_DIR = Path(__file__).with_name("static")
_MEDIA = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_OWN = frozenset({"ui.css", "ui.js"})
#: Assets change with the installed version only: a day of caching is safe.
_CACHE = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


@functools.cache
def plotly_path() -> Path:
    """Where the installed ``plotly`` package keeps ``plotly.min.js``."""
    spec = importlib.util.find_spec("plotly")
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    for location in locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    raise MissingDependency("the web UI's charts", package="plotly", extra="ui")


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=_MEDIA[path.suffix], headers=_CACHE)


async def static_file(request: Request) -> Response:
    """``/ui/static/ui.css`` and ``/ui/static/ui.js``."""
    name = request.path_params["name"]
    if name not in _OWN:
        raise NotFound(f"no static file {name!r}; the UI serves {', '.join(sorted(_OWN))} and "
                       "plotly.min.js")
    return _file(STATIC_DIR / name)


async def plotly_script(request: Request) -> Response:
    """``/ui/static/plotly.min.js`` from the installed plotly package."""
    try:
        path = plotly_path()
    except MissingDependency as exc:
        raise NotFound(str(exc)) from None
    return _file(path)
