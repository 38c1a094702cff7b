"""Which role an endpoint needs: ``viewer`` < ``editor`` < ``admin``.

By default a request that only reads (GET, HEAD, OPTIONS) needs ``viewer`` and any other
needs ``editor``; an endpoint that needs more (or less) says so with :func:`requires`::

    @requires("admin")
    async def revoke_token(request: Request) -> Response: ...

    @requires("viewer")          # a POST that only reads, such as a search
    async def search_runs(request: Request) -> Response: ...

The auth middleware reads :func:`required_role` for the endpoint a request was routed to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from loopml.errors import InvalidArgument

__all__ = ["ROLES", "Role", "allows", "required_role", "requires"]

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_ATTRIBUTE = "__loopml_role__"

F = TypeVar("F", bound=Callable[..., object])


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidArgument(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def requires(role: Role) -> Callable[[F], F]:
    """Mark an endpoint as needing ``role`` whatever its method."""
    checked = check_role(role)

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, checked)
        return endpoint
    return mark


def required_role(endpoint: object, method: str) -> Role:
    """The role a request with ``method`` to ``endpoint`` needs."""
    marked = getattr(endpoint, _ATTRIBUTE, None)
    if marked is not None:
        return marked  # type: ignore[no-any-return]
    return "viewer" if method.upper() in _READS else "editor"


def allows(held: Role, needed: Role) -> bool:
    """Whether a token with role ``held`` may do what needs ``needed``."""
    return ROLES.index(held) >= ROLES.index(needed)
