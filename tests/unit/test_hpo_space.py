"""Search spaces: every way of writing a dimension, the text form that round-trips, and
the errors a bad spec gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from loopml.errors import InvalidArgument
from loopml.hpo.space import (
    Choice,
    FloatRange,
    IntRange,
    load_space_file,
    parse_dimension,
    parse_param_option,
    parse_space,
)

LOG_LR = FloatRange(1e-4, 1e-1, log=True)


@pytest.mark.parametrize("spec", [
    LOG_LR,
    ("float", 1e-4, 1e-1, {"log": True}),
    "float:1e-4:1e-1:log",
    "float:0.0001:0.1:log=true",
    {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    {"type": "float", "low": "1e-4", "high": "1e-1", "log": True},  # PyYAML reads 1e-4 as text
])
def test_every_form_of_a_float_range_is_the_same(spec: Any) -> None:
    assert parse_dimension("lr", spec) == LOG_LR


@pytest.mark.parametrize(("spec", "expected"), [
    (("int", 2, 10), IntRange(2, 10)),
    ("int:2:10:step=2", IntRange(2, 10, step=2)),
    ({"type": "int", "low": 1, "high": 1000, "log": True}, IntRange(1, 1000, log=True)),
    (["adam", "sgd"], Choice(["adam", "sgd"])),
    ("choice:32,64,true,none,relu", Choice([32, 64, True, None, "relu"])),
    ({"type": "choice", "values": [0.1, 0.2]}, Choice([0.1, 0.2])),
    (("categorical", ["a", "b"]), Choice(["a", "b"])),
    ("float:0:1:step=0.25", FloatRange(0.0, 1.0, step=0.25)),
    (("float", 0, 1), FloatRange(0.0, 1.0)),
])
def test_forms(spec: Any, expected: Any) -> None:
    assert parse_dimension("p", spec) == expected


def test_text_form_round_trips() -> None:
    space = parse_space({"lr": LOG_LR, "depth": ("int", 2, 10, {"step": 2}), "units":
                         IntRange(8, 512, log=True), "kind": ["a", "b", 3],
                         "dropout": ("float", 0.0, 0.5, {"step": 0.1})})
    described = space.describe()
    assert described["lr"] == "float:0.0001:0.1:log"
    assert described["depth"] == "int:2:10:step=2"
    assert parse_space(described).describe() == described
    assert dict(parse_space(described)) == dict(space)


def test_space_suggests_through_an_optuna_trial() -> None:
    space = parse_space({"lr": LOG_LR, "depth": ("int", 2, 10), "kind": ["a", "b"]})
    values = space.suggest(optuna.trial.FixedTrial({"lr": 0.01, "depth": 3, "kind": "b"}))
    assert values == {"lr": 0.01, "depth": 3, "kind": "b"}


def test_cli_param_option() -> None:
    assert parse_param_option("lr=float:1e-4:1e-1:log") == ("lr", LOG_LR)
    with pytest.raises(InvalidArgument, match="NAME=SPEC"):
        parse_param_option("float:1:2")


def test_space_file_in_yaml(tmp_path: Path) -> None:
    file = tmp_path / "space.yaml"
    file.write_text("lr: float:1e-4:1e-1:log\ndepth: {type: int, low: 2, high: 10}\n"
                    "kind: [a, b]\n")
    space = load_space_file(file)
    assert dict(space) == {"lr": LOG_LR, "depth": IntRange(2, 10), "kind": Choice(["a", "b"])}
    (tmp_path / "nested.yaml").write_text("space:\n  lr: float:1e-4:1e-1:log\n")
    assert dict(load_space_file(tmp_path / "nested.yaml")) == {"lr": LOG_LR}


@pytest.mark.parametrize(("spec", "message"), [
    (("float", 1, 0), "low 1 is above high 0; swap the bounds"),
    (("float", 0, 1, {"log": True}), "a log scale needs low > 0"),
    (("float", 0.1, 1, {"log": True, "step": 0.1}), "cannot go with log"),
    (("int", 1.5, 3), "low must be an integer, got 1.5"),
    (("int", 0, 10, {"log": True}), "a log scale needs low >= 1"),
    (("int", 1, 10, {"step": 0}), "step must be at least 1"),
    (("flaot", 1, 2), "unknown type 'flaot'; use float, int or choice"),
    (("float", 1, 2, {"lgo": True}), "unknown option 'lgo' for float; options of float: log"),
    (("float", 1), "float needs a low and a high bound"),
    (("float", "a", 2), "low must be a finite number, got 'a'"),
    (("float", 0, float("inf")), "high must be a finite number"),
    ([], "a choice needs at least one value"),
    ([[1, 2]], "choice value [1, 2] is a list"),
    (["a", "a"], "repeat"),
    ("choice:", "lists no values"),
    ({"type": "float", "low": 1}, "lacks high"),
    ({"low": 1, "high": 2}, "has no 'type'"),
    ({"type": "choice", "values": [1], "extra": 2}, "takes only 'values'"),
    (3, "cannot read the spec 3"),
])
def test_bad_specs_say_what_and_how_to_fix(spec: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match="search space parameter 'p'") as caught:
        parse_dimension("p", spec)
    assert message in str(caught.value)


def test_bad_spaces_and_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="must be a mapping"):
        parse_space([("lr", LOG_LR)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="non-empty strings"):
        parse_space({"": LOG_LR})
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_space_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("lr: [unclosed\n")
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        load_space_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(InvalidArgument, match="mapping of parameter name to spec"):
        load_space_file(tmp_path / "list.yaml")
