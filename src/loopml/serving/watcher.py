"""Following a model reference: when the alias moves, load the new version and swap.

The watcher runs on the server's event loop. Every ``interval_s`` it asks (in a thread)
which version the reference names; when that differs from the served one it loads and warms
the new version in a thread, while the old one keeps answering, then hands it to
``on_ready`` (which swaps it in). A version that fails to load is logged, counted and tried
again after ``retry_s``. A reference to a fixed version is loaded once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from loopml.registry.refs import ModelRef
from loopml.serving.model import ServedVersion

__all__ = ["AliasWatcher"]

logger = logging.getLogger("loopml.serving")


class AliasWatcher:
    """Polls ``lookup`` and loads what it names with ``load``."""

    def __init__(self, ref: ModelRef, *, lookup: Callable[[], tuple[int, str]],
                 load: Callable[[int, str], ServedVersion],
                 on_ready: Callable[[ServedVersion], None],
                 on_failure: Callable[[int, BaseException], None],
                 interval_s: float = 1.0, retry_s: float = 30.0) -> None:
        self.ref = ref
        self._lookup = lookup
        self._load = load
        self._on_ready = on_ready
        self._on_failure = on_failure
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._serving: tuple[int, str] | None = None
        self._failed: dict[tuple[int, str], float] = {}
        self.last_error: str | None = None

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll()
            if self.ref.version is not None and self._serving is not None:
                return  # a fixed version never moves
            await asyncio.sleep(self._interval_s)

    async def poll(self) -> None:
        """One look at the registry, and a load if the reference has moved."""
        try:
            target = await asyncio.to_thread(self._lookup)
        except Exception as exc:
            self._note(f"cannot resolve {self.ref}: {exc}")
            return
        if target == self._serving:
            return
        failed_at = self._failed.get(target)
        if failed_at is not None and time.monotonic() - failed_at < self._retry_s:
            return
        try:
            served = await asyncio.to_thread(self._load, *target)
        except Exception as exc:
            self._failed[target] = time.monotonic()
            self._note(f"cannot load {self.ref.name}/{target[0]}: {type(exc).__name__}: {exc}")
            self._on_failure(target[0], exc)
            return
        self._serving = target
        self.last_error = None
        self._on_ready(served)

    def _note(self, message: str) -> None:
        if message != self.last_error:
            logger.error("%s", message)
        self.last_error = message
