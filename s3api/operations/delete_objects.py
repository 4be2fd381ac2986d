"""DeleteObjects: up to 1,000 keys removed in ONE commit; entries with a
VersionId delete that version from the branch (versioning/version_deletes.py).

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
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning import errors as dom
from versioning.ids import CommitId, is_commit_hex
from versioning.text import plural

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
    versions: list[tuple[str, CommitId]] = []  # deletes of one version
    refused: list[tuple[str, str, str, str]] = []  # (key, version, code, message)
    conditions: dict[str, DeleteCondition] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise MalformedXML()
        condition = delete_condition(
            _text(item.get("ETag")),
            _text(item.get("Size")),
            _text(item.get("LastModifiedTime")),
            ("ETag", "Size", "LastModifiedTime"),
        )
        version = _text(item.get("VersionId"))
        version = version.strip() if version is not None else ""
        if version in ("", "null"):
            keys.append(item["Key"])
            if condition is not None:
                conditions[item["Key"]] = condition
        elif not is_commit_hex(version):
            refused.append(
                (item["Key"], version, "InvalidArgument", "Invalid version id specified")
            )
        elif condition is not None:
            # Refused, not ignored: a version delete judges its own version.
            refused.append(
                (
                    item["Key"],
                    version,
                    "NotImplemented",
                    "Conditions on a delete of a specific version are not implemented",
                )
            )
        else:
            versions.append((item["Key"], CommitId(bytes.fromhex(version))))
    deleted_versions = await ctx.versioning.version_deletes.delete(view, versions, req.author)
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
                message=f"DeleteObjects ({plural(len(edits), 'key')})",
                origin={"op": "DeleteObjects", "keys": sorted(edits)},
                check=delete_check(pending, failed) if pending else None,
                author=req.author,
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
        for done in deleted_versions:
            entry: list[xml.Element] = [("Key", done.key), ("VersionId", done.version.hex())]
            if done.was_delete_marker:
                entry += [("DeleteMarker", True), ("DeleteMarkerVersionId", done.version.hex())]
            children.append(("Deleted", entry))
    for key, code in failures.items():  # errors are reported even in Quiet mode
        children.append(("Error", [("Key", key), ("Code", code), ("Message", _MESSAGES[code])]))
    for key, version, code, message in refused:
        children.append(
            (
                "Error",
                [("Key", key), ("VersionId", version), ("Code", code), ("Message", message)],
            )
        )
    headers = {"x-amz-version-id": commit.hex()} if commit is not None else {}
    return Response(
        xml.document("DeleteResult", children), media_type="application/xml", headers=headers
    )
