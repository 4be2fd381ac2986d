"""A chunk store that counts what passes through it: operations, errors and
time by operation, chunks and bytes written (new or already there, which
is deduplication at work) and read. The server wraps its store in one; the
domain sees a ChunkStore like any other.

Which chunks of a batch were new the store does not say, only how many (its
put_many answer). A batch that is all new or all known is counted exactly;
in a mixed batch (a body sharing some chunks with stored ones) the new
chunks' bytes are estimated at the batch's mean chunk size. Content-defined
chunks vary in size within a factor of 16 (--chunk-min to --chunk-max), and
mixed batches are a minority, so the byte counters stay close.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, TypeVar

from versioning.chunkstore.base import ChunkStore, FragmentStore, fragments_of
from versioning.ids import ChunkId

if TYPE_CHECKING:
    from gateway.metrics import Metrics

T = TypeVar("T")


class MeteredStore:
    """A ChunkStore that reports each call to `metrics` and passes it on."""

    def __init__(self, store: ChunkStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    def __repr__(self) -> str:
        return f"MeteredStore({self.store!r})"

    async def _timed(self, op: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception:
            self.metrics.store_error(op)
            raise
        finally:
            self.metrics.store_call(op, time.perf_counter() - started)

    async def put(self, chunk_id: ChunkId, data: bytes) -> bool:
        wrote = await self._timed("put", self.store.put(chunk_id, data))
        self.metrics.chunks_written(1, len(data), int(wrote), len(data) if wrote else 0)
        return wrote

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        written = await self._timed("put_many", self.store.put_many(chunks))
        # The store counts duplicate ids within a batch once: so do we.
        unique = {cid: len(data) for cid, data in chunks}
        offered = sum(unique.values())
        new = min(written, len(unique))
        if new == len(unique):
            new_bytes = offered
        elif new == 0:
            new_bytes = 0
        else:
            new_bytes = offered * new // len(unique)
        self.metrics.chunks_written(len(unique), offered, new, new_bytes)
        return written

    async def get(self, chunk_id: ChunkId) -> bytes:
        data = await self._timed("get", self.store.get(chunk_id))
        self.metrics.chunk_read(len(data))
        return data

    async def has(self, chunk_id: ChunkId) -> bool:
        return await self._timed("has", self.store.has(chunk_id))

    async def delete(self, chunk_id: ChunkId) -> None:
        await self._timed("delete", self.store.delete(chunk_id))

    async def iter_ids(self) -> AsyncIterator[ChunkId]:
        started = time.perf_counter()
        try:
            async for cid in self.store.iter_ids():
                yield cid
        except Exception:
            self.metrics.store_error("iter_ids")
            raise
        finally:
            self.metrics.store_call("iter_ids", time.perf_counter() - started)

    def fragments(self) -> FragmentStore | None:
        """The wrapped store's fragment store (uploads' part edges), unmetered:
        the metrics count chunk traffic."""
        return fragments_of(self.store)

    async def close(self) -> None:
        await self.store.close()
