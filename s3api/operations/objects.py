"""Object actions: PutObject, GetObject, HeadObject, DeleteObject.

Each write on a branch is one commit; its id comes back as x-amz-version-id.
Reads on a branch report the commit that last changed the object. A read may
name a version (a commit): an unknown one is NoSuchVersion, one that deleted
the key is a delete marker (405), and ?partNumber reads one part of a
multipart object.
"""

from __future__ import annotations

import re

from starlette.responses import Response, StreamingResponse

from s3api import checksums
from s3api.buckets import BucketRef
from s3api.errors import (
    AccessDenied,
    InvalidArgument,
    InvalidPartNumber,
    InvalidRange,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchKey,
    NoSuchVersion,
    NotImplementedErr,
    PreconditionFailed,
)
from s3api.inputs import decimal, header_unsafe, header_value
from s3api.operations.common import (
    MAX_PARTS,
    Context,
    attrs_from_headers,
    bucket_of,
    check_canned_acl,
    check_early,
    check_key,
    delete_check,
    delete_condition,
    failed_condition,
    no_such_bucket,
    object_headers,
    version_param,
    view_of,
    write_condition,
    write_view,
)
from s3api.request import S3Request
from s3api.xml import http_date
from versioning import errors as dom
from versioning.ids import CommitId
from versioning.model import ObjectEntry
from versioning.views import View, new_entry

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def read_only(view: View) -> AccessDenied:
    advice = f"Write to a branch bucket such as {view.repo} or {view.repo}.<branch>."
    if view.tag is not None:
        return AccessDenied(
            f"{view.repo}.{view.tag} is a tag (of commit "
            f"{view.commit.hex() if view.commit else '-'}); tags are read-only. {advice}"
        )
    commit = view.commit.hex() if view.commit else ""
    return AccessDenied(
        f"{view.repo}.{commit} is a commit snapshot; snapshots are read-only. {advice}"
    )


async def _read_view(ctx: Context, req: S3Request) -> View:
    """The view a read addresses: the bucket's, or the commit named by versionId."""
    version = version_param(req)
    if version is None:
        return await view_of(ctx, req)
    ref = bucket_of(req)
    if ref.commit is None and await _withdrawn(ctx, ref, req.key or "", version):
        raise NoSuchVersion(Key=req.key or "", VersionId=version)
    try:
        return await ctx.versioning.snapshot_view(ref.repo, version)
    except dom.CommitNotFound:
        raise NoSuchVersion(Key=req.key or "", VersionId=version) from None
    except dom.NotFound:
        raise await no_such_bucket(ctx, req.bucket_name or ref.name) from None


async def _withdrawn(ctx: Context, ref: BucketRef, key: str, version: str) -> bool:
    """Whether the version was deleted from the bucket's branch (versions.md)."""
    try:
        return await ctx.versioning.is_withdrawn(ref.repo, ref.branch, key, version)
    except dom.NotFound:
        return False  # no such repo or branch: the read answers that


def single_part_md5(entry: ObjectEntry) -> bytes | None:
    """The MD5 of the body when the ETag is it: a single-part upload's
    ETag is its body's MD5, a multipart one's is not ("<hex>-N")."""
    if len(entry.etag) != 32:
        return None
    try:
        return bytes.fromhex(entry.etag)
    except ValueError:
        return None


async def deleted_by(ctx: Context, view: View, key: str) -> bool:
    """Whether the view's commit is the one that deleted `key`: in S3's
    terms, the version named is a delete marker."""
    record = await ctx.versioning.latest_record(view, key)
    return record is not None and record.commit == view.commit and record.deleted


async def _lookup(ctx: Context, req: S3Request) -> tuple[View, ObjectEntry]:
    view = await _read_view(ctx, req)
    assert req.key is not None
    try:
        return view, await ctx.versioning.get_entry(view, req.key)
    except dom.ObjectNotFound:
        version = req.query.get("versionId")
        if version not in (None, "null") and await deleted_by(ctx, view, req.key):
            # A version that is a delete marker: 405, as S3 answers.
            err = MethodNotAllowed(Method=req.method, ResourceType="DeleteMarker")
            assert view.commit is not None
            err.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": view.commit.hex()}
            raise err from None
        missing = NoSuchKey(Key=req.key)
        if version in (None, "null"):
            # The key's current version is a delete marker: say so, as S3 does.
            record = await ctx.versioning.latest_record(view, req.key)
            if record is not None and record.deleted:
                missing.headers = {
                    "x-amz-delete-marker": "true",
                    "x-amz-version-id": record.commit.hex(),
                }
        raise missing from None


# For reads other than GET/HEAD (GetObjectAttributes): the same answers for
# versions, delete markers and missing keys.
lookup_object = _lookup


