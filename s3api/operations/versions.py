"""ListObjectVersions: an object's versions are the commits that changed it.

VersionId is the commit id; a commit that deleted the key is a DeleteMarker.
A page reads the branch head's (or snapshot's) history index, so it costs
O(page + log N) however long the history (see versioning/history.py).
"""

from __future__ import annotations

import re

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidArgument
from s3api.operations.buckets import OWNER
from s3api.operations.common import Context, key_encoder, view_of
from s3api.operations.listing import max_keys_param
from s3api.request import S3Request
from versioning import history
from versioning.ids import CommitId

_COMMIT = re.compile(r"^[0-9a-f]{32}$")


async def list_object_versions(ctx: Context, req: S3Request) -> Response:
    view = await view_of(ctx, req)
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    key_marker = req.query.get("key-marker", "")
    raw_version_marker = req.query.get("version-id-marker", "")
    max_keys = max_keys_param(req)
    encoding, enc = key_encoder(req)
    version_marker: CommitId | None = None
    if raw_version_marker and raw_version_marker != "null":
        if not key_marker:
            raise InvalidArgument(
                "A version-id marker cannot be specified without a key marker.",
                ArgumentName="version-id-marker",
            )
        if not _COMMIT.match(raw_version_marker):
            raise InvalidArgument("Invalid version id specified", ArgumentName="version-id-marker")
        version_marker = CommitId(bytes.fromhex(raw_version_marker))
    meta = ctx.versioning.meta
    root = (await meta.get_history(view.commit))[0] if view.commit is not None else None
    page = await history.list_versions(
        meta, root, prefix, delimiter, key_marker, version_marker, max_keys
    )
    children: list[xml.Element] = [
        ("Name", req.bucket_name),
        ("Prefix", enc(prefix)),
        ("KeyMarker", enc(key_marker)),
        ("VersionIdMarker", raw_version_marker),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", page.truncated),
        ("EncodingType", encoding),
    ]
    if page.truncated:
        children.append(("NextKeyMarker", enc(page.next_key_marker)))
        if page.next_version_marker is not None:
            children.append(("NextVersionIdMarker", page.next_version_marker.hex()))
    for v in page.versions:
        common: list[xml.Element] = [
            ("Key", enc(v.key)),
            ("VersionId", v.commit.hex()),
            ("IsLatest", v.is_latest),
            ("LastModified", xml.iso8601(v.entry.last_modified)),
        ]
        if history.is_delete_marker(v.entry):
            children.append(("DeleteMarker", [*common, ("Owner", OWNER)]))
        else:
            children.append(
                (
                    "Version",
                    [
                        *common,
                        ("ETag", f'"{v.entry.etag}"'),
                        ("Size", v.entry.size),
                        ("StorageClass", "STANDARD"),
                        ("Owner", OWNER),
                    ],
                )
            )
    for p in page.prefixes:
        children.append(("CommonPrefixes", [("Prefix", enc(p))]))
    body = xml.document("ListVersionsResult", children)
    return Response(body, media_type="application/xml")
