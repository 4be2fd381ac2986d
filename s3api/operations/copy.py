"""CopyObject and UploadPartCopy: objects and parts made of content that is already stored.

A copy never copies data. CopyObject writes a new entry that reuses the source
entry's content id (its manifest, hence its chunks), in one commit on the
destination branch; the source may be any branch, any repo, a snapshot
(`repo.<commit>`) or a version (`?versionId=<commit>`). UploadPartCopy makes a
part that references the source's chunks for the range (see
Versioning.copy_range for the bytes at a range's ends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from starlette.responses import Response

from s3api import checksums, tags, xml
from s3api.buckets import parse_bucket
from s3api.errors import (
    InvalidArgument,
    InvalidRequest,
    NoSuchKey,
    NoSuchUpload,
    NoSuchVersion,
    PreconditionFailed,
)
from s3api.inputs import decimal, unstorable
from s3api.operations.common import (
    Context,
    attrs_from_headers,
    check_canned_acl,
    check_early,
    check_key,
    failed_condition,
    no_such_bucket,
    view_of,
    write_condition,
    write_view,
)
from s3api.operations.multipart import part_target
from s3api.operations.objects import deleted_by, read_only, single_part_md5
from s3api.request import S3Request
from versioning import errors as dom
from versioning.ids import is_commit_hex
from versioning.model import ObjectEntry, Upload
from versioning.views import ObjectAttrs, View, new_entry

# The largest object CopyObject copies, and the largest part: as S3. Larger
# objects are copied with UploadPartCopy, in ranges.
MAX_COPY_SIZE = 5 * 1024**3
_COPY_RANGE = re.compile(r"^bytes=([0-9]+)-([0-9]+)$")
_COPY_BODY_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version: str | None  # a commit id, or None for the bucket's current state


def parse_copy_source(value: str) -> CopySource:
    """x-amz-copy-source: `[/]bucket/key[?versionId=id]`, URL-encoded."""

    def invalid(message: str) -> InvalidArgument:
        return InvalidArgument(message, ArgumentName="x-amz-copy-source", ArgumentValue=value)

    # Header values arrive decoded as latin-1; undo that to see the raw bytes.
    try:
        raw = value.strip().encode("latin-1")
    except UnicodeEncodeError:
        raise invalid("The copy source is not valid") from None
    path, sep, query = raw.partition(b"?")
    version: str | None = None
    if sep:
        for item in query.split(b"&"):
            name, _, arg = item.partition(b"=")
            if name == b"versionId":
                version = unquote_to_bytes(arg).decode("utf-8", "replace")
    try:
        text = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The copy source is not valid UTF-8") from None
    bucket, _, key = text.removeprefix("/").partition("/")
    if not bucket or not key:
        raise invalid("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
    if (problem := unstorable(key)) is not None:
        raise invalid(f"The copy source key {problem}")
    if version == "null":
        version = None  # loxo has no null version: every version is a commit
    if version is not None and not is_commit_hex(version):
        raise invalid("Invalid version id specified")
    return CopySource(bucket, key, version)


async def source_of(ctx: Context, src: CopySource) -> tuple[View, ObjectEntry]:
    """The source object's view and entry: NoSuchBucket, NoSuchKey otherwise."""
    ref = parse_bucket(src.bucket)
    try:
        if ref.branch is not None and src.version is not None:
            await ctx.versioning.named_view(ref.repo, ref.branch)  # the bucket must exist
        commit = src.version or ref.commit
        if commit is not None:
            try:
                view = await ctx.versioning.snapshot_view(ref.repo, commit)
            except dom.CommitNotFound:
                if src.version is None:  # the bucket names a snapshot that does not exist
                    raise await no_such_bucket(ctx, src.bucket) from None
                # A version that is no commit of the repo: no such object version.
                raise NoSuchVersion(Key=src.key, VersionId=src.version) from None
        else:
            view = await ctx.versioning.named_view(ref.repo, ref.branch)
    except (dom.RepoNotFound, dom.BranchNotFound):
        raise await no_such_bucket(ctx, src.bucket) from None
    try:
        return view, await ctx.versioning.source_entry(view, src.key)
    except dom.ObjectNotFound:
        if src.version is not None and await deleted_by(ctx, view, src.key):
            raise InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker "
                "by version id."
            ) from None
        raise NoSuchKey(Key=src.key) from None


