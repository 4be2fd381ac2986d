"""ListObjects (v1) and ListObjectsV2: one page of keys under a prefix.

A page walks the tree from its start key and stops after max-keys items, so it
costs O(page + log N). A common prefix is emitted once and then skipped over
with a fresh seek past every key that shares it, never by scanning them.
Both versions resume "after" an item: v1's marker and v2's continuation token
(which is the base64 of the last key or common prefix returned).
"""

from __future__ import annotations

import base64
import binascii

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidArgument
from s3api.inputs import int_argument
from s3api.operations.buckets import OWNER
from s3api.operations.common import Context, KeyEncoder, key_encoder, view_of
from s3api.paging import Page, page
from s3api.request import S3Request
from versioning.model import ObjectEntry
from versioning.repository import Versioning
from versioning.views import View

MAX_KEYS = 1000


async def list_page(
    versioning: Versioning, view: View, prefix: str, delimiter: str, after: str, max_keys: int
) -> Page[ObjectEntry]:
    """One page of the view's keys after `after` (a key or common prefix)."""
    return await page(
        lambda seek: versioning.iterate(view, seek),
        seek=after + "\x00" if after else "",
        prefix=prefix,
        delimiter=delimiter,
        max_items=max_keys,
        passed=after,
    )


def max_keys_param(req: S3Request) -> int:
    raw = req.query.get("max-keys")
    if raw is None:
        return MAX_KEYS
    return min(int_argument("max-keys", raw), MAX_KEYS)


def _contents(listed: Page[ObjectEntry], enc: KeyEncoder, owner: bool) -> list[xml.Element]:
    out: list[xml.Element] = []
    for key, entry in listed.items:
        item: list[xml.Element] = [
            ("Key", enc(key)),
            ("LastModified", xml.iso8601(entry.last_modified)),
            ("ETag", f'"{entry.etag}"'),
            ("Size", entry.size),
            ("StorageClass", "STANDARD"),
        ]
        if owner:
            item.append(("Owner", OWNER))
        out.append(("Contents", item))
    for p in listed.prefixes:
        out.append(("CommonPrefixes", [("Prefix", enc(p))]))
    return out


async def list_objects(ctx: Context, req: S3Request) -> Response:
    view = await view_of(ctx, req)
    if req.query.get("list-type") == "2":
        return await _list_v2(ctx, req, view)
    return await _list_v1(ctx, req, view)


async def _list_v1(ctx: Context, req: S3Request, view: View) -> Response:
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    marker = req.query.get("marker", "")
    max_keys = max_keys_param(req)
    encoding, enc = key_encoder(req)
    listed = await list_page(ctx.versioning, view, prefix, delimiter, marker, max_keys)
    children: list[xml.Element] = [
        ("Name", req.bucket_name),
        ("Prefix", enc(prefix)),
        ("Marker", enc(marker)),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", listed.truncated),
        ("EncodingType", encoding),
    ]
    if listed.truncated and delimiter:
        children.append(("NextMarker", enc(listed.last)))
    children.extend(_contents(listed, enc, owner=True))
    return Response(xml.document("ListBucketResult", children), media_type="application/xml")


async def _list_v2(ctx: Context, req: S3Request, view: View) -> Response:
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    start_after = req.query.get("start-after", "")
    token = req.query.get("continuation-token")
    max_keys = max_keys_param(req)
    encoding, enc = key_encoder(req)
    after = start_after
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            raise InvalidArgument(
                "The continuation token provided is incorrect",
                ArgumentName="continuation-token",
            ) from None
        after = max(after, start_after)
    listed = await list_page(ctx.versioning, view, prefix, delimiter, after, max_keys)
    fetch_owner = req.query.get("fetch-owner", "false").lower() == "true"
    children: list[xml.Element] = [
        ("Name", req.bucket_name),
        ("Prefix", enc(prefix)),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", listed.truncated),
        ("EncodingType", encoding),
        ("KeyCount", len(listed.items) + len(listed.prefixes)),
        ("ContinuationToken", token),
        ("StartAfter", enc(start_after) if start_after else None),
    ]
    if listed.truncated and listed.last is not None:
        next_token = base64.urlsafe_b64encode(listed.last.encode("utf-8")).decode("ascii")
        children.append(("NextContinuationToken", next_token))
    children.extend(_contents(listed, enc, owner=fetch_owner))
    return Response(xml.document("ListBucketResult", children), media_type="application/xml")
