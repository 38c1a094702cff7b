"""The automatic rollback rule, evaluated in the server.

A :class:`RollbackGuard` watches the version on trial (a canary, or a primary that replaced
another while a rule is set): each of its answers is observed (failed or not, and how long
it took). Every ``check_interval_s`` the server asks :meth:`RollbackGuard.breach` whether,
over the last ``window_s`` seconds and at least ``min_requests`` answers, the share of
answers the model failed (a 5xx) is over ``max_error_rate`` or the 99th percentile latency
is over ``max_p99_ms``; the answer is the reason, in words, that the rollback records. With
``on_alerts``, the server also looks every ``alert_check_s`` for monitoring alerts of those
kinds raised about the version on trial since its trial began.
Observing costs a deque append; the window is pruned when it is checked.
"""

from __future__ import annotations

import math
import time
from collections import deque

from loopml.deployments.policy import RollbackRule

__all__ = ["RollbackGuard"]


class RollbackGuard:
    """A sliding window of one version's answers under a :class:`RollbackRule`."""

    def __init__(self, rule: RollbackRule) -> None:
        self.rule = rule
        #: The id of the last monitoring alert seen (None: not looked yet), for ``on_alerts``.
        self.alert_cursor: int | None = None
        self._window: deque[tuple[float, bool, float]] = deque()
        self._max_len = 100_000

    def observe(self, failed: bool, seconds: float) -> None:
        window = self._window
        window.append((time.monotonic(), failed, seconds))
        if len(window) > self._max_len:
            window.popleft()

    def reset(self) -> None:
        self._window.clear()

    def breach(self, now: float | None = None) -> str | None:
        """Why the rule is breached, or None."""
        rule = self.rule
        window = self._window
        horizon = (time.monotonic() if now is None else now) - rule.window_s
        while window and window[0][0] < horizon:
            window.popleft()
        count = len(window)
        if count < rule.min_requests:
            return None
        span = f"over the last {rule.window_s:g} s ({count} requests)"
        if rule.max_error_rate is not None:
            failed = sum(1 for _, bad, _ in window if bad)
            if failed / count > rule.max_error_rate:
                return (f"error rate {failed / count:.1%} {span} is over the limit of "
                        f"{rule.max_error_rate:.1%}")
        if rule.max_p99_ms is not None:
            latencies = sorted(seconds for _, _, seconds in window)
            p99 = latencies[max(0, math.ceil(0.99 * count) - 1)] * 1000
            if p99 > rule.max_p99_ms:
                return (f"p99 latency {p99:.1f} ms {span} is over the limit of "
                        f"{rule.max_p99_ms:g} ms")
        return None