def check_source_conditions(req: S3Request, entry: ObjectEntry) -> None:
    """x-amz-copy-source-if-*: each failure is 412 PreconditionFailed, as S3 has it.
    An If-Modified-Since in the future is ignored (RFC 7232)."""
    failed = failed_condition(
        req.headers, entry, prefix="x-amz-copy-source-", ignore_future_since=True
    )
    if failed is not None:
        raise PreconditionFailed(Condition=f"x-amz-copy-source-{failed}")


async def _discard_body(req: S3Request) -> None:
    """A copy request carries no body; read any that came, so the connection
    stays usable. Checksum headers describe the new object here
    (x-amz-checksum-algorithm), not a body, so they are not verified."""
    length = req.headers.get("content-length")
    chunked = "chunked" in req.headers.get("transfer-encoding", "")
    if (length is None or length.strip() == "0") and not chunked:
        return
    seen = 0
    async for piece in req.pieces():
        seen += len(piece)
        if seen > _COPY_BODY_LIMIT:
            raise InvalidRequest("A copy request must not have a body")


def _directive(req: S3Request, name: str = "x-amz-metadata-directive") -> str:
    """x-amz-metadata-directive (or x-amz-tagging-directive): COPY or REPLACE."""
    value = req.headers.get(name, "COPY").strip().upper()
    if value not in ("COPY", "REPLACE"):
        kind = "metadata" if name == "x-amz-metadata-directive" else "tagging"
        raise InvalidArgument(
            f"Unknown {kind} directive.",
            ArgumentName=name,
            ArgumentValue=req.headers.get(name, ""),
        )
    return value


async def _checksums(
    ctx: Context, req: S3Request, source: View, entry: ObjectEntry
) -> dict[str, str]:
    """The source's checksums, plus the one x-amz-checksum-algorithm asks for
    when the source lacks it (computed by reading the source: nothing is written)."""
    stored = dict(entry.checksums)
    wanted = req.headers.get("x-amz-checksum-algorithm")
    if wanted is None:
        return stored
    name = wanted.strip().lower()
    if name not in checksums.ALGORITHMS:
        raise InvalidRequest(
            f"Checksum algorithm {wanted!r} (x-amz-checksum-algorithm) is not supported; use "
            "one of " + ", ".join(sorted(a.upper() for a in checksums.ALGORITHMS))
        )
    if name not in stored:
        hasher = checksums.ALGORITHMS[name].new()
        reader = await ctx.versioning.reader(entry, source.repo)
        async for piece in reader.read():
            await asyncio.to_thread(hasher.update, piece)  # type: ignore[attr-defined]
        stored[name] = checksums.encode(checksums.digest_of(hasher))
    return stored


def _too_large() -> InvalidRequest:
    return InvalidRequest(
        "The specified copy source is larger than the maximum allowable size for a copy "
        f"source: {MAX_COPY_SIZE}"
    )


async def copy_object(ctx: Context, req: S3Request) -> Response:
    """PUT with x-amz-copy-source: one commit whose new entry shares the source's content."""
    assert req.key is not None
    src = parse_copy_source(req.headers["x-amz-copy-source"])
    directive = _directive(req)
    tagging = _directive(req, "x-amz-tagging-directive")
    # REPLACE takes the tags of x-amz-tagging (none when absent); COPY the
    # source's, and x-amz-tagging is not looked at, as S3 does.
    new_tags = tags.from_header(req.headers) if tagging == "REPLACE" else None
    check_canned_acl(req.headers)
    condition = write_condition(req)
    view = await (view_of(ctx, req) if condition else write_view(ctx, req))
    if not view.writable:
        raise read_only(view)
    check_key(req.key)
    await _discard_body(req)
    source, entry = await source_of(ctx, src)
    check_source_conditions(req, entry)
    if entry.size > MAX_COPY_SIZE:
        raise _too_large()
    if (
        directive == "COPY"
        and source.branch is not None
        and (source.repo, source.branch, src.key) == (view.repo, view.branch, req.key)
    ):
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes."
        )
    if directive == "COPY":
        attrs = ObjectAttrs(entry.content_type, entry.metadata, entry.headers)
    else:
        attrs = attrs_from_headers(req.headers)
    attrs = dataclasses.replace(attrs, tags=entry.tags if new_tags is None else new_tags)
    sums = await _checksums(ctx, req, source, entry)
    await check_early(ctx, view, condition)
    new = new_entry(entry.content, entry.size, entry.etag, attrs, sums, parts=entry.parts)
    commit = await ctx.versioning.commit(
        view,
        {req.key: new},
        message=f"CopyObject {req.key}",
        origin={"op": "CopyObject", "keys": [req.key], "source": f"{src.bucket}/{src.key}"},
        check=condition,
        author=req.author,
    )
    modified = await ctx.versioning.commit_time(commit) if commit else new.last_modified
    children: list[xml.Element] = [
        ("ETag", f'"{new.etag}"'),
        ("LastModified", xml.iso8601(modified)),
    ]
    if sums:
        children.append(("ChecksumType", checksums.object_type(sums)))
    for name in sorted(sums):
        children.append((f"Checksum{name.upper()}", sums[name]))
    headers: dict[str, str] = {}
    if commit is not None:
        headers["x-amz-version-id"] = commit.hex()
    source_commit = await ctx.versioning.commit_of(entry)
    if source_commit is not None:
        headers["x-amz-copy-source-version-id"] = source_commit.hex()
    return Response(
        xml.document("CopyObjectResult", children), media_type="application/xml", headers=headers
    )


