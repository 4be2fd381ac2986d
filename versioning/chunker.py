"""Content-defined chunking of a body that arrives as a stream of pieces.

This module owns where a body is cut into chunks and how a chunk is named.
Boundaries come from FastCDC (a rolling gear hash), so they depend only on the
bytes near them: an insertion in the middle of a file changes the chunks around
it and leaves the rest identical, which is what lets unrelated writes share
storage. A chunk is named by the 32-byte BLAKE3 of its plain bytes.

`StreamChunker` is push-based (the caller feeds request-body pieces as they
arrive) and yields exactly the boundaries `FastCDC.cut_buf` would give over the
whole body at once, whatever the piece sizes. It is pure CPU work with no shared
state: one instance per stream, safe to drive from a worker thread.
"""

from __future__ import annotations

import blake3
from pyfastcdc import FastCDC

from versioning.ids import ChunkId

KiB = 1024
MiB = 1024 * KiB

# 1 MiB average keeps a manifest small (about 40 bytes per MiB of body) while
# still deduplicating at a useful granularity for large files.
DEFAULT_AVG = 1 * MiB
DEFAULT_MIN = 256 * KiB
DEFAULT_MAX = 4 * MiB


def chunk_id(data: bytes | bytearray | memoryview) -> ChunkId:
    """The content address of a chunk: BLAKE3-256 of its plain bytes."""
    return ChunkId(blake3.blake3(data).digest())


