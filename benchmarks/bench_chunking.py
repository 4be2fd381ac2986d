#!/usr/bin/env python3
"""How the FastCDC parameters (average / min / max chunk size) trade dedup for overhead.

Usage:

    .venv/bin/python benchmarks/bench_chunking.py                  # 1 GiB random file
    .venv/bin/python benchmarks/bench_chunking.py --size-mib 128 --csv-mib 64   # quick
    .venv/bin/python benchmarks/bench_chunking.py --json out.json

For each candidate (average 64 KiB .. 2 MiB, min = avg/4, max = avg*4, clamped to
pyfastcdc's ranges: avg 256 B..4 MiB, min 64 B..1 MiB, max 1 KiB..16 MiB) the
body is cut by `versioning.chunker.StreamChunker`, fed in 1 MiB pieces like the
server feeds it, and every chunk is named by `versioning.chunker.chunk_id`.
"New stored bytes" of a version is the plain size of its chunks whose id is not
already stored (duplicates within the version count once): what a
content-addressed store has to write for it.

Inputs (all generated from --seed, so every run sees the same bytes; written
into a scratch directory under --workdir and deleted at the end):
  * a random file of --size-mib MiB, and a second version of it with 1 MiB of
    new random bytes inserted exactly in the middle;
  * a CSV-like file of about --csv-mib MiB (deterministic rows: id, timestamp,
    user, country, product, quantity, price, status), compressible like real
    tabular data; a version with 100 scattered single rows rewritten (same id,
    new values); and a version with about 1 MiB of further rows appended.

Columns (one row per candidate; `*` marks the current default 1M/256K/4M):
  avg/min/max    the FastCDC parameters (K = KiB, M = MiB).
  mean KiB       measured mean chunk size on the random file (FastCDC's
                 normalized chunking makes it differ from the nominal avg).
  chunks /GiB    chunks per GiB of random data = files per GiB on a
                 LocalChunkStore = PUT (write) and GET (full read) requests per
                 GiB on an object-store backend.
  manif KiB/GiB  size of the msgpack manifest (`Manifest.encode()`, about 40
                 bytes per chunk: 32-byte id + size) per GiB of body.
  P6 new MiB     new stored bytes of the random file's second version (1 MiB
                 inserted in the middle).
  P6 excess KiB  that minus the 1 MiB that is genuinely new: the dedup loss.
  excess avg-ch  the excess in nominal average chunks; "ok" when it meets the
                 target new <= 1 MiB + 3 average chunks, else "FAIL".
  ins mean/max   the excess in average chunks for the same 1 MiB insertion at
                 --positions seeded random offsets instead of the middle (one
                 insertion is one sample of a random variable; this is its
                 distribution). Computed locally around each offset: cuts
                 before the offset stay (the one at the offset itself may move:
                 FastCDC decides a cut after hashing the byte that follows it),
                 and once a new cut falls on an old boundary (shifted by 1 MiB)
                 every later chunk is identical, since FastCDC keeps no state
                 across cuts.
                 The script checks that this shortcut gives exactly the full
                 re-chunking's answer at the middle.
  ins ok         how many of those offsets meet the target.
  edit new MiB   new stored bytes after rewriting 100 scattered CSV rows.
  app new KiB    new stored bytes after appending ~1 MiB of CSV rows (the
                 appended bytes plus the re-cut tail chunk of the old file).
  zstd %         stored size of the CSV's chunks after `encode_chunk_parts`
                 (zstd level 1, raw when it saves < 10%) as % of plain size:
                 larger chunks give zstd more context.
  cdc+b3 MB/s    StreamChunker + BLAKE3 on the random file, on one thread:
                 bytes / CPU seconds of that thread (time.thread_time, so less
                 sensitive to other load than wall time). MB = 10^6 bytes.
  write MB/s     the full write path on the random file, wall clock: chunk,
                 name, and `await LocalChunkStore.put_many(...)` in batches of
                 `versioning.content.FLUSH_BYTES` (4 MiB) like `ingest` does
                 (put_many re-hashes each chunk, runs encode_chunk_parts (the
                 zstd judge), writes, fdatasyncs, renames and fsyncs the
                 directories), into a fresh store under the scratch directory.
                 Skipped with --skip-write.
  fsync /GiB     fdatasync + directory fsync calls in that write path per GiB,
                 counted by wrapping the store's sync helpers. A fresh store
                 also creates its fan-out directories (mkdir + parent fsync),
                 which a long-running server pays once per directory.

Deterministic columns (bytes, counts, %) are reproducible exactly for a given
--seed and sizes; the two MB/s columns are noisy on a shared machine (run twice).
--json PATH writes every raw number (timings in seconds, byte counts, chunk-size
distribution, per-position excesses) plus the configuration and environment.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyfastcdc import FastCDC

from versioning.chunker import (
    DEFAULT_AVG,
    DEFAULT_MAX,
    DEFAULT_MIN,
    StreamChunker,
    chunk_id,
)
from versioning.chunkstore import local as local_store
from versioning.chunkstore.base import encode_chunk_parts
from versioning.chunkstore.local import LocalChunkStore
from versioning.content import BATCH_BYTES, FLUSH_BYTES
from versioning.model import ChunkRef, Manifest

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

PIECE = BATCH_BYTES  # the server feeds the chunker 1 MiB batches
INSERT_BYTES = 1 * MiB
APPEND_BYTES = 1 * MiB
EDITED_ROWS = 100
DEFAULT_AVGS_KIB = (64, 128, 256, 512, 1024, 2048)

# pyfastcdc's accepted ranges.
AVG_RANGE = (256, 4 * MiB)
MIN_RANGE = (64, 1 * MiB)
MAX_RANGE = (1 * KiB, 16 * MiB)


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


@dataclass(frozen=True)
class Params:
    avg: int
    min: int
    max: int

    @staticmethod
    def for_avg(avg: int) -> Params:
        avg = _clamp(avg, AVG_RANGE)
        lo = min(_clamp(avg // 4, MIN_RANGE), avg)
        hi = max(_clamp(avg * 4, MAX_RANGE), avg)
        return Params(avg, lo, hi)

    @property
    def is_default(self) -> bool:
        return (self.avg, self.min, self.max) == (DEFAULT_AVG, DEFAULT_MIN, DEFAULT_MAX)

    def label(self) -> str:
        return "/".join(_size_label(v) for v in (self.avg, self.min, self.max))


def _size_label(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB}M"
    if n % KiB == 0:
        return f"{n // KiB}K"
    return str(n)


# -- inputs ------------------------------------------------------------------

# A body is a list of segments: (path, start, end) is a byte range of a file,
# bytes are literal. Versions of a file are described this way, so nothing
# large is ever held in memory or written twice.
Segment = tuple[Path, int, int] | bytes


def iter_pieces(segments: list[Segment], piece: int = PIECE) -> Iterator[bytes]:
    """The body as `piece`-byte pieces (the last one shorter)."""
    buf = bytearray()
    for seg in segments:
        if isinstance(seg, bytes):
            reads: Iterator[bytes] = iter((seg,))
        else:
            reads = _read_range(*seg, piece)
        for data in reads:
            buf += data
            while len(buf) >= piece:
                yield bytes(buf[:piece])
                del buf[:piece]
    if buf:
        yield bytes(buf)


def _read_range(path: Path, start: int, end: int, piece: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            data = f.read(min(piece, end - pos))
            if not data:
                raise EOFError(f"{path} ended at {pos}, expected {end}")
            pos += len(data)
            yield data


def read_at(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def body_size(segments: list[Segment]) -> int:
    return sum(len(s) if isinstance(s, bytes) else s[2] - s[1] for s in segments)


def write_random_file(path: Path, size: int, seed: str) -> None:
    rng = random.Random(seed)
    block = 8 * MiB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(rng.randbytes(n))
            left -= n


_USERS = [f"user{n:05d}" for n in range(5000)]
_COUNTRIES = ["DE", "FR", "US", "GB", "NL", "SE", "ES", "IT", "PL", "JP", "BR", "IN"]
_PRODUCTS = [
    f"{kind}-{n:03d}" for kind in ("widget", "gadget", "gizmo", "doohickey") for n in range(250)
]
_STATUSES = ["paid", "paid", "paid", "shipped", "shipped", "refunded", "pending"]
_DAYS_PER_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
CSV_HEADER = b"order_id,created_at,user,country,product,quantity,unit_price,status\n"


def csv_row(rng: random.Random, i: int) -> str:
    """One deterministic order row; row i's timestamp grows with i."""
    secs = i * 3 + rng.getrandbits(1)
    day, rest = divmod(secs, 86400)
    hour, rest = divmod(rest, 3600)
    minute, sec = divmod(rest, 60)
    month = 0
    day %= 366
    while day >= _DAYS_PER_MONTH[month]:
        day -= _DAYS_PER_MONTH[month]
        month += 1
    r = rng.random()
    price = 99 + int(r * r * 50000)
    return (
        f"{i},2024-{month + 1:02d}-{day + 1:02d}T{hour:02d}:{minute:02d}:{sec:02d}Z,"
        f"{_USERS[int(rng.random() * len(_USERS))]},"
        f"{_COUNTRIES[int(rng.random() * len(_COUNTRIES))]},"
        f"{_PRODUCTS[int(rng.random() * len(_PRODUCTS))]},"
        f"{1 + rng.getrandbits(3)},{price // 100}.{price % 100:02d},"
        f"{_STATUSES[int(rng.random() * len(_STATUSES))]}\n"
    )