def _check_conditions(req: S3Request, entry: ObjectEntry) -> Response | None:
    """GET/HEAD conditionals (RFC 7232 order); returns a 304 response or raises 412."""
    failed = failed_condition(req.headers, entry)
    if failed in ("If-Match", "If-Unmodified-Since"):
        raise PreconditionFailed(Condition=failed)
    if failed is not None:
        return Response(status_code=304, headers={"ETag": f'"{entry.etag}"'})
    return None


def _part_number(req: S3Request) -> int | None:
    """The partNumber a read asks for (None without one); refuses it together with Range."""
    raw = req.query.get("partNumber")
    if raw is None:
        return None
    number = decimal(raw)
    if number is None or not 1 <= number <= MAX_PARTS:
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=raw,
        )
    if "range" in req.headers:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    return number


def _part_span(entry: ObjectEntry, number: int) -> tuple[int, int]:
    """[start, end) of part `number`; an object not made by a multipart upload
    is one part."""
    sizes = entry.parts or (entry.size,)
    if number > len(sizes):
        raise InvalidPartNumber(PartNumberRequested=str(number), ActualPartCount=str(len(sizes)))
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1]


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) for a single satisfiable byte range; None to send it all.
    Numbers of any length are read for their value (`inputs.decimal`): a start
    past the end is InvalidRange, a last byte past it is the end."""
    if value is None:
        return None
    m = _RANGE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # unparseable or multi-range: ignored, as S3 does
    first = decimal(m.group(1)) if m.group(1) else None
    last = decimal(m.group(2)) if m.group(2) else None
    if first is None:  # suffix range: the last N bytes
        assert last is not None
        if last == 0:
            raise InvalidRange(ActualObjectSize=str(size), RangeRequested=value[:100])
        return max(size - last, 0), size
    start = first
    end = size if last is None else min(last + 1, size)
    if last is not None and last < start:
        return None
    if start >= size:
        raise InvalidRange(ActualObjectSize=str(size), RangeRequested=value[:100])
    return start, end


async def _version_header(ctx: Context, view: View, entry: ObjectEntry) -> str | None:
    commit = await ctx.versioning.commit_of(entry)
    return commit.hex() if commit is not None else None


_RESPONSE_OVERRIDES = (
    ("response-content-type", "Content-Type"),
    ("response-content-language", "Content-Language"),
    ("response-expires", "Expires"),
    ("response-cache-control", "Cache-Control"),
    ("response-content-disposition", "Content-Disposition"),
    ("response-content-encoding", "Content-Encoding"),
)


def _overrides(req: S3Request) -> dict[str, str]:
    """The response-* query parameters as the headers they set. A value with a
    line break or another control character would split or break the response
    header (the connection was dropped, with no answer): InvalidArgument.
    Other text is sent as its UTF-8 bytes, as S3 does."""
    out = {}
    for param, header in _RESPONSE_OVERRIDES:
        value = req.query.get(param)
        if value is None:
            continue
        problem = header_unsafe(value)
        if problem is not None:
            raise InvalidArgument(
                f"The {param} parameter {problem}; it cannot be sent as a header",
                ArgumentName=param,
            )
        out[header] = header_value(value)
    return out


async def _prepare_read(
    ctx: Context, req: S3Request
) -> Response | tuple[View, ObjectEntry, dict[str, str], tuple[int, int] | None]:
    """What GET and HEAD share: lookup, conditionals, headers and the range.
    Returns a finished response (304) or (view, entry, headers, range)."""
    part = _part_number(req)
    overrides = _overrides(req)
    view, entry = await _lookup(ctx, req)
    version = await _version_header(ctx, view, entry)
    not_modified = _check_conditions(req, entry)
    if not_modified is not None:
        not_modified.headers["Last-Modified"] = http_date(entry.last_modified)
        if version is not None:
            not_modified.headers["x-amz-version-id"] = version
        return not_modified
    with_checksums = req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    headers = object_headers(entry, version, with_checksums)
    if any(h.startswith("x-amz-checksum-") for h in headers):
        headers["x-amz-checksum-type"] = checksums.object_type(entry.checksums)
    headers.update(overrides)
    if part is not None:
        span: tuple[int, int] | None = _part_span(entry, part)
        if entry.parts:
            headers["x-amz-mp-parts-count"] = str(len(entry.parts))
    else:
        span = _parse_range(req.headers.get("range"), entry.size)
    if span is None:
        headers["Content-Length"] = str(entry.size)
    else:
        start, end = span
        headers["Content-Length"] = str(end - start)
        if end > start:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
        if (start, end) != (0, entry.size):
            for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                del headers[name]  # a checksum describes the whole object, not the range
    return view, entry, headers, span


async def get_object(ctx: Context, req: S3Request) -> Response:
    prepared = await _prepare_read(ctx, req)
    if isinstance(prepared, Response):
        return prepared
    view, entry, headers, span = prepared
    # A purged body: GET answers InvalidObjectState (HEAD still describes the
    # version, as S3 does for an archived object).
    reader = await ctx.versioning.reader(entry, view.repo)
    if span is None:
        return StreamingResponse(reader.read(), status_code=200, headers=headers)
    return StreamingResponse(reader.read(*span), status_code=206, headers=headers)


async def head_object(ctx: Context, req: S3Request) -> Response:
    prepared = await _prepare_read(ctx, req)
    if isinstance(prepared, Response):
        return prepared
    _, _, headers, span = prepared
    return Response(status_code=200 if span is None else 206, headers=headers)


async def put_object(ctx: Context, req: S3Request) -> Response:
    condition = write_condition(req)
    view = await (view_of(ctx, req) if condition else write_view(ctx, req))
    if not view.writable:
        raise read_only(view)
    assert req.key is not None
    check_key(req.key)
    check_canned_acl(req.headers)
    req.content_md5()  # reject a malformed digest before reading the body
    hashers = req.body_hashers()
    attrs = attrs_from_headers(req.headers)
    await check_early(ctx, view, condition)
    content_id, result = await ctx.versioning.store_content(req.pieces(), hashers, register=False)
    stored = req.verify(result)
    entry = new_entry(content_id, result.size, result.md5.hex(), attrs, stored)
    marker = is_directory_marker(req.key, entry)
    commit = await ctx.versioning.commit(
        view,
        {req.key: entry},
        message=f"PutObject {req.key}",
        origin={"op": "PutObject", "keys": [req.key]},
        check=condition,
        contents=[result.manifest],
        skip_same=marker,
        author=req.author,
    )
    headers = {"ETag": f'"{entry.etag}"'}
    if commit is None and marker:
        # The same marker was there already: answer its version.
        commit = await ctx.versioning.commit_of(
            await ctx.versioning.get_entry(await view_of(ctx, req), req.key)
        )
    if commit is not None:
        headers["x-amz-version-id"] = commit.hex()
    for name, value in stored.items():
        headers[f"x-amz-checksum-{name}"] = value
    return Response(status_code=200, headers=headers)


async def _delete_version(
    ctx: Context, view: View, key: str, version: str, author: str
) -> Response:
    """DeleteObject?versionId on a branch: that version leaves the branch's
    version listing; when it was current, the previous version is current
    again (versioning/version_deletes.py). Unknown versions are a no-op."""
    [done] = await ctx.versioning.version_deletes.delete(
        view, [(key, CommitId(bytes.fromhex(version)))], author
    )
    headers = {"x-amz-version-id": version}
    if done.was_delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return Response(status_code=204, headers=headers)


def is_directory_marker(key: str, entry: ObjectEntry) -> bool:
    """A zero-byte object whose key ends with "/": what s3fs, pyarrow, Spark
    and the S3 console write to stand for a folder. Writing one that is
    already there (same attributes) makes no commit, so a dataframe job
    that re-creates its folders leaves no empty commits behind."""
    return key.endswith("/") and entry.size == 0


async def delete_object(ctx: Context, req: S3Request) -> Response:
    view = await write_view(ctx, req)
    if not view.writable:
        raise read_only(view)
    assert req.key is not None
    # If-Match, x-amz-if-match-size and x-amz-if-match-last-modified-time are
    # checked against the tree the delete lands on (atomic, as for PUT).
    condition = delete_condition(
        req.headers.get("if-match"),
        req.headers.get("x-amz-if-match-size"),
        req.headers.get("x-amz-if-match-last-modified-time"),
        ("If-Match", "x-amz-if-match-size", "x-amz-if-match-last-modified-time"),
    )
    if req.query.get("versionId") not in (None, "null"):
        if condition is not None:
            # Refused, not ignored: a version delete judges its own version.
            raise NotImplementedErr(
                "Conditions on a delete of a specific version are not implemented"
            )
        version = version_param(req)
        assert version is not None
        return await _delete_version(ctx, view, req.key, version, req.author)
    failed: dict[str, str] = {}
    try:
        commit = await ctx.versioning.commit(
            view,
            {req.key: None},
            message=f"DeleteObject {req.key}",
            origin={"op": "DeleteObject", "keys": [req.key]},
            check=delete_check({req.key: condition}, failed) if condition else None,
            author=req.author,
        )
    except dom.PreconditionFailed:
        if failed.get(req.key) == "NoSuchKey":
            raise NoSuchKey(Key=req.key) from None
        raise
    headers = {}
    if commit is not None:
        headers["x-amz-version-id"] = commit.hex()
        headers["x-amz-delete-marker"] = "true"
    return Response(status_code=204, headers=headers)
