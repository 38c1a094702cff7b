"""Dataset registry conformance: every metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.client import Client
from loopml.datasets import Contract
from loopml.errors import InvalidArgument, NotFound


@pytest.fixture
def client(database_url: str, tmp_path: Path):
    settings = loopml.load_settings(home=tmp_path / "home", database_url=database_url,
                                    blob_url=f"file://{tmp_path / 'blobs'}", progress=False)
    client = Client(settings)
    yield client
    client.close()


def make_tree(root: Path, files: int = 30, dirs: int = 3) -> Path:
    for i in range(files):
        path = root / f"d{i % dirs}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {i}\n" * 10)
    return root


def write_csv(path: Path, start: int, rows: int) -> Path:
    lines = ["id,amount,segment"] + [f"{i},{i * 1.5},{'ab'[i % 2]}"
                                      for i in range(start, start + rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_add_tree_versions_and_unchanged(client: Client, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "images")
    v1 = client.add_dataset(root, "images", message="first")
    assert (v1.version, v1.kind.value, v1.files, v1.new_files) == (1, "tree", 30, 30)
    again = client.add_dataset(root, "images")
    assert again.unchanged and again.version == 1
    (root / "d0" / "f0.txt").write_text("changed")
    (root / "d1" / "new.txt").write_text("new")
    v2 = client.add_dataset(root, "images")
    assert (v2.version, v2.new_files, v2.parent_version) == (2, 2, 1)
    changes = client.diff_datasets("images@1", "images@2")
    assert changes.added == ["d1/new.txt"] and changes.modified == ["d0/f0.txt"]
    assert changes.removed == []
    assert [v.version for v in client.list_dataset_versions("images")] == [1, 2]


def test_get_materialises_versions_and_prefix(client: Client, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    client.add_dataset(root, "docs")
    (root / "d2" / "f2.txt").write_text("v2")
    client.add_dataset(root, "docs")
    out = tmp_path / "out"
    client.get_dataset("docs@2", out)
    assert (out / "d2" / "f2.txt").read_text() == "v2"
    stats = client.get_dataset("docs@1", out)
    assert stats.written == 1
    assert (out / "d2" / "f2.txt").read_text() == "content 2\n" * 10
    part = tmp_path / "part"
    client.get_dataset("docs@1", part, prefix="d1")
    assert sorted(p.name for p in part.rglob("*.txt")) == sorted(
        f"f{i}.txt" for i in range(30) if i % 3 == 1)


def test_table_add_append_profile_and_load(client: Client, tmp_path: Path) -> None:
    v1 = client.add_dataset(write_csv(tmp_path / "churn.csv", 0, 100), "churn")
    assert (v1.kind.value, v1.rows) == ("table", 100)
    assert [c["name"] for c in v1.schema or []] == ["id", "amount", "segment"]
    v2 = client.append_dataset("churn", write_csv(tmp_path / "more.csv", 100, 50))
    assert (v2.rows, v2.new_rows, v2.new_files, v2.parent_version) == (150, 50, 1, 1)
    frame = client.load_table("churn@latest")
    assert len(frame) == 150 and frame["id"].max() == 149
    profile = client.dataset_profile("churn@2")
    assert profile is not None and profile.rows == 150
    assert profile.columns["id"].summary()["max"] == 149
    assert client.load_table("churn@1", output="arrow").num_rows == 100


def test_append_parquet_with_other_columns_is_refused(client: Client, tmp_path: Path) -> None:
    client.add_dataset(write_csv(tmp_path / "t.csv", 0, 10), "t")
    pq.write_table(pa.table({"id": [1], "other": ["x"]}), tmp_path / "bad.parquet")
    with pytest.raises(InvalidArgument, match="columns differ"):
        client.append_dataset("t", tmp_path / "bad.parquet")
    assert [v.version for v in client.list_dataset_versions("t")] == [1]


def test_tags_and_refs(client: Client, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "r", files=3)
    client.add_dataset(root, "r")
    (root / "x.txt").write_text("x")
    client.add_dataset(root, "r")
    client.tag_dataset("r@1", "golden")
    assert client.get_dataset_version("r@golden").version == 1
    assert client.get_dataset_version("r").version == 2
    assert client.get_dataset_version("r@1").tags == ("golden",)
    with pytest.raises(NotFound, match=r"no version '7'.*versions: 1, 2.*tags: golden"):
        client.get_dataset_version("r@7")
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        client.get_dataset_version("nope@1")
    with pytest.raises(InvalidArgument, match="invalid tag"):
        client.tag_dataset("r@1", "latest")


def test_lineage_of_runs(client: Client, tmp_path: Path) -> None:
    client.add_dataset(write_csv(tmp_path / "c.csv", 0, 10), "c")
    with client.start_run("lineage") as run:
        client.load_table("c@1", run_id=run.id)
        out = client.add_dataset(write_csv(tmp_path / "d.csv", 0, 5), "derived",
                                 run_id=run.id)
    assert [(r.id, role) for r, role in client.dataset_lineage("c@1")] == [(run.id, "input")]
    assert [(r.id, role) for r, role in client.dataset_lineage(out.ref)] == [
        (run.id, "output")]


def test_contract_warns_by_default_and_rejects_when_strict(client: Client,
                                                          tmp_path: Path) -> None:
    client.add_dataset(write_csv(tmp_path / "a.csv", 0, 20), "scores")
    client.set_dataset_contract("scores", client.infer_dataset_contract("scores@1"))
    bad = tmp_path / "bad.csv"
    bad.write_text("id,amount,segment\n1,-5.0,zzz\n2,,a\n")
    with pytest.raises(InvalidArgument, match="violates the contract"):
        client.add_dataset(bad, "scores", strict=True)
    assert [v.version for v in client.list_dataset_versions("scores")] == [1]
    warned = client.add_dataset(bad, "scores")
    assert warned.version == 2
    assert warned.validation and warned.validation["contract"]["ok"] is False
    assert isinstance(Contract.from_dict(client.infer_dataset_contract("scores@1").to_dict()),
                      Contract)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing", "no such file or directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no files"),
])
def test_bad_paths_store_nothing(client: Client, tmp_path: Path, make, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        client.add_dataset(make(tmp_path), "x")
    assert client.list_datasets() == []


def test_csv_that_does_not_parse_names_row(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InvalidArgument, match="broken.csv"):
        client.add_dataset(bad, "broken")
    assert client.list_datasets() == []


@pytest.mark.s3
def test_s3_blob_backend_and_remote_push_pull(tmp_path: Path, s3_endpoint: str,
                                              s3_bucket: str) -> None:
    on_s3 = Client(loopml.load_settings(home=tmp_path / "s3home", progress=False,
                                        blob_url=f"s3://{s3_bucket}/blobs",
                                        s3_endpoint_url=s3_endpoint))
    root = make_tree(tmp_path / "tree", files=12)
    on_s3.add_dataset(root, "remote-tree")
    on_s3.get_dataset("remote-tree@1", tmp_path / "from-s3")
    assert (tmp_path / "from-s3" / "d1" / "f4.txt").read_text() == "content 4\n" * 10
    on_s3.close()

    settings = dict(progress=False, remote_url=f"s3://{s3_bucket}/remote",
                    s3_endpoint_url=s3_endpoint, database_url=f"sqlite:///{tmp_path / 'm.db'}")
    laptop = Client(loopml.load_settings(home=tmp_path / "laptop", **settings))
    laptop.add_dataset(root, "shared")
    first = laptop.push_dataset("shared@1")
    assert first.objects > 0
    (root / "d0" / "f0.txt").write_text("changed")
    laptop.add_dataset(root, "shared")
    second = laptop.push_dataset("shared@2")
    assert 0 < second.objects < first.objects  # only what changed travels
    laptop.close()
    # another machine: same metadata database, empty local blob store
    other = Client(loopml.load_settings(home=tmp_path / "other", **settings))
    with pytest.raises(loopml.LoopmlError):
        other.get_dataset("shared@2", tmp_path / "nothing-yet")
    other.pull_dataset("shared@2")
    other.get_dataset("shared@2", tmp_path / "pulled")
    assert (tmp_path / "pulled" / "d0" / "f0.txt").read_text() == "changed"
    other.close()


def test_quick_lookup_agrees_with_the_client(client: Client, tmp_path: Path) -> None:
    from loopml.datasets.quick_lookup import latest_version_quickly, version_quickly

    root = make_tree(tmp_path / "q", files=4)
    client.add_dataset(root, "quick")
    (root / "extra.txt").write_text("more")
    latest = client.add_dataset(root, "quick")
    quick = latest_version_quickly(client.settings, "quick")
    if client.settings.is_embedded:
        assert quick == (latest.version, latest.tree)
        assert latest_version_quickly(client.settings, "missing") is None
        first = client.get_dataset_version("quick@1")
        assert version_quickly(client.settings, "quick@1") == ("quick", 1, first.tree)
        assert version_quickly(client.settings, "quick@golden") is None  # tags: the client
        assert version_quickly(client.settings, "quick@9") is None
    else:
        assert quick is None  # PostgreSQL always takes the client's path


def test_quick_add_agrees_with_the_client(client: Client, tmp_path: Path) -> None:
    from loopml.datasets.ingest import IngestOptions, add_to
    from loopml.datasets.quick_add import QuickCatalog

    def add_quickly(path: Path, name: str, **options: object) -> object:
        catalog = QuickCatalog.open(client.settings, name)
        assert catalog is not None
        return add_to(catalog, client.blobs, client.stat_cache, name=name, path=path,
                      options=IngestOptions(**options))

    root = make_tree(tmp_path / "q", files=6)
    if not client.settings.is_embedded:
        client.add_dataset(root, "quick")
        assert QuickCatalog.open(client.settings, "quick") is None  # the client's path
        return
    assert QuickCatalog.open(client.settings, "quick") is None  # no store file yet
    client.add_dataset(root, "quick")
    client.tag_dataset("quick@1", "golden")
    again = add_quickly(root, "quick")
    assert again == dataclasses.replace(client.get_dataset_version("quick@1"), unchanged=True)
    (root / "d0" / "f0.txt").write_text("changed")
    second = add_quickly(root, "quick", message="quick one")
    assert second == client.get_dataset_version("quick@2")
    assert (second.parent_version, second.new_files, second.message) == (1, 1, "quick one")
    table = write_csv(tmp_path / "t.csv", 0, 40)
    first_table = add_quickly(table, "fresh")  # a new dataset, with statistics
    assert first_table == client.get_dataset_version("fresh@1")
    assert first_table.rows == 40 and first_table.schema is not None
    assert client.dataset_profile("fresh@1") is not None
    assert client.add_dataset(table, "fresh").unchanged


def test_parquet_directory_is_one_table(client: Client, tmp_path: Path) -> None:
    parts = tmp_path / "events"
    parts.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"id": list(range(i * 100, i * 100 + 100)),
                                 "score": [float(j) for j in range(100)]}),
                       parts / f"part-{i}.parquet")
    version = client.add_dataset(parts, "events")
    assert (version.kind.value, version.rows, version.files) == ("table", 300, 3)
    profile = client.dataset_profile("events@1")
    assert profile is not None and profile.columns["id"].summary()["max"] == 299
    assert client.load_table("events", output="arrow").num_rows == 300
