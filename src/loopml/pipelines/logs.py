"""Capturing what a step prints and logs, per step, even when steps run side by side.

``sys.stdout``/``sys.stderr`` are wrapped once by a proxy that also copies each write to
the buffer of the step running in the current context (a context variable, so threads of
the inline executor do not mix their logs); a root ``logging`` handler does the same for
log records. Output still reaches the terminal as before.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["capture_logs"]

_buffer: contextvars.ContextVar[io.StringIO | None] = contextvars.ContextVar(
    "loopml_step_logs", default=None)
_lock = threading.Lock()


class _Proxy(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.write(text)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.write(self.format(record) + "\n")


_handler = _Handler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def _install() -> None:
    with _lock:
        if not isinstance(sys.stdout, _Proxy):
            sys.stdout = _Proxy(sys.stdout)
        if not isinstance(sys.stderr, _Proxy):
            sys.stderr = _Proxy(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextmanager
def capture_logs() -> Iterator[io.StringIO]:
    """Collect this context's output (prints, warnings to stderr, log records) while inside."""
    _install()
    buffer = io.StringIO()
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
