"""``@loopml.step``: a Python function that a pipeline runs, caches and retries.

Called inside a ``@loopml.pipeline`` function, a step does not run: it records a node of
the DAG and returns a :class:`~loopml.pipelines.trace.StepOutput` standing for its result.
Called anywhere else it is the plain function, so steps stay easy to unit-test.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from loopml import durations
from loopml.errors import InvalidArgument
from loopml.pipelines.executors.base import Resources

__all__ = ["Step", "StepOptions", "parse_duration", "step"]

P = ParamSpec("P")
R = TypeVar("R")

def parse_duration(value: str | float | None, *, what: str = "timeout") -> float | None:
    """``"10m"``, ``"30s"``, ``"1.5h"``, ``250`` (seconds) → seconds; None stays None."""
    return None if value is None else durations.parse_duration(value, what=what)


@dataclass(frozen=True)
class StepOptions:
    """How a step runs. ``retries`` re-runs a failed step after ``retry_delay`` seconds,
    doubling the delay each time; ``timeout`` bounds each attempt; ``cache=False`` always
    executes; ``resources`` is what the executor reserves (``{"gpu": 0.5}``)."""

    name: str
    retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    cache: bool = True
    resources: Resources = field(default_factory=Resources)
    #: Steps that publish (register a model, deploy) are skipped in sample runs.
    publishes: bool = False


class Step(Generic[P, R]):
    """A function made a pipeline step by :func:`step`."""

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        if not callable(fn) or inspect.isclass(fn):
            raise InvalidArgument(f"@step decorates a function, got {fn!r}")
        self.fn = fn
        self.options = options
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"<Step {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from loopml.pipelines.trace import current_tracer

        tracer = current_tracer()
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.add_call(self, args, kwargs)  # type: ignore[return-value]

    def map(self, items: Iterable[Any], /, **kwargs: Any) -> Any:
        """Fan out: one instance of the step per item (given as the first argument), run in
        parallel on the executor; the result stands for the list of their results."""
        from loopml.pipelines.trace import require_tracer

        return require_tracer(f"{self.name}.map").add_map(self, items, kwargs)

    def with_options(self, **changes: Any) -> Step[P, R]:
        """A copy of the step with some options changed (``retries=3``, ``cache=False``…)."""
        return Step(self.fn, _options(self.options.name, **{
            **{f.name: getattr(self.options, f.name) for f in dataclasses.fields(StepOptions)
               if f.name != "name"}, **changes}))

    @functools.cached_property
    def code_hash(self) -> str:
        """Hash of the step's source code (its bytecode when the source is unavailable) and
        of the loopml version: a change to either invalidates cached results."""
        import loopml
        from loopml.blobs.hashing import hash_bytes

        try:
            code = inspect.getsource(self.fn).encode()
        except (OSError, TypeError):
            raw = getattr(self.fn, "__code__", None)
            code = raw.co_code + repr(raw.co_consts).encode() if raw is not None else b""
        return hash_bytes(code + b"\0loopml=" + loopml.__version__.encode())

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        """Arguments matched to parameters; a LoopmlError names what is missing or extra."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            params = ", ".join(self.signature.parameters) or "no parameters"
            raise InvalidArgument(f"step {self.name!r} called with bad arguments ({exc}); its "
                                  f"parameters are: {params}") from None
        return bound


def _options(name: str, *, retries: int = 0, retry_delay: float | str = 1.0,
             timeout: float | str | None = None, cache: bool = True,
             resources: Resources | Mapping[str, float] | None = None,
             publishes: bool = False) -> StepOptions:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidArgument(f"step {name!r}: retries must be a whole number >= 0, "
                              f"got {retries!r}")
    delay = parse_duration(retry_delay, what=f"step {name!r} retry_delay")
    return StepOptions(name=name, retries=retries, retry_delay=delay or 0.0,
                       timeout=parse_duration(timeout, what=f"step {name!r} timeout"),
                       cache=bool(cache), resources=Resources.parse(resources),
                       publishes=publishes)


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(*, name: str | None = None, retries: int = 0, retry_delay: float | str = 1.0,
         timeout: float | str | None = None, cache: bool = True,
         resources: Mapping[str, float] | None = None) -> Callable[[Callable[P, R]], Step[P, R]]:
    ...


def step(fn: Callable[P, R] | None = None, /, *, name: str | None = None, retries: int = 0,
         retry_delay: float | str = 1.0, timeout: float | str | None = None, cache: bool = True,
         resources: Mapping[str, float] | None = None) -> Any:
    """Make a function a pipeline step: ``@step`` or ``@step(retries=2, timeout="10m")``.

    ``resources={"gpu": 1}`` (fractions allowed) asks the executor for a GPU (Ray schedules
    it); ``cache=False`` re-executes the step on every run.
    """

    def decorate(function: Callable[P, R]) -> Step[P, R]:
        step_name = name or str(getattr(function, "__name__", "step"))
        return Step(function, _options(step_name, retries=retries, retry_delay=retry_delay,
                                       timeout=timeout, cache=cache, resources=resources))

    return decorate(fn) if fn is not None else decorate
