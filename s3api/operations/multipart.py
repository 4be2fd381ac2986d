"""Multipart uploads: Create, UploadPart, ListParts, Abort and
ListMultipartUploads (Complete is complete.py, UploadPartCopy copy.py).

Parts are stored as content like any body, with their MD5 (the part's ETag)
and checksums; nothing is visible until Complete commits the object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response

from s3api import checksums, xml
from s3api.errors import (
    EntityTooLarge,
    InvalidArgument,
    InvalidRequest,
    NoSuchUpload,
)
from s3api.inputs import decimal, int_argument
from s3api.operations.buckets import OWNER
from s3api.operations.common import (
    MAX_PARTS,
    Context,
    attrs_from_headers,
    check_canned_acl,
    check_key,
    key_encoder,
    view_of,
)
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.model import Upload
from versioning.views import View

MAX_PART_SIZE = 5 * 1024**3  # as S3: parts are 5 MiB (but the last) to 5 GiB
MAX_LISTED = 1000
# An upload-id-marker that sorts after every upload id (they are hex): resume
# after all the uploads of key-marker.
_PAST_EVERY_ID = "~"


async def upload_of(ctx: Context, req: S3Request) -> tuple[View, Upload]:
    view = await view_of(ctx, req)
    assert req.key is not None
    try:
        return view, await ctx.versioning.uploads.get(view, req.key, req.query["uploadId"])
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=req.query["uploadId"]) from None


async def create_multipart_upload(ctx: Context, req: S3Request) -> Response:
    view = await view_of(ctx, req)
    if not view.writable:
        raise read_only(view)
    assert req.key is not None
    check_key(req.key)
    check_canned_acl(req.headers)
    algorithm, kind = _upload_checksum(req)
    upload_id = await ctx.versioning.uploads.create(
        view, req.key, attrs_from_headers(req.headers), algorithm, kind
    )
    body = xml.document(
        "InitiateMultipartUploadResult",
        [("Bucket", req.bucket_name), ("Key", req.key), ("UploadId", upload_id)],
    )
    headers = {}
    if algorithm is not None and kind is not None:
        headers["x-amz-checksum-algorithm"] = algorithm.upper()
        headers["x-amz-checksum-type"] = kind
    return Response(body, media_type="application/xml", headers=headers)


def _upload_checksum(req: S3Request) -> tuple[str | None, str | None]:
    """CreateMultipartUpload's x-amz-checksum-algorithm and x-amz-checksum-type,
    checked: (algorithm in lower case, COMPOSITE or FULL_OBJECT), or (None, None)."""
    raw_algorithm = req.headers.get("x-amz-checksum-algorithm")
    raw_type = req.headers.get("x-amz-checksum-type")
    if raw_algorithm is None:
        if raw_type is not None:
            raise InvalidRequest(
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header."
            )
        return None, None
    algorithm = raw_algorithm.strip().lower()
    if algorithm not in checksums.ALGORITHMS:
        raise InvalidRequest(
            f"Checksum algorithm {raw_algorithm!r} (x-amz-checksum-algorithm) is not "
            "supported; use one of " + ", ".join(sorted(a.upper() for a in checksums.ALGORITHMS))
        )
    kind = raw_type.strip().upper() if raw_type is not None else checksums.default_type(algorithm)
    allowed = {
        checksums.COMPOSITE: checksums.COMPOSITE_ALGORITHMS,
        checksums.FULL_OBJECT: checksums.FULL_OBJECT_ALGORITHMS,
    }
    if kind not in allowed:
        raise InvalidRequest(
            f"Value for x-amz-checksum-type header is invalid: {raw_type!r}; use COMPOSITE "
            "or FULL_OBJECT"
        )
    if algorithm not in allowed[kind]:
        raise InvalidRequest(
            f"The {kind} checksum type cannot be used with the {algorithm} checksum algorithm."
        )
    return algorithm, kind


def _part_number(req: S3Request) -> int:
    number = decimal(req.query.get("partNumber", ""))
    if number is None or not 1 <= number <= MAX_PARTS:
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
            ArgumentName="partNumber",
        )
    return number


async def part_target(ctx: Context, req: S3Request) -> tuple[int, Upload]:
    """The part number and upload an UploadPart (or UploadPartCopy) writes to."""
    number = _part_number(req)
    _, upload = await upload_of(ctx, req)
    return number, upload


async def upload_part(ctx: Context, req: S3Request) -> Response:
    number, upload = await part_target(ctx, req)
    declared = req.decoded_length()
    if declared is None:
        declared = req.declared_length()
    if declared is not None and declared > MAX_PART_SIZE:
        raise _part_too_large()
    req.content_md5()
    hashers = req.body_hashers()
    wanted = upload.checksum_algorithm
    if wanted is not None and wanted not in hashers:
        hashers[wanted] = checksums.ALGORITHMS[wanted].new()  # type: ignore[assignment]
    content_id, result = await ctx.versioning.store_part(upload, _bounded(req), hashers)
    stored = req.verify(result)
    if wanted is not None and wanted not in stored:
        # The client sent no checksum of the upload's algorithm: ours is the part's.
        stored[wanted] = checksums.encode(checksums.digest_of(hashers[wanted]))
    try:
        await ctx.versioning.uploads.put_part(
            upload, number, content_id, result.size, result.md5, stored
        )
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=upload.id) from None
    headers = {"ETag": f'"{result.md5.hex()}"'}
    for name, value in stored.items():
        headers[f"x-amz-checksum-{name}"] = value
    return Response(status_code=200, headers=headers)


def _part_too_large() -> EntityTooLarge:
    return EntityTooLarge(
        f"Your proposed upload exceeds the maximum allowed part size of {MAX_PART_SIZE} bytes.",
        MaxSizeAllowed=str(MAX_PART_SIZE),
    )


async def _bounded(req: S3Request) -> AsyncIterator[bytes]:
    """The part's body, refused once it grows past MAX_PART_SIZE (a chunked body
    declares no length up front)."""
    seen = 0
    async for piece in req.pieces():
        seen += len(piece)
        if seen > MAX_PART_SIZE:
            raise _part_too_large()
        yield piece


def _int_param(req: S3Request, name: str, default: int) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    return int_argument(name, raw)


async def list_parts(ctx: Context, req: S3Request) -> Response:
    _, upload = await upload_of(ctx, req)
    parts = await ctx.versioning.uploads.parts(upload)
    marker = _int_param(req, "part-number-marker", 0)
    max_parts = min(_int_param(req, "max-parts", MAX_LISTED), MAX_LISTED)
    encoding, enc = key_encoder(req)
    after = [p for p in parts if p.part_number > marker]
    page, rest = after[:max_parts], after[max_parts:]
    children: list[xml.Element] = [
        ("Bucket", req.bucket_name),
        ("Key", enc(req.key or "")),
        ("UploadId", upload.id),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", page[-1].part_number if page else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", bool(rest) and max_parts > 0),
        ("Initiator", OWNER),
        ("Owner", OWNER),
        ("StorageClass", "STANDARD"),
        ("EncodingType", encoding),
    ]
    if upload.checksum_algorithm is not None:
        children.append(("ChecksumAlgorithm", upload.checksum_algorithm.upper()))
        children.append(("ChecksumType", upload.checksum_type))
    for p in page:
        fields: list[xml.Element] = [
            ("PartNumber", p.part_number),
            ("LastModified", xml.iso8601(p.created)),
            ("ETag", f'"{p.md5.hex()}"'),
            ("Size", p.size),
        ]
        for name in sorted(p.checksums):
            if upload.checksum_algorithm in (None, name):
                fields.append((f"Checksum{name.upper()}", p.checksums[name]))
        children.append(("Part", fields))
    return Response(xml.document("ListPartsResult", children), media_type="application/xml")


async def list_multipart_uploads(ctx: Context, req: S3Request) -> Response:
    """GET ?uploads: the branch's in-progress uploads in (key, upload id) order, which
    for one key is the order they were initiated in. `delimiter` rolls keys up into
    CommonPrefixes (each counts as one against max-uploads and is skipped past with
    one query, never by scanning its uploads); key-marker and upload-id-marker
    resume after an upload, or after every upload of key-marker when
    upload-id-marker is absent."""
    view = await view_of(ctx, req)
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    key_marker = req.query.get("key-marker", "")
    # Without key-marker, upload-id-marker is ignored, as S3 does.
    id_marker = req.query.get("upload-id-marker", "") if key_marker else ""
    max_uploads = min(_int_param(req, "max-uploads", MAX_LISTED), MAX_LISTED)
    encoding, enc = key_encoder(req)
    uploads: list[Upload] = []
    prefixes: list[str] = []
    last: tuple[str, str] | None = None
    truncated = False
    # (after key, after upload id, skip every key starting with the after key)
    cursor = (key_marker, id_marker or _PAST_EVERY_ID, False)
    batch = max(max_uploads, 1) + 1
    done = False
    while not done:
        after_key, after_id, skip = cursor
        rows = await ctx.versioning.uploads.in_progress(
            view, prefix, after_key, after_id, batch, skip_key_prefix=skip
        )
        if not rows:
            break
        cursor = (rows[-1].key, rows[-1].id, False)
        for row in rows:
            item, rolled = row.key, False
            if delimiter:
                cut = row.key.find(delimiter, len(prefix))
                if cut >= 0:
                    item, rolled = row.key[: cut + len(delimiter)], True
            if rolled and item <= key_marker:
                # A common prefix a previous page ended on (or before): skip it.
                cursor = (item, "", True)
                break
            if len(uploads) + len(prefixes) >= max_uploads:
                truncated = max_uploads > 0
                done = True
                break
            if rolled:
                prefixes.append(item)
                last = (item, "")
                cursor = (item, "", True)
                break
            uploads.append(row)
            last = (row.key, row.id)
        else:
            done = len(rows) < batch
    children: list[xml.Element] = [
        ("Bucket", req.bucket_name),
        ("KeyMarker", enc(key_marker)),
        ("UploadIdMarker", id_marker),
        ("NextKeyMarker", enc(last[0]) if last else None),
        ("Prefix", enc(prefix)),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("NextUploadIdMarker", last[1] if last else None),
        ("MaxUploads", max_uploads),
        ("IsTruncated", truncated),
    ]
    for u in uploads:
        children.append(
            (
                "Upload",
                [
                    ("Key", enc(u.key)),
                    ("UploadId", u.id),
                    ("Initiator", OWNER),
                    ("Owner", OWNER),
                    ("StorageClass", "STANDARD"),
                    ("Initiated", xml.iso8601(u.created)),
                ],
            )
        )
    for p in prefixes:
        children.append(("CommonPrefixes", [("Prefix", enc(p))]))
    children.append(("EncodingType", encoding))
    return Response(
        xml.document("ListMultipartUploadsResult", children), media_type="application/xml"
    )


async def abort_multipart_upload(ctx: Context, req: S3Request) -> Response:
    _, upload = await upload_of(ctx, req)
    await ctx.versioning.uploads.abort(upload)
    return Response(status_code=204)
