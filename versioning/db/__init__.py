"""The persistence layer: loxo's metadata in PostgreSQL, one module per concept.

- repos.py: repos;
- refs.py: branches and tags (compare-and-set), ref_guard.py: gc-safe moves;
- objects.py: immutable, content-addressed metadata and its caches;
- uploads.py: multipart uploads and parts;
- open_commits.py: open commits and their staging branches;
- withdrawn.py: versions withdrawn from a branch's version listing;
- trash.py: deleted repos and branches, restorable until they expire;
- purged.py: bodies purged from a repo, and the purge audit log;
- pipelines.py: pipelines and the versions of their specs;
- jobs.py: jobs, their datums, each pipeline's live datums, datum logs;
- job_stats.py: counts over jobs, datums and workers (metrics);
- commit_chain.py: the one statement that commits and moves a head;
- leader.py: which of several servers on the database leads the background
  duties that run once at a time.

Each concept is a Protocol (what the domain needs) with a PostgreSQL
implementation. Only the domain services in versioning/ use this package;
the protocol layers (s3api, the control API) never do.
"""

from __future__ import annotations

import asyncpg

from versioning.catalog import Catalog
from versioning.db.caches import DECODED_NODES, ENCODED_NODE_BYTES
from versioning.db.commit_chain import ChainWrite, PgCommitWriter
from versioning.db.job_stats import PgJobStats
from versioning.db.jobs import PgJobs
from versioning.db.leader import LEADER_LOCK, Leadership
from versioning.db.objects import PgObjects
from versioning.db.open_commits import PgOpenCommits
from versioning.db.pipelines import PgPipelines
from versioning.db.purged import PgPurged
from versioning.db.refs import PgRefs
from versioning.db.repos import PgRepos
from versioning.db.trash import PgTrash
from versioning.db.uploads import PgUploads
from versioning.db.withdrawn import PgWithdrawn
from versioning.migrations import apply_all

__all__ = ["ChainWrite", "Database"]


class Database:
    """One connection pool and the stores that share it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node_cache_size: int = DECODED_NODES,
        node_cache_bytes: int = ENCODED_NODE_BYTES,
        objects: PgObjects | None = None,
        writer: PgCommitWriter | None = None,
        dsn: str | None = None,
    ) -> None:
        self.pool = pool
        # Where the pool connects; leadership holds a connection of its own
        # (None: this handle cannot take part in an election, see leader.py).
        self.dsn = dsn
        self._leaderships: dict[int, Leadership] = {}
        self.objects = objects or PgObjects(pool, node_cache_size, node_cache_bytes)
        self.repos = PgRepos(pool, self.objects)
        self.refs = PgRefs(pool, self.repos, self.objects)
        self.trash = PgTrash(pool, self.objects)
        self.uploads = PgUploads(pool)
        self.open_commits = PgOpenCommits(pool)
        self.withdrawn = PgWithdrawn(pool)
        self.purged = PgPurged(pool)
        self.pipelines = PgPipelines(pool)
        self.jobs = PgJobs(pool)
        self.job_stats = PgJobStats(pool)
        self.writer = writer or PgCommitWriter(pool, self.objects)

    @staticmethod
    async def connect(dsn: str, min_size: int = 2, max_size: int = 20) -> Database:
        """Migrate the database to the code's schema, then open a pool."""
        conn = await asyncpg.connect(dsn)
        try:
            await apply_all(conn)
        finally:
            await conn.close()
        # loxo keeps no session state (no LISTEN, SET or session advisory
        # locks), so the pool's default reset query on every release is a
        # wasted round trip.
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_no_reset)
        assert pool is not None
        return Database(pool, dsn=dsn)

    def leadership(self, key: int = LEADER_LOCK) -> Leadership:
        """This server's claim to lead the background duties of `key`, among
        every server on the database (one per key; closed with the pool)."""
        found = self._leaderships.get(key)
        if found is None:
            found = self._leaderships[key] = Leadership(self.dsn, key)
        return found

    def catalog(self) -> Catalog:
        """The whole-database queries of gc and fsck, on this pool."""
        return Catalog(self.pool)

    async def ping(self) -> None:
        """Raise unless the database answers (health checks)."""
        await self.pool.fetchval("SELECT 1")

    async def close(self) -> None:
        for leadership in self._leaderships.values():
            await leadership.close()
        await self.pool.close()


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None