@dataclass
class CsvData:
    path: Path
    size: int
    rows: int
    row_starts: array.array[int]  # offset of each data row; [rows] = size
    edited: list[Segment] = field(default_factory=list)
    edited_bytes: int = 0  # bytes of the rewritten rows
    appended: list[Segment] = field(default_factory=list)
    appended_bytes: int = 0


def write_csv_file(path: Path, target: int, seed: str) -> CsvData:
    rng = random.Random(f"{seed}:csv")
    starts = array.array("Q")
    pos = len(CSV_HEADER)
    i = 0
    with open(path, "wb") as f:
        f.write(CSV_HEADER)
        while pos < target:
            rows = []
            for _ in range(4096):
                row = csv_row(rng, i).encode()
                starts.append(pos)
                pos += len(row)
                rows.append(row)
                i += 1
            f.write(b"".join(rows))
    starts.append(pos)
    data = CsvData(path, pos, i, starts)

    # 100 scattered single rows rewritten in place (same id, new values).
    edit_rng = random.Random(f"{seed}:csv-edit")
    segs: list[Segment] = []
    prev = 0
    for r in sorted(edit_rng.sample(range(data.rows), min(EDITED_ROWS, data.rows))):
        start, end = starts[r], starts[r + 1]
        old = read_at(path, start, end)
        new = old
        while new == old:
            new = csv_row(edit_rng, r).encode()
        segs += [(path, prev, start), new]
        data.edited_bytes += len(new)
        prev = end
    segs.append((path, prev, data.size))
    data.edited = segs

    # About 1 MiB of further rows appended.
    app_rng = random.Random(f"{seed}:csv-append")
    tail = []
    n = 0
    j = data.rows
    while n < APPEND_BYTES:
        row = csv_row(app_rng, j).encode()
        tail.append(row)
        n += len(row)
        j += 1
    data.appended = [(path, 0, data.size), b"".join(tail)]
    data.appended_bytes = n
    return data


