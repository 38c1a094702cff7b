"""Materializers: how a step's output becomes blobs, and how it comes back as a value.

A materializer is chosen by the value's type, first match wins; the ones added with
:func:`register_materializer` are tried before the built-ins:

======== ============================================== ====================================
name     values                                          stored as
======== ============================================== ====================================
json     None, bool, int, float, str, lists/tuples and   canonical JSON (one blob)
         dicts of those (str keys)
pandas   pandas DataFrame / Series                       Parquet (one blob)
arrow    pyarrow Table                                   Parquet (one blob)
numpy    numpy ndarray                                   .npy (one blob)
model    a model a registry flavor recognises            the model package (a tree)
         (scikit-learn, PyTorch, XGBoost, LightGBM, …)
path     pathlib.Path to a file or directory             the files (a tree)
======== ============================================== ====================================

A user materializer subclasses :class:`BytesMaterializer` (value ↔ bytes) or
:class:`DirectoryMaterializer` (value ↔ files in a directory) and sets ``name`` and
``handles``. The stored digest of an output is what the step cache hashes downstream.
"""

from __future__ import annotations

import io
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from loopml._lazy import loaded_module
from loopml.blobs import BlobStore
from loopml.errors import InvalidArgument

if TYPE_CHECKING:
    from loopml.models.package import ModelPackage

__all__ = ["BytesMaterializer", "DirectoryMaterializer", "Materializer", "OutputRef",
           "load_output", "materializer_for", "register_materializer", "save_output",
           "save_step_model"]


@dataclass(frozen=True)
class OutputRef:
    """A stored step output: which materializer wrote it, and the blob or tree holding it."""

    materializer: str
    digest: str
    kind: Literal["blob", "tree"]
    type: str

    def to_json(self) -> dict[str, str]:
        return {"materializer": self.materializer, "digest": self.digest, "kind": self.kind,
                "type": self.type}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputRef:
        return cls(data["materializer"], data["digest"], data["kind"], data["type"])


def type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


class Materializer(ABC):
    """Stores values of some types in the blob store and loads them back."""

    #: Unique name recorded with each output (so loading finds the same materializer).
    name: ClassVar[str] = ""

    @abstractmethod
    def handles(self, value: object) -> bool:
        """Whether this materializer can store ``value``."""

    @abstractmethod
    def save(self, value: object, blobs: BlobStore) -> OutputRef:
        """Store ``value``; return the reference to it."""

    @abstractmethod
    def load(self, ref: OutputRef, blobs: BlobStore, cache: Path) -> object:
        """The value stored as ``ref`` (``cache`` is a directory for checked-out trees)."""


class BytesMaterializer(Materializer):
    """A materializer whose values fit in memory as one blob."""

    @abstractmethod
    def to_bytes(self, value: Any) -> bytes: ...

    @abstractmethod
    def from_bytes(self, data: bytes) -> object: ...

    def save(self, value: object, blobs: BlobStore) -> OutputRef:
        return OutputRef(self.name, blobs.put_bytes(self.to_bytes(value)), "blob",
                         type_name(value))

    def load(self, ref: OutputRef, blobs: BlobStore, cache: Path) -> object:
        return self.from_bytes(blobs.get_bytes(ref.digest))


class DirectoryMaterializer(Materializer):
    """A materializer that writes a value as files in a fresh directory (stored as a tree)."""

    @abstractmethod
    def write(self, value: Any, directory: Path) -> None:
        """Write ``value`` into the empty directory ``directory``."""

    @abstractmethod
    def read(self, directory: Path) -> object:
        """The value written in ``directory`` (which stays in place while it is used)."""

    def save(self, value: object, blobs: BlobStore) -> OutputRef:
        from loopml.blobs.build import build_tree

        with tempfile.TemporaryDirectory(prefix="loopml-output-") as tmp:
            directory = Path(tmp) / "output"
            directory.mkdir()
            self.write(value, directory)
            tree = build_tree(blobs, directory).digest
        return OutputRef(self.name, tree, "tree", type_name(value))

    def load(self, ref: OutputRef, blobs: BlobStore, cache: Path) -> object:
        from loopml.blobs.checkout import checkout_once

        return self.read(checkout_once(blobs, ref.digest, cache))


# -- built-ins ---------------------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_able(value: object, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, list | tuple):
        return all(_json_able(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_able(v, depth + 1) for k, v in value.items())
    return False


class JsonMaterializer(BytesMaterializer):
    """Plain data as canonical JSON (NaN and infinities kept; tuples come back as lists)."""

    name = "json"

    def handles(self, value: object) -> bool:
        return _json_able(value)

    def to_bytes(self, value: Any) -> bytes:
        import json

        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()

    def from_bytes(self, data: bytes) -> object:
        import json

        return json.loads(data)


class PandasMaterializer(BytesMaterializer):
    name = "pandas"

    def handles(self, value: object) -> bool:
        pd = loaded_module("pandas")
        return pd is not None and isinstance(value, pd.DataFrame | pd.Series)

    def to_bytes(self, value: Any) -> bytes:
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=True)
        marker = b"S" if isinstance(value, pd.Series) else b"F"
        return marker + buffer.getvalue()

    def from_bytes(self, data: bytes) -> object:
        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(data[1:]))
        return frame.iloc[:, 0] if data[:1] == b"S" else frame


