"""Values of the model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AliasEvent", "ModelVersion", "RegisteredModel"]


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    id: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: int
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable packaged model, with what it was built from and how well it did."""

    id: str
    model: str
    version: int
    tree: str
    flavor: str
    run_id: str | None
    source_version_id: str | None
    status: str
    description: str
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    params: dict[str, str]
    datasets: list[str]
    created_at: int
    created_by: str
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: who moved it, when, from which version to which, and why."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    created_at: int
