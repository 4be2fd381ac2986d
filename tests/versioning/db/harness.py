"""What the persistence contract suites (test_db_*_contract.py) share: every
implementation of the versioning/db Protocols, and commits built with the real
domain helpers to arrange state with.

An implementation is a `Backend`. It opens `Stores` (every store of one
database, sharing its state, as versioning.db.Database does) for one test,
opens a second handle on the same state with empty caches (another server
process), and can make it look as if garbage collection were running.

conftest.py gives every suite a module-scoped `backend` fixture over IMPLEMENTATIONS:

    @pytest.fixture(scope="module", params=IMPLEMENTATIONS, ids=implementation_id)
    def backend(request: pytest.FixtureRequest) -> Backend:
        return request.param(request)

so an in-memory twin is one more factory in IMPLEMENTATIONS. The PostgreSQL
backend runs twice: on a database with the server's default collation, and
on one whose default collation is ICU en-US, where only an explicit
COLLATE "C" gives byte order (on a C database every order is byte order, and
a contract about ordering could not fail).

Backends share one database per module; tests isolate themselves by using
fresh repo names (`unique`), and assert on the rows they made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from versioning import history, tree
from versioning.catalog import GC_LOCK, MOVE_LOCK
from versioning.clock import now_us
from versioning.db import ChainWrite, Database
from versioning.db.commit_chain import CommitWriter
from versioning.db.objects import ObjectStore
from versioning.db.open_commits import OpenCommitStore
from versioning.db.pipelines import PipelineStore
from versioning.db.refs import RefStore
from versioning.db.repos import RepoStore
from versioning.db.uploads import UploadStore
from versioning.db.withdrawn import WithdrawnStore
from versioning.ids import CommitId, NodeId, VersionId
from versioning.model import ChunkRef, Commit, Manifest, ObjectEntry, OpenCommit, Upload
from versioning.names import new_version
from versioning.tree import Node, NodeSource, Root


class Stores(Protocol):
    """Every store of one database (what versioning.db.Database holds)."""

    repos: RepoStore
    refs: RefStore
    objects: ObjectStore
    uploads: UploadStore
    open_commits: OpenCommitStore
    withdrawn: WithdrawnStore
    pipelines: PipelineStore
    writer: CommitWriter


class Backend(Protocol):
    name: str

    def stores(self) -> contextlib.AbstractAsyncContextManager[Stores]:
        """A handle on the backend's state, with its own (empty) caches."""
        ...

    def gc_running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """For the block, the backend behaves as while a gc marks and sweeps."""
        ...

    def run(self, scenario: Callable[[Stores], Awaitable[None]]) -> None:
        """Run `scenario` on a fresh handle, in its own event loop."""
        ...


# -- PostgreSQL -----------------------------------------------------------------


@dataclass
class PgBackend:
    name: str
    dsn: str

    @contextlib.asynccontextmanager
    async def stores(self) -> AsyncIterator[Stores]:
        db = await Database.connect(self.dsn, min_size=1, max_size=4)
        try:
            yield db
        finally:
            await db.close()

    @contextlib.asynccontextmanager
    async def gc_running(self) -> AsyncIterator[None]:
        # What Catalog.exclusive does, on a connection of its own (another
        # process's gc): the gc lock, then the move lock exclusively.
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", GC_LOCK)
            await conn.execute("SELECT pg_advisory_lock($1)", MOVE_LOCK)
            yield
        finally:
            await conn.close()  # drops its session locks

    def run(self, scenario: Callable[[Stores], Awaitable[None]]) -> None:
        async def main() -> None:
            async with self.stores() as db:
                await asyncio.wait_for(scenario(db), 30)

        asyncio.run(main())


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _admin(admin_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def pg_database(request: pytest.FixtureRequest) -> Backend:
    """PostgreSQL on a fresh database with the server's defaults."""
    fresh: Callable[[], str] = request.getfixturevalue("fresh_database")
    return PgBackend("pg", fresh())


def pg_icu_database(request: pytest.FixtureRequest) -> Backend:
    """PostgreSQL on a fresh database whose default collation is ICU en-US
    (as many production databases are: `a` < `B` < `é` < `z`)."""
    admin: str = request.getfixturevalue("postgres_admin_dsn")
    name = f"loxo_test_{os.getpid()}_icu_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(
            _admin(
                admin,
                f'CREATE DATABASE "{name}" TEMPLATE template0 '
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
            )
        )
    except (asyncpg.PostgresError, OSError) as exc:
        pytest.skip(f"this PostgreSQL cannot make an ICU database: {exc}")

    def drop() -> None:
        asyncio.run(
            _admin(
                admin,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
                f'DROP DATABASE IF EXISTS "{name}"',
            )
        )

    request.addfinalizer(drop)
    return PgBackend("pg-icu", _with_database(admin, name))


IMPLEMENTATIONS: list[Callable[[pytest.FixtureRequest], Backend]] = [
    pg_database,
    pg_icu_database,
]


def implementation_id(factory: Callable[[pytest.FixtureRequest], Backend]) -> str:
    return factory.__name__


# -- arranging state ---------------------------------------------------------------


def unique(prefix: str = "r") -> str:
    """A fresh repo (or upload) name: tests share a database."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def manifest_of(body: bytes) -> Manifest:
    """An inline body's manifest (no chunk store involved)."""
    return Manifest((ChunkRef.of_inline(body),))


