"""Mirroring requests to a shadow version, which answers nobody.

After the caller has its answer, :meth:`ShadowMirror.submit` hands the parsed body to the
shadow: a task on the event loop checks it against the shadow's signature and joins the
shadow's own micro-batcher, whose batches run on a thread of their own, so a slow shadow
never holds a thread the served versions need. At most ``max_pending`` mirrored requests
are in flight; beyond that they are dropped and counted (``loopml_shadow_requests_total
{outcome="dropped"}``), never queued without bound. Whatever the shadow answers or raises
goes to ``on_result`` (the payload log, with role ``shadow`` and the caller's request id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from loopml.errors import LoopmlError
from loopml.serving.model import ServedVersion

__all__ = ["ShadowMirror", "ShadowResult"]

logger = logging.getLogger("loopml.serving")

#: (version, request id, method, status, seconds, rows, predictions or None, error or None)
ShadowResult = Callable[[ServedVersion, str, str, int, float, int, Any, str | None], None]


class ShadowMirror:
    """Bounded, fire-and-forget predictions of a shadow version."""

    def __init__(self, *, on_result: ShadowResult, max_pending: int = 1000) -> None:
        self._on_result = on_result
        self._max_pending = max_pending
        self._pending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: dict[tuple[str, ...], float] = {}

    @property
    def pending(self) -> int:
        return self._pending

    def _count(self, version: ServedVersion, outcome: str) -> None:
        key = (version.name, version.label, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def submit(self, version: ServedVersion, body: Any, rid: str, method: str) -> bool:
        """Mirror one request to ``version``; False (counted) when too many are in flight."""
        if self._pending >= self._max_pending or method not in version.batchers:
            self._count(version, "dropped")
            return False
        self._pending += 1
        task = asyncio.get_running_loop().create_task(self._run(version, body, rid, method))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, version: ServedVersion, body: Any, rid: str, method: str) -> None:
        started = time.perf_counter()
        rows, predictions, error, status = 0, None, None, 200
        try:
            if method == "predict_proba" and not version.has_proba:
                raise LoopmlError(f"{version.name}/{version.version} has no predict_proba")
            item = version.validator.check(body)
            rows = item.rows
            predictions = await version.batchers[method].submit(item, item.rows)
        except LoopmlError as exc:
            status, error = exc.http_status, exc.message
        except Exception as exc:  # never reaches a caller
            status, error = 500, f"the shadow failed ({type(exc).__name__})"
        finally:
            self._pending -= 1
        self._count(version, "ok" if status < 400 else "error")
        try:
            self._on_result(version, rid, method, status, time.perf_counter() - started, rows,
                            predictions, error)
        except Exception:
            logger.exception("logging the shadow's answer to request %s failed", rid)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait a while for mirrored requests in flight, then cancel the rest."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in late:
            task.cancel()