# -- measurements -----------------------------------------------------------


@dataclass
class Scan:
    ids: list[bytes]
    sizes: list[int]
    cpu: float  # thread CPU seconds in feed/finish + chunk_id
    wall: float

    @property
    def nbytes(self) -> int:
        return sum(self.sizes)


def scan(
    params: Params,
    segments: list[Segment],
    on_chunk: Callable[[bytes, bytes], None] | None = None,
) -> Scan:
    """Chunk and name a body; only chunker + BLAKE3 work is timed."""
    chunker = StreamChunker(params.avg, params.min, params.max)
    ids: list[bytes] = []
    sizes: list[int] = []
    cpu = wall = 0.0
    pieces: Iterator[bytes | None] = itertools.chain(iter_pieces(segments), (None,))
    for piece in pieces:
        w0, c0 = time.perf_counter(), time.thread_time()
        chunks = chunker.finish() if piece is None else chunker.feed(piece)
        named = [(chunk_id(c), c) for c in chunks]
        cpu += time.thread_time() - c0
        wall += time.perf_counter() - w0
        for cid, c in named:
            ids.append(cid)
            sizes.append(len(c))
            if on_chunk is not None:
                on_chunk(cid, c)
    return Scan(ids, sizes, cpu, wall)


def new_bytes(base_ids: set[bytes], version: Scan) -> tuple[int, int]:
    """(new stored bytes, new chunks) of a version given the stored ids."""
    seen = set(base_ids)
    total = count = 0
    for cid, size in zip(version.ids, version.sizes, strict=True):
        if cid not in seen:
            seen.add(cid)
            total += size
            count += 1
    return total, count


