"""``loopml data`` as a user runs it: real processes on the embedded store in the cwd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "LOOPML_PROGRESS": "false"})


def _csv(path: Path, start: int, rows: int) -> Path:
    path.write_text("id,amount,segment\n" + "".join(
        f"{i},{i * 2.5},{'xyz'[i % 3]}\n" for i in range(start, start + rows)))
    return path


def test_table_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    first = cli("data", "add", str(_csv(tmp_path / "churn.csv", 0, 200)), "--name", "churn",
                "-m", "initial load")
    assert first.returncode == 0, first.stderr
    assert "added churn@1" in first.stdout and "200 rows" in first.stdout
    same = cli("data", "add", str(tmp_path / "churn.csv"), "--name", "churn")
    assert "unchanged" in same.stdout and "no new version" in same.stdout
    appended = cli("data", "append", "churn", str(_csv(tmp_path / "more.csv", 200, 50)))
    assert "added churn@2" in appended.stdout and "(50 new)" in appended.stdout
    listing = json.loads(cli("data", "list", "--json").stdout)
    assert listing[0]["latest"]["rows"] == 250
    shown = cli("data", "show", "churn@2")
    assert "schema and statistics" in shown.stdout and "amount" in shown.stdout
    shown_json = json.loads(cli("data", "show", "churn", "--json").stdout)
    assert shown_json["statistics"]["id"]["max"] == 249
    diff = cli("data", "diff", "churn@1", "churn@2")
    assert "1 file(s) added" in diff.stdout and "rows: 200 -> 250 (+50)" in diff.stdout
    assert cli("data", "tag", "churn@1", "golden").returncode == 0
    versions = cli("data", "versions", "churn")
    assert "golden" in versions.stdout
    got = cli("data", "get", "churn@golden", str(tmp_path / "out"))
    assert got.returncode == 0 and (tmp_path / "out" / "churn.csv").exists()


def test_tree_status_and_contract(tmp_path: Path) -> None:
    tree = tmp_path / "images"
    for i in range(20):
        (tree / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (tree / f"c{i % 2}" / f"{i}.png").write_bytes(bytes([i]) * 100)
    assert cli("data", "add", str(tree), "--name", "imgs").returncode == 0
    assert "up to date" in cli("data", "status", str(tree), "--name", "imgs").stdout
    (tree / "c0" / "0.png").write_bytes(b"new")
    status = cli("data", "status", str(tree), "--name", "imgs")
    assert "1 modified" in status.stdout
    _csv(tmp_path / "t.csv", 0, 30)
    assert cli("data", "add", str(tmp_path / "t.csv"), "--name", "t").returncode == 0
    contract = cli("data", "contract", "t", "--infer", "t@1")
    assert contract.returncode == 0 and "contract set" in contract.stdout
    (tmp_path / "bad.csv").write_text("id,amount,segment\n1,-100.0,q\n")
    strict = cli("data", "add", str(tmp_path / "bad.csv"), "--name", "t", "--strict")
    assert strict.returncode == 1 and "violates the contract" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["data", "add", str(tmp_path / "nope"), "--name", "x"], "no such file"),
        (["data", "show", "missing@1"], "no dataset named 'missing'"),
        (["data", "add", str(tmp_path), "--name", "bad name!"], "invalid dataset name"),
    ):
        out = cli(*args)
        assert out.returncode == 1, args
        assert out.stderr.startswith("error: ") and message in out.stderr
        assert "Traceback" not in out.stderr
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n3\n")
    broken = cli("data", "add", str(tmp_path / "junk.csv"), "--name", "junk")
    assert broken.returncode == 1 and "line" in broken.stderr and "Traceback" not in broken.stderr


def test_push_and_pull_through_the_command_line(tmp_path: Path, s3_endpoint: str,
                                                s3_bucket: str,
                                                monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_REMOTE_URL", f"s3://{s3_bucket}/remote")
    monkeypatch.setenv("LOOPML_S3_ENDPOINT_URL", s3_endpoint)
    tree = tmp_path / "docs"
    tree.mkdir()
    for i in range(5):
        (tree / f"{i}.txt").write_text(f"doc {i}")
    assert cli("data", "add", str(tree), "--name", "docs").returncode == 0
    pushed = cli("data", "push", "docs@1")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed" in pushed.stdout and "(0 already there)" in pushed.stdout
    again = cli("data", "push", "docs")
    assert "pushed 0 object(s)" in again.stdout
    monkeypatch.setenv("LOOPML_BLOB_URL", f"file://{tmp_path / 'fresh-blobs'}")
    pulled = cli("data", "pull", "docs@1")
    assert pulled.returncode == 0 and "pulled" in pulled.stdout, pulled.stderr
    got = cli("data", "get", "docs@1", str(tmp_path / "out"))
    assert got.returncode == 0 and (tmp_path / "out" / "3.txt").read_text() == "doc 3"
