"""Purged contents and the purge audit log (migration 0009, versioning/purge.py).

A purge writes its audit row and the (repo, content) rows of the bodies it
erases in one transaction. Readers keep the whole table in memory (it holds
only what compliance erased), ask `generation` whether it changed, and
confirm a hit with `find`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from versioning import errors
from versioning.ids import CommitId, ContentId


@dataclass(frozen=True, slots=True)
class PurgedContent:
    """One body erased from one repo, and the purge that erased it."""

    repo: str
    content: ContentId
    path: str
    purged_at: int  # microseconds since the epoch
    reason: str
    purged_by: str
    log_id: int


@dataclass(frozen=True, slots=True)
class PurgeLogEntry:
    id: int
    repo: str
    path: str
    versions: int
    commits: int
    contents: int
    bytes: int
    reason: str
    purged_by: str
    at: int


class PurgedStore(Protocol):
    async def generation(self) -> tuple[int, int]: ...
    async def all_purged(self) -> list[PurgedContent]: ...
    async def find(self, repo: str, content: ContentId) -> PurgedContent | None: ...
    async def record(
        self,
        entry: PurgeLogEntry,
        contents: Sequence[ContentId],
    ) -> PurgeLogEntry: ...
    async def log(self, repo: str, after: int, limit: int) -> list[PurgeLogEntry]: ...
    async def repo_commits(self, repo: str) -> list[tuple[CommitId, bytes, bool]]: ...
    async def ref_heads(self, repo: str) -> list[CommitId]: ...


class PgPurged:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def generation(self) -> tuple[int, int]:
        """Changes whenever a purge is recorded or a repo's rows go with it:
        (newest audit row id, purged rows)."""
        row = await self.pool.fetchrow(
            "SELECT (SELECT coalesce(max(id), 0) FROM purge_log) AS newest, "
            "(SELECT count(*) FROM purged_contents) AS rows"
        )
        assert row is not None
        return int(row["newest"]), int(row["rows"])

    async def all_purged(self) -> list[PurgedContent]:
        rows = await self.pool.fetch(
            "SELECT repo, content_id, path, purged_at, reason, purged_by, log_id "
            "FROM purged_contents"
        )
        return [_purged(r) for r in rows]

    async def find(self, repo: str, content: ContentId) -> PurgedContent | None:
        """The row of `content` purged from `repo`, if there is one now."""
        row = await self.pool.fetchrow(
            "SELECT repo, content_id, path, purged_at, reason, purged_by, log_id "
            "FROM purged_contents WHERE repo = $1 AND content_id = $2",
            repo,
            content,
        )
        return _purged(row) if row is not None else None

    async def record(self, entry: PurgeLogEntry, contents: Sequence[ContentId]) -> PurgeLogEntry:
        """Write the audit row and the purged rows (a body purged before keeps
        its first purge's row); returns the audit row with its id.
        RepoNotFound when the repo was deleted meanwhile."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM repos WHERE name = $1", entry.repo) is None:
                raise errors.RepoNotFound(entry.repo)
            log_id = await conn.fetchval(
                "INSERT INTO purge_log (repo, path, versions, commits, contents, bytes, reason, "
                "purged_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                entry.repo,
                entry.path,
                entry.versions,
                entry.commits,
                entry.contents,
                entry.bytes,
                entry.reason,
                entry.purged_by,
                entry.at,
            )
            try:
                await conn.execute(
                    "INSERT INTO purged_contents "
                    "(repo, content_id, path, purged_at, reason, purged_by, log_id) "
                    "SELECT $1, unnest($2::bytea[]), $3, $4, $5, $6, $7 ON CONFLICT DO NOTHING",
                    entry.repo,
                    list(contents),
                    entry.path,
                    entry.at,
                    entry.reason,
                    entry.purged_by,
                    log_id,
                )
            except asyncpg.ForeignKeyViolationError:
                raise errors.RepoNotFound(entry.repo) from None
        return dataclasses.replace(entry, id=log_id)

    async def log(self, repo: str, after: int, limit: int) -> list[PurgeLogEntry]:
        """The repo's purges, oldest first, with id > after (kept after the
        repo itself is deleted)."""
        rows = await self.pool.fetch(
            "SELECT id, repo, path, versions, commits, contents, bytes, reason, purged_by, at "
            "FROM purge_log WHERE repo = $1 AND id > $2 ORDER BY id LIMIT $3",
            repo,
            after,
            limit,
        )
        return [
            PurgeLogEntry(
                r["id"],
                r["repo"],
                r["path"],
                r["versions"],
                r["commits"],
                r["contents"],
                r["bytes"],
                r["reason"],
                r["purged_by"],
                r["at"],
            )
            for r in rows
        ]

    async def repo_commits(self, repo: str) -> list[tuple[CommitId, bytes, bool]]:
        """Every commit stored for the repo (reachable or not yet collected):
        (id, encoded commit, whether it has a history index row)."""
        rows = await self.pool.fetch(
            "SELECT c.id, c.data, h.commit_id IS NOT NULL AS indexed FROM commits c "
            "LEFT JOIN commit_history h ON h.commit_id = c.id WHERE c.repo = $1",
            repo,
        )
        return [(CommitId(r["id"]), r["data"], r["indexed"]) for r in rows]

    async def ref_heads(self, repo: str) -> list[CommitId]:
        """The commits the repo's branches (staging ones included) and tags name."""
        rows = await self.pool.fetch(
            "SELECT head AS id FROM branches WHERE repo = $1 AND head IS NOT NULL "
            "UNION SELECT commit_id FROM tags WHERE repo = $1",
            repo,
        )
        return [CommitId(r["id"]) for r in rows]


def _purged(r: asyncpg.Record) -> PurgedContent:
    return PurgedContent(
        r["repo"],
        ContentId(r["content_id"]),
        r["path"],
        r["purged_at"],
        r["reason"],
        r["purged_by"],
        r["log_id"],
    )
