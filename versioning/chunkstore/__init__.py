"""Where chunk bytes live: the ChunkStore contract, its backends, and a URL to pick one.

Supported URLs:
    file:///abs/path     a LocalChunkStore rooted at /abs/path
    file://rel/path      a LocalChunkStore rooted at rel/path (from the cwd)
    s3://bucket          an S3ChunkStore at the root of an S3 (or compatible) bucket
    s3://bucket/prefix   an S3ChunkStore under a key prefix of that bucket
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from versioning.chunkstore.base import (
    ChunkMissing,
    ChunkStore,
    decode_chunk,
    encode_chunk,
)
from versioning.chunkstore.cache import DiskCache
from versioning.chunkstore.local import LocalChunkStore

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "ChunkMissing",
    "ChunkStore",
    "DiskCache",
    "LocalChunkStore",
    "S3ChunkStore",
    "S3StoreError",
    "decode_chunk",
    "encode_chunk",
    "open_store",
    "parse_store_url",
]

_FILE = "file://"
_S3 = "s3://"
_SUPPORTED = "file:///abs/path, file://rel/path or s3://bucket[/prefix]"

# The disk cache in front of an S3 store, when a cache_dir is given: about 250
# chunks of the largest size, a working set for a few concurrent large reads.
DEFAULT_CACHE_BYTES = 1 << 30

# Deliberately looser than AWS's rules (which forbid uppercase and "_" in new
# buckets): S3-compatible stores and legacy buckets differ, and the server has
# the last word. This only catches URLs that cannot name any bucket.
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")


def parse_store_url(url: str) -> tuple[str, Path | tuple[str, str]]:
    """("file", absolute root) or ("s3", (bucket, prefix)) for a store URL.
    ValueError, saying what is expected, for anything else."""
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
        return "file", Path(rest).absolute()
    if url.startswith(_S3):
        raw = url[len(_S3) :]
        bucket, _, prefix = raw.partition("/")
        if "?" in raw or "#" in raw:
            raise ValueError(
                f"chunk store URL {url!r}: expected s3://bucket[/prefix], "
                "without ?query or #fragment"
            )
        if not bucket:
            raise ValueError(f"chunk store URL {url!r}: no bucket; expected s3://bucket[/prefix]")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(
                f"chunk store URL {url!r}: {bucket!r} is not a bucket name (3-63 letters, "
                "digits, '.', '-' or '_', starting and ending with a letter or digit); "
                "expected s3://bucket[/prefix]"
            )
        return "s3", (bucket, prefix.strip("/"))
    scheme = url.split("://", 1)[0] if "://" in url else ""
    raise ValueError(
        f"unsupported chunk store URL {url!r}"
        + (f" (scheme {scheme!r})" if scheme else "")
        + f"; supported: {_SUPPORTED}"
    )


def open_store(
    url: str,
    *,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    region: str | None = None,
) -> ChunkStore:
    """The chunk store a URL names. ValueError for an unsupported or malformed URL.

    The keywords apply to s3:// URLs only. endpoint: the S3 endpoint URL, else
    $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else AWS's. cache_dir: a local
    disk cache of up to cache_bytes (none without a cache_dir, or with
    cache_bytes 0). region: else the AWS default chain's.
    """
    where = parse_store_url(url)[1]
    if isinstance(where, Path):
        return LocalChunkStore(where)
    bucket, prefix = where
    # Passed explicitly even though botocore reads the same variables: whether an
    # endpoint is custom decides the addressing style (see S3ChunkStore).
    endpoint = (
        endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )
    from versioning.chunkstore.s3 import S3ChunkStore  # aioboto3 loads slowly: only when used

    return S3ChunkStore(
        bucket,
        prefix,
        endpoint_url=endpoint,
        region=region,
        cache_dir=cache_dir,
        cache_bytes=cache_bytes,
    )


def __getattr__(name: str) -> object:
    # The S3 store (and aioboto3) load on first use: the `loxo` client
    # commands import the configuration module, never the S3 store.
    if name in ("S3ChunkStore", "S3StoreError"):
        from versioning.chunkstore import s3

        return getattr(s3, name)
    raise AttributeError(name)
