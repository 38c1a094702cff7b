"""``loopml.register(...)`` inside a pipeline: a step that registers the model it is given,
optionally only when a condition over its metrics and the champion's holds.

The condition sees ``metrics`` (the dict given) and ``champion`` (the metrics of the version
that holds the ``champion`` alias, ``production`` by default; with no champion yet the
condition is not evaluated and the model is registered). A false condition skips the step,
and what depends on it, with the values in the reason. Sample runs never register.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopml.errors import InvalidArgument, NotFound
from loopml.pipelines.gates import check_condition, evaluate_condition
from loopml.pipelines.steps import Step, StepOptions
from loopml.pipelines.task import Skip
from loopml.pipelines.trace import StepOutput, require_tracer

__all__ = ["register"]

CONDITION_NAMES = ("metrics", "champion")


def _champion_metrics(client: Any, name: str, alias: str) -> dict[str, float] | None:
    try:
        return dict(client.get_model_version(f"{name}@{alias}").metrics)
    except NotFound:
        return None


def _register(model: Any, metrics: Mapping[str, Any] | None, input_example: Any = None, *,
              name: str, when: str | None, alias: str | None, champion: str,
              description: str) -> dict[str, Any]:
    from loopml.blobs.build import build_tree
    from loopml.pipelines.context import current_step
    from loopml.pipelines.materializers import save_step_model
    from loopml.registry.packages import register_tree

    context = current_step()
    if context is None:
        raise InvalidArgument("loopml.register(...) registers inside a pipeline run; outside "
                              "one use loopml.register_model")
    client = context.client
    values = {k: float(v) for k, v in (metrics or {}).items()
              if isinstance(v, int | float) and not isinstance(v, bool)}
    if when is not None:
        best = _champion_metrics(client, name, champion)
        if best is not None and not evaluate_condition(
                when, {"metrics": values, "champion": best}):
            shown = {k: round(v, 4) for k, v in best.items() if k in values} or best
            mine = {k: round(v, 4) for k, v in values.items()}
            raise Skip(f"{when} is false (this run: {mine}; {champion}: {shown})")
    with tempfile.TemporaryDirectory(prefix="loopml-register-") as tmp:
        package = save_step_model(model, Path(tmp) / "model", input_example=input_example,
                                  metadata={"run_id": context.pipeline_run_id})
        tree = build_tree(client.blobs, package.path).digest
    client.flush()
    version = register_tree(client.meta, name=name, tree=tree, manifest=package.manifest,
                            run_id=context.pipeline_run_id, description=description,
                            metrics=values)
    if alias is not None:
        client.set_model_alias(name, alias, version.version,
                               reason=f"pipeline run {context.pipeline_run_id}")
    return {"name": name, "version": version.version, "alias": alias}


_REGISTER = Step(_register, StepOptions(name="register", cache=False, publishes=True))


def register(model: Any, *, name: str, metrics: Any = None, when: str | None = None,
             alias: str | None = None, champion: str = "production",
             description: str = "", input_example: Any = None) -> StepOutput:
    """Inside a pipeline: register ``model`` (a step's output) as a new version of ``name``
    with ``metrics``; with ``when``, only if the condition holds (e.g.
    ``"metrics['auc'] >= champion['auc']"``); with ``alias``, point it at the new version.
    ``input_example`` (a few input rows, or a step's output holding them) is stored with the
    package and gives it a signature, which ``loopml serve`` needs to check requests."""
    require_tracer("loopml.register")
    if when is not None:
        check_condition(when, CONDITION_NAMES)
    from loopml.registry.refs import parse_model_ref

    parse_model_ref(name)
    step = _REGISTER.with_options(publishes=True, cache=False)
    return step(model, metrics, input_example,  # type: ignore[return-value]
                name=name, when=when, alias=alias, champion=champion,
                description=description)
