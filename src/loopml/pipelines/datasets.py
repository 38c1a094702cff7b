"""``loopml.Dataset("churn@latest")``: a dataset version as a pipeline input.

The reference is resolved to one version when the run starts (so every step of a run
reads the same data, and the run records which); inside a step the object loads the data
and records the read on the step's run (lineage). In a sample run (``--sample N``) tables
come back as a seeded random sample of N rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.datasets.refs import parse_ref

if TYPE_CHECKING:
    from loopml.client.embedded import Client
    from loopml.datasets.entities import DatasetVersion

__all__ = ["Dataset"]

SAMPLE_SEED = 0


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset version used by a pipeline: ``Dataset("churn")``, ``Dataset("churn@4")``."""

    ref: str
    version: DatasetVersion | None = None
    sample: int | None = None

    def __post_init__(self) -> None:
        parse_ref(self.ref)  # a malformed reference fails where it is written

    def __repr__(self) -> str:
        where = self.version.ref if self.version is not None else self.ref
        return f"Dataset({where!r})" + (f" sample={self.sample}" if self.sample else "")

    @property
    def cache_identity(self) -> list[Any]:
        """What the step cache hashes: the resolved version (and the sample size)."""
        if self.version is None:
            return ["dataset", self.ref, self.sample]
        return ["dataset", self.version.id, self.sample]

    def resolve(self, client: Client, *, sample: int | None = None) -> Dataset:
        return Dataset(self.ref, client.get_dataset_version(self.ref), sample)

    def _client_and_run(self) -> tuple[Client, str | None]:
        from loopml.client.fluent import default_client
        from loopml.pipelines.context import current_step

        step = current_step()
        if step is not None:
            return step.client, step.run_id
        return default_client(), None

    def _resolved_ref(self, client: Client) -> str:
        return self.version.ref if self.version is not None else \
            client.get_dataset_version(self.ref).ref

    def to_arrow(self) -> Any:
        """The table version as a pyarrow Table (sampled in a sample run)."""
        client, run_id = self._client_and_run()
        table = client.load_table(self._resolved_ref(client), output="arrow", run_id=run_id)
        if self.sample is not None and table.num_rows > self.sample:
            import numpy as np

            rows = np.random.default_rng(SAMPLE_SEED).choice(
                table.num_rows, size=self.sample, replace=False)
            table = table.take(np.sort(rows))
        return table

    def to_pandas(self) -> Any:
        """The table version as a pandas DataFrame (sampled in a sample run)."""
        return self.to_arrow().to_pandas()

    def download(self, dest: str | Path) -> Path:
        """Materialise the version's files under ``dest`` (all of them, even when sampling)."""
        client, run_id = self._client_and_run()
        client.get_dataset(self._resolved_ref(client), dest, run_id=run_id)
        return Path(dest)
