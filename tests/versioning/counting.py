"""Counting the metadata work of an operation: SQL round trips, tree-node reads
and node visits, through the real Database over a recording pool.

Shared by tests/versioning/test_scale.py (which asserts on the counts) and
benchmarks/bench_scale.py (which prints them beside its timings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from versioning.db import ChainWrite, Database
from versioning.db.commit_chain import PgCommitWriter
from versioning.db.objects import PgObjects
from versioning.ids import NodeId
from versioning.tree import Node


@dataclass(frozen=True)
class Work:
    """What one operation cost, read from an empty cache."""

    round_trips: int  # SQL statements sent to PostgreSQL
    node_reads: int  # tree nodes read from PostgreSQL (cache misses)
    node_visits: int  # get_node calls, cache hits included
    nodes_written: int  # tree nodes sent with the commit statement


class CountingPool:
    """Forwards to a real asyncpg pool, recording every statement sent."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[str] = []

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return await self._pool.fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return await self._pool.fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return await self._pool.fetchval(query, *args, **kwargs)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return await self._pool.execute(query, *args, **kwargs)

    async def executemany(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return await self._pool.executemany(query, *args, **kwargs)

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        # A connection taken for a transaction: counted once (the operations
        # measured here do not take one; a change that made them would show).
        self.statements.append("<acquire>")
        return self._pool.acquire(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _CountingObjects(PgObjects):
    node_visits = 0

    async def get_node(self, node_id: NodeId) -> Node:
        self.node_visits += 1
        return await super().get_node(node_id)


class _CountingWriter(PgCommitWriter):
    nodes_written = 0

    async def commit_chain(self, write: ChainWrite) -> bool:
        self.nodes_written += len(write.nodes)
        return await super().commit_chain(write)


class CountingDatabase(Database):
    """The real Database, with fresh (empty) caches, counting its work."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.counting = CountingPool(pool)
        counted = cast(asyncpg.Pool, self.counting)
        self.counted_objects = _CountingObjects(counted)
        self.counted_writer = _CountingWriter(counted, self.counted_objects)
        super().__init__(counted, objects=self.counted_objects, writer=self.counted_writer)

    def work(self) -> Work:
        statements = self.counting.statements
        return Work(
            round_trips=len(statements),
            node_reads=sum("FROM tree_nodes" in s for s in statements),
            node_visits=self.counted_objects.node_visits,
            nodes_written=self.counted_writer.nodes_written,
        )
