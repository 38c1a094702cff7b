"""The model card: the governance record a reviewer reads before approving a promotion.

Markdown for the terminal and repositories, self-contained HTML for a browser. Metrics whose
key reads ``METRIC/COLUMN:VALUE`` (e.g. ``auc/segment:smb``) are shown per data slice.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from loopml.registry.entities import AliasEvent, ModelVersion, RegisteredModel

__all__ = ["ModelCard", "split_slices"]


def split_slices(metrics: dict[str, float]) -> tuple[dict[str, float],
                                                    dict[str, dict[str, float]]]:
    """Overall metrics, and ``{slice: {metric: value}}`` for keys ``METRIC/COLUMN:VALUE``."""
    overall: dict[str, float] = {}
    slices: dict[str, dict[str, float]] = {}
    for key, value in sorted(metrics.items()):
        metric, _, slice_name = key.partition("/")
        if slice_name and ":" in slice_name:
            slices.setdefault(slice_name, {})[metric] = value
        else:
            overall[key] = value
    return overall, slices


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class ModelCard:
    model: RegisteredModel
    version: ModelVersion
    history: list[AliasEvent]
    #: dataset ref -> {"rows", "files", "columns": {name: summary dict}}
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sections(self) -> list[tuple[str, list[list[str]] | str]]:
        """(title, table rows or text) in reading order; both renderings use them."""
        v = self.version
        overall, slices = split_slices(v.metrics)
        metric_names = sorted({m for values in slices.values() for m in values})
        out: list[tuple[str, list[list[str]] | str]] = [
            ("Purpose", self.model.description or v.description or "(no description given)"),
            ("Version", [["model", v.model], ["version", str(v.version)],
                         ["status", v.status], ["flavor", v.flavor],
                         ["aliases", ", ".join(v.aliases) or "-"],
                         ["run", v.run_id or "-"], ["created by", v.created_by or "-"]]),
            ("Metrics", [[k, _fmt(val)] for k, val in overall.items()] or "(none logged)"),
        ]
        if slices:
            out.append(("Metrics per data slice", [["slice", *metric_names]] + [
                [name, *(_fmt(values.get(m, "-")) for m in metric_names)]
                for name, values in slices.items()]))
        out.append(("Parameters", [[k, p] for k, p in sorted(v.params.items())] or "(none)"))
        out.append(("Training data", self._data_rows() or "(no dataset version recorded)"))
        out.append(("Signature", self._signature_rows() or "(no signature)"))
        lineage = " → ".join([*(v.datasets or ["(data unknown)"]), f"run {v.run_id or '-'}",
                              f"{v.model}/{v.version}"])
        out.append(("Lineage", lineage))
        out.append(("Alias history", [[str(e.created_at), e.alias, str(e.from_version or "-"),
                                       str(e.to_version or "-"), e.actor, e.reason]
                                      for e in self.history] or "(never aliased)"))
        return out

    def _data_rows(self) -> list[list[str]]:
        rows = []
        for ref, info in self.datasets.items():
            rows.append([ref, f"{info.get('rows') or '-'} rows, {info.get('files')} files", ""])
            for name, summary in (info.get("columns") or {}).items():
                rows.append(["", name, ", ".join(
                    f"{k}={_fmt(summary[k])}" for k in ("nulls", "min", "max", "mean")
                    if summary.get(k) is not None)])
        return rows

    def _signature_rows(self) -> list[list[str]]:
        signature = self.version.signature or {}
        rows = []
        for side in ("inputs", "outputs"):
            spec = signature.get(side) or {}
            if not isinstance(spec, dict):
                continue
            for column in spec.get("columns", []):
                rows.append([side, str(column.get("name")), str(column.get("dtype"))])
            for tensor in spec.get("tensors", []):
                rows.append([side, str(tensor.get("name") or "tensor"),
                             f"{tensor.get('dtype')} {tuple(tensor.get('shape') or ())}"])
        return rows

    def markdown(self) -> str:
        lines = [f"# Model card: {self.version.model} version {self.version.version}", ""]
        for title, body in self.sections():
            lines += [f"## {title}", ""]
            if isinstance(body, str):
                lines += [body, ""]
                continue
            width = max(len(r) for r in body)
            lines.append("| " + " | ".join([""] * width) + " |")
            lines.append("|" + "---|" * width)
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
            lines.append("")
        return "\n".join(lines)

    def html(self) -> str:
        title = f"Model card: {self.version.model} version {self.version.version}"
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                 "</title><style>body{font-family:system-ui,sans-serif;max-width:960px;"
                 "margin:2em auto;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
                 "td{border:1px solid #ccc;padding:.3em .6em}h2{border-bottom:1px solid #ddd}"
                 f"</style></head><body><h1>{html.escape(title)}</h1>"]
        for name, body in self.sections():
            parts.append(f"<h2>{html.escape(name)}</h2>")
            if isinstance(body, str):
                parts.append(f"<p>{html.escape(body)}</p>")
                continue
            parts.append("<table>" + "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in body) + "</table>")
        parts.append("</body></html>")
        return "".join(parts)