def local_insert_cost(
    params: Params,
    path: Path,
    file_size: int,
    boundaries: list[int],
    base_ids: set[bytes],
    pos: int,
    insert: bytes,
) -> int:
    """New stored bytes if `insert` were inserted at `pos` of the file.

    boundaries: the file's cut offsets (0, ..., file_size). Only the region
    from the last cut before pos to the first re-synchronised cut is chunked
    again (see the module docstring).
    """
    cdc = FastCDC(params.avg, min_size=params.min, max_size=params.max)
    old_cuts = set(boundaries)
    # The last cut before pos: FastCDC decides a cut at i after hashing byte i,
    # so a chunk ending exactly at pos is re-cut too; earlier cuts stay.
    start = boundaries[max(bisect.bisect_left(boundaries, pos) - 1, 0)]
    window = 2 * params.max
    while True:
        end = min(file_size, pos + window)
        at_eof = end == file_size
        buf = read_at(path, start, pos) + insert + read_at(path, pos, end)
        new = 0
        seen: set[bytes] = set()
        for c in cdc.cut_buf(buf):
            cut_end = c.offset + c.length
            last = cut_end == len(buf)
            if last and not at_eof:
                break  # cut by the end of the window, not by the data: widen
            cid = chunk_id(c.data)
            if cid not in base_ids and cid not in seen:
                seen.add(cid)
                new += c.length
            old = start + cut_end - len(insert)  # the cut in old-file offsets
            if old >= pos and old in old_cuts:
                return new  # re-synchronised: every later chunk is unchanged
            if last:
                return new  # end of file
        window *= 2


