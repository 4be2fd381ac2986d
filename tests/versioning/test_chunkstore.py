"""The ChunkStore contract, run against every backend, plus backend specifics.

To add a backend, write an async context manager yielding a Harness (the store
plus a way to read and overwrite a stored object behind its back), wrap it in a
factory taking the fixture request (for fixtures such as a server) and a temp
dir, and add that to HARNESSES; every contract test then runs against it.

The S3 harnesses run against a moto server (tests/versioning/conftest.py), each
test in its own bucket; "s3-cached" adds a disk cache, whose write_stored also
drops the cached copy so that damage in S3 is what the next read sees.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from versioning.chunker import chunk_id
from versioning.chunkstore import (
    DEFAULT_CACHE_BYTES,
    ChunkMissing,
    ChunkStore,
    DiskCache,
    LocalChunkStore,
    S3ChunkStore,
    S3StoreError,
    decode_chunk,
    encode_chunk,
    open_store,
)
from versioning.chunkstore.base import RAW, ZSTD, fragments_of
from versioning.errors import CorruptData
from versioning.ids import ChunkId


@dataclass
class Harness:
    store: ChunkStore
    read_stored: Callable[[ChunkId], Awaitable[bytes]]
    write_stored: Callable[[ChunkId, bytes], Awaitable[None]]


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


def local_harness(request: pytest.FixtureRequest, tmp_path: Path) -> HarnessFactory:
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


# -- S3 ---------------------------------------------------------------------------

# One aioboto3 session for the harnesses: it caches the parsed S3 service model,
# which costs ~100 ms to load per session. Counting tests make their own, so
# their event hooks see only their store's requests.
_shared_session: Any = None


def shared_session() -> Any:
    global _shared_session
    if _shared_session is None:
        import aioboto3

        _shared_session = aioboto3.Session()
    return _shared_session


def boto3_client(endpoint: str) -> Any:
    """A plain boto3 client, for looking at and damaging objects behind the store."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint: str) -> str:
    name = f"chunks-{uuid.uuid4().hex[:16]}"
    boto3_client(endpoint).create_bucket(Bucket=name)
    return name


