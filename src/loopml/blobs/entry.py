"""How one file of a tree is stored: :class:`FileEntry`, its JSON form, and tree path rules.

A file's content lives in the blob store in one of three layouts, chosen by its size when
it is stored (see :mod:`loopml.blobs.chunking` and :mod:`loopml.blobs.packs`):

=========  ==============================================  ===============================
layout     where the bytes are                             JSON form in a listing
=========  ==============================================  ===============================
whole      the blob ``digest`` itself                      ``[digest, size]``
packed     ``size`` bytes at ``offset`` in blob ``pack``   ``[digest, size, "pack", pack,
                                                           offset]``
chunked    the chunks named by the chunk index ``chunks``  ``[digest, size, "chunks",
                                                           chunks]``
=========  ==============================================  ===============================

``digest`` is always the BLAKE3 hash of the whole content, whatever the layout: it is the
file's identity (two entries with equal digests hold equal bytes) and every read checks it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from loopml.errors import InvalidArgument

__all__ = ["FileEntry", "check_name", "check_tree_path", "decode_entry", "encode_entry"]


class FileEntry(NamedTuple):
    """One stored file: content ``digest`` and ``size``, and where its bytes are.

    A NamedTuple rather than a frozen dataclass: trees hold tens of thousands of entries
    and a tuple is built about five times faster, while still immutable and compared by value.
    """

    digest: str
    size: int
    #: Digest of the chunk index, for a file split into content-defined chunks.
    chunks: str | None = None
    #: Digest of the pack holding the file's bytes at :attr:`offset`, for a small file.
    pack: str | None = None
    offset: int = 0

    @property
    def storage(self) -> str:
        """The blob whose presence means the content is stored (written after its parts)."""
        return self.chunks or self.pack or self.digest

    def same_content(self, other: FileEntry | None) -> bool:
        """Whether ``other`` holds the same bytes, wherever they are stored."""
        return other is not None and self.digest == other.digest and self.size == other.size


def encode_entry(entry: FileEntry) -> list[Any]:
    """The JSON form of ``entry`` (see the table in this module's docstring)."""
    if entry.chunks is not None:
        return [entry.digest, entry.size, "chunks", entry.chunks]
    if entry.pack is not None:
        return [entry.digest, entry.size, "pack", entry.pack, entry.offset]
    return [entry.digest, entry.size]


# Builds a FileEntry from a tuple in C, without the NamedTuple's Python-level __new__.
_new_tuple = tuple.__new__


def decode_entry(value: Any) -> FileEntry:
    """The entry whose JSON form is ``value``; ValueError if it is malformed.

    Kept cheap (trees are decoded 20,000 entries at a time): digests are checked for type
    and length here, and fully by :func:`~loopml.blobs.digest.key_for` before any use as
    a key, so a malformed one can never address anything.
    """
    if type(value) is not list or len(value) not in (2, 4, 5):
        raise ValueError(value)
    digest, size = value[0], value[1]
    if type(digest) is not str or len(digest) != 64 or type(size) is not int or size < 0:
        raise ValueError(value)
    if len(value) == 2:
        return _new_tuple(FileEntry, (digest, size, None, None, 0))
    where = value[3]
    if type(where) is not str or len(where) != 64:
        raise ValueError(value)
    if len(value) == 4 and value[2] == "chunks":
        return _new_tuple(FileEntry, (digest, size, where, None, 0))
    offset = value[4] if len(value) == 5 else None
    if value[2] == "pack" and type(offset) is int and offset >= 0:
        return _new_tuple(FileEntry, (digest, size, None, where, offset))
    raise ValueError(value)


def check_name(name: object) -> str:
    """``name`` unchanged if it is one path segment (a file or directory name); else
    ValueError. Fast: listings are checked name by name before anything is written."""
    if (type(name) is not str or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\x00" in name):
        raise ValueError(name)
    return name


def check_tree_path(path: object) -> str:
    """``path`` unchanged if it is a relative POSIX path that stays inside its tree.

    Segments are separated by ``/``; none may be empty, ``.`` or ``..``, or hold a NUL
    byte or a backslash (which Windows would read as a separator). Raises InvalidArgument.
    """
    if (not isinstance(path, str) or not path or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise InvalidArgument(
            f"{path!r} is not a path inside a tree; use a relative path with '/' between "
            "names, such as 'images/cat.jpg' (no leading '/', no '.' or '..' segments)")
    return path
