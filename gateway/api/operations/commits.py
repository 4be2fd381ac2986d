"""Control API operations on commits: log, inspect, diff, path history,
open commits, merge and revert."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from gateway.api import encode
from gateway.api.errors import bad_request
from gateway.api.table import MAX_IDLE_SECONDS, PAGE, REPO, Call, Param, named_page, op, page
from s3api.buckets import commit_bucket
from versioning import merge
from versioning.control import Control

# -- commits -------------------------------------------------------------------


@op(
    "GET",
    "/repos/{repo}/commits",
    "Log: a ref's ancestors, newest first",
    params=(
        REPO,
        Param("ref", "query", "where to start (default: the default branch)"),
        Param(
            "path", "query", "only commits that changed this file, or anything under this folder"
        ),
        Param("since", "query", "only commits at or after this time (ISO 8601 or Unix seconds)"),
        Param("until", "query", "only commits at or before this time"),
        *PAGE,
    ),
    returns="list:Commit",
)
async def log_commits(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    items: list[Any] = []
    cursor: str | None = None
    walk = ctl.log(
        call.params["repo"],
        call.q("ref"),
        call.q("cursor"),
        call.q("path"),
        call.time("since"),
        call.time("until"),
    )
    async for cid, commit, after in walk:
        if len(items) == limit:
            return page(items, cursor)
        items.append(encode.commit(cid, commit))
        cursor = after
    return page(items, None)


@op(
    "GET",
    "/repos/{repo}/commits/{ref}",
    "Inspect a commit: parents, author, message, time, origin, size and files changed",
    params=(REPO, Param("ref", "path", "a ref (branch, tag, commit id or prefix, ~N, ^)", True)),
    returns="CommitInfo",
)
async def inspect_commit(ctl: Control, call: Call) -> Any:
    repo = call.params["repo"]
    return encode.commit_info(repo, await ctl.inspect(repo, call.params["ref"]))


async def _stream_page(
    items: AsyncIterator[dict[str, Any]], limit: int, key: str
) -> AsyncIterator[bytes]:
    """A page as JSON, written while it is produced, so a large page is never
    held whole."""
    yield b'{"items": ['
    count = 0
    last: str | None = None
    async for item in items:
        if count == limit:
            yield b'], "next_cursor": ' + json.dumps(last).encode() + b"}"
            return
        yield (b", " if count else b"") + json.dumps(item).encode()
        last = item[key]
        count += 1
    yield b'], "next_cursor": null}'


@op(
    "GET",
    "/repos/{repo}/diff",
    "Diff two refs: added, modified and deleted paths with sizes, streamed in path order",
    params=(
        REPO,
        Param("from", "query", "the older ref", True),
        Param("to", "query", "the newer ref", True),
        Param("prefix", "query", "only paths starting with this"),
        *PAGE,
    ),
    returns="list:Change",
)
async def diff_refs(ctl: Control, call: Call) -> Any:
    if call.q("from") is None or call.q("to") is None:
        raise bad_request("diff needs the query parameters from and to")
    limit = call.limit()
    changes = await ctl.diff(
        call.params["repo"],
        call.q("from"),
        call.q("to"),
        call.q("prefix") or "",
        call.q("cursor") or "",
    )

    async def items() -> AsyncIterator[dict[str, Any]]:
        async for ch in changes:
            yield encode.change(ch)

    return StreamingResponse(_stream_page(items(), limit, "path"), media_type="application/json")


@op(
    "GET",
    "/repos/{repo}/history",
    "File history: the commits that changed a path, newest first",
    params=(
        REPO,
        Param("path", "query", "the object's path", True),
        Param("ref", "query", "whose history (default: the default branch)"),
        *PAGE,
    ),
    returns="list:Version",
)
async def path_history(ctl: Control, call: Call) -> Any:
    path = call.q("path")
    if not path:
        raise bad_request("history needs the query parameter path")
    limit = call.limit()
    repo = call.params["repo"]
    cursor = call.q("cursor")
    after = (await ctl.cursor_commits(repo, cursor))[0] if cursor is not None else None
    versions = await ctl.history(repo, call.q("ref"), path)
    items: list[dict[str, Any]] = []
    skipping = after is not None
    async for cid, commit, entry in versions:
        if skipping:
            skipping = cid != after
            continue
        if len(items) == limit:
            return page(items, items[-1]["commit"])
        items.append(
            {
                "commit": cid.hex(),
                "time": encode.time_text(commit.time),
                "message": commit.message,
                "deleted": entry is None,
                "object": encode.entry(entry),
            }
        )
    return page(items, None)


# -- open commits --------------------------------------------------------------

_OPEN = Param("id", "path", "the open commit's id (or a unique prefix of >= 8 hex)", True)


@op(
    "POST",
    "/repos/{repo}/open-commits",
    "Start an open commit on a branch: writes to the returned bucket become ONE commit",
    params=(REPO,),
    body={
        "branch": "the branch it will commit to (default: the default branch)",
        "idle_seconds": "abort it when nothing was written for this long (default: the "
        "server's --open-commit-idle-minutes)",
        "author": "the finished commit's author (default: the access key that signed this)",
    },
    returns="OpenCommit",
    status=201,
)
async def start_commit(ctl: Control, call: Call) -> Any:
    repo = call.params["repo"]
    if commit_bucket(repo, "0" * 32) is None:
        raise bad_request(
            f"repo {repo}'s name is too long for open commits: their S3 bucket, "
            f"{repo}.<commit>, must fit 63 characters, so repo names of at most 54 have them"
        )
    branch = call.text("branch", False) or await ctl.branches.default_branch(repo)
    idle = call.field("idle_seconds", False)
    if idle is not None and (
        isinstance(idle, bool)
        or not isinstance(idle, int | float)
        or not 0 < idle <= MAX_IDLE_SECONDS
    ):
        raise bad_request(f"idle_seconds must be a number of seconds in (0, {MAX_IDLE_SECONDS}]")
    record = await ctl.open_commits.start(
        repo, branch, idle, author=call.text("author", False) or call.access_key
    )
    return encode.open_commit(record)


@op(
    "GET",
    "/repos/{repo}/open-commits",
    "List open commits",
    params=(REPO, *PAGE),
    returns="list:OpenCommit",
)
async def list_open_commits(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    after = call.q("cursor") or ""
    records = [r for r in await ctl.open_commits.in_repo(call.params["repo"]) if r.id.hex() > after]
    records.sort(key=lambda r: r.id)
    return named_page([encode.open_commit(r) for r in records[: limit + 1]], limit, "id")


@op(
    "POST",
    "/repos/{repo}/open-commits/{id}/finish",
    "Finish an open commit: everything written to it becomes one commit on its branch",
    params=(REPO, _OPEN),
    body={"message": "the commit message"},
    returns="Finished",
)
async def finish_commit(ctl: Control, call: Call) -> Any:
    message = call.text("message", False) or "Commit"
    commit = await ctl.open_commits.finish(call.params["repo"], call.params["id"], message)
    return {"commit": encode.hex_or_none(commit)}


@op(
    "DELETE",
    "/repos/{repo}/open-commits/{id}",
    "Abort an open commit: nothing is committed",
    params=(REPO, _OPEN),
    status=204,
)
async def abort_commit(ctl: Control, call: Call) -> Any:
    await ctl.open_commits.abort(call.params["repo"], call.params["id"])
    return None


# -- merge and revert ----------------------------------------------------------


@op(
    "POST",
    "/repos/{repo}/merge",
    "Three-way, path-level merge of a ref into a branch (fast-forward when possible)",
    params=(REPO,),
    body={
        "source": "the ref to merge",
        "into": "the target branch",
        "strategy": "settle conflicts: ours (the target's) or theirs (the source's)",
        "message": "the merge commit's message",
    },
    required=("source", "into"),
    returns="MergeResult",
)
async def merge_refs(ctl: Control, call: Call) -> Any:
    strategy_text = call.text("strategy", False)
    strategy = None
    if strategy_text is not None:
        try:
            strategy = merge.Strategy(strategy_text)
        except ValueError:
            raise bad_request("strategy must be ours or theirs") from None
    result = await ctl.merge(
        call.params["repo"],
        call.text("source") or "",
        call.text("into") or "",
        strategy,
        call.text("message", False),
        author=call.access_key,
    )
    return encode.merge_result(result)


@op(
    "POST",
    "/repos/{repo}/revert",
    "Revert a commit: a new commit on a branch undoing its changes",
    params=(REPO,),
    body={
        "commit": "a ref naming the commit to undo",
        "branch": "where the new commit goes (default: the default branch)",
        "message": "the new commit's message",
    },
    required=("commit",),
    returns="Finished",
)
async def revert_commit(ctl: Control, call: Call) -> Any:
    commit = await ctl.revert(
        call.params["repo"],
        call.text("commit") or "",
        call.text("branch", False),
        call.text("message", False),
        author=call.access_key,
    )
    return {"commit": encode.hex_or_none(commit)}
