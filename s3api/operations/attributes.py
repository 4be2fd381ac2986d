"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and
size in one answer, without its body (newer SDKs use it for integrity checks).

`x-amz-object-attributes` lists what to return (ETag, Checksum, ObjectParts,
StorageClass, ObjectSize). ObjectParts is there for objects made by a
multipart upload: their part numbers and sizes, paged by x-amz-max-parts and
x-amz-part-number-marker. Part checksums are kept only with the upload, not
in the object's entry, so parts are listed without them; the object's own
checksum (COMPOSITE or FULL_OBJECT) is under Checksum. `versionId` reads a
version, as GetObject does.
"""

from __future__ import annotations

from starlette.responses import Response

from s3api import checksums, xml
from s3api.errors import InvalidArgument, InvalidRequest
from s3api.operations.common import Context
from s3api.operations.objects import lookup_object
from s3api.request import S3Request
from s3api.xml import http_date

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS_LISTED = 1000


def _wanted(req: S3Request) -> set[str]:
    raw = req.headers.get("x-amz-object-attributes", "")
    names = {n.strip() for n in raw.split(",") if n.strip()}
    if not names:
        raise InvalidRequest(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is "
            "either missing or empty"
        )
    unknown = names - set(ATTRIBUTES)
    if unknown:
        raise InvalidArgument(
            "Invalid attribute name specified.",
            ArgumentName="x-amz-object-attributes",
            ArgumentValue=", ".join(sorted(unknown)),
        )
    return names


def _int_header(req: S3Request, name: str, default: int) -> int:
    raw = req.headers.get(name)
    if raw is None or not raw.strip():
        return default
    text = raw.strip()
    if not text.isdigit():
        raise InvalidArgument(
            f"{name} must be a non-negative integer", ArgumentName=name, ArgumentValue=raw
        )
    return int(text)


async def get_object_attributes(ctx: Context, req: S3Request) -> Response:
    wanted = _wanted(req)
    max_parts = min(_int_header(req, "x-amz-max-parts", MAX_PARTS_LISTED), MAX_PARTS_LISTED)
    marker = _int_header(req, "x-amz-part-number-marker", 0)
    _, entry = await lookup_object(ctx, req)
    children: list[xml.Element] = []
    if "ETag" in wanted:
        children.append(("ETag", entry.etag))
    sums = {n: v for n, v in entry.checksums.items() if n in checksums.ALGORITHMS}
    if "Checksum" in wanted and sums:
        fields: list[xml.Element] = [(f"Checksum{n.upper()}", sums[n]) for n in sorted(sums)]
        fields.append(("ChecksumType", checksums.object_type(sums)))
        children.append(("Checksum", fields))
    if "ObjectParts" in wanted and entry.parts:
        numbered = list(enumerate(entry.parts, start=1))
        after = [(n, size) for n, size in numbered if n > marker]
        page = after[:max_parts]
        children.append(
            (
                "ObjectParts",
                [
                    ("PartsCount", len(entry.parts)),
                    ("PartNumberMarker", marker),
                    ("NextPartNumberMarker", page[-1][0] if page else marker),
                    ("MaxParts", max_parts),
                    ("IsTruncated", len(after) > len(page)),
                    *[("Part", [("PartNumber", n), ("Size", size)]) for n, size in page],
                ],
            )
        )
    if "StorageClass" in wanted:
        children.append(("StorageClass", "STANDARD"))
    if "ObjectSize" in wanted:
        children.append(("ObjectSize", entry.size))
    headers = {"Last-Modified": http_date(entry.last_modified)}
    commit = await ctx.versioning.commit_of(entry)
    if commit is not None:
        headers["x-amz-version-id"] = commit.hex()
    return Response(
        xml.document("GetObjectAttributesResponse", children),
        media_type="application/xml",
        headers=headers,
    )