class RequestCounter:
    """A session whose clients count the requests they send, per operation
    (before-send fires per HTTP attempt, so retries would show too)."""

    def __init__(self) -> None:
        import aioboto3

        self.session = aioboto3.Session()
        self.sent: dict[str, int] = {}
        self.session.events.register("before-send.s3", self._count)

    def _count(self, event_name: str, **kwargs: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        self.sent[op] = self.sent.get(op, 0) + 1

    @property
    def gets(self) -> int:
        return self.sent.get("GetObject", 0)


def s3_harness_factory(
    cached: bool, prefix: str
) -> Callable[[pytest.FixtureRequest, Path], HarnessFactory]:
    def factory(request: pytest.FixtureRequest, tmp_path: Path) -> HarnessFactory:
        endpoint: str = request.getfixturevalue("moto_s3")

        @asynccontextmanager
        async def make() -> AsyncIterator[Harness]:
            bucket = new_bucket(endpoint)
            raw = boto3_client(endpoint)
            store = S3ChunkStore(
                bucket,
                prefix,
                endpoint_url=endpoint,
                cache_dir=tmp_path / "cache" if cached else None,
                cache_bytes=64 * 1024 * 1024 if cached else 0,
                session=shared_session(),
            )

            async def read_stored(cid: ChunkId) -> bytes:
                body: bytes = raw.get_object(Bucket=bucket, Key=store.key_of(cid))["Body"].read()
                return body

            async def write_stored(cid: ChunkId, stored: bytes) -> None:
                raw.put_object(Bucket=bucket, Key=store.key_of(cid), Body=stored)
                if store.cache is not None:
                    # Otherwise the intact write-through copy would mask the damage.
                    store.cache.path_of(cid).unlink(missing_ok=True)

            try:
                yield Harness(store, read_stored, write_stored)
            finally:
                await store.close()

        return make

    return factory


HARNESSES: dict[str, Callable[[pytest.FixtureRequest, Path], HarnessFactory]] = {
    "local": local_harness,
    "s3": s3_harness_factory(cached=False, prefix="loxo/chunks"),
    "s3-cached": s3_harness_factory(cached=True, prefix=""),
}


@pytest.fixture(params=sorted(HARNESSES))
def make_harness(request: pytest.FixtureRequest, tmp_path: Path) -> HarnessFactory:
    return HARNESSES[request.param](request, tmp_path)


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


def test_fragments(make_harness: HarnessFactory) -> None:
    """A multipart upload's fragments: outside the chunk namespace, verified
    on read, promoted to chunks, deleted per upload."""

    async def body(h: Harness) -> None:
        fragments = fragments_of(h.store)
        assert fragments is not None
        upload, other = "0abc", "0def"
        kept, spare, theirs = chunk(rand(3000, 1)), chunk(compressible(50_000)), chunk(rand(10, 3))
        await fragments.put_fragments(upload, [kept, spare])
        await fragments.put_fragments(other, [theirs])
        assert [i async for i in h.store.iter_ids()] == []
        assert not await h.store.has(kept[0])
        assert await fragments.fragment_ids(upload) == {kept[0], spare[0]}
        assert await fragments.get_fragment(upload, spare[0]) == spare[1]
        with pytest.raises(ChunkMissing):
            await fragments.get_fragment(other, kept[0])
        with pytest.raises(ValueError):
            await fragments.put_fragments(upload, [(kept[0], b"other bytes")])
        with pytest.raises(ValueError):
            await fragments.fragment_ids("../up")
        assert sorted(await fragments.fragment_uploads()) == [upload, other]

        await fragments.promote_fragments(upload, [kept[0]])
        await fragments.promote_fragments(upload, [kept[0]])  # already a chunk: fine
        assert await h.store.get(kept[0]) == kept[1]
        assert [i async for i in h.store.iter_ids()] == [kept[0]]
        await fragments.delete_fragments(upload)
        assert await fragments.fragment_ids(upload) == set()
        assert await fragments.fragment_uploads() == [other]
        assert await h.store.get(kept[0]) == kept[1]  # the chunk outlives its fragment
        await fragments.delete_fragments(upload)  # none left is fine

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
    "url", ["gs://bucket/prefix", "/plain/path", "file://", "", "http://x", "file:///a?b=c"]
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


# -- S3 backend specifics ------------------------------------------------------


def s3_store(endpoint: str, bucket: str, session: Any = None, **kwargs: Any) -> S3ChunkStore:
    return S3ChunkStore(
        bucket, kwargs.pop("prefix", "p"), endpoint_url=endpoint, session=session, **kwargs
    )


def test_s3_layout_and_encoding(moto_s3: str) -> None:
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        store = s3_store(moto_s3, bucket, prefix="/a/b/", session=shared_session())
        text = compressible(100_000)
        cid, _ = chunk(text)
        await store.put(cid, text)
        await store.close()
        h = cid.hex()
        assert store.key_of(cid) == f"a/b/{h[:2]}/{h}"
        keys = [o["Key"] for o in boto3_client(moto_s3).list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == [f"a/b/{h[:2]}/{h}"]
        stored = boto3_client(moto_s3).get_object(Bucket=bucket, Key=keys[0])["Body"].read()
        assert stored == encode_chunk(text)  # the shared on-store encoding
        assert S3ChunkStore(bucket).key_of(cid) == f"{h[:2]}/{h}"

    asyncio.run(main())


def test_s3_get_is_single_flight(moto_s3: str) -> None:
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        counter = RequestCounter()
        store = s3_store(moto_s3, bucket, counter.session)
        cid, data = chunk(rand(3 * 1024 * 1024, 4))
        await store.put(cid, data)
        results = await asyncio.gather(*(store.get(cid) for _ in range(50)))
        assert all(r == data for r in results)
        assert counter.gets == 1
        # The flight is gone once it lands: a later get fetches again.
        assert await store.get(cid) == data
        assert counter.gets == 2

        # A failure reaches every waiter, and leaves nothing behind.
        absent = chunk_id(b"absent")
        missing = await asyncio.gather(
            *(store.get(absent) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(e, ChunkMissing) for e in missing)
        assert counter.gets == 3
        await store.put(absent, b"absent")
        assert await store.get(absent) == b"absent"
        assert counter.gets == 4

        # One waiter giving up does not cancel the fetch the others share.
        waiters = [asyncio.ensure_future(store.get(cid)) for _ in range(5)]
        await asyncio.sleep(0)
        waiters[0].cancel()
        done = await asyncio.gather(*waiters[1:])
        assert all(r == data for r in done)
        assert counter.gets == 5
        await store.close()

    asyncio.run(main())


def test_s3_corruption_reaches_every_waiter(moto_s3: str) -> None:
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        counter = RequestCounter()
        store = s3_store(moto_s3, bucket, counter.session)
        cid, data = chunk(rand(10_000))
        await store.put(cid, data)
        raw = boto3_client(moto_s3)
        raw.put_object(Bucket=bucket, Key=store.key_of(cid), Body=b"\x00" + b"x" * 10_000)
        errors = await asyncio.gather(*(store.get(cid) for _ in range(10)), return_exceptions=True)
        assert all(type(e) is CorruptData for e in errors)
        assert counter.gets == 1
        raw.put_object(Bucket=bucket, Key=store.key_of(cid), Body=encode_chunk(data))
        assert await store.get(cid) == data  # not poisoned by the failed flight
        await store.close()

    asyncio.run(main())


def test_s3_cache_hits_avoid_round_trips(moto_s3: str, tmp_path: Path) -> None:
    bucket = new_bucket(moto_s3)
    cache_dir = tmp_path / "cache"

    async def main() -> None:
        counter = RequestCounter()
        store = s3_store(moto_s3, bucket, counter.session, cache_dir=cache_dir, cache_bytes=1 << 24)
        written = chunk(compressible(200_000))
        await store.put(*written)  # write-through
        assert await store.get(written[0]) == written[1]
        assert counter.gets == 0

        # A chunk written by someone else is fetched once, then served locally.
        other = chunk(rand(50_000, 7))
        plain = s3_store(moto_s3, bucket, shared_session())
        await plain.put(*other)
        await plain.close()
        for _ in range(3):
            assert await store.get(other[0]) == other[1]
        assert counter.gets == 1
        assert store.cache is not None and store.cache.hits >= 3
        await store.close()

        # A new store over the same directory rebuilds its index from the files.
        counter2 = RequestCounter()
        again = s3_store(
            moto_s3, bucket, counter2.session, cache_dir=cache_dir, cache_bytes=1 << 24
        )
        for cid, data in (written, other):
            assert await again.get(cid) == data
        assert counter2.gets == 0
        # delete() drops the cached copy too: the next get asks S3, which says missing.
        await again.delete(written[0])
        assert again.cache is not None
        assert not again.cache.path_of(written[0]).exists()
        with pytest.raises(ChunkMissing):
            await again.get(written[0])
        assert counter2.gets == 1
        await again.close()

    asyncio.run(main())


def test_s3_corrupt_cache_file_is_refetched(moto_s3: str, tmp_path: Path) -> None:
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        counter = RequestCounter()
        store = s3_store(
            moto_s3, bucket, counter.session, cache_dir=tmp_path / "c", cache_bytes=1 << 24
        )
        cid, data = chunk(compressible(100_000))
        await store.put(cid, data)
        assert store.cache is not None
        path = store.cache.path_of(cid)
        good = path.read_bytes()
        damaged = bytearray(good)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert await store.get(cid) == data  # detected, dropped, fetched from S3
        assert counter.gets == 1
        assert path.read_bytes() == good  # and the cache refilled with good bytes
        assert await store.get(cid) == data
        assert counter.gets == 1
        await store.close()

    asyncio.run(main())


def test_disk_cache_eviction_keeps_bound(tmp_path: Path) -> None:
    async def main() -> None:
        stored = {
            cid: encode_chunk(data) for cid, data in (chunk(rand(3000, s)) for s in range(10))
        }
        size = len(next(iter(stored.values())))
        cache = DiskCache(tmp_path / "c", max_bytes=4 * size)
        ids = list(stored)
        for i, cid in enumerate(ids):
            await cache.put(cid, stored[cid])
            if i >= 1:
                assert await cache.get(ids[0]) is not None  # keeps ids[0] most recent
            on_disk = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
            assert cache.total_bytes <= cache.max_bytes
            assert on_disk == cache.total_bytes
        assert len(cache) == 4
        assert ids[0] in cache and all(cid in cache for cid in ids[-3:])
        assert await cache.get(ids[1]) is None
        # Too big for the whole cache: not cached, nothing evicted for it.
        huge = chunk(rand(5 * size, 99))
        await cache.put(huge[0], encode_chunk(huge[1]))
        assert huge[0] not in cache and len(cache) == 4

        # A restart with a smaller bound evicts down to it, least recent first.
        (tmp_path / "c" / ids[0].hex()[:2] / f".{ids[0].hex()}.1.ab.tmp").write_bytes(b"junk")
        smaller = DiskCache(tmp_path / "c", max_bytes=2 * size)
        await smaller.load()
        assert len(smaller) == 2 and smaller.total_bytes <= 2 * size
        files = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
        assert sorted(p.name for p in files) == sorted(c.hex() for c in ids if c in smaller)

        disabled = DiskCache(tmp_path / "off", max_bytes=0)
        await disabled.put(ids[0], stored[ids[0]])
        assert await disabled.get(ids[0]) is None
        assert not (tmp_path / "off").exists()

    asyncio.run(main())


def test_disk_cache_drops_damaged_and_vanished_files(tmp_path: Path) -> None:
    async def main() -> None:
        cache = DiskCache(tmp_path, max_bytes=1 << 20)
        a, b = chunk(rand(1000, 1)), chunk(rand(1000, 2))
        for cid, data in (a, b):
            await cache.put(cid, encode_chunk(data))
        assert await cache.get(a[0]) == a[1]
        cache.path_of(a[0]).write_bytes(encode_chunk(b[1]))  # valid encoding, wrong id
        assert await cache.get(a[0]) is None
        assert not cache.path_of(a[0]).exists() and a[0] not in cache
        cache.path_of(b[0]).unlink()
        assert await cache.get(b[0]) is None
        assert b[0] not in cache and cache.total_bytes == 0

    asyncio.run(main())


def test_s3_iter_ids_skips_foreign_keys(moto_s3: str) -> None:
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        store = s3_store(moto_s3, bucket, shared_session(), prefix="p")
        cid, data = chunk(b"payload")
        await store.put(cid, data)
        h = cid.hex()
        other = "0" * 64 if not h.startswith("00") else "f" * 64
        raw = boto3_client(moto_s3)
        for key in (
            f"p/{other[:2]}x/{other}",  # not a fan-out directory
            f"p/{h[:2]}/{h}.tmp",
            f"p/{h[:2]}/{h.upper()}",
            f"p/{'ab' if not h.startswith('ab') else 'cd'}/{h}",  # filed under the wrong fan-out
            f"p/{h[:2]}/{h}/nested",
            "p/README",
            f"{h[:2]}/{h}",  # outside the prefix
            f"pp/{other[:2]}/{other}",  # a sibling prefix that merely starts with "p"
        ):
            raw.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert [i async for i in store.iter_ids()] == [cid]
        await store.close()

    asyncio.run(main())


def test_s3_lists_many_pages(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import versioning.chunkstore.s3 as s3

    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 7)
    bucket = new_bucket(moto_s3)

    async def main() -> None:
        counter = RequestCounter()
        store = s3_store(moto_s3, bucket, counter.session)
        raw = boto3_client(moto_s3)
        ids = [chunk(rand(8, s))[0] for s in range(30)]
        for cid in ids:
            raw.put_object(Bucket=bucket, Key=store.key_of(cid), Body=b"")
        assert sorted([i async for i in store.iter_ids()]) == sorted(ids)
        assert counter.sent["ListObjectsV2"] == 5  # 30 keys, 7 per page
        await store.close()

    asyncio.run(main())


def test_s3_errors_name_the_bucket_and_endpoint(
    moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        store = s3_store(moto_s3, "no-such-bucket-here", shared_session())
        with pytest.raises(S3StoreError, match=r"s3://no-such-bucket-here/p at http://127\.0\.0"):
            await store.get(chunk_id(b"x"))
        await store.close()

        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        import aioboto3

        anonymous = s3_store(moto_s3, "some-bucket", aioboto3.Session())
        with pytest.raises(S3StoreError, match=r"some-bucket.*NoCredentialsError"):
            await anonymous.has(chunk_id(b"x"))
        await anonymous.close()

    asyncio.run(main())


def test_open_store_s3_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    plain = open_store("s3://my-bucket")
    assert isinstance(plain, S3ChunkStore)
    assert (plain.bucket, plain.prefix, plain.endpoint_url) == ("my-bucket", "", None)
    assert plain.cache is None  # no cache_dir, no cache
    nested = open_store("s3://my.bucket/a/b/", endpoint="http://minio:9000", region="eu-west-1")
    assert isinstance(nested, S3ChunkStore)
    assert (nested.bucket, nested.prefix) == ("my.bucket", "a/b")
    assert (nested.endpoint_url, nested.region) == ("http://minio:9000", "eu-west-1")
    assert isinstance(open_store("s3://b-1/"), S3ChunkStore)

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    from_env = open_store("s3://bucket")
    assert isinstance(from_env, S3ChunkStore) and from_env.endpoint_url == "http://generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:2")
    from_env = open_store("s3://bucket")
    assert isinstance(from_env, S3ChunkStore) and from_env.endpoint_url == "http://s3-specific:2"
    explicit = open_store("s3://bucket", endpoint="http://explicit:3")
    assert isinstance(explicit, S3ChunkStore) and explicit.endpoint_url == "http://explicit:3"

    cached = open_store("s3://bucket/x", cache_dir=tmp_path / "cache")
    assert isinstance(cached, S3ChunkStore) and cached.cache is not None
    assert cached.cache.max_bytes == DEFAULT_CACHE_BYTES
    assert cached.cache.directory == tmp_path / "cache"
    off = open_store("s3://bucket/x", cache_dir=tmp_path / "cache", cache_bytes=0)
    assert isinstance(off, S3ChunkStore) and off.cache is None


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///prefix",
        "s3://ab",
        "s3://-bucket",
        "s3://bad bucket/p",
        "s3://a..b",
        "s3://bucket?x=1",
        "s3://bucket/p#frag",
        "s3://" + "b" * 64,
    ],
)
def test_open_store_rejects_bad_s3_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"chunk store URL.*s3://bucket"):
        open_store(url)


def test_open_store_unsupported_lists_every_form() -> None:
    with pytest.raises(ValueError) as e:
        open_store("gs://bucket")
    assert "file:///abs/path" in str(e.value) and "file://rel/path" in str(e.value)
    assert "s3://bucket" in str(e.value)


def test_local_promotion_copies_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that refuses hard links gets the fragment copied."""

    def refuse(src: str, dst: str) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", refuse)
    store = LocalChunkStore(tmp_path / "chunks")
    cid, data = chunk(rand(70_000, 9))

    async def go() -> None:
        await store.put_fragments("0a", [(cid, data)])
        await store.promote_fragments("0a", [cid])
        await store.delete_fragments("0a")
        assert await store.get(cid) == data

    asyncio.run(go())
    assert store.path_of(cid).stat().st_nlink == 1
