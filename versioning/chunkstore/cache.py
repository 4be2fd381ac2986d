"""A size-bounded local disk cache of chunks, in front of a remote chunk store.

The cache holds chunks in their STORED form (the shared encoding from base.py:
one header byte, then a raw or zstd payload), so compressed chunks take their
compressed size on disk and every read is verified by decode_chunk exactly as a
store read is. A cached file that fails verification is deleted and reported as
a miss, so the caller fetches it again: a damaged cache costs a round trip,
never wrong bytes.

Layout: <dir>/ab/<64 hex id>, where ab is the id's first byte: 256 directories
keep each under ~10k entries for any cache that fits a local disk. Files are
written to a temp name (".<hex>.<pid>.<random>.tmp") in their final directory
and renamed into place, so a reader sees the whole file or none. No fsync: a
crash can leave a damaged file, which verification then catches.

Eviction is LRU by total stored bytes (max_bytes). The index (id -> size, in
LRU order) lives in memory and is rebuilt on first use by scanning the
directory, ordered by each file's latest of atime and mtime; hits bump the
file's times so the order survives a restart. One process per cache directory:
two processes sharing one would each enforce max_bytes on their own index.

The cache is best effort: an I/O error while filling or evicting is logged and
ignored, because a chunk read must not fail for want of a cache. Index changes
happen on the event loop; file I/O runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from versioning.chunkstore.base import decode_chunk
from versioning.errors import CorruptData
from versioning.ids import ChunkId

log = logging.getLogger(__name__)

_HEX2 = re.compile(r"^[0-9a-f]{2}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class _Entry:
    size: int
    # Distinguishes this fill of the id from a later one, so that a reader who
    # found the file missing or damaged drops only the entry it looked at, not
    # a fresh copy another task wrote meanwhile.
    generation: int


class DiskCache:
    """LRU cache of stored chunk bytes under a local directory, bounded by max_bytes.

    max_bytes <= 0 disables it: every get misses and puts store nothing.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._dir = str(Path(directory).absolute())
        self._max_bytes = max(0, max_bytes)
        self._index: OrderedDict[ChunkId, _Entry] = OrderedDict()
        self._total = 0
        self._generations = itertools.count(1)
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"DiskCache({self._dir!r}, max_bytes={self._max_bytes})"

    @property
    def directory(self) -> Path:
        return Path(self._dir)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0

    @property
    def total_bytes(self) -> int:
        """Stored bytes the index accounts for (0 until the first use loads it)."""
        return self._total

    def __contains__(self, cid: object) -> bool:
        return cid in self._index

    def __len__(self) -> int:
        return len(self._index)

    def path_of(self, cid: ChunkId) -> Path:
        """Where the chunk's cached file lives (for tests)."""
        h = cid.hex()
        return Path(self._dir, h[:2], h)

    # -- index ---------------------------------------------------------------

    async def load(self) -> None:
        """Build the index from the directory, once; later calls return at once."""
        if self._loaded or not self.enabled:
            return
        async with self._load_lock:
            if self._loaded:
                return
            try:
                found = await asyncio.to_thread(self._scan_sync)
            except OSError as exc:
                # Start empty rather than fail reads; fills will report the
                # same problem if it persists.
                log.warning("chunk cache %s: cannot scan: %s", self._dir, exc)
                found = []
            for cid, size in found:
                self._index[cid] = _Entry(size, next(self._generations))
                self._total += size
            self._loaded = True
            # max_bytes may have shrunk since the files were written.
            await self._evict()

    def _scan_sync(self) -> list[tuple[ChunkId, int]]:
        found: list[tuple[float, ChunkId, int]] = []
        try:
            tops = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        for top in tops:
            if not _HEX2.match(top):
                continue
            d = os.path.join(self._dir, top)
            try:
                names = os.listdir(d)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                path = os.path.join(d, name)
                if name.startswith(".") and name.endswith(".tmp"):
                    # A writer that died between write and rename; we are the
                    # only process using this directory, so it is garbage.
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                    continue
                if not (_HEX64.match(name) and name.startswith(top)):
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                # Mounts are often noatime/relatime, so atime alone can lag;
                # hits touch both times, and a fill sets mtime.
                found.append(
                    (max(st.st_atime, st.st_mtime), ChunkId(bytes.fromhex(name)), st.st_size)
                )
        found.sort(key=lambda item: item[0])
        return [(cid, size) for _, cid, size in found]

    def _drop(self, cid: ChunkId, generation: int | None = None) -> bool:
        """Forget cid (only if still at `generation`, when given); True if it was."""
        entry = self._index.get(cid)
        if entry is None or (generation is not None and entry.generation != generation):
            return False
        del self._index[cid]
        self._total -= entry.size
        return True

    async def _evict(self) -> None:
        victims: list[ChunkId] = []
        while self._total > self._max_bytes and self._index:
            cid, entry = self._index.popitem(last=False)
            self._total -= entry.size
            victims.append(cid)
        if victims:
            # The index forgets first and the file goes after: a concurrent
            # fill of the same id renames its file and only then re-adds it, so
            # the worst case is an indexed id whose file is gone, which a read
            # treats as a miss.
            await asyncio.to_thread(self._unlink_all_sync, victims)

    def _unlink_all_sync(self, cids: list[ChunkId]) -> None:
        for cid in cids:
            try:
                os.unlink(self.path_of(cid))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("chunk cache %s: cannot remove %s: %s", self._dir, cid.hex(), exc)

    # -- reads ---------------------------------------------------------------

    def _read_sync(self, cid: ChunkId) -> bytes:
        path = self.path_of(cid)
        with open(path, "rb") as f:
            stored = f.read()
        data = decode_chunk(cid, stored)
        # Persist recency for the next startup's scan; a failure only costs
        # ordering accuracy.
        with contextlib.suppress(OSError):
            os.utime(path)
        return data

    async def get(self, cid: ChunkId) -> bytes | None:
        """The chunk's bytes, verified, or None on a miss (absent, unreadable or
        damaged; a damaged file is deleted)."""
        if not self.enabled:
            return None
        await self.load()
        entry = self._index.get(cid)
        if entry is None:
            self.misses += 1
            return None
        self._index.move_to_end(cid)
        try:
            data = await asyncio.to_thread(self._read_sync, cid)
        except FileNotFoundError:
            # Removed behind our back (an operator, a racing eviction).
            self._drop(cid, entry.generation)
            self.misses += 1
            return None
        except CorruptData as exc:
            log.warning("chunk cache %s: dropping damaged entry: %s", self._dir, exc)
            if self._drop(cid, entry.generation):
                await asyncio.to_thread(self._unlink_all_sync, [cid])
            self.misses += 1
            return None
        except OSError as exc:
            log.warning("chunk cache %s: cannot read %s: %s", self._dir, cid.hex(), exc)
            self.misses += 1
            return None
        self.hits += 1
        return data

    # -- writes --------------------------------------------------------------

    def _write_sync(self, cid: ChunkId, stored: bytes) -> None:
        h = cid.hex()
        d = os.path.join(self._dir, h[:2])
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f".{h}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(stored)
            os.replace(tmp, os.path.join(d, h))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    async def put(self, cid: ChunkId, stored: bytes) -> None:
        """Cache a chunk's stored form (the caller has verified or just encoded it)."""
        if not self.enabled or len(stored) > self._max_bytes:
            return
        await self.load()
        try:
            await asyncio.to_thread(self._write_sync, cid, stored)
        except OSError as exc:
            log.warning("chunk cache %s: cannot store %s: %s", self._dir, cid.hex(), exc)
            return
        # Indexed only once the file is in place (see _evict for why).
        self._drop(cid)
        self._index[cid] = _Entry(len(stored), next(self._generations))
        self._total += len(stored)
        await self._evict()

    async def discard(self, cid: ChunkId) -> None:
        """Remove the chunk's cached copy, if any."""
        if not self.enabled:
            return
        await self.load()
        self._drop(cid)
        # Unconditionally: the file may exist without an index entry (a fill
        # that has renamed but not yet indexed).
        await asyncio.to_thread(self._unlink_all_sync, [cid])