class StreamChunker:
    """Cuts a stream into content-defined chunks, one instance per stream.

    Why "every chunk but the last is final": FastCDC cuts a chunk either where
    the gear hash of the bytes since the chunk start matches a mask, or at
    max_size. Both depend only on bytes already in the buffer, so a chunk that
    ends before the end of the buffer would end at the same place however much
    more data followed. Only the last chunk may have been cut short by the end of
    the buffer, so it is carried over and re-scanned with the next data.

    Memory: one buffer of at most 1.25 * max_size (only as large as the stream for
    small bodies), plus the chunks a call returns.
    """

    __slots__ = ("_buf", "_cap", "_cdc", "_finished", "_used", "avg_size", "max_size", "min_size")

    def __init__(
        self,
        avg_size: int = DEFAULT_AVG,
        min_size: int = DEFAULT_MIN,
        max_size: int = DEFAULT_MAX,
    ) -> None:
        # FastCDC validates the ranges (avg 256..4 MiB, min 64..1 MiB,
        # max 1 KiB..16 MiB, min <= avg <= max) and raises ValueError.
        self._cdc = FastCDC(avg_size, min_size=min_size, max_size=max_size)
        self.max_size = max_size
        self.min_size = min_size
        self.avg_size = avg_size
        # Cut only when the buffer is full at 1.25 * max_size: the carry-over is
        # under max_size, so each cut emits at least max_size / 4 bytes of final
        # chunks. The carry-over is the chunk still growing at the end of the
        # buffer, about one average chunk, so re-scanning it costs ~25% more
        # scanning (FastCDC runs at GB/s) for a buffer 40% smaller than 2 *
        # max_size: the buffer is per upload, and memory is what bounds how
        # many uploads a server takes at once (benchmarks P7).
        self._cap = max_size + max_size // 4
        # buf[:used] is the pending data. The bytearray grows to cap once and is
        # then reused: refilling warm memory is several times faster than
        # growing a fresh buffer (page faults, reallocs) for every cut.
        self._buf = bytearray()
        self._used = 0
        self._finished = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Append data; return the chunks that are now final (often none).

        The data is copied, so the caller may reuse its buffer (readinto).
        """
        if self._finished:
            raise RuntimeError("feed() after finish()")
        out: list[bytes] = []
        src = memoryview(data).cast("B")
        pos, size = 0, len(src)
        # A piece larger than the free space is taken in slices, so a huge
        # piece never makes the buffer outgrow cap.
        while pos < size:
            n = min(size - pos, self._cap - self._used)
            end = self._used + n
            if end <= len(self._buf):
                self._buf[self._used : end] = src[pos : pos + n]  # memcpy, no resize
            else:
                del self._buf[self._used :]
                self._buf += src[pos : pos + n]
            self._used = end
            pos += n
            if self._used == self._cap:
                out += self._cut(final=False)
        return out

    def finish(self) -> list[bytes]:
        """End of stream: return the remaining chunks. An empty stream has none."""
        if self._finished:
            return []
        self._finished = True
        chunks = self._cut(final=True) if self._used else []
        self._buf = bytearray()
        self._used = 0
        return chunks

    def _cut(self, *, final: bool) -> list[bytes]:
        chunks, consumed = self._scan(final)
        carry = self._used - consumed
        if carry and consumed:
            with memoryview(self._buf) as view:
                view[:carry] = view[consumed : self._used]  # memmove
        self._used = carry
        return chunks

    def _scan(self, final: bool) -> tuple[list[bytes], int]:
        # A separate frame on purpose: cut_buf's iterator and each Chunk hold
        # views of the bytearray, and CPython refuses to resize a bytearray with
        # live views (BufferError). Returning drops them all.
        chunks: list[bytes] = []
        consumed = 0
        used = self._used
        for c in self._cdc.cut_buf(memoryview(self._buf)[:used]):
            end = c.offset + c.length
            if not final and end == used:
                break  # the carry-over: may grow once more data arrives
            chunks.append(bytes(c.data))
            consumed = end
        return chunks, consumed

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned in a chunk."""
        return self._used

    def sync_point(self, data: bytes) -> int | None:
        """Where every chunking of a body containing `data` agrees with
        chunking `data` alone: the first of data's own cuts that the cut
        sequence of ANY enclosing body passes through, or None when `data`
        does not show one (it may lie further on).

        Why it exists: a multipart part is chunked on its own, but the object
        is chunked as a whole at Complete (content.rejoin). Before the sync
        point the part's chunks may differ from the object's, depending on
        the bytes before the part, which are unknown at UploadPart; from it
        on they are the object's chunks whatever came before.

        How: the whole body's chunk containing data[0] ends somewhere in
        [0, max_size] (a chunk is at most max_size), and from there on its
        cuts are a chain f(s), f(f(s)), ... where f(s) is the first cut of
        a chunk starting at s, which depends only on data (FastCDC's hash
        restarts at each chunk start). The chains from every s in
        [0, max_size] are advanced, lowest first, until they merge into one:
        every chain, hence every possible enclosing body, passes through
        that cut. f is a step function of s: a later start is never more
        ready to cut, and a cut at a stays f(s) until a - s drops below
        avg_size (where FastCDC's stricter mask starts) or min_size. So its
        values need two probes each, not a scan of 4 Mi starts (a bisection
        found the same values on every sample tried). Should the steps lie
        elsewhere, a missed chain costs a chunk stored twice at Complete,
        never wrong content. A chunk that runs to the end of `data` may end
        elsewhere in an enclosing body, so a chain reaching the end yields
        None, as does data of at most max_size.
        """
        n = len(data)
        view = memoryview(data)
        cdc = self._cdc
        limit, avg, least = self.max_size, self.avg_size, self.min_size

        def first_cut(start: int) -> int | None:
            if start >= n:
                return None
            end = n
            for c in cdc.cut_buf(view[start : start + limit + 1]):
                end = start + c.length
                break
            # A chunk cut before the end of what it saw is cut where the
            # whole body's would be; one that runs to the end of `data` is not.
            return end if end < n else None

        heads: set[int] = set()
        start = 0
        while start <= limit:
            if len(heads) > _MAX_ENTRY_CUTS:
                return None  # no content cuts (e.g. zeros): chains never merge
            cut = first_cut(start)
            if cut is None:
                return None
            heads.add(cut)
            probe = cut - avg + 1  # the first start for which cut needs the strict mask
            if probe > start and (probe > limit or first_cut(probe) != cut):
                start = probe
            else:
                start = max(cut - least + 1, start + 1)
        while len(heads) > 1:
            lowest = min(heads)
            heads.discard(lowest)
            following = first_cut(lowest)
            if following is None:
                return None
            heads.add(following)
        return heads.pop()


# More distinct ends of the entry chunk than this: data without content cuts
# (a run of zeros cuts every max_size from wherever it starts).
_MAX_ENTRY_CUTS = 64
