"""loopml's entities as MLflow's JSON, and MLflow's search syntax as loopml's.

Ids pass through unchanged: a loopml run id (32 hex digits) is a valid MLflow run id, and a
loopml experiment id (also 32 hex digits) matches MLflow's experiment-id pattern
(``^[a-zA-Z0-9][\\w\\-]{0,63}$``), so no mapping table is kept. The one MLflow id that means
something of its own is ``"0"``, the default experiment, which the client uses when no
experiment is set: it stands for loopml's default experiment (``Settings.default_experiment``,
"Default" as in MLflow).

Artifact URIs name where the files are in loopml's blob store, through the artifact proxy:
``mlflow-artifacts:/EXPERIMENT/RUN/artifacts/PATH`` for a run's artifacts (a logged model's
files are a directory of its run's artifacts) and ``mlflow-artifacts:/registry/NAME/VERSION``
for the package of a registered model version (read-only).

The filter and order-by syntax of ``runs/search`` is MLflow's, which loopml's own filter
language (:mod:`loopml.tracking.filter`) extends; only MLflow's other spellings of the key
prefixes (``attr.``, ``run.``, ``parameter(s).``) are rewritten before parsing. Filters on
datasets (``datasets.name``) and on the attributes loopml does not keep (``artifact_uri``,
``lifecycle_stage``) are refused with 400 ``INVALID_PARAMETER_VALUE``; every value reaches the
database as a bound parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from loopml.errors import InvalidArgument
from loopml.registry.entities import ModelVersion, RegisteredModel
from loopml.tracking.entities import Experiment, Metric, Run
from loopml.tracking.filter import Expr, OrderKey, parse_filter, parse_order_by

from .messages import json_number

__all__ = ["DEFAULT_EXPERIMENT_ID", "HIDDEN_TAG_PREFIX", "MAX_FILTER_LENGTH",
           "experiment_json", "metric_json", "mlflow_filter", "mlflow_order_by",
           "model_version_json", "name_matcher", "registered_model_json", "run_artifact_uri",
           "run_info_json", "run_json", "version_artifact_uri"]

#: MLflow's id of the default experiment.
DEFAULT_EXPERIMENT_ID = "0"
#: Run tags that hold what the MLflow API keeps for itself (logged models); not shown to
#: MLflow clients.
HIDDEN_TAG_PREFIX = "loopml.mlflow."
#: The longest filter accepted (MLflow's own store has no limit; this keeps parsing cheap).
MAX_FILTER_LENGTH = 20_000

_PREFIX_ALIASES = {"attr": "attributes", "run": "attributes", "parameter": "params",
                   "parameters": "params"}
_DATASET_PREFIXES = frozenset({"dataset", "datasets"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./:]*")
_NAME_FILTER = re.compile(
    r"^\s*(?:(?:attribute|attributes|attr)\.)?name\s*(=|!=|LIKE|ILIKE)\s*"
    r"(?:'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\")\s*$", re.IGNORECASE)


# -- URIs ---------------------------------------------------------------------------------


def run_artifact_uri(experiment_id: str, run_id: str, path: str = "") -> str:
    base = f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"
    return f"{base}/{path}" if path else base


def version_artifact_uri(name: str, version: int) -> str:
    return f"mlflow-artifacts:/registry/{name}/{version}"


# -- entities -----------------------------------------------------------------------------


def _pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    tags = ([{"key": "mlflow.note.content", "value": experiment.description}]
            if experiment.description else [])
    return {"experiment_id": experiment.id, "name": experiment.name,
            "artifact_location": f"mlflow-artifacts:/{experiment.id}",
            "lifecycle_stage": experiment.lifecycle, "creation_time": experiment.created_at,
            "last_update_time": experiment.created_at, "tags": tags}


def run_info_json(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id, "run_uuid": run.id, "run_name": run.name,
        "experiment_id": run.experiment_id, "user_id": run.user, "status": run.status.value,
        "start_time": run.start_time, "artifact_uri": run_artifact_uri(run.experiment_id, run.id),
        "lifecycle_stage": run.lifecycle}
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def metric_json(metric: Metric) -> dict[str, Any]:
    return {"key": metric.key, "value": json_number(metric.value),
            "timestamp": metric.timestamp, "step": metric.step}


def run_json(run: Run, *, points: Mapping[str, tuple[int, int]],
             outputs: Sequence[tuple[str, int]] = (),
             inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``points``: (step, timestamp) of each latest metric value; ``outputs``: the run's
    logged models (id, step); ``inputs``: what ``runs/log-inputs`` recorded."""
    metrics = [metric_json(Metric(key, value, *points.get(key, (0, 0))))
               for key, value in run.metrics.items()]
    tags = {k: v for k, v in run.tags.items() if not k.startswith(HIDDEN_TAG_PREFIX)}
    body: dict[str, Any] = {
        "info": run_info_json(run),
        "data": {"metrics": metrics, "params": _pairs(run.params), "tags": _pairs(tags)},
        "inputs": dict(inputs or {})}
    if outputs:
        body["outputs"] = {"model_outputs": [{"model_id": model_id, "step": step}
                                             for model_id, step in outputs]}
    return body


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    return {"name": version.model, "version": str(version.version),
            "creation_timestamp": version.created_at,
            "last_updated_timestamp": version.created_at, "user_id": version.created_by,
            "current_stage": "Archived" if version.status == "archived" else "None",
            "description": version.description,
            "source": version_artifact_uri(version.model, version.version),
            "run_id": version.run_id or "", "status": "READY", "tags": [],
            "aliases": list(version.aliases)}


