"""Content: turning a streamed body into stored chunks and a manifest, and back.

Writing: the body arrives in pieces; pieces are gathered into batches of about
1 MiB so each batch costs one hop to worker threads. Per batch, two threads run
side by side: one feeds the whole-body digests (MD5 for the ETag, plus any
checksums the caller asked for), the other cuts content-defined chunks and
names them by BLAKE3. hashlib and blake3 release the GIL, so both cores work
while the event loop keeps receiving. Chunks are made durable before the
manifest is returned, so a commit that references it never points at bytes
that could vanish in a crash.

Small bodies (at most `inline_max` bytes) never reach the chunk store: the
manifest carries their bytes, so a million tiny objects are a million rows in
one table rather than a million files (or object-store PUTs).

Reading: a byte range maps to the chunks that overlap it (binary search over
chunk offsets); chunks are fetched one at a time so memory stays flat.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from versioning.chunker import StreamChunker, chunk_id
from versioning.chunkstore.base import ChunkStore
from versioning.ids import ChunkId
from versioning.model import ChunkRef, Manifest

BATCH_BYTES = 1 << 20
# Chunks go to the store as soon as a cut yields this much (a cut yields at
# least max_size / 4), so an upload holds at most one cut's chunks.
FLUSH_BYTES = 1 << 20
# A body waits for its memory slot once this much of it has arrived: a body
# smaller than that never waits, and one that waits holds no more than that
# (40 parts queued for 4 slots held 1 MiB each, when this was BATCH_BYTES).
WAIT_AFTER = 256 * 1024
# A whole body this small is digested and cut on the event loop (see ingest).
SMALL_BODY = 64 * 1024
# How much of a part's start is held to find its sync point, in max chunks:
# the chains it follows start within one max chunk and merge a few chunks
# later (random data, default sizes: 4.3 to 9.6 MiB into the part in 60
# samples; a chain needs up to one max chunk of data beyond its cut).
HEAD_WINDOW_CHUNKS = 3


def stream_memory(max_chunk: int) -> int:
    """What one large body in flight can hold at once: the chunker's buffer
    (1.25 * max chunk), one cut's chunks being written and the next cut's
    waiting, and the batch being gathered plus the one being processed."""
    return max_chunk + max_chunk // 4 + 2 * max_chunk + 2 * BATCH_BYTES


class MemorySlots:
    """The server's ingest memory budget as slots of stream_memory bytes.

    A body takes one slot; a multipart part takes two, because it holds up
    to HEAD_WINDOW_CHUNKS max chunks more while its sync point is found.
    Takers of several slots go one at a time: two of them each holding one
    of the last two slots would otherwise wait for each other forever.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._free = asyncio.Semaphore(count)
        self._several = asyncio.Lock()

    async def acquire(self, n: int = 1) -> None:
        if n == 1:
            await self._free.acquire()
            return
        taken = 0
        try:
            async with self._several:
                while taken < min(n, self.count):
                    await self._free.acquire()
                    taken += 1
        except BaseException:
            self.release(taken)
            raise

    def release(self, n: int = 1) -> None:
        for _ in range(min(n, self.count)):
            self._free.release()


# Bodies up to this size are kept inline in their manifest by default. 16 KiB
# covers the tiny-file tail (configs, JSON records, thumbnails' metadata) where
# a chunk file per object costs a file create, two fsyncs and an inode, while
# a PostgreSQL row of that size is one TOASTed tuple in the commit's statement.
DEFAULT_INLINE_MAX = 16 * 1024


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...


class ChunkSink(Protocol):
    """Where ingest sends named chunks: a ChunkStore, or a wrapper around one."""

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int: ...


@dataclass(slots=True)
class Ingested:
    manifest: Manifest
    size: int
    md5: bytes
    hashers: Mapping[str, Hasher] = field(default_factory=dict)
    new_chunks: int = 0


