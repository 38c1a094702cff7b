"""The client: every tracking operation over the configured metadata and blob stores."""

from __future__ import annotations

import atexit
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopml.blobs import canonical_json
from loopml.client.ops import OpsMethods
from loopml.client.registry import ModelMethods
from loopml.config import Settings
from loopml.errors import InvalidArgument, MissingDependency
from loopml.tracking import artifacts as artifact_ops
from loopml.tracking import records
from loopml.tracking.buffer import MetricBuffer
from loopml.tracking.context import code_version_tags, current_user, environment_tags
from loopml.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus
from loopml.tracking.names import random_run_name
from loopml.tracking.validation import check_key, metric_value, param_value, run_status
from loopml.tracking.writes import MetricPoint, write_metric_points, write_params, write_tags

if TYPE_CHECKING:
    import pandas as pd

    from loopml.client.active_run import ActiveRun
    from loopml.deployments.api import Deployments

__all__ = ["Client"]

_open_clients: weakref.WeakSet[Client] = weakref.WeakSet()


@atexit.register
def _flush_open_clients() -> None:
    for client in list(_open_clients):
        client.close()


class Client(OpsMethods, ModelMethods):
    """Tracking, the dataset and the model registry over ``settings``
    (default: :func:`loopml.load_settings`).

    Stores are opened on first use, so creating a client costs nothing. Buffered metrics
    are written by a background thread and at :meth:`end_run`, :meth:`flush`,
    :meth:`close` and interpreter exit.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._metric_buffer = MetricBuffer(self._write_points,
                                           max_points=self.settings.metric_buffer_size,
                                           interval=self.settings.metric_flush_interval)
        _open_clients.add(self)

    def flush(self) -> None:
        """Write buffered metric points now."""
        self._metric_buffer.flush()

    def close(self) -> None:
        self._metric_buffer.close()
        self.close_stores()
        _open_clients.discard(self)

    @property
    def deployments(self) -> Deployments:
        """Deployments over this client's metadata store: ``create``, ``update``,
        ``rollback``, ``get``, ``list``, ``history`` (what ``loopml deploy`` does)::

            client.deployments.create("churn-api", model="churn@production",
                                      canary="churn@staging=10%")
            client.deployments.rollback("churn-api", reason="conversion dropped")
        """
        from loopml.deployments.api import Deployments

        return Deployments(self.meta)

    def _write_points(self, points: Sequence[MetricPoint]) -> None:
        with self.meta.write() as conn:
            write_metric_points(conn, points)

    # -- experiments -----------------------------------------------------------------
    def create_experiment(self, name: str, *, description: str = "") -> Experiment:
        with self.meta.write() as conn:
            return records.create_experiment(conn, name, description=description)

    def get_experiment(self, name_or_id: str) -> Experiment:
        with self.meta.read() as conn:
            return records.get_experiment(conn, name_or_id)

    def list_experiments(self) -> list[Experiment]:
        with self.meta.read() as conn:
            return records.list_experiments(conn)

    # -- runs ------------------------------------------------------------------------
    def start_run(self, experiment: str | None = None, *, name: str | None = None,
                  tags: Mapping[str, Any] | None = None,
                  parent_run_id: str | None = None) -> ActiveRun:
        """Start a run in ``experiment`` (created if new) and return it as a context manager."""
        from loopml.client.active_run import ActiveRun
        from loopml.models.prefetch import prefetch_model_imports

        user_tags = {check_key(k, kind="tag"): str(v) for k, v in (tags or {}).items()}
        system_tags = {**code_version_tags(), **environment_tags()}  # cached, always valid
        prefetch_model_imports()  # after environment_tags, which looks for torch
        experiment_name = experiment or self.settings.default_experiment
        with self.meta.write() as conn:  # one transaction: experiment (if new), run, tags
            exp = (records.find_experiment(conn, experiment_name)
                   or records.create_experiment(conn, experiment_name))
            if parent_run_id is not None:
                records.experiment_id_of_run(conn, parent_run_id)
            run = records.create_run(conn, experiment_id=exp.id,
                                     name=name or random_run_name(),
                                     parent_run_id=parent_run_id, user=current_user())
            write_tags(conn, run.id, {**system_tags, **user_tags})
        return ActiveRun(self, run)

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Write the run's buffered metrics, then record its status and end time."""
        status = run_status(status)
        self._metric_buffer.flush()
        with self.meta.write() as conn:
            records.set_run_status(conn, run_id, status,
                                   None if status is RunStatus.RUNNING else records.now_ms())

    def get_run(self, run_id: str) -> Run:
        self._metric_buffer.flush()
        with self.meta.read() as conn:
            return records.get_run(conn, run_id)

    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The full id of the run ``id_or_prefix`` names (a unique prefix of 4+ characters)."""
        with self.meta.read() as conn:
            return records.resolve_run_id(conn, id_or_prefix)

    def delete_run(self, run_id: str) -> None:
        with self.meta.write() as conn:
            records.delete_run(conn, run_id)

    # -- logging ---------------------------------------------------------------------
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        values = {check_key(k, kind="param"): param_value(k, v) for k, v in params.items()}
        with self.meta.write() as conn:
            records.experiment_id_of_run(conn, run_id)
            write_params(conn, run_id, values)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        values = {check_key(k, kind="tag"): str(v) for k, v in tags.items()}
        with self.meta.write() as conn:
            records.experiment_id_of_run(conn, run_id)
            write_tags(conn, run_id, values)

    def log_metric(self, run_id: str, key: str, value: Any, *, step: int = 0,
                   timestamp: int | None = None) -> None:
        """Log one point, written at once (use a run's buffered ``log_metric`` in loops)."""
        self.log_batch(run_id, metrics=[Metric(key, value, step, timestamp or records.now_ms())])

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] | None = None,
                  params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None) -> None:
        """Params, tags and metric points of one run in a single transaction."""
        param_values = {check_key(k, kind="param"): param_value(k, v)
                        for k, v in (params or {}).items()}
        tag_values = {check_key(k, kind="tag"): str(v) for k, v in (tags or {}).items()}
        checked: set[str] = set()
        now = records.now_ms()
        points = []
        for m in metrics or ():
            if m.key not in checked:
                checked.add(check_key(m.key, kind="metric"))
            points.append((m.key, metric_value(m.key, m.value), int(m.step), m.timestamp or now))
        with self.meta.write() as conn:
            experiment_id = records.experiment_id_of_run(conn, run_id)
            write_params(conn, run_id, param_values)
            write_tags(conn, run_id, tag_values)
            write_metric_points(conn, [MetricPoint(run_id, experiment_id, *p) for p in points])

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        self._metric_buffer.flush()
        with self.meta.read() as conn:
            return records.metric_history(conn, run_id, key)

    # -- artifacts -------------------------------------------------------------------
    def log_artifact(self, run_id: str, local_path: str | Path,
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        return artifact_ops.log_artifact(self.meta, self.blobs, run_id, local_path,
                                         artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> ArtifactInfo:
        return self._log_bytes(run_id, text.encode(), artifact_file)

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> ArtifactInfo:
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            return self._log_bytes(run_id, yaml.safe_dump(data).encode(), artifact_file)
        return self._log_bytes(run_id, canonical_json(data), artifact_file)

    def _log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> ArtifactInfo:
        parent, _, filename = artifact_file.rpartition("/")
        if not filename:
            raise InvalidArgument(f"artifact file {artifact_file!r} needs a file name")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / filename
            local.write_bytes(data)
            return self.log_artifact(run_id, local, parent)[0]

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        with self.meta.read() as conn:
            return artifact_ops.list_artifacts(conn, run_id, path)

    def download_artifacts(self, run_id: str, path: str = "",
                           dest: str | Path = ".") -> Path:
        return artifact_ops.download_artifacts(self.meta, self.blobs, run_id, path, dest)

    # -- search ----------------------------------------------------------------------
    def search_runs(self, experiment: str | Sequence[str] | None = None, *,
                    filter: str | None = None, order_by: Sequence[str] | None = None,
                    max_results: int = 1000, offset: int = 0, include_deleted: bool = False,
                    output_format: Literal["list", "pandas"] = "list",
                    ) -> list[Run] | pd.DataFrame:
        """Runs of ``experiment`` (a name or id, several, or None for all) matching ``filter``.

        ``filter`` uses MLflow's syntax plus ``or``, parentheses and ``in``:
        ``"metrics.auc > 0.9 and (params.model = 'rf' or params.model in ('gb', 'et'))"``.
        """
        if max_results < 1 or offset < 0:
            raise InvalidArgument(f"max_results must be >= 1 and offset >= 0, got "
                                  f"{max_results} and {offset}")
        if output_format not in ("list", "pandas"):
            raise InvalidArgument(f"output_format must be 'list' or 'pandas', got "
                                  f"{output_format!r}")
        from loopml.tracking.filter import parse_filter, parse_order_by
        from loopml.tracking.search import search_run_ids

        expr = parse_filter(filter)
        order = parse_order_by(list(order_by or []))
        self._metric_buffer.flush()
        names = [experiment] if isinstance(experiment, str) else list(experiment or [])
        with self.meta.read() as conn:
            if names:
                ids = [records.get_experiment(conn, n).id for n in names]
            else:
                ids = [e.id for e in records.list_experiments(conn)]
            run_ids = search_run_ids(conn, experiment_ids=ids, filter=expr, order_by=order,
                                     max_results=max_results, offset=offset,
                                     include_deleted=include_deleted)
            found = records.load_runs(conn, run_ids)
        if output_format == "pandas":
            return runs_to_dataframe(found)
        return found


def runs_to_dataframe(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: info columns, then ``params.*``, ``metrics.*`` and ``tags.*``."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependency("search_runs(output_format='pandas')",
                                package="pandas") from None
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run_id": run.id, "experiment_id": run.experiment_id,
                               "name": run.name, "status": run.status.value,
                               "start_time": run.started, "end_time": run.ended,
                               "duration_s": run.duration_s, "parent_run_id": run.parent_run_id}
        row.update({f"params.{k}": v for k, v in run.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        row.update({f"tags.{k}": v for k, v in run.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)
