"""Who is acting: the operating-system user recorded on runs, versions and audit events.

Kept in a module of its own so the fast command paths can use it without importing the
tracking package."""

from __future__ import annotations

import functools
import getpass

__all__ = ["current_user"]


@functools.cache
def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
