"""What the UI's forms share: reading a url-encoded body, refusing other sites, the actor.

The auth middleware already refuses a cookie-signed write from another site when auth is
on; :func:`read_form` refuses it also when auth is off (the embedded server on localhost),
so a page elsewhere cannot make the browser label items on the user's behalf.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

from loopml.errors import InvalidArgument, PermissionDenied

__all__ = ["MAX_FORM_BYTES", "actor", "read_form"]

MAX_FORM_BYTES = 64 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"


def _cross_site(request: Request) -> bool:
    from loopml.server.auth import cross_site

    return cross_site(request.headers)


async def read_form(request: Request) -> dict[str, str]:
    """The form's last value per field; PermissionDenied from another site, InvalidArgument
    for a body that is not a small url-encoded form."""
    if _cross_site(request):
        raise PermissionDenied("a page of another site may not send this form; use the "
                               "loopml UI itself")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != _FORM_TYPE:
        raise InvalidArgument(f"send the form as {_FORM_TYPE}, not {kind or 'no type'!r}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise InvalidArgument(f"the form is larger than {MAX_FORM_BYTES:,} bytes; send "
                                  "less")
        chunks.append(chunk)
    try:
        fields = parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True,
                          max_num_fields=64)
    except ValueError:
        raise InvalidArgument("the form has too many fields (at most 64)") from None
    return {name: values[-1] for name, values in fields.items() if values}


def actor(request: Request) -> str | None:
    """The signed-in token's name; None (the server's user) when auth is off."""
    principal = getattr(request.state, "principal", None)
    name = getattr(principal, "name", "") or ""
    return name[:200] or None
