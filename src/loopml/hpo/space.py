"""Search spaces: what each hyperparameter may be, written in Python, YAML or on the CLI.

A space maps a parameter name to a dimension: :class:`FloatRange`, :class:`IntRange` or
:class:`Choice`. The same dimension can be written five ways, all parsed by :func:`parse_space`::

    FloatRange(1e-4, 1e-1, log=True)                 # typed
    ("float", 1e-4, 1e-1, {"log": True})              # tuple: kind, bounds, options
    "float:1e-4:1e-1:log"                             # text (YAML value, --param lr=...)
    {"type": "float", "low": 1e-4, "high": 0.1, "log": True}   # mapping (YAML)
    ["adam", "sgd"]                                   # a list is a choice

Text form: ``float:LOW:HIGH[:log][:step=S]``, ``int:LOW:HIGH[:log][:step=S]`` and
``choice:A,B,C`` (numbers, ``true``/``false`` and ``none`` are read as such). Every
dimension prints back to its text form (:meth:`FloatRange.describe`), which is how the
tuning run records its space as params. Bad specs raise :class:`InvalidArgument` naming the
parameter, the value and a form that works.

Dimensions import Optuna only when asked for a value (:meth:`FloatRange.suggest`) or for
their Optuna distribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument

__all__ = ["Choice", "Dimension", "FloatRange", "IntRange", "SearchSpace", "load_space_file",
           "parse_dimension", "parse_param_option", "parse_space"]

ChoiceValue = None | bool | int | float | str
_KINDS = "float, int or choice"
_EXAMPLE = '("float", 1e-4, 1e-1, {"log": True}), ("int", 2, 10) or ["a", "b"]'


def _bad(name: str, problem: str, fix: str) -> InvalidArgument:
    return InvalidArgument(f"search space parameter {name!r}: {problem}; {fix}")


def _number(name: str, what: str, value: Any, *, integer: bool) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise _bad(name, f"{what} must be {kind}, got {value!r}",
                   f"write e.g. ({'int' if integer else 'float'!r}, 1, 10)")
    return value


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``; ``log=True`` samples on a log scale, ``step`` a grid."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def check(self, name: str) -> FloatRange:
        low = float(_number(name, "low", self.low, integer=False))
        high = float(_number(name, "high", self.high, integer=False))
        if low > high:
            raise _bad(name, f"low {low:g} is above high {high:g}", "swap the bounds")
        if self.log and low <= 0:
            raise _bad(name, f"a log scale needs low > 0, got {low:g}",
                       "use a positive lower bound such as 1e-6, or drop log")
        if self.step is not None:
            step = _number(name, "step", self.step, integer=False)
            if step <= 0 or self.log:
                raise _bad(name, f"step must be > 0 and cannot go with log, got step={step!r}"
                           f"{' and log' if self.log else ''}", "drop one of them")
        return FloatRange(low, high, bool(self.log),
                          None if self.step is None else float(self.step))

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: Any, name: str) -> float:
        value: float = trial.suggest_float(name, self.low, self.high, log=self.log,
                                           step=self.step)
        return value

    def describe(self) -> str:
        return _describe("float", self.low, self.high, self.log, self.step)


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``; ``log=True`` samples on a log scale, ``step`` a grid."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def check(self, name: str) -> IntRange:
        low = _number(name, "low", self.low, integer=True)
        high = _number(name, "high", self.high, integer=True)
        step = _number(name, "step", self.step, integer=True)
        if low > high:
            raise _bad(name, f"low {low} is above high {high}", "swap the bounds")
        if step < 1:
            raise _bad(name, f"step must be at least 1, got {step}", "use step=1 or more")
        if self.log and (low < 1 or step != 1):
            raise _bad(name, f"a log scale needs low >= 1 and step 1, got low={low}, "
                       f"step={step}", "raise low to 1 or more and drop step, or drop log")
        return IntRange(low, high, bool(self.log), step)

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: Any, name: str) -> int:
        value: int = trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)
        return value

    def describe(self) -> str:
        return _describe("int", self.low, self.high, self.log, None if self.step == 1
                         else self.step)


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (None, bools, numbers or strings)."""

    values: tuple[ChoiceValue, ...]

    def __init__(self, values: Sequence[ChoiceValue]) -> None:
        if isinstance(values, str) or not isinstance(values, Sequence):
            values = [values]  # type: ignore[list-item]  # checked below
        object.__setattr__(self, "values", tuple(values))

    def check(self, name: str) -> Choice:
        if not self.values:
            raise _bad(name, "a choice needs at least one value, got none",
                       'list the values, e.g. ["adam", "sgd"]')
        for value in self.values:
            if value is not None and not isinstance(value, bool | int | float | str):
                raise _bad(name, f"choice value {value!r} is a {type(value).__name__}",
                           "use None, booleans, numbers or strings (map them to objects in "
                           "the objective)")
        if len(set(map(repr, self.values))) != len(self.values):
            raise _bad(name, f"choice values {list(self.values)!r} repeat", "list each once")
        return self

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def suggest(self, trial: Any, name: str) -> ChoiceValue:
        value: ChoiceValue = trial.suggest_categorical(name, self.values)
        return value

    def describe(self) -> str:
        return "choice:" + ",".join("none" if v is None else str(v).lower()
                                    if isinstance(v, bool) else str(v) for v in self.values)


