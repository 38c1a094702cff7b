"""Pinned requirements of a model package: captured at save time, compared at load time.

Versions come from ``importlib.metadata`` (a directory look-up, well under a millisecond a
package), never from a ``pip`` subprocess, so logging a model stays fast. A mismatch found at
load time is a :class:`RequirementsMismatchWarning`, not an error: a model saved with
scikit-learn 1.9.1 usually still predicts under 1.9.2, and the user decides.
"""

from __future__ import annotations

import functools
import platform
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from loopml.errors import InvalidArgument

__all__ = [
    "NOTABLE_PACKAGES",
    "Mismatch",
    "RequirementsMismatchWarning",
    "check_requirements",
    "installed_version",
    "pin_requirements",
]

#: Packages pinned with every model when installed: they shape how inputs are parsed and
#: outputs computed whatever the flavor (pandas dtypes, numpy casting rules).
NOTABLE_PACKAGES = ("numpy", "pandas")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PINNED = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(?P<version>\S+)$")


class RequirementsMismatchWarning(UserWarning):
    """The running environment differs from the one a model was saved in.

    A warning category of its own so that a deployment can turn it into an error
    (``warnings.simplefilter("error", RequirementsMismatchWarning)``) or silence it.
    """


@dataclass(frozen=True)
class Mismatch:
    """One package whose running version differs from the recorded pin."""

    package: str
    saved: str
    running: str | None

    def __str__(self) -> str:
        running = self.running if self.running is not None else "not installed"
        verb = "running" if self.running is not None else "but"
        return f"{self.package}: saved with {self.saved}, {verb} {running}"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (``scikit-learn``, not ``sklearn``), or None."""
    import importlib.metadata  # 20 ms of imports: only when a model is saved or loaded

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pin_requirements(packages: Iterable[str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """``name==version`` for each installed package, the notable ones, then the user's extras.

    ``packages`` are the distributions a flavor needs (skipped when not installed: the flavor
    itself fails earlier if it truly needs one). An extra given without a version is pinned to
    the installed one; an extra with a specifier is kept as written.
    """
    pins: dict[str, str] = {}
    for name in (*packages, *NOTABLE_PACKAGES):
        version = installed_version(name)
        if version is not None:
            pins.setdefault(_normalise(name), f"{name}=={version}")
    for requirement in extra:
        text = requirement.strip()
        if _NAME.match(text):
            version = installed_version(text)
            if version is None:
                raise InvalidArgument(
                    f"requirement '{text}' is not installed, so its version cannot be pinned; "
                    f"install it or give a version, e.g. '{text}==1.0'")
            pins[_normalise(text)] = f"{text}=={version}"
            continue
        name_match = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", text)
        if name_match is None:
            raise InvalidArgument(
                f"requirement {text!r} is not a package name or specifier; "
                "expected e.g. 'scikit-learn' or 'scikit-learn==1.9.1'")
        pins[_normalise(name_match.group(0))] = text
    return tuple(pins.values())


def check_requirements(requirements: Iterable[str], python_version: str | None = None
                       ) -> list[Mismatch]:
    """The recorded ``==`` pins (and Python major.minor) that differ from this environment."""
    mismatches: list[Mismatch] = []
    if python_version:
        running = platform.python_version()
        if running.split(".")[:2] != python_version.split(".")[:2]:
            mismatches.append(Mismatch("python", python_version, running))
    for requirement in requirements:
        pinned = _PINNED.match(requirement.strip())
        if pinned is None:
            continue
        name, saved = pinned.group("name"), pinned.group("version")
        running_version = installed_version(name)
        if running_version != saved:
            mismatches.append(Mismatch(name, saved, running_version))
    return mismatches


def warn_on_mismatch(requirements: Iterable[str], python_version: str | None, *,
                     model: str, stacklevel: int = 3) -> list[Mismatch]:
    """Warn once, listing every mismatch, when the environment differs from the recorded one."""
    mismatches = check_requirements(requirements, python_version)
    if mismatches:
        listing = "; ".join(str(m) for m in mismatches)
        warnings.warn(
            f"model {model} was saved in a different environment ({listing}); predictions "
            "may differ or loading may fail: install the recorded versions "
            "(requirements in loopml-model.yaml) to reproduce it",
            RequirementsMismatchWarning, stacklevel=stacklevel)
    return mismatches
