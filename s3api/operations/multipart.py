"""Multipart uploads: Create, UploadPart, ListParts, Complete and Abort.

Parts are stored as content like any body. Complete assembles the object from
the parts' chunk lists, so no byte is copied again, and commits it as one
commit that also consumes the upload.
"""

from __future__ import annotations

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidArgument, InvalidPart, MalformedXML, NoSuchUpload
from s3api.operations.common import (
    Context,
    attrs_from_headers,
    check_early,
    check_key,
    view_of,
    write_condition,
)
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.metadata import UploadRecord
from versioning.repository import MAX_PARTS, View


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
    upload_id = await ctx.versioning.create_upload(view, req.key, attrs_from_headers(req.headers))
    body = xml.document(
        "InitiateMultipartUploadResult",
        [("Bucket", req.bucket_name), ("Key", req.key), ("UploadId", upload_id)],
    )
    return Response(body, media_type="application/xml")


def _part_number(req: S3Request) -> int:
    raw = req.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
            ArgumentName="partNumber",
        )
    return int(raw)


async def upload_part(ctx: Context, req: S3Request) -> Response:
    if "x-amz-copy-source" in req.headers:
        from s3api.errors import NotImplementedErr

        raise NotImplementedErr("UploadPartCopy is not supported yet")
    number = _part_number(req)
    _, upload = await _upload(ctx, req)
    req.content_md5()
    hashers = req.body_hashers()
    content_id, result = await ctx.versioning.store_content(req.pieces(), hashers)
    stored = req.verify(result)
    try:
        await ctx.versioning.put_part(upload, number, content_id, result.size, result.md5)
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=upload.id) from None
    headers = {"ETag": f'"{result.md5.hex()}"'}
    for name, value in stored.items():
        headers[f"x-amz-checksum-{name}"] = value
    return Response(status_code=200, headers=headers)


async def list_parts(ctx: Context, req: S3Request) -> Response:
    _, upload = await _upload(ctx, req)
    parts = await ctx.versioning.list_parts(upload)
    try:
        marker = int(req.query.get("part-number-marker", "0") or 0)
        max_parts = min(int(req.query.get("max-parts", "1000")), 1000)
    except ValueError:
        raise InvalidArgument("part-number-marker and max-parts must be integers") from None
    after = [p for p in parts if p.number > marker]
    page, rest = after[:max_parts], after[max_parts:]
    children: list[xml.Element] = [
        ("Bucket", req.bucket_name),
        ("Key", req.key),
        ("UploadId", upload.id),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", page[-1].number if page else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", bool(rest)),
        ("StorageClass", "STANDARD"),
    ]
    for p in page:
        children.append(
            (
                "Part",
                [
                    ("PartNumber", p.number),
                    ("LastModified", xml.iso8601(p.last_modified)),
                    ("ETag", f'"{p.etag}"'),
                    ("Size", p.size),
                ],
            )
        )
    return Response(xml.document("ListPartsResult", children), media_type="application/xml")


async def complete_multipart_upload(ctx: Context, req: S3Request) -> Response:
    view, upload = await _upload(ctx, req)
    if not view.writable:
        raise read_only(view)
    condition = write_condition(req)
    await check_early(ctx, view, condition)
    doc = xml.parse(await req.small_body(), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for item in xml.as_list(doc.get("Part")):
        if not isinstance(item, dict) or "PartNumber" not in item or "ETag" not in item:
            raise MalformedXML()
        number = str(item["PartNumber"]).strip()
        if not number.isdigit():
            raise MalformedXML()
        etag = str(item["ETag"]).strip().strip('"').lower()
        parts.append((int(number), etag))
    if not parts:
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate: "
            "CompleteMultipartUpload must list at least one part."
        )
    try:
        commit, entry = await ctx.versioning.complete_upload(
            view, upload, parts, ctx.min_part_size, check=condition
        )
    except dom.UploadNotFound:
        raise NoSuchUpload(UploadId=upload.id) from None
    except dom.InvalidPart as exc:
        raise InvalidPart(str(exc)) from None
    body = xml.document(
        "CompleteMultipartUploadResult",
        [
            ("Location", f"/{req.bucket_name}/{req.key}"),
            ("Bucket", req.bucket_name),
            ("Key", req.key),
            ("ETag", f'"{entry.etag}"'),
        ],
    )
    headers = {"x-amz-version-id": commit.hex()} if commit is not None else {}
    return Response(body, media_type="application/xml", headers=headers)


async def abort_multipart_upload(ctx: Context, req: S3Request) -> Response:
    _, upload = await _upload(ctx, req)
    await ctx.versioning.abort_upload(upload)
    return Response(status_code=204)