Dimension = FloatRange | IntRange | Choice


def _describe(kind: str, low: float, high: float, log: bool, step: float | None) -> str:
    parts = [kind, repr(low), repr(high)]
    if log:
        parts.append("log")
    if step is not None:
        parts.append(f"step={step!r}")
    return ":".join(parts)


class SearchSpace(Mapping[str, Dimension]):
    """Parameter name → checked dimension, in the order given. Build with :func:`parse_space`."""

    def __init__(self, dimensions: Mapping[str, Dimension]) -> None:
        self._dims = dict(dimensions)

    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def __repr__(self) -> str:
        return f"SearchSpace({self.describe()!r})"

    def describe(self) -> dict[str, str]:
        """Each parameter's text form, e.g. ``{"lr": "float:0.0001:0.1:log"}``."""
        return {name: dim.describe() for name, dim in self._dims.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for one value of each parameter."""
        return {name: dim.suggest(trial, name) for name, dim in self._dims.items()}


def parse_space(space: Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """A checked :class:`SearchSpace` from any of the forms in the module docstring."""
    if isinstance(space, SearchSpace):
        return space
    if not isinstance(space, Mapping):
        raise InvalidArgument(f"space must be a mapping of parameter name to spec, got "
                              f"{type(space).__name__} {space!r}; e.g. space={{'lr': "
                              f"{_EXAMPLE.split(', (')[0]}}}")
    dims: dict[str, Dimension] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"search space parameter names must be non-empty strings, "
                                  f"got {name!r}")
        dims[name] = parse_dimension(name, spec)
    return SearchSpace(dims)


def parse_dimension(name: str, spec: Any) -> Dimension:
    """One checked dimension from a typed object, tuple, text, mapping or list."""
    if isinstance(spec, FloatRange | IntRange | Choice):
        return spec.check(name)
    if isinstance(spec, str):
        return _from_text(name, spec)
    if isinstance(spec, Mapping):
        return _from_mapping(name, spec)
    if isinstance(spec, list):
        return Choice(spec).check(name)
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str):
        return _from_tuple(name, spec)
    raise _bad(name, f"cannot read the spec {spec!r}", f"write it as {_EXAMPLE}")


def _build(name: str, kind: str, args: Sequence[Any], options: Mapping[str, Any]) -> Dimension:
    kind = kind.strip().lower()
    allowed = {"float": ("log", "step"), "int": ("log", "step"), "choice": ()}.get(
        "choice" if kind == "categorical" else kind)
    if allowed is None:
        raise _bad(name, f"unknown type {kind!r}", f"use {_KINDS}, e.g. {_EXAMPLE}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise _bad(name, f"unknown option {unknown[0]!r} for {kind}",
                   f"options of {kind}: {', '.join(allowed) or 'none'}")
    if kind in ("choice", "categorical"):
        values = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
        return Choice(list(values)).check(name)
    if len(args) != 2:
        raise _bad(name, f"{kind} needs a low and a high bound, got {list(args)!r}",
                   f"write e.g. ({kind!r}, 1, 10)")
    if kind == "float":
        return FloatRange(args[0], args[1], **options).check(name)
    return IntRange(args[0], args[1], **options).check(name)


def _from_tuple(name: str, spec: tuple[Any, ...]) -> Dimension:
    kind, *args = spec
    options: Mapping[str, Any] = {}
    if args and isinstance(args[-1], Mapping):
        *args, options = args
    return _build(name, kind, args, options)


def _from_mapping(name: str, spec: Mapping[str, Any]) -> Dimension:
    fields = dict(spec)
    kind = fields.pop("type", None)
    if not isinstance(kind, str):
        raise _bad(name, f"the mapping {dict(spec)!r} has no 'type'",
                   "write e.g. {type: float, low: 0.0001, high: 0.1, log: true}")
    if kind.lower() in ("choice", "categorical"):
        if set(fields) != {"values"}:
            raise _bad(name, f"a choice mapping takes only 'values', got {sorted(fields)}",
                       "write e.g. {type: choice, values: [adam, sgd]}")
        return _build(name, kind, [fields["values"]], {})
    missing = [key for key in ("low", "high") if key not in fields]
    if missing:
        raise _bad(name, f"the mapping {dict(spec)!r} lacks {' and '.join(missing)}",
                   f"write e.g. {{type: {kind}, low: 1, high: 10}}")
    # PyYAML reads 1e-4 (no dot) as a string: read numbers written as text as numbers.
    bounds = [_scalar(v) if isinstance(v, str) else v for v in (fields.pop("low"),
                                                                 fields.pop("high"))]
    options = {k: _scalar(v) if isinstance(v, str) else v for k, v in fields.items()}
    return _build(name, kind, bounds, options)


def _from_text(name: str, text: str) -> Dimension:
    kind, _, rest = text.strip().partition(":")
    if kind.strip().lower() in ("choice", "categorical"):
        if not rest.strip():
            raise _bad(name, f"the choice {text!r} lists no values", "write e.g. choice:adam,sgd")
        return _build(name, kind, [[_scalar(v) for v in rest.split(",")]], {})
    parts = [p.strip() for p in rest.split(":")] if rest else []
    bounds, options = parts[:2], {}
    for part in parts[2:]:
        key, eq, value = part.partition("=")
        options[key.strip()] = _scalar(value) if eq else True
    if len(bounds) == 2:
        numbers = [_scalar(b) for b in bounds]
        if kind.strip().lower() == "float":
            numbers = [float(n) if isinstance(n, int) and not isinstance(n, bool) else n
                       for n in numbers]
        return _build(name, kind, numbers, options)
    return _build(name, kind, bounds, options)


def _scalar(text: str) -> ChoiceValue:
    """``"3"`` → 3, ``"1e-4"`` → 0.0001, ``"true"`` → True, ``"none"`` → None, else the text."""
    text = text.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def parse_param_option(option: str) -> tuple[str, Dimension]:
    """``"lr=float:1e-4:1e-1:log"`` (a CLI ``--param``) → ``("lr", FloatRange(...))``."""
    name, eq, spec = option.partition("=")
    if not eq or not name.strip() or not spec.strip():
        raise InvalidArgument(f"--param {option!r} is not NAME=SPEC; write e.g. "
                              "--param lr=float:1e-4:1e-1:log --param depth=int:2:10 "
                              "--param kind=choice:a,b")
    return name.strip(), _from_text(name.strip(), spec)


def load_space_file(path: str | Path) -> SearchSpace:
    """The space in a YAML or JSON file: a mapping of name → spec (optionally under ``space:``)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"search space file {str(file)!r} does not exist; pass the path "
                              "of a YAML file such as space.yaml")
    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"search space file {str(file)!r} is not valid YAML "
                              f"({str(exc).splitlines()[0]}); fix it") from None
    if isinstance(data, Mapping) and set(data) == {"space"}:
        data = data["space"]
    if not isinstance(data, Mapping) or not data:
        raise InvalidArgument(f"search space file {str(file)!r} must hold a mapping of "
                              "parameter name to spec, e.g. 'lr: float:1e-4:1e-1:log'")
    return parse_space(data)