async def ingest(
    pieces: AsyncIterator[bytes],
    store: ChunkSink,
    hashers: Mapping[str, Hasher] | None = None,
    chunker_factory: Callable[[], StreamChunker] = StreamChunker,
    inline_max: int = 0,
    slots: MemorySlots | None = None,
    edges: ChunkSink | None = None,
) -> Ingested:
    """Store a streamed body; returns its manifest and digests. A body of at
    most `inline_max` bytes is returned inline and nothing is stored.

    A body of more than WAIT_AFTER bytes takes one of `slots` (the server's
    memory budget, see stream_memory; a part takes two) once that much has
    arrived, before its first batch is processed, and holds it to the end.
    While it waits it reads nothing more, so the client is held back by TCP
    flow control instead of our memory growing with the number of concurrent
    uploads. Small bodies never wait.

    With `edges` (a multipart part's body), the chunks that may not be the
    finished object's are sent there instead of to `store`: those before the
    body's sync point (StreamChunker.sync_point, judged on the first
    HEAD_WINDOW bytes, held in memory until then) and the last one. The
    manifest lists every chunk as usual.

    Errors raised by `pieces` (a bad client, a signature mismatch detected at
    the end) propagate; chunks already written are then unreferenced and left
    for garbage collection, which never affects committed data.
    """
    extra = dict(hashers or {})
    md5 = hashlib.md5()
    chunker = chunker_factory()
    refs: list[ChunkRef] = []
    pending: list[tuple[ChunkId, bytes]] = []
    pending_bytes = 0
    size = 0
    new_chunks = 0
    flushed = False
    writing: asyncio.Future[int] | None = None
    # Part mode (edges given): chunks held until the sync point is known.
    heading = edges is not None
    weight = 1 if edges is None else 2  # memory slots held (MemorySlots)
    held: list[tuple[ChunkId, bytes]] = []
    held_bytes = 0
    window = HEAD_WINDOW_CHUNKS * getattr(chunker, "max_size", 0)

    def sync_split(data: bytes) -> int:
        """How many held chunks are edges: those up to the sync point, or
        all of them when the held bytes show none."""
        find = getattr(chunker, "sync_point", None)
        at = find(data) if find is not None else None
        end = 0
        for k, (_, c) in enumerate(held):
            end += len(c)
            if end == at:
                return k + 1
        return len(held)

    async def settle() -> None:
        """Send the held chunks before the sync point to `edges`, the rest
        on to the store."""
        nonlocal heading, held_bytes, pending_bytes
        assert edges is not None
        if held_bytes < window:
            # The whole part is held (boto3's and the aws CLI's 8 MiB parts):
            # its sync point, 4 to 10 MiB in, would spare a MiB or two of
            # edges at a cost of ~8 ms of scanning (about 1 s per GiB, a
            # tenth of the PUT's CPU). Kept as edges, those chunks are
            # promoted at Complete by a hard link or server-side copy.
            split = len(held)
        else:
            data = b"".join(c for _, c in held)
            split = await asyncio.to_thread(sync_split, data)
            del data
        if split:
            await edges.put_many(held[:split])
        for cid, c in held[split:]:
            pending.append((cid, c))
            pending_bytes += len(c)
        held.clear()
        held_bytes = 0
        heading = False

    def digest(batch: list[bytes]) -> None:
        for piece in batch:
            md5.update(piece)
            for h in extra.values():
                h.update(piece)

    def cut(batch: list[bytes] | None) -> list[tuple[ChunkId, bytes]]:
        if batch is None:
            chunks = chunker.finish()
        else:
            chunks = []
            for piece in batch:
                chunks += chunker.feed(piece)
        return [(chunk_id(c), c) for c in chunks]

    async def process(batch: list[bytes] | None, on_loop: bool = False) -> None:
        nonlocal pending_bytes, new_chunks, flushed, writing, held_bytes
        if on_loop:
            if batch is not None:
                digest(batch)
            named = cut(batch)
        elif batch is not None:
            _, named = await asyncio.gather(
                asyncio.to_thread(digest, batch), asyncio.to_thread(cut, batch)
            )
        else:
            named = await asyncio.to_thread(cut, None)
        for cid, data in named:
            refs.append(ChunkRef(cid, len(data)))
            if heading:
                held.append((cid, data))
                held_bytes += len(data)
            else:
                pending.append((cid, data))
                pending_bytes += len(data)
        if batch is None and not flushed and 0 < size <= inline_max:
            # Whole body still in hand and small: keep it in the manifest.
            everything = held + pending
            refs[:] = [ChunkRef.of_inline(b"".join(data for _, data in everything))]
            pending.clear()
            held.clear()
            return
        if heading and (batch is None or held_bytes >= window):
            await settle()
        if batch is None and edges is not None and pending and pending[-1][0] == refs[-1].id:
            # The last chunk ends where the part ends, not where the content
            # says: the next part's seam re-cuts it.
            tail = pending.pop()
            pending_bytes -= len(tail[1])
            await edges.put_many([tail])
        if pending and (batch is None or pending_bytes >= FLUSH_BYTES):
            flushed = True
            # Written while the next batch is hashed and cut: one write in
            # flight at a time, so the disk and the hashing overlap.
            if writing is not None:
                new_chunks += await writing
            writing = asyncio.ensure_future(store.put_many(list(pending)))
            pending.clear()
            pending_bytes = 0
        if batch is None and writing is not None:
            new_chunks += await writing
            writing = None

    # Pieces are gathered in a list and handed over as one batch, never
    # joined: the chunker copies them into its own buffer anyway, and a
    # joined batch was one more fresh 1 MiB allocation (page faults, and a
    # copy) per MiB of body.
    gathered: list[bytes] = []
    gathered_bytes = 0
    holding = False
    try:
        async for piece in pieces:
            if not piece:
                continue
            size += len(piece)
            gathered.append(piece)
            gathered_bytes += len(piece)
            if slots is not None and not holding and gathered_bytes >= WAIT_AFTER:
                await slots.acquire(weight)
                holding = True
            if gathered_bytes >= BATCH_BYTES:
                batch, gathered = gathered, []
                gathered_bytes = 0
                await process(batch)
        # A body that is small as a whole is hashed and cut on the event loop:
        # that takes microseconds, less than three hops to worker threads.
        on_loop = size <= SMALL_BODY
        if gathered:
            await process(gathered, on_loop)
        await process(None, on_loop)
    finally:
        if writing is not None:  # the body failed: stop the write, keep its error quiet
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
        if holding:
            assert slots is not None
            slots.release(weight)
    return Ingested(Manifest(tuple(refs)), size, md5.digest(), extra, new_chunks)


