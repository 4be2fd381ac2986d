"""Control API operations that erase bodies from a repo's history (purge)
and list the audit log of purges. See docs/design/purge.md."""

from __future__ import annotations

from typing import Any

from gateway.api.encode import time_text
from gateway.api.errors import ApiError, bad_request
from gateway.api.table import PAGE, REPO, Call, Param, op, page
from versioning.control import Control
from versioning.purge import PurgeLogEntry, PurgePlan

PATH = Param("path", "query", "the path, or a folder ending in /", True)


def purge_json(entry: PurgeLogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "repo": entry.repo,
        "path": entry.path,
        "versions": entry.versions,
        "commits": entry.commits,
        "contents": entry.contents,
        "bytes": entry.bytes,
        "reason": entry.reason,
        "purged_by": entry.purged_by,
        "at": time_text(entry.at),
    }


def plan_json(plan: PurgePlan) -> dict[str, Any]:
    return {
        "repo": plan.repo,
        "path": plan.path,
        "versions": [
            {"path": v.key, "commit": v.commit.hex(), "size": v.entry.size} for v in plan.versions
        ],
        "commits": plan.commits,
        "contents": len(plan.contents),
        "bytes": plan.bytes,
        "other_paths": list(plan.other_paths),
        "other_paths_complete": plan.other_paths_complete,
    }


@op(
    "GET",
    "/repos/{repo}/purge-plan",
    "What purging a path would erase: its versions in every commit, their bytes, and other "
    "paths holding the same bytes (which are erased too)",
    params=(REPO, PATH),
    returns="PurgePlan",
)
async def plan_purge(ctl: Control, call: Call) -> Any:
    path = call.q("path")
    if not path:
        raise bad_request("give the path to purge (?path=...)")
    return plan_json(await ctl.purges.plan(call.params["repo"], path))


@op(
    "POST",
    "/repos/{repo}/purges",
    "Purge a path: erase the bytes of every version of it from the repo's history "
    "(commit ids stay; reads answer content_purged / InvalidObjectState; gc frees the bytes)",
    params=(REPO,),
    body={
        "path": "the path, or a folder ending in /",
        "reason": "why (kept in the audit log)",
        "confirm": "must be true",
    },
    required=("path", "reason", "confirm"),
    returns="Purge",
    status=201,
)
async def purge(ctl: Control, call: Call) -> Any:
    repo = call.params["repo"]
    path = call.text("path") or ""
    reason = call.text("reason") or ""
    if call.field("confirm", required=False) is not True:
        raise ApiError(
            400,
            "confirmation_required",
            f"purging {path} erases the bytes of every version of it from repo {repo}, for "
            "good; see GET .../purge-plan, then repeat with confirm=true",
        )
    if not reason.strip():
        raise bad_request("a purge needs a reason: it goes to the audit log")
    return purge_json(await ctl.purges.purge(repo, path, reason, call.access_key))


@op(
    "GET",
    "/repos/{repo}/purges",
    "The audit log of a repo's purges, oldest first (kept after the repo is deleted)",
    params=(REPO, *PAGE),
    returns="list:Purge",
)
async def list_purges(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    cursor = call.q("cursor") or "0"
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise bad_request(f"cursor {cursor!r} was not handed out by this listing")
    entries = await ctl.purges.log(call.params["repo"], int(cursor), limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return page([purge_json(e) for e in entries], str(entries[-1].id) if more else None)
