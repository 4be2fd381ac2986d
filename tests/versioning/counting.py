"""Counting the metadata work of an operation: SQL round trips, tree-node reads
and node visits, through the real Metadata over a recording pool.

Shared by tests/versioning/test_scale.py (which asserts on the counts) and
benchmarks/bench_scale.py (which prints them beside its timings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from versioning.ids import NodeId
from versioning.metadata import Metadata
from versioning.tree import Node


@dataclass(frozen=True)
class Work:
    """What one operation cost, read from an empty cache."""

    round_trips: int  # SQL statements sent to PostgreSQL
    node_reads: int  # tree nodes read from PostgreSQL (cache misses)
    node_visits: int  # Metadata.get_node calls, cache hits included
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


class CountingMetadata(Metadata):
    """The real Metadata, with fresh (empty) caches, counting its work."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.counting = CountingPool(pool)
        super().__init__(cast(asyncpg.Pool, self.counting))
        self.node_visits = 0
        self.nodes_written = 0

    async def get_node(self, node_id: NodeId) -> Node:
        self.node_visits += 1
        return await super().get_node(node_id)

    async def commit_chain(self, *args: Any, **kwargs: Any) -> bool:
        nodes = kwargs["nodes"] if "nodes" in kwargs else args[4]
        self.nodes_written += len(nodes)
        return await super().commit_chain(*args, **kwargs)

    def work(self) -> Work:
        statements = self.counting.statements
        return Work(
            round_trips=len(statements),
            node_reads=sum("FROM tree_nodes" in s for s in statements),
            node_visits=self.node_visits,
            nodes_written=self.nodes_written,
        )
