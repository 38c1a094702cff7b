"""Dataset registry: immutable content-addressed versions with schema, statistics,
validation, diff and lineage.

The user functions (``loopml.datasets.add``, ``get``, ``load_table``, …) act through the
default client and are imported on first use, so importing this package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

_EXPORTS = {
    "Dataset": "loopml.datasets.entities",
    "DatasetKind": "loopml.datasets.entities",
    "DatasetVersion": "loopml.datasets.entities",
    "Contract": "loopml.datasets.contract",
    **{name: "loopml.client.datasets_api" for name in (
        "add", "append", "diff", "get", "get_version", "infer_contract", "lineage",
        "list_datasets", "load_table", "profile", "set_contract", "tag", "versions")},
}

__all__ = [
    "Contract", "Dataset", "DatasetKind", "DatasetVersion", "add", "append", "diff", "get",
    "get_version", "infer_contract", "lineage", "list_datasets", "load_table", "profile",
    "set_contract", "tag", "versions",
]

if TYPE_CHECKING:
    from loopml.client.datasets_api import (
        add,
        append,
        diff,
        get,
        get_version,
        infer_contract,
        lineage,
        list_datasets,
        load_table,
        profile,
        set_contract,
        tag,
        versions,
    )
    from loopml.datasets.contract import Contract
    from loopml.datasets.entities import Dataset, DatasetKind, DatasetVersion


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

