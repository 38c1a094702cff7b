"""An MLflow model directory (``MLmodel`` + the model's files) as a loopml model package.

When the ``mlflow`` client registers a model version, the files it uploaded are already
blobs in a run's artifacts. Registering adds one file, ``loopml-model.yaml``, and stores the
whole as the version's package tree, so both sides load the same version:
``mlflow.sklearn.load_model("models:/churn@production")`` downloads the MLflow files (the
extra manifest is ignored) and ``loopml.load_model("models:/churn@production")`` reads the
manifest.

Only scikit-learn models (the ``sklearn`` flavor of ``MLmodel``) are imported, and how they
were serialized decides who may register them:

* ``skops`` (MLflow 3's default): imported for any editor. skops rebuilds only the types on
  its trusted list, and loopml refuses to load a package holding other types unless the
  loader passes ``trusted=True``;
* ``pickle`` / ``cloudpickle``: unpickling runs arbitrary code, so such a model is registered
  only for an admin (403 ``PERMISSION_DENIED`` for anyone else); loading it in loopml then
  needs ``trusted=True`` too.

The signature is translated from MLflow's column and tensor specs where their types have a
loopml dtype; the recorded requirements are the client's pins of the packages that load the
model. Nothing is fetched from outside the blob store.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

import loopml
from loopml.blobs.entry import FileEntry
from loopml.blobs.tree import tree_from_entries
from loopml.errors import InvalidArgument, LoopmlError, NotFound, PermissionDenied
from loopml.models.manifest import MANIFEST_NAME, ModelManifest, plain_json, write_manifest
from loopml.models.signature import ColumnSpec, Schema, Signature, TensorSpec
from loopml.server.api.registry import code_at_load
from loopml.tracking.artifacts import list_artifacts

if TYPE_CHECKING:
    from loopml.client import Client

__all__ = ["MLMODEL", "import_mlflow_model", "translate_signature"]

MLMODEL = "MLmodel"
_MAX_TEXT_BYTES = 1024**2
#: The packages whose versions matter to loading a scikit-learn model.
_LOAD_PACKAGES = frozenset({"scikit-learn", "skops", "numpy", "scipy", "pandas", "cloudpickle"})
_COLUMN_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
                 "boolean": "bool", "string": "string", "binary": "binary",
                 "datetime": "datetime64[ns]"}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*$")


def _text(client: Client, entry: FileEntry, what: str) -> str:
    if entry.size > _MAX_TEXT_BYTES:
        raise InvalidArgument(f"the model's {what} is {entry.size:,} bytes; at most "
                              f"{_MAX_TEXT_BYTES:,} are read")
    try:
        return client.blobs.get_bytes(entry.digest).decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"the model's {what} is not UTF-8 text") from None


def _mlmodel(client: Client, entry: FileEntry, source: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(_text(client, entry, MLMODEL))
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"the {MLMODEL} file of {source} is not valid YAML ({exc})") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise InvalidArgument(f"the {MLMODEL} file of {source} has no 'flavors' mapping")
    return data


def _schema(text: Any) -> Schema | None:
    """A loopml schema for an MLflow schema (a JSON string of specs); None when a spec has
    no loopml equivalent."""
    if not isinstance(text, str):
        return None
    try:
        specs = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        return None
    if all(s.get("type") == "tensor" for s in specs):
        tensors = []
        for spec in specs:
            tensor = spec.get("tensor-spec") or {}
            shape = tensor.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
                return None
            tensors.append(TensorSpec(str(tensor.get("dtype")), tuple(shape), spec.get("name")))
        return Schema(tensors=tuple(tensors))
    dtypes = [_COLUMN_TYPES.get(str(s.get("type"))) for s in specs]
    if None in dtypes:
        return None
    names = [s.get("name") for s in specs]
    if all(isinstance(n, str) for n in names):
        return Schema(columns=tuple(ColumnSpec(str(n), str(d)) for n, d in zip(names, dtypes,
                                                                              strict=True)))
    if len(specs) == 1:  # one unnamed column: a vector
        return Schema(tensors=(TensorSpec(str(dtypes[0]), (-1,)),))
    return None


def translate_signature(signature: Any) -> Signature | None:
    """loopml's signature for the ``signature`` mapping of an ``MLmodel`` file."""
    if not isinstance(signature, dict):
        return None
    inputs = _schema(signature.get("inputs"))
    if inputs is None:
        return None
    return Signature(inputs, _schema(signature.get("outputs")))


def _requirements(client: Client, entries: dict[str, FileEntry]) -> tuple[str, ...]:
    entry = entries.get("requirements.txt")
    if entry is None:
        return ()
    pins = []
    for line in _text(client, entry, "requirements.txt").splitlines():
        found = _PIN.match(line)
        if found and re.sub(r"[-_.]+", "-", found.group(1)).lower() in _LOAD_PACKAGES:
            pins.append(f"{found.group(1)}=={found.group(2)}")
    return tuple(pins)


