"""Settings: one frozen object, built once from explicit arguments, ``LOOPML_*``
environment variables, ``loopml.toml`` and defaults — in that order of precedence.

Every key is declared once below with its type, default and a one-line doc. This is
the only module that reads the environment; everything else receives a ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument

__all__ = ["Settings", "load_settings"]

CONFIG_FILE = "loopml.toml"
ENV_PREFIX = "LOOPML_"


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved configuration. Build it with :func:`load_settings`."""

    home: Path = field(default=Path(".loopml"),
                       metadata=_doc("Directory of the embedded store (SQLite file + blobs)."))
    database_url: str = field(default="", metadata=_doc(
        "Metadata store: sqlite:///PATH or postgresql://…; default: SQLite under home."))
    blob_url: str = field(default="", metadata=_doc(
        "Blob store: file://PATH, s3://bucket/prefix or memory://; default: home/blobs."))
    tracking_uri: str = field(default="", metadata=_doc(
        "A loopml server (http(s)://host:port) that the client talks to instead of the "
        "local stores; empty: the local stores."))
    tracking_token: str = field(default="", repr=False, metadata=_doc(
        "Token sent to the tracking server (Authorization: Bearer); empty: none."))
    serve_token: str = field(default="", repr=False, metadata=_doc(
        "Bearer token a model server ('loopml serve', 'loopml deploy serve') requires of "
        "every request but /health, /ready and the docs; empty: none."))
    remote_url: str = field(default="", metadata=_doc(
        "Remote blob store that 'loopml data push/pull' copy versions to/from (s3://…)."))
    s3_endpoint_url: str = field(default="", metadata=_doc(
        "Endpoint of an S3-compatible store (MinIO, moto, …); empty for AWS."))
    default_experiment: str = field(default="Default", metadata=_doc(
        "Experiment used when a run is started without one."))
    metric_flush_interval: float = field(default=1.0, metadata=_doc(
        "Seconds between background flushes of buffered metrics."))
    metric_buffer_size: int = field(default=2000, metadata=_doc(
        "Buffered metric points that trigger an early flush."))
    blob_workers: int = field(default=8, metadata=_doc(
        "Threads used for parallel blob upload/download."))
    progress: bool = field(default=True, metadata=_doc(
        "Show progress bars for long operations on a terminal."))
    executor: str = field(default="inline", metadata=_doc(
        "Where pipeline steps and tuning trials run: inline, processes[:N], ray-local or "
        "ray://host:port."))
    agent_interval: float = field(default=30.0, metadata=_doc(
        "Seconds between two evaluations of the triggers by 'loopml agent'."))
    agent_lease_ttl: float = field(default=15.0, metadata=_doc(
        "Seconds an agent's leadership lasts unless renewed (renewed every third of it)."))
    trigger_min_interval: float = field(default=600.0, metadata=_doc(
        "Default minimum seconds between two firings of one trigger."))
    monitor_webhooks: str = field(default="", metadata=_doc(
        "Comma-separated http(s) URLs that monitoring alerts are POSTed to as JSON."))

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser()
        object.__setattr__(self, "home", home)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{home / 'loopml.db'}")
        if not self.blob_url:
            object.__setattr__(self, "blob_url", f"file://{(home / 'blobs').absolute()}")
        if self.metric_flush_interval <= 0:
            raise InvalidArgument(
                f"metric_flush_interval must be > 0 seconds, got {self.metric_flush_interval}")
        if self.agent_interval <= 0 or self.agent_lease_ttl <= 0 or self.trigger_min_interval < 0:
            raise InvalidArgument(
                "agent_interval and agent_lease_ttl must be > 0 seconds and "
                f"trigger_min_interval >= 0, got {self.agent_interval}, "
                f"{self.agent_lease_ttl} and {self.trigger_min_interval}")
        if self.tracking_uri and not self.is_remote:
            raise InvalidArgument(
                f"tracking_uri must be an http(s):// URL of a loopml server, got "
                f"{self.tracking_uri!r}; set it to e.g. http://127.0.0.1:5000 or leave it empty")
        if self.metric_buffer_size < 1 or self.blob_workers < 1:
            raise InvalidArgument("metric_buffer_size and blob_workers must be at least 1")

    @property
    def is_remote(self) -> bool:
        """True when a tracking server (``tracking_uri`` http(s)://…) is configured."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def is_embedded(self) -> bool:
        """True when the metadata store is a local SQLite file."""
        return self.database_url.startswith("sqlite")


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _fields()[name].type
    try:
        if kind in ("bool", bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        if kind in ("Path", Path):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"setting '{name}' from {source} has value {raw!r}, which is not a valid {kind}; "
            f"fix it in {source}") from None


def _from_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    table = data.get("loopml", data)
    known = _fields()
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InvalidArgument(
            f"{path} has unknown setting(s) {', '.join(unknown)}; "
            f"known settings: {', '.join(sorted(known))}")
    return {k: _coerce(k, v, str(path)) for k, v in table.items()}


def load_settings(*, environ: Mapping[str, str] | None = None, config_file: Path | None = None,
                  **overrides: Any) -> Settings:
    """Resolve settings: ``overrides`` > ``LOOPML_*`` environment > ``loopml.toml`` > defaults."""
    env = os.environ if environ is None else environ
    known = _fields()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise InvalidArgument(f"unknown setting(s) {', '.join(unknown)}; "
                              f"known settings: {', '.join(sorted(known))}")
    values = _from_file(config_file or Path(CONFIG_FILE))
    for name in known:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, f"${ENV_PREFIX}{name.upper()}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
