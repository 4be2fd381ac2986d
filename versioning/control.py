"""Git-like operations on repos: refs, tags, logs, diffs, open commits,
merges and reverts. The control API's domain (s3api uses Versioning only).

Every ref argument is ref text (refs.py) of the form `NAME[~N|^N]` inside a
repo given apart: a branch, a tag, or a commit id or unique prefix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from versioning import errors, log, merge, refs, tree
from versioning.committer import Change
from versioning.ids import CommitId
from versioning.log import Change as PathChange
from versioning.metadata import OpenCommitRecord, now_us
from versioning.model import Branch, Commit, ObjectEntry, Repo, Tag
from versioning.repository import (
    DEFAULT_BRANCH,
    Versioning,
    check_branch_name,
    check_repo_name,
    new_version,
)

DEFAULT_OPEN_IDLE_SECONDS = 3600.0
MERGE_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class RepoInfo:
    repo: Repo
    branches: int
    last_commit: CommitId | None
    last_commit_time: int | None
    objects: int  # at the default branch's head
    size: int


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: CommitId
    commit: Commit
    objects: int
    size: int
    added: int
    modified: int
    deleted: int


@dataclass(frozen=True, slots=True)
class MergeResult:
    outcome: str  # "fast-forward", "merged" or "up-to-date"
    commit: CommitId | None  # the target's head afterwards
    conflicts: tuple[merge.Conflict, ...] = ()


class Control:
    def __init__(
        self, versioning: Versioning, open_idle_seconds: float = DEFAULT_OPEN_IDLE_SECONDS
    ) -> None:
        self.v = versioning
        self.meta = versioning.meta
        self.open_idle_seconds = open_idle_seconds

    # -- refs ------------------------------------------------------------------

    async def resolve(self, repo: str, ref: str | None) -> CommitId:
        """The commit `ref` (None: the default branch) names in `repo`."""
        return await refs.resolve(self.meta, refs.parse_ref(f"{repo}@{ref}" if ref else repo))

    async def _commit(self, repo: str, ref: str | None) -> tuple[CommitId, Commit]:
        cid = await self.resolve(repo, ref)
        return cid, await self.meta.get_commit(cid, repo=repo)

    async def _check_new_ref_name(self, repo: str, name: str) -> None:
        """Branches and tags share one namespace, so a ref is never ambiguous."""
        if await self.meta.get_tag(repo, name) is not None:
            raise errors.TagExists(f"{repo}@{name} is a tag")
        try:
            await self.meta.get_branch(repo, name)
        except errors.BranchNotFound:
            return
        raise errors.BranchExists(f"{repo}@{name} is a branch")

    # -- repos -----------------------------------------------------------------

    async def create_repo(self, name: str) -> Repo:
        """A repo with an empty default branch, `main` (the S3 bucket `name`)."""
        check_repo_name(name)
        return await self.meta.create_repo(name, DEFAULT_BRANCH)

    async def list_repos(self, after: str = "", limit: int = 1000) -> list[Repo]:
        return await self.meta.repos_page(after, limit)

    async def describe_repo(self, name: str) -> RepoInfo:
        repo = await self.meta.get_repo(name)
        count, last = await self.meta.repo_summary(name)
        head = (await self.meta.get_branch(name, repo.default_branch)).head
        objects = size = 0
        if head is not None:
            objects, size = await tree.stats(
                self.meta, log.tree_of(await self.meta.get_commit(head))
            )
        last_time = (await self.meta.get_commit(last)).time if last is not None else None
        return RepoInfo(repo, count, last, last_time, objects, size)

    async def delete_repo(self, name: str) -> None:
        await self.meta.delete_repo(name)

    # -- branches ----------------------------------------------------------------

    async def create_branch(self, repo: str, name: str, source: str | None = None) -> Branch:
        """A branch at what `source` names (None: the default branch's head,
        which may be no commit at all)."""
        check_branch_name(name, repo)
        await self._check_new_ref_name(repo, name)
        if source is None:
            info = await self.meta.get_repo(repo)
            head = (await self.meta.get_branch(repo, info.default_branch)).head
        else:
            head = await self.resolve(repo, source)
        return await self.meta.create_branch_at(repo, name, head)

    async def list_branches(self, repo: str, after: str = "", limit: int = 1000) -> list[Branch]:
        await self.meta.get_repo(repo)
        return await self.meta.list_branches(repo, after, limit)

    async def get_branch(self, repo: str, name: str) -> Branch:
        _visible(repo, name)
        return await self.meta.get_branch(repo, name)

    async def delete_branch(self, repo: str, name: str) -> None:
        """Delete a branch whatever it holds (its commits stay reachable from
        other refs, or become garbage); not the default branch."""
        _visible(repo, name)
        info = await self.meta.get_repo(repo)
        if name == info.default_branch:
            raise errors.DefaultBranchInUse(
                f"{name} is the default branch of {repo}; delete the repo instead"
            )
        for _ in range(10):
            branch = await self.meta.get_branch(repo, name)
            if await self.meta.delete_branch(repo, name, branch.head):
                return
        raise errors.ConcurrentUpdate(f"{repo}@{name} kept changing; try again")

    async def reset_branch(
        self, repo: str, name: str, target: str, expected: CommitId | Any | None = ...
    ) -> Branch:
        """Move the head to what `target` names; with `expected`, only if the
        head is still that (HeadMoved otherwise)."""
        _visible(repo, name)
        commit = await self.resolve(repo, target)
        if not await self.meta.reset_branch(repo, name, commit, expected):
            current = (await self.meta.get_branch(repo, name)).head
            raise errors.HeadMoved(
                f"{repo}@{name} is at {current.hex() if current else 'no commit'}, not at "
                f"{expected.hex() if expected else 'no commit'}"
            )
        return await self.meta.get_branch(repo, name)

    # -- tags ------------------------------------------------------------------

    async def create_tag(self, repo: str, name: str, source: str | None) -> Tag:
        check_branch_name(name, repo)
        await self._check_new_ref_name(repo, name)
        return await self.meta.create_tag(repo, name, await self.resolve(repo, source))

    async def list_tags(self, repo: str, after: str = "", limit: int = 1000) -> list[Tag]:
        await self.meta.get_repo(repo)
        return await self.meta.list_tags(repo, after, limit)

    async def get_tag(self, repo: str, name: str) -> Tag:
        tag = await self.meta.get_tag(repo, name)
        if tag is None:
            await self.meta.get_repo(repo)
            raise errors.TagNotFound(f"{repo}@{name}")
        return tag

    async def delete_tag(self, repo: str, name: str) -> None:
        await self.meta.delete_tag(repo, name)

    # -- commits -----------------------------------------------------------------

    async def inspect(self, repo: str, ref: str | None) -> CommitInfo:
        cid, commit = await self._commit(repo, ref)
        parent = await self.meta.get_commit(commit.parents[0]) if commit.parents else None
        counts = {"added": 0, "modified": 0, "deleted": 0}
        async for change in log.changes(self.meta, log.tree_of(parent), log.tree_of(commit)):
            counts[change.kind] += 1
        objects, size = await tree.stats(self.meta, log.tree_of(commit))
        return CommitInfo(cid, commit, objects, size, **counts)

    async def log(
        self,
        repo: str,
        ref: str | None,
        cursor: str | None = None,
        path: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> AsyncIterator[tuple[CommitId, Commit, str]]:
        """(id, commit, cursor after it) newest first."""
        if cursor is not None:
            frontier = await self.cursor_commits(repo, cursor)
        else:
            frontier = [await self.resolve(repo, ref)]
        async for commit, cid, after in log.walk(self.meta, frontier, path, since, until):
            yield cid, commit, log.encode_cursor(after)

    async def cursor_commits(self, repo: str, cursor: str) -> list[CommitId]:
        """The commits a log or history cursor names; InvalidCursor unless
        every one is a commit of `repo`."""
        try:
            found = log.decode_cursor(cursor)
            if not found or any(len(c) != 16 for c in found):
                raise ValueError
            for cid in found:
                await self.meta.get_commit(cid, repo=repo)
        except (ValueError, errors.CommitNotFound):
            raise errors.InvalidCursor(
                f"cursor {cursor!r} was not handed out by this listing; start without one"
            ) from None
        return found

    async def diff(
        self, repo: str, a: str | None, b: str | None, prefix: str = "", after: str = ""
    ) -> AsyncIterator[PathChange]:
        """What changed from ref `a` to ref `b`, in path order. Both refs are
        resolved before the first change is produced."""
        _, ca = await self._commit(repo, a)
        _, cb = await self._commit(repo, b)
        return log.changes(self.meta, log.tree_of(ca), log.tree_of(cb), prefix, after)

    async def history(
        self, repo: str, ref: str | None, path: str
    ) -> AsyncIterator[tuple[CommitId, ObjectEntry | None]]:
        head = await self.resolve(repo, ref)
        return log.path_history(self.meta, head, path)

    # -- open commits --------------------------------------------------------------

    async def start_commit(
        self, repo: str, branch: str, idle_seconds: float | None = None, author: str | None = None
    ) -> OpenCommitRecord:
        _visible(repo, branch)
        head = (await self.meta.get_branch(repo, branch)).head
        record = OpenCommitRecord(
            id=CommitId(os.urandom(16)),
            repo=repo,
            branch=branch,
            base=head,
            created=now_us(),
            idle_us=int((idle_seconds or self.open_idle_seconds) * 1_000_000),
            author=author or self.v.author,
        )
        await self.meta.create_open_commit(record)
        return record

    async def open_commit(self, repo: str, ident: str) -> OpenCommitRecord:
        """An open commit by its id or a unique prefix of >= 8 hex digits."""
        found = [r for r in await self.meta.list_open_commits(repo) if r.id.hex().startswith(ident)]
        if len(ident) < refs.MIN_PREFIX or not found:
            await self.meta.get_repo(repo)
            raise errors.OpenCommitNotFound(f"{repo}@{ident}: no open commit has this id")
        if len(found) > 1:
            raise errors.AmbiguousRef(f"{repo}@{ident} matches several open commits")
        return found[0]

    async def list_open_commits(self, repo: str) -> list[OpenCommitRecord]:
        await self.meta.get_repo(repo)
        return await self.meta.list_open_commits(repo)

    async def finish_commit(
        self, repo: str, ident: str, message: str, origin: dict[str, Any] | None = None
    ) -> CommitId | None:
        """Make everything written to the open commit ONE commit on its branch,
        on top of the branch's current head (its changes are path-level edits,
        so writes the branch got meanwhile to other paths are kept). None when
        nothing was written."""
        record = await self.open_commit(repo, ident)
        frozen = await self.meta.freeze_open_commit(repo, record.id)
        base = await self.meta.get_commit(record.base) if record.base else None
        staged = await self.meta.get_commit(frozen) if frozen else None
        edits: dict[str, ObjectEntry | None] = {}
        async for change in log.changes(self.meta, log.tree_of(base), log.tree_of(staged)):
            # A fresh version: the version names the commit that made it.
            edits[change.path] = (
                dataclasses.replace(change.after, version=new_version()) if change.after else None
            )
        if not edits:
            await self.meta.delete_open_commit(repo, record.id)
            return None
        try:
            return await self.v.committer.submit(
                repo,
                record.branch,
                Change(
                    edits=edits,
                    message=message,
                    author=record.author,
                    origin={"op": "commit", "open_commit": record.id.hex(), **(origin or {})},
                    consume_open=record.id,
                ),
            )
        except errors.BranchNotFound:
            # The branch went away meanwhile: this can never be finished.
            await self.meta.delete_open_commit(repo, record.id)
            raise errors.BranchNotFound(
                f"{repo}@{record.branch} was deleted; open commit {record.id.hex()} is aborted"
            ) from None

    async def abort_commit(self, repo: str, ident: str) -> None:
        record = await self.open_commit(repo, ident)
        if not await self.meta.delete_open_commit(repo, record.id):
            raise errors.OpenCommitNotFound(f"{repo}@{ident}")

    async def expire_open_commits(self) -> list[OpenCommitRecord]:
        """Abort open commits idle for longer than their limit."""
        return await self.meta.expire_open_commits(now_us())

    # -- merge and revert ------------------------------------------------------------

    async def merge(
        self,
        repo: str,
        source: str,
        into: str,
        strategy: merge.Strategy | None = None,
        message: str | None = None,
        author: str | None = None,
    ) -> MergeResult:
        """Merge what `source` names into branch `into`: fast-forward when the
        target's head is an ancestor of it, else a merge commit with two
        parents. Conflicts without a strategy raise MergeConflict."""
        _visible(repo, into)
        theirs = await self.resolve(repo, source)
        for _ in range(MERGE_ATTEMPTS):
            head = (await self.meta.get_branch(repo, into)).head
            if head is None:
                if await self.meta.reset_branch(repo, into, theirs, None):
                    return MergeResult("fast-forward", theirs)
                continue
            base = await merge.merge_base(self.meta.get_commit, head, theirs)
            if base == theirs:
                return MergeResult("up-to-date", head)
            if base == head:
                if await self.meta.reset_branch(repo, into, theirs, head):
                    return MergeResult("fast-forward", theirs)
                continue
            ours_c, theirs_c = await self.meta.get_commit(head), await self.meta.get_commit(theirs)
            base_c = await self.meta.get_commit(base) if base else None
            plan = await merge.three_way(
                self.meta, log.tree_of(base_c), log.tree_of(ours_c), log.tree_of(theirs_c), strategy
            )
            if plan.conflicts and strategy is None:
                raise errors.MergeConflict(
                    f"merging {repo}@{source} into {into}: {len(plan.conflicts)} paths changed "
                    "on both sides; nothing was written (use a strategy: ours or theirs)",
                    [f"{c.path}\t{c.kind}" for c in plan.conflicts],
                )
            try:
                commit = await self.v.committer.submit(
                    repo,
                    into,
                    Change(
                        edits=plan.edits,
                        message=message or f"Merge {repo}@{source} into {into}",
                        author=author or self.v.author,
                        origin={
                            "op": "merge",
                            "source": source,
                            "source_commit": theirs.hex(),
                            "strategy": strategy.value if strategy else None,
                        },
                        extra_parents=(theirs,),
                        expect_head=head,
                        require_head=True,
                    ),
                )
            except errors.HeadMoved:
                continue
            return MergeResult("merged", commit, tuple(plan.conflicts))
        raise errors.ConcurrentUpdate(f"{repo}@{into} kept moving during the merge; try again")

    async def revert(
        self,
        repo: str,
        target: str,
        branch: str | None = None,
        message: str | None = None,
        author: str | None = None,
    ) -> CommitId | None:
        """A new commit on `branch` (default: the repo's default branch) that
        undoes what the commit `target` names changed relative to its first
        parent. Paths changed again since raise MergeConflict."""
        cid, commit = await self._commit(repo, target)
        if branch is None:
            branch = (await self.meta.get_repo(repo)).default_branch
        _visible(repo, branch)
        parent = await self.meta.get_commit(commit.parents[0]) if commit.parents else None
        for _ in range(MERGE_ATTEMPTS):
            head = (await self.meta.get_branch(repo, branch)).head
            head_c = await self.meta.get_commit(head) if head else None
            plan = await merge.revert(
                self.meta, log.tree_of(parent), log.tree_of(commit), log.tree_of(head_c)
            )
            if plan.conflicts:
                raise errors.MergeConflict(
                    f"reverting {cid.hex()} on {branch}: {len(plan.conflicts)} paths changed "
                    "since; nothing was written",
                    [f"{c.path}\t{c.kind}" for c in plan.conflicts],
                )
            edits = {
                k: (dataclasses.replace(e, version=new_version()) if e else None)
                for k, e in plan.edits.items()
            }
            try:
                return await self.v.committer.submit(
                    repo,
                    branch,
                    Change(
                        edits=edits,
                        message=message or f'Revert "{commit.message}"',
                        author=author or self.v.author,
                        origin={"op": "revert", "reverted": cid.hex()},
                        expect_head=head,
                        require_head=True,
                    ),
                )
            except errors.HeadMoved:
                continue
        raise errors.ConcurrentUpdate(f"{repo}@{branch} kept moving during the revert")


def _visible(repo: str, branch: str) -> None:
    """Open commits' staging branches ("_open-...") are not branches to the
    API: reading, moving or deleting one would lose what was written to it."""
    if branch.startswith("_"):
        raise errors.BranchNotFound(f"{repo}@{branch}")
