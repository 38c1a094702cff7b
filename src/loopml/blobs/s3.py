"""A blob backend on S3 or any S3-compatible store (MinIO, Ceph, moto): ``s3://BUCKET/PREFIX``.

Built on fsspec's ``s3fs``, imported when the backend is created so that ``import
loopml.blobs`` stays light; without it, :class:`~loopml.errors.MissingDependency` names the
install command. Each object is written by a single request (``put_object``), which S3
makes visible whole or not at all; objects of 100 MB and more go up as a multipart upload,
which S3 also publishes atomically when it completes. The filesystem is created with no
instance cache and no listings cache, so ``exists`` and ``iter_keys`` always ask the
server and never answer from a stale listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from loopml.blobs.backend import BlobBackend, check_key, check_source
from loopml.errors import InvalidArgument, LoopmlError, MissingDependency

__all__ = ["S3Backend"]

T = TypeVar("T")


def _import_s3fs() -> Any:
    try:
        import s3fs
    except ImportError:
        raise MissingDependency("an S3 blob store", package="s3fs", extra="s3") from None
    return s3fs


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The exception types s3fs can let through: translated at this boundary."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover - botocore comes with s3fs
        pass
    try:
        from aiohttp import ClientError as HttpClientError

        errors.append(HttpClientError)
    except ImportError:  # pragma: no cover - aiohttp comes with s3fs
        pass
    return tuple(errors)


class S3Backend(BlobBackend):
    """Objects stored under ``s3://bucket/prefix/``; the bucket must exist.

    ``endpoint_url`` selects an S3-compatible server (empty: AWS). Credentials come from
    the usual AWS sources (environment, profile, instance role). ``storage_options`` are
    passed on to ``s3fs.S3FileSystem``.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "",
                 storage_options: Mapping[str, Any] | None = None) -> None:
        s3fs = _import_s3fs()
        if not bucket or "/" in bucket:
            raise InvalidArgument(f"{bucket!r} is not an S3 bucket name; "
                                  "write the blob URL as s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._root = f"{bucket}/{self.prefix}" if self.prefix else bucket
        self.url = f"s3://{self._root}"
        options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        options.update(storage_options or {})
        self._fs = s3fs.S3FileSystem(**options)
        self._errors = _driver_errors()

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}"

    def _fix(self, *, writing: bool) -> str:
        where = self.endpoint_url or "AWS"
        hint = (f"check that the S3 endpoint ({where}) is reachable, that the bucket "
                f"'{self.bucket}' exists and that AWS credentials are set "
                "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)")
        return hint + (" with write access" if writing else "")

    def _call(self, action: str, key: str | None, call: Callable[[], T], *,
              writing: bool = False) -> T:
        """Run one s3fs call; a missing object on a read is NotFound, the rest unavailable."""
        try:
            return call()
        except LoopmlError:
            raise
        except FileNotFoundError as exc:
            if key is not None and not writing:
                raise self._not_found(key) from None
            raise self._unavailable(action, exc, self._fix(writing=writing)) from exc
        except self._errors as exc:
            raise self._unavailable(action, exc, self._fix(writing=writing)) from exc

    def exists(self, key: str) -> bool:
        path = self._path(key)

        def probe() -> bool:
            try:  # not fs.exists: a "directory" prefix would count, and it hides errors
                return bool(self._fs.info(path)["type"] == "file")
            except FileNotFoundError:
                return False

        return self._call(f"look up '{key}'", None, probe)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._call(f"write '{key}'", key, lambda: self._fs.pipe_file(path, bytes(data)),
                   writing=True)

    def put_file(self, key: str, path: Path) -> None:
        remote = self._path(key)
        check_source(path)
        self._call(f"write '{key}'", key, lambda: self._fs.put_file(str(path), remote),
                   writing=True)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        return self._call(f"read '{key}'", key, lambda: bytes(self._fs.cat_file(path)))

    def get_file(self, key: str, dest: Path) -> None:
        path = self._path(key)
        if dest.is_dir():  # s3fs would silently do nothing
            raise self._bad_dest(dest, IsADirectoryError(21, "Is a directory"))
        self._call(f"read '{key}'", key, lambda: self._fs.get_file(path, str(dest)))

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._call(f"delete '{key}'", None, lambda: self._fs.rm_file(path), writing=True)

    def iter_keys(self) -> Iterator[str]:
        paths: list[str] = self._call("list keys", None, lambda: list(self._fs.find(self._root)))
        start = len(self._root) + 1
        for path in paths:
            key = path[start:]
            if key and not key.endswith("/") and not key.startswith("."):
                yield key
