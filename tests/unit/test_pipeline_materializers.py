"""Every built-in materializer stores a value and gives back an equal one (the types the
pipelines issue names: JSON-able, pandas, pyarrow, numpy, scikit-learn and PyTorch models,
paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.blobs import BlobStore
from loopml.blobs.memory import MemoryBackend
from loopml.pipelines.materializers import load_output, save_output


@pytest.fixture
def blobs() -> BlobStore:
    return BlobStore(MemoryBackend())


def roundtrip(value: Any, blobs: BlobStore, tmp_path: Path, name: str) -> tuple[str, Any]:
    ref = save_output(value, blobs, step="s")
    assert save_output(value, blobs, step="s").digest == ref.digest  # same value, same digest
    return ref.materializer, load_output(ref, blobs, tmp_path / "cache")


def test_plain_tables_and_arrays(blobs: BlobStore, tmp_path: Path) -> None:
    assert roundtrip({"a": [1, 2.5, None, "x"]}, blobs, tmp_path, "json") == (
        "json", {"a": [1, 2.5, None, "x"]})
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    kind, back = roundtrip(frame, blobs, tmp_path, "pandas")
    assert kind == "pandas"
    pd.testing.assert_frame_equal(back, frame)
    kind, series = roundtrip(frame["x"], blobs, tmp_path, "pandas")
    pd.testing.assert_series_equal(series, frame["x"])
    table = pa.table({"x": [1, 2, 3]})
    kind, back = roundtrip(table, blobs, tmp_path, "arrow")
    assert kind == "arrow" and back.equals(table)
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    kind, back = roundtrip(array, blobs, tmp_path, "numpy")
    assert kind == "numpy" and back.dtype == np.float32
    np.testing.assert_array_equal(back, array)


def test_paths_come_back_as_read_only_copies(blobs: BlobStore, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("hello")
    kind, back = roundtrip(folder, blobs, tmp_path, "path")
    assert kind == "path" and (back / "sub" / "a.txt").read_text() == "hello"
    single = tmp_path / "one.csv"
    single.write_text("x\n1\n")
    kind, back = roundtrip(single, blobs, tmp_path, "path")
    assert back.name == "one.csv" and back.read_text() == "x\n1\n"


def test_models_are_stored_as_registry_packages(blobs: BlobStore, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    ref = save_output(model, blobs, step="fit")
    assert ref.materializer == "model" and ref.kind == "tree"
    back = load_output(ref, blobs, tmp_path / "cache")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))

    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 1)
    ref = save_output(net, blobs, step="train")
    assert ref.materializer == "model"
    loaded = load_output(ref, blobs, tmp_path / "cache")
    sample = torch.ones(2, 3)
    assert torch.allclose(loaded(sample), net(sample))
