"""Tracing a pipeline function into a DAG.

While a ``@pipeline`` function runs under a :class:`Tracer`, each step call adds a
:class:`Node` and returns a :class:`StepOutput` placeholder; passing a placeholder to
another step is what makes an edge. Nothing executes during tracing, so errors in the
wiring (a missing argument, an argument the cache cannot hash) surface before any step runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import Conflict, InvalidArgument
from loopml.pipelines.datasets import Dataset
from loopml.pipelines.steps import Step

__all__ = ["Gate", "Graph", "Node", "StepOutput", "Tracer", "current_tracer", "require_tracer",
           "walk", "when"]

_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "loopml_tracer", default=None)


@dataclass(frozen=True)
class StepOutput:
    """The future result of a step inside a pipeline definition."""

    node: str

    def __bool__(self) -> bool:
        raise InvalidArgument(
            f"the result of step {self.node!r} is not known while the pipeline is being "
            "defined, so it cannot be used in 'if'; gate the later steps with "
            "'with loopml.when(condition):' or pass it to a step that decides")

    def __iter__(self) -> Iterator[Any]:
        raise InvalidArgument(
            f"the result of step {self.node!r} is not known while the pipeline is being "
            "defined, so it cannot be unpacked or iterated; pass it whole to the next step")

    def __repr__(self) -> str:
        return f"<output of {self.node}>"


@dataclass(frozen=True)
class Gate:
    """Run the gated node only if the output of ``condition`` is truthy."""

    condition: str
    reason: str


@dataclass
class Node:
    id: str
    step: Step[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deps: tuple[str, ...]
    gates: tuple[Gate, ...] = ()

    @property
    def upstream(self) -> tuple[str, ...]:
        """Nodes that must finish first: data dependencies and gate conditions."""
        extra = tuple(g.condition for g in self.gates if g.condition not in self.deps)
        return self.deps + extra

    def params(self) -> dict[str, Any]:
        """The plain (non-output, non-dataset) arguments, by parameter name: logged as the
        step run's params."""
        bound = self.step.signature.bind_partial(*self.args, **self.kwargs)
        return {name: value for name, value in bound.arguments.items()
                if not any(True for _ in walk(value, (StepOutput, Dataset)))}


@dataclass
class Graph:
    """The traced DAG: nodes in a topological order (the order they were defined)."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def check(self) -> None:
        """A LoopmlError if an edge points to an unknown node or the edges form a cycle."""
        seen: set[str] = set()
        for node in self.nodes.values():
            for dep in node.upstream:
                if dep not in self.nodes:
                    raise InvalidArgument(f"step {node.id!r} depends on {dep!r}, which is not "
                                          "a step of this pipeline")
                if dep not in seen:
                    raise InvalidArgument(
                        f"the pipeline has a cycle through {node.id!r} and {dep!r}; a step "
                        "can only use the outputs of steps defined before it")
            seen.add(node.id)

    def downstream(self, node_id: str) -> set[str]:
        """Every node that depends on ``node_id``, directly or not."""
        found: set[str] = set()
        for node in self.nodes.values():
            if any(dep == node_id or dep in found for dep in node.upstream):
                found.add(node.id)
        return found

    def to_json(self) -> dict[str, Any]:
        return {"nodes": [{"id": n.id, "step": n.step.name, "deps": list(n.upstream),
                           "gates": [g.reason for g in n.gates]}
                          for n in self.nodes.values()]}


def walk(value: Any, kinds: tuple[type, ...]) -> Iterator[Any]:
    """Every instance of ``kinds`` inside ``value`` (through lists, tuples and dicts)."""
    if isinstance(value, kinds):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk(item, kinds)
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item, kinds)


_PLAIN = (str, int, float, bool, type(None))


def _check_hashable(step: str, name: str, value: Any) -> None:
    if isinstance(value, (StepOutput, Dataset, *_PLAIN)):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_hashable(step, name, item)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_hashable(step, name, item)
        return
    raise InvalidArgument(
        f"argument {name!r} of step {step!r} is a {type(value).__name__}; inside a pipeline "
        "a step takes step outputs, loopml.Dataset(...) inputs or plain values (numbers, "
        "strings, lists, dicts) that the cache can hash; build other objects inside the step")


class Tracer:
    """Collects the nodes of one pipeline definition."""

    def __init__(self) -> None:
        self.graph = Graph()
        self._counts: dict[str, int] = {}
        self._gates: list[Gate] = []

    def _node_id(self, name: str) -> str:
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        return name if count == 1 else f"{name}_{count}"

    def _add(self, node_id: str, step: Step[Any, Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> StepOutput:
        bound = step.bind(args, kwargs)
        for name, value in bound.arguments.items():
            _check_hashable(step.name, name, value)
        deps: list[str] = []
        for output in walk((args, kwargs), (StepOutput,)):
            if output.node not in self.graph.nodes:
                raise InvalidArgument(f"step {step.name!r} was given the output of "
                                      f"{output.node!r}, which belongs to another pipeline")
            if output.node not in deps:
                deps.append(output.node)
        self.graph.nodes[node_id] = Node(node_id, step, tuple(args), dict(kwargs),
                                         tuple(deps), tuple(self._gates))
        return StepOutput(node_id)

    def add_call(self, step: Step[Any, Any], args: tuple[Any, ...],
                 kwargs: Mapping[str, Any]) -> StepOutput:
        return self._add(self._node_id(step.name), step, tuple(args), dict(kwargs))

    def add_map(self, step: Step[Any, Any], items: Iterable[Any],
                kwargs: Mapping[str, Any]) -> list[StepOutput]:
        if isinstance(items, StepOutput):
            raise InvalidArgument(
                f"{step.name}.map needs the items while the pipeline is defined (a list or "
                f"a pipeline parameter), not the output of step {items.node!r}; map over "
                "known items, or loop inside one step")
        values = list(items)
        if not values:
            raise InvalidArgument(f"{step.name}.map was given no items; give at least one")
        base = self._node_id(step.name)
        return [self._add(f"{base}[{index}]", step, (item,), dict(kwargs))
                for index, item in enumerate(values)]

    @contextmanager
    def gate(self, condition: StepOutput, reason: str) -> Iterator[None]:
        self._gates.append(Gate(condition.node, reason))
        try:
            yield
        finally:
            self._gates.pop()


def current_tracer() -> Tracer | None:
    return _tracer.get()


def require_tracer(what: str) -> Tracer:
    tracer = _tracer.get()
    if tracer is None:
        raise Conflict(f"{what} is only meaningful inside a @loopml.pipeline function; call "
                       "the step directly to run it once")
    return tracer


@contextmanager
def tracing() -> Iterator[Tracer]:
    tracer = Tracer()
    token = _tracer.set(tracer)
    try:
        yield tracer
    finally:
        _tracer.reset(token)


@contextmanager
def when(condition: StepOutput, *, reason: str | None = None) -> Iterator[None]:
    """Inside a pipeline: the steps defined in this block run only if ``condition`` (the
    output of a step) is truthy; otherwise they, and what depends on them, are skipped."""
    if not isinstance(condition, StepOutput):
        raise InvalidArgument(f"loopml.when takes the output of a step, got "
                              f"{type(condition).__name__}")
    tracer = require_tracer("loopml.when")
    with tracer.gate(condition, reason or f"{condition.node} was false"):
        yield
