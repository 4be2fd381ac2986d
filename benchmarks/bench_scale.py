#!/usr/bin/env python3
"""Scale benchmark (P5): does per-operation latency stay flat as a branch grows?

Loads a branch of --files files (default 1,000,000) next to one of
--small-files (1,000), and a branch with --commits commits of history
(default 100,000) next to one with --small-commits (100), then measures per
operation the median and p90 latency at the small and at the big size, their
ratio (the target is <= 1.5x), and the tree nodes read from PostgreSQL and
the SQL round trips per operation:

  * PUT: one new object in the big branch, which is one commit;
  * LIST: one ListObjectsV2 page of 1000 keys under a prefix (`d0421/`,
    delimiter `/`: what `aws s3 ls s3://bucket/d0421/` sends);
  * DIFF: the tree diff of two commits that differ in --k paths;
  * GET old: GET of a key in the snapshot of an old commit (files: the
    bulk-loaded commit; history: the 10th commit, with all the history after it).

Each is measured through the Versioning service in this process, and PUT,
LIST and GET old also through a real `loxo serve` over HTTP, started on the
same database after the data is loaded (the service and the server write to
side branches, so main keeps exactly what was loaded).

    .venv/bin/python benchmarks/bench_scale.py                       # full size
    .venv/bin/python benchmarks/bench_scale.py --files 50000 --commits 5000
    .venv/bin/python benchmarks/bench_scale.py --json scale.json --no-http

Loading goes through the service in big commits (--bulk files per commit; the
history as single-object commits submitted concurrently, which the committer
chains up to 256 per statement), with progress on stderr. It is resumable:
the data stays in the scratch database (`loxo_bench_scale` on the
--pg-admin-url server, or --database-url) and the data dir
--workdir/loxo-scale-bench/data, and a rerun continues loading where the
last run stopped (a commit is atomic, so a kill loses at most the batch in
flight). --fresh starts over; --drop-at-end removes the database and the
data dir afterwards.

Each row compares the small and the big size, one operation at a time on
random targets (a different key, prefix or commit pair each time):

  * `service`: steady state. One service with the server's default caches,
    warmed by --warmup operations, then --reps timed ones; node reads and
    round trips are the mean per operation (cache misses only).
  * `service cold`: --cold-reps operations, each on a fresh Database (empty
    caches, as tests/versioning/test_scale.py counts): every node is read
    from PostgreSQL; counts are the median per operation.
  * `http`: the same through `loxo serve` (hand-signed requests over one
    keep-alive connection, so client-side XML parsing does not dominate);
    the server's counts are not visible from here.

Small and big operations alternate, so other load on the machine hits both
alike. The cold rows compare the structures (node reads per level); the
steady rows add the cache: a small branch is soon entirely cached, while on a
big one every key, page or commit pair not touched before is read from
PostgreSQL one node (one round trip) at a time.

`run(args) -> list[dict]` returns the table's rows so another benchmark can
include them: `run(parse_args(["--files", "50000"]))`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import asyncpg  # noqa: E402

from s3api.operations.listing import list_page  # noqa: E402
from tests.versioning.counting import CountingDatabase  # noqa: E402
from versioning import errors, tree  # noqa: E402
from versioning.chunkstore.local import LocalChunkStore  # noqa: E402
from versioning.db import Database  # noqa: E402
from versioning.ids import CommitId  # noqa: E402
from versioning.model import ObjectEntry  # noqa: E402
from versioning.repository import Versioning  # noqa: E402
from versioning.views import ObjectAttrs, View, new_entry  # noqa: E402

PAGE = 1000
OLD = 10  # the "old" commit of a history branch: the 10th after the base
TARGET_RATIO = 1.5
ACCESS_KEY = "loxobenchscale"
SECRET_KEY = "loxobenchscalesecret0123456789abcdef"
REGION = "us-east-1"
ATTRS = ObjectAttrs("application/octet-stream", {}, {})
READY_MARKER = "loxo listening on http"


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- layout


def file_key(i: int) -> str:
    """The i-th file: 1000 per directory, so `d0421/` lists exactly a page."""
    return f"d{i // PAGE:04d}/f{i % PAGE:03d}"


def dir_prefix(d: int) -> str:
    return f"d{d:04d}/"


def files_repo(n: int) -> str:
    return f"files-{n}"


def history_repo(h: int) -> str:
    return f"history-{h}"


def history_key(j: int) -> str:
    """The key history commit j overwrites: 7919 is prime, so PAGE
    consecutive commits change distinct keys of the PAGE-file tree."""
    return file_key(j * 7919 % PAGE)


# --------------------------------------------------------------------------- counting


# --------------------------------------------------------------------------- database


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def ensure_database(admin_dsn: str, name: str, fresh: bool) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if fresh:
            await _terminate(conn, name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await _terminate(conn, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def _terminate(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )


# --------------------------------------------------------------------------- loading


@dataclass
class Dataset:
    """One branch to measure, and the targets its operations pick from."""

    dimension: str  # "files" or "history"
    scale: str  # "small" or "big"
    size: int  # files in the branch, or commits of history
    repo: str
    files: int  # files in the trees measured
    k: int = 0  # paths that differ between the commits of a diff pair
    old: str = ""  # hex id of the commit GET old reads
    diff_pairs: list[tuple[str, str]] = field(default_factory=list)
    put_branch: str = ""  # branch the service PUTs land on
    http_branch: str = ""  # branch the HTTP PUTs land on
    load_seconds: float = 0.0  # spent loading in this run


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Loader:
    def __init__(self, svc: Versioning, bulk: int, k: int, stamp: str) -> None:
        self.svc = svc
        self.bulk = bulk
        self.k = k
        self.stamp = stamp
        self._entry: Callable[[], ObjectEntry] | None = None

    async def entry(self) -> ObjectEntry:
        if self._entry is None:
            content, result = await self.svc.store_content(_one_piece(b"bench scale body"))
            md5 = result.md5.hex()
            self._entry = lambda: new_entry(content, result.size, md5, ATTRS)
        return self._entry()

    async def _repo(self, repo: str) -> tuple[View, CommitId | None]:
        try:
            await self.svc.branches.get_repo(repo)
        except errors.RepoNotFound:
            await self.svc.branches.create_repo(repo)
        branch = await self.svc.branches.get_branch(repo, "main")
        return await self.svc.branch_view(repo, "main"), branch.head

    async def _count(self, view: View) -> int:
        return (await self.svc.count(view))[0]

    async def _load_files(self, view: View, start: int, files: int, label: str) -> None:
        t0 = time.perf_counter()
        done = start
        while done < files:
            end = min(files, done + self.bulk)
            edits = {file_key(i): await self.entry() for i in range(done, end)}
            await self.svc.commit(view, edits, "bulk load", {"op": "bench"})
            loaded = end - start
            elapsed = time.perf_counter() - t0
            rate = loaded / elapsed
            log(
                f"{label}: {end:,}/{files:,} files ({rate:,.0f} files/s, "
                f"ETA {(files - end) / rate:,.0f} s)"
            )
            done = end

    async def _side_branches(self, data: Dataset) -> None:
        data.put_branch = f"put-{self.stamp}"
        data.http_branch = f"hput-{self.stamp}"
        for name in (data.put_branch, data.http_branch):
            await self.svc.branches.ensure_branch(data.repo, name)

    async def files(self, scale: str, n: int, pairs: int) -> Dataset:
        t0 = time.perf_counter()
        data = Dataset("files", scale, n, files_repo(n), n, self.k)
        view, _ = await self._repo(data.repo)
        have = await self._count(view)
        if have > n:
            raise SystemExit(f"{data.repo} holds {have} files, more than {n}: use --fresh")
        if have:
            log(f"{data.repo}: resuming at {have:,} files")
        await self._load_files(view, have, n, data.repo)
        head = (await self.svc.branches.get_branch(data.repo, "main")).head
        assert head is not None
        data.old = head.hex()
        # A chain of commits, each changing k random paths of its parent.
        diffs = f"diffs-{self.stamp}"
        await self.svc.branches.ensure_branch(data.repo, diffs)
        dview = await self.svc.branch_view(data.repo, diffs)
        rng = random.Random(n)
        changes = []
        for _ in range(pairs):
            keys = rng.sample(range(n), self.k)
            changes.append({file_key(i): await self.entry() for i in keys})
        chain = await asyncio.gather(
            *(self.svc.commit(dview, c, "k changes", {"op": "bench"}) for c in changes)
        )
        ids = [head.hex()] + [cast(CommitId, c).hex() for c in chain]
        data.diff_pairs = list(itertools.pairwise(ids))
        await self._side_branches(data)
        data.load_seconds = time.perf_counter() - t0
        return data

    async def history(self, scale: str, h: int) -> Dataset:
        t0 = time.perf_counter()
        data = Dataset("history", scale, h, history_repo(h), PAGE, self.k)
        view, head = await self._repo(data.repo)
        if head is None:
            await self._load_files(view, 0, PAGE, f"{data.repo} base")
            head = (await self.svc.branches.get_branch(data.repo, "main")).head
        assert head is not None
        # Generation 1 is the base commit; history commit j has generation j + 2.
        done = (await self.svc.db.objects.get_history(head))[1] - 1
        if done > h:
            raise SystemExit(f"{data.repo} holds {done} commits, more than {h}: use --fresh")
        if done:
            log(f"{data.repo}: resuming at {done:,} commits")
        start, step = done, 2000
        while done < h:
            end = min(h, done + step)
            writes = [
                self.svc.commit(view, {history_key(j): await self.entry()}, f"c{j}", {})
                for j in range(done, end)
            ]
            await asyncio.gather(*writes)
            elapsed = time.perf_counter() - t0
            rate = (end - start) / elapsed
            log(
                f"{data.repo}: {end:,}/{h:,} commits ({rate:,.0f} commits/s, "
                f"ETA {(h - end) / rate:,.0f} s)"
            )
            done = end
        by_generation = await self._commits_by_generation(data.repo, h + 1)
        assert sorted(by_generation) == list(range(1, h + 2)), (len(by_generation), h)
        data.old = by_generation[OLD + 1]
        rng = random.Random(h)
        data.diff_pairs = []
        for _ in range(200):
            g = rng.randrange(2, h + 2 - self.k)
            data.diff_pairs.append((by_generation[g], by_generation[g + self.k]))
        await self._side_branches(data)
        data.load_seconds = time.perf_counter() - t0
        return data

    async def _commits_by_generation(self, repo: str, last: int) -> dict[int, str]:
        """main's commits by generation. Side branches (PUT targets of earlier
        runs) start at main's loaded head, so their generations are > last."""
        rows = await self.svc.db.pool.fetch(
            "SELECT h.generation, h.commit_id FROM commit_history h "
            "JOIN commits c ON c.id = h.commit_id WHERE c.repo = $1 AND h.generation <= $2",
            repo,
            last,
        )
        out = {int(r["generation"]): bytes(r["commit_id"]).hex() for r in rows}
        assert len(out) == len(rows), f"{repo}: main is not a single chain of commits"
        return out


