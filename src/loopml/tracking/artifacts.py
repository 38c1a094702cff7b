"""A run's artifacts: files and directories stored as blobs, listed per run by path."""

from __future__ import annotations

import posixpath
from pathlib import Path

import sqlalchemy as sa

from loopml.blobs import BlobStore
from loopml.errors import InvalidArgument, NotFound
from loopml.store import MetadataStore
from loopml.store.dialect import insert_on_conflict
from loopml.tracking.entities import ArtifactInfo
from loopml.tracking.records import experiment_id_of_run
from loopml.tracking.tables import artifacts
from loopml.tracking.validation import artifact_path

__all__ = ["download_artifacts", "list_artifacts", "log_artifact"]


def _files_under(local: Path) -> list[tuple[Path, str]]:
    if local.is_file():
        return [(local, local.name)]
    files = sorted(p for p in local.rglob("*") if p.is_file())
    return [(p, p.relative_to(local).as_posix()) for p in files]


def log_artifact(meta: MetadataStore, blobs: BlobStore, run_id: str, local_path: str | Path,
                 dest: str | None = None) -> list[ArtifactInfo]:
    """Store a file, or every file of a directory, under ``dest`` in the run's artifacts.

    A file keeps its name (``dest/name``); a directory keeps its name too unless ``dest``
    is given (``log_artifact("plots/")`` → ``plots/…``). Blobs are uploaded first, then
    the listing is written in one transaction: an interrupted call leaves no partial listing.
    """
    local = Path(local_path)
    if not local.exists():
        raise InvalidArgument(f"cannot log artifact {str(local)!r}: no such file or directory")
    base = artifact_path(dest if dest is not None else ("" if local.is_file() else local.name))
    with meta.read() as conn:
        experiment_id_of_run(conn, run_id)
    files = _files_under(local)
    refs = blobs.put_files([path for path, _ in files])
    infos = [ArtifactInfo(path=posixpath.join(base, rel) if base else rel, size=ref.size,
                          digest=ref.digest) for (_, rel), ref in zip(files, refs, strict=True)]
    if infos:
        with meta.write() as conn:
            stmt = insert_on_conflict(conn, artifacts)
            stmt = stmt.on_conflict_do_update(
                index_elements=["run_id", "path"],
                set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size})
            conn.execute(stmt, [{"run_id": run_id, "path": i.path, "digest": i.digest,
                                 "size": i.size} for i in infos])
    return infos


def list_artifacts(conn: sa.Connection, run_id: str, path: str = "") -> list[ArtifactInfo]:
    """Every artifact file of the run at or below ``path``."""
    prefix = artifact_path(path)
    query = sa.select(artifacts.c.path, artifacts.c.size, artifacts.c.digest).where(
        artifacts.c.run_id == run_id)
    if prefix:
        query = query.where(sa.or_(artifacts.c.path == prefix,
                                   artifacts.c.path.startswith(prefix + "/", autoescape=True)))
    rows = conn.execute(query.order_by(artifacts.c.path)).all()
    if not rows:
        experiment_id_of_run(conn, run_id)
    return [ArtifactInfo(path=r.path, size=r.size, digest=r.digest) for r in rows]


def download_artifacts(meta: MetadataStore, blobs: BlobStore, run_id: str, path: str,
                       dest: str | Path) -> Path:
    """Copy the artifact file or directory ``path`` of a run into ``dest``; returns its path."""
    prefix = artifact_path(path)
    with meta.read() as conn:
        found = list_artifacts(conn, run_id, prefix)
    if not found:
        raise NotFound(f"run {run_id} has no artifact at {path!r}; list them with "
                       f"'loopml runs show {run_id}'")
    root = Path(dest)
    if len(found) == 1 and found[0].path == prefix:
        target = root / posixpath.basename(prefix)
        blobs.get_files([(found[0].digest, target)])
        return target
    strip = len(prefix) + 1 if prefix else 0
    target = root / posixpath.basename(prefix) if prefix else root
    blobs.get_files([(i.digest, target / i.path[strip:]) for i in found])
    return target
