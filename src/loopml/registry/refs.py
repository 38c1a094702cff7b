"""Model references: ``churn``, ``churn/3``, ``churn@production`` and ``models:/…`` forms."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidArgument

__all__ = ["ModelRef", "check_alias", "check_model_name", "parse_model_ref"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None  # neither version nor alias: the latest active version

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f"invalid model name {name!r}: use 1-128 letters, digits, '_', "
                              "'-' or '.', starting with a letter or digit")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _NAME.match(alias) or alias.isdigit() \
            or alias.lower() == "latest":
        raise InvalidArgument(f"invalid alias {alias!r}: use letters, digits, '_', '-' or '.', "
                              "not only digits, and not 'latest'")
    return alias


def parse_model_ref(text: str) -> ModelRef:
    """``NAME``, ``NAME/3``, ``NAME@ALIAS``, ``NAME@latest``, optionally after ``models:/``."""
    body = text.removeprefix("models:/")
    if "@" in body:
        name, _, alias = body.partition("@")
        check_model_name(name)
        return ModelRef(name) if alias == "latest" else ModelRef(name, alias=check_alias(alias))
    name, _, number = body.partition("/")
    check_model_name(name)
    if not number or number == "latest":
        return ModelRef(name)
    if not number.isdigit() or int(number) < 1:
        raise InvalidArgument(f"invalid model reference {text!r}: use NAME, NAME/VERSION "
                              "(a number from 1) or NAME@ALIAS")
    return ModelRef(name, version=int(number))
