"""What a running step can ask about itself: its run, its node and the client it logs with."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.client.embedded import Client

__all__ = ["StepContext", "current_step", "step_context"]


@dataclass(frozen=True)
class StepContext:
    client: Client
    #: The step's child run (what ``loopml.log_metric`` inside the step writes to).
    run_id: str
    node: str
    pipeline_run_id: str
    #: Rows a dataset input is cut to in a sample run (``loopml run --sample N``).
    sample: int | None = None


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "loopml_step", default=None)


def current_step() -> StepContext | None:
    """The step running in this context, or None outside a pipeline step."""
    return _current.get()


@contextmanager
def step_context(context: StepContext) -> Iterator[StepContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