class ArrowMaterializer(BytesMaterializer):
    name = "arrow"

    def handles(self, value: object) -> bool:
        pa = loaded_module("pyarrow")
        return pa is not None and isinstance(value, pa.Table)

    def to_bytes(self, value: Any) -> bytes:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(value, buffer)
        return buffer.getvalue()

    def from_bytes(self, data: bytes) -> object:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data))


class NumpyMaterializer(BytesMaterializer):
    name = "numpy"

    def handles(self, value: object) -> bool:
        np = loaded_module("numpy")
        return np is not None and isinstance(value, np.ndarray) and value.dtype != object

    def to_bytes(self, value: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def from_bytes(self, data: bytes) -> object:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class ModelMaterializer(DirectoryMaterializer):
    """Models as registry packages, so a pipeline's model can be registered as it is."""

    name = "model"

    def handles(self, value: object) -> bool:
        if isinstance(value, (*_JSON_SCALARS, list, tuple, dict, Path)):
            return False
        from loopml.models.flavor import detect_flavor

        try:
            detect_flavor(value)
        except InvalidArgument:
            return False
        return True

    def write(self, value: Any, directory: Path) -> None:
        save_step_model(value, directory)

    def read(self, directory: Path) -> object:
        from loopml.models import load_model

        # A step output was written by this pipeline's own step into this store, so the
        # package is trusted like the code that made it (registered models are not).
        return load_model(directory, trusted=True).raw


def save_step_model(value: Any, directory: Path, *, input_example: Any = None,
                    metadata: Mapping[str, Any] | None = None) -> ModelPackage:
    """Save a model a step returned as a package at ``directory`` (see ``save_model``).

    A PyTorch module whose class cannot be rebuilt from its import path alone (defined in
    ``__main__`` or a function, constructor arguments unknown), or one that is already
    TorchScript (a cached step output comes back so), is kept as TorchScript: a step output
    is trusted like the step that wrote it (see :meth:`ModelMaterializer.read`)."""
    from loopml.models import save_model

    try:
        return save_model(value, directory, input_example=input_example, metadata=metadata)
    except InvalidArgument:
        torch = loaded_module("torch")
        if torch is None or not isinstance(value, torch.nn.Module):
            raise
        return save_model(value, directory, input_example=input_example, metadata=metadata,
                          options={"torchscript": True}, trusted=True)


class PathMaterializer(Materializer):
    """A file or directory the step wrote; comes back as a Path to a read-only copy."""

    name = "path"

    def handles(self, value: object) -> bool:
        return isinstance(value, Path)

    def save(self, value: object, blobs: BlobStore) -> OutputRef:
        from loopml.blobs.build import build_tree

        assert isinstance(value, Path)
        if not value.exists():
            raise InvalidArgument(f"the step returned the path {value}, which does not exist; "
                                  "return a path to a file or directory the step wrote")
        kind = "file" if value.is_file() else "dir"
        return OutputRef(self.name, build_tree(blobs, value).digest, "tree", kind)

    def load(self, ref: OutputRef, blobs: BlobStore, cache: Path) -> object:
        from loopml.blobs.checkout import checkout_once

        directory = checkout_once(blobs, ref.digest, cache)
        if ref.type == "file":
            return next(p for p in directory.iterdir() if p.is_file())
        return directory


_BUILTINS: tuple[Materializer, ...] = (JsonMaterializer(), PandasMaterializer(),
                                       ArrowMaterializer(), NumpyMaterializer(),
                                       PathMaterializer(), ModelMaterializer())
_custom: list[Materializer] = []
_lock = threading.Lock()


def register_materializer(materializer: Materializer) -> None:
    """Use ``materializer`` for the values it handles (tried before the built-ins)."""
    if not isinstance(materializer, Materializer) or not materializer.name:
        raise InvalidArgument("register_materializer takes a Materializer instance with a "
                              "'name'; subclass BytesMaterializer or DirectoryMaterializer")
    with _lock:
        _custom[:] = [m for m in _custom if m.name != materializer.name]
        _custom.insert(0, materializer)


def _all() -> list[Materializer]:
    return [*_custom, *_BUILTINS]


def materializer_for(value: object, *, step: str = "") -> Materializer:
    """The materializer that stores ``value`` (a LoopmlError names the type if none does)."""
    for materializer in _all():
        if materializer.handles(value):
            return materializer
    where = f"step {step!r} returned" if step else "got"
    raise InvalidArgument(
        f"{where} a {type_name(value)}, which no materializer can store (built-in: "
        f"{', '.join(m.name for m in _BUILTINS)}); return one of those types, or add a "
        "materializer: subclass loopml.pipelines.BytesMaterializer (or DirectoryMaterializer) "
        "and call loopml.pipelines.register_materializer(...)")


def save_output(value: object, blobs: BlobStore, *, step: str = "") -> OutputRef:
    return materializer_for(value, step=step).save(value, blobs)


def load_output(ref: OutputRef, blobs: BlobStore, cache: Path) -> object:
    for materializer in _all():
        if materializer.name == ref.materializer:
            return materializer.load(ref, blobs, cache)
    raise InvalidArgument(
        f"an output was stored by the materializer {ref.materializer!r}, which is not "
        "registered in this process; register it (register_materializer) before running")
