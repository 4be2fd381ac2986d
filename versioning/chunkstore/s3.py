"""A chunk store in an S3-compatible bucket, optionally fronted by a local disk cache.

Layout: one object per chunk at <prefix>/<ab>/<64 hex id> (just <ab>/<64 hex id>
when the prefix is empty), where ab is the id's first byte. Object bytes are
the shared stored encoding from base.py, so chunks can be copied byte for byte
between this store and a LocalChunkStore. The fan-out spreads keys over 256
key prefixes: S3 scales request rates per prefix, and ids are uniformly
random, so load spreads evenly.

Durability: S3 acknowledges a PUT only once the object is durably stored, so
put() is durable when it returns. Objects are never rewritten in place (a put
of an existing id is skipped after a HEAD), so readers see whole objects.

Reads are single-flight: concurrent get()s of one id share one fetch (cache
read, else one GET), so a hot chunk requested by many readers at once costs
one round trip. Puts of one id in flight at once are shared the same way.
Every read is verified (decode_chunk): CorruptData on damage, ChunkMissing on
NoSuchKey.

The disk cache (cache.py) holds stored bytes of recently read and written
chunks. It serves get() only: has() and put()'s dedup check always ask S3,
because another node's garbage collector may have deleted a chunk we still
hold locally, and a write must not be skipped on the strength of a stale copy.

Credentials and, unless given, the region come from the standard AWS chain
(environment, shared config, instance metadata). The identity needs
s3:ListBucket as well as object access: without it S3 answers a HEAD of a
missing key with 403 instead of 404, and absent could not be told from
forbidden. The client is created on first use (it is bound to the running
event loop) and checks the bucket once, so a wrong bucket, endpoint or
credentials fail with an S3StoreError naming them.

zstd and BLAKE3 work (up to 4 MiB per chunk) runs in worker threads.

One module: the store, its single-flight reads and its cache hook share the
in-flight maps, which is why it is a little over 400 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from versioning.chunkstore.base import (
    ChunkMissing,
    FragmentStore,
    check_id,
    check_upload_id,
    decode_chunk,
    encode_chunk,
    is_upload_id,
)
from versioning.chunkstore.cache import DiskCache
from versioning.ids import ChunkId

_T = TypeVar("_T")

_KEY_TAIL = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# aiohttp keeps this many connections per client: enough for PUT_CONCURRENCY
# uploads plus concurrent reads, and well under any server's per-client limit.
MAX_POOL_CONNECTIONS = 32
# Object uploads one store runs at once (put/put_many together): bounds memory
# (each holds an encoded copy of up to 4 MiB) and leaves pool room for reads.
PUT_CONCURRENCY = 16
# "standard" retries throttling and transient 5xx with backoff and jitter;
# 5 attempts ride out a short S3 brown-out without stalling a request forever.
RETRIES = {"mode": "standard", "max_attempts": 5}

# Keys per ListObjectsV2 page: S3's maximum, so a listing of n chunks costs
# n/1000 requests. A module constant so tests can force several pages cheaply.
LIST_PAGE_SIZE = 1000

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3StoreError(OSError):
    """The S3 chunk store could not do its job (bucket, endpoint, credentials,
    network); the message names the bucket and endpoint."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_missing(exc: ClientError) -> bool:
    """The object is absent (a missing bucket is also a 404, but an error)."""
    code = _error_code(exc)
    return code != "NoSuchBucket" and (code in _MISSING_CODES or _status(exc) == 404)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A flight whose waiters were all cancelled still finishes; fetching its
    # exception here keeps asyncio from logging "never retrieved".
    if not task.cancelled():
        task.exception()


class _SingleFlight:
    """One in-flight call per key; later callers for that key await the same task.

    The entry goes away when the task ends, success or failure, so an error
    reaches every waiter of that flight and the next call starts afresh.
    """

    def __init__(self) -> None:
        self._tasks: dict[ChunkId, asyncio.Task[Any]] = {}

    def current(self, key: ChunkId) -> asyncio.Task[Any] | None:
        return self._tasks.get(key)

    async def run(self, key: ChunkId, fn: Callable[[], Coroutine[Any, Any, _T]]) -> tuple[_T, bool]:
        """fn()'s result, and whether this caller started the flight."""
        task = self._tasks.get(key)
        leader = task is None
        if task is None:
            task = asyncio.create_task(fn())
            self._tasks[key] = task

            def done(t: asyncio.Task[Any], key: ChunkId = key) -> None:
                if self._tasks.get(key) is t:
                    del self._tasks[key]
                _retrieve(t)

            task.add_done_callback(done)
        # Shielded: one waiter giving up (a client disconnect) must not cancel
        # the fetch the other waiters share.
        result: _T = await asyncio.shield(task)
        return result, leader


