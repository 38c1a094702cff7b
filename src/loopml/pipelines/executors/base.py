"""The executor interface: where pipeline steps and tuning trials run.

An executor takes a picklable callable and its arguments and returns a
:class:`concurrent.futures.Future`; ``wait`` and ``cancel`` work on those futures, so the
pipeline runner and the tuner drive every executor the same way. Implementations:

- ``inline`` — in this process, on a few daemon threads (no engine; the default);
- ``processes[:N]`` — a warm pool of N local worker processes (started once, reused);
- ``ray-local`` / ``ray://host:port`` — a Ray cluster (``pip install 'loopml[ray]'``).

``open_executor(spec)`` maps a spec to its class through a scheme table and imports the
implementation only when it is used.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from loopml.errors import InvalidArgument

__all__ = ["EXECUTOR_SCHEMES", "Executor", "Resources", "open_executor", "wait"]

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one task needs: CPUs and GPUs (fractions allowed), plus custom Ray resources."""

    cpu: float = 1.0
    gpu: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Resources | Mapping[str, float] | None) -> Resources:
        """``{"gpu": 0.5, "cpu": 2}`` → Resources; None → the default (one CPU)."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"resources must be a mapping like {{'gpu': 1}}, got {value!r}")
        numbers: dict[str, float] = {}
        for key, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise InvalidArgument(
                    f"resource {key!r} must be a non-negative number, got {amount!r}")
            numbers[str(key).lower()] = float(amount)
        cpu = numbers.pop("cpu", 1.0)
        gpu = numbers.pop("gpu", 0.0)
        return cls(cpu=cpu, gpu=gpu, custom=numbers)


class Executor(ABC):
    """Runs callables somewhere and hands back futures. Subclasses implement ``submit``."""

    #: The spec this executor was opened with (``inline``, ``processes:4``, ``ray://…``).
    spec: str = ""

    @abstractmethod
    def submit(self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None,
               **kwargs: Any) -> cf.Future[T]:
        """Start ``fn(*args, **kwargs)``; the future holds its result or its exception.

        ``fn`` and its arguments must be picklable for executors outside this process
        (functions are sent by value with cloudpickle, so a function defined in a script works).
        """

    def cancel(self, future: cf.Future[Any]) -> bool:
        """Cancel a task that has not started (and, where the engine can, one that has)."""
        return future.cancel()

    @property
    def max_parallel(self) -> int:
        """How many tasks run at once (the runner keeps about this many in flight)."""
        return 1

    @property
    def in_process(self) -> bool:
        """True when tasks run in this interpreter (results need no serialisation)."""
        return False

    def close(self) -> None:  # noqa: B027 - most executors have nothing to release
        """Release workers; the executor cannot be used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait(futures: Iterable[cf.Future[Any]], *, timeout: float | None = None,
         return_when: Literal["FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED"]
         = "FIRST_COMPLETED") -> tuple[set[cf.Future[Any]], set[cf.Future[Any]]]:
    """Wait for futures of any executor: ``(done, not_done)``."""
    done, pending = cf.wait(list(futures), timeout=timeout, return_when=return_when)
    return set(done), set(pending)


#: scheme → "module:Class"; the module is imported only when the scheme is used.
EXECUTOR_SCHEMES: dict[str, str] = {
    "inline": "loopml.pipelines.executors.inline:InlineExecutor",
    "processes": "loopml.pipelines.executors.processes:ProcessExecutor",
    "ray": "loopml.pipelines.executors.ray:RayExecutor",
    "ray-local": "loopml.pipelines.executors.ray:RayExecutor",
}


def _scheme(spec: str) -> str:
    if spec.startswith("ray://"):
        return "ray"
    return spec.split(":", 1)[0].strip().lower()


def open_executor(spec: str | Executor | None = None, *, settings: Any = None) -> Executor:
    """The executor for ``spec``: ``inline`` (default), ``processes[:N]``, ``ray-local`` or
    ``ray://host:port``. An Executor passes through unchanged."""
    if isinstance(spec, Executor):
        return spec
    text = (spec or (settings.executor if settings is not None else "") or "inline").strip()
    target = EXECUTOR_SCHEMES.get(_scheme(text))
    if target is None or (text.startswith("ray") and not (
            text == "ray-local" or text.startswith("ray://"))):
        raise InvalidArgument(
            f"unknown executor {text!r}; known: inline, processes[:N], ray-local, "
            "ray://host:port (e.g. ray://127.0.0.1:10001)")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    executor: Executor = cls.from_spec(text, settings=settings)
    executor.spec = text
    return executor
