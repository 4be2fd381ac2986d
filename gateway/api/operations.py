"""The control API's operations: one handler per operation, each registered
with its method, path and documentation (the OpenAPI schema is built from
this table, so the two cannot disagree).

Lists take `limit` (1..10000, default 1000) and `cursor` (the previous page's
`next_cursor`) and answer {"items": [...], "next_cursor": str | null}.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.api import encode
from gateway.api.errors import ApiError, bad_request
from versioning import merge
from versioning.control import Control
from versioning.ids import CommitId

DEFAULT_LIMIT = 1000
MAX_IDLE_SECONDS = 365 * 24 * 3600
MAX_LIMIT = 10_000


@dataclass(slots=True)
class Call:
    """One API request, parsed: path parameters, query and JSON body."""

    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]
    access_key: str

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def limit(self) -> int:
        text = self.query.get("limit", str(DEFAULT_LIMIT))
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
        return int(text)

    def time(self, name: str) -> int | None:
        text = self.query.get(name)
        if text is None:
            return None
        try:
            return encode.parse_time(text)
        except ValueError:
            raise bad_request(f"{name} must be an ISO 8601 time or Unix seconds") from None

    def field(self, name: str, required: bool = True) -> Any:
        if name not in self.body:
            if required:
                raise bad_request(f"the JSON body needs the field {name!r}")
            return None
        value = self.body[name]
        if value is not None and not isinstance(value, str | int | float | bool):
            raise bad_request(f"field {name!r} has the wrong type")
        return value

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.field(name, required)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"field {name!r} must be a string")
        return value


Handler = Callable[[Control, Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "path" or "query"
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # under /_loxo/api/v1, with {name} placeholders
    name: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    body: dict[str, str] = field(default_factory=dict)  # field -> description
    required: tuple[str, ...] = ()
    returns: str = ""  # component schema name; "list:X" for a page of X
    status: int = 200


OPERATIONS: list[Operation] = []

_REPO = Param("repo", "path", "repo name", True)
_BRANCH = Param("branch", "path", "branch name", True)
_PAGE = (
    Param("limit", "query", f"items per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT})"),
    Param("cursor", "query", "next_cursor of the previous page"),
)


def op(
    method: str,
    path: str,
    summary: str,
    *,
    params: tuple[Param, ...] = (),
    body: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
    returns: str = "",
    status: int = 200,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS.append(
            Operation(
                method,
                path,
                handler.__name__,
                summary,
                handler,
                params,
                body or {},
                required,
                returns,
                status,
            )
        )
        return handler

    return register


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def named_page(items: list[Any], limit: int, key: str = "name") -> dict[str, Any]:
    """A page of items listed by name: the cursor is the last name."""
    more = len(items) > limit
    items = items[:limit]
    return page(items, items[-1][key] if more and items else None)


# -- repos ---------------------------------------------------------------------


@op("GET", "/repos", "List repos", params=_PAGE, returns="list:Repo")
async def list_repos(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    repos = await ctl.list_repos(call.q("cursor") or "", limit + 1)
    return named_page([encode.repo(r) for r in repos], limit)


@op(
    "POST",
    "/repos",
    "Create a repo with an empty default branch, main (bucket NAME is that branch)",
    body={"name": "repo name"},
    required=("name",),
    returns="Repo",
    status=201,
)
async def create_repo(ctl: Control, call: Call) -> Any:
    return encode.repo(await ctl.create_repo(call.text("name") or ""))


@op(
    "GET",
    "/repos/{repo}",
    "Describe a repo: size, branch count, last commit",
    params=(_REPO,),
    returns="RepoInfo",
)
async def describe_repo(ctl: Control, call: Call) -> Any:
    return encode.repo_info(await ctl.describe_repo(call.params["repo"]))


@op(
    "DELETE",
    "/repos/{repo}",
    "Delete a repo with all its branches, tags and history",
    params=(_REPO, Param("confirm", "query", "must be true", True)),
    status=204,
)
async def delete_repo(ctl: Control, call: Call) -> Any:
    if call.q("confirm") != "true":
        raise ApiError(
            400,
            "confirmation_required",
            f"deleting repo {call.params['repo']} removes all its branches, tags and history; "
            "repeat with confirm=true",
        )
    await ctl.delete_repo(call.params["repo"])
    return None


# -- branches ------------------------------------------------------------------


@op("GET", "/repos/{repo}/branches", "List branches", params=(_REPO, *_PAGE), returns="list:Branch")
async def list_branches(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    branches = await ctl.list_branches(call.params["repo"], call.q("cursor") or "", limit + 1)
    return named_page([encode.branch(b) for b in branches], limit)


@op(
    "POST",
    "/repos/{repo}/branches",
    "Create a branch at any ref",
    params=(_REPO,),
    body={"name": "branch name", "from": "a ref (default: the default branch's head)"},
    required=("name",),
    returns="Branch",
    status=201,
)
async def create_branch(ctl: Control, call: Call) -> Any:
    branch = await ctl.create_branch(
        call.params["repo"], call.text("name") or "", call.text("from", False)
    )
    return encode.branch(branch)


@op(
    "GET",
    "/repos/{repo}/branches/{branch}",
    "Get a branch",
    params=(_REPO, _BRANCH),
    returns="Branch",
)
async def get_branch(ctl: Control, call: Call) -> Any:
    return encode.branch(await ctl.get_branch(call.params["repo"], call.params["branch"]))


@op(
    "DELETE",
    "/repos/{repo}/branches/{branch}",
    "Delete a branch (not the default one)",
    params=(_REPO, _BRANCH),
    status=204,
)
async def delete_branch(ctl: Control, call: Call) -> Any:
    await ctl.delete_branch(call.params["repo"], call.params["branch"])
    return None


@op(
    "POST",
    "/repos/{repo}/branches/{branch}/reset",
    "Move a branch's head to a ref; compare-and-set when expected_head is given",
    params=(_REPO, _BRANCH),
    body={
        "to": "the ref to move to",
        "expected_head": "the head the branch must have now (null: no commit); omit to skip",
    },
    required=("to",),
    returns="Branch",
)
async def reset_branch(ctl: Control, call: Call) -> Any:
    expected: Any = ...
    if "expected_head" in call.body:
        expected = _commit_id(call.text("expected_head", False))
    branch = await ctl.reset_branch(
        call.params["repo"], call.params["branch"], call.text("to") or "", expected
    )
    return encode.branch(branch)


def _commit_id(text: str | None) -> CommitId | None:
    if text is None:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise bad_request(f"{text!r} is not a commit id (32 hex digits)")
    return CommitId(raw)


# -- tags ----------------------------------------------------------------------

_TAG = Param("tag", "path", "tag name", True)


@op("GET", "/repos/{repo}/tags", "List tags", params=(_REPO, *_PAGE), returns="list:Tag")
async def list_tags(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    tags = await ctl.list_tags(call.params["repo"], call.q("cursor") or "", limit + 1)
    return named_page([encode.tag(t) for t in tags], limit)


@op(
    "POST",
    "/repos/{repo}/tags",
    "Create a tag: an immutable name for the commit a ref names",
    params=(_REPO,),
    body={"name": "tag name", "from": "a ref (default: the default branch's head)"},
    required=("name",),
    returns="Tag",
    status=201,
)
async def create_tag(ctl: Control, call: Call) -> Any:
    tag = await ctl.create_tag(
        call.params["repo"], call.text("name") or "", call.text("from", False)
    )
    return encode.tag(tag)


@op("GET", "/repos/{repo}/tags/{tag}", "Get a tag", params=(_REPO, _TAG), returns="Tag")
async def get_tag(ctl: Control, call: Call) -> Any:
    return encode.tag(await ctl.get_tag(call.params["repo"], call.params["tag"]))


@op("DELETE", "/repos/{repo}/tags/{tag}", "Delete a tag", params=(_REPO, _TAG), status=204)
async def delete_tag(ctl: Control, call: Call) -> Any:
    await ctl.delete_tag(call.params["repo"], call.params["tag"])
    return None


# -- commits -------------------------------------------------------------------


@op(
    "GET",
    "/repos/{repo}/commits",
    "Log: a ref's ancestors, newest first",
    params=(
        _REPO,
        Param("ref", "query", "where to start (default: the default branch)"),
        Param(
            "path", "query", "only commits that changed this file, or anything under this folder"
        ),
        Param("since", "query", "only commits at or after this time (ISO 8601 or Unix seconds)"),
        Param("until", "query", "only commits at or before this time"),
        *_PAGE,
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
    params=(_REPO, Param("ref", "path", "a ref (branch, tag, commit id or prefix, ~N, ^)", True)),
    returns="CommitInfo",
)
async def inspect_commit(ctl: Control, call: Call) -> Any:
    return encode.commit_info(await ctl.inspect(call.params["repo"], call.params["ref"]))


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
        _REPO,
        Param("from", "query", "the older ref", True),
        Param("to", "query", "the newer ref", True),
        Param("prefix", "query", "only paths starting with this"),
        *_PAGE,
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
        _REPO,
        Param("path", "query", "the object's path", True),
        Param("ref", "query", "whose history (default: the default branch)"),
        *_PAGE,
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
    async for cid, entry in versions:
        if skipping:
            skipping = cid != after
            continue
        if len(items) == limit:
            return page(items, items[-1]["commit"])
        commit = await ctl.meta.get_commit(cid)
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
    params=(_REPO,),
    body={
        "branch": "the branch it will commit to (default: the default branch)",
        "idle_seconds": "abort it when nothing was written for this long (default: the "
        "server's --open-commit-idle-minutes)",
    },
    returns="OpenCommit",
    status=201,
)
async def start_commit(ctl: Control, call: Call) -> Any:
    repo = call.params["repo"]
    branch = call.text("branch", False) or (await ctl.meta.get_repo(repo)).default_branch
    idle = call.field("idle_seconds", False)
    if idle is not None and (
        isinstance(idle, bool)
        or not isinstance(idle, int | float)
        or not 0 < idle <= MAX_IDLE_SECONDS
    ):
        raise bad_request(f"idle_seconds must be a number of seconds in (0, {MAX_IDLE_SECONDS}]")
    record = await ctl.start_commit(repo, branch, idle, author=call.text("author", False))
    return encode.open_commit(record)


@op(
    "GET",
    "/repos/{repo}/open-commits",
    "List open commits",
    params=(_REPO, *_PAGE),
    returns="list:OpenCommit",
)
async def list_open_commits(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    after = call.q("cursor") or ""
    records = [r for r in await ctl.list_open_commits(call.params["repo"]) if r.id.hex() > after]
    records.sort(key=lambda r: r.id)
    return named_page([encode.open_commit(r) for r in records[: limit + 1]], limit, "id")


@op(
    "POST",
    "/repos/{repo}/open-commits/{id}/finish",
    "Finish an open commit: everything written to it becomes one commit on its branch",
    params=(_REPO, _OPEN),
    body={"message": "the commit message"},
    returns="Finished",
)
async def finish_commit(ctl: Control, call: Call) -> Any:
    message = call.text("message", False) or "Commit"
    commit = await ctl.finish_commit(call.params["repo"], call.params["id"], message)
    return {"commit": encode.hex_or_none(commit)}


@op(
    "DELETE",
    "/repos/{repo}/open-commits/{id}",
    "Abort an open commit: nothing is committed",
    params=(_REPO, _OPEN),
    status=204,
)
async def abort_commit(ctl: Control, call: Call) -> Any:
    await ctl.abort_commit(call.params["repo"], call.params["id"])
    return None


# -- merge and revert ----------------------------------------------------------


@op(
    "POST",
    "/repos/{repo}/merge",
    "Three-way, path-level merge of a ref into a branch (fast-forward when possible)",
    params=(_REPO,),
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
    )
    return encode.merge_result(result)


@op(
    "POST",
    "/repos/{repo}/revert",
    "Revert a commit: a new commit on a branch undoing its changes",
    params=(_REPO,),
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
    )
    return {"commit": encode.hex_or_none(commit)}


def json_response(value: Any, status: int) -> Response:
    if isinstance(value, Response):
        return value
    if value is None:
        return Response(status_code=status)
    return JSONResponse(value, status_code=status)
