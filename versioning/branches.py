"""Repos and branches as the domain sees them: creating, finding, deleting
and restoring.

The rules of what may be deleted, and when, live here once, for every
protocol: a staging branch of an open commit is not a branch; a repo's
default branch goes only with the repo; a caller may ask for a branch to be
deleted only while it holds no objects, or only while every commit it has is
reachable from another branch or tag. Whatever is deleted goes to the trash
for `trash_seconds` (0: gone at once) and can be restored until then
(docs/design/trash.md).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Awaitable, Callable

from versioning import errors, tree
from versioning.clock import now_us
from versioning.db import Database
from versioning.ids import CommitId, NodeId
from versioning.model import STAGING_PREFIX, Branch, Repo, TrashEntry
from versioning.names import DEFAULT_BRANCH, check_ref_name, check_repo_name

BRANCH_SEEN_SECONDS = 2.0
DELETE_ATTEMPTS = 10
DEFAULT_TRASH_SECONDS = 7 * 24 * 3600.0


def visible(repo: str, branch: str) -> None:
    """Open commits' staging branches ("_open-...") are not branches to
    callers: reading, moving or deleting one would lose what was written to it."""
    if branch.startswith(STAGING_PREFIX[0]):
        raise errors.BranchNotFound(f"{repo}@{branch}")


class Branches:
    def __init__(self, db: Database, trash_seconds: float = DEFAULT_TRASH_SECONDS) -> None:
        self.db = db
        # How long deleted repos and branches stay restorable (0: not at all).
        self.trash_seconds = trash_seconds
        # Branches seen to exist, until a monotonic deadline: a write only
        # needs to know its branch exists to accept the body, and the commit
        # is the authority anyway (its compare-and-set, or the head read
        # when it changes nothing, finds a branch another server deleted).
        self._seen: dict[tuple[str, str], float] = {}
        # A repo's default branch never changes while the repo exists (every
        # repo's is `main`), so the name is cached for good. Whether the repo
        # exists is not: another server may delete it, so whoever needs to
        # know asks the database.
        self._defaults: dict[str, str] = {}

    # -- repos ---------------------------------------------------------------

    async def create_repo(self, name: str) -> Repo:
        """A repo with an empty default branch, `main`."""
        check_repo_name(name)
        return await self.db.repos.create_repo(name, DEFAULT_BRANCH)

    async def get_repo(self, name: str) -> Repo:
        return await self.db.repos.get_repo(name)

    async def list_repos(self, after: str = "", limit: int = 1000) -> list[Repo]:
        return await self.db.repos.repos_page(after, limit)

    async def repo_summary(self, name: str) -> tuple[int, CommitId | None]:
        """(number of branches, the newest commit any branch head names)."""
        return await self.db.repos.repo_summary(name)

    async def delete_repo(self, name: str) -> None:
        """Delete a repo with its branches, tags and history: to the trash,
        restorable for trash_seconds (uploads and open commits are dropped)."""
        await self.db.repos.delete_repo(name, self._keep_us())
        self._forget(name)

    def _keep_us(self) -> int:
        return max(0, int(self.trash_seconds * 1_000_000))

    async def default_branch(self, repo: str) -> str:
        """The repo's default branch name. RepoNotFound when there is no
        repo, unless this process saw it before: the answer is for callers
        that go on to the database with it (reading the branch)."""
        name = self._defaults.get(repo)
        if name is None:
            name = (await self.db.repos.get_repo(repo)).default_branch
            if len(self._defaults) > 10_000:
                self._defaults.clear()
            self._defaults[repo] = name
        return name

    # -- the trash ---------------------------------------------------------------

    async def list_trash(
        self, repo: str | None = None, kind: str | None = None, now: int | None = None
    ) -> list[TrashEntry]:
        """What can be restored (newest deletion first): trashed repos and
        branches, of the repo name `repo` or all; `kind` "repo" or "branch"."""
        return await self.db.trash.list_trash(now_us() if now is None else now, repo, kind)

    async def restore_repo(
        self, name: str, as_name: str | None = None, now: int | None = None
    ) -> Repo:
        """Put back the most recently deleted repo `name` (under `as_name`
        when given), with all its branches, tags and history. RepoExists when
        that name is taken again; TrashNotFound when nothing is there."""
        target = as_name or name
        check_repo_name(target)
        repo = await self.db.trash.restore_repo(name, target, now_us() if now is None else now)
        self._forget(target)
        return repo

    async def restore_branch(
        self, repo: str, name: str, as_name: str | None = None, now: int | None = None
    ) -> Branch:
        """Put back the most recently deleted branch `name` of `repo` (as
        `as_name` when given) at the head it had. BranchExists or TagExists
        when that name is taken again; TrashNotFound when nothing is there."""
        target = as_name or name
        check_ref_name(target, repo)
        return await self.db.trash.restore_branch(
            repo, name, target, now_us() if now is None else now
        )

    async def unmerged_commits(self, repo: str, name: str) -> int:
        """How many commits of the branch no other branch or tag of the repo
        reaches: what deleting it would leave only in the trash.

        Walks newest first from the branch head and from every other ref at
        once (as git's merge-base does), painting commits "mine" and
        "theirs", and stops as soon as nothing left to visit is only mine; so
        it reads the other refs' history only down to where the branch forked.
        """
        head = (await self.get_branch(repo, name)).head
        if head is None:
            return 0
        others: set[CommitId] = {
            b.head
            for b in await self.db.refs.list_branches(repo)
            if b.name != name and b.head is not None
        }
        after = ""
        while True:
            tags = await self.db.refs.list_tags(repo, after, 1000)
            others.update(t.commit for t in tags)
            if len(tags) < 1000:
                break
            after = tags[-1].name
        if head in others:
            return 0
        mine, theirs = 1, 2
        paint: dict[CommitId, int] = {}
        queue: list[tuple[int, bytes]] = []
        only_mine = 0  # queued commits painted only "mine"

        async def visit(cid: CommitId, color: int) -> None:
            nonlocal only_mine
            old = paint.get(cid, 0)
            new = old | color
            if new == old:
                return
            paint[cid] = new
            if cid in walked:  # painted after it was walked: clock skew
                return
            if old == 0:
                commit = await self.db.objects.get_commit(cid)
                heapq.heappush(queue, (-commit.time, cid))
            elif old == mine:
                only_mine -= 1
            if new == mine:
                only_mine += 1

        walked: set[CommitId] = set()
        await visit(head, mine)
        for cid in others:
            await visit(cid, theirs)
        while queue and only_mine > 0:
            _, raw = heapq.heappop(queue)
            cid = CommitId(raw)
            color = paint[cid]
            walked.add(cid)
            if color == mine:
                only_mine -= 1
            for parent in (await self.db.objects.get_commit(cid)).parents:
                await visit(parent, color)
        return sum(1 for c in walked if paint[c] == mine)

    # -- branches --------------------------------------------------------------

    async def create_branch(
        self, repo: str, name: str, head: Callable[[], Awaitable[CommitId | None]]
    ) -> Branch:
        """A branch at the commit `head()` names (None: no commit yet), once
        the name is known to be free. Guarded like every ref move, so gc
        cannot sweep the head meanwhile."""
        check_ref_name(name, repo)
        await self.check_free(repo, name)
        return await self.db.refs.create_branch_at(repo, name, await head())

    async def default_head(self, repo: str) -> CommitId | None:
        """The head of the repo's default branch."""
        return (await self.db.refs.get_branch(repo, await self.default_branch(repo))).head

    async def ensure_branch(self, repo: str, name: str) -> Branch:
        """Create `repo.name` from the repo's default branch head, creating the
        repo first when it does not exist (S3 CreateBucket of `repo.name`)."""
        check_repo_name(repo)
        check_ref_name(name, repo)
        # Asked of the database: another server may have deleted the repo.
        try:
            default = (await self.db.repos.get_repo(repo)).default_branch
        except errors.RepoNotFound:
            try:
                default = (await self.create_repo(repo)).default_branch
            except errors.RepoExists:
                default = (await self.db.repos.get_repo(repo)).default_branch
            if name == default:
                return await self.db.refs.get_branch(repo, name)
        source = await self.db.refs.get_branch(repo, default)
        return await self.db.refs.create_branch_at(repo, name, source.head)

    async def get_branch(self, repo: str, name: str) -> Branch:
        visible(repo, name)
        return await self.db.refs.get_branch(repo, name)

    async def list_branches(
        self, repo: str | None = None, after: str = "", limit: int | None = None
    ) -> list[Branch]:
        """Branches in (repo, name) order, of one repo or of all."""
        if repo is not None:
            await self.db.repos.get_repo(repo)
        return await self.db.refs.list_branches(repo, after, limit)

    async def default_branches(self) -> dict[str, str]:
        """Every repo's default branch, by repo name."""
        return {r.name: r.default_branch for r in await self.db.repos.list_repos()}

    async def require_branch(self, repo: str, name: str) -> None:
        """Raise BranchNotFound/RepoNotFound unless the branch (or a staging
        branch) exists; a positive answer is trusted for BRANCH_SEEN_SECONDS."""
        now = time.monotonic()
        if self._seen.get((repo, name), 0.0) > now:
            return
        await self.db.refs.get_branch(repo, name)
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[(repo, name)] = now + BRANCH_SEEN_SECONDS

    async def delete_branch(
        self,
        repo: str,
        name: str,
        *,
        only_if_empty: bool,
        may_drop_repo: bool,
        require_merged: bool = False,
    ) -> None:
        """Delete a branch, to the trash (restorable for trash_seconds; its
        uploads and open commits are dropped).

        With `only_if_empty`, a branch holding objects is refused
        (BranchNotEmpty). With `require_merged`, a branch with commits no
        other branch or tag reaches is refused (UnmergedCommits). The default
        branch goes only with the repo: it is refused while other branches
        exist, and otherwise (when `may_drop_repo`) deleting it deletes the
        repo (to the trash too).
        """
        visible(repo, name)
        info = await self.db.repos.get_repo(repo)
        if name == info.default_branch:
            if not may_drop_repo:
                raise errors.DefaultBranchInUse(
                    f"{name} is the default branch of {repo}; delete the repo instead"
                )
            others = [b.name for b in await self.db.refs.list_branches(repo) if b.name != name]
            if others:
                raise errors.DefaultBranchInUse(
                    f"{name} is the default branch of repo {repo}, which still has the branches "
                    f"{', '.join(others)}; delete those first"
                )
        if require_merged:
            count = await self.unmerged_commits(repo, name)
            if count:
                raise errors.UnmergedCommits(
                    f"{repo}@{name} has {count} commit{'s' if count != 1 else ''} no other "
                    "branch or tag reaches; deleted, they would only be in the trash",
                    count,
                )
        for _ in range(DELETE_ATTEMPTS):
            branch = await self.db.refs.get_branch(repo, name)
            if only_if_empty and branch.head is not None:
                commit = await self.db.objects.get_commit(branch.head, repo=repo)
                root = NodeId(commit.tree) if commit.tree else None
                count, _ = await tree.stats(self.db.objects, root)
                if count:
                    raise errors.BranchNotEmpty(f"{repo}.{name} holds {count} objects")
            if await self.db.refs.delete_branch(repo, name, branch.head, self._keep_us()):
                self._seen.pop((repo, name), None)
                if name == info.default_branch:
                    self._forget(repo)
                return
        raise errors.ConcurrentUpdate(f"{repo}@{name} kept changing; try again")

    async def check_free(self, repo: str, name: str) -> None:
        """Branches and tags share one namespace, so a ref is never ambiguous."""
        if await self.db.refs.get_tag(repo, name) is not None:
            raise errors.TagExists(f"{repo}@{name} is a tag")
        try:
            await self.db.refs.get_branch(repo, name)
        except errors.BranchNotFound:
            return
        raise errors.BranchExists(f"{repo}@{name} is a branch")

    def forget_branch(self, repo: str, name: str) -> None:
        """Stop trusting an earlier sighting of the branch (a commit found it gone)."""
        self._seen.pop((repo, name), None)

    def _forget(self, repo: str) -> None:
        self._defaults.pop(repo, None)
        for key in [k for k in self._seen if k[0] == repo]:
            del self._seen[key]