# --------------------------------------------------------------------------- operations

# An operation: (service, dataset, target index) -> awaitable. Index i picks
# a deterministic random target, so each rep reads something new.
Op = Callable[[Versioning, Dataset, int], Awaitable[None]]


def _rng(data: Dataset, op: str, i: int) -> random.Random:
    return random.Random(f"{data.repo}/{op}/{i}")


async def op_put(svc: Versioning, data: Dataset, i: int) -> None:
    # s3api's PutObject: check the branch, store the body, commit.
    await svc.branches.require_branch(data.repo, data.put_branch)
    view = View(data.repo, data.put_branch, None, None)
    content, result = await svc.store_content(_one_piece(b"new object %d" % i), register=False)
    entry = new_entry(content, result.size, result.md5.hex(), ATTRS)
    key = file_key(_rng(data, "put", i).randrange(data.files)) + f".put{i}"
    commit = await svc.commit(view, {key: entry}, "PutObject", {}, contents=[result.manifest])
    assert commit is not None


async def op_list(svc: Versioning, data: Dataset, i: int) -> None:
    view = await svc.branch_view(data.repo, "main")
    prefix = dir_prefix(_rng(data, "list", i).randrange(data.files // PAGE))
    page = await list_page(svc, view, prefix, "/", "", PAGE)
    assert len(page.items) == PAGE, (prefix, len(page.items))


async def op_diff(svc: Versioning, data: Dataset, i: int) -> None:
    a, b = data.diff_pairs[i % len(data.diff_pairs)]
    va = await svc.snapshot_view(data.repo, a)
    vb = await svc.snapshot_view(data.repo, b)
    changed = [k async for k, _, _ in tree.diff(svc.db.objects, va.root, vb.root)]
    assert len(changed) == data.k, (a, b, len(changed))


async def op_get_old(svc: Versioning, data: Dataset, i: int) -> None:
    # s3api's GetObject on repo.<commit>: view, entry, version header, manifest.
    view = await svc.snapshot_view(data.repo, data.old)
    entry = await svc.get_entry(view, file_key(_rng(data, "get", i).randrange(data.files)))
    await svc.commit_of(entry)
    reader = await svc.reader(entry, data.repo)
    assert reader is not None


SERVICE_OPS: list[tuple[str, Op]] = [
    ("PUT", op_put),
    ("LIST page", op_list),
    ("DIFF k paths", op_diff),
    ("GET old commit", op_get_old),
]


@dataclass
class Measured:
    latencies_ms: list[float]
    work: dict[str, float] | None  # per operation; None when not counted (HTTP)


async def measure_service(
    pool: asyncpg.Pool,
    store: LocalChunkStore,
    pair: tuple[Dataset, Dataset],
    op: Op,
    args: argparse.Namespace,
) -> tuple[list[Measured], list[Measured]]:
    """([steady small, steady big], [cold small, cold big]).

    Steady: one service per dataset with the default caches, warmed up; its
    counts are the mean per operation. Cold: a fresh Database (empty caches)
    per operation; its counts are the median. Small and big operations
    alternate, so load from other processes on the machine hits both alike."""
    metas = [CountingDatabase(pool) for _ in pair]  # default cache sizes, like a server
    services = [Versioning(m, store) for m in metas]
    for i in range(args.warmup):
        for svc, data in zip(services, pair, strict=True):
            await op(svc, data, i)
    for meta in metas:
        meta.counting.statements.clear()
        meta.counted_objects.node_visits = 0
    latencies: list[list[float]] = [[], []]
    for i in range(args.warmup, args.warmup + args.reps):
        for n, (svc, data) in enumerate(zip(services, pair, strict=True)):
            t0 = time.perf_counter()
            await op(svc, data, i)
            latencies[n].append((time.perf_counter() - t0) * 1000)
    steady = [
        Measured(lat, {k: v / args.reps for k, v in asdict(m.work()).items()})
        for lat, m in zip(latencies, metas, strict=True)
    ]
    cold_latencies: list[list[float]] = [[], []]
    works: list[list[dict[str, int]]] = [[], []]
    start = args.warmup + args.reps
    for i in range(start, start + args.cold_reps):
        for n, data in enumerate(pair):
            fresh = CountingDatabase(pool)
            fresh_svc = Versioning(fresh, store)
            t0 = time.perf_counter()
            await op(fresh_svc, data, i)
            cold_latencies[n].append((time.perf_counter() - t0) * 1000)
            works[n].append(asdict(fresh.work()))
    cold = [
        Measured(lat, {k: float(statistics.median(w[k] for w in ws)) for k in ws[0]})
        for lat, ws in zip(cold_latencies, works, strict=True)
    ]
    return steady, cold


# --------------------------------------------------------------------------- HTTP


@contextlib.contextmanager
def loxo_server(dsn: str, data_dir: Path, log_path: Path) -> Iterator[str]:
    """`loxo serve` on a free port; yields its endpoint URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loxo = Path(sys.executable).parent / "loxo"
    cmd = [str(loxo)] if loxo.exists() else [sys.executable, "-m", "gateway.cli"]
    cmd += ["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    cmd += ["--database-url", dsn]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOXO_")}
    env.update(LOXO_ACCESS_KEY=ACCESS_KEY, LOXO_SECRET_KEY=SECRET_KEY, PYTHONUNBUFFERED="1")
    log(f"starting {' '.join(cmd)}")
    ready = threading.Event()
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if READY_MARKER in line:
                    ready.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not ready.wait(0.1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"loxo did not start; see {log_path}")
            yield f"http://127.0.0.1:{port}"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            reader.join(10)


class RawS3:
    """Hand-signed SigV4 requests over one keep-alive connection.

    boto3 would spend longer parsing a 1000-key listing than loxo spends
    making it (its XML parser is pure Python), and the client shares the
    machine's cores with the server: a thin client keeps the HTTP rows about
    the server. Signing still goes through botocore."""

    def __init__(self, endpoint: str) -> None:
        import http.client

        parts = urlsplit(endpoint)
        self.endpoint = endpoint
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)

    def close(self) -> None:
        self.conn.close()

    def request(
        self, method: str, bucket: str, key: str = "", query: str = "", body: bytes = b""
    ) -> tuple[int, bytes]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        path = "/" + quote(bucket) + ("/" + quote(key, safe="/~") if key else "")
        target = path + (f"?{query}" if query else "")
        headers = {"Content-Length": str(len(body))} if method == "PUT" else {}
        signed = AWSRequest(method=method, url=self.endpoint + target, data=body, headers=headers)
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(signed)
        self.conn.request(method, target, body=body or None, headers=dict(signed.headers.items()))
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {target}: HTTP {resp.status}: {data[:500]!r}")
        return resp.status, data


HttpOp = Callable[[RawS3, Dataset, int], None]


def http_put(s3: RawS3, data: Dataset, i: int) -> None:
    key = file_key(_rng(data, "hput", i).randrange(data.files)) + f".hput{i}"
    s3.request("PUT", f"{data.repo}.{data.http_branch}", key, body=b"http object %d" % i)


def http_list(s3: RawS3, data: Dataset, i: int) -> None:
    prefix = dir_prefix(_rng(data, "hlist", i).randrange(data.files // PAGE))
    query = urlencode(
        {"list-type": "2", "prefix": prefix, "delimiter": "/", "max-keys": str(PAGE)},
        quote_via=quote,
        safe="",
    )
    _, body = s3.request("GET", data.repo, query=query)
    assert f"<KeyCount>{PAGE}</KeyCount>".encode() in body, (prefix, body[:300])


def http_get_old(s3: RawS3, data: Dataset, i: int) -> None:
    key = file_key(_rng(data, "hget", i).randrange(data.files))
    s3.request("GET", f"{data.repo}.{data.old}", key)


HTTP_OPS: list[tuple[str, HttpOp]] = [
    ("PUT", http_put),
    ("LIST page", http_list),
    ("GET old commit", http_get_old),
]


def measure_http(
    s3: RawS3, pair: tuple[Dataset, Dataset], op: HttpOp, args: argparse.Namespace
) -> list[Measured]:
    """[small, big], alternating small and big requests."""
    for i in range(args.warmup):
        for data in pair:
            op(s3, data, i)
    latencies: list[list[float]] = [[], []]
    for i in range(args.warmup, args.warmup + args.reps):
        for n, data in enumerate(pair):
            t0 = time.perf_counter()
            op(s3, data, i)
            latencies[n].append((time.perf_counter() - t0) * 1000)
    return [Measured(lat, None) for lat in latencies]


# --------------------------------------------------------------------------- the run


def _p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _count(m: Measured, metric: str) -> float | None:
    return None if m.work is None else round(m.work[metric], 1)


def make_row(
    operation: str, via: str, small: Dataset, big: Dataset, ms: Measured, mb: Measured
) -> dict[str, Any]:
    p50s, p50b = statistics.median(ms.latencies_ms), statistics.median(mb.latencies_ms)
    ratio = p50b / p50s
    return {
        "operation": operation,
        "via": via,
        "dimension": small.dimension,
        "small": small.size,
        "big": big.size,
        "p50_small_ms": round(p50s, 3),
        "p90_small_ms": round(_p90(ms.latencies_ms), 3),
        "p50_big_ms": round(p50b, 3),
        "p90_big_ms": round(_p90(mb.latencies_ms), 3),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "node_reads_small": _count(ms, "node_reads"),
        "node_reads_big": _count(mb, "node_reads"),
        "node_visits_small": _count(ms, "node_visits"),
        "node_visits_big": _count(mb, "node_visits"),
        "round_trips_small": _count(ms, "round_trips"),
        "round_trips_big": _count(mb, "round_trips"),
        "reps": len(ms.latencies_ms),
    }


async def _load_and_measure(
    args: argparse.Namespace, dsn: str, chunks: Path
) -> tuple[list[Dataset], list[dict[str, Any]]]:
    base = await Database.connect(dsn, min_size=1, max_size=4)
    try:
        store = LocalChunkStore(chunks)
        # Loading keeps a small node cache: a million decoded entries would
        # otherwise stay in memory for nothing.
        loader = Loader(
            Versioning(Database(base.pool, node_cache_size=2_000), store),
            args.bulk,
            args.k,
            f"{int(time.time()):x}",
        )
        pairs = args.warmup + args.reps + args.cold_reps
        datasets = [
            await loader.files("small", args.small_files, pairs),
            await loader.files("big", args.files, pairs),
            await loader.history("small", args.small_commits),
            await loader.history("big", args.commits),
        ]
        rows = []
        for small, big in ((datasets[0], datasets[1]), (datasets[2], datasets[3])):
            for name, op in SERVICE_OPS:
                log(f"service {name} ({small.dimension}: {small.size:,} vs {big.size:,})")
                steady, cold = await measure_service(base.pool, store, (small, big), op, args)
                rows.append(make_row(name, "service", small, big, *steady))
                rows.append(make_row(name, "service cold", small, big, *cold))
        return datasets, rows
    finally:
        await base.close()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Load (or resume loading) the datasets, measure, return the table rows."""
    for name in ("files", "small_files"):
        if getattr(args, name) % PAGE or getattr(args, name) < PAGE:
            raise SystemExit(f"--{name.replace('_', '-')} must be a positive multiple of {PAGE}")
    if args.bulk < PAGE:
        raise SystemExit(f"--bulk must be at least {PAGE}")
    if min(args.commits, args.small_commits) < OLD + 2 * args.k:
        raise SystemExit(f"--commits and --small-commits must be at least {OLD + 2 * args.k}")
    workdir = Path(args.workdir) / "loxo-scale-bench"  # the workdir may be shared
    admin_dsn, db_name = args.pg_admin_url, args.db_name
    if args.database_url:
        dsn = args.database_url
    else:
        asyncio.run(ensure_database(admin_dsn, db_name, args.fresh))
        dsn = with_database(admin_dsn, db_name)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir / "data", ignore_errors=True)
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log(f"database {dsn}, data dir {data_dir}")
    try:
        datasets, rows = asyncio.run(_load_and_measure(args, dsn, data_dir / "chunks"))
        for d in datasets:
            log(f"{d.repo}: loaded in {d.load_seconds:,.1f} s this run")
        if not args.no_http:
            with loxo_server(dsn, data_dir, workdir / "server.log") as endpoint:
                s3 = RawS3(endpoint)
                for small, big in ((datasets[0], datasets[1]), (datasets[2], datasets[3])):
                    for name, op in HTTP_OPS:
                        log(f"http {name} ({small.dimension}: {small.size:,} vs {big.size:,})")
                        measured = measure_http(s3, (small, big), op, args)
                        rows.append(make_row(name, "http", small, big, *measured))
                s3.close()
        if args.json:
            doc = {
                "config": vars(args),
                "datasets": [
                    {k: v for k, v in asdict(d).items() if k != "diff_pairs"} for d in datasets
                ],
                "rows": rows,
            }
            Path(args.json).write_text(json.dumps(doc, indent=2))
    finally:
        if args.drop_at_end:
            if not args.database_url:
                asyncio.run(drop_database(admin_dsn, db_name))
            shutil.rmtree(data_dir, ignore_errors=True)
            (workdir / "server.log").unlink(missing_ok=True)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:g}"

    header = (
        "operation",
        "via",
        "dimension",
        "small",
        "big",
        "p50 small",
        "p90 small",
        "p50 big",
        "p90 big",
        "ratio",
        "<=1.5x",
        "node reads",
        "round trips",
    )
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["operation"],
                r["via"],
                r["dimension"],
                f"{r['small']:,}",
                f"{r['big']:,}",
                f"{r['p50_small_ms']:.2f} ms",
                f"{r['p90_small_ms']:.2f} ms",
                f"{r['p50_big_ms']:.2f} ms",
                f"{r['p90_big_ms']:.2f} ms",
                f"{r['ratio']:.2f}x",
                "yes" if r["within_target"] else "NO",
                f"{num(r['node_reads_small'])} -> {num(r['node_reads_big'])}",
                f"{num(r['round_trips_small'])} -> {num(r['round_trips_big'])}",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                str(c).rjust(w) if i > 2 else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--files", type=int, default=1_000_000, help="files in the big branch")
    p.add_argument("--small-files", type=int, default=1_000, help="files in the small branch")
    p.add_argument("--commits", type=int, default=100_000, help="commits of the long history")
    p.add_argument("--small-commits", type=int, default=100, help="commits of the short one")
    p.add_argument("--k", type=int, default=10, help="paths that differ between diffed commits")
    p.add_argument("--reps", type=int, default=50, help="timed operations per row and size")
    p.add_argument("--warmup", type=int, default=10, help="untimed operations before them")
    p.add_argument(
        "--cold-reps", type=int, default=20, help="operations on empty caches per row and size"
    )
    p.add_argument("--bulk", type=int, default=50_000, help="files per bulk-load commit")
    p.add_argument(
        "--workdir",
        default="/work/benchscratch",
        help="parent of loxo-scale-bench/ (data dir with the chunks, server log)",
    )
    p.add_argument(
        "--pg-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL where the scratch database is created",
    )
    p.add_argument("--db-name", default="loxo_bench_scale", help="the scratch database")
    p.add_argument("--database-url", help="use this existing database instead")
    p.add_argument("--fresh", action="store_true", help="drop earlier data and load again")
    p.add_argument(
        "--drop-at-end", action="store_true", help="drop the database and data dir after"
    )
    p.add_argument("--no-http", action="store_true", help="skip the rows through loxo serve")
    p.add_argument("--json", help="also write config, datasets and rows to this file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = run(args)
    print(format_table(rows))
    print(
        f"\nratio = p50 big / p50 small (target <= {TARGET_RATIO}x). node reads (tree nodes "
        "fetched from PostgreSQL) and round trips (SQL statements) per operation, small -> big:\n"
        "service = mean with warm default caches; service cold = median with empty caches."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
