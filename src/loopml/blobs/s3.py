"""A blob backend on S3 or any S3-compatible store (MinIO, Ceph, moto): ``s3://BUCKET/PREFIX``.

Requests are signed and sent by :mod:`loopml.blobs.sigv4` (standard library only, so a
command that touches S3 starts quickly; credentials and region as the AWS tools find
them). Each object is written by a single request (``PutObject``), which S3 makes visible
whole or not at all; files of :data:`MULTIPART_THRESHOLD` and more go up as a multipart
upload, which S3 also publishes atomically when it completes (and which is aborted if the
upload fails). Every call asks the server: nothing is answered from a cached listing.
"""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from loopml.blobs.backend import BlobBackend, check_key, check_source
from loopml.blobs.sigv4 import Response, S3Client, xml_values
from loopml.errors import BackendUnavailable, InvalidArgument, LoopmlError

__all__ = ["MULTIPART_THRESHOLD", "S3Backend"]

#: Files of this size and more are uploaded in parts of :data:`PART_SIZE`.
MULTIPART_THRESHOLD = 100 << 20
PART_SIZE = 64 << 20


class _Failed(Exception):
    """An answer the caller did not expect; translated by :meth:`S3Backend._call`."""

    def __init__(self, response: Response) -> None:
        code, message = response.error()
        super().__init__(f"HTTP {response.status}" + (f" {code}" if code else "")
                         + (f": {message}" if message else ""))
        self.response, self.code = response, code


class S3Backend(BlobBackend):
    """Objects stored under ``s3://bucket/prefix/``; the bucket must exist.

    ``endpoint_url`` selects an S3-compatible server (empty: AWS), addressed by path
    (``http://host:9000/bucket/key``).
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "") -> None:
        if not bucket or "/" in bucket:
            raise InvalidArgument(f"{bucket!r} is not an S3 bucket name; "
                                  "write the blob URL as s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = S3Client(bucket, endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fix(self, *, writing: bool) -> str:
        where = self.endpoint_url or "AWS"
        hint = (f"check that the S3 endpoint ({where}) is reachable, that the bucket "
                f"'{self.bucket}' exists and that AWS credentials are set "
                "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)")
        return hint + (" with write access" if writing else "")

    def _call(self, action: str, key: str | None, method: str, name: str = "", *,
              writing: bool = False, ok: tuple[int, ...] = (200,),
              **request: Any) -> Response:
        """One request (``S3Client.request`` arguments); a missing object on a read is
        NotFound, any other failure BackendUnavailable naming the store and the fix."""
        try:
            response = self._client.request(method, name, **request)
            if response.status not in ok:
                raise _Failed(response)
            return response
        except BackendUnavailable as exc:  # no credentials
            raise BackendUnavailable(f"cannot {action} in blob store {self.url}: "
                                     f"{exc}") from None
        except _Failed as exc:
            if (exc.response.status == 404 and exc.code in ("NoSuchKey", "")
                    and key is not None and not writing):
                raise self._not_found(key) from None
            raise self._unavailable(action, exc, self._fix(writing=writing)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unavailable(action, exc, self._fix(writing=writing)) from exc

    def exists(self, key: str) -> bool:
        answer = self._call(f"look up '{key}'", None, "HEAD", self._key(key), ok=(200, 404))
        return answer.status == 200

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(f"write '{key}'", key, "PUT", self._key(key), body=bytes(data),
                   writing=True)

    def put_file(self, key: str, path: Path) -> None:
        name = self._key(key)
        check_source(path)
        if path.stat().st_size >= MULTIPART_THRESHOLD:
            self._put_parts(key, name, path)
        else:
            self._call(f"write '{key}'", key, "PUT", name, body=lambda: path.open("rb"),
                       writing=True)

    def _put_parts(self, key: str, name: str, path: Path) -> None:
        action = f"write '{key}'"
        started = self._call(action, key, "POST", name, query={"uploads": ""}, writing=True)
        upload = xml_values(started.body, "UploadId")[0]
        try:
            parts = []
            with path.open("rb") as stream:
                number = 0
                while piece := stream.read(PART_SIZE):
                    number += 1
                    answer = self._call(action, key, "PUT", name, body=piece, writing=True,
                                        query={"partNumber": str(number), "uploadId": upload})
                    parts.append(f"<Part><PartNumber>{number}</PartNumber>"
                                 f"<ETag>{answer.headers.get('etag', '')}</ETag></Part>")
            manifest = ("<CompleteMultipartUpload>" + "".join(parts)
                        + "</CompleteMultipartUpload>").encode()
            done = self._call(action, key, "POST", name, query={"uploadId": upload},
                              body=manifest, writing=True)
            if b"<Error>" in done.body:  # S3 may report a failed completion with a 200
                raise self._unavailable(action, _Failed(Response(500, done.headers, done.body)),
                                        self._fix(writing=True))
        except BaseException:
            with contextlib.suppress(OSError, http.client.HTTPException, LoopmlError):
                self._client.request("DELETE", name, query={"uploadId": upload})
            raise

    def get_bytes(self, key: str) -> bytes:
        return self._call(f"read '{key}'", key, "GET", self._key(key)).body

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the object under ``key`` from ``offset`` (a ranged GET)."""
        if length <= 0:
            return b""
        answer = self._call(f"read '{key}'", key, "GET", self._key(key), ok=(200, 206),
                            headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        # A server that ignores ranges answers 200 with the whole object.
        return answer.body if answer.status == 206 else answer.body[offset:offset + length]

    def get_file(self, key: str, dest: Path) -> None:
        if dest.is_dir():
            raise self._bad_dest(dest, IsADirectoryError(21, "Is a directory"))
        opened: list[BinaryIO] = []

        def sink(answer: http.client.HTTPResponse) -> None:
            if not opened:  # the destination is created only once the object is found
                try:
                    opened.append(dest.open("wb"))
                except OSError as exc:
                    raise self._bad_dest(dest, exc) from None
            stream = opened[0]
            stream.seek(0)
            stream.truncate()  # a retried transfer starts again
            while piece := answer.read(1 << 20):
                stream.write(piece)

        try:
            self._call(f"read '{key}'", key, "GET", self._key(key), sink=sink)
        finally:
            for stream in opened:
                stream.close()

    def delete(self, key: str) -> None:
        self._call(f"delete '{key}'", None, "DELETE", self._key(key), writing=True,
                   ok=(200, 204, 404))

    def iter_keys(self) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        query = {"list-type": "2", "prefix": start}
        while True:
            page = self._call("list keys", None, "GET", query=query)
            for name in xml_values(page.body, "Key"):
                key = name[len(start):]
                if key and not key.endswith("/") and not key.startswith("."):
                    yield key
            token = xml_values(page.body, "NextContinuationToken")
            if not token or xml_values(page.body, "IsTruncated") != ["true"]:
                return
            query = {**query, "continuation-token": token[0]}
