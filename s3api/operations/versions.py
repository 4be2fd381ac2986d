"""ListObjectVersions: an object's versions are the commits that changed it.

VersionId is the commit id; a commit that deleted the key is a DeleteMarker.
A page reads the branch head's (or snapshot's) history index, so it costs
O(page + log N) however long the history (see versioning/history.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidArgument
from s3api.operations.buckets import OWNER
from s3api.operations.common import Context, key_encoder, view_of
from s3api.operations.listing import max_keys_param
from s3api.paging import Page, page
from s3api.request import S3Request
from versioning import history
from versioning.ids import CommitId, is_commit_hex
from versioning.repository import Versioning
from versioning.views import View


@dataclass(frozen=True, slots=True)
class Listed:
    record: history.Record
    is_latest: bool


class _Versions:
    """The history walk of one ListObjectVersions page: resumes inside
    key_marker's versions after version_marker, and marks each key's newest
    version IsLatest."""

    def __init__(
        self, versioning: Versioning, view: View, key_marker: str, version_marker: CommitId | None
    ) -> None:
        self.versioning = versioning
        self.view = view
        self.key_marker = key_marker
        self.skip_through = version_marker if key_marker else None
        self.last_key: str | None = None

    def start(self) -> str:
        if self.key_marker and self.skip_through is not None:
            # Resume inside key_marker's versions, after version_marker. Its
            # generation is unknown here, so find it by scanning that key's
            # records (a key's records are few next to the whole history).
            return self.key_marker + history.SEPARATOR
        if self.key_marker:
            return self.key_marker + chr(1)  # past every record of key_marker
        return ""

    async def walk(self, seek: str) -> AsyncIterator[tuple[str, Listed]]:
        async for record in self.versioning.history_records(self.view, seek):
            if self.skip_through is not None:
                if record.key != self.key_marker:
                    self.skip_through = None  # the marker's version is gone: go on
                else:
                    if record.commit == self.skip_through:
                        self.skip_through = None
                    self.last_key = record.key
                    continue
            latest = record.key != self.last_key
            self.last_key = record.key
            yield record.key, Listed(record, latest)


async def version_page(
    versioning: Versioning,
    view: View,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_marker: CommitId | None,
    max_keys: int,
) -> Page[Listed]:
    """One page of versions, S3's ListObjectVersions semantics: keys in order,
    each key's versions newest first, resuming after (key_marker,
    version_marker); a common prefix counts as one item."""
    versions = _Versions(versioning, view, key_marker, version_marker)
    return await page(
        versions.walk,
        seek=versions.start(),
        prefix=prefix,
        delimiter=delimiter,
        max_items=max_keys,
        passed=key_marker,
    )


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
        if not is_commit_hex(raw_version_marker):
            raise InvalidArgument("Invalid version id specified", ArgumentName="version-id-marker")
        version_marker = CommitId(bytes.fromhex(raw_version_marker))
    listed = await version_page(
        ctx.versioning, view, prefix, delimiter, key_marker, version_marker, max_keys
    )
    children: list[xml.Element] = [
        ("Name", req.bucket_name),
        ("Prefix", enc(prefix)),
        ("KeyMarker", enc(key_marker)),
        ("VersionIdMarker", raw_version_marker),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("IsTruncated", listed.truncated),
        ("EncodingType", encoding),
    ]
    if listed.truncated:
        children.append(("NextKeyMarker", enc(listed.last)))
        if listed.last_item is not None:
            children.append(("NextVersionIdMarker", listed.last_item.record.commit.hex()))
    for _key, item in listed.items:
        v = item.record
        common: list[xml.Element] = [
            ("Key", enc(v.key)),
            ("VersionId", v.commit.hex()),
            ("IsLatest", item.is_latest),
            ("LastModified", xml.iso8601(v.entry.last_modified)),
        ]
        if v.deleted:
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
    for p in listed.prefixes:
        children.append(("CommonPrefixes", [("Prefix", enc(p))]))
    body = xml.document("ListVersionsResult", children)
    return Response(body, media_type="application/xml")
