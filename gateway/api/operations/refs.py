"""Control API operations on repos, branches and tags."""

from __future__ import annotations

from typing import Any

from gateway.api import encode
from gateway.api.errors import ApiError, bad_request
from gateway.api.table import BRANCH, PAGE, REPO, Call, Param, named_page, op, page
from versioning.control import Control
from versioning.ids import CommitId

# -- repos ---------------------------------------------------------------------


@op("GET", "/repos", "List repos", params=PAGE, returns="list:Repo")
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
    params=(REPO,),
    returns="RepoInfo",
)
async def describe_repo(ctl: Control, call: Call) -> Any:
    return encode.repo_info(await ctl.describe_repo(call.params["repo"]))


@op(
    "DELETE",
    "/repos/{repo}",
    "Delete a repo with all its branches, tags and history (to the trash, restorable until "
    "it expires)",
    params=(REPO, Param("confirm", "query", "must be true", True)),
    status=204,
)
async def delete_repo(ctl: Control, call: Call) -> Any:
    if call.q("confirm") != "true":
        raise ApiError(
            400,
            "confirmation_required",
            f"deleting repo {call.params['repo']} removes all its branches, tags and history "
            "(to the trash, restorable until it expires); repeat with confirm=true",
        )
    await ctl.delete_repo(call.params["repo"])
    return None


_AS = {"as": "restore under this name instead (default: the name it had)"}


@op(
    "POST",
    "/repos/{repo}/restore",
    "Restore a deleted repo from the trash, with all its branches, tags and history",
    params=(REPO,),
    body=_AS,
    returns="Repo",
)
async def restore_repo(ctl: Control, call: Call) -> Any:
    return encode.repo(await ctl.restore_repo(call.params["repo"], call.text("as", False)))


@op(
    "GET",
    "/trash",
    "List deleted repos and branches that can still be restored, newest first",
    params=(
        Param("repo", "query", "only this repo name's entries (the repo and its branches)"),
        Param("kind", "query", "repo or branch"),
    ),
    returns="list:TrashEntry",
)
async def list_trash(ctl: Control, call: Call) -> Any:
    kind = call.q("kind")
    if kind not in (None, "repo", "branch"):
        raise bad_request("kind must be repo or branch")
    entries = await ctl.list_trash(call.q("repo"), kind)
    return page([encode.trash_entry(e) for e in entries], None)


# -- branches ------------------------------------------------------------------


@op("GET", "/repos/{repo}/branches", "List branches", params=(REPO, *PAGE), returns="list:Branch")
async def list_branches(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    branches = await ctl.list_branches(call.params["repo"], call.q("cursor") or "", limit + 1)
    return named_page([encode.branch(b) for b in branches], limit)


@op(
    "POST",
    "/repos/{repo}/branches",
    "Create a branch at any ref",
    params=(REPO,),
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
    params=(REPO, BRANCH),
    returns="Branch",
)
async def get_branch(ctl: Control, call: Call) -> Any:
    return encode.branch(await ctl.get_branch(call.params["repo"], call.params["branch"]))


@op(
    "DELETE",
    "/repos/{repo}/branches/{branch}",
    "Delete a branch, to the trash (not the default one)",
    params=(
        REPO,
        BRANCH,
        Param(
            "require_merged",
            "query",
            "true: refuse (unmerged_commits) while it has commits no other branch or tag reaches",
        ),
    ),
    status=204,
)
async def delete_branch(ctl: Control, call: Call) -> Any:
    require = call.q("require_merged", "false")
    if require not in ("true", "false"):
        raise bad_request("require_merged must be true or false")
    await ctl.delete_branch(call.params["repo"], call.params["branch"], require == "true")
    return None


@op(
    "POST",
    "/repos/{repo}/branches/{branch}/restore",
    "Restore a deleted branch from the trash, at the head it had",
    params=(REPO, BRANCH),
    body=_AS,
    returns="Branch",
)
async def restore_branch(ctl: Control, call: Call) -> Any:
    branch = await ctl.restore_branch(
        call.params["repo"], call.params["branch"], call.text("as", False)
    )
    return encode.branch(branch)


@op(
    "POST",
    "/repos/{repo}/branches/{branch}/reset",
    "Move a branch's head to a ref; compare-and-set when expected_head is given",
    params=(REPO, BRANCH),
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


@op("GET", "/repos/{repo}/tags", "List tags", params=(REPO, *PAGE), returns="list:Tag")
async def list_tags(ctl: Control, call: Call) -> Any:
    limit = call.limit()
    tags = await ctl.list_tags(call.params["repo"], call.q("cursor") or "", limit + 1)
    return named_page([encode.tag(t) for t in tags], limit)


@op(
    "POST",
    "/repos/{repo}/tags",
    "Create a tag: an immutable name for the commit a ref names",
    params=(REPO,),
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


@op("GET", "/repos/{repo}/tags/{tag}", "Get a tag", params=(REPO, _TAG), returns="Tag")
async def get_tag(ctl: Control, call: Call) -> Any:
    return encode.tag(await ctl.get_tag(call.params["repo"], call.params["tag"]))


@op("DELETE", "/repos/{repo}/tags/{tag}", "Delete a tag", params=(REPO, _TAG), status=204)
async def delete_tag(ctl: Control, call: Call) -> Any:
    await ctl.delete_tag(call.params["repo"], call.params["tag"])
    return None
