"""Metadata persistence: the one class that talks SQL (asyncpg, PostgreSQL).

Everything content-addressed (commits, tree nodes, manifests) is insert-only
and cached in memory once read, because it can never change. Branch heads are
the only mutable pointers; they move by compare-and-set.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from versioning import errors
from versioning.catalog import MOVE_LOCK
from versioning.ids import SHORT_ID_BYTES, ChunkId, CommitId, ContentId, NodeId, VersionId
from versioning.migrations import apply_all
from versioning.model import Branch, ChunkRef, Commit, Manifest, Repo, Tag, pack, unpack
from versioning.tree import Node

T = TypeVar("T")


def now_us() -> int:
    return time.time_ns() // 1000


class _LRU:
    """A bounded map for immutable, content-addressed values."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[bytes, Any] = OrderedDict()

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def get(self, key: bytes) -> Any | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def drop_where(self, predicate: Callable[[Any], bool]) -> None:
        for key in [k for k, v in self._data.items() if predicate(v)]:
            del self._data[key]


class _ByteLRU:
    """A map of byte strings bounded by their total size, least recently used out."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._data: OrderedDict[bytes, bytes] = OrderedDict()

    def get(self, key: bytes) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def put(self, key: bytes, value: bytes) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.total -= len(old)
        self._data[key] = value
        self.total += len(value)
        while self.total > self.max_bytes and self._data:
            _, dropped = self._data.popitem(last=False)
            self.total -= len(dropped)


# Tree nodes are cached twice: a few thousand decoded (a decoded leaf of 32
# entries is ~20 KB of Python objects, ~7x its encoding) and many more as
# their encoded bytes (decoding one costs ~50 us, a round trip ~300 us). A
# count-bounded cache of 50,000 decoded nodes grew the server past 600 MB
# after 100,000 small PUTs (benchmarks P7); with these the server stays near
# 150 MB after 20,000 PUTs (64 MiB of encoded nodes: ~200 MB).
DECODED_NODES = 2_000
ENCODED_NODE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repo: str
    branch: str
    key: str
    created: int
    attrs: bytes
    # CreateMultipartUpload's x-amz-checksum-algorithm (lower case) and
    # x-amz-checksum-type (COMPOSITE or FULL_OBJECT), None when not given.
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class OpenCommitRecord:
    id: CommitId  # random, not content-addressed: the finished commit gets its own id
    repo: str
    branch: str
    base: CommitId | None  # the branch head when it was started
    created: int
    idle_us: int
    author: str
    frozen: CommitId | None = None
    finishing: bool = False

    @staticmethod
    def staging_name(commit_id: CommitId) -> str:
        return "_open-" + commit_id.hex()

    @property
    def staging(self) -> str:
        return self.staging_name(self.id)


@dataclass(frozen=True, slots=True)
class PartRecord:
    part_number: int
    content: ContentId
    size: int
    md5: bytes
    created: int
    # algorithm -> base64 checksum of the part, as verified or computed
    checksums: dict[str, str] = field(default_factory=dict)


class Metadata:
    def __init__(
        self,
        pool: asyncpg.Pool,
        node_cache_size: int = DECODED_NODES,
        node_cache_bytes: int = ENCODED_NODE_BYTES,
    ) -> None:
        self.pool = pool
        self._nodes = _LRU(node_cache_size)
        self._node_bytes = _ByteLRU(node_cache_bytes)
        self._commits = _LRU(20_000)
        self._manifests = _LRU(2_000)
        self._histories = _LRU(20_000)

    @staticmethod
    async def connect(dsn: str, min_size: int = 2, max_size: int = 20) -> Metadata:
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
        return Metadata(pool)

    async def close(self) -> None:
        await self.pool.close()

    # -- repos -------------------------------------------------------------

    async def create_repo(self, name: str, default_branch: str = "main") -> Repo:
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
        return Repo(row["name"], row["default_branch"], row["created"])

    async def list_repos(self) -> list[Repo]:
        rows = await self.pool.fetch(
            "SELECT name, default_branch, created FROM repos ORDER BY name"
        )
        return [Repo(r["name"], r["default_branch"], r["created"]) for r in rows]

    async def repos_page(self, after: str, limit: int) -> list[Repo]:
        rows = await self.pool.fetch(
            "SELECT name, default_branch, created FROM repos "
            'WHERE name COLLATE "C" > $1 ORDER BY name COLLATE "C" LIMIT $2',
            after,
            limit,
        )
        return [Repo(r["name"], r["default_branch"], r["created"]) for r in rows]

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

    async def delete_repo(self, name: str) -> None:
        """Delete a repo with all its branches, tags, open commits, uploads and
        commits; what they alone referenced is left for gc."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM uploads WHERE repo = $1", name)
            await conn.execute("DELETE FROM commits WHERE repo = $1", name)
            status = await conn.execute("DELETE FROM repos WHERE name = $1", name)
            if status != "DELETE 1":
                raise errors.RepoNotFound(name)
        self._forget_repo(name)

    def _forget_repo(self, name: str) -> None:
        """Drop a deleted repo's cached commits: a new repo of the same name
        must not see them (commits are cached with the repo they belong to)."""
        self._commits.drop_where(lambda c: c.origin.get("repo") == name)

    # -- branches ----------------------------------------------------------

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

    @contextlib.asynccontextmanager
    async def _ref_move(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that points a ref at a commit (see _guard_target)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except asyncpg.DeadlockDetectedError:
            # Two moves each holding the ref the other's target is named by.
            raise errors.ConcurrentUpdate(
                "a concurrent ref move got in the way; try again"
            ) from None

    async def _guard_target(self, conn: asyncpg.Connection, repo: str, target: CommitId) -> None:
        """Check, inside a ref move's transaction, that `target` is a commit
        of `repo` and that gc cannot sweep it (catalog.MOVE_LOCK)."""
        row = await conn.fetchrow(_GUARD_TARGET, repo, target, MOVE_LOCK)
        assert row is not None
        if not row["known"]:
            raise errors.CommitNotFound(f"{repo}@{target.hex()}")
        if not row["safe"]:
            raise errors.Busy(
                "garbage collection is running, and this commit is not a branch head or "
                "tag, so nothing may point at it until gc finishes; try again shortly"
            )

    async def create_branch_at(self, repo: str, name: str, head: CommitId | None) -> Branch:
        """Create a branch at any commit of the repo (gc-safe, see _guard_target)."""
        created = now_us()
        async with self._ref_move() as conn:
            await _claim_name(conn, repo, name, "tags")
            if head is not None:
                await self._guard_target(conn, repo, head)
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
        async with self._ref_move() as conn:
            await self._guard_target(conn, repo, target)
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

    # -- tags ----------------------------------------------------------------

    async def create_tag(self, repo: str, name: str, commit: CommitId) -> Tag:
        created = now_us()
        async with self._ref_move() as conn:
            await _claim_name(conn, repo, name, "branches")
            await self._guard_target(conn, repo, commit)
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
            await self.get_repo(repo)
            raise errors.TagNotFound(f"{repo}@{name}")

    # -- open commits --------------------------------------------------------

    async def create_open_commit(self, record: OpenCommitRecord) -> None:
        """Record an open commit and create its staging branch at `base`."""
        async with self._ref_move() as conn:
            if record.base is not None:
                await self._guard_target(conn, record.repo, record.base)
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

    async def get_open_commit(self, repo: str, commit_id: CommitId) -> OpenCommitRecord | None:
        row = await self.pool.fetchrow(
            f"SELECT {_OPEN_COLUMNS} FROM open_commits WHERE id = $1 AND repo = $2",
            commit_id,
            repo,
        )
        return _open_commit(row) if row is not None else None

    async def list_open_commits(self, repo: str) -> list[OpenCommitRecord]:
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
            return await _drop_open_commit(conn, repo, commit_id)

    async def expire_open_commits(self, now: int) -> list[OpenCommitRecord]:
        """Abort the open commits (not being finished) nothing was written to
        for longer than their idle limit (see _OPEN_ACTIVITY). Each is judged
        again with its staging branch locked, so a write committing meanwhile
        either counts as activity or fails; it is never acknowledged and
        then dropped."""
        idle = f"NOT o.finishing AND {_OPEN_ACTIVITY} < $1 - o.idle_us"
        candidates = await self.pool.fetch(f"SELECT o.id FROM open_commits o WHERE {idle}", now)
        expired: list[OpenCommitRecord] = []
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
                    await _drop_open_commit(conn, record.repo, record.id)
                    expired.append(record)
        return expired

    async def get_branch(self, repo: str, name: str) -> Branch:
        row = await self.pool.fetchrow(
            "SELECT repo, name, head, created FROM branches WHERE repo = $1 AND name = $2",
            repo,
            name,
        )
        if row is None:
            await self.get_repo(repo)  # raises RepoNotFound when the repo is missing
            raise errors.BranchNotFound(f"{repo}@{name}")
        return _branch(row)

    async def delete_branch(self, repo: str, name: str, expected_head: CommitId | None) -> bool:
        """Delete the branch if its head is still `expected_head`; drop the repo
        with its last branch. Returns False when the head moved meanwhile."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM branches WHERE repo = $1 AND name = $2 "
                "AND head IS NOT DISTINCT FROM $3",
                repo,
                name,
                expected_head,
            )
            if status != "DELETE 1":
                return False
            left = await conn.fetchval(
                "SELECT count(*) FROM branches WHERE repo = $1 AND name NOT LIKE '\\_%'", repo
            )
            if left == 0:
                await conn.execute("DELETE FROM uploads WHERE repo = $1", repo)
                await conn.execute("DELETE FROM commits WHERE repo = $1", repo)
                await conn.execute("DELETE FROM repos WHERE name = $1", repo)
                self._forget_repo(repo)
            else:
                await conn.execute(
                    "DELETE FROM uploads WHERE repo = $1 AND branch = $2", repo, name
                )
                # Its open commits go with it: they could never be finished.
                for row in await conn.fetch(
                    "SELECT id FROM open_commits WHERE repo = $1 AND branch = $2", repo, name
                ):
                    await _drop_open_commit(conn, repo, CommitId(row["id"]))
        return True

    async def commit_chain(
        self,
        repo: str,
        branch: str,
        old_head: CommitId | None,
        commits: Sequence[Commit],
        nodes: Mapping[NodeId, Node],
        versions: Iterable[tuple[VersionId, CommitId]],
        consume_uploads: Sequence[str] = (),
        consume_open: Sequence[CommitId] = (),
        contents: Sequence[Manifest] = (),
        histories: Sequence[tuple[CommitId, NodeId | None, int]] = (),
        referenced: Iterable[ContentId] = (),
        extra_parents: Iterable[CommitId] = (),
    ) -> bool:
        """Persist a chain of commits and move the branch head from `old_head`
        to the last one, atomically. Returns False (writing nothing) when the
        head is no longer `old_head`, or an upload or open commit (being
        finished) to consume is gone.

        It is ONE statement: every insert is guarded by the compare-and-set
        UPDATE of the head, so it needs one round trip and no explicit
        transaction. Two completions of one upload cannot both succeed: they
        race on the same branch head, and the loser's compare-and-set fails.

        `referenced` are the contents the new entries point at that `contents`
        does not bring (copies, completed uploads). They are locked and
        touched, so garbage collection cannot delete them under the commit; if
        one is already gone, nothing is written and ContentGone is raised.
        Every node and content written is touched too (see migration 0004).
        """
        node_ids = list(nodes)
        version_rows = list(versions)
        unique_contents = {m.id: m for m in contents}
        others = sorted({c for c in referenced if c not in unique_contents})
        try:
            row = await self.pool.fetchrow(
                _COMMIT_CHAIN,
                repo,
                branch,
                old_head,
                commits[-1].id,
                list(consume_uploads),
                node_ids,
                [nodes[n].encode() for n in node_ids],
                [c.id for c in commits],
                [repo] * len(commits),
                [c.time for c in commits],
                [c.encode() for c in commits],
                [v[0] for v in version_rows],
                [v[1] for v in version_rows],
                list(unique_contents),
                [m.size for m in unique_contents.values()],
                [m.encode() for m in unique_contents.values()],
                [h[0] for h in histories],
                [h[1] for h in histories],
                [h[2] for h in histories],
                now_us(),
                [m.has_chunks for m in unique_contents.values()],
                others,
                list(consume_open),
                list(extra_parents),
                MOVE_LOCK,
            )
        except asyncpg.DeadlockDetectedError:
            # Two merges locking each other's source head: PostgreSQL aborted
            # this one; returning False makes the committer rebuild and retry.
            return False
        assert row is not None
        if not row[2]:
            raise errors.Busy(
                "garbage collection is running, and the commit being merged is not a branch "
                "head or tag, so nothing may refer to it until gc finishes; try again shortly"
            )
        if row[1] != len(others):
            raise errors.ContentGone(
                "an object body this write refers to was garbage-collected meanwhile "
                "(its source was no longer reachable); nothing was written"
            )
        if row[0] != 1:
            return False
        for nid, node in nodes.items():
            self._nodes.put(nid, node)
            self._node_bytes.put(nid, node.encode())
        for c in commits:
            self._commits.put(c.id, c)
        for commit_id, root, generation in histories:
            self._histories.put(commit_id, (root, generation))
        return True

    async def get_history(self, commit_id: CommitId) -> tuple[NodeId | None, int]:
        """A commit's history index root and generation; (None, 0) for a
        commit made before history was recorded."""
        cached: tuple[NodeId | None, int] | None = self._histories.get(commit_id)
        if cached is not None:
            return cached
        row = await self.pool.fetchrow(
            "SELECT history_root, generation FROM commit_history WHERE commit_id = $1", commit_id
        )
        if row is None:
            return None, 0
        root = NodeId(row["history_root"]) if row["history_root"] is not None else None
        value = (root, int(row["generation"]))
        self._histories.put(commit_id, value)
        return value

    # -- commits, nodes, contents ------------------------------------------

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

    async def get_commit(self, commit_id: CommitId, repo: str | None = None) -> Commit:
        cached: Commit | None = self._commits.get(commit_id)
        if cached is not None and (repo is None or cached.origin.get("repo") == repo):
            return cached
        row = await self.pool.fetchrow("SELECT repo, data FROM commits WHERE id = $1", commit_id)
        if row is None or (repo is not None and row["repo"] != repo):
            raise errors.CommitNotFound(commit_id.hex())
        commit = Commit.decode(row["data"])
        self._commits.put(commit_id, commit)
        return commit

    async def _immutable(
        self, cache: _LRU, key: bytes, query: str, what: str, decode: Callable[[bytes], T]
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

    async def get_node(self, node_id: NodeId) -> Node:
        node: Node | None = self._nodes.get(node_id)
        if node is not None:
            return node
        data = self._node_bytes.get(node_id)
        if data is None:
            data = await self.pool.fetchval("SELECT data FROM tree_nodes WHERE id = $1", node_id)
            if data is None:
                raise errors.CorruptData(f"tree node {node_id.hex()} is missing")
            self._node_bytes.put(node_id, data)
        node = Node.decode(data)
        self._nodes.put(node_id, node)
        return node

    async def prefetch_nodes(self, node_ids: Sequence[NodeId]) -> None:
        """Load the uncached ones of `node_ids` into the node cache in one
        round trip (tree walks call this ahead of reading them one by one).

        Nothing happens when the first is cached: a walk calls this at every
        step with the run ahead of it, and the run was then fetched already;
        re-fetching a window that slid by one node would cost a query per step.
        """
        if not node_ids or node_ids[0] in self._nodes or node_ids[0] in self._node_bytes:
            return
        missing = [n for n in node_ids if n not in self._nodes and n not in self._node_bytes]
        if len(missing) < 2:
            return  # get_node costs the same round trip for one
        rows = await self.pool.fetch(
            "SELECT id, data FROM tree_nodes WHERE id = ANY($1::bytea[])", missing
        )
        for row in rows:
            self._node_bytes.put(NodeId(row["id"]), row["data"])

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

    async def get_manifest(self, content_id: ContentId) -> Manifest:
        return await self._immutable(
            self._manifests,
            content_id,
            "SELECT manifest FROM contents WHERE id = $1",
            "content",
            Manifest.decode,
        )

    async def commit_of_version(self, version: VersionId) -> CommitId | None:
        value = await self.pool.fetchval(
            "SELECT commit_id FROM object_versions WHERE version = $1", version
        )
        return CommitId(value) if value is not None else None

    # -- multipart uploads -------------------------------------------------

    async def create_upload(self, record: UploadRecord) -> None:
        await self.pool.execute(
            "INSERT INTO uploads "
            "(id, repo, branch, key, created, attrs, checksum_algorithm, checksum_type) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            record.id,
            record.repo,
            record.branch,
            record.key,
            record.created,
            record.attrs,
            record.checksum_algorithm,
            record.checksum_type,
        )

    async def get_upload(self, upload_id: str) -> UploadRecord:
        row = await self.pool.fetchrow(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = $1", upload_id
        )
        if row is None:
            raise errors.UploadNotFound(upload_id)
        return UploadRecord(**dict(row))

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        try:
            await self.pool.execute(
                "INSERT INTO upload_parts "
                "(upload_id, part_number, content, size, md5, created, checksums) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (upload_id, part_number) "
                "DO UPDATE SET content = EXCLUDED.content, size = EXCLUDED.size, "
                "md5 = EXCLUDED.md5, created = EXCLUDED.created, checksums = EXCLUDED.checksums",
                upload_id,
                part.part_number,
                part.content,
                part.size,
                part.md5,
                part.created,
                pack(sorted(part.checksums.items())) if part.checksums else None,
            )
        except asyncpg.ForeignKeyViolationError:
            raise errors.UploadNotFound(upload_id) from None

    async def list_parts(self, upload_id: str) -> list[PartRecord]:
        rows = await self.pool.fetch(
            "SELECT part_number, content, size, md5, created, checksums FROM upload_parts "
            "WHERE upload_id = $1 ORDER BY part_number",
            upload_id,
        )
        return [
            PartRecord(
                r["part_number"],
                ContentId(r["content"]),
                r["size"],
                r["md5"],
                r["created"],
                {k: v for k, v in unpack(r["checksums"])} if r["checksums"] else {},
            )
            for r in rows
        ]

    async def delete_upload(self, upload_id: str) -> bool:
        status = await self.pool.execute("DELETE FROM uploads WHERE id = $1", upload_id)
        return bool(status == "DELETE 1")

    async def list_uploads(
        self,
        repo: str,
        branch: str,
        prefix: str,
        after_key: str,
        after_id: str,
        limit: int,
        skip_key_prefix: bool = False,
    ) -> list[UploadRecord]:
        """Uploads of a branch whose key starts with `prefix`, in (key, id) byte
        order, after (after_key, after_id): keys greater than after_key, and
        uploads of after_key whose id is greater than after_id. With
        `skip_key_prefix`, every key starting with after_key is skipped too."""
        rows = await self.pool.fetch(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads "
            "WHERE repo = $1 AND branch = $2 AND starts_with(key, $3) "
            'AND (key COLLATE "C" > $4 OR (key = $4 AND id COLLATE "C" > $5)) '
            "AND NOT ($7 AND starts_with(key, $4)) "
            'ORDER BY key COLLATE "C", id COLLATE "C" LIMIT $6',
            repo,
            branch,
            prefix,
            after_key,
            after_id,
            limit,
            skip_key_prefix,
        )
        return [UploadRecord(**dict(r)) for r in rows]

    async def expire_uploads(self, idle_since: int) -> list[str]:
        """Delete the uploads (and, by cascade, their parts rows) that have seen no
        activity (creation or a part) since `idle_since`; returns their ids."""
        rows = await self.pool.fetch(
            "DELETE FROM uploads u WHERE u.created < $1 AND NOT EXISTS "
            "(SELECT 1 FROM upload_parts p WHERE p.upload_id = u.id AND p.created >= $1) "
            "RETURNING u.id",
            idle_since,
        )
        return [r["id"] for r in rows]


_UPLOAD_COLUMNS = "id, repo, branch, key, created, attrs, checksum_algorithm, checksum_type"
_OPEN_COLUMNS = "id, repo, branch, base, created, idle_us, author, frozen, finishing"

# A ref may be pointed at `target` when it is a commit of the repo and either
# no gc is running (the shared MOVE_LOCK; gc holds it exclusively from before
# its mark), or a ref names it already, which makes it reachable in any mark
# a running gc made: every way a ref came to name it was itself safe.
_GUARD_TARGET = """
SELECT EXISTS (SELECT 1 FROM commits WHERE id = $2 AND repo = $1) AS known,
       pg_try_advisory_xact_lock_shared($3)
       OR EXISTS (SELECT 1 FROM branches WHERE repo = $1 AND head = $2 FOR SHARE)
       OR EXISTS (SELECT 1 FROM tags WHERE repo = $1 AND commit_id = $2 FOR SHARE) AS safe
"""
# (FOR SHARE: the ref that names the target cannot be moved or deleted until
# this transaction commits, so a gc that reads its roots after that sees
# either that ref or the moved one.)

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


async def _claim_name(conn: asyncpg.Connection, repo: str, name: str, other: str) -> None:
    """Inside a transaction creating a branch or tag `name`: serialize ref
    creation in the repo and refuse a name the other kind (`other`: the
    table "tags" or "branches") already has. Branches and tags share one
    namespace, so a ref never names two things."""
    locked = await conn.fetchval(
        "SELECT 1 FROM repos WHERE name = $1 FOR NO KEY UPDATE", repo
    )  # (FOR NO KEY UPDATE: the inserts' foreign-key checks do not wait on it)
    if locked is None:
        raise errors.RepoNotFound(repo)
    if await conn.fetchval(f"SELECT 1 FROM {other} WHERE repo = $1 AND name = $2", repo, name):
        kind = errors.TagExists if other == "tags" else errors.BranchExists
        raise kind(f"{repo}@{name} is a {'tag' if other == 'tags' else 'branch'}")


async def _drop_open_commit(conn: asyncpg.Connection, repo: str, commit_id: CommitId) -> bool:
    """Delete an open commit with its staging branch and uploads (inside the
    caller's transaction); whether it existed."""
    staging = OpenCommitRecord.staging_name(commit_id)
    status = await conn.execute(
        "DELETE FROM open_commits WHERE id = $1 AND repo = $2", commit_id, repo
    )
    await conn.execute("DELETE FROM branches WHERE repo = $1 AND name = $2", repo, staging)
    await conn.execute("DELETE FROM uploads WHERE repo = $1 AND branch = $2", repo, staging)
    return bool(status == "DELETE 1")


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


_COMMIT_CHAIN = """
WITH kept AS (
    -- Lock the re-used contents against a concurrent gc DELETE: once locked,
    -- gc's re-check sees them touched below and spares them.
    SELECT id FROM contents WHERE id = ANY($22::bytea[]) FOR KEY SHARE
), ups AS (
    -- Locked, so an abort either deletes them first (and this fails) or
    -- waits and then finds them consumed.
    SELECT id FROM uploads WHERE id = ANY($5::text[]) FOR UPDATE
), opened AS (
    SELECT id FROM open_commits WHERE id = ANY($23::bytea[]) AND finishing FOR UPDATE
), guard AS (
    -- A merge's other parents must survive a running gc, as a ref move's
    -- target must (see _GUARD_TARGET).
    SELECT CASE WHEN cardinality($24::bytea[]) = 0 THEN true
           ELSE pg_try_advisory_xact_lock_shared($25)
                OR (SELECT count(*) FROM unnest($24::bytea[]) AS x(id)
                    WHERE EXISTS (SELECT 1 FROM branches b
                                  WHERE b.repo = $1 AND b.head = x.id FOR SHARE)
                       OR EXISTS (SELECT 1 FROM tags t
                                  WHERE t.repo = $1 AND t.commit_id = x.id FOR SHARE))
                   = cardinality($24::bytea[])
           END AS ok
), upd AS (
    UPDATE branches SET head = $4
    WHERE repo = $1 AND name = $2 AND head IS NOT DISTINCT FROM $3
      AND (SELECT count(*) FROM ups) = cardinality($5::text[])
      AND (SELECT count(*) FROM kept) = cardinality($22::bytea[])
      AND (SELECT count(*) FROM opened) = cardinality($23::bytea[])
      AND (SELECT ok FROM guard)
    RETURNING 1
), consumed AS (
    DELETE FROM uploads WHERE id = ANY($5::text[]) AND EXISTS (SELECT 1 FROM upd)
), finished AS (
    DELETE FROM open_commits WHERE id = ANY($23::bytea[]) AND EXISTS (SELECT 1 FROM upd)
), new_nodes AS (
    INSERT INTO tree_nodes (id, data, touched)
    SELECT t.id, t.data, $20 FROM unnest($6::bytea[], $7::bytea[]) AS t(id, data)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
), new_commits AS (
    INSERT INTO commits (id, repo, time, data)
    SELECT t.id, t.repo, t.time, t.data
    FROM unnest($8::bytea[], $9::text[], $10::bigint[], $11::bytea[]) AS t(id, repo, time, data)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
), new_versions AS (
    INSERT INTO object_versions (version, commit_id)
    SELECT t.version, t.commit_id FROM unnest($12::bytea[], $13::bytea[]) AS t(version, commit_id)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
), new_contents AS (
    INSERT INTO contents (id, size, manifest, touched, has_chunks)
    SELECT t.id, t.size, t.manifest, $20, t.has_chunks
    FROM unnest($14::bytea[], $15::bigint[], $16::bytea[], $21::boolean[])
         AS t(id, size, manifest, has_chunks)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
), touched_contents AS (
    UPDATE contents SET touched = $20
    WHERE id IN (SELECT id FROM kept) AND EXISTS (SELECT 1 FROM upd)
), new_histories AS (
    INSERT INTO commit_history (commit_id, history_root, generation)
    SELECT t.id, t.root, t.generation
    FROM unnest($17::bytea[], $18::bytea[], $19::bigint[]) AS t(id, root, generation)
    WHERE EXISTS (SELECT 1 FROM upd)
    ON CONFLICT DO NOTHING
)
SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM kept), (SELECT ok FROM guard)
"""

_TOUCH_CHUNKS = """
INSERT INTO chunks (id, size, touched)
SELECT t.id, t.size, $3 FROM unnest($1::bytea[], $2::integer[]) AS t(id, size)
ON CONFLICT (id) DO UPDATE SET touched = EXCLUDED.touched
RETURNING id, (xmax = 0) AS inserted
"""


def _tag(row: asyncpg.Record) -> Tag:
    return Tag(row["repo"], row["name"], CommitId(row["commit_id"]), row["created"])


def _open_commit(row: asyncpg.Record) -> OpenCommitRecord:
    return OpenCommitRecord(
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


def _branch(row: asyncpg.Record) -> Branch:
    head = row["head"]
    return Branch(
        row["repo"], row["name"], CommitId(head) if head is not None else None, row["created"]
    )
