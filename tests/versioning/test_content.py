"""Content: rejoining separately chunked multipart parts gives exactly the
chunks of the whole body, and a shifted edit then costs what it costs for a
single PUT."""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from versioning.chunker import StreamChunker, chunk_id
from versioning.chunkstore.local import LocalChunkStore
from versioning.content import ChunkReader, MemorySlots, ingest, rejoin
from versioning.ids import ChunkId
from versioning.model import ChunkRef, Manifest

SMALL = {"avg_size": 256, "min_size": 64, "max_size": 1024}
small_chunker = functools.partial(StreamChunker, **SMALL)


def chunked(data: bytes) -> list[tuple[bytes, int]]:
    c = small_chunker()
    return [(chunk_id(x), len(x)) for x in c.feed(data) + c.finish()]


async def store_parts(store: LocalChunkStore, parts: list[bytes]) -> list[list[ChunkRef]]:
    out = []
    for part in parts:
        c = small_chunker()
        chunks = c.feed(part) + c.finish()
        await store.put_many([(chunk_id(x), x) for x in chunks])
        out.append([ChunkRef(chunk_id(x), len(x)) for x in chunks])
    return out


async def rejoined(store: LocalChunkStore, parts: list[bytes]) -> list[ChunkRef]:
    refs = await store_parts(store, parts)

    async def read(ref: ChunkRef) -> bytes:
        return await store.get(ref.id)

    return await rejoin(refs, read, store, small_chunker)


def sample(rng: random.Random, size: int, text: bool) -> bytes:
    """Random bytes, or low-entropy text: that has few content cuts, so seams
    fall inside long chunks."""
    return bytes(rng.choice(b"ab\n") for _ in range(size)) if text else rng.randbytes(size)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a] or [b""]


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 30_000),
    cuts=st.lists(st.integers(1, 30_000), max_size=8),
    text=st.booleans(),
)
def test_rejoined_parts_chunk_like_the_whole_body(
    seed: int, size: int, cuts: list[int], text: bool
) -> None:
    data = sample(random.Random(seed), size, text)
    parts = split(data, cuts)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalChunkStore(Path(tmp))

        async def go() -> None:
            refs = await rejoined(store, parts)
            assert [(r.id, r.size) for r in refs] == chunked(data)
            body = b"".join([p async for p in ChunkReader(store, Manifest(tuple(refs))).read()])
            assert body == data

        asyncio.run(go())


def test_an_insert_costs_the_same_as_for_one_put() -> None:
    """P6 for multipart uploads: after an insert, the parts' seams are where
    new chunks would appear if seams were not re-cut (two per later seam)."""
    rng = random.Random(7)
    base = rng.randbytes(200_000)
    edited = base[:100_000] + rng.randbytes(5_000) + base[100_000:]
    part = 20_000
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalChunkStore(Path(tmp))

        async def go() -> tuple[set[bytes], set[bytes]]:
            first = await rejoined(store, [base[i : i + part] for i in range(0, len(base), part)])
            second = await rejoined(
                store, [edited[i : i + part] for i in range(0, len(edited), part)]
            )
            return {r.id for r in first}, {r.id for r in second}

        before, after = asyncio.run(go())
    whole_before = {c for c, _ in chunked(base)}
    whole_after = {c for c, _ in chunked(edited)}
    assert before == whole_before and after == whole_after
    assert len(after - before) == len(whole_after - whole_before) <= 40


class _Fragments:
    """An edges sink that keeps a part's edge chunks in memory."""

    def __init__(self) -> None:
        self.chunks: dict[bytes, bytes] = {}

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        self.chunks.update(chunks)
        return 0


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 40_000),
    cuts=st.lists(st.integers(1, 40_000), max_size=8),
    text=st.booleans(),
)
def test_parts_with_fragments_leave_no_garbage(
    seed: int, size: int, cuts: list[int], text: bool
) -> None:
    """Parts ingested with their edges kept aside (as UploadPart does):
    every chunk stored at once is one of the object's, and rejoining them
    (reading edges from the fragments) still chunks like the whole body."""
    data = sample(random.Random(seed), size, text)
    parts = split(data, cuts)
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalChunkStore(Path(tmp))
        fragments = _Fragments()

        async def one(part: bytes) -> AsyncIterator[bytes]:
            yield part

        async def go() -> None:
            refs = []
            for part in parts:
                done = await ingest(
                    one(part), store, chunker_factory=small_chunker, edges=fragments
                )
                refs.append(list(done.manifest.chunks))
            stored = {cid async for cid in store.iter_ids()}

            async def read(ref: ChunkRef) -> bytes:
                if ref.id in fragments.chunks:
                    return fragments.chunks[ref.id]
                return await store.get(ref.id)

            out = await rejoin(refs, read, store, small_chunker)
            assert [(r.id, r.size) for r in out] == chunked(data)
            assert stored <= {r.id for r in out}, "a part stored a chunk the object lost"
            await store.put_many(
                [(r.id, fragments.chunks[r.id]) for r in out if r.id in fragments.chunks]
            )
            body = b"".join([p async for p in ChunkReader(store, Manifest(tuple(out))).read()])
            assert body == data

        asyncio.run(go())


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), text=st.booleans())
def test_every_enclosing_body_cuts_at_the_sync_point(seed: int, text: bool) -> None:
    rng = random.Random(seed)
    part = sample(rng, rng.randint(0, 12_000), text)
    at = small_chunker().sync_point(part)
    if at is None:
        return
    assert at in set(itertools.accumulate(size for _, size in chunked(part)))
    for _ in range(5):
        prefix = sample(rng, rng.randint(0, 3_000), text)
        suffix = sample(rng, rng.randint(0, 3_000), text)
        ends = set(itertools.accumulate(size for _, size in chunked(prefix + part + suffix)))
        assert len(prefix) + at in ends


def test_memory_slots_several_takers_never_deadlock() -> None:
    """Parts take two slots: with two slots in all, two parts and a body
    waiting at once all get through, one after another."""

    async def go() -> list[str]:
        slots = MemorySlots(2)
        order: list[str] = []

        async def take(name: str, n: int) -> None:
            await slots.acquire(n)
            order.append(name)
            await asyncio.sleep(0.01)
            slots.release(n)

        await asyncio.wait_for(
            asyncio.gather(take("a", 2), take("b", 2), take("c", 1), take("d", 2)), 5
        )
        return order

    assert sorted(asyncio.run(go())) == ["a", "b", "c", "d"]
