"""Versions withdrawn from a branch's version listing (migration 0007).

Rows are written by the commit statement when a withdrawal comes with a
commit (deleting the current version restores the previous one), or here
directly for a version that is not current (no commit needed).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import asyncpg

from versioning.clock import now_us
from versioning.ids import CommitId


class WithdrawnStore(Protocol):
    def serialized(
        self, repo: str, branch: str
    ) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def withdraw(
        self, repo: str, branch: str, records: Sequence[tuple[str, CommitId]]
    ) -> None: ...
    async def is_withdrawn(self, repo: str, branch: str, key: str, commit: CommitId) -> bool: ...
    async def withdrawn_from(
        self, repo: str, branch: str, start: str, limit: int
    ) -> list[tuple[str, CommitId]]: ...
    async def withdrawn_of(
        self, repo: str, branch: str, key: str
    ) -> list[tuple[str, CommitId]]: ...


class PgWithdrawn:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def serialized(self, repo: str, branch: str) -> AsyncIterator[None]:
        """Version deletes on one branch, one at a time across every server:
        each judges which version is current, and two judging at once (say,
        deleting a key's two versions in parallel, as `rclone purge` does)
        could each restore the version the other withdraws. A transaction
        holds an advisory lock for the duration; PostgreSQL drops it with
        the transaction, whatever happens to this process."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"withdraw/{repo}/{branch}",
            )
            yield

    async def withdraw(
        self, repo: str, branch: str, records: Sequence[tuple[str, CommitId]]
    ) -> None:
        """Withdraw (key, commit) records; BranchNotFound-free: a branch
        deleted meanwhile takes its rows with it anyway."""
        if not records:
            return
        try:
            await self.pool.execute(
                "INSERT INTO withdrawn_versions (repo, branch, key, commit_id, withdrawn) "
                "SELECT $1, $2, t.key, t.commit_id, $5 "
                "FROM unnest($3::text[], $4::bytea[]) AS t(key, commit_id) "
                "ON CONFLICT DO NOTHING",
                repo,
                branch,
                [r[0] for r in records],
                [r[1] for r in records],
                now_us(),
            )
        except asyncpg.ForeignKeyViolationError:
            return  # the branch is gone, and with it its listing

    async def is_withdrawn(self, repo: str, branch: str, key: str, commit: CommitId) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM withdrawn_versions "
            "WHERE repo = $1 AND branch = $2 AND key = $3 AND commit_id = $4",
            repo,
            branch,
            key,
            commit,
        )
        return found is not None

    async def withdrawn_from(
        self, repo: str, branch: str, start: str, limit: int
    ) -> list[tuple[str, CommitId]]:
        """Withdrawn records with key >= start, in key (byte) order."""
        rows = await self.pool.fetch(
            "SELECT key, commit_id FROM withdrawn_versions "
            'WHERE repo = $1 AND branch = $2 AND key COLLATE "C" >= $3 '
            'ORDER BY key COLLATE "C" LIMIT $4',
            repo,
            branch,
            start,
            limit,
        )
        return [(r["key"], CommitId(r["commit_id"])) for r in rows]

    async def withdrawn_of(self, repo: str, branch: str, key: str) -> list[tuple[str, CommitId]]:
        """Every withdrawn record of one key."""
        rows = await self.pool.fetch(
            "SELECT key, commit_id FROM withdrawn_versions "
            "WHERE repo = $1 AND branch = $2 AND key = $3",
            repo,
            branch,
            key,
        )
        return [(r["key"], CommitId(r["commit_id"])) for r in rows]
