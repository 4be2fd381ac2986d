"""Process memory: how the allocator serves body buffers, and giving freed
memory back to the system when the S3 traffic pauses."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from typing import Any

log = logging.getLogger("loxo")

# An S3 request pause this long (no S3 request in flight for a whole
# period) lets the heaps give their free memory back.
TRIM_AFTER_IDLE_SECONDS = 1.0


@functools.cache
def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 (present on glibc only)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Blocks up to this size come from the heap: request pieces (uvloop reads
# up to 256 KiB) and the smaller chunks. Bigger ones (most chunks, the
# chunker's buffer) still come from mmap and go back to the system on free.
_HEAP_MAX_BLOCK = 512 * 1024
# Free memory a heap keeps at its top before giving it back to the kernel.
_KEEP_FREE = 32 * 1024 * 1024


def tame_malloc() -> None:
    """Keep request pieces on the heap, and bound what the heaps keep.

    Bodies pass through as request pieces, chunks and batches of 64 KiB to
    4 MiB, allocated and freed thousands of times per GiB. With glibc's
    mmap threshold at 128 KiB (set so, with two arenas, after 40 concurrent
    streams once doubled peak RSS through per-thread heaps) each of them
    was fresh pages: 2.4 million page faults and about half the server's
    CPU per GiB PUT (benchmarks/bench_storage.py P1, perf: sys time 5.9 of
    12.5 s). At 512 KiB, with 32 MiB of a heap's free top kept, the faults
    drop to ~360,000 and the sys time to ~2.2 s. All blocks up to 4 MiB on
    the heap saved no more CPU (~140,000 faults) but raised P7's peak RSS
    after a sync of 20,000 small files from 302 to 328 MB: long-lived cache
    entries between the freed buffers keep the heap from shrinking.

    Two arenas, so worker threads do not each grow a heap of their own.
    Free holes inside a heap are what trimming at the top cannot reach;
    IdleTrim gives them back between bursts of traffic.
    """
    libc = _glibc()  # None unless glibc: it has both calls (checked there)
    if libc is None:
        return  # not glibc (macOS, musl): their allocators behave differently
    libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_MAX_BLOCK)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE)
    libc.mallopt(_M_ARENA_MAX, 2)


class IdleTrim:
    """Gives the heaps' free memory back (malloc_trim) once no S3 request
    has been in flight for TRIM_AFTER_IDLE_SECONDS after some were.

    The heaps keep freed body buffers for reuse while traffic flows (see
    tame_malloc), so they hold a burst's high-water mark until trimmed: in
    benchmarks/bench_storage.py the server's RSS climbed phase by phase
    (194 MB after P1 to 279 MB before P7) and P7 peaked at 348 MB. Trimming
    in the pauses between bursts costs page faults only on the next burst's
    first use of the memory. Control-API requests are not counted: workers
    hold long polls open whenever pipelines run.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self._used = False  # some S3 request ran since the last trim
        self._quiet = True  # no S3 request was in flight during this period

    def enter(self) -> None:
        self.in_flight += 1
        self._used = True
        self._quiet = False

    def exit(self) -> None:
        self.in_flight -= 1

    async def run(self) -> None:
        libc = _glibc()
        if libc is None:
            return
        while True:
            await asyncio.sleep(TRIM_AFTER_IDLE_SECONDS)
            if self._used and self._quiet and self.in_flight == 0:
                self._used = False
                try:
                    await asyncio.to_thread(libc.malloc_trim, 0)
                except Exception:  # never worth failing the server over
                    log.debug("malloc_trim failed", exc_info=True)
            self._quiet = self.in_flight == 0
