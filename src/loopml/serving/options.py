"""The options of one model server, as one frozen value (what ``loopml serve`` parses)."""

from __future__ import annotations

from dataclasses import dataclass

from loopml.errors import InvalidArgument
from loopml.registry.refs import ModelRef, parse_model_ref

__all__ = ["ServeOptions"]


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How to serve ``model`` (``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME`` for the latest),
    or the deployment named ``deployment`` (its traffic policy: canary, shadow, rollback).

    An alias (or the latest version) is followed: the server polls the registry every
    ``poll_interval_s`` and swaps to the version it points to; a version number is fixed.
    A deployment is followed the same way: its policy and the versions it names.
    """

    model: str = ""
    deployment: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: rows predicted together at most, and how long the first request of a batch may wait
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    #: a bearer token every request but /health, /ready and the docs must carry
    token: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    poll_interval_s: float = 1.0
    #: allow null/NaN/±inf in every float input (else only where the input example has them)
    allow_non_finite: bool = False
    #: load packages that run code when loaded (pickle)
    trusted: bool = False
    #: the payload log: the share of requests logged (0 turns it off), its queue bound, the
    #: rows per segment and per row group, and how often it is written
    log_sample: float = 1.0
    log_queue_rows: int = 100_000
    log_segment_rows: int = 50_000
    log_row_group_rows: int = 5_000
    log_flush_s: float = 10.0
    #: mirrored requests a shadow may have queued or in flight (more are dropped, counted)
    shadow_max_pending: int = 1000
    #: how often the automatic rollback rule of a deployment is evaluated
    rollback_check_s: float = 0.1
    #: how often a rule with ``on_alerts`` looks for new monitoring alerts (a query)
    alert_check_s: float = 2.0
    #: once the first version is warm, move every object alive out of the garbage
    #: collector's sight (``gc.freeze``), so that full collections stop scanning the
    #: libraries' objects; off for a server embedded in a process that has other work
    gc_freeze: bool = True

    def __post_init__(self) -> None:
        if (self.deployment is None) == (not self.model):
            raise InvalidArgument("serve either a model (NAME@ALIAS, NAME/VERSION or NAME) or "
                                  "a deployment (its name), not both and not neither; got "
                                  f"model={self.model!r}, deployment={self.deployment!r}")
        if self.deployment is not None:
            from loopml.deployments.records import check_deployment_name

            check_deployment_name(self.deployment)
        else:
            parse_model_ref(self.model)
        if not 0 < self.rollback_check_s <= 1:
            raise InvalidArgument(f"rollback_check_s must be in (0, 1], got "
                                  f"{self.rollback_check_s}")
        for name in ("workers", "max_batch_size", "max_body_bytes", "log_queue_rows",
                     "log_segment_rows", "log_row_group_rows", "shadow_max_pending"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.port < 65536:
            raise InvalidArgument(f"port must be between 1 and 65535, got {self.port}")
        if not self.alert_check_s > 0:
            raise InvalidArgument(f"alert_check_s must be > 0, got {self.alert_check_s}")
        if self.max_wait_ms < 0 or self.poll_interval_s <= 0 or self.log_flush_s <= 0:
            raise InvalidArgument("max_wait_ms must be >= 0, poll_interval_s and log_flush_s "
                                  f"> 0; got {self.max_wait_ms}, {self.poll_interval_s}, "
                                  f"{self.log_flush_s}")
        if not 0 <= self.log_sample <= 1:
            raise InvalidArgument(f"log_sample is the share of requests logged, between 0 "
                                  f"and 1; got {self.log_sample}")
        if self.token is not None and not self.token.strip():
            raise InvalidArgument("token is empty; pass a non-empty token or none at all")

    @property
    def ref(self) -> ModelRef:
        """The model reference served (a deployment's is read from its record)."""
        if self.deployment is not None:
            raise InvalidArgument(f"deployment {self.deployment!r} is served from its record; "
                                  "it has no model reference of its own")
        return parse_model_ref(self.model)

    @property
    def endpoint(self) -> str:
        """The name the payload log and metrics file this server's traffic under: the
        deployment's name, or the model reference."""
        return self.deployment if self.deployment is not None else str(self.ref)
