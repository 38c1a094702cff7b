"""The dataset registry's conformance suite (``test_datasets.py``) run on a ``RemoteClient``
talking to a real uvicorn server in a thread, plus what only the remote path has: content
the server holds is never sent again, reads go through a local cache, push and pull say
why they do not apply.

The server is started once for the module; each test gives it a fresh store
(``app.state.client``), as ``test_client_conformance.py`` does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import Counting, ServerThread

# The suite itself: collected here again, with this module's ``client`` fixture.
from test_datasets import (  # noqa: F401
    make_tree,
    test_add_tree_versions_and_unchanged,
    test_append_parquet_with_other_columns_is_refused,
    test_bad_paths_store_nothing,
    test_contract_warns_by_default_and_rejects_when_strict,
    test_csv_that_does_not_parse_names_row,
    test_get_materialises_versions_and_prefix,
    test_lineage_of_runs,
    test_parquet_directory_is_one_table,
    test_table_add_append_profile_and_load,
    test_tags_and_refs,
    write_csv,
)

import loopml
from loopml.client import Client
from loopml.client.remote import RemoteClient
from loopml.errors import Conflict, InvalidArgument

pytest.importorskip("uvicorn")


def _store(home: Path) -> Client:
    return Client(loopml.load_settings(home=home, progress=False))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Counting, str]]:
    from loopml.server.app import ServerOptions, create_app

    placeholder = _store(tmp_path_factory.mktemp("placeholder"))
    app = create_app(client=placeholder, options=ServerOptions(auth=False))
    counting = Counting(app)
    with ServerThread.for_app(counting, lifespan="on") as runner:
        yield app, counting, runner.url
    placeholder.close()


@pytest.fixture
def store(server: tuple[Any, Counting, str], tmp_path: Path) -> Iterator[Client]:
    """The server's store for this test."""
    app, counting, _ = server
    served = _store(tmp_path / "server")
    app.state.client = served
    counting.reset()
    yield served
    served.close()


def _remote(url: str, home: Path) -> RemoteClient:
    return RemoteClient(loopml.load_settings(home=home, tracking_uri=url, progress=False))


@pytest.fixture
def client(server: tuple[Any, Counting, str], store: Client,
           tmp_path: Path) -> Iterator[RemoteClient]:
    remote = _remote(server[2], tmp_path / "client")
    yield remote
    remote.close()
    assert not (tmp_path / "client" / "loopml.db").exists()  # it never opened a local store


@pytest.fixture
def counting(server: tuple[Any, Counting, str]) -> Counting:
    return server[1]


def test_content_the_server_holds_is_not_sent_again(client: RemoteClient, store: Client,
                                                    counting: Counting, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "images", files=40)
    (root / "big.bin").write_bytes(random.Random(0).randbytes(6_000_000))  # stored as chunks
    first = client.add_dataset(root, "images")
    assert first.files == 41 and counting.body_bytes > 6_000_000
    counting.reset()
    again = client.add_dataset(root, "images")
    assert again.unchanged and counting.uploads() == []
    copy = client.add_dataset(root, "copy")  # another dataset, the same files
    assert copy.tree == first.tree and counting.uploads() == []
    other = _remote(client.http.base_url, tmp_path / "other-machine")
    try:  # an empty local cache: the files are hashed, found on the server, not sent
        assert other.add_dataset(root, "third").tree == first.tree
        assert counting.uploads() == []
    finally:
        other.close()
    (root / "d0" / "f0.txt").write_text("changed")
    with (root / "big.bin").open("ab") as grow:
        grow.write(b"appended" * 1000)
    counting.reset()
    second = client.add_dataset(root, "images")
    assert (second.version, second.new_files) == (2, 2)
    assert 0 < counting.body_bytes < 1_500_000  # a pack, the last chunks and the tree
    assert store.get_dataset_version("images@2").tree == second.tree


def test_reads_go_through_the_local_cache(client: RemoteClient, counting: Counting,
                                          tmp_path: Path) -> None:
    client.add_dataset(write_csv(tmp_path / "t.csv", 0, 200), "table")
    fresh = _remote(client.http.base_url, tmp_path / "reader")
    try:
        counting.reset()
        assert len(fresh.load_table("table")) == 200
        assert counting.downloads()
        counting.reset()
        assert len(fresh.load_table("table@1")) == 200
        fresh.get_dataset("table", tmp_path / "out")
        assert counting.downloads() == []  # everything came from the cache
        assert (tmp_path / "out" / "t.csv").read_text() == (tmp_path / "t.csv").read_text()
    finally:
        fresh.close()


def test_push_and_pull_explain_that_the_server_holds_every_version(
        client: RemoteClient, tmp_path: Path) -> None:
    client.add_dataset(make_tree(tmp_path / "r", files=2), "r")
    for verb in (client.push_dataset, client.pull_dataset):
        with pytest.raises(InvalidArgument, match="already lives in the server's store"):
            verb("r@1")


def test_a_version_added_meanwhile_is_a_conflict(client: RemoteClient, store: Client,
                                                 tmp_path: Path) -> None:
    from loopml.client.remote_datasets import _RemoteCatalog
    from loopml.datasets.ingest import IngestOptions, add_to

    root = make_tree(tmp_path / "r", files=3)
    client.add_dataset(root, "r")

    class Stale(_RemoteCatalog):  # read the latest version before another writer adds one
        def insert(self, *args: Any, **kwargs: Any) -> Any:
            store.add_dataset(make_tree(tmp_path / "other", files=2), "r")
            return super().insert(*args, **kwargs)

    (root / "new.txt").write_text("new")
    with pytest.raises(Conflict, match="another writer"):
        add_to(Stale(client), client.blob_cache, client.stat_cache, name="r", path=root,
               options=IngestOptions())
    assert [v.version for v in client.list_dataset_versions("r")] == [1, 2]


def test_the_data_commands_work_against_the_server(client: RemoteClient, store: Client,
                                                   tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOOPML_PROGRESS": "false", "LOOPML_HOME": str(tmp_path / "cli"),
           "LOOPML_TRACKING_URI": client.http.base_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "loopml.cli.main", "data", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    root = make_tree(tmp_path / "files", files=6)
    added = cli("add", str(root), "--name", "files", "--json")
    assert added.returncode == 0, added.stderr
    assert store.get_dataset_version("files@1").files == 6
    (root / "d0" / "f0.txt").write_text("changed")
    status = cli("status", str(root), "--name", "files", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["modified"] == ["d0/f0.txt"]
    pushed = cli("push", "files@1")
    assert pushed.returncode != 0 and "already lives in the server's store" in pushed.stderr
    assert not (tmp_path / "cli" / "loopml.db").exists()
