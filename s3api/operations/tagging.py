"""Object tags: PutObjectTagging, GetObjectTagging, DeleteObjectTagging.

Tags live in the object's tree entry (versioning.model.ObjectEntry.tags), so
they are versioned with it. Changing them is a write, and every write on a
branch is one commit: PutObjectTagging and DeleteObjectTagging rewrite the
entry with the new tags (same content, ETag, size, attributes and checksums)
in ONE commit, which is the object's new version (x-amz-version-id). Setting
the tags an object already has commits nothing and answers its version.

`versionId` reads the tags of any version. Writing names only the current
version: history is immutable, so changing an older version's tags is
refused (InvalidRequest), and a snapshot or tag bucket is read-only
(AccessDenied).
"""

from __future__ import annotations

from starlette.responses import Response

from s3api import tags
from s3api.errors import InvalidRequest, NoSuchKey
from s3api.operations.common import Context, bucket_of, version_param, view_of
from s3api.operations.copy import CopySource, source_of
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.model import ObjectEntry

OLD_VERSION_REFUSED = (
    "The tags of a non-current version cannot be changed: versions are commits, and "
    "history is immutable. Change the current version's tags (without versionId, or with "
    "the current version's id); that records the change in a new commit."
)


def _version(req: S3Request) -> str | None:
    if req.query.get("versionId") == "":
        return None  # an empty versionId names the current version too
    return version_param(req)


async def _addressed(ctx: Context, req: S3Request) -> ObjectEntry:
    """The object (version) a tagging request names: NoSuchBucket, NoSuchKey,
    NoSuchVersion as for a read."""
    assert req.key is not None and req.bucket_name is not None
    version = _version(req)
    bucket_of(req)  # InvalidBucketName first
    _, entry = await source_of(ctx, CopySource(req.bucket_name, req.key, version))
    return entry


async def _version_headers(ctx: Context, entry: ObjectEntry) -> dict[str, str]:
    commit = await ctx.versioning.commit_of(entry)
    return {"x-amz-version-id": commit.hex()} if commit is not None else {}


async def get_object_tagging(ctx: Context, req: S3Request) -> Response:
    entry = await _addressed(ctx, req)
    headers = await _version_headers(ctx, entry)
    return Response(tags.document(entry.tags), media_type="application/xml", headers=headers)


async def _retag(ctx: Context, req: S3Request, new_tags: dict[str, str], op: str) -> Response:
    view = await view_of(ctx, req)
    if not view.writable:
        raise read_only(view)
    assert req.key is not None
    expect: ObjectEntry | None = None
    if _version(req) is not None:
        named = await _addressed(ctx, req)
        try:
            current = await ctx.versioning.get_entry(view, req.key)
        except dom.ObjectNotFound:
            current = None
        if current is None or current.version != named.version:
            raise InvalidRequest(OLD_VERSION_REFUSED)
        expect = named
    try:
        commit, entry = await ctx.versioning.set_tags(
            view,
            req.key,
            new_tags,
            expect=expect,
            message=f"{op} {req.key}",
            origin={"op": op, "keys": [req.key]},
            author=req.author,
        )
    except dom.ObjectNotFound:
        raise NoSuchKey(Key=req.key) from None
    headers = (
        {"x-amz-version-id": commit.hex()}
        if commit is not None
        else await _version_headers(ctx, entry)
    )
    return Response(status_code=200 if op == "PutObjectTagging" else 204, headers=headers)


async def put_object_tagging(ctx: Context, req: S3Request) -> Response:
    if "content-md5" not in req.headers and not any(
        h.startswith("x-amz-checksum-") for h in req.headers
    ):
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    new_tags = tags.from_document(await req.small_body())
    return await _retag(ctx, req, new_tags, "PutObjectTagging")


async def delete_object_tagging(ctx: Context, req: S3Request) -> Response:
    return await _retag(ctx, req, {}, "DeleteObjectTagging")
