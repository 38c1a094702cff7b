"""The web UI's sign-in: a page with one field, the token, and a session cookie.

::

    GET  /ui/signin?next=/ui/runs   → the form (public)
    POST /ui/signin  token=lml_…&next=/ui/runs
                                    → 303 to ``next`` with the cookie set, or the form again
                                      with 401 and what was wrong
    POST /ui/signout                → 303 to the form, the cookie cleared

The cookie (:data:`loopml.server.auth.SESSION_COOKIE`) holds the token itself: HttpOnly (no
script reads it), SameSite=Strict (no other site's page sends it), Secure over HTTPS, for at
most :data:`SESSION_MAX_AGE_S` or until the token expires. The server keeps no session of its
own, so every server process accepts it, and revoking the token ends the session.
"""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loopml.server.auth import SESSION_COOKIE, cross_site, public
from loopml.server.tokens import InvalidToken, TokenVerifier

__all__ = ["SESSION_MAX_AGE_S", "routes"]

#: The longest a sign-in lasts (a token that expires sooner ends it sooner).
SESSION_MAX_AGE_S = 30 * 86400
_FORM_BYTES = 64 * 1024
_HOME = "/ui/"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · loopml</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; display: grid; place-items: center;
       min-height: 90vh; margin: 0; background: #f6f7f9; color: #1d2330; }}
form {{ background: #fff; padding: 2rem; border-radius: 8px; width: min(28rem, 90vw);
        box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem;
                        font-family: monospace; margin: .4rem 0 1rem; }}
button {{ padding: .5rem 1.2rem; }}
.error {{ color: #b3261e; }} .hint {{ color: #5b6475; font-size: .9rem; }}
</style></head>
<body><form method="post" action="/ui/signin">
<h1>Sign in to loopml</h1>
{message}
<label for="token">Token</label>
<input type="password" id="token" name="token" autocomplete="current-password"
       placeholder="lml_…" autofocus required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
<p class="hint">An admin creates tokens with <code>loopml tokens create NAME --role viewer</code>.
</p></form></body></html>
"""


def _safe_next(target: str | None) -> str:
    """A path on this server to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) \
            or any(ch < " " for ch in target):
        return _HOME
    return target


def _page(next_path: str, *, message: str = "", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = _PAGE.format(message=shown, next=html.escape(_safe_next(next_path), quote=True))
    response = HTMLResponse(body, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@public
async def signin_page(request: Request) -> Response:
    if not request.app.state.options.auth_required:
        return _page(request.query_params.get("next", _HOME),
                     message="Auth is off on this server: no need to sign in.")
    return _page(request.query_params.get("next", _HOME))


@public
async def signin(request: Request) -> Response:
    form = await _read_form(request)
    next_path = _safe_next(form.get("next"))
    if not request.app.state.options.auth_required:
        return RedirectResponse(next_path, status_code=303)
    if cross_site(request.headers):
        return _page(next_path, status=403, message="Sign-in from another site is refused; "
                     "open this page on the loopml server and sign in here.")
    token = (form.get("token") or "").strip()
    verifier = request.state.token_verifier
    assert isinstance(verifier, TokenVerifier)
    if not token:
        return _page(next_path, status=401, message="Paste a token to sign in.")
    try:
        principal = await run_in_threadpool(verifier.verify, token)
    except InvalidToken as exc:
        return _page(next_path, status=401, message=exc.message)
    info = verifier.cached_info(principal.token_id or "")
    max_age = SESSION_MAX_AGE_S
    if info is not None and info.expires_at is not None:
        max_age = max(1, min(max_age, int(info.expires_at / 1000 - time.time())))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@public
async def signout(request: Request) -> Response:
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


async def _read_form(request: Request) -> dict[str, str]:
    """The url-encoded form's first value per field (at most 64 KiB; more is ignored)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _FORM_BYTES:
            return {}
        chunks.append(chunk)
    try:
        fields = parse_qs(b"".join(chunks).decode("utf-8", "replace"), max_num_fields=16)
    except ValueError:  # more fields than a sign-in form has
        return {}
    return {name: values[0] for name, values in fields.items() if values}


def routes() -> list[BaseRoute]:
    return [
        Route("/ui/signin", signin_page, methods=["GET"]),
        Route("/ui/signin", signin, methods=["POST"]),
        Route("/ui/signout", signout, methods=["POST"]),
    ]
