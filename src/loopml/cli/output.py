"""CLI output: readable tables on a terminal, JSON with ``--json``."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["format_duration", "format_time", "format_value", "print_json", "print_table"]


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def format_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(format_value(v) for v in row))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _default(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else str(value)
    return str(value)


def print_json(data: Any) -> None:
    """JSON for scripts; NaN becomes null and ±inf the strings "inf"/"-inf"."""
    sys.stdout.write(orjson.dumps(_clean(data), default=_default,
                                  option=orjson.OPT_INDENT_2).decode() + "\n")


def _clean(data: Any) -> Any:
    if isinstance(data, float) and (math.isnan(data) or math.isinf(data)):
        return None if math.isnan(data) else ("inf" if data > 0 else "-inf")
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean(v) for v in data]
    return data