class S3ChunkStore:
    """ChunkStore on an S3-compatible bucket. Use from one event loop."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        cache_dir: Path | None = None,
        cache_bytes: int = 0,
        session: aioboto3.Session | None = None,
    ) -> None:
        """A store in `bucket` under `prefix` ("" for the bucket's root).

        endpoint_url: e.g. http://127.0.0.1:9000 for MinIO; None for AWS.
        cache_dir, cache_bytes: a DiskCache of at most cache_bytes there;
        none when cache_dir is None or cache_bytes <= 0.
        session: the aioboto3 session to make the client from (default: a new
        one using the standard credential chain).
        """
        if not bucket:
            raise ValueError("S3ChunkStore needs a bucket name")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._key_prefix = f"{self._prefix}/" if self._prefix else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._session = session
        self._cache = (
            DiskCache(cache_dir, cache_bytes) if cache_dir is not None and cache_bytes > 0 else None
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._put_slots = asyncio.Semaphore(PUT_CONCURRENCY)
        self._gets = _SingleFlight()
        self._puts = _SingleFlight()

    def __repr__(self) -> str:
        return f"S3ChunkStore({self.where})"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    @property
    def region(self) -> str | None:
        return self._region

    @property
    def cache(self) -> DiskCache | None:
        return self._cache

    @property
    def where(self) -> str:
        """The store's location for messages: s3://bucket/prefix at <endpoint>."""
        url = f"s3://{self._bucket}/{self._prefix}".rstrip("/")
        return f"{url} at {self._endpoint_url or 'the AWS default endpoint'}"

    def key_of(self, cid: ChunkId) -> str:
        """The object key of a chunk (for tests and tools)."""
        h = cid.hex()
        return f"{self._key_prefix}{h[:2]}/{h}"

    # -- client ----------------------------------------------------------------

    def _fail(self, what: str, exc: Exception) -> S3StoreError:
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code == "NoSuchBucket":
                reason = "the bucket does not exist"
            elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
                reason = f"the credentials were refused ({code})"
            elif code in ("AccessDenied", "403", "Forbidden"):
                # S3 answers a HEAD with a bare 403 for unknown keys too.
                reason = "access denied (wrong credentials, or no permission on the bucket)"
            else:
                reason = str(exc)  # botocore's text names the code and operation
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return S3StoreError(f"S3 chunk store {self.where}: {what}: {reason}")

    async def _s3(self) -> Any:
        """The S3 client, created (and the bucket checked) on first use."""
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is not None:
                return self._client
            session = self._session or aioboto3.Session()
            config = Config(
                max_pool_connections=MAX_POOL_CONNECTIONS,
                retries=RETRIES,
                connect_timeout=10,
                read_timeout=60,
                # Custom endpoints (MinIO, Ceph, moto, a loopback address) rarely
                # resolve bucket subdomains; AWS itself prefers virtual hosts.
                s3={"addressing_style": "path" if self._endpoint_url else "auto"},
            )
            stack = AsyncExitStack()
            try:
                client = await stack.enter_async_context(
                    session.client(
                        "s3",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region,
                        config=config,
                    )
                )
                try:
                    await client.head_bucket(Bucket=self._bucket)
                except ClientError as exc:
                    if _is_missing(exc):
                        raise S3StoreError(
                            f"S3 chunk store {self.where}: bucket {self._bucket!r} does not exist"
                        ) from exc
                    raise self._fail(f"checking bucket {self._bucket!r}", exc) from exc
                except BotoCoreError as exc:
                    raise self._fail(f"connecting to bucket {self._bucket!r}", exc) from exc
            except BaseException:
                await stack.aclose()
                raise
            self._stack, self._client = stack, client
            return client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # -- requests --------------------------------------------------------------

    async def _exists(self, client: Any, cid: ChunkId) -> bool:
        key = self.key_of(cid)
        try:
            await client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise self._fail(f"HEAD {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"HEAD {key}", exc) from exc
        return True

    async def _fetch(self, cid: ChunkId) -> bytes:
        """The chunk's stored bytes from S3; ChunkMissing if there is no object."""
        client = await self._s3()
        key = self.key_of(cid)
        try:
            resp = await client.get_object(Bucket=self._bucket, Key=key)
            body = resp["Body"]
            async with body:
                stored: bytes = await body.read()
        except ClientError as exc:
            if _is_missing(exc):
                raise ChunkMissing(f"chunk {cid.hex()} is not in {self.where}") from None
            raise self._fail(f"GET {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"GET {key}", exc) from exc
        return stored

    async def _load(self, cid: ChunkId) -> bytes:
        if self._cache is not None:
            cached = await self._cache.get(cid)
            if cached is not None:
                return cached
        stored = await self._fetch(cid)
        data = await asyncio.to_thread(decode_chunk, cid, stored)
        if self._cache is not None:
            await self._cache.put(cid, stored)
        return data

    async def _store(self, cid: ChunkId, data: bytes) -> bool:
        """Upload a chunk whose id has been checked, unless S3 has it already."""
        client = await self._s3()
        async with self._put_slots:
            if await self._exists(client, cid):
                return False
            stored = await asyncio.to_thread(encode_chunk, data)
            key = self.key_of(cid)
            try:
                await client.put_object(Bucket=self._bucket, Key=key, Body=stored)
            except ClientError as exc:
                raise self._fail(f"PUT {key}", exc) from exc
            except BotoCoreError as exc:
                raise self._fail(f"PUT {key}", exc) from exc
        if self._cache is not None:
            # Freshly written chunks are usually read back soon (a GET after a
            # PUT, a copy), so write through.
            await self._cache.put(cid, stored)
        return True

    async def _put_checked(self, cid: ChunkId, data: bytes) -> bool:
        wrote, leader = await self._puts.run(cid, lambda: self._store(cid, data))
        # A caller that joined another's upload wrote nothing itself.
        return wrote and leader

    # -- ChunkStore --------------------------------------------------------------

    async def put(self, chunk_id: ChunkId, data: bytes) -> bool:
        await asyncio.to_thread(check_id, chunk_id, data)
        return await self._put_checked(chunk_id, data)

    async def put_many(self, chunks: list[tuple[ChunkId, bytes]]) -> int:
        if not chunks:
            return 0

        def check_all() -> None:
            # Duplicates too: deduplicating first would let a wrong pair hide
            # behind a right one with the same id.
            for cid, data in chunks:
                check_id(cid, data)

        # Every id is checked before anything is sent, so a bad batch writes nothing.
        await asyncio.to_thread(check_all)
        unique = list(dict(chunks).items())
        tasks = [asyncio.ensure_future(self._put_checked(cid, data)) for cid, data in unique]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return sum(results)

    async def get(self, chunk_id: ChunkId) -> bytes:
        data, _ = await self._gets.run(chunk_id, lambda: self._load(chunk_id))
        return data

    async def has(self, chunk_id: ChunkId) -> bool:
        return await self._exists(await self._s3(), chunk_id)

    async def delete(self, chunk_id: ChunkId) -> None:
        client = await self._s3()
        key = self.key_of(chunk_id)
        try:
            # S3 answers 204 whether or not the object existed.
            await client.delete_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if not _is_missing(exc):
                raise self._fail(f"DELETE {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"DELETE {key}", exc) from exc
        if self._cache is not None:
            # A read that fetched the object before the delete may refill the
            # cache after it; wait it out, then drop the copy.
            flight = self._gets.current(chunk_id)
            if flight is not None:
                await asyncio.wait([flight])
            await self._cache.discard(chunk_id)

    async def iter_ids(self) -> AsyncIterator[ChunkId]:
        client = await self._s3()
        n = len(self._key_prefix)
        paginator = client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(
                Bucket=self._bucket,
                Prefix=self._key_prefix,
                PaginationConfig={"PageSize": LIST_PAGE_SIZE},
            )
            async for page in pages:
                for obj in page.get("Contents", ()):
                    m = _KEY_TAIL.match(obj["Key"][n:])
                    # Skips foreign objects and anything filed under the wrong fan-out.
                    if m and m.group(2).startswith(m.group(1)):
                        yield ChunkId(bytes.fromhex(m.group(2)))
        except ClientError as exc:
            raise self._fail(f"listing {self._key_prefix or '/'}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"listing {self._key_prefix or '/'}", exc) from exc

    # -- fragments (FragmentStore) -------------------------------------------
    # Keys <prefix>/fragments/<upload id>/<64 hex>: iter_ids skips them (they
    # do not match the <ab>/<64 hex> fan-out). Promotion is a server-side copy.

    def fragments(self) -> FragmentStore:
        return self

    def _fragment_prefix(self, upload: str) -> str:
        return f"{self._key_prefix}fragments/{check_upload_id(upload)}/"

    async def _call(self, what: str, fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        try:
            return await fn()
        except ClientError as exc:
            if _is_missing(exc):
                raise ChunkMissing(f"{what}: not in {self.where}") from None
            raise self._fail(what, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(what, exc) from exc

    async def put_fragments(self, upload: str, chunks: list[tuple[ChunkId, bytes]]) -> None:
        client = await self._s3()
        prefix = self._fragment_prefix(upload)

        async def put(cid: ChunkId, data: bytes) -> None:
            await asyncio.to_thread(check_id, cid, data)
            stored = await asyncio.to_thread(encode_chunk, data)
            key = prefix + cid.hex()
            async with self._put_slots:
                await self._call(
                    f"PUT {key}",
                    lambda: client.put_object(Bucket=self._bucket, Key=key, Body=stored),
                )

        await asyncio.gather(*(put(cid, data) for cid, data in dict(chunks).items()))

    async def get_fragment(self, upload: str, chunk_id: ChunkId) -> bytes:
        client = await self._s3()
        key = self._fragment_prefix(upload) + chunk_id.hex()

        async def fetch() -> bytes:
            resp = await client.get_object(Bucket=self._bucket, Key=key)
            async with resp["Body"] as body:
                data: bytes = await body.read()
            return data

        stored = await self._call(f"GET {key}", fetch)
        return await asyncio.to_thread(decode_chunk, chunk_id, stored)

    async def _list(self, prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
        """(keys, common prefixes) under prefix."""
        client = await self._s3()
        keys: list[str] = []
        prefixes: list[str] = []

        async def walk() -> None:
            paginator = client.get_paginator("list_objects_v2")
            extra = {"Delimiter": delimiter} if delimiter else {}
            async for page in paginator.paginate(
                Bucket=self._bucket,
                Prefix=prefix,
                PaginationConfig={"PageSize": LIST_PAGE_SIZE},
                **extra,
            ):
                keys.extend(o["Key"] for o in page.get("Contents", ()))
                prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))

        await self._call(f"listing {prefix}", walk)
        return keys, prefixes

    async def fragment_ids(self, upload: str) -> set[ChunkId]:
        prefix = self._fragment_prefix(upload)
        keys, _ = await self._list(prefix)
        tails = (k[len(prefix) :] for k in keys)
        return {ChunkId(bytes.fromhex(t)) for t in tails if _HEX64.match(t)}

    async def promote_fragments(self, upload: str, ids: list[ChunkId]) -> None:
        client = await self._s3()
        prefix = self._fragment_prefix(upload)

        async def promote(cid: ChunkId) -> None:
            source = prefix + cid.hex()
            async with self._put_slots:
                if await self._exists(client, cid):
                    return
                await self._call(
                    f"COPY {source}",
                    lambda: client.copy_object(
                        Bucket=self._bucket,
                        Key=self.key_of(cid),
                        CopySource={"Bucket": self._bucket, "Key": source},
                    ),
                )

        await asyncio.gather(*(promote(cid) for cid in dict.fromkeys(ids)))

    async def delete_fragments(self, upload: str) -> None:
        client = await self._s3()
        keys, _ = await self._list(self._fragment_prefix(upload))
        for key in keys:
            with contextlib.suppress(ChunkMissing):  # gone already
                await self._call(
                    f"DELETE {key}",
                    lambda key=key: client.delete_object(  # type: ignore[misc]
                        Bucket=self._bucket, Key=key
                    ),
                )

    async def fragment_uploads(self) -> list[str]:
        top = f"{self._key_prefix}fragments/"
        _, prefixes = await self._list(top, "/")
        names = (p[len(top) :].rstrip("/") for p in prefixes)
        return sorted(n for n in names if is_upload_id(n))
