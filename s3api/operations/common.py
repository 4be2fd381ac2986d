"""What several S3 actions share: finding the bucket's view, and object headers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from s3api import checksums
from s3api.buckets import BucketRef, parse_bucket
from s3api.errors import KeyTooLongError, NoSuchBucket
from s3api.request import S3Request
from s3api.xml import http_date
from versioning import errors as dom
from versioning.model import ObjectEntry
from versioning.repository import ObjectAttrs, Versioning, View

# Representation headers stored with an object and returned on GET/HEAD.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "cache-control",
    "content-language",
    "expires",
)
MAX_KEY_BYTES = 1024
DEFAULT_CONTENT_TYPE = "binary/octet-stream"


@dataclass(frozen=True, slots=True)
class Context:
    versioning: Versioning
    region: str
    min_part_size: int = 5 * 1024 * 1024


def bucket_of(req: S3Request) -> BucketRef:
    if req.bucket is None:
        assert req.bucket_name is not None
        req.bucket = parse_bucket(req.bucket_name)
    return req.bucket


async def view_of(ctx: Context, req: S3Request) -> View:
    ref = bucket_of(req)
    try:
        if ref.commit is not None:
            return await ctx.versioning.snapshot_view(ref.repo, ref.commit)
        assert ref.branch is not None
        return await ctx.versioning.branch_view(ref.repo, ref.branch)
    except dom.NotFound:
        raise NoSuchBucket(BucketName=req.bucket_name or "") from None


def check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise KeyTooLongError()


def attrs_from_headers(headers: Mapping[str, str]) -> ObjectAttrs:
    metadata = {
        name.removeprefix("x-amz-meta-"): value
        for name, value in headers.items()
        if name.startswith("x-amz-meta-")
    }
    stored = {name: headers[name] for name in STORED_HEADERS if name in headers}
    return ObjectAttrs(headers.get("content-type") or DEFAULT_CONTENT_TYPE, metadata, stored)


def object_headers(
    entry: ObjectEntry, version: str | None, with_checksums: bool = False
) -> dict[str, str]:
    headers = {
        "ETag": f'"{entry.etag}"',
        "Last-Modified": http_date(entry.last_modified),
        "Content-Type": entry.content_type,
        "Accept-Ranges": "bytes",
    }
    headers.update(entry.headers)
    for name, value in entry.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    if version is not None:
        headers["x-amz-version-id"] = version
    if with_checksums:
        for name, value in entry.checksums.items():
            if name in checksums.ALGORITHMS:
                headers[f"x-amz-checksum-{name}"] = value
    return headers
