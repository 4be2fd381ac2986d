"""Control API operations on multipart uploads: list the ones in progress in
a repo, and abort one, to clear uploads an interrupted client or a server
restart left behind (they are aborted after --upload-expiry-hours anyway)."""

from __future__ import annotations

from typing import Any

from gateway.api import encode
from gateway.api.table import PAGE, REPO, Call, Param, named_page, op
from versioning.control import Control


@op(
    "GET",
    "/repos/{repo}/uploads",
    "List multipart uploads in progress: key, branch, parts and size so far",
    params=(
        REPO,
        Param("branch", "query", "only this branch's (default: every branch's)"),
        *PAGE,
    ),
    returns="list:Upload",
)
async def list_uploads(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    after = call.q("cursor") or ""
    found = await ctl.uploads.in_repo(call.params["repo"], call.q("branch"))
    items = [encode.upload(u) for u in found if u.upload.id > after]
    return named_page(items[: limit + 1], limit, "id")


@op(
    "DELETE",
    "/repos/{repo}/uploads/{id}",
    "Abort a multipart upload: its parts are dropped (gc reclaims their space)",
    params=(
        REPO,
        Param("id", "path", "the upload id", True),
        Param("branch", "query", "only if it is this branch's"),
        Param("key", "query", "only if it is this key's"),
    ),
    status=204,
)
async def abort_upload(ctl: Control, call: Call) -> Any:
    await ctl.uploads.abort_by_id(
        call.params["repo"], call.params["id"], call.q("branch"), call.q("key")
    )
    return None
