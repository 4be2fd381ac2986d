"""Where chunk bytes live: the ChunkStore contract, its backends, and a URL to pick one.

Supported URLs:
    file:///abs/path     a LocalChunkStore rooted at /abs/path
    file://rel/path      a LocalChunkStore rooted at rel/path (from the cwd)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from versioning.chunkstore.base import (
    ChunkMissing,
    ChunkStore,
    decode_chunk,
    encode_chunk,
)
from versioning.chunkstore.local import LocalChunkStore

__all__ = [
    "ChunkMissing",
    "ChunkStore",
    "LocalChunkStore",
    "decode_chunk",
    "encode_chunk",
    "open_store",
]

_FILE = "file://"


def open_store(url: str) -> ChunkStore:
    """The chunk store a URL names. ValueError for an unsupported or empty URL."""
    if url.startswith(_FILE):
        # Taken literally rather than by RFC 8089 so that "file://data/chunks" can
        # mean a relative path; "file:///x" is the absolute /x.
        raw = url[len(_FILE) :]
        rest = unquote(raw)
        if not rest or "?" in raw or "#" in raw:
            raise ValueError(
                f"chunk store URL {url!r}: expected file:///abs/path or file://rel/path"
            )
        # Absolute now, so a later chdir cannot move the store.
        return LocalChunkStore(Path(rest).absolute())
    scheme = url.split("://", 1)[0] if "://" in url else ""
    raise ValueError(
        f"unsupported chunk store URL {url!r}"
        + (f" (scheme {scheme!r})" if scheme else "")
        + "; supported: file:///abs/path or file://rel/path"
    )
