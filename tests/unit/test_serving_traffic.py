"""Traffic policies in the server: the canary split, sticky keys, the rollback guard, and
the shadow's batched mirror."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

import pytest

from loopml.deployments.policy import RollbackRule, TrafficPolicy, parse_canary
from loopml.errors import InvalidArgument, ModelFailed
from loopml.serving.guard import RollbackGuard
from loopml.serving.model import ServedVersion
from loopml.serving.router import Router, Routes, sticky_bucket
from loopml.serving.shadow import ShadowMirror
from loopml.serving.validation import Checked

PRIMARY = cast(ServedVersion, object())
CANARY = cast(ServedVersion, object())
NO_HEADERS: dict[str, Any] = {"headers": []}


def _router(sticky: tuple[str, str] | None = ("header", "x-loopml-key")) -> Router:
    router = Router()
    router.install(Routes(primary=PRIMARY, canary=CANARY, percent=10, sticky=sticky))
    return router


def test_requests_without_a_key_split_exactly() -> None:
    router = _router()
    picks = [router.pick(NO_HEADERS) for _ in range(1000)]
    assert picks.count(CANARY) == 100
    assert picks[:10].count(CANARY) == 1  # spread out, not bunched


def test_a_key_always_meets_the_same_version() -> None:
    router = _router()
    scopes = [{"headers": [(b"x-loopml-key", f"user-{i}".encode())]} for i in range(2000)]
    first = [router.pick(scope) for scope in scopes]
    assert [router.pick(scope) for scope in scopes] == first
    assert 140 <= first.count(CANARY) <= 260  # 10% of 2000, by the hash
    assert sticky_bucket(b"user-1") == sticky_bucket(b"user-1")


def test_a_json_field_can_be_the_key() -> None:
    router = _router(("field", "user"))
    bodies = [{"inputs": [[0.0]], "user": i} for i in range(500)]
    first = [router.pick(NO_HEADERS, body) for body in bodies]
    assert [router.pick(NO_HEADERS, body) for body in bodies] == first
    assert 0 < first.count(CANARY) < 500


def test_the_safe_version_of_a_canary_and_of_a_primary_on_trial() -> None:
    routes = Routes(primary=PRIMARY, canary=CANARY, percent=10)
    assert routes.candidate is CANARY and routes.safe_for(CANARY) is PRIMARY
    assert routes.safe_for(PRIMARY) is None
    trial = Routes(primary=CANARY, fallback=PRIMARY)
    assert trial.candidate is CANARY and trial.safe_for(CANARY) is PRIMARY
    assert Routes(primary=PRIMARY).candidate is None


def test_the_guard_fires_on_error_rate_and_p99_over_its_window() -> None:
    guard = RollbackGuard(RollbackRule(max_error_rate=0.2, window_s=10, min_requests=10))
    for _ in range(9):
        guard.observe(True, 0.001)
    assert guard.breach() is None  # fewer requests than min_requests
    guard.observe(False, 0.001)
    reason = guard.breach()
    assert reason is not None and "error rate 90.0%" in reason and "10 requests" in reason
    assert guard.breach(now=time.monotonic() + 11) is None  # the window moved on
    slow = RollbackGuard(RollbackRule(max_p99_ms=50, window_s=10, min_requests=5))
    for seconds in (0.01, 0.01, 0.01, 0.01, 0.2):
        slow.observe(False, seconds)
    assert "p99 latency 200.0 ms" in (slow.breach() or "")


def test_policy_round_trips_and_refuses_bad_values() -> None:
    policy = TrafficPolicy(model="churn@production", canary=parse_canary("churn/2=2.5%"),
                           shadow="churn/3", rollback=RollbackRule(max_p99_ms=80))
    assert TrafficPolicy.from_json(policy.to_json()) == policy
    with pytest.raises(InvalidArgument, match="max_error_rate"):
        RollbackRule()
    with pytest.raises(InvalidArgument, match="invalid alias"):
        TrafficPolicy(model="churn@")


class _Shadow:
    """What the mirror needs of a served version: a check and a batched ``run``."""

    name, version, label, has_proba = "churn", 7, "7", False

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.validator = SimpleNamespace(batchable=True, key="k",
                                         check=lambda body: Checked(1, body))

    def run(self, method: str, items: list[Checked]) -> list[Any]:
        self.batches.append(len(items))
        return [ModelFailed("boom") if item.data < 0 else [item.data * 10] for item in items]


def test_a_shadow_predicts_in_batches_off_the_loop_and_drops_past_its_bound() -> None:
    shadow = _Shadow()
    answers: list[tuple[Any, ...]] = []
    executor = ThreadPoolExecutor(1)
    mirror = ShadowMirror(on_result=lambda version, method, got: answers.extend(got),
                          executor=executor, max_pending=50, batch_rows=16, max_wait_s=0.01)

    async def mirror_all() -> list[bool]:
        accepted = [mirror.submit(cast(ServedVersion, shadow), -1 if i == 3 else i, f"r{i}",
                                  "predict") for i in range(60)]
        await mirror.close()
        return accepted

    accepted = asyncio.run(mirror_all())
    executor.shutdown()
    assert accepted == [True] * 50 + [False] * 10  # 50 queued or in flight at most
    assert shadow.batches == [16, 16, 16, 2]  # the first job left at 16, the rest at close
    assert [a[0] for a in answers] == [f"r{i}" for i in range(50)]
    assert answers[3][1] == 500 and answers[3][5] == "boom"
    assert answers[4][1:5:3] == (200, [40])
    assert mirror.counts == {("churn", "7", "ok"): 49, ("churn", "7", "error"): 1,
                             ("churn", "7", "dropped"): 10}
