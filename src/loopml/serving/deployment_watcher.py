"""Following a deployment: its traffic policy and the versions its references name.

The watcher runs on the server's event loop. Every ``interval_s`` it reads the deployment
(in a thread) and resolves its primary, canary and shadow references; when the policy's
revision or a resolved version differs from what is served, it loads the versions not
loaded yet (in a thread, while the current routes keep answering) and hands new
:class:`~loopml.serving.router.Routes` to ``install``. Versions already served are reused,
not loaded again.

With a rollback rule and no canary, a primary that replaces another keeps the one it
replaced as its ``fallback`` (loaded and warm), so that a rollback is a switch, not a load.
A version that fails to load is logged, counted and tried again after ``retry_s``; a canary
or shadow that fails leaves the primary serving alone meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from loopml.deployments.policy import parse_sticky
from loopml.deployments.records import Deployment
from loopml.registry.refs import ModelRef, parse_model_ref
from loopml.serving.model import ServedVersion
from loopml.serving.router import Routes

__all__ = ["DeploymentWatcher"]

logger = logging.getLogger("loopml.serving")

Target = tuple[str, int, str]  # model name, version, package tree


class DeploymentWatcher:
    """Polls ``read`` and installs the routes its policy names."""

    def __init__(self, name: str, *, read: Callable[[], Deployment],
                 resolve: Callable[[ModelRef], tuple[int, str]],
                 load: Callable[[str, int, str], ServedVersion],
                 current: Callable[[], Routes | None], install: Callable[[Routes], None],
                 on_failure: Callable[[str, int, BaseException], None],
                 interval_s: float = 1.0, retry_s: float = 30.0) -> None:
        self.name = name
        self._read = read
        self._resolve = resolve
        self._load = load
        self._current = current
        self._install = install
        self._on_failure = on_failure
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._served: tuple[int, tuple[Target | None, ...]] | None = None
        self._failed: dict[Target, float] = {}
        self.last_error: str | None = None
        self.deployment: Deployment | None = None

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll()
            await asyncio.sleep(self._interval_s)

    def _targets(self, deployment: Deployment) -> tuple[Target | None, ...]:
        policy = deployment.policy
        refs = (policy.primary,
                parse_model_ref(policy.canary.model) if policy.canary else None,
                parse_model_ref(policy.shadow) if policy.shadow else None)
        return tuple(None if ref is None else (ref.name, *self._resolve(ref)) for ref in refs)

    async def poll(self) -> None:
        """One look at the deployment, and new routes if it has changed."""
        try:
            deployment = await asyncio.to_thread(self._read)
            targets = await asyncio.to_thread(self._targets, deployment)
        except Exception as exc:
            self._note(f"cannot read deployment {self.name!r}: {exc}")
            return
        self.deployment = deployment
        key = (deployment.revision, targets)
        if key == self._served:
            return
        loaded = await self._load_all(targets)
        primary, canary, shadow = loaded
        if primary is None:
            return  # the routes in place keep answering
        policy = deployment.policy
        previous = self._current()
        fallback = None
        if policy.rollback is not None and canary is None and previous is not None:
            if previous.primary is not primary:
                fallback = previous.primary
            elif previous.fallback is not None and previous.fallback is not primary:
                fallback = previous.fallback
        routes = Routes(primary=primary, canary=canary,
                        percent=policy.canary.percent if canary and policy.canary else 0.0,
                        sticky=parse_sticky(policy.canary.sticky) if policy.canary else None,
                        shadow=shadow, fallback=fallback, revision=deployment.revision)
        self._install(routes)
        if all((t is None) == (v is None) for t, v in zip(targets, loaded, strict=True)):
            self._served = key
            self.last_error = None

    async def _load_all(self, targets: tuple[Target | None, ...]
                        ) -> list[ServedVersion | None]:
        current = self._current()
        have = {(v.name, v.version, v.tree): v for v in current.versions()} if current else {}
        loaded: list[ServedVersion | None] = []
        for target in targets:
            if target is None:
                loaded.append(None)
                continue
            found = have.get(target)
            if found is None:
                found = await self._load_one(target)
                if found is not None:
                    have[target] = found
            loaded.append(found)
        return loaded

    async def _load_one(self, target: Target) -> ServedVersion | None:
        failed_at = self._failed.get(target)
        if failed_at is not None and time.monotonic() - failed_at < self._retry_s:
            return None
        try:
            return await asyncio.to_thread(self._load, *target)
        except Exception as exc:
            self._failed[target] = time.monotonic()
            self._note(f"cannot load {target[0]}/{target[1]} for deployment {self.name!r}: "
                       f"{type(exc).__name__}: {exc}")
            self._on_failure(target[0], target[1], exc)
            return None

    def _note(self, message: str) -> None:
        if message != self.last_error:
            logger.error("%s", message)
        self.last_error = message