def registered_model_json(model: RegisteredModel,
                          latest: Iterable[ModelVersion] = ()) -> dict[str, Any]:
    return {"name": model.name, "creation_timestamp": model.created_at,
            "last_updated_timestamp": model.created_at, "description": model.description,
            "tags": _pairs(model.tags),
            "aliases": [{"alias": alias, "version": str(version)}
                        for alias, version in model.aliases.items()],
            "latest_versions": [model_version_json(v) for v in latest]}


# -- search syntax ------------------------------------------------------------------------


def _skip_quoted(text: str, start: int) -> int:
    """The position after the quoted string (or key) that starts at ``start``."""
    quote = text[start]
    pos = start + 1
    while pos < len(text):
        escaped = text[pos] == "\\" and pos + 1 < len(text)
        if escaped or text.startswith(quote * 2, pos):
            pos += 2
        elif text[pos] == quote:
            return pos + 1
        else:
            pos += 1
    return len(text)  # unterminated: loopml's parser reports it


def _rewrite_prefixes(text: str, label: str) -> str:
    """``text`` with MLflow's other key prefixes spelled as loopml spells them; quoted
    strings and keys are copied unchanged."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in "'\"`":
            end = _skip_quoted(text, pos)
            out.append(text[pos:end])
            pos = end
            continue
        word = _WORD.match(text, pos) if (char.isalpha() or char == "_") and (
            pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_.")) else None
        if word is None:
            out.append(char)
            pos += 1
            continue
        prefix, dot, rest = word.group().partition(".")
        if dot and prefix.lower() in _DATASET_PREFIXES:
            raise InvalidArgument(
                f"{label}: filters on datasets ({word.group()}) are not supported by loopml's "
                "MLflow API; filter on metrics, params, tags or attributes")
        if dot and prefix.lower() in _PREFIX_ALIASES:
            out.append(f"{_PREFIX_ALIASES[prefix.lower()]}.{rest}")
        else:
            out.append(word.group())
        pos = word.end()
    return "".join(out)


def mlflow_filter(text: str) -> Expr | None:
    """The loopml filter for an MLflow ``filter`` string (None when empty)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument(f"the filter is {len(text):,} characters long; at most "
                              f"{MAX_FILTER_LENGTH:,} are accepted")
    return parse_filter(_rewrite_prefixes(text, "filter"))


def mlflow_order_by(items: Sequence[str]) -> list[OrderKey]:
    """loopml's order keys for MLflow ``order_by`` items (``metrics.rmse DESC``)."""
    if len(items) > 20:
        raise InvalidArgument(f"order_by has {len(items)} items; at most 20 are accepted")
    return parse_order_by([_rewrite_prefixes(item, "order_by") for item in items])


_ANY, _ONE = object(), object()


def _like_tokens(pattern: str) -> list[object]:
    """SQL LIKE ``pattern`` (escape ``\\``) as literal characters, ``_ANY`` and ``_ONE``."""
    tokens: list[object] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            tokens.append(next(chars, "\\"))
        else:
            tokens.append(_ANY if char == "%" else _ONE if char == "_" else char)
    return tokens


def _like_match(tokens: Sequence[object], text: str) -> bool:
    """Whether ``text`` matches; greedy with one back-off point (at most len × len steps,
    where a regex of many ``.*`` can take exponential time)."""
    pos = index = 0
    star, mark = -1, 0
    while pos < len(text):
        if index < len(tokens) and (tokens[index] is _ONE or tokens[index] == text[pos]):
            index += 1
            pos += 1
        elif index < len(tokens) and tokens[index] is _ANY:
            star, mark = index, pos
            index += 1
        elif star >= 0:
            index, mark = star + 1, mark + 1
            pos = mark
        else:
            return False
    return all(token is _ANY for token in tokens[index:])


def name_matcher(text: str, endpoint: str) -> Callable[[str], bool]:
    """A test on names for the filters ``name = 'x'``, ``!=``, ``LIKE`` and ``ILIKE`` (what
    experiment and registered model searches accept; anything else is a 400)."""
    if not text.strip():
        return lambda name: True
    found = _NAME_FILTER.match(text)
    if found is None:
        raise InvalidArgument(f"{endpoint}: unsupported filter {text!r}; loopml supports "
                              "name = 'x', name != 'x', name LIKE 'x%' and name ILIKE 'x%'")
    op = found.group(1).upper()
    value = (found.group(2).replace("''", "'") if found.group(2) is not None
             else found.group(3).replace('""', '"'))
    if op == "=":
        return lambda name: name == value
    if op == "!=":
        return lambda name: name != value
    if op == "LIKE":
        tokens = _like_tokens(value)
        return lambda name: _like_match(tokens, name)
    folded = _like_tokens(value.casefold())
    return lambda name: _like_match(folded, name.casefold())