def _created_at(mlmodel: dict[str, Any]) -> str:
    text = mlmodel.get("utc_time_created")
    try:
        when = datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    except ValueError:
        return ModelManifest.now()
    return when.isoformat(timespec="microseconds")


def _untrusted_types(client: Client, entry: FileEntry, source: str) -> list[str]:
    from loopml.models.flavors.sklearn import import_skops

    try:
        sio = import_skops()
    except ImportError:
        raise InvalidArgument("registering a skops model needs the package 'skops' on the "
                              "server; install it with: pip install 'loopml[models]'") from None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.skops"
        client.blobs.get_file(entry.digest, local)
        try:
            return sorted(sio.get_untrusted_types(file=local))
        except Exception as exc:  # skops raises zipfile/JSON errors on a file it cannot read
            raise InvalidArgument(f"the model file of {source} is not a readable skops file "
                                  f"({type(exc).__name__}: {exc})") from None


def _flavor_data(client: Client, sklearn: dict[str, Any], entries: dict[str, FileEntry],
                 source: str, *, allow_pickle: bool) -> dict[str, Any]:
    file = sklearn.get("pickled_model")
    serialization = sklearn.get("serialization_format", "cloudpickle")
    if not isinstance(file, str) or file not in entries:
        raise InvalidArgument(f"the sklearn flavor of {source} names the model file "
                              f"{file!r}, which is not among the uploaded files")
    if serialization == "skops":
        return {"file": file, "serializer": "skops",
                "untrusted_types": _untrusted_types(client, entries[file], source)}
    if serialization not in ("pickle", "cloudpickle"):
        raise InvalidArgument(f"the sklearn model of {source} is serialized as "
                              f"{serialization!r}; loopml imports skops, pickle and cloudpickle")
    if not allow_pickle:
        raise PermissionDenied(
            f"the model of {source} is a {serialization} file: loading it runs arbitrary code, "
            "so only an admin may register it; log it with serialization_format='skops' "
            "(MLflow's default), or ask an admin to register it")
    return {"file": file, "serializer": "pickle"}


def import_mlflow_model(client: Client, *, run_id: str, path: str, allow_pickle: bool,
                        metadata: dict[str, Any]) -> tuple[str, ModelManifest]:
    """Store the MLflow model at ``path`` in the run's artifacts, plus a loopml manifest,
    as one package tree; returns the tree's digest and the manifest."""
    source = f"runs:/{run_id}/{path}"
    with client.meta.read() as conn:
        files = list_artifacts(conn, run_id, path)
    start = len(path) + 1 if path else 0
    entries = {f.path[start:]: FileEntry(f.digest, f.size) for f in files if f.path != path}
    if MLMODEL not in entries:
        raise NotFound(f"no MLflow model at {source}: it has no {MLMODEL} file; upload the "
                       "model's files (log_model does) before registering it")
    reason = code_at_load(None, entries)
    if reason is not None and not allow_pickle:
        # MLflow's own loaders unpickle such a file (python_function's python_model), whatever
        # the sklearn flavor says.
        raise PermissionDenied(f"the model at {source} runs code when loaded ({reason}); only "
                               "an admin may register it; log it with "
                               "serialization_format='skops' and no pickled files")
    mlmodel = _mlmodel(client, entries[MLMODEL], source)
    sklearn = mlmodel["flavors"].get("sklearn")
    if not isinstance(sklearn, dict):
        flavors = ", ".join(map(str, mlmodel["flavors"])) or "none"
        raise InvalidArgument(f"the model of {source} has the flavors {flavors}; loopml's MLflow "
                              "API registers scikit-learn models (mlflow.sklearn.log_model)")
    pyfunc = mlmodel["flavors"].get("python_function")
    manifest = ModelManifest(
        flavor="sklearn",
        flavor_data=_flavor_data(client, sklearn, entries, source, allow_pickle=allow_pickle),
        requirements=_requirements(client, entries),
        python_version=str(pyfunc.get("python_version", "")) if isinstance(pyfunc, dict)
        else "",
        loopml_version=loopml.__version__, created_at=_created_at(mlmodel),
        signature=_signature_or_none(mlmodel.get("signature")),
        metadata=plain_json({**metadata, "mlflow_version": str(mlmodel.get("mlflow_version",
                                                                          ""))}, "metadata"))
    with tempfile.TemporaryDirectory() as tmp:
        text = write_manifest(tmp, manifest).read_bytes()
    digest = client.blobs.put_bytes(text)
    entries[MANIFEST_NAME] = FileEntry(digest, len(text))
    return tree_from_entries(client.blobs, entries), manifest


def _signature_or_none(signature: Any) -> Signature | None:
    try:
        return translate_signature(signature)
    except LoopmlError:  # a schema loopml cannot hold: the package has no signature
        return None
