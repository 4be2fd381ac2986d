"""Multipart uploads: Create, UploadPart (and UploadPartCopy), ListParts, Complete,
Abort and ListMultipartUploads.

Parts are stored as content like any body. Complete assembles the object from
the parts' chunk lists, so no byte is copied again, and commits it as one
commit that also consumes the upload. It records the part sizes in the entry
(for GetObject ?partNumber) and, for an upload created with a checksum
algorithm, the object's COMPOSITE or FULL_OBJECT checksum, made from the
parts' stored checksums (see s3api.checksums) without reading the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response

from s3api import checksums, xml
from s3api.errors import (
    BadDigest,
    EntityTooLarge,
    InvalidArgument,
    InvalidPart,
    InvalidRequest,
    MalformedXML,
    NoSuchUpload,
)
from s3api.operations import copy
from s3api.operations.buckets import OWNER
from s3api.operations.common import (
    Context,
    attrs_from_headers,
    check_early,
    check_key,
    key_encoder,
    view_of,
    write_condition,
)
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.metadata import PartRecord, UploadRecord
from versioning.repository import MAX_PARTS, View

MAX_PART_SIZE = 5 * 1024**3  # as S3: parts are 5 MiB (but the last) to 5 GiB
MAX_LISTED = 1000
# An upload-id-marker that sorts after every upload id (they are hex): resume
# after all the uploads of key-marker.
_PAST_EVERY_ID = "~"


async def _upload(ctx: Context, req: S3Request) -> tuple[View, UploadRecord]:
    view = await view_of(ctx, req)
    assert req.key is not None
    try:
        return view, await ctx.versioning.get_upload(view, req.key, req.query["uploadId"])
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=req.query["uploadId"]) from None


async def create_multipart_upload(ctx: Context, req: S3Request) -> Response:
    view = await view_of(ctx, req)
    if not view.writable:
        raise read_only(view)
    assert req.key is not None
    check_key(req.key)
    algorithm, kind = _upload_checksum(req)
    upload_id = await ctx.versioning.create_upload(
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
    raw = req.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
            ArgumentName="partNumber",
        )
    return int(raw)


async def upload_part(ctx: Context, req: S3Request) -> Response:
    number = _part_number(req)
    _, upload = await _upload(ctx, req)
    if "x-amz-copy-source" in req.headers:
        return await copy.upload_part_copy(ctx, req, upload, number)
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
    content_id, result = await ctx.versioning.store_content(_bounded(req), hashers)
    stored = req.verify(result)
    if wanted is not None and wanted not in stored:
        # The client sent no checksum of the upload's algorithm: ours is the part's.
        stored[wanted] = checksums.encode(checksums.digest_of(hashers[wanted]))
    try:
        await ctx.versioning.put_part(upload, number, content_id, result.size, result.md5, stored)
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
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(
            f"Provided {name} not an integer or within integer range", ArgumentName=name
        ) from None
    if value < 0:
        raise InvalidArgument(
            f"Argument {name} must be an integer between 0 and 2147483647", ArgumentName=name
        )
    return value


async def list_parts(ctx: Context, req: S3Request) -> Response:
    _, upload = await _upload(ctx, req)
    parts = await ctx.versioning.list_parts(upload)
    marker = _int_param(req, "part-number-marker", 0)
    max_parts = min(_int_param(req, "max-parts", MAX_LISTED), MAX_LISTED)
    encoding, enc = key_encoder(req)
    after = [p for p in parts if p.number > marker]
    page, rest = after[:max_parts], after[max_parts:]
    children: list[xml.Element] = [
        ("Bucket", req.bucket_name),
        ("Key", enc(req.key or "")),
        ("UploadId", upload.id),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", page[-1].number if page else marker),
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
            ("PartNumber", p.number),
            ("LastModified", xml.iso8601(p.last_modified)),
            ("ETag", f'"{p.etag}"'),
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
    uploads: list[UploadRecord] = []
    prefixes: list[str] = []
    last: tuple[str, str] | None = None
    truncated = False
    # (after key, after upload id, skip every key starting with the after key)
    cursor = (key_marker, id_marker or _PAST_EVERY_ID, False)
    batch = max(max_uploads, 1) + 1
    done = False
    while not done:
        after_key, after_id, skip = cursor
        rows = await ctx.versioning.list_uploads(
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


async def complete_multipart_upload(ctx: Context, req: S3Request) -> Response:
    view, upload = await _upload(ctx, req)
    if not view.writable:
        raise read_only(view)
    condition = write_condition(req)
    await check_early(ctx, view, condition)
    req.checksums_describe_body = False  # they describe the assembled object
    doc = xml.parse(await req.small_body(), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    declared: dict[int, dict[str, str]] = {}  # part number -> the XML's checksums
    for item in xml.as_list(doc.get("Part")):
        if not isinstance(item, dict) or "PartNumber" not in item or "ETag" not in item:
            raise MalformedXML()
        number = str(item["PartNumber"]).strip()
        if not number.isdigit():
            raise MalformedXML()
        etag = str(item["ETag"]).strip().strip('"').lower()
        parts.append((int(number), etag))
        sums = {}
        for name in checksums.ALGORITHMS:
            value = item.get(f"Checksum{name.upper()}")
            if value is not None:
                sums[name] = str(value).strip()
        declared[int(number)] = sums
    if not parts:
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate: "
            "CompleteMultipartUpload must list at least one part."
        )
    try:
        commit, entry = await ctx.versioning.complete_upload(
            view,
            upload,
            parts,
            ctx.min_part_size,
            check=condition,
            checksums_of=lambda chosen: _object_checksums(req, upload, chosen, declared),
        )
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=upload.id) from None
    except dom.InvalidPart as exc:
        raise InvalidPart(str(exc)) from None
    result: list[xml.Element] = [
        ("Location", f"/{req.bucket_name}/{req.key}"),
        ("Bucket", req.bucket_name),
        ("Key", req.key),
        ("ETag", f'"{entry.etag}"'),
    ]
    for name, value in sorted(entry.checksums.items()):
        result.append((f"Checksum{name.upper()}", value))
    if entry.checksums:
        result.append(("ChecksumType", checksums.object_type(entry.checksums)))
    body = xml.document("CompleteMultipartUploadResult", result)
    headers = {"x-amz-version-id": commit.hex()} if commit is not None else {}
    return Response(body, media_type="application/xml", headers=headers)


def _object_checksums(
    req: S3Request,
    upload: UploadRecord,
    chosen: list[PartRecord],
    declared: dict[int, dict[str, str]],
) -> dict[str, str]:
    """The assembled object's checksum, from its parts' stored checksums.

    Each part checksum the Complete XML lists must equal the stored one
    (InvalidPart), and with a COMPOSITE upload algorithm every part must list
    one (InvalidRequest, as S3). x-amz-mp-object-size, when sent, must be the
    assembled size (InvalidRequest). With an upload algorithm the object gets its COMPOSITE or
    FULL_OBJECT checksum. A full-object x-amz-checksum-<alg> header on Complete
    is checked against the combined CRC of the parts (BadDigest)."""
    expected_size = req.headers.get("x-amz-mp-object-size")
    if expected_size is not None:
        actual = sum(p.size for p in chosen)
        if not expected_size.strip().isdigit() or int(expected_size) != actual:
            raise InvalidRequest(
                f"The x-amz-mp-object-size {expected_size.strip()!r} does not match the size "
                f"of the assembled object ({actual} bytes)."
            )
    algorithm, kind = upload.checksum_algorithm, upload.checksum_type
    if algorithm is not None and kind != checksums.FULL_OBJECT:
        # A composite checksum is made of the part checksums the client lists.
        for part in chosen:
            if algorithm not in declared.get(part.part_number, {}):
                raise InvalidRequest(
                    f"The upload was created using a {algorithm} checksum. The complete "
                    "request must include the checksum for each part. It was missing for "
                    f"part {part.part_number} in the request."
                )
    for part in chosen:
        for name, value in declared.get(part.part_number, {}).items():
            if part.checksums.get(name) != value:
                raise InvalidPart(
                    f"The Checksum{name.upper()} given for part {part.part_number} does not "
                    "match the checksum of the uploaded part."
                )
    out: dict[str, str] = {}
    requested = req.headers.get("x-amz-checksum-type")
    if requested is not None and kind is not None and requested.strip().upper() != kind:
        raise InvalidRequest(
            f"The upload was created using the {kind} checksum mode; the complete request "
            f"must use the same checksum mode, not {requested.strip()}."
        )
    if algorithm is not None and all(algorithm in p.checksums for p in chosen):
        values = [p.checksums[algorithm] for p in chosen]
        if kind == checksums.FULL_OBJECT:
            out[algorithm] = checksums.combine(
                algorithm, [(v, p.size) for v, p in zip(values, chosen, strict=True)]
            )
        else:
            out[algorithm] = checksums.composite(algorithm, values)
    for header, value in req.headers.items():
        name = header.removeprefix("x-amz-checksum-")
        if name == header or name not in checksums.FULL_OBJECT_ALGORITHMS:
            continue
        given = value.strip()
        if checksums.checksum_type(given) == checksums.COMPOSITE:
            expected: str | None = out.get(name)
        elif name in out and checksums.checksum_type(out[name]) == checksums.FULL_OBJECT:
            expected = out[name]
        elif all(name in p.checksums for p in chosen):
            expected = checksums.combine(name, [(p.checksums[name], p.size) for p in chosen])
        else:
            continue  # nothing to check it against
        if expected != given:
            raise BadDigest(
                f"The x-amz-checksum-{name} you specified did not match the calculated checksum."
            )
        out.setdefault(name, given)
    return out


async def abort_multipart_upload(ctx: Context, req: S3Request) -> Response:
    _, upload = await _upload(ctx, req)
    await ctx.versioning.abort_upload(upload)
    return Response(status_code=204)
