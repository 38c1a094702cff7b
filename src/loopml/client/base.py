"""What every part of the client stands on: settings and the stores, opened on first use."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from loopml.blobs import BlobStore, open_backend
from loopml.config import Settings, load_settings

if TYPE_CHECKING:
    from loopml.blobs.statcache import StatCache
    from loopml.store import MetadataStore

__all__ = ["ClientBase"]


class ClientBase:
    """Settings plus lazily opened stores: creating a client costs nothing."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()

    @functools.cached_property
    def meta(self) -> MetadataStore:
        from loopml.store import MetadataStore

        return MetadataStore(self.settings.database_url)

    @functools.cached_property
    def blobs(self) -> BlobStore:
        backend = open_backend(self.settings.blob_url,
                               s3_endpoint_url=self.settings.s3_endpoint_url)
        return BlobStore(backend, workers=self.settings.blob_workers,
                         progress=self.settings.progress)

    @functools.cached_property
    def remote_blobs(self) -> BlobStore:
        """The remote blob store of ``settings.remote_url`` (for push and pull)."""
        from loopml.errors import InvalidArgument

        if not self.settings.remote_url:
            raise InvalidArgument("no remote is configured: set LOOPML_REMOTE_URL (or "
                                  "remote_url in loopml.toml) to e.g. s3://bucket/prefix")
        backend = open_backend(self.settings.remote_url,
                               s3_endpoint_url=self.settings.s3_endpoint_url)
        return BlobStore(backend, workers=self.settings.blob_workers,
                         progress=self.settings.progress)

    @functools.cached_property
    def stat_cache(self) -> StatCache:
        """Machine-local cache of file stats → digests, so unchanged files are not re-hashed."""
        from loopml.blobs.statcache import StatCache

        return StatCache(self.settings.home / "cache" / "stat.sqlite")

    def flush(self) -> None:
        """Write anything buffered (the tracking client buffers metric points)."""

    def close_stores(self) -> None:
        if "meta" in self.__dict__:
            self.meta.close()
        if "stat_cache" in self.__dict__:
            self.stat_cache.close()
