"""Whole-catalog scans and deletes: the SQL of garbage collection and fsck.

The stores in versioning/db serve requests, one object or one commit at a time; this module
reads and deletes across every repo in bulk, in batches, for the maintenance
passes. Deletes re-check `touched` against the pass's cutoff in the same
statement, so a row a writer re-used meanwhile (see migration 0004) survives.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from versioning.ids import ChunkId, CommitId, ContentId, NodeId

BATCH = 5_000

T = TypeVar("T")


def batches(items: Sequence[T]) -> list[Sequence[T]]:
    """`items` in runs of BATCH, the size every bulk statement here takes."""
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


# Session advisory lock held by a running gc, so two never sweep at once (a
# sweep's deletes would look like corruption to the other's mark).
GC_LOCK = 0x6C6F786F_6763  # "loxo" "gc"
# Held exclusively by a running gc from before its mark to the end of its
# sweep; a ref move (branch created at, or reset to, an arbitrary commit; a
# tag) takes it shared for its transaction. A commit no root reached at the
# mark may be swept, so pointing a ref at it while gc runs must not happen
# (db/ref_guard.guard_target), unless a ref points at it already.
MOVE_LOCK = 0x6C6F786F_6D76  # "loxo" "mv"


class GcRunning(RuntimeError):
    pass


class Catalog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the gc lock for the block; GcRunning if another process has it."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK):
                raise GcRunning("another garbage collection is running; try again later")
            try:
                # Waits for ref moves in flight (each one short) to commit,
                # so the mark sees them.
                await conn.execute("SELECT pg_advisory_lock($1)", MOVE_LOCK)
                try:
                    yield
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", MOVE_LOCK)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", GC_LOCK)

    async def heads(self, trash_after: int | None = None) -> list[tuple[str, str, CommitId]]:
        """Every commit a ref names: branch heads (open commits' staging
        branches included), tags, open commits being finished, and the
        the outputs of pipeline datums (reused by later jobs), and the
        branches and tags of trashed repos and branches (those expiring after
        `trash_after`; None: all). One statement, so a ref moving into or out
        of the trash meanwhile is seen in exactly one place."""
        rows = await self.pool.fetch(
            "SELECT repo, name, head FROM branches WHERE head IS NOT NULL "
            "UNION ALL SELECT repo, name, commit_id FROM tags "
            "UNION ALL SELECT repo, encode(id, 'hex'), frozen FROM open_commits "
            "WHERE frozen IS NOT NULL "
            # -- datum outputs (migration 0011): kept while a datum row names them --
            "UNION ALL SELECT pipeline, 'datum:' || job || ':' || id, output_commit FROM datums "
            "WHERE output_commit IS NOT NULL "
            # -- the trash (migration 0008) --
            "UNION ALL SELECT t.repo, 'trash:' || t.id || ':' || r.name, r.head "
            "FROM trash t JOIN trash_refs r ON r.trash_id = t.id "
            "WHERE r.head IS NOT NULL AND ($1::bigint IS NULL OR t.expires_at > $1) "
            "ORDER BY 1, 2",
            trash_after,
        )
        return [(r["repo"], r["name"], CommitId(r["head"])) for r in rows]

    # -- the trash (migration 0008, db/trash.py) --------------------------------

    async def purge_trash(self, now: int) -> int:
        """Delete the trash entries expired at `now`, with the commits of
        expired repos (and the entries of branches deleted before their repo);
        returns how many entries went. What they alone reached is garbage."""
        async with self.pool.acquire() as conn, conn.transaction():
            stashes = [
                r["stash"]
                for r in await conn.fetch(
                    "DELETE FROM trash WHERE kind = 'repo' AND expires_at <= $1 RETURNING stash",
                    now,
                )
            ]
            status = await conn.execute(
                "DELETE FROM trash WHERE kind = 'branch' "
                "AND (expires_at <= $1 OR repo = ANY($2::text[]))",
                now,
                stashes,
            )
            await conn.execute("DELETE FROM commits WHERE repo = ANY($1::text[])", stashes)
        return len(stashes) + _count(status)

    async def commits_since(self, cutoff: int) -> list[CommitId]:
        rows = await self.pool.fetch("SELECT id FROM commits WHERE time >= $1", cutoff)
        return [CommitId(r["id"]) for r in rows]

    async def commits_before(self, cutoff: int) -> list[CommitId]:
        rows = await self.pool.fetch("SELECT id FROM commits WHERE time < $1", cutoff)
        return [CommitId(r["id"]) for r in rows]

    async def commits(self, ids: Sequence[CommitId]) -> list[tuple[CommitId, str, bytes]]:
        rows = await self.pool.fetch(
            "SELECT id, repo, data FROM commits WHERE id = ANY($1::bytea[])", list(ids)
        )
        return [(CommitId(r["id"]), r["repo"], r["data"]) for r in rows]

    async def history_roots(self, ids: Sequence[CommitId]) -> dict[CommitId, NodeId]:
        rows = await self.pool.fetch(
            "SELECT commit_id, history_root FROM commit_history "
            "WHERE commit_id = ANY($1::bytea[]) AND history_root IS NOT NULL",
            list(ids),
        )
        return {CommitId(r["commit_id"]): NodeId(r["history_root"]) for r in rows}

    async def nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        rows = await self.pool.fetch(
            "SELECT id, data FROM tree_nodes WHERE id = ANY($1::bytea[])", list(ids)
        )
        return {NodeId(r["id"]): r["data"] for r in rows}

    async def manifests(self, ids: Sequence[ContentId]) -> dict[ContentId, bytes]:
        rows = await self.pool.fetch(
            "SELECT id, manifest FROM contents WHERE id = ANY($1::bytea[])", list(ids)
        )
        return {ContentId(r["id"]): r["manifest"] for r in rows}

    async def purged_contents(self) -> dict[str, set[ContentId]]:
        """The bodies purged from each repo (purge.py): gc and fsck do not
        reach them from that repo."""
        rows = await self.pool.fetch("SELECT repo, content_id FROM purged_contents")
        out: dict[str, set[ContentId]] = {}
        for r in rows:
            out.setdefault(r["repo"], set()).add(ContentId(r["content_id"]))
        return out

    async def open_uploads(self, ids: Sequence[str]) -> set[str]:
        """Which of these upload ids are still open (not completed, aborted
        or expired)."""
        rows = await self.pool.fetch("SELECT id FROM uploads WHERE id = ANY($1::text[])", list(ids))
        return {r["id"] for r in rows}

    async def upload_contents(self) -> set[ContentId]:
        rows = await self.pool.fetch("SELECT DISTINCT content FROM upload_parts")
        return {ContentId(r["content"]) for r in rows}

    async def _scan(self, query: str, *args: object) -> AsyncIterator[asyncpg.Record]:
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(query, *args, prefetch=BATCH):
                yield row

    async def stale_node_ids(self, cutoff: int) -> AsyncIterator[NodeId]:
        async for r in self._scan("SELECT id FROM tree_nodes WHERE touched < $1", cutoff):
            yield NodeId(r["id"])

    async def stale_content_ids(self, cutoff: int) -> AsyncIterator[ContentId]:
        async for r in self._scan("SELECT id FROM contents WHERE touched < $1", cutoff):
            yield ContentId(r["id"])

    async def chunked_manifests(self) -> AsyncIterator[tuple[ContentId, bytes]]:
        async for r in self._scan("SELECT id, manifest FROM contents WHERE has_chunks"):
            yield ContentId(r["id"]), r["manifest"]

    async def stale_chunks(self, cutoff: int) -> AsyncIterator[tuple[ChunkId, int]]:
        async for r in self._scan("SELECT id, size FROM chunks WHERE touched < $1", cutoff):
            yield ChunkId(r["id"]), r["size"]

    async def chunk_rows(self, ids: Sequence[ChunkId]) -> set[ChunkId]:
        rows = await self.pool.fetch("SELECT id FROM chunks WHERE id = ANY($1::bytea[])", list(ids))
        return {ChunkId(r["id"]) for r in rows}

    async def adopt_chunks(self, ids: Sequence[ChunkId]) -> None:
        """Give stored chunks that have no row (written before rows existed)
        a row touched at time 0, so the chunk pass can judge them."""
        await self.pool.execute(
            "INSERT INTO chunks (id, size, touched) SELECT unnest($1::bytea[]), 0, 0 "
            "ON CONFLICT DO NOTHING",
            list(ids),
        )

    async def delete_commits(self, ids: Sequence[CommitId], cutoff: int) -> int:
        """Delete unreachable commits with their history rows and version
        mappings (commits from a deleted repo included)."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM commits WHERE id = ANY($1::bytea[]) AND time < $2", list(ids), cutoff
            )
            await conn.execute(
                "DELETE FROM commit_history h "
                "WHERE NOT EXISTS (SELECT 1 FROM commits c WHERE c.id = h.commit_id)"
            )
            await conn.execute(
                "DELETE FROM object_versions v "
                "WHERE NOT EXISTS (SELECT 1 FROM commits c WHERE c.id = v.commit_id)"
            )
        return _count(status)

    async def delete_nodes(self, ids: Sequence[NodeId], cutoff: int) -> int:
        status = await self.pool.execute(
            "DELETE FROM tree_nodes WHERE id = ANY($1::bytea[]) AND touched < $2",
            list(ids),
            cutoff,
        )
        return _count(status)

    async def delete_contents(self, ids: Sequence[ContentId], cutoff: int) -> int:
        status = await self.pool.execute(
            "DELETE FROM contents WHERE id = ANY($1::bytea[]) AND touched < $2",
            list(ids),
            cutoff,
        )
        return _count(status)

    async def delete_chunks(
        self,
        ids: Sequence[ChunkId],
        cutoff: int,
        remove: Callable[[list[ChunkId]], Awaitable[None]],
    ) -> tuple[int, int]:
        """Delete stale chunk rows and, inside the same transaction, the stored
        chunks (`remove`). Returns (chunks, plain bytes) deleted.

        Holding the row locks until the store has deleted the chunks is what
        makes this safe against a writer: its touch (an upsert on the same row)
        waits for this transaction, then finds no row, so it knows to store
        the chunk again.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM chunks WHERE id = ANY($1::bytea[]) AND touched < $2 "
                "RETURNING id, size",
                sorted(ids),
                cutoff,
            )
            gone = [ChunkId(r["id"]) for r in rows]
            if gone:
                await remove(gone)
        return len(gone), sum(r["size"] for r in rows)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
