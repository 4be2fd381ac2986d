"""The ChunkStore contract, run against every backend, plus backend specifics.

To add a backend, write an async context manager yielding a Harness (the store
plus a way to read and overwrite a stored object behind its back) and add it to
HARNESSES; every contract test then runs against it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from versioning.chunker import chunk_id
from versioning.chunkstore import (
    ChunkMissing,
    ChunkStore,
    LocalChunkStore,
    decode_chunk,
    encode_chunk,
    open_store,
)
from versioning.chunkstore.base import RAW, ZSTD
from versioning.errors import CorruptData
from versioning.ids import ChunkId


@dataclass
class Harness:
    store: ChunkStore
    read_stored: Callable[[ChunkId], Awaitable[bytes]]
    write_stored: Callable[[ChunkId, bytes], Awaitable[None]]


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


def local_harness(tmp_path: Path) -> HarnessFactory:
    @asynccontextmanager
    async def make() -> AsyncIterator[Harness]:
        store = LocalChunkStore(tmp_path / "chunks")

        async def read_stored(cid: ChunkId) -> bytes:
            return store.path_of(cid).read_bytes()

        async def write_stored(cid: ChunkId, stored: bytes) -> None:
            store.path_of(cid).write_bytes(stored)

        try:
            yield Harness(store, read_stored, write_stored)
        finally:
            await store.close()

    return make


HARNESSES: dict[str, Callable[[Path], HarnessFactory]] = {"local": local_harness}


@pytest.fixture(params=sorted(HARNESSES))
def make_harness(request: pytest.FixtureRequest, tmp_path: Path) -> HarnessFactory:
    return HARNESSES[request.param](tmp_path)


def run(make_harness: HarnessFactory, body: Callable[[Harness], Awaitable[None]]) -> None:
    """Run body against a fresh store, inside one event loop (stores may hold
    loop-bound clients, so they are made inside the loop)."""

    async def main() -> None:
        async with make_harness() as h:
            await body(h)

    asyncio.run(main())


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def compressible(n: int) -> bytes:
    rows = (f"{i},user{i % 97},{i * 31 % 1000}.25,ok\n".encode() for i in range(n))
    return b"".join(rows)[:n]


def chunk(data: bytes) -> tuple[ChunkId, bytes]:
    return chunk_id(data), data


# -- contract ----------------------------------------------------------------


def test_put_get_round_trip(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        for data in (b"", b"x", rand(1000), rand(1024 * 1024, 1), compressible(300_000)):
            cid, _ = chunk(data)
            assert await h.store.put(cid, data) is True
            assert await h.store.get(cid) == data

    run(make_harness, body)


def test_put_is_idempotent_and_dedups(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        cid, data = chunk(rand(5000))
        assert await h.store.put(cid, data) is True
        assert await h.store.put(cid, data) is False
        assert await h.store.put_many([(cid, data)]) == 0
        assert await h.store.get(cid) == data

    run(make_harness, body)


def test_put_rejects_wrong_id(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        cid = chunk_id(b"one thing")
        with pytest.raises(ValueError):
            await h.store.put(cid, b"another thing")
        with pytest.raises(ValueError):
            await h.store.put_many([(cid, b"another thing")])
        assert not await h.store.has(cid)

    run(make_harness, body)


def test_has_and_delete(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        cid, data = chunk(rand(100))
        assert not await h.store.has(cid)
        await h.store.put(cid, data)
        assert await h.store.has(cid)
        await h.store.delete(cid)
        assert not await h.store.has(cid)
        await h.store.delete(cid)  # absent is fine
        with pytest.raises(ChunkMissing):
            await h.store.get(cid)
        assert await h.store.put(cid, data) is True  # can come back after gc

    run(make_harness, body)


def test_missing_chunk_raises_chunk_missing(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        cid = chunk_id(b"never stored")
        with pytest.raises(ChunkMissing) as e:
            await h.store.get(cid)
        assert isinstance(e.value, CorruptData)

    run(make_harness, body)


def test_iter_ids(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        assert [i async for i in h.store.iter_ids()] == []
        chunks = [chunk(rand(50, seed)) for seed in range(300)]
        await h.store.put_many(chunks)
        ids = [i async for i in h.store.iter_ids()]
        assert len(ids) == len(chunks)
        assert set(ids) == {cid for cid, _ in chunks}
        await h.store.delete(chunks[0][0])
        assert {i async for i in h.store.iter_ids()} == {cid for cid, _ in chunks[1:]}

    run(make_harness, body)


def test_put_many(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        a, b, c = chunk(rand(10, 1)), chunk(rand(2_000_000, 2)), chunk(compressible(100_000))
        assert await h.store.put_many([]) == 0
        assert await h.store.put(*a) is True
        # a exists already; c appears twice in the batch but is written once.
        assert await h.store.put_many([a, b, c, c]) == 2
        for cid, data in (a, b, c):
            assert await h.store.get(cid) == data

    run(make_harness, body)


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
@pytest.mark.parametrize("kind", ["raw", "zstd"])
def test_corruption_is_detected(make_harness: HarnessFactory, damage: str, kind: str) -> None:
    async def body(h: Harness) -> None:
        data = rand(10_000) if kind == "raw" else compressible(10_000)
        cid, _ = chunk(data)
        await h.store.put(cid, data)
        stored = bytearray(await h.read_stored(cid))
        assert stored[0] == (RAW if kind == "raw" else ZSTD)
        if damage == "flip":
            stored[len(stored) // 2] ^= 0x40
        elif damage == "truncate":
            del stored[len(stored) // 2 :]
        elif damage == "header":
            stored[0] = 0x7F
        else:
            stored.clear()
        await h.write_stored(cid, bytes(stored))
        with pytest.raises(CorruptData) as e:
            await h.store.get(cid)
        assert not isinstance(e.value, ChunkMissing)

    run(make_harness, body)


def test_compressible_data_is_stored_compressed(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        text = compressible(1024 * 1024)
        noise = rand(1024 * 1024)
        await h.store.put_many([chunk(text), chunk(noise)])
        stored_text = await h.read_stored(chunk_id(text))
        stored_noise = await h.read_stored(chunk_id(noise))
        assert stored_text[0] == ZSTD and len(stored_text) < len(text) // 2
        assert stored_noise[0] == RAW and len(stored_noise) == len(noise) + 1
        assert await h.store.get(chunk_id(text)) == text
        assert await h.store.get(chunk_id(noise)) == noise

    run(make_harness, body)


def test_concurrent_puts_of_one_chunk(make_harness: HarnessFactory) -> None:
    async def body(h: Harness) -> None:
        cid, data = chunk(rand(256 * 1024, 9))
        results = await asyncio.gather(*(h.store.put(cid, data) for _ in range(64)))
        assert any(results)  # several may report a write when they race
        others = [chunk(rand(1000, s)) for s in range(20)]
        counts = await asyncio.gather(
            *(h.store.put_many([(cid, data), *others]) for _ in range(16))
        )
        assert all(0 <= n <= len(others) for n in counts)
        assert await h.store.get(cid) == data
        assert {i async for i in h.store.iter_ids()} == {cid} | {c for c, _ in others}

    run(make_harness, body)


# -- codec -------------------------------------------------------------------


def test_codec_round_trip_and_threshold() -> None:
    for data in (b"", b"a", rand(5000), compressible(5000), b"\0" * 100_000):
        stored = encode_chunk(data)
        assert decode_chunk(chunk_id(data), stored) == data
    assert encode_chunk(rand(5000))[0] == RAW
    assert encode_chunk(b"")[0] == RAW
    assert encode_chunk(b"\0" * 100_000)[0] == ZSTD


def test_codec_rejects_wrong_id() -> None:
    with pytest.raises(CorruptData):
        decode_chunk(chunk_id(b"a"), encode_chunk(b"b"))


# -- local backend specifics ---------------------------------------------------


def test_local_layout_and_no_temp_files_left(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalChunkStore(tmp_path / "deep" / "root")
        cid, data = chunk(rand(4096))
        await store.put(cid, data)
        h = cid.hex()
        assert store.path_of(cid) == tmp_path / "deep" / "root" / h[:2] / h[2:4] / h
        assert store.path_of(cid).is_file()
        files = [p for p in (tmp_path / "deep").rglob("*") if p.is_file()]
        assert files == [store.path_of(cid)]

    asyncio.run(main())


def test_local_iter_ids_skips_foreign_files(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalChunkStore(tmp_path)
        cid, data = chunk(b"payload")
        await store.put(cid, data)
        d = store.path_of(cid).parent
        (d / f".{cid.hex()}.123.abcdef.tmp").write_bytes(b"partial")  # crashed writer
        (d / ("0" * 64)).write_bytes(b"misfiled")  # wrong prefix for this dir
        (tmp_path / "README").write_text("not a chunk")
        (tmp_path / "zz").mkdir()
        assert [i async for i in store.iter_ids()] == [cid]

    asyncio.run(main())


def test_open_store_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    abs_store = open_store(f"file://{tmp_path}/abs")
    assert isinstance(abs_store, LocalChunkStore)
    assert abs_store.root == tmp_path / "abs"
    monkeypatch.chdir(tmp_path)
    rel_store = open_store("file://rel/chunks")
    assert isinstance(rel_store, LocalChunkStore)
    assert rel_store.root == tmp_path / "rel" / "chunks"
    spaced = open_store("file://with%20space")
    assert isinstance(spaced, LocalChunkStore)
    assert spaced.root == tmp_path / "with space"


@pytest.mark.parametrize(
    "url", ["s3://bucket/prefix", "/plain/path", "file://", "", "http://x", "file:///a?b=c"]
)
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="chunk store URL"):
        open_store(url)


def test_local_store_survives_reopen(tmp_path: Path) -> None:
    async def main() -> None:
        cid, data = chunk(rand(3000))
        await LocalChunkStore(tmp_path).put(cid, data)
        again = open_store(f"file://{tmp_path}")
        assert await again.get(cid) == data
        assert await again.put(cid, data) is False

    asyncio.run(main())


def test_local_get_with_unreadable_root_is_missing(tmp_path: Path) -> None:
    async def main() -> None:
        store = LocalChunkStore(tmp_path / "does-not-exist")
        with pytest.raises(ChunkMissing):
            await store.get(chunk_id(b"x"))
        assert not await store.has(chunk_id(b"x"))
        assert [i async for i in store.iter_ids()] == []
        assert not os.path.exists(tmp_path / "does-not-exist")  # reads create nothing

    asyncio.run(main())


def test_local_failed_write_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import versioning.chunkstore.local as local

    def failing_sync(fd: int) -> None:
        raise OSError(5, "simulated I/O error")

    async def main() -> None:
        store = LocalChunkStore(tmp_path)
        batch = [chunk(rand(1000, s)) for s in range(40)]  # more than one wave
        monkeypatch.setattr(local, "_datasync", failing_sync)
        with pytest.raises(OSError, match="simulated"):
            await store.put_many(batch)
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
        monkeypatch.undo()
        assert await store.put_many(batch) == len(batch)
        assert {i async for i in store.iter_ids()} == {cid for cid, _ in batch}

    asyncio.run(main())


def test_local_dedup_hit_syncs_recent_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A racing writer may have renamed the chunk but not yet fsynced its
    # directory; a put that dedups against it must not return before that.
    import versioning.chunkstore.local as local

    synced: list[str] = []
    real = local._fsync_dir

    def recording(path: str) -> None:
        synced.append(path)
        real(path)

    async def main() -> None:
        store = LocalChunkStore(tmp_path)
        cid, data = chunk(rand(1000))
        await store.put(cid, data)
        monkeypatch.setattr(local, "_fsync_dir", recording)
        assert await store.put(cid, data) is False
        assert str(store.path_of(cid).parent) in synced
        synced.clear()
        monkeypatch.setattr(local, "_RECENT_SECONDS", -1.0)  # as if written long ago
        assert await store.put(cid, data) is False
        assert synced == []

    asyncio.run(main())


def test_large_chunks_are_judged_on_a_sample() -> None:
    """Chunks over 8 samples are compressed only when a sample of their start,
    middle and end shrinks: random bytes stay raw, text compresses, and both
    round-trip."""
    noise = rand(1 << 20)
    text = b"".join(b"line %d of a log file with words\n" % i for i in range(40_000))
    assert encode_chunk(noise)[0] == RAW
    assert encode_chunk(text)[0] == ZSTD
    for data in (noise, text):
        assert decode_chunk(chunk_id(data), encode_chunk(data)) == data
