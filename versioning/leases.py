"""Chunk leases: how a writer keeps garbage collection off the chunks it relies on.

gc deletes a chunk only when nothing reachable names it AND its row in the
`chunks` table was last touched before gc's grace cutoff. A writer therefore
touches every chunk it is about to store or re-use BEFORE it looks in the
store, and keeps touching them while its body is still arriving, so an upload
that lasts longer than the grace period keeps its early chunks. Once the
commit (or the multipart part row) names the body, reachability protects it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from versioning.chunkstore.base import ChunkStore
from versioning.errors import ContentGone
from versioning.ids import ChunkId
from versioning.model import ChunkRef

# Re-touch what an upload has stored after this long. gc's grace period must
# exceed it (gateway.config enforces a floor), so an in-flight upload's
# chunks always look recent to gc.
KEEPALIVE_SECONDS = 120.0


class ChunkRows(Protocol):
    """Where leases are recorded (db.objects)."""

    async def touch_chunks(self, chunks: Iterable[ChunkRef]) -> list[ChunkId]: ...


class LeasedStore:
    """A ChunkSink for one body: store.put_many, with the leases above.

    One instance per body being written; not shared between uploads.
    """

    def __init__(self, rows: ChunkRows, store: ChunkStore) -> None:
        self.rows = rows
        self.store = store
        self._held: dict[ChunkId, int] = {}
        self._touched_at = time.monotonic()

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        refs = [ChunkRef(cid, len(data)) for cid, data in chunks]
        if time.monotonic() - self._touched_at > KEEPALIVE_SECONDS and self._held:
            refs.extend(ChunkRef(cid, size) for cid, size in self._held.items())
            self._touched_at = time.monotonic()
        await self.rows.touch_chunks(refs)
        for ref in refs:
            self._held[ref.id] = ref.size
        return await self.store.put_many(chunks)


async def hold_existing(rows: ChunkRows, store: ChunkStore, chunks: list[ChunkRef]) -> None:
    """Lease chunks a new body re-uses without having their bytes (copies,
    completed multipart uploads), and make sure they are still stored.

    Only a chunk whose row had to be re-created can be missing: gc removed
    its row, so it may have removed the chunk too. Such a body's source was
    unreachable, and the write is refused rather than left dangling.
    """
    for cid in await rows.touch_chunks(c for c in chunks if c.inline is None):
        if not await store.has(cid):
            raise ContentGone(
                f"chunk {cid.hex()} of the source was garbage-collected; nothing was written"
            )