class SyncCounter:
    """Counts the local store's fdatasync and directory fsync calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.datasyncs = 0
        self.dirsyncs = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[SyncCounter]:
        orig_data, orig_dir = local_store._datasync, local_store._fsync_dir

        def datasync(fd: int) -> None:
            with self._lock:
                self.datasyncs += 1
            orig_data(fd)

        def fsync_dir(path: str) -> None:
            with self._lock:
                self.dirsyncs += 1
            orig_dir(path)

        local_store._datasync = datasync
        local_store._fsync_dir = fsync_dir
        try:
            yield self
        finally:
            local_store._datasync, local_store._fsync_dir = orig_data, orig_dir


async def write_path(params: Params, segments: list[Segment], root: Path) -> dict[str, Any]:
    """Chunk, name and store a body on a fresh LocalChunkStore, like ingest()."""
    store = LocalChunkStore(root)
    chunker = StreamChunker(params.avg, params.min, params.max)
    pending: list[tuple[Any, bytes]] = []
    pending_bytes = 0
    written = 0
    wall = store_wall = 0.0
    pieces: Iterator[bytes | None] = itertools.chain(iter_pieces(segments), (None,))
    for piece in pieces:
        w0 = time.perf_counter()
        chunks = chunker.finish() if piece is None else chunker.feed(piece)
        for c in chunks:
            pending.append((chunk_id(c), c))
            pending_bytes += len(c)
        if pending and (piece is None or pending_bytes >= FLUSH_BYTES):
            s0 = time.perf_counter()
            written += await store.put_many(pending)
            store_wall += time.perf_counter() - s0
            pending = []
            pending_bytes = 0
        wall += time.perf_counter() - w0
    await store.close()
    return {"wall_s": wall, "put_many_wall_s": store_wall, "chunks_written": written}


def measure(
    params: Params,
    args: argparse.Namespace,
    rand_path: Path,
    rand_size: int,
    insert: bytes,
    positions: list[int],
    csv: CsvData,
    scratch: Path,
) -> dict[str, Any]:
    res: dict[str, Any] = {"avg": params.avg, "min": params.min, "max": params.max}
    gib = rand_size / GiB

    # Random file: throughput, chunk statistics, manifest size.
    v1 = scan(params, [(rand_path, 0, rand_size)])
    base_ids = set(v1.ids)
    manifest = Manifest(tuple(ChunkRef(i, s) for i, s in zip(v1.ids, v1.sizes, strict=True)))  # type: ignore[arg-type]
    manifest_bytes = len(manifest.encode())
    res["random"] = {
        "bytes": rand_size,
        "chunks": len(v1.ids),
        "unique_chunks": len(base_ids),
        "mean_chunk": rand_size / len(v1.ids),
        "median_chunk": statistics.median(v1.sizes),
        "smallest_chunk": min(v1.sizes),
        "largest_chunk": max(v1.sizes),
        "chunks_at_max": sum(1 for s in v1.sizes if s == params.max),
        "chunks_per_gib": len(v1.ids) / gib,
        "manifest_bytes": manifest_bytes,
        "manifest_bytes_per_gib": manifest_bytes / gib,
        "cdc_blake3_cpu_s": v1.cpu,
        "cdc_blake3_wall_s": v1.wall,
        "cdc_blake3_mb_per_cpu_s": rand_size / v1.cpu / 1e6,
        "cdc_blake3_mb_per_wall_s": rand_size / v1.wall / 1e6,
    }

    # P6: 1 MiB inserted in the middle.
    mid = rand_size // 2
    v2 = scan(params, [(rand_path, 0, mid), insert, (rand_path, mid, rand_size)])
    p6_new, p6_chunks = new_bytes(base_ids, v2)
    excess = p6_new - len(insert)
    boundaries = [0, *itertools.accumulate(v1.sizes)]
    local_mid = local_insert_cost(params, rand_path, rand_size, boundaries, base_ids, mid, insert)
    trials = [
        local_insert_cost(params, rand_path, rand_size, boundaries, base_ids, p, insert)
        - len(insert)
        for p in positions
    ]
    res["p6"] = {
        "insert_at": mid,
        "new_bytes": p6_new,
        "new_chunks": p6_chunks,
        "excess_bytes": excess,
        "excess_avg_chunks": excess / params.avg,
        "target_bytes": len(insert) + 3 * params.avg,
        "meets_target": p6_new <= len(insert) + 3 * params.avg,
        "local_method_new_bytes_at_mid": local_mid,
        "local_method_matches": local_mid == p6_new,
        "positions": positions,
        "excess_bytes_at_positions": trials,
        "excess_avg_chunks_mean": statistics.fmean(trials) / params.avg if trials else None,
        "excess_avg_chunks_max": max(trials) / params.avg if trials else None,
        "positions_meeting_target": sum(1 for t in trials if t <= 3 * params.avg),
    }

    # CSV: base (with zstd stored size), 100 edited rows, 1 MiB appended.
    stored = 0

    def add_stored(_cid: bytes, data: bytes) -> None:
        nonlocal stored
        header, payload = encode_chunk_parts(data)
        stored += len(header) + len(payload)

    base = scan(params, [(csv.path, 0, csv.size)], add_stored)
    csv_ids = set(base.ids)
    edit = scan(params, csv.edited)
    edit_new, edit_chunks = new_bytes(csv_ids, edit)
    app = scan(params, csv.appended)
    app_new, app_chunks = new_bytes(csv_ids, app)
    res["csv"] = {
        "bytes": csv.size,
        "rows": csv.rows,
        "chunks": len(base.ids),
        "mean_chunk": csv.size / len(base.ids),
        "stored_bytes_zstd": stored,
        "stored_fraction": stored / csv.size,
        "cdc_blake3_mb_per_cpu_s": csv.size / base.cpu / 1e6,
        "edit_rows": EDITED_ROWS,
        "edit_new_bytes": edit_new,
        "edit_new_chunks": edit_chunks,
        "append_bytes": csv.appended_bytes,
        "append_new_bytes": app_new,
        "append_new_chunks": app_chunks,
    }

    # Full write path on the random file.
    if not args.skip_write:
        root = Path(tempfile.mkdtemp(prefix="store_", dir=scratch))
        try:
            os.sync()  # start from clean page cache writeback, like every candidate
            with SyncCounter().installed() as counter:
                w = asyncio.run(write_path(params, [(rand_path, 0, rand_size)], root))
            w.update(
                {
                    "mb_per_s": rand_size / w["wall_s"] / 1e6,
                    "fdatasyncs": counter.datasyncs,
                    "dir_fsyncs": counter.dirsyncs,
                    "fsyncs_per_gib": (counter.datasyncs + counter.dirsyncs) / gib,
                    "files_per_gib": w["chunks_written"] / gib,
                }
            )
            res["write"] = w
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return res


# -- output -----------------------------------------------------------------

COLUMNS: list[tuple[str, str, str]] = [
    # (header line 1, header line 2, alignment)
    ("avg/min/max", "", "<"),
    ("mean", "KiB", ">"),
    ("chunks", "/GiB", ">"),
    ("manif", "KiB/GiB", ">"),
    ("P6 new", "MiB", ">"),
    ("P6 excess", "KiB", ">"),
    ("excess", "avg-ch", ">"),
    ("ins mean/max", "avg-ch", ">"),
    ("ins", "ok", ">"),
    ("edit new", "MiB", ">"),
    ("app new", "KiB", ">"),
    ("zstd", "%", ">"),
    ("cdc+b3", "MB/s", ">"),
    ("write", "MB/s", ">"),
    ("fsync", "/GiB", ">"),
]


def table_row(r: dict[str, Any]) -> list[str]:
    p = Params(r["avg"], r["min"], r["max"])
    rnd, p6, csv = r["random"], r["p6"], r["csv"]
    w = r.get("write")
    ok = "ok" if p6["meets_target"] else "FAIL"
    trials = (
        f"{p6['excess_avg_chunks_mean']:.2f}/{p6['excess_avg_chunks_max']:.2f}"
        if p6["positions"]
        else "-"
    )
    return [
        p.label() + (" *" if p.is_default else ""),
        f"{rnd['mean_chunk'] / KiB:.0f}",
        f"{rnd['chunks_per_gib']:.0f}",
        f"{rnd['manifest_bytes_per_gib'] / KiB:.1f}",
        f"{p6['new_bytes'] / MiB:.2f}",
        f"{p6['excess_bytes'] / KiB:.0f}",
        f"{p6['excess_avg_chunks']:.2f} {ok}",
        trials,
        f"{p6['positions_meeting_target']}/{len(p6['positions'])}",
        f"{csv['edit_new_bytes'] / MiB:.1f}",
        f"{csv['append_new_bytes'] / KiB:.0f}",
        f"{100 * csv['stored_fraction']:.1f}",
        f"{rnd['cdc_blake3_mb_per_cpu_s']:.0f}",
        f"{w['mb_per_s']:.0f}" if w else "-",
        f"{w['fsyncs_per_gib']:.0f}" if w else "-",
    ]


def format_table(results: list[dict[str, Any]]) -> str:
    rows = [[c[0] for c in COLUMNS], [c[1] for c in COLUMNS]]
    rows += [table_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [f"{cell:{COLUMNS[i][2]}{widths[i]}}" for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 1:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "pyfastcdc": version("pyfastcdc"),
        "blake3": version("blake3"),
        "zstandard": version("zstandard"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Measure FastCDC parameters: dedup vs per-chunk overhead.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--size-mib", type=int, default=1024, help="random file size (MiB)")
    ap.add_argument("--csv-mib", type=int, default=256, help="CSV file size (MiB, about)")
    ap.add_argument(
        "--avg-kib",
        default=",".join(map(str, DEFAULT_AVGS_KIB)),
        help="comma-separated average chunk sizes (KiB); min = avg/4, max = avg*4",
    )
    ap.add_argument(
        "--positions", type=int, default=64, help="random insertion offsets for 'ins mean/max'"
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of every generator")
    ap.add_argument("--skip-write", action="store_true", help="skip the LocalChunkStore pass")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/work/benchscratch"),
        help="parent of the scratch directory (must be disk-backed, not tmpfs)",
    )
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write raw results here")
    args = ap.parse_args(argv)
    if args.size_mib < 4 or args.csv_mib < 2:
        ap.error("--size-mib must be >= 4 and --csv-mib >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    args = parse_args(argv)
    candidates = [Params.for_avg(int(a) * KiB) for a in args.avg_kib.split(",") if a.strip()]
    rand_size = args.size_mib * MiB
    seed = str(args.seed)

    args.workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_chunking_", dir=args.workdir))
    results: list[dict[str, Any]] = []
    try:
        log(f"scratch dir {scratch}; generating {args.size_mib} MiB random file")
        rand_path = scratch / "random.bin"
        write_random_file(rand_path, rand_size, f"{seed}:random-file")
        insert = random.Random(f"{seed}:insert").randbytes(INSERT_BYTES)
        pos_rng = random.Random(f"{seed}:positions")
        positions = sorted(pos_rng.randrange(rand_size) for _ in range(args.positions))
        log(f"generating ~{args.csv_mib} MiB CSV file")
        csv = write_csv_file(scratch / "orders.csv", args.csv_mib * MiB, seed)
        for params in candidates:
            log(f"candidate {params.label()}")
            results.append(
                measure(params, args, rand_path, rand_size, insert, positions, csv, scratch)
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            args.workdir.rmdir()  # only if empty (nobody else's files in it)

    print(
        f"random file {args.size_mib} MiB (+1 MiB inserted in the middle), "
        f"CSV {csv.size / MiB:.1f} MiB / {csv.rows} rows "
        f"({EDITED_ROWS} rows edited, {csv.appended_bytes} B appended), "
        f"fed in {PIECE // KiB} KiB pieces, seed {args.seed}"
    )
    print(format_table(results))
    print(
        "P6 target: new <= 1 MiB + 3 average chunks. avg-ch = nominal average chunks. "
        f"'ins mean/max' over {args.positions} random offsets. "
        "MB/s are noisy (shared CPUs); all other columns are deterministic."
    )
    mismatches = [r for r in results if not r["p6"]["local_method_matches"]]
    for r in mismatches:
        print(
            f"WARNING {Params(r['avg'], r['min'], r['max']).label()}: local insertion "
            f"method gives {r['p6']['local_method_new_bytes_at_mid']} B at the middle, "
            f"full re-chunking {r['p6']['new_bytes']} B",
            file=sys.stderr,
        )
    if args.json:
        doc = {
            "config": {
                "size_mib": args.size_mib,
                "csv_mib": args.csv_mib,
                "seed": args.seed,
                "piece_bytes": PIECE,
                "flush_bytes": FLUSH_BYTES,
                "insert_bytes": INSERT_BYTES,
                "edited_rows": EDITED_ROWS,
                "positions": args.positions,
                "skip_write": args.skip_write,
            },
            "environment": environment(),
            "elapsed_s": time.perf_counter() - started,
            "results": results,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
