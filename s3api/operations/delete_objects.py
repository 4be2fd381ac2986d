"""DeleteObjects: up to 1,000 keys removed in ONE commit.

An object may carry conditions (ETag, Size, LastModifiedTime), checked
against the tree the commit lands on, as conditional DeleteObject's are. A
key whose condition fails is reported in an Error (PreconditionFailed, or
NoSuchKey for an ETag condition on a missing key) and left in place; the
rest are deleted in the one commit, each with its condition holding.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidRequest, MalformedXML
from s3api.operations.common import (
    Context,
    DeleteCondition,
    delete_check,
    delete_condition,
    view_of,
)
from s3api.operations.objects import VERSION_DELETE_REFUSED, read_only
from s3api.request import S3Request
from versioning import errors as dom

MAX_KEYS = 1000
_MESSAGES = {
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
    "NoSuchKey": "The specified key does not exist.",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedXML()
    return value


async def delete_objects(ctx: Context, req: S3Request) -> Response:
    view = await view_of(ctx, req)
    if not view.writable:
        raise read_only(view)
    if "content-md5" not in req.headers and not any(
        h.startswith("x-amz-checksum-") for h in req.headers
    ):
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    doc = xml.parse(await req.small_body(), "Delete")
    items = xml.as_list(doc.get("Object"))
    if len(items) > MAX_KEYS:
        raise MalformedXML(f"DeleteObjects accepts at most {MAX_KEYS} keys per request.")
    if not items:
        raise MalformedXML()
    quiet = str(doc.get("Quiet", "false")).strip().lower() == "true"
    keys: list[str] = []
    refused: list[tuple[str, str]] = []  # (key, version id): deletes of one version
    conditions: dict[str, DeleteCondition] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise MalformedXML()
        version = item.get("VersionId")
        if version is not None and str(version).strip() not in ("", "null"):
            # History is immutable: a version cannot be deleted, and deleting
            # the key instead would remove more than was asked.
            refused.append((item["Key"], str(version).strip()))
            continue
        keys.append(item["Key"])
        condition = delete_condition(
            _text(item.get("ETag")),
            _text(item.get("Size")),
            _text(item.get("LastModifiedTime")),
            ("ETag", "Size", "LastModifiedTime"),
        )
        if condition is not None:
            conditions[item["Key"]] = condition
    edits = dict.fromkeys(keys)
    failures: dict[str, str] = {}  # key -> S3 code of its failed condition
    commit = None
    while edits:
        pending = {k: c for k, c in conditions.items() if k in edits}
        failed: dict[str, str] = {}
        try:
            commit = await ctx.versioning.commit(
                view,
                edits,
                message=f"DeleteObjects ({len(edits)} keys)",
                origin={"op": "DeleteObjects", "keys": sorted(edits)},
                check=delete_check(pending, failed) if pending else None,
            )
            break
        except dom.PreconditionFailed:
            if not failed:
                raise
            # Leave the keys whose conditions failed; the rest are deleted
            # only if their conditions still hold at the next attempt.
            failures.update(failed)
            edits = {k: None for k in edits if k not in failed}
    children: list[xml.Element] = []
    if not quiet:
        for key in (k for k in keys if k in edits):
            deleted: list[xml.Element] = [("Key", key)]
            if commit is not None:
                deleted += [("DeleteMarker", True), ("DeleteMarkerVersionId", commit.hex())]
            children.append(("Deleted", deleted))
    for key, code in failures.items():  # errors are reported even in Quiet mode
        children.append(("Error", [("Key", key), ("Code", code), ("Message", _MESSAGES[code])]))
    for key, version in refused:
        children.append(
            (
                "Error",
                [
                    ("Key", key),
                    ("VersionId", version),
                    ("Code", "InvalidRequest"),
                    ("Message", VERSION_DELETE_REFUSED),
                ],
            )
        )
    headers = {"x-amz-version-id": commit.hex()} if commit is not None else {}
    return Response(
        xml.document("DeleteResult", children), media_type="application/xml", headers=headers
    )
