"""Git-like operations on repos: refs, tags, logs, diffs, open commits,
merges and reverts. The control API's domain (s3api uses Versioning only).

Every ref argument is ref text (refs.py) of the form `NAME[~N|^N]` inside a
repo given apart: a branch, a tag, or a commit id or unique prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from versioning import commit_log, errors, merge, refs, tree
from versioning.branches import Branches, visible
from versioning.commit_log import PathChange
from versioning.committer import Change, Committer
from versioning.db import Database
from versioning.ids import CommitId
from versioning.model import Branch, Commit, ObjectEntry, Repo, Tag, TrashEntry
from versioning.names import check_ref_name, new_version
from versioning.open_commits import OpenCommits
from versioning.pipelines.jobs import Jobs
from versioning.pipelines.lineage import Lineage
from versioning.pipelines.planner import PipelinePlanner
from versioning.pipelines.service import Pipelines
from versioning.purge import Purges
from versioning.text import plural
from versioning.uploads import Uploads

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
        self,
        db: Database,
        branches: Branches,
        committer: Committer,
        open_commits: OpenCommits,
        author: str,
        purges: Purges | None = None,
        uploads: Uploads | None = None,
        pipeline_planner: PipelinePlanner | None = None,
        pipelines: Pipelines | None = None,
        jobs: Jobs | None = None,
        lineage: Lineage | None = None,
    ) -> None:
        self.db = db
        self.branches = branches
        self.committer = committer
        self.open_commits = open_commits
        self.author = author
        # Erasing bodies from history, and its audit log (purge.py).
        self.purges = purges or Purges(db)
        # Multipart uploads, to list and abort the ones clients left behind.
        self._uploads = uploads
        # The plan preview of a pipeline spec (pipelines/planner.py).
        self._pipeline_planner = pipeline_planner
        # Pipelines' lifecycle (pipelines/service.py).
        self.pipelines = pipelines or Pipelines(db, branches)
        # Jobs, datums, the worker protocol (pipelines/jobs.py) and lineage.
        self._jobs = jobs
        self._lineage = lineage

    @property
    def jobs(self) -> Jobs:
        assert self._jobs is not None, "built without the jobs service"
        return self._jobs

    @property
    def lineage(self) -> Lineage:
        assert self._lineage is not None, "built without the lineage service"
        return self._lineage

    @property
    def uploads(self) -> Uploads:
        assert self._uploads is not None, "built without the uploads service"
        return self._uploads

    @property
    def pipeline_planner(self) -> PipelinePlanner:
        assert self._pipeline_planner is not None, "built without the pipeline planner"
        return self._pipeline_planner

    # -- refs ------------------------------------------------------------------

    async def resolve(self, repo: str, ref: str | None) -> CommitId:
        """The commit `ref` (None: the default branch) names in `repo`."""
        return await refs.resolve(self.db, refs.parse_ref(f"{repo}@{ref}" if ref else repo))

    async def _commit(self, repo: str, ref: str | None) -> tuple[CommitId, Commit]:
        cid = await self.resolve(repo, ref)
        return cid, await self.db.objects.get_commit(cid, repo=repo)

    # -- repos -----------------------------------------------------------------

    async def create_repo(self, name: str) -> Repo:
        """A repo with an empty default branch, `main` (the S3 bucket `name`)."""
        return await self.branches.create_repo(name)

    async def list_repos(self, after: str = "", limit: int = 1000) -> list[Repo]:
        return await self.branches.list_repos(after, limit)

    async def describe_repo(self, name: str) -> RepoInfo:
        repo = await self.branches.get_repo(name)
        count, last = await self.branches.repo_summary(name)
        head = (await self.branches.get_branch(name, repo.default_branch)).head
        objects = size = 0
        if head is not None:
            objects, size = await tree.stats(
                self.db.objects, commit_log.tree_of(await self.db.objects.get_commit(head))
            )
        last_time = (await self.db.objects.get_commit(last)).time if last is not None else None
        return RepoInfo(repo, count, last, last_time, objects, size)

    async def delete_repo(self, name: str) -> None:
        """To the trash, with all its branches, tags and history."""
        await self.branches.delete_repo(name)

    async def restore_repo(self, name: str, as_name: str | None = None) -> Repo:
        return await self.branches.restore_repo(name, as_name)

    async def list_trash(
        self, repo: str | None = None, kind: str | None = None
    ) -> list[TrashEntry]:
        return await self.branches.list_trash(repo, kind)

    # -- branches ----------------------------------------------------------------

    async def create_branch(self, repo: str, name: str, source: str | None = None) -> Branch:
        """A branch at what `source` names (None: the default branch's head,
        which may be no commit at all)."""

        async def head() -> CommitId | None:
            if source is None:
                return await self.branches.default_head(repo)
            return await self.resolve(repo, source)

        return await self.branches.create_branch(repo, name, head)

    async def list_branches(self, repo: str, after: str = "", limit: int = 1000) -> list[Branch]:
        return await self.branches.list_branches(repo, after, limit)

    async def get_branch(self, repo: str, name: str) -> Branch:
        return await self.branches.get_branch(repo, name)

    async def delete_branch(self, repo: str, name: str, require_merged: bool = False) -> None:
        """Delete a branch whatever it holds, to the trash; not the default
        branch. With `require_merged`, refused (UnmergedCommits) while it has
        commits no other branch or tag reaches."""
        await self.branches.delete_branch(
            repo, name, only_if_empty=False, may_drop_repo=False, require_merged=require_merged
        )

    async def restore_branch(self, repo: str, name: str, as_name: str | None = None) -> Branch:
        return await self.branches.restore_branch(repo, name, as_name)

    async def reset_branch(
        self, repo: str, name: str, target: str, expected: CommitId | Any | None = ...
    ) -> Branch:
        """Move the head to what `target` names; with `expected`, only if the
        head is still that (HeadMoved otherwise)."""
        visible(repo, name)
        commit = await self.resolve(repo, target)
        if not await self.db.refs.reset_branch(repo, name, commit, expected):
            current = (await self.db.refs.get_branch(repo, name)).head
            raise errors.HeadMoved(
                f"{repo}@{name} is at {current.hex() if current else 'no commit'}, not at "
                f"{expected.hex() if expected else 'no commit'}"
            )
        return await self.db.refs.get_branch(repo, name)

    # -- tags ------------------------------------------------------------------

    async def create_tag(self, repo: str, name: str, source: str | None) -> Tag:
        check_ref_name(name, repo)
        await self.branches.check_free(repo, name)
        return await self.db.refs.create_tag(repo, name, await self.resolve(repo, source))

    async def list_tags(self, repo: str, after: str = "", limit: int = 1000) -> list[Tag]:
        await self.branches.get_repo(repo)
        return await self.db.refs.list_tags(repo, after, limit)

    async def get_tag(self, repo: str, name: str) -> Tag:
        tag = await self.db.refs.get_tag(repo, name)
        if tag is None:
            await self.branches.get_repo(repo)
            raise errors.TagNotFound(f"{repo}@{name}")
        return tag

    async def delete_tag(self, repo: str, name: str) -> None:
        await self.db.refs.delete_tag(repo, name)

    # -- commits -----------------------------------------------------------------

    async def inspect(self, repo: str, ref: str | None) -> CommitInfo:
        cid, commit = await self._commit(repo, ref)
        parent = await self.db.objects.get_commit(commit.parents[0]) if commit.parents else None
        counts = {"added": 0, "modified": 0, "deleted": 0}
        async for change in commit_log.changes(
            self.db.objects, commit_log.tree_of(parent), commit_log.tree_of(commit)
        ):
            counts[change.kind] += 1
        objects, size = await tree.stats(self.db.objects, commit_log.tree_of(commit))
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
        async for commit, cid, after in commit_log.walk(
            self.db.objects, frontier, path, since, until
        ):
            yield cid, commit, commit_log.encode_cursor(after)

    async def cursor_commits(self, repo: str, cursor: str) -> list[CommitId]:
        """The commits a log or history cursor names; InvalidCursor unless
        every one is a commit of `repo`."""
        try:
            found = commit_log.decode_cursor(cursor)
            if not found or any(len(c) != 16 for c in found):
                raise ValueError
            for cid in found:
                await self.db.objects.get_commit(cid, repo=repo)
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
        return commit_log.changes(
            self.db.objects, commit_log.tree_of(ca), commit_log.tree_of(cb), prefix, after
        )

    async def history(
        self, repo: str, ref: str | None, path: str
    ) -> AsyncIterator[tuple[CommitId, Commit, ObjectEntry | None]]:
        """The commits that changed `path`, newest first: (id, commit, the
        entry it wrote or None for a delete). `ref` is resolved first."""
        head = await self.resolve(repo, ref)
        return self._history(head, path)

    async def _history(
        self, head: CommitId, path: str
    ) -> AsyncIterator[tuple[CommitId, Commit, ObjectEntry | None]]:
        async for cid, entry in commit_log.path_history(self.db.objects, head, path):
            yield cid, await self.db.objects.get_commit(cid), entry

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
        visible(repo, into)
        theirs = await self.resolve(repo, source)
        for _ in range(MERGE_ATTEMPTS):
            head = (await self.db.refs.get_branch(repo, into)).head
            if head is None:
                if await self.db.refs.reset_branch(repo, into, theirs, None):
                    return MergeResult("fast-forward", theirs)
                continue
            base = await merge.merge_base(self.db.objects.get_commit, head, theirs)
            if base == theirs:
                return MergeResult("up-to-date", head)
            if base == head:
                if await self.db.refs.reset_branch(repo, into, theirs, head):
                    return MergeResult("fast-forward", theirs)
                continue
            ours_c, theirs_c = (
                await self.db.objects.get_commit(head),
                await self.db.objects.get_commit(theirs),
            )
            base_c = await self.db.objects.get_commit(base) if base else None
            plan = await merge.three_way(
                self.db.objects,
                commit_log.tree_of(base_c),
                commit_log.tree_of(ours_c),
                commit_log.tree_of(theirs_c),
                strategy,
            )
            if plan.conflicts and strategy is None:
                raise errors.MergeConflict(
                    f"merging {repo}@{source} into {into}: "
                    f"{plural(len(plan.conflicts), 'path')} changed on both sides; nothing was "
                    "written (use a strategy: ours or theirs)",
                    [f"{c.path}\t{c.kind}" for c in plan.conflicts],
                )
            try:
                commit = await self.committer.submit(
                    repo,
                    into,
                    Change(
                        edits=plan.edits,
                        message=message or f"Merge {repo}@{source} into {into}",
                        author=author or self.author,
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
            branch = (await self.branches.get_repo(repo)).default_branch
        visible(repo, branch)
        parent = await self.db.objects.get_commit(commit.parents[0]) if commit.parents else None
        for _ in range(MERGE_ATTEMPTS):
            head = (await self.db.refs.get_branch(repo, branch)).head
            head_c = await self.db.objects.get_commit(head) if head else None
            plan = await merge.revert(
                self.db.objects,
                commit_log.tree_of(parent),
                commit_log.tree_of(commit),
                commit_log.tree_of(head_c),
            )
            if plan.conflicts:
                raise errors.MergeConflict(
                    f"reverting {cid.hex()} on {branch}: "
                    f"{plural(len(plan.conflicts), 'path')} changed since; nothing was written",
                    [f"{c.path}\t{c.kind}" for c in plan.conflicts],
                )
            edits = {
                k: (dataclasses.replace(e, version=new_version()) if e else None)
                for k, e in plan.edits.items()
            }
            try:
                return await self.committer.submit(
                    repo,
                    branch,
                    Change(
                        edits=edits,
                        message=message or f'Revert "{commit.message}"',
                        author=author or self.author,
                        origin={"op": "revert", "reverted": cid.hex()},
                        expect_head=head,
                        require_head=True,
                    ),
                )
            except errors.HeadMoved:
                continue
        raise errors.ConcurrentUpdate(f"{repo}@{branch} kept moving during the revert")
