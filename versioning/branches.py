"""Repos and branches as the domain sees them: creating, finding and deleting.

The rules of what may be deleted, and when, live here once, for every
protocol: a staging branch of an open commit is not a branch; a repo's
default branch goes only with the repo; a caller may ask for a branch to be
deleted only while it holds no objects.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from versioning import errors, tree
from versioning.db import Database
from versioning.ids import CommitId, NodeId
from versioning.model import STAGING_PREFIX, Branch, Repo
from versioning.names import DEFAULT_BRANCH, check_ref_name, check_repo_name

BRANCH_SEEN_SECONDS = 2.0
DELETE_ATTEMPTS = 10


def visible(repo: str, branch: str) -> None:
    """Open commits' staging branches ("_open-...") are not branches to
    callers: reading, moving or deleting one would lose what was written to it."""
    if branch.startswith(STAGING_PREFIX[0]):
        raise errors.BranchNotFound(f"{repo}@{branch}")


class Branches:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Branches seen to exist, until a monotonic deadline: a write only
        # needs to know its branch exists to accept the body, and the commit's
        # compare-and-set is the authority anyway.
        self._seen: dict[tuple[str, str], float] = {}
        # A repo's default branch never changes, so it is cached for good.
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
        await self.db.repos.delete_repo(name)
        self._forget(name)

    async def default_branch(self, repo: str) -> str:
        """The repo's default branch name (RepoNotFound when there is no repo)."""
        name = self._defaults.get(repo)
        if name is None:
            name = (await self.db.repos.get_repo(repo)).default_branch
            if len(self._defaults) > 10_000:
                self._defaults.clear()
            self._defaults[repo] = name
        return name

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
        try:
            default = await self.default_branch(repo)
        except errors.RepoNotFound:
            try:
                default = (await self.create_repo(repo)).default_branch
            except errors.RepoExists:
                default = await self.default_branch(repo)
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
        self, repo: str, name: str, *, only_if_empty: bool, may_drop_repo: bool
    ) -> None:
        """Delete a branch.

        With `only_if_empty`, a branch holding objects is refused
        (BranchNotEmpty). The default branch goes only with the repo: it is
        refused while other branches exist, and otherwise (when
        `may_drop_repo`) deleting it deletes the repo.
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
        for _ in range(DELETE_ATTEMPTS):
            branch = await self.db.refs.get_branch(repo, name)
            if only_if_empty and branch.head is not None:
                commit = await self.db.objects.get_commit(branch.head, repo=repo)
                root = NodeId(commit.tree) if commit.tree else None
                count, _ = await tree.stats(self.db.objects, root)
                if count:
                    raise errors.BranchNotEmpty(f"{repo}.{name} holds {count} objects")
            if await self.db.refs.delete_branch(repo, name, branch.head):
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

    def _forget(self, repo: str) -> None:
        self._defaults.pop(repo, None)
        for key in [k for k in self._seen if k[0] == repo]:
            del self._seen[key]
