"""Dataset references: ``NAME``, ``NAME@3``, ``NAME@latest``, ``NAME@golden`` (a tag)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml.errors import InvalidArgument

__all__ = ["DatasetRef", "check_dataset_name", "check_tag", "parse_ref"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
LATEST = "latest"


@dataclass(frozen=True, slots=True)
class DatasetRef:
    name: str
    version: int | None = None  # a number, or None with tag/latest
    tag: str = LATEST

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.tag}"


def check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit")
    return name


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _NAME.match(tag) or tag.isdigit() or tag == LATEST:
        raise InvalidArgument(f"invalid tag {tag!r}: use letters, digits, '_', '-' or '.', not "
                              "only digits, and not 'latest' (it always means the newest)")
    return tag


def parse_ref(text: str) -> DatasetRef:
    """Parse ``NAME[@VERSION|@TAG]``; a bare name means the latest version."""
    name, _, selector = text.partition("@")
    check_dataset_name(name)
    if not selector or selector == LATEST:
        return DatasetRef(name)
    if selector.isdigit():
        version = int(selector)
        if version < 1:
            raise InvalidArgument(f"invalid version in {text!r}: versions start at 1")
        return DatasetRef(name, version=version, tag="")
    if selector.startswith("v") and selector[1:].isdigit():
        return DatasetRef(name, version=int(selector[1:]), tag="")
    return DatasetRef(name, tag=check_tag(selector))