class ChunkReader:
    """Streams a byte range of a manifest's content from a chunk store."""

    def __init__(self, store: ChunkStore, manifest: Manifest) -> None:
        self.store = store
        self.manifest = manifest
        self.offsets: list[int] = []
        pos = 0
        for c in manifest.chunks:
            self.offsets.append(pos)
            pos += c.size
        self.size = pos

    async def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield bytes [start, end) (end exclusive, default the whole object)."""
        async for _, piece in self.read_chunks(start, end):
            yield piece

    async def read_chunks(
        self, start: int = 0, end: int | None = None
    ) -> AsyncIterator[tuple[ChunkRef, bytes]]:
        """Like read(), with the chunk each piece comes from: one piece per
        chunk the range overlaps, the whole chunk's bytes when it is covered."""
        stop = self.size if end is None else min(end, self.size)
        if start >= stop:
            return
        index = bisect.bisect_right(self.offsets, start) - 1
        # Fetch the next chunk while the current one is being sent.
        next_fetch: asyncio.Task[bytes] | None = None
        try:
            while index < len(self.manifest.chunks) and self.offsets[index] < stop:
                if next_fetch is None:
                    data = await self._fetch(self.manifest.chunks[index])
                else:
                    data = await next_fetch
                    next_fetch = None
                following = index + 1
                if following < len(self.manifest.chunks) and self.offsets[following] < stop:
                    next_fetch = asyncio.ensure_future(self._fetch(self.manifest.chunks[following]))
                chunk_start = self.offsets[index]
                lo = max(start - chunk_start, 0)
                hi = min(stop - chunk_start, len(data))
                piece = data[lo:hi] if (lo, hi) != (0, len(data)) else data
                yield self.manifest.chunks[index], piece
                index += 1
        finally:
            if next_fetch is not None:
                next_fetch.cancel()

    async def _fetch(self, ref: ChunkRef) -> bytes:
        return await read_piece(self.store, ref)


