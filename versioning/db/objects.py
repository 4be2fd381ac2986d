"""Immutable metadata: commits, tree nodes, content manifests, chunk rows,
history-index roots and the version -> commit map.

Everything here is content-addressed and insert-only, so a value read once is
cached in memory for good (caches.py); a missing one is corruption, not
absence. New values are written by the commit statement (commit_chain.py),
which fills these caches on success. The one mutable fact here, which repo a
commit belongs to (a repo's commits go with it), is always read from the
database, so several servers on one database never disagree about it
(docs/design/multi-gateway.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import asyncpg

from versioning import errors
from versioning.clock import now_us
from versioning.db.caches import DECODED_NODES, ENCODED_NODE_BYTES, LRU, ByteLRU
from versioning.ids import SHORT_ID_BYTES, ChunkId, CommitId, ContentId, NodeId, VersionId
from versioning.model import ChunkRef, Commit, Manifest
from versioning.tree import Node

T = TypeVar("T")


class ObjectStore(Protocol):
    """What the domain reads and registers of immutable metadata."""

    async def get_commit(self, commit_id: CommitId, repo: str | None = None) -> Commit: ...
    async def commits_with_prefix(self, repo: str, prefix: str, limit: int) -> list[CommitId]: ...
    async def get_node(self, node_id: NodeId) -> Node: ...
    async def prefetch_nodes(self, node_ids: Sequence[NodeId]) -> None: ...
    async def get_history(self, commit_id: CommitId) -> tuple[NodeId | None, int]: ...
    async def get_manifest(self, content_id: ContentId) -> Manifest: ...
    async def put_content(self, manifest: Manifest) -> ContentId: ...
    async def touch_chunks(self, chunks: Iterable[ChunkRef]) -> list[ChunkId]: ...
    async def commit_of_version(self, version: VersionId) -> CommitId | None: ...


class PgObjects:
    """ObjectStore on PostgreSQL, with the caches every reader shares."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node_cache_size: int = DECODED_NODES,
        node_cache_bytes: int = ENCODED_NODE_BYTES,
    ) -> None:
        self.pool = pool
        self.nodes = LRU(node_cache_size)
        self.node_bytes = ByteLRU(node_cache_bytes)
        self.commits = LRU(20_000)
        self.manifests = LRU(2_000)
        self.histories = LRU(20_000)

    def remember(
        self,
        nodes: Iterable[tuple[NodeId, Node]],
        commits: Iterable[Commit],
        histories: Iterable[tuple[CommitId, NodeId | None, int]],
    ) -> None:
        """Cache what a commit statement just wrote."""
        for nid, node in nodes:
            self.nodes.put(nid, node)
            self.node_bytes.put(nid, node.encode())
        for c in commits:
            self.commits.put(c.id, c)
        for commit_id, root, generation in histories:
            self.histories.put(commit_id, (root, generation))

    def forget_repo(self, name: str) -> None:
        """Drop a deleted repo's cached commits. Only to free memory: which
        repo a commit belongs to is never answered from the cache (see
        get_commit), since another process may delete the repo."""
        self.commits.drop_where(lambda c: c.origin.get("repo") == name)

    # -- commits -------------------------------------------------------------

    async def get_commit(self, commit_id: CommitId, repo: str | None = None) -> Commit:
        """The commit `commit_id`. With `repo`, CommitNotFound unless it is a
        commit of that repo now: its content never changes and is cached, but
        its membership does (the repo may be deleted, re-created or restored
        under another name, by any server on the database), so that is asked
        of the database every time. Callers that took the id from a ref they
        just read pass no repo: the ref proves it."""
        cached: Commit | None = self.commits.get(commit_id)
        if cached is not None:
            if repo is None:
                return cached
            owner = await self.pool.fetchval("SELECT repo FROM commits WHERE id = $1", commit_id)
            if owner != repo:
                raise errors.CommitNotFound(commit_id.hex())
            return cached
        row = await self.pool.fetchrow("SELECT repo, data FROM commits WHERE id = $1", commit_id)
        if row is None or (repo is not None and row["repo"] != repo):
            raise errors.CommitNotFound(commit_id.hex())
        commit = Commit.decode(row["data"])
        self.commits.put(commit_id, commit)
        return commit

    async def commits_with_prefix(self, repo: str, prefix: str, limit: int) -> list[CommitId]:
        """Commits of `repo` whose hex id starts with `prefix` (lower-case hex),
        at most `limit`: an index range scan on the id."""
        width = 2 * SHORT_ID_BYTES
        if len(prefix) > width:
            return []
        low = bytes.fromhex(prefix.ljust(width, "0"))
        high = bytes.fromhex(prefix.ljust(width, "f"))
        rows = await self.pool.fetch(
            "SELECT id FROM commits WHERE id BETWEEN $1 AND $2 AND repo = $3 ORDER BY id LIMIT $4",
            low,
            high,
            repo,
            limit,
        )
        return [CommitId(r["id"]) for r in rows]

    async def get_history(self, commit_id: CommitId) -> tuple[NodeId | None, int]:
        """A commit's history index root and generation; (None, 0) for a
        commit made before history was recorded."""
        cached: tuple[NodeId | None, int] | None = self.histories.get(commit_id)
        if cached is not None:
            return cached
        row = await self.pool.fetchrow(
            "SELECT history_root, generation FROM commit_history WHERE commit_id = $1", commit_id
        )
        if row is None:
            return None, 0
        root = NodeId(row["history_root"]) if row["history_root"] is not None else None
        value = (root, int(row["generation"]))
        self.histories.put(commit_id, value)
        return value

    async def commit_of_version(self, version: VersionId) -> CommitId | None:
        value = await self.pool.fetchval(
            "SELECT commit_id FROM object_versions WHERE version = $1", version
        )
        return CommitId(value) if value is not None else None

    # -- tree nodes ------------------------------------------------------------

    async def get_node(self, node_id: NodeId) -> Node:
        node: Node | None = self.nodes.get(node_id)
        if node is not None:
            return node
        data = self.node_bytes.get(node_id)
        if data is None:
            data = await self.pool.fetchval("SELECT data FROM tree_nodes WHERE id = $1", node_id)
            if data is None:
                raise errors.CorruptData(f"tree node {node_id.hex()} is missing")
            self.node_bytes.put(node_id, data)
        node = Node.decode(data)
        self.nodes.put(node_id, node)
        return node

    async def prefetch_nodes(self, node_ids: Sequence[NodeId]) -> None:
        """Load the uncached ones of `node_ids` into the node cache in one
        round trip (tree walks call this ahead of reading them one by one).

        Nothing happens when the first is cached: a walk calls this at every
        step with the run ahead of it, and the run was then fetched already;
        re-fetching a window that slid by one node would cost a query per step.
        """
        if not node_ids or node_ids[0] in self.nodes or node_ids[0] in self.node_bytes:
            return
        missing = [n for n in node_ids if n not in self.nodes and n not in self.node_bytes]
        if len(missing) < 2:
            return  # get_node costs the same round trip for one
        rows = await self.pool.fetch(
            "SELECT id, data FROM tree_nodes WHERE id = ANY($1::bytea[])", missing
        )
        for row in rows:
            self.node_bytes.put(NodeId(row["id"]), row["data"])

    # -- contents and chunks -----------------------------------------------------

    async def get_manifest(self, content_id: ContentId) -> Manifest:
        return await self._immutable(
            self.manifests,
            content_id,
            "SELECT manifest FROM contents WHERE id = $1",
            "content",
            Manifest.decode,
        )

    async def put_content(self, manifest: Manifest) -> ContentId:
        cid = manifest.id
        await self.pool.execute(
            "INSERT INTO contents (id, size, manifest, touched, has_chunks) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET touched = $4",
            cid,
            manifest.size,
            manifest.encode(),
            now_us(),
            manifest.has_chunks,
        )
        return cid

    async def touch_chunks(self, chunks: Iterable[ChunkRef]) -> list[ChunkId]:
        """Record that a writer is about to rely on these chunks, BEFORE it
        looks for them in the store. Returns the ids that had no row (new to
        the store, or deleted by gc): only for those can the store lack the
        chunk. Taken in id order so two writers never deadlock on row locks."""
        unique = sorted({c.id: c.size for c in chunks}.items())
        if not unique:
            return []
        rows = await self.pool.fetch(
            _TOUCH_CHUNKS, [u[0] for u in unique], [u[1] for u in unique], now_us()
        )
        return [ChunkId(r["id"]) for r in rows if r["inserted"]]

    async def _immutable(
        self, cache: LRU, key: bytes, query: str, what: str, decode: Callable[[bytes], T]
    ) -> T:
        """Fetch a content-addressed value: cached forever once read, since it
        can never change. A missing one is corruption, not absence."""
        cached: T | None = cache.get(key)
        if cached is not None:
            return cached
        data = await self.pool.fetchval(query, key)
        if data is None:
            raise errors.CorruptData(f"{what} {key.hex()} is missing")
        value = decode(data)
        cache.put(key, value)
        return value


_TOUCH_CHUNKS = """
INSERT INTO chunks (id, size, touched)
SELECT t.id, t.size, $3 FROM unnest($1::bytea[], $2::integer[]) AS t(id, size)
ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
RETURNING id, (xmax = 0) AS inserted
"""
