"""DeleteObjects: up to 1,000 keys removed in ONE commit; entries with a
VersionId delete that version from the branch (versioning/version_deletes.py)."""

from __future__ import annotations

from starlette.responses import Response

from s3api import xml
from s3api.errors import InvalidRequest, MalformedXML
from s3api.operations.common import Context, view_of
from s3api.operations.objects import read_only
from s3api.request import S3Request
from versioning.ids import CommitId, is_commit_hex

MAX_KEYS = 1000


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
    refused: list[tuple[str, str]] = []  # (key, version id) that is no version id
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise MalformedXML()
        version = item.get("VersionId")
        version = str(version).strip() if version is not None else ""
        if version in ("", "null"):
            keys.append(item["Key"])
        elif is_commit_hex(version):
            versions.append((item["Key"], CommitId(bytes.fromhex(version))))
        else:
            refused.append((item["Key"], version))
    deleted_versions = await ctx.versioning.version_deletes.delete(view, versions)
    edits = dict.fromkeys(keys)
    commit = None
    if edits:
        commit = await ctx.versioning.commit(
            view,
            edits,
            message=f"DeleteObjects ({len(edits)} keys)",
            origin={"op": "DeleteObjects", "keys": sorted(edits)},
        )
    children: list[xml.Element] = []
    if not quiet:
        for key in keys:
            deleted: list[xml.Element] = [("Key", key)]
            if commit is not None:
                deleted += [("DeleteMarker", True), ("DeleteMarkerVersionId", commit.hex())]
            children.append(("Deleted", deleted))
        for done in deleted_versions:
            entry: list[xml.Element] = [("Key", done.key), ("VersionId", done.version.hex())]
            if done.was_delete_marker:
                entry += [("DeleteMarker", True), ("DeleteMarkerVersionId", done.version.hex())]
            children.append(("Deleted", entry))
    for key, version in refused:  # errors are reported even in Quiet mode
        children.append(
            (
                "Error",
                [
                    ("Key", key),
                    ("VersionId", version),
                    ("Code", "InvalidArgument"),
                    ("Message", "Invalid version id specified"),
                ],
            )
        )
    headers = {"x-amz-version-id": commit.hex()} if commit is not None else {}
    return Response(
        xml.document("DeleteResult", children), media_type="application/xml", headers=headers
    )
