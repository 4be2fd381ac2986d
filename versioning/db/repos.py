"""Repos: their rows, listing and deletion.

A repo is created together with its empty default branch, and deleted with
everything that names it (branches, tags, open commits, uploads, commits);
what only it referenced is left for garbage collection.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from versioning import errors
from versioning.clock import now_us
from versioning.db.objects import PgObjects
from versioning.db.trash import forget_trashed_branches, trash_repo
from versioning.ids import CommitId
from versioning.model import Repo


class RepoStore(Protocol):
    async def create_repo(self, name: str, default_branch: str) -> Repo: ...
    async def get_repo(self, name: str) -> Repo: ...
    async def list_repos(self) -> list[Repo]: ...
    async def repos_page(self, after: str, limit: int) -> list[Repo]: ...
    async def repo_summary(self, name: str) -> tuple[int, CommitId | None]: ...
    async def delete_repo(self, name: str, keep_us: int = 0) -> None: ...


class PgRepos:
    def __init__(self, pool: asyncpg.Pool, objects: PgObjects) -> None:
        self.pool = pool
        self.objects = objects

    async def create_repo(self, name: str, default_branch: str) -> Repo:
        created = now_us()
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO repos (name, default_branch, created) VALUES ($1, $2, $3)",
                    name,
                    default_branch,
                    created,
                )
            except asyncpg.UniqueViolationError:
                raise errors.RepoExists(name) from None
            await conn.execute(
                "INSERT INTO branches (repo, name, head, created) VALUES ($1, $2, NULL, $3)",
                name,
                default_branch,
                created,
            )
        return Repo(name, default_branch, created)

    async def get_repo(self, name: str) -> Repo:
        row = await self.pool.fetchrow(
            "SELECT name, default_branch, created FROM repos WHERE name = $1", name
        )
        if row is None:
            raise errors.RepoNotFound(name)
        return _repo(row)

    async def list_repos(self) -> list[Repo]:
        rows = await self.pool.fetch(
            "SELECT name, default_branch, created FROM repos ORDER BY name"
        )
        return [_repo(r) for r in rows]

    async def repos_page(self, after: str, limit: int) -> list[Repo]:
        rows = await self.pool.fetch(
            "SELECT name, default_branch, created FROM repos "
            'WHERE name COLLATE "C" > $1 ORDER BY name COLLATE "C" LIMIT $2',
            after,
            limit,
        )
        return [_repo(r) for r in rows]

    async def repo_summary(self, name: str) -> tuple[int, CommitId | None]:
        """(number of branches, the newest commit any branch head names)."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM branches WHERE repo = $1 AND name NOT LIKE '\\_%') AS n, "
            "(SELECT c.id FROM branches b JOIN commits c ON c.id = b.head "
            " WHERE b.repo = $1 AND b.name NOT LIKE '\\_%' ORDER BY c.time DESC LIMIT 1) AS last",
            name,
        )
        assert row is not None
        return int(row["n"]), CommitId(row["last"]) if row["last"] is not None else None

    async def delete_repo(self, name: str, keep_us: int = 0) -> None:
        """Delete a repo with all its branches, tags, open commits, uploads and
        commits; what they alone referenced is left for gc. With `keep_us` > 0
        its branches, tags and commits go to the trash for that long instead
        (db/trash.py); uploads and open commits are dropped either way."""
        async with self.pool.acquire() as conn, conn.transaction():
            if keep_us > 0:
                await trash_repo(conn, name, now_us(), keep_us)
            else:
                await forget_trashed_branches(conn, name)
            await drop_repo(conn, name)
        self.objects.forget_repo(name)


async def drop_repo(conn: asyncpg.Connection, name: str) -> None:
    """Delete a repo's rows inside the caller's transaction (the rest cascades)."""
    await conn.execute("DELETE FROM uploads WHERE repo = $1", name)
    await conn.execute("DELETE FROM commits WHERE repo = $1", name)
    status = await conn.execute("DELETE FROM repos WHERE name = $1", name)
    if status != "DELETE 1":
        raise errors.RepoNotFound(name)


def _repo(row: asyncpg.Record) -> Repo:
    return Repo(row["name"], row["default_branch"], row["created"])