def entry_of(body: bytes, version: VersionId | None = None) -> ObjectEntry:
    return ObjectEntry(
        size=len(body),
        content=manifest_of(body).id,
        etag="0" * 32,
        content_type="application/octet-stream",
        last_modified=now_us(),
        version=version or new_version(),
    )


class _Overlay:
    """Nodes built but not yet written, over a store's nodes."""

    def __init__(self, stored: NodeSource) -> None:
        self.stored = stored
        self.nodes: dict[NodeId, Node] = {}

    async def get_node(self, node_id: NodeId) -> Node:
        node = self.nodes.get(node_id)
        return node if node is not None else await self.stored.get_node(node_id)


@dataclass
class Chain:
    """Commits built on a branch head as the committer builds them (trees
    with tree.apply, history indexes with history.records_for), not yet
    written: `write()` is the ChainWrite that persists them."""

    db: Stores
    repo: str
    branch: str
    old_head: CommitId | None
    root: Root = None
    history_root: Root = None
    generation: int = 0
    commits: list[Commit] = field(default_factory=list)
    versions: list[tuple[VersionId, CommitId]] = field(default_factory=list)
    contents: list[Manifest] = field(default_factory=list)
    histories: list[tuple[CommitId, NodeId | None, int]] = field(default_factory=list)
    overlay: _Overlay | None = None

    @staticmethod
    async def on(db: Stores, repo: str, branch: str, head: Any = ...) -> Chain:
        """A chain on `head` (by default, the branch's current head)."""
        if head is ...:
            head = (await db.refs.get_branch(repo, branch)).head
        chain = Chain(db, repo, branch, head, overlay=_Overlay(db.objects))
        if head is not None:
            chain.root = NodeId((await db.objects.get_commit(head)).tree or b"") or None
            chain.history_root, chain.generation = await db.objects.get_history(head)
        return chain

    @property
    def head(self) -> CommitId | None:
        return self.commits[-1].id if self.commits else self.old_head

    @property
    def nodes(self) -> dict[NodeId, Node]:
        assert self.overlay is not None
        return self.overlay.nodes

    async def add(
        self,
        files: Mapping[str, bytes | None],
        message: str = "change",
        extra_parents: tuple[CommitId, ...] = (),
    ) -> Commit:
        """One more commit: `files` written (None deletes)."""
        assert self.overlay is not None
        edits = {k: entry_of(v) if v is not None else None for k, v in files.items()}
        when = max(now_us(), self.commits[-1].time + 1 if self.commits else 0)
        new_root, new_nodes = await tree.apply(self.overlay, self.root, edits)
        self.overlay.nodes.update(new_nodes)
        parent = self.head
        commit = Commit(
            parents=((parent,) if parent is not None else ()) + extra_parents,
            tree=new_root,
            author="contract",
            message=message,
            time=when,
            origin={"repo": self.repo, "branch": self.branch, "op": "contract"},
        )
        self.generation += 1
        records = await history.records_for(
            self.overlay, self.root, new_root, self.generation, commit.id, when
        )
        self.history_root, history_nodes = await tree.apply(
            self.overlay, self.history_root, records
        )
        self.overlay.nodes.update(history_nodes)
        self.histories.append((commit.id, self.history_root, self.generation))
        self.commits.append(commit)
        self.versions.extend((e.version, commit.id) for e in edits.values() if e is not None)
        self.contents.extend(manifest_of(v) for v in files.values() if v is not None)
        self.root = new_root
        return commit

    def write(self, **overrides: Any) -> ChainWrite:
        fields: dict[str, Any] = {
            "repo": self.repo,
            "branch": self.branch,
            "old_head": self.old_head,
            "commits": self.commits,
            "nodes": self.nodes,
            "versions": self.versions,
            "contents": self.contents,
            "histories": self.histories,
        }
        fields.update(overrides)
        return ChainWrite(**fields)


async def commit(
    db: Stores, repo: str, branch: str, files: Mapping[str, bytes | None], message: str = "change"
) -> Commit:
    """Commit `files` on the branch's current head (through the CommitWriter)."""
    chain = await Chain.on(db, repo, branch)
    made = await chain.add(files, message)
    assert await db.writer.commit_chain(chain.write())
    return made


async def new_repo(db: Stores, default_branch: str = "main") -> str:
    name = unique()
    await db.repos.create_repo(name, default_branch)
    return name


def upload_record(
    repo: str, branch: str, key: str, created: int | None = None, upload_id: str | None = None
) -> Upload:
    return Upload(
        id=upload_id or unique("u"),
        repo=repo,
        branch=branch,
        key=key,
        created=created if created is not None else now_us(),
        attrs=b"\x90",
        checksum_algorithm="crc32",
        checksum_type="COMPOSITE",
    )


def open_record(
    repo: str,
    branch: str,
    base: CommitId | None,
    created: int | None = None,
    idle_us: int = 60_000_000,
) -> OpenCommit:
    return OpenCommit(
        id=CommitId(os.urandom(16)),
        repo=repo,
        branch=branch,
        base=base,
        created=created if created is not None else now_us(),
        idle_us=idle_us,
        author="contract",
    )
