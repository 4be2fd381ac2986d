"""Branches and tags: the only mutable pointers, moved by compare-and-set.

Branches and tags share one namespace per repo, so a ref never names two
things; every move is gc-guarded (ref_guard.py). Open commits' staging
branches (a leading "_") live in the same table but are never listed.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from versioning import errors
from versioning.clock import now_us
from versioning.db.objects import PgObjects
from versioning.db.open_commits import drop_open_commit
from versioning.db.ref_guard import claim_name, guard_target, lock_repo, ref_move
from versioning.db.repos import PgRepos, drop_repo
from versioning.db.trash import forget_trashed_branches, trash_branch, trash_repo
from versioning.ids import CommitId
from versioning.model import Branch, Tag


class RefStore(Protocol):
    async def get_branch(self, repo: str, name: str) -> Branch: ...
    async def list_branches(
        self, repo: str | None = None, after: str = "", limit: int | None = None
    ) -> list[Branch]: ...
    async def create_branch_at(self, repo: str, name: str, head: CommitId | None) -> Branch: ...
    async def reset_branch(
        self, repo: str, name: str, target: CommitId, expected: CommitId | Any | None = ...
    ) -> bool: ...
    async def delete_branch(
        self, repo: str, name: str, expected_head: CommitId | None, keep_us: int = 0
    ) -> bool: ...
    async def create_tag(self, repo: str, name: str, commit: CommitId) -> Tag: ...
    async def get_tag(self, repo: str, name: str) -> Tag | None: ...
    async def list_tags(self, repo: str, after: str, limit: int) -> list[Tag]: ...
    async def delete_tag(self, repo: str, name: str) -> None: ...


class PgRefs:
    def __init__(self, pool: asyncpg.Pool, repos: PgRepos, objects: PgObjects) -> None:
        self.pool = pool
        self.repos = repos
        self.objects = objects

    # -- branches ----------------------------------------------------------

    async def get_branch(self, repo: str, name: str) -> Branch:
        row = await self.pool.fetchrow(
            "SELECT repo, name, head, created FROM branches WHERE repo = $1 AND name = $2",
            repo,
            name,
        )
        if row is None:
            await self.repos.get_repo(repo)  # raises RepoNotFound when the repo is missing
            raise errors.BranchNotFound(f"{repo}@{name}")
        return _branch(row)

    async def list_branches(
        self, repo: str | None = None, after: str = "", limit: int | None = None
    ) -> list[Branch]:
        """Branches in (repo, name) order; open commits' staging branches
        (named with a leading "_") are not listed."""
        rows = await self.pool.fetch(
            "SELECT repo, name, head, created FROM branches "
            "WHERE ($1::text IS NULL OR repo = $1) AND name NOT LIKE '\\_%' "
            'AND name COLLATE "C" > $2 ORDER BY repo, name COLLATE "C" LIMIT $3',
            repo,
            after,
            limit,
        )
        return [_branch(r) for r in rows]

    async def create_branch_at(self, repo: str, name: str, head: CommitId | None) -> Branch:
        """Create a branch at any commit of the repo (gc-safe, see ref_guard)."""
        created = now_us()
        async with ref_move(self.pool) as conn:
            await claim_name(conn, repo, name, "tags")
            if head is not None:
                await guard_target(conn, repo, head)
            try:
                await conn.execute(
                    "INSERT INTO branches (repo, name, head, created) VALUES ($1, $2, $3, $4)",
                    repo,
                    name,
                    head,
                    created,
                )
            except asyncpg.UniqueViolationError:
                raise errors.BranchExists(f"{repo}@{name}") from None
            except asyncpg.ForeignKeyViolationError:
                raise errors.RepoNotFound(repo) from None
        return Branch(repo, name, head, created)

    async def reset_branch(
        self, repo: str, name: str, target: CommitId, expected: CommitId | Any | None = ...
    ) -> bool:
        """Move a branch head to `target`; with `expected` (a commit id or None
        for an empty branch) only if the head is still that. False when the
        expectation failed."""
        async with ref_move(self.pool) as conn:
            await guard_target(conn, repo, target)
            if expected is ...:
                status = await conn.execute(
                    "UPDATE branches SET head = $3 WHERE repo = $1 AND name = $2",
                    repo,
                    name,
                    target,
                )
            else:
                status = await conn.execute(
                    "UPDATE branches SET head = $3 WHERE repo = $1 AND name = $2 "
                    "AND head IS NOT DISTINCT FROM $4",
                    repo,
                    name,
                    target,
                    expected,
                )
            if status == "UPDATE 1":
                return True
        await self.get_branch(repo, name)  # BranchNotFound when it is gone
        return False

    async def delete_branch(
        self, repo: str, name: str, expected_head: CommitId | None, keep_us: int = 0
    ) -> bool:
        """Delete the branch if its head is still `expected_head`; drop the repo
        with its last branch. With `keep_us` > 0 what is deleted goes to the
        trash for that long (db/trash.py). Returns False when the head moved
        meanwhile."""
        now = now_us()
        async with self.pool.acquire() as conn, conn.transaction():
            # Deletes in one repo queue here, so two of them cannot each
            # leave the other the last branch.
            await lock_repo(conn, repo)
            row = await conn.fetchrow(
                "SELECT head, created FROM branches WHERE repo = $1 AND name = $2 "
                "AND head IS NOT DISTINCT FROM $3 FOR UPDATE",
                repo,
                name,
                expected_head,
            )
            if row is None:
                return False
            left = await conn.fetchval(
                "SELECT count(*) FROM branches WHERE repo = $1 AND name <> $2 "
                "AND name NOT LIKE '\\_%'",
                repo,
                name,
            )
            if left == 0:
                if keep_us > 0:
                    await trash_repo(conn, repo, now, keep_us)
                else:
                    await forget_trashed_branches(conn, repo)
                await drop_repo(conn, repo)
                self.objects.forget_repo(repo)
                return True
            if keep_us > 0 and not name.startswith("_"):
                await trash_branch(conn, repo, name, expected_head, row["created"], now, keep_us)
            await conn.execute("DELETE FROM branches WHERE repo = $1 AND name = $2", repo, name)
            await conn.execute("DELETE FROM uploads WHERE repo = $1 AND branch = $2", repo, name)
            # Its open commits go with it: they could never be finished.
            for found in await conn.fetch(
                "SELECT id FROM open_commits WHERE repo = $1 AND branch = $2", repo, name
            ):
                await drop_open_commit(conn, repo, CommitId(found["id"]))
        return True

    # -- tags ----------------------------------------------------------------

    async def create_tag(self, repo: str, name: str, commit: CommitId) -> Tag:
        created = now_us()
        async with ref_move(self.pool) as conn:
            await claim_name(conn, repo, name, "branches")
            await guard_target(conn, repo, commit)
            try:
                await conn.execute(
                    "INSERT INTO tags (repo, name, commit_id, created) VALUES ($1, $2, $3, $4)",
                    repo,
                    name,
                    commit,
                    created,
                )
            except asyncpg.UniqueViolationError:
                raise errors.TagExists(f"{repo}@{name}") from None
        return Tag(repo, name, commit, created)

    async def get_tag(self, repo: str, name: str) -> Tag | None:
        row = await self.pool.fetchrow(
            "SELECT repo, name, commit_id, created FROM tags WHERE repo = $1 AND name = $2",
            repo,
            name,
        )
        return _tag(row) if row is not None else None

    async def list_tags(self, repo: str, after: str, limit: int) -> list[Tag]:
        rows = await self.pool.fetch(
            "SELECT repo, name, commit_id, created FROM tags WHERE repo = $1 "
            'AND name COLLATE "C" > $2 ORDER BY name COLLATE "C" LIMIT $3',
            repo,
            after,
            limit,
        )
        return [_tag(r) for r in rows]

    async def delete_tag(self, repo: str, name: str) -> None:
        status = await self.pool.execute(
            "DELETE FROM tags WHERE repo = $1 AND name = $2", repo, name
        )
        if status != "DELETE 1":
            await self.repos.get_repo(repo)
            raise errors.TagNotFound(f"{repo}@{name}")


def _tag(row: asyncpg.Record) -> Tag:
    return Tag(row["repo"], row["name"], CommitId(row["commit_id"]), row["created"])


def _branch(row: asyncpg.Record) -> Branch:
    head = row["head"]
    return Branch(
        row["repo"], row["name"], CommitId(head) if head is not None else None, row["created"]
    )