def _part_copy_algorithms(req: S3Request, upload: Upload) -> list[str]:
    """The checksums an UploadPartCopy part gets: the upload's algorithm, and
    one x-amz-checksum-algorithm asks for."""
    wanted = [upload.checksum_algorithm] if upload.checksum_algorithm else []
    raw = req.headers.get("x-amz-checksum-algorithm")
    if raw is not None:
        name = raw.strip().lower()
        if name not in checksums.ALGORITHMS:
            raise InvalidRequest(
                f"Checksum algorithm {raw!r} (x-amz-checksum-algorithm) is not supported; use "
                "one of " + ", ".join(sorted(a.upper() for a in checksums.ALGORITHMS))
            )
        if name not in wanted:
            wanted.append(name)
    return wanted


def _copy_range(value: str | None, size: int) -> tuple[int, int]:
    """[start, end) of x-amz-copy-source-range (`bytes=first-last`, inclusive)."""
    if value is None:
        return 0, size
    m = _COPY_RANGE.match(value.strip())
    if not m:
        raise InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=value[:100],
        )
    first, last = decimal(m.group(1)), decimal(m.group(2))
    assert first is not None and last is not None
    if first > last or last >= size:
        raise InvalidArgument(
            f"Range specified is not valid for source object of size: {size}",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=value[:100],
        )
    return first, last + 1


async def upload_part_copy(ctx: Context, req: S3Request) -> Response:
    """UploadPart with x-amz-copy-source: the part is (a range of) an existing object."""
    number, upload = await part_target(ctx, req)
    src = parse_copy_source(req.headers["x-amz-copy-source"])
    await _discard_body(req)
    _, entry = await source_of(ctx, src)
    check_source_conditions(req, entry)
    start, end = _copy_range(req.headers.get("x-amz-copy-source-range"), entry.size)
    if end - start > MAX_COPY_SIZE:
        raise _too_large()
    wanted = _part_copy_algorithms(req, upload)
    hashers = {name: checksums.ALGORITHMS[name].new() for name in wanted}
    content, size, md5 = await ctx.versioning.copy_range(
        entry,
        start,
        end,
        hashers,  # type: ignore[arg-type]
        known_md5=single_part_md5(entry),
    )
    sums = {name: checksums.encode(checksums.digest_of(h)) for name, h in hashers.items()}
    try:
        created = await ctx.versioning.uploads.put_part(upload, number, content, size, md5, sums)
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=upload.id) from None
    body = xml.document(
        "CopyPartResult",
        [
            ("ETag", f'"{md5.hex()}"'),
            ("LastModified", xml.iso8601(created)),
            *[(f"Checksum{name.upper()}", sums[name]) for name in sorted(sums)],
        ],
    )
    headers: dict[str, str] = {}
    source_commit = await ctx.versioning.commit_of(entry)
    if source_commit is not None:
        headers["x-amz-copy-source-version-id"] = source_commit.hex()
    return Response(body, media_type="application/xml", headers=headers)
