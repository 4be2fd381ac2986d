"""CompleteMultipartUpload: S3's rules for a part list, the multipart ETag and
the assembled object's checksum; the domain assembles and commits it.

A Complete lists (part number, ETag) pairs in ascending order; every part but
the last must be at least the minimum part size. The object's ETag is the
MD5 of the parts' MD5s followed by "-N". For an upload created with a
checksum algorithm, the object gets its COMPOSITE or FULL_OBJECT checksum,
made from the parts' stored checksums (see s3api.checksums) without reading
the body.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import cast

from starlette.responses import Response

from s3api import checksums, xml
from s3api.errors import (
    BadDigest,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchUpload,
)
from s3api.inputs import decimal
from s3api.operations.common import Context, check_early, view_of, write_condition
from s3api.operations.multipart import upload_of
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.content import Hasher
from versioning.ids import CommitId
from versioning.model import ObjectEntry, Upload, UploadPart


async def complete_multipart_upload(ctx: Context, req: S3Request) -> Response:
    try:
        view, upload = await upload_of(ctx, req)
    except NoSuchUpload:
        parts, _ = await _part_list(req)
        return await _repeated(ctx, req, parts)
    if not view.writable:
        raise read_only(view)
    condition = write_condition(req)
    await check_early(ctx, view, condition)
    parts, declared = await _part_list(req)
    try:
        chosen = await _chosen_parts(ctx, upload, parts)
        sums = await _object_checksums(ctx, req, upload, chosen, declared)
        # The ETag of a multipart object: the MD5 of its parts' MD5s, then "-N".
        etag = _multipart_etag([p.md5 for p in chosen])
        commit, entry = await ctx.versioning.uploads.complete(
            view, upload, chosen, etag, sums, check=condition, author=req.author
        )
    except (NoSuchUpload, dom.UploadNotFound):
        # A concurrent completion of this upload won the race.
        return await _repeated(ctx, req, parts)
    return _result(req, commit, entry)


async def _part_list(req: S3Request) -> tuple[list[tuple[int, str]], dict[int, dict[str, str]]]:
    """The Complete document: (part number, hex ETag) pairs in request
    order, and the checksums it gives each part."""
    req.checksums_describe_body = False  # they describe the assembled object
    doc = xml.parse(await req.small_body(), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    declared: dict[int, dict[str, str]] = {}  # part number -> the XML's checksums
    for item in xml.as_list(doc.get("Part")):
        if not isinstance(item, dict) or "PartNumber" not in item or "ETag" not in item:
            raise MalformedXML()
        number = decimal(str(item["PartNumber"]).strip())
        if number is None:
            raise MalformedXML()
        etag = str(item["ETag"]).strip().strip('"').lower()
        parts.append((number, etag))
        sums = {}
        for name in checksums.ALGORITHMS:
            value = item.get(f"Checksum{name.upper()}")
            if value is not None:
                sums[name] = str(value).strip()
        declared[number] = sums
    if not parts:
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate: "
            "CompleteMultipartUpload must list at least one part."
        )
    return parts, declared


def _multipart_etag(md5s: list[bytes]) -> str:
    return hashlib.md5(b"".join(md5s)).hexdigest() + f"-{len(md5s)}"


async def _repeated(ctx: Context, req: S3Request, parts: list[tuple[int, str]]) -> Response:
    """The answer to a Complete of an upload already completed with these
    parts (a client retrying after a lost answer): the same ETag and
    version, and no new commit, as on AWS. NoSuchUpload otherwise."""
    upload_id = req.query["uploadId"]
    done = await ctx.versioning.uploads.completion(upload_id)
    gone = NoSuchUpload(UploadId=upload_id)
    if done is None:
        raise gone
    view = await view_of(ctx, req)
    if (done.repo, done.branch, done.key) != (view.repo, view.branch, req.key):
        raise gone
    try:
        md5s = [bytes.fromhex(etag) for _, etag in parts]
        snapshot = await ctx.versioning.snapshot_view(done.repo, done.commit.hex())
        entry = await ctx.versioning.get_entry(snapshot, done.key)
    except (ValueError, dom.NotFound):
        raise gone from None
    if entry.etag != _multipart_etag(md5s):
        raise gone  # other parts than the completion had
    return _result(req, done.commit, entry)


def _result(req: S3Request, commit: CommitId | None, entry: ObjectEntry) -> Response:
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


async def _chosen_parts(
    ctx: Context, upload: Upload, parts: list[tuple[int, str]]
) -> list[UploadPart]:
    """The stored parts a Complete lists, as (part number, hex MD5) pairs in
    request order: ascending numbers (InvalidPartOrder), each stored with
    that ETag (InvalidPart), every part but the last at least the minimum
    size (EntityTooSmall)."""
    stored = {p.part_number: p for p in await ctx.versioning.uploads.parts(upload)}
    if not stored and not await ctx.versioning.uploads.exists(upload.id):
        # A concurrent completion consumed the upload (and its parts) since
        # it was looked up: then the upload is what's gone.
        raise NoSuchUpload(UploadId=upload.id)
    previous = 0
    chosen: list[UploadPart] = []
    for number, md5_hex in parts:
        if number <= previous:
            raise InvalidPartOrder(
                "The list of parts was not in ascending order. Parts must be ordered by "
                "part number."
            )
        previous = number
        part = stored.get(number)
        if part is None or part.md5.hex() != md5_hex:
            raise InvalidPart(
                f"One or more of the specified parts could not be found: part {number} "
                "could not be found, or its ETag does not match."
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < ctx.min_part_size:
            raise EntityTooSmall(
                f"Your proposed upload is smaller than the minimum allowed object size: part "
                f"{part.part_number} is {part.size} bytes; every part but the last must be at "
                f"least {ctx.min_part_size} bytes."
            )
    return chosen


async def _object_checksums(
    ctx: Context,
    req: S3Request,
    upload: Upload,
    chosen: list[UploadPart],
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
        if decimal(expected_size.strip()) != actual:
            raise InvalidRequest(
                f"The x-amz-mp-object-size {expected_size.strip()[:100]!r} does not match the size "
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
        if name == header or name not in checksums.ALGORITHMS:
            continue
        given = value.strip()
        expected = await _expected(ctx, upload, name, given, chosen, out)
        if expected != given:
            raise BadDigest(
                f"The x-amz-checksum-{name} you specified did not match the calculated checksum."
            )
        out.setdefault(name, given)
    return out


async def _expected(
    ctx: Context,
    upload: Upload,
    name: str,
    given: str,
    chosen: list[UploadPart],
    known: dict[str, str],
) -> str:
    """What a Complete's x-amz-checksum-<name> header must be: the composite
    of the parts' checksums when it has the composite form (`...-N`), else
    the checksum of the whole object. Made from the parts' stored checksums
    when they have them, else from the bytes (a client that checksummed only
    the whole object gets it checked all the same, never ignored)."""
    if checksums.checksum_type(given) == checksums.COMPOSITE:
        if checksums.checksum_type(known.get(name, "")) == checksums.COMPOSITE:
            return known[name]
        if name not in checksums.COMPOSITE_ALGORITHMS:
            raise InvalidRequest(f"The {name} checksum algorithm has no composite form.")
        values = [p.checksums.get(name) or await _digest(ctx, upload, [p], name) for p in chosen]
        return checksums.composite(name, values)
    if name in known and checksums.checksum_type(known[name]) == checksums.FULL_OBJECT:
        return known[name]
    if name in checksums.FULL_OBJECT_ALGORITHMS and all(name in p.checksums for p in chosen):
        return checksums.combine(name, [(p.checksums[name], p.size) for p in chosen])
    return await _digest(ctx, upload, chosen, name)


async def _digest(ctx: Context, upload: Upload, parts: list[UploadPart], name: str) -> str:
    """The base64 checksum `name` of the parts' bytes, read end to end."""
    hasher = cast(Hasher, checksums.ALGORITHMS[name].new())
    async for piece in ctx.versioning.uploads.read_parts(upload, parts):
        await asyncio.to_thread(hasher.update, piece)
    return checksums.encode(checksums.digest_of(hasher))