async def read_piece(store: ChunkStore, ref: ChunkRef) -> bytes:
    """A manifest piece's bytes: inline ones from the manifest, others from the store."""
    if ref.inline is not None:
        return ref.inline
    return await store.get(ref.id)


async def rejoin(
    parts: list[list[ChunkRef]],
    read: Callable[[ChunkRef], Awaitable[bytes]],
    store: ChunkSink,
    chunker_factory: Callable[[], StreamChunker] = StreamChunker,
) -> list[ChunkRef]:
    """The chunk list of parts joined end to end, with every seam re-cut so
    the result is what chunking the whole body at once would have given.

    Each part was chunked on its own, so its last chunk ends where the part
    ends, not where the content says, and its first chunks start at the part
    start. Concatenated as they are, an edit that shifts the bytes (a 1 MiB
    insert) would change two chunks at every later seam. Re-cutting from the
    start of the previous part's last chunk until a cut lands on one of the
    next part's own boundaries fixes that: FastCDC restarts its hash at every
    boundary, so from a shared boundary on both cut sequences agree. That is
    usually within a chunk or two, so a seam costs reading a few MiB, and new
    chunks are stored through `store`.
    """
    out: list[ChunkRef] = []
    chunker: StreamChunker | None = None
    emitted_end = 0  # where the last chunk in `out` ends, in the whole body
    part_start = 0
    for index, refs in enumerate(parts):
        part_size = sum(r.size for r in refs)
        if index == 0:
            out.extend(refs)
            emitted_end = part_start = part_size
            continue
        if chunker is None:
            tail = out.pop()
            emitted_end -= tail.size
            chunker = chunker_factory()
            emitted_end = await _recut(chunker, await read(tail), out, store, emitted_end)
        # The part's own cut points, but not its end (a seam, not a content cut),
        # each mapped to the index of the chunk ending there.
        ends: dict[int, int] = {}
        position = part_start
        for k, ref in enumerate(refs[:-1]):
            position += ref.size
            ends[position] = k
        for ref in refs:
            emitted_end = await _recut(chunker, await read(ref), out, store, emitted_end)
            if emitted_end in ends:
                # In step: the chunker holds whole chunks of this part from
                # here on, identical to the part's own. Keep those instead.
                out.extend(refs[ends[emitted_end] + 1 :])
                emitted_end = part_start + part_size
                chunker = None
                break
        part_start += part_size
    if chunker is not None:
        await _recut(chunker, None, out, store, emitted_end)
    return out


async def _recut(
    chunker: StreamChunker,
    data: bytes | None,
    out: list[ChunkRef],
    store: ChunkSink,
    emitted_end: int,
) -> int:
    """Feed data to a seam's chunker (None: finish it), store what it cuts;
    returns the new emitted end."""

    def cut() -> list[tuple[ChunkId, bytes]]:
        chunks = chunker.finish() if data is None else chunker.feed(data)
        return [(chunk_id(c), c) for c in chunks]

    named = await asyncio.to_thread(cut)
    if named:
        await store.put_many(named)
        for cid, c in named:
            out.append(ChunkRef(cid, len(c)))
            emitted_end += len(c)
    return emitted_end
