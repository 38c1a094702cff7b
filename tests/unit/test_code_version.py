from __future__ import annotations

import subprocess
from pathlib import Path

from loopml.tracking.context import code_version_tags, environment_tags


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_commit_branch_dirty_and_diff_hash(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    clean = code_version_tags(repo)
    assert len(clean["loopml.git.commit"]) == 40
    assert clean["loopml.git.branch"] == "main" and clean["loopml.git.dirty"] == "false"
    assert "loopml.git.diff_hash" not in clean
    (repo / "train.py").write_text("print(2)\n")
    code_version_tags.cache_clear()
    dirty = code_version_tags(repo)
    assert dirty["loopml.git.dirty"] == "true" and len(dirty["loopml.git.diff_hash"]) == 64
    (repo / "train.py").write_text("print(3)\n")
    code_version_tags.cache_clear()
    assert code_version_tags(repo)["loopml.git.diff_hash"] != dirty["loopml.git.diff_hash"]
    code_version_tags.cache_clear()


def test_outside_a_repository_records_nothing(tmp_path: Path) -> None:
    assert code_version_tags(tmp_path) == {}
    code_version_tags.cache_clear()


def test_environment_names_python_and_packages() -> None:
    tags = environment_tags()
    assert tags["loopml.env.python"].startswith("3.")
    assert "loopml==" in tags["loopml.env.packages"]
