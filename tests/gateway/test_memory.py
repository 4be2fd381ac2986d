"""gateway.memory: the allocator settings and the idle trim."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from gateway import memory


class _Libc:
    """Stands in for glibc (not one of ours): counts malloc_trim calls."""

    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        assert pad == 0
        self.trims += 1
        return 1


def _run_ticks(trim: memory.IdleTrim, steps: list[str], monkeypatch: Any) -> int:
    """Drive IdleTrim.run through `steps`, one per period: "idle", "busy"
    (a request in flight across the tick) or "short" (a request that came
    and went within the period). Returns how many trims ran."""
    libc = _Libc()
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.setattr(memory, "TRIM_AFTER_IDLE_SECONDS", 0.02)

    async def go() -> None:
        task = asyncio.create_task(trim.run())
        try:
            for step in steps:
                if step == "busy":
                    trim.enter()
                    await asyncio.sleep(0.03)
                    trim.exit()
                elif step == "short":
                    trim.enter()
                    trim.exit()
                    await asyncio.sleep(0.03)
                else:
                    await asyncio.sleep(0.03)
            await asyncio.sleep(0.1)
        finally:
            task.cancel()

    asyncio.run(go())
    return libc.trims


def test_trims_once_after_traffic_pauses(monkeypatch: Any) -> None:
    assert _run_ticks(memory.IdleTrim(), ["short", "idle", "idle"], monkeypatch) == 1


def test_never_trims_a_server_nobody_used(monkeypatch: Any) -> None:
    assert _run_ticks(memory.IdleTrim(), ["idle", "idle", "idle"], monkeypatch) == 0


def test_does_not_trim_while_a_request_is_in_flight(monkeypatch: Any) -> None:
    trim = memory.IdleTrim()
    trim.enter()  # one long upload, in flight throughout
    assert _run_ticks(trim, ["busy", "busy", "idle", "idle"], monkeypatch) == 0
    trim.exit()


_TRIM_CHECK = """
import os, sys
from pathlib import Path
from gateway import memory

def rss():
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

memory.tame_malloc()
blocks = [bytearray(256 * 1024) for _ in range(800)]  # request-piece sized
for b in blocks:
    b[::4096] = b"x" * len(b[::4096])  # touch every page
pin = bytearray(1024)  # above the blocks: the heap's top cannot shrink past it
before = rss()
del blocks
after_free = rss()
memory._glibc().malloc_trim(0)
print(before, after_free, rss())
"""


@pytest.mark.skipif(memory._glibc() is None, reason="glibc only (not on this libc)")
def test_the_real_trim_gives_freed_heap_memory_back() -> None:
    """With tame_malloc's settings (in a process of its own), freed 256 KiB
    buffers stay resident, and malloc_trim gives them back."""
    out = subprocess.run(
        [sys.executable, "-c", _TRIM_CHECK], capture_output=True, text=True, check=True
    ).stdout
    before, after_free, trimmed = map(int, out.split())
    mib = 1024 * 1024
    assert after_free > before - 50 * mib, "freed blocks were returned at once: not on the heap?"
    assert trimmed < before - 150 * mib
