"""Open commits' rows and their staging branches.

An open commit is a row plus a hidden staging branch ("_open-<hex>") that S3
writes land on. Finishing freezes it first: the staging branch is deleted and
its head kept in the row, so a racing write either made it in or fails.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg

from versioning import errors
from versioning.db.ref_guard import guard_target, ref_move
from versioning.ids import CommitId
from versioning.model import OpenCommit


class OpenCommitStore(Protocol):
    async def create_open_commit(self, record: OpenCommit) -> None: ...
    async def get_open_commit(self, repo: str, commit_id: CommitId) -> OpenCommit | None: ...
    async def list_open_commits(self, repo: str) -> list[OpenCommit]: ...
    async def freeze_open_commit(self, repo: str, commit_id: CommitId) -> CommitId | None: ...
    async def delete_open_commit(self, repo: str, commit_id: CommitId) -> bool: ...
    async def expire_open_commits(self, now: int) -> list[OpenCommit]: ...


class PgOpenCommits:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_open_commit(self, record: OpenCommit) -> None:
        """Record an open commit and create its staging branch at `base`."""
        try:
            await self._create(record)
        except asyncpg.ForeignKeyViolationError:
            # The repo went away since the caller read its branch.
            raise errors.RepoNotFound(record.repo) from None

    async def _create(self, record: OpenCommit) -> None:
        async with ref_move(self.pool) as conn:
            if record.base is not None:
                await guard_target(conn, record.repo, record.base)
            await conn.execute(
                "INSERT INTO open_commits (id, repo, branch, base, created, idle_us, author) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                record.id,
                record.repo,
                record.branch,
                record.base,
                record.created,
                record.idle_us,
                record.author,
            )
            await conn.execute(
                "INSERT INTO branches (repo, name, head, created) VALUES ($1, $2, $3, $4)",
                record.repo,
                record.staging,
                record.base,
                record.created,
            )

    async def get_open_commit(self, repo: str, commit_id: CommitId) -> OpenCommit | None:
        row = await self.pool.fetchrow(
            f"SELECT {_OPEN_COLUMNS} FROM open_commits WHERE id = $1 AND repo = $2",
            commit_id,
            repo,
        )
        return _open_commit(row) if row is not None else None

    async def list_open_commits(self, repo: str) -> list[OpenCommit]:
        rows = await self.pool.fetch(
            f"SELECT {_OPEN_COLUMNS} FROM open_commits WHERE repo = $1 ORDER BY created", repo
        )
        return [_open_commit(r) for r in rows]

    async def freeze_open_commit(self, repo: str, commit_id: CommitId) -> CommitId | None:
        """Start finishing: delete the staging branch (a write racing this one
        either landed before, and is in the returned head, or fails) and keep
        its head in the row. Idempotent: a second call returns the same head."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_OPEN_COLUMNS} FROM open_commits WHERE id = $1 AND repo = $2 FOR UPDATE",
                commit_id,
                repo,
            )
            if row is None:
                raise errors.OpenCommitNotFound(f"{repo}@{commit_id.hex()}")
            record = _open_commit(row)
            if record.finishing:
                return record.frozen
            head = await conn.fetchval(
                "DELETE FROM branches WHERE repo = $1 AND name = $2 RETURNING head",
                repo,
                record.staging,
            )
            await conn.execute(
                "DELETE FROM uploads WHERE repo = $1 AND branch = $2", repo, record.staging
            )
            await conn.execute(
                "UPDATE open_commits SET finishing = true, frozen = $2 WHERE id = $1",
                commit_id,
                head,
            )
            return CommitId(head) if head is not None else None

    async def delete_open_commit(self, repo: str, commit_id: CommitId) -> bool:
        """Abort: drop the open commit, its staging branch and its uploads."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await drop_open_commit(conn, repo, commit_id)

    async def expire_open_commits(self, now: int) -> list[OpenCommit]:
        """Abort the open commits (not being finished) nothing was written to
        for longer than their idle limit (see _OPEN_ACTIVITY). Each is judged
        again with its staging branch locked, so a write committing meanwhile
        either counts as activity or fails; it is never acknowledged and
        then dropped."""
        idle = f"NOT o.finishing AND {_OPEN_ACTIVITY} < $1 - o.idle_us"
        candidates = await self.pool.fetch(f"SELECT o.id FROM open_commits o WHERE {idle}", now)
        expired: list[OpenCommit] = []
        for candidate in candidates:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"SELECT {_OPEN_COLUMNS} FROM open_commits WHERE id = $1 FOR UPDATE",
                    candidate["id"],
                )
                if row is None:
                    continue
                record = _open_commit(row)
                await conn.execute(
                    "SELECT 1 FROM branches WHERE repo = $1 AND name = $2 FOR UPDATE",
                    record.repo,
                    record.staging,
                )
                still = await conn.fetchval(
                    f"SELECT count(*) FROM open_commits o WHERE o.id = $2 AND {idle}",
                    now,
                    record.id,
                )
                if still:
                    await drop_open_commit(conn, record.repo, record.id)
                    expired.append(record)
        return expired


async def drop_open_commit(conn: asyncpg.Connection, repo: str, commit_id: CommitId) -> bool:
    """Delete an open commit with its staging branch and uploads (inside the
    caller's transaction); whether it existed."""
    staging = OpenCommit.staging_name(commit_id)
    status = await conn.execute(
        "DELETE FROM open_commits WHERE id = $1 AND repo = $2", commit_id, repo
    )
    await conn.execute("DELETE FROM branches WHERE repo = $1 AND name = $2", repo, staging)
    await conn.execute("DELETE FROM uploads WHERE repo = $1 AND branch = $2", repo, staging)
    return bool(status == "DELETE 1")


_OPEN_COLUMNS = "id, repo, branch, base, created, idle_us, author, frozen, finishing"

# When an open commit last saw a write: its start, its staging head's commit,
# or a multipart upload (or part) into it. `o` is the open_commits row.
_OPEN_ACTIVITY = """greatest(
    o.created,
    coalesce((SELECT c.time FROM branches b JOIN commits c ON c.id = b.head
              WHERE b.repo = o.repo AND b.name = '_open-' || encode(o.id, 'hex')), 0),
    coalesce((SELECT max(greatest(u.created, coalesce(
                  (SELECT max(p.created) FROM upload_parts p WHERE p.upload_id = u.id), 0)))
              FROM uploads u
              WHERE u.repo = o.repo AND u.branch = '_open-' || encode(o.id, 'hex')), 0)
)"""


def _open_commit(row: asyncpg.Record) -> OpenCommit:
    return OpenCommit(
        id=CommitId(row["id"]),
        repo=row["repo"],
        branch=row["branch"],
        base=CommitId(row["base"]) if row["base"] is not None else None,
        created=row["created"],
        idle_us=row["idle_us"],
        author=row["author"],
        frozen=CommitId(row["frozen"]) if row["frozen"] is not None else None,
        finishing=row["finishing"],
    )
